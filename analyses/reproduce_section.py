"""Shared by the analyses scripts that print one section of `ktlens reproduce`: run (or read from the
cache in ``--out``, by default the `ktlens reproduce` folder ``report``) one section and print the
reference's number beside ours. Not run on its own."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

Row = tuple[str, Any, Any]  # (what, the reference's figure, ours)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def run(key: str, rows: Callable[[dict], Iterable[Row]], doc: str, argv: list[str] | None = None) -> dict:
    """Parse ``--out/--fast/--model``, run section ``key`` and print its rows; returns the section."""
    import torch

    from ktlens.analysis.reproduce import DEFAULT_MODELS, reproduce

    study = key.split(".")[0]
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--out", default="report", help="report folder whose .cache is reused (default: report)")
    ap.add_argument("--fast", action="store_true", help="the --fast settings of `ktlens reproduce`")
    ap.add_argument("--model", default=DEFAULT_MODELS[study])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = reproduce([study], args.out, fast=args.fast, models={study: args.model}, only=[key])
    s = report.sections[0]
    print(f"# {s['title']} ({args.model}{', --fast' if args.fast else ''}{', from the cache' if s['cached'] else ''})")
    print(f"{'':44s} {'reference':>12s} {'ours':>12s}")
    for what, ref, ours in rows(s["summary"]):
        print(f"{what:44s} {_fmt(ref):>12s} {_fmt(ours):>12s}")
    print(f"\nthe reference: {s['claim']}\nours: {s['ours']}\nwhere we differ: {s['differs']}")
    return s
