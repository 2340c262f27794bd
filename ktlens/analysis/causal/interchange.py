"""Subspace interchange at a hook over several positions at once, DAS, and interchange accuracy.

TransformerLens' ``transformer_lens.tools.analysis.interchange`` supplies the pieces used here: the
orthonormal ``LearnedSubspace``, ``SubspaceInterchange`` (``h + ((h_src - h) B) B^T``), ``NormMatchedPlacebo``
and ``random_basis``. Its ``fit_das`` / ``run_with_intervention`` read one position per example and one class
per pair; a ktlens decoder needs the same subspace swapped at several positions at once (every label
position) and a whole label sequence as the target. This module is that adapter: ``positions`` is a tuple of
indices of the hook's position axis (``None``: the activation has none), the intervention is applied to the
``[batch, n_positions, d]`` slice (both TransformerLens interventions act on the last axis only), and the loss
is the cross-entropy summed over every target position. ``target_positions`` (indices of the logits' position
axis; ``None``: all of them) says which output positions the targets are for: a K-theory decoder with scratch
positions is scored at its count positions only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens.tools.analysis.interchange import LearnedSubspace, SubspaceInterchange

from ktlens.validation import check_int, check_real

__all__ = ["FitConfig", "collect", "run_interchange", "fit_subspace", "interchange_hits", "interchange_accuracy",
           "subspace_cosine"]

Positions = tuple[int, ...] | None
Intervention = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class FitConfig:
    """DAS training: subspace ``rank``, Adam ``steps`` of ``batch_size`` pairs at learning rate ``lr``, ``seed``."""

    rank: int = 1
    steps: int = 150
    batch_size: int = 64
    lr: float = 1e-2
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("rank", self.rank, 1)
        check_int("steps", self.steps, 1)
        check_int("batch_size", self.batch_size, 1)
        check_real("lr", self.lr, 0.0, 10.0, low_open=True)
        check_int("seed", self.seed, 0)


def _check(model, hook: str) -> None:
    if hook not in model.hook_dict:
        raise ValueError(f"hook {hook!r} does not exist in this model")
    if model.training:
        raise ValueError("interchange interventions need the model in eval mode (call model.eval())")


def _take(act: Tensor, positions: Positions) -> Tensor:
    if positions is None:
        return act
    if act.ndim < 3:
        raise ValueError(f"positions={positions} given, but the activation {tuple(act.shape)} has no position axis")
    bad = [p for p in positions if not -act.shape[1] <= p < act.shape[1]]
    if bad:
        raise ValueError(f"position {bad[0]} is out of range for an activation with {act.shape[1]} positions")
    return act[:, list(positions)]


def _put(act: Tensor, positions: Positions, new: Tensor) -> Tensor:
    if positions is None:
        return new
    out = act.clone()
    out[:, list(positions)] = new
    return out


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


@torch.no_grad()
def collect(model, hook: str, tokens: Tensor, positions: Positions, batch_size: int = 512) -> Tensor:
    """Activations at ``hook`` (at ``positions``) for every row of ``tokens``: ``[batch, (n_positions,) d]``."""
    _check(model, hook)
    out = []
    for idx in _chunks(len(tokens), batch_size):
        store: list[Tensor] = []
        model.run_with_hooks(tokens[idx], fwd_hooks=[(hook, lambda act, hook: store.append(_take(act, positions)))])
        if len(store) != 1:
            raise RuntimeError(f"{hook} fired {len(store)} times in one forward pass")
        out.append(store[0])
    return torch.cat(out)


def run_interchange(model, hook: str, positions: Positions, intervention: Intervention, base_tokens: Tensor,
                    source_acts: Tensor) -> Tensor:
    """Logits on ``base_tokens`` with ``intervention(base_act, source_act)`` written at ``hook``/``positions``
    (differentiable in the intervention's parameters)."""
    calls = 0

    def fn(act: Tensor, hook) -> Tensor:
        nonlocal calls
        calls += 1
        part = _take(act, positions)
        return _put(act, positions, intervention(part, source_acts.to(act.device, act.dtype)))

    logits = model.run_with_hooks(base_tokens, fwd_hooks=[(hook, fn)])
    if calls != 1:
        raise RuntimeError(f"{hook} fired {calls} times in one forward pass")
    return logits


def _at(logits: Tensor, target_positions: Positions) -> Tensor:
    """The logits at ``target_positions`` (all of them when None)."""
    if target_positions is None:
        return logits
    bad = [p for p in target_positions if not -logits.shape[1] <= p < logits.shape[1]]
    if bad:
        raise ValueError(f"target position {bad[0]} is out of range for logits with {logits.shape[1]} positions")
    return logits[:, list(target_positions)]


def _loss(logits: Tensor, targets: Tensor) -> Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def fit_subspace(model, hook: str, positions: Positions, base_tokens: Int[Tensor, "n tok"], source_tokens: Int[Tensor, "n tok"],
                 targets: Int[Tensor, "n ..."], cfg: FitConfig, progress: bool = False,
                 desc: str = "DAS", target_positions: Positions = None) -> tuple[LearnedSubspace, list[float]]:
    """DAS: an orthonormal ``[d, rank]`` basis whose interchange (source -> base) makes the frozen model output
    ``targets`` at ``target_positions`` (cross-entropy over every target position; None: every output position).
    Returns the subspace and the loss per step."""
    from tqdm.auto import tqdm

    _check(model, hook)
    if not len(base_tokens) == len(source_tokens) == len(targets):
        raise ValueError(f"base ({len(base_tokens)}), source ({len(source_tokens)}) and targets ({len(targets)}) differ in length")
    source_acts = collect(model, hook, source_tokens, positions)
    d = source_acts.shape[-1]
    if cfg.rank > d:
        raise ValueError(f"rank={cfg.rank} is larger than the hook's width {d}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        subspace = LearnedSubspace(d, cfg.rank)
        order = torch.randint(len(targets), (cfg.steps, min(cfg.batch_size, len(targets))))
    step = SubspaceInterchange(subspace)
    optimizer = torch.optim.Adam(subspace.parameters(), lr=cfg.lr)
    flags = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    losses = []
    try:
        for idx in tqdm(order, desc=desc, leave=False, disable=not progress):
            optimizer.zero_grad()
            logits = run_interchange(model, hook, positions, step, base_tokens[idx], source_acts[idx])
            loss = _loss(_at(logits, target_positions), targets[idx])
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
    return subspace.eval(), losses


@torch.no_grad()
def interchange_hits(model, hook: str, positions: Positions, intervention: Intervention | None, base_tokens: Tensor,
                     source_acts: Tensor, targets: Tensor, batch_size: int = 512,
                     target_positions: Positions = None) -> Bool[Tensor, "n n_targets"]:
    """Whether each pair's argmax at each target position (``target_positions``; None: every output position)
    is its target under the intervention (``None``: the base run alone): ``[n, n_targets]``."""
    _check(model, hook)
    hits = []
    for idx in _chunks(len(base_tokens), batch_size):
        if intervention is None:
            logits = model(base_tokens[idx])
        else:
            logits = run_interchange(model, hook, positions, intervention, base_tokens[idx], source_acts[idx])
        hits.append(_at(logits, target_positions).argmax(-1) == targets[idx].to(logits.device))
    return torch.cat(hits).reshape(len(base_tokens), -1)


@torch.no_grad()
def interchange_accuracy(model, hook: str, positions: Positions, intervention: Intervention | None, base_tokens: Tensor,
                         source_acts: Tensor, targets: Tensor, batch_size: int = 512,
                         target_positions: Positions = None) -> tuple[float, np.ndarray]:
    """(IIA, IIA per target position): the share of pairs whose every target position is predicted (argmax)
    under the intervention, and the share per position (``[]`` for one target per pair).
    ``intervention=None``: the base run alone (what the model says without a swap). ``target_positions``: the
    output positions the targets are for (None: all of them)."""
    hit = interchange_hits(model, hook, positions, intervention, base_tokens, source_acts, targets, batch_size,
                           target_positions).float()
    per_position = hit.mean(0).cpu().numpy() if targets.ndim > 1 else np.zeros(0)
    return float(hit.all(1).float().mean()), per_position


def subspace_cosine(a: Float[Tensor, "d k"], b: Float[Tensor, "d k2"]) -> float:
    """How far the span of ``b`` lies inside the span of ``a``: the mean squared cosine of the principal
    angles, ``||A^T B||_F^2 / rank(B)`` for orthonormal ``A``, ``B`` (1: contained, 0: orthogonal)."""
    a = torch.linalg.qr(a.detach().float())[0]
    b = torch.linalg.qr(b.detach().float())[0]
    return float((a.T @ b).pow(2).sum() / b.shape[1])
