"""Linear probes over any hook, with a random-model control and a shuffled-label control.

A probe asks: is quantity Y a *linear* function of the activations at hook H (position P)?

* class targets: multinomial logistic regression (softmax), full-batch L-BFGS, small L2;
* scalar targets: ridge regression, closed form, L2 picked per target by generalized cross-validation.

For the logistic probes features are centred and whitened with the training split's covariance (PCA whitening; directions of
~zero variance, e.g. constant features, are dropped), so a probe's answer does not depend on how the
hook happens to scale or correlate its coordinates, and L-BFGS converges in ~100 iterations. For
ridge they are only centred and scaled by one global number (ridge then shrinks the low-variance
directions instead of amplifying units that are nearly silent on the train split).
Examples are split once into train/test (`test_fraction`, `seed`); every score is on the held-out
test split. Each result carries

* ``accuracy``          test accuracy (class) or test R^2 (scalar) of the probe on the trained model;
* ``baseline``          majority class of the train split scored on the test split (class), or R^2 of
                        predicting the train mean (scalar, ~0);
* ``control_accuracy``  the same probe on a randomly initialised model of the same architecture (same
                        cfg, another init seed): what the architecture and the inputs give for free;
* ``shuffled_accuracy`` the same probe on the trained model's activations with the labels permuted
                        over examples: what a probe can memorise (selectivity = accuracy - shuffled).

Activations are read only through ``model.run_with_cache(tokens, names_filter=[...])``, so any
`HookedModel` works; the study-specific parts (tokens, targets, default hooks and positions) live in
``ktlens.analysis.probe_targets``.

Positions (the ``positions`` argument, one spec for every hook or a dict hook -> spec). The position
axis is axis 1 of the hook's activation (axis 2, the query axis, for ``hook_pattern`` and
``hook_attn_scores``); every axis after it is flattened into features.

* ``k`` (int, negative counts from the end): the activation at position k only;
* ``[k1, k2, ...]``: the activations at those positions, concatenated into one feature vector;
* ``"flatten"``: every position concatenated (one feature vector per example);
* ``"all"``: every position is a separate row (rows of one example stay in the same split);
  per-position targets take the value at that row's position;
* ``"none"``: the hook has no position axis (``[batch, d]``), e.g. ``hook_resid_final``;
* ``"default"``: the study's convention (``probe_targets.default_position``); for the K-theory model
  decoder position 0 (the BOS position, which sees the whole source through cross-attention, before
  any label is read), for the remainders model the '=' position, and "flatten" for embeddings.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union

import numpy as np
import torch
from torch import Tensor

from ktlens.models.base import HookedModel

__all__ = [
    "ProbeTarget",
    "ProbeResult",
    "Features",
    "PositionSpec",
    "check_hooks",
    "gather_features",
    "fit_classifiers",
    "fit_ridge",
    "probe_features",
    "random_control_model",
    "run_probes",
    "results_table",
]

PositionSpec = Union[int, Sequence[int], Literal["flatten", "all", "none", "default"]]
QUERY_AXIS_HOOKS = ("hook_pattern", "hook_attn_scores")  # [batch, head, query_pos, key_pos]


# ----------------------------------------------------------------------------------------------------
# records
# ----------------------------------------------------------------------------------------------------


@dataclass
class ProbeTarget:
    """One quantity to decode.

    ``values`` is ``[N]`` (one value per example) or, with ``per_position=True``, ``[N, P]`` where
    column k is the value at position k (e.g. the K-theory label n_{k+1} at decoder position k).
    Class values may be any integers or booleans (they are re-coded 0..C-1); scalar values are floats.
    ``description`` says exactly what the number is. ``mask`` (bool ``[N]``, optional) restricts the
    target to some examples (e.g. only triples with p | e); the others are left out of its train and
    test rows, and its shuffled control permutes labels among the kept examples only.
    """

    name: str
    kind: Literal["class", "scalar"]
    values: np.ndarray
    description: str = ""
    per_position: bool = False
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("class", "scalar"):
            raise ValueError(f"ProbeTarget {self.name!r}: kind must be 'class' or 'scalar', got {self.kind!r}")
        values = np.asarray(self.values)
        want = 2 if self.per_position else 1
        if values.ndim != want:
            raise ValueError(
                f"ProbeTarget {self.name!r}: values must be {want}-D "
                f"({'[N, positions]' if self.per_position else '[N]'}), got shape {values.shape}"
            )
        if self.kind == "class" and values.dtype.kind not in "iub":
            raise ValueError(f"ProbeTarget {self.name!r}: class values must be integers or booleans, got dtype {values.dtype}")
        if self.kind == "scalar":
            if values.dtype.kind not in "iubf":
                raise ValueError(f"ProbeTarget {self.name!r}: scalar values must be numbers, got dtype {values.dtype}")
            values = values.astype(np.float64)
            if not np.isfinite(values).all():
                raise ValueError(f"ProbeTarget {self.name!r}: scalar values contain NaN or inf")
        self.values = values
        if self.mask is not None:
            mask = np.asarray(self.mask)
            if mask.dtype != bool or mask.shape != (len(values),):
                raise ValueError(
                    f"ProbeTarget {self.name!r}: mask must be a boolean array of shape ({len(values)},), "
                    f"got dtype {mask.dtype} shape {mask.shape}"
                )
            if mask.sum() < 2:
                raise ValueError(f"ProbeTarget {self.name!r}: mask keeps {int(mask.sum())} examples (need >= 2)")
            self.mask = mask

    def __len__(self) -> int:
        return len(self.values)


@dataclass
class ProbeResult:
    """One row of a probe table: how well `target` is linearly decoded from `hook` at `position`."""

    target: str
    hook: str
    position: str  # the position spec that was used, resolved ("0", "-1", "flatten", "all", "none", "[0, 2]")
    kind: str  # "class" or "scalar"
    metric: str  # "accuracy" (class) or "r2" (scalar)
    accuracy: float  # test accuracy / test R^2 of the probe on the trained model
    baseline: float  # majority class (class) / predicting the train mean (scalar), on the test split
    shuffled_accuracy: float | None  # same probe, labels permuted over examples
    control_accuracy: float | None  # same probe on a randomly initialised model of the same architecture
    train_accuracy: float  # the probe's score on its own training split
    n_train: int
    n_test: int
    n_features: int
    n_classes: int | None  # classes seen in the data (class targets)
    description: str = ""
    l2: float | None = None  # L2 strength of the probe (ridge: chosen by generalized cross-validation)
    fit_seconds: float = 0.0  # share of the fitting time of this row's batch

    @property
    def selectivity(self) -> float | None:
        """accuracy - shuffled_accuracy."""
        return None if self.shuffled_accuracy is None else self.accuracy - self.shuffled_accuracy

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["selectivity"] = self.selectivity
        return d


@dataclass
class Features:
    """Probe inputs from one hook: ``X[row]`` belongs to example ``example[row]`` at ``position[row]``
    (``position`` is -1 where a row mixes positions or the hook has none)."""

    hook: str
    spec: str
    X: Tensor  # [rows, features] float32
    example: np.ndarray  # [rows]
    position: np.ndarray  # [rows]


# ----------------------------------------------------------------------------------------------------
# activations
# ----------------------------------------------------------------------------------------------------


def check_hooks(model: HookedModel, hooks: Sequence[str]) -> list[str]:
    """The hook names as a list, or ValueError naming the first one the model does not have."""
    if isinstance(hooks, str):
        hooks = [hooks]
    hooks = list(hooks)
    if not hooks:
        raise ValueError("no hooks given")
    known = model.hook_dict
    for name in hooks:
        if name not in known:
            close = [k for k in known if name.split(".")[-1] in k][:6]
            raise ValueError(f"unknown hook {name!r} for {type(model).__name__}; similar: {close}")
    return hooks


def _position_axis(hook: str) -> int:
    return 2 if hook.split(".")[-1] in QUERY_AXIS_HOOKS else 1


def _spec_str(spec: Any) -> str:
    if isinstance(spec, (list, tuple)):
        return "[" + ", ".join(str(int(k)) for k in spec) + "]"
    return str(spec)


def _select(act: Tensor, hook: str, spec: Any) -> tuple[Tensor, np.ndarray | None]:
    """Features [B, F] (or [B * P, F] for "all") from one batch of activations; positions of "all" rows."""
    act = act.detach().float()
    if spec == "none":
        if act.ndim != 2:
            raise ValueError(f"position 'none' needs a [batch, d] hook, but {hook!r} has shape {tuple(act.shape)}")
        return act, None
    if act.ndim < 3:
        raise ValueError(f"hook {hook!r} has shape {tuple(act.shape)} (no position axis); use position 'none'")
    axis = _position_axis(hook)
    act = act.movedim(axis, 1)  # [B, P, ...]
    n_pos = act.shape[1]
    if spec == "flatten":
        return act.flatten(1), None
    if spec == "all":
        b = act.shape[0]
        return act.flatten(2).flatten(0, 1), np.tile(np.arange(n_pos), b)
    ks = [spec] if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool) else spec
    if not isinstance(ks, (list, tuple)) or not ks or not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in ks):
        raise ValueError(f"unknown position spec {spec!r}; use an int, a list of ints, 'flatten', 'all', 'none' or 'default'")
    for k in ks:
        if not -n_pos <= k < n_pos:
            raise ValueError(f"position {k} is out of range for hook {hook!r} with {n_pos} positions")
    if len(ks) == 1:  # one position: rows carry it (normalised to 0..P-1) for per-position targets
        return act[:, ks[0]].flatten(1), np.full(act.shape[0], ks[0] % n_pos)
    return act[:, list(ks)].flatten(1), None


def _position_specs(hooks: list[str], positions: Any) -> dict[str, Any]:
    if isinstance(positions, Mapping):
        unknown = [h for h in positions if h not in hooks]
        if unknown:
            raise ValueError(f"positions given for hooks {unknown} that are not probed")
        return {h: positions.get(h, "default") for h in hooks}
    return {h: positions for h in hooks}


def resolve_position(model: HookedModel, hook: str, spec: Any, ndim: int) -> Any:
    """The concrete position spec for `hook` (whose activation has `ndim` axes): "default" resolved."""
    if isinstance(spec, str) and spec == "default":
        if ndim == 2:
            return "none"
        from ktlens.analysis.probe_targets import default_position

        return default_position(model, hook)
    return spec


@torch.no_grad()
def gather_features(
    model: HookedModel,
    tokens: Tensor,
    hooks: Sequence[str],
    positions: PositionSpec | Mapping[str, PositionSpec] = "default",
    batch_size: int = 512,
) -> dict[str, Features]:
    """Run the model over `tokens` in batches and keep the selected positions of every hook.

    Reads activations only through ``model.run_with_cache(tokens, names_filter=hooks)``.
    """
    hooks = check_hooks(model, hooks)
    tokens = torch.as_tensor(tokens)
    if len(tokens) == 0:
        raise ValueError("no examples: tokens is empty")
    spec = _position_specs(hooks, positions)
    was_training = model.training
    model.eval()
    parts: dict[str, list[Tensor]] = {h: [] for h in hooks}
    pos_parts: dict[str, list[np.ndarray]] = {h: [] for h in hooks}
    try:
        for start in range(0, len(tokens), batch_size):
            batch = tokens[start : start + batch_size].to(model.device)
            _, cache = model.run_with_cache(batch, names_filter=hooks)
            for h in hooks:
                spec[h] = resolve_position(model, h, spec[h], cache[h].ndim)
                x, pos = _select(cache[h], h, spec[h])
                parts[h].append(x.cpu())
                if pos is not None:
                    pos_parts[h].append(pos)
            del cache
    finally:
        model.train(was_training)
    out = {}
    n = len(tokens)
    for h in hooks:
        X = torch.cat(parts[h])
        position = np.concatenate(pos_parts[h]) if pos_parts[h] else np.full(n, -1)
        example = np.repeat(np.arange(n), len(X) // n)
        out[h] = Features(h, _spec_str(spec[h]), X, example, position)
    return out


def random_control_model(model: HookedModel, seed_offset: int = 1000) -> HookedModel:
    """A freshly initialised model of the same class and cfg, init seed ``cfg.seed + seed_offset``.

    The global torch RNG is left as it was.
    """
    cfg = dataclasses.replace(model.cfg, seed=int(model.cfg.seed) + seed_offset)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        control = type(model)(cfg, model.task_spec)
    return control.to(model.device).eval()


# ----------------------------------------------------------------------------------------------------
# fitting
# ----------------------------------------------------------------------------------------------------


def _whiten(X: Tensor, train: np.ndarray, rel_tol: float = 1e-6) -> Tensor:
    """Centre and whiten the features with the train split's covariance (PCA whitening).

    Directions whose train variance is below ``rel_tol`` times the largest (or times the activation's
    mean square, whichever is larger) are dropped: constant features and float noise carry nothing.
    A linear probe's predictions do not depend on an invertible linear map of its inputs, so whitening
    only changes what the small L2 penalty prefers (and makes L-BFGS converge in few iterations).
    Returns float64 ``[rows, kept directions]``.
    """
    X = X.double()
    Xt = X[torch.as_tensor(train)]
    mean = Xt.mean(0, keepdim=True)
    centred = Xt - mean
    cov = centred.T @ centred / max(len(Xt), 1)
    evals, evecs = torch.linalg.eigh(cov)
    scale = max(float(evals.max()) if len(evals) else 0.0, float(Xt.pow(2).mean()) if Xt.numel() else 0.0)
    keep = evals > rel_tol * scale
    return (X - mean) @ (evecs[:, keep] / evals[keep].sqrt())


def fit_classifiers(
    X: Tensor,
    labels: Sequence[np.ndarray],
    train: np.ndarray,
    test: np.ndarray,
    l2: float = 1e-4,
    max_iter: int = 100,
) -> list[dict[str, float]]:
    """Multinomial logistic regressions of several label vectors on the same features, fitted jointly.

    Features are whitened (see `_whiten`) and get a bias column. The objective is the sum over label
    vectors of (mean cross-entropy + l2 * |W|^2, bias not penalised); it separates,
    so the joint L-BFGS solves each regression independently. Labels are integer codes per row of X.
    Returns per label vector: train / test accuracy, majority baseline, number of classes.
    """
    X = _whiten(X, train).float()
    X = torch.cat([X, torch.ones(len(X), 1)], 1)
    tr, te = torch.as_tensor(train), torch.as_tensor(test)
    codes, sizes = [], []
    for y in labels:
        _, code = np.unique(np.asarray(y), return_inverse=True)
        codes.append(torch.as_tensor(code.reshape(-1), dtype=torch.long))
        sizes.append(int(code.max()) + 1 if len(code) else 1)
    n_t = len(codes)
    offsets = torch.as_tensor(np.concatenate([[0], np.cumsum(sizes)[:-1]]))
    seg = torch.repeat_interleave(torch.arange(n_t), torch.as_tensor(sizes))  # column -> target
    cols = torch.stack(codes, 1) + offsets  # [rows, targets]: column of the true class
    W = torch.zeros(X.shape[1], int(sum(sizes)), requires_grad=True)
    Xtr, Ctr = X[tr], cols[tr]

    member = torch.nn.functional.one_hot(seg, n_t).double()  # [columns, targets]

    def segment_logsumexp(logits: Tensor) -> Tensor:
        """[rows, columns] -> [rows, targets]: logsumexp over each target's own columns (shifted by the
        row max, summed in float64 so that no segment underflows)."""
        shift = logits.detach().max(1, keepdim=True).values
        total = ((logits - shift).double().exp() @ member).clamp_min(1e-300)
        return (total.log() + shift.double()).float()

    opt = torch.optim.LBFGS([W], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-5, tolerance_change=1e-7)

    def closure() -> Tensor:
        opt.zero_grad()
        logits = Xtr @ W
        nll = (segment_logsumexp(logits) - logits.gather(1, Ctr)).mean()  # mean over rows and targets
        loss = n_t * nll + l2 * W[:-1].pow(2).sum()  # = sum over targets of (mean CE + l2 |W_t|^2)
        loss.backward()
        return loss

    if len(tr):
        # L-BFGS's history vectors reach subnormal floats near convergence, which are ~100x slower on
        # CPU; flush them to zero while fitting (torch's default, no flushing, is restored after).
        flushing = torch.set_flush_denormal(True)
        try:
            opt.step(closure)
        finally:
            if flushing:
                torch.set_flush_denormal(False)
    with torch.no_grad():
        logits = X @ W
        pred = torch.stack([logits[:, o : o + c].argmax(1) for o, c in zip(offsets.tolist(), sizes)], 1)
    out = []
    for i, code in enumerate(codes):
        majority = torch.bincount(code[tr], minlength=sizes[i]).argmax()
        out.append({
            "train": (pred[tr, i] == code[tr]).float().mean().item(),
            "test": (pred[te, i] == code[te]).float().mean().item(),
            "baseline": (code[te] == majority).float().mean().item(),
            "n_classes": sizes[i],
            "l2": l2,
        })
    return out


def _r2(y: Tensor, pred: Tensor) -> float:
    ss = (y - y.mean()).pow(2).sum()
    if ss <= 0:
        return float("nan")
    return (1 - (y - pred).pow(2).sum() / ss).item()


RIDGE_GRID = tuple(float(x) for x in np.logspace(-6, 2, 17))


def _centre(X: Tensor, train: np.ndarray) -> Tensor:
    """Centre the features on the train split and divide them all by one number, their train RMS.

    One global scale (not one per coordinate) keeps ridge's preference for the high-variance
    directions: a unit that is almost silent on the train split cannot be blown up on a test example.
    """
    X = X.double()
    Xt = X[torch.as_tensor(train)]
    X = X - Xt.mean(0, keepdim=True)
    rms = float(X[torch.as_tensor(train)].pow(2).mean().sqrt()) if Xt.numel() else 0.0
    return X / rms if rms > 0 else X


def fit_ridge(
    X: Tensor, targets: Sequence[np.ndarray], train: np.ndarray, test: np.ndarray, l2: float | None = None
) -> list[dict[str, float]]:
    """Ridge regressions of several scalar targets on the same features, closed form (SVD).

    Minimises mean squared error + l2 * |w|^2 on centred features (scaled by their overall RMS) and
    standardized targets (intercept free).
    ``l2=None`` picks, per target, the l2 in `RIDGE_GRID` with the smallest generalized
    cross-validation error on the train split (so noise and shuffled targets get shrunk to ~0 rather
    than overfitted). Returns per target: train / test R^2, the test R^2 of predicting the train mean
    (baseline) and the l2 used.
    """
    X = _centre(X, train)
    tr, te = torch.as_tensor(train), torch.as_tensor(test)
    Y = torch.as_tensor(np.stack([np.asarray(t, dtype=np.float64) for t in targets], 1))
    mu, sd = Y[tr].mean(0, keepdim=True), Y[tr].std(0, keepdim=True).clamp_min(1e-12)
    Ys = (Y - mu) / sd
    n = max(len(tr), 1)
    U, S, Vh = torch.linalg.svd(X[tr], full_matrices=False)
    UtY = U.T @ Ys[tr]  # [k, targets]
    grid = torch.tensor(RIDGE_GRID if l2 is None else (float(l2),), dtype=X.dtype)
    s2 = S.pow(2)[:, None]  # [k, 1]
    shrink = s2 / (s2 + n * grid[None, :])  # [k, grid]: fitted fraction of each singular direction
    yy = Ys[tr].pow(2).sum(0)  # [targets]
    # residual sum of squares for every (l2, target): |y|^2 - 2 sum f (U'y)^2 + sum f^2 (U'y)^2
    c2 = UtY.pow(2)  # [k, targets]
    rss = yy[None, :] - 2 * shrink.T @ c2 + shrink.pow(2).T @ c2  # [grid, targets]
    dof = shrink.sum(0)  # [grid]
    gcv = rss / (1 - dof[:, None] / n).clamp_min(1e-6).pow(2)
    best = gcv.argmin(0)  # [targets]
    # coefficients: W = V diag(s / (s^2 + n l2)) U'y, per target with its own l2
    coef = S[:, None] / (s2 + n * grid[best][None, :])  # [k, targets]
    W = Vh.T @ (coef * UtY)  # [features, targets]
    pred = (X @ W) * sd + mu
    out = []
    for j in range(Y.shape[1]):
        y = Y[:, j]
        out.append({
            "train": _r2(y[tr], pred[tr, j]),
            "test": _r2(y[te], pred[te, j]),
            "baseline": _r2(y[te], mu[0, j].expand(len(te))),
            "n_classes": None,
            "l2": float(grid[best[j]]),
        })
    return out


def _split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    perm = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(test_fraction * n)))
    if n - n_test < 1:
        raise ValueError(f"{n} examples are too few for a train/test split")
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def _row_values(values: np.ndarray, per_position: bool, feats: Features) -> np.ndarray | None:
    """A target's value for every row of `feats`, or None where undefined (a per-position target on
    rows that mix positions)."""
    if not per_position:
        return values[feats.example]
    if (feats.position < 0).any():
        return None
    if (feats.position >= values.shape[1]).any():
        return None
    return values[feats.example, feats.position]


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
) -> dict[str, dict[str, dict[str, float]]]:
    """name -> {"real": scores, "shuffled": scores} for every target defined on these rows.

    Targets that share the rows they are defined on (the same mask) are fitted in one batch.
    """
    in_train = np.isin(feats.example, train_ex)
    in_test = np.isin(feats.example, test_ex)
    groups: dict[Any, dict[str, Any]] = {}
    for t in targets:
        vals = _row_values(t.values, t.per_position, feats)
        if vals is None:
            continue
        keep = np.ones(len(feats.example), dtype=bool) if t.mask is None else t.mask[feats.example]
        key = (t.kind, None if t.mask is None else t.mask.tobytes())
        g = groups.setdefault(key, {"kind": t.kind, "keep": keep, "jobs": []})
        g["jobs"].append((t.name, "real", vals))
        if shuffled:
            g["jobs"].append((t.name, "shuffled", _row_values(_shuffled(t, seed), t.per_position, feats)))
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
    positions: PositionSpec | Mapping[str, PositionSpec] = "default",
    control: bool | HookedModel = True,
    shuffled: bool = True,
    test_fraction: float = 0.25,
    seed: int = 0,
    l2_class: float = 1e-4,
    l2_scalar: float | None = None,
    max_iter: int = 100,
    batch_size: int = 512,
) -> list[ProbeResult]:
    """Probe every target at every hook; one `ProbeResult` per (hook, target) that is defined there.

    `tokens` are the model's inputs, one row per example; every target has one value (or one row of
    per-position values) per example. `control=True` builds `random_control_model(model)`; pass a
    model to use another control, or False for none. The train/test split is over examples and is the
    same for every hook, target and control.
    """
    targets = _check_targets(targets, len(tokens))
    hooks = check_hooks(model, hooks)
    train, test = _split(len(tokens), test_fraction, seed)
    feats = gather_features(model, tokens, hooks, positions, batch_size)
    ctrl_feats = None
    if control is not False and control is not None:
        ctrl_model = random_control_model(model) if control is True else control
        ctrl_feats = gather_features(ctrl_model, tokens, hooks, positions, batch_size)
    results = []
    for h in hooks:
        t0 = time.perf_counter()
        scores = _fit_all(feats[h], targets, train, test, shuffled, seed, l2_class, l2_scalar, max_iter)
        ctrl = None
        if ctrl_feats is not None:
            ctrl = _fit_all(ctrl_feats[h], targets, train, test, False, seed, l2_class, l2_scalar, max_iter)
        seconds = (time.perf_counter() - t0) / max(len(scores), 1)
        for t in targets:
            if t.name in scores:
                results.append(_result(t, feats[h], scores[t.name], None if ctrl is None else ctrl.get(t.name), seconds))
    return results


# ----------------------------------------------------------------------------------------------------
# display
# ----------------------------------------------------------------------------------------------------


def _fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.3f}"


def results_table(results: Sequence[ProbeResult], markdown: bool = False) -> str:
    """A text (or markdown) table: one row per (target, hook, position) with every score."""
    head = ["target", "hook", "pos", "metric", "probe", "random model", "shuffled", "baseline", "selectivity"]
    rows = [
        [r.target, r.hook, r.position, r.metric, _fmt(r.accuracy), _fmt(r.control_accuracy),
         _fmt(r.shuffled_accuracy), _fmt(r.baseline), _fmt(r.selectivity)]
        for r in results
    ]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        lines += ["| " + " | ".join(f"`{c}`" if i in (0, 1) else c for i, c in enumerate(row)) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head), fmt.format(*("-" * w for w in widths))] + [fmt.format(*row) for row in rows])
