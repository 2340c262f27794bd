"""Activation patching for any ktlens model, on top of `transformer_lens.patching`.

TransformerLens' ready-made helpers (`get_act_patch_resid_pre`, ...) take the position range from the
token tensor. That is right for the MIIII encoder (tokens [batch, 3], hooks [batch, 3, ...]) but not
for the K-theory encoder-decoder, whose packed tokens carry 3 source ids before the L label positions.
`patch_by_position` reads the position count from the activation itself and hands TransformerLens an
explicit index table, so one call works for both models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
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
    corrupted_tokens: Int[Tensor, "batch_c tok_c"],  # must match clean_tokens: a ValueError names both shapes
    hook_names: list[str],
) -> Float[Tensor, "batch *logit_dims"]:
    """Logits of the corrupted run with the named hooks replaced, at every position, by their clean values."""
    with torch.no_grad():
        _, cache = model.run_with_cache(clean_tokens, names_filter=hook_names)
        return model.run_with_hooks(corrupted_tokens, fwd_hooks=[(h, lambda act, hook: cache[hook.name]) for h in hook_names])


# ----- sweeps over every node kind, denoising and noising ------------------------------------------------
#
# A node kind names a hook family and the axes a sweep runs over. TransformerLens' `generic_activation_patch`
# builds each hook name as `get_act_name(kind, layer)` (`blocks.{l}.hook_{kind}` for names it does not
# know) and indexes the clean cache by that name; `_PackedModel` below maps those names to ktlens' real
# hooks (cross-attention heads, source positions), so the TransformerLens loop runs every sweep.


@dataclass(frozen=True)
class NodeKind:
    """One family of patchable activations."""

    hook: str  # the real hook name, with {l} for the layer
    axes: tuple[str, ...]  # swept axes after "layer": "pos", "head", "neuron", "src_pos"
    pos_dim: int | None  # the activation's position axis (None: a per-source-position or layerless hook)
    sweep_dim: int  # the activation axis that "head" / "neuron" index
    needs_cross: bool = False


NODE_KINDS: dict[str, NodeKind] = {
    "resid_pre": NodeKind("blocks.{l}.hook_resid_pre", ("pos",), 1, 1),
    "resid_mid": NodeKind("blocks.{l}.hook_resid_mid", ("pos",), 1, 1),
    "resid_mid_cross": NodeKind("blocks.{l}.hook_resid_mid_cross", ("pos",), 1, 1, True),
    "resid_post": NodeKind("blocks.{l}.hook_resid_post", ("pos",), 1, 1),
    "attn_out": NodeKind("blocks.{l}.hook_attn_out", ("pos",), 1, 1),
    "cross_attn_out": NodeKind("blocks.{l}.hook_cross_attn_out", ("pos",), 1, 1, True),
    "mlp_out": NodeKind("blocks.{l}.hook_mlp_out", ("pos",), 1, 1),
    "attn_head": NodeKind("blocks.{l}.attn.hook_z", ("head",), 1, 2),
    "cross_attn_head": NodeKind("blocks.{l}.cross_attn.hook_z", ("head",), 1, 2, True),
    "attn_head_by_pos": NodeKind("blocks.{l}.attn.hook_z", ("pos", "head"), 1, 2),
    "cross_attn_head_by_pos": NodeKind("blocks.{l}.cross_attn.hook_z", ("pos", "head"), 1, 2, True),
    "mlp_neuron": NodeKind("blocks.{l}.mlp.hook_post", ("neuron",), 1, 2),
    "src": NodeKind("hook_src", ("src_pos",), None, 1, True),
    "src_embed": NodeKind("hook_src_embed", ("src_pos",), None, 1, True),
}
DIRECTIONS = ("denoise", "noise")


@dataclass
class Node:
    """One patchable unit: a node kind at a layer and, per its axes, a position / head / neuron (None: all)."""

    kind: str
    layer: int = 0
    pos: int | None = None  # a decoder (K-theory) or input (MIIII) position, or a source position for src
    head: int | None = None
    neuron: int | None = None

    def label(self) -> str:
        parts = [self.kind, f"L{self.layer}"] + [f"{k}{v}" for k, v in (("pos", self.pos), ("H", self.head), ("N", self.neuron)) if v is not None]
        return " ".join(parts)


def _n_pos(model: HookedModel) -> int:
    """Positions of a sweep's position axis: every decoder position (K-theory: scratch values, if any, then
    the counts; `model.dec_len`) or the 3 input positions (MIIII)."""
    if model.model_type == "ktheory":
        return model.dec_len
    return model.cfg.n_ctx


def position_names(model: HookedModel) -> list[str]:
    """Row labels of a position axis: what each K-theory decoder position predicts, or x0 / x1 / '='."""
    if model.model_type == "ktheory":
        return [f"{k}:{name}" for k, name in enumerate(model.position_labels())]
    return ["x0", "x1", "="] if model.spec.digit_order == "msd" else ["x1", "x0", "="]


def check_node(model: HookedModel, node: Node) -> NodeKind:
    """The node's kind, or ValueError naming the kind, layer, position, head or neuron out of range."""
    if node.kind not in NODE_KINDS:
        raise ValueError(f"node kind {node.kind!r} does not exist; known: {sorted(NODE_KINDS)}")
    kind = NODE_KINDS[node.kind]
    if kind.needs_cross and model.model_type != "ktheory":
        raise ValueError(f"node kind {node.kind!r} needs a model with cross-attention, and {model.model_type!r} has none")
    if not 0 <= node.layer < (1 if kind.pos_dim is None else model.cfg.n_layers):
        raise ValueError(f"layer={node.layer} is out of range 0..{model.cfg.n_layers - 1} for {node.kind!r}")
    n_pos = 3 if kind.pos_dim is None else _n_pos(model)
    for name, value, bound in (("pos", node.pos, n_pos), ("head", node.head, model.cfg.n_heads), ("neuron", node.neuron, model.cfg.d_mlp)):
        if value is not None and not (isinstance(value, int) and 0 <= value < bound):
            raise ValueError(f"{name}={value!r} is out of range 0..{bound - 1} for {node.kind!r}")
    return kind


