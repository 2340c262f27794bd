"""K-theory study: dataset -> model -> training, as named presets.

`train_preset("small", "runs/ktheory-small")` builds the grid, trains with progress and checkpoints
(resuming if the folder holds an interrupted run), evaluates autoregressive exact match on the whole
domain and writes the final model to `runs/ktheory-small/model`. A variant of a preset is
`apply_overrides(get_preset("small"), ["train.lr=3e-3", "model.n_layers=2"])` (see `overrides.py`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from collections.abc import Mapping
from typing import Any, no_type_check

import numpy as np
import torch
from torch import Tensor

from ktlens.checkpoint import save_checkpoint
from ktlens.distributed import is_main_process
from ktlens.experiments.presets import (
    TASK_DERIVED,
    PresetRun,
    check_model_settings,
    check_train_config,
    copy_of_preset,
    model_setting_types,
    resolve_preset_of,
)
from ktlens.models.encoder_decoder import KTheoryTransformer, sequence_loss
from ktlens.tasks.ktheory_data import KTheoryDataset, KTheoryGridSpec, build_dataset
from ktlens.tasks.ktheory_spec import LABEL_ORDERS, KTheoryTaskSpec
from ktlens.train import TrainConfig, train

MODEL_NOT_SETTINGS = TASK_DERIVED + ("seed",)
SMALL_P = 7  # the primes that carry most errors; exact match is also reported over p <= SMALL_P  # the model is initialised with the training seed


@no_type_check  # validated in __post_init__, so bad values get a ValueError naming them
@dataclass
class KTheoryPreset:
    """A K-theory training setting; every section is validated on construction."""

    grid: KTheoryGridSpec  # which (p, r, e) and how they are split
    model: dict[str, Any]  # ModelConfig fields other than the vocabulary sizes, context and seed
    train: TrainConfig
    description: str = ""
    label_order: str = "ascending"  # decoder writes n_1 first ("ascending") or n_L first ("descending")
    n1_from_order: bool = False  # answer n_1 = r(e-1) - sum_{i>=2} i n_i instead of the decoded n_1
    scratch: tuple[str, ...] = ()  # values the decoder writes before the counts, e.g. ["re"] (a scratchpad)

    def __post_init__(self) -> None:
        if isinstance(self.grid, dict):
            self.grid = KTheoryGridSpec.from_dict(self.grid)
        if not isinstance(self.grid, KTheoryGridSpec):
            raise ValueError(f"KTheoryPreset.grid must be a KTheoryGridSpec, got {self.grid!r}")
        self.model = check_model_settings(self.model, "KTheoryPreset", exclude=MODEL_NOT_SETTINGS)
        self.train = check_train_config(self.train, "KTheoryPreset")
        if not isinstance(self.description, str):
            raise ValueError(f"KTheoryPreset.description must be a string, got {self.description!r}")
        if self.label_order not in LABEL_ORDERS:
            raise ValueError(f"KTheoryPreset.label_order must be one of {LABEL_ORDERS}, got {self.label_order!r}")
        if not isinstance(self.scratch, (list, tuple)) or not all(isinstance(v, str) for v in self.scratch):
            raise ValueError(f"KTheoryPreset.scratch must be a list of names, got {self.scratch!r}")
        self.scratch = tuple(self.scratch)
        if not isinstance(self.n1_from_order, bool):
            raise ValueError(f"KTheoryPreset.n1_from_order must be true or false, got {self.n1_from_order!r}")

    @staticmethod
    def section_keys(section: str) -> dict[str, Any] | None:
        """Keys (and types) of a dict section, for `apply_overrides`."""
        return model_setting_types(MODEL_NOT_SETTINGS) if section == "model" else None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "KTheoryPreset":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown KTheoryPreset fields {unknown} (known: {sorted(known)})")
        return cls(**copy.deepcopy(dict(data)))


_BASE = KTheoryPreset(
    grid=KTheoryGridSpec(n_primes=25, r_max=100, e_max=50, re_max=400, split="random", test_fraction=0.2, seed=0),
    model=dict(d_model=128, n_heads=4, d_mlp=512, n_layers=2, normalization="pre", dropout=0.0),
    train=TrainConfig(
        steps=8000, batch_size=256, lr=2e-3, weight_decay=1.0, grad_clip=None, warmup_steps=200, eval_every=500
    ),
    description="first 25 primes x r <= 100 x e <= 50 with r e <= 400: the small model writing r e and the level "
    "boundaries floor(r e / p^h) before the counts, n_1 from the order (docs/results/ktheory_experiments.md)",
    label_order="descending",
    n1_from_order=True,
    scratch=("re", "quotients"),
)


_PRESETS: dict[str, KTheoryPreset] = {
    "tiny": KTheoryPreset(
        grid=KTheoryGridSpec(n_primes=4, r_max=4, e_max=4, split="random", test_fraction=0.2, seed=0),
        model=dict(d_model=64, n_heads=4, d_mlp=256, normalization="post", dropout=0.0),
        train=TrainConfig(steps=600, batch_size=32, lr=3e-3, weight_decay=0.01, warmup_steps=50, eval_every=200),
        description="a 64-triple grid for tests and smoke runs (seconds)",
    ),
    "small": KTheoryPreset(
        grid=KTheoryGridSpec(n_primes=25, r_max=20, e_max=20, split="random", test_fraction=0.2, seed=0),
        model=dict(d_model=128, n_heads=4, d_mlp=512, n_layers=2, normalization="pre", dropout=0.0),
        train=TrainConfig(
            steps=9000, batch_size=256, lr=2e-3, weight_decay=1.0, grad_clip=None, warmup_steps=200, eval_every=500
        ),
        description="first 25 primes x r <= 20 x e <= 20 on a 2-core CPU: 2 pre-LN blocks, counts decoded n_L "
        "first, weight decay 1.0",
        label_order="descending",
    ),
    "base": _BASE,
    "base-eprime": dataclasses.replace(
        _BASE,
        train=dataclasses.replace(_BASE.train, eval_every=2000),
        description="the base preset with a second chain on the scratchpad: r e, floor(r e / p^h), then floor(r e / (e' p^h)), "
        "from which each count is a sum of second differences (run 32 of docs/results/ktheory_experiments.md)",
        scratch=("re", "quotients", "e_prime_quotients"),
    ),
    "small-1layer": KTheoryPreset(
        grid=KTheoryGridSpec(n_primes=25, r_max=20, e_max=20, split="random", test_fraction=0.2, seed=0),
        model=dict(d_model=128, n_heads=4, d_mlp=512, normalization="post", dropout=0.0),
        train=TrainConfig(steps=6000, batch_size=256, lr=2e-3, weight_decay=0.1, warmup_steps=200, eval_every=500),
        description="the small grid with the reference's shape (1 post-LN block), counts decoded n_L first",
        label_order="descending",
    ),
    "seed": KTheoryPreset(
        grid=KTheoryGridSpec(n_primes=400, r_max=100, e_max=50, split="random", test_fraction=0.2, seed=0),
        model=dict(d_model=256, n_heads=8, d_mlp=1024, n_layers=2, normalization="pre", dropout=0.0),
        train=TrainConfig(
            steps=100_000, batch_size=512, lr=1e-3, weight_decay=1.0, grad_clip=None, warmup_steps=1000, eval_every=5000
        ),
        description="the public reference's grid (GPU-sized) with what docs/results/ktheory_scaling.md recommends: the "
        "reference's width, 2 pre-LN blocks, counts decoded n_L first after the scratch values r e, floor(r e / p^h) and "
        "floor(r e / (e' p^h)), n_1 from the order, weight decay 1.0",
        label_order="descending",
        n1_from_order=True,
        scratch=("re", "quotients", "e_prime_quotients"),
    ),
}

PRESETS: Mapping[str, KTheoryPreset] = MappingProxyType(_PRESETS)  # read-only; use get_preset for a copy


def get_preset(name: str) -> KTheoryPreset:
    """A fresh copy of the named preset (changing it leaves `PRESETS` as it is)."""
    return copy_of_preset(PRESETS, name, "K-theory")


def task_spec_of(
    dataset: KTheoryDataset, label_order: str = "ascending", n1_from_order: bool = False, scratch: tuple[str, ...] = ()
) -> KTheoryTaskSpec:
    """What a model must remember of its data: domain, vocabulary, split, label order, how n_1 is answered,
    the scratch values the decoder writes first."""
    plain = KTheoryTaskSpec.of_grid(dataset.spec, label_order)
    if plain.vocab != dataset.vocab:
        raise ValueError(f"dataset vocabulary {dataset.vocab} disagrees with its grid's spec {plain.vocab}")
    spec = KTheoryTaskSpec.of_grid(dataset.spec, label_order, n1_from_order, scratch)
    return spec


class KTheoryTrainData:
    """A K-theory dataset as the training loop sees it (implements `ktlens.train.TrainData`)."""

    def __init__(self, dataset: KTheoryDataset, model: KTheoryTransformer, eval_train_max: int = 4096):
        self.dataset = dataset
        self.tokens = model.pack(dataset.p, dataset.r, dataset.e, dataset.counts).cpu()
        self.targets = torch.as_tensor(  # scratch values, then the counts in decoder order
            model.decoder_targets(dataset.p, dataset.r, dataset.e, dataset.counts), dtype=torch.long
        )
        self.nontrivial = torch.as_tensor(~dataset.is_trivial)
        self.small_p = torch.as_tensor(dataset.p <= SMALL_P)
        self.train_idx = torch.as_tensor(dataset.train_idx, dtype=torch.long)
        self.test_idx = torch.as_tensor(dataset.test_idx, dtype=torch.long)
        gen = torch.Generator().manual_seed(0)
        keep = torch.randperm(len(self.train_idx), generator=gen)[:eval_train_max]
        self.train_eval_idx = self.train_idx[keep.sort().values]
        self.n_train = len(self.train_idx)

    def batch(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        rows = self.train_idx[idx]
        return self.tokens[rows], self.targets[rows]

    def loss(self, model: KTheoryTransformer, batch: tuple[Tensor, Tensor]) -> Tensor:
        tokens, targets = batch
        return sequence_loss(model(tokens.to(model.device)), targets.to(model.device))

    def evaluate(self, model: KTheoryTransformer) -> dict[str, float]:
        out = {}
        for split, idx in (("train", self.train_eval_idx), ("test", self.test_idx)):
            if len(idx):
                out.update({f"{split}_{k}": v for k, v in sequence_metrics(model, self.tokens[idx], self.targets[idx], self.nontrivial[idx], self.small_p[idx]).items()})
        return out


@torch.no_grad()
def sequence_metrics(
    model: KTheoryTransformer,
    tokens: Tensor,
    targets: Tensor,
    nontrivial: Tensor,
    small_p: Tensor | None = None,
    batch_size: int = 4096,
) -> dict[str, float]:
    """Loss, token accuracy, teacher-forced and autoregressive exact match; each also over p <= r*e, and
    autoregressive exact match over p <= SMALL_P when `small_p` marks those rows.

    The loss covers every decoder position (scratch values included); accuracy and exact match cover the
    answer: the counts, as `generate` returns them (with n_1 from the order when the spec says so)."""
    losses, tok_ok, tf_ok, ar_ok = [], [], [], []
    s = model.n_scratch
    for i in range(0, len(tokens), batch_size):
        tok, tgt = tokens[i : i + batch_size].to(model.device), targets[i : i + batch_size].to(model.device)
        logits = model(tok)
        losses.append(torch.nn.functional.cross_entropy(logits.transpose(1, 2), tgt, reduction="none").mean(1))
        pred, want = logits.argmax(-1)[:, s:], tgt[:, s:]
        tok_ok.append((pred == want).float().mean(1))
        tf_ok.append((pred == want).all(1).float())
        ar_ok.append((model.to_model_order(model.generate(tok[:, :3])) == want).all(1).float())
    cols = {"loss": losses, "token_acc": tok_ok, "tf_exact": tf_ok, "ar_exact": ar_ok}
    out = {}
    mask = nontrivial.to(model.device)
    small = small_p.to(model.device) if small_p is not None else None
    for name, parts in cols.items():
        values = torch.cat(parts)
        out[name] = values.mean().item()
        if mask.any():
            out[f"{name}_nontrivial"] = values[mask].mean().item()
        if small is not None and small.any() and name == "ar_exact":
            out[f"{name}_p_le_{SMALL_P}"] = values[small].mean().item()
    return out


def resolve_preset(preset: str | KTheoryPreset | Mapping[str, Any]) -> KTheoryPreset:
    """A copy of a preset given by name, as a KTheoryPreset, or as its dict."""
    return resolve_preset_of(preset, KTheoryPreset, PRESETS, "K-theory")


def build_preset(
    preset: str | KTheoryPreset, seed: int | None = None
) -> tuple[KTheoryPreset, KTheoryDataset, KTheoryTransformer]:
    """The preset (with `seed` applied), its dataset and a freshly initialised model."""
    preset = resolve_preset(preset)
    if seed is not None:
        preset = dataclasses.replace(preset, train=dataclasses.replace(preset.train, seed=seed))
    dataset = build_dataset(preset.grid)
    model = KTheoryTransformer.create(task_spec_of(dataset, preset.label_order, preset.n1_from_order, preset.scratch), seed=preset.train.seed, **preset.model)
    return preset, dataset, model


def train_preset(
    preset: str | KTheoryPreset,
    out: str | Path,
    steps: int | None = None,
    seed: int | None = None,
    progress: bool = True,
    name: str | None = None,
    device: str | torch.device | None = None,
) -> PresetRun:
    """Train a preset (a name or a KTheoryPreset) into `out` (resumable), then write `out/model` with
    full-domain metrics; returns the training result with those metrics. `name` labels the run in the
    metrics (default: the preset's name, or "custom"). `device`: where to train (default: the CPU).
    Under torchrun every rank trains; rank 0 alone writes `out/model` (the others return no metrics)."""
    label = name or (preset if isinstance(preset, str) else "custom")
    preset, dataset, model = build_preset(preset, seed)
    if device is not None:
        model.to(device)
    cfg = preset.train if steps is None else dataclasses.replace(preset.train, steps=steps)
    data = KTheoryTrainData(dataset, model)
    t0 = time.perf_counter()
    result = train(model, data, cfg, run_dir=out, progress=progress)
    if not is_main_process():
        return PresetRun(result=result, metrics={}, out=Path(out))
    metrics = {
        "preset": label,
        "train_seconds_this_call": round(time.perf_counter() - t0, 1),
        "steps": result.step,
        "final_eval": result.final,
        "domain": domain_metrics(model, data),
        "summary": dataset.summary(),
        "preset_config": dataclasses.replace(preset, train=cfg).to_dict(),
    }
    path = save_checkpoint(Path(out) / "model", model)
    (path / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    (path / "history.json").write_text(json.dumps(result.history) + "\n")
    return PresetRun(result=result, metrics=json.loads(json.dumps(metrics)), out=Path(out))


def domain_metrics(model: KTheoryTransformer, data: KTheoryTrainData) -> dict[str, dict[str, float]]:
    """Metrics over the whole domain, the train split and the held-out split."""
    model.eval()
    splits = {"all": torch.arange(len(data.tokens)), "train": data.train_idx, "test": data.test_idx}
    return {
        split: sequence_metrics(model, data.tokens[idx], data.targets[idx], data.nontrivial[idx], data.small_p[idx])
        for split, idx in splits.items()
        if len(idx)
    }
