"""`ktlens kgroup P R E [--f F] [--json]`: the group K_{2R-1}(F_q[x]/(x^E), (x)), q = P^F."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("kgroup", help="print K_{2r-1}(F_q[x]/(x^e), (x)) as a sum of cyclic groups")
    p.add_argument("p", type=int, help="prime p")
    p.add_argument("r", type=int, help="K-group index: K_{2r-1}")
    p.add_argument("e", type=int, help="truncation: F_q[x]/(x^e)")
    p.add_argument("--f", type=int, default=1, help="residue field F_q with q = p^f (default 1)")
    p.add_argument("--json", action="store_true", help="print a JSON record instead of the group")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json

    from ktlens.tasks.ktheory import group_string, log_p_order, summand_counts

    group = group_string(args.p, args.r, args.e, args.f)
    counts = summand_counts(args.p, args.r, args.e, args.f)
    if args.json:
        record = {
            "p": args.p,
            "r": args.r,
            "e": args.e,
            "f": args.f,
            "degree": 2 * args.r - 1,
            "group": group,
            "counts": counts,
            "log_p_order": int(args.f * log_p_order(args.p, args.r, args.e)),
        }
        print(json.dumps(record))
    else:
        print(group)
    return 0
