"""Benchmark: closed-form ``summand_count_table`` vs the loop ``k_group_reference``.

Grid: first 400 primes x 1 <= r <= 100 x 1 <= e <= 50 (2,000,000 triples).
* closed form on the full grid, best of ``--repeats``;
* loop reference on a random subset of the same grid (``--subset`` triples, same seed every run),
  converted to label counts; the table rows on that subset are checked against it.
Prints per-triple times, the speed ratio and the full-grid time.

    python benchmarks/bench_ktheory_table.py [--subset 2000] [--repeats 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from ktlens.tasks.ktheory import first_primes, k_group_reference, summand_count_table


def reference_grid():
    p, r, e = np.meshgrid(
        np.asarray(first_primes(400), dtype=np.int64),
        np.arange(1, 101, dtype=np.int64),
        np.arange(1, 51, dtype=np.int64),
        indexing="ij",
    )
    return p.ravel(), r.ravel(), e.ravel()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subset", type=int, default=2000, help="triples for the loop reference")
    ap.add_argument("--repeats", type=int, default=3, help="best of this many full-grid runs")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    p, r, e = reference_grid()
    n = p.size

    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        table = summand_count_table(p, r, e)
        times.append(time.perf_counter() - t0)
    t_table = min(times)

    idx = np.random.default_rng(args.seed).choice(n, args.subset, replace=False)
    length = table.shape[1]
    t0 = time.perf_counter()
    loop_rows = []
    for i in idx:
        hs = k_group_reference(int(p[i]), int(r[i]), int(e[i]))
        loop_rows.append(np.bincount(hs, minlength=length + 1)[1:])
    t_loop = time.perf_counter() - t0
    loop_rows = np.array(loop_rows)
    if not np.array_equal(loop_rows, table[idx]):
        raise SystemExit("MISMATCH between closed form and loop reference")

    per_table = t_table / n
    per_loop = t_loop / args.subset
    ratio = per_loop / per_table
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), "
          f"numpy {np.__version__}")
    print(f"grid: 400 primes x r<=100 x e<=50 = {n:,} triples, label length {length}")
    print(f"summand_count_table, full grid: {t_table:.3f} s best of {args.repeats} "
          f"(all: {', '.join(f'{t:.3f}' for t in times)})")
    print(f"  per triple: {per_table * 1e9:.0f} ns")
    print(f"k_group_reference loop, {args.subset:,} random grid triples: {t_loop:.3f} s")
    print(f"  per triple: {per_loop * 1e6:.1f} us")
    print(f"speed ratio (loop / closed form, per triple): {ratio:,.0f}x")
    print(f"goals: full grid <= 2 s: {'yes' if t_table <= 2 else 'NO'}; "
          f">= 1000x: {'yes' if ratio >= 1000 else 'NO'}")
    return {"t_table": t_table, "t_loop": t_loop, "ratio": ratio}


if __name__ == "__main__":
    main()
