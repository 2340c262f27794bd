"""MIIII sections of `ktlens reproduce`: accuracy per task, frequencies and ablations, progress measures,
Fourier features. Each returns data (claim, ours, where we differ, summary, tables, figures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ktlens.analysis.reproduce import figures as fg

REFERENCE_P, REFERENCE_TASKS = 113, 29
PROGRESS_FILES = {"miiii-small": "docs/results/miiii_small_rerun_progress.json"}  # relative to the repository root
ROOT = Path(__file__).resolve().parents[3]


def progress_file(model_name: str) -> Path | None:
    rel = PROGRESS_FILES.get(model_name)
    return ROOT / rel if rel and (ROOT / rel).is_file() else None


def progress_inputs(ctx: Any) -> list[Path]:
    path = progress_file(ctx.model_name)
    return [ctx.model_dir] + ([path] if path else [])


@torch.no_grad()
def accuracy(ctx: Any) -> dict:
    """Accuracy of every task on all p^2 inputs and on the held-out split."""
    from ktlens.tasks.remainders import RemaindersData, targets_for

    model = ctx.model
    n = np.arange(model.p ** 2)
    pred, truth = model.predict(n), targets_for(model.spec, n)
    test = RemaindersData(model.spec).test_idx.numpy()
    ok = pred == truth
    per_task = {str(q): float(ok[:, t].mean()) for t, q in enumerate(model.moduli)}
    per_task_test = {str(q): float(ok[test, t].mean()) for t, q in enumerate(model.moduli)}
    s = {"p": int(model.p), "n_tasks": len(model.moduli), "min_accuracy": float(ok.mean(0).min()),
         "min_test_accuracy": float(ok[test].mean(0).min()), "all_exact": int(bool(ok.all())), "n_inputs": len(n),
         "n_test": len(test), "accuracy": per_task, "test_accuracy": per_task_test,
         "reference_p": REFERENCE_P, "reference_tasks": REFERENCE_TASKS, "reference_accuracy": 1.0}
    labels = [f"q={q}" for q in model.moduli]
    return {
        "claim": f"The reference reports 100% accuracy on all {REFERENCE_TASKS} tasks (every prime q < p) at p = {REFERENCE_P}.",
        "ours": (f"p = {model.p}, {len(model.moduli)} tasks: lowest task accuracy {s['min_accuracy']:.4f} over all {len(n)} inputs and "
                 f"{s['min_test_accuracy']:.4f} on the {len(test)} held-out ones"
                 + (" (every answer right)." if s["all_exact"] else ".")),
        "differs": (f"Same claim, smaller p: p = {REFERENCE_P} was not trained here (about 40,000 full-batch epochs on a GPU in "
                    f"the reference); on 2 CPU cores we reached p = {model.p}. Our split keeps 95% of the inputs for training "
                    "(the reference 50%); with 50% the reference's own code did not generalise at p = 37 on this machine."),
        "summary": fg.plain(s),
        "tables": [fg.table("Accuracy per task", ["q", "all inputs", "held-out"], [[q, per_task[str(q)], per_task_test[str(q)]] for q in model.moduli])],
        "figures": [fg.bars(f"Accuracy per task (p = {model.p}) vs the reference's 100% (p = {REFERENCE_P})", labels,
                            {"all inputs": list(per_task.values()), "held-out": list(per_task_test.values())}, "task",
                            "accuracy", yrange=[0, 1.05], reference=1.0, reference_name="reference: 100%")],
    }


def frequencies(ctx: Any) -> dict:
    """Predicted vs found frequencies per task and the restricted / excluded Fourier ablations."""
    from ktlens.analysis import miiii_frequencies as mf
    from ktlens.analysis.miiii_analysis import analyse

    model = ctx.model
    rows = analyse(model, where=tuple(ctx.settings["where"]))
    spectra = mf.task_spectra(model)
    found = mf.found_frequencies(spectra)
    K = spectra.readout.shape[-1] - 1
    labels = [f"q={r.q}" for r in rows]
    marg = spectra.readout.sum(1)[:, 1:]  # power along x1 (summed over x0), constant left out
    share = marg / marg.sum(1, keepdims=True).clip(1e-30)
    pred_x, pred_y, got_x, got_y = [], [], [], []
    for r, lab in zip(rows, labels):
        pred_x += r.predicted_frequencies["x1"]
        pred_y += [lab] * len(r.predicted_frequencies["x1"])
        got_x += found[r.q].readout_x1
        got_y += [lab] * len(found[r.q].readout_x1)
    matched = sum(1 for r in rows if (found[r.q].readout_x1 or found[r.q].readout_x0)
                  and set(found[r.q].readout_x1) <= set(r.predicted_frequencies["x1"])
                  and set(found[r.q].readout_x0) <= set(r.predicted_frequencies["x0"]))
    summary = {"tasks_found_subset_of_predicted": matched, "n_tasks": len(rows),
               "min_restricted_accuracy": min(r.restricted_accuracy for r in rows),
               "max_excluded_accuracy_q_ge_5": max((r.excluded_accuracy for r in rows if r.q >= 5), default=None),
               "per_task": {str(r.q): {"restricted_accuracy": r.restricted_accuracy, "excluded_accuracy": r.excluded_accuracy,
                                       "n_found_x1": len(r.found_frequencies["x1"]), "n_characters": len(r.characters),
                                       **({"neurons_restricted_accuracy": r.ablations["neurons"]["restricted_accuracy"]} if "neurons" in r.ablations else {})}
                            for r in rows}}
    fmt = lambda ks: ", ".join(str(k) for k in ks) or "-"  # noqa: E731
    table = [[r.q, fmt(f"{c[1]:.2f}" for c in r.predicted_frequencies["centres"]), fmt(r.found_frequencies["x1"]), fmt(r.characters),
              r.restricted_accuracy, r.excluded_accuracy] for r in rows]
    return {
        "claim": (f"The reference shows periodic (Fourier) structure at p = {REFERENCE_P}. Number theory predicts where: "
                  "n mod q = (a x0 + x1) mod q with a = p mod q, so character j of task q sits next to the non-integer "
                  "frequency j p / q of Z_p (x1) and (j a mod q) p / q (x0)."),
        "ours": (f"In {matched} of {len(rows)} tasks every frequency the per-task test finds in the readout is a predicted one. "
                 f"Keeping only those characters leaves every task at >= {summary['min_restricted_accuracy']:.3f}; removing them "
                 f"drops every task with q >= 5 to <= {summary['max_excluded_accuracy_q_ge_5']:.3f}."),
        "differs": ("The reference named key frequencies from one threshold over a spectrum all tasks share; here each task gets "
                    "its own test and its frequencies are checked against the prediction and by ablation. q = 2 and 3 fall only "
                    "to chance-like accuracy when their characters are removed (their targets are symmetric in the two digits)."),
        "summary": fg.plain(summary),
        "tables": [fg.table("Per task: predicted centres j p / q (x1), found x1, characters, ablations",
                            ["q", "predicted centres (x1)", "found x1", "characters j", "restricted accuracy", "excluded accuracy"], table)],
        "figures": [
            fg.heatmap(f"Readout power per task along x1 = n % p (p = {model.p}): o predicted, x found", share, list(range(1, K + 1)),
                       labels, "frequency k of Z_p", "task", "share of the task's readout power", colorscale="Blues",
                       markers=[{"name": "predicted (next to j p / q)", "x": pred_x, "y": pred_y, "symbol": "circle-open", "color": "darkorange"},
                                {"name": "found (per-task test)", "x": got_x, "y": got_y, "symbol": "x", "color": "crimson"}],
                       height=260 + 34 * len(rows)),
            fg.bars("Fourier ablation at the readout: accuracy on all p^2 inputs", labels,
                    {"as trained": [r.full_accuracy for r in rows], "restricted to the characters": [r.restricted_accuracy for r in rows],
                     "characters excluded": [r.excluded_accuracy for r in rows]}, "task", "accuracy", yrange=[0, 1.05]),
        ],
    }


def progress(ctx: Any) -> dict:
    """Progress measures over a rerun's snapshots (shipped JSON) and the order in which tasks become exact."""
    path = progress_file(ctx.model_name)
    if path is None:
        return {"claim": "The reference reports q = 2, 3, 5, 7 learned first.",
                "ours": f"No progress measures are shipped for {ctx.model_name}; `ktlens miiii-analysis --progress` computes them from a run's snapshots.",
                "differs": "", "summary": {"available": 0}, "tables": [], "figures": []}
    m = json.loads(path.read_text())
    first, good = m["first_order"], m["order"]
    claim = [2, 3, 5, 7]
    holds_first = int(sorted(first[:4]) == claim)
    holds_good = int(sorted(good[:4]) == claim)
    rows = m["rows"]
    summary = {"available": 1, "first_exact_steps": m["first_exact_steps"], "exact_steps": m["exact_steps"],
               "first_order": first, "order_for_good": good, "claim_2357_first_holds": holds_first,
               "claim_2357_first_holds_for_good": holds_good, "weight_norm_start": rows[0]["weight_norm"],
               "weight_norm_end": rows[-1]["weight_norm"], "gini_embed_start": rows[0]["gini_embed"], "gini_embed_end": rows[-1]["gini_embed"],
               "snapshots": len(rows)}
    fmt = lambda order, st: ", ".join(f"{q} ({st[str(q)]:,})" if st[str(q)] is not None else f"{q} (never)" for q in order)  # noqa: E731
    return {
        "claim": "The reference reports the tasks q = 2, 3, 5, 7 learned first.",
        "ours": (f"First exact on both splits: {fmt(first, m['first_exact_steps'])}. Exact for good: {fmt(good, m['exact_steps'])}. "
                 f"Total weight norm {rows[0]['weight_norm']:.0f} -> {rows[-1]['weight_norm']:.0f}; Gini of the digit embedding's "
                 f"Fourier norms {rows[0]['gini_embed']:.2f} -> {rows[-1]['gini_embed']:.2f} over {len(rows)} snapshots."),
        "differs": (("The claim holds for the first exact evaluation" if holds_first else "The claim does not hold for the first exact evaluation")
                    + (" and for exact-for-good." if holds_good else ", but not for exact-for-good: the lr-6e-3 spikes knock learned tasks "
                       "out until the lr has decayed, and q = 19 (37 = -1 mod 19, a target symmetric in the digits up to sign) comes early. ")
                    + "These are measures of a 1-thread rerun of the small preset (docs/results/miiii_small_rerun_progress.json), "
                    "not of the shipped model's own run; restricted loss does not separate memorisation from circuit formation at "
                    "our 95% training split as it does at Nanda et al.'s 30%."),
        "summary": fg.plain(summary),
        "tables": [fg.table("Step at which each task becomes exact", ["q", "first exact", "exact for good"],
                            [[q, m["first_exact_steps"][str(q)], m["exact_steps"][str(q)]] for q in sorted(int(k) for k in m["first_exact_steps"])])],
        "figures": [fg.miiii_progress(m)],
    }


