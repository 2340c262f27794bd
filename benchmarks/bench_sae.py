"""SAE training throughput, ktlens against SAELens, same architecture and size on the same activations.

    python benchmarks/bench_sae.py [--model ktheory-small] [--hook blocks.1.mlp.hook_post] [--d-sae 2048]
                                   [--k 32] [--steps 300] [--batch 1024] [--threads 1] [--venv .venv-saelens]

The activations of the hook over the model's whole domain are written once to a safetensors file; both
trainers read that file. SAELens pins transformer-lens < 4, so it runs in its own virtual environment,
created by this script with torch==2.13.0 installed first (so pip keeps that torch) and then sae-lens;
nothing of it touches this environment. When the environment cannot be made (no network, no wheel),
the script says so and prints ktlens' figure alone.

Both sides: TopK SAE, AuxK, Adam(0.9, 0.999), constant lr, gradient clipping 1.0, the same batches in the
same order, one thread. Reported: activations (rows) per second of training steps, and the explained
variance of the final SAE over all rows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

SAELENS_SIDE = textwrap.dedent(
    """
    import dataclasses, json, sys, time
    import torch
    from safetensors.torch import load_file
    args = json.loads(sys.argv[1])
    torch.set_num_threads(args["threads"])
    from sae_lens import __version__ as version
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    import sae_lens.saes.sae as sae_mod
    x = load_file(args["acts"])["acts"]
    order = load_file(args["acts"])["order"]
    fields = {f.name for f in dataclasses.fields(TopKTrainingSAEConfig)}
    kw = dict(d_in=x.shape[1], d_sae=args["d_sae"], k=args["k"])
    for name, value in (("dtype", "float32"), ("device", "cpu"), ("normalize_activations", "none")):
        if name in fields:
            kw[name] = value
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(**kw))
    opt = torch.optim.Adam(sae.parameters(), lr=args["lr"], betas=(0.9, 0.999))
    step_fields = {f.name for f in dataclasses.fields(sae_mod.TrainStepInput)}
    since_fired = torch.zeros(args["d_sae"], dtype=torch.long)
    b = args["batch"]
    t0 = time.perf_counter()
    for step in range(args["steps"]):
        xb = x[order[step * b:(step + 1) * b]]
        inputs = dict(sae_in=xb, dead_neuron_mask=since_fired >= args["dead_window_rows"])
        if "coefficients" in step_fields: inputs["coefficients"] = {}
        if "n_training_steps" in step_fields: inputs["n_training_steps"] = step
        if "current_l1_coefficient" in step_fields: inputs["current_l1_coefficient"] = 0.0
        if "is_logging_step" in step_fields: inputs["is_logging_step"] = False
        out = sae.training_forward_pass(step_input=sae_mod.TrainStepInput(**inputs))
        opt.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            since_fired += len(xb)
            since_fired[(out.feature_acts > 0).any(0)] = 0
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        sae.eval()
        err = sum((xc - sae(xc)).pow(2).sum().item() for xc in x.split(8192))
    total = (x - x.mean(0)).pow(2).sum().item()
    print(json.dumps({"version": version, "seconds": seconds, "rows_per_s": args["steps"] * b / seconds,
                      "explained_variance": 1 - err / total}))
    """
)


def make_venv(venv: Path) -> str | None:
    """Python of a venv with torch 2.13.0 and sae-lens, or None (and a message) when it cannot be made."""
    python = venv / "bin" / "python"
    if python.is_file() and subprocess.run([str(python), "-c", "import sae_lens"], capture_output=True).returncode == 0:
        return str(python)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "-q", "torch==2.13.0"],
        [str(python), "-m", "pip", "install", "-q", "sae-lens"],
    ]
    for cmd in steps:
        print("$", " ".join(cmd), file=sys.stderr)
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"cannot set up SAELens ({' '.join(cmd[-2:])} failed): {done.stderr.strip().splitlines()[-1:] }", file=sys.stderr)
            return None
    return str(python)


def ktlens_side(acts, order, args) -> dict:
    import torch

    from ktlens.saes import TopKSAE, TopKSAEConfig
    from ktlens.saes.training import SAETrainData
    from ktlens.train import TrainConfig, train

    class Fixed:  # the same batches in the same order as the SAELens side
        n_rows, positions = len(acts), 1

        def batch_at(self, step):
            from ktlens.saes.activations import ActivationRows

            idx = order[step * args.batch : (step + 1) * args.batch]
            return ActivationRows(acts[idx], idx, torch.zeros_like(idx))

        def sample(self, n, seed):
            return self.batch_at(0)

    sae = TopKSAE(TopKSAEConfig(d_in=acts.shape[1], d_sae=args.d_sae, k=args.k, dead_window_rows=args.dead_window_rows))
    sae.initialize_from_sample(acts[order[:8192]])
    data = SAETrainData(sae, Fixed(), eval_rows=1)
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch, lr=args.lr, weight_decay=0.0, betas=(0.9, 0.999),
                      warmup_steps=0, schedule="constant", grad_clip=1.0, eval_every=10**9, checkpoint_every=10**9)
    t0 = time.perf_counter()
    train(sae, data, cfg, progress=False)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        err = sum((xc - sae(xc)).pow(2).sum().item() for xc in acts.split(8192))
    total = (acts - acts.mean(0)).pow(2).sum().item()
    return {"seconds": seconds, "rows_per_s": args.steps * args.batch / seconds, "explained_variance": 1 - err / total}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ktheory-small")
    ap.add_argument("--hook", default="blocks.1.mlp.hook_post")
    ap.add_argument("--d-sae", type=int, default=2048)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--dead-window-rows", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--venv", default=".venv-saelens")
    ap.add_argument("--skip-saelens", action="store_true")
    args = ap.parse_args()

    import torch
    from safetensors.torch import save_file

    import ktlens
    from ktlens.saes.activations import ActivationStore, StoreConfig
    from ktlens.saes.domains import domain_of

    torch.set_num_threads(args.threads)
    model = ktlens.load_pretrained(args.model)
    store = ActivationStore(model, args.hook, domain_of(model), StoreConfig(batch_rows=1))
    acts = torch.cat([rows.acts for rows in store.iter_domain()])
    n_needed = args.steps * args.batch
    gen = torch.Generator().manual_seed(0)
    order = torch.cat([torch.randperm(len(acts), generator=gen) for _ in range(-(-n_needed // len(acts)))])[:n_needed]
    print(f"{args.model} {args.hook}: {len(acts)} rows x {acts.shape[1]}; TopK d_sae {args.d_sae}, k {args.k}, "
          f"{args.steps} steps x {args.batch} rows, {args.threads} thread(s)")
    ours = ktlens_side(acts, order, args)
    print(f"ktlens : {ours['rows_per_s']:9.0f} rows/s  explained variance {ours['explained_variance']:.4f}  ({ours['seconds']:.1f} s)")
    if args.skip_saelens:
        return
    python = make_venv(Path(args.venv))
    if python is None:
        print("SAELens: not measured (its environment could not be created; see the message above)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "acts.safetensors")
        save_file({"acts": acts.contiguous(), "order": order.contiguous()}, path)
        payload = json.dumps({**vars(args), "acts": path})
        done = subprocess.run([python, "-c", SAELENS_SIDE, payload], capture_output=True, text=True)
    if done.returncode != 0:
        print(f"SAELens: failed: {done.stderr.strip().splitlines()[-3:]}")
        return
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"SAELens {theirs['version']}: {theirs['rows_per_s']:9.0f} rows/s  explained variance {theirs['explained_variance']:.4f}  ({theirs['seconds']:.1f} s)")
    print(f"ktlens / SAELens throughput: {ours['rows_per_s'] / theirs['rows_per_s']:.2f}x")


if __name__ == "__main__":
    main()
