"""Ground truth for the K-theory tests, written independently of ktlens.tasks.ktheory: the definition
of the counts, trial-division primality, and the unit group of F_q[x]/(x^e) enumerated by brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np

from ktlens.tasks import ktheory as kt

SMALL_PRIMES = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47]
PRIMES_400 = kt.first_primes(400)


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
