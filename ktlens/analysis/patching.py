"""Activation patching for any ktlens model, on top of `transformer_lens.patching`.

TransformerLens' ready-made helpers (`get_act_patch_resid_pre`, ...) take the position range from the
token tensor. That is right for the MIIII encoder (tokens [batch, 3], hooks [batch, 3, ...]) but not
for the K-theory encoder-decoder, whose packed tokens carry 3 source ids before the L label positions.
`patch_by_position` reads the position count from the activation itself and hands TransformerLens an
explicit index table, so one call works for both models.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import patching
from transformer_lens.utilities import get_act_name

from ktlens.models.base import HookedModel


def patch_by_position(
    model: HookedModel,
    clean_tokens: Int[Tensor, "batch tok"],
    corrupted_tokens: Int[Tensor, "..."],
    activation: str,
    metric: Callable[[Tensor], Float[Tensor, ""]],
) -> Float[Tensor, "layer pos"]:
    """Metric of the corrupted run with `activation` (e.g. "resid_pre", "resid_mid_cross", "mlp_out")
    replaced by its clean value at one (layer, position) at a time.

    `corrupted_tokens` must have the shape of `clean_tokens` (a ValueError says so otherwise). `metric` maps
    logits to a scalar (e.g. the logit of the clean answer). `pos` counts the positions of the activation.
    The model must be in eval mode.
    """
    if clean_tokens.shape != corrupted_tokens.shape:
        raise ValueError(f"clean and corrupted tokens differ in shape: {tuple(clean_tokens.shape)} vs {tuple(corrupted_tokens.shape)}")
    names = [get_act_name(activation, layer) for layer in range(model.cfg.n_layers)]
    missing = [n for n in names if n not in model.hook_dict]
    if missing:
        raise ValueError(f"activation {activation!r} has no hook {missing[0]!r} in this model")
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(clean_tokens, names_filter=names)
    n_pos = clean_cache[names[0]].shape[1]
    index_df = patching.make_df_from_ranges([model.cfg.n_layers, n_pos], ["layer", "pos"])
    with torch.no_grad():
        flat = patching.generic_activation_patch(
            model, corrupted_tokens, clean_cache, metric, patching.layer_pos_patch_setter, activation, index_df=index_df
        )
    return flat.view(model.cfg.n_layers, n_pos)


def patch_hooks(
    model: HookedModel,
    clean_tokens: Int[Tensor, "batch tok"],
    corrupted_tokens: Int[Tensor, "batch tok"],
    hook_names: list[str],
) -> Float[Tensor, "batch *logit_dims"]:
    """Logits of the corrupted run with the named hooks replaced, at every position, by their clean values."""
    with torch.no_grad():
        _, cache = model.run_with_cache(clean_tokens, names_filter=hook_names)
        return model.run_with_hooks(corrupted_tokens, fwd_hooks=[(h, lambda act, hook: cache[hook.name]) for h in hook_names])
