"""Hypotheses about units, generated from the task's own variables.

A hypothesis is an event over the domain's rows: ``variable == v``, ``variable >= v``, ``variable <= v`` (and the task's
divisibility facts, which its registry offers as class variables such as ``p_divides_e`` or the residues
``n_mod_q``), optionally restricted to one decoder position. The position restriction is applied while
scoring (`ktlens.analysis.features.labels`), so each event here is one boolean column.

K-theory models with scratch positions (the decoder writes r*e and floor(r*e / p^h) before the counts) get
the scratch values as variables too: ``scratch_at_position`` (the value written at a scratch position) and
one per-example variable per scratch value (e.g. ``re_div_p2``); count variables per position are false at
the scratch positions.

Users add hypotheses as plain functions of the inputs: ``{"name": fn}`` with ``fn(**inputs)`` returning a
boolean array ``[N]`` (per example) or ``[N, positions]`` (per row).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from jaxtyping import Bool, Float

from ktlens.analysis.features.units import FeatureDomain

__all__ = ["Hypothesis", "EventSet", "ScalarSet", "task_events", "scalar_variables"]

RELATIONS = ("==", ">=", "<=", "user")
MAX_EQ_VALUES = 25  # every value of a variable with at most this many distinct values gets an "==" event
N_GE_VALUES = 8  # ">=" and "<=" events at this many quantiles of a scalar variable


@dataclass(frozen=True)
class Hypothesis:
    """``variable relation value`` (at decoder ``position``, or anywhere for None)."""

    variable: str
    relation: str
    value: float | int | bool
    position: int | None = None

    def __post_init__(self) -> None:
        if self.relation not in RELATIONS:
            raise ValueError(f"relation must be one of {RELATIONS}, got {self.relation!r}")

    def text(self, position_names: list[str] | None = None) -> str:
        core = self.variable if self.relation == "user" else f"{self.variable} {self.relation} {_fmt(self.value)}"
        if self.position is None:
            return core
        where = position_names[self.position] if position_names else str(self.position)
        return f"{core} @ pos {self.position} ({where})" if position_names else f"{core} @ pos {self.position}"

    def to_json(self) -> dict:
        v = self.value
        value = bool(v) if isinstance(v, (bool, np.bool_)) else int(v) if float(v).is_integer() else float(v)
        return {"variable": self.variable, "relation": self.relation, "value": value, "position": self.position}


def _fmt(v: float | int | bool) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    return str(int(v)) if float(v).is_integer() else f"{v:.3g}"


@dataclass
class EventSet:
    """``events[i, k, h]``: hypothesis h (unrestricted) holds for example i at position k."""

    hypotheses: list[Hypothesis]
    events: Bool[np.ndarray, "examples positions hypotheses"]


@dataclass
class ScalarSet:
    """Scalar variables per row, for correlations: ``values[i, k, s]``."""

    names: list[str]
    values: Float[np.ndarray, "examples positions scalars"]


def _registry(domain: FeatureDomain):
    if domain.model_type == "ktheory":
        from ktlens.tasks.ktheory import VARIABLES
    else:
        from ktlens.tasks.remainders import VARIABLES
    return VARIABLES


def _columns(domain: FeatureDomain) -> list[tuple[str, str, np.ndarray, np.ndarray | None]]:
    """(name, kind, values [N, K], defined [N, K] or None for everywhere) for every usable variable column.

    K-theory: a per-position variable of the counts (``n_at_position``) is defined at the count positions
    only; with scratch positions the scratch values are variables too (`_scratch_columns`)."""
    registry = _registry(domain)
    N, K = domain.n_examples, domain.n_positions
    out = []
    for name, var in registry.items():
        if domain.model_type == "ktheory":
            if name == "counts":
                continue  # n_1 .. n_L and n_at_position cover it
            if name.startswith("n_") and name[2:].isdigit() and int(name[2:]) > domain.context["length"]:
                continue
        if domain.model_type == "miiii" and (name in ("n", "high_digit", "low_digit")
                                             or (name == "label" and domain.context["spec"].variant == "remainders")):
            continue  # n: one row per value; the digits are digit_0/1; label = n_mod_q for this variant
        values = var(**domain.inputs, **domain.context)
        if var.per_position and domain.model_type == "ktheory" and values.shape[1] == len(domain.count_positions):
            out.append((name, var.kind, *_at_positions(values, domain.count_positions, K)))
        elif var.per_position:  # one column per task / frequency: a variable per column
            labels = _column_labels(domain, name, values.shape[1])
            for j in range(values.shape[1]):
                out.append((f"{name}[{labels[j]}]", var.kind, np.repeat(values[:, j : j + 1], K, axis=1), None))
        else:
            out.append((name, var.kind, np.repeat(values[:, None], K, axis=1), None))
    if domain.model_type == "ktheory" and domain.n_scratch:
        out += _scratch_columns(domain, [values for _, _, values, mask in out if mask is None])
    return out


def _at_positions(values: np.ndarray, positions: range, K: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Columns ``values[:, j]`` placed at ``positions[j]`` of K positions (0 and undefined elsewhere)."""
    if len(positions) == K:
        return values, None
    full = np.zeros((values.shape[0], K), dtype=values.dtype)
    full[:, positions.start : positions.stop] = values
    defined = np.zeros((values.shape[0], K), dtype=bool)
    defined[:, positions.start : positions.stop] = True
    return full, defined


