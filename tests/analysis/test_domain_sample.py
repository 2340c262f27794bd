"""Seeded samples of a model's domain: inside a bounded domain, covering it, and the old grid draw without a bound."""

import numpy as np
import pytest

from ktlens.analysis.domain_sample import in_domain, sample_triples

from .domain_model import domain_model, domain_set


def test_samples_cover_the_bounded_domain_and_nothing_else():
    model = domain_model()
    p, r, e = sample_triples(model, 3000, np.random.default_rng(0))
    drawn = list(zip(p.tolist(), r.tolist(), e.tolist()))
    assert set(drawn) == domain_set()  # 42 triples, ~70 draws each
    counts = np.array([drawn.count(t) for t in sorted(domain_set())])
    assert counts.min() > 30 and counts.max() < 120  # uniform: 3000 / 42 = 71 each
    assert all(in_domain(model, *t) for t in domain_set()) and not in_domain(model, 2, 3, 5)
    with pytest.raises(ValueError, match="n=0"):
        sample_triples(model, 0, np.random.default_rng(0))


def test_without_a_bound_the_sample_is_the_grid_draw():
    from ktlens.models import KTheoryTransformer

    model = KTheoryTransformer.create({"primes": [2, 3], "r_max": 6, "e_max": 5, "label_order": "ascending"}, d_model=8, n_heads=2, d_mlp=8)
    rng = np.random.default_rng(5)
    expected = rng.choice(model.primes, 50), rng.integers(1, 7, 50), rng.integers(1, 6, 50)
    got = sample_triples(model, 50, np.random.default_rng(5))
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))
