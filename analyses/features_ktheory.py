"""Automatic feature labels on ktheory-small: neurons of both MLPs (and the shipped SAEs when installed).

Writes docs/results/features_ktheory.md (+ .json, and features_ktheory.png, a headless-Chromium
screenshot of the figure page runs/features_ktheory/figures.html) and one dashboard per unit set under
runs/features_ktheory/. Run: `PYTHONPATH=$PWD python analyses/features_ktheory.py` (~3 min on 2 cores).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

import ktlens
from ktlens.analysis import features
from ktlens.analysis.features import analyze_units, neuron_units, sae_units
from ktlens.viz.dashboard import PLOTLY_ASSET, write_dashboard, write_plotly_asset

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "features_ktheory"
DOCS = ROOT / "docs" / "results"
SPECIFIC = 0.9  # a unit is position-specific when at least this share of its firing is at one position


def unit_sets(model):
    out = [(f"neurons {h}", neuron_units(model, h)) for h in ("blocks.0.mlp.hook_post", "blocks.1.mlp.hook_post")]
    if hasattr(ktlens, "pretrained_saes"):
        for name in ktlens.pretrained_saes():
            sae = ktlens.load_sae(name)
            if getattr(sae.cfg, "model_name", None) == "ktheory-small":
                out.append((f"SAE {name}", sae_units(model, sae, name)))
    return out


def event_best(report, text, positions=None):
    """Best held-out F1 for the event `text` over units, anywhere or at the given positions."""
    return features.event_best(report.scores, text, positions)


def summarize(name, report, model, seconds):
    alive = report.density > 0
    top_share = report.position_share.max(1)
    specific = alive & (top_share >= SPECIFIC)
    L = model.seq_len
    names = model.position_labels()
    n2_input_pos = names.index("n_2") + 1 if model.label_order == "descending" else names.index("n_2") - 1
    before = [k for k in range(L) if k < names.index("n_2") + (1 if model.label_order == "descending" else 0)]
    return {
        "units": name, "n_units": int(report.density.size), "alive": int(alive.sum()),
        "labelled_f1_0.9": report.n_labelled(0.9), "labelled_above_chance": int(report.scores.labelled.sum()),
        "coverage_f1_0.9": round(report.coverage.share, 4), "n_events": len(report.coverage.events),
        "position_specific": int(specific.sum()), "position_specific_share_of_alive": round(float(specific.sum() / max(alive.sum(), 1)), 4),
        "position_specific_by_position": {names[k]: int((specific & (report.position_share.argmax(1) == k)).sum()) for k in range(L)},
        "n_2_eq_1_any": event_best(report, "n_2 == 1"),
        "n_2_eq_1_before_n_2_is_an_input": event_best(report, "n_2 == 1", before),
        "n_2_input_position": n2_input_pos if 0 <= n2_input_pos < L else None,
        "seconds_label_and_dashboard": round(seconds, 1),
        "top_labels": [{"unit": int(u), "label": report.label(int(u)), "f1": round(float(report.scores.f1[u, 0]), 4)}
                       for u in np.argsort(-np.where(report.scores.labelled, report.scores.f1[:, 0], -1))[:12]],
    }


def figure_page(results, reports, model, path):
    """Histogram of the largest position share (neurons vs latents) and the best n_2 == 1 unit's mean activation."""
    blocks = []
    data = [{"type": "histogram", "x": r.position_share.max(1)[r.density > 0], "name": n, "opacity": 0.6, "nbinsx": 20,
             "histnorm": "probability"} for n, r in reports]
    blocks.append(("share", data, "Largest share of a unit's firing at one decoder position (alive units)",
                   "largest position share", "share of units", {"barmode": "overlay"}))
    for n, r in reports:
        best = event_best(r, "n_2 == 1")
        u, k = best["unit"], best["position"]
        from ktlens.tasks.ktheory import VARIABLES
        n2 = VARIABLES["n_2"](**r.domain.inputs)
        acts = r.units.by_position[:, :, u].numpy()
        a = acts[:, k] if k is not None else acts.mean(1)
        vals = np.arange(0, min(int(n2.max()), 8) + 1)
        means = [float(a[n2 == v].mean()) if (n2 == v).any() else 0.0 for v in vals]
        where = "all positions (mean)" if k is None else f"position {k} ({model.position_labels()[k]})"
        blocks.append((f"n2{len(blocks)}", [{"type": "bar", "x": vals, "y": means, "marker": {"color": "#3465a4"}}],
                       f"{n}: unit {u} at {where}, best for n_2 == 1 (F1 {best['f1']:.2f})", "n_2 (number of Z/p^2 summands)",
                       "mean activation", {}))
    divs = []
    for i, (div, data, title, xt, yt, extra) in enumerate(blocks):
        layout = {"title": {"text": title, "font": {"size": 13}}, "xaxis": {"title": {"text": xt}}, "yaxis": {"title": {"text": yt}},
                  "height": 300, "margin": {"l": 60, "r": 20, "t": 50, "b": 50}, **extra}
        spec = json.dumps({"data": data, "layout": layout}, default=lambda o: o.tolist() if hasattr(o, "tolist") else o)
        divs.append(f"<div id='f{i}'></div><script>var s={spec};Plotly.newPlot('f{i}',s.data,s.layout,{{displayModeBar:false}});</script>")
    write_plotly_asset(path.parent)
    path.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><script src='{PLOTLY_ASSET}'></script></head>"
                    f"<body style='font-family:sans-serif;display:grid;grid-template-columns:1fr 1fr;gap:8px;width:1380px'>{''.join(divs)}</body></html>")


