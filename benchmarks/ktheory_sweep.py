"""One K-theory training run: the `small` preset with overrides, then the domain / held-out exact match.

    python benchmarks/ktheory_sweep.py NAME preset.label_order='"descending"' train.weight_decay=1.0 \
        grid.test_fraction=0.1 model.n_layers=2 [--threads 1]

Each override is ``section.key=value`` with section ``model`` (ModelConfig fields), ``train`` (TrainConfig
fields), ``grid`` (KTheoryGridSpec fields) or ``preset`` (KTheoryPreset fields); values are JSON. The run
folder is ``runs/k-NAME`` (resumable); the printed line is what `docs/results/ktheory_experiments.md` logs.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import time

import torch

from ktlens.experiments import ktheory


def preset_with(overrides: list[str]) -> ktheory.KTheoryPreset:
    pre = copy.deepcopy(ktheory.PRESETS["small"])
    train: dict = {}
    for item in overrides:
        key, value = item.split("=", 1)
        section, _, sub = key.partition(".")
        value = json.loads(value)
        if section == "model":
            pre.model[sub] = value
        elif section == "grid":
            pre = dataclasses.replace(pre, grid=dataclasses.replace(pre.grid, **{sub: value}))
        elif section == "preset":
            pre = dataclasses.replace(pre, **{sub: value})
        elif section == "train":
            train[sub] = value
        else:
            raise ValueError(f"unknown section {section!r} in {item!r} (model, train, grid or preset)")
    return dataclasses.replace(pre, train=dataclasses.replace(pre.train, **train))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name")
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ktheory.PRESETS[args.name] = preset_with(args.overrides)
    t0 = time.perf_counter()
    ktheory.train_preset(args.name, f"runs/k-{args.name}", progress=True)
    domain = json.loads(open(f"runs/k-{args.name}/model/metrics.json").read())["domain"]
    summary = {s: {k: round(v, 3) for k, v in domain[s].items() if "ar_exact" in k} for s in ("all", "test")}
    print(args.name, args.overrides, f"{time.perf_counter() - t0:.0f}s", json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
