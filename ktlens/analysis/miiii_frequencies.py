"""Which frequencies of Z_p each MIIII task needs (predicted from p and q alone) and which a model uses.

Axes. Over the grid of all n < p^2 the axes are ``x0 = n // p`` (the high digit) and ``x1 = n % p`` (the
low digit), whatever the model's ``digit_order`` (the convention of `ktlens.analysis.fourier`).

Prediction. ``n = p x0 + x1``, so ``n mod q = (a x0 + x1) mod q`` with ``a = p mod q``. The one-hot label
of class r is ``(1/q) sum_j exp(2 pi i j (a x0 + x1 - r) / q)``: character ``j = 1 .. q - 1`` oscillates
``j a / q`` times per step of x0 and ``j / q`` times per step of x1. On the DFT over Z_p (x = 0 .. p - 1)
such a character is a Dirichlet kernel centred at the non-integer frequency ``j p / q`` (period q does
not divide p), folded into ``1 .. (p - 1) / 2``; its power leaks mostly to the two nearest integers
(floor and ceil, at least 81% of it on each axis). So character j predicts the centre
``(fold(((j a) mod q) p / q), fold(j p / q))`` and the frequency pairs with each coordinate the floor or
ceil of its centre. ``label_power_2d`` gives the label's exact 2-D spectrum in closed form
(``|G(u)|^2 = sin^2(pi p u) / sin^2(pi u)``), independent of any FFT.

Found. ``significant_frequencies`` is the per-spectrum test that replaces a global mean + 2 std cut-off:
a frequency is found when its power is a local peak and exceeds ``median power x ln(K / alpha) / ln 2``,
the Bonferroni-corrected tail of the chi-square (2 degrees of freedom) power of a structureless
spectrum, scaled by its median (alpha = 1e-3 by default). ``task_spectra`` computes, for every task,
the 2-D power of its readout (class-centred logits over the grid) and of its neurons (MLP activations at
'=' weighted by each neuron's write to the task), and ``found_frequencies`` applies the test to the
marginals along x0 and x1 and to the 2-D map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ktlens.analysis import fourier as fa

__all__ = [
    "fold",
    "PredictedFrequencies",
    "predicted_frequencies",
    "label_power_2d",
    "significance_factor",
    "significant_frequencies",
    "significant_pairs",
    "TaskSpectra",
    "task_spectra",
    "FoundFrequencies",
    "found_frequencies",
    "matches_prediction",
    "identified_characters",
]

ALPHA = 1e-3  # family-wise false-positive rate of the per-spectrum test


def _check_pq(p: int, q: int) -> None:
    for name, v in (("p", p), ("q", q)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {v!r}")
    if p < 3 or q < 2 or q >= p or p % q == 0:
        raise ValueError(f"need primes 2 <= q < p (q not dividing p), got p={p}, q={q}")


def fold(f: float | int, p: int) -> float:
    """A frequency of Z_p folded into ``0 .. p / 2`` (k and p - k are the same real frequency)."""
    f = float(f) % p
    return min(f, p - f)


@dataclass(frozen=True)
class PredictedFrequencies:
    """Frequencies task q needs on Z_p: per character, its centre (x0, x1); the integer frequencies
    next to the centres on each axis (``x0``, ``x1``) and as pairs (``pairs``)."""

    p: int
    q: int
    centres: list[tuple[float, float]]  # one per character pair {j, q - j}, j = 1 .. (q - 1) // 2
    x0: list[int]
    x1: list[int]
    pairs: list[tuple[int, int]]
    multiplier: int = field(default=0)  # a = p mod q, the weight of x0 in n mod q


def _neighbours(f: float | int, p: int) -> set[int]:
    """The integer frequencies on either side of f, folded."""
    return {int(fold(math.floor(f), p)), int(fold(math.ceil(f), p))}


def predicted_frequencies(p: int, q: int) -> PredictedFrequencies:
    """The frequencies of Z_p that the label ``(a x0 + x1) mod q`` (``a = p mod q``) lives on."""
    _check_pq(p, q)
    a = p % q
    centres, x0, x1, pairs = [], set(), set(), set()
    for j in range(1, (q - 1) // 2 + 1 if q > 2 else 2):
        c0, c1 = (j * a) % q * p / q, j * p / q
        centres.append((round(fold(c0, p), 6), round(fold(c1, p), 6)))
        n0, n1 = _neighbours(c0, p), _neighbours(c1, p)
        x0 |= n0
        x1 |= n1
        pairs |= {(k0, k1) for k0 in n0 for k1 in n1}
    return PredictedFrequencies(p, q, centres, sorted(x0), sorted(x1), sorted(pairs), a)


def _dirichlet_power(u: np.ndarray, p: int) -> np.ndarray:
    """``|sum_{x < p} exp(2 pi i u x)|^2`` in closed form."""
    s = np.sin(np.pi * u)
    near = np.abs(s) < 1e-12
    out = np.sin(np.pi * p * u) ** 2 / np.where(near, 1.0, s) ** 2
    return np.where(near, float(p * p), out)


def label_power_2d(p: int, q: int) -> np.ndarray:
    """Power of the one-hot labels of ``n mod q`` (summed over the q classes) per frequency pair
    (k0, k1) of the orthonormal real Fourier basis over the grid: ``[p // 2 + 1, p // 2 + 1]``.

    Closed form: the complex DFT power at (k0, k1) is ``(1/q) sum_j |G(j a / q - k0 / p)|^2
    |G(j / q - k1 / p)|^2``, and the real basis pools the four sign combinations divided by p^2.
    """
    _check_pq(p, q)
    a = p % q
    K = p // 2
    j = np.arange(q)[:, None]
    k = np.arange(-K, K + 1)[None, :]
    g0 = _dirichlet_power(j * a / q - k / p, p)  # [q, 2K + 1]
    g1 = _dirichlet_power(j / q - k / p, p)
    complex_power = np.einsum("ja,jb->ab", g0, g1) / q  # [2K + 1, 2K + 1], index K = frequency 0
    out = np.zeros((K + 1, K + 1))
    for s0 in (-1, 1):
        for s1 in (-1, 1):
            out += complex_power[K + s0 * np.arange(K + 1)][:, K + s1 * np.arange(K + 1)]
    out[0, :] /= 2  # frequency 0 has one sign, counted twice above
    out[:, 0] /= 2
    return out / p**2


# ----- the per-spectrum test ------------------------------------------------------------------------
def significance_factor(n_cells: int, alpha: float = ALPHA) -> float:
    """How many times the median power a cell needs: the ``1 - alpha / n_cells`` quantile of a
    chi-square with 2 degrees of freedom over its median, ``ln(n_cells / alpha) / ln 2``."""
    if n_cells < 1 or not 0 < alpha < 1:
        raise ValueError(f"need n_cells >= 1 and 0 < alpha < 1, got n_cells={n_cells}, alpha={alpha}")
    return math.log(n_cells / alpha) / math.log(2)


def significant_frequencies(power: np.ndarray, alpha: float = ALPHA) -> list[int]:
    """Frequencies k >= 1 of a 1-D power spectrum ``power[k]`` (index 0, the constant, is left out)
    whose power exceeds ``significance_factor x median`` and is a local peak (>= both neighbours)."""
    power = np.asarray(power, dtype=np.float64)
    if power.ndim != 1 or power.size < 3:
        raise ValueError(f"a 1-D power spectrum with >= 3 entries is needed, got shape {power.shape}")
    rest = power[1:]
    med = float(np.median(rest))
    if med <= 0:
        med = float(rest[rest > 0].min()) if (rest > 0).any() else 0.0
    thr = significance_factor(rest.size, alpha) * med
    out = []
    for k in range(1, power.size):
        left = power[k - 1] if k > 1 else -np.inf
        right = power[k + 1] if k + 1 < power.size else -np.inf
        if power[k] > thr and power[k] >= left and power[k] >= right and power[k] > 0:
            out.append(k)
    return out


def significant_pairs(power: np.ndarray, alpha: float = ALPHA) -> list[tuple[int, int]]:
    """Frequency pairs (k0, k1), both >= 1, of a 2-D power map that pass the test against the median
    of all non-constant cells and are local peaks among their 8 neighbours."""
    power = np.asarray(power, dtype=np.float64)
    if power.ndim != 2 or power.shape[0] != power.shape[1] or power.shape[0] < 3:
        raise ValueError(f"a square 2-D power map is needed, got shape {power.shape}")
    cells = power.copy()
    cells[0, 0] = np.nan
    med = float(np.nanmedian(cells))
    thr = significance_factor(cells.size - 1, alpha) * med
    padded = np.pad(np.nan_to_num(cells, nan=-np.inf), 1, constant_values=-np.inf)
    out = []
    for i in range(1, power.shape[0]):
        for j in range(1, power.shape[1]):
            window = padded[i : i + 3, j : j + 3]
            if power[i, j] > thr and power[i, j] >= window.max() and power[i, j] > 0:
                out.append((i, j))
    return out


# ----- spectra of a model ---------------------------------------------------------------------------
@dataclass
class TaskSpectra:
    """2-D power per task ``[n_tasks, K + 1, K + 1]`` (axis 1: x0 = n // p, axis 2: x1 = n % p; the
    constant-constant cell zeroed) of the readout and of the task-weighted neurons, and the embedding's
    power per frequency ``[K + 1]`` (shared by every task)."""

    moduli: list[int]
    readout: np.ndarray
    neurons: np.ndarray
    embedding: np.ndarray


@torch.no_grad()
def _grid_logits(model: Any) -> np.ndarray:
    p = model.p
    was = model.training
    model.eval()
    try:
        logits = model(model.tokens_for(np.arange(p * p))).double().cpu().numpy()  # [p*p, T, C]
    finally:
        model.train(was)
    return logits


def readout_power(model: Any, logits: np.ndarray | None = None) -> np.ndarray:
    """Per task, the 2-D power of its class-centred logits over the grid: ``[n_tasks, K + 1, K + 1]``."""
    p = model.p
    logits = _grid_logits(model) if logits is None else logits
    out = []
    for t, c in enumerate(model.n_classes):
        lg = logits[:, t, :c].reshape(p, p, c)
        lg = lg - lg.mean(-1, keepdims=True)
        power = fa.frequency_power_2d(fa.fourier_2d(np.moveaxis(lg, -1, 0))).sum(0)
        power[0, 0] = 0.0
        out.append(power)
    return np.stack(out)


def task_spectra(model: Any) -> TaskSpectra:
    """Readout, neuron and embedding spectra of a MIIII model (remainders variant)."""
    if getattr(model, "model_type", None) != "miiii":
        raise ValueError(f"task_spectra needs a miiii model, got {getattr(model, 'model_type', type(model).__name__)!r}")
    if model.spec.variant != "remainders":
        raise ValueError(f"the predicted frequencies are for the remainders variant, got variant={model.spec.variant!r}")
    emb = fa.embedding_frequency_norms(model) ** 2
    return TaskSpectra(list(model.moduli), readout_power(model), fa.task_frequency_power(model), emb)


@dataclass
class FoundFrequencies:
    """What the test finds for one task: frequencies along x0 and x1 (marginals of the readout and of
    the neurons), and frequency pairs of the readout."""

    q: int
    readout_x0: list[int]
    readout_x1: list[int]
    readout_pairs: list[tuple[int, int]]
    neuron_x0: list[int]
    neuron_x1: list[int]
    neuron_pairs: list[tuple[int, int]] = field(default_factory=list)

    @property
    def pairs(self) -> list[tuple[int, int]]:
        return sorted(set(self.readout_pairs) | set(self.neuron_pairs))

    @property
    def x0(self) -> list[int]:
        return sorted(set(self.readout_x0) | set(self.neuron_x0))

    @property
    def x1(self) -> list[int]:
        return sorted(set(self.readout_x1) | set(self.neuron_x1))


def found_frequencies(spectra: TaskSpectra, alpha: float = ALPHA) -> dict[int, FoundFrequencies]:
    """The per-task test applied to every task's readout and neuron spectra."""
    out = {}
    for t, q in enumerate(spectra.moduli):
        r, n = spectra.readout[t], spectra.neurons[t]
        out[q] = FoundFrequencies(
            q,
            significant_frequencies(r.sum(1), alpha),
            significant_frequencies(r.sum(0), alpha),
            significant_pairs(r, alpha),
            significant_frequencies(n.sum(1), alpha),
            significant_frequencies(n.sum(0), alpha),
            significant_pairs(n, alpha),
        )
    return out


def matches_prediction(found: FoundFrequencies, predicted: PredictedFrequencies) -> dict[str, Any]:
    """Which found frequencies (and pairs) are predicted ones: ``{"x0": [...], "x1": [...], "pairs": [...],
    "all_predicted": bool, "any": bool}``."""
    x0 = [k for k in found.x0 if k in predicted.x0]
    x1 = [k for k in found.x1 if k in predicted.x1]
    pairs = [pr for pr in found.pairs if pr in predicted.pairs]
    every = set(found.x0) <= set(predicted.x0) and set(found.x1) <= set(predicted.x1)
    return {"x0": x0, "x1": x1, "pairs": pairs, "all_predicted": every, "any": bool(x0 or x1)}


def identified_characters(found: FoundFrequencies, predicted: PredictedFrequencies) -> list[int]:
    """The characters j (``1 .. (q - 1) // 2``) of the task whose predicted pair of frequencies (floor or
    ceil of its centre on each axis) holds a found pair of the readout: the components the model is said
    to use (the neurons' pairs also hold harmonics and products that the readout cancels)."""
    out = []
    for j, (c0, c1) in enumerate(predicted.centres, start=1):
        n0 = _neighbours(c0, predicted.p)
        n1 = _neighbours(c1, predicted.p)
        if any(k0 in n0 and k1 in n1 for k0, k1 in found.readout_pairs):
            out.append(j)
    return out