def main() -> None:
    torch.set_num_threads(2)
    model = ktlens.load_pretrained("ktheory-small").eval()
    results, reports = [], []
    for name, source in unit_sets(model):
        t = time.perf_counter()
        report = analyze_units(model, source)
        write_dashboard(report, RUNS / name.replace(" ", "_").replace("/", "_"), model, title=f"ktheory-small: {source.name}")
        seconds = time.perf_counter() - t
        results.append(summarize(name, report, model, seconds))
        reports.append((name, report))
        print(json.dumps({k: v for k, v in results[-1].items() if k != "top_labels"}))
    RUNS.mkdir(parents=True, exist_ok=True)
    figure_page(results, reports, model, RUNS / "figures.html")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium:
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--virtual-time-budget=5000", f"--screenshot={DOCS / 'features_ktheory.png'}", "--window-size=1400,"
                        + str(320 * ((len(reports) + 2) // 2 + 1)), (RUNS / "figures.html").as_uri()], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    miiii = miiii_summary()
    (DOCS / "features_ktheory.json").write_text(json.dumps({"ktheory": results, "miiii": miiii}, indent=1) + "\n")
    write_markdown(results, model, miiii)


def miiii_summary():
    """Periodic units of miiii-small's MLP neurons (and its shipped SAE when installed)."""
    model = ktlens.load_pretrained("miiii-small").eval()
    sets = [("neurons blocks.0.mlp.hook_post", neuron_units(model, "blocks.0.mlp.hook_post"))]
    if hasattr(ktlens, "pretrained_saes"):
        for name in ktlens.pretrained_saes():
            sae = ktlens.load_sae(name)
            if getattr(sae.cfg, "model_name", None) == "miiii-small":
                sets.append((f"SAE {name}", sae_units(model, sae, name)))
    out = []
    for name, source in sets:
        t = time.perf_counter()
        report = analyze_units(model, source)
        write_dashboard(report, RUNS / ("miiii_" + name.replace(" ", "_")), model, title=f"miiii-small: {source.name}")
        per = report.periodic
        alive = report.density > 0
        tasks = {int(q): int(((per.task_q == q) & per.periodic).sum()) for q in model.moduli}
        out.append({"units": name, "n_units": int(alive.size), "alive": int(alive.sum()), "periodic": int(per.periodic.sum()),
                    "periodic_by_task_q": tasks, "labelled_f1_0.9": report.n_labelled(0.9),
                    "coverage_f1_0.9": round(report.coverage.share, 4), "n_events": len(report.coverage.events),
                    "seconds_label_and_dashboard": round(time.perf_counter() - t, 1)})
        print(json.dumps(out[-1]))
    return out


def write_markdown(results, model, miiii=()):
    lines = ["# Automatic feature labels on ktheory-small", "",
             "Generated by `PYTHONPATH=$PWD python analyses/features_ktheory.py` (numbers in features_ktheory.json). The SAE rows use "
             "the shipped SAEs `ktheory-small/blocks.{0,1}.mlp.hook_post` (`ktlens.pretrained_saes()`); the script includes every "
             "shipped SAE of the model. "
             "Units are read over the model's whole domain (10,000 triples x 9 decoder positions, teacher-forced, "
             f"decoder order {model.label_order}: positions {', '.join(model.position_labels())}). Each unit is scored against "
             "events generated from `ktlens.tasks.ktheory.VARIABLES` (==, >= and <= per variable, optionally at one position); "
             "threshold and hypothesis are chosen on half of the triples, precision / recall / F1 are on the other half. "
             "A label needs F1 at least 0.2 above the F1 of an independent unit with the same firing rate.", "",
             "| units | alive | labelled F1 >= 0.9 | labelled above chance | coverage at F1 >= 0.9 | position-specific (>= 90% at one position) | best F1 for n_2 == 1 (unit, position) | same, before n_2 is a decoder input | label + dashboard (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        a, b = r["n_2_eq_1_any"], r["n_2_eq_1_before_n_2_is_an_input"]
        lines.append(f"| {r['units']} | {r['alive']}/{r['n_units']} | {r['labelled_f1_0.9']} | {r['labelled_above_chance']} | "
                     f"{r['coverage_f1_0.9']:.1%} of {r['n_events']} | {r['position_specific']} ({r['position_specific_share_of_alive']:.0%}) | "
                     f"{a['f1']:.3f} (unit {a['unit']}, pos {a['position']}) | {b['f1']:.3f} (unit {b['unit']}, pos {b['position']}) | {r['seconds_label_and_dashboard']} |")
    lines += ["", "## The reference's two findings", ""]
    for r in results:
        a, b = r["n_2_eq_1_any"], r["n_2_eq_1_before_n_2_is_an_input"]
        pos = model.position_labels()
        where = "anywhere" if a["position"] is None else f"at decoder position {a['position']} ({pos[a['position']]})"
        token = (" - the position whose teacher-forced input token is n_2 itself, so the unit can read the token"
                 if a["position"] is not None and a["position"] == r["n_2_input_position"] else "")
        lines.append(f"- **{r['units']}**: {r['position_specific']} of {r['alive']} alive units "
                     f"({r['position_specific_share_of_alive']:.1%}) put at least 90% of their firing at one decoder position. "
                     f"Best unit for n_2 == 1: unit {a['unit']} {where}, held-out F1 {a['f1']:.3f}{token}; at the positions "
                     f"before n_2 is a decoder input (where it must be computed from p, r, e) the best F1 is {b['f1']:.3f} "
                     f"(unit {b['unit']}, position {b['position']}).")
    neurons = [r for r in results if r["units"].startswith("neurons")]
    latents = [r for r in results if r["units"].startswith("SAE")]
    def share(rs):
        return sum(r["position_specific"] for r in rs) / max(sum(r["alive"] for r in rs), 1)
    lines += ["", f"Reading. Position-specific units: {share(neurons):.1%} of alive neurons"
              + (f" against {share(latents):.1%} of alive SAE latents" if latents else "")
              + " fire at least 90% of the time at one decoder position. n_2 == 1: the best unit anywhere reaches F1 "
              + ", ".join(f"{r['n_2_eq_1_any']['f1']:.2f} ({r['units']})" for r in results)
              + "; when the unit fires where n_2 is the teacher-forced input token it reads the token, so the finding "
              "of a unit that computes 'exactly one Z/p^2 summand' from (p, r, e) counts only at the positions before: best "
              + ", ".join(f"{r['n_2_eq_1_before_n_2_is_an_input']['f1']:.2f}" for r in results) + " (same order).",
              "", "A finding counts as reproduced when a unit reaches held-out F1 >= 0.9 for it; see the table for each unit set.", "",
              "Dashboards (`ktlens dashboard --model ktheory-small --hook blocks.1.mlp.hook_post --out DIR`, or the ones this "
              "script writes under runs/features_ktheory/) were checked by eye in headless Chromium at 1400 px: the index and "
              "two unit pages. The direct effect on the logits uses the final LayerNorm's weight and ignores its per-example scale.", "",
              "![position share and n_2 == 1 units](features_ktheory.png)", "",
              "Figure: left, the largest share of each alive unit's firing at one decoder position; then, per unit set, "
              "the unit with the best F1 for n_2 == 1, its mean activation for each value of n_2.", ""]
    for r in results:
        lines += [f"## {r['units']}", "", "Position-specific units by position: " + ", ".join(f"{k}: {v}" for k, v in r["position_specific_by_position"].items()), "",
                  "| unit | label | held-out F1 |", "|---|---|---|"]
        lines += [f"| {t['unit']} | {t['label']} | {t['f1']:.3f} |" for t in r["top_labels"]]
        lines.append("")
    if miiii:
        lines += ["## MIIII (miiii-small): periodic units", "",
                  "A unit is periodic when its strongest non-constant (k0, k1) frequency pair over the digit grid holds >= 25% of "
                  "its non-constant power; its task q is the one whose residue explains most of its variance (eta^2).", "",
                  "| units | alive | periodic | periodic units per task q | labelled F1 >= 0.9 | coverage at F1 >= 0.9 | label + dashboard (s) |",
                  "|---|---|---|---|---|---|---|"]
        for r in miiii:
            by_q = ", ".join(f"{q}: {n}" for q, n in r["periodic_by_task_q"].items() if n)
            lines.append(f"| {r['units']} | {r['alive']}/{r['n_units']} | {r['periodic']} | {by_q} | {r['labelled_f1_0.9']} | "
                         f"{r['coverage_f1_0.9']:.1%} of {r['n_events']} | {r['seconds_label_and_dashboard']} |")
        lines.append("")
    (DOCS / "features_ktheory.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
