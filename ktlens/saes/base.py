"""What every sparse autoencoder shares: config, hooks, encode / decode, unit-norm decoder rows.

Conventions (as in SAELens): `W_enc` is [d_in, d_sae], `W_dec` is [d_sae, d_in], so latent i's
dictionary vector (a "column" of the dictionary in Towards Monosemanticity) is the row `W_dec[i]`,
kept at unit norm. The input is centred by `b_dec` before encoding and the reconstruction is of the
input itself: x_hat = f W_dec + b_dec.

Training happens on inputs scaled by a constant `input_scale` (so that E||x||^2 = d_in and one L1
coefficient fits every hook); `fold_input_scale` folds it into the biases when training ends, after
which the SAE reads and writes raw activations with the same decoder directions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from jaxtyping import Bool, Float
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

from ktlens import distributed
from ktlens.models.base import HookedModel

SAE_TYPES: dict[str, tuple[type["SAEConfig"], type["SAE"]]] = {}


@dataclass
class SAEConfig:
    """Fields every architecture has; each architecture's config adds its own."""

    d_in: int  # width of the hooked activation (trailing dimensions flattened)
    d_sae: int  # number of latents
    model_name: str = ""  # the parent model (a shipped name or a checkpoint folder)
    hook_name: str = ""  # the parent model's hook the SAE reads, e.g. "blocks.0.mlp.hook_post"
    seed: int = 0  # initialisation

    architecture: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for name in ("d_in", "d_sae"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"architecture": self.architecture, **dataclasses.asdict(self)}


def register_sae(config_cls: type[SAEConfig], sae_cls: type["SAE"]) -> None:
    """Make an architecture loadable by the name in its config (`config_cls.architecture`)."""
    SAE_TYPES[config_cls.architecture] = (config_cls, sae_cls)


def config_from_dict(data: dict[str, Any]) -> SAEConfig:
    """The config of a saved SAE, or ValueError naming what is wrong."""
    data = dict(data)
    arch = data.pop("architecture", None)
    if arch not in SAE_TYPES:
        raise ValueError(f"unknown SAE architecture {arch!r}; known: {sorted(SAE_TYPES)}")
    config_cls = SAE_TYPES[arch][0]
    try:
        return config_cls(**data)
    except TypeError as err:
        raise ValueError(f"SAE config for {arch!r} does not fit: {err}") from None


def build_sae(cfg: SAEConfig) -> "SAE":
    """A freshly initialised SAE of the architecture `cfg` belongs to."""
    if cfg.architecture not in SAE_TYPES:
        raise ValueError(f"unknown SAE architecture {cfg.architecture!r}; known: {sorted(SAE_TYPES)}")
    return SAE_TYPES[cfg.architecture][1](cfg)


