"""One membership rule for a K-theory domain (`in_domain`, `KTheoryTaskSpec.contains`), checked against the
domain enumerated by loops, and used by the model's input check."""

import itertools

import numpy as np
import pytest

from ktlens.tasks.ktheory_data import KTheoryGridSpec
from ktlens.tasks.ktheory_spec import KTheoryTaskSpec, in_domain

PRIMES = [2, 3, 5, 7]


@pytest.mark.parametrize("re_max", [0, 12])
def test_membership_equals_the_enumerated_domain(re_max):
    domain = {(p, r, e) for p in PRIMES for r in range(1, 7) for e in range(1, 6) if not re_max or r * e <= re_max}
    candidates = np.array(list(itertools.product([0, 1, 2, 3, 4, 5, 7, 11], range(-1, 9), range(-1, 8))))
    got = in_domain(candidates[:, 0], candidates[:, 1], candidates[:, 2], PRIMES, 6, 5, re_max)
    want = np.array([tuple(t) in domain for t in candidates.tolist()])
    assert got.dtype == bool and np.array_equal(got, want) and want.sum() == len(domain)


def test_the_spec_and_the_model_check_use_the_same_rule():
    from ktlens.models.encoder_decoder import KTheoryTransformer

    grid = KTheoryGridSpec(primes=PRIMES, r_max=6, e_max=5, re_max=12, split="random", test_fraction=0.25, seed=0)
    spec = KTheoryTaskSpec.of_grid(grid, "descending")
    p, r, e = (np.array(x) for x in zip(*[(2, 2, 5), (7, 6, 2), (5, 3, 5), (11, 1, 1), (4, 1, 1)]))
    assert spec.contains(p, r, e).tolist() == [True, True, False, False, False]
    model = KTheoryTransformer.create(spec, d_model=16, n_heads=2, d_mlp=32)
    model.check_domain(p[:2], r[:2], e[:2])
    with pytest.raises(ValueError, match=r"r\*e=15 \(index 2\)"):
        model.check_domain(p, r, e)
    with pytest.raises(ValueError, match=r"p=4 \(index 0\) is not prime"):
        model.check_domain([4, 11], [1, 1], [1, 1])
    with pytest.raises(ValueError, match=r"p=11 \(index 0\) is outside the trained primes"):
        model.check_domain([11], [1], [1])
