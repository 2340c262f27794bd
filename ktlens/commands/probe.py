"""`ktlens probe --model NAME`: linear probes of a model's hooks, with random-model and shuffled controls.

Prints a table (targets x hooks); `--json` prints the records instead; `--out DIR` also writes
`probes.json`, `probes.md` and an offline `probe_heatmap.html` there. Progress (hooks x targets) and
warnings about class targets with too few examples per class go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ktlens.commands.common import add_model_argument


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probe", help="linear probes over a model's hooks (with controls)")
    add_model_argument(p)
    p.add_argument("--json", action="store_true", help="print the records as JSON instead of a table")
    p.add_argument("--out", default=None, help="folder for probes.json, probes.md and probe_heatmap.html")
    p.add_argument("--hooks", nargs="+", default=None, help="hook names (default: embeddings + the three points per block)")
    p.add_argument("--targets", nargs="+", default=None, help="target names (default: all of the study's targets)")
    p.add_argument("--positions", default="default",
                   help="'default' (BOS for K-theory, '=' for remainders), 'flatten', 'all', 'none', K or K1,K2")
    p.add_argument("--n-max", type=int, default=4000, help="examples sampled from the model's domain (default 4000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample and of the train/test split")
    p.add_argument("--no-control", action="store_true", help="skip the random-init model control")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(run=run)


def parse_positions(text: str) -> Any:
    """'default' | 'flatten' | 'all' | 'none' | 'K' | 'K1,K2,...' -> a position spec."""
    if text in ("default", "flatten", "all", "none"):
        return text
    try:
        ks = [int(k) for k in text.split(",")]
    except ValueError:
        raise ValueError(f"--positions {text!r} is not 'default', 'flatten', 'all', 'none', an int or a comma list of ints") from None
    return ks[0] if len(ks) == 1 else ks


def run(args: argparse.Namespace) -> int:
    import torch

    from ktlens.analysis.probes import results_table, run_probes
    from ktlens.analysis.probes.targets import default_hooks, probe_data
    from ktlens.checkpoint import load_pretrained
    from ktlens.commands.common import resolve_model

    torch.set_num_threads(max(1, args.threads))
    positions = parse_positions(args.positions)
    model = load_pretrained(resolve_model(args.model))
    data = probe_data(model, n_max=args.n_max, seed=args.seed)
    if args.targets:
        data = data.select(args.targets)
    hooks = args.hooks or default_hooks(model)
    t0 = time.perf_counter()
    results = run_probes(model, data.tokens, data.targets, hooks, positions=positions,
                         control=not args.no_control, seed=args.seed, progress=not args.no_progress)
    seconds = time.perf_counter() - t0
    records = [
        {"target": r.target, "hook": r.hook, "position": r.position, "metric": r.metric,
         "accuracy": r.accuracy, "control_accuracy": r.control_accuracy,
         "shuffled_accuracy": r.shuffled_accuracy, "baseline": r.baseline,
         "selectivity": r.selectivity, "description": r.description}
        for r in results
    ]
    summary = f"{len(results)} probes on {len(data.tokens)} examples in {seconds:.1f} s"
    if args.json:
        print(json.dumps(records, indent=1))
        print(summary, file=sys.stderr)
    else:
        print(results_table(results))
        print(summary)
    if args.out:
        from ktlens.viz.probe_heatmap import save_probe_heatmap

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "probes.json").write_text(json.dumps([r.to_dict() for r in results], indent=1) + "\n")
        (out / "probes.md").write_text(results_table(results, markdown=True) + "\n")
        save_probe_heatmap(results, out / "probe_heatmap.html", title=f"Linear probes: {args.model}")
        if not args.json:
            print(f"wrote {out}/probes.json, probes.md, probe_heatmap.html")
    return 0
