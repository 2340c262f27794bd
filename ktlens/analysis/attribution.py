"""Exact decomposition of the logits into every writer of the final residual stream; logit lens.

The residual stream read out (K-theory: every decoder position; MIIII: '=') is a sum of writers: the
token and position embeddings, each self-attention head (`z_h @ W_O[h]`), each cross-attention head
(K-theory), each MLP (`post @ W_out`) and the biases `b_O` / `b_out`. The final LayerNorm (pre-LN
models) is linear once its scale is fixed at the cached value, so each writer's logit contribution is
`((x - mean x) / scale) . (w * W_U[:, t])`, and the contributions plus the constant
`b . W_U[:, t] + b_U[t]` add up to the logit exactly (to float rounding). The source side of the
K-theory model enters the decoder only through cross-attention, so the cross-attention heads carry it.
Post-LN models renormalise after every sublayer and have no such decomposition (ValueError).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import ActivationCache

from ktlens.models.base import HookedModel
from ktlens.models.components import LayerNorm

__all__ = [
    "Decomposition",
    "Attribution",
    "decompose_final_resid",
    "direct_logit_attribution",
    "logit_lens",
    "ktheory_targets",
    "miiii_targets",
]


@dataclass
class Decomposition:
    """Writers of the final residual stream: `stack[i]` is the part written by `labels[i]`."""

    stack: Float[Tensor, "component batch pos d_model"]  # pos: decoder positions (K-theory) or '=' (MIIII)
    labels: list[str]


@dataclass
class Attribution:
    """Direct logit attribution: `contributions[i, b, k]` is what `labels[i]` adds to `logits[b, k]`
    (k: a decoder position for K-theory, a task for MIIII); the last label is the constant bias term."""

    contributions: Float[Tensor, "component batch pos"]
    labels: list[str]
    logits: Float[Tensor, "batch pos"]  # the model's own logit of each target
    targets: Int[Tensor, "batch pos"]


def _check_additive(model: HookedModel) -> None:
    if model.cfg.normalization == "post":
        raise ValueError(
            "normalization='post' renormalises the residual stream after every sublayer: the logits are not "
            "a sum of writers (decomposition needs a pre-LN or norm-free model)"
        )


def decompose_final_resid(model: HookedModel, cache: ActivationCache) -> Decomposition:
    """Every writer of the residual stream that the unembedding reads, from a full cache of `model`.

    Order: embed, pos_embed, then per layer l: self-attention heads `L{l}H{h}`, `L{l} attn b_O`,
    cross-attention heads `L{l}C{h}` and `L{l} cross b_O` (K-theory), `L{l} MLP`, `L{l} MLP b_out`.
    The stack sums to the stream before `ln_final` (K-theory: `blocks.{-1}.hook_resid_post`; MIIII:
    its '=' row).
    """
    _check_additive(model)
    parts: list[Tensor] = []
    labels: list[str] = []

    def need(name: str) -> Tensor:
        if name not in cache:
            raise ValueError(f"the cache has no {name!r}: run model.run_with_cache(tokens) without a names_filter")
        return cache[name]

    def add(label: str, x: Tensor) -> None:
        parts.append(x)
        labels.append(label)

    add("embed", need("hook_embed"))
    add("pos_embed", need("hook_pos_embed"))
    for layer, block in enumerate(model.blocks):
        kinds = [("attn", "H", "attn")] + ([("cross_attn", "C", "cross")] if block.cross_attn is not None else [])
        for module_name, letter, word in kinds:
            attn = getattr(block, module_name)
            z = need(f"blocks.{layer}.{module_name}.hook_z")  # [batch, pos, head, d_head]
            heads = torch.einsum("bphd,hdm->hbpm", z, attn.W_O)
            for h in range(heads.shape[0]):
                add(f"L{layer}{letter}{h}", heads[h])
            add(f"L{layer} {word} b_O", attn.b_O.detach().expand_as(heads[0]))
        post = need(f"blocks.{layer}.mlp.hook_post")
        add(f"L{layer} MLP", post @ block.mlp.W_out)
        add(f"L{layer} MLP b_out", block.mlp.b_out.detach().expand(*post.shape[:2], -1))
    n_pos = min(p.shape[1] for p in parts)  # MIIII: the last block runs at '=' only
    stack = torch.stack([p[:, p.shape[1] - n_pos :] for p in parts]).detach()
    if model.model_type == "miiii":
        stack = stack[:, :, -1:]
    return Decomposition(stack=stack, labels=labels)


def _final_scale(model: HookedModel, cache: ActivationCache, n_pos: int) -> Tensor | None:
    if not isinstance(model.ln_final, LayerNorm):
        return None
    scale = cache["ln_final.hook_scale"]  # [batch, pos, 1]
    return scale[:, scale.shape[1] - n_pos :]


def direct_logit_attribution(model: HookedModel, cache: ActivationCache, targets: Int[Tensor, "batch pos"]) -> Attribution:
    """Each writer's contribution to the logit of `targets` (K-theory: [batch, dec_len] ids, one per decoder
    position, e.g. `model.targets`: scratch values, then counts; MIIII: [batch, n_tasks] classes), adding up
    to the logit exactly."""
    decomposition = decompose_final_resid(model, cache)
    stack = decomposition.stack  # [C, B, P, d]
    targets = torch.as_tensor(targets, device=stack.device)
    if model.model_type == "miiii":
        if targets.ndim != 2 or targets.shape[1] != len(model.moduli):
            raise ValueError(f"targets must be [batch, {len(model.moduli)}] classes (one per task), got {tuple(targets.shape)}")
        W = model.W_U.detach()  # [T, d, C]
        directions = W[torch.arange(W.shape[0])[None, :], :, targets]  # [B, T, d]
        bias_U = model.b_U.detach()[torch.arange(W.shape[0])[None, :], targets]  # [B, T]
    else:
        if targets.ndim != 2 or targets.shape[1] != stack.shape[2]:
            raise ValueError(f"targets must be [batch, {stack.shape[2]}] ids (one per decoder position), got {tuple(targets.shape)}")
        directions = model.W_U.detach().t()[targets]  # [B, P, d]
        bias_U = model.b_U.detach()[targets]
    if targets.shape[0] != stack.shape[1]:
        raise ValueError(f"targets have batch {targets.shape[0]} but the cache has batch {stack.shape[1]}")
    scale = _final_scale(model, cache, stack.shape[2])
    if scale is not None:
        stack = (stack - stack.mean(-1, keepdim=True)) / scale
        constant = directions @ model.ln_final.b.detach() + bias_U
        directions = directions * model.ln_final.w.detach()
    else:
        constant = bias_U
    contributions = torch.einsum("cbpd,bpd->cbp", stack.expand(-1, -1, directions.shape[1], -1), directions)
    contributions = torch.cat([contributions, constant[None]])
    labels = decomposition.labels + ["ln_final.b . W_U + b_U" if scale is not None else "b_U"]
    logits = contributions.sum(0)
    return Attribution(contributions=contributions, labels=labels, logits=logits, targets=targets)


def logit_lens(model: HookedModel, cache: ActivationCache, targets: Int[Tensor, "batch pos"]) -> tuple[Float[Tensor, "stage batch pos"], list[str]]:
    """Logit of `targets` read from the stream before each block and after the last (`{l}_pre`,
    `final_post`), through `ln_final` (recomputed on each stream) and the unembedding."""
    _check_additive(model)
    streams = [cache[f"blocks.{l}.hook_resid_pre"] for l in range(model.cfg.n_layers)]
    streams.append(cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"])
    labels = [f"{l}_pre" for l in range(model.cfg.n_layers)] + ["final_post"]
    rows = []
    with torch.no_grad():
        for x in streams:
            if isinstance(model.ln_final, LayerNorm):
                x = torch.nn.functional.layer_norm(x, x.shape[-1:], model.ln_final.w, model.ln_final.b, model.ln_final.eps)
            if model.model_type == "miiii":
                t = torch.arange(len(model.moduli))[None, :]
                logits = torch.einsum("bd,tdc->btc", x[:, -1], model.W_U) + model.b_U
                rows.append(logits[torch.arange(len(targets))[:, None], t, targets])
            else:
                logits = x @ model.W_U + model.b_U
                rows.append(logits.gather(-1, targets[..., None])[..., 0])
    return torch.stack(rows), labels


def ktheory_targets(model: HookedModel, p: list[int], r: list[int], e: list[int]) -> Int[Tensor, "batch dec_len"]:
    """True id at every decoder position: the scratch values (if any), then the counts in the model's label
    order (`model.targets`; ValueError for a triple outside the model's domain)."""
    return model.targets(p, r, e)


def miiii_targets(model: HookedModel, n: list[int]) -> Int[Tensor, "batch task"]:
    """True class of every task for each n."""
    from ktlens.tasks.remainders import targets_for

    return torch.as_tensor(targets_for(model.spec, model.check_n(n)), dtype=torch.long, device=model.device)
