"""Independent checks of the derived quantities of ktlens.tasks.ktheory, against counting loops."""

from __future__ import annotations

import numpy as np

from ktlens.tasks import ktheory as kt
from tests.tasks.ktheory_brute import SMALL_PRIMES, PRIMES_400


def test_derived_quantities_against_counting_loops():
    rng = np.random.default_rng(7)
    n = 400
    p = rng.choice(SMALL_PRIMES[:6] + PRIMES_400[100:103], n)
    r = rng.integers(1, 40, n)
    e = rng.integers(1, 40, n)
    e[:100] = rng.choice([1, 2, 4, 8, 16, 32, 3, 9, 27, 5, 25, 7], 100)
    d = kt.derived_quantities(p, r, e)
    individual = {
        name: getattr(kt, name)(p, r, e)
        for name in d
    }
    for name in d:
        np.testing.assert_array_equal(d[name], individual[name], err_msg=name)
    for i in range(n):
        pi, ri, ei = int(p[i]), int(r[i]), int(e[i])
        re = ri * ei
        u = max(k for k in range(0, 40) if ei % pi**k == 0)
        e_pr = ei // pi**u
        ms = range(1, re + 1)
        hs = kt.k_group_reference(pi, ri, ei)
        expected = {
            "p_adic_valuation_of_e": u,
            "e_prime": e_pr,
            "re_product": re,
            "count_m_prime_to_p": sum(1 for m in ms if m % pi),
            "count_m_divisible_by_p": sum(1 for m in ms if m % pi == 0),
            "count_m_divisible_by_e_prime": sum(1 for m in ms if m % e_pr == 0),
            "count_m_prime_to_p_divisible_by_e_prime": sum(
                1 for m in ms if m % pi and m % e_pr == 0
            ),
            "num_summands": len(hs),
            "log_p_order": sum(hs),
            "max_exponent": max(hs, default=0),
            "is_trivial": pi > re,
        }
        assert e_pr % pi != 0 and pi**u * e_pr == ei
        for name, value in expected.items():
            assert d[name][i] == value, (name, pi, ri, ei)
        if expected["is_trivial"]:
            assert hs == [1] * (ri * (ei - 1))


def test_num_summands_differs_from_log_order():
    # Z/9: one summand, log_3 of the order 2
    assert kt.num_summands(3, 2, 2) == 1
    assert kt.log_p_order(3, 2, 2) == 2
