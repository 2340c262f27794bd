"""How exactly the direct logit attribution adds up on the shipped models, and which parts dominate.

    python analyses/attribution_check.py          # ~10 s

ktheory-small: 500 seeded triples x every decoder position; miiii-small: every n < p^2 x every task.
Prints the largest |sum of the parts - the model's logit| and the parts with the largest mean |contribution|.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ktlens.analysis.attribution import direct_logit_attribution, ktheory_targets, miiii_targets  # noqa: E402
from ktlens.checkpoint import load_pretrained  # noqa: E402


def report(name: str, logits: torch.Tensor, attribution) -> None:
    true = logits.gather(-1, attribution.targets[..., None])[..., 0]
    error = float((attribution.contributions.sum(0) - true).abs().max())
    size = attribution.contributions.abs().mean((1, 2))
    top = ", ".join(f"{attribution.labels[i]} {float(size[i]):.2f}" for i in size.argsort(descending=True)[:5])
    print(f"{name}: {attribution.contributions.shape[0]} parts, {true.numel()} logits, largest |sum - logit| {error:.2e}")
    print(f"    largest mean |contribution|: {top}")


def main() -> None:
    torch.set_num_threads(1)
    model = load_pretrained("ktheory-small").eval()
    rng = np.random.default_rng(0)
    n = 500
    p, r, e = rng.choice(model.primes, n), rng.integers(1, model.r_max + 1, n), rng.integers(1, model.e_max + 1, n)
    with torch.no_grad():
        logits, cache = model.run_with_cache(model.make_batch(p, r, e))
        report("ktheory-small", logits, direct_logit_attribution(model, cache, ktheory_targets(model, p, r, e)))
    model = load_pretrained("miiii-small").eval()
    n_all = np.arange(model.p**2)
    with torch.no_grad():
        logits, cache = model.run_with_cache(model.tokens_for(n_all))
        report("miiii-small", logits, direct_logit_attribution(model, cache, miiii_targets(model, n_all)))


if __name__ == "__main__":
    main()
