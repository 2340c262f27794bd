"""One override parser for every study's presets: ``section.key=value`` items applied to a preset dataclass.

A preset is a dataclass whose fields are sections (a dataclass such as ``TrainConfig``, or a validated
dict of settings such as the model's) and scalar extras (``label_order``, ``snapshot_every``, ...):

    apply_overrides(preset, ["train.lr=3e-3", "model.n_layers=2", "grid.test_fraction=0.1", "snapshot_every=0"])

Values are parsed as JSON where they can be (``3e-3``, ``[2,3]``, ``null``, ``"pre"``), else kept as text
(``model.normalization=pre``). A scalar extra is set as ``KEY=value`` or ``preset.KEY=value``. An unknown
section or key, or a value of the wrong type, is a ``ValueError`` naming it; the result is validated by
constructing its dataclasses again, and the input preset is left as it was.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import types
import typing
from collections.abc import Sequence
from typing import Any, Literal, TypeVar, Union

P = TypeVar("P")


def parse_value(text: str) -> Any:
    """JSON where it parses, else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(preset: P, items: Sequence[str]) -> P:
    """A validated copy of the preset dataclass ``preset`` with the ``section.key=value`` items applied."""
    if not dataclasses.is_dataclass(preset) or isinstance(preset, type):
        raise ValueError(f"apply_overrides needs a preset dataclass, got {type(preset).__name__}")
    if isinstance(items, str):
        raise ValueError(f"overrides must be a list of 'section.key=value' strings, got the string {items!r}")
    fields = {f.name: f for f in dataclasses.fields(preset)}
    values = {name: copy.deepcopy(getattr(preset, name)) for name in fields}
    for item in items:
        key, sep, text = str(item).partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not of the form section.key=value")
        value = parse_value(text)
        section, dot, sub = key.partition(".")
        if dot and section == "preset":  # preset.KEY=value: a scalar field of the preset itself
            section, dot, sub = sub, "", ""
        if section not in fields:
            known = sorted(fields)
            raise ValueError(f"override {item!r}: unknown section {section!r} (known: {known})")
        current = values[section]
        is_section = dataclasses.is_dataclass(current) or isinstance(current, dict)
        if not dot:
            if is_section:
                raise ValueError(f"override {item!r}: {section!r} is a section; give {section}.KEY=value")
            _check_type(item, value, _hint(type(preset), section))
            values[section] = value
        elif not is_section:
            raise ValueError(f"override {item!r}: {section!r} is a value, not a section; give {section}=value")
        elif isinstance(current, dict):
            allowed = _dict_section_keys(type(preset), section)
            if allowed is not None and sub not in allowed:
                raise ValueError(f"override {item!r}: unknown key {sub!r} in section {section!r} (known: {sorted(allowed)})")
            if allowed is not None:
                _check_type(item, value, allowed[sub])
            current[sub] = value
        else:
            section_fields = {f.name for f in dataclasses.fields(current)}
            if sub not in section_fields:
                raise ValueError(
                    f"override {item!r}: unknown key {sub!r} in section {section!r} (known: {sorted(section_fields)})"
                )
            _check_type(item, value, _hint(type(current), sub))
            values[section] = _rebuild(item, current, {sub: value})
    try:
        return type(preset)(**values)
    except (TypeError, ValueError) as err:
        raise ValueError(f"overrides {list(items)} give an invalid {type(preset).__name__}: {err}") from None


def _rebuild(item: str, section: Any, changes: dict[str, Any]) -> Any:
    """``dataclasses.replace`` that reports a failed validation as a ValueError naming the override."""
    try:
        return dataclasses.replace(section, **changes)
    except (TypeError, ValueError) as err:
        raise ValueError(f"override {item!r}: {err}") from None


def _dict_section_keys(cls: type, section: str) -> dict[str, Any] | None:
    """Allowed keys (with their types) of a dict section, as the preset class declares them."""
    declare = getattr(cls, "section_keys", None)
    return declare(section) if declare is not None else None


def _hint(cls: type, name: str) -> Any:
    try:
        return typing.get_type_hints(cls).get(name, Any)
    except Exception:  # an annotation that does not resolve: no type check, the dataclass still validates
        return Any


def _check_type(item: str, value: Any, hint: Any) -> None:
    if not _matches(value, hint):
        raise ValueError(f"override {item!r}: {value!r} is not a valid {_describe(hint)}")


def _matches(value: Any, hint: Any) -> bool:
    """Whether a JSON-parsed value fits a type hint (ints pass for floats, lists for tuples)."""
    if hint is Any or hint is object:
        return True
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if origin is Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (tuple, list) or hint in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if origin is tuple and args and Ellipsis not in typing.get_args(hint) and len(args) != len(value):
            return False
        inner = args[0] if len(set(args)) == 1 else Any
        return all(_matches(v, inner) for v in value)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True  # a type this check does not know: left to the dataclass's own validation


def _describe(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
