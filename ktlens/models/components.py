"""Transformer parts with TransformerLens hook points.

Every tensor a researcher may want to read or patch passes through a `HookPoint`; the comment beside
each hook gives its shape. Names match TransformerLens (`attn.hook_pattern`, `mlp.hook_post`, ...), so
`transformer_lens.utilities.get_act_name` finds them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

from ktlens.models.config import ModelConfig


def digit_features(n_values: int, n_numeric: int, base: int) -> Float[Tensor, "n_values n_features"]:
    """One-hot base-`base` digits of 0..n_numeric-1 (rows n_numeric.. are zero: special tokens)."""
    n_digits = max(1, math.ceil(math.log(max(n_numeric, 2), base)))
    values = torch.arange(n_numeric)
    feats = torch.zeros(n_values, n_digits * base)
    for k in range(n_digits):
        feats[torch.arange(n_numeric), k * base + (values // base**k) % base] = 1.0
    return feats


def magnitude_features(n_values: int, n_numeric: int) -> Float[Tensor, "n_values 2"]:
    """[log n / log N, n / N] for the numbers n = 0..N-1 (N = n_numeric; log 0 taken as 0); special
    tokens (rows N..) are zero. A learned vector per column lets magnitudes add in log space
    (r * e / p is log r + log e - log p) and counts add linearly."""
    values = torch.arange(n_numeric, dtype=torch.float64)
    feats = torch.zeros(n_values, 2, dtype=torch.float64)
    feats[:n_numeric, 0] = values.clamp(min=1).log() / math.log(max(n_numeric - 1, 2))
    feats[:n_numeric, 1] = values / max(n_numeric - 1, 1)
    return feats.float()


def register_number_features(
    module: nn.Module, n_values: int, n_numeric: int, d_model: int, init_std: float, digit_base: int, magnitude: bool
) -> None:
    """Give `module` the fixed features of its number tokens (buffers `digits`, `magnitude`) and one
    learned [n_features, d_model] matrix per kind (`W_digits`, `W_magnitude`)."""
    kinds = {}
    if digit_base:
        kinds["digits"] = digit_features(n_values, n_numeric, digit_base)
    if magnitude:
        kinds["magnitude"] = magnitude_features(n_values, n_numeric)
    for name, feats in kinds.items():
        module.register_buffer(name, feats, persistent=False)
        setattr(module, f"W_{name}", nn.Parameter(torch.randn(feats.shape[1], d_model) * init_std))


def number_feature_vectors(module: nn.Module) -> list[Float[Tensor, "n_values d_model"]]:
    """`features @ W_features` for each kind `register_number_features` gave `module`."""
    return [getattr(module, name) @ getattr(module, f"W_{name}") for name in ("digits", "magnitude") if hasattr(module, f"W_{name}")]


class Embed(nn.Module):
    """Token embedding: ids -> vectors.

    The first `n_numeric` token ids are numbers. With `digit_base`, the embedding adds
    `digits @ W_digits`: each number also gets a learned vector per base-b digit, so numbers that share
    digits share structure. With `magnitude`, it adds `magnitude @ W_magnitude`: learned directions
    scaled by log n and by n (see `magnitude_features`). `W_E_eff` is the sum.
    """

    def __init__(
        self, d_vocab: int, d_model: int, init_std: float, digit_base: int = 0, n_numeric: int = 0, magnitude: bool = False
    ):
        super().__init__()
        self.W_E = nn.Parameter(torch.randn(d_vocab, d_model) * init_std)
        register_number_features(self, d_vocab, n_numeric, d_model, init_std, digit_base, magnitude)

    @property
    def W_E_eff(self) -> Float[Tensor, "d_vocab d_model"]:
        w = self.W_E
        for vectors in number_feature_vectors(self):
            w = w + vectors
        return w

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        return F.embedding(tokens, self.W_E_eff)


class PosEmbed(nn.Module):
    """Learned absolute position embedding."""

    def __init__(self, n_ctx: int, d_model: int, init_std: float):
        super().__init__()
        self.W_pos = nn.Parameter(torch.randn(n_ctx, d_model) * init_std)

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        return self.W_pos[: tokens.shape[1]].unsqueeze(0).expand(tokens.shape[0], -1, -1)


class LayerNorm(nn.Module):
    """LayerNorm with TransformerLens' hooks on the scale and the normalized vector.

    While no hook is attached anywhere in the model (`hookable` False, set by `HookedModel`), it runs
    the fused `F.layer_norm`; with hooks it computes scale and normalized vector step by step so they
    can be read and patched. The two paths agree to float rounding (~1e-7), and every run with hooks
    (caching, patching) takes the same path, so patched and cached runs match exactly.
    """

    def __init__(self, d_model: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.hookable = True
        self.w = nn.Parameter(torch.ones(d_model))
        self.b = nn.Parameter(torch.zeros(d_model))
        self.hook_scale = HookPoint()  # [batch, pos, 1]
        self.hook_normalized = HookPoint()  # [batch, pos, d_model]

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        if not self.hookable:
            return F.layer_norm(x, x.shape[-1:], self.w, self.b, self.eps)
        # variance from one fused vector norm: on CPU ~5x faster than square + mean, ~25x than torch.var_mean
        centered = x - x.mean(-1, keepdim=True)
        sq_norm = torch.linalg.vector_norm(centered, dim=-1, keepdim=True).square()
        scale = self.hook_scale((sq_norm / x.shape[-1] + self.eps).sqrt())
        return torch.addcmul(self.b, self.hook_normalized(centered / scale), self.w)


class Attention(nn.Module):
    """Multi-head attention. `causal` is set per instance; `is_cross` reads keys/values from a source.

    For cross-attention the key axis of `hook_pattern` runs over source positions.
    """

    def __init__(self, cfg: ModelConfig, causal: bool, is_cross: bool = False):
        super().__init__()
        self.causal = causal
        self.is_cross = is_cross
        h, d, dh = cfg.n_heads, cfg.d_model, cfg.d_head
        std = cfg.init_std
        self.W_Q = nn.Parameter(torch.randn(h, d, dh) * std)
        self.W_K = nn.Parameter(torch.randn(h, d, dh) * std)
        self.W_V = nn.Parameter(torch.randn(h, d, dh) * std)
        self.W_O = nn.Parameter(torch.randn(h, dh, d) * std)
        self.b_Q = nn.Parameter(torch.zeros(h, dh), requires_grad=cfg.use_bias)
        self.b_K = nn.Parameter(torch.zeros(h, dh), requires_grad=cfg.use_bias)
        self.b_V = nn.Parameter(torch.zeros(h, dh), requires_grad=cfg.use_bias)
        self.b_O = nn.Parameter(torch.zeros(d), requires_grad=cfg.use_bias)
        self.scale = 1.0 / math.sqrt(dh)
        self.hook_q = HookPoint()  # [batch, query_pos, head, d_head]
        self.hook_k = HookPoint()  # [batch, key_pos, head, d_head]
        self.hook_v = HookPoint()  # [batch, key_pos, head, d_head]
        self.hook_attn_scores = HookPoint()  # [batch, head, query_pos, key_pos]
        self.hook_pattern = HookPoint()  # [batch, head, query_pos, key_pos]
        self.hook_z = HookPoint()  # [batch, query_pos, head, d_head]

    def forward(
        self,
        x: Float[Tensor, "batch query_pos d_model"],
        source: Float[Tensor, "batch key_pos d_model"] | None = None,
    ) -> Float[Tensor, "batch query_pos d_model"]:
        kv_in = x if source is None else source
        h, d_head = self.W_Q.shape[0], self.W_Q.shape[2]
        q = self.hook_q(self._project(x, self.W_Q, self.b_Q))
        k = self.hook_k(self._project(kv_in, self.W_K, self.b_K))
        v = self.hook_v(self._project(kv_in, self.W_V, self.b_V))
        scores = torch.matmul(q.transpose(1, 2), k.permute(0, 2, 3, 1)) * self.scale  # [b, h, q, k]
        if self.causal:
            n_q, n_k = scores.shape[-2:]
            # queries are the last n_q positions of the sequence (all of them in a full self-attention)
            mask = torch.ones(n_q, n_k, dtype=torch.bool, device=x.device).triu(n_k - n_q + 1)
            scores = scores.masked_fill(mask, float("-inf"))
        scores = self.hook_attn_scores(scores)
        pattern = self.hook_pattern(scores.softmax(dim=-1))
        z = self.hook_z(torch.matmul(pattern, v.transpose(1, 2)).transpose(1, 2))  # [b, q, h, d_head]
        return F.linear(z.reshape(*z.shape[:2], h * d_head), self.W_O.reshape(h * d_head, -1).t(), self.b_O)

    @staticmethod
    def _project(
        x: Float[Tensor, "batch pos d_model"], W: Float[Tensor, "head d_model d_head"], b: Float[Tensor, "head d_head"]
    ) -> Float[Tensor, "batch pos head d_head"]:
        """x @ W + b for every head at once, as one fused matrix product."""
        h, d, d_head = W.shape
        return F.linear(x, W.permute(0, 2, 1).reshape(h * d_head, d), b.reshape(h * d_head)).view(*x.shape[:2], h, d_head)


class MLP(nn.Module):
    """Two-layer MLP; `hook_pre`/`hook_post` are the hidden layer before/after the nonlinearity."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        std = cfg.init_std
        self.W_in = nn.Parameter(torch.randn(cfg.d_model, cfg.d_mlp) * std)
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp), requires_grad=cfg.use_bias)
        self.W_out = nn.Parameter(torch.randn(cfg.d_mlp, cfg.d_model) * std)
        self.b_out = nn.Parameter(torch.zeros(cfg.d_model), requires_grad=cfg.use_bias)
        self.act = F.relu if cfg.act_fn == "relu" else F.gelu
        self.hook_pre = HookPoint()  # [batch, pos, d_mlp]
        self.hook_post = HookPoint()  # [batch, pos, d_mlp]

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        pre = self.hook_pre(F.linear(x, self.W_in.t(), self.b_in))
        post = self.hook_post(self.act(pre))
        return F.linear(post, self.W_out.t(), self.b_out)