def scratch_variable_name(label: str) -> str:
    """The variable name of a scratch value named ``label`` by the model ('re/p^2' -> 're_div_p2',
    "re/e'p^2" -> 're_div_eprime_p2')."""
    return label.replace("/", "_div_").replace("e'", "eprime_").replace("^", "").rstrip("_")


def _scratch_columns(domain: FeatureDomain, existing: list[np.ndarray]) -> list[tuple[str, str, np.ndarray, np.ndarray | None]]:
    """The scratch values as labelling variables: ``scratch_at_position`` (the value written at scratch
    position k, defined there only), and each scratch value per example (e.g. ``re_div_p2`` =
    floor(r*e / p^2), Algorithm 1's intermediate values) unless a task variable already has exactly its
    values (r*e is ``re``, floor(r*e / p) is ``count_div_p``)."""
    S, K = domain.n_scratch, domain.n_positions
    values = np.asarray(domain.scratch_values, dtype=np.int64)
    out = [("scratch_at_position", "scalar", *_at_positions(values, range(0, S), K))]
    for j, label in enumerate(domain.position_names[:S]):
        col = np.repeat(values[:, j : j + 1], K, axis=1)
        if any(v.shape == col.shape and np.array_equal(v, col) for v in existing):
            continue
        existing.append(col)
        out.append((scratch_variable_name(label), "scalar", col, None))
    return out


def _column_labels(domain: FeatureDomain, name: str, n: int) -> list[str]:
    if domain.model_type == "miiii":
        from ktlens.tasks.remainders import fourier_frequencies, primes_below

        spec = domain.context["spec"]
        if name == "n_mod_q":
            return [str(q) for q in primes_below(spec.p)]
        if name == "label":
            return [str(q) for q in spec.moduli]
        if name.startswith(("cos_", "sin_")):
            return [f"k={k}" for k in fourier_frequencies(spec)]
    return [str(j) for j in range(n)]


def task_events(domain: FeatureDomain, extra: Mapping[str, Callable[..., np.ndarray]] | None = None,
                min_count: int = 5) -> EventSet:
    """The events of every class and scalar variable of the task (see module docstring), plus ``extra``.

    Events that hold on fewer than ``min_count`` or on all rows are dropped (nothing to detect).
    """
    N, K = domain.n_examples, domain.n_positions
    hyps: list[Hypothesis] = []
    cols: list[np.ndarray] = []
    for name, kind, values, defined in _columns(domain):
        if name.startswith(("cos_", "sin_")):
            continue  # Fourier components: correlations only
        seen = values if defined is None else values[defined]
        distinct = np.unique(seen)
        event = (lambda ev: ev) if defined is None else (lambda ev: ev & defined)
        if kind == "class" or len(distinct) <= MAX_EQ_VALUES:
            for v in distinct:
                hyps.append(Hypothesis(name, "==", v.item()))
                cols.append(event(values == v))
        else:
            for v in distinct[:5]:  # the smallest values exactly (0, 1, ...: "exactly one summand")
                hyps.append(Hypothesis(name, "==", v.item()))
                cols.append(event(values == v))
        if kind == "scalar" and len(distinct) > 2:
            qs = np.unique(np.quantile(seen, np.linspace(0, 1, N_GE_VALUES + 2)[1:-1], method="lower"))
            for v in qs:
                if v > distinct[0]:
                    hyps.append(Hypothesis(name, ">=", v.item()))
                    cols.append(event(values >= v))
                if distinct[0] < v < distinct[-1]:
                    hyps.append(Hypothesis(name, "<=", v.item()))
                    cols.append(event(values <= v))
    for name, fn in (extra or {}).items():
        hyps.append(Hypothesis(name, "user", True))
        cols.append(_user_event(name, fn, domain))
    events = np.stack(cols, axis=-1) if cols else np.zeros((N, K, 0), dtype=bool)
    total = events.reshape(N * K, -1).sum(0)
    keep = (total >= min_count) & (total < N * K)
    user = np.array([h.relation == "user" for h in hyps], dtype=bool)
    keep |= user  # the user's own events are always kept
    return EventSet([h for h, k in zip(hyps, keep) if k], events[..., keep])


def _user_event(name: str, fn: Callable[..., np.ndarray], domain: FeatureDomain) -> np.ndarray:
    N, K = domain.n_examples, domain.n_positions
    values = np.asarray(fn(**domain.inputs))
    if values.dtype.kind not in "bui":
        raise ValueError(f"hypothesis {name!r} must return booleans, got dtype {values.dtype}")
    values = values.astype(bool)
    if values.shape == (N,):
        return np.repeat(values[:, None], K, axis=1)
    if values.shape == (N, K):
        return values
    raise ValueError(f"hypothesis {name!r} returned shape {values.shape}, expected ({N},) or ({N}, {K})")


def scalar_variables(domain: FeatureDomain) -> ScalarSet:
    """Every scalar variable column (and integer class variables with an order, e.g. ``u``), per row.

    Where a variable is undefined (a count at a scratch position, a scratch value at a count position) it
    takes its mean over the rows where it is defined, so those rows add nothing to its covariance with a unit."""
    names, cols = [], []
    for name, kind, values, defined in _columns(domain):
        if values.dtype.kind == "b":
            continue
        names.append(name)
        col = values.astype(np.float64)
        if defined is not None:
            col = np.where(defined, col, col[defined].mean())
        cols.append(col)
    return ScalarSet(names, np.stack(cols, axis=-1))
