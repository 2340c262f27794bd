"""`ktlens train STUDY --preset NAME`: train a preset of a study with progress, checkpoints and resume."""

from __future__ import annotations

import argparse
import importlib
import json

import torch

STUDIES = {"ktheory": "ktlens.experiments.ktheory", "miiii": "ktlens.experiments.miiii"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a preset model (resumes from --out if interrupted)")
    p.add_argument("study", choices=sorted(STUDIES))
    p.add_argument("--preset", default="small", help="preset name (see `ktlens train STUDY --list`)")
    p.add_argument("--out", default=None, help="run folder (default runs/STUDY-PRESET)")
    p.add_argument("--steps", type=int, default=None, help="override the preset's number of steps")
    p.add_argument("--seed", type=int, default=None, help="override the preset's seed")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="miiii only: override preset entries, e.g. train.lr=3e-3")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--list", action="store_true", help="list the presets and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    study = importlib.import_module(STUDIES[args.study])
    if args.list:
        for name in study.PRESETS:
            print(name)
        return 0
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    preset = args.preset
    if args.set:
        if args.study != "miiii":
            raise ValueError(f"--set is supported for miiii presets only, not {args.study!r} (see benchmarks/ktheory_sweep.py)")
        preset = study.with_overrides(study.get_preset(args.preset), args.set)
    out = args.out or f"runs/{args.study}-{args.preset}"
    result = study.train_preset(preset, out, steps=args.steps, seed=args.seed, progress=not args.quiet)
    print(json.dumps(result.final, indent=1))
    print(f"model written to {out}/model")
    return 0
