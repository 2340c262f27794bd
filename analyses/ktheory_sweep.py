"""One K-theory training run: the `small` preset with overrides, then the domain / held-out exact match.

    python analyses/ktheory_sweep.py NAME preset.label_order='"descending"' train.weight_decay=1.0 \
        grid.test_fraction=0.1 model.n_layers=2 [--threads 1]

Each override is ``section.key=value`` with section ``model`` (ModelConfig fields), ``train`` (TrainConfig
fields), ``grid`` (KTheoryGridSpec fields) or ``preset`` (KTheoryPreset fields), applied to the ``small``
preset by ``ktlens.experiments.overrides.apply_overrides``; values are JSON. The run
folder is ``runs/k-NAME`` (resumable); the printed line is what `docs/results/ktheory_experiments.md` logs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from ktlens.experiments import ktheory
from ktlens.experiments.overrides import apply_overrides


def preset_with(overrides: list[str]) -> ktheory.KTheoryPreset:
    """The ``small`` preset with the overrides applied."""
    return apply_overrides(ktheory.get_preset("small"), overrides)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name")
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    preset = preset_with(args.overrides)
    t0 = time.perf_counter()
    run = ktheory.train_preset(preset, f"runs/k-{args.name}", progress=True, name=args.name)
    domain = run.metrics["domain"]
    summary = {s: {k: round(v, 3) for k, v in domain[s].items() if "ar_exact" in k} for s in ("all", "test")}
    print(args.name, args.overrides, f"{time.perf_counter() - t0:.0f}s", json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
