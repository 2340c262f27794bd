"""Model configuration shared by every ktlens model.

The field names follow TransformerLens' `HookedTransformerConfig`, so TransformerLens tools that read
`model.cfg` (patching, `get_act_name`, head counts) work unchanged.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal, no_type_check

from ktlens.validation import FieldError, check_bool, check_choice, check_int, check_keys, check_real, check_str

ACT_FNS = ("relu", "gelu")
NORMALIZATIONS = ("post", "pre", "none")


@no_type_check  # a validating entry point: __post_init__ raises ValueError naming a mistyped field
@dataclass
class ModelConfig:
    """Every field is checked on construction: a missing, mistyped or out-of-range value is a
    `FieldError` (a `ValueError`) naming the field and the value."""

    d_model: int = 128  # width of the residual stream
    n_layers: int = 1  # number of blocks
    n_heads: int = 4  # attention heads per attention sublayer
    d_mlp: int = 512  # hidden width of each MLP
    d_vocab: int = 16  # input (decoder / encoder) vocabulary size
    d_vocab_out: int = 16  # output classes per position (or largest modulus for per-task heads)
    n_ctx: int = 8  # number of input positions
    d_vocab_src: int = 0  # source vocabulary size (encoder-decoder only)
    n_ctx_src: int = 0  # number of source positions (encoder-decoder only)
    normalization: Literal["post", "pre", "none"] = "post"  # LN after each residual add, before, or none
    dropout: float = 0.0  # dropout on every sublayer output and on the embeddings
    use_bias: bool = True  # biases in attention, MLP and unembedding
    act_fn: Literal["relu", "gelu"] = "relu"
    digit_base: int = 0  # > 0: count tokens also get learned per-digit (base b) embedding/unembedding vectors
    magnitude_features: bool = False  # number tokens also get learned directions scaled by log n and n
    init_std: float = 0.02  # std of the normal initialisation of weights
    seed: int = 0  # seed of the weight initialisation
    device: str = "cpu"
    # Read by TransformerLens utilities; derived in __post_init__ where left unset.
    d_head: int = 0
    n_key_value_heads: int | None = None
    positional_embedding_type: str = "standard"
    extra: dict[str, Any] = field(default_factory=dict)  # model-specific settings (e.g. moduli)

    def __post_init__(self) -> None:
        for name in ("d_model", "n_layers", "n_heads", "d_mlp", "d_vocab", "d_vocab_out", "n_ctx"):
            check_int(name, getattr(self, name), minimum=1)
        for name in ("d_vocab_src", "n_ctx_src", "seed"):
            check_int(name, getattr(self, name), minimum=0)
        check_choice("normalization", self.normalization, NORMALIZATIONS)
        check_choice("act_fn", self.act_fn, ACT_FNS)
        check_choice("positional_embedding_type", self.positional_embedding_type, ("standard",))
        self.dropout = check_real("dropout", self.dropout, 0.0, 1.0, high_open=True)
        self.init_std = check_real("init_std", self.init_std, 0.0, math.inf, low_open=True)
        check_bool("use_bias", self.use_bias)
        check_bool("magnitude_features", self.magnitude_features)
        if check_int("digit_base", self.digit_base, minimum=0) == 1:
            raise FieldError("digit_base", self.digit_base, "must be 0 (off) or a base >= 2")
        check_str("device", self.device)
        if not isinstance(self.extra, dict):
            raise FieldError("extra", self.extra, "must be a dict")
        if self.d_model % self.n_heads:
            raise FieldError("d_model", self.d_model, f"is not divisible by n_heads={self.n_heads}", ("n_heads",))
        if check_int("d_head", self.d_head, minimum=0) == 0:
            self.d_head = self.d_model // self.n_heads
        if self.n_key_value_heads is not None and check_int("n_key_value_heads", self.n_key_value_heads) != self.n_heads:
            # grouped-query attention is not implemented: every head has its own keys and values
            raise FieldError("n_key_value_heads", self.n_key_value_heads, f"must be null or n_heads={self.n_heads}")

    # ----- fields TransformerLens' ActivationCache and patching read (derived, not stored) -------------
    @property
    def normalization_type(self) -> str | None:
        """TransformerLens' name of the norm in front of the unembedding: "LN" (pre-LN), None (none).
        Post-LN models have no additive decomposition; `ktlens.models.cache` refuses them by name."""
        return {"pre": "LN", "post": "LNPost", "none": None}[self.normalization]

    @property
    def attn_only(self) -> bool:
        return False  # every block has an MLP

    @property
    def final_rms(self) -> bool:
        return False

    @property
    def use_attn_result(self) -> bool:
        return False  # per-head results are computed from hook_z and W_O on demand

    @property
    def gated_mlp(self) -> bool:
        return False

    @property
    def parallel_attn_mlp(self) -> bool:
        return False

    @property
    def use_split_qkv_input(self) -> bool:
        return False

    @property
    def use_hook_mlp_in(self) -> bool:
        return False

    @property
    def default_prepend_bos(self) -> bool:
        return False  # ktlens inputs are token ids, never text

    @property
    def original_architecture(self) -> str:
        return "ktlens"

    @property
    def d_vocab_in(self) -> int:
        return self.d_vocab

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Inverse of `to_dict`; FieldError (a ValueError) naming an unknown or missing field."""
        known = [f.name for f in dataclasses.fields(cls)]
        return cls(**check_keys(data, known, what="ModelConfig fields"))
