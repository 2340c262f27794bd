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

Presets (see ``PRESETS``; ``docs/results/miiii_experiments.md`` logs how ``small`` was found):
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
import json
from pathlib import Path
from typing import Any

import torch

from ktlens.analysis.fourier import embedding_frequency_norms, key_frequencies
from ktlens.checkpoint import save_checkpoint
from ktlens.models.encoder import RemaindersTransformer
from ktlens.tasks.remainders import RemaindersData, RemaindersSpec
from ktlens.train import TrainConfig, TrainResult, train

_GROKKING_TRAIN = dict(
    batch_size=None,  # full batch
    betas=(0.9, 0.98),
    warmup_steps=10,
    schedule="constant",
    grad_clip=None,
    stop_metric="all_acc_min",  # every task exact on both splits
    stop_value=1.0,
)

PRESETS: dict[str, dict[str, Any]] = {
    "small": dict(  # the best CPU setting found (runs 33, 51, 53, 57, 59 of the log)
        task=dict(p=37, train_frac=0.95),
        model=dict(d_model=128, n_layers=1, n_heads=4, d_mlp=2048, normalization="none", dropout=0.0, init_std=0.125),
        train=dict(
            _GROKKING_TRAIN,
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
    ),
    "paper": dict(
        task=dict(p=113, train_frac=0.5),
        model=dict(d_model=256, n_layers=1, n_heads=4, d_mlp=1024, normalization="none", dropout=0.1),
        train=dict(_GROKKING_TRAIN, steps=50_000, lr=3e-4, weight_decay=1 / 3, grokfast_alpha=0.98, grokfast_lambda=0.5, eval_every=250),
        snapshot_every=2_500,
    ),
    "tiny": dict(
        task=dict(p=11, train_frac=0.7),
        model=dict(d_model=64, n_layers=1, n_heads=4, d_mlp=256, normalization="none", dropout=0.0),
        train=dict(_GROKKING_TRAIN, steps=3_000, lr=3e-3, weight_decay=1.0, grokfast_alpha=0.98, grokfast_lambda=2.0, eval_every=50),
        snapshot_every=250,
    ),
    "addition": dict(
        task=dict(p=59, variant="addition", train_frac=0.4),
        model=dict(d_model=128, n_layers=1, n_heads=4, d_mlp=512, normalization="none", dropout=0.0, init_std=0.088),
        train=dict(_GROKKING_TRAIN, steps=20_000, lr=3e-3, weight_decay=1.0, grokfast_alpha=0.98, grokfast_lambda=2.0, eval_every=100),
        snapshot_every=500,
    ),
}
PRESETS["shuffled"] = copy.deepcopy(PRESETS["small"])
PRESETS["shuffled"]["task"]["shuffle_labels"] = True
PRESETS["shuffled"]["train"].update(steps=3_000, stop_metric=None)


def build(preset: dict[str, Any], seed: int | None = None) -> tuple[RemaindersSpec, RemaindersData, RemaindersTransformer, TrainConfig]:
    """Spec, dataset, freshly initialised model and train config of a preset dict."""
    spec = RemaindersSpec(**preset["task"])
    data = RemaindersData(spec)
    model_kwargs = dict(preset["model"])
    train_kwargs = dict(preset["train"])
    if seed is not None:
        model_kwargs["seed"] = seed
        train_kwargs["seed"] = seed
    model = RemaindersTransformer.create(spec, **model_kwargs)
    return spec, data, model, TrainConfig(**train_kwargs)


def with_overrides(preset: dict[str, Any], items: list[str]) -> dict[str, Any]:
    """A copy of a preset dict with ``section.key=value`` (or ``section=value``) overrides applied.

    Values are parsed as JSON where they can be (``train.lr=3e-3``, ``task.masked=[2,3]``), else kept as text.
    """
    out = copy.deepcopy(preset)
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not of the form section.key=value")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        section, _, sub = key.partition(".")
        if section not in out:
            raise ValueError(f"override {item!r}: unknown section {section!r} (known: {sorted(out)})")
        if sub:
            out[section][sub] = value
        else:
            out[section] = value
    return out


def get_preset(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ValueError(f"unknown miiii preset {name!r}; known: {sorted(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def train_preset(
    name: str | dict[str, Any],
    out: str | Path,
    steps: int | None = None,
    seed: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a preset (by name, or a preset dict of the same form) into the run folder ``out``."""
    preset = get_preset(name) if isinstance(name, str) else copy.deepcopy(name)
    if steps is not None:
        preset["train"]["steps"] = steps
    _, data, model, cfg = build(preset, seed)
    out = Path(out)
    snapshot_every = int(preset.get("snapshot_every") or 0)

    timeline_path = out / "fourier_timeline.json"
    timeline: list[dict[str, Any]] = json.loads(timeline_path.read_text()) if timeline_path.is_file() else []

    def snapshot(step: int) -> None:
        save_checkpoint(out / "snapshots" / f"step_{step:06d}", model)
        norms = embedding_frequency_norms(model)
        keys = key_frequencies(norms)
        timeline[:] = [row for row in timeline if row["step"] < step]
        timeline.append({"step": step, "norms": norms.round(6).tolist(), "key_frequencies": keys, "n_active": len(keys)})
        timeline_path.write_text(json.dumps(timeline) + "\n")

    def on_eval(record: dict[str, float]) -> None:
        step = int(record["step"])
        if snapshot_every and step % snapshot_every == 0:
            snapshot(step)

    out.mkdir(parents=True, exist_ok=True)
    if snapshot_every and not timeline:
        snapshot(0)
    result = train(model, data, cfg, run_dir=out, progress=progress, on_eval=on_eval)
    if snapshot_every and result.step % snapshot_every:
        snapshot(result.step)
    metrics = {
        "preset": name if isinstance(name, str) else "custom",
        "preset_config": preset,
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
    return result
