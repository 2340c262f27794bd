"""SAE training through the one loop of `ktlens.train`: the store feeds batches, the SAE gives the loss.

`SAETrainData` implements `ktlens.train.TrainData` with its streaming extras: `batch_at(step)` (the
store's batch of that step), `before_step` (remove each decoder row's parallel gradient) and
`after_step` (renormalise decoder rows; ReLU: resample dead latents on schedule). The firing counters
live in the SAE's state, so checkpoints resume to exactly the uninterrupted run.

Data parallel under `torchrun` like every `TrainData`: each rank draws the step's global batch from its
own store (a pure function of (seed, step)) and keeps its contiguous slice of rows; the loop all-reduces
the gradients; the SAE all-reduces its firing counters (and BatchTopK its batch-wide selection), so AuxK,
resampling and the decoder-norm constraint see the same state on every rank as in one process. Rank 0
evaluates over the whole domain and writes the SAE.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from ktlens import distributed
from ktlens.models.base import HookedModel
from ktlens.saes.activations import ActivationStore, StoreConfig, TensorRows
from ktlens.saes.base import SAE, SAE_TYPES
from ktlens.saes.domains import domain_of
from ktlens.saes.io import save_sae
from ktlens.saes.metrics import evaluate_sae
from ktlens.saes.relu import ReLUSAE
from ktlens.train import TrainConfig, train


def default_train_config() -> TrainConfig:
    """Adam (no weight decay), SAELens' betas, constant lr then a cosine decay over the last 20%."""
    return TrainConfig(
        steps=2000, batch_size=4096, lr=1e-3, weight_decay=0.0, betas=(0.9, 0.999), warmup_steps=50,
        schedule="cosine", decay_fraction=0.2, min_lr_ratio=0.0, grad_clip=1.0, eval_every=250, checkpoint_every=250,
    )


