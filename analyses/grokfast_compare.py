"""Steps to 100% test accuracy on every MIIII task, with the grokfast filter and without it.

    python analyses/grokfast_compare.py [--preset small] [--max-steps 12000] [--threads 1] [--lambda L] \
        [--seeds 0 1 2] [--set task.masked=[2,3] task.train_frac=0.9 ...]

Both runs use the same preset, seed and data; the only difference is ``grokfast_lambda`` (the preset's
value, or ``--lambda``, vs 0). Each run stops at the first evaluation where every task is exact on the test split
(``test_acc_min == 1``) or at ``--max-steps``; a run that does not get there is reported as
"did not reach within N steps". The two runs execute one after the other in this process, once per
seed (model init, data order and dropout; the split is the preset's). Steps to grok move a lot with
the seed, and even with the order of float sums, so read the median over several seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time

import torch

from ktlens.experiments.miiii import MiiiiPreset, build, get_preset
from ktlens.experiments.overrides import apply_overrides
from ktlens.train import train


def steps_to_exact(preset: MiiiiPreset, lam: float, max_steps: int, seed: int | None) -> dict:
    train_cfg = dataclasses.replace(preset.train, grokfast_lambda=lam, steps=max_steps, stop_metric="test_acc_min", stop_value=1.0)
    preset = dataclasses.replace(preset, train=train_cfg)
    _, data, model, cfg = build(preset, seed)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    result = train(model, data, cfg, progress=False)
    reached = result.final.get("test_acc_min", 0.0) >= 1.0
    return {
        "seed": seed,
        "grokfast_lambda": lam,
        "reached": reached,
        "steps": result.step if reached else None,
        "steps_run": result.step,
        "seconds": round(time.perf_counter() - t0, 1),
        "cpu_seconds": round(time.process_time() - cpu0, 1),
        "final_test_acc_mean": round(result.final.get("test_acc_mean", float("nan")), 4),
        "final_test_acc_min": round(result.final.get("test_acc_min", float("nan")), 4),
    }


def describe(run: dict, max_steps: int) -> str:
    if run["reached"]:
        return f"lambda={run['grokfast_lambda']}: all tasks 100% test at step {run['steps']} ({run['seconds']} s)"
    return (
        f"lambda={run['grokfast_lambda']}: did not reach 100% test on every task within {max_steps} steps "
        f"(mean {run['final_test_acc_mean']}, min {run['final_test_acc_min']}; {run['seconds']} s)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--max-steps", type=int, default=12_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="one pair of runs per seed")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lambda", dest="lam", type=float, default=None, help="grokfast lambda of the filtered run (default: the preset's, or 2 if it has none)")
    ap.add_argument("--set", nargs="*", default=[], help="section.key=value overrides of the preset (JSON values)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    preset = apply_overrides(get_preset(args.preset), args.set)
    lam = float(args.lam if args.lam is not None else preset.train.grokfast_lambda or 2.0)
    if lam <= 0:
        raise ValueError(f"--lambda must be > 0 (the filtered run), got {lam}")
    alpha = preset.train.grokfast_alpha
    print(f"preset {args.preset} {' '.join(args.set)}: p={preset.task.p}, grokfast alpha={alpha} lambda={lam}, cap {args.max_steps} steps")
    runs: list[dict] = []
    for seed in args.seeds:
        pair = [steps_to_exact(preset, lam, args.max_steps, seed), steps_to_exact(preset, 0.0, args.max_steps, seed)]
        runs += pair
        print(f"seed {seed}:")
        for run in pair:
            print("  " + describe(run, args.max_steps))
    with_gf = [r["steps"] or math.inf for r in runs if r["grokfast_lambda"] == lam]
    without = [r["steps"] or math.inf for r in runs if r["grokfast_lambda"] == 0.0]
    med_with, med_without = statistics.median(with_gf), statistics.median(without)
    print(f"median steps over seeds {args.seeds}: {med_with} with grokfast, {med_without} without")
    if math.isfinite(med_with) and math.isfinite(med_without):
        print(f"speed-up (median steps without / with grokfast): {med_without / med_with:.2f}x")
    elif math.isfinite(med_with):
        print(f"speed-up: more than {args.max_steps / med_with:.2f}x (the median run without grokfast did not finish)")
    elif math.isfinite(med_without):
        print(f"grokfast slower: more than {args.max_steps / med_without:.2f}x as many steps")
    else:
        print("neither median run reached 100% test accuracy on every task; no ratio")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"preset": args.preset, "overrides": args.set, "max_steps": args.max_steps, "seeds": args.seeds, "runs": runs}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
