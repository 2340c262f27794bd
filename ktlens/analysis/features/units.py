"""Units and the domain they are read over.

A *unit source* turns the model's cached activation at one hook into a ``[rows, n_units]`` matrix:
MLP neurons are the identity on ``blocks.{l}.mlp.hook_post``; SAE latents are ``sae.encode`` of the
SAE's hook. Everything downstream (statistics, labels, coverage, dashboards) sees only that matrix.

The domain is the model's whole input domain under teacher forcing:

* K-theory: every triple (p, r, e) of the model's trained domain (`model.domain_triples()`: the grid, or
  its part with r*e <= re_max), one row per triple and decoder position in the model's decoder order
  (row ``i * K + k`` is example ``i`` at position ``k``; K = n_scratch + L: the scratch positions, if
  any, named by `model.position_labels()` (e.g. 're', 're/p'), then the L count positions);
* MIIII: every n in 0..p^2-1, one row per n, read at '=' (one position).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

__all__ = ["UnitSource", "FeatureDomain", "UnitActivations", "neuron_units", "sae_units", "feature_domain", "read_units"]


def _no_directions() -> None:
    """Directions of a unit source that has none."""
    return None


@dataclass
class UnitSource:
    """Named units read at ``hook``: ``encode(act [rows, d_hook]) -> [rows, n_units]``.

    ``directions()`` gives each unit's write direction into the residual stream ``[n_units, d_model]``
    (or None when unknown); it is used for the direct effect on the logits.
    """

    name: str
    hook: str
    encode: Callable[[Tensor], Tensor]
    n_units: int
    kind: str = "neuron"  # "neuron" or "latent"
    directions: Callable[[], Tensor | None] = _no_directions

    def __post_init__(self) -> None:
        if self.kind not in ("neuron", "latent"):
            raise ValueError(f"unit kind must be 'neuron' or 'latent', got {self.kind!r}")
        if not isinstance(self.n_units, int) or self.n_units < 1:
            raise ValueError(f"n_units must be a positive integer, got {self.n_units!r}")


def _mlp_layer(model: Any, hook: str) -> int | None:
    parts = hook.split(".")
    if len(parts) == 4 and parts[0] == "blocks" and parts[2] == "mlp" and parts[3] in ("hook_post", "hook_pre"):
        layer = int(parts[1])
        if not 0 <= layer < int(model.cfg.n_layers):
            raise ValueError(f"hook {hook!r}: layer {layer} is outside 0..{int(model.cfg.n_layers) - 1}")
        return layer
    return None


def _check_hook(model: Any, hook: str) -> None:
    if hook not in model.hook_dict:
        raise ValueError(f"hook {hook!r} does not exist in this model (e.g. {sorted(model.hook_dict)[:4]} ...)")


def neuron_units(model: Any, hook: str = "blocks.0.mlp.hook_post") -> UnitSource:
    """The MLP neurons of ``blocks.{l}.mlp.hook_post`` (identity units; direction = row l of ``W_out``)."""
    _check_hook(model, hook)
    layer = _mlp_layer(model, hook)
    if layer is None or not hook.endswith("hook_post"):
        raise ValueError(f"neuron units live on an MLP's hidden layer blocks.{{l}}.mlp.hook_post, got {hook!r}")
    W_out = model.W_out[layer].detach()

    return UnitSource(f"neurons of {hook}", hook, lambda x: x, int(W_out.shape[0]), "neuron", lambda: W_out)


def sae_units(model: Any, sae: Any, name: str | None = None) -> UnitSource:
    """The latents of ``sae`` (``sae.encode``), read at ``sae.cfg.hook_name``.

    Directions: the decoder rows, mapped through ``W_out`` when the SAE reads an MLP's hidden layer."""
    hook = str(sae.cfg.hook_name)
    _check_hook(model, hook)
    W_dec = getattr(sae, "W_dec", None)
    n = int(W_dec.shape[0]) if W_dec is not None else int(getattr(sae.cfg, "d_sae"))
    layer = _mlp_layer(model, hook)

    def directions() -> Tensor | None:
        if W_dec is None:
            return None
        d = W_dec.detach().float()
        if layer is not None and hook.endswith("hook_post"):
            d = d @ model.W_out[layer].detach().float()
        return d if d.shape[-1] == int(model.cfg.d_model) else None

    def encode(x: Tensor) -> Tensor:
        return sae.encode(x)

    name = name or getattr(sae.cfg, "name", None) or f"SAE on {hook}"
    return UnitSource(f"latents of {name}", hook, encode, n, "latent", directions)