def coerce_fields(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """Values parsed from JSON made the types a dataclass declares: ints where floats go, lists where tuples go."""
    types = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    out = dict(values)
    for name, value in values.items():
        hint = types.get(name, "")
        if "float" in hint and isinstance(value, int) and not isinstance(value, bool):
            out[name] = float(value)
        elif hint.startswith("tuple") and isinstance(value, list):
            out[name] = tuple(float(v) if "float" in hint and isinstance(v, int) else v for v in value)
    return out


@dataclass
class SAETrainConfig:
    """Everything an SAE run needs besides the parent model and hook."""

    arch: str = "topk"  # "topk", "batchtopk" or "relu"
    sae: dict[str, Any] = field(default_factory=dict)  # architecture config fields: d_sae, k, l1_coefficient, ...
    store: StoreConfig | dict[str, Any] = field(default_factory=StoreConfig)  # a dict is made a StoreConfig
    train: TrainConfig | dict[str, Any] = field(default_factory=default_train_config)  # a dict updates the defaults
    downstream_weight: float = 0.0  # > 0: add w * ||(x - x_hat) W_out||^2 (mlp.hook_post only; see downstream_matrix)
    init_rows: int = 16384  # rows that set the input scale and b_dec
    eval_rows: int = 8192  # fixed sample of rows for the evaluations during training

    def __post_init__(self) -> None:
        if self.arch not in SAE_TYPES:
            raise ValueError(f"arch must be one of {sorted(SAE_TYPES)}, got {self.arch!r}")
        if isinstance(self.store, dict):
            self.store = StoreConfig(**coerce_fields(StoreConfig, self.store))
        if isinstance(self.train, dict):
            self.train = TrainConfig(**coerce_fields(TrainConfig, {**dataclasses.asdict(default_train_config()), **self.train}))
        if self.train.batch_size != self.store.batch_rows:
            self.train = dataclasses.replace(self.train, batch_size=self.store.batch_rows)
        if "d_sae" in self.sae and not isinstance(self.sae["d_sae"], int):
            raise ValueError(f"sae.d_sae must be an integer, got {self.sae['d_sae']!r}")
        if not self.downstream_weight >= 0:
            raise ValueError(f"downstream_weight must be >= 0, got {self.downstream_weight}")
        for name in ("init_rows", "eval_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["train"]["betas"] = list(d["train"]["betas"])
        return d


def with_overrides(cfg: SAETrainConfig, items: list[str]) -> SAETrainConfig:
    """A new config with `section.key=value` overrides (sections: sae, store, train; or a top-level key).

    Values are parsed as JSON where they can be (`train.lr=3e-4`, `sae.k=16`), else kept as text.
    """
    d = cfg.to_dict()
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not of the form key=value")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        section, _, sub = key.partition(".")
        if sub:
            if section not in ("sae", "store", "train"):
                raise ValueError(f"override {item!r}: unknown section {section!r} (sae, store, train)")
            if section != "sae" and sub not in d[section]:
                raise ValueError(f"override {item!r}: {section} has no field {sub!r}; fields: {sorted(d[section])}")
            d[section][sub] = value
        elif section in d and section not in ("sae", "store", "train"):
            d[section] = value
        else:
            raise ValueError(f"override {item!r}: unknown key {section!r}")
    return SAETrainConfig(**coerce_fields(SAETrainConfig, d))


def downstream_matrix(model: HookedModel, hook_name: str) -> Float[Tensor, "d_in d_out"]:
    """The linear map that reads the hook: W_out of the MLP whose hidden layer `hook_name` is, scaled so
    that an isotropic error keeps its squared norm (W_out * sqrt(d_mlp) / ||W_out||_F).

    Training with `downstream_weight` > 0 adds the reconstruction error as the next layer sees it (the
    downstream term of Braun et al. 2024's e2e+ds SAEs, here for the one linear map after the hook):
    errors W_out cannot see cost nothing there, errors it amplifies cost more.
    """
    match = re.fullmatch(r"blocks\.(\d+)\.mlp\.hook_post", hook_name)
    if match is None:
        raise ValueError(f"downstream_weight needs an MLP hidden-layer hook (blocks.L.mlp.hook_post), got {hook_name!r}")
    w_out = model.blocks[int(match.group(1))].mlp.W_out.detach().float().cpu()
    return w_out * (w_out.shape[0] ** 0.5 / w_out.norm())


class SAETrainData:
    """`ktlens.train.TrainData` for an SAE fed by an `ActivationStore`."""

    def __init__(
        self,
        sae: SAE,
        store: ActivationStore | TensorRows,
        eval_rows: int = 8192,
        seed: int = 0,
        downstream: Float[Tensor, "d_in d_out"] | None = None,
        downstream_weight: float = 0.0,
    ):
        self.store = store
        self.downstream, self.downstream_weight = downstream, downstream_weight
        self.seed = seed
        self.n_train = store.n_rows
        self.eval_x: Float[Tensor, "rows d_in"] = store.sample(eval_rows, seed=1).acts
        self.n_resampled = 0
        self.window = sae.cfg.resample_window_rows if isinstance(sae, ReLUSAE) else sae.cfg.dead_window_rows

    def batch(self, idx: Tensor) -> tuple[Tensor, ...]:
        raise NotImplementedError("activation rows are streamed: the loop calls batch_at(step)")

    def batch_at(self, step: int) -> tuple[Tensor, Tensor]:
        return self.store.batch_at(step).acts, torch.tensor(step)

    def loss(self, model: SAE, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, step = batch
        x = x.to(model.W_dec.device)
        out = model.training_loss(x, int(step))
        if self.downstream is None or self.downstream_weight == 0:
            return out["loss"]
        if self.downstream.device != x.device:
            self.downstream = self.downstream.to(x.device)
        seen = ((x - out["recons"]) * model.input_scale) @ self.downstream
        return out["loss"] + self.downstream_weight * seen.pow(2).sum(-1).mean()

    def before_step(self, model: SAE) -> None:
        model.remove_parallel_grad()

    def after_step(self, model: SAE, optimizer: torch.optim.Optimizer, steps_done: int) -> None:
        model.normalize_decoder()
        if isinstance(model, ReLUSAE) and model.resample_due(steps_done):
            x = self.store.sample(model.cfg.resample_rows, seed=10_000 + steps_done).acts.to(model.W_dec.device)
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + steps_done)
            with torch.no_grad():
                self.n_resampled += model.resample(model.dead_mask(self.window), x, optimizer, gen)

    @torch.no_grad()
    def evaluate(self, model: SAE) -> dict[str, float]:
        """Figures on a fixed sample of the domain's rows (the full metrics come at the end)."""
        if self.eval_x.device != model.W_dec.device:
            self.eval_x = self.eval_x.to(model.W_dec.device)
        x = self.eval_x
        f = model.encode(x)
        err = (x - model.decode(f)).pow(2).sum(-1)
        var = (x - x.mean(0)).pow(2).sum(-1)
        return {
            "eval_mse": err.mean().item(),
            "eval_explained_variance": 1.0 - err.sum().item() / max(var.sum().item(), 1e-30),
            "eval_l0": (f > 0).float().sum(-1).mean().item(),
            "dead_fraction": model.dead_mask(self.window).float().mean().item(),
        }


def build_run(model: HookedModel, model_name: str, hook_name: str, cfg: SAETrainConfig) -> tuple[SAE, ActivationStore, SAETrainData]:
    """The store over the model's domain, a freshly initialised SAE of the right width on the model's
    device, and its train data (the store keeps its rows on the CPU; each batch moves to the SAE's device)."""
    store = ActivationStore(model, hook_name, domain_of(model), cfg.store)
    config_cls, sae_cls = SAE_TYPES[cfg.arch]
    fields = coerce_fields(config_cls, dict(cfg.sae))
    fields.setdefault("d_sae", max(1, min(4 * store.d_in, store.n_rows // 4)))
    fields.setdefault("seed", cfg.train.seed)
    try:
        sae_cfg = config_cls(d_in=store.d_in, model_name=model_name, hook_name=hook_name, **fields)
    except TypeError as err:
        raise ValueError(f"sae settings {cfg.sae} do not fit the {cfg.arch!r} architecture: {err}") from None
    sae = sae_cls(sae_cfg)
    sae.initialize_from_sample(store.sample(cfg.init_rows, seed=0).acts)
    sae.to(model.device)
    downstream = downstream_matrix(model, hook_name) if cfg.downstream_weight > 0 else None
    return sae, store, SAETrainData(sae, store, cfg.eval_rows, cfg.train.seed, downstream, cfg.downstream_weight)


def train_sae(
    model: HookedModel, model_name: str, hook_name: str, cfg: SAETrainConfig, out: str | Path, progress: bool = True
) -> tuple[SAE, dict[str, Any]]:
    """Train, evaluate over the whole domain and save an SAE to `out` (resumes from `out/run`).

    Under torchrun every rank trains (data parallel, on the model's device); rank 0 alone evaluates and
    writes `out`, and the other ranks return their (identical) SAE with no metrics."""
    out = Path(out)
    ctx = distributed.setup(model.device)  # before the store: an on-disk activation cache is written by rank 0
    sae, store, data = build_run(model, model_name, hook_name, cfg)
    result = train(sae, data, cfg.train, run_dir=out / "run", progress=progress)
    sae.fold_input_scale()
    if not ctx.is_main:
        return sae, {}
    metrics = evaluate_sae(sae, model, store, progress=progress)
    metrics["training"] = {"config": cfg.to_dict(), "steps": result.step, "seconds": result.seconds, "history": result.history}
    save_sae(sae, out, metrics)
    return sae, metrics
