"""Time one DAS fit (one variable, one location) on a K-theory model (default ktheory-small) with one thread.

    python benchmarks/bench_das.py [--model ktheory-base] [--steps 100] [--rank 8] [--location blocks.1.hook_resid_mid_cross@all]

The budget is 60 s per fit on 2 cores; the fit includes sampling the pairs, 100 Adam steps of 64 pairs and the
held-out scoring with its controls (random subspace, placebo, no swap).
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ktlens.analysis.causal.interchange import FitConfig  # noqa: E402
from ktlens.analysis.causal.ktheory import das, exact_triples  # noqa: E402
from ktlens.checkpoint import load_pretrained  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="ktheory-small")
parser.add_argument("--steps", type=int, default=100)
parser.add_argument("--rank", type=int, default=8)
parser.add_argument("--variable", default="u")
parser.add_argument("--location", default="blocks.1.hook_resid_mid_cross@all")
args = parser.parse_args()
torch.set_num_threads(1)
model = load_pretrained(args.model).eval()
t0 = time.perf_counter()
triples = exact_triples(model)
print(f"exactly labelled triples: {len(triples)} of {model.n_domain} ({time.perf_counter() - t0:.1f} s)")
t0 = time.perf_counter()
r = das(model, args.variable, args.location, FitConfig(rank=args.rank, steps=args.steps), n_train=1024, triples=triples)
print(f"{args.variable} @ {args.location} k={args.rank}: {time.perf_counter() - t0:.1f} s (IIA {r.iia:.3f})")
