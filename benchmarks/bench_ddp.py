"""Data-parallel scaling: training throughput of the one loop with 1 and N ranks, side by side.

Every rank runs the unchanged `ktlens.train.train` on a K-theory preset for a fixed number of steps (the
evaluation is left out: this measures forward + backward + all-reduce + AdamW), with one intra-op thread
per rank on CPU (gloo) or one GPU per rank (NCCL). The global batch is the same for every world size, so
examples/s with N ranks against 1 rank, divided by N, is the scaling efficiency.

    python benchmarks/bench_ddp.py [--preset small --steps 60 --ranks 1 2 --device cpu --rounds 3]

`--sae` times SAE training instead (TopK with AuxK by default) on a shipped model's hook: every rank streams
the global batch of activation rows from its own store (the parent model's forward passes included) and
trains on its slice; examples are activation rows.

    python benchmarks/bench_ddp.py --sae [--sae-model ktheory-small --hook blocks.0.mlp.hook_post --d-sae 1024
                                          --k 16 --batch 1024 --steps 60]

`--footprint` instead prints, for the large presets (K-theory `seed`, MIIII `paper`), what docs/scaling.md
quotes: parameters, the bytes of weights + gradients + AdamW (+ grokfast) state, the activation bytes
autograd saves per example (measured on a micro-batch), the FLOPs per example of forward + backward
(torch's FLOP counter), and the CPU time per step (measured on a micro-batch, scaled to the batch).

    python benchmarks/bench_ddp.py --footprint
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ktlens.experiments.ktheory import KTheoryTrainData, build_preset
from ktlens.train import train


class NoEval:
    """A TrainData that trains like `data` and evaluates nothing (the benchmark times training only).
    The loop's optional extras (`batch_at`, `before_step`, `after_step`) are `data`'s own."""

    def __init__(self, data):
        self.data, self.n_train = data, data.n_train
        for extra in ("batch_at", "before_step", "after_step"):
            if hasattr(data, extra):
                setattr(self, extra, getattr(data, extra))

    def batch(self, idx):
        return self.data.batch(idx)

    def loss(self, model, batch):
        return self.data.loss(model, batch)

    def evaluate(self, model):
        return {}


def _rank(rank: int, world: int, args: argparse.Namespace, store: str, out: str) -> None:
    torch.set_num_threads(args.threads)
    if args.device == "cuda":
        torch.cuda.set_device(rank)
    if world > 1:
        backend = "nccl" if args.device == "cuda" else "gloo"
        dist.init_process_group(backend, store=dist.FileStore(store, world), rank=rank, world_size=world)
    try:
        device = torch.device(args.device, rank) if args.device == "cuda" else torch.device("cpu")
        if args.sae:
            model, data, train_cfg = _sae_run(args, device)
        else:
            preset, dataset, model = build_preset(args.preset)
            model.to(device)
            data, train_cfg = NoEval(KTheoryTrainData(dataset, model)), preset.train
        batch = args.batch or train_cfg.batch_size or data.n_train
        cfg = dataclasses.replace(train_cfg, steps=args.warmup, batch_size=batch, eval_every=10**9)
        train(model, data, cfg, progress=False)  # warm-up: allocator, kernels, first collectives
        cfg = dataclasses.replace(cfg, steps=args.steps)
        if world > 1:
            dist.barrier()
        if args.device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        train(model, data, cfg, progress=False)
        if args.device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        if rank == 0:
            Path(out).write_text(json.dumps({"seconds": seconds, "examples": args.steps * batch, "batch": batch}))
    finally:
        if world > 1:
            dist.destroy_process_group()


def _sae_run(args: argparse.Namespace, device: torch.device):
    """A fresh SAE on the shipped model's hook, its streamed data (without evaluation) and train config."""
    from ktlens.checkpoint import load_pretrained
    from ktlens.saes.training import SAETrainConfig, build_run

    parent = load_pretrained(args.sae_model).to(device)
    sae_fields = {"d_sae": args.d_sae, "k": args.k} if args.sae_arch != "relu" else {"d_sae": args.d_sae}
    cfg = SAETrainConfig(arch=args.sae_arch, sae=sae_fields, store={"batch_rows": args.batch or 1024},
                         train={"eval_every": 10**9, "warmup_steps": 0}, eval_rows=256)
    sae, _, data = build_run(parent, args.sae_model, args.hook, cfg)
    return sae, NoEval(data), cfg.train


