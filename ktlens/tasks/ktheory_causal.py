"""Algorithm 1 as a causal model: (p, r, e) -> (u, e', re) -> per-level counts -> the label.

The graph (every node a vectorised function of its parents)::

    inputs         p, r, e
    intermediates  u = v_p(e),  e' = e / p^u,  re = r e                      (from p, r, e)
                   capped = #{m in 1..re : p not | m, e' | m, s(m) >= u}      (from p, u, e', re)
                   n_k    = H_k - [k > u] G_k + [k = u] sum_{s > u} G_s     (from p, u, e', re)
    output         the label [n_1, ..., n_L]

with ``H_k = #{m in 1..re : p not | m, s(m) = k}`` and ``G_k = #{m in 1..re : p not | m, e' | m, s(m) = k}``
(``s(m)``: ``p^(s-1) m <= re < p^s m``). This is the definition rewritten: an ``m`` with ``e' | m`` and
``s(m) > u`` moves from level ``s`` to level ``u`` (dropped when ``u = 0``). Equivalently, for ``u >= 1``,
``n_u = (H_u - G_u) + capped``: ``capped`` counts the ``m`` whose summand is ``Z/p^u`` because ``e' | m``; for
``u = 1`` it is the reference's N, the number of ``m`` in ``1..re`` divisible by ``e'`` and not by ``p``
(``VARIABLES["count_capped"]``).

Interventions (``counterfactual``): the output for base inputs with some intermediate variables set to the
values they take on source inputs. Conventions, all from the definition above:

* ``u``, ``e_prime``, ``re`` are set as numbers; the others are recomputed from the base's ``p`` and the
  (possibly mixed) ``(u, e', re)``. A combination no ``e`` could produce is still well defined: an ``e'``
  divisible by the base's ``p`` caps no ``m`` (``e' | m`` forces ``p | m``), an ``re`` that is not a multiple of
  ``e'`` is just the range ``1..re``, and a ``u`` above every ``s(m)`` caps nothing.
* ``capped`` set to ``c`` changes ``n_u`` by ``c - capped`` (for ``u >= 1``; with ``u = 0`` the capped
  summands are dropped and the output does not change); it is applied after ``u, e', re``.
* ``n_k`` set to the source's ``n_k`` replaces that count (applied last, over everything upstream).
* ``causal_model="order"`` is the variant that agrees with Algorithm 1 on every real input and differs under
  interventions: ``n_2, n_3, ...`` as above, but ``n_1 = r (e - 1) - sum_{k >= 2} k n_k`` (the order identity
  ``sum_k k n_k = r (e - 1)``, with ``r (e - 1)`` from the base's inputs, not intervened). A network that
  writes n_1 last (descending label order) can compute it this way.
* ``causal_model="e_rebuilt"``: ``re`` is downstream of ``u`` and ``e'`` (``e = p^u e'`` is rebuilt from them and
  ``re = r e`` with the base's ``r``) unless ``re`` itself is set. Setting ``u`` from a source then gives the label
  of the real triple ``(p, r, p^(u_src) e'_base)`` (when that ``e`` is in the domain); with no intervention it
  is Algorithm 1. This is the reading of a network that derives ``re`` from the ``e`` it reads.
* Scratch values (a decoder that writes ``re`` and ``floor(re / p^h)`` before the counts, and possibly
  ``floor(re / (e' p^h))``) are functions of ``p``, ``re`` and ``e'`` (``counterfactual_scratch``): a ``u`` swap
  under ``algorithm1`` or ``order`` leaves them as they are; an ``e'`` swap moves the ``e'`` chain only; an ``re``
  swap, or a ``u`` / ``e'`` swap under ``e_rebuilt``, moves them with ``re`` (``upstream``).
  ``realisable`` says whether a counterfactual stays inside a (possibly ``r e``-bounded) domain.
* A counterfactual that needs a count at a level beyond ``length``, or a negative count (``capped`` set
  below ``capped - (H_u - G_u)``, impossible by construction since both parts are counts), raises ValueError.
"""

from __future__ import annotations

import re as _re
from collections.abc import Mapping

import numpy as np
from jaxtyping import Bool, Int

from ktlens.tasks import ktheory as kt
from ktlens.tasks.ktheory_spec import in_domain

