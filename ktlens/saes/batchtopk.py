"""BatchTopK sparse autoencoder (Bussmann et al. 2024; SAELens `batchtopk`).

TopK over the whole batch instead of per row: a batch of B rows keeps its k * B largest ReLU
pre-activations, so rows that need more latents get more while the mean L0 stays k. At inference, where
there is no batch, a latent fires when its pre-activation exceeds `threshold`, a running average of
the smallest activation kept in training batches (SAELens saves such an SAE as JumpReLU for the same
reason). Worth having here because the MIIII domain mixes easy and hard inputs: a per-row budget wastes
latents on the easy ones. AuxK for dead latents as in TopK.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from ktlens import distributed
from ktlens.saes.base import register_sae
from ktlens.saes.topk import TopKSAE, TopKSAEConfig


@dataclass
class BatchTopKSAEConfig(TopKSAEConfig):
    threshold_decay: float = 0.99  # EMA decay of the inference threshold

    architecture = "batchtopk"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.threshold_decay < 1.0:
            raise ValueError(f"threshold_decay must be in [0, 1), got {self.threshold_decay}")


class BatchTopKSAE(TopKSAE):
    """BatchTopK with a JumpReLU-style threshold at inference; see the module docstring."""

    cfg: BatchTopKSAEConfig

    def __init__(self, cfg: BatchTopKSAEConfig):
        super().__init__(cfg)
        self.register_buffer("threshold", torch.tensor(0.0))  # in training units (scaled inputs)

    def activation(self, pre: Float[Tensor, "*rows d_sae"]) -> Float[Tensor, "*rows d_sae"]:
        """Inference: fire above the learned threshold."""
        return pre * (pre > self.threshold)

    def batch_activation(self, pre: Float[Tensor, "rows d_sae"]) -> Float[Tensor, "rows d_sae"]:
        """Training: keep the k * rows largest positive pre-activations of the batch (of the global batch
        under data parallelism: see `_global_kept`)."""
        flat = torch.relu(pre).flatten()
        ctx = distributed.current()
        if ctx.active:
            values = self._global_kept(flat, pre.shape[0], ctx)
            acts = (flat * (flat >= values[-1])).reshape(pre.shape)
        else:
            values, idx = flat.topk(self.cfg.k * pre.shape[0])
            acts = torch.zeros_like(flat).scatter(0, idx, values).reshape(pre.shape)
        with torch.no_grad():
            kept = values[values > 0]
            if len(kept):
                smallest = kept.min()
                if self.threshold == 0:
                    self.threshold.fill_(smallest.item())
                else:
                    self.threshold.mul_(self.cfg.threshold_decay).add_((1 - self.cfg.threshold_decay) * smallest)
        return acts

    @torch.no_grad()
    def _global_kept(self, flat: Float[Tensor, " n"], rows: int, ctx: distributed.DistContext) -> Float[Tensor, " kept"]:
        """The k * global_rows largest ReLU pre-activations of the global batch, largest first, the same on
        every rank: each rank's own largest ones, gathered, and the largest of those. A rank keeps its values
        >= the last of them, which are the ones one process would keep (ties aside: a tie at a positive
        value has probability zero; at zero, keeping more zeros changes nothing)."""
        total = distributed.all_reduce_sum(torch.tensor([rows], dtype=torch.long, device=flat.device), ctx)
        n_keep = self.cfg.k * int(total.item())
        mine = flat.topk(min(n_keep, len(flat))).values
        every = distributed.all_gather_1d(mine, ctx, fill=-1.0)  # ReLU values are >= 0: padding is never kept
        return every.topk(n_keep).values

    def training_loss(self, x: Float[Tensor, "rows d_in"], step: int) -> dict[str, Tensor]:
        pre = self.pre_acts(x)
        acts = self.hook_sae_acts_post(self.batch_activation(pre))
        recons = self.decode(acts)
        mse = self.scaled_mse(x, recons)
        aux = self.auxk_loss(x, recons, pre)
        self.record_firing(acts)
        return {"loss": mse + self.cfg.aux_coefficient * aux, "mse_loss": mse, "auxk_loss": aux, "recons": recons}

    @torch.no_grad()
    def fold_input_scale(self) -> None:
        s = self.input_scale.clone()
        super().fold_input_scale()
        self.threshold /= s


register_sae(BatchTopKSAEConfig, BatchTopKSAE)
