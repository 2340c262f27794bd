"""Probe records: what to decode (`ProbeTarget`), one table row (`ProbeResult`), the probe inputs
gathered from one hook (`Features`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union

import numpy as np
from jaxtyping import Float, Int
from torch import Tensor

__all__ = ["PositionSpec", "ProbeTarget", "ProbeResult", "Features"]

PositionSpec = Union[int, Sequence[int], Literal["flatten", "all", "none", "default"]]


@dataclass
class ProbeTarget:
    """One quantity to decode.

    ``values`` is ``[N]`` (one value per example) or, with ``per_position=True``, ``[N, P]`` where
    column k is the value at position ``first_position + k`` (e.g. the K-theory label n_{k+1} at decoder
    position k; with scratch positions first, the counts start at ``first_position = n_scratch``); rows
    at positions the columns do not cover are left out of that target's fit.
    Class values may be any integers or booleans (they are re-coded 0..C-1); scalar values are floats.
    ``description`` says exactly what the number is. ``mask`` (bool ``[N]``, optional) restricts the
    target to some examples (e.g. only triples with p | e); the others are left out of its train and
    test rows, and its shuffled control permutes labels among the kept examples only.
    """

    name: str
    kind: str  # "class" or "scalar" (checked in __post_init__)
    values: np.ndarray
    description: str = ""
    per_position: bool = False
    mask: np.ndarray | None = None
    first_position: int = 0  # per-position targets: the position of column 0

    def __post_init__(self) -> None:
        if self.kind not in ("class", "scalar"):
            raise ValueError(f"ProbeTarget {self.name!r}: kind must be 'class' or 'scalar', got {self.kind!r}")
        values = np.asarray(self.values)
        want = 2 if self.per_position else 1
        if values.ndim != want:
            raise ValueError(
                f"ProbeTarget {self.name!r}: values must be {want}-D "
                f"({'[N, positions]' if self.per_position else '[N]'}), got shape {values.shape}"
            )
        if self.kind == "class" and values.dtype.kind not in "iub":
            raise ValueError(f"ProbeTarget {self.name!r}: class values must be integers or booleans, got dtype {values.dtype}")
        if self.kind == "scalar":
            if values.dtype.kind not in "iubf":
                raise ValueError(f"ProbeTarget {self.name!r}: scalar values must be numbers, got dtype {values.dtype}")
            values = values.astype(np.float64)
            if not np.isfinite(values).all():
                raise ValueError(f"ProbeTarget {self.name!r}: scalar values contain NaN or inf")
        self.values = values
        if not isinstance(self.first_position, (int, np.integer)) or self.first_position < 0:
            raise ValueError(f"ProbeTarget {self.name!r}: first_position must be an integer >= 0, got {self.first_position!r}")
        if self.first_position and not self.per_position:
            raise ValueError(f"ProbeTarget {self.name!r}: first_position={self.first_position} needs per_position=True")
        if self.mask is not None:
            mask = np.asarray(self.mask)
            if mask.dtype != bool or mask.shape != (len(values),):
                raise ValueError(
                    f"ProbeTarget {self.name!r}: mask must be a boolean array of shape ({len(values)},), "
                    f"got dtype {mask.dtype} shape {mask.shape}"
                )
            if mask.sum() < 2:
                raise ValueError(f"ProbeTarget {self.name!r}: mask keeps {int(mask.sum())} examples (need >= 2)")
            self.mask = mask

    def __len__(self) -> int:
        return len(self.values)


@dataclass
class ProbeResult:
    """One row of a probe table: how well `target` is linearly decoded from `hook` at `position`."""

    target: str
    hook: str
    position: str  # the position spec that was used, resolved ("0", "-1", "flatten", "all", "none", "[0, 2]")
    kind: str  # "class" or "scalar"
    metric: str  # "accuracy" (class) or "r2" (scalar)
    accuracy: float  # test accuracy / test R^2 of the probe on the trained model
    baseline: float  # majority class (class) / predicting the train mean (scalar), on the test split
    shuffled_accuracy: float | None  # same probe, labels permuted over examples
    control_accuracy: float | None  # same probe on a randomly initialised model of the same architecture
    train_accuracy: float  # the probe's score on its own training split
    n_train: int
    n_test: int
    n_features: int
    n_classes: int | None  # classes seen in the data (class targets)
    description: str = ""
    l2: float | None = None  # L2 strength of the probe (ridge: chosen by generalized cross-validation)
    fit_seconds: float = 0.0  # share of the fitting time of this row's batch

    @property
    def selectivity(self) -> float | None:
        """accuracy - shuffled_accuracy."""
        return None if self.shuffled_accuracy is None else self.accuracy - self.shuffled_accuracy

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["selectivity"] = self.selectivity
        return d


@dataclass
class Features:
    """Probe inputs from one hook: ``X[row]`` belongs to example ``example[row]`` at ``position[row]``
    (``position`` is -1 where a row mixes positions or the hook has none)."""

    hook: str
    spec: str
    X: Float[Tensor, "rows features"]  # float32
    example: Int[np.ndarray, " rows"]
    position: Int[np.ndarray, " rows"]