__all__ = ["CAUSAL_MODELS", "UPSTREAM", "CAUSAL_VARIABLES", "check_variable", "intermediates", "level_tables", "counts_from",
           "capped_from", "counterfactual", "counterfactual_scratch", "changes_answer", "max_level", "upstream",
           "realisable"]

#: "algorithm1": n_1 from the definition; "order": n_1 from the order identity; "e_rebuilt": re = r p^u e'
#: recomputed from the (possibly swapped) u and e' (module docstring).
CAUSAL_MODELS = ("algorithm1", "order", "e_rebuilt")
#: Intermediates the counts are computed from (set as numbers).
UPSTREAM = ("u", "e_prime", "re")
#: Variables an intervention can set: the upstream ones, the capped count, and n_k for k = 1, 2, ...
CAUSAL_VARIABLES = UPSTREAM + ("capped",) + tuple(f"n_{k}" for k in range(1, kt.MAX_NAMED_COUNT + 1))

Triples = tuple  # (p, r, e): three equal-length integer sequences


def check_variable(name: str) -> str:
    """``name`` if an intervention can set it (``u``, ``e_prime``, ``re``, ``capped``, ``n_k`` with k >= 1),
    else ValueError naming it."""
    if isinstance(name, str) and (name in UPSTREAM or name == "capped" or _re.fullmatch(r"n_[1-9][0-9]*", name)):
        return name
    raise ValueError(f"unknown causal variable {name!r}; known: u, e_prime, re, capped, n_k (k >= 1)")


def intermediates(p, r, e) -> dict[str, Int[np.ndarray, "n"]]:
    """``{"u", "e_prime", "re"}`` of each triple (validated 1-D arrays)."""
    p, r, e, _ = kt.validate_arrays(np.atleast_1d(p), np.atleast_1d(r), np.atleast_1d(e))
    q = kt.derived_quantities(p, r, e)
    return {"u": q["p_adic_valuation_of_e"], "e_prime": q["e_prime"], "re": q["re_product"]}


