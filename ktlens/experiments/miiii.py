"""MIIII presets: remainders of n < p^2 modulo every prime q < p, with grokking and grokfast.

``train_preset(name, out)`` trains a preset through ``ktlens.train.train`` (full batch, AdamW, optional
grokfast EMA filter) and writes

    {out}/checkpoint/      the resumable training checkpoint (weights, optimizer, history)
    {out}/snapshots/step_NNNNNN/   model-only checkpoints every ``snapshot_every`` steps (for analysis)
    {out}/model/           the final model: config.json, model.safetensors, metrics.json
    {out}/metrics.json     a copy of {out}/model/metrics.json

``metrics.json`` holds the preset, the final evaluation, the training time, the whole history (one
record per evaluation with per-task train/test accuracy ``train_acc_q{q}`` / ``test_acc_q{q}``) and
``fourier_timeline`` (embedding frequency norms and key frequencies at every snapshot).

A variant is ``apply_overrides(get_preset("small"), ["train.lr=3e-3", "task.masked=[2,3]", "snapshot_every=0"])``
(see ``overrides.py``). Presets (see ``PRESETS``; ``docs/results/miiii_experiments.md`` logs how ``small`` was found):
    small     p = 37 (11 tasks) on a CPU: 95% training data, d_mlp 2048, lr 6e-3 held to step ~4,500 and then
              decayed to 3e-3, Adam epsilon 1e-6, grokfast off; exact on every n < p^2 for every task at step
              7,100 (6 minutes on 2 cores), shipped as ``miiii-small``
    paper     p = 113 (29 tasks), 1 layer, d_model 256, lr 3e-4, wd 1/3, grokfast (0.98, 0.5)
    tiny      p = 11, seconds on a CPU (tests, demos)
    addition  the classic (a + b) mod p grokking problem, for the Nanda progress measures
    shuffled  ``small`` with shuffled labels: the baseline that cannot generalize
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from collections.abc import Mapping, Sequence
from typing import Any, no_type_check

import torch

from ktlens.analysis.fourier import embedding_frequency_norms, key_frequencies
from ktlens.checkpoint import save_checkpoint
from ktlens.distributed import is_main_process
from ktlens.experiments.overrides import apply_overrides
from ktlens.experiments.presets import (
    PresetRun,
    check_model_settings,
    check_train_config,
    copy_of_preset,
    model_setting_types,
    resolve_preset_of,
)
from ktlens.models.encoder import RemaindersTransformer
from ktlens.tasks.remainders import RemaindersData, RemaindersSpec
from ktlens.train import EvalRecord, TrainConfig, train


@no_type_check  # validated in __post_init__, so bad values get a ValueError naming them
@dataclass
class MiiiiPreset:
    """A MIIII training setting; every section is validated on construction."""

    task: RemaindersSpec  # the base p, the variant, the split, masked tasks
    model: dict[str, Any]  # ModelConfig fields other than the vocabulary sizes and context
    train: TrainConfig
    snapshot_every: int = 0  # steps between model snapshots and Fourier timeline rows (0: none)
    description: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.task, Mapping):
            self.task = _task_spec(self.task)
        if not isinstance(self.task, RemaindersSpec):
            raise ValueError(f"MiiiiPreset.task must be a RemaindersSpec, got {self.task!r}")
        self.model = check_model_settings(self.model, "MiiiiPreset")
        self.train = check_train_config(self.train, "MiiiiPreset")
        every = self.snapshot_every
        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise ValueError(f"MiiiiPreset.snapshot_every must be an integer >= 0, got {every!r}")
        if not isinstance(self.description, str):
            raise ValueError(f"MiiiiPreset.description must be a string, got {self.description!r}")

    @staticmethod
    def section_keys(section: str) -> dict[str, Any] | None:
        """Keys (and types) of a dict section, for `apply_overrides`."""
        return model_setting_types() if section == "model" else None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["task"] = self.task.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MiiiiPreset":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown MiiiiPreset fields {unknown} (known: {sorted(known)})")
        return cls(**copy.deepcopy(dict(data)))


def _task_spec(task: Mapping[str, Any]) -> RemaindersSpec:
    known = {f.name for f in dataclasses.fields(RemaindersSpec)}
    unknown = sorted(set(task) - known)
    if unknown:
        raise ValueError(f"MiiiiPreset.task: unknown RemaindersSpec field(s) {unknown} (known: {sorted(known)})")
    return RemaindersSpec(**dict(task))  # a preset may leave fields at their defaults

_GROKKING_TRAIN = dict(
    batch_size=None,  # full batch
    betas=(0.9, 0.98),
    warmup_steps=10,
    schedule="constant",
    grad_clip=None,
    stop_metric="all_acc_min",  # every task exact on both splits
    stop_value=1.0,
)


def _grokking_train(**settings: Any) -> TrainConfig:
    """The full-batch grokking setting with ``settings`` on top."""
    return TrainConfig(**{**_GROKKING_TRAIN, **settings})


_PRESETS: dict[str, MiiiiPreset] = {
    "small": MiiiiPreset(  # the best CPU setting found (runs 33, 51, 53, 57, 59 of the log)
        task=RemaindersSpec(p=37, train_frac=0.95),
        model=dict(d_model=128, n_layers=1, n_heads=4, d_mlp=2048, normalization="none", dropout=0.0, init_std=0.125),
        train=_grokking_train(
            steps=10_000,
            lr=6e-3,
            schedule="cosine",
            decay_fraction=0.55,  # lr 6e-3 to step ~4,500, then cosine down to 3e-3
            min_lr_ratio=0.5,
            adam_eps=1e-6,  # damps the slingshot spikes once the training loss is ~0 (runs 57-59)
            weight_decay=1.0,
            grokfast_alpha=0.98,
            grokfast_lambda=0.0,
            eval_every=50,
        ),
        snapshot_every=500,
        description="p = 37 on a CPU; exact on every n < p^2 for every task (shipped as miiii-small)",
    ),
    "paper": MiiiiPreset(
        task=RemaindersSpec(p=113, train_frac=0.5),
        model=dict(d_model=256, n_layers=1, n_heads=4, d_mlp=1024, normalization="none", dropout=0.1),
        train=_grokking_train(steps=50_000, lr=3e-4, weight_decay=1 / 3, grokfast_alpha=0.98, grokfast_lambda=0.5, eval_every=250),
        snapshot_every=2_500,
        description="the paper's setting: p = 113 (29 tasks), grokfast (0.98, 0.5)",
    ),
    "tiny": MiiiiPreset(
        task=RemaindersSpec(p=11, train_frac=0.7),
        model=dict(d_model=64, n_layers=1, n_heads=4, d_mlp=256, normalization="none", dropout=0.0),
        train=_grokking_train(steps=3_000, lr=3e-3, weight_decay=1.0, grokfast_alpha=0.98, grokfast_lambda=2.0, eval_every=50),
        snapshot_every=250,
        description="p = 11, seconds on a CPU (tests, demos)",
    ),
    "addition": MiiiiPreset(
        task=RemaindersSpec(p=59, variant="addition", train_frac=0.4),
        model=dict(d_model=128, n_layers=1, n_heads=4, d_mlp=512, normalization="none", dropout=0.0, init_std=0.088),
        train=_grokking_train(steps=20_000, lr=3e-3, weight_decay=1.0, grokfast_alpha=0.98, grokfast_lambda=2.0, eval_every=100),
        snapshot_every=500,
        description="(a + b) mod p, the classic grokking problem, for the Nanda progress measures",
    ),
}
_PRESETS["shuffled"] = dataclasses.replace(
    _PRESETS["small"],
    task=dataclasses.replace(_PRESETS["small"].task, shuffle_labels=True),
    train=dataclasses.replace(_PRESETS["small"].train, steps=3_000, stop_metric=None),
    description="small with shuffled labels: the baseline that cannot generalize",
)
PRESETS: Mapping[str, MiiiiPreset] = MappingProxyType(_PRESETS)  # read-only; use get_preset for a copy


def get_preset(name: str) -> MiiiiPreset:
    """A fresh copy of the named preset (changing it leaves `PRESETS` as it is)."""
    return copy_of_preset(PRESETS, name, "miiii")


def resolve_preset(preset: str | MiiiiPreset | Mapping[str, Any]) -> MiiiiPreset:
    """A copy of a preset given by name, as a MiiiiPreset, or as its dict."""
    return resolve_preset_of(preset, MiiiiPreset, PRESETS, "miiii")


def build(
    preset: str | MiiiiPreset, seed: int | None = None
) -> tuple[RemaindersSpec, RemaindersData, RemaindersTransformer, TrainConfig]:
    """Spec, dataset, freshly initialised model and (a copy of the) train config of a preset."""
    preset = resolve_preset(preset)
    spec = preset.task
    data = RemaindersData(spec)
    model_kwargs = dict(preset.model)
    cfg = preset.train
    if seed is not None:
        model_kwargs["seed"] = seed
        cfg = dataclasses.replace(cfg, seed=seed)
    model = RemaindersTransformer.create(spec, **model_kwargs)
    return spec, data, model, cfg


def with_overrides(preset: str | MiiiiPreset, items: Sequence[str]) -> MiiiiPreset:
    """``apply_overrides`` on a miiii preset (kept for older scripts)."""
    return apply_overrides(resolve_preset(preset), items)


def train_preset(
    preset: str | MiiiiPreset,
    out: str | Path,
    steps: int | None = None,
    seed: int | None = None,
    progress: bool = True,
    name: str | None = None,
    device: str | torch.device | None = None,
) -> PresetRun:
    """Train a preset (a name or a MiiiiPreset) into the run folder ``out``; returns the training result
    with the metrics written to ``out/model/metrics.json``. ``name`` labels the run in the metrics
    (default: the preset's name, or "custom"). ``device``: where to train (default: the CPU). Under
    torchrun every rank trains; rank 0 alone writes snapshots and ``out/model`` (the others return no metrics)."""
    label = name or (preset if isinstance(preset, str) else "custom")
    preset = resolve_preset(preset)
    if steps is not None:
        preset = dataclasses.replace(preset, train=dataclasses.replace(preset.train, steps=steps))
    spec, data, model, cfg = build(preset, seed)
    if device is not None:
        model.to(device)
        data = RemaindersData(spec, device=str(model.device))
    main = is_main_process()
    out = Path(out)
    snapshot_every = preset.snapshot_every

    timeline_path = out / "fourier_timeline.json"
    timeline: list[dict[str, Any]] = json.loads(timeline_path.read_text()) if timeline_path.is_file() else []

    def snapshot(step: int) -> None:
        save_checkpoint(out / "snapshots" / f"step_{step:06d}", model)
        norms = embedding_frequency_norms(model)
        keys = key_frequencies(norms)
        timeline[:] = [row for row in timeline if row["step"] < step]
        timeline.append({"step": step, "norms": norms.round(6).tolist(), "key_frequencies": keys, "n_active": len(keys)})
        timeline_path.write_text(json.dumps(timeline) + "\n")

    def on_eval(record: EvalRecord) -> None:
        step = int(record["step"])
        if snapshot_every and step % snapshot_every == 0:
            snapshot(step)

    if main:
        out.mkdir(parents=True, exist_ok=True)
    if main and snapshot_every and not timeline:
        snapshot(0)
    result = train(model, data, cfg, run_dir=out, progress=progress, on_eval=on_eval)
    if not main:
        return PresetRun(result=result, metrics={}, out=out)
    if snapshot_every and result.step % snapshot_every:
        snapshot(result.step)
    metrics = {
        "preset": label,
        "preset_config": preset.to_dict(),
        "steps": result.step,
        "seconds": result.seconds,
        "torch_threads": torch.get_num_threads(),
        "final": result.final,
        "history": result.history,
        "fourier_timeline": timeline,
    }
    save_checkpoint(out / "model", result.model)
    text = json.dumps(metrics, indent=1, default=float) + "\n"
    (out / "model" / "metrics.json").write_text(text)
    (out / "metrics.json").write_text(text)
    return PresetRun(result=result, metrics=json.loads(text), out=out)
