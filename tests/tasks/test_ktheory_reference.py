"""Independent checks of the scalar reference and closed form of ktlens.tasks.ktheory.

* brute force: the unit group 1 + x F_q[x]/(x^e) is K_1(F_q[x]/(x^e), (x)); its cyclic
  invariants are computed from kernel sizes of p^k-th powers, by enumerating the group;
* literature values (K_3 of dual numbers), the readable loop against the definition re-written in
  tests/tasks/ktheory_brute.py, and properties of the order (sum_i i n_i = f r (e - 1)).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ktlens.tasks import ktheory as kt
from tests.tasks.ktheory_brute import SMALL_PRIMES, PRIMES_400, definition_counts, hist, trim, unit_group_invariants


BRUTE_CASES = [
    (p, e)
    for p, e_top in [(2, 16), (3, 10), (5, 7), (7, 6), (11, 5), (13, 5)]
    for e in range(1, e_top + 1)
]


@pytest.mark.parametrize("p,e", BRUTE_CASES)
def test_k1_is_unit_group_brute_force(p, e):
    expected = unit_group_invariants(p, e)
    assert kt.summand_counts(p, 1, e) == expected
    assert kt.k_group(p, 1, e) == [h for h, n in enumerate(expected, 1) for _ in range(n)]
    assert kt.k_group_reference(p, 1, e) == kt.k_group(p, 1, e)
    assert trim(kt.summand_count_table(p, 1, e, length=6)) == expected


@pytest.mark.parametrize("p,e", [(2, e) for e in range(1, 9)] + [(3, e) for e in range(1, 6)]
                         + [(5, e) for e in range(1, 5)])
def test_k1_over_f_p_squared_brute_force(p, e):
    """Over F_{p^2} every summand appears twice (f = 2)."""
    expected = unit_group_invariants(p, e, f=2)
    assert kt.summand_counts(p, 1, e, f=2) == expected
    assert kt.k_group_reference(p, 1, e, f=2) == kt.k_group(p, 1, e, f=2)
    assert trim(kt.summand_count_table(p, 1, e, f=2)) == expected


def test_brute_force_helper_on_known_groups():
    # (1 + x)^k in F_2[x]/(x^3): 1 + x has order 4, the group has order 4 -> Z/4
    assert unit_group_invariants(2, 3) == [0, 1]
    # F_3[x]/(x^2): 1 + a x, (1 + a x)^3 = 1 -> (Z/3)^1
    assert unit_group_invariants(3, 2) == [1]
    # F_2[x]/(x^4): order 8, (1+x) of order 4, (1+x)^2 = 1+x^2, 1+x^3 of order 2 -> Z/2 + Z/4
    assert unit_group_invariants(2, 4) == [1, 1]


def test_k3_of_dual_numbers():
    # K_3(F_p[x]/(x^2), (x)) = (Z/p)^2 for p >= 5 (Evens-Friedlander), Z/9 for p = 3
    for p in PRIMES_400[2:60]:
        assert kt.k_group(p, 2, 2) == [1, 1]
        assert kt.group_string(p, 2, 2) == f"(Z/{p})^2"
    assert kt.k_group(3, 2, 2) == [2]
    assert kt.group_string(3, 2, 2) == "Z/9"
    # p = 2: m in {1, 3}; m = 1 has s = 3, m = 3 has s = 1; e = 2 = 2^1 * 1 so e' = 1 divides
    # both and h = min(1, s) = 1: (Z/2)^2, not Z/4 (order 2^{r(e-1)} = 4 either way).
    assert kt.k_group(2, 2, 2) == [1, 1] == kt.k_group_reference(2, 2, 2)
    assert definition_counts(2, 2, 2) == [2]
    assert kt.group_string(2, 2, 2) == "(Z/2)^2"
    # over F_4 and F_8
    assert kt.group_string(2, 2, 2, f=2) == "(Z/2)^4"
    assert kt.group_string(3, 2, 2, f=3) == "(Z/9)^3"


def test_group_string_examples():
    assert kt.group_string(7, 5, 1) == "0"
    assert kt.group_string(2, 1, 3) == "Z/4"
    assert kt.group_string(2, 1, 4) == "Z/2 + Z/4"
    assert kt.group_string(7, 3, 2) == "(Z/7)^3"  # trivial: 7 > 6
    assert kt.group_string(5, 3, 2) == "Z/5 + Z/25"  # m = 1 gives s = 2
    assert kt.group_string(3, 4, 9) == "(Z/3)^16 + (Z/9)^8"


def test_e_equal_one_is_zero_group():
    for p in SMALL_PRIMES:
        for r in range(1, 30):
            assert kt.k_group(p, r, 1) == []
            assert kt.summand_counts(p, r, 1) == []
    assert kt.summand_count_table([2, 3], [5, 7], 1).shape == (2, 0)


def test_reference_matches_definition_exhaustive():
    for p in SMALL_PRIMES[:6]:
        for r in range(1, 9):
            for e in range(1, 19):
                assert hist(kt.k_group_reference(p, r, e)) == definition_counts(p, r, e)


def test_two_orders_when_p_exceeds_e_and_re_below_p_squared():
    """For e < p and r e < p^2 (every p >= 23 on the small grid): n_2 = floor(re/p) and
    n_1 = r(e-1) - 2 n_2, the structure the README's error analysis relies on."""
    for p in (23, 29, 31, 37, 97):
        for r in range(1, 21):
            for e in range(1, min(p, 21)):
                if r * e >= p * p or r >= p:
                    continue
                k = r * e // p
                expected = [r * (e - 1) - 2 * k, k]
                while expected and expected[-1] == 0:
                    expected.pop()
                assert definition_counts(p, r, e) == expected, (p, r, e)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(PRIMES_400),
    st.integers(1, 10**5),
    st.integers(1, 10**5),
    st.integers(1, 5),
)
def test_property_log_order(p, r, e, f):
    """sum_i i n_i = f r (e - 1) (log_p of the order), also for huge r e."""
    counts = kt.summand_counts(p, r, e, f)
    assert sum(i * n for i, n in enumerate(counts, 1)) == f * r * (e - 1)
    assert all(n % f == 0 for n in counts)
    assert kt.log_p_order(p, r, e) == r * (e - 1)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(SMALL_PRIMES), st.integers(1, 60), st.integers(1, 60), st.integers(1, 3))
def test_property_k_group_order_and_sorting(p, r, e, f):
    hs = kt.k_group(p, r, e, f)
    assert hs == sorted(hs)
    assert sum(hs) == f * r * (e - 1)
    assert hs == kt.k_group_reference(p, r, e, f)


def test_huge_p_and_large_inputs():
    # p > r e: trivial, n_1 = r (e - 1)
    assert kt.summand_counts(1_000_003, 7, 11) == [70]
    assert kt.summand_counts(999_999_999_989, 10**5, 10**6) == [10**5 * (10**6 - 1)]
    # large r e, compare the closed form with the definition loop on moderately large inputs
    for p, r, e in [(2, 300, 64), (3, 200, 81), (5, 125, 50), (2, 1, 2**15), (7, 343, 49)]:
        assert kt.summand_counts(p, r, e) == definition_counts(p, r, e)
