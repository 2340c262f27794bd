"""SAE files: a folder with `cfg.json` (architecture, config naming the parent model and hook) and
`sae.safetensors` (the weights), plus an optional `metrics.json`. Nothing is unpickled.

Shipped SAEs live in `ktlens/pretrained_saes/<model>/<hook>/` and are named "<model>/<hook>", e.g.
"ktheory-small/blocks.0.mlp.hook_post".
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

import ktlens.saes.batchtopk  # noqa: F401  (registers the architecture)
import ktlens.saes.relu  # noqa: F401
import ktlens.saes.topk  # noqa: F401
from ktlens.saes.base import SAE, build_sae, config_from_dict

FORMAT = "ktlens-sae"
VERSION = 1
PRETRAINED_SAES_DIR = Path(__file__).resolve().parent.parent / "pretrained_saes"
WEIGHT_NAMES = ("W_enc", "b_enc", "W_dec", "b_dec", "input_scale")  # what a saved SAE holds (and "threshold": batchtopk)


def save_sae(sae: SAE, path: str | Path, metrics: dict[str, Any] | None = None) -> Path:
    """Write an SAE folder atomically (weights, config, and `metrics` when given)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    meta = {"format": FORMAT, "version": VERSION, "config": sae.cfg.to_dict()}
    (tmp / "cfg.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    state = sae.state_dict()
    save_file({k: state[k].detach().contiguous().cpu() for k in _weight_names(sae)}, str(tmp / "sae.safetensors"))
    if metrics is not None:
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")
    path.mkdir(parents=True, exist_ok=True)
    for item in tmp.iterdir():
        os.replace(item, path / item.name)
    tmp.rmdir()
    return path


def _weight_names(sae: SAE) -> tuple[str, ...]:
    return WEIGHT_NAMES + (("threshold",) if "threshold" in sae.state_dict() else ())


def _read_meta(path: Path) -> dict[str, Any]:
    file = path / "cfg.json"
    try:
        meta = json.loads(file.read_text())
    except FileNotFoundError:
        raise ValueError(f"SAE file {file} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"SAE file {file} is corrupt (not valid JSON): {err}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("config"), dict):
        raise ValueError(f"{file} is not a ktlens SAE config")
    if meta.get("version") != VERSION:
        raise ValueError(f"SAE {path} has format version {meta.get('version')!r}, expected {VERSION}")
    return meta


def load_sae_folder(path: str | Path, device: str = "cpu") -> SAE:
    """An SAE from its folder, or ValueError saying what is wrong with it."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"SAE folder {path} does not exist")
    cfg = config_from_dict(_read_meta(path)["config"])
    sae = build_sae(cfg)
    file = path / "sae.safetensors"
    if not file.is_file():
        raise ValueError(f"SAE file {file} is missing")
    try:
        state = load_file(str(file))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"SAE file {file} is corrupt or truncated: {err}") from None
    expected = sae.state_dict()
    if set(state) != set(_weight_names(sae)):
        raise ValueError(f"SAE file {file} holds {sorted(state)}, expected {sorted(_weight_names(sae))}")
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise ValueError(f"SAE {path}: {name} has shape {tuple(tensor.shape)}, its config expects {tuple(expected[name].shape)}")
        if not torch.isfinite(tensor).all():
            raise ValueError(f"SAE {path}: {name} contains NaN or inf")
    sae.load_state_dict(state, strict=False)
    sae.to(device)
    sae.eval()
    return sae


def pretrained_saes() -> list[str]:
    """Names of the SAEs shipped inside the package ("<model>/<hook>")."""
    if not PRETRAINED_SAES_DIR.is_dir():
        return []
    return sorted(str(p.parent.relative_to(PRETRAINED_SAES_DIR)) for p in PRETRAINED_SAES_DIR.glob("*/*/cfg.json"))


def load_sae(name_or_path: str | Path, device: str = "cpu") -> SAE:
    """A shipped SAE by name (see `pretrained_saes()`) or an SAE folder."""
    name = str(name_or_path)
    if name in pretrained_saes():
        return load_sae_folder(PRETRAINED_SAES_DIR / name, device)
    if Path(name).is_dir():
        return load_sae_folder(name, device)
    raise ValueError(f"no shipped SAE or SAE folder named {name!r}; shipped: {pretrained_saes()}")


def read_sae_metrics(name_or_path: str | Path) -> dict[str, Any] | None:
    """The metrics stored beside a shipped or saved SAE, if any."""
    name = str(name_or_path)
    folder = PRETRAINED_SAES_DIR / name if name in pretrained_saes() else Path(name)
    file = folder / "metrics.json"
    return json.loads(file.read_text()) if file.is_file() else None
