"""What the hooks cost: the hooked K-theory model against a plain PyTorch model of the same size.

Measured side by side in one run, interleaved so that machine load hits both alike:
  1. training throughput (examples/s, forward + backward + AdamW step), goal: hooks cost <= 10%;
  2. `run_with_cache` (every hook cached) against a plain forward of the hooked model, goal: <= 1.3x.

    python benchmarks/bench_hooks.py [--d-model 128 --batch 256 --threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from ktlens.models.encoder_decoder import KTheoryTransformer, sequence_loss

SPEC = {"primes": [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97],
        "r_max": 20, "e_max": 20, "seq_len": 9, "max_count": 372, "label_order": "ascending"}


class PlainAttention(nn.Module):
    def __init__(self, d: int, h: int, causal: bool):
        super().__init__()
        self.h, self.causal = h, causal
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x, src=None):
        src = x if src is None else src
        b, n, d = x.shape
        split = lambda t: t.view(b, t.shape[1], self.h, d // self.h).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q(x)), split(self.k(src)), split(self.v(src))
        scores = q @ k.transpose(-1, -2) / (d // self.h) ** 0.5
        if self.causal:
            scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
        z = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)
        return self.o(z)


class PlainKTheoryModel(nn.Module):
    """The same post-LN encoder-decoder with stock PyTorch modules and no hooks."""

    def __init__(self, d_src: int, d_vocab: int, d_out: int, n_ctx: int, d: int, h: int, d_mlp: int):
        super().__init__()
        self.src_embed, self.src_pos = nn.Embedding(d_src, d), nn.Parameter(torch.randn(3, d) * 0.02)
        self.embed, self.pos = nn.Embedding(d_vocab, d), nn.Parameter(torch.randn(n_ctx, d) * 0.02)
        self.ln_src, self.ln1, self.ln2, self.ln3 = (nn.LayerNorm(d) for _ in range(4))
        self.self_attn, self.cross_attn = PlainAttention(d, h, True), PlainAttention(d, h, False)
        self.mlp = nn.Sequential(nn.Linear(d, d_mlp), nn.ReLU(), nn.Linear(d_mlp, d))
        self.unembed = nn.Linear(d, d_out)

    def forward(self, tokens):
        src, tgt = tokens[:, :3], tokens[:, 3:]
        source = self.ln_src(self.src_embed(src) + self.src_pos)
        x = self.embed(tgt) + self.pos[: tgt.shape[1]]
        x = self.ln1(x + self.self_attn(x))
        x = self.ln2(x + self.cross_attn(x, source))
        x = self.ln3(x + self.mlp(x))
        return self.unembed(x)


def make_batch(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    src = torch.stack([torch.tensor(SPEC["primes"])[torch.randint(0, 25, (n,), generator=g)],
                       torch.randint(1, 21, (n,), generator=g), torch.randint(1, 21, (n,), generator=g)], 1)
    tgt = torch.randint(0, SPEC["max_count"] + 1, (n, SPEC["seq_len"]), generator=g)
    dec = torch.cat([torch.full((n, 1), SPEC["max_count"] + 1), tgt[:, :-1]], 1)
    return torch.cat([src, dec], 1), tgt


def time_it(fn, reps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--d-mlp", type=int, default=512)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    hooked = KTheoryTransformer.create(SPEC, d_model=args.d_model, n_heads=args.heads, d_mlp=args.d_mlp)
    plain = PlainKTheoryModel(hooked.cfg.d_vocab_src, hooked.cfg.d_vocab, hooked.cfg.d_vocab_out, SPEC["seq_len"],
                              args.d_model, args.heads, args.d_mlp)
    n_hooked = sum(p.numel() for p in hooked.parameters())
    n_plain = sum(p.numel() for p in plain.parameters())
    tokens, targets = make_batch(args.batch)

    def train_step(model, opt):
        def step():
            loss = sequence_loss(model(tokens), targets)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return step

    steps = {"hooked": train_step(hooked, torch.optim.AdamW(hooked.parameters())),
             "plain": train_step(plain, torch.optim.AdamW(plain.parameters()))}
    infer = {"forward": lambda: hooked(tokens), "run_with_cache": lambda: hooked.run_with_cache(tokens)}
    times: dict[str, list[float]] = {k: [] for k in (*steps, *infer)}
    for fn in steps.values():
        fn()  # warm up
    for _ in range(args.rounds):  # interleaved rounds: load drift hits every variant alike
        for name, fn in steps.items():
            times[name].append(time_it(fn, args.reps))
    hooked.eval()
    with torch.no_grad():
        for fn in infer.values():
            fn()
        for _ in range(args.rounds):
            for name, fn in infer.items():
                times[name].append(time_it(fn, args.reps))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"threads={args.threads} batch={args.batch} d_model={args.d_model} params hooked={n_hooked:,} plain={n_plain:,}")
    for name in steps:
        print(f"train {name:>7}: {args.batch / med[name]:8.0f} examples/s")
    print(f"training cost of hooks: {med['hooked'] / med['plain'] - 1:+.1%} (goal <= +10%)")
    print(f"forward: {med['forward'] * 1e3:.2f} ms   run_with_cache: {med['run_with_cache'] * 1e3:.2f} ms   "
          f"ratio {med['run_with_cache'] / med['forward']:.2f}x (goal <= 1.3x)")


if __name__ == "__main__":
    main()