@torch.no_grad()
def fourier(ctx: Any) -> dict:
    """Fourier norms of the digit embedding and periodic MLP neurons over the digit grid."""
    from ktlens.analysis import fourier as fa
    from ktlens.analysis import miiii_frequencies as mf
    from ktlens.analysis.features import periodic_units

    model = ctx.model
    norms = fa.embedding_frequency_norms(model)
    standout = mf.significant_frequencies(norms ** 2)
    grids = fa.neuron_grids(model, layer=0)
    per = periodic_units(grids, list(model.moduli), min_share=ctx.settings["min_share"])
    alive = grids.reshape(len(grids), -1).std(1) > 1e-9
    by_q = {str(q): int(((per.task_q == q) & per.periodic).sum()) for q in model.moduli}
    best = int(np.argmax(np.where(per.periodic, per.share, -1)))
    k0, k1 = (int(x) for x in per.frequency[best])
    summary = {"d_mlp": int(len(grids)), "alive": int(alive.sum()), "periodic_neurons": int(per.periodic.sum()),
               "periodic_share_of_alive": float(per.periodic.sum() / max(alive.sum(), 1)), "periodic_by_task_q": by_q,
               "embedding_gini": fa.gini(norms[1:]), "embedding_standout_frequencies": [int(k) for k in standout]}
    return {
        "claim": "The reference reports periodic embeddings and neurons.",
        "ours": (f"{summary['periodic_neurons']} of {summary['alive']} alive MLP neurons are periodic over the two digits "
                 f"(one frequency pair holds >= {ctx.settings['min_share']:.0%} of their non-constant power), spread over the tasks; "
                 f"the digit embedding's Fourier norms have Gini {summary['embedding_gini']:.2f}"
                 + (f" with frequencies {standout} standing out." if standout else ", no single frequency standing out.")),
        "differs": ("Neurons: reproduced. Embedding: ours is not sparse in the Fourier basis; eleven tasks share one digit "
                    "embedding, and the MLP builds each task's characters from products of components that are not the "
                    "characters themselves (restricting the embedding breaks q = 11, 17, 23, 31)."),
        "summary": fg.plain(summary),
        "tables": [],
        "figures": [
            fg.bars("Digit embedding: norm per frequency of Z_p (0 = constant)", list(range(len(norms))), {"norm": norms},
                    "frequency k", "norm"),
            fg.bars("Periodic MLP neurons per task (the task whose residue explains most of the neuron's variance)",
                    [f"q={q}" for q in model.moduli], {"periodic neurons": list(by_q.values())}, "task", "neurons"),
            fg.heatmap(f"Neuron {best} over the digit grid: frequency pair (k0, k1) = ({k0}, {k1}), separates n mod {int(per.task_q[best])}",
                       grids[best], list(range(model.p)), list(range(model.p)), "x1 = n % p (low digit)", "x0 = n // p (high digit)",
                       "activation at '='", colorscale="Viridis"),
        ],
    }
