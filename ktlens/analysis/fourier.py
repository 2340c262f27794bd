"""Fourier analysis of MIIII models (and of the classic (a + b) mod p model).

Basis. ``fourier_basis(n)`` is the orthonormal real Fourier basis of Z_n: one row per basis vector,
``[const, cos 1, sin 1, cos 2, sin 2, ..., cos K, sin K]`` with ``K = (n - 1) // 2`` (and, for even n,
a last ``cos(pi x)`` row), so ``B @ B.T = I``. A function f on Z_n has coefficients ``B @ f``.
Frequencies are indexed ``0`` (constant) .. ``K`` (or ``n // 2``); ``frequency_norms`` pools the cos and
sin coefficient of each frequency into one norm.

What is computed (activations are read only through ``run_with_cache`` hooks):

* ``embedding_frequency_norms(model)``: the token embedding W_E of the digit tokens in the basis,
  norm per frequency ``[K + 1]``;
* ``neuron_grids(model)``: every MLP neuron's activation at '=' over the (x0, x1) digit grid,
  ``[d_mlp, p, p]`` with ``x0 = n // p`` (most significant digit) and ``x1 = n % p``;
  ``fourier_2d`` puts a grid in the basis along both axes, ``frequency_power_2d`` pools it to
  ``[..., K + 1, K + 1]`` (power of each (k0, k1) frequency pair);
* ``key_frequencies(norms, threshold=None)``: frequencies (constant excluded) whose norm exceeds
  ``threshold``, by default mean + 2 std of the non-constant norms;
* ``task_frequency_power(model)``: for each task, the neuron spectra weighted by how strongly each
  neuron writes to that task's logits; ``task_key_frequencies`` thresholds them;
* ``active_frequencies_over_training(paths)``: the number of key embedding frequencies of each saved
  checkpoint (snapshot folders ``step_NNNNNN``);
* ``progress_measures(model, data)``: Nanda et al.'s progress measures for (a + b) mod p (restricted
  loss, excluded loss, Gini coefficients of the Fourier norms of W_E and of the neuron-logit map);
* ``polar_data(p)``: the points n < p^2 at polar coordinates (r, theta) = (n, n) with divisibility flags.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Float64, Int, Real, Shaped
from torch import Tensor

__all__ = [
    "fourier_basis",
    "basis_labels",
    "n_frequencies",
    "frequency_norms",
    "key_frequencies",
    "embedding_in_fourier_basis",
    "embedding_frequency_norms",
    "neuron_grids",
    "fourier_2d",
    "frequency_power_2d",
    "neuron_key_frequencies",
    "task_frequency_power",
    "task_key_frequencies",
    "active_frequencies_over_training",
    "snapshot_step",
    "gini",
    "addition_key_frequencies",
    "restricted_and_excluded_logits",
    "progress_measures",
    "polar_data",
]


# ----- the basis ------------------------------------------------------------------------------------
def fourier_basis(n: int | np.integer) -> Float64[np.ndarray, "n n"]:
    """Orthonormal real Fourier basis of Z_n, rows ``[const, cos 1, sin 1, ..., cos K, sin K(, cos n/2)]``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"fourier_basis needs a positive integer n, got {n!r}")
    x = np.arange(n)
    rows = [np.full(n, 1 / math.sqrt(n))]
    for k in range(1, (n - 1) // 2 + 1):
        rows.append(np.cos(2 * np.pi * k * x / n) * math.sqrt(2 / n))
        rows.append(np.sin(2 * np.pi * k * x / n) * math.sqrt(2 / n))
    if n % 2 == 0:
        rows.append(np.cos(np.pi * x) / math.sqrt(n))
    return np.stack(rows)


def basis_labels(n: int) -> list[str]:
    """Names of the rows of ``fourier_basis(n)``."""
    labels = ["const"]
    for k in range(1, (n - 1) // 2 + 1):
        labels += [f"cos {k}", f"sin {k}"]
    if n % 2 == 0:
        labels.append(f"cos {n // 2}")
    return labels


def n_frequencies(n: int) -> int:
    """Number of frequencies of Z_n, the constant included (``n // 2 + 1``)."""
    return n // 2 + 1


def _row_frequency(n: int) -> Int[np.ndarray, " n"]:
    """Frequency index of each basis row."""
    return np.array([0] + [k for k in range(1, (n - 1) // 2 + 1) for _ in (0, 1)] + ([n // 2] if n % 2 == 0 else []))


def frequency_norms(coeffs: Float[np.ndarray, "..."] | Float[Tensor, "..."], axis: int = 0) -> Float64[np.ndarray, " n_freq"]:
    """Pool basis coefficients (length n along ``axis``) into one L2 norm per frequency (``n // 2 + 1``)."""
    c = np.moveaxis(np.asarray(coeffs, dtype=np.float64), axis, 0)
    n = c.shape[0]
    freq = _row_frequency(n)
    sq = (c**2).reshape(n, -1).sum(1)
    out = np.zeros(n_frequencies(n))
    np.add.at(out, freq, sq)
    return np.sqrt(out)


def key_frequencies(norms: Sequence[float] | Float[np.ndarray, " n_freq"], threshold: float | None = None, include_constant: bool = False) -> list[int]:
    """Frequencies whose norm exceeds ``threshold`` (default: mean + 2 std of the non-constant norms).

    ``norms[0]`` is the constant term and is skipped unless ``include_constant``.
    """
    norms = np.asarray(norms, dtype=np.float64)
    rest = norms[1:]
    if threshold is None:
        threshold = float(rest.mean() + 2 * rest.std())
    start = 0 if include_constant else 1
    return [int(k) for k in range(start, len(norms)) if norms[k] > threshold]


# ----- embeddings -----------------------------------------------------------------------------------
def _digit_count(model: Any) -> int:
    return int(model.p)


def embedding_in_fourier_basis(model: Any, table: int = 0) -> Float64[np.ndarray, "p d_model"]:
    """The digit-token embedding in the Fourier basis of Z_p: ``B @ W_E[:p]``, shape [p, d_model].

    ``table=1`` reads the second digit's rows ``W_E[p:2p]`` of a model with ``digit_tokens="separate"``.
    """
    p = _digit_count(model)
    n_tables = 2 if getattr(model.spec, "digit_tokens", "shared") == "separate" else 1
    if table not in range(n_tables):
        raise ValueError(f"table={table} does not exist: this model has {n_tables} digit embedding table(s)")
    W_E = model.embed.W_E.detach().cpu().double().numpy()[table * p : (table + 1) * p]
    return fourier_basis(p) @ W_E


def embedding_frequency_norms(model: Any, table: int = 0) -> Float64[np.ndarray, " n_freq"]:
    """Norm of the digit embedding per frequency of Z_p, shape [(p - 1) / 2 + 1] (index 0 = constant)."""
    return frequency_norms(embedding_in_fourier_basis(model, table), axis=0)


# ----- neurons --------------------------------------------------------------------------------------
def _grid_tokens(model: Any) -> Int[Tensor, "p_squared 3"]:
    p = _digit_count(model)
    return model.tokens_for(np.arange(p * p))


@torch.no_grad()
def neuron_grids(model: Any, layer: int = -1, hook: str = "mlp.hook_post") -> Float64[np.ndarray, "d_mlp p p"]:
    """Activation at '=' of every MLP neuron over the digit grid: [d_mlp, p (x0), p (x1)]."""
    p = _digit_count(model)
    layer = layer % model.cfg.n_layers
    name = f"blocks.{layer}.{hook}"
    was_training = model.training
    model.eval()
    try:
        _, cache = model.run_with_cache(_grid_tokens(model), names_filter=name)
    finally:
        model.train(was_training)
    acts = cache[name][:, -1].cpu().double().numpy()  # [p*p, d_mlp], row n = x0 * p + x1
    return acts.T.reshape(-1, p, p)


def fourier_2d(grid: Real[np.ndarray, "*batch n n"]) -> Float64[np.ndarray, "*batch n n"]:
    """A grid [..., n, n] in the Fourier basis along both axes: ``B @ grid @ B.T``."""
    grid = np.asarray(grid, dtype=np.float64)
    B = fourier_basis(grid.shape[-1])
    return B @ grid @ B.T  # batched matmuls (an einsum over three operands is ~50x slower here)


def frequency_power_2d(coeffs: Real[np.ndarray, "*batch n n"]) -> Float64[np.ndarray, "*batch n_freq n_freq"]:
    """Pool 2-D basis coefficients [..., n, n] into power per frequency pair [..., n//2+1, n//2+1]."""
    coeffs = np.asarray(coeffs, dtype=np.float64)
    n = coeffs.shape[-1]
    freq = _row_frequency(n)
    K = n_frequencies(n)
    onehot = np.zeros((n, K))
    onehot[np.arange(n), freq] = 1.0
    return onehot.T @ (coeffs**2) @ onehot


def neuron_key_frequencies(power: Real[np.ndarray, "neuron n_freq n_freq"], threshold: float | None = None) -> list[list[tuple[int, int]]]:
    """For each neuron, the frequency pairs (k0, k1) (not (0, 0)) whose norm exceeds the threshold
    (default: mean + 2 std of that neuron's non-constant pair norms). ``power``: [d_mlp, K+1, K+1]."""
    out = []
    for pw in np.asarray(power):
        norms = np.sqrt(pw).ravel()
        rest = norms[1:]
        thr = float(rest.mean() + 2 * rest.std()) if threshold is None else threshold
        K = pw.shape[-1]
        out.append([(int(i // K), int(i % K)) for i in range(1, norms.size) if norms[i] > thr])
    return out


def _neuron_task_weights(model: Any, layer: int = -1) -> Float64[np.ndarray, "n_tasks d_mlp"]:
    """How strongly each neuron writes to each task's logits: [n_tasks, d_mlp] norms of the
    class-centred direct path ``W_out[i] @ W_U[t]`` over the task's valid classes."""
    block = model.blocks[layer]
    W_out = block.mlp.W_out.detach().cpu().double()  # [d_mlp, d_model]
    W_U = model.unembed.W_U.detach().cpu().double()  # [T, d_model, C]
    out = []
    for t, c in enumerate(model.n_classes):
        W_L = W_out @ W_U[t, :, :c]  # [d_mlp, c]
        W_L = W_L - W_L.mean(1, keepdim=True)
        out.append(W_L.norm(dim=1).numpy())
    return np.stack(out)


def task_frequency_power(
    model: Any, grids: Float[np.ndarray, "d_mlp p p"] | None = None
) -> Float64[np.ndarray, "n_tasks n_freq n_freq"]:
    """Per task, the neuron 2-D spectra weighted by each neuron's squared write to that task:
    [n_tasks, K+1, K+1] (K = (p - 1) / 2), the constant-constant term zeroed."""
    grids = neuron_grids(model) if grids is None else grids
    power = frequency_power_2d(fourier_2d(grids))  # [d_mlp, K+1, K+1]
    w = _neuron_task_weights(model) ** 2  # [T, d_mlp]
    out = (w @ power.reshape(len(power), -1)).reshape(len(w), *power.shape[1:])
    out[:, 0, 0] = 0.0
    return out


def task_key_frequencies(model: Any, threshold: float | None = None, grids: Float[np.ndarray, "d_mlp p p"] | None = None) -> dict[int, dict[str, list[int]]]:
    """Key frequencies of each task q: ``{q: {"x0": [...], "x1": [...]}}`` from the marginal norms of
    ``task_frequency_power`` along each digit axis (threshold: mean + 2 std unless given)."""
    power = task_frequency_power(model, grids)
    out = {}
    for q, pw in zip(model.moduli, power):
        out[int(q)] = {
            "x0": key_frequencies(np.sqrt(pw.sum(1)), threshold),
            "x1": key_frequencies(np.sqrt(pw.sum(0)), threshold),
        }
    return out


# ----- over training --------------------------------------------------------------------------------
def snapshot_step(path: str | Path) -> int:
    """The step of a snapshot folder named ``step_NNNNNN`` (or -1)."""
    match = re.search(r"step_(\d+)", Path(path).name)
    return int(match.group(1)) if match else -1


def active_frequencies_over_training(paths: Iterable[str | Path], threshold: float | None = None) -> list[dict[str, Any]]:
    """For each checkpoint folder (sorted by step): step, embedding frequency norms, key frequencies."""
    from ktlens.checkpoint import load_checkpoint

    rows = []
    for path in sorted(paths, key=snapshot_step):
        norms = embedding_frequency_norms(load_checkpoint(path))
        keys = key_frequencies(norms, threshold)
        rows.append({"step": snapshot_step(path), "norms": norms.tolist(), "key_frequencies": keys, "n_active": len(keys)})
    return rows


# ----- progress measures for (a + b) mod p ----------------------------------------------------------
def gini(values: Sequence[float | int] | Real[np.ndarray, "*shape"]) -> float:
    """Gini coefficient of non-negative values (0: all equal, -> 1: one value holds everything)."""
    x = np.sort(np.abs(np.asarray(values, dtype=np.float64)).ravel())
    n = x.size
    if n == 0 or x.sum() == 0:
        return 0.0
    cum = np.cumsum(x)
    return float((n + 1 - 2 * (cum / cum[-1]).sum()) / n)


def _addition_logits(model: Any) -> Float64[Tensor, "p_squared p"]:
    p = model.p
    with torch.no_grad():
        was = model.training
        model.eval()
        logits = model(model.tokens_for(np.arange(p * p)))[:, 0, :p].double()  # [p*p, p]
        model.train(was)
    return logits


def _sum_directions(p: int, freqs: Sequence[int]) -> Float64[Tensor, "two_n_freqs p_squared"]:
    """Orthonormal vectors cos(w_k (a+b)), sin(w_k (a+b)) over the p*p grid (n = a p + b): [2F, p*p]."""
    a, b = np.divmod(np.arange(p * p), p)
    rows = []
    for k in freqs:
        angle = 2 * np.pi * k * (a + b) / p
        for v in (np.cos(angle), np.sin(angle)):
            rows.append(v / np.linalg.norm(v))
    return torch.as_tensor(np.array(rows).reshape(-1, p * p))


def addition_key_frequencies(model: Any, threshold: float | None = None) -> list[int]:
    """Key frequencies of an (a + b) mod p model: how much of the (centred) logits lies along
    cos/sin(w_k (a + b)) for each k, thresholded at mean + 2 std unless given."""
    p = model.p
    logits = _addition_logits(model)
    centred = logits - logits.mean(0, keepdim=True)
    dirs = _sum_directions(p, range(1, (p - 1) // 2 + 1))  # [2K, p*p]
    proj = (dirs @ centred).pow(2).sum(1).reshape(-1, 2).sum(1).sqrt().numpy()  # [K]
    return key_frequencies(np.concatenate([[0.0], proj]), threshold)


def restricted_and_excluded_logits(
    model: Any, freqs: Sequence[int]
) -> tuple[Float64[Tensor, "p_squared p"], Float64[Tensor, "p_squared p"], Float64[Tensor, "p_squared p"]]:
    """(logits, restricted, excluded) over all p*p pairs: restricted keeps only the mean and the
    cos/sin(w_k (a + b)) components of the key frequencies, excluded removes exactly those."""
    logits = _addition_logits(model)
    mean = logits.mean(0, keepdim=True)
    dirs = _sum_directions(model.p, freqs)
    along = dirs.T @ (dirs @ (logits - mean))
    return logits, mean + along, logits - along


def progress_measures(model: Any, data: Any, freqs: Sequence[int] | None = None) -> dict[str, Any]:
    """Nanda et al. (2023) progress measures for an (a + b) mod p model.

    ``restricted_loss`` (all p^2 pairs, logits restricted to the key frequencies), ``excluded_loss``
    (training pairs, key frequencies removed), ``train_loss`` / ``test_loss``, ``gini_embed`` (Gini
    coefficient of the Fourier norms of W_E), ``gini_neuron_logit`` (same, of W_L = W_out W_U over the
    output classes) and the key frequencies used.
    """
    if model.spec.variant != "addition":
        raise ValueError(f"progress measures are defined for the addition variant, got variant={model.spec.variant!r}")
    freqs = list(addition_key_frequencies(model) if freqs is None else freqs)
    logits, restricted, excluded = restricted_and_excluded_logits(model, freqs)
    target = data.targets[:, 0]
    tr, te = data.train_idx, data.test_idx
    W_L = (model.blocks[-1].mlp.W_out.detach().double() @ model.unembed.W_U[0].detach().double()).numpy()  # [d_mlp, p]
    return {
        "key_frequencies": freqs,
        "train_loss": F.cross_entropy(logits[tr], target[tr]).item(),
        "test_loss": F.cross_entropy(logits[te], target[te]).item(),
        "restricted_loss": F.cross_entropy(restricted, target).item(),
        "excluded_loss": F.cross_entropy(excluded[tr], target[tr]).item(),
        "gini_embed": gini(embedding_frequency_norms(model)[1:]),
        "gini_neuron_logit": gini(frequency_norms(fourier_basis(model.p) @ W_L.T, axis=0)[1:]),
    }


# ----- polar plot -----------------------------------------------------------------------------------
def polar_data(p: int, moduli: Sequence[int] = (2, 3, 5, 7)) -> dict[str, Shaped[np.ndarray, " p_squared"]]:
    """Points n < p^2 at (r, theta) = (n, n radians): ``n``, ``r``, ``theta``, ``x``, ``y`` and
    ``div_{q}`` (bool: q divides n) for each q, plus ``is_prime``."""
    n = np.arange(p * p)
    out: dict[str, Shaped[np.ndarray, " p_squared"]] = {"n": n, "r": n.astype(float), "theta": n.astype(float)}
    out["x"], out["y"] = n * np.cos(n), n * np.sin(n)
    for q in moduli:
        out[f"div_{q}"] = n % q == 0
    sieve = np.ones(p * p, dtype=bool)
    sieve[:2] = False
    for i in range(2, int(math.isqrt(p * p - 1)) + 1):
        if sieve[i]:
            sieve[i * i :: i] = False
    out["is_prime"] = sieve
    return out
