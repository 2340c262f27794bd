"""Independent checks of the vectorized closed form of ktlens.tasks.ktheory: `summand_count_table`,
`s_value_table` and `sequence_length` against the reference loop and the definition (broadcasting,
padding, f)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ktlens.tasks import ktheory as kt
from tests.tasks.ktheory_brute import SMALL_PRIMES, PRIMES_400, definition_counts, hist, trim


def test_table_matches_reference_exhaustive_small_grid():
    primes = SMALL_PRIMES[:8]
    p, r, e = (a.ravel() for a in np.meshgrid(primes, np.arange(1, 16), np.arange(1, 16),
                                              indexing="ij"))
    table = kt.summand_count_table(p, r, e)
    for i in range(len(p)):
        assert trim(table[i]) == hist(kt.k_group_reference(int(p[i]), int(r[i]), int(e[i])))


def test_table_matches_reference_on_random_reference_grid_triples():
    """2,000 random triples of the reference grid (400 primes, r <= 100, e <= 50)."""
    rng = np.random.default_rng(12345)
    n = 2000
    p = rng.choice(PRIMES_400, n)
    # oversample small primes and prime powers e, where the e' | m rule matters
    p[: n // 2] = rng.choice(SMALL_PRIMES[:5], n // 2)
    r = rng.integers(1, 101, n)
    e = rng.integers(1, 51, n)
    e[: n // 4] = np.array([2, 4, 8, 16, 32, 3, 9, 27, 5, 25, 7, 49])[rng.integers(0, 12, n // 4)]
    table = kt.summand_count_table(p, r, e)
    assert table.shape == (n, table.shape[1])
    for i in range(n):
        assert trim(table[i]) == hist(kt.k_group_reference(int(p[i]), int(r[i]), int(e[i])))


triples = st.tuples(
    st.sampled_from(PRIMES_400[:40] + [1009, 7919, 10007, 1_000_003]),
    st.integers(1, 120),
    st.integers(1, 120),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(triples, min_size=1, max_size=40), st.integers(1, 3))
def test_property_table_equals_reference(batch, f):
    p, r, e = (np.array(x) for x in zip(*batch))
    table = kt.summand_count_table(p, r, e, f=f)
    for (pi, ri, ei), row in zip(batch, table):
        assert trim(row) == hist(kt.k_group_reference(pi, ri, ei, f=f))
        assert trim(row) == kt.summand_counts(pi, ri, ei, f=f)


def test_table_broadcasting_length_and_f():
    p = np.array([[2], [3], [5]])
    r = np.array([1, 2, 3, 4])
    table = kt.summand_count_table(p, r, 12)
    assert table.shape == (3, 4, table.shape[-1])
    for i, j in itertools.product(range(3), range(4)):
        assert trim(table[i, j]) == definition_counts(int(p[i, 0]), int(r[j]), 12)
    padded = kt.summand_count_table(p, r, 12, length=10)
    assert padded.shape == (3, 4, 10)
    np.testing.assert_array_equal(padded[..., : table.shape[-1]], table)
    assert not padded[..., table.shape[-1]:].any()
    need = table.shape[-1]
    with pytest.raises(ValueError, match="length"):
        kt.summand_count_table(p, r, 12, length=need - 1)
    np.testing.assert_array_equal(kt.summand_count_table(p, r, 12, f=[1, 2, 3, 4]),
                                  table * np.array([1, 2, 3, 4])[:, None])
    # scalar input -> 1-D row
    assert kt.summand_count_table(3, 2, 2).tolist() == [0, 1]


def test_s_values_against_definition():
    for p in SMALL_PRIMES[:5]:
        for r in range(1, 12):
            for e in range(1, 12):
                re = r * e
                expected = [min(s for s in range(1, 64) if re < p**s * m)
                            for m in range(1, re + 1) if m % p]
                assert kt.s_values(p, r, e) == expected
    p, r, e = (a.ravel() for a in np.meshgrid(SMALL_PRIMES[:5], np.arange(1, 12),
                                              np.arange(1, 12), indexing="ij"))
    table = kt.s_value_table(p, r, e)
    for i in range(len(p)):
        assert trim(table[i]) == hist(kt.s_values(int(p[i]), int(r[i]), int(e[i])))


def test_sequence_length_against_brute_max():
    cases = [
        ([2], 1, 2),  # only e = 1, 2 = 2^1: the max is u = 1, not floor(log2 2) + 1 = 2
        ([2], 1, 4),
        ([2], 3, 8),
        ([3], 2, 9),
        ([2, 3, 5], 10, 10),
        ([5, 7], 3, 25),
        (SMALL_PRIMES, 20, 20),
        (PRIMES_400[:25], 20, 20),
        ([7, 11], 1, 1),
    ]
    for primes, r_max, e_max in cases:
        p, r, e = (a.ravel() for a in np.meshgrid(primes, np.arange(1, r_max + 1),
                                                  np.arange(1, e_max + 1), indexing="ij"))
        brute = max(max(kt.k_group_reference(int(a), int(b), int(c)), default=0)
                    for a, b, c in zip(p, r, e))
        assert kt.sequence_length(primes, r_max, e_max) == brute, (primes, r_max, e_max)
        assert kt.summand_count_table(p, r, e).shape[1] == brute
        # the textbook formula holds whenever e_max is not a power of p_min
        pmin = min(primes)
        powers_of_pmin = {pmin**k for k in range(40)}
        if e_max not in powers_of_pmin:
            assert brute == math.floor(math.log(r_max * e_max, pmin) + 1e-9) + 1
    # reference grid: 400 primes, r <= 100, e <= 50 -> floor(log2 5000) + 1 = 13
    assert kt.sequence_length(PRIMES_400, 100, 50) == 13
