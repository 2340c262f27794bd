"""Automatic labels: score every unit against every hypothesis by precision, recall and F1.

A unit *fires* on a row when its activation exceeds a threshold, one of ``fractions`` of the unit's
largest activation (0: any positive activation). Examples are split in two halves (``seed``): the
threshold and the hypothesis (including its position restriction) are chosen on the fit half by F1,
and precision, recall and F1 are reported on the other half. Everything is matrix products of the
boolean firing matrix with the boolean event matrix, one block per decoder position:
``TP[k] = F[:, k]^T E[:, k]`` gives every (unit, hypothesis) count at once; a hypothesis restricted to
position k counts ``TP[k]``, an unrestricted one ``sum_k TP[k]``, and firing anywhere counts against
both.

A label is only given when the F1 beats chance: an independent unit with the same firing rate reaches
``chance = 2 f e / (N (f + e))`` (f fired rows, e event rows, N rows); the label needs
``F1 - chance >= min_excess`` on both halves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from ktlens.analysis.features.hypotheses import EventSet, Hypothesis, ScalarSet

__all__ = ["LabelConfig", "UnitScores", "score_units", "correlations"]


@dataclass(frozen=True)
class LabelConfig:
    """How units are binarised and labels accepted."""

    fractions: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 0.75)  # firing thresholds, fractions of a unit's max
    fit_fraction: float = 0.5  # share of examples used to choose threshold and hypothesis
    min_excess: float = 0.2  # F1 must beat the chance F1 by this much on both halves
    min_support: int = 5  # event rows needed in the fit half for a candidate
    n_best: int = 5  # best hypotheses kept per unit
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.fractions or any(not 0.0 <= f < 1.0 for f in self.fractions):
            raise ValueError(f"fractions must be non-empty values in [0, 1), got {self.fractions}")
        if not 0.0 < self.fit_fraction < 1.0:
            raise ValueError(f"fit_fraction must be in (0, 1), got {self.fit_fraction}")
        if self.n_best < 1:
            raise ValueError(f"n_best must be >= 1, got {self.n_best}")


@dataclass
class UnitScores:
    """Scores of every unit. Candidate c = (position p, hypothesis h) is indexed ``p * H + h`` with p = 0
    for "anywhere" and p = k + 1 for "only at decoder position k".

    Per unit: ``best[u, j]`` the j-th best candidate (by fit F1, -1 when none), its ``threshold``,
    held-out ``precision``, ``recall``, ``f1`` and ``chance`` (chance F1); ``labelled[u]`` whether the
    best one beats chance. Per event: ``event_f1[c]`` the held-out F1 of the unit and threshold that
    fit it best, ``event_unit[c]`` that unit.
    """

    hypotheses: list[Hypothesis]
    n_positions: int
    best: Int[np.ndarray, "units n_best"]
    threshold: Float[np.ndarray, "units n_best"]
    precision: Float[np.ndarray, "units n_best"]
    recall: Float[np.ndarray, "units n_best"]
    f1: Float[np.ndarray, "units n_best"]
    chance: Float[np.ndarray, "units n_best"]
    labelled: np.ndarray  # [units] bool
    event_f1: Float[np.ndarray, " candidates"]
    event_unit: Int[np.ndarray, " candidates"]

    def candidate(self, c: int | np.integer) -> Hypothesis:
        """The hypothesis of candidate index c (with its position restriction)."""
        H = len(self.hypotheses)
        pos, h = divmod(int(c), H)
        base = self.hypotheses[h]
        return Hypothesis(base.variable, base.relation, base.value, None if pos == 0 else pos - 1)


def _counts(fire: Tensor, events: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """fire [n, K, U], events [n, K, H] (float) -> TP [K+1, U, H], fired [U], event rows [K+1, H]."""
    tp = torch.einsum("nku,nkh->kuh", fire, events)
    ev = events.sum(0)
    return torch.cat([tp.sum(0, keepdim=True), tp]), fire.sum((0, 1)), torch.cat([ev.sum(0, keepdim=True), ev])


def _f1(tp: Tensor, fired: Tensor, ev: Tensor, n_rows: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    denom = fired[None, :, None] + ev[:, None, :]
    f1 = 2 * tp / denom.clamp(min=1)
    chance = 2 * fired[None, :, None] * ev[:, None, :] / n_rows / denom.clamp(min=1)
    precision = tp / fired[None, :, None].clamp(min=1)
    recall = tp / ev[:, None, :].clamp(min=1)
    return f1, chance, precision, recall


@torch.no_grad()
def score_units(acts: Float[Tensor, "examples positions units"], events: EventSet, config: LabelConfig = LabelConfig(),
                progress: bool = True) -> UnitScores:
    """Labels of every unit (see the module docstring)."""
    N, K, U = acts.shape
    if events.events.shape[:2] != (N, K):
        raise ValueError(f"events cover {events.events.shape[:2]} (examples, positions), activations {(N, K)}")
    H = events.events.shape[-1]
    if H == 0:
        raise ValueError("no hypotheses to score")
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(N)
    n_fit = max(1, min(N - 1, int(round(N * config.fit_fraction))))
    halves = [torch.as_tensor(np.sort(order[:n_fit])), torch.as_tensor(np.sort(order[n_fit:]))]
    E = torch.as_tensor(events.events, dtype=torch.float32)
    top = acts.reshape(-1, U).max(0).values.clamp(min=0)  # [U]
    C = (K + 1) * H
    n_best = min(config.n_best, C)
    # running best per unit (over thresholds) and per candidate event (over units and thresholds)
    keep = {k: [] for k in ("fit", "idx", "thr", "f1", "chance", "precision", "recall", "ok")}
    ev_fit_best = torch.full((C,), -1.0)
    ev_test_f1 = torch.zeros(C)
    ev_unit = torch.full((C,), -1, dtype=torch.long)
    for frac in tqdm(config.fractions, desc="scoring units", disable=not progress, leave=False):
        thr = top * frac
        stats = []
        for idx in halves:
            fire = (acts[idx] > thr).float()
            tp, fired, ev = _counts(fire, E[idx])
            stats.append((_f1(tp, fired, ev, len(idx) * K), ev))
        (f_fit, c_fit, _, _), ev_fit = stats[0]
        (f_test, c_test, p_test, r_test), _ = stats[1]
        valid = (ev_fit >= config.min_support)[:, None, :] & (f_fit - c_fit >= config.min_excess)
        if K == 1:
            valid[1:] = False  # one position: "only at position 0" is the same event as "anywhere"
        score = torch.where(valid, f_fit, torch.full_like(f_fit, -1.0))  # [K+1, U, H]
        flat = score.permute(1, 0, 2).reshape(U, C)
        val, ix = flat.topk(n_best, dim=1)
        gather = lambda t: t.permute(1, 0, 2).reshape(U, C).gather(1, ix)
        ok = (val >= 0) & (gather(f_test) - gather(c_test) >= config.min_excess)
        for name, value in (("fit", val), ("idx", ix), ("thr", thr[:, None].expand(U, n_best)), ("f1", gather(f_test)),
                            ("chance", gather(c_test)), ("precision", gather(p_test)), ("recall", gather(r_test)),
                            ("ok", ok)):
            keep[name].append(value)
        # per event: best unit on the fit half
        ev_score = score.reshape(K + 1, U, H).permute(0, 2, 1).reshape(C, U)
        v, u = ev_score.max(1)
        better = v > ev_fit_best
        ev_fit_best = torch.where(better, v, ev_fit_best)
        ev_unit = torch.where(better, u, ev_unit)
        test_at = f_test.permute(0, 2, 1).reshape(C, U).gather(1, u[:, None])[:, 0]
        ev_test_f1 = torch.where(better, test_at, ev_test_f1)
    cat = {k: torch.cat(v, dim=1) for k, v in keep.items()}  # [U, T * n_best]
    # prefer candidates accepted on both halves, then the fit F1
    rank = cat["fit"] + 2.0 * cat["ok"].float()
    out = {k: np.zeros((U, n_best)) for k in ("thr", "f1", "chance", "precision", "recall")}
    best = np.full((U, n_best), -1, dtype=np.int64)
    labelled = np.zeros(U, dtype=bool)
    order_u = rank.argsort(dim=1, descending=True).numpy()
    idx_np, fit_np = cat["idx"].numpy(), cat["fit"].numpy()
    for u in range(U):
        seen, j = set(), 0
        for col in order_u[u]:
            c = int(idx_np[u, col])
            if fit_np[u, col] < 0 or c in seen:
                continue
            seen.add(c)
            best[u, j] = c
            for k in out:
                out[k][u, j] = float(cat[k][u, col])
            if j == 0:
                labelled[u] = bool(cat["ok"][u, col])
            j += 1
            if j == n_best:
                break
    ev_test_f1 = torch.where(ev_fit_best >= 0, ev_test_f1, torch.zeros_like(ev_test_f1))
    return UnitScores(events.hypotheses, K, best, out["thr"], out["precision"], out["recall"], out["f1"], out["chance"],
                      labelled, ev_test_f1.numpy(), ev_unit.numpy())


@torch.no_grad()
def correlations(acts: Float[Tensor, "examples positions units"], scalars: ScalarSet) -> Float[np.ndarray, "units scalars"]:
    """Pearson correlation of every unit with every scalar variable over all rows (0 where constant)."""
    U = acts.shape[-1]
    A = acts.reshape(-1, U).double()
    Z = torch.as_tensor(scalars.values.reshape(A.shape[0], -1), dtype=torch.float64)
    A = A - A.mean(0)
    Z = Z - Z.mean(0)
    a_norm, z_norm = A.norm(dim=0), Z.norm(dim=0)
    corr = (A.T @ Z) / (a_norm[:, None] * z_norm[None, :]).clamp(min=1e-12)
    corr[(a_norm < 1e-9)[:, None] | (z_norm < 1e-9)[None, :]] = 0.0
    return corr.numpy()
