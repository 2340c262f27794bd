"""Seeded uniform samples of a K-theory model's trained domain.

The draw is the grid draw every analysis has always made (primes, then r in 1..r_max, then e in 1..e_max,
each a vector of n), with the rows outside the domain (r*e > re_max) drawn again until every row lies in
it: uniform over the domain, and for a model over the whole grid exactly the old sample.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Int

from ktlens.models.base import HookedModel

__all__ = ["in_domain", "sample_triples"]


def in_domain(model: HookedModel, p: int, r: int, e: int) -> bool:
    """Whether (p, r, e) lies in the model's trained domain (no ValueError)."""
    return bool(model.spec.contains(p, r, e))


def sample_triples(
    model: HookedModel, n: int, rng: np.random.Generator
) -> tuple[Int[np.ndarray, " n"], Int[np.ndarray, " n"], Int[np.ndarray, " n"]]:
    """n triples (p, r, e) drawn uniformly (with replacement) from the model's domain with `rng`."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n={n!r} must be a positive integer")
    p = rng.choice(model.primes, n)
    r = rng.integers(1, model.r_max + 1, n)
    e = rng.integers(1, model.e_max + 1, n)
    re_max = model.spec.re_max
    if re_max:
        outside = np.flatnonzero(r * e > re_max)
        while len(outside):
            k = len(outside)
            p[outside], r[outside], e[outside] = rng.choice(model.primes, k), rng.integers(1, model.r_max + 1, k), rng.integers(1, model.e_max + 1, k)
            outside = outside[r[outside] * e[outside] > re_max]
    return p, r, e
