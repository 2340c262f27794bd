"""Independent checks of ktlens.tasks.ktheory.

* brute force: the unit group 1 + x F_q[x]/(x^e) is K_1(F_q[x]/(x^e), (x)); its cyclic
  invariants are computed here from kernel sizes of p^k-th powers, by enumerating the group;
* the closed form against the readable loop, and both against the definition re-written here;
* derived quantities against counting loops written in this file;
* literature values (K_3 of dual numbers) and input validation.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ktlens.tasks import ktheory as kt

SMALL_PRIMES = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47]
PRIMES_400 = kt.first_primes(400)


# ---------------------------------------------------------------------------------------------
# helpers written independently of the module
# ---------------------------------------------------------------------------------------------


def naive_is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))


def definition_counts(p: int, r: int, e: int, f: int = 1) -> list[int]:
    """The label straight from the definition, written without any helper from the module."""
    e_pr, u = e, 0
    while e_pr % p == 0:
        e_pr, u = e_pr // p, u + 1
    hs = []
    for m in range(1, r * e + 1):
        if m % p == 0:
            continue
        s = next(s for s in itertools.count(1) if r * e < p**s * m)
        assert p ** (s - 1) * m <= r * e
        h = min(u, s) if m % e_pr == 0 else s
        if h:
            hs.append(h)
    counts = [0] * max(hs, default=0)
    for h in hs:
        counts[h - 1] += f
    return counts


def hist(exponents: list[int]) -> list[int]:
    counts = [0] * max(exponents, default=0)
    for h in exponents:
        counts[h - 1] += 1
    return counts


def trim(row) -> list[int]:
    row = [int(x) for x in row]
    while row and row[-1] == 0:
        row.pop()
    return row


def field_tables(p: int, f: int) -> tuple[np.ndarray, np.ndarray]:
    """Addition and multiplication tables of F_q, q = p^f (f = 1 or 2), elements 0..q-1.

    F_{p^2} = F_p[t]/(t^2 - beta t - alpha) with a = a0 + a1 t stored as a0 + p a1.
    """
    if f == 1:
        x = np.arange(p)
        return (x[:, None] + x) % p, (x[:, None] * x) % p
    alpha, beta = {2: (1, 1), 3: (2, 0), 5: (2, 0)}[p]  # t^2 = alpha + beta t, irreducible
    q = p * p
    a0, a1 = np.arange(q) % p, np.arange(q) // p
    add = ((a0[:, None] + a0) % p) + p * ((a1[:, None] + a1) % p)
    c0 = a0[:, None] * a0 + alpha * a1[:, None] * a1
    c1 = a0[:, None] * a1 + a1[:, None] * a0 + beta * a1[:, None] * a1
    mul = (c0 % p) + p * (c1 % p)
    # sanity: every nonzero element has an inverse (the table is a field)
    assert all((mul[a] == 1).sum() == 1 for a in range(1, q))
    return add, mul


def unit_group_invariants(p: int, e: int, f: int = 1) -> list[int]:
    """[n_1, n_2, ...] of the group 1 + x F_q[x]/(x^e), by enumerating all q^(e-1) elements."""
    add, mul = field_tables(p, f)
    q = p**f
    tuples = list(itertools.product(range(q), repeat=e - 1))
    elems = np.array(tuples, dtype=np.int64).reshape(len(tuples), e - 1)
    a = np.concatenate([np.ones((len(elems), 1), dtype=np.int64), elems], axis=1)
    one = np.zeros(e, dtype=np.int64)
    one[0] = 1

    def times(x, y):  # truncated product mod x^e, coefficientwise via the tables
        z = np.zeros_like(x)
        for i in range(e):
            for j in range(e - i):
                z[:, i + j] = add[z[:, i + j], mul[x[:, i], y[:, j]]]
        return z

    def pth_power(x):
        y = x
        for _ in range(p - 1):
            y = times(y, x)
        return y

    kernel_sizes = [1]  # |ker p^0| = 1
    x = a
    while kernel_sizes[-1] < len(a):
        x = pth_power(x)
        kernel_sizes.append(int((x == one).all(axis=1).sum()))
    at_least = []  # number of cyclic factors of order >= p^k, k = 1, 2, ...
    for k in range(1, len(kernel_sizes)):
        ratio, rem = divmod(kernel_sizes[k], kernel_sizes[k - 1])
        assert rem == 0
        c = round(math.log(ratio, p))
        assert p**c == ratio
        at_least.append(c)
    at_least.append(0)
    return trim([at_least[k] - at_least[k + 1] for k in range(len(at_least) - 1)])


# ---------------------------------------------------------------------------------------------
# primes
# ---------------------------------------------------------------------------------------------


def test_primes_against_trial_division():
    assert [n for n in range(-5, 3000) if kt.is_prime(n)] == [
        n for n in range(-5, 3000) if naive_is_prime(n)
    ]
    assert kt.first_primes(0) == []
    assert kt.first_primes(1) == [2]
    assert PRIMES_400 == [n for n in range(2, 2742) if naive_is_prime(n)]
    assert PRIMES_400[-1] == 2741
    big = [10**9 + 7, 2**61 - 1, 999_999_999_989]
    assert all(kt.is_prime(n) for n in big)
    assert not any(kt.is_prime(n) for n in [10**9 + 9 * 7, 2**61 + 1, 561, 1105, 3215031751])


# ---------------------------------------------------------------------------------------------
# brute force: K_1 = unit group
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# literature values
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# closed form vs reference vs definition
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# vectorized API details
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------

BAD = [
    ((4, 1, 2), "4"),
    ((1, 1, 2), "1"),
    ((0, 1, 2), "0"),
    ((-3, 1, 2), "-3"),
    ((2, 0, 2), "0"),
    ((2, 1, 0), "0"),
    ((2, -1, 2), "-1"),
    ((2, 1, 2.5), "2.5"),
    ((2.0, 1, 2), "2.0"),
    ((2, "3", 2), "'3'"),
    ((True, 1, 2), "True"),
    ((2, 1, True), "True"),
    ((2, None, 2), "None"),
]

SCALAR_FUNCS = [kt.k_group_reference, kt.k_group, kt.summand_counts, kt.group_string]
ARRAY_FUNCS = [kt.summand_count_table, kt.s_value_table, kt.derived_quantities,
               kt.num_summands, kt.max_exponent, kt.e_prime, kt.is_trivial]


@pytest.mark.parametrize("func", SCALAR_FUNCS + ARRAY_FUNCS + [kt.s_values, kt.validate_triple])
@pytest.mark.parametrize("args,shown", BAD)
def test_bad_inputs_raise_value_error_naming_value(func, args, shown):
    with pytest.raises(ValueError) as info:
        func(*args)
    assert shown in str(info.value)


@pytest.mark.parametrize("func", SCALAR_FUNCS + [kt.validate_triple])
def test_bad_f(func):
    for f, shown in [(0, "0"), (-2, "-2"), (1.5, "1.5"), (True, "True")]:
        with pytest.raises(ValueError, match="f"):
            func(2, 1, 2, f)
        with pytest.raises(ValueError, match=shown.replace(".", r"\.")):
            func(2, 1, 2, f)


def test_absurd_sizes():
    with pytest.raises(ValueError, match="too large"):
        kt.k_group_reference(2, 10**4, 10**4)
    with pytest.raises(ValueError, match="too large"):
        kt.k_group(2, 10**4, 10**4)
    with pytest.raises(ValueError, match="too large"):
        kt.summand_counts(2, 10**7, 10**7)
    with pytest.raises(ValueError, match="too large"):
        kt.summand_count_table([2, 3], [1, 10**7], [1, 10**7])
    with pytest.raises(ValueError, match="too large"):
        kt.summand_counts(2, 1, 2, 10**9)


def test_vectorized_errors_name_first_bad_value_and_index():
    with pytest.raises(ValueError, match=r"p\[2\] = 4 is not a prime"):
        kt.summand_count_table([2, 3, 4, 6], 1, 2)
    with pytest.raises(ValueError, match=r"r\[1\] = 0"):
        kt.summand_count_table(2, [1, 0, -1], 2)
    with pytest.raises(ValueError, match=r"e\[1\] = 2\.5"):
        kt.summand_count_table(2, 1, [2.0, 2.5])
    with pytest.raises(ValueError, match=r"e\[0, 1\] = 0"):
        kt.derived_quantities(2, 1, [[1, 0], [0, 1]])
    with pytest.raises(ValueError, match=r"r\[2\] = '3'"):
        kt.summand_count_table(2, np.array([1, 2, "3"], dtype=object), 2)
    with pytest.raises(ValueError, match=r"p\[1\] = True"):
        kt.summand_count_table(np.array([2, True], dtype=object), 1, 2)
    with pytest.raises(ValueError, match="broadcast"):
        kt.summand_count_table([2, 3], [1, 2, 3], 2)
    with pytest.raises(ValueError, match=r"p\[1\] = 1"):
        kt.is_trivial([2, 1], 1, 1)


def test_numpy_integer_scalars_accepted():
    assert kt.k_group(np.int64(3), np.int32(2), np.uint8(2)) == [2]
    assert kt.summand_count_table(np.array([3], dtype=np.uint16), 2, 2).tolist() == [[0, 1]]
