"""`ktlens demo`: the main job on its built-in small default, in well under a minute.

Builds the default K-theory grid and prints its summary, then checks the shipped K-theory model
autoregressively against the exact answers on that grid (all triples and the non-trivial ones).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="build the default dataset, print its summary, check the shipped model on it")
    p.add_argument("--model", default="ktheory-small",
                   help="shipped model name, checkpoint folder or run folder (default ktheory-small: checked on its whole "
                        "grid in seconds; the analysis default ktheory-base-eprime takes minutes)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ktlens.checkpoint import load_pretrained, pretrained_names
    from ktlens.commands.common import resolve_model
    from ktlens.tasks.ktheory import group_string
    from ktlens.tasks.ktheory_data import KTheoryGridSpec, build_dataset

    dataset = build_dataset(KTheoryGridSpec.small())
    print(dataset.summary())
    if args.model not in pretrained_names() and args.model == "ktheory-small":
        print("no shipped ktheory-small model in this install; train one with `ktlens train ktheory --preset small`")
        return 0
    model = load_pretrained(resolve_model(args.model))
    spec = model.task_spec["grid"]
    print(f"\nmodel {args.model}: trained on {spec['n_primes']} primes, r <= {spec['r_max']}, e <= {spec['e_max']}")
    grid = build_dataset(KTheoryGridSpec.from_dict(spec))
    predicted = model.predict(grid.p, grid.r, grid.e)
    truth = [row[: np.flatnonzero(row).max() + 1].tolist() if row.any() else [] for row in grid.counts]
    ok = np.array([a == b for a, b in zip(predicted, truth)])
    nontrivial = ~grid.is_trivial
    for name, idx in (("all", np.arange(len(ok))), ("held-out", grid.test_idx)):
        sel = ok[idx]
        print(f"autoregressive exact match, {name}: {sel.mean():.4f} ({sel.sum()}/{len(sel)}); "
              f"non-trivial (p <= re): {ok[idx][nontrivial[idx]].mean():.4f}")
    print("\nexamples (p, r, e): predicted / true group")
    for i in np.random.default_rng(0).choice(grid.test_idx, 5, replace=False):
        p, r, e = int(grid.p[i]), int(grid.r[i]), int(grid.e[i])
        print(f"  K_{2 * r - 1}(F_{p}[x]/(x^{e})): predicted {predicted[i]}  true {truth[i]} = {group_string(p, r, e)}")
    return 0
