"""The K-theory transformer: an encoder-decoder that reads (p, r, e) and writes [n_1, n_2, ...].

The source tokens are the integers p, r, e themselves (one shared source vocabulary, the role given by
the source position). The decoder reads [BOS, n_1, ..., n_{L-1}] and predicts [n_1, ..., n_L] with
masked self-attention over the label sequence and cross-attention to the embedded source.

Input convention: one packed token tensor `[batch, 3 + L]`, source first, then decoder input, so
`run_with_cache`, `run_with_hooks` and TransformerLens' patching all take a single tensor.

Label order: with `spec.label_order = "descending"` the decoder writes [n_L, ..., n_1] instead
(n_1, the one large count, comes last, after every count it is tied to by sum_i i n_i = r(e-1)).
Decoder positions, logits and hooks are then in that order; `generate` and `predict` always return
[n_1, ..., n_L], and `to_model_order` maps a natural-order count array to the decoder's order.

Hooks (shapes for a batch of B, L label positions, S = 3 source positions):
    hook_src_embed, hook_src_pos_embed      [B, S, d_model]   source token / position embeddings
    hook_src                                [B, S, d_model]   what cross-attention reads
    hook_embed, hook_pos_embed              [B, L, d_model]   decoder token / position embeddings
    blocks.{l}.hook_resid_pre / hook_resid_mid / hook_resid_mid_cross / hook_resid_post  [B, L, d_model]
    blocks.{l}.attn.hook_q / hook_k / hook_v / hook_z     [B, L, n_heads, d_head]
    blocks.{l}.attn.hook_attn_scores / hook_pattern        [B, n_heads, L, L]   (causal)
    blocks.{l}.cross_attn.hook_q / hook_z                  [B, L, n_heads, d_head]
    blocks.{l}.cross_attn.hook_k / hook_v                  [B, S, n_heads, d_head]
    blocks.{l}.cross_attn.hook_attn_scores / hook_pattern  [B, n_heads, L, S]
    blocks.{l}.hook_attn_out / hook_cross_attn_out / hook_mlp_out                 [B, L, d_model]
    blocks.{l}.mlp.hook_pre / hook_post                    [B, L, d_mlp]
    blocks.{l}.ln1 / ln_cross / ln2 .hook_scale [B, L, 1], .hook_normalized [B, L, d_model]
    ln_final.hook_scale / hook_normalized  (pre-LN only)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

from ktlens.models.base import HookedModel, check_token_ids
from ktlens.models.components import Block, Embed, LayerNorm, PosEmbed, Unembed
from ktlens.models.config import ModelConfig
from ktlens.tasks.ktheory_spec import LABEL_ORDERS, KTheoryTaskSpec
from ktlens.validation import FieldError

__all__ = ["KTheoryTransformer", "sequence_loss", "N_SRC", "LABEL_ORDERS"]

N_SRC = 3  # source positions: p, r, e


class KTheoryTransformer(HookedModel):
    """Encoder-decoder over (p, r, e) -> summand counts; see the module docstring for its hooks.

    ``spec`` (a :class:`KTheoryTaskSpec` or its JSON dict) fixes the domain, the vocabulary
    (``model.vocab``), the label length and the label order; ``model.spec`` is the typed spec and
    ``model.task_spec`` its JSON dict.
    """

    model_type = "ktheory"
    spec_type = KTheoryTaskSpec

    def __init__(self, cfg: ModelConfig, spec: KTheoryTaskSpec | dict[str, Any]):
        spec = KTheoryTaskSpec.coerce(spec)
        super().__init__(cfg, spec.to_dict())
        self.spec = spec
        self.vocab = spec.vocab
        expected = {
            "d_vocab": self.vocab.tgt_vocab,
            "d_vocab_out": self.vocab.max_count + 1,
            "n_ctx": self.vocab.dec_len,
            "d_vocab_src": self.vocab.src_vocab,
            "n_ctx_src": N_SRC,
        }
        for name, value in expected.items():
            if getattr(cfg, name) != value:
                raise FieldError(
                    name, getattr(cfg, name),
                    f"does not fit the task (max_count={self.vocab.max_count}, seq_len={self.vocab.seq_len}, "
                    f"src_vocab={self.vocab.src_vocab}): expected {value}",
                )
        torch.manual_seed(cfg.seed)
        self.src_embed = Embed(
            cfg.d_vocab_src, cfg.d_model, cfg.init_std, n_numeric=cfg.d_vocab_src, magnitude=cfg.magnitude_features
        )
        self.src_pos_embed = PosEmbed(N_SRC, cfg.d_model, cfg.init_std)
        self.ln_src = LayerNorm(cfg.d_model) if cfg.normalization != "none" else nn.Identity()
        self.embed = Embed(
            cfg.d_vocab, cfg.d_model, cfg.init_std, cfg.digit_base, self.max_count + 1, cfg.magnitude_features
        )
        self.pos_embed = PosEmbed(cfg.n_ctx, cfg.d_model, cfg.init_std)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, causal=True, cross=True) for _ in range(cfg.n_layers))
        self.ln_final = LayerNorm(cfg.d_model) if cfg.normalization == "pre" else nn.Identity()
        self.unembed = Unembed(
            cfg.d_model, cfg.d_vocab_out, cfg.init_std, cfg.use_bias, cfg.digit_base, cfg.magnitude_features
        )
        self.hook_src_embed = HookPoint()  # [batch, 3, d_model]
        self.hook_src_pos_embed = HookPoint()  # [batch, 3, d_model]
        self.hook_src = HookPoint()  # [batch, 3, d_model]
        self.hook_embed = HookPoint()  # [batch, pos, d_model]
        self.hook_pos_embed = HookPoint()  # [batch, pos, d_model]
        self.setup()

    # ----- the task, read from the spec ---------------------------------------------------------------
    @property
    def seq_len(self) -> int:
        """Label length L (the counts n_1..n_L)."""
        return self.vocab.seq_len

    @property
    def n_scratch(self) -> int:
        """Scratch values the decoder writes before the counts (`spec.scratch`, e.g. r*e); usually 0."""
        return self.vocab.n_scratch

    @property
    def dec_len(self) -> int:
        """Decoder positions: n_scratch + L."""
        return self.vocab.dec_len

    @property
    def max_count(self) -> int:
        return self.vocab.max_count

    @property
    def bos(self) -> int:
        return self.vocab.bos

    @property
    def pad(self) -> int:
        return self.vocab.pad

    @property
    def primes(self) -> list[int]:
        return list(self.spec.primes)

    @property
    def r_max(self) -> int:
        return self.spec.r_max

    @property
    def e_max(self) -> int:
        return self.spec.e_max

    @property
    def label_order(self) -> str:
        return self.spec.label_order

    # ----- TransformerLens' weight surface, with the encoder-decoder's extra parts ------------------------
    @property
    def W_E_src(self) -> Float[Tensor, "d_vocab_src d_model"]:
        """Source (p, r, e) token embedding as used (with magnitude features added)."""
        return self.src_embed.W_E_eff

    @property
    def W_pos_src(self) -> Float[Tensor, "3 d_model"]:
        """Source position embedding: rows p, r, e."""
        return self.src_pos_embed.W_pos

    @property
    def W_Q_cross(self) -> Float[Tensor, "n_layers n_heads d_model d_head"]:
        return self._stack("cross_attn", "W_Q")

    @property
    def W_K_cross(self) -> Float[Tensor, "n_layers n_heads d_model d_head"]:
        return self._stack("cross_attn", "W_K")

    @property
    def W_V_cross(self) -> Float[Tensor, "n_layers n_heads d_model d_head"]:
        return self._stack("cross_attn", "W_V")

    @property
    def W_O_cross(self) -> Float[Tensor, "n_layers n_heads d_head d_model"]:
        return self._stack("cross_attn", "W_O")

    @property
    def b_Q_cross(self) -> Float[Tensor, "n_layers n_heads d_head"]:
        return self._stack("cross_attn", "b_Q")

    @property
    def b_K_cross(self) -> Float[Tensor, "n_layers n_heads d_head"]:
        return self._stack("cross_attn", "b_K")

    @property
    def b_V_cross(self) -> Float[Tensor, "n_layers n_heads d_head"]:
        return self._stack("cross_attn", "b_V")

    @property
    def b_O_cross(self) -> Float[Tensor, "n_layers d_model"]:
        return self._stack("cross_attn", "b_O")

    @property
    def W_U(self) -> Float[Tensor, "d_model d_vocab_out"]:
        """Unembedding as used (with any number features added); logits = ln_final(resid) @ W_U + b_U."""
        return self.unembed.W_U_eff

    @property
    def b_U(self) -> Float[Tensor, "d_vocab_out"]:
        return self.unembed.b_U

    def tokens_to_residual_directions(self, tokens: Any) -> Tensor:
        """The vector each count token's logit reads from the *normalised* final residual:
        `ln_final.w * W_U[:, t]` ([d_model], or [*tokens.shape, d_model]). With it TransformerLens'
        `cache.logit_attrs(stack)` gives each component's logit contribution up to the constant
        `ln_final.b @ W_U[:, t] + b_U[t]` (see `ktlens.analysis.attribution` for the exact sum)."""
        ids = torch.as_tensor(tokens, device=self.W_U.device)
        if ids.is_floating_point() or (ids.numel() and (ids.min() < 0 or ids.max() >= self.cfg.d_vocab_out)):
            raise ValueError(f"tokens must be count ids 0..{self.cfg.d_vocab_out - 1}, got {tokens!r}")
        directions = self.W_U[:, ids].movedim(0, -1)
        if isinstance(self.ln_final, LayerNorm):
            directions = directions * self.ln_final.w
        return directions

    @property
    def count_positions(self) -> range:
        """Decoder positions that predict counts (n_scratch..dec_len-1; all of them without scratch)."""
        return range(self.n_scratch, self.dec_len)

    @property
    def n_domain(self) -> int:
        """Triples in the trained domain (primes x 1..r_max x 1..e_max, with r*e <= re_max if bounded)."""
        return len(self.domain_triples()[0])

    def domain_triples(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """p, r, e of every triple of the trained domain (p outer, then r, then e), r*e <= re_max if bounded."""
        from ktlens.tasks.ktheory_data import domain_triples

        return domain_triples(self.primes, self.r_max, self.e_max, self.spec.re_max)

    def targets(self, p: Any, r: Any, e: Any) -> Int[Tensor, "batch dec_len"]:
        """True id at every decoder position (scratch values first, if any, then the counts in the decoder's
        order): what teacher-forced logits are scored against."""
        from ktlens.tasks.ktheory import summand_count_table

        p_arr, r_arr, e_arr = self.check_domain(p, r, e)
        counts = summand_count_table(p_arr, r_arr, e_arr, length=self.seq_len)
        ids = self.decoder_targets(p_arr, r_arr, e_arr, counts)
        return torch.as_tensor(np.ascontiguousarray(ids), dtype=torch.long, device=self.device)

    # ----- reading the packed layout ------------------------------------------------------------------
    def count_index(self, position: int) -> int:
        """i of the count n_i that decoder position `position` predicts (positions 0..n_scratch-1, if any,
        predict scratch values and have none)."""
        if not self.n_scratch <= position < self.dec_len:
            raise ValueError(f"decoder position {position} is outside the count positions {self.n_scratch}..{self.dec_len - 1}")
        k = position - self.n_scratch
        return k + 1 if self.label_order == "ascending" else self.seq_len - k

    def position_labels(self) -> list[str]:
        """What each decoder position predicts, in the model's order (descending: ["n_9", ..., "n_1"],
        after the scratch names, e.g. "re", when the decoder writes scratch values first)."""
        return self.spec.scratch_labels() + [f"n_{self.count_index(k)}" for k in range(self.n_scratch, self.dec_len)]

    def to_str_tokens(self, tokens: Any) -> list[str] | list[list[str]]:
        """Readable packed tokens: `p=3 r=4 e=9 BOS n_9=0 ... n_2=5` (decoder inputs named by the count
        they hold: the previous position's label). A [batch, 3 + k] tensor gives one list per row."""
        ids = torch.as_tensor(tokens)
        if ids.ndim == 2:
            return [self.to_str_tokens(row) for row in ids]
        if ids.ndim != 1 or not N_SRC < len(ids) <= N_SRC + self.dec_len:
            raise ValueError(f"tokens must have shape [3 + k] or [batch, 3 + k] with 1 <= k <= {self.dec_len}, got {tuple(ids.shape)}")
        values = [int(t) for t in ids]
        out = [f"{name}={v}" for name, v in zip("pre", values[:N_SRC])]
        for j, v in enumerate(values[N_SRC:]):
            if j == 0:
                out.append("BOS" if v == self.bos else f"?{v}")
            else:
                out.append(f"{self.position_labels()[j - 1]}={v}" if v <= self.max_count else f"?{v}")
        return out

    @classmethod
    def create(cls, spec: KTheoryTaskSpec | dict[str, Any], **model_kwargs: Any) -> "KTheoryTransformer":
        """Build a model whose vocabulary and context fit `spec` (a KTheoryTaskSpec or its dict)."""
        spec = KTheoryTaskSpec.coerce(spec)
        vocab = spec.vocab
        cfg = ModelConfig(
            d_vocab=vocab.tgt_vocab,
            d_vocab_out=vocab.max_count + 1,
            n_ctx=vocab.dec_len,
            d_vocab_src=vocab.src_vocab,
            n_ctx_src=N_SRC,
            **model_kwargs,
        )
        return cls(cfg, spec)

    def forward(self, tokens: Int[Tensor, "..."]) -> Float[Tensor, "batch pos d_vocab_out"]:  # [batch, 3 + pos], else ValueError
        """Packed tokens `[p, r, e, BOS, n_1, ..., n_{L-1}]` (or a shorter decoder prefix) -> logits."""
        if tokens.ndim != 2 or not N_SRC < tokens.shape[1] <= N_SRC + self.dec_len:
            raise ValueError(
                f"tokens must have shape [batch, 3 + k] with 1 <= k <= {self.dec_len}, got {tuple(tokens.shape)}"
            )
        src, tgt = tokens[:, :N_SRC], tokens[:, N_SRC:]
        check_token_ids(src, self.vocab.src_vocab, "source")
        check_token_ids(tgt, self.vocab.tgt_vocab, "decoder", offset=N_SRC)
        self.sync_norms()
        source = self.hook_src(
            self.ln_src(self.drop(self.hook_src_embed(self.src_embed(src)) + self.hook_src_pos_embed(self.src_pos_embed(src))))
        )
        resid = self.drop(self.hook_embed(self.embed(tgt)) + self.hook_pos_embed(self.pos_embed(tgt)))
        for block in self.blocks:
            resid = block(resid, source)
        return self.unembed(self.ln_final(resid))

    # ----- user API -------------------------------------------------------------------------------------
    def check_domain(self, p: Any, r: Any, e: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Arrays of p, r, e (each an integer or a 1-D sequence of integers, checked here), or ValueError
        naming the first value outside the trained domain."""
        from ktlens.tasks.ktheory import is_prime

        arrays = []
        for name, values in (("p", p), ("r", r), ("e", e)):
            arr = np.atleast_1d(np.asarray(values))
            if arr.ndim != 1 or arr.dtype.kind not in "iu":
                raise ValueError(f"{name} must be an integer or a 1-D sequence of integers, got {values!r}")
            arrays.append(arr.astype(np.int64))
        p_arr, r_arr, e_arr = arrays
        if not len(p_arr) == len(r_arr) == len(e_arr):
            raise ValueError(f"p, r, e must have equal lengths, got {len(p_arr)}, {len(r_arr)}, {len(e_arr)}")
        outside = np.flatnonzero(~self.spec.contains(p_arr, r_arr, e_arr))
        if not outside.size:
            return p_arr, r_arr, e_arr
        i = int(outside[0])  # name the first value outside the domain and why
        pi, ri, ei = int(p_arr[i]), int(r_arr[i]), int(e_arr[i])
        if not is_prime(pi):
            raise ValueError(f"p={pi} (index {i}) is not prime")
        if pi not in self.spec.primes:
            raise ValueError(f"p={pi} (index {i}) is outside the trained primes {self.primes[0]}..{self.primes[-1]}")
        if not 1 <= ri <= self.r_max:
            raise ValueError(f"r={ri} (index {i}) is outside the trained range 1..{self.r_max}")
        if not 1 <= ei <= self.e_max:
            raise ValueError(f"e={ei} (index {i}) is outside the trained range 1..{self.e_max}")
        raise ValueError(f"r*e={ri * ei} (index {i}) is outside the trained domain r*e <= {self.spec.re_max}")

    def make_batch(self, p: Any, r: Any, e: Any) -> Int[Tensor, "batch src_plus_pos"]:
        """Packed tokens with the true labels as decoder input (teacher forcing), for analysis."""
        from ktlens.tasks.ktheory import summand_count_table

        p_arr, r_arr, e_arr = self.check_domain(p, r, e)
        counts = summand_count_table(p_arr, r_arr, e_arr, length=self.seq_len)
        return self.pack(p_arr, r_arr, e_arr, counts)

    def to_model_order(self, counts: Any) -> Any:
        """Natural-order counts [..., L] (numpy or torch) in the decoder's label order."""
        if self.label_order == "ascending":
            return counts
        return counts.flip(-1) if isinstance(counts, Tensor) else np.asarray(counts)[..., ::-1]

    def pack(self, p: np.ndarray, r: np.ndarray, e: np.ndarray, counts: np.ndarray,
             scratch: np.ndarray | None = None) -> Int[Tensor, "batch src_plus_pos"]:
        """Source ids and decoder input [BOS, n_1, ..., n_{L-1}] (or [BOS, n_L, ..., n_2]) in one tensor,
        encoded by the spec's vocabulary (ValueError on a value outside it). ``scratch`` ``[batch, n_scratch]``
        replaces the triple's own scratch values (a counterfactual's)."""
        src = self.vocab.encode(p, r, e)
        dec = self.vocab.decoder_input(self._model_order_counts(counts), self._scratch(p, r, e, scratch))
        return torch.as_tensor(np.concatenate([src, dec], axis=1), dtype=torch.long, device=self.device)

    def decoder_targets(self, p: np.ndarray, r: np.ndarray, e: np.ndarray, counts: np.ndarray,
                        scratch: np.ndarray | None = None) -> np.ndarray:
        """What each decoder position should predict: the scratch values (if any; ``scratch`` as in `pack`), then
        the counts in the decoder's order; `[batch, n_scratch + L]`."""
        return self.vocab.decoder_target(self._model_order_counts(counts), self._scratch(p, r, e, scratch))

    def _model_order_counts(self, counts: np.ndarray) -> np.ndarray:
        counts = np.asarray(counts)[:, : self.seq_len]
        if counts.shape[-1] < self.seq_len:  # a shorter label: the missing counts are 0
            counts = np.pad(counts, ((0, 0), (0, self.seq_len - counts.shape[-1])))
        return np.ascontiguousarray(self.to_model_order(counts))

    def _scratch(self, p: np.ndarray, r: np.ndarray, e: np.ndarray, scratch: np.ndarray | None) -> np.ndarray:
        """The given scratch values (the vocabulary checks their shape and range), else the triple's own."""
        return self.spec.scratch_values(p, r, e) if scratch is None else np.asarray(scratch, dtype=np.int64)

    @torch.no_grad()
    def generate(self, src: Int[Tensor, "batch 3"]) -> Int[Tensor, "batch pos"]:
        """Greedy autoregressive decoding of all L counts, returned as [n_1, ..., n_L] in either label order."""
        return self.answer(src, self.decode(src))

    @torch.no_grad()
    def decode(self, src: Int[Tensor, "batch 3"]) -> Int[Tensor, "batch dec_len"]:
        """Greedy autoregressive decoding of every decoder position: the scratch values, then the counts in the
        decoder's order (what `targets` holds for the true answer)."""
        tokens = torch.cat([src, torch.full((len(src), 1), self.vocab.bos, device=src.device)], dim=1)
        for _ in range(self.dec_len):
            next_tok = self(tokens)[:, -1].argmax(-1, keepdim=True)
            tokens = torch.cat([tokens, next_tok], dim=1)
        return tokens[:, N_SRC + 1 :]

    def answer(self, src: Int[Tensor, "batch 3"], decoded: Int[Tensor, "batch dec_len"]) -> Int[Tensor, "batch pos"]:
        """The answer [n_1, ..., n_L] read from decoded tokens (`decode`): the counts in label order, with n_1
        from the order identity when the spec says so."""
        counts = self.to_model_order(decoded[:, self.n_scratch :])
        if self.spec.n1_from_order:  # n_1 from sum_i i n_i = r (e - 1), not from the decoder
            levels = torch.arange(1, self.seq_len + 1, device=counts.device)
            order = src[:, 1] * (src[:, 2] - 1)
            n_1 = order - (counts[:, 1:] * levels[1:]).sum(-1)
            counts = counts.clone()
            counts[:, 0] = n_1.clamp(0, self.max_count)
        return counts

    @torch.no_grad()
    def predict(self, p: Any, r: Any, e: Any) -> list[list[int]]:
        """Autoregressive predictions [n_1, n_2, ...] per triple, trailing zeros cut."""
        p_arr, r_arr, e_arr = self.check_domain(p, r, e)
        was_training = self.training
        self.eval()
        src = torch.as_tensor(np.stack([p_arr, r_arr, e_arr], axis=1), device=self.device)
        try:
            out = self.generate(src).cpu().numpy()
        finally:
            self.train(was_training)
        return [self.vocab.decode_counts(row) for row in out]


def sequence_loss(logits: Float[Tensor, "batch pos vocab"], targets: Int[Tensor, "batch pos"]) -> Tensor:
    """Mean cross-entropy over every label position."""
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())
