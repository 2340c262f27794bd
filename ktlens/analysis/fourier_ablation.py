"""Fourier ablations of a MIIII model, per task (as Nanda et al. verified the modular-addition circuit).

The components. Task q reads ``r = n mod q = (a x0 + x1) mod q`` (``a = p mod q``, ``x0 = n // p``,
``x1 = n % p``). Its character j is the pair of grid functions ``cos(2 pi j r / q)``, ``sin(2 pi j r / q)``;
on the DFT over Z_p it shows at the frequencies next to ``j p / q`` (`miiii_frequencies`). The
found frequencies name the characters a model uses (``identified_characters``); the ablations keep or
remove those characters' exact components, not a few Z_p frequencies (a period q does not divide p,
so one character leaks over every Z_p frequency; cutting the leakage off breaks even a perfect model):

* ``where="neurons"``: every MLP neuron's activation at '=' is a function on the p x p grid;
  *restricted* projects it onto the constant and the characters' functions, *excluded* removes the
  characters' functions (the mean stays);
* ``where="resid"``: the same on the whole residual stream read out at '=' (``hook_resid_final``):
  the task's logits restricted to the characters, as Nanda et al.'s restricted logits;
* ``where="embed"``: the digit embeddings at the two digit positions are functions of one digit; the
  character's part there is ``cos/sin(2 pi j a x0 / q)`` (high digit) and ``cos/sin(2 pi j x1 / q)``
  (low digit); restricted keeps the constant and those, excluded removes them.

Each ablated model runs on all p^2 inputs (a forward hook) and task q's accuracy and mean cross-entropy
(nats) are reported over all inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

__all__ = ["WHERE", "AblationResult", "character_directions", "final_residual", "ablate_task", "task_accuracy_and_loss"]

WHERE = ("neurons", "resid", "embed")


@dataclass
class AblationResult:
    """Accuracy and mean cross-entropy (nats, all p^2 inputs) of task q: as trained, restricted to the
    characters ``characters`` and with them excluded."""

    q: int
    where: str
    characters: list[int]
    full_accuracy: float
    full_loss: float
    restricted_accuracy: float
    restricted_loss: float
    excluded_accuracy: float
    excluded_loss: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def character_directions(values: np.ndarray, q: int, characters: Sequence[int]) -> np.ndarray:
    """Orthonormal columns spanning the constant and ``cos/sin(2 pi j v / q)`` of each character j over
    the points ``values`` (integers): ``[len(values), 1 + 2 len(characters)]``, the constant first."""
    v = np.asarray(values, dtype=np.float64)
    cols = [np.ones_like(v)]
    for j in characters:
        cols += [np.cos(2 * np.pi * j * v / q), np.sin(2 * np.pi * j * v / q)]
    Q, _ = np.linalg.qr(np.stack(cols, axis=1))
    return Q


def _check_characters(characters: Sequence[int], q: int) -> list[int]:
    out = []
    for j in characters:
        if isinstance(j, bool) or not isinstance(j, (int, np.integer)) or not 1 <= j <= max(1, (q - 1) // 2):
            raise ValueError(f"character {j!r} of task q={q} is outside 1..{max(1, (q - 1) // 2)}")
        out.append(int(j))
    return sorted(set(out))


def _project(x: Float[Tensor, "n d"], D: np.ndarray, keep: bool) -> Float[Tensor, "n d"]:
    """Rows of x (one per point) projected onto the columns of D (keep) or off all but its first."""
    Dt = torch.as_tensor(D if keep else D[:, 1:], dtype=torch.float64)
    along = Dt @ (Dt.T @ x.double())
    return (along if keep else x.double() - along).to(x.dtype)


def task_accuracy_and_loss(logits: Float[Tensor, "n c"], targets: Int[Tensor, " n"], n_classes: int) -> tuple[float, float]:
    """Accuracy and mean cross-entropy (nats) of one task's logits (classes >= n_classes ignored)."""
    lg = logits[:, :n_classes].double()
    return float((lg.argmax(-1) == targets).double().mean()), float(F.cross_entropy(lg, targets))


