"""Where a K-theory model goes wrong: held-out autoregressive exact match broken down by prime, by
u = v_p(e), by trivial / non-trivial, and per label position (first wrong token); and how many wrong
answers still have the right group order (sum_i i n_i = r(e-1), log_p of |K_{2r-1}|).

    python analyses/ktheory_errors.py --model ktheory-small
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
import torch

from ktlens import load_pretrained
from ktlens.tasks.ktheory import p_adic_valuation_of_e
from ktlens.tasks.ktheory_data import KTheoryGridSpec, build_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ktheory-small")
    ap.add_argument("--split", default="test", choices=["test", "train", "all"])
    args = ap.parse_args()
    model = load_pretrained(args.model)
    ds = build_dataset(KTheoryGridSpec.from_dict(model.task_spec["grid"]))
    idx = {"test": ds.test_idx, "train": ds.train_idx, "all": np.arange(len(ds))}[args.split]
    src = torch.as_tensor(np.stack([ds.p[idx], ds.r[idx], ds.e[idx]], 1))
    pred = model.generate(src).numpy()
    truth = ds.counts[idx]
    ok = (pred == truth).all(1)
    print(f"{args.split}: {ok.mean():.4f} exact ({ok.sum()}/{len(ok)})")
    groups = {
        "prime": ds.p[idx],
        "u = v_p(e)": p_adic_valuation_of_e(ds.p[idx], ds.r[idx], ds.e[idx]),
        "trivial (p > re)": ds.is_trivial[idx],
    }
    for name, key in groups.items():
        acc = defaultdict(list)
        for k, good in zip(key.tolist(), ok.tolist()):
            acc[k].append(good)
        print(f"\nby {name}: " + ", ".join(f"{k}: {np.mean(v):.3f} (n={len(v)})" for k, v in sorted(acc.items())))
    wrong = pred != truth
    print("\nwrong sequences with n_i wrong, i = 1..L:", wrong[~ok].sum(0).tolist())
    rest_ok = ~wrong[:, 1:].any(1)
    miss = pred[rest_ok & ~ok, 0] - truth[rest_ok & ~ok, 0]
    print(f"n_2..n_L all right: {rest_ok.mean():.4f}; of those, n_1 wrong: {(~ok[rest_ok]).mean():.4f}, "
          f"off by {np.abs(miss).min() if miss.size else 0}..{np.abs(miss).max() if miss.size else 0} "
          f"(median {np.median(np.abs(miss)) if miss.size else 0:g})")
    weights = np.arange(1, pred.shape[1] + 1)
    order_ok = pred @ weights == ds.r[idx] * (ds.e[idx] - 1)
    print(f"wrong answers with the right order sum_i i n_i = r(e-1): {order_ok[~ok].sum()}/{(~ok).sum()}")
    decoded = model.to_model_order(wrong)  # decoding order: n_1 first, or n_L first (descending)
    first_wrong = np.where(ok, -1, decoded.argmax(1))
    counts = np.bincount(first_wrong[first_wrong >= 0], minlength=ds.seq_len)
    names = [f"n_{i}" for i in model.to_model_order(np.arange(1, ds.seq_len + 1))]
    print(f"first wrong token in decoding order ({', '.join(names)}):", counts.tolist())


if __name__ == "__main__":
    main()