@dataclass
class FeatureDomain:
    """The model's whole domain: ``tokens[i]`` is example i (teacher-forced), ``inputs`` the raw inputs
    (``p, r, e`` or ``n``), ``n_positions`` rows per example, ``position_names`` what each position is.

    K-theory with scratch positions: the first ``n_scratch`` positions write ``scratch_values[:, k]``
    (e.g. r*e, floor(r*e / p^h)); the counts follow at positions n_scratch..n_positions-1."""

    model_type: str
    tokens: Tensor
    inputs: dict[str, np.ndarray]
    n_positions: int
    position_names: list[str]
    context: dict[str, Any]  # extra arguments of the task's variables (length, label_order, spec)
    n_scratch: int = 0
    scratch_values: np.ndarray | None = None  # [examples, n_scratch] (None without scratch positions)

    def __post_init__(self) -> None:
        if len(self.position_names) != self.n_positions:
            raise ValueError(f"{len(self.position_names)} position names for {self.n_positions} positions")
        if not 0 <= self.n_scratch <= self.n_positions:
            raise ValueError(f"n_scratch must be in 0..{self.n_positions}, got {self.n_scratch}")
        shape = None if self.scratch_values is None else tuple(np.shape(self.scratch_values))
        if self.n_scratch and shape != (self.n_examples, self.n_scratch):
            raise ValueError(f"scratch_values must have shape ({self.n_examples}, {self.n_scratch}), got {shape}")

    @property
    def n_examples(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def n_rows(self) -> int:
        return self.n_examples * self.n_positions

    @property
    def count_positions(self) -> range:
        """Positions that write counts (all of them without scratch positions)."""
        return range(self.n_scratch, self.n_positions)

    def subset(self, idx: np.ndarray) -> "FeatureDomain":
        """The examples ``idx`` of this domain (e.g. a seeded sample), everything else kept."""
        idx = np.asarray(idx, dtype=np.int64)
        if idx.ndim != 1 or idx.size == 0 or idx.min() < 0 or idx.max() >= self.n_examples:
            raise ValueError(f"subset indices must be a non-empty 1-D array within 0..{self.n_examples - 1}")
        scratch = None if self.scratch_values is None else self.scratch_values[idx]
        return FeatureDomain(self.model_type, self.tokens[torch.as_tensor(idx)], {k: v[idx] for k, v in self.inputs.items()},
                             self.n_positions, list(self.position_names), dict(self.context), self.n_scratch, scratch)


def feature_domain(model: Any) -> FeatureDomain:
    """Every input of the model's domain with teacher-forced tokens (see the module docstring)."""
    if model.model_type == "ktheory":
        p, r, e = model.domain_triples()
        tokens = model.make_batch(p, r, e).cpu()
        S = int(model.n_scratch)
        scratch = model.targets(p, r, e)[:, :S].cpu().numpy() if S else None
        context = {"length": int(model.seq_len), "label_order": model.label_order}
        return FeatureDomain("ktheory", tokens, {"p": p, "r": r, "e": e}, int(model.dec_len), model.position_labels(),
                             context, S, scratch)
    if model.model_type == "miiii":
        pp = int(model.p)
        n = np.arange(pp * pp, dtype=np.int64)
        return FeatureDomain("miiii", model.tokens_for(n).cpu(), {"n": n}, 1, ["="], {"spec": model.spec})
    raise ValueError(f"no feature domain for model_type {model.model_type!r}")


@dataclass
class UnitActivations:
    """``acts[i * n_positions + k, u]``: unit u on example i at position k (decoder order)."""

    source: UnitSource
    domain: FeatureDomain
    acts: Float[Tensor, "rows units"]

    @property
    def by_position(self) -> Float[Tensor, "examples positions units"]:
        return self.acts.reshape(self.domain.n_examples, self.domain.n_positions, -1)


@torch.no_grad()
def read_units(model: Any, source: UnitSource, domain: FeatureDomain | None = None, batch_size: int = 2048,
               progress: bool = True) -> UnitActivations:
    """Run the model over the domain in batches and encode the hook's activation into units."""
    domain = feature_domain(model) if domain is None else domain
    was_training = model.training
    model.eval()
    K = domain.n_positions
    out = torch.empty(domain.n_rows, source.n_units)  # filled in place: no second copy at the end
    try:
        for start in tqdm(range(0, domain.n_examples, batch_size), desc=f"reading {source.hook}", disable=not progress,
                          leave=False):
            tok = domain.tokens[start : start + batch_size].to(model.device)
            _, cache = model.run_with_cache(tok, names_filter=source.hook)
            act = cache[source.hook]
            act = act[:, -K:] if act.ndim == 3 else act[:, None]  # MIIII: '=' is the last position
            units = source.encode(act.reshape(-1, act.shape[-1]).float())
            if units.ndim != 2 or units.shape[1] != source.n_units:
                raise ValueError(f"unit source {source.name!r} returned shape {tuple(units.shape)}, expected [rows, {source.n_units}]")
            out[start * K : start * K + units.shape[0]] = units.detach().float().cpu()
    finally:
        model.train(was_training)
    return UnitActivations(source, domain, out)
