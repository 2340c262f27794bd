"""`ktlens predict P R E --model NAME`: a trained K-theory model's answer beside the true group."""

from __future__ import annotations

import argparse

from ktlens.commands.common import add_model_argument


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict [n_1, n_2, ...] for (p, r, e) with a trained K-theory model")
    p.add_argument("p", type=int)
    p.add_argument("r", type=int)
    p.add_argument("e", type=int)
    add_model_argument(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json

    from ktlens.checkpoint import load_pretrained
    from ktlens.commands.common import resolve_model
    from ktlens.tasks.ktheory import summand_counts

    model = load_pretrained(resolve_model(args.model))
    if model.model_type != "ktheory":
        raise ValueError(f"--model {args.model!r} is a {model.model_type!r} model, not a K-theory model")
    predicted = model.predict(p=[args.p], r=[args.r], e=[args.e])[0]
    truth = summand_counts(args.p, args.r, args.e)
    if args.json:
        print(json.dumps({"p": args.p, "r": args.r, "e": args.e, "predicted": predicted, "true": truth, "correct": predicted == truth}))
    else:
        print(f"predicted {predicted}   true {truth}   {'correct' if predicted == truth else 'WRONG'}")
    return 0
