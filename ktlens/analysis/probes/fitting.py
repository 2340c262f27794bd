"""Fitting linear probes on a feature matrix.

* class targets: multinomial logistic regression (softmax), full-batch L-BFGS, small L2, on features
  centred and whitened with the train split's covariance (PCA whitening; directions of ~zero variance,
  e.g. constant features, are dropped), so a probe's answer does not depend on how the hook happens to
  scale or correlate its coordinates, and L-BFGS converges in ~100 iterations;
* scalar targets: ridge regression, closed form, L2 picked per target by generalized cross-validation,
  on features only centred and scaled by one global number (ridge then shrinks the low-variance
  directions instead of amplifying units that are nearly silent on the train split).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

__all__ = ["RIDGE_GRID", "fit_classifiers", "fit_ridge"]


def _whiten(
    X: Float[Tensor, "rows features"], train: Int[np.ndarray, " n_train"], rel_tol: float = 1e-6
) -> Float[Tensor, "rows kept"]:
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
    X: Float[Tensor, "rows features"],
    labels: Sequence[np.ndarray],
    train: Int[np.ndarray, " n_train"],
    test: Int[np.ndarray, " n_test"],
    l2: float = 1e-4,
    max_iter: int = 100,
) -> list[dict[str, Any]]:
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


def _r2(y: Float[Tensor, " n"], pred: Float[Tensor, " n"]) -> float:
    ss = (y - y.mean()).pow(2).sum()
    if ss <= 0:
        return float("nan")
    return (1 - (y - pred).pow(2).sum() / ss).item()


RIDGE_GRID = tuple(float(x) for x in np.logspace(-6, 2, 17))


def _centre(X: Float[Tensor, "rows features"], train: Int[np.ndarray, " n_train"]) -> Float[Tensor, "rows features"]:
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
    X: Float[Tensor, "rows features"],
    targets: Sequence[np.ndarray],
    train: Int[np.ndarray, " n_train"],
    test: Int[np.ndarray, " n_test"],
    l2: float | None = None,
) -> list[dict[str, Any]]:
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

