"""Running probes: one train/test split over examples, every target at every hook, with a
random-model control and a shuffled-label control (see the package docstring for what each score is).
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from ktlens.analysis.probes.features import check_hooks, gather_features, random_control_model
from ktlens.analysis.probes.fitting import fit_classifiers, fit_ridge
from ktlens.analysis.probes.positions import PositionConvention
from ktlens.analysis.probes.records import Features, ProbeResult, ProbeTarget
from ktlens.models.base import HookedModel

__all__ = ["MIN_EXAMPLES_PER_CLASS", "SmallSampleWarning", "sample_size_warnings", "probe_features", "run_probes"]

#: A class target with fewer examples than this per class (on average) gets a `SmallSampleWarning`.
MIN_EXAMPLES_PER_CLASS = 5


class SmallSampleWarning(UserWarning):
    """The sample is too small for the number of classes of a class target: its scores are unreliable."""


def sample_size_warnings(targets: Sequence[ProbeTarget], test_fraction: float) -> list[str]:
    """One message per class target whose examples are too few for its classes: fewer than
    `MIN_EXAMPLES_PER_CLASS` per class on average, or fewer (expected) train examples than classes."""
    out = []
    for t in targets:
        if t.kind != "class":
            continue
        values = t.values if t.mask is None else t.values[t.mask]
        n = len(values)
        n_classes = len(np.unique(values))
        n_train = n - max(1, int(round(test_fraction * n)))
        if n_train < n_classes or n < MIN_EXAMPLES_PER_CLASS * n_classes:
            out.append(
                f"probe target {t.name!r}: {n} examples (~{n_train} in the train split) for {n_classes} classes, "
                f"fewer than {MIN_EXAMPLES_PER_CLASS} per class; its scores are unreliable (sample more examples)"
            )
    return out


def _warn_small_samples(targets: Sequence[ProbeTarget], test_fraction: float) -> None:
    for message in sample_size_warnings(targets, test_fraction):
        warnings.warn(message, SmallSampleWarning, stacklevel=3)


def _split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    perm = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(test_fraction * n)))
    if n - n_test < 1:
        raise ValueError(f"{n} examples are too few for a train/test split")
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def _row_values(
    values: np.ndarray, per_position: bool, feats: Features, first_position: int = 0
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """A target's value for every row of `feats` and which rows it is defined on (None: all), or None
    where it is defined on none (a per-position target on rows that mix positions, or on positions its
    columns ``first_position..first_position + P - 1`` do not cover)."""
    if not per_position:
        return values[feats.example], None
    if (feats.position < 0).any():
        return None
    column = feats.position - first_position
    defined = (column >= 0) & (column < values.shape[1])
    if not defined.any():
        return None
    if defined.all():
        return values[feats.example, column], None
    return values[feats.example, np.clip(column, 0, values.shape[1] - 1)], defined


def _shuffled(target: ProbeTarget, seed: int) -> np.ndarray:
    """The target's values permuted over examples (over the kept examples only, for a masked target)."""
    keep = np.arange(len(target)) if target.mask is None else np.flatnonzero(target.mask)
    perm = np.random.default_rng(seed + 7919).permutation(len(keep))
    values = target.values.copy()
    values[keep] = target.values[keep[perm]]
    return values


