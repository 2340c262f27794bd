"""`ktlens dashboard --model NAME [--sae NAME] [--hook HOOK] --out DIR`: an offline feature site.

Writes ``DIR/index.html`` (density, coverage, searchable unit list), one page per unit under
``DIR/units/`` and plotly.js once under ``DIR/assets/``.
"""

from __future__ import annotations

import argparse

from ktlens.commands.common import add_model_argument


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="write an offline HTML feature dashboard for neurons or SAE latents")
    add_model_argument(p)
    p.add_argument("--sae", default=None, help="shipped SAE name or folder: its latents instead of neurons")
    p.add_argument("--hook", default=None, help="neuron hook, blocks.{l}.mlp.hook_post (default: the last block)")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import time

    import torch

    from ktlens.analysis.features import analyze_units
    from ktlens.commands.features import load_units
    from ktlens.viz.dashboard import write_dashboard

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    start = time.perf_counter()
    model, source = load_units(args)
    report = analyze_units(model, source)
    index = write_dashboard(report, args.out, model, title=f"{args.model}: {source.name}")
    print(f"wrote {index} ({source.n_units} unit pages, {time.perf_counter() - start:.1f} s)")
    return 0
