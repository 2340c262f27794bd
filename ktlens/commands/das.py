"""`ktlens das --model NAME --variable V`: distributed alignment search for one causal variable.

Fits DAS at `--location` (or at every default location, printing the best) and prints `variable, location,
subspace_dim, iia, iia_random_subspace, iia_placebo, iia_random_model, n_pairs, answer_changing_share`;
`--json` prints them as JSON; `--sweep` prints every (location, size) row instead. Progress goes to stderr.
Works on bounded-domain and scratchpad models (ktheory-base): pairs from the model's domain, IIA scored at the
count positions with the base's scratch values in the decoder input (`ktlens.analysis.causal.ktheory`).
"""

from __future__ import annotations

import argparse
import json

from ktlens.commands.common import add_model_argument

KEYS = ("variable", "location", "subspace_dim", "iia", "iia_random_subspace", "iia_placebo", "iia_random_model",
        "n_pairs", "answer_changing_share")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("das", help="distributed alignment search for a causal variable (with controls)")
    add_model_argument(p)
    p.add_argument("--variable", required=True, help="u, e_prime, re, capped or n_k")
    p.add_argument("--location", action="append", default=None,
                   help="HOOK or HOOK@POSITIONS (bos, labels, all, count, scratch or a decoder position; src, p, r, e "
                        "for hook_src); repeatable; default: every default location")
    p.add_argument("--rank", type=int, nargs="+", default=[1, 8], help="subspace sizes (default 1 8)")
    p.add_argument("--steps", type=int, default=100, help="Adam steps per fit (default 100)")
    p.add_argument("--n-train", type=int, default=1024, help="training pairs (default 1024)")
    p.add_argument("--n-test", type=int, default=512, help="held-out pairs (default 512)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scratch-input", choices=("base", "counterfactual"), default="base",
                   help="scratchpad models: the base's own scratch values in the decoder input, IIA at the count "
                        "positions (base), or the causal model's whole counterfactual sequence, IIA at every position")
    p.add_argument("--sweep", action="store_true", help="print every (location, size) row, not just the best")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ktlens.analysis.causal.sweep import sweep
    from ktlens.checkpoint import load_pretrained
    from ktlens.commands.common import resolve_model
    from ktlens.tasks.ktheory_causal import check_variable

    torch.set_num_threads(max(1, args.threads))
    check_variable(args.variable)
    model = load_pretrained(resolve_model(args.model)).eval()
    if getattr(model, "model_type", None) != "ktheory":
        raise ValueError(f"--model {args.model!r} is not a K-theory model: DAS here aligns Algorithm 1's variables")
    reports = sweep(model, [args.variable], args.location, ranks=tuple(args.rank), steps=args.steps,
                    n_train=args.n_train, n_test=args.n_test, seed=args.seed, random_model_control=not args.sweep,
                    progress=not args.no_progress, scratch_input=args.scratch_input)
    rows = [r.to_dict() for r in reports] if args.sweep else [max(reports, key=lambda r: (r.iia, -r.subspace_dim)).to_dict()]
    rows = [{k: row[k] for k in KEYS} for row in rows]
    if args.json:
        print(json.dumps(rows if args.sweep else rows[0], indent=1))
        return 0
    fmt = lambda v: "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    print("  ".join(KEYS))
    for row in rows:
        print("  ".join(fmt(row[k]) for k in KEYS))
    return 0
