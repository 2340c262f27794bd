"""K-theory held-out exact match against training steps and training triples per prime, with fitted trends.

    python analyses/ktheory_scaling.py --runs RUN [RUN ...] [--baseline ktheory-small] \
        --out docs/results/ktheory_scaling

Each RUN is a folder written by `ktlens train ktheory ... --out RUN` (finished or interrupted: the
history of evaluations is read from `RUN/model/history.json` or `RUN/checkpoint/train_state.json`).
For each run it prints held-out autoregressive exact match (all, non-trivial p <= r e, and p <= 7) at
every evaluation, fits the held-out error against steps as err = a * steps^-b over the second half of
training, and, across runs that differ only in `grid.train_fraction`, the final error against training
triples per prime as err = a * n^-b. Both fits say what they predict for an error of 0.05 (the 0.95
goal). For finished runs the final model is also scored per prime (p = 2, 3, 5, 7 each) beside the
baseline model. Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ktlens import load_pretrained
from ktlens.tasks.ktheory_data import KTheoryGridSpec, build_dataset

GOAL_ERROR = 0.05


def read_history(run: Path) -> tuple[list[dict], dict]:
    """Evaluation records and the preset config of a run folder (finished or not)."""
    if (run / "model" / "history.json").is_file():
        history = json.loads((run / "model" / "history.json").read_text())
        config = json.loads((run / "model" / "metrics.json").read_text())["preset_config"]
        return history, config
    state = json.loads((run / "checkpoint" / "train_state.json").read_text())
    spec = json.loads((run / "checkpoint" / "config.json").read_text())["task_spec"]
    return state["history"], {"grid": spec["grid"], "train": state["train_config"]}


def power_fit(x: np.ndarray, err: np.ndarray) -> dict[str, float] | None:
    """err = a * x^-b by least squares in log-log space; None with fewer than 2 usable points."""
    keep = (x > 0) & (err > 0)
    if keep.sum() < 2:
        return None
    slope, intercept = np.polyfit(np.log(x[keep]), np.log(err[keep]), 1)
    a, b = float(np.exp(intercept)), float(-slope)
    at_goal = float((a / GOAL_ERROR) ** (1 / b)) if b > 0 else float("inf")
    return {"a": a, "b": b, "x_at_error_0.05": at_goal}


@torch.no_grad()
def per_prime(model_dir: str) -> dict[str, float]:
    """Held-out autoregressive exact match overall, non-trivial, p <= 7 and for p = 2, 3, 5, 7."""
    model = load_pretrained(model_dir)
    model.eval()
    ds = build_dataset(KTheoryGridSpec.from_dict(model.task_spec["grid"]))
    idx = ds.test_idx
    src = torch.as_tensor(np.stack([ds.p[idx], ds.r[idx], ds.e[idx]], 1))
    pred = np.concatenate([model.generate(chunk).numpy() for chunk in src.split(4096)])
    ok = (pred == ds.counts[idx]).all(1)
    p = ds.p[idx]
    out = {"held_out": float(ok.mean()), "held_out_nontrivial": float(ok[~ds.is_trivial[idx]].mean()),
           "held_out_p_le_7": float(ok[p <= 7].mean()), "n_held_out": int(len(idx)),
           "train_triples_per_prime": len(ds.train_idx) / len(ds.spec.prime_list())}
    out.update({f"p={q}": float(ok[p == q].mean()) for q in (2, 3, 5, 7) if (p == q).any()})
    return out


def triples_per_prime(config: dict) -> float:
    """Training triples per prime of a run's grid (its split and train_fraction applied)."""
    grid = KTheoryGridSpec.from_dict(config["grid"])
    ds = build_dataset(grid)
    return len(ds.train_idx) / len(grid.prime_list())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", required=True)
    ap.add_argument("--baseline", default="ktheory-small")
    ap.add_argument("--out", default="docs/results/ktheory_scaling")
    ap.add_argument("--at-step", type=int, default=2000,
                    help="compare runs that differ in grid.train_fraction at this evaluation step")
    ap.add_argument("--html", default=None, help="also write the figure as an offline page in this folder")
    args = ap.parse_args()
    torch.set_num_threads(1)
    report: dict = {"goal_error": GOAL_ERROR, "runs": {}, "baseline": {args.baseline: per_prime(args.baseline)}}
    print(f"baseline {args.baseline}: {report['baseline'][args.baseline]}")
    for run in map(Path, args.runs):
        history, config = read_history(run)
        steps = np.array([h["step"] for h in history], dtype=float)
        held = np.array([h["test_ar_exact"] for h in history])
        entry = {
            "config": config,
            "scratch": json.loads((run / "checkpoint" / "config.json").read_text())["task_spec"].get("scratch"),
            "steps": steps.tolist(),
            "held_out": held.tolist(),
            "held_out_nontrivial": [h.get("test_ar_exact_nontrivial") for h in history],
            "train_ar_exact": [h.get("train_ar_exact") for h in history],
        }
        second_half = steps >= steps.max() / 2
        entry["fit_vs_steps"] = power_fit(steps[second_half], 1 - held[second_half])
        if (run / "model" / "config.json").is_file():
            entry["final"] = per_prime(str(run / "model"))
        report["runs"][run.name] = entry
        print(f"{run.name}: held-out {held[-1]:.4f} at step {int(steps[-1])}; fit vs steps {entry['fit_vs_steps']}")
        print("  " + ", ".join(f"{int(s)}: {h:.3f}" for s, h in zip(steps, held)))
        if "final" in entry:
            print(f"  final: {entry['final']}")
    points = []
    first = next(iter(report["runs"].values()))

    def setting(entry: dict) -> str:  # what must match for a data comparison: all but grid.train_fraction and
        # how often the run evaluates or saves (neither changes the weights)
        grid = {k: v for k, v in entry["config"]["grid"].items() if k != "train_fraction"}
        train = {k: v for k, v in entry["config"]["train"].items() if k not in ("eval_every", "checkpoint_every")}
        return json.dumps([grid, train, entry.get("scratch")], sort_keys=True)

    for name, entry in report["runs"].items():
        if args.at_step in entry["steps"] and setting(entry) == setting(first):
            i = entry["steps"].index(args.at_step)
            points.append({"run": name, "train_triples_per_prime": triples_per_prime(entry["config"]),
                           "held_out": entry["held_out"][i], "held_out_nontrivial": entry["held_out_nontrivial"][i]})
    if len({round(q["train_triples_per_prime"]) for q in points}) >= 2:
        report["triples_per_prime_step"] = args.at_step
        report["triples_per_prime_points"] = points
        n = np.array([q["train_triples_per_prime"] for q in points])
        report["fit_vs_triples_per_prime"] = power_fit(n, 1 - np.array([q["held_out"] for q in points]))
        print(f"at step {args.at_step}: {points}")
        print(f"fit vs training triples per prime: {report['fit_vs_triples_per_prime']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out.with_suffix('.json')}")
    if args.html:
        from ktlens.viz.html import write_pages

        paths = write_pages({"ktheory_scaling": figure(report)}, args.html, title="K-theory scaling")
        print(f"wrote {paths[0]}")