def make_norm(cfg: ModelConfig) -> nn.Module:
    """LayerNorm when the config normalizes, identity otherwise."""
    return nn.Identity() if cfg.normalization == "none" else LayerNorm(cfg.d_model)


class Block(nn.Module):
    """One transformer block: self-attention, optional cross-attention to a source, MLP.

    With `normalization="post"` each residual add is followed by a LayerNorm (the original
    Transformer); with "pre" each sublayer reads a normalized copy of the stream.
    Hooks (TransformerLens names; the cross-attention ones follow TransformerLens' T5 block):
    `hook_resid_pre` -> `attn` -> `hook_attn_out` -> `hook_resid_mid` -> `cross_attn` ->
    `hook_cross_attn_out` -> `hook_resid_mid_cross` -> `mlp` -> `hook_mlp_out` -> `hook_resid_post`.
    """

    def __init__(self, cfg: ModelConfig, causal: bool, cross: bool):
        super().__init__()
        self.post_norm = cfg.normalization == "post"
        self.attn = Attention(cfg, causal=causal)
        self.ln1 = make_norm(cfg)
        self.cross_attn = Attention(cfg, causal=False, is_cross=True) if cross else None
        self.ln_cross = make_norm(cfg) if cross else None
        self.mlp = MLP(cfg)
        self.ln2 = make_norm(cfg)
        self.drop = nn.Dropout(cfg.dropout)
        self.hook_resid_pre = HookPoint()  # [batch, pos, d_model]
        self.hook_attn_out = HookPoint()  # [batch, pos, d_model]
        self.hook_resid_mid = HookPoint()  # [batch, pos, d_model]
        if cross:
            self.hook_cross_attn_out = HookPoint()  # [batch, pos, d_model]
            self.hook_resid_mid_cross = HookPoint()  # [batch, pos, d_model]
        self.hook_mlp_out = HookPoint()  # [batch, pos, d_model]
        self.hook_resid_post = HookPoint()  # [batch, pos, d_model]

    def _sublayer(self, x, norm, fn, hook_out, hook_resid, rows: slice | None = None):
        """Residual add around `fn`, with the LayerNorm before (pre) or after (post) it; with `rows`, the
        stream keeps only those positions (the ones `fn` returns)."""
        out = self.drop(hook_out(fn(x if self.post_norm else norm(x))))
        kept = x if rows is None else x[:, rows]  # sliced after fn: the same autograd order as an unsliced stream
        return hook_resid(norm(kept + out) if self.post_norm else kept + out)

    def forward(
        self,
        resid: Float[Tensor, "batch pos d_model"],
        source: Float[Tensor, "batch src_pos d_model"] | None = None,
        last_only: bool = False,
    ) -> Float[Tensor, "batch out_pos d_model"]:
        """With `last_only`, only the last position queries (keys and values still span every position) and
        everything after the self-attention runs there: the output has one position (out_pos = 1, else
        out_pos = pos)."""
        resid = self.hook_resid_pre(resid)
        if last_only:
            attend, rows = (lambda x: self.attn(x[:, -1:], source=x)), slice(-1, None)
        else:
            attend, rows = self.attn, None
        resid = self._sublayer(resid, self.ln1, attend, self.hook_attn_out, self.hook_resid_mid, rows)
        if self.cross_attn is not None:
            resid = self._sublayer(
                resid,
                self.ln_cross,
                lambda x: self.cross_attn(x, source),
                self.hook_cross_attn_out,
                self.hook_resid_mid_cross,
            )
        return self._sublayer(resid, self.ln2, self.mlp, self.hook_mlp_out, self.hook_resid_post)


class Unembed(nn.Module):
    """Residual stream -> logits. `W_U_eff` is `W_U` plus, with `digit_base`, `(digits @ W_digits)^T`
    (the logit of a number also sums learned scores of its base-b digits) and, with `magnitude`,
    `(magnitude @ W_magnitude)^T` (a score a * log k + b * k per class k, which peaks at k = -a / b:
    the residual stream can point at a number)."""

    def __init__(
        self, d_model: int, d_vocab_out: int, init_std: float, use_bias: bool = True, digit_base: int = 0, magnitude: bool = False
    ):
        super().__init__()
        self.W_U = nn.Parameter(torch.randn(d_model, d_vocab_out) * init_std)
        self.b_U = nn.Parameter(torch.zeros(d_vocab_out), requires_grad=use_bias)
        register_number_features(self, d_vocab_out, d_vocab_out, d_model, init_std, digit_base, magnitude)

    @property
    def W_U_eff(self) -> Float[Tensor, "d_model d_vocab_out"]:
        w = self.W_U
        for vectors in number_feature_vectors(self):
            w = w + vectors.t()
        return w

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_vocab_out"]:
        return F.linear(x, self.W_U_eff.t(), self.b_U)
