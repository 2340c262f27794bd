"""Data parallelism for the one training loop, over `torch.distributed` (launched by `torchrun`).

Every rank holds the whole model. Each step, every rank draws the same global batch of indices (a pure
function of (seed, step)), takes its contiguous slice of it, computes its mean loss and gradients, and
one all-reduce sums the gradients weighted by each slice's share of the global batch. The result is the
gradient of the mean loss over the whole global batch, on every rank, so whatever follows (the grokfast
filter, clipping, AdamW) runs identically everywhere and matches one process with the same batch.

This works for any `TrainData` whose loss is a mean over the examples of a batch, without wrapping the
model: the loss is free to call any method of the model, not only `forward`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from jaxtyping import Int
from torch import Tensor

#: environment variables `torchrun` sets for every worker
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
DEVICES = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a data-parallel group (rank 0 of 1 when there is none)."""

    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.world_size, int) and self.world_size >= 1):
            raise ValueError(f"world_size must be an int >= 1, got {self.world_size!r}")
        if not (isinstance(self.rank, int) and 0 <= self.rank < self.world_size):
            raise ValueError(f"rank must be an int in [0, {self.world_size}), got {self.rank!r}")

    @property
    def active(self) -> bool:
        """Whether there are other ranks to talk to."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 evaluates, writes checkpoints and shows progress."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """Whether the environment names this process's rank, world size and local rank."""
    return all(name in os.environ for name in TORCHRUN_ENV)


def local_rank() -> int:
    """This process's index on its node (0 outside torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def resolve_device(device: str) -> torch.device:
    """"cpu", "cuda" or "auto" (cuda when available) as a torch device; under torchrun, cuda means this
    process's GPU, cuda:LOCAL_RANK."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for, but torch sees no CUDA GPU")
        index = local_rank()
        if index >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={index} but this node has {torch.cuda.device_count()} GPU(s)")
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device("cpu")


def setup(device: torch.device) -> DistContext:
    """The data-parallel context: the initialised process group if there is one; else, under torchrun
    with more than one worker, a new one (NCCL for a CUDA model, gloo otherwise); else a single process."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size())
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return DistContext()
    if not dist.is_available():
        raise ValueError("launched by torchrun, but this torch build has no torch.distributed")
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, device_id=device if device.type == "cuda" else None)
    return DistContext(dist.get_rank(), dist.get_world_size())


def current() -> DistContext:
    """The context of the process group already formed (by `setup` or the caller); rank 0 of 1 when none.

    For code inside a training step (an SAE's firing counters) that must agree across ranks without being
    handed the context."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size())
    return DistContext()


def shutdown() -> None:
    """Close the process group, if one is open."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main_process() -> bool:
    """Whether this process is rank 0 of its process group (or of the torchrun job about to form one), or
    the only process: the one that writes results and prints."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def shard(idx: Int[Tensor, " batch"], ctx: DistContext) -> Int[Tensor, " shard"]:
    """This rank's contiguous slice of the global batch `idx` (sizes differ by at most one)."""
    if not ctx.active:
        return idx
    if len(idx) < ctx.world_size:
        raise ValueError(
            f"a batch of {len(idx)} examples cannot be split across world_size={ctx.world_size} ranks; "
            f"use a batch_size >= {ctx.world_size} or fewer ranks"
        )
    return torch.tensor_split(idx, ctx.world_size)[ctx.rank]


def shard_rows(batch: tuple[Tensor, ...], ctx: DistContext) -> tuple[Tensor, ...]:
    """This rank's contiguous slice of a global batch of tensors: every tensor whose first dimension is the
    first tensor's (the rows) is sliced as `shard` slices indices; the others (scalars such as a step
    number) are passed whole."""
    if not ctx.active:
        return batch
    n = len(batch[0])
    part = shard(torch.arange(n), ctx)
    rows = slice(int(part[0]), int(part[-1]) + 1)
    return tuple(t[rows] if t.ndim >= 1 and t.shape[0] == n else t for t in batch)


def all_reduce_sum(tensor: Tensor, ctx: DistContext) -> Tensor:
    """`tensor` summed over the ranks, in place (unchanged in a single process)."""
    if ctx.active:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_1d(tensor: Tensor, ctx: DistContext, fill: float) -> Tensor:
    """Every rank's 1-D `tensor` concatenated in rank order, each padded with `fill` to the longest length
    (the ranks' lengths may differ)."""
    if not ctx.active:
        return tensor
    length = torch.tensor([len(tensor)], dtype=torch.long, device=tensor.device)
    lengths = [torch.zeros_like(length) for _ in range(ctx.world_size)]
    dist.all_gather(lengths, length)
    longest = int(max(n.item() for n in lengths))
    padded = torch.full((longest,), fill, dtype=tensor.dtype, device=tensor.device)
    padded[: len(tensor)] = tensor
    parts = [torch.empty_like(padded) for _ in range(ctx.world_size)]
    dist.all_gather(parts, padded)
    return torch.cat(parts)


def all_reduce_gradients(params: list[torch.nn.Parameter], loss: Tensor, n_local: int, n_global: int, ctx: DistContext) -> Tensor:
    """Replace each parameter's gradient of this rank's mean loss (over `n_local` examples) by the gradient
    of the mean loss over all `n_global` examples of the global batch; returns that global mean loss.

    One all-reduce of a flat buffer, each rank's part weighted by n_local / n_global. Parameters without a
    gradient (not used by the loss) are left without one, as in a single process.
    """
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads] + [loss.detach().reshape(1).to(grads[0].dtype if grads else loss.dtype)])
    flat.mul_(n_local / n_global)
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()
    return flat[-1]


def broadcast_parameters(model: torch.nn.Module, ctx: DistContext) -> None:
    """Make every rank's weights and buffers rank 0's."""
    if ctx.active:
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor.data, src=0)


def broadcast_flag(flag: bool, ctx: DistContext, device: torch.device) -> bool:
    """Rank 0's `flag` on every rank (also a point where the other ranks wait for rank 0)."""
    if not ctx.active:
        return flag
    t = torch.tensor([int(flag)], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def broadcast_json(obj: Any, ctx: DistContext, device: torch.device) -> Any:
    """Rank 0's JSON-serialisable `obj` on every rank (sent as UTF-8 JSON, never pickled)."""
    if not ctx.active:
        return obj
    payload = json.dumps(obj).encode() if ctx.is_main else b""
    size = torch.tensor([len(payload)], dtype=torch.long, device=device)
    dist.broadcast(size, src=0)
    buf = torch.zeros(int(size.item()), dtype=torch.uint8, device=device)
    if ctx.is_main:
        buf.copy_(torch.frombuffer(bytearray(payload), dtype=torch.uint8))
    dist.broadcast(buf, src=0)
    return json.loads(bytes(buf.cpu().tolist()).decode())


def barrier(ctx: DistContext) -> None:
    """Wait until every rank gets here."""
    if ctx.active:
        dist.barrier()
