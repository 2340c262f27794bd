"""Gathering probe inputs: run a model over the examples and keep the chosen positions of each hook.

Activations are read only through ``model.run_with_cache(tokens, names_filter=[...])``, so any
`HookedModel` works.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ktlens.analysis.probes.positions import (
    PositionConvention,
    position_specs,
    resolve_position,
    select_positions,
    spec_str,
)
from ktlens.analysis.probes.records import Features
from ktlens.models.base import HookedModel

__all__ = ["check_hooks", "gather_features", "random_control_model"]


def check_hooks(model: HookedModel, hooks: Sequence[str]) -> list[str]:
    """The hook names as a list, or ValueError naming the first one the model does not have."""
    if isinstance(hooks, str):
        hooks = [hooks]
    hooks = list(hooks)
    if not hooks:
        raise ValueError("no hooks given")
    known = model.hook_dict
    for name in hooks:
        if name not in known:
            close = [k for k in known if name.split(".")[-1] in k][:6]
            raise ValueError(f"unknown hook {name!r} for {type(model).__name__}; similar: {close}")
    return hooks



@torch.no_grad()
def gather_features(
    model: HookedModel,
    tokens: Tensor,
    hooks: Sequence[str],
    positions: Any = "default",  # a PositionSpec, or hook -> PositionSpec; checked, ValueError when bad
    batch_size: int = 512,
    convention: PositionConvention | None = None,
) -> dict[str, Features]:
    """Run the model over `tokens` in batches and keep the selected positions of every hook.

    Reads activations only through ``model.run_with_cache(tokens, names_filter=hooks)``. Position
    ``"default"`` is resolved by `convention` (``positions.default_position`` when None).
    """
    hooks = check_hooks(model, hooks)
    tokens = torch.as_tensor(tokens)
    if len(tokens) == 0:
        raise ValueError("no examples: tokens is empty")
    spec = position_specs(hooks, positions)
    was_training = model.training
    model.eval()
    parts: dict[str, list[Tensor]] = {h: [] for h in hooks}
    pos_parts: dict[str, list[np.ndarray]] = {h: [] for h in hooks}
    try:
        for start in range(0, len(tokens), batch_size):
            batch = tokens[start : start + batch_size].to(model.device)
            _, cache = model.run_with_cache(batch, names_filter=hooks)
            for h in hooks:
                spec[h] = resolve_position(model, h, spec[h], cache[h].ndim, convention)
                x, pos = select_positions(cache[h], h, spec[h])
                parts[h].append(x.cpu())
                if pos is not None:
                    pos_parts[h].append(pos)
            del cache
    finally:
        model.train(was_training)
    out = {}
    n = len(tokens)
    for h in hooks:
        X = torch.cat(parts[h])
        position = np.concatenate(pos_parts[h]) if pos_parts[h] else np.full(n, -1)
        example = np.repeat(np.arange(n), len(X) // n)
        out[h] = Features(h, spec_str(spec[h]), X, example, position)
    return out


def random_control_model(model: HookedModel, seed_offset: int = 1000) -> HookedModel:
    """A freshly initialised model of the same class and cfg, init seed ``cfg.seed + seed_offset``.

    The global torch RNG is left as it was.
    """
    cfg = dataclasses.replace(model.cfg, seed=int(model.cfg.seed) + seed_offset)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        control = type(model)(cfg, model.task_spec)
    return control.to(model.device).eval()

