"""ReLU + L1 sparse autoencoder (Bricken et al. 2023, "Towards Monosemanticity"), with resampling.

f = ReLU(W_enc^T (x - b_dec) + b_enc), x_hat = f W_dec + b_dec, decoder rows kept at unit norm, loss =
||x - x_hat||^2 + lambda(t) * sum_i f_i, lambda warmed up linearly over `l1_warmup_steps`.
Latents dead over `resample_window_rows` training rows are resampled every `resample_every` steps
(until `resample_stop`): see `SAE.resample`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from ktlens.saes.base import SAE, SAEConfig, register_sae


@dataclass
class ReLUSAEConfig(SAEConfig):
    l1_coefficient: float = 5.0  # lambda on sum_i f_i (inputs scaled so that E||x||^2 = d_in)
    l1_warmup_steps: int = 0  # lambda rises linearly from 0 over these steps
    resample_every: int = 0  # resample dead latents every this many steps; 0 never
    resample_stop: int = 0  # no resampling at or after this step
    resample_window_rows: int = 100_000  # dead = not fired on this many consecutive training rows
    resample_rows: int = 8192  # inputs scored by squared loss to draw the new directions from

    architecture = "relu"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.l1_coefficient >= 0:
            raise ValueError(f"l1_coefficient must be >= 0, got {self.l1_coefficient}")
        for name in ("l1_warmup_steps", "resample_every", "resample_stop"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("resample_window_rows", "resample_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


class ReLUSAE(SAE):
    """ReLU + L1; see the module docstring."""

    cfg: ReLUSAEConfig

    def activation(self, pre: Float[Tensor, "*rows d_sae"]) -> Float[Tensor, "*rows d_sae"]:
        return torch.relu(pre)

    def l1_coefficient_at(self, step: int) -> float:
        warm = self.cfg.l1_warmup_steps
        return self.cfg.l1_coefficient * (min(1.0, (step + 1) / warm) if warm else 1.0)

    def training_loss(self, x: Float[Tensor, "rows d_in"], step: int) -> dict[str, Tensor]:
        acts = self.encode(x)
        recons = self.decode(acts)
        mse = self.scaled_mse(x, recons)
        l1 = acts.sum(-1).mean()  # decoder rows are unit norm, so no norm weighting is needed
        self.record_firing(acts)
        return {"loss": mse + self.l1_coefficient_at(step) * l1, "mse_loss": mse, "l1_loss": l1, "recons": recons}

    def resample_due(self, step: int) -> bool:
        """Whether resampling runs after optimizer step number `step` (1-based count of steps done)."""
        c = self.cfg
        return c.resample_every > 0 and step % c.resample_every == 0 and step < c.resample_stop


register_sae(ReLUSAEConfig, ReLUSAE)
