"""One MIIII training run with overrides of a preset, under a wall-clock cap; appends one result line.

    python analyses/miiii_sweep.py --preset small --set train.lr=3e-3 model.d_model=256 \
        --minutes 10 --log runs/miiii-sweep.jsonl

Each ``--set section.key=value`` overrides one entry of the preset (``ktlens.experiments.overrides.apply_overrides``;
values parsed as JSON when they can be). ``--curriculum desc`` (or ``asc``) trains the tasks one modulus at a time, largest (smallest)
q first: the next task is switched on once every task already on reaches ``--stage-acc`` test accuracy
(and 100% train accuracy); ``all_acc_min`` then counts only once every task is on. The line written holds the settings, the step and time at which every task first reached
100% test accuracy (and all tasks 100% on both splits), and the best / final summary metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from ktlens.experiments.miiii import MiiiiPreset, build, get_preset
from ktlens.experiments.overrides import apply_overrides
from ktlens.train import train


class _TimeUp(Exception):
    pass


def run(
    preset: MiiiiPreset, minutes: float, label: str = "", seed: int | None = None, curriculum: str = "", stage_acc: float = 1.0
) -> dict:
    spec, data, model, cfg = build(preset, seed)
    order = sorted((q for q in spec.moduli if q not in spec.masked), reverse=curriculum == "desc")
    active = order[:1] if curriculum else order
    stages: list[tuple[int, int]] = []  # (step, q switched on)

    def set_weights() -> None:
        for i, q in enumerate(spec.moduli):
            data.weights[i] = float(q in active)

    if curriculum:
        cfg.stop_metric = None  # the summary metrics cover only the tasks switched on so far
        set_weights()
    t0 = time.perf_counter()
    first_full: dict[str, int] = {}
    best = {"test_acc_mean": 0.0, "test_acc_min": 0.0}
    history: list[dict] = []
    summary: dict = {}

    def on_eval(record: dict) -> None:
        history.append(record)
        accs = " ".join(f"{record[f'test_acc_q{q}']:.2f}" for q in spec.moduli)
        print(f"step {int(record['step'])} t={time.perf_counter() - t0:.0f}s tasks {len(active)} train {record['train_acc_mean']:.3f} test {accs}", flush=True)
        if time.perf_counter() - t0 > minutes * 60:
            raise _TimeUp
        if curriculum and len(active) < len(order):  # still switching tasks on: nothing to summarize yet
            if all(record[f"test_acc_q{q}"] >= stage_acc and record[f"train_acc_q{q}"] >= 1.0 for q in active):
                active.append(order[len(active)])
                stages.append((int(record["step"]), active[-1]))
                set_weights()
            return
        for q in spec.moduli:
            if record[f"test_acc_q{q}"] >= 1.0 and str(q) not in first_full:
                first_full[str(q)] = int(record["step"])
        for k in best:
            best[k] = max(best[k], record[k])
        if record["all_acc_min"] >= 1.0 and "step_all_exact" not in summary:
            summary["step_all_exact"] = int(record["step"])
            summary["seconds_all_exact"] = round(time.perf_counter() - t0, 1)

    try:
        train(model, data, cfg, progress=False, on_eval=on_eval)
    except _TimeUp:
        pass
    last = history[-1] if history else {}
    return {
        "label": label,
        "curriculum": curriculum,
        "stage_acc": stage_acc,
        "stages": stages,
        "preset": preset.to_dict(),
        "seed": seed,
        "steps_run": int(last.get("step", 0)),
        "seconds": round(time.perf_counter() - t0, 1),
        **summary,
        "final_test_acc_mean": round(last.get("test_acc_mean", float("nan")), 4),
        "final_test_acc_min": round(last.get("test_acc_min", float("nan")), 4),
        "final_train_acc_min": round(last.get("train_acc_min", float("nan")), 4),
        "best_test_acc_mean": round(best["test_acc_mean"], 4),
        "first_full_test_step": first_full,
        "final_test_acc_per_q": {str(q): round(last.get(f"test_acc_q{q}", float("nan")), 3) for q in spec.moduli},
        "curve": [(int(r["step"]), round(r["test_acc_mean"], 3), round(r["train_acc_mean"], 3)) for r in history[:: max(1, len(history) // 40)]],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--set", nargs="*", default=[], help="key.sub=value overrides")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--curriculum", choices=["", "asc", "desc"], default="", help="switch tasks on one modulus at a time")
    ap.add_argument("--stage-acc", type=float, default=1.0, help="test accuracy every task on must reach first")
    ap.add_argument("--label", default="")
    ap.add_argument("--log", default="runs/miiii-sweep.jsonl")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    preset = apply_overrides(get_preset(args.preset), args.set)
    result = run(preset, args.minutes, args.label or " ".join(args.set), args.seed, args.curriculum, args.stage_acc)
    Path(args.log).parent.mkdir(parents=True, exist_ok=True)
    with open(args.log, "a") as f:
        f.write(json.dumps(result) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("preset", "curve")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