def _check_pair(model: HookedModel, clean: Tensor, corrupted: Tensor) -> None:
    if model.training:
        raise ValueError("patching needs the model in eval mode (call model.eval()): dropout would make runs differ")
    if clean.shape != corrupted.shape:
        raise ValueError(f"clean and corrupted tokens differ in shape: {tuple(clean.shape)} vs {tuple(corrupted.shape)}")


def _patch_into(act: Tensor, clean: Tensor, kind: NodeKind, node: Node, n_pos: int) -> Tensor:
    """`act` with the node's part replaced by `clean`'s (positions align at the end: MIIII's last block)."""
    act = act.clone()  # hook outputs can be views of parameters (position embeddings)
    index: list[Any] = [slice(None)] * act.ndim
    if node.pos is not None:
        if kind.pos_dim is None:
            index[1] = node.pos
        else:
            offset = n_pos - act.shape[kind.pos_dim]
            if node.pos < offset:
                return act  # this layer does not compute that position (nothing downstream reads it)
            index[kind.pos_dim] = node.pos - offset
    if node.head is not None:
        index[kind.sweep_dim] = node.head
    if node.neuron is not None:
        index[kind.sweep_dim] = node.neuron
    act[tuple(index)] = clean[tuple(index)]
    return act


def _hook_name(kind: NodeKind, layer: int) -> str:
    return kind.hook.format(l=layer)


