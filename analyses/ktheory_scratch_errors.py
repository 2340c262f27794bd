"""Where a K-theory model with a scratchpad goes wrong on its held-out split: the first wrong decoder position
(scratch values included) per prime, and for each count n_h whether its misses sit where the e'-divisible
multiples change it (N_h != 0 in n_h = A_h - [h > u] N_h + [h = u] (C_u - C_{u+1}); `counts_from_boundaries`).

    python analyses/ktheory_scratch_errors.py --model ktheory-base
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
import torch

from ktlens import load_pretrained
from ktlens.tasks.ktheory import e_prime, p_adic_valuation_of_e
from ktlens.tasks.ktheory_data import KTheoryGridSpec, build_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ktheory-base")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_pretrained(args.model).eval()
    ds = build_dataset(KTheoryGridSpec.from_dict(model.task_spec["grid"]))
    idx = ds.test_idx
    p, r, e = ds.p[idx], ds.r[idx], ds.e[idx]
    src = torch.as_tensor(np.stack([p, r, e], 1))
    decoded = model.decode(src)
    generated = decoded.numpy()
    targets = model.targets(p, r, e).numpy()
    exact = (model.answer(src, decoded).numpy() == ds.counts[idx]).all(1)
    labels = model.position_labels()
    wrong = generated != targets
    first = np.where(wrong.any(1), wrong.argmax(1), -1)
    print(f"{args.model}: held-out exact {exact.mean():.4f} ({(~exact).sum()} wrong of {len(exact)})")
    print("first wrong decoder position per prime (answers wrong / all):")
    for q in np.unique(p):
        sel = (p == q) & ~exact
        where = Counter(labels[k] for k in first[sel] if k >= 0)
        print(f"  p = {q}: {sel.sum()}/{(p == q).sum()}  " + ", ".join(f"{k} {v}" for k, v in where.most_common(6)))
    in_scratch = ((first >= 0) & (first < model.n_scratch) & ~exact).sum()
    print(f"wrong answers whose first wrong token is a scratch value: {in_scratch}; a count: {(~exact).sum() - in_scratch}")
    # n_h = A_h - N_h (h > u) + ...: is a miss at n_h where N_h, the e'-divisible part, is non-zero?
    L = model.seq_len
    u = p_adic_valuation_of_e(p, r, e)
    C = np.stack([r * e // e_prime(p, r, e) // p**h for h in range(L + 2)], 1)
    N = C[:, :-2] - 2 * C[:, 1:-1] + C[:, 2:]  # N_1..N_L
    print("count  first-wrong  with N_h != 0   accuracy of n_h where N_h != 0 (share) / where N_h = 0")
    for h in range(1, min(L, 4) + 1):
        k = model.n_scratch + list(model.to_model_order(np.arange(1, L + 1))).index(h)
        corrected = (N[:, h - 1] != 0) & (h > u)
        first_here = (first == k) & ~exact
        acc = ~wrong[:, k]
        print(f"  n_{h}   {first_here.sum():5d}   {(first_here & corrected).sum():5d}   "
              f"{acc[corrected].mean():.3f} ({corrected.mean():.2f}) / {acc[~corrected].mean():.3f}")


if __name__ == "__main__":
    main()
