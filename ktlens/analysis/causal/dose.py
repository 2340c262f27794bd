"""The reference's planned experiment: move the MLP activations along the direction that encodes the capped
count N (the number of m in 1..re divisible by e' and not by p) from N_true to N_true + delta, and measure the
logits of every count position.

On triples with u = 1, N is the causal model's ``capped`` and Algorithm 1 says ``n_1 = (H_1 - G_1) + N``:
setting N to N + delta moves n_1 (the Z/p count) by exactly delta and leaves every other count alone.

Triples come from the model's domain (``exact_triples``); with a scratchpad the decoder input holds their scratch
values and the n_1 position comes after the scratch positions (``logit_change`` covers every decoder position,
scratch ones included; they precede n_1, so a change at the n_1 position cannot reach them).

Directions at ``hook`` (default: the last block's MLP hidden layer) at the decoder position that writes n_1:
``probe`` (ridge regression of N on the activation, the weight vector) and ``mean_difference`` (mean
activation of the triples with N above the median minus below). Each is calibrated by regressing the coordinate
``c = act . w`` on N (``c ~ a + b N``); the intervention sets ``c`` to ``c + b delta`` (what the fit says N +
delta would read, keeping each example's residual from the fit) and leaves the orthogonal complement as it was. Read-outs per delta: the mean shift of the argmax at the n_1
position (the causal model: delta), the share of examples whose prediction there equals the causal model's
``n_1 + delta``, and the mean absolute logit change at every decoder position.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from ktlens.analysis.causal.interchange import collect
from ktlens.analysis.causal.ktheory import exact_triples
from ktlens.tasks import ktheory_causal as kc

__all__ = ["DoseCurve", "capped_directions", "dose_response_capped"]

METHODS = ("probe", "mean_difference")


@dataclass
class DoseCurve:
    """One direction's dose-response (module docstring); ``logit_change`` is ``[delta, position]``."""

    method: str
    hook: str
    position: int
    deltas: list[int]
    mean_shift: list[float]
    causal_shift: list[int]
    agreement: list[float]
    logit_change: list[list[float]]
    target_logit_change: list[float]
    slope: float  # b in c ~ a + b N
    r2: float  # of that fit
    n_examples: int

    def to_dict(self) -> dict:
        return asdict(self)


def _u_one(model, triples: np.ndarray, n_max: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    v = kc.intermediates(triples[:, 0], triples[:, 1], triples[:, 2])
    keep = triples[v["u"] == 1]
    rng = np.random.default_rng(seed)
    keep = keep[rng.permutation(len(keep))[:n_max]]
    w = kc.intermediates(keep[:, 0], keep[:, 1], keep[:, 2])
    return keep, kc.capped_from(keep[:, 0], w["u"], w["e_prime"], w["re"])


def capped_directions(acts: torch.Tensor, n: np.ndarray) -> dict[str, torch.Tensor]:
    """Unit directions for N from activations ``[examples, d]``: ``probe`` and ``mean_difference``."""
    x = acts.double()
    y = torch.as_tensor(n, dtype=torch.float64)
    xc, yc = x - x.mean(0), y - y.mean()
    gram = xc.T @ xc
    ridge = 1e-2 * torch.trace(gram) / gram.shape[0]  # ridge: without it the weights fit noise directions
    w = torch.linalg.solve(gram + ridge * torch.eye(gram.shape[0], dtype=gram.dtype), xc.T @ yc)
    hi = y > y.median()
    md = x[hi].mean(0) - x[~hi].mean(0)
    return {"probe": (w / w.norm()).float(), "mean_difference": (md / md.norm()).float()}


@torch.no_grad()
def dose_response_capped(model, hook: str | None = None, deltas=(-32, -16, -8, -4, -2, -1, 0, 1, 2, 4, 8, 16, 32), n_max: int = 1000, seed: int = 0,
                         methods=METHODS) -> list[DoseCurve]:
    """Dose-response curves for each direction method (module docstring) on up to ``n_max`` exactly labelled
    triples with u = 1."""
    hook = hook or f"blocks.{model.cfg.n_layers - 1}.mlp.hook_post"
    if hook not in model.hook_dict:
        raise ValueError(f"hook {hook!r} does not exist in this model")
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"direction method {bad[0]!r} must be one of {METHODS}")
    pos = model.n_scratch + int(model.to_model_order(np.arange(model.seq_len))[0])  # the decoder position that writes n_1
    triples, n_cap = _u_one(model, exact_triples(model), n_max, seed)
    tokens = model.make_batch(triples[:, 0], triples[:, 1], triples[:, 2])
    counts = kc.counterfactual((triples[:, 0], triples[:, 1], triples[:, 2]), length=model.seq_len)
    acts = collect(model, hook, tokens, (int(pos),))[:, 0]
    dirs = capped_directions(acts, n_cap)
    base_logits = model(tokens)
    base_pred = base_logits.argmax(-1)[:, pos]
    out = []
    for method in methods:
        w = dirs[method]
        c = acts @ w
        design = np.stack([np.ones(len(n_cap)), n_cap], axis=1)
        (a, b), *_ = np.linalg.lstsq(design, c.double().numpy(), rcond=None)
        fit = design @ np.array([a, b])
        r2 = 1 - ((c.numpy() - fit) ** 2).sum() / ((c.numpy() - c.numpy().mean()) ** 2).sum()
        shifts, agree, dlog, tlog = [], [], [], []
        for d in deltas:
            def hook_fn(act, hook, shift=float(b * d)):
                act = act.clone()
                act[:, pos] = act[:, pos] + shift * w
                return act

            logits = model.run_with_hooks(tokens, fwd_hooks=[(hook, hook_fn)])
            pred = logits.argmax(-1)[:, pos]
            want = torch.as_tensor(counts[:, 0] + d)
            shifts.append(float((pred - base_pred).float().mean()))
            agree.append(float((pred == want).float().mean()))
            dlog.append((logits - base_logits).abs().mean((0, 2)).tolist())
            ok = (want >= 0) & (want <= model.max_count)
            idx = want.clamp(0, model.max_count)
            gain = logits[torch.arange(len(idx)), pos, idx] - base_logits[torch.arange(len(idx)), pos, idx]
            tlog.append(float(gain[ok].mean()))
        out.append(DoseCurve(method, hook, int(pos), [int(d) for d in deltas], shifts, [int(d) for d in deltas], agree,
                             dlog, tlog, float(b), float(r2), len(triples)))
    return out