@torch.no_grad()
def final_residual(model: Any) -> Float[Tensor, "n d_model"]:
    """The residual stream read out at '=' (``hook_resid_final``) for every n < p^2, in order of n."""
    name = "hook_resid_final"
    was = model.training
    model.eval()
    try:
        _, cache = model.run_with_cache(model.tokens_for(np.arange(model.p**2)), names_filter=name)
    finally:
        model.train(was)
    return cache[name]


@torch.no_grad()
def ablate_task(model: Any, q: int, characters: Sequence[int], where: str = "neurons",
                resid: Float[Tensor, "n d_model"] | None = None) -> AblationResult:
    """Task q's accuracy and loss as trained, restricted to ``characters`` and with them excluded.

    ``where="resid"`` reads the residual stream once (``resid``: `final_residual`, reusable across tasks)
    and applies the public unembedding ``model.unembed`` to its projections, which equals patching
    ``hook_resid_final`` (the readout is the last operation of the model)."""
    if where not in WHERE:
        raise ValueError(f"where={where!r} is not one of {WHERE}")
    if getattr(model, "model_type", None) != "miiii" or model.spec.variant != "remainders":
        raise ValueError("ablate_task needs a miiii model of the remainders variant")
    if q not in model.moduli:
        raise ValueError(f"q={q} is not a task of this model (moduli {model.moduli})")
    characters = _check_characters(characters, q)
    p, t = model.p, model.moduli.index(q)
    c = model.n_classes[t]
    n = np.arange(p * p)
    tokens = model.tokens_for(n)
    targets = torch.as_tensor(n % q)
    a = p % q
    if where == "resid":
        resid = final_residual(model) if resid is None else resid
        if resid.shape != (p * p, model.cfg.d_model):
            raise ValueError(f"resid must have shape {(p * p, model.cfg.d_model)}, got {tuple(resid.shape)}")
        D = character_directions(n % q, q, characters)
        full = task_accuracy_and_loss(model.unembed(resid)[:, t], targets, c)
        res = task_accuracy_and_loss(model.unembed(_project(resid, D, True))[:, t], targets, c)
        exc = task_accuracy_and_loss(model.unembed(_project(resid, D, False))[:, t], targets, c)
        return AblationResult(q, where, characters, full[0], full[1], res[0], res[1], exc[0], exc[1])
    was = model.training
    model.eval()
    try:
        full = task_accuracy_and_loss(model(tokens)[:, t], targets, c)
        out = {}
        for keep in (True, False):
            if where in ("neurons", "resid"):
                D = character_directions(n % q, q, characters)
                name = f"blocks.{model.cfg.n_layers - 1}.mlp.hook_post" if where == "neurons" else "hook_resid_final"

                def hook(act, hook, D=D, keep=keep):  # [p*p, 1, d_mlp] at '=' or [p*p, d_model]
                    flat = act.reshape(act.shape[0], -1)
                    return _project(flat, D, keep).reshape(act.shape)

                hooks = [(name, hook)]
            else:
                x = np.arange(p)
                high_pos = 0 if model.spec.digit_order == "msd" else 1
                D = {high_pos: character_directions(a * x % q, q, characters), 1 - high_pos: character_directions(x % q, q, characters)}
                digits = {high_pos: torch.as_tensor(n // p), 1 - high_pos: torch.as_tensor(n % p)}
                separate = model.spec.digit_tokens == "separate"
                tables = {}
                for pos in (0, 1):
                    W = model.embed.W_E[pos * p : (pos + 1) * p] if separate else model.embed.W_E[:p]
                    tables[pos] = _project(W, D[pos], keep)

                def hook(act, hook, tables=tables, digits=digits):  # [p*p, 3, d_model]
                    act = act.clone()
                    for pos in (0, 1):
                        act[:, pos] = tables[pos][digits[pos]]
                    return act

                hooks = [("hook_embed", hook)]
            logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
            out[keep] = task_accuracy_and_loss(logits[:, t], targets, c)
    finally:
        model.train(was)
    return AblationResult(q, where, characters, full[0], full[1], out[True][0], out[True][1], out[False][0], out[False][1])
