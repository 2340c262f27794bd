"""Data-parallel scaling: training throughput of the one loop with 1 and N ranks, side by side.

Every rank runs the unchanged `ktlens.train.train` on a K-theory preset for a fixed number of steps (the
evaluation is left out: this measures forward + backward + all-reduce + AdamW), with one intra-op thread
per rank on CPU (gloo) or one GPU per rank (NCCL). The global batch is the same for every world size, so
examples/s with N ranks against 1 rank, divided by N, is the scaling efficiency.

    python benchmarks/bench_ddp.py [--preset small --steps 60 --ranks 1 2 --device cpu --rounds 3]
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
    """A TrainData that trains like `data` and evaluates nothing (the benchmark times training only)."""

    def __init__(self, data):
        self.data, self.n_train = data, data.n_train

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
        preset, dataset, model = build_preset(args.preset)
        model.to(torch.device(args.device, rank) if args.device == "cuda" else "cpu")
        data = NoEval(KTheoryTrainData(dataset, model))
        batch = args.batch or preset.train.batch_size or data.n_train
        cfg = dataclasses.replace(preset.train, steps=args.warmup, batch_size=batch, eval_every=10**9)
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


def measure(world: int, args: argparse.Namespace) -> dict[str, float]:
    """One timed run with `world` ranks: seconds and examples/s."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        mp.spawn(_rank, args=(world, args, os.path.join(tmp, "store"), out), nprocs=world, join=True)
        r = json.loads(Path(out).read_text())
    return {**r, "examples_per_s": r["examples"] / r["seconds"]}


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
    args = ap.parse_args()
    if args.device == "cuda" and max(args.ranks) > torch.cuda.device_count():
        raise SystemExit(f"--ranks {max(args.ranks)} needs that many GPUs; this machine has {torch.cuda.device_count()}")
    runs: dict[int, list[float]] = {w: [] for w in args.ranks}
    for _ in range(args.rounds):  # interleaved, so that load on a shared machine hits every world size alike
        for w in args.ranks:
            runs[w].append(measure(w, args)["examples_per_s"])
    machine = torch.cuda.get_device_name(0) if args.device == "cuda" else f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores"
    print(f"preset {args.preset}, {args.steps} steps, device {args.device} ({machine}), {args.threads} thread(s) per rank, "
          f"median of {args.rounds}")
    base = statistics.median(runs[args.ranks[0]]) / args.ranks[0]
    print(f"{'ranks':>5} {'examples/s':>11} {'speed-up':>9} {'efficiency':>10}   runs")
    for w in args.ranks:
        eps = statistics.median(runs[w])
        print(f"{w:>5} {eps:>11.0f} {eps / statistics.median(runs[args.ranks[0]]):>8.2f}x {eps / (base * w):>10.0%}   "
              + " ".join(f"{x:.0f}" for x in runs[w]))


if __name__ == "__main__":
    main()
