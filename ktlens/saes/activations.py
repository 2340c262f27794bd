"""A bounded-memory activation store: one row per (example, position) of a hook over a whole domain.

The store walks the domain in a seeded pseudo-random order (an affine permutation i -> (a i + b) mod n,
so the order costs no memory however large the domain), `buffer_examples` examples at a time. Each
block of examples is run through the model with `run_with_cache(names_filter=hook)` (or read from the
on-disk cache), flattened to rows, and shuffled; SAE batches are consecutive slices of the shuffled
block. So memory is one block of rows whatever the dataset size, and the batch of any training step is
a pure function of (seed, step): a resumed run sees exactly the rows an uninterrupted one would.

Positions are kept: every row carries its example index and its position on the hook's position axis.
Hooks of shape [batch, pos, d] give `pos` rows per example, [batch, d] one row (position 0), and
[batch, pos, heads, d_head] `pos` rows of width heads * d_head.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from ktlens import distributed
from ktlens.models.base import HookedModel
from ktlens.saes.domains import Domain


class _ReachedHook(Exception):
    """Raised inside the forward pass once the hooked activation is captured."""


class ActivationRows(NamedTuple):
    acts: Float[Tensor, "rows d_in"]  # the hook's activations
    example: Int[Tensor, " rows"]  # index of the example in the domain
    position: Int[Tensor, " rows"]  # position on the hook's position axis


@dataclass
class StoreConfig:
    batch_rows: int = 4096  # rows per SAE batch
    buffer_examples: int = 2048  # examples whose rows the shuffle buffer holds at once (memory bound)
    model_batch: int = 1024  # examples per forward pass of the parent model
    seed: int = 0  # order of examples and rows
    cache_dir: str | None = None  # keep the domain's activations here (float32 memmap) for repeated runs

    def __post_init__(self) -> None:
        for name in ("batch_rows", "buffer_examples", "model_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def check_hook(model: HookedModel, hook_name: str) -> None:
    """ValueError naming the hook when the model has no hook of that name."""
    if hook_name not in model.hook_dict:
        import difflib

        near = difflib.get_close_matches(hook_name, list(model.hook_dict), n=5) or list(model.hook_dict)[:8]
        raise ValueError(f"hook {hook_name!r} does not exist in this {model.model_type} model; close: {near}")


def hook_rows(acts: Tensor, hook_name: str) -> Float[Tensor, "batch pos d_in"]:
    """A hook's activation as [batch, pos, d_in]."""
    if acts.ndim == 2:
        return acts[:, None, :]
    if acts.ndim == 3:
        return acts
    if acts.ndim == 4:
        return acts.flatten(2)
    raise ValueError(f"hook {hook_name!r} has shape {tuple(acts.shape)}; an SAE needs [batch, d], [batch, pos, d] or [batch, pos, heads, d_head]")


