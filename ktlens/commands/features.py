"""`ktlens features --model NAME [--sae NAME] [--hook HOOK] [--json]`: automatic labels of every unit.

Units are the MLP neurons of ``--hook`` (default: the last block's ``mlp.hook_post``) or, with
``--sae``, the SAE's latents at its own hook. Each unit is scored against the task's variables
(`ktlens.analysis.features`); ``--json`` prints ``{"units": [...], "coverage": {...}}``.
"""

from __future__ import annotations

import argparse

from ktlens.commands.common import add_model_argument


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("features", help="label every MLP neuron or SAE latent against the task's variables")
    add_model_argument(p)
    p.add_argument("--sae", default=None, help="shipped SAE name or folder: label its latents instead of neurons")
    p.add_argument("--hook", default=None, help="neuron hook, blocks.{l}.mlp.hook_post (default: the last block)")
    p.add_argument("--top", type=int, default=20, help="units shown in the text output")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def load_units(args: argparse.Namespace):
    """(model, unit source) for the command line's --model / --sae / --hook."""
    import ktlens
    from ktlens.analysis.features import neuron_units, sae_units
    from ktlens.checkpoint import pretrained_names
    from ktlens.commands.common import resolve_model

    model = ktlens.load_pretrained(resolve_model(args.model))
    model.eval()
    if args.sae is not None:
        if args.hook is not None:
            raise ValueError("--hook and --sae exclude each other: an SAE reads its own hook")
        load_sae = getattr(ktlens, "load_sae", None)
        if load_sae is None:
            raise ValueError(f"--sae {args.sae!r}: this installation has no SAEs (ktlens.load_sae)")
        sae = load_sae(args.sae)
        model_name = getattr(sae.cfg, "model_name", None)
        if model_name and args.model in pretrained_names() and model_name != args.model:
            raise ValueError(f"SAE {args.sae!r} was trained on {model_name!r}, not on --model {args.model!r}")
        return model, sae_units(model, sae, name=str(args.sae))
    hook = args.hook or f"blocks.{int(model.cfg.n_layers) - 1}.mlp.hook_post"
    return model, neuron_units(model, hook)


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    import torch

    from ktlens.analysis.features import analyze_units

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    model, source = load_units(args)
    report = analyze_units(model, source, progress=sys.stderr.isatty() or not args.json)
    if args.json:
        print(json.dumps(report.to_json()))
        return 0
    cov = report.coverage
    print(f"{source.name}: {source.n_units} units, {report.n_labelled(0.9)} labelled with held-out F1 >= 0.9, "
          f"{int(report.scores.labelled.sum())} above chance; coverage {cov.share:.1%} of {len(cov.events)} events "
          f"at F1 >= 0.9 ({report.seconds['read'] + report.seconds['label']:.1f} s)")
    order = sorted(range(source.n_units), key=lambda u: -(report.scores.f1[u, 0] if report.scores.labelled[u] else -1))
    for u in order[: args.top]:
        f1 = f"F1 {report.scores.f1[u, 0]:.3f}" if report.scores.labelled[u] else "F1 -"
        print(f"  unit {u:5d}  density {report.density[u]:.4f}  {f1}  {report.label(u)}")
    return 0
