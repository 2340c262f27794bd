"""`ktlens miiii-analysis --model NAME [--json] [--out DIR]`: per task of a MIIII model, the predicted and
found frequencies and the restricted / excluded ablations."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

JSON_KEYS = ("q", "predicted_frequencies", "found_frequencies", "restricted_accuracy", "excluded_accuracy",
             "restricted_loss", "excluded_loss")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("miiii-analysis", help="predicted vs found frequencies and Fourier ablations of each MIIII task")
    p.add_argument("--model", required=True, help="shipped model name (e.g. miiii-small), checkpoint or run folder")
    p.add_argument("--json", action="store_true", help="print one JSON list (one object per task) instead of a table")
    p.add_argument("--out", default=None, help="also write analysis.json (every field) and the figures here")
    p.add_argument("--progress", action="store_true",
                   help="also compute the progress measures over the run's snapshots (--model a run folder; needs --out)")
    p.set_defaults(run=run)


def _fmt(ks) -> str:
    return ",".join(str(k) for k in ks) or "-"


def table(rows) -> str:
    """A markdown table of the analysis records."""
    lines = ["| q | predicted x0 | predicted x1 | found x0 | found x1 | characters j | restricted acc / loss | excluded acc / loss |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        pf, ff = r.predicted_frequencies, r.found_frequencies
        lines.append(f"| {r.q} | {_fmt(pf['x0'])} | {_fmt(pf['x1'])} | {_fmt(ff['x0'])} | {_fmt(ff['x1'])} | {_fmt(r.characters)} | "
                     f"{r.restricted_accuracy:.3f} / {r.restricted_loss:.3f} | {r.excluded_accuracy:.3f} / {r.excluded_loss:.3f} |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import torch

    from ktlens.analysis.miiii_analysis import analyse
    from ktlens.checkpoint import load_checkpoint
    from ktlens.commands.common import resolve_model

    model_dir = resolve_model(args.model)
    model = load_checkpoint(model_dir)
    if model.model_type != "miiii":
        raise ValueError(f"{args.model!r} is a {model.model_type!r} model, not a miiii model")
    if model.spec.variant != "remainders":
        raise ValueError(f"{args.model!r} is of the {model.spec.variant!r} variant; the analysis is for 'remainders'")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    if args.progress and not args.out:
        raise ValueError("--progress needs --out (it writes progress.json and progress.html there)")
    rows = analyse(model)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "analysis.json").write_text(json.dumps([r.to_dict() for r in rows], indent=1) + "\n")
        from ktlens.viz.miiii_figures import analysis_figures_html

        analysis_figures_html(model, rows, out)
    if args.progress:
        _progress(model, model_dir, rows, args.out)
    if args.json:
        print(json.dumps([{k: r.to_dict()[k] for k in JSON_KEYS} for r in rows]))
    else:
        print(table(rows))
        if args.out:
            print(f"\nwritten: {Path(args.out) / 'analysis.json'}")
    return 0


def _progress(model, model_dir: Path, rows, out: str) -> None:
    """Progress measures over ``<run>/snapshots`` with the final model's characters; progress.json + figure."""
    from ktlens.analysis.progress import exact_steps, progress_over_snapshots, task_order
    from ktlens.viz.html import write_pages
    from ktlens.viz.miiii_figures import find_metrics, progress_figure

    folder = Path(model_dir).parent / "snapshots"
    snaps = sorted(p for p in folder.iterdir() if (p / "config.json").is_file()) if folder.is_dir() else []
    if not snaps:
        raise ValueError(f"--progress: no snapshots in {folder} (give the run folder of `ktlens train miiii`)")
    characters = {r.q: r.characters for r in rows}
    measures = {"characters": {str(q): j for q, j in characters.items()}, "rows": progress_over_snapshots(snaps, characters)}
    metrics = find_metrics(model_dir)
    if metrics and metrics.get("history"):
        history = metrics["history"]
        steps = exact_steps(history, model.moduli)
        first = exact_steps(history, model.moduli, stay=False)
        measures["exact_steps"] = {str(q): s for q, s in steps.items()}
        measures["order"] = task_order(steps)
        measures["first_exact_steps"] = {str(q): s for q, s in first.items()}
        measures["first_order"] = task_order(first)
        kept = [r for r in history if int(r["step"]) % 100 == 0]
        measures["test_accuracy"] = {"step": [int(r["step"]) for r in kept],
                                     **{str(q): [round(float(r.get(f"test_acc_q{q}", float("nan"))), 4) for r in kept] for q in model.moduli}}
    path = Path(out) / "progress.json"
    path.write_text(json.dumps(_rounded(measures)) + "\n")
    write_pages({"progress": progress_figure(measures)}, out, title="MIIII progress measures")
    print(f"written: {path}")
    if measures.get("order"):
        print("order in which tasks are first exact:", ", ".join(f"{q} ({measures['first_exact_steps'][str(q)]})" for q in measures["first_order"]))
        print("order in which tasks become exact for good:", ", ".join(f"{q} ({measures['exact_steps'][str(q)]})" for q in measures["order"]))


def _rounded(x):
    """Floats to 6 significant digits (a small JSON)."""
    if isinstance(x, float):
        return float(f"{x:.6g}")
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_rounded(v) for v in x]
    return x
