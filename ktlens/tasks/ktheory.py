"""Relative K-groups of truncated polynomial algebras over finite fields.

For a prime ``p``, ``q = p**f`` and integers ``r, e >= 1``::

    K_{2r-1}(F_q[x]/(x^e), (x))  =  sum of cyclic groups Z/p^h      (even K-groups vanish)

Write ``e = p**u * e'`` with ``p`` not dividing ``e'``.  For every ``m`` in ``1..r*e`` with
``p`` not dividing ``m`` let ``s = s(m)`` be the integer with ``p**(s-1) * m <= r*e < p**s * m``.
Each such ``m`` contributes ``f`` summands ``Z/p^h`` with

* ``h = min(u, s)`` if ``e'`` divides ``m``,
* ``h = s``          otherwise,

and summands with ``h = 0`` (only possible when ``u = 0``) are dropped.
(Hesselholt-Madsen, "Cyclic polytopes and the K-theory of truncated polynomial algebras",
Invent. Math. 130 (1997); Speirs, "On the K-theory of truncated polynomial algebras,
revisited", Adv. Math. 366 (2020).)

Conventions used throughout this module:

* ``m`` ranges over ``1..r*e`` (inclusive).  An earlier public reference implementation
  looped over ``0..r*e-1``, which is wrong: it includes ``m = 0`` and misses ``m = r*e``.
* The *label* of a triple ``(p, r, e)`` is the count vector ``[n_1, n_2, ...]`` where ``n_i`` is
  the number of ``Z/p^i`` summands.
* "number of summands" (``sum n_i``) and "log_p of the order" (``sum i * n_i``, always equal to
  ``f * r * (e - 1)``) are different quantities; both are exposed separately.

Scalar functions (``k_group``, ``summand_counts``, ...) accept Python / numpy integers; the
vectorized functions (``summand_count_table``, ``derived_quantities``, ...) accept broadcastable
integer arrays and compute in closed form, without a Python loop over ``m`` or over triples.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from jaxtyping import Bool, Int

__all__ = [
    "LOOP_MAX_RE",
    "TABLE_MAX_RE",
    "MAX_F",
    "MAX_P",
    "is_prime",
    "first_primes",
    "validate_triple",
    "validate_arrays",
    "k_group_reference",
    "k_group",
    "summand_counts",
    "summand_count_table",
    "group_string",
    "s_values",
    "s_value_table",
    "p_adic_valuation_of_e",
    "e_prime",
    "re_product",
    "count_m_prime_to_p",
    "count_m_divisible_by_p",
    "count_m_divisible_by_e_prime",
    "count_m_prime_to_p_divisible_by_e_prime",
    "num_summands",
    "log_p_order",
    "max_exponent",
    "is_trivial",
    "derived_quantities",
    "sequence_length",
    "counts_from_boundaries",
    "MAX_NAMED_COUNT",
    "VARIABLES",
]

#: Largest ``r * e`` accepted by functions that loop over ``m`` (or return one entry per summand).
LOOP_MAX_RE = 10**7
#: Largest ``r * e`` accepted by the closed-form functions (keeps every intermediate in int64).
TABLE_MAX_RE = 10**12
#: Largest ``f`` (``q = p**f``) accepted anywhere.
MAX_F = 10**6
#: Largest ``p`` accepted (primality is decided exactly below this bound).
MAX_P = 10**12

#: What a vectorized function returns for inputs of broadcast shape ``shape``: an int64 array, or a numpy
#: scalar where numpy arithmetic on 0-d inputs gives one.
IntArray = Int[np.ndarray, "*shape"] | np.integer
#: The same for a truth value per input.
BoolArray = Bool[np.ndarray, "*shape"] | np.bool_


# --------------------------------------------------------------------------------------------
# primes
# --------------------------------------------------------------------------------------------

_MR_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


def is_prime(n: object) -> bool:
    """Exact primality test (deterministic Miller-Rabin, valid for all ``n < 3.3e24``)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise ValueError(f"is_prime expects an integer, got {n!r}")
    n = int(n)
    if n < 2:
        return False
    for b in _MR_BASES:
        if n % b == 0:
            return n == b
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in _MR_BASES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def first_primes(n: object) -> list[int]:
    """The first ``n`` primes ``[2, 3, 5, ...]`` (sieve of Eratosthenes)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"first_primes expects an integer n >= 0, got {n!r}")
    n = int(n)
    if n > 10**7:
        raise ValueError(f"first_primes: n={n} is absurdly large (max 10**7)")
    if n == 0:
        return []
    # p_n < n (ln n + ln ln n) for n >= 6
    bound = 15 if n < 6 else int(n * (math.log(n) + math.log(math.log(n)))) + 1
    sieve = _sieve(bound)
    return np.flatnonzero(sieve)[:n].tolist()


def _sieve(bound: int) -> np.ndarray:
    """Boolean array ``a`` of length ``bound + 1`` with ``a[k] == is_prime(k)``."""
    a = np.ones(bound + 1, dtype=bool)
    a[:2] = False
    for k in range(2, math.isqrt(bound) + 1):
        if a[k]:
            a[k * k :: k] = False
    return a


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


def _check_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    return int(value)


def validate_triple(p, r, e, f=1, *, max_re: int = TABLE_MAX_RE) -> tuple[int, int, int, int]:
    """Check one ``(p, r, e, f)`` and return it as Python ints.

    Raises ``ValueError`` naming the offending value when ``p`` is not a prime, ``r``, ``e`` or
    ``f`` is smaller than 1, a value is not an integer (``bool``, ``float``, ``str``, ...), or the
    size is absurd (``r * e > max_re``, ``f > MAX_F``, ``p > MAX_P``).
    """
    p, r, e, f = (_check_int(n, v) for n, v in (("p", p), ("r", r), ("e", e), ("f", f)))
    if p > MAX_P:
        raise ValueError(f"p={p} is too large (max {MAX_P})")
    if not is_prime(p):
        raise ValueError(f"p={p} is not a prime")
    for name, v in (("r", r), ("e", e), ("f", f)):
        if v < 1:
            raise ValueError(f"{name}={v} must be >= 1")
    if f > MAX_F:
        raise ValueError(f"f={f} is too large (max {MAX_F})")
    if r * e > max_re:
        raise ValueError(f"r*e = {r}*{e} = {r * e} is too large (max {max_re})")
    return p, r, e, f


def _index_str(name: str, shape: tuple, flat_index: int) -> str:
    if not shape:
        return name
    idx = np.unravel_index(flat_index, shape)
    return f"{name}[{', '.join(str(int(i)) for i in idx)}]"


def _first_bad(name: str, arr: np.ndarray, bad: np.ndarray | np.bool_, why: str) -> None:
    """Raise ``ValueError`` naming the first entry of ``arr`` where ``bad`` holds (``bad`` is a numpy bool
    when ``arr`` has no axes)."""
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{_index_str(name, bad.shape, i)} = {arr.flat[i].item()!r} {why}")


def _as_int_array(name: str, value) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind in "iu":
        if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{name} has values too large for int64")
        return arr.astype(np.int64, copy=False)
    # Not an integer array: name the first element that is not an integer, preferring
    # one that is not even integral-valued (2.5 before 2.0).
    flat = arr.reshape(-1).tolist()

    def integral_valued(v):
        try:
            return float(v).is_integer()
        except (TypeError, ValueError):
            return False

    bad = [
        i for i, v in enumerate(flat) if isinstance(v, bool) or not isinstance(v, numbers.Integral)
    ]
    if bad:
        i = next((j for j in bad if not integral_valued(flat[j])), bad[0])
        raise ValueError(
            f"{_index_str(name, arr.shape, i)} = {flat[i]!r} is not an integer "
            f"({name} has dtype {arr.dtype}; pass an integer array)"
        )
    # object array holding only Python ints
    try:
        return arr.astype(np.int64)
    except OverflowError:
        raise ValueError(f"{name} has values too large for int64") from None


def validate_arrays(p, r, e, f=1, *, max_re: int = TABLE_MAX_RE):
    """Vectorized ``validate_triple``: broadcast ``p, r, e, f`` to int64 arrays of one shape.

    Raises ``ValueError`` naming the first bad value and its index (in the broadcast shape).
    """
    arrays = [_as_int_array(n, v) for n, v in (("p", p), ("r", r), ("e", e), ("f", f))]
    try:
        p, r, e, f = np.broadcast_arrays(*arrays)
    except ValueError as exc:
        shapes = [a.shape for a in arrays]
        raise ValueError(f"p, r, e, f are not broadcastable (shapes {shapes})") from exc
    for name, a in (("r", r), ("e", e), ("f", f)):
        _first_bad(name, a, a < 1, "must be >= 1")
    _first_bad("p", p, p < 2, "is not a prime")
    _first_bad("p", p, p > MAX_P, f"is too large (max {MAX_P})")
    _first_bad("f", f, f > MAX_F, f"is too large (max {MAX_F})")
    if p.size:
        pmax = int(p.max())
        if pmax <= 10**7:
            prime = _sieve(pmax)[p]
        else:
            uniq, inv = np.unique(p, return_inverse=True)
            prime = np.array([is_prime(int(x)) for x in uniq], dtype=bool)[inv].reshape(p.shape)
        _first_bad("p", p, ~prime, "is not a prime")
        # float product: no int64 overflow while checking
        too_big = r.astype(np.float64) * e > max_re
        if too_big.any():
            i = int(np.argmax(too_big))
            raise ValueError(
                f"{_index_str('r*e', too_big.shape, i)} = {r.flat[i]}*{e.flat[i]} is too large "
                f"(max {max_re})"
            )
    return p, r, e, f


# --------------------------------------------------------------------------------------------
# scalar reference and closed form
# --------------------------------------------------------------------------------------------


def _split_e(p: int, e: int) -> tuple[int, int]:
    """``(u, e')`` with ``e = p**u * e'`` and ``p`` not dividing ``e'``."""
    u = 0
    while e % p == 0:
        e //= p
        u += 1
    return u, e


def k_group_reference(p, r, e, f=1) -> list[int]:
    """Sorted exponents ``h`` of ``K_{2r-1}(F_q[x]/(x^e), (x)) = sum Z/p^h``, ``q = p**f``.

    Readable loop straight from the definition (Hesselholt-Madsen, Invent. Math. 1997;
    Speirs, Adv. Math. 2020): write ``e = p**u * e'`` with ``p`` not dividing ``e'``; for each
    ``m`` in ``1..r*e`` prime to ``p`` take ``s`` with ``p**(s-1) m <= r e < p**s m``; the summand
    is ``Z/p^min(u, s)`` if ``e'`` divides ``m`` and ``Z/p^s`` otherwise; ``h = 0`` is dropped.
    Over ``F_q`` every summand appears ``f`` times.  Cost O(r e); ``r * e <= LOOP_MAX_RE``.
    """
    p, r, e, f = validate_triple(p, r, e, f, max_re=LOOP_MAX_RE)
    u, e_pr = _split_e(p, e)
    re = r * e
    out: list[int] = []
    for m in range(1, re + 1):
        if m % p == 0:
            continue
        s = 1
        while p**s * m <= re:
            s += 1
        h = min(u, s) if m % e_pr == 0 else s
        if h > 0:
            out.extend([h] * f)
    return sorted(out)


def summand_counts(p, r, e, f=1) -> list[int]:
    """Label ``[n_1, ..., n_H]``: ``n_i`` = number of ``Z/p^i`` summands, ``H`` = largest ``h``.

    ``[]`` when the group is 0 (``e = 1``).  Closed form, cost O(log(r e)).
    """
    p, r, e, f = validate_triple(p, r, e, f)
    row = _count_table(*(np.array([v], dtype=np.int64) for v in (p, r, e, f)), None)[0]
    return row.tolist()


def k_group(p, r, e, f=1) -> list[int]:
    """Sorted exponents ``h`` (with multiplicity) of ``K_{2r-1}(F_{p^f}[x]/(x^e), (x))``.

    Same answer as :func:`k_group_reference`, computed from the closed form.  The output has
    one entry per summand, so ``f * r * e <= LOOP_MAX_RE`` is required.
    """
    p, r, e, f = validate_triple(p, r, e, f)
    if f * r * e > LOOP_MAX_RE:
        raise ValueError(
            f"f*r*e = {f}*{r}*{e} = {f * r * e} is too large for a list of summands "
            f"(max {LOOP_MAX_RE}); use summand_counts"
        )
    counts = summand_counts(p, r, e, f)
    return [h for h, n in enumerate(counts, start=1) for _ in range(n)]


def group_string(p, r, e, f=1) -> str:
    """Human-readable group, ascending: ``"Z/9"``, ``"(Z/2)^2 + (Z/4)^2"``, ``"0"``."""
    p, r, e, f = validate_triple(p, r, e, f)
    parts = []
    for h, n in enumerate(summand_counts(p, r, e, f), start=1):
        if n == 0:
            continue
        z = f"Z/{p**h}"
        parts.append(z if n == 1 else f"({z})^{n}")
    return " + ".join(parts) if parts else "0"


def s_values(p, r, e) -> list[int]:
    """``[s(m) for m in 1..r*e if p does not divide m]`` (increasing ``m``).

    One entry per ``m`` prime to ``p``, *including* the ``m`` whose summand is dropped
    (``h = 0``).  Loop version for inspection; see :func:`s_value_table` for the vectorized
    histogram.
    """
    p, r, e, _ = validate_triple(p, r, e, max_re=LOOP_MAX_RE)
    re = r * e
    out = []
    for m in range(1, re + 1):
        if m % p:
            s = 1
            while p**s * m <= re:
                s += 1
            out.append(s)
    return out


# --------------------------------------------------------------------------------------------
# vectorized closed form
# --------------------------------------------------------------------------------------------


def _valuation(p: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized ``(u, e')`` with ``e = p**u e'``.

    Loops at most ``log2(max e)`` times, each time only over the entries still divisible by p.
    """
    shape = e.shape
    p, e = np.ravel(p), np.ravel(e)
    u = np.zeros(e.shape, dtype=np.int64)
    rest = e.copy()
    (cur,) = np.nonzero(e % p == 0)
    cur_p = p[cur]
    cur_e = e[cur] // cur_p
    while cur.size:
        u[cur] += 1
        rest[cur] = cur_e
        keep = cur_e % cur_p == 0
        cur, cur_p = cur[keep], cur_p[keep]
        cur_e = cur_e[keep] // cur_p
    return u.reshape(shape), rest.reshape(shape)


def _ilog_plus_one(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Vectorized ``#{j >= 0 : p**j <= n}`` = ``floor(log_p n) + 1`` for ``n >= 1`` (exact ints)."""
    shape = n.shape
    p, n = np.ravel(p), np.ravel(n)
    out = (n > 0).astype(np.int64)
    (cur,) = np.nonzero(n >= p)
    cur_p = p[cur]
    q = n[cur] // cur_p
    while cur.size:
        out[cur] += 1
        keep = q >= cur_p
        cur, cur_p = cur[keep], cur_p[keep]
        q = q[keep] // cur_p
    return out.reshape(shape)


def _max_exponent(p, r, e, u, e_pr) -> Int[np.ndarray, "*shape"]:
    # m = 1 has the largest s; it has h = s(1) unless e' = 1 (e a power of p), where every
    # m has h = min(u, s(m)) and s(1) >= u + 1, so the maximum is u (0 for e = 1).
    return np.where(e_pr == 1, u, _ilog_plus_one(p, r * e))


def _prime_to_p_by_s(p: np.ndarray, *ns: np.ndarray):
    """Yield ``(s, idx, [c_1, ...])`` for s = 1, 2, ...: for each ``n`` in ``ns``,
    ``c = #{m in (n // p^s, n // p^(s-1)] : p does not divide m}``.

    The count in ``(a, b]`` is ``(b - a) - (b//p - a//p)``, and here ``b//p = a``.
    ``idx`` (``None`` = every entry) lists the flat positions the values belong to: entries
    whose intervals are empty for this and every later ``s`` leave the loop.  Requires
    ``ns[0] >= ns[j]`` elementwise (the first array decides when an entry is done).
    """
    idx = None
    q_prev = list(ns)
    q = [a // p for a in ns]
    s = 0
    while True:
        s += 1
        q_next = [a // p for a in q]
        counts = []
        for a, b, c in zip(q_prev, q, q_next):
            out = a - b
            out -= b
            out += c
            counts.append(out)
        yield s, idx, counts
        alive = q[0] > 0  # interval (n // p^(s+1), n // p^s] non-empty for the first n
        n_alive = int(np.count_nonzero(alive))
        if n_alive == 0:
            return
        if n_alive < 0.6 * alive.size:  # compact to the entries still in play
            (keep,) = np.nonzero(alive)
            idx = keep if idx is None else idx[keep]
            p = p[keep]
            q = [a[keep] for a in q]
            q_next = [a[keep] for a in q_next]
        q_prev, q = q, q_next


def _count_table(p, r, e, f, length) -> Int[np.ndarray, "*shape length"]:
    """Closed-form label table on validated, equal-shape int64 arrays (see summand_count_table).

    For s >= 1 the m prime to p with s(m) = s are those in (re // p^s, re // p^(s-1)]:
        c_s = #{m in that interval, p does not divide m}.
    The ones divisible by e' are m = e' k with p not dividing k and
    k in (R // p^s, R // p^(s-1)], R = re / e' = r p^u:   d_s = #{such k}.
    Their summand is Z/p^min(u, s) instead of Z/p^s, so
        n_i = c_i - d_i + [i < u] d_i + [i == u] * sum_{s >= u} d_s,
    and sum_{s >= u} d_s = #{k <= r p, p does not divide k} = r (p - 1) for u >= 1.
    (For u = 0 all e'-divisible m are dropped: n_i = c_i - d_i.)
    """
    shape = p.shape
    p, r, e, f = (np.ravel(a) for a in (p, r, e, f))
    n = p.size
    u, e_pr = _valuation(p, e)
    re = r * e
    big_r = re // e_pr  # R = re / e' = r p**u (exact)
    cols = []
    for _, idx, (c, d) in _prime_to_p_by_s(p, re, big_r):
        c -= d
        cols.append((idx, c))
    # corrections for u >= 1: add back d_i for i < u, and r (p - 1) in column u
    (w,) = np.nonzero(u)
    u_w = u[w]
    need = max((i + 1 for i, (_, v) in enumerate(cols) if v.any()), default=0)
    need = max(need, int(u_w.max(initial=0)))
    if length is None:
        length = need
    elif length < need:
        raise ValueError(f"length={length} is too small: this input needs length {need}")
    # Filled row by row in (length, n) layout (contiguous writes) and returned as a view.
    out = np.zeros((length, n), dtype=np.int64)
    for i, (idx, v) in enumerate(cols[:length]):
        if idx is None:
            out[i] = v
        else:
            out[i, idx] = v
    if w.size:
        p_w = p[w]
        u_max = int(u_w.max())
        for s, idx, (d,) in _prime_to_p_by_s(p_w, big_r[w]):
            if s >= u_max:
                break
            rows = w if idx is None else w[idx]
            sel = u[rows] > s
            out[s - 1, rows[sel]] += d[sel]
        out[u_w - 1, w] += r[w] * (p_w - 1)
    if not (f == 1).all():
        out *= f
    return np.moveaxis(out.reshape((length,) + shape), 0, -1)


def summand_count_table(p, r, e, length: int | None = None, f=1) -> Int[np.ndarray, "*shape length"]:
    """Vectorized closed-form labels: ``out[..., i - 1]`` = number of ``Z/p^i`` summands.

    ``p, r, e`` (and ``f``) are broadcastable integer arrays; for 1-D input of length ``N`` the
    result is an ``(N, length)`` int64 array (in general ``broadcast_shape + (length,)``).
    ``length=None`` uses the largest label length needed by the input; a ``length`` smaller
    than that raises ``ValueError``, a larger one pads with zeros.  For speed the result is a
    column-major (Fortran-ordered) array; use ``np.ascontiguousarray`` if C order matters.

    Computed by counting integers prime to ``p`` in the intervals
    ``(re // p^s, re // p^(s-1)]`` (count in ``(a, b]`` = ``(b - a) - (b//p - a//p)``) and, for the
    ``e' | m`` correction, multiples ``m = e' k`` with ``p`` not dividing ``k``.  The only Python
    loop is over ``s`` (at most ``floor(log2(max r e)) + 1`` iterations).
    """
    p, r, e, f = validate_arrays(p, r, e, f)
    if length is not None:
        length = _check_int("length", length)
        if length < 0:
            raise ValueError(f"length={length} must be >= 0")
    return _count_table(p, r, e, f, length)


def counts_from_boundaries(
    boundaries: Int[np.ndarray, "*shape levels"], e_prime_boundaries: Int[np.ndarray, "*shape c_levels"],  # c_levels == levels, checked below
    u: Int[np.ndarray, "*shape"] | int | list[int],
) -> Int[np.ndarray, "*shape levels"]:
    """The counts ``[n_1, ..., n_L]`` from the two chains a scratchpad writes, with ``L = levels``:
    ``boundaries[..., h] = floor(r e / p^h)`` and ``e_prime_boundaries[..., h] = floor(r e / (e' p^h))``
    for ``h = 0..L-1`` (both 0 from ``h = L`` on), and ``u = v_p(e)``.

    With ``A_h = B_{h-1} - 2 B_h + B_{h+1}`` (the ``m`` prime to ``p`` with ``s(m) = h``) and
    ``N_h = C_{h-1} - 2 C_h + C_{h+1}`` (those among them divisible by ``e'``)::

        n_h = A_h - [h > u] N_h + [h = u >= 1] (C_u - C_{u+1})

    (the ``e' | m`` with ``s(m) > u`` move to level ``u``, or drop out when ``u = 0``).
    """
    B = np.asarray(boundaries, dtype=np.int64)
    C = np.asarray(e_prime_boundaries, dtype=np.int64)
    u = np.asarray(u, dtype=np.int64)[..., None]
    if B.shape != C.shape or B.shape[:-1] != u.shape[:-1]:
        raise ValueError(f"boundaries {B.shape}, e_prime_boundaries {C.shape} and u {u.shape[:-1]} do not match")
    pad = np.zeros(B.shape[:-1] + (2,), np.int64)
    B, C = np.concatenate([B, pad], -1), np.concatenate([C, pad], -1)
    A = B[..., :-2] - 2 * B[..., 1:-1] + B[..., 2:]  # A_1..A_L
    N = C[..., :-2] - 2 * C[..., 1:-1] + C[..., 2:]
    h = np.arange(1, A.shape[-1] + 1)
    moved = np.take_along_axis(C, np.minimum(u, C.shape[-1] - 2), -1) - np.take_along_axis(C, np.minimum(u + 1, C.shape[-1] - 1), -1)
    return A - np.where(h > u, N, 0) + np.where((h == u) & (u >= 1), moved, 0)


def s_value_table(p, r, e, length: int | None = None) -> Int[np.ndarray, "*shape length"]:
    """Vectorized histogram of s-values: ``out[..., i - 1] = #{m in 1..re, p not | m, s(m) = i}``.

    Counts every ``m`` prime to ``p`` (also those whose summand is dropped).  ``length=None``
    means ``floor(log_{p}(max r e)) + 1`` over the input, i.e. the largest ``s`` present.
    """
    p, r, e, _ = validate_arrays(p, r, e)
    re = r * e
    need = int(_ilog_plus_one(p, re).max(initial=0))
    if length is None:
        length = need
    elif _check_int("length", length) < need:
        raise ValueError(f"length={length} is too small: this input needs length {need}")
    out = np.zeros((length, re.size), dtype=np.int64)
    for s, idx, (c,) in _prime_to_p_by_s(np.ravel(p), np.ravel(re)):
        if s > length:
            break
        if idx is None:
            out[s - 1] = c
        else:
            out[s - 1, idx] = c
    return np.moveaxis(out.reshape((length,) + p.shape), 0, -1)


# --------------------------------------------------------------------------------------------
# derived quantities (vectorized; probe targets)
# --------------------------------------------------------------------------------------------


def p_adic_valuation_of_e(p, r, e) -> IntArray:
    """``u = v_p(e)``: the exponent of ``p`` in ``e`` (``r`` only for a uniform signature)."""
    p, r, e, _ = validate_arrays(p, r, e)
    return _valuation(p, e)[0]


def e_prime(p, r, e) -> IntArray:
    """``e' = e / p**u``: the part of ``e`` prime to ``p``."""
    p, r, e, _ = validate_arrays(p, r, e)
    return _valuation(p, e)[1]


def re_product(p, r, e) -> IntArray:
    """``r * e``: the range ``1..r*e`` of the index ``m``."""
    p, r, e, _ = validate_arrays(p, r, e)
    return r * e


def count_m_prime_to_p(p, r, e) -> IntArray:
    """``#{m in 1..re : p does not divide m} = re - re // p`` (summands before dropping h = 0)."""
    p, r, e, _ = validate_arrays(p, r, e)
    return r * e - r * e // p


def count_m_divisible_by_p(p, r, e) -> IntArray:
    """``#{m in 1..re : p divides m} = re // p``."""
    p, r, e, _ = validate_arrays(p, r, e)
    return r * e // p


def count_m_divisible_by_e_prime(p, r, e) -> IntArray:
    """``#{m in 1..re : e' divides m} = re // e' = r * p**u``."""
    p, r, e, _ = validate_arrays(p, r, e)
    return r * e // _valuation(p, e)[1]


def count_m_prime_to_p_divisible_by_e_prime(p, r, e) -> IntArray:
    """``#{m in 1..re : p not | m, e' | m} = R - R // p`` with ``R = re // e'``.

    These are the ``m`` whose summand is capped at ``Z/p^u`` (dropped when ``u = 0``).
    """
    p, r, e, _ = validate_arrays(p, r, e)
    big_r = r * e // _valuation(p, e)[1]
    return big_r - big_r // p


def num_summands(p, r, e) -> IntArray:
    """Total number of cyclic summands ``sum_i n_i`` (over ``F_p``, i.e. ``f = 1``).

    Equals ``count_m_prime_to_p`` minus the dropped ``m`` (``u = 0`` and ``e | m``).
    Not the same as :func:`log_p_order` (``sum_i i * n_i``).
    """
    p, r, e, _ = validate_arrays(p, r, e)
    u, _ = _valuation(p, e)
    return (r * e - r * e // p) - np.where(u == 0, r - r // p, 0)


def log_p_order(p, r, e) -> IntArray:
    """``log_p`` of the group order ``= sum_i i * n_i = r * (e - 1)`` (over ``F_p``)."""
    p, r, e, _ = validate_arrays(p, r, e)
    return r * (e - 1)


def max_exponent(p, r, e) -> IntArray:
    """Largest ``h`` present (label length needed; 0 for the zero group ``e = 1``).

    ``u`` when ``e = p**u`` is a power of ``p``, else ``floor(log_p(r e)) + 1`` (from ``m = 1``).
    """
    p, r, e, _ = validate_arrays(p, r, e)
    u, e_pr = _valuation(p, e)
    return _max_exponent(p, r, e, u, e_pr)


def is_trivial(p, r, e) -> BoolArray:
    """``p > r e``: every ``s(m) = 1``, the group is ``(Z/p)^(r (e - 1))``: ``n_1 = r(e-1)``."""
    p, r, e, _ = validate_arrays(p, r, e)
    return p > r * e


def derived_quantities(p, r, e) -> dict[str, IntArray | BoolArray]:
    """All derived quantities above, as a dict of arrays (name -> values), validated once."""
    p, r, e, _ = validate_arrays(p, r, e)
    u, e_pr = _valuation(p, e)
    re = r * e
    big_r = re // e_pr
    prime_to_p = re - re // p
    return {
        "p_adic_valuation_of_e": u,
        "e_prime": e_pr,
        "re_product": re,
        "count_m_prime_to_p": prime_to_p,
        "count_m_divisible_by_p": re // p,
        "count_m_divisible_by_e_prime": big_r,
        "count_m_prime_to_p_divisible_by_e_prime": big_r - big_r // p,
        "num_summands": prime_to_p - np.where(u == 0, r - r // p, 0),
        "log_p_order": r * (e - 1),
        "max_exponent": _max_exponent(p, r, e, u, e_pr),
        "is_trivial": p > re,
    }


def sequence_length(primes, r_max: int, e_max: int) -> int:
    """Label length for the grid ``primes x 1..r_max x 1..e_max`` = max ``h`` over the grid.

    Usually ``floor(log_{p_min}(r_max e_max)) + 1``; it can be smaller when every ``e <= e_max``
    with ``p_min`` not dividing ``e' > 1`` is too small (e.g. ``primes=[2], e_max=2`` gives 1).
    Exact: per prime, the max of ``floor(log_p(r_max e)) + 1`` over the largest ``e <= e_max`` that
    is not a power of ``p``, and of ``u`` over the powers ``p**u <= e_max``.
    """
    r_max = _check_int("r_max", r_max)
    e_max = _check_int("e_max", e_max)
    if r_max < 1 or e_max < 1:
        raise ValueError(f"r_max={r_max} and e_max={e_max} must be >= 1")
    primes = list(primes)
    if not primes:
        raise ValueError("primes must be non-empty")
    best = 0
    for p in primes:
        p, *_ = validate_triple(p, r_max, e_max)
        # largest u with p**u <= e_max
        u_max, pw = 0, p
        while pw <= e_max:
            u_max, pw = u_max + 1, pw * p
        best = max(best, u_max)
        e = e_max
        while e >= 2 and _split_e(p, e)[1] == 1:
            e -= 1
        if e >= 2:  # a non-power of p exists: m = 1 gives h = s(1)
            n, s1 = r_max * e, 0
            while n:
                n, s1 = n // p, s1 + 1
            best = max(best, s1)
    return best


# --------------------------------------------------------------------------------------------
# task variables (named ground truth for probes, feature labels, causal abstraction)
# --------------------------------------------------------------------------------------------

#: ``n_1 .. n_MAX_NAMED_COUNT`` are registered by name; ``counts`` covers any label length.
MAX_NAMED_COUNT = 16
LABEL_ORDERS = ("ascending", "descending")


def _input(name: str):
    def compute(p, r, e, **_) -> np.ndarray:
        return dict(zip("pre", validate_arrays(p, r, e)[:3]))[name]

    return compute


def _derived(key: str):
    def compute(p, r, e, **_) -> np.ndarray:
        return derived_quantities(p, r, e)[key]

    return compute


def _counts(p, r, e, length: int | None = None, **_) -> np.ndarray:
    """Natural-order label ``[N, L]``: column ``k`` is ``n_{k+1}``."""
    return np.ascontiguousarray(summand_count_table(p, r, e, length=length))


def _count_k(k: int):
    def compute(p, r, e, **_) -> np.ndarray:
        table = summand_count_table(p, r, e)
        if table.shape[-1] >= k:
            return np.ascontiguousarray(table[..., k - 1])
        return np.zeros(table.shape[:-1], dtype=np.int64)

    return compute


def _n_at_position(p, r, e, length: int | None = None, label_order: str = "ascending", **_) -> np.ndarray:
    """The label written at decoder position ``k``: ``n_{k+1}`` (ascending) or ``n_{L-k}`` (descending)."""
    if label_order not in LABEL_ORDERS:
        raise ValueError(f"label_order must be one of {LABEL_ORDERS}, got {label_order!r}")
    counts = _counts(p, r, e, length)
    return counts if label_order == "ascending" else np.ascontiguousarray(counts[..., ::-1])


def _ktheory_variables():
    from ktlens.tasks.variables import TaskVariable as V

    m_range = "m in 1..re (re = r*e)"
    out = [
        V("p", "class", "the prime p (input)", "p", _input("p")),
        V("r", "class", "the index r of K_{2r-1} (input)", "r", _input("r")),
        V("e", "class", "the truncation degree e of F_p[x]/(x^e) (input)", "e", _input("e")),
        V("u", "class", "u = v_p(e), the exponent of p in e", "largest u >= 0 with p^u | e", _derived("p_adic_valuation_of_e")),
        V("e_prime", "class", "e' = e / p^u, the part of e prime to p", "e / p^v_p(e)", _derived("e_prime")),
        V("re", "scalar", "r*e, the range 1..re of the index m", "r * e", _derived("re_product")),
        V("p_divides_e", "class", "whether p divides e (u >= 1)", "e mod p == 0",
          lambda p, r, e, **_: derived_quantities(p, r, e)["p_adic_valuation_of_e"] > 0),
        V("count_div_p", "scalar", "number of m divisible by p", f"#{{{m_range} : p | m}} = re // p",
          _derived("count_m_divisible_by_p")),
        V("count_prime_to_p", "scalar", "number of m prime to p (summands before dropping h = 0)",
          f"#{{{m_range} : p does not divide m}} = re - re // p", _derived("count_m_prime_to_p")),
        V("count_div_e_prime", "scalar", "number of m divisible by e'", f"#{{{m_range} : e' | m}} = r p^u",
          _derived("count_m_divisible_by_e_prime")),
        V("count_capped", "scalar", "number of m prime to p and divisible by e' (summand capped at Z/p^u)",
          f"#{{{m_range} : p does not divide m, e' | m}}", _derived("count_m_prime_to_p_divisible_by_e_prime")),
        V("is_trivial", "class", "p > r*e: every s(m) = 1, the group is (Z/p)^(r(e-1))", "p > r * e", _derived("is_trivial")),
    ]
    out += [
        V(f"n_{k}", "scalar", f"n_{k}, the number of Z/p^{k} summands",
          f"number of h = {k} among the summands Z/p^h of K_{{2r-1}}(F_p[x]/(x^e), (x))", _count_k(k))
        for k in range(1, MAX_NAMED_COUNT + 1)
    ]
    out += [
        V("num_summands", "scalar", "number of cyclic summands", "sum_k n_k", _derived("num_summands")),
        V("log_p_order", "scalar", "log_p of the group order", "sum_k k n_k = r (e - 1)", _derived("log_p_order")),
        V("max_exponent", "class", "largest h with a Z/p^h summand (label length without trailing zeros; 0 for e = 1)",
          "max {k : n_k > 0}, 0 if none", _derived("max_exponent")),
        V("counts", "scalar", "the label [n_1, ..., n_L] in natural order",
          "[N, L]: column k is n_{k+1}; context length=L (default: the longest label of the input, zero-padded)",
          _counts, per_position=True),
        V("n_at_position", "scalar", "the label written at decoder position k",
          "[N, L]: column k is n_{k+1} for label_order='ascending' (default) and n_{L-k} for 'descending'; "
          "context length=L (the model's seq_len), label_order=the model's label order",
          _n_at_position, per_position=True),
    ]
    from ktlens.tasks.variables import make_registry

    return make_registry(out)


#: Named ground-truth variables of a triple (inputs ``p, r, e``; context ``length``, ``label_order``).
VARIABLES = _ktheory_variables()
