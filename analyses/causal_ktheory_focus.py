"""Focused search for u and e' on ktheory-small: one DAS fit per attempt, one thing changed at a time.

    python analyses/causal_ktheory_focus.py --attempt NAME [NAME ...]   # run named attempts (list: --list)

Each attempt appends a JSON line (settings -> IIA, random subspace, no swap, IIA per decoder position, IIA on the
count positions n_2..n_L only) to ``runs/causal_ktheory_focus.jsonl``; the table in docs/results/causal_ktheory.md
("Focused search for u and e'") is made from it with ``--table``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LOG = ROOT / "runs" / "causal_ktheory_focus.jsonl"


def A(variable, location, k=1, steps=100, lr=1e-2, causal_model="algorithm1", manifold=False, draws=8, n_train=1024,
      n_test=512, same_prime=True):
    return dict(variable=variable, location=location, k=k, steps=steps, lr=lr, causal_model=causal_model,
                manifold=manifold, draws=draws, n_train=n_train, n_test=n_test, same_prime=same_prime)


B0, B1 = "blocks.0", "blocks.1"
ATTEMPTS: dict[str, dict] = {
    # 0: the sweep's best cell, reproduced
    "u.base": A("u", f"{B1}.mlp.hook_post@all"),
    # 1: pair design: answer-changing pairs only (more draws), then on the data manifold, then e_rebuilt
    "u.changing": A("u", f"{B1}.mlp.hook_post@all", draws=64, n_train=512, n_test=256),
    "u.manifold": A("u", f"{B1}.mlp.hook_post@all", draws=64, n_train=256, n_test=128, manifold=True),
    "u.rebuilt": A("u", f"{B1}.mlp.hook_post@all", draws=64, n_train=512, n_test=256, causal_model="e_rebuilt", manifold=True),
    "u.rebuilt.src_e": A("u", "hook_src@e", draws=64, n_train=512, n_test=256, causal_model="e_rebuilt", manifold=True),
    "u.manifold.src_e": A("u", "hook_src@e", draws=64, n_train=256, n_test=128, manifold=True),
}
# 2: locations where p and e have met; 3: subspace size, steps and learning rate (both causal models, manifold pairs)
LOCATION_HOOKS = (f"{B0}.hook_cross_attn_out", f"{B0}.hook_resid_mid_cross", f"{B0}.mlp.hook_post", f"{B0}.hook_resid_post",
                  f"{B1}.hook_cross_attn_out", f"{B1}.hook_resid_mid_cross", f"{B1}.mlp.hook_post", f"{B1}.hook_resid_post")
for cm, tag in (("algorithm1", "a1"), ("e_rebuilt", "rb")):
    U = dict(draws=64, n_train=512, n_test=256, causal_model=cm, manifold=True)
    for hook in LOCATION_HOOKS:
        short = hook.replace("blocks.", "b").replace(".hook_", ".").replace("mlp.post", "mlp")
        for pos in ("all", "bos", "8"):
            ATTEMPTS[f"u.{tag}.loc.{short}@{pos}"] = A("u", f"{hook}@{pos}", **U)
    for pos in range(9):
        ATTEMPTS[f"u.{tag}.pos{pos}.b1mlp"] = A("u", f"{B1}.mlp.hook_post@{pos}", **U)
    for k in (2, 4, 8, 16, 32, 64):
        for loc, short in ((f"{B1}.mlp.hook_post@all", "b1mlp"), ("hook_src@e", "src_e"), (f"{B0}.hook_cross_attn_out@all", "b0cross")):
            ATTEMPTS[f"u.{tag}.k{k}.{short}"] = A("u", loc, k=k, steps=300, **U)
    for steps in (300, 1000):
        for lr in (1e-2, 3e-3):
            ATTEMPTS[f"u.{tag}.s{steps}.lr{lr:g}"] = A("u", f"{B1}.mlp.hook_post@all", k=8, steps=steps, lr=lr, **U)
# the order variant (n_1 from the order identity), answer-changing pairs only
for k in (1, 8, 32):
    for loc, short in ((f"{B0}.hook_resid_post@all", "b0post"), (f"{B1}.hook_resid_mid_cross@all", "b1mid"),
                       (f"{B1}.mlp.hook_post@all", "b1mlp"), ("hook_src@e", "src_e")):
        ATTEMPTS[f"u.or.k{k}.{short}"] = A("u", loc, k=k, steps=300, draws=64, n_train=256, n_test=128, causal_model="order")
# e': the same designs
ATTEMPTS.update({
    "e.base": A("e_prime", f"{B1}.hook_resid_mid_cross@all", k=8),
    "e.rebuilt.src_e": A("e_prime", "hook_src@e", k=8, steps=300, causal_model="e_rebuilt", manifold=True, n_train=512, n_test=256),
    "e.manifold.src_e": A("e_prime", "hook_src@e", k=8, steps=300, manifold=True, n_train=512, n_test=256),
    "e.rebuilt.b0cross": A("e_prime", f"{B0}.hook_cross_attn_out@all", k=8, steps=300, causal_model="e_rebuilt", manifold=True, n_train=512, n_test=256),
    "e.rebuilt.b1mlp": A("e_prime", f"{B1}.mlp.hook_post@all", k=8, steps=300, causal_model="e_rebuilt", manifold=True, n_train=512, n_test=256),
})
for k in (1, 2, 4, 16, 32):
    ATTEMPTS[f"e.k{k}.src_e"] = A("e_prime", "hook_src@e", k=k, steps=300, causal_model="e_rebuilt", manifold=True, n_train=512, n_test=256)


def run_attempt(model, triples, name: str, spec: dict) -> dict:
    from transformer_lens.tools.analysis.interchange import SubspaceInterchange, random_basis

    from ktlens.analysis.causal.interchange import FitConfig, fit_subspace, collect, run_interchange
    from ktlens.analysis.causal.ktheory import _data, parse_location, position_indices

    t0 = time.perf_counter()
    data = _data(model, spec["variable"], spec["n_train"], spec["n_test"], 0, triples, spec["same_prime"],
                 spec["causal_model"], spec["manifold"], spec["draws"])
    loc = parse_location(spec["location"])
    pos = position_indices(model, loc)
    cfg = FitConfig(rank=spec["k"], steps=spec["steps"], lr=spec["lr"], seed=0)
    sub, losses = fit_subspace(model, loc.hook, pos, *data.train, cfg, progress=False)
    base, source, targets = data.test
    src = collect(model, loc.hook, source, pos)

    @torch.no_grad()
    def hits(iv):
        logits = model(base) if iv is None else run_interchange(model, loc.hook, pos, iv, base, src)
        return (logits.argmax(-1) == targets).numpy()

    basis = sub.basis.detach()
    h = {"learned": hits(SubspaceInterchange(basis)),
         "random": hits(SubspaceInterchange(random_basis(basis.shape[0], spec["k"], seed=1000))), "none": hits(None)}
    counts = slice(0, model.seq_len - 1)  # decoder order n_L .. n_2 (n_1 is the last position)
    out = dict(name=name, **spec, n_train_used=len(data.train_pairs), n_test_used=len(data.test_pairs),
               answer_changing_share=float(data.test_pairs.changing.mean()), natural_share=data.test_pairs.natural_share,
               seconds=round(time.perf_counter() - t0, 1), final_loss=float(np.mean(losses[-10:])))
    from ktlens.tasks import ktheory_causal as kc

    # pairs where e' differs from e on the base or the source (u >= 1 on either): only there can an e' swap
    # differ from swapping e itself
    tp = data.test_pairs
    mixed = (kc.intermediates(*tp.base.T)["u"] > 0) | (kc.intermediates(*tp.source.T)["u"] > 0)
    out["n_u_nonzero"] = int(mixed.sum())
    for key, hh in h.items():
        out[f"iia_u_nonzero_{key}"] = float(hh[mixed].all(1).mean()) if mixed.any() else None
        out[f"iia_{key}"] = float(hh.all(1).mean())
        out[f"iia_counts_{key}"] = float(hh[:, counts].all(1).mean())
        out[f"per_position_{key}"] = [round(float(x), 3) for x in hh.mean(0)]
    return out


def table(rows: list[dict]) -> str:
    lines = ["| attempt | variable | causal model | pairs | location | k | steps | lr | IIA | random subspace | no swap | "
             "answer-changing | IIA on n_2..n_L only (secondary) | IIA on pairs with u >= 1 on base or source (n) | IIA per position (n_9 .. n_1) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pairs = ("manifold" if r["manifold"] else "same p") + (f", draws {r['draws']}" if r["draws"] != 8 else "")
        lines.append(f"| {r['name']} | {r['variable']} | {r['causal_model']} | {pairs} | {r['location']} | {r['k']} | {r['steps']} | "
                     f"{r['lr']:g} | {r['iia_learned']:.3f} | {r['iia_random']:.3f} | {r['iia_none']:.3f} | "
                     f"{r['answer_changing_share']:.2f} | {r['iia_counts_learned']:.3f} (random {r['iia_counts_random']:.3f}) | "
                     + (f"{r['iia_u_nonzero_learned']:.3f} ({r['n_u_nonzero']})" if r.get("iia_u_nonzero_learned") is not None else "-") + " | "
                     + " ".join(f"{x:.2f}" for x in r["per_position_learned"]) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attempt", nargs="*", default=[])
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--table", action="store_true", help="print the markdown table of the logged attempts")
    ap.add_argument("--model", default="ktheory-small")
    args = ap.parse_args()
    if args.list:
        print("\n".join(ATTEMPTS))
        return
    if args.table:
        rows = {}
        for line in LOG.read_text().splitlines():
            r = json.loads(line)
            rows[r["name"]] = r
        print(table(list(rows.values())))
        return
    torch.set_num_threads(1)
    from ktlens.analysis.causal.ktheory import exact_triples
    from ktlens.checkpoint import load_pretrained

    model = load_pretrained(args.model).eval()
    triples = exact_triples(model)
    LOG.parent.mkdir(parents=True, exist_ok=True)
    for name in args.attempt:
        try:
            r = run_attempt(model, triples, name, ATTEMPTS[name])
        except ValueError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            continue
        with LOG.open("a") as f:
            f.write(json.dumps(r) + "\n")
        print(f"{name}: IIA {r['iia_learned']:.3f} random {r['iia_random']:.3f} none {r['iia_none']:.3f} "
              f"changing {r['answer_changing_share']:.2f} counts-only {r['iia_counts_learned']:.3f} "
              f"per-pos {' '.join(f'{x:.2f}' for x in r['per_position_learned'])} ({r['seconds']} s)", flush=True)


if __name__ == "__main__":
    main()