class SAE(HookedModel):
    """A sparse autoencoder that is itself a `HookedRootModule`.

    `forward(x)` returns the reconstruction; `encode` / `decode` expose the two halves. Inputs may
    have any leading dimensions ([..., d_in]). Subclasses define `activation` and `training_loss`.
    """

    model_type = ""  # not a parent model: never built by ktlens.models.build_model

    def __init__(self, cfg: SAEConfig):
        super(HookedModel, self).__init__()  # HookedRootModule's init: the config is an SAEConfig
        self.cfg = cfg
        self.task_spec = {"model_name": cfg.model_name, "hook_name": cfg.hook_name}
        gen = torch.Generator().manual_seed(cfg.seed)
        w_dec = torch.randn(cfg.d_sae, cfg.d_in, generator=gen)
        w_dec /= w_dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(w_dec)  # [d_sae, d_in], unit-norm rows
        self.W_enc = nn.Parameter(w_dec.T.clone())  # [d_in, d_sae], tied initialisation
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))
        self.register_buffer("input_scale", torch.tensor(1.0))  # x is multiplied by this before encoding
        self.register_buffer("rows_since_fired", torch.zeros(cfg.d_sae, dtype=torch.long))  # training only
        self.hook_sae_input = HookPoint()  # [..., d_in]
        self.hook_sae_acts_pre = HookPoint()  # [..., d_sae]
        self.hook_sae_acts_post = HookPoint()  # [..., d_sae]
        self.hook_sae_recons = HookPoint()  # [..., d_in]
        self.hook_sae_error = HookPoint()  # [..., d_in]
        self.setup()

    # ----- the map -----------------------------------------------------------------------------------
    def activation(self, pre: Float[Tensor, "*rows d_sae"]) -> Float[Tensor, "*rows d_sae"]:
        raise NotImplementedError

    def _check_input(self, x: Tensor) -> None:
        if x.ndim < 1 or x.shape[-1] != self.cfg.d_in:
            raise ValueError(f"SAE input must have shape [..., d_in={self.cfg.d_in}], got {tuple(x.shape)}")

    def pre_acts(self, x: Float[Tensor, "*rows d_in"]) -> Float[Tensor, "*rows d_sae"]:
        """Encoder pre-activations (in the SAE's training units)."""
        self._check_input(x)
        return self.hook_sae_acts_pre((x * self.input_scale - self.b_dec) @ self.W_enc + self.b_enc)

    def encode(self, x: Float[Tensor, "*rows d_in"]) -> Float[Tensor, "*rows d_sae"]:
        """Latent activations f(x)."""
        return self.hook_sae_acts_post(self.activation(self.pre_acts(x)))

    def decode(self, f: Float[Tensor, "*rows d_sae"]) -> Float[Tensor, "*rows d_in"]:
        """Reconstruction f W_dec + b_dec, in the input's units."""
        return self.hook_sae_recons((f @ self.W_dec + self.b_dec) / self.input_scale)

    def forward(self, x: Float[Tensor, "*rows d_in"]) -> Float[Tensor, "*rows d_in"]:
        x = self.hook_sae_input(x)
        recons = self.decode(self.encode(x))
        self.hook_sae_error(x - recons)
        return recons

    # ----- training ----------------------------------------------------------------------------------
    def training_loss(self, x: Float[Tensor, "rows d_in"], step: int) -> dict[str, Tensor]:
        """{"loss": scalar to minimise, "recons": the reconstruction, ...named parts}; updates the firing counters."""
        raise NotImplementedError

    def scaled_mse(self, x: Float[Tensor, "rows d_in"], recons: Float[Tensor, "rows d_in"]) -> Tensor:
        """Squared error summed over d_in, averaged over rows, in training units (as SAELens)."""
        return ((x - recons) * self.input_scale).pow(2).sum(-1).mean()

    @torch.no_grad()
    def record_firing(self, acts: Float[Tensor, "rows d_sae"]) -> None:
        """Count rows since each latent last fired (reset to 0 where it fired in this batch)."""
        self.update_firing((acts > 0).any(0), acts.shape[0])

    @torch.no_grad()
    def update_firing(self, fired: Bool[Tensor, " d_sae"], n_rows: int) -> None:
        """Add the batch's `n_rows` to every counter and reset those of the latents that `fired`.

        Under data parallelism the batch is the global one: one all-reduce sums the ranks' rows and firing
        flags (a latent fired if it fired on any rank), so every rank's counters, and with them AuxK's and
        resampling's dead latents, are those of one process that saw the whole global batch."""
        ctx = distributed.current()
        if ctx.active:
            both = torch.cat([fired.to(torch.long), torch.tensor([n_rows], dtype=torch.long, device=fired.device)])
            distributed.all_reduce_sum(both, ctx)
            fired, n_rows = both[:-1] > 0, int(both[-1])
        self.rows_since_fired += n_rows
        self.rows_since_fired[fired] = 0

    def dead_mask(self, window_rows: int) -> Bool[Tensor, " d_sae"]:
        """Latents that have not fired on the last `window_rows` training rows."""
        return self.rows_since_fired >= window_rows

    @torch.no_grad()
    def remove_parallel_grad(self) -> None:
        """Project each decoder row's gradient off the row (call after backward, before the step)."""
        if self.W_dec.grad is None:
            return
        w = self.W_dec / self.W_dec.norm(dim=1, keepdim=True)
        self.W_dec.grad -= (self.W_dec.grad * w).sum(1, keepdim=True) * w

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Renormalise every decoder row to unit norm (call after the step)."""
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)

    @torch.no_grad()
    def resample(
        self,
        dead: Bool[Tensor, " d_sae"],
        x: Float[Tensor, "rows d_in"],
        optimizer: torch.optim.Optimizer | None,
        generator: torch.Generator,
    ) -> int:
        """Towards Monosemanticity resampling of the `dead` latents from the inputs `x`; returns how many.

        Inputs are drawn with probability proportional to the square of their loss ||x - x_hat||^2;
        a dead latent's decoder row becomes that input (centred by b_dec) at unit norm, its encoder
        column the same direction at 0.2 x the mean encoder norm of the alive latents, its encoder
        bias 0, and the Adam moments of all three are reset.
        """
        n = int(dead.sum())
        if n == 0:
            return 0
        x_scaled = x * self.input_scale
        loss = (x_scaled - self.decode(self.encode(x)) * self.input_scale).pow(2).sum(-1)
        weights = loss.pow(2)
        if not weights.sum() > 0:
            weights = torch.ones_like(weights)
        picked = torch.multinomial(weights.cpu(), n, replacement=True, generator=generator).to(x.device)  # a CPU generator
        v = x_scaled[picked] - self.b_dec
        v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)
        enc_norms = self.W_enc.norm(dim=0)
        alive_norm = enc_norms[~dead].mean().item() if bool((~dead).any()) else 1.0
        self.W_dec[dead] = v
        self.W_enc[:, dead] = v.T * (0.2 * alive_norm)
        self.b_enc[dead] = 0.0
        self.rows_since_fired[dead] = 0
        if optimizer is not None:
            for param, index in ((self.W_dec, (dead,)), (self.W_enc, (slice(None), dead)), (self.b_enc, (dead,))):
                for moment in optimizer.state.get(param, {}).values():
                    if isinstance(moment, Tensor) and moment.shape == param.shape:
                        moment[index] = 0.0
        return n

    @torch.no_grad()
    def initialize_from_sample(self, x: Float[Tensor, "rows d_in"]) -> None:
        """Set `input_scale` so that E||x||^2 = d_in on the sample, and b_dec to its (scaled) mean."""
        mean_sq = x.pow(2).sum(-1).mean()
        if not mean_sq > 0:
            raise ValueError(f"the activations at {self.cfg.hook_name!r} are all zero; nothing to train on")
        self.input_scale.fill_((self.cfg.d_in / mean_sq).sqrt().item())
        self.b_dec.copy_(x.mean(0) * self.input_scale)

    @torch.no_grad()
    def fold_input_scale(self) -> None:
        """Fold `input_scale` into the biases: same decoder directions, latents in raw units, scale 1."""
        s = self.input_scale.clone()
        self.b_enc /= s
        self.b_dec /= s
        self.input_scale.fill_(1.0)
