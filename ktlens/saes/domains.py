"""A model's whole input domain as an indexable source of token batches, and its task metrics.

`domain_of(model)` gives, for a K-theory model, every triple (p, r, e) of its trained domain (the grid, or
its part with r*e <= re_max; teacher forced: the decoder input holds the true scratch values and counts)
and, for an MIIII model, every n < p^2. Example i's tokens are computed on demand (a K-theory domain keeps
only its triples).
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
from ktlens.tasks.ktheory_spec import in_domain

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
    """Every (p, r, e) of a K-theory model's trained domain, in the order of `model.domain_triples()` (p outer,
    then r, then e; r*e <= re_max when the model's domain is bounded). A given ``primes`` / ``r_max`` /
    ``e_max`` narrows it to that grid, still bounded by the model's re_max (ValueError outside the domain)."""

    def __init__(self, model: HookedModel, primes: list[int] | None = None, r_max: int | None = None, e_max: int | None = None):
        from ktlens.tasks.ktheory_data import domain_triples

        self.model = model
        self.primes = np.asarray(primes if primes is not None else model.primes, dtype=np.int64)
        self.r_max = int(r_max if r_max is not None else model.r_max)
        self.e_max = int(e_max if e_max is not None else model.e_max)
        if primes is None and r_max is None and e_max is None:
            p, r, e = model.domain_triples()
        else:
            p, r, e = domain_triples(self.primes.tolist(), self.r_max, self.e_max, int(model.spec.re_max))
            if len(p) == 0:
                raise ValueError(f"the grid primes={self.primes.tolist()}, r_max={self.r_max}, e_max={self.e_max} is empty")
            model.check_domain(p, r, e)
        self._p, self._r, self._e = (np.ascontiguousarray(a, dtype=np.int64) for a in (p, r, e))
        self.n_examples = len(self._p)

    def triples(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """p, r, e of the examples `idx`."""
        idx = np.asarray(idx, dtype=np.int64)
        return self._p[idx], self._r[idx], self._e[idx]

    def index_of(self, p: Any, r: Any, e: Any) -> np.ndarray:
        """The example index of each triple (p, r, e); ValueError naming the first triple outside the domain."""
        p, r, e = (np.atleast_1d(np.asarray(a, dtype=np.int64)) for a in (p, r, e))
        keys = self._key(self._p, self._r, self._e)
        want = self._key(p, r, e)
        idx = np.searchsorted(keys, want).clip(0, max(self.n_examples - 1, 0))
        bad = np.flatnonzero(keys[idx] != want)
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"(p, r, e) = ({p[i]}, {r[i]}, {e[i]}) (index {i}) is not in this domain")
        return idx

    def _key(self, p: np.ndarray, r: np.ndarray, e: np.ndarray) -> np.ndarray:
        """An integer increasing in domain order (p outer, then r, then e); -1 for a value off the grid."""
        p_at = np.searchsorted(self.primes, p).clip(0, len(self.primes) - 1)
        ok = in_domain(p, r, e, self.primes, self.r_max, self.e_max, self.model.spec.re_max)
        return np.where(ok, (p_at * (self.r_max + 1) + r) * (self.e_max + 1) + e, -1)

    def tokens(self, idx: np.ndarray) -> Int[Tensor, "batch seq"]:
        """Teacher-forced tokens: the true scratch values (if any) and counts as the decoder input."""
        return self.model.make_batch(*self.triples(idx))

    def task_metrics(self, model: HookedModel, idx: np.ndarray, fwd_hooks: Hooks) -> dict[str, Tensor]:
        """Teacher-forced loss and exact match over every decoder position (scored against `model.targets`:
        scratch values, then counts), and autoregressive exact match of the L counts with the hooks at every step."""
        p, r, e = self.triples(idx)
        tokens = model.make_batch(p, r, e)
        targets = model.targets(p, r, e).to(tokens.device)
        counts = model.to_model_order(targets[:, model.n_scratch :])  # natural order n_1..n_L
        with model.hooks(fwd_hooks=fwd_hooks):
            logits = model(tokens)
            generated = model.generate(tokens[:, :3])
        loss = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none").mean(1)
        return {
            "loss": loss,
            "tf_exact": (logits.argmax(-1) == targets).all(1).float(),
            "ar_exact": (generated == counts).all(1).float(),
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
