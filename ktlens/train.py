"""One training loop for every ktlens model.

AdamW with warmup and a cosine or constant schedule, mini-batch or full batch, the optional grokfast
EMA gradient filter, periodic evaluation, and checkpoints that resume to exactly the run that was never
interrupted: the data order and dropout noise are pure functions of (seed, step), and the optimizer and
filter state are saved with the weights.

Under `torchrun` (or in an initialised process group) the same loop is data parallel: the batch is the
global batch, each rank takes its slice, and the gradients are all-reduced before the grokfast filter,
clipping and AdamW (see `ktlens.distributed`); rank 0 evaluates, checkpoints and shows progress. Every
`TrainData` gets this without change, as long as its loss is a mean over the examples of a batch.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any, Protocol, no_type_check, runtime_checkable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ktlens import distributed
from ktlens.checkpoint import read_train_state, save_checkpoint
from ktlens.models.base import HookedModel
from ktlens.validation import check_int, check_real, check_str


#: One evaluation: "step" (an int) and the metrics (floats) at that step.
EvalRecord = dict[str, float | int]


@runtime_checkable
class TrainData(Protocol):
    """What the loop needs from a task: training examples, a loss, and an evaluation.

    Optional extras the loop uses when present: `batch_at(step)` (the batch of a step, instead of
    `batch(idx)`: for data streamed rather than indexed; a pure function of (seed, step), the global batch
    under data parallelism, of which each rank keeps its slice of rows), `before_step(model)` (after
    backward and clipping, before the optimizer step: e.g. constrain gradients) and `after_step(model,
    optimizer, steps_done)` (after the step: e.g. renormalise weights, resample dead units). Under data
    parallelism these run on every rank; any state they or the loss keep beyond the weights (an SAE's
    firing counters) must be reduced over the ranks by the data itself, so that every rank holds one
    process's state.
    """

    n_train: int

    def batch(self, idx: Tensor) -> tuple[Tensor, ...]:
        """Tensors of the training examples at positions `idx` (0 <= idx < n_train)."""

    def loss(self, model: HookedModel, batch: tuple[Tensor, ...]) -> Tensor:
        """Scalar training loss on a batch."""

    def evaluate(self, model: HookedModel) -> dict[str, float]:
        """Metrics on the train and test splits (called in eval mode, without gradients)."""


@no_type_check  # validated in __post_init__, so bad values get a ValueError naming them
@dataclass
class TrainConfig:
    steps: int = 1000  # optimizer steps in all
    batch_size: int | None = 512  # None: full batch
    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 0.1  # AdamW decoupled weight decay
    betas: tuple[float, float] = (0.9, 0.98)
    adam_eps: float = 1e-8  # Adam's epsilon: larger values damp the steps of parameters whose gradients are tiny
    warmup_steps: int = 100  # linear warmup from 0
    schedule: str = "cosine"  # "cosine" decay to min_lr_ratio * lr, or "constant"
    min_lr_ratio: float = 0.05
    decay_fraction: float = 1.0  # cosine only: the decay spans this last fraction of the post-warmup steps; constant before
    grad_clip: float | None = 1.0  # max global grad norm; None disables
    grokfast_alpha: float = 0.98  # EMA decay a of the grokfast filter h = a h + (1 - a) g
    grokfast_lambda: float = 0.0  # amplification: g <- g + lambda h; 0 disables the filter
    eval_every: int = 200  # steps between evaluations
    checkpoint_every: int = 1000  # steps between checkpoints (when a run folder is given)
    stop_metric: str | None = None  # stop early once this evaluation metric reaches stop_value
    stop_value: float = 1.0
    seed: int = 0  # data order and dropout noise

    def __post_init__(self) -> None:
        for name in ("steps", "warmup_steps", "eval_every", "checkpoint_every", "seed"):
            check_int(name, getattr(self, name))
        for name in ("lr", "weight_decay", "adam_eps", "min_lr_ratio", "decay_fraction", "grokfast_alpha",
                     "grokfast_lambda", "stop_value"):
            check_real(name, getattr(self, name), -math.inf, math.inf)
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size)
        if self.grad_clip is not None:
            check_real("grad_clip", self.grad_clip, 0.0, math.inf, low_open=True)
        check_str("schedule", self.schedule)
        if self.stop_metric is not None:
            check_str("stop_metric", self.stop_metric)
        if not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2:
            raise ValueError(f"betas must be a pair of numbers, got {self.betas!r}")
        self.betas = tuple(check_real("betas", b, 0.0, 1.0, high_open=True) for b in self.betas)
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or None, got {self.batch_size}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if not self.adam_eps > 0:
            raise ValueError(f"adam_eps must be > 0, got {self.adam_eps}")
        if not 0.0 < self.decay_fraction <= 1.0:
            raise ValueError(f"decay_fraction must be in (0, 1], got {self.decay_fraction}")
        if not 0.0 <= self.grokfast_alpha < 1.0:
            raise ValueError(f"grokfast_alpha must be in [0, 1), got {self.grokfast_alpha}")

    def lr_at(self, step: int) -> float:
        """Learning rate used for optimizer step `step` (0-based)."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.schedule == "constant":
            return self.lr
        decay_steps = self.decay_fraction * (self.steps - self.warmup_steps)
        progress = (step - (self.steps - decay_steps)) / max(1.0, decay_steps)
        if progress <= 0:
            return self.lr
        cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * cosine)


