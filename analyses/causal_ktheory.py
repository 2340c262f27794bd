"""Regenerate docs/results/causal_ktheory.{md,json} and its figures: is ktheory-small running Algorithm 1?

    python analyses/causal_ktheory.py                 # sweep + dose-response (~20 min on 1 core)
    python analyses/causal_ktheory.py --reuse-sweep   # dose-response and the report from the saved sweep

Sweep: DAS (``ktlens.analysis.causal``) for u, e', re, the capped count and n_1..n_3 at every default location
(source embedding; per block the residual after cross-attention, the MLP hidden layer and the residual after the
MLP, at BOS and at all decoder positions), subspace sizes 1 and 8, 100 Adam steps on 1024 training pairs,
scored on 512 held-out pairs; the random-model control at each variable's best cell. Dose-response: the
capped-count direction at the last block's MLP (``ktlens.analysis.causal.dose``). Figures: offline HTML in
--html-dir, PNG screenshots (headless chromium) in docs/results.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ktlens.checkpoint import load_pretrained  # noqa: E402

VARIABLES = ["u", "e_prime", "re", "capped", "n_1", "n_2", "n_3"]


def run_sweep(model, args) -> list[dict]:
    from ktlens.analysis.causal.sweep import sweep

    reports = sweep(model, VARIABLES, ranks=tuple(args.ranks), steps=args.steps, n_train=args.n_train, n_test=args.n_test,
                    seed=args.seed, progress=True)
    return [r.to_dict() for r in reports]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ktheory-small")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--n-train", type=int, default=1024)
    parser.add_argument("--n-test", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse-sweep", action="store_true", help="read the sweep from --sweep-json instead of running it")
    parser.add_argument("--sweep-only", action="store_true", help="run and save the sweep, nothing else")
    parser.add_argument("--sweep-json", default=str(ROOT / "runs" / "causal_ktheory_sweep.json"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "causal_ktheory"))
    parser.add_argument("--html-dir", default=str(ROOT / "runs" / "causal_ktheory_html"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_pretrained(args.model).eval()
    sweep_path = Path(args.sweep_json)
    t0 = time.perf_counter()
    if args.reuse_sweep:
        records = json.loads(sweep_path.read_text())
    else:
        records = run_sweep(model, args)
        sweep_path.parent.mkdir(parents=True, exist_ok=True)
        sweep_path.write_text(json.dumps(records, indent=1) + "\n")
        print(f"sweep: {len(records)} fits in {time.perf_counter() - t0:.0f} s -> {sweep_path}", file=sys.stderr)
    if args.sweep_only:
        return
    from analyses.causal_ktheory_report import write_report

    write_report(model, records, args)


if __name__ == "__main__":
    main()