def _prime_to_p(a: np.ndarray, b: np.ndarray, p: np.ndarray) -> np.ndarray:
    """#{j in (a, b] : p does not divide j} (elementwise)."""
    return (b - a) - (b // p - a // p)


def level_tables(p, u, e_prime, re) -> tuple[Int[np.ndarray, "n k"], Int[np.ndarray, "n k"]]:
    """``(H, G)``: column ``k - 1`` holds ``H_k`` and ``G_k`` (module docstring), for ``k`` up to the largest
    ``s(m)`` over the rows. ``s(m) = k`` iff ``re // p^k < m <= re // p^(k-1)``; ``m = e' j`` with ``p`` not
    dividing ``j`` when ``p`` does not divide ``e'`` (else ``G = 0``)."""
    p, u, e_prime, re = (np.asarray(x, dtype=np.int64) for x in np.broadcast_arrays(p, u, e_prime, re))
    for name, arr, low in (("p", p, 2), ("u", u, 0), ("e_prime", e_prime, 1), ("re", re, 1)):
        if arr.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
        if arr.size and arr.min() < low:
            raise ValueError(f"{name} = {int(arr.min())} is out of range (must be >= {low})")
    capping = e_prime % p != 0
    hs, gs = [], []
    b = re
    while b.size and b.max() > 0:
        a = b // p
        hs.append(_prime_to_p(a, b, p))
        gs.append(np.where(capping, _prime_to_p(a // e_prime, b // e_prime, p), 0))
        b = a
    if not hs:
        return np.zeros((len(re), 0), np.int64), np.zeros((len(re), 0), np.int64)
    return np.stack(hs, axis=1), np.stack(gs, axis=1)


def capped_from(p, u, e_prime, re) -> Int[np.ndarray, "n"]:
    """``capped = #{m in 1..re : p not | m, e' | m, s(m) >= u}`` (all capped ``m`` for ``u <= 1``)."""
    _, g = level_tables(p, u, e_prime, re)
    k = np.arange(1, g.shape[1] + 1)
    return (g * (k[None, :] >= np.asarray(u)[:, None])).sum(1)


def counts_from(p, u, e_prime, re, length: int | None = None) -> Int[np.ndarray, "n length"]:
    """The label ``[n_1, ..., n_L]`` computed from ``(p, u, e', re)`` by the module's formula (no ``r, e``)."""
    u = np.asarray(u, dtype=np.int64)
    h, g = level_tables(p, u, e_prime, re)
    n, levels = h.shape
    width = max(levels, int(u.max(initial=0)))
    k = np.arange(1, width + 1)[None, :]
    pad = lambda x: np.pad(x, ((0, 0), (0, width - levels)))  # noqa: E731
    h, g = pad(h), pad(g)
    u_col = u[:, None]
    moved = (g * (k > u_col)).sum(1)
    out = h - g * (k > u_col) + (k == u_col) * moved[:, None]
    return _fit_length(out, length)


def _fit_length(counts: np.ndarray, length: int | None) -> np.ndarray:
    used = np.flatnonzero(counts.any(0))
    need = int(used[-1]) + 1 if used.size else 0
    if length is None:
        return np.ascontiguousarray(counts[:, :need])
    if need > length:
        row = int(np.flatnonzero(counts[:, length:].any(1))[0])
        raise ValueError(f"the counterfactual of row {row} needs {need} levels, more than length={length}")
    return np.ascontiguousarray(np.pad(counts[:, :need], ((0, 0), (0, length - need))))


def max_level(counts: np.ndarray) -> Int[np.ndarray, "n"]:
    """Index of the last non-zero count per row, plus one (0 for an all-zero row)."""
    counts = np.asarray(counts)
    nz = counts != 0
    return np.where(nz.any(1), counts.shape[1] - np.argmax(nz[:, ::-1], axis=1), 0)


def _upstream(base: Triples, sources: Mapping[str, Triples], causal_model: str) -> tuple[dict, dict]:
    """(the intervened ``u, e', re`` of each base, each source's intermediates by variable)."""
    if causal_model not in CAUSAL_MODELS:
        raise ValueError(f"causal_model={causal_model!r} must be one of {CAUSAL_MODELS}")
    for name in sources:
        check_variable(name)
    base_vals = intermediates(*base)
    n = len(base_vals["u"])
    src_vals = {}
    for name, triple in sources.items():
        vals = intermediates(*triple)
        if len(vals["u"]) != n:
            raise ValueError(f"the source of {name!r} has {len(vals['u'])} triples, the base {n}")
        src_vals[name] = vals
    p = np.atleast_1d(np.asarray(base[0], dtype=np.int64))
    up = {k: (src_vals[k][k] if k in src_vals else base_vals[k]) for k in UPSTREAM}
    if causal_model == "e_rebuilt" and "re" not in sources:
        r_arr = np.atleast_1d(np.asarray(base[1], dtype=np.int64))
        up["re"] = r_arr * p ** up["u"] * up["e_prime"]
    return up, src_vals


def upstream(base: Triples, sources: Mapping[str, Triples] | None = None,
             causal_model: str = "algorithm1") -> dict[str, Int[np.ndarray, "n"]]:
    """``{"u", "e_prime", "re"}`` after the intervention (``counterfactual``'s conventions): the values the
    counterfactual label is computed from. Its ``re`` also fixes Algorithm 1's scratch values ``re`` and
    ``floor(re / p^h)`` (``KTheoryTaskSpec.scratch_values``): unchanged by a ``u`` or ``e'`` swap under
    ``algorithm1`` and ``order``, moved by an ``re`` swap and, under ``e_rebuilt``, by a ``u`` or ``e'`` swap."""
    return _upstream(base, dict(sources or {}), causal_model)[0]


def counterfactual_scratch(base: Triples, sources: Mapping[str, Triples] | None, causal_model: str,
                           spec) -> Int[np.ndarray, "n n_scratch"]:
    """The scratch values Algorithm 1 writes for each base after the intervention (``spec``: a
    `KTheoryTaskSpec`; its ``scratch`` names them): r e, floor(r e / p^h) from the intervened ``re``, and
    floor(r e / (e' p^h)) from the intervened ``re`` and ``e'``. With no intervention: ``spec.scratch_values``."""
    up = upstream(base, sources, causal_model)
    p = np.atleast_1d(np.asarray(base[0], dtype=np.int64))
    return spec.scratch_values_from(p, up["re"], up["e_prime"])


def realisable(base: Triples, sources: Mapping[str, Triples] | None, causal_model: str, primes, r_max: int,
               e_max: int, re_max: int = 0) -> Bool[np.ndarray, "n"]:
    """Whether each counterfactual stays inside a domain (``primes x 1..r_max x 1..e_max``, ``r e <= re_max``
    when ``re_max > 0``): its ``re`` is at most the domain's largest ``r e``, and under ``e_rebuilt`` (``re`` not
    set) the rebuilt triple ``(p, r, p^u e')`` is in the domain. The ``algorithm1`` / ``order`` combinations
    (a swapped ``u`` or ``e'`` with the base's ``re``) are defined everywhere but are not real triples; they
    only need the ``re`` bound, which base and source values always meet."""
    sources = dict(sources or {})
    up = upstream(base, sources, causal_model)
    top = min(r_max * e_max, re_max) if re_max else r_max * e_max
    ok = up["re"] <= top
    p = np.atleast_1d(np.asarray(base[0], dtype=np.int64))
    ok &= np.isin(p, np.asarray(primes))
    if causal_model == "e_rebuilt" and "re" not in sources:
        r = np.atleast_1d(np.asarray(base[1], dtype=np.int64))
        ok &= in_domain(p, r, p ** up["u"] * up["e_prime"], primes, r_max, e_max, re_max)
    return ok


def counterfactual(base: Triples, sources: Mapping[str, Triples] | None = None, length: int | None = None,
                   causal_model: str = "algorithm1", allow_negative: bool = False) -> Int[np.ndarray, "n length"]:
    """The label of each base triple with the variables named in ``sources`` set to the values they take on
    the matching source triples (``{"u": (p', r', e'), ...}``; conventions in the module docstring).

    ``counterfactual(base)`` (no intervention) is the closed form ``summand_count_table``. ValueError naming an
    unknown variable, a source of another length, or a result longer than ``length`` (or with a negative count,
    unless ``allow_negative``)."""
    sources = dict(sources or {})
    up, src_vals = _upstream(base, sources, causal_model)
    p = np.atleast_1d(np.asarray(base[0], dtype=np.int64))
    counts = counts_from(p, up["u"], up["e_prime"], up["re"])
    ks = [int(k[2:]) for k in sources if k.startswith("n_")]
    src_counts = {k: counterfactual(sources[f"n_{k}"]) for k in ks}
    width = max([counts.shape[1], int(up["u"].max(initial=0))] + ks)
    counts = np.pad(counts, ((0, 0), (0, width - counts.shape[1])))
    if "capped" in sources:
        sp = np.atleast_1d(np.asarray(sources["capped"][0], dtype=np.int64))
        v = src_vals["capped"]
        new = capped_from(sp, v["u"], v["e_prime"], v["re"])
        old = capped_from(p, up["u"], up["e_prime"], up["re"])
        rows = np.flatnonzero(up["u"] >= 1)
        counts[rows, up["u"][rows] - 1] += new[rows] - old[rows]
    if causal_model == "order":
        r_arr = np.atleast_1d(np.asarray(base[1], dtype=np.int64))
        e_arr = np.atleast_1d(np.asarray(base[2], dtype=np.int64))
        k = np.arange(2, width + 1)
        counts[:, 0] = r_arr * (e_arr - 1) - (counts[:, 1:] * k).sum(1)
    for k in ks:
        c = src_counts[k]
        counts[:, k - 1] = c[:, k - 1] if c.shape[1] >= k else 0
    if not allow_negative and (counts < 0).any():
        raise ValueError(f"the counterfactual of row {int(np.argwhere(counts < 0)[0, 0])} has a negative count")
    return _fit_length(counts, length)


def changes_answer(variable: str, base: Triples, source: Triples, causal_model: str = "algorithm1") -> Bool[np.ndarray, "n"]:
    """Whether setting ``variable`` to its value on ``source`` changes each base triple's label."""
    check_variable(variable)
    before = counterfactual(base)
    after = counterfactual(base, {variable: source}, causal_model=causal_model, allow_negative=True)
    width = max(before.shape[1], after.shape[1])
    pad = lambda x: np.pad(x, ((0, 0), (0, width - x.shape[1])))  # noqa: E731
    return (pad(before) != pad(after)).any(1)