def patch_nodes(
    model: HookedModel,
    clean_tokens: Int[Tensor, "batch tok"],
    corrupted_tokens: Int[Tensor, "batch_c tok_c"],  # must match clean_tokens: a ValueError names both shapes
    nodes: list[Node],
    direction: str = "denoise",
) -> Float[Tensor, "..."]:
    """Logits of one run with every node in `nodes` patched at once: the corrupted run given the clean
    activations ("denoise"), or the clean run given the corrupted ones ("noise")."""
    _check_pair(model, clean_tokens, corrupted_tokens)
    if direction not in DIRECTIONS:
        raise ValueError(f"direction={direction!r} must be one of {DIRECTIONS}")
    kinds = [check_node(model, node) for node in nodes]
    source, target = (clean_tokens, corrupted_tokens) if direction == "denoise" else (corrupted_tokens, clean_tokens)
    names = sorted({_hook_name(kind, node.layer) for kind, node in zip(kinds, nodes)})
    with torch.no_grad():
        _, cache = model.run_with_cache(source, names_filter=names)
        by_hook: dict[str, list[tuple[NodeKind, Node]]] = {}
        for kind, node in zip(kinds, nodes):
            by_hook.setdefault(_hook_name(kind, node.layer), []).append((kind, node))

        def hook_fn(act: Tensor, hook: Any) -> Tensor:
            for kind, node in by_hook[hook.name]:
                act = _patch_into(act, cache[hook.name], kind, node, _n_pos(model))
            return act

        return model.run_with_hooks(target, fwd_hooks=[(name, hook_fn) for name in names])


def _hooked_run(model: HookedModel, tokens: Tensor, name: str) -> Tensor:
    """A run on the same (hooked) LayerNorm path as the patched runs, so unpatched cells match exactly."""
    return model.run_with_hooks(tokens, fwd_hooks=[(name, lambda act, hook: act)])


class _PackedModel:
    """What `transformer_lens.patching.generic_activation_patch` asks of a model (cfg, eval state,
    run_with_hooks), with its `blocks.{l}.hook_{kind}` names mapped to the hooks of a ktlens node kind."""

    def __init__(self, model: HookedModel, kind_name: str):
        self.model = model
        self.original_model = model  # TransformerLens checks this one is in eval mode
        self.cfg = model.cfg
        self.kind = NODE_KINDS[kind_name]
        self.kind_name = kind_name

    def real_name(self, alias: str) -> str:
        layer = int(alias.split(".")[1])
        return _hook_name(self.kind, layer)

    def run_with_hooks(self, tokens: Tensor, fwd_hooks: list[tuple[str, Any]]) -> Tensor:
        return self.model.run_with_hooks(tokens, fwd_hooks=[(self.real_name(name), fn) for name, fn in fwd_hooks])


@dataclass
class PatchSweep:
    """Metric of every patched run of one sweep, with labelled axes.

    `values[layer, ...]` (axes `axis_names`, row labels `axis_labels`); `clean_value` / `corrupted_value`
    are the metric of the unpatched runs, so `normalized()` is 1 where a patch gives the clean behaviour
    and 0 where it gives the corrupted one, whichever the direction. `result` is TransformerLens'
    `PatchingResult` of the flat run order (None for an estimate).
    """

    kind: str
    direction: str
    values: Float[Tensor, "..."]
    axis_names: list[str]
    axis_labels: list[list[str]]
    clean_value: float
    corrupted_value: float
    metric_name: str
    result: Any = None

    def normalized(self) -> Tensor:
        span = self.clean_value - self.corrupted_value
        if abs(span) < 1e-12:
            raise ValueError(f"the clean and corrupted runs have the same {self.metric_name} ({self.clean_value}): nothing to normalise by")
        return (self.values - self.corrupted_value) / span

    def to_dataframe(self) -> Any:
        """One row per cell: the axis labels, the value and the normalised value (needs pandas)."""
        import pandas as pd

        grids = torch.meshgrid(*[torch.arange(len(labels)) for labels in self.axis_labels], indexing="ij")
        data = {name: [labels[i] for i in grid.flatten().tolist()] for name, labels, grid in zip(self.axis_names, self.axis_labels, grids)}
        data["value"] = self.values.flatten().tolist()
        data["normalized"] = self.normalized().flatten().tolist()
        return pd.DataFrame(data)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "direction": self.direction, "metric": self.metric_name, "axis_names": self.axis_names,
            "axis_labels": self.axis_labels, "values": self.values.tolist(), "normalized": self.normalized().tolist(),
            "clean_value": self.clean_value, "corrupted_value": self.corrupted_value,
        }


