"""What a K-theory model must remember of its task: the domain, the vocabulary, the label length and order.

A :class:`KTheoryTaskSpec` is the typed form of ``model.task_spec`` (the JSON dict stored in every
K-theory checkpoint): the domain ``primes x 1..r_max x 1..e_max``, optionally the grid it was cut
from (:class:`~ktlens.tasks.ktheory_data.KTheoryGridSpec`, which also records the train / test
split), and the order in which the decoder writes the counts.

The label length ``seq_len`` and the largest count ``max_count`` are functions of the domain
(:func:`~ktlens.tasks.ktheory.sequence_length`, the maximum of
:func:`~ktlens.tasks.ktheory.summand_count_table` over the domain): they are recomputed on
construction, a stored value that disagrees is an error, and a missing one takes the recomputed
value (which is what training used). ``label_order`` has no default: read the wrong way, a
descending model predicts every answer reversed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, no_type_check

import numpy as np

from ktlens.tasks.ktheory import e_prime, is_prime, sequence_length
from ktlens.tasks.ktheory_data import KTheoryGridSpec, KTheoryVocab, domain_label_shape
from ktlens.validation import FieldError, check_bool, check_choice, check_int, check_keys

__all__ = ["LABEL_ORDERS", "SCRATCH_VARIABLES", "KTheoryTaskSpec", "domain_max_count", "in_domain"]

LABEL_ORDERS = ("ascending", "descending")  # decoder writes n_1 first, or n_L first
# values the decoder may write before the counts (a scratchpad), in this order: "re" is r*e, "quotients" the
# L - 1 values floor(r e / p^h), h = 1..L-1 (Algorithm 1's level boundaries: s(m) >= h + 1 iff m <= r e / p^h),
# "e_prime_quotients" the L values floor(r e / (e' p^h)), h = 0..L-1 (how many multiples of e' lie below each
# boundary: with them n_h is a sum of second differences, see `ktheory.counts_from_boundaries`)
SCRATCH_VARIABLES = ("re", "quotients", "e_prime_quotients")
MAX_DOMAIN = 10**7  # triples: five times the reference grid; bounds the work of deriving max_count
TASK = "ktheory"


@lru_cache(maxsize=32)
def _domain_label_shape(primes: tuple[int, ...], r_max: int, e_max: int, re_max: int) -> tuple[int, int]:
    return domain_label_shape(primes, r_max, e_max, re_max)


def domain_max_count(primes: list[int], r_max: int, e_max: int, re_max: int = 0) -> int:
    """Largest count n_i over ``primes x 1..r_max x 1..e_max`` (r e <= re_max when > 0; closed-form table; cached)."""
    return _domain_label_shape(tuple(int(q) for q in primes), int(r_max), int(e_max), int(re_max))[1]


def domain_seq_len(primes: list[int], r_max: int, e_max: int, re_max: int = 0) -> int:
    """Label length over the domain (the closed form `sequence_length` without an r e bound)."""
    if not re_max:
        return sequence_length(primes, r_max, e_max)
    return _domain_label_shape(tuple(int(q) for q in primes), int(r_max), int(e_max), int(re_max))[0]


def in_domain(p: Any, r: Any, e: Any, primes: Any, r_max: int, e_max: int, re_max: int = 0) -> np.ndarray:
    """Whether each (p, r, e) lies in ``primes x 1..r_max x 1..e_max`` (with ``r e <= re_max`` when ``re_max > 0``);
    a boolean array of the broadcast shape. The one statement of a K-theory domain's membership rule."""
    p, r, e = np.broadcast_arrays(*(np.asarray(x, dtype=np.int64) for x in (p, r, e)))
    ok = np.isin(p, np.asarray(primes, dtype=np.int64)) & (r >= 1) & (r <= r_max) & (e >= 1) & (e <= e_max)
    return np.asarray(ok & (r * e <= re_max) if re_max else ok)


