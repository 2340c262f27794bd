"""`ktlens reproduce ktheory|miiii|all [--out DIR] [--fast]`: both studies end to end as one offline report.

Runs each study's sections (`ktlens.analysis.reproduce`) from the shipped models, SAEs and results with
one progress display, caches every finished section in DIR/.cache (an interrupted rerun reuses them),
and writes DIR/index.html, one page per section, DIR/summary.json (`ktlens.viz.report`).
"""

from __future__ import annotations

import argparse

from ktlens.defaults import DEFAULT_MODELS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="both studies end to end: an offline report and summary.json")
    p.add_argument("study", choices=("ktheory", "miiii", "all"), help="which study (all: both)")
    p.add_argument("--out", default="report", help="output folder (default: report)")
    p.add_argument("--fast", action="store_true", help="small settings (samples instead of whole domains): a smoke run")
    p.add_argument("--ktheory-model", default=DEFAULT_MODELS["ktheory"], help=f"K-theory model: shipped name or checkpoint folder (default {DEFAULT_MODELS['ktheory']})")
    p.add_argument("--miiii-model", default=DEFAULT_MODELS["miiii"], help=f"MIIII model: shipped name or checkpoint folder (default {DEFAULT_MODELS['miiii']})")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ktlens.analysis.reproduce import reproduce
    from ktlens.viz.report import write_report

    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    studies = ["ktheory", "miiii"] if args.study == "all" else [args.study]
    report = reproduce(studies, args.out, fast=args.fast, models={"ktheory": args.ktheory_model, "miiii": args.miiii_model},
                       progress=not args.no_progress)
    index = write_report(report, args.out)
    print(f"{len(report.sections)} sections ({len(report.computed)} computed, {len(report.sections) - len(report.computed)} "
          f"from the cache) in {report.seconds:.0f} s")
    for s in report.sections:
        print(f"  {s['study']}/{s['name']}: {s['ours']}")
    print(f"wrote {index} and {index.parent / 'summary.json'}")
    return 0
