"""The MIIII transformer: a bidirectional encoder over [x0, x1, '='] read out at '=' by one
unembedding per task (one task per prime modulus q < p).

Token ids: the digits 0..p-1 are their own ids, '=' is p (``d_vocab = p + 1``, ``n_ctx = 3``); with
``digit_tokens="separate"`` the second digit d has id p + d and '=' is 2p (``d_vocab = 2p + 1``).
``forward(tokens [batch, 3]) -> logits [batch, n_tasks, max_classes]``; the logits of task t beyond its
``n_classes[t]`` classes are set to -1e9, so ``argmax(-1)`` is always a valid class.

Hooks (TransformerLens names; B = batch, 3 positions, T = n_tasks, C = max classes = d_vocab_out):
    hook_embed, hook_pos_embed                              [B, 3, d_model]
    blocks.{l}.hook_resid_pre                               [B, 3, d_model]
    blocks.{l}.attn.hook_k / hook_v                         [B, 3, n_heads, d_head]
    blocks.{l}.attn.hook_q / hook_z                         [B, P, n_heads, d_head]
    blocks.{l}.attn.hook_attn_scores / hook_pattern         [B, n_heads, P, 3]   (not causal)
    blocks.{l}.hook_attn_out / hook_resid_mid               [B, P, d_model]
    blocks.{l}.mlp.hook_pre / hook_post                     [B, P, d_mlp]
    blocks.{l}.hook_mlp_out / hook_resid_post               [B, P, d_model]
    blocks.{l}.ln1 .hook_scale [B, N, 1], .hook_normalized [B, N, d_model]   (with LayerNorm; N = 3 pre-LN, P post-LN)
    blocks.{l}.ln2 .hook_scale [B, P, 1], .hook_normalized [B, P, d_model]   (with LayerNorm)
    ln_final.hook_scale [B, 1, 1] / hook_normalized [B, 1, d_model]         (pre-LN only)
    hook_resid_final                                        [B, d_model]        stream at '=' read out
    unembed.hook_logits                                     [B, T, C]           raw per-task logits

P = 3 in every block but the last, where P = 1: only '=' is read out, so the last block queries
from '=' alone (its attention still reads keys and values at all three positions) and runs its MLP
there (position index -1 addresses '=' in every hook; nothing read out changes, and it saves about a
third of a training step).

Parameters of the readout: ``unembed.W_U`` [T, d_model, C] and ``unembed.b_U`` [T, C].
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

from ktlens.models.base import HookedModel, check_token_ids
from ktlens.models.components import Block, Embed, LayerNorm, PosEmbed
from ktlens.models.config import ModelConfig
from ktlens.tasks.remainders import RemaindersSpec, encode
from ktlens.validation import FieldError

N_POS = 3  # x0, x1, '='


class MultiUnembed(nn.Module):
    """One unembedding per task: residual [B, d_model] -> logits [B, T, C]."""

    def __init__(self, n_tasks: int, d_model: int, n_out: int, init_std: float, use_bias: bool):
        super().__init__()
        self.W_U = nn.Parameter(torch.randn(n_tasks, d_model, n_out) * init_std)
        self.b_U = nn.Parameter(torch.zeros(n_tasks, n_out), requires_grad=use_bias)
        self.hook_logits = HookPoint()  # [batch, n_tasks, d_vocab_out]

    def forward(self, x: Float[Tensor, "batch d_model"]) -> Float[Tensor, "batch n_tasks d_vocab_out"]:
        return self.hook_logits(torch.einsum("bd,tdc->btc", x, self.W_U) + self.b_U)


class RemaindersTransformer(HookedModel):
    """Encoder for the MIIII tasks; see the module docstring for hooks and shapes.

    ``spec`` is a ``RemaindersSpec`` or its dict (``model.spec`` the typed spec, ``model.task_spec`` its
    dict); ``model.p``, ``model.moduli`` (the q of each task), ``model.n_classes`` and
    ``model.predict(n)`` expose the task.
    """

    model_type = "miiii"
    spec_type = RemaindersSpec
    optional_config_fields = frozenset({"digit_base", "magnitude_features", "d_vocab_src", "n_ctx_src"})

    def __init__(self, cfg: ModelConfig, spec: RemaindersSpec | dict[str, Any]):
        spec = spec if isinstance(spec, RemaindersSpec) else RemaindersSpec.from_dict(spec)
        super().__init__(cfg, spec.to_dict())
        self.spec = spec
        self.p = self.spec.p
        self.moduli = self.spec.moduli
        self.n_classes = self.spec.n_classes
        expected = {"d_vocab": self.spec.d_vocab, "n_ctx": N_POS, "d_vocab_out": max(self.n_classes), "d_vocab_src": 0, "n_ctx_src": 0}
        for name, value in expected.items():
            if getattr(cfg, name) != value:
                raise FieldError(name, getattr(cfg, name), f"does not fit the task p={self.p}: expected {value}")
        if cfg.digit_base or cfg.magnitude_features:  # the MIIII embeddings have no number features
            name = "digit_base" if cfg.digit_base else "magnitude_features"
            raise FieldError(name, getattr(cfg, name), "is not supported by the MIIII model (must be 0 / false)")
        torch.manual_seed(cfg.seed)
        self.embed = Embed(cfg.d_vocab, cfg.d_model, cfg.init_std)
        self.pos_embed = PosEmbed(N_POS, cfg.d_model, cfg.init_std)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, causal=False, cross=False) for _ in range(cfg.n_layers))
        self.ln_final = LayerNorm(cfg.d_model) if cfg.normalization == "pre" else nn.Identity()
        self.unembed = MultiUnembed(len(self.moduli), cfg.d_model, cfg.d_vocab_out, cfg.init_std, cfg.use_bias)
        valid = torch.arange(cfg.d_vocab_out)[None, :] < torch.tensor(self.n_classes)[:, None]  # [T, C]
        self.register_buffer("class_mask", valid, persistent=False)
        self.hook_embed = HookPoint()  # [batch, 3, d_model]
        self.hook_pos_embed = HookPoint()  # [batch, 3, d_model]
        self.hook_resid_final = HookPoint()  # [batch, d_model]
        self.setup()

    # ----- TransformerLens' weight surface ----------------------------------------------------------------
    @property
    def W_U(self) -> Float[Tensor, "n_tasks d_model d_vocab_out"]:
        """One unembedding per task (task t is modulus `moduli[t]`): logits[:, t] = resid_final @ W_U[t] + b_U[t]."""
        return self.unembed.W_U

    @property
    def b_U(self) -> Float[Tensor, "n_tasks d_vocab_out"]:
        return self.unembed.b_U

    def task_index(self, q: int) -> int:
        """Index of the task of modulus q, or ValueError naming q."""
        if q not in self.moduli:
            raise ValueError(f"task q={q!r} is not one of this model's moduli {list(self.moduli)}")
        return list(self.moduli).index(q)

    def tokens_to_residual_directions(self, tokens: Any, task: int | None = None) -> Tensor:
        """The vector the logit of class `tokens` of task modulus `task` reads from the normalised final
        residual at '=' (`ln_final.w * W_U[t][:, c]`). Every task has its own unembedding, so `task` is
        required; TransformerLens' `cache.logit_attrs` cannot pass it: use
        `ktlens.analysis.attribution.direct_logit_attribution` instead."""
        if task is None:
            raise ValueError(
                "the MIIII model has one unembedding per task: pass task=q (one of "
                f"{list(self.moduli)}), or use ktlens.analysis.attribution.direct_logit_attribution"
            )
        t = self.task_index(task)
        ids = torch.as_tensor(tokens, device=self.W_U.device)
        if ids.is_floating_point() or (ids.numel() and (ids.min() < 0 or ids.max() >= self.n_classes[t])):
            raise ValueError(f"tokens must be classes 0..{self.n_classes[t] - 1} of task q={task}, got {tokens!r}")
        directions = self.W_U[t][:, ids].movedim(0, -1)
        if isinstance(self.ln_final, LayerNorm):
            directions = directions * self.ln_final.w
        return directions

    def to_str_tokens(self, tokens: Any) -> list[str] | list[list[str]]:
        """Readable input: `x0=3 x1=5 =` (x0 the high digit of n = x0 * p + x1, whatever the digit order)."""
        ids = torch.as_tensor(tokens)
        if ids.ndim == 2:
            return [self.to_str_tokens(row) for row in ids]
        if ids.shape != (N_POS,):
            raise ValueError(f"tokens must have shape [3] or [batch, 3], got {tuple(ids.shape)}")
        first, second, eq = (int(t) for t in ids)
        if self.spec.digit_tokens == "separate":
            second -= self.p
        names = ("x0", "x1") if self.spec.digit_order == "msd" else ("x1", "x0")
        return [f"{names[0]}={first}", f"{names[1]}={second}", "=" if eq == self.spec.eq_token else f"?{eq}"]

    @classmethod
    def create(cls, spec: RemaindersSpec | dict[str, Any], **model_kwargs: Any) -> "RemaindersTransformer":
        """A model fitting ``spec`` (a RemaindersSpec or its dict); ``model_kwargs`` go to ModelConfig."""
        if isinstance(spec, dict):
            spec = RemaindersSpec.from_dict(spec)
        cfg = ModelConfig(d_vocab=spec.d_vocab, d_vocab_out=max(spec.n_classes), n_ctx=N_POS, **model_kwargs)
        return cls(cfg, spec)

    def forward(self, tokens: Int[Tensor, "..."]) -> Float[Tensor, "batch n_tasks d_vocab_out"]:  # [batch, 3], else ValueError
        if tokens.ndim != 2 or tokens.shape[1] != N_POS:
            raise ValueError(f"tokens must have shape [batch, 3], got {tuple(tokens.shape)}")
        check_token_ids(tokens, self.cfg.d_vocab, "input")
        self.sync_norms()
        resid = self.drop(self.hook_embed(self.embed(tokens)) + self.hook_pos_embed(self.pos_embed(tokens)))
        for block in self.blocks[:-1]:
            resid = block(resid)
        resid = self.blocks[-1](resid, last_only=True)  # only '=' is read out
        final = self.hook_resid_final(self.ln_final(resid)[:, -1])
        logits = self.unembed(final)
        return logits.masked_fill(~self.class_mask, -1e9)

    # ----- user API ----------------------------------------------------------------------------------
    def check_n(self, n: Any) -> np.ndarray:
        """n as a 1-D int64 array, or ValueError naming the first value that is not an integer in [0, p^2)."""
        if isinstance(n, (bool, np.bool_)):
            raise ValueError(f"n must be an integer or an array of integers, got {n!r}")
        if isinstance(n, numbers.Integral):
            arr = np.array([int(n)], dtype=np.int64)
        else:
            try:
                raw = np.atleast_1d(np.asarray(n))
            except Exception:  # ragged input and the like
                raise ValueError(f"n must be an integer or an array of integers, got {n!r}") from None
            if raw.ndim != 1 or raw.dtype.kind not in "iu":
                values = raw.ravel().tolist()
                bad = next((v for v in values if not isinstance(v, (int, float)) or isinstance(v, bool)), None)
                if bad is None:  # floats: name the first one that is not a whole number
                    bad = next((v for v in values if isinstance(v, float) and not v.is_integer()), values[0] if values else n)
                if raw.ndim > 1:
                    bad = f"an array of shape {raw.shape}"
                raise ValueError(f"n must be an integer or a 1-D array of integers, got {bad!r}")
            arr = raw.astype(np.int64)
        bad = np.flatnonzero((arr < 0) | (arr >= self.p**2))
        if bad.size:
            raise ValueError(f"n={arr[bad[0]]} (index {bad[0]}) is outside 0..{self.p**2 - 1} (p={self.p})")
        return arr

    def tokens_for(self, n: Any) -> Int[Tensor, "batch 3"]:
        """Input tokens of the numbers n."""
        return torch.as_tensor(encode(self.spec, self.check_n(n)), device=self.device)

    @torch.no_grad()
    def predict(self, n: Any, batch_size: int = 8192) -> np.ndarray:
        """Predicted class of every task for each n: int array [N, n_tasks] (column t is task moduli[t])."""
        tokens = self.tokens_for(n)
        was_training = self.training
        self.eval()
        try:
            out = [self(tokens[i : i + batch_size]).argmax(-1).cpu() for i in range(0, len(tokens), batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(out).numpy().astype(np.int64)
