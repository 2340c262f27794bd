"""Per-unit statistics: density, position specificity, activation histograms, top and quantile examples."""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

__all__ = ["units_per_chunk", "density", "position_share", "top_examples", "top_rows", "quantile_examples", "quantile_rows", "histograms"]


CHUNK_BYTES = 1 << 30  # working memory for one chunk of units' columns (units are handled a chunk at a time)


def units_per_chunk(n_rows: int, n_units: int, budget_bytes: int | None = None, bytes_per_value: int = 4) -> int:
    """How many units' columns over ``n_rows`` rows fit in ``budget_bytes`` (default ``CHUNK_BYTES``); at least 1,
    at most all."""
    budget = CHUNK_BYTES if budget_bytes is None else budget_bytes
    return max(1, min(n_units, budget // max(1, bytes_per_value * n_rows)))


def _positive_counts(acts: Float[Tensor, "examples positions units"]) -> Float[Tensor, "units positions"]:
    """Rows on which each unit is positive, per position (float64)."""
    U = acts.shape[-1]
    out = torch.zeros(U, acts.shape[1], dtype=torch.float64)
    chunk = units_per_chunk(acts.shape[0] * acts.shape[1], U)
    for start in range(0, U, chunk):
        out[start : start + chunk] = (acts[..., start : start + chunk] > 0).sum(0).T.double()
    return out


def density(acts: Float[Tensor, "examples positions units"]) -> Float[np.ndarray, " units"]:
    """Share of rows on which each unit is positive."""
    return (_positive_counts(acts).sum(1) / max(1, acts.shape[0] * acts.shape[1])).numpy()


def position_share(acts: Float[Tensor, "examples positions units"]) -> Float[np.ndarray, "units positions"]:
    """Share of each unit's firing (positive rows) at each position (zeros for a unit that never fires)."""
    counts = _positive_counts(acts)  # [U, K]
    return (counts / counts.sum(1, keepdim=True).clamp(min=1)).numpy()


def top_examples(acts: Float[Tensor, "examples positions units"], unit: int, k: int = 10) -> list[tuple[int, int, float]]:
    """The k rows where ``unit`` is largest, as (example, position, activation)."""
    return top_rows(acts[..., unit].reshape(-1).numpy(), acts.shape[1], k)


def top_rows(flat: Float[np.ndarray, " rows"], n_positions: int, k: int = 10) -> list[tuple[int, int, float]]:
    """`top_examples` for one unit's activations over all rows (row = example * n_positions + position)."""
    k = min(k, flat.size)
    idx = np.argpartition(-flat, k - 1)[:k]
    idx = idx[np.argsort(-flat[idx], kind="stable")]
    return [(int(i) // n_positions, int(i) % n_positions, float(flat[i])) for i in idx]


def quantile_examples(acts: Float[Tensor, "examples positions units"], unit: int, n_bins: int = 5, per_bin: int = 3,
                      seed: int = 0) -> list[tuple[str, list[tuple[int, int, float]]]]:
    """Examples from equal-width bins of (0, max]: ``[(bin label, [(example, position, activation)])]``."""
    return quantile_rows(acts[..., unit].reshape(-1).numpy(), acts.shape[1], n_bins, per_bin, seed)


def quantile_rows(flat: Float[np.ndarray, " rows"], K: int, n_bins: int = 5, per_bin: int = 3,
                  seed: int = 0) -> list[tuple[str, list[tuple[int, int, float]]]]:
    """`quantile_examples` for one unit's activations over all rows."""
    top = float(flat.max()) if flat.size else 0.0
    if top <= 0:
        return []
    rng = np.random.default_rng(seed)
    edges = np.linspace(0, top, n_bins + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        rows = np.flatnonzero((flat > lo) & (flat <= hi))
        if rows.size == 0:
            continue
        pick = np.sort(rng.choice(rows, size=min(per_bin, rows.size), replace=False))
        out.append((f"({lo:.3g}, {hi:.3g}]: {rows.size} rows", [(int(i) // K, int(i) % K, float(flat[i])) for i in pick]))
    return out


def histograms(acts: Float[Tensor, "examples positions units"], bins: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of each unit's positive activations: counts [U, bins] over edges [U, bins + 1] from 0 to max."""
    U = acts.shape[-1]
    flat = acts.reshape(-1, U)
    top = flat.max(0).values.clamp(min=1e-6)
    counts = torch.zeros(U, bins + 1, dtype=torch.long)
    chunk = units_per_chunk(flat.shape[0], U, bytes_per_value=8)  # int64 bin indices
    for start in range(0, U, chunk):
        stop = min(U, start + chunk)
        scaled = (flat[:, start:stop] / top[start:stop] * bins).ceil().clamp(max=bins).long()  # 1..bins if > 0, else <= 0
        counts[start:stop].scatter_add_(1, scaled.T.clamp(min=0), torch.ones_like(scaled.T))
    edges = top[:, None].double() * torch.linspace(0, 1, bins + 1, dtype=torch.float64)[None]
    return counts[:, 1:].numpy(), edges.numpy()
