"""`ktlens train STUDY --preset NAME [--set section.key=value ...]`: train a preset of a study with progress,
checkpoints and resume. Runs unchanged under `torchrun --nproc-per-node N -m ktlens.cli train ...`
(data parallel: the preset's batch is the global batch; see docs/scaling.md)."""

from __future__ import annotations

import argparse

STUDIES = {"ktheory": "ktlens.experiments.ktheory", "miiii": "ktlens.experiments.miiii"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a preset model (resumes from --out if interrupted)")
    p.add_argument("study", choices=sorted(STUDIES))
    p.add_argument("--preset", default="small", help="preset name (see `ktlens train STUDY --list`)")
    p.add_argument("--out", default=None, help="run folder (default runs/STUDY-PRESET)")
    p.add_argument("--steps", type=int, default=None, help="override the preset's number of steps")
    p.add_argument("--seed", type=int, default=None, help="override the preset's seed")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="override preset entries (JSON values), e.g. train.lr=3e-3 model.n_layers=2")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu",
                   help="where to train; auto = cuda when available (under torchrun: cuda:LOCAL_RANK)")
    p.add_argument("--list", action="store_true", help="list the presets and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import importlib
    import json

    import torch

    from ktlens import distributed
    from ktlens.experiments.overrides import apply_overrides

    study = importlib.import_module(STUDIES[args.study])
    if args.list:
        for name, preset in study.PRESETS.items():
            print(f"{name:14s} {preset.description}")
        return 0
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    preset = apply_overrides(study.get_preset(args.preset), args.set)
    out = args.out or f"runs/{args.study}-{args.preset}"
    label = " ".join([args.preset, *args.set])
    device = distributed.resolve_device(args.device)
    try:
        result = study.train_preset(
            preset, out, steps=args.steps, seed=args.seed, progress=not args.quiet, name=label, device=device
        )
        main = distributed.is_main_process()  # rank 0 (or the only process) reports
    finally:
        distributed.shutdown()
    if main:
        print(json.dumps(result.final, indent=1))
        print(f"model written to {out}/model")
    return 0