@no_type_check  # validated in __post_init__, so bad values get a ValueError naming them
@dataclass(frozen=True)
class KTheoryTaskSpec:
    """Domain, vocabulary, label length and label order of a K-theory model, checked on construction."""

    primes: tuple[int, ...]  # the trained primes, ascending and distinct
    r_max: int  # r ranges over 1..r_max
    e_max: int  # e ranges over 1..e_max
    label_order: str  # "ascending": the decoder writes n_1 first; "descending": n_L first
    grid: KTheoryGridSpec | None = None  # the grid (and split) the domain was cut from, when known
    seq_len: int | None = None  # label length L; derived from the domain (None: computed)
    max_count: int | None = None  # largest count in the domain; derived (None: computed)
    re_max: int = 0  # > 0: the domain keeps only r * e <= re_max
    n1_from_order: bool = False  # answers take n_1 = r(e-1) - sum_{i>=2} i n_i (the order) instead of the decoded n_1
    scratch: tuple[str, ...] = ()  # intermediate values the decoder writes before the counts (SCRATCH_VARIABLES)

    def __post_init__(self) -> None:
        primes = self.primes
        if not isinstance(primes, (list, tuple)) or not primes:
            raise FieldError("primes", primes, "must be a non-empty list of primes")
        primes = tuple(check_int(f"primes[{i}]", q) for i, q in enumerate(primes))
        bad = [q for q in primes if not is_prime(q)]
        if bad:
            raise FieldError("primes", list(primes), f"contains a non-prime: {bad[0]}")
        if sorted(set(primes)) != list(primes):
            raise FieldError("primes", list(primes), "must be sorted and distinct")
        object.__setattr__(self, "primes", primes)
        object.__setattr__(self, "r_max", check_int("r_max", self.r_max, minimum=1))
        object.__setattr__(self, "e_max", check_int("e_max", self.e_max, minimum=1))
        object.__setattr__(self, "re_max", check_int("re_max", self.re_max, minimum=0))
        if self.re_max and self.re_max < max(self.r_max, self.e_max):
            raise FieldError("re_max", self.re_max, f"must be 0 (no bound) or >= max(r_max, e_max) = {max(self.r_max, self.e_max)}")
        check_choice("label_order", self.label_order, LABEL_ORDERS)
        check_bool("n1_from_order", self.n1_from_order)
        if not isinstance(self.scratch, (list, tuple)) or any(v not in SCRATCH_VARIABLES for v in self.scratch):
            raise FieldError("scratch", self.scratch, f"must be a list of names from {SCRATCH_VARIABLES}")
        if list(self.scratch) != [v for v in SCRATCH_VARIABLES if v in self.scratch]:
            raise FieldError("scratch", self.scratch, f"must list distinct names in the order {SCRATCH_VARIABLES}")
        object.__setattr__(self, "scratch", tuple(self.scratch))
        size = len(primes) * self.r_max * self.e_max
        if size > MAX_DOMAIN:
            name = "r_max" if self.r_max >= self.e_max else "e_max"
            raise FieldError(name, getattr(self, name), f"makes a domain of {size} triples (at most {MAX_DOMAIN})")
        if self.grid is not None:
            if not isinstance(self.grid, KTheoryGridSpec):
                raise FieldError("grid", self.grid, "must be a KTheoryGridSpec or null")
            grid_primes = "primes" if self.grid.primes is not None else "n_primes"
            for name, grid_name, mine, theirs in (
                ("primes", grid_primes, list(primes), self.grid.prime_list()),
                ("r_max", "r_max", self.r_max, self.grid.r_max),
                ("e_max", "e_max", self.e_max, self.grid.e_max),
                ("re_max", "re_max", self.re_max, self.grid.re_max),
            ):
                if mine != theirs:
                    raise FieldError(
                        f"grid.{grid_name}", getattr(self.grid, grid_name), f"disagrees with the task's {name}", (name,)
                    )
        for name, derived in (
            ("seq_len", domain_seq_len(list(primes), self.r_max, self.e_max, self.re_max)),
            ("max_count", max(domain_max_count(list(primes), self.r_max, self.e_max, self.re_max), self._scratch_max())),
        ):
            stored = getattr(self, name)
            if stored is None:
                object.__setattr__(self, name, derived)
            elif check_int(name, stored) != derived:
                raise FieldError(name, stored, f"disagrees with the domain, which gives {derived}")
            else:
                object.__setattr__(self, name, int(stored))

    # ----- derived ---------------------------------------------------------------------------------
    @property
    def vocab(self) -> KTheoryVocab:
        """Token ids of the source triple and the count sequence."""
        return KTheoryVocab(
            src_vocab=self.src_vocab, max_count=self.max_count, seq_len=self.seq_len, n_scratch=len(self.scratch_labels())
        )

    def contains(self, p: Any, r: Any, e: Any) -> np.ndarray:
        """Whether each (p, r, e) lies in this domain (`in_domain`); a boolean array."""
        return in_domain(p, r, e, self.primes, self.r_max, self.e_max, self.re_max)

    def scratch_labels(self) -> list[str]:
        """The name of each scratch value, in decoding order (e.g. ["re", "re/p", "re/p^2", ...])."""
        names = {
            "re": ["re"],
            "quotients": ["re/p"] + [f"re/p^{h}" for h in range(2, self.seq_len)],
            "e_prime_quotients": ["re/e'", "re/e'p"] + [f"re/e'p^{h}" for h in range(2, self.seq_len)],
        }
        return [name for v in self.scratch for name in names[v]]

    def _scratch_max(self) -> int:
        """Largest scratch value over the domain (0 without a scratchpad)."""
        if not self.scratch:
            return 0
        re_top = min(self.r_max * self.e_max, self.re_max) if self.re_max else self.r_max * self.e_max
        return re_top if {"re", "e_prime_quotients"} & set(self.scratch) else re_top // min(self.primes)

    def scratch_values(self, p: Any, r: Any, e: Any) -> np.ndarray:
        """The scratch values of each triple, ``[N, len(scratch_labels())]`` (int64), in decoding order."""
        p, r, e = np.broadcast_arrays(*(np.asarray(x, dtype=np.int64) for x in (p, r, e)))
        return self.scratch_values_from(p, r * e, e_prime(p, r, e))

    def scratch_values_from(self, p: Any, re: Any, e_prime_: Any) -> np.ndarray:
        """`scratch_values` from Algorithm 1's intermediate values p, r e and e' (for counterfactual values:
        re or e' set by an intervention, `ktlens.tasks.ktheory_causal.counterfactual_scratch`)."""
        p, re, e_prime_ = np.broadcast_arrays(*(np.asarray(x, dtype=np.int64) for x in (p, re, e_prime_)))
        re_over_e_prime = re // e_prime_ if "e_prime_quotients" in self.scratch else None
        columns = {
            "re": lambda: [re],
            "quotients": lambda: [re // p**h for h in range(1, self.seq_len)],
            "e_prime_quotients": lambda: [re_over_e_prime // p**h for h in range(self.seq_len)],
        }
        cols = [c for v in self.scratch for c in columns[v]()]
        return np.stack(cols, axis=-1) if cols else np.zeros(p.shape + (0,), np.int64)

    @property
    def src_vocab(self) -> int:
        """Source vocabulary size: the integers 0..max(max prime, r_max, e_max) are ids."""
        return max(max(self.primes), self.r_max, self.e_max) + 1

    @classmethod
    def of_grid(
        cls, grid: KTheoryGridSpec, label_order: str, n1_from_order: bool = False, scratch: tuple[str, ...] = ()
    ) -> KTheoryTaskSpec:
        """The spec of a model trained on `grid`."""
        return cls(
            primes=tuple(grid.prime_list()), r_max=grid.r_max, e_max=grid.e_max, label_order=label_order, grid=grid,
            re_max=grid.re_max, n1_from_order=n1_from_order, scratch=tuple(scratch),
        )

    # ----- JSON --------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``model.task_spec``); ``grid`` is left out when unknown."""
        d: dict[str, Any] = {
            "task": TASK,
            "primes": list(self.primes),
            "r_max": self.r_max,
            "e_max": self.e_max,
            "seq_len": self.seq_len,
            "max_count": self.max_count,
            "label_order": self.label_order,
        }
        if self.re_max:
            d["re_max"] = self.re_max
        if self.n1_from_order:
            d["n1_from_order"] = True
        if self.scratch:
            d["scratch"] = list(self.scratch)
        if self.grid is not None:
            d["grid"] = self.grid.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: Any) -> KTheoryTaskSpec:
        """Inverse of `to_dict`, or FieldError naming the field.

        Required: ``primes``, ``r_max``, ``e_max``, ``label_order``, and every field of ``grid`` when
        it is given. May be absent: ``task`` (always "ktheory"), ``seq_len`` and ``max_count``
        (recomputed from the domain, as training computed them), ``grid`` (only the split is then
        unknown; the domain and every answer are the same).
        """
        known = ("task", "primes", "r_max", "e_max", "seq_len", "max_count", "grid", "label_order", "re_max", "n1_from_order", "scratch")
        data = check_keys(data, known, ("primes", "r_max", "e_max", "label_order"), what="task_spec fields")
        if data.get("task", TASK) != TASK:
            raise FieldError("task", data["task"], f"must be {TASK!r}")
        grid = data.get("grid")
        if grid is not None:
            if not isinstance(grid, dict):
                raise FieldError("grid", grid, "must be a JSON object of KTheoryGridSpec fields, or null")
            try:
                grid = KTheoryGridSpec.from_dict(grid, strict=True)
            except FieldError as err:
                raise err.within("grid") from None
        primes = data["primes"]
        if not isinstance(primes, (list, tuple)):
            raise FieldError("primes", primes, "must be a non-empty list of primes")
        for name in ("seq_len", "max_count"):
            if name in data and data[name] is None:
                raise FieldError(name, None, "must be an integer (or left out)")
        return cls(
            primes=tuple(primes),
            r_max=data["r_max"],
            e_max=data["e_max"],
            label_order=data["label_order"],
            grid=grid,
            seq_len=data.get("seq_len"),
            max_count=data.get("max_count"),
            re_max=data.get("re_max", 0),
            n1_from_order=data.get("n1_from_order", False),
            scratch=data.get("scratch", ()),
        )

    @classmethod
    def coerce(cls, spec: KTheoryTaskSpec | dict[str, Any]) -> KTheoryTaskSpec:
        """`spec` itself, or the spec of its JSON dict."""
        return spec if isinstance(spec, KTheoryTaskSpec) else cls.from_dict(spec)

