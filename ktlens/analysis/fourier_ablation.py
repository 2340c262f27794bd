"""Fourier ablations of a MIIII model, per task (as Nanda et al. verified the modular-addition circuit).

For a task q and frequency sets ``x0`` (of the high digit n // p) and ``x1`` (of the low digit n % p):

* ``where="neurons"``: every MLP neuron's activation at '=' (``blocks.{-1}.mlp.hook_post``) is a
  function on the p x p grid; *restricted* keeps only its 2-D Fourier components (k0, k1) with
  ``k0 in {0} + x0`` and ``k1 in {0} + x1`` (the constant included), *excluded* removes those
  components but the constant;
* ``where="embed"``: the digit embeddings (``hook_embed`` at the two digit positions) are functions on
  Z_p; restricted keeps the constant and the frequencies ``x0`` at the high digit's position and ``x1``
  at the low digit's, excluded removes those frequencies.

The model then runs on all p^2 inputs with the ablated activations (a forward hook), and task q's
accuracy and mean cross-entropy (nats) are reported over all inputs. ``ablate_task`` does one task;
``ablation_table`` does every task of a model with the frequencies ``miiii_frequencies`` found.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ktlens.analysis import fourier as fa

__all__ = ["WHERE", "AblationResult", "kept_mask_2d", "ablate_task", "task_accuracy_and_loss"]

WHERE = ("neurons", "embed")


@dataclass
class AblationResult:
    """Accuracy and mean cross-entropy (nats, all p^2 inputs) of one task: as trained, restricted to
    the frequencies and with them excluded."""

    q: int
    where: str
    x0: list[int]
    x1: list[int]
    full_accuracy: float
    full_loss: float
    restricted_accuracy: float
    restricted_loss: float
    excluded_accuracy: float
    excluded_loss: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_freqs(name: str, freqs: Sequence[int], p: int) -> list[int]:
    out = []
    for k in freqs:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= p // 2:
            raise ValueError(f"{name} frequency {k!r} is outside 1..{p // 2} (p = {p})")
        out.append(int(k))
    return sorted(set(out))


def _row_mask(p: int, freqs: Sequence[int], constant: bool) -> np.ndarray:
    """Which rows of ``fourier_basis(p)`` belong to the frequencies (and the constant)."""
    row_freq = fa._row_frequency(p)
    keep = np.isin(row_freq, list(freqs))
    keep[0] = constant
    return keep


def kept_mask_2d(p: int, x0: Sequence[int], x1: Sequence[int]) -> np.ndarray:
    """Boolean [p, p] over pairs of basis rows: True where the row frequencies are in ``{0} + x0`` and
    ``{0} + x1`` (the components a restricted grid keeps)."""
    return np.outer(_row_mask(p, x0, True), _row_mask(p, x1, True))


def _project_grid(acts: torch.Tensor, p: int, mask: np.ndarray, keep: bool) -> torch.Tensor:
    """acts [p*p, d] (row n = x0 p + x1) with its 2-D components in ``mask`` kept (or removed)."""
    B = torch.as_tensor(fa.fourier_basis(p), dtype=torch.float64)
    grid = acts.double().reshape(p, p, -1)
    coeffs = torch.einsum("ia,abd,jb->ijd", B, grid, B)
    m = torch.as_tensor(mask if keep else ~mask)
    if not keep:
        m[0, 0] = True  # excluded keeps the mean
    back = torch.einsum("ia,ijd,jb->abd", B, coeffs * m[..., None], B)
    return back.reshape(p * p, -1).to(acts.dtype)


def _project_table(W: torch.Tensor, p: int, freqs: Sequence[int], keep: bool) -> torch.Tensor:
    """A table [p, d] (row = digit value) with the frequencies kept (constant too) or removed."""
    B = torch.as_tensor(fa.fourier_basis(p), dtype=torch.float64)
    rows = torch.as_tensor(_row_mask(p, freqs, True) if keep else ~_row_mask(p, freqs, False))
    coeffs = B @ W.double()
    return (B.T @ (coeffs * rows[:, None])).to(W.dtype)


def task_accuracy_and_loss(logits: torch.Tensor, targets: torch.Tensor, n_classes: int) -> tuple[float, float]:
    """Accuracy and mean cross-entropy (nats) of one task's logits [N, C] (classes >= n_classes ignored)."""
    lg = logits[:, :n_classes].double()
    return float((lg.argmax(-1) == targets).double().mean()), float(F.cross_entropy(lg, targets))


@torch.no_grad()
def _run(model: Any, tokens: torch.Tensor, hooks: list) -> torch.Tensor:
    return model.run_with_hooks(tokens, fwd_hooks=hooks)


@torch.no_grad()
def ablate_task(model: Any, q: int, x0: Sequence[int], x1: Sequence[int], where: str = "neurons") -> AblationResult:
    """Task q's accuracy and loss as trained, restricted to (x0, x1) and with (x0, x1) excluded."""
    if where not in WHERE:
        raise ValueError(f"where={where!r} is not one of {WHERE}")
    if q not in model.moduli:
        raise ValueError(f"q={q} is not a task of this model (moduli {model.moduli})")
    p = model.p
    x0, x1 = _check_freqs("x0", x0, p), _check_freqs("x1", x1, p)
    t = model.moduli.index(q)
    c = model.n_classes[t]
    n = np.arange(p * p)
    tokens = model.tokens_for(n)
    if model.spec.variant != "remainders":
        raise ValueError(f"ablations are defined for the remainders variant, got {model.spec.variant!r}")
    targets = torch.as_tensor(n % q)
    was = model.training
    model.eval()
    try:
        full = task_accuracy_and_loss(model(tokens)[:, t], targets, c)
        out = {}
        for keep in (True, False):
            if where == "neurons":
                name = f"blocks.{model.cfg.n_layers - 1}.mlp.hook_post"
                mask = kept_mask_2d(p, x0, x1)

                def hook(act, hook, mask=mask, keep=keep):  # act [p*p, 1, d_mlp] at '='
                    return _project_grid(act[:, -1], p, mask, keep)[:, None]

                hooks = [(name, hook)]
            else:
                high_pos = 0 if model.spec.digit_order == "msd" else 1
                separate = model.spec.digit_tokens == "separate"
                W = {pos: model.embed.W_E[pos * p : (pos + 1) * p] if separate else model.embed.W_E[:p] for pos in (0, 1)}
                tables = {high_pos: _project_table(W[high_pos], p, x0, keep), 1 - high_pos: _project_table(W[1 - high_pos], p, x1, keep)}
                digits = {high_pos: torch.as_tensor(n // p), 1 - high_pos: torch.as_tensor(n % p)}

                def hook(act, hook, tables=tables, digits=digits):  # act [p*p, 3, d_model]
                    act = act.clone()
                    for pos in (0, 1):
                        act[:, pos] = tables[pos][digits[pos]]
                    return act

                hooks = [("hook_embed", hook)]
            out[keep] = task_accuracy_and_loss(_run(model, tokens, hooks)[:, t], targets, c)
    finally:
        model.train(was)
    return AblationResult(q, where, x0, x1, full[0], full[1], out[True][0], out[True][1], out[False][0], out[False][1])