class ActivationStore:
    """Rows of `hook_name` over `domain`, served in shuffled batches from a bounded buffer."""

    def __init__(self, model: HookedModel, hook_name: str, domain: Domain, cfg: StoreConfig | None = None):
        check_hook(model, hook_name)
        self.model, self.hook_name, self.domain = model, hook_name, domain
        self.cfg = cfg or StoreConfig()
        self.n_examples = int(domain.n_examples)
        if self.n_examples < 1:
            raise ValueError("the domain has no examples")
        probe = self._run(np.array([0]))
        self.positions, self.d_in = probe.shape[1], probe.shape[2]
        self.block_examples = min(self.cfg.buffer_examples, self.n_examples)
        if self.block_examples * self.positions < self.cfg.batch_rows:
            raise ValueError(
                f"batch_rows={self.cfg.batch_rows} exceeds the rows of one buffer "
                f"({self.block_examples} examples x {self.positions} positions); raise buffer_examples"
            )
        self.blocks_per_epoch = math.ceil(self.n_examples / self.block_examples)
        self._block_key: tuple[int, int] | None = None
        self._block: ActivationRows | None = None
        self.peak_buffer_bytes = 0  # largest number of bytes of rows held at once
        self._cache: np.ndarray | None = self._open_cache() if self.cfg.cache_dir else None

    @property
    def n_rows(self) -> int:
        """Rows in the whole domain."""
        return self.n_examples * self.positions

    # ----- running the model -------------------------------------------------------------------------
    @torch.no_grad()
    def _run(self, idx: np.ndarray) -> Float[Tensor, "batch pos d_in"]:
        """The hook's activation on examples `idx`; the forward pass stops at the hook (nothing after it runs)."""
        captured: list[Tensor] = []

        def save_and_stop(module: torch.nn.Module, inputs: object, output: Tensor) -> None:
            captured.append(output.detach())
            raise _ReachedHook

        was_training = self.model.training
        self.model.eval()
        handle = self.model.hook_dict[self.hook_name].register_forward_hook(save_and_stop)
        try:
            self.model(self.domain.tokens(idx))
        except _ReachedHook:
            pass
        finally:
            handle.remove()
            self.model.train(was_training)
        if not captured:
            raise ValueError(f"hook {self.hook_name!r} was not reached in a forward pass")
        return hook_rows(captured[0], self.hook_name).float().cpu()

    def rows_of(self, idx: np.ndarray) -> ActivationRows:
        """All rows of the examples `idx` (example-major), from the cache or by running the model."""
        idx = np.asarray(idx, dtype=np.int64)
        if self._cache is not None:
            order = np.argsort(idx, kind="stable")
            acts = np.empty((len(idx), self.positions, self.d_in), dtype=np.float32)
            acts[order] = self._cache[idx[order]]
            acts_t = torch.from_numpy(acts)
        else:
            parts = [self._run(idx[i : i + self.cfg.model_batch]) for i in range(0, len(idx), self.cfg.model_batch)]
            acts_t = torch.cat(parts) if len(parts) > 1 else parts[0]
        example = torch.as_tensor(idx).repeat_interleave(self.positions)
        position = torch.arange(self.positions).repeat(len(idx))
        return ActivationRows(acts_t.reshape(-1, self.d_in), example, position)

    def iter_domain(self, chunk_examples: int | None = None) -> Iterator[ActivationRows]:
        """The whole domain in example order, `chunk_examples` examples at a time."""
        chunk = chunk_examples or self.cfg.model_batch
        for start in range(0, self.n_examples, chunk):
            yield self.rows_of(np.arange(start, min(start + chunk, self.n_examples)))

    # ----- order ---------------------------------------------------------------------------------------
    def _affine(self, epoch: int) -> tuple[int, int]:
        n = self.n_examples
        rng = np.random.default_rng([self.cfg.seed, epoch])
        while True:
            a = int(rng.integers(1, max(2, n))) if n > 1 else 1
            if math.gcd(a, n) == 1:
                return a, int(rng.integers(0, n))

    def block_examples_of(self, epoch: int, block: int) -> np.ndarray:
        """Example indices in block `block` of epoch `epoch`."""
        a, b = self._affine(epoch)
        i = np.arange(block * self.block_examples, min((block + 1) * self.block_examples, self.n_examples), dtype=np.int64)
        return (a * i + b) % self.n_examples  # a < n and i < n, so a * i < 2^63 for n < 3e9

    def _batches_in(self, block: int) -> int:
        n = min(self.block_examples, self.n_examples - block * self.block_examples)
        return max(1, n * self.positions // self.cfg.batch_rows)

    @property
    def batches_per_epoch(self) -> int:
        return (self.blocks_per_epoch - 1) * self._batches_in(0) + self._batches_in(self.blocks_per_epoch - 1)

    def _locate(self, step: int) -> tuple[int, int, int]:
        epoch, rest = divmod(step, self.batches_per_epoch)
        full = self._batches_in(0)
        block, j = divmod(rest, full)
        if block >= self.blocks_per_epoch:  # inside the (shorter) last block
            block, j = self.blocks_per_epoch - 1, rest - (self.blocks_per_epoch - 1) * full
        return epoch, block, j

    def batch_at(self, step: int) -> ActivationRows:
        """The SAE batch of training step `step` (0-based)."""
        epoch, block, j = self._locate(step)
        if self._block_key != (epoch, block):
            self._block = None  # release the old block before filling the new one
            rows = self.rows_of(self.block_examples_of(epoch, block))
            gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + epoch * 10_007 + block)
            order = torch.randperm(len(rows.acts), generator=gen)
            held = sum(t.numel() * t.element_size() for t in rows)
            self._block = ActivationRows(*(t[order] for t in rows))
            self.peak_buffer_bytes = max(self.peak_buffer_bytes, 2 * held)  # the block and its shuffled copy
            self._block_key = (epoch, block)
        bs = self.cfg.batch_rows
        n_rows = len(self._block.acts)
        sl = slice(j * bs, min((j + 1) * bs, n_rows))
        return ActivationRows(*(t[sl] for t in self._block))

    def sample(self, n_rows: int, seed: int) -> ActivationRows:
        """About `n_rows` rows of distinct random examples (for initialisation and evaluation)."""
        n_ex = min(self.n_examples, max(1, math.ceil(n_rows / self.positions)))
        rng = np.random.default_rng([self.cfg.seed, seed, 7])
        idx = np.sort(rng.choice(self.n_examples, size=n_ex, replace=False)) if self.n_examples <= 10**7 else rng.integers(0, self.n_examples, n_ex)
        return self.rows_of(idx)

    # ----- on-disk cache -------------------------------------------------------------------------------
    def _open_cache(self) -> np.ndarray:
        """The domain's activations as a read-only memmap, written first if missing or stale. Under data
        parallelism rank 0 writes it while the other ranks wait, then every rank opens it."""
        ctx = distributed.current()
        if ctx.is_main:
            cache = self._write_cache()
        distributed.barrier(ctx)
        return cache if ctx.is_main else self._write_cache(read_only=True)

    def _write_cache(self, read_only: bool = False) -> np.ndarray:
        folder = Path(self.cfg.cache_dir)
        folder.mkdir(parents=True, exist_ok=True)
        fingerprint = float(sum(p.detach().cpu().double().sum().item() for p in self.model.parameters()))
        meta = {
            "hook_name": self.hook_name,
            "n_examples": self.n_examples,
            "positions": self.positions,
            "d_in": self.d_in,
            "model_fingerprint": fingerprint,
        }
        meta_file, data_file = folder / "activations.json", folder / "activations.f32"
        shape = (self.n_examples, self.positions, self.d_in)
        if meta_file.is_file() and data_file.is_file():
            try:
                ok = json.loads(meta_file.read_text()) == meta
            except json.JSONDecodeError:
                ok = False
            if ok and data_file.stat().st_size == 4 * math.prod(shape):
                return np.memmap(data_file, dtype=np.float32, mode="r", shape=shape)
        if read_only:
            raise ValueError(f"the activation cache in {folder} does not match this model and hook after rank 0 wrote it")
        meta_file.unlink(missing_ok=True)
        out = np.memmap(data_file, dtype=np.float32, mode="w+", shape=shape)
        chunk = self.cfg.model_batch
        for start in tqdm(range(0, self.n_examples, chunk), desc="activation cache", leave=False):
            stop = min(start + chunk, self.n_examples)
            out[start:stop] = self._run(np.arange(start, stop)).numpy()
        out.flush()
        del out
        meta_file.write_text(json.dumps(meta) + "\n")
        return np.memmap(data_file, dtype=np.float32, mode="r", shape=shape)


