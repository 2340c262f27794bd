"""Checkpoints: a folder of safetensors weights and JSON metadata. Nothing is ever unpickled.

Layout of a checkpoint folder:
    config.json          {"format", "version", "model_type", "model_config", "task_spec"}
    model.safetensors    the model's state dict
    train_state.json     (training only) step, train config, metric history
    optimizer.safetensors (training only) AdamW moments and the grokfast filter state
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ktlens.models.base import HookedModel
from ktlens.models.config import ModelConfig
from ktlens.validation import FieldError, check_int, check_keys

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


# model_config fields a checkpoint may leave out: the loader sets `device`, and the others have one
# admissible value each (no grouped-query attention, standard positions), so the default is what was trained
_OPTIONAL_CONFIG_FIELDS = frozenset({"device", "positional_embedding_type", "n_key_value_heads"})
_TOP_LEVEL_FIELDS = ("format", "version", "model_type", "model_config", "task_spec")


def _model_of_config(config_path: Path, device: str, n_weights: int | None = None) -> HookedModel:
    """A freshly initialised model built from a checkpoint's config.json, every field checked: a
    ValueError names the file, the field (e.g. ``task_spec.label_order``) and the value."""
    import ktlens.models  # noqa: F401  (registers the model classes)
    from ktlens.models.base import MODEL_TYPES

    meta = _read_json(config_path)
    try:
        if not isinstance(meta, dict):
            raise FieldError("config", meta, "must be a JSON object")
        check_keys(meta, _TOP_LEVEL_FIELDS, _TOP_LEVEL_FIELDS, what="checkpoint fields")
        if meta["format"] != FORMAT:
            raise FieldError("format", meta["format"], f"is not a ktlens checkpoint config (expected {FORMAT!r})")
        if check_int("version", meta["version"]) != VERSION:
            raise FieldError("version", meta["version"], f"is not a supported format version (expected {VERSION})")
        model_type = meta["model_type"]
        if not isinstance(model_type, str) or model_type not in MODEL_TYPES:
            raise FieldError("model_type", model_type, f"is not a known model type ({sorted(MODEL_TYPES)})")
        model_cls = MODEL_TYPES[model_type]
        for section in ("model_config", "task_spec"):
            if not isinstance(meta[section], dict):
                raise FieldError(section, meta[section], "must be a JSON object")
        known = [f.name for f in dataclasses.fields(ModelConfig)]
        optional = _OPTIONAL_CONFIG_FIELDS | model_cls.optional_config_fields
        try:
            check_keys(meta["model_config"], known, [k for k in known if k not in optional], what="ModelConfig fields")
            cfg = ModelConfig.from_dict({**meta["model_config"], "device": device})
            # each size is one axis of some stored tensor: refuse absurd sizes before allocating them
            for name in ("d_model", "n_heads", "d_head", "d_mlp", "d_vocab", "d_vocab_out", "n_ctx", "d_vocab_src", "n_layers"):
                if n_weights is not None and getattr(cfg, name) > n_weights:
                    raise FieldError(name, getattr(cfg, name), f"is larger than the {n_weights} weights stored beside it")
        except FieldError as err:
            raise err.within("model_config") from None
        try:
            spec = model_cls.spec_type.from_dict(meta["task_spec"])
        except FieldError as err:
            raise err.within("task_spec") from None
        try:
            return model_cls(cfg, spec)
        except FieldError as err:  # the config does not fit the task
            raise err.within("model_config") from None
    except ValueError as err:
        raise ValueError(f"checkpoint config {config_path}: {err}") from None
    except (TypeError, KeyError, AttributeError) as err:  # a malformed value no check above foresaw
        raise ValueError(f"checkpoint config {config_path} is malformed: {err!r}") from None


def _config_of(config_path: Path) -> ModelConfig:
    """The (already validated) model config of a checkpoint, for error messages."""
    return ModelConfig.from_dict(_read_json(config_path)["model_config"])


_SIZE_FIELDS = ("d_model", "n_heads", "d_head", "d_mlp", "d_vocab", "d_vocab_out", "n_ctx", "d_vocab_src", "digit_base")


def _fields_for_shape(cfg: ModelConfig, stored: tuple[int, ...], wanted: tuple[int, ...]) -> str:
    """The model_config fields whose values size the axes where the config disagrees with the weights."""
    dims = {w for s, w in zip(stored, wanted) if s != w} if len(stored) == len(wanted) else set(wanted)
    names = [f"model_config.{f}={getattr(cfg, f)!r}" for f in _SIZE_FIELDS if getattr(cfg, f) in dims]
    return ", ".join(names) or "the model_config sizes"


def _fields_for_keys(cfg: ModelConfig, keys: list[str]) -> str:
    """The model_config fields that decide which of `keys` a model has."""
    names = []
    if any(k.startswith("blocks.") for k in keys):
        names.append(f"model_config.n_layers={cfg.n_layers!r}")
    if any("ln" in k for k in keys):
        names.append(f"model_config.normalization={cfg.normalization!r}")
    if any("W_digits" in k for k in keys):
        names.append(f"model_config.digit_base={cfg.digit_base!r}")
    if any("W_magnitude" in k for k in keys):
        names.append(f"model_config.magnitude_features={cfg.magnitude_features!r}")
    return ", ".join(dict.fromkeys(names)) or "model_type and model_config"


def load_checkpoint(path: str | Path, device: str = "cpu") -> HookedModel:
    """Load a model from a checkpoint folder, or raise ValueError saying what is wrong with it."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"checkpoint folder {path} does not exist")
    state = _read_tensors(path / "model.safetensors")
    model = _model_of_config(path / "config.json", device, n_weights=sum(t.numel() for t in state.values()))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    config = path / "config.json"
    if missing or unexpected:
        suspects = _fields_for_keys(_config_of(path / "config.json"), missing + unexpected)
        raise ValueError(
            f"checkpoint {path} does not match its config: missing {missing[:5]}, unexpected {unexpected[:5]}"
            f"; check {config}: {suspects}"
        )
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            suspects = _fields_for_shape(_config_of(path / "config.json"), tuple(tensor.shape), tuple(expected[name].shape))
            raise ValueError(
                f"checkpoint {path}: {name} has shape {tuple(tensor.shape)}, config expects "
                f"{tuple(expected[name].shape)}; check {config}: {suspects}"
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
