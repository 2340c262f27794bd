"""Table of the shipped SAEs' figures (from the metrics stored beside each; `ktlens sae eval` recomputes them).

    python analyses/sae_table.py [--recompute]
"""

from __future__ import annotations

import argparse


def row(name: str, m: dict) -> str:
    acc = m["accuracy_metric"]
    clean, sae, zero = m["clean"][acc], m["sae"][acc], m["zero_ablation"][acc]
    return (
        f"| `{name}` | {m['architecture']} | {m['d_in']} | {m['d_sae']} ({m['distinct_rows']:,} distinct rows) | "
        f"{m['explained_variance']:.3f} | {m['l0']:.1f} | {m['dead_features']:.3f} | {m['dense_features']:.3f} | "
        f"{m['ce_loss_score']:.3f} | {acc}: {clean:.4f} / {sae:.4f} / {zero:.4f} ({m['accuracy_vs_clean']:.3f} of clean) |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recompute", action="store_true", help="evaluate again instead of reading metrics.json")
    args = ap.parse_args()
    import ktlens
    from ktlens.saes.io import read_sae_metrics

    print("| SAE | arch | d_in | d_sae | explained_variance | l0 | dead | dense (>0.1) | ce_loss_score | accuracy clean / SAE / zero-ablation |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in ktlens.pretrained_saes():
        if args.recompute:
            from ktlens.saes.metrics import evaluate_sae

            sae = ktlens.load_sae(name)
            m = evaluate_sae(sae, ktlens.load_pretrained(sae.cfg.model_name))
        else:
            m = read_sae_metrics(name)
        print(row(name, m))


if __name__ == "__main__":
    main()