class TensorRows:
    """Rows already in memory, served like an `ActivationStore` (a seeded shuffle per epoch).

    For synthetic data and for benchmarks that feed two trainers the same activations.
    """

    def __init__(self, acts: Float[Tensor, "rows d_in"], batch_rows: int, seed: int = 0):
        if acts.ndim != 2 or len(acts) < batch_rows:
            raise ValueError(f"acts must be [rows, d_in] with at least batch_rows={batch_rows} rows, got {tuple(acts.shape)}")
        self.acts, self.seed = acts, seed
        self.cfg = StoreConfig(batch_rows=batch_rows, seed=seed)
        self.n_rows, self.d_in, self.positions = len(acts), acts.shape[1], 1
        self.n_examples = self.n_rows
        self.batches_per_epoch = self.n_rows // batch_rows
        self._perm_epoch, self._perm = -1, torch.arange(0)

    def _rows(self, idx: Tensor) -> ActivationRows:
        return ActivationRows(self.acts[idx], idx, torch.zeros_like(idx))

    def batch_at(self, step: int) -> ActivationRows:
        epoch, j = divmod(step, self.batches_per_epoch)
        if epoch != self._perm_epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(self.n_rows, generator=gen), epoch
        bs = self.cfg.batch_rows
        return self._rows(self._perm[j * bs : (j + 1) * bs])

    def sample(self, n_rows: int, seed: int) -> ActivationRows:
        gen = torch.Generator().manual_seed(self.seed * 7_919 + seed)
        return self._rows(torch.randperm(self.n_rows, generator=gen)[: min(n_rows, self.n_rows)])
