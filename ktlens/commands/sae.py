"""`ktlens sae train|eval`: train a sparse autoencoder on a hook of a model, or evaluate one. `sae train` runs
unchanged under `torchrun --nproc-per-node N -m ktlens.cli sae train ...` (data parallel: `store.batch_rows`
is the global batch; rank 0 writes the SAE; see docs/scaling.md)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sae", help="sparse autoencoders: train on a hook, or evaluate")
    actions = p.add_subparsers(dest="sae_command", required=True)
    t = actions.add_parser("train", help="train an SAE on a model's hook over its whole domain (resumes from --out)")
    t.add_argument("--model", required=True, help="shipped model name or checkpoint folder")
    t.add_argument("--hook", required=True, help="hook name, e.g. blocks.0.mlp.hook_post")
    t.add_argument("--arch", choices=["relu", "topk", "batchtopk"], default="topk")
    t.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="e.g. sae.d_sae=2048 sae.k=16 train.steps=3000 store.batch_rows=2048")
    t.add_argument("--out", required=True, help="folder for the SAE (its training checkpoint goes to OUT/run)")
    t.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    t.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu",
                   help="where the model and SAE run; auto = cuda when available (under torchrun: cuda:LOCAL_RANK)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(run=run_train)
    e = actions.add_parser("eval", help="metrics over the parent model's whole domain")
    e.add_argument("--sae", required=True, help="shipped SAE name (see --list) or SAE folder")
    e.add_argument("--model", default=None, help="parent model (default: the one named in the SAE's config)")
    e.add_argument("--json", action="store_true", help="print every figure as JSON")
    e.add_argument("--threads", type=int, default=1)
    e.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu", help="where the model and SAE run")
    e.set_defaults(run=run_eval)


def _threads(n: int) -> None:
    import torch

    if n < 1:
        raise ValueError(f"--threads must be >= 1, got {n}")
    torch.set_num_threads(n)


def run_train(args: argparse.Namespace) -> int:
    from ktlens import distributed
    from ktlens.checkpoint import load_pretrained
    from ktlens.saes.training import SAETrainConfig, train_sae, with_overrides

    _threads(args.threads)
    device = distributed.resolve_device(args.device)
    model = load_pretrained(args.model).to(device)
    cfg = with_overrides(SAETrainConfig(arch=args.arch), args.set)
    try:
        _, metrics = train_sae(model, str(args.model), args.hook, cfg, args.out, progress=not args.quiet)
        main = distributed.is_main_process()  # rank 0 (or the only process) reports
    finally:
        distributed.shutdown()
    if main:
        print(summary(metrics))
        print(f"SAE written to {args.out}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from ktlens.checkpoint import load_pretrained
    from ktlens.saes.io import load_sae
    from ktlens.saes.metrics import evaluate_sae

    from ktlens.distributed import resolve_device

    _threads(args.threads)
    device = resolve_device(args.device)
    sae = load_sae(args.sae, device=str(device))
    model = load_pretrained(args.model or sae.cfg.model_name).to(device)
    metrics = evaluate_sae(sae, model)
    print(json.dumps(metrics, indent=1) if args.json else summary(metrics))
    return 0


def summary(m: dict) -> str:
    """A few lines: reconstruction, sparsity, and the spliced model beside clean and zero-ablation."""
    acc = m["accuracy_metric"]
    lines = [
        f"{m['model_name']} {m['hook_name']}: {m['architecture']} SAE, d_in {m['d_in']}, d_sae {m['d_sae']} "
        f"({m['n_rows']} rows, {m['distinct_rows']} distinct)",
        f"explained_variance {m['explained_variance']:.4f}  l0 {m['l0']:.2f}  mse {m['mse']:.4g}  "
        f"dead_features {m['dead_features']:.3f}  dense_features {m['dense_features']:.3f}",
        f"loss: clean {m['clean']['loss']:.4f}  sae {m['sae']['loss']:.4f}  zero {m['zero_ablation']['loss']:.4f}  "
        f"ce_loss_score {m['ce_loss_score']:.4f}",
        f"{acc}: clean {m['clean'][acc]:.4f}  sae {m['sae'][acc]:.4f}  zero {m['zero_ablation'][acc]:.4f}  "
        f"accuracy_recovered {m['accuracy_recovered']:.4f}  sae/clean {m['accuracy_vs_clean']:.4f}",
    ]
    return "\n".join(lines)