def _fit_all(
    feats: Features,
    targets: Sequence[ProbeTarget],
    train_ex: np.ndarray,
    test_ex: np.ndarray,
    shuffled: bool,
    seed: int,
    l2_class: float,
    l2_scalar: float | None,
    max_iter: int,
    on_fitted: Callable[[int], None] | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """name -> {"real": scores, "shuffled": scores} for every target defined on these rows.

    Targets that share the rows they are defined on (the same mask) are fitted in one batch;
    ``on_fitted(k)`` is called after each batch with its number of targets (for progress).
    """
    in_train = np.isin(feats.example, train_ex)
    in_test = np.isin(feats.example, test_ex)
    groups: dict[Any, dict[str, Any]] = {}
    for t in targets:
        row_values = _row_values(t.values, t.per_position, feats, t.first_position)
        if row_values is None:
            continue
        vals, defined = row_values
        keep = np.ones(len(feats.example), dtype=bool) if t.mask is None else t.mask[feats.example]
        if defined is not None:
            keep = keep & defined
        key = (t.kind, None if t.mask is None else t.mask.tobytes(), None if defined is None else defined.tobytes())
        g = groups.setdefault(key, {"kind": t.kind, "keep": keep, "jobs": []})
        g["jobs"].append((t.name, "real", vals))
        if shuffled:
            g["jobs"].append((t.name, "shuffled", _row_values(_shuffled(t, seed), t.per_position, feats, t.first_position)[0]))
    out: dict[str, dict[str, dict[str, float]]] = {}
    for g in groups.values():
        rows = np.flatnonzero(g["keep"])
        X = feats.X[torch.as_tensor(rows)] if len(rows) < len(feats.example) else feats.X
        tr, te = np.flatnonzero(in_train[rows]), np.flatnonzero(in_test[rows])
        if len(tr) < 2 or len(te) < 1:  # a mask that leaves (almost) nothing: no result for these targets
            continue
        values = [v[rows] for _, _, v in g["jobs"]]
        if g["kind"] == "class":
            scores = fit_classifiers(X, values, tr, te, l2_class, max_iter)
        else:
            scores = fit_ridge(X, values, tr, te, l2_scalar)
        for (name, which, _), sc in zip(g["jobs"], scores):
            out.setdefault(name, {})[which] = {**sc, "n_train": len(tr), "n_test": len(te)}
        if on_fitted is not None:
            on_fitted(len({name for name, _, _ in g["jobs"]}))
    return out


def _check_targets(targets: Sequence[ProbeTarget], n: int) -> list[ProbeTarget]:
    targets = list(targets)
    if not targets:
        raise ValueError("no probe targets given")
    names = [t.name for t in targets]
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        raise ValueError(f"duplicate target names {dup}")
    for t in targets:
        if not isinstance(t, ProbeTarget):
            raise ValueError(f"targets must be ProbeTarget records, got {t!r}")
        if len(t) != n:
            raise ValueError(f"target {t.name!r} has {len(t)} values but there are {n} examples")
        if t.per_position and t.mask is not None:
            raise ValueError(f"target {t.name!r}: a per-position target cannot have a mask")
    return targets


def probe_features(
    X: Tensor | np.ndarray,
    target: ProbeTarget,
    test_fraction: float = 0.25,
    seed: int = 0,
    l2: float | None = None,
    max_iter: int = 100,
    hook: str = "features",
) -> ProbeResult:
    """Probe one target on a given feature matrix [N, F] (no model; no random-model control)."""
    X = (X if isinstance(X, Tensor) else torch.as_tensor(np.asarray(X))).float()
    if X.ndim != 2:
        raise ValueError(f"features must be [N, F], got shape {tuple(X.shape)}")
    _check_targets([target], len(X))
    _warn_small_samples([target], test_fraction)
    feats = Features(hook, "none", X, np.arange(len(X)), np.full(len(X), -1))
    train, test = _split(len(X), test_fraction, seed)
    l2c = 1e-4 if l2 is None else l2
    l2s = l2
    scores = _fit_all(feats, [target], train, test, True, seed, l2c, l2s, max_iter)[target.name]
    return _result(target, feats, scores, None, 0.0)


def _result(target: ProbeTarget, feats: Features, scores: dict, control: dict | None, seconds: float) -> ProbeResult:
    real = scores["real"]
    return ProbeResult(
        target=target.name,
        hook=feats.hook,
        position=feats.spec,
        kind=target.kind,
        metric="accuracy" if target.kind == "class" else "r2",
        accuracy=real["test"],
        baseline=real["baseline"],
        shuffled_accuracy=scores["shuffled"]["test"] if "shuffled" in scores else None,
        control_accuracy=None if control is None else control["real"]["test"],
        train_accuracy=real["train"],
        n_train=real["n_train"],
        n_test=real["n_test"],
        n_features=int(feats.X.shape[1]),
        n_classes=real["n_classes"],
        description=target.description,
        l2=real.get("l2"),
        fit_seconds=round(seconds, 3),
    )


def run_probes(
    model: HookedModel,
    tokens: Tensor,
    targets: Sequence[ProbeTarget],
    hooks: Sequence[str],
    positions: Any = "default",  # a PositionSpec, or hook -> PositionSpec; checked, ValueError when bad
    control: bool | HookedModel = True,
    shuffled: bool = True,
    test_fraction: float = 0.25,
    seed: int = 0,
    l2_class: float = 1e-4,
    l2_scalar: float | None = None,
    max_iter: int = 100,
    batch_size: int = 512,
    convention: PositionConvention | None = None,
    progress: bool = False,
) -> list[ProbeResult]:
    """Probe every target at every hook; one `ProbeResult` per (hook, target) that is defined there.

    `tokens` are the model's inputs, one row per example; every target has one value (or one row of
    per-position values) per example. `control=True` builds `random_control_model(model)`; pass a
    model to use another control, or False for none. The train/test split is over examples and is the
    same for every hook, target and control. Position ``"default"`` is resolved by `convention`
    (``positions.default_position`` when None). A class target with too few examples for its classes
    gets a `SmallSampleWarning`. ``progress=True`` shows a progress bar on stderr over hooks x targets
    (x 2 with the control).
    """
    targets = _check_targets(targets, len(tokens))
    hooks = check_hooks(model, hooks)
    train, test = _split(len(tokens), test_fraction, seed)
    _warn_small_samples(targets, test_fraction)
    with_control = control is not False and control is not None
    per_hook = len(targets) * (2 if with_control else 1)
    bar = tqdm(total=len(hooks) * per_hook, unit="probe", file=sys.stderr, disable=not progress, leave=False,
               desc="activations")
    try:
        feats = gather_features(model, tokens, hooks, positions, batch_size, convention)
        ctrl_feats = None
        if with_control:
            ctrl_model = random_control_model(model) if control is True else control
            ctrl_feats = gather_features(ctrl_model, tokens, hooks, positions, batch_size, convention)
        results = []
        for i, h in enumerate(hooks):
            bar.set_description(h)
            t0 = time.perf_counter()
            scores = _fit_all(feats[h], targets, train, test, shuffled, seed, l2_class, l2_scalar, max_iter, bar.update)
            ctrl = None
            if ctrl_feats is not None:
                ctrl = _fit_all(ctrl_feats[h], targets, train, test, False, seed, l2_class, l2_scalar, max_iter,
                                bar.update)
            seconds = (time.perf_counter() - t0) / max(len(scores), 1)
            bar.update((i + 1) * per_hook - bar.n)  # targets not defined at this hook count as done
            for t in targets:
                if t.name in scores:
                    results.append(_result(t, feats[h], scores[t.name], None if ctrl is None else ctrl.get(t.name), seconds))
    finally:
        bar.close()
    return results

