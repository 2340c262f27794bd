"""Coverage of the task's events by a set of units, and periodic units of MIIII models.

Coverage (Karvonen et al. 2024): for each variable-value event, the best held-out F1 any unit reaches
(anywhere or at one decoder position); the share of events covered at F1 >= 0.9.

Periodic units (MIIII): a unit's activation over the (x0, x1) digit grid is put in the 2-D Fourier
basis (`ktlens.analysis.fourier`); a unit whose strongest non-constant frequency pair holds at least
``min_share`` of its non-constant power is periodic with that pair. The task q whose residues it
separates is the one whose residue n mod q explains most of the unit's variance (eta^2, the share of
variance between the q residue classes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from jaxtyping import Float

from ktlens.analysis.features.labels import UnitScores

__all__ = ["Coverage", "coverage", "event_best", "PeriodicUnits", "periodic_units"]


@dataclass
class Coverage:
    """Per event (unrestricted hypothesis h): best held-out F1, the unit and the candidate reaching it."""

    events: list[str]
    best_f1: Float[np.ndarray, " events"]
    unit: np.ndarray
    candidate: np.ndarray
    threshold: float = 0.9

    @property
    def share(self) -> float:
        return float((self.best_f1 >= self.threshold).mean()) if len(self.events) else 0.0

    def to_json(self) -> dict:
        return {"n_events": len(self.events), "threshold": self.threshold, "share_covered": self.share,
                "n_covered": int((self.best_f1 >= self.threshold).sum()),
                "events": {e: round(float(f), 4) for e, f in zip(self.events, self.best_f1)}}


def coverage(scores: UnitScores, threshold: float = 0.9) -> Coverage:
    """The best F1 over units and position restrictions of every event (see the module docstring)."""
    H, K = len(scores.hypotheses), scores.n_positions
    f1 = scores.event_f1.reshape(K + 1, H)
    pos = f1.argmax(0)
    cand = pos * H + np.arange(H)
    return Coverage([h.text() for h in scores.hypotheses], f1.max(0), scores.event_unit[cand], cand, threshold)


def event_best(scores: UnitScores, text: str, positions: list[int] | None = None) -> dict:
    """Best held-out F1 for the event ``text`` (e.g. ``"n_2 == 1"``) over the units, anywhere or at one of
    ``positions``: ``{"f1", "unit", "position"}`` (position None: the unrestricted hypothesis)."""
    H = len(scores.hypotheses)
    names = [x.text() for x in scores.hypotheses]
    if text not in names:
        raise ValueError(f"no event {text!r} among the {H} hypotheses")
    h = names.index(text)
    f1 = scores.event_f1.reshape(scores.n_positions + 1, H)[:, h]
    units = scores.event_unit.reshape(scores.n_positions + 1, H)[:, h]
    cands = range(scores.n_positions + 1) if positions is None else [k + 1 for k in positions]
    k = max(cands, key=lambda c: f1[c])
    return {"f1": round(float(f1[k]), 4), "unit": int(units[k]), "position": None if k == 0 else k - 1}


@dataclass
class PeriodicUnits:
    """``frequency[u]`` the strongest (k0, k1) pair, ``share[u]`` its share of non-constant power,
    ``periodic[u]`` share >= min_share, ``task_q[u]`` and ``eta2[u]`` the best-separated task and its eta^2;
    ``power[u]`` the [K+1, K+1] spectrum."""

    frequency: np.ndarray
    share: np.ndarray
    periodic: np.ndarray
    task_q: np.ndarray
    eta2: np.ndarray
    power: np.ndarray


def periodic_units(grids: Float[np.ndarray, "units p p"], moduli: list[int], min_share: float = 0.25) -> PeriodicUnits:
    """Periodicity of every unit's grid over (x0, x1) (x0 the high digit, n = x0 p + x1)."""
    from ktlens.analysis.fourier import fourier_2d, frequency_power_2d

    grids = np.asarray(grids, dtype=np.float64)
    U, p, _ = grids.shape
    power = frequency_power_2d(fourier_2d(grids))
    flat = power.reshape(U, -1).copy()
    flat[:, 0] = 0.0
    total = flat.sum(1)
    best = flat.argmax(1)
    share = np.where(total > 1e-12, flat[np.arange(U), best] / np.maximum(total, 1e-300), 0.0)
    Kp = power.shape[-1]
    freq = np.stack([best // Kp, best % Kp], axis=1)
    n = np.arange(p * p)
    acts = grids.reshape(U, -1)
    centered = acts - acts.mean(1, keepdims=True)
    var = (centered**2).sum(1)
    eta = np.zeros((U, len(moduli)))
    for j, q in enumerate(moduli):
        onehot = np.eye(q)[n % q]  # [p^2, q]
        sums = centered @ onehot
        eta[:, j] = (sums**2 / onehot.sum(0)).sum(1) / np.maximum(var, 1e-300)
    eta[var < 1e-12] = 0.0
    jbest = eta.argmax(1)
    return PeriodicUnits(freq, share, (share >= min_share) & (total > 1e-12), np.asarray(moduli)[jbest],
                         eta[np.arange(U), jbest], power)
