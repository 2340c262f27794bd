"""Model configuration shared by every ktlens model.

The field names follow TransformerLens' `HookedTransformerConfig`, so TransformerLens tools that read
`model.cfg` (patching, `get_act_name`, head counts) work unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, no_type_check


@no_type_check  # a validating entry point: __post_init__ raises ValueError naming a mistyped field
@dataclass
class ModelConfig:
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
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.normalization not in ("post", "pre", "none"):
            raise ValueError(f"normalization must be 'post', 'pre' or 'none', got {self.normalization!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.d_head == 0:
            self.d_head = self.d_model // self.n_heads

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown ModelConfig fields {sorted(unknown)}")
        return cls(**data)
