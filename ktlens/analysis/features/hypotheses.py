"""Hypotheses about units, generated from the task's own variables.

A hypothesis is an event over the domain's rows: ``variable == v``, ``variable >= v``, ``variable <= v`` (and the task's
divisibility facts, which its registry offers as class variables such as ``p_divides_e`` or the residues
``n_mod_q``), optionally restricted to one decoder position. The position restriction is applied while
scoring (`ktlens.analysis.features.labels`), so each event here is one boolean column.

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


def _columns(domain: FeatureDomain) -> list[tuple[str, str, np.ndarray]]:
    """(name, kind, values [N, K]) for every usable variable column of the task."""
    registry = _registry(domain)
    N, K = domain.n_examples, domain.n_positions
    out = []
    for name, var in registry.items():
        if domain.model_type == "ktheory":
            if name == "counts":
                continue  # n_1 .. n_L and n_at_position cover it
            if name.startswith("n_") and name[2:].isdigit() and int(name[2:]) > K:
                continue
        if domain.model_type == "miiii" and (name in ("n", "high_digit", "low_digit")
                                             or (name == "label" and domain.context["spec"].variant == "remainders")):
            continue  # n: one row per value; the digits are digit_0/1; label = n_mod_q for this variant
        values = var(**domain.inputs, **domain.context)
        if var.per_position and values.shape[1] == K and domain.model_type == "ktheory":
            out.append((name, var.kind, values))
        elif var.per_position:  # one column per task / frequency: a variable per column
            labels = _column_labels(domain, name, values.shape[1])
            for j in range(values.shape[1]):
                out.append((f"{name}[{labels[j]}]", var.kind, np.repeat(values[:, j : j + 1], K, axis=1)))
        else:
            out.append((name, var.kind, np.repeat(values[:, None], K, axis=1)))
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
    for name, kind, values in _columns(domain):
        if name.startswith(("cos_", "sin_")):
            continue  # Fourier components: correlations only
        distinct = np.unique(values)
        if kind == "class" or len(distinct) <= MAX_EQ_VALUES:
            for v in distinct:
                hyps.append(Hypothesis(name, "==", v.item()))
                cols.append(values == v)
        else:
            for v in distinct[:5]:  # the smallest values exactly (0, 1, ...: "exactly one summand")
                hyps.append(Hypothesis(name, "==", v.item()))
                cols.append(values == v)
        if kind == "scalar" and len(distinct) > 2:
            qs = np.unique(np.quantile(values, np.linspace(0, 1, N_GE_VALUES + 2)[1:-1], method="lower"))
            for v in qs:
                if v > distinct[0]:
                    hyps.append(Hypothesis(name, ">=", v.item()))
                    cols.append(values >= v)
                if distinct[0] < v < distinct[-1]:
                    hyps.append(Hypothesis(name, "<=", v.item()))
                    cols.append(values <= v)
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
    """Every scalar variable column (and integer class variables with an order, e.g. ``u``), per row."""
    names, cols = [], []
    for name, kind, values in _columns(domain):
        if values.dtype.kind == "b":
            continue
        names.append(name)
        cols.append(values.astype(np.float64))
    return ScalarSet(names, np.stack(cols, axis=-1))