class TrainingDiverged(RuntimeError):
    """The loss or the gradients became NaN or infinite."""


@dataclass
class TrainResult:
    model: HookedModel
    history: list[EvalRecord] = field(default_factory=list)  # one record per evaluation
    step: int = 0  # steps done
    seconds: float = 0.0  # wall time of this call (not of earlier interrupted calls)

    @property
    def final(self) -> EvalRecord:
        return self.history[-1] if self.history else {}


class GrokfastEMA:
    """The grokfast filter (Lee et al. 2024): h = a h + (1 - a) g, then g <- g + lambda h."""

    def __init__(self, params: list[torch.nn.Parameter], alpha: float, lamb: float):
        self.params, self.alpha, self.lamb = params, alpha, lamb
        self.ema: list[Tensor] | None = None

    def apply(self) -> None:
        grads = [p.grad for p in self.params]
        if self.ema is None:
            self.ema = [g.detach().clone() for g in grads]
        else:
            for h, g in zip(self.ema, grads):
                h.mul_(self.alpha).add_(g, alpha=1 - self.alpha)
        for h, g in zip(self.ema, grads):
            g.add_(h, alpha=self.lamb)


def _batch_indices(cfg: TrainConfig, n_train: int, step: int) -> Tensor:
    """Indices of the batch for `step`: a fresh seeded permutation per epoch, so resuming needs no state."""
    if cfg.batch_size is None or cfg.batch_size >= n_train:
        return torch.arange(n_train)
    per_epoch = math.ceil(n_train / cfg.batch_size)
    epoch, j = divmod(step, per_epoch)
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
    perm = torch.randperm(n_train, generator=gen)
    return perm[j * cfg.batch_size : (j + 1) * cfg.batch_size]


def _optimizer_tensors(opt: torch.optim.Optimizer, grokfast: GrokfastEMA | None) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for i, state in opt.state_dict()["state"].items():
        for key, value in state.items():
            out[f"adam.{i}.{key}"] = torch.as_tensor(value).clone()
    if grokfast is not None and grokfast.ema is not None:
        out.update({f"grokfast.{i}": h.clone() for i, h in enumerate(grokfast.ema)})
    return out


def _restore_optimizer(opt: torch.optim.Optimizer, grokfast: GrokfastEMA | None, tensors: dict[str, Tensor]) -> None:
    state_dict = opt.state_dict()
    state: dict[int, dict[str, Tensor]] = {}
    for name, value in tensors.items():
        kind, *rest = name.split(".")
        if kind == "adam":
            state.setdefault(int(rest[0]), {})[rest[1]] = value
    state_dict["state"] = state
    opt.load_state_dict(state_dict)
    if grokfast is not None:
        ema = [tensors[f"grokfast.{i}"].to(p.device) for i, p in enumerate(grokfast.params) if f"grokfast.{i}" in tensors]
        grokfast.ema = ema or None


