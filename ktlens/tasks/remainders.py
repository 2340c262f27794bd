"""MIIII: remainders of n modulo every prime below p, read from the base-p digits of n.

For a prime ``p`` every ``n < p**2`` is written as two base-``p`` digits ``x0 = n // p`` and
``x1 = n % p``; the input is ``[x0, x1, '=']`` (most significant digit first, the default; with
``digit_order="lsd"`` it is ``[x1, x0, '=']``). With ``digit_tokens="shared"`` (the default) the token
ids of both digits are the digits themselves and ``'='`` has id ``p``; with ``"separate"`` the second
input digit d has id ``p + d`` and ``'='`` has id ``2p``, so each digit position has its own embedding
table (features of x0 and x1 need not share one row per value). The targets are ``n mod q`` for every prime ``q < p``, one
classification task per ``q`` (``p = 113`` gives 29 tasks).

Variants (``RemaindersSpec.variant``):

* ``"remainders"``   targets ``n mod q`` (``q`` classes per task);
* ``"divisibility"`` targets ``1 if q divides n else 0`` (2 classes per task);
* ``"addition"``     the classic single-task grokking problem: input ``[a, b, '=']``, target
  ``(a + b) mod p`` (one task, "modulus" ``p``); ``n = a * p + b`` indexes the pair.

``shuffle_labels=True`` permutes the target rows over all ``n`` with a seeded permutation, keeping the
label distribution but destroying the structure (the baseline that cannot generalize).
``masked=(2, 3, 5, 7)`` gives those tasks zero weight in the loss; they are still evaluated, but the
summary metrics (``test_acc_mean``, ``test_acc_min``, ``train_acc_min``) cover unmasked tasks only.

Loss: mean over unmasked tasks of ``CE_q / ln(c_q)`` with ``c_q`` the number of classes of task ``q``
(``q`` itself for remainders), so that every task starts near 1 for a uniform guess.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, no_type_check

import numpy as np
import torch
from torch import Tensor

from ktlens.validation import FieldError, check_bool, check_choice, check_int, check_keys, check_real

__all__ = [
    "VARIANTS",
    "DIGIT_ORDERS",
    "RemaindersSpec",
    "RemaindersData",
    "primes_below",
    "encode",
    "targets_for",
    "masked_logits",
    "task_losses",
    "fourier_frequencies",
    "VARIABLES",
]

VARIANTS = ("remainders", "divisibility", "addition")
DIGIT_ORDERS = ("msd", "lsd")
DIGIT_TOKENS = ("shared", "separate")
NEG_INF = -1e9  # logit of a class a task does not have (finite, so sums and means stay finite)


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    f = 3
    while f * f <= n:
        if n % f == 0:
            return False
        f += 2
    return True


def primes_below(p: int) -> list[int]:
    """Primes ``q < p`` in increasing order."""
    return [q for q in range(2, p) if _is_prime(q)]


@no_type_check  # a validating entry point: __post_init__ raises ValueError naming a mistyped field
@dataclass
class RemaindersSpec:
    """Everything that defines a MIIII dataset; ``to_dict``/``from_dict`` round-trip through JSON."""

    p: int = 37  # the base; must be a prime >= 3
    variant: str = "remainders"  # "remainders", "divisibility" or "addition"
    digit_order: str = "msd"  # "msd": [n // p, n % p, '=']; "lsd": [n % p, n // p, '=']
    digit_tokens: str = "shared"  # "shared": one embedding row per digit value; "separate": one per position
    train_frac: float = 0.5  # fraction of the p**2 inputs in the training split
    split_seed: int = 0  # seed of the train/test split (and of the label shuffle)
    shuffle_labels: bool = False  # permute the targets over n (cannot generalize)
    masked: tuple[int, ...] = field(default_factory=tuple)  # moduli with zero loss weight

    def __post_init__(self) -> None:
        self.p = check_int("p", self.p)
        if self.p < 3:
            raise FieldError("p", self.p, "must be a prime >= 3")
        if not _is_prime(self.p):
            raise FieldError("p", self.p, "must be prime")
        check_choice("variant", self.variant, VARIANTS)
        check_choice("digit_order", self.digit_order, DIGIT_ORDERS)
        check_choice("digit_tokens", self.digit_tokens, DIGIT_TOKENS)
        frac = self.train_frac
        self.train_frac = check_real("train_frac", frac, 0.0, 1.0, low_open=True, high_open=True)
        n_train = round(self.train_frac * self.p**2)
        if not 1 <= n_train < self.p**2:
            raise FieldError("train_frac", frac, f"leaves an empty train or test split for p={self.p}")
        self.split_seed = check_int("split_seed", self.split_seed, minimum=0)
        check_bool("shuffle_labels", self.shuffle_labels)
        if not isinstance(self.masked, (list, tuple)):
            raise FieldError("masked", self.masked, "must be a list of moduli")
        self.masked = tuple(sorted(check_int("masked", q) for q in self.masked))
        unknown = [q for q in self.masked if q not in self.moduli]
        if unknown:
            raise FieldError("masked", list(self.masked), f"{unknown} are not tasks of this spec (moduli {self.moduli})")
        if len(self.masked) == len(self.moduli):
            raise FieldError("masked", list(self.masked), "masks every task")

    # ----- derived ---------------------------------------------------------------------------------
    @property
    def moduli(self) -> list[int]:
        """The modulus of each task: primes below p, or [p] for addition."""
        return [self.p] if self.variant == "addition" else primes_below(self.p)

    @property
    def n_classes(self) -> list[int]:
        """Number of classes of each task."""
        return [2] * len(self.moduli) if self.variant == "divisibility" else list(self.moduli)

    @property
    def n_tasks(self) -> int:
        return len(self.moduli)

    @property
    def n_inputs(self) -> int:
        return self.p**2

    @property
    def eq_token(self) -> int:
        return self.p if self.digit_tokens == "shared" else 2 * self.p

    @property
    def d_vocab(self) -> int:
        """Number of input token ids: the digit ids and '='."""
        return self.eq_token + 1

    @property
    def task_weights(self) -> list[float]:
        return [0.0 if q in self.masked else 1.0 for q in self.moduli]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["masked"] = list(self.masked)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RemaindersSpec":
        """Inverse of `to_dict`: every field required (each changes the task or its split), none unknown;
        a FieldError (a ValueError) names the offending field."""
        known = [f.name for f in dataclasses.fields(cls)]
        return cls(**check_keys(data, known, known, what="RemaindersSpec fields"))


def encode(spec: RemaindersSpec, n: np.ndarray) -> np.ndarray:
    """Token ids [N, 3] of the inputs n (0 <= n < p**2), '=' last."""
    n = np.asarray(n, dtype=np.int64)
    hi, lo = n // spec.p, n % spec.p
    first, second = (hi, lo) if spec.digit_order == "msd" else (lo, hi)
    if spec.digit_tokens == "separate":
        second = second + spec.p
    return np.stack([first, second, np.full_like(n, spec.eq_token)], axis=1)


def targets_for(spec: RemaindersSpec, n: np.ndarray) -> np.ndarray:
    """True targets [N, n_tasks] (before any label shuffle)."""
    n = np.asarray(n, dtype=np.int64)
    if spec.variant == "addition":
        return ((n // spec.p + n % spec.p) % spec.p)[:, None]
    q = np.asarray(spec.moduli, dtype=np.int64)[None, :]
    rem = n[:, None] % q
    return (rem == 0).astype(np.int64) if spec.variant == "divisibility" else rem


def masked_logits(logits: Tensor, n_classes: list[int] | Tensor) -> Tensor:
    """Set the logits of classes >= c_t of task t to a large negative number. logits: [..., T, C]."""
    c = torch.as_tensor(n_classes, device=logits.device)
    valid = torch.arange(logits.shape[-1], device=logits.device) < c[:, None]  # [T, C]
    return logits.masked_fill(~valid, NEG_INF)


def task_losses(logits: Tensor, targets: Tensor, n_classes: list[int]) -> Tensor:
    """Per-task mean cross-entropy divided by ln(classes). logits [B, T, C], targets [B, T] -> [T]."""
    log_probs = masked_logits(logits, n_classes).log_softmax(-1)  # over the contiguous class axis: fast on CPU
    ce = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # [B, T]
    return ce.mean(0) / torch.log(torch.as_tensor(n_classes, dtype=ce.dtype, device=ce.device))


class RemaindersData:
    """Full-batch tensors of a MIIII dataset; implements ktlens.train.TrainData.

    Attributes: ``tokens`` [p**2, 3] and ``targets`` [p**2, n_tasks] for every n (index = n),
    ``train_idx`` / ``test_idx`` (the n of each split), ``weights`` [n_tasks] (0 for masked tasks).
    """

    def __init__(self, spec: RemaindersSpec, device: str = "cpu"):
        self.spec = spec
        n = np.arange(spec.n_inputs)
        targets = targets_for(spec, n)
        if spec.shuffle_labels:
            perm = np.random.default_rng(spec.split_seed + 1).permutation(spec.n_inputs)
            targets = targets[perm]
        perm = np.random.default_rng(spec.split_seed).permutation(spec.n_inputs)
        n_train = round(spec.train_frac * spec.n_inputs)
        self.tokens = torch.as_tensor(encode(spec, n), device=device)
        self.targets = torch.as_tensor(targets, device=device)
        self.train_idx = torch.as_tensor(np.sort(perm[:n_train]), device=device)
        self.test_idx = torch.as_tensor(np.sort(perm[n_train:]), device=device)
        self.weights = torch.as_tensor(spec.task_weights, dtype=torch.float32, device=device)
        self.n_classes = spec.n_classes
        self.moduli = spec.moduli
        self.n_train = n_train

    def batch(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        rows = self.train_idx[idx]
        return self.tokens[rows], self.targets[rows]

    def weighted_loss(self, per_task: Tensor) -> Tensor:
        return (per_task * self.weights).sum() / self.weights.sum()

    def loss(self, model, batch: tuple[Tensor, Tensor]) -> Tensor:
        tokens, targets = batch
        return self.weighted_loss(task_losses(model(tokens), targets, self.n_classes))

    @torch.no_grad()
    def evaluate(self, model) -> dict[str, float]:
        """Per-task accuracy on both splits (``train_acc_q{q}``, ``test_acc_q{q}``), their mean and min over
        unmasked tasks (``{split}_acc_mean``, ``{split}_acc_min``), ``all_acc_min`` (min of both splits),
        ``train_eval_loss`` and ``test_loss`` (the training loss without dropout on each split)."""
        logits = masked_logits(model(self.tokens), self.n_classes)
        correct = (logits.argmax(-1) == self.targets).float()  # [N, T]
        out: dict[str, float] = {}
        keep = self.weights > 0
        for split, idx in (("train", self.train_idx), ("test", self.test_idx)):
            acc = correct[idx].mean(0)
            for q, a in zip(self.moduli, acc.tolist()):
                out[f"{split}_acc_q{q}"] = a
            out[f"{split}_acc_mean"] = acc[keep].mean().item()
            out[f"{split}_acc_min"] = acc[keep].min().item()
            out[f"{split}_eval_loss"] = self.weighted_loss(task_losses(logits[idx], self.targets[idx], self.n_classes)).item()
        out["all_acc_min"] = min(out["train_acc_min"], out["test_acc_min"])
        out["test_loss"] = out.pop("test_eval_loss")
        return out


# ----------------------------------------------------------------------------------------------------
# task variables (named ground truth for probes, feature labels, causal abstraction)
# ----------------------------------------------------------------------------------------------------


def _checked_n(n: Any, spec: Any) -> np.ndarray:
    """``n`` as a 1-D int64 array in ``0..p**2-1``; ValueError naming the first value outside."""
    if not isinstance(spec, RemaindersSpec):
        raise ValueError(f"spec must be a RemaindersSpec, got {spec!r}")
    arr = np.asarray(n)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"n must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64).reshape(-1) if arr.ndim == 0 else arr.astype(np.int64)
    if arr.ndim != 1:
        raise ValueError(f"n must be 1-D, got shape {arr.shape}")
    bad = (arr < 0) | (arr >= spec.n_inputs)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"n[{i}] = {int(arr[i])} is outside 0..{spec.n_inputs - 1} (p = {spec.p})")
    return arr


def _digits(n, spec: RemaindersSpec) -> tuple[np.ndarray, np.ndarray]:
    """(digit_0, digit_1): the two digit values in input order (not token ids)."""
    n = _checked_n(n, spec)
    hi, lo = n // spec.p, n % spec.p
    return (hi, lo) if spec.digit_order == "msd" else (lo, hi)


def fourier_frequencies(spec: RemaindersSpec) -> list[int]:
    """Frequencies ``k = 1 .. (p - 1) // 2``: the columns of the Fourier variables."""
    return list(range(1, (spec.p - 1) // 2 + 1))


def _fourier(which: str, source: str):
    def compute(n, spec: RemaindersSpec, **_) -> np.ndarray:
        x = _checked_n(n, spec) if source == "n" else _digits(n, spec)[int(source[-1])]
        k = np.asarray(fourier_frequencies(spec), dtype=np.int64)
        angle = 2 * np.pi * k[None, :] * x[:, None] / spec.p
        return np.cos(angle) if which == "cos" else np.sin(angle)

    return compute


def _remainder_variables():
    from ktlens.tasks.variables import TaskVariable as V
    from ktlens.tasks.variables import make_registry

    out = [
        V("n", "class", "the input number n", "n in 0..p^2-1", lambda n, spec, **_: _checked_n(n, spec)),
        V("high_digit", "class", "the high base-p digit of n", "n // p", lambda n, spec, **_: _checked_n(n, spec) // spec.p),
        V("low_digit", "class", "the low base-p digit of n", "n % p", lambda n, spec, **_: _checked_n(n, spec) % spec.p),
        V("digit_0", "class", "the first input digit (n // p for digit_order msd, n % p for lsd)",
          "digit value of input position 0 (not its token id)", lambda n, spec, **_: _digits(n, spec)[0]),
        V("digit_1", "class", "the second input digit (n % p for digit_order msd, n // p for lsd)",
          "digit value of input position 1 (not its token id)", lambda n, spec, **_: _digits(n, spec)[1]),
        V("n_mod_q", "class", "n mod q for every prime q < p",
          "[N, T]: column j is n % q_j, q_j = primes_below(p)[j] (the tasks of the remainders variant)",
          lambda n, spec, **_: _checked_n(n, spec)[:, None] % np.asarray(primes_below(spec.p), dtype=np.int64)[None, :],
          per_position=True),
        V("label", "class", "the trained target of every task of the spec's variant (before any label shuffle)",
          "[N, n_tasks]: targets_for(spec, n); column j belongs to task spec.moduli[j]",
          lambda n, spec, **_: targets_for(spec, _checked_n(n, spec)), per_position=True),
    ]
    for source in ("n", "digit_0", "digit_1"):
        arg = "n" if source == "n" else source
        for which in ("cos", "sin"):
            out.append(V(
                f"{which}_{source}", "scalar", f"Fourier components {which}(2 pi k {arg} / p)",
                f"[N, K]: column k-1 is {which}(2 pi k {arg} / p) for k = 1..(p-1)//2 (fourier_frequencies)",
                _fourier(which, source), per_position=True,
            ))
    return make_registry(out)


#: Named ground-truth variables of an input ``n`` (inputs ``n`` and ``spec``, a `RemaindersSpec`).
VARIABLES = _remainder_variables()
