"""`ActivationCache` made right for ktlens models.

TransformerLens' residual decomposition knows self-attention and MLPs only. The K-theory decoder also
has a cross-attention sublayer in every block (`blocks.{l}.hook_cross_attn_out`), and the MIIII
encoder computes its last block at '=' alone, so its hooks have fewer positions than the embeddings.
`KtlensActivationCache` keeps every TransformerLens method and changes these:

- `decompose_resid` also lists each block's cross-attention output (`{l}_cross_attn_out`), and aligns
  positions to the last ones every component has (MIIII: '=' in the last block);
- `accumulated_resid` aligns positions the same way;
- `apply_ln_to_stack` refuses post-LN models (the stream is renormalised after every sublayer: no
  writer adds linearly into the logits);
- `get_full_resid_decomposition` raises, naming `ktlens.analysis.attribution.decompose_final_resid`
  (every self- and cross-attention head, MLP, embedding and bias, through the final LayerNorm).
"""

from __future__ import annotations

from typing import Any

import torch
from transformer_lens import ActivationCache
from transformer_lens.utilities import Slice

__all__ = ["KtlensActivationCache"]

FULL_DECOMPOSITION = "ktlens.analysis.attribution.decompose_final_resid"


def _align(components: list[torch.Tensor]) -> list[torch.Tensor]:
    """Cut every [..., pos, d] component to the last positions they all have (queries are the last ones)."""
    n_pos = min(c.shape[-2] for c in components)
    return [c[..., c.shape[-2] - n_pos :, :] for c in components]


class KtlensActivationCache(ActivationCache):
    """TransformerLens' `ActivationCache` with the decompositions fixed for encoder-decoders (module doc)."""

    def _has_cross(self) -> bool:
        return any(getattr(block, "cross_attn", None) is not None for block in self.model.blocks)

    def _refuse_post_ln(self, what: str) -> None:
        if self.model.cfg.normalization == "post":
            raise ValueError(
                f"{what}: normalization='post' renormalises the residual stream after every sublayer, so its "
                "parts do not add up through a cached scale; use a pre-LN or norm-free model"
            )

    def decompose_resid(
        self,
        layer: int | None = None,
        mlp_input: bool = False,
        mode: str = "all",
        apply_ln: bool = False,
        pos_slice: Any = None,
        incl_embeds: bool = True,
        return_labels: bool = False,
    ) -> Any:
        """The residual stream into `layer` (None: the unembedding) as a stack of its writers:
        embeddings, then per block attention, cross-attention (K-theory) and MLP outputs."""
        self._refuse_post_ln("decompose_resid")
        if mode not in ("all", "mlp", "attn"):
            raise ValueError(f"mode must be 'all', 'mlp' or 'attn', got {mode!r}")
        n_layers = self.model.cfg.n_layers
        layer = n_layers if layer is None or layer == -1 else layer
        if not 0 <= layer <= n_layers:
            raise ValueError(f"layer={layer} is outside 0..{n_layers}")
        pos_slice = pos_slice if isinstance(pos_slice, Slice) else Slice(pos_slice)
        names: list[tuple[str, str]] = []
        if incl_embeds:
            names += [("hook_embed", "embed"), ("hook_pos_embed", "pos_embed")]
        cross = self._has_cross()
        for l in range(layer + (1 if mlp_input else 0)):
            last = l == layer  # only with mlp_input: the sublayers before this layer's MLP
            if mode != "mlp":
                names.append((f"blocks.{l}.hook_attn_out", f"{l}_attn_out"))
                if cross:
                    names.append((f"blocks.{l}.hook_cross_attn_out", f"{l}_cross_attn_out"))
            if mode != "attn" and not last:
                names.append((f"blocks.{l}.hook_mlp_out", f"{l}_mlp_out"))
        components = torch.stack(_align([pos_slice.apply(self[n], dim=-2) for n, _ in names]), dim=0)
        if apply_ln:
            components = self.apply_ln_to_stack(components, layer, pos_slice=pos_slice, mlp_input=mlp_input)
        return (components, [label for _, label in names]) if return_labels else components

    def accumulated_resid(
        self,
        layer: int | None = None,
        incl_mid: bool = False,
        apply_ln: bool = False,
        pos_slice: Any = None,
        mlp_input: bool = False,
        return_labels: bool = False,
    ) -> Any:
        """The residual stream before each layer (and after the last), as TransformerLens gives it,
        with positions aligned to the last ones every layer has (MIIII: '=')."""
        n_layers = self.model.cfg.n_layers
        layer = n_layers if layer is None or layer == -1 else layer
        pos_slice = pos_slice if isinstance(pos_slice, Slice) else Slice(pos_slice)
        parts, labels = [], []
        for l in range(layer + 1):
            if l == n_layers:
                parts.append(self[f"blocks.{n_layers - 1}.hook_resid_post"])
                labels.append("final_post")
                continue
            parts.append(self[f"blocks.{l}.hook_resid_pre"])
            labels.append(f"{l}_pre")
            if (incl_mid and l < layer) or (mlp_input and l == layer):
                parts.append(self[f"blocks.{l}.hook_resid_mid"])
                labels.append(f"{l}_mid")
        components = torch.stack(_align([pos_slice.apply(c, dim=-2) for c in parts]), dim=0)
        if apply_ln:
            self._refuse_post_ln("accumulated_resid(apply_ln=True)")
            components = self.apply_ln_to_stack(
                components, layer, pos_slice=pos_slice, mlp_input=mlp_input, recompute_ln=layer == n_layers
            )
        return (components, labels) if return_labels else components

    def apply_ln_to_stack(self, residual_stack: torch.Tensor, layer: int | None = None, *args: Any, **kwargs: Any) -> torch.Tensor:
        """TransformerLens' `apply_ln_to_stack` (centre, divide by the cached scale); ValueError for post-LN."""
        self._refuse_post_ln("apply_ln_to_stack")
        return super().apply_ln_to_stack(residual_stack, layer, *args, **kwargs)

    def apply_slice_to_batch_dim(self, batch_slice: Any) -> "KtlensActivationCache":
        """TransformerLens' batch slice, keeping this class (and its fixed decompositions)."""
        sliced = super().apply_slice_to_batch_dim(batch_slice)
        return KtlensActivationCache(sliced.cache_dict, self.model, has_batch_dim=sliced.has_batch_dim)

    def get_full_resid_decomposition(self, *args: Any, **kwargs: Any) -> Any:
        """Not TransformerLens' version (it leaves out cross-attention and the '='-only last block)."""
        raise ValueError(
            f"get_full_resid_decomposition is not defined for ktlens models; use {FULL_DECOMPOSITION}(model, cache), "
            "which lists every embedding, self- and cross-attention head, MLP and bias"
        )
