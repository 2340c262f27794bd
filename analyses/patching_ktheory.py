"""Regenerate docs/results/patching_ktheory.md: which cross-attention heads carry p, r and u into the labels.

    python analyses/patching_ktheory.py            # ktheory-small, 40 triples per corruption (~3 min on 1 core)

For each corruption kind (another trained prime with the same r, e; r +- 1; an e with another p-adic
valuation u: `ktlens.analysis.patching.ktheory_corruptions`) and each of N seeded triples whose label
changes, the metric is the logit difference of the clean count against the corrupted count at the first
decoder position where the labels differ. Sweeps: every cross-attention head (all positions) and every
self- / cross-attention head at every position, by activation patching (denoising) and attribution patching.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ktlens.analysis.attribution import ktheory_targets  # noqa: E402
from ktlens.analysis.patching import attribution_patch, ktheory_corruptions, logit_diff_metric, patch_sweep  # noqa: E402
from ktlens.checkpoint import load_pretrained  # noqa: E402


def write_figure(summary: dict, heads: list[str], path: Path) -> None:
    """Heatmap: rows corruption kinds, columns cross-attention heads, colour the mean share restored."""
    import plotly.graph_objects as go

    from ktlens.viz.patching_figures import write_page

    kinds = [("p", "p corrupted"), ("r", "r corrupted"), ("u", "u corrupted")]
    z = [[summary[k]["mean_restored"][h] for h in heads] for k, _ in kinds]
    share = [[summary[k]["fraction_at_least_0.8"][h] for h in heads] for k, _ in kinds]
    text = [[f"{m:.2f}<br>({s:.0%} >= 0.8)" for m, s in zip(zr, sr)] for zr, sr in zip(z, share)]
    fig = go.Figure(go.Heatmap(z=z, x=heads, y=[name for _, name in kinds], text=text, texttemplate="%{text}", zmin=-1, zmax=1,
                               colorscale="RdBu", colorbar={"title": {"text": "mean share of the<br>logit difference restored"}}))
    fig.update_layout(title="Denoising one cross-attention head (all positions): share of the clean logit difference restored",
                      xaxis_title="cross-attention head", yaxis_title="corruption", yaxis_autorange="reversed", width=1000, height=420)
    write_page([fig], path, "Cross-attention heads carrying p, r, u on ktheory-small", "python analyses/patching_ktheory.py")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ktheory-small")
    parser.add_argument("--n", type=int, default=40, help="triples per corruption kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "patching_ktheory"))
    parser.add_argument("--html", default=str(ROOT / "runs" / "patching_ktheory.html"),
                        help="the figure as offline HTML (~5 MB; docs/results/patching_ktheory.png is its screenshot)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_pretrained(args.model).eval()
    rng = np.random.default_rng(args.seed)
    heads = [f"L{l}C{h}" for l in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)]
    summary, pooled_real, pooled_est, examples = {}, [], [], {}
    for kind in ("p", "r", "u"):
        restored = []  # [n, n_heads] normalised logit difference restored by each cross-attention head
        done = 0
        while done < args.n:
            p, r, e = int(rng.choice(model.primes)), int(rng.integers(1, model.r_max + 1)), int(rng.integers(1, model.e_max + 1))
            other = ktheory_corruptions(model, p, r, e).get(kind)
            if other is None:
                continue
            tc, tk = ktheory_targets(model, [p], [r], [e]), ktheory_targets(model, *([v] for v in other))
            differ = (tc[0] != tk[0]).nonzero().flatten().tolist()
            if not differ:
                continue
            k = differ[0]
            metric = logit_diff_metric(model, k, int(tc[0, k]), int(tk[0, k]))
            clean, corrupt = model.make_batch([p], [r], [e]), model.make_batch(*([v] for v in other))
            sweep = patch_sweep(model, clean, corrupt, "cross_attn_head", metric)
            if abs(sweep.clean_value - sweep.corrupted_value) < 1.0:
                continue  # the corruption hardly moves the metric: normalising would divide by ~0
            restored.append(sweep.normalized().flatten().numpy())
            for node in ("attn_head_by_pos", "cross_attn_head_by_pos"):
                real = patch_sweep(model, clean, corrupt, node, metric)
                est = attribution_patch(model, clean, corrupt, node, metric)
                pooled_real.append(real.normalized().flatten().numpy())
                pooled_est.append(est.normalized().flatten().numpy())
            if done == 0:
                examples[kind] = {"clean": [p, r, e], "corrupt": list(other), "position": k, "label": model.position_labels()[k]}
            done += 1
        restored = np.stack(restored)
        summary[kind] = {
            "mean_restored": dict(zip(heads, restored.mean(0).round(3).tolist())),
            "fraction_at_least_0.8": dict(zip(heads, (restored >= 0.8).mean(0).round(3).tolist())),
            "n": len(restored),
        }
        print(kind, summary[kind], file=sys.stderr)
    x, y = np.concatenate(pooled_real), np.concatenate(pooled_est)
    r_all = float(np.corrcoef(x, y)[0, 1])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"model": args.model, "n_per_kind": args.n, "seed": args.seed, "cross_attn_heads": summary,
              "attribution_vs_activation_r": r_all, "cells": int(len(x)), "examples": examples}
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    lines = [
        f"# Which cross-attention heads carry p, r and u on `{args.model}`",
        "",
        "Generated by `python analyses/patching_ktheory.py`. Denoising activation patching: the corrupted run",
        "with one cross-attention head's clean output (all decoder positions); metric: logit difference of the",
        "clean count against the corrupted count at the first decoder position where the labels differ;",
        "1 = the clean logit difference restored, 0 = none of it.",
        "",
        "| corruption | n | " + " | ".join(heads) + " |",
        "|---|---|" + "---|" * len(heads),
    ]
    for kind, label in (("p", "p -> nearest other prime"), ("r", "r -> r +- 1"), ("u", "e -> e with another u")):
        s = summary[kind]
        lines.append(f"| {label}: mean restored | {s['n']} | " + " | ".join(f"{s['mean_restored'][h]:.2f}" for h in heads) + " |")
        lines.append(f"| {label}: share >= 0.8 | {s['n']} | " + " | ".join(f"{s['fraction_at_least_0.8'][h]:.2f}" for h in heads) + " |")
    lines += ["", f"Attribution patching against activation patching, every self- and cross-attention head at every "
              f"decoder position over all {sum(s['n'] for s in summary.values())} pairs ({len(x)} cells): Pearson r = {r_all:.3f}.", ""]
    out.with_suffix(".md").write_text("\n".join(lines))
    write_figure(summary, heads, Path(args.html))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
