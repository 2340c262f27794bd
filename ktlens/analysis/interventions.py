"""Interventions on a unit of any hook: set, add, scale, or ablate (zero, mean, resample) a neuron or a direction.

A unit is a unit vector `u` in the last axis of a hook's activation (of one head for `hook_q/k/v/z`): a
neuron is the one-hot `u`, a direction (a probe's weight, a difference of means, an SAE latent's
decoder row) is normalised to length 1. With `c = act . u` the unit's coordinate, every operation moves
the activation along `u` only: `act + (c' - c) u`, where c' is `value` (set), `c + value` (add),
`c * value` (scale), 0 (zero ablation), the mean of `c` over a reference batch per position (mean
ablation), or `c` of a random reference example (resample ablation). `positions` picks positions of the
hook's position axis (negative counts from the end: -1 is '=' in every MIIII hook).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ktlens.models.base import HookedModel

__all__ = ["Intervention", "InterventionEffect", "DoseResponse", "intervene", "intervention_effect", "dose_response",
           "difference_of_means", "OPS"]

OPS = ("set", "add", "scale", "zero", "mean", "resample")


@dataclass
class Intervention:
    """One operation on one unit of one hook (see the module docstring)."""

    hook: str
    op: str
    value: float = 0.0  # the new coordinate (set), the shift (add) or the factor (scale)
    neuron: int | None = None  # an index of the last axis ...
    direction: Tensor | None = None  # ... or a vector of that axis' length (normalised to 1)
    head: int | None = None  # for per-head hooks [batch, pos, head, d_head]
    positions: Sequence[int] | None = None  # indices of the position axis; None: all
    seed: int = 0  # of the reference examples drawn by resample ablation

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"op={self.op!r} must be one of {OPS}")
        if (self.neuron is None) == (self.direction is None):
            raise ValueError("give exactly one of neuron= and direction=")
        if self.direction is not None:
            d = torch.as_tensor(self.direction, dtype=torch.float32)
            if d.ndim != 1 or not torch.isfinite(d).all() or d.norm() == 0:
                raise ValueError(f"direction must be a finite non-zero 1-D vector, got shape {tuple(d.shape)}")
            self.direction = d / d.norm()


def _check(model: HookedModel, iv: Intervention) -> None:
    if iv.hook not in model.hook_dict:
        raise ValueError(f"hook {iv.hook!r} does not exist in this model")


def _selection(act: Tensor, iv: Intervention) -> tuple[Tensor, tuple]:
    """The unit vector u (on act's device) and the index of the intervened part of `act`."""
    index: list = [slice(None)] * (act.ndim - 1)
    if iv.head is not None:
        if act.ndim != 4:
            raise ValueError(f"head={iv.head} needs a per-head hook [batch, pos, head, d_head]; {iv.hook!r} has shape {tuple(act.shape)}")
        if not 0 <= iv.head < act.shape[2]:
            raise ValueError(f"head={iv.head} is out of range 0..{act.shape[2] - 1} for {iv.hook!r}")
        index[2] = iv.head
    if iv.positions is not None:
        if act.ndim < 3:
            raise ValueError(f"{iv.hook!r} has no position axis (shape {tuple(act.shape)}): leave positions=None")
        n = act.shape[1]
        bad = [p for p in iv.positions if not -n <= p < n]
        if bad:
            raise ValueError(f"position {bad[0]} is out of range for {iv.hook!r} ({n} positions)")
        index[1] = torch.as_tensor(list(iv.positions), device=act.device)
    width = act.shape[-1]
    if iv.neuron is not None:
        if not 0 <= iv.neuron < width:
            raise ValueError(f"neuron={iv.neuron} is out of range 0..{width - 1} for {iv.hook!r}")
        u = torch.zeros(width, device=act.device, dtype=act.dtype)
        u[iv.neuron] = 1.0
    else:
        if iv.direction.shape[0] != width:
            raise ValueError(f"direction has length {iv.direction.shape[0]} but {iv.hook!r} has {width} features")
        u = iv.direction.to(act.device, act.dtype)
    return u, tuple(index)


def _reference_coordinates(model: HookedModel, ivs: list[Intervention], reference: Tensor | None) -> dict[int, Tensor]:
    """Coordinates of each mean / resample unit on the reference batch: {intervention index: [B_ref, ...]}."""
    wanted = [i for i, iv in enumerate(ivs) if iv.op in ("mean", "resample")]
    if not wanted:
        return {}
    if reference is None:
        raise ValueError("mean and resample ablation need reference= (a batch of inputs whose activations are averaged / drawn)")
    with torch.no_grad():
        _, cache = model.run_with_cache(reference, names_filter=sorted({ivs[i].hook for i in wanted}))
    out = {}
    for i in wanted:
        act = cache[ivs[i].hook]
        u, index = _selection(act, ivs[i])
        out[i] = act[index] @ u
    return out


def intervene(
    model: HookedModel,
    tokens: Int[Tensor, "batch tok"],
    interventions: Sequence[Intervention],
    reference: Int[Tensor, "ref_batch tok"] | None = None,
) -> Tensor:
    """Logits of `model` on `tokens` with every intervention applied (in order) during one forward pass."""
    ivs = list(interventions)
    for iv in ivs:
        _check(model, iv)
    ref = _reference_coordinates(model, ivs, reference)

    def make_hook(i: int, iv: Intervention):
        def hook_fn(act: Tensor, hook) -> Tensor:
            u, index = _selection(act, iv)
            act = act.clone()
            part = act[index]
            c = part @ u
            if iv.op == "set":
                new = torch.full_like(c, iv.value)
            elif iv.op == "add":
                new = c + iv.value
            elif iv.op == "scale":
                new = c * iv.value
            elif iv.op == "zero":
                new = torch.zeros_like(c)
            elif iv.op == "mean":
                new = ref[i].mean(0, keepdim=True).expand_as(c)
            else:  # resample
                generator = torch.Generator().manual_seed(iv.seed)
                rows = torch.randint(len(ref[i]), (c.shape[0],), generator=generator)
                if ref[i].shape[1:] != c.shape[1:]:
                    raise ValueError(f"reference activations at {iv.hook!r} have shape {tuple(ref[i].shape)}, the batch's {tuple(c.shape)}")
                new = ref[i][rows.to(ref[i].device)]
            act[index] = part + (new - c).unsqueeze(-1) * u
            return act

        return hook_fn

    with torch.no_grad():
        return model.run_with_hooks(tokens, fwd_hooks=[(iv.hook, make_hook(i, iv)) for i, iv in enumerate(ivs)])


@dataclass
class InterventionEffect:
    """What an intervention changed. `logits` are [batch, pos or task, classes]; `targets` optional."""

    logits_before: Tensor
    logits_after: Tensor
    predictions_changed: float  # fraction of (example, position / task) whose argmax changed
    exact_match_before: float | None = None  # fraction of examples right at every position / task
    exact_match_after: float | None = None
    target_logit_change: float | None = None  # mean change of the logit of the target
    extra: dict = field(default_factory=dict)

    @property
    def delta(self) -> Tensor:
        return self.logits_after - self.logits_before

    @property
    def max_abs_change(self) -> float:
        return float(self.delta.abs().max())


def intervention_effect(
    model: HookedModel,
    tokens: Int[Tensor, "batch tok"],
    interventions: Sequence[Intervention],
    targets: Int[Tensor, "batch pos"] | None = None,
    reference: Int[Tensor, "ref_batch tok"] | None = None,
) -> InterventionEffect:
    """Logits, predictions and (with `targets`) teacher-forced exact match before and after the intervention."""
    hooks = sorted({iv.hook for iv in interventions})
    with torch.no_grad():  # the same hooked LayerNorm path as the intervened run
        before = model.run_with_hooks(tokens, fwd_hooks=[(h, lambda act, hook: act) for h in hooks])
    after = intervene(model, tokens, interventions, reference)
    pred_before, pred_after = before.argmax(-1), after.argmax(-1)
    effect = InterventionEffect(before, after, float((pred_before != pred_after).float().mean()))
    if targets is not None:
        targets = torch.as_tensor(targets, device=before.device)
        if targets.shape != pred_before.shape:
            raise ValueError(f"targets have shape {tuple(targets.shape)}, the predictions {tuple(pred_before.shape)}")
        effect.exact_match_before = float((pred_before == targets).all(-1).float().mean())
        effect.exact_match_after = float((pred_after == targets).all(-1).float().mean())
        gather = lambda x: x.gather(-1, targets[..., None])[..., 0]  # noqa: E731
        effect.target_logit_change = float((gather(after) - gather(before)).mean())
    return effect


@dataclass
class DoseResponse:
    """One row per value: the mean change of the target logit, predictions changed, exact match."""

    values: list[float]
    target_logit_change: Float[Tensor, "n_values"]
    predictions_changed: Float[Tensor, "n_values"]
    exact_match: Float[Tensor, "n_values"]


def dose_response(
    model: HookedModel,
    tokens: Int[Tensor, "batch tok"],
    targets: Int[Tensor, "batch pos"],
    values: Sequence[float],
    op: str = "add",
    **unit: object,
) -> DoseResponse:
    """`intervention_effect` of `Intervention(op=op, value=v, **unit)` for each v in `values` (op: set / add / scale)."""
    if op not in ("set", "add", "scale"):
        raise ValueError(f"op={op!r}: a dose-response curve varies a value (set, add or scale)")
    rows = [intervention_effect(model, tokens, [Intervention(op=op, value=float(v), **unit)], targets) for v in values]
    return DoseResponse(
        values=[float(v) for v in values],
        target_logit_change=torch.tensor([r.target_logit_change for r in rows]),
        predictions_changed=torch.tensor([r.predictions_changed for r in rows]),
        exact_match=torch.tensor([r.exact_match_after for r in rows]),
    )


def difference_of_means(
    model: HookedModel,
    tokens_a: Int[Tensor, "batch_a tok"],
    tokens_b: Int[Tensor, "batch_b tok"],
    hook: str,
    position: int | None = None,
) -> Float[Tensor, "d"]:
    """mean(activation | a) - mean(activation | b) at `hook` (at one `position` of its position axis, or
    averaged over positions): a direction for `Intervention(direction=...)`."""
    if hook not in model.hook_dict:
        raise ValueError(f"hook {hook!r} does not exist in this model")
    means = []
    with torch.no_grad():
        for tokens in (tokens_a, tokens_b):
            _, cache = model.run_with_cache(tokens, names_filter=[hook])
            act = cache[hook]
            if act.ndim >= 3:
                if position is not None:
                    if not -act.shape[1] <= position < act.shape[1]:
                        raise ValueError(f"position={position} is out of range for {hook!r} ({act.shape[1]} positions)")
                    act = act[:, position]
                else:
                    act = act.mean(1)
            means.append(act.reshape(act.shape[0], -1).mean(0))
    return means[0] - means[1]