def train(
    model: HookedModel,
    data: TrainData,
    cfg: TrainConfig,
    run_dir: str | Path | None = None,
    progress: bool = True,
    on_eval: Callable[[EvalRecord], None] | None = None,
) -> TrainResult:
    """Train `model` on `data`; with `run_dir`, checkpoint there and resume from what is there.

    The latest checkpoint lives in `run_dir/checkpoint`; each evaluation is appended to the history
    kept in it. Interrupt at any time (Ctrl-C): the next call with the same arguments resumes, with any
    number of ranks. Launched by torchrun, every rank calls this with the same arguments; `on_eval` runs
    on rank 0 only, and every rank returns rank 0's history.
    """
    device = model.device
    ctx = distributed.setup(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.adam_eps, weight_decay=cfg.weight_decay)
    grokfast = GrokfastEMA(params, cfg.grokfast_alpha, cfg.grokfast_lambda) if cfg.grokfast_lambda else None
    history: list[EvalRecord] = []
    start = 0
    ckpt = Path(run_dir) / "checkpoint" if run_dir is not None else None
    if ckpt is not None and (ckpt / "train_state.json").is_file():
        state, tensors = read_train_state(ckpt)
        if state["train_config"] != _jsonable(cfg):
            raise ValueError(f"{ckpt} was written with a different TrainConfig; use a new run folder")
        from ktlens.checkpoint import read_model_state

        try:
            model.load_state_dict(read_model_state(ckpt))
        except RuntimeError as err:
            raise ValueError(f"{ckpt} holds weights of a different model: {str(err).splitlines()[0]}") from None
        _restore_optimizer(opt, grokfast, tensors)
        start, history = state["step"], state["history"]
    distributed.broadcast_parameters(model, ctx)

    def checkpoint(step: int) -> None:
        if ckpt is not None and ctx.is_main:
            train_state = {"step": step, "train_config": _jsonable(cfg), "history": history}
            save_checkpoint(ckpt, model, train_state, _optimizer_tensors(opt, grokfast))

    def evaluate(step: int, train_loss: float) -> EvalRecord:
        model.eval()
        with torch.no_grad():
            record = {"step": step, "train_loss": train_loss, "lr": cfg.lr_at(max(step - 1, 0)), **data.evaluate(model)}
        model.train()
        history.append(record)
        if on_eval is not None:
            on_eval(record)
        return record

    t0 = time.perf_counter()
    model.train()
    bar = tqdm(total=cfg.steps, initial=start, disable=not (progress and ctx.is_main), desc="train", dynamic_ncols=True)
    step, running = start, float("nan")
    already_stopped = bool(history) and _reached(cfg, history[-1])
    batch_at = getattr(data, "batch_at", None)
    before_step = getattr(data, "before_step", None)
    after_step = getattr(data, "after_step", None)
    try:
        while step < cfg.steps and not already_stopped:
            torch.manual_seed(cfg.seed * 7_919 + step + ctx.rank * 1_000_000_007)  # dropout noise: (seed, step, rank)
            if batch_at is not None:  # streamed data (SAE activations): every rank draws the step's global batch
                batch = batch_at(step)
                global_idx = torch.arange(len(batch[0]))
                local_idx = distributed.shard(global_idx, ctx)
                batch = distributed.shard_rows(batch, ctx)
            else:
                global_idx = _batch_indices(cfg, data.n_train, step)
                local_idx = distributed.shard(global_idx, ctx)
                batch = data.batch(local_idx)
            loss = data.loss(model, batch)
            opt.zero_grad(set_to_none=False)
            if ctx.active:  # the gradient (and loss) of the mean over the global batch, on every rank
                loss.backward()
                loss = distributed.all_reduce_gradients(params, loss, len(local_idx), len(global_idx), ctx)
            if not torch.isfinite(loss):
                raise TrainingDiverged(f"loss became {loss.item()} at step {step}; lower the learning rate")
            if not ctx.active:
                loss.backward()
            if grokfast is not None:
                grokfast.apply()
            if cfg.grad_clip is not None:
                norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                if not torch.isfinite(norm):
                    raise TrainingDiverged(f"gradient norm became {norm.item()} at step {step}")
            if before_step is not None:
                before_step(model)
            for group in opt.param_groups:
                group["lr"] = cfg.lr_at(step)
            opt.step()
            step += 1
            if after_step is not None:
                after_step(model, opt, step)
            running = loss.item() if math.isnan(running) else 0.95 * running + 0.05 * loss.item()
            bar.update(1)
            stop = False
            if step % cfg.eval_every == 0 or step == cfg.steps:
                if ctx.is_main:
                    record = evaluate(step, running)
                    bar.set_postfix({k: round(v, 4) for k, v in record.items() if k.startswith(("test", "train_loss"))}, refresh=False)
                    stop = _reached(cfg, record)
                stop = distributed.broadcast_flag(stop, ctx, device)  # the other ranks wait for the evaluation
            if step % cfg.checkpoint_every == 0 or step == cfg.steps or stop:
                checkpoint(step)
                distributed.barrier(ctx)
            if stop:
                break
    except KeyboardInterrupt:
        checkpoint(step)
        bar.close()
        raise
    bar.close()
    history = distributed.broadcast_json(history, ctx, device)
    model.eval()
    return TrainResult(model=model, history=history, step=step, seconds=time.perf_counter() - t0)


def _reached(cfg: TrainConfig, record: EvalRecord) -> bool:
    """Whether an evaluation record meets the early-stopping target."""
    return cfg.stop_metric is not None and record.get(cfg.stop_metric, -math.inf) >= cfg.stop_value


def _jsonable(cfg: TrainConfig) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    d["betas"] = list(d["betas"])
    return d
