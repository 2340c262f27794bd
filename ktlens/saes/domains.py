"""A model's whole input domain as an indexable source of token batches, and its task metrics.

`domain_of(model)` gives, for a K-theory model, every triple (p, r, e) of its trained grid (teacher
forced: the decoder input holds the true counts) and, for an MIIII model, every n < p^2. Example i's
tokens are computed on demand, so a domain of any size costs no memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Int
from torch import Tensor

from ktlens.models.base import HookedModel

Hooks = list[tuple[str, Callable[..., Any]]]


@runtime_checkable
class Domain(Protocol):
    """Examples 0..n_examples-1 of a model's input domain."""

    n_examples: int

    def tokens(self, idx: np.ndarray) -> Int[Tensor, "batch seq"]:
        """Model input tokens of the examples `idx`."""

    def task_metrics(self, model: HookedModel, idx: np.ndarray, fwd_hooks: Hooks) -> dict[str, Tensor]:
        """Per-example task figures on examples `idx` with `fwd_hooks` attached (sums are taken by the caller)."""


class KTheoryDomain:
    """Every (p, r, e) of a K-theory grid; by default the model's own trained grid."""

    def __init__(self, model: HookedModel, primes: list[int] | None = None, r_max: int | None = None, e_max: int | None = None):
        model.require_plain_layout("the K-theory activation domain")
        self.model = model
        self.primes = np.asarray(primes if primes is not None else model.primes, dtype=np.int64)
        self.r_max = int(r_max if r_max is not None else model.r_max)
        self.e_max = int(e_max if e_max is not None else model.e_max)
        self.n_examples = len(self.primes) * self.r_max * self.e_max

    def triples(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        i_p, i_r, i_e = np.unravel_index(np.asarray(idx, dtype=np.int64), (len(self.primes), self.r_max, self.e_max))
        return self.primes[i_p], i_r + 1, i_e + 1

    def tokens(self, idx: np.ndarray) -> Int[Tensor, "batch seq"]:
        from ktlens.tasks.ktheory import summand_count_table

        p, r, e = self.triples(idx)
        counts = summand_count_table(p, r, e, length=self.model.seq_len)
        return self.model.pack(p, r, e, counts)

    def task_metrics(self, model: HookedModel, idx: np.ndarray, fwd_hooks: Hooks) -> dict[str, Tensor]:
        """Teacher-forced loss and exact match, and autoregressive exact match with the hooks at every step."""
        tokens = self.tokens(idx)
        p, r, e = self.triples(idx)
        from ktlens.tasks.ktheory import summand_count_table

        targets = torch.as_tensor(
            np.ascontiguousarray(model.to_model_order(summand_count_table(p, r, e, length=model.seq_len))), device=tokens.device
        )
        with model.hooks(fwd_hooks=fwd_hooks):
            logits = model(tokens)
            generated = model.to_model_order(model.generate(tokens[:, :3]))
        loss = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none").mean(1)
        return {
            "loss": loss,
            "tf_exact": (logits.argmax(-1) == targets).all(1).float(),
            "ar_exact": (generated == targets).all(1).float(),
        }


class MiiiiDomain:
    """Every n < p^2 of an MIIII model."""

    def __init__(self, model: HookedModel):
        self.model = model
        self.n_examples = model.p**2

    def tokens(self, idx: np.ndarray) -> Int[Tensor, "batch seq"]:
        return self.model.tokens_for(np.asarray(idx, dtype=np.int64))

    def task_metrics(self, model: HookedModel, idx: np.ndarray, fwd_hooks: Hooks) -> dict[str, Tensor]:
        """Mean over tasks of CE / ln(classes), and each task's correctness (column t is task moduli[t])."""
        from ktlens.tasks.remainders import targets_for

        n = np.asarray(idx, dtype=np.int64)
        targets = torch.as_tensor(targets_for(model.spec, n), device=model.device)
        with model.hooks(fwd_hooks=fwd_hooks):
            logits = model(self.tokens(n))
        logq = torch.log(torch.tensor(model.n_classes, dtype=logits.dtype, device=logits.device))
        per_task_ce = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # [batch, tasks]
        out = {"loss": (per_task_ce / logq).mean(1)}
        correct = (logits.argmax(-1) == targets).float()
        for t, q in enumerate(model.moduli):
            out[f"acc_q{q}"] = correct[:, t]
        return out


class DomainSample:
    """Examples ``idx`` of another domain, renumbered 0 .. len(idx) - 1 (a seeded sample for quick metrics)."""

    def __init__(self, domain: Domain, idx: np.ndarray):
        self.domain = domain
        self.idx = np.asarray(idx, dtype=np.int64)
        if self.idx.ndim != 1 or len(self.idx) == 0 or self.idx.min() < 0 or self.idx.max() >= domain.n_examples:
            raise ValueError(f"sample indices must be a non-empty 1-D array within 0..{domain.n_examples - 1}")
        self.n_examples = len(self.idx)

    def tokens(self, idx: np.ndarray) -> Int[Tensor, "batch seq"]:
        return self.domain.tokens(self.idx[np.asarray(idx, dtype=np.int64)])

    def task_metrics(self, model: HookedModel, idx: np.ndarray, fwd_hooks: Hooks) -> dict[str, Tensor]:
        return self.domain.task_metrics(model, self.idx[np.asarray(idx, dtype=np.int64)], fwd_hooks)


def sample_domain(domain: Domain, n: int | None, seed: int = 0) -> Domain:
    """``n`` examples of ``domain`` drawn without replacement with ``seed`` (in domain order); the
    domain itself when ``n`` is None or not smaller than it."""
    if n is None or n >= domain.n_examples:
        return domain
    if n < 1:
        raise ValueError(f"a domain sample needs n >= 1, got {n}")
    return DomainSample(domain, np.sort(np.random.default_rng(seed).choice(domain.n_examples, n, replace=False)))


def domain_of(model: HookedModel) -> Domain:
    """The whole trained domain of a ktlens model."""
    if model.model_type == "ktheory":
        return KTheoryDomain(model)
    if model.model_type == "miiii":
        return MiiiiDomain(model)
    raise ValueError(f"no SAE domain for model type {model.model_type!r}")
