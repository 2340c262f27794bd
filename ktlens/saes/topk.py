"""TopK sparse autoencoder with the AuxK dead-latent loss (Gao et al. 2024).

f = ReLU(TopK_k(W_enc^T (x - b_dec) + b_enc)), x_hat = f W_dec + b_dec, decoder rows unit norm, tied
initialisation. AuxK: the `k_aux` largest pre-activations (without ReLU) among dead latents (no firing over
`dead_window_rows` training rows) reconstruct the detached residual e = x - x_hat through W_dec; the
loss adds aux_coefficient * min(1, n_dead / k_aux) * ||e - e_hat||^2, which gives dead latents gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from ktlens.saes.base import SAE, SAEConfig, register_sae


@dataclass
class TopKSAEConfig(SAEConfig):
    k: int = 32  # latents kept per row
    k_aux: int = 256  # dead latents used by AuxK (Gao et al.: 256 or d_in / 2)
    aux_coefficient: float = 1 / 32  # weight of the AuxK loss
    dead_window_rows: int = 100_000  # dead = not fired on this many consecutive training rows

    architecture = "topk"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.k <= self.d_sae:
            raise ValueError(f"k must be in 1..d_sae={self.d_sae}, got {self.k}")
        if self.k_aux < 1:
            raise ValueError(f"k_aux must be >= 1, got {self.k_aux}")
        if not self.aux_coefficient >= 0:
            raise ValueError(f"aux_coefficient must be >= 0, got {self.aux_coefficient}")
        if self.dead_window_rows < 1:
            raise ValueError(f"dead_window_rows must be >= 1, got {self.dead_window_rows}")


class TopKSAE(SAE):
    """TopK with AuxK; see the module docstring."""

    cfg: TopKSAEConfig

    def activation(self, pre: Float[Tensor, "*rows d_sae"]) -> Float[Tensor, "*rows d_sae"]:
        values, idx = pre.topk(self.cfg.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, idx, torch.relu(values))

    def sparse_decode(self, values: Float[Tensor, "rows k"], idx: Int[Tensor, "rows k"]) -> Float[Tensor, "rows d_in"]:
        """f W_dec + b_dec from the k active latents of each row (in the input's units), without the
        dense [rows, d_sae] product: an embedding bag over the decoder rows, in forward and backward."""
        return (F.embedding_bag(idx, self.W_dec, per_sample_weights=values, mode="sum") + self.b_dec) / self.input_scale

    def training_loss(self, x: Float[Tensor, "rows d_in"], step: int) -> dict[str, Tensor]:
        centred = x * self.input_scale - self.b_dec
        values, idx = _TopKEncode.apply(centred, self.W_enc, self.b_enc, self.cfg.k)
        values = torch.relu(values)
        recons = self.sparse_decode(values, idx)
        mse = self.scaled_mse(x, recons)
        aux = self.auxk_loss(x, recons, None)
        with torch.no_grad():
            fired = torch.zeros(self.cfg.d_sae, dtype=torch.bool, device=x.device)
            fired[idx[values > 0]] = True
            self.update_firing(fired, x.shape[0])
        return {"loss": mse + self.cfg.aux_coefficient * aux, "mse_loss": mse, "auxk_loss": aux, "recons": recons}

    def auxk_loss(
        self, x: Float[Tensor, "rows d_in"], recons: Float[Tensor, "rows d_in"], pre: Float[Tensor, "rows d_sae"] | None
    ) -> Tensor:
        """AuxK term (before its coefficient); zero when no latent is dead. Computed on the dead latents
        only (their pre-activations, from `pre` when given, else recomputed)."""
        dead = self.dead_mask(self.cfg.dead_window_rows)
        n_dead = int(dead.sum())
        if n_dead == 0:
            return x.new_zeros(())
        k_aux = min(self.cfg.k_aux, n_dead)
        residual = ((x - recons) * self.input_scale).detach()
        if pre is None:
            pre_dead = (x * self.input_scale - self.b_dec) @ self.W_enc[:, dead] + self.b_enc[dead]
        else:
            pre_dead = pre[:, dead]
        values, idx = pre_dead.topk(k_aux, dim=-1)  # no ReLU (as SAELens): dead pre-activations are negative
        aux_recons = F.embedding_bag(idx, self.W_dec[dead], per_sample_weights=values, mode="sum")  # no b_dec
        return min(1.0, n_dead / k_aux) * (aux_recons - residual).pow(2).sum(-1).mean()

class _TopKEncode(torch.autograd.Function):
    """The k largest pre-activations per row (values, indices), with a sparse backward: only the chosen
    (row, latent) pairs carry gradient, so the encoder's gradients cost rows x k x d_in, not rows x d_sae x d_in."""

    @staticmethod
    def forward(ctx, centred: Tensor, w_enc: Tensor, b_enc: Tensor, k: int) -> tuple[Tensor, Tensor]:  # noqa: D102
        values, idx = (centred @ w_enc + b_enc).topk(k, dim=-1)
        ctx.save_for_backward(centred, w_enc, idx)
        ctx.mark_non_differentiable(idx)
        return values, idx

    @staticmethod
    def backward(ctx, grad_values: Tensor, grad_idx: Tensor | None) -> tuple[Tensor, Tensor, Tensor, None]:  # noqa: D102
        centred, w_enc, idx = ctx.saved_tensors
        rows = torch.arange(idx.shape[0], device=idx.device).repeat_interleave(idx.shape[1])
        g = torch.sparse_coo_tensor(torch.stack([rows, idx.flatten()]), grad_values.flatten(), (idx.shape[0], w_enc.shape[1]), check_invariants=False)
        grad_w = torch.sparse.mm(g.t().coalesce(), centred).t()
        grad_b = torch.zeros(w_enc.shape[1], dtype=grad_values.dtype, device=grad_values.device).index_add_(0, idx.flatten(), grad_values.flatten())
        grad_centred = torch.sparse.mm(g, w_enc.t())
        return grad_centred, grad_w, grad_b, None


register_sae(TopKSAEConfig, TopKSAE)