def sweep_axes(model: HookedModel, kind_name: str) -> tuple[list[str], list[list[str]]]:
    """Axis names and row labels of a sweep over `kind_name` on `model`."""
    kind = NODE_KINDS[kind_name]
    names, labels = ["layer"], [[f"L{l}" for l in range(model.cfg.n_layers if kind.pos_dim is not None else 1)]]
    if kind.pos_dim is None:
        names, labels = [], []
    for axis in kind.axes:
        names.append(axis)
        labels.append({
            "pos": position_names(model),
            "head": [f"{'C' if kind_name.startswith('cross') else 'H'}{h}" for h in range(model.cfg.n_heads)],
            "neuron": [f"N{i}" for i in range(model.cfg.d_mlp)],
            "src_pos": ["p", "r", "e"],
        }[axis])
    return names, labels


def patch_sweep(
    model: HookedModel,
    clean_tokens: Int[Tensor, "batch tok"],
    corrupted_tokens: Int[Tensor, "batch_c tok_c"],  # must match clean_tokens: a ValueError names both shapes
    kind_name: str,
    metric: Callable[[Tensor], Tensor],
    direction: str = "denoise",
    metric_name: str = "metric",
) -> PatchSweep:
    """Patch one node of `kind_name` at a time (every layer x position / head / neuron) and record `metric`
    (logits -> scalar) of each run, through `transformer_lens.patching.generic_activation_patch`.

    "denoise": the corrupted run with one clean activation (is the node sufficient?); "noise": the clean
    run with one corrupted activation (is it necessary?).
    """
    _check_pair(model, clean_tokens, corrupted_tokens)
    if direction not in DIRECTIONS:
        raise ValueError(f"direction={direction!r} must be one of {DIRECTIONS}")
    check_node(model, Node(kind_name))
    kind = NODE_KINDS[kind_name]
    source, target = (clean_tokens, corrupted_tokens) if direction == "denoise" else (corrupted_tokens, clean_tokens)
    axis_names, axis_labels = sweep_axes(model, kind_name)
    n_layers = model.cfg.n_layers if kind.pos_dim is not None else 1
    names = [_hook_name(kind, l) for l in range(n_layers)]
    n_pos = 3 if kind.pos_dim is None else _n_pos(model)
    with torch.no_grad():
        _, cache = model.run_with_cache(source, names_filter=names)
        alias_cache = {f"blocks.{l}.hook_{kind_name}": cache[names[l]] for l in range(n_layers)}
        shape = [len(labels) for labels in axis_labels] if kind.pos_dim is not None else [1] + [len(labels) for labels in axis_labels]
        index_df = patching.make_df_from_ranges(shape, ["layer"] + list(kind.axes))

        def setter(act: Tensor, index: list[int], clean: Tensor) -> Tensor:
            node = Node(kind_name, index[0], **{("pos" if a in ("pos", "src_pos") else a): int(v) for a, v in zip(kind.axes, index[1:])})
            return _patch_into(act, clean, kind, node, n_pos)

        result = patching.generic_activation_patch(
            _PackedModel(model, kind_name), target, alias_cache, metric, setter, kind_name, index_df=index_df, baseline=True
        )
        clean_value, corrupted_value = (float(metric(_hooked_run(model, t, names[0]))) for t in (clean_tokens, corrupted_tokens))
    values = result.values.reshape(shape)
    if kind.pos_dim is None:
        values = values[0]
    return PatchSweep(kind_name, direction, values, axis_names, axis_labels, clean_value, corrupted_value, metric_name, result)


# ----- metrics and in-distribution corruptions -------------------------------------------------------------


def logit_diff_metric(
    model: HookedModel, position: int, answer: int, alternative: int, task: int | None = None
) -> Callable[[Tensor], Tensor]:
    """logits -> mean over the batch of logit[answer] - logit[alternative] at decoder position `position`
    (K-theory: 0..dec_len-1, a scratch or a count position) or for task modulus `task` (MIIII): the logit
    difference of Zhang & Nanda (2023)."""
    n_out = model.cfg.d_vocab_out
    for name, value in (("answer", answer), ("alternative", alternative)):
        if not 0 <= value < n_out:
            raise ValueError(f"{name}={value} is outside the output classes 0..{n_out - 1}")
    if model.model_type == "miiii":
        k = model.task_index(task)
    else:
        if not 0 <= position < model.dec_len:
            raise ValueError(f"position={position} is outside the decoder positions 0..{model.dec_len - 1}")
        k = position

    def metric(logits: Tensor) -> Tensor:
        return (logits[:, k, answer] - logits[:, k, alternative]).mean()

    return metric


