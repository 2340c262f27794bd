"""Field-by-field checks for the typed configs and specs, with errors that name the field and the value.

Every check raises :class:`FieldError` (a ``ValueError``) whose ``field`` is the dotted name of the
field (``"act_fn"``, ``"grid.seed"``); :meth:`FieldError.within` prefixes it with the name of the
enclosing section (``"model_config"``, ``"task_spec"``), so a checkpoint loader can report
``config.json: task_spec.label_order is missing``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

__all__ = ["MISSING", "FieldError", "check_int", "check_real", "check_bool", "check_choice", "check_str", "check_keys"]


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()  # the value of a field absent from its dict


class FieldError(ValueError):
    """A field of a config or spec is missing, mistyped, out of range or inconsistent."""

    def __init__(self, field: str, value: Any, why: str, related: tuple[str, ...] = ()):
        self.field, self.value, self.why, self.related = field, value, why, tuple(related)
        shown = repr(value)
        if len(shown) > 200:
            shown = shown[:200] + "..."
        text = f"{field} is missing: {why}" if value is MISSING else f"{field}={shown}: {why}"
        if self.related:
            text += f" (fields: {', '.join((field, *self.related))})"
        super().__init__(text)

    def within(self, section: str) -> FieldError:
        """The same error with the field (and the related fields) named inside `section` (``section.field``)."""
        return FieldError(f"{section}.{self.field}", self.value, self.why, tuple(f"{section}.{r}" for r in self.related))


def is_int(value: Any) -> bool:
    """An integer that is not a bool (numpy integers count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(field: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """`value` as an int, or FieldError when it is not an integer in minimum..maximum (a float is refused)."""
    if not is_int(value):
        raise FieldError(field, value, "must be an integer")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        lo = "-inf" if minimum is None else minimum
        hi = "inf" if maximum is None else maximum
        raise FieldError(field, value, f"must be in {lo}..{hi}")
    return value


def check_real(
    field: str, value: Any, low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> float:
    """`value` as a float, or FieldError when it is not a finite real number in the interval."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise FieldError(field, value, "must be a finite number")
    value = float(value)
    if value < low or value > high or (low_open and value == low) or (high_open and value == high):
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise FieldError(field, value, f"must be in {interval}")
    return value


def check_bool(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise FieldError(field, value, "must be true or false")
    return value


def check_str(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError(field, value, "must be a string")
    return value


def check_choice(field: str, value: Any, choices: Iterable[Any]) -> Any:
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise FieldError(field, value, f"must be one of {choices}")
    return value


def check_keys(
    data: Any, known: Iterable[str], required: Iterable[str] = (), what: str = "fields", prefix: str = ""
) -> dict[str, Any]:
    """`data` as a dict with no unknown keys and every required key, or FieldError naming the first offender."""
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be given as a dict, got {data!r}")
    known = set(known)
    for key in data:
        if key not in known:
            raise FieldError(f"{prefix}{key}", data[key], f"unknown field (known {what}: {sorted(known)})")
    for key in required:
        if key not in data:
            raise FieldError(f"{prefix}{key}", MISSING, "required")
    return data
