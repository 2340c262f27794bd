"""Progress measures of a MIIII run per task, from its snapshots (Nanda et al. 2023, one row per snapshot).

For every snapshot (``snapshots/step_NNNNNN``) and every task q, with the characters identified on the
final model (``characters``: ``{q: [j, ...]}``, as Nanda et al. use the final key frequencies throughout):

* ``restricted_loss`` / ``excluded_loss``: cross-entropy (nats, all p^2 inputs) of task q with its
  logits restricted to / stripped of those characters (`fourier_ablation`, ``where="resid"``);
* ``gini``: Gini coefficient of the norms of the task's readout spectrum over all non-constant
  frequency pairs (near 1: a few frequencies carry the task);
* ``accuracy``: task q's accuracy on all inputs;

and per snapshot ``weight_norm`` (L2 norm of all parameters) and ``gini_embed`` (Gini of the digit
embedding's Fourier norms). ``exact_steps(history, moduli)`` gives the first evaluation at which each task
is exact on both splits, and ``task_order`` sorts the tasks by it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ktlens.analysis import fourier as fa
from ktlens.analysis.fourier_ablation import ablate_task, final_residual
from ktlens.analysis.miiii_frequencies import readout_power

__all__ = ["snapshot_measures", "progress_over_snapshots", "exact_steps", "task_order"]


@torch.no_grad()
def snapshot_measures(model: Any, characters: Mapping[int, Sequence[int]]) -> dict[str, Any]:
    """The measures of one model (see the module docstring); ``characters`` per task q."""
    power = readout_power(model)  # [T, K + 1, K + 1], constant-constant cell zeroed
    tasks = {}
    resid = final_residual(model)
    for t, q in enumerate(model.moduli):
        r = ablate_task(model, q, list(characters.get(q, [])), "resid", resid=resid)
        cells = np.sqrt(power[t]).ravel()[1:]
        tasks[int(q)] = {
            "accuracy": r.full_accuracy,
            "loss": r.full_loss,
            "restricted_loss": r.restricted_loss,
            "excluded_loss": r.excluded_loss,
            "gini": fa.gini(cells),
        }
    weight_norm = float(torch.sqrt(sum((p.detach().double() ** 2).sum() for p in model.parameters())))
    return {"weight_norm": weight_norm, "gini_embed": fa.gini(fa.embedding_frequency_norms(model)[1:]), "tasks": tasks}


def progress_over_snapshots(paths: Iterable[str | Path], characters: Mapping[int, Sequence[int]], progress: bool = True) -> list[dict[str, Any]]:
    """``snapshot_measures`` of each snapshot folder, sorted by step: ``[{"step", ...}]``."""
    from tqdm import tqdm

    from ktlens.checkpoint import load_checkpoint

    paths = sorted(paths, key=fa.snapshot_step)
    if not paths:
        raise ValueError("no snapshot folders given")
    rows = []
    for path in tqdm(paths, desc="snapshots", disable=not progress):
        step = fa.snapshot_step(path)
        if step < 0:
            raise ValueError(f"{path} is not a snapshot folder named step_NNNNNN")
        rows.append({"step": step, **snapshot_measures(load_checkpoint(path).eval(), characters)})
    return rows


def exact_steps(history: Sequence[Mapping[str, Any]], moduli: Sequence[int], stay: bool = True) -> dict[int, int | None]:
    """First evaluated step at which task q is exact on both splits (on the test split alone where the
    history has no per-task train accuracy) and, with ``stay``, stays exact at every later evaluation
    (None: never)."""
    out: dict[int, int | None] = {}
    for q in moduli:
        exact = [r.get(f"train_acc_q{q}", 1.0) >= 1.0 and r.get(f"test_acc_q{q}", 0.0) >= 1.0 for r in history]
        if not stay:
            out[int(q)] = next((int(r["step"]) for r, e in zip(history, exact) if e), None)
            continue
        step = None
        for i in range(len(history) - 1, -1, -1):
            if not exact[i]:
                break
            step = int(history[i]["step"])
        out[int(q)] = step
    return out


def task_order(steps: Mapping[int, int | None]) -> list[int]:
    """Tasks sorted by the step they become exact (never-exact last)."""
    return sorted(steps, key=lambda q: (steps[q] is None, steps[q] or 0, q))
