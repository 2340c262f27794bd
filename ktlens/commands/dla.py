"""`ktlens dla --model NAME --input P,R,E [--json]`: direct logit attribution of every component.

K-theory: per decoder position k (the model's order, named: scratch values such as r*e first, if the model
writes them, then the counts) the logit of the true value (`model.targets`) under teacher forcing and what
each writer of the final residual stream (embeddings, every self- and cross-attention head, MLPs, biases)
contributes to it; the contributions add up to the logit. MIIII (`--input N`): the same at
'=' for the true class of every task.
"""

from __future__ import annotations

import argparse

from ktlens.commands.common import add_model_argument


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dla", help="direct logit attribution: every head, MLP and bias's share of each logit")
    add_model_argument(p)
    p.add_argument("--input", required=True, help="P,R,E for a K-theory model, N for a MIIII model")
    p.add_argument("--top", type=int, default=6, help="components shown per position in the text output")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def parse_input(model, text: str):
    """The tokens and true targets of `--input` (P,R,E or N), or ValueError naming the text."""
    from ktlens.analysis.attribution import ktheory_targets, miiii_targets

    parts = [s.strip() for s in str(text).split(",")]
    try:
        values = [int(s) for s in parts]
    except ValueError:
        raise ValueError(f"--input {text!r} must be integers: P,R,E for a K-theory model, N for a MIIII model") from None
    if model.model_type == "miiii":
        if len(values) != 1:
            raise ValueError(f"--input {text!r}: a MIIII model takes one number N")
        return model.tokens_for(values), miiii_targets(model, values)
    if len(values) != 3:
        raise ValueError(f"--input {text!r}: a K-theory model takes P,R,E")
    p, r, e = ([v] for v in values)
    return model.make_batch(p, r, e), ktheory_targets(model, p, r, e)


def attribution_rows(model, text: str) -> list[dict]:
    """One dict per decoder position (K-theory) or task (MIIII), in the `--json` format."""
    import torch

    from ktlens.analysis.attribution import direct_logit_attribution

    tokens, targets = parse_input(model, text)
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
        attribution = direct_logit_attribution(model, cache, targets)
    rows = []
    for k in range(targets.shape[1]):
        t = int(targets[0, k])
        row = {"position": k, "token": t, "logit": float(logits[0, k, t])}
        if model.model_type == "miiii":
            row = {"position": 2, "task": int(model.moduli[k]), "token": t, "logit": float(logits[0, k, t])}
        else:
            row["label"] = model.position_labels()[k]
        row["components"] = [
            {"name": name, "contribution": float(c)} for name, c in zip(attribution.labels, attribution.contributions[:, 0, k])
        ]
        rows.append(row)
    return rows


def run(args: argparse.Namespace) -> int:
    import json

    from ktlens.checkpoint import load_pretrained
    from ktlens.commands.common import resolve_model

    model = load_pretrained(resolve_model(args.model)).eval()
    rows = attribution_rows(model, args.input)
    if args.json:
        print(json.dumps({"model": args.model, "input": args.input, "positions": rows}))
        return 0
    for row in rows:
        where = f"task q={row['task']}" if "task" in row else f"position {row['position']} ({row['label']})"
        total = sum(c["contribution"] for c in row["components"])
        print(f"{where}: true token {row['token']}  logit {row['logit']:.4f}  (sum of parts {total:.4f})")
        for c in sorted(row["components"], key=lambda c: -abs(c["contribution"]))[: args.top]:
            print(f"    {c['name']:<24} {c['contribution']:+.4f}")
    return 0
