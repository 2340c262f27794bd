"""What several subcommands share: finding the model that `--model` names. No heavy imports here."""

from __future__ import annotations

from pathlib import Path

import ktlens
from ktlens.defaults import DEFAULT_KTHEORY_MODEL

PRETRAINED_DIR = Path(ktlens.__file__).parent / "pretrained"  # the shipped models (as in ktlens.checkpoint)


def add_model_argument(parser) -> None:
    """``--model`` of a command that reads one K-theory (or any) model, defaulting to ``DEFAULT_KTHEORY_MODEL``."""
    parser.add_argument("--model", default=DEFAULT_KTHEORY_MODEL,
                        help=f"shipped model name, checkpoint folder or run folder (default {DEFAULT_KTHEORY_MODEL})")


def _is_checkpoint(folder: Path) -> bool:
    return (folder / "config.json").is_file()


def resolve_model(name_or_path: str | Path) -> Path:
    """The checkpoint folder that ``--model`` names: a shipped model's name, a checkpoint folder, or a run
    folder from ``ktlens train`` (its ``model/`` folder). Otherwise a ValueError saying which folder to give."""
    text = str(name_or_path)
    shipped = PRETRAINED_DIR / text
    if text and "/" not in text and _is_checkpoint(shipped):
        return shipped
    path = Path(name_or_path)
    if not path.is_dir():
        names = sorted(p.name for p in PRETRAINED_DIR.iterdir() if _is_checkpoint(p)) if PRETRAINED_DIR.is_dir() else []
        raise ValueError(f"--model {text!r} is neither a shipped model ({', '.join(names) or 'none installed'}) nor a folder")
    if _is_checkpoint(path):
        return path
    if _is_checkpoint(path / "model"):
        return path / "model"
    found = sorted({str(c.parent) for pattern in ("*/config.json", "*/*/config.json") for c in path.glob(pattern)})
    if found:
        shown = ", ".join(found[:6]) + (f" and {len(found) - 6} more" if len(found) > 6 else "")
        raise ValueError(f"--model {text!r} is not a checkpoint folder (no config.json) nor a run folder (no model/); "
                         f"give one of the checkpoint folders inside it: {shown}")
    raise ValueError(f"--model {text!r} is not a checkpoint folder (no config.json) nor a run folder (no model/), "
                     "and holds no checkpoint folder")
