"""`ktlens patch --model NAME --clean P,R,E --corrupt P,R,E [--json] --out DIR`: activation patching sweeps.

Metric: the logit difference between the clean run's true token and an alternative (by default the
corrupted run's true token) at the first count position where the two labels differ (K-theory; `--position`
may name any decoder position, a scratch one included; sweeps run over every decoder position), or
for the first task whose remainders differ (MIIII, `--clean N --corrupt N`). Every sweep is run by
denoising (clean activations into the corrupted run) and by attribution patching, whose correlation
with the real sweep is reported. DIR gets `patching.html` (plotly heatmaps, offline) and `patching.json`.
"""

from __future__ import annotations

import argparse

from ktlens.commands.common import add_model_argument

KTHEORY_KINDS = ("resid_pre", "attn_out", "cross_attn_out", "mlp_out", "attn_head", "cross_attn_head",
                 "cross_attn_head_by_pos", "src", "mlp_neuron")
MIIII_KINDS = ("resid_pre", "attn_out", "mlp_out", "attn_head", "attn_head_by_pos", "mlp_neuron")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("patch", help="activation patching sweeps (every head, cross-attention head, position, neuron)")
    add_model_argument(p)
    p.add_argument("--clean", required=True, help="P,R,E (K-theory) or N (MIIII)")
    p.add_argument("--corrupt", required=True, help="P,R,E (K-theory) or N (MIIII), the same shape of input")
    p.add_argument("--position", type=int, help="decoder position of the metric (default: first count position where labels differ)")
    p.add_argument("--task", type=int, help="MIIII: the modulus q of the metric (default: first whose remainders differ)")
    p.add_argument("--alternative", type=int, help="the token the true one is compared with (default: the corrupted label)")
    p.add_argument("--kinds", default=None, help="comma-separated node kinds (default: all of the model's)")
    p.add_argument("--direction", choices=("denoise", "noise"), default="denoise")
    p.add_argument("--out", required=True, help="folder for patching.html and patching.json")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(run=run)


def choose_metric(model, clean_targets, corrupt_targets, position=None, task=None, alternative=None):
    """(metric, description) of the logit difference the sweeps measure."""
    from ktlens.analysis.patching import first_count_difference, logit_diff_metric

    miiii = model.model_type == "miiii"
    if miiii:
        k = model.task_index(task) if task is not None else None
    else:
        k = position
    if k is None:
        if miiii:
            differ = (clean_targets[0] != corrupt_targets[0]).nonzero().flatten().tolist()
            k = differ[0] if differ else None
        else:
            k = first_count_difference(model, clean_targets[0], corrupt_targets[0])
        if k is None:
            raise ValueError("the clean and corrupted inputs have the same label everywhere: give --position/--task and --alternative")
    answer = int(clean_targets[0, k])
    alt = int(corrupt_targets[0, k]) if alternative is None else alternative
    if alt == answer:
        alt = answer + 1 if answer + 1 < model.cfg.d_vocab_out else answer - 1
    if miiii:
        q = model.moduli[k]
        return logit_diff_metric(model, 0, answer, alt, task=q), f"logit[{answer}] - logit[{alt}] for n mod {q}"
    return logit_diff_metric(model, k, answer, alt), f"logit[{answer}] - logit[{alt}] at position {k} ({model.position_labels()[k]})"


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    from ktlens.analysis.patching import attribution_patch, correlation, patch_sweep
    from ktlens.checkpoint import load_pretrained
    from ktlens.commands.common import resolve_model
    from ktlens.commands.dla import parse_input
    from ktlens.viz.patching_figures import estimate_scatter, sweep_heatmap, write_page

    torch.set_num_threads(1)
    model = load_pretrained(resolve_model(args.model)).eval()
    clean, clean_targets = parse_input(model, args.clean)
    corrupt, corrupt_targets = parse_input(model, args.corrupt)
    metric, description = choose_metric(model, clean_targets, corrupt_targets, args.position, args.task, args.alternative)
    default = MIIII_KINDS if model.model_type == "miiii" else KTHEORY_KINDS
    kinds = default if args.kinds is None else tuple(k.strip() for k in args.kinds.split(","))
    figures, results = [], []
    for kind in kinds:
        sweep = patch_sweep(model, clean, corrupt, kind, metric, direction=args.direction, metric_name="logit diff")
        estimate = attribution_patch(model, clean, corrupt, kind, metric, direction=args.direction, metric_name="logit diff")
        r = correlation(sweep, estimate)
        figures += [sweep_heatmap(sweep), estimate_scatter(sweep, estimate, r)]
        results.append({**sweep.to_dict(), "attribution_patching": estimate.normalized().tolist(), "correlation": r})
    out = Path(args.out)
    intro = f"clean {args.clean}, corrupted {args.corrupt}; metric {description}; 1 = clean behaviour, 0 = corrupted."
    write_page(figures, out / "patching.html", f"Activation patching on {args.model}", intro)
    report = {"model": args.model, "clean": args.clean, "corrupt": args.corrupt, "metric": description, "sweeps": results}
    (out / "patching.json").write_text(json.dumps(report), encoding="utf-8")
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"metric: {description}; clean {results[0]['clean_value']:.3f}, corrupted {results[0]['corrupted_value']:.3f}")
    for res in results:
        values = torch.tensor(res["normalized"])
        best = [int(i) for i in torch.unravel_index(values.abs().argmax(), values.shape)]
        where = " ".join(labels[i] for labels, i in zip(res["axis_labels"], best))
        print(f"  {res['kind']:<24} largest {values.flatten()[values.abs().argmax()]:+.3f} at {where:<16} "
              f"attribution-patching r = {res['correlation']:.3f}")
    print(f"wrote {out / 'patching.html'} and {out / 'patching.json'}")
    return 0
