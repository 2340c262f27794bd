"""Which positions of a hook's activation a probe reads.

The position axis is axis 1 of the hook's activation (axis 2, the query axis, for ``hook_pattern`` and
``hook_attn_scores``); every axis after it is flattened into features. A position spec is

* ``k`` (int, negative counts from the end): the activation at position k only;
* ``[k1, k2, ...]``: the activations at those positions, concatenated into one feature vector;
* ``"flatten"``: every position concatenated (one feature vector per example);
* ``"all"``: every position is a separate row (rows of one example stay in the same split);
* ``"none"``: the hook has no position axis (``[batch, d]``), e.g. ``hook_resid_final``;
* ``"default"``: resolved per hook by a convention function ``(model, hook) -> spec``; the one used
  unless another is passed is `default_position`.

`default_position` is the convention of the shipped model types, read from ``model.model_type``:
the K-theory model (``"ktheory"``) at decoder position 0 (the BOS position, which sees the whole
source through cross-attention, before any label is read), the remainders model (``"miiii"``) at the
'=' position (-1); embeddings and the source stream (``hook_src*``, cross-attention keys and values)
``"flatten"``. A model type without a convention reads ``"flatten"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from jaxtyping import Float, Int
from torch import Tensor

from ktlens.models.base import HookedModel

__all__ = [
    "QUERY_AXIS_HOOKS",
    "FLATTEN_HOOKS",
    "READ_POSITION",
    "PositionConvention",
    "default_position",
    "resolve_position",
    "select_positions",
    "position_axis",
    "position_specs",
    "spec_str",
]

QUERY_AXIS_HOOKS = ("hook_pattern", "hook_attn_scores")  # [batch, head, query_pos, key_pos]
#: Hooks whose position axis runs over the whole input rather than the read-out position.
FLATTEN_HOOKS = ("hook_embed", "hook_pos_embed", "hook_src_embed", "hook_src_pos_embed", "hook_src")
#: The read-out position of each model type.
READ_POSITION = {"ktheory": 0, "miiii": -1}

PositionConvention = Callable[[HookedModel, str], Any]


def default_position(model: HookedModel, hook: str) -> Any:
    """The position convention for `hook` of `model` (see the module docstring)."""
    last = hook.split(".")[-1]
    if hook in FLATTEN_HOOKS or (".cross_attn." in hook and last in ("hook_k", "hook_v")):
        return "flatten"
    return READ_POSITION.get(getattr(model, "model_type", ""), "flatten")


def position_axis(hook: str) -> int:
    return 2 if hook.split(".")[-1] in QUERY_AXIS_HOOKS else 1


def spec_str(spec: Any) -> str:
    if isinstance(spec, (list, tuple)):
        return "[" + ", ".join(str(int(k)) for k in spec) + "]"
    return str(spec)


def select_positions(act: Tensor, hook: str, spec: Any) -> tuple[Float[Tensor, "rows features"], Int[np.ndarray, " rows"] | None]:
    """Features [B, F] (or [B * P, F] for "all") from one batch of activations; positions of "all" rows."""
    act = act.detach().float()
    if spec == "none":
        if act.ndim != 2:
            raise ValueError(f"position 'none' needs a [batch, d] hook, but {hook!r} has shape {tuple(act.shape)}")
        return act, None
    if act.ndim < 3:
        raise ValueError(f"hook {hook!r} has shape {tuple(act.shape)} (no position axis); use position 'none'")
    axis = position_axis(hook)
    act = act.movedim(axis, 1)  # [B, P, ...]
    n_pos = act.shape[1]
    if spec == "flatten":
        return act.flatten(1), None
    if spec == "all":
        b = act.shape[0]
        return act.flatten(2).flatten(0, 1), np.tile(np.arange(n_pos), b)
    ks = [spec] if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool) else spec
    if not isinstance(ks, (list, tuple)) or not ks or not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in ks):
        raise ValueError(f"unknown position spec {spec!r}; use an int, a list of ints, 'flatten', 'all', 'none' or 'default'")
    for k in ks:
        if not -n_pos <= k < n_pos:
            raise ValueError(f"position {k} is out of range for hook {hook!r} with {n_pos} positions")
    if len(ks) == 1:  # one position: rows carry it (normalised to 0..P-1) for per-position targets
        return act[:, ks[0]].flatten(1), np.full(act.shape[0], ks[0] % n_pos)
    return act[:, list(ks)].flatten(1), None


def position_specs(hooks: list[str], positions: Any) -> dict[str, Any]:
    if isinstance(positions, Mapping):
        unknown = [h for h in positions if h not in hooks]
        if unknown:
            raise ValueError(f"positions given for hooks {unknown} that are not probed")
        return {h: positions.get(h, "default") for h in hooks}
    return {h: positions for h in hooks}


def resolve_position(
    model: HookedModel, hook: str, spec: Any, ndim: int, convention: PositionConvention | None = None
) -> Any:
    """The concrete position spec for `hook` (whose activation has `ndim` axes): "default" resolved
    by `convention` (`default_position` when None)."""
    if isinstance(spec, str) and spec == "default":
        if ndim == 2:
            return "none"
        return (convention or default_position)(model, hook)
    return spec

