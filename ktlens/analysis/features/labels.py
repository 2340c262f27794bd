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
from ktlens.analysis.features.stats import units_per_chunk

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


def _counts(fire: Tensor, events: Tensor) -> tuple[Tensor, Tensor]:
    """fire [n, K, U], events [n, K, H] (float) -> TP [K+1, U, H] (row 0: anywhere), fired [U]."""
    tp = torch.einsum("nku,nkh->kuh", fire, events)
    return torch.cat([tp.sum(0, keepdim=True), tp]), fire.sum((0, 1))


def _f1(tp: Tensor, fired: Tensor, ev: Tensor, n_rows: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    denom = fired[None, :, None] + ev[:, None, :]
    f1 = 2 * tp / denom.clamp(min=1)
    chance = 2 * fired[None, :, None] * ev[:, None, :] / n_rows / denom.clamp(min=1)
    precision = tp / fired[None, :, None].clamp(min=1)
    recall = tp / ev[:, None, :].clamp(min=1)
    return f1, chance, precision, recall


@torch.no_grad()
def score_units(acts: Float[Tensor, "examples positions units"], events: EventSet, config: LabelConfig = LabelConfig(),
                progress: bool = True, unit_chunk: int | None = None) -> UnitScores:
    """Labels of every unit (see the module docstring). Units are scored ``unit_chunk`` at a time (default:
    sized by `units_per_chunk`), so memory beyond ``acts`` stays bounded; the result does not depend on it."""
    N, K, U = acts.shape
    if events.events.shape[:2] != (N, K):
        raise ValueError(f"events cover {events.events.shape[:2]} (examples, positions), activations {(N, K)}")
    H = events.events.shape[-1]
    if H == 0:
        raise ValueError("no hypotheses to score")
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(N)
    n_fit = max(1, min(N - 1, int(round(N * config.fit_fraction))))
    halves = [np.sort(order[:n_fit]), np.sort(order[n_fit:])]
    E = [torch.as_tensor(events.events[idx], dtype=torch.float32) for idx in halves]  # [n_half, K, H] each
    ev = [_event_rows(e) for e in E]
    halves = [torch.as_tensor(idx) for idx in halves]
    C = (K + 1) * H
    n_best = min(config.n_best, C)
    out = {k: np.zeros((U, n_best)) for k in ("thr", "f1", "chance", "precision", "recall")}
    best = np.full((U, n_best), -1, dtype=np.int64)
    labelled = np.zeros(U, dtype=bool)
    # per candidate event: best unit on the fit half (over units and thresholds) and its held-out F1
    ev_fit_best = torch.full((C,), -1.0)
    ev_test_f1 = torch.zeros(C)
    ev_unit = torch.full((C,), -1, dtype=torch.long)
    chunk = unit_chunk or units_per_chunk(N * K, U)
    if chunk < 1:
        raise ValueError(f"unit_chunk must be >= 1, got {chunk}")
    bar = tqdm(total=-(-U // chunk) * len(config.fractions), desc="scoring units", disable=not progress, leave=False)
    for start in range(0, U, chunk):
        a = acts[..., start : start + chunk]
        u_n = a.shape[-1]
        top = a.reshape(-1, u_n).max(0).values.clamp(min=0)  # [u_n]
        keep: dict[str, list[Tensor]] = {k: [] for k in ("fit", "idx", "thr", "f1", "chance", "precision", "recall", "ok")}
        parts = [a[idx] for idx in halves]
        for frac in config.fractions:
            thr = top * frac
            stats = [_f1(*_counts((part > thr).float(), e), ev_rows, len(part) * K) for part, e, ev_rows in zip(parts, E, ev)]
            f_fit, c_fit, _, _ = stats[0]
            f_test, c_test, p_test, r_test = stats[1]
            valid = (ev[0] >= config.min_support)[:, None, :] & (f_fit - c_fit >= config.min_excess)
            if K == 1:
                valid[1:] = False  # one position: "only at position 0" is the same event as "anywhere"
            score = torch.where(valid, f_fit, torch.full_like(f_fit, -1.0))  # [K+1, u_n, H]
            flat = score.permute(1, 0, 2).reshape(u_n, C)
            val, ix = flat.topk(n_best, dim=1)
            gather = lambda t: t.permute(1, 0, 2).reshape(u_n, C).gather(1, ix)
            ok = (val >= 0) & (gather(f_test) - gather(c_test) >= config.min_excess)
            for name, value in (("fit", val), ("idx", ix), ("thr", thr[:, None].expand(u_n, n_best)), ("f1", gather(f_test)),
                                ("chance", gather(c_test)), ("precision", gather(p_test)), ("recall", gather(r_test)),
                                ("ok", ok)):
                keep[name].append(value)
            ev_score = score.permute(0, 2, 1).reshape(C, u_n)
            v, u = ev_score.max(1)
            better = v > ev_fit_best  # strict: ties keep the lower unit, as one argmax over all units would
            ev_fit_best = torch.where(better, v, ev_fit_best)
            ev_unit = torch.where(better, u + start, ev_unit)
            test_at = f_test.permute(0, 2, 1).reshape(C, u_n).gather(1, u[:, None])[:, 0]
            ev_test_f1 = torch.where(better, test_at, ev_test_f1)
            bar.update(1)
        _select_best({k: torch.cat(v, dim=1) for k, v in keep.items()}, n_best, start, best, out, labelled)
    bar.close()
    ev_test_f1 = torch.where(ev_fit_best >= 0, ev_test_f1, torch.zeros_like(ev_test_f1))
    return UnitScores(events.hypotheses, K, best, out["thr"], out["precision"], out["recall"], out["f1"], out["chance"],
                      labelled, ev_test_f1.numpy(), ev_unit.numpy())


def _event_rows(events: Tensor) -> Tensor:
    """events [n, K, H] -> event rows [K+1, H] (row 0: anywhere)."""
    e = events.sum(0)
    return torch.cat([e.sum(0, keepdim=True), e])


def _select_best(cat: dict[str, Tensor], n_best: int, start: int, best: np.ndarray, out: dict[str, np.ndarray],
                 labelled: np.ndarray) -> None:
    """Fill rows start.. of ``best``, ``out`` and ``labelled`` with each unit's n_best distinct candidates, those
    accepted on both halves first, then by fit F1 (``cat``: [units, thresholds * n_best] per field)."""
    rank = cat["fit"] + 2.0 * cat["ok"].float()
    order_u = rank.argsort(dim=1, descending=True).numpy()
    idx_np, fit_np = cat["idx"].numpy(), cat["fit"].numpy()
    for i in range(order_u.shape[0]):
        u, seen, j = start + i, set(), 0
        for col in order_u[i]:
            c = int(idx_np[i, col])
            if fit_np[i, col] < 0 or c in seen:
                continue
            seen.add(c)
            best[u, j] = c
            for k in out:
                out[k][u, j] = float(cat[k][i, col])
            if j == 0:
                labelled[u] = bool(cat["ok"][i, col])
            j += 1
            if j == n_best:
                break


@torch.no_grad()
def correlations(acts: Float[Tensor, "examples positions units"], scalars: ScalarSet) -> Float[np.ndarray, "units scalars"]:
    """Pearson correlation of every unit with every scalar variable over all rows (0 where constant)."""
    U = acts.shape[-1]
    flat = acts.reshape(-1, U)
    Z = torch.as_tensor(scalars.values.reshape(flat.shape[0], -1), dtype=torch.float64)
    Z = Z - Z.mean(0)
    z_norm = Z.norm(dim=0)
    out = torch.zeros(U, Z.shape[1], dtype=torch.float64)
    chunk = units_per_chunk(flat.shape[0], U, bytes_per_value=8)  # float64 columns
    for start in range(0, U, chunk):
        A = flat[:, start : start + chunk].double()
        A = A - A.mean(0)
        a_norm = A.norm(dim=0)
        corr = (A.T @ Z) / (a_norm[:, None] * z_norm[None, :]).clamp(min=1e-12)
        corr[(a_norm < 1e-9)[:, None] | (z_norm < 1e-9)[None, :]] = 0.0
        out[start : start + chunk] = corr
    return out.numpy()
