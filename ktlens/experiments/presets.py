"""What the studies' presets share: checked model settings and the result of training a preset."""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ktlens.models.config import ModelConfig
from ktlens.train import EvalRecord, TrainConfig, TrainResult

#: ModelConfig fields a study derives from its task (vocabulary sizes, context) or that are not settings.
TASK_DERIVED = ("d_vocab", "d_vocab_out", "n_ctx", "d_vocab_src", "n_ctx_src", "extra")


def model_setting_types(exclude: tuple[str, ...] = TASK_DERIVED) -> dict[str, Any]:
    """ModelConfig field names a preset may set, with their types."""
    hints = inspect.get_annotations(ModelConfig, eval_str=True)  # get_type_hints is empty under @no_type_check
    return {f.name: hints[f.name] for f in dataclasses.fields(ModelConfig) if f.name not in exclude}


def check_model_settings(settings: Any, owner: str, exclude: tuple[str, ...] = TASK_DERIVED) -> dict[str, Any]:
    """A copy of ``settings`` (ModelConfig fields other than ``exclude``), or ValueError naming the bad one.

    The values are checked by building a ModelConfig with placeholder vocabulary sizes.
    """
    if not isinstance(settings, dict):
        raise ValueError(f"{owner}.model must be a dict of ModelConfig fields, got {settings!r}")
    allowed = model_setting_types(exclude)
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise ValueError(f"{owner}.model: unknown ModelConfig field(s) {unknown} (allowed: {sorted(allowed)})")
    placeholders = {k: 2 for k in ("d_vocab", "d_vocab_out", "n_ctx")}
    try:
        ModelConfig(**placeholders, **settings)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{owner}.model: {err}") from None
    return dict(settings)


def check_train_config(train: Any, owner: str) -> TrainConfig:
    """``train`` as a TrainConfig (a dict of its fields is converted), or ValueError naming the problem."""
    if isinstance(train, TrainConfig):
        return train
    if not isinstance(train, dict):
        raise ValueError(f"{owner}.train must be a TrainConfig or a dict of its fields, got {train!r}")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(train) - known)
    if unknown:
        raise ValueError(f"{owner}.train: unknown TrainConfig field(s) {unknown}")
    return TrainConfig(**train)


def copy_of_preset(table: Mapping[str, Any], name: str, study: str) -> Any:
    """A fresh copy of ``table[name]`` (changing it leaves the table as it is), or ValueError naming it."""
    if name not in table:
        raise ValueError(f"unknown {study} preset {name!r}; known: {sorted(table)}")
    return copy.deepcopy(table[name])


def resolve_preset_of(preset: Any, preset_type: type, table: Mapping[str, Any], study: str) -> Any:
    """A copy of a preset given by name, as a ``preset_type``, or as its dict."""
    if isinstance(preset, str):
        return copy_of_preset(table, preset, study)
    if isinstance(preset, preset_type):
        return copy.deepcopy(preset)
    if isinstance(preset, Mapping):
        return preset_type.from_dict(preset)
    raise ValueError(f"a {study} preset is a name, a {preset_type.__name__} or its dict, got {type(preset).__name__}")


@dataclass
class PresetRun:
    """What ``train_preset`` returns: the training result and the metrics it wrote to ``out/model``."""

    result: TrainResult  # the model, its evaluation history and the steps done
    metrics: dict[str, Any]  # exactly what ``out/model/metrics.json`` holds
    out: Path  # the run folder

    @property
    def model(self):
        return self.result.model

    @property
    def final(self) -> EvalRecord:
        return self.result.final

    @property
    def step(self) -> int:
        return self.result.step

    @property
    def history(self) -> list[EvalRecord]:
        return self.result.history

    @property
    def seconds(self) -> float:
        return self.result.seconds