def ktheory_corruptions(model: HookedModel, p: int, r: int, e: int) -> dict[str, tuple[int, int, int]]:
    """In-distribution corruptions of (p, r, e) that keep the other inputs: the nearest other trained prime
    ("p"), r +- 1 ("r"), and an e with a different p-adic valuation u ("u": e * p, or e / p, inside the
    domain; else the nearest e with another u). Only those inside the trained domain (r*e <= re_max for
    a bounded one) are returned."""
    from ktlens.analysis.domain_sample import in_domain
    from ktlens.tasks.ktheory import p_adic_valuation_of_e

    model.check_domain([p], [r], [e])
    out: dict[str, tuple[int, int, int]] = {}
    others = sorted((q for q in model.primes if q != p), key=lambda q: (abs(q - p), q))
    if others:
        out["p"] = (others[0], r, e)
    for r2 in (r + 1, r - 1):
        if in_domain(model, p, r2, e):
            out["r"] = (p, r2, e)
            break
    u = int(p_adic_valuation_of_e(p, r, e))
    candidates = ([e * p] if e * p <= model.e_max else []) + ([e // p] if e % p == 0 else [])
    candidates += sorted(range(1, model.e_max + 1), key=lambda x: (abs(x - e), x))
    for e2 in candidates:
        if in_domain(model, p, r, e2) and int(p_adic_valuation_of_e(p, r, e2)) != u:
            out["u"] = (p, r, e2)
            break
    return out


def first_count_difference(model: HookedModel, clean: Int[Tensor, " dec_len"], corrupt: Int[Tensor, " dec_len"]) -> int | None:
    """The first decoder position among `model.count_positions` whose targets differ (None: the counts agree)."""
    if clean.shape != corrupt.shape or clean.shape[-1] != model.dec_len:
        raise ValueError(f"targets must both be [{model.dec_len}], got {tuple(clean.shape)} and {tuple(corrupt.shape)}")
    for k in model.count_positions:
        if int(clean[k]) != int(corrupt[k]):
            return k
    return None


def corruption_sweeps(
    model: HookedModel, kind: str, n_pairs: int, node: str = "cross_attn_head", seed: int = 0, min_gap: float = 1.0,
    max_tries: int = 10_000,
) -> tuple[list["PatchSweep"], list[dict[str, Any]]]:
    """Denoising sweeps of ``node`` over ``n_pairs`` seeded K-theory pairs of the model's domain whose
    ``kind`` corruption (`ktheory_corruptions`: "p", "r" or "u") changes the counts. Metric: the logit
    difference of the clean count against the corrupted count at the first count position
    (`model.count_positions`) where the two targets differ; pairs whose corruption moves it by less than
    ``min_gap`` are skipped (normalising would divide by ~0). Returns the sweeps and one
    ``{"clean", "corrupt", "position"}`` per pair (``position``: a decoder position)."""
    from ktlens.analysis.domain_sample import in_domain

    if kind not in ("p", "r", "u"):
        raise ValueError(f"corruption kind {kind!r} is not one of 'p', 'r', 'u'")
    rng = np.random.default_rng(seed)
    sweeps, pairs = [], []
    for _ in range(max_tries):
        if len(sweeps) >= n_pairs:
            break
        p, r, e = int(rng.choice(model.primes)), int(rng.integers(1, model.r_max + 1)), int(rng.integers(1, model.e_max + 1))
        if not in_domain(model, p, r, e):  # a grid draw outside a bounded domain: draw again
            continue
        other = ktheory_corruptions(model, p, r, e).get(kind)
        if other is None:
            continue
        tc, tk = model.targets([p], [r], [e]), model.targets(*([v] for v in other))
        differ = first_count_difference(model, tc[0], tk[0])
        if differ is None:
            continue
        k = differ
        metric = logit_diff_metric(model, k, int(tc[0, k]), int(tk[0, k]))
        clean, corrupt = model.make_batch([p], [r], [e]), model.make_batch(*([v] for v in other))
        with torch.no_grad():  # two forward passes decide whether the pair is worth a sweep
            if abs(float(metric(model(clean))) - float(metric(model(corrupt)))) < min_gap:
                continue
        sweep = patch_sweep(model, clean, corrupt, node, metric)
        if abs(sweep.clean_value - sweep.corrupted_value) < min_gap:
            continue
        sweeps.append(sweep)
        pairs.append({"clean": [p, r, e], "corrupt": [int(v) for v in other], "position": int(k)})
    return sweeps, pairs


# ----- attribution patching: the first-order estimate of every patch from two forward passes, one backward ----


def attribution_patch(
    model: HookedModel,
    clean_tokens: Int[Tensor, "batch tok"],
    corrupted_tokens: Int[Tensor, "batch_c tok_c"],  # must match clean_tokens: a ValueError names both shapes
    kind_name: str,
    metric: Callable[[Tensor], Tensor],
    direction: str = "denoise",
    metric_name: str = "metric",
) -> PatchSweep:
    """The estimate `metric(target) + (a_source - a_target) . d metric / d a` at the target run of every
    patch `patch_sweep` would make (Nanda; Syed et al. 2023), laid out as `patch_sweep`'s result."""
    _check_pair(model, clean_tokens, corrupted_tokens)
    if direction not in DIRECTIONS:
        raise ValueError(f"direction={direction!r} must be one of {DIRECTIONS}")
    check_node(model, Node(kind_name))
    kind = NODE_KINDS[kind_name]
    source, target = (clean_tokens, corrupted_tokens) if direction == "denoise" else (corrupted_tokens, clean_tokens)
    axis_names, axis_labels = sweep_axes(model, kind_name)
    n_layers = model.cfg.n_layers if kind.pos_dim is not None else 1
    names = [_hook_name(kind, l) for l in range(n_layers)]
    with torch.no_grad():
        _, source_cache = model.run_with_cache(source, names_filter=names)
        clean_value, corrupted_value = (float(metric(_hooked_run(model, t, names[0]))) for t in (clean_tokens, corrupted_tokens))
    params = list(model.parameters())
    saved = [p.grad for p in params]  # the backward pass must leave the parameters' gradients as they were
    try:
        with torch.enable_grad():
            _, target_cache = model.run_with_cache(target, names_filter=names, incl_bwd=True, metric=metric)
    finally:
        for p, grad in zip(params, saved):
            p.grad = grad
    n_pos = _n_pos(model)
    rows = []
    for name in names:
        effect = (source_cache[name] - target_cache[name]) * target_cache[name + "_grad"]
        if kind.pos_dim is None:  # [batch, 3, d]
            rows.append(effect.sum((0, 2)))
        elif kind.axes == ("pos",):  # [batch, pos, d]
            per_pos = effect.sum((0, 2))
            rows.append(torch.cat([per_pos.new_zeros(n_pos - len(per_pos)), per_pos]))
        elif kind.axes == ("head",):  # [batch, pos, head, d_head]
            rows.append(effect.sum((0, 1, 3)))
        elif kind.axes == ("pos", "head"):
            per_pos = effect.sum((0, 3))
            rows.append(torch.cat([per_pos.new_zeros(n_pos - len(per_pos), per_pos.shape[1]), per_pos]))
        else:  # neurons [batch, pos, d_mlp]
            rows.append(effect.sum((0, 1)))
    values = torch.stack(rows)
    values = values[0] if kind.pos_dim is None else values
    base = corrupted_value if direction == "denoise" else clean_value
    return PatchSweep(kind_name, direction, values + base, axis_names, axis_labels, clean_value, corrupted_value, metric_name)


def correlation(a: PatchSweep, b: PatchSweep) -> float:
    """Pearson correlation of two sweeps' normalised values over all cells (e.g. estimate vs real patching)."""
    if a.values.shape != b.values.shape:
        raise ValueError(f"sweeps of different shapes: {tuple(a.values.shape)} vs {tuple(b.values.shape)}")
    x, y = a.normalized().flatten().double(), b.normalized().flatten().double()
    return float(torch.corrcoef(torch.stack([x, y]))[0, 1])
