"""Named ground-truth variables of a task: what probes decode, features are labelled with and causal
abstractions intervene on.

Each task module owns a registry ``VARIABLES`` (name -> `TaskVariable`), e.g.
``ktlens.tasks.ktheory.VARIABLES`` (inputs ``p, r, e``) and ``ktlens.tasks.remainders.VARIABLES``
(inputs ``n, spec``). A variable is computed from the task's inputs, given as keyword arguments; every
compute function takes all of a task's inputs (and optional context such as a label length) and
ignores the ones it does not need::

    from ktlens.tasks.ktheory import VARIABLES
    values = compute_variables(VARIABLES, ["u", "n_2"], p=p, r=r, e=e)
    exactly_one_z_p2 = values["n_2"] == 1

Values are numpy arrays: ``[N]`` for a per-example variable, ``[N, C]`` for a per-position one, where
the column axis is the one named in the variable's definition (K-theory: decoder label positions;
remainders: one column per task).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

__all__ = ["TaskVariable", "VariableKind", "make_registry", "compute_variables"]

VariableKind = Literal["class", "scalar"]
KINDS = ("class", "scalar")


@dataclass(frozen=True)
class TaskVariable:
    """One named quantity of a task, exactly defined.

    ``kind``: "class" (integer or boolean values, compared for equality) or "scalar" (a real number);
    ``description``: one line in words; ``definition``: the exact definition as text;
    ``compute(**inputs)``: the values as a numpy array, ``[N]`` or (``per_position``) ``[N, C]``.
    """

    name: str
    kind: str  # "class" or "scalar" (checked in __post_init__)
    description: str
    definition: str
    compute: Callable[..., np.ndarray]
    per_position: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"TaskVariable name must be an identifier, got {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(f"TaskVariable {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if not callable(self.compute):
            raise ValueError(f"TaskVariable {self.name!r}: compute must be callable, got {self.compute!r}")

    def __call__(self, **inputs: Any) -> np.ndarray:
        """The values for these inputs, checked: 1-D (2-D when per position), numbers of the right kind."""
        values = np.asarray(self.compute(**inputs))
        want = 2 if self.per_position else 1
        if values.ndim != want:
            raise ValueError(f"variable {self.name!r} computed an array of shape {values.shape}, expected {want}-D")
        if self.kind == "class" and values.dtype.kind not in "iub":
            raise ValueError(f"class variable {self.name!r} computed dtype {values.dtype}, expected integers or booleans")
        if self.kind == "scalar" and values.dtype.kind not in "iubf":
            raise ValueError(f"scalar variable {self.name!r} computed dtype {values.dtype}, expected numbers")
        return values


def make_registry(variables: Iterable[TaskVariable]) -> Mapping[str, TaskVariable]:
    """A read-only name -> variable mapping in the given order; ValueError on a repeated name."""
    out: dict[str, TaskVariable] = {}
    for v in variables:
        if not isinstance(v, TaskVariable):
            raise ValueError(f"registry entries must be TaskVariable, got {v!r}")
        if v.name in out:
            raise ValueError(f"variable {v.name!r} is defined twice")
        out[v.name] = v
    return MappingProxyType(out)


def compute_variables(
    registry: Mapping[str, TaskVariable], names: Iterable[str] | None = None, **inputs: Any
) -> dict[str, np.ndarray]:
    """``{name: values}`` for the named variables (all of them for ``names=None``), in the order asked.

    ValueError naming an unknown variable (and listing the known ones).
    """
    names = list(registry) if names is None else [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise ValueError(f"unknown task variable {unknown[0]!r}; known: {list(registry)}")
    return {n: registry[n](**inputs) for n in names}