def figure(report: dict):
    """Held-out error against steps (every run) and against training triples per prime (log-log, with the fits)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        "held-out error (1 - exact match) against training steps",
        "held-out error against training triples per prime (at the same step)"))
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"]
    for (name, run), colour in zip(report["runs"].items(), colours * 3):
        steps = np.array(run["steps"])
        for key, dash in (("held_out", "solid"), ("held_out_nontrivial", "dot")):
            err = 1 - np.array([np.nan if v is None else v for v in run[key]], dtype=float)
            label = f"{name}{' (non-trivial)' if dash == 'dot' else ''}"
            fig.add_trace(go.Scatter(x=steps, y=err, mode="lines+markers", name=label,
                                     line=dict(dash=dash, color=colour)), 1, 1)
        fit = run.get("fit_vs_steps")
        if fit and fit["b"] > 0 and len(steps) >= 8:
            xs = np.geomspace(steps.max() / 2, max(steps.max(), min(fit["x_at_error_0.05"], 1e6)), 50)
            fig.add_trace(go.Scatter(x=xs, y=fit["a"] * xs ** -fit["b"], mode="lines", line=dict(dash="dash", color=colour),
                                     name=f"{name}: fit {fit['a']:.3g} t^-{fit['b']:.2f}"), 1, 1)
    at = report.get("triples_per_prime_points")
    if at:
        fig.add_trace(go.Scatter(x=[q["train_triples_per_prime"] for q in at], y=[1 - q["held_out"] for q in at],
                                 mode="markers+text", text=[q["run"] for q in at], textposition="top center",
                                 name=f"at step {report['triples_per_prime_step']}"), 1, 2)
        fit = report.get("fit_vs_triples_per_prime")
        if fit:
            xs = np.geomspace(min(q["train_triples_per_prime"] for q in at), 5000, 50)
            fig.add_trace(go.Scatter(x=xs, y=fit["a"] * xs ** -fit["b"], mode="lines", line=dict(dash="dash"),
                                     name=f"fit {fit['a']:.3g} n^-{fit['b']:.2f}"), 1, 2)
    for col in (1, 2):
        fig.add_hline(y=GOAL_ERROR, line_dash="dot", line_color="gray", row=1, col=col,
                      **({"annotation_text": "goal: error 0.05"} if col == 1 else {}))
        fig.update_yaxes(type="log", title_text="held-out error (log)", row=1, col=col)
    fig.update_xaxes(type="log", title_text="training steps (batch 256, log)", row=1, col=1)
    fig.update_xaxes(type="log", title_text="training triples per prime (log)", row=1, col=2)
    fig.update_layout(title="K-theory: held-out error against compute and data, with power-law fits", height=600, width=1350)
    return fig


if __name__ == "__main__":
    main()
