"""`ktlens miiii-figures --model NAME_OR_PATH --out DIR`: Fourier-analysis figures of a MIIII model."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("miiii-figures", help="write the Fourier-analysis figures of a MIIII model as offline HTML")
    p.add_argument("--model", required=True, help="run folder (e.g. runs/miiii-small), checkpoint folder or shipped model name")
    p.add_argument("--out", default="figures/miiii", help="output folder")
    p.add_argument("--snapshots", default=None, help="folder of step_NNNNNN checkpoints for the key-frequency timeline")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ktlens.checkpoint import load_checkpoint
    from ktlens.commands.common import resolve_model
    from ktlens.viz.miiii_figures import write_figures

    model_dir = resolve_model(args.model)
    model = load_checkpoint(model_dir)
    if model.model_type != "miiii":
        raise ValueError(f"{args.model!r} is a {model.model_type!r} model, not a miiii model")
    snapshots = None
    if args.snapshots:
        folder = Path(args.snapshots)
        if not folder.is_dir():
            raise ValueError(f"snapshot folder {folder} does not exist")
        snapshots = sorted(p for p in folder.iterdir() if (p / "config.json").is_file())
    for path in write_figures(model, args.out, model_dir=model_dir, snapshots=snapshots):
        print(path)
    return 0