def measure(world: int, args: argparse.Namespace) -> dict[str, float]:
    """One timed run with `world` ranks: seconds and examples/s."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        mp.spawn(_rank, args=(world, args, os.path.join(tmp, "store"), out), nprocs=world, join=True)
        r = json.loads(Path(out).read_text())
    return {**r, "examples_per_s": r["examples"] / r["seconds"]}


def _footprint_inputs(study: str, name: str, micro: int):
    """A model of the preset, a micro-batch of `micro` real examples, the loss, and the preset."""
    if study == "ktheory":
        from ktlens.experiments.ktheory import get_preset, task_spec_of
        from ktlens.models.encoder_decoder import KTheoryTransformer
        from ktlens.tasks.ktheory_data import KTheoryGridSpec, build_dataset
        from ktlens.tasks.ktheory_spec import KTheoryTaskSpec

        preset = get_preset(name)
        model = KTheoryTransformer.create(KTheoryTaskSpec.of_grid(preset.grid, preset.label_order), seed=0, **preset.model)
        # the values do not change the cost: real triples of a small grid, in the big model's vocabulary
        small = build_dataset(KTheoryGridSpec(n_primes=8, r_max=6, e_max=6, split="random", test_fraction=0.2, seed=0))
        data = KTheoryTrainData(small, model)
        n_train = round(preset.grid.n_primes * preset.grid.r_max * preset.grid.e_max * (1 - preset.grid.test_fraction))
    else:
        from ktlens.experiments.miiii import build

        spec, data, model, preset_cfg = build(name)
        from ktlens.experiments.miiii import get_preset

        preset = get_preset(name)
        n_train = data.n_train
    idx = torch.arange(micro) % data.n_train
    batch = data.batch(idx)
    if study == "ktheory":  # the small grid's labels are shorter: pad them to the big model's length with 0s
        tokens, targets = batch
        batch = (tokens, torch.nn.functional.pad(targets, (0, model.seq_len - targets.shape[1])))
    return model, data, batch, preset, n_train


def footprint(study: str, name: str, micro: int = 64) -> dict[str, float]:
    """Memory and compute of one training step of a preset, per example where it scales with the batch."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model, data, batch, preset, n_train = _footprint_inputs(study, name, micro)
    model.train()
    cfg = preset.train
    params = [p for p in model.parameters() if p.requires_grad]
    n_params = sum(p.numel() for p in params)
    state_bytes = 4 * n_params * (1 + 1 + 2 + (1 if cfg.grokfast_lambda else 0))  # weights, grads, Adam m and v, EMA
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = data.loss(model, batch)
    loss.backward()
    act_per_example = (sum(saved.values()) - sum(p.numel() * 4 for p in params)) / micro  # weights are saved too
    with FlopCounterMode(display=False) as counter:
        data.loss(model, batch).backward()
    flops_per_example = counter.get_total_flops() / micro
    opt = torch.optim.AdamW(params, lr=1e-4)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        opt.zero_grad()
        data.loss(model, batch).backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    batch_size = cfg.batch_size or n_train
    return {
        "parameters": n_params,
        "state_MiB": state_bytes / 2**20,
        "activation_KiB_per_example": act_per_example / 2**10,
        "global_batch": batch_size,
        "GFLOP_per_step": flops_per_example * batch_size / 1e9,
        "cpu_s_per_step": statistics.median(times[1:]) / micro * batch_size,
        "cpu_GFLOP_per_s": flops_per_example * micro / statistics.median(times[1:]) / 1e9,
        "steps": cfg.steps,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small", help="K-theory preset (its batch is the global batch)")
    ap.add_argument("--batch", type=int, default=None, help="override the global batch size")
    ap.add_argument("--steps", type=int, default=60, help="timed optimizer steps")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2], help="world sizes to compare")
    ap.add_argument("--rounds", type=int, default=3, help="runs per world size, interleaved; the median is shown")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads per rank")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--footprint", action="store_true", help="memory and FLOPs of the seed and paper presets")
    ap.add_argument("--sae", action="store_true", help="time SAE training on a shipped model's hook instead")
    ap.add_argument("--sae-model", default="ktheory-small", help="--sae: the parent model")
    ap.add_argument("--hook", default="blocks.0.mlp.hook_post", help="--sae: the hook")
    ap.add_argument("--sae-arch", choices=["topk", "batchtopk", "relu"], default="topk")
    ap.add_argument("--d-sae", type=int, default=1024)
    ap.add_argument("--k", type=int, default=16)
    args = ap.parse_args()
    if args.footprint:
        torch.set_num_threads(args.threads)
        print(f"{os.cpu_count()} CPU cores, {args.threads} thread(s)")
        for study, name in (("ktheory", "seed"), ("miiii", "paper")):
            print(study, name, json.dumps({k: round(v, 3) for k, v in footprint(study, name).items()}))
        return
    if args.device == "cuda" and max(args.ranks) > torch.cuda.device_count():
        raise SystemExit(f"--ranks {max(args.ranks)} needs that many GPUs; this machine has {torch.cuda.device_count()}")
    runs: dict[int, list[float]] = {w: [] for w in args.ranks}
    for _ in range(args.rounds):  # interleaved, so that load on a shared machine hits every world size alike
        for w in args.ranks:
            runs[w].append(measure(w, args)["examples_per_s"])
    machine = torch.cuda.get_device_name(0) if args.device == "cuda" else f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores"
    what = f"SAE {args.sae_arch} d_sae {args.d_sae} on {args.sae_model} {args.hook}, batch {args.batch or 1024} rows" if args.sae else f"preset {args.preset}"
    print(f"{what}, {args.steps} steps, device {args.device} ({machine}), {args.threads} thread(s) per rank, "
          f"median of {args.rounds}")
    base = statistics.median(runs[args.ranks[0]]) / args.ranks[0]
    print(f"{'ranks':>5} {'examples/s':>11} {'speed-up':>9} {'efficiency':>10}   runs")
    for w in args.ranks:
        eps = statistics.median(runs[w])
        print(f"{w:>5} {eps:>11.0f} {eps / statistics.median(runs[args.ranks[0]]):>8.2f}x {eps / (base * w):>10.0%}   "
              + " ".join(f"{x:.0f}" for x in runs[w]))


if __name__ == "__main__":
    main()
