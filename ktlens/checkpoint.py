"""Checkpoints: a folder of safetensors weights and JSON metadata. Nothing is ever unpickled.

Layout of a checkpoint folder:
    config.json          {"format", "version", "model_type", "model_config", "task_spec"}
    model.safetensors    the model's state dict
    train_state.json     (training only) step, train config, metric history
    optimizer.safetensors (training only) AdamW moments and the grokfast filter state
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ktlens.models.base import HookedModel, build_model
from ktlens.models.config import ModelConfig

FORMAT = "ktlens-checkpoint"
VERSION = 1
PRETRAINED_DIR = Path(__file__).parent / "pretrained"


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"checkpoint file {path} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"checkpoint file {path} is corrupt (not valid JSON): {err}") from None


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ValueError(f"checkpoint file {path} is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"checkpoint file {path} is corrupt or truncated: {err}") from None


def save_checkpoint(
    path: str | Path,
    model: HookedModel,
    train_state: dict[str, Any] | None = None,
    optimizer_tensors: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write a checkpoint folder atomically (a temporary folder renamed into place)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    _write_json(
        tmp / "config.json",
        {
            "format": FORMAT,
            "version": VERSION,
            "model_type": model.model_type,
            "model_config": model.cfg.to_dict(),
            "task_spec": model.task_spec,
        },
    )
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / "model.safetensors"))
    if train_state is not None:
        _write_json(tmp / "train_state.json", train_state)
    if optimizer_tensors is not None:
        save_file({k: v.contiguous().cpu() for k, v in optimizer_tensors.items()}, str(tmp / "optimizer.safetensors"))
    old = path.with_name(path.name + ".old")
    if path.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(path, old)
    os.replace(tmp, path)
    if old.exists():
        shutil.rmtree(old)
    return path


def load_checkpoint(path: str | Path, device: str = "cpu") -> HookedModel:
    """Load a model from a checkpoint folder, or raise ValueError saying what is wrong with it."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"checkpoint folder {path} does not exist")
    meta = _read_json(path / "config.json")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path / 'config.json'} is not a ktlens checkpoint config")
    if meta.get("version") != VERSION:
        raise ValueError(f"checkpoint {path} has format version {meta.get('version')!r}, expected {VERSION}")
    try:
        cfg = ModelConfig.from_dict({**meta["model_config"], "device": device})
        model = build_model(meta["model_type"], cfg, meta["task_spec"])
    except (KeyError, TypeError) as err:
        raise ValueError(f"checkpoint config {path / 'config.json'} is incomplete: {err!r}") from None
    state = _read_tensors(path / "model.safetensors")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"checkpoint {path} does not match its config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise ValueError(
                f"checkpoint {path}: {name} has shape {tuple(tensor.shape)}, config expects {tuple(expected[name].shape)}"
            )
        if not torch.isfinite(tensor).all():
            raise ValueError(f"checkpoint {path}: {name} contains NaN or inf")
    model.load_state_dict(state)
    model.to(device)
    model.eval()
    return model


def read_train_state(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The training metadata and optimizer tensors of a checkpoint (for resuming)."""
    path = Path(path)
    return _read_json(path / "train_state.json"), _read_tensors(path / "optimizer.safetensors")


def read_model_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The weights of a checkpoint folder, without building its model (for resuming any module)."""
    return _read_tensors(Path(path) / "model.safetensors")


def pretrained_names() -> list[str]:
    """Names of the models shipped inside the package."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / "config.json").is_file())


def load_pretrained(name_or_path: str | Path, device: str = "cpu") -> HookedModel:
    """A shipped model by name (the folders of ktlens/pretrained, e.g. "ktheory-small") or any checkpoint folder."""
    import ktlens.models  # noqa: F401  (registers the model classes)

    candidate = PRETRAINED_DIR / str(name_or_path)
    if (candidate / "config.json").is_file():
        return load_checkpoint(candidate, device)
    if Path(name_or_path).is_dir():
        return load_checkpoint(name_or_path, device)
    raise ValueError(f"no pretrained model or checkpoint folder named {str(name_or_path)!r}; shipped: {pretrained_names()}")
