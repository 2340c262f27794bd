"""Peak memory of SAE training streamed over every triple of the reference grid.

    python benchmarks/bench_sae_memory.py [--n-primes 400 --r-max 100 --e-max 50] [--hook blocks.0.mlp.hook_post]
                                          [--d-sae 2048 --k 32] [--batch 4096] [--threads 1]

A K-theory model of the reference's shape (1 post-LN block, d_model 128, 4 heads, d_mlp 512; random
weights: the figure is about memory) covers the reference grid, first 400 primes x r <= 100 x e <= 50
= 2,000,000 triples. The activation store walks all of them once (every (triple, position) row goes
through the SAE), one buffer of `--buffer-examples` triples at a time. Prints the peak RSS of the
process and the training throughput in activations (rows) per second.
"""

from __future__ import annotations

import argparse
import resource
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-primes", type=int, default=400)
    ap.add_argument("--r-max", type=int, default=100)
    ap.add_argument("--e-max", type=int, default=50)
    ap.add_argument("--hook", default="blocks.0.mlp.hook_post")
    ap.add_argument("--d-sae", type=int, default=2048)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--buffer-examples", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    from ktlens.models.encoder_decoder import KTheoryTransformer
    from ktlens.saes import TopKSAE, TopKSAEConfig
    from ktlens.saes.activations import ActivationStore, StoreConfig
    from ktlens.saes.domains import KTheoryDomain
    from ktlens.saes.training import SAETrainData
    from ktlens.tasks.ktheory_data import KTheoryGridSpec
    from ktlens.train import TrainConfig, train

    torch.set_num_threads(args.threads)
    primes = KTheoryGridSpec(n_primes=args.n_primes, r_max=args.r_max, e_max=args.e_max).prime_list()
    spec = {"task": "ktheory", "primes": primes, "r_max": args.r_max, "e_max": args.e_max,
            "label_order": "ascending"}  # seq_len and max_count are derived from the domain
    model = KTheoryTransformer.create(spec, d_model=128, n_heads=4, d_mlp=512, n_layers=1, normalization="post").eval()
    domain = KTheoryDomain(model)
    store = ActivationStore(model, args.hook, domain, StoreConfig(batch_rows=args.batch, buffer_examples=args.buffer_examples))
    steps = store.batches_per_epoch
    print(f"{domain.n_examples:,} triples x {store.positions} positions = {store.n_rows:,} rows of {store.d_in}; "
          f"{steps:,} steps of {args.batch} rows (one epoch)")
    sae = TopKSAE(TopKSAEConfig(d_in=store.d_in, d_sae=args.d_sae, k=args.k))
    sae.initialize_from_sample(store.sample(8192, seed=0).acts)
    data = SAETrainData(sae, store, eval_rows=4096)
    cfg = TrainConfig(steps=steps, batch_size=args.batch, lr=2e-3, weight_decay=0.0, betas=(0.9, 0.999), warmup_steps=50,
                      eval_every=max(1, steps // 10), checkpoint_every=10**9)
    t0 = time.perf_counter()
    result = train(sae, data, cfg, progress=True)
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:,.0f} MB; store buffer peak {store.peak_buffer_bytes / 2**20:,.0f} MB; "
          f"{steps * args.batch / seconds:,.0f} activations/s ({seconds:.0f} s, model forward included); "
          f"final sample explained variance {result.final.get('eval_explained_variance', float('nan')):.3f}")


if __name__ == "__main__":
    main()
