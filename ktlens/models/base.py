"""What every ktlens model shares: TransformerLens plumbing, a task spec, a registry for loading."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn
from transformer_lens import ActivationCache, HookedRootModule

from ktlens.models.cache import KtlensActivationCache
from ktlens.models.config import ModelConfig
from ktlens.validation import FieldError

MODEL_TYPES: dict[str, type["HookedModel"]] = {}

# keyword arguments of HookedRootModule.run_with_cache (everything else goes to forward)
_TL_CACHE_OPTIONS = {"names_filter", "device", "remove_batch_dim", "incl_bwd", "reset_hooks_end", "clear_contexts", "pos_slice"}


class HookedModel(HookedRootModule):
    """A `HookedRootModule` that knows its config and the task domain it was trained on.

    Subclasses set `model_type` (the key stored in checkpoints) and call `self.setup()` at the end of
    `__init__`. `run_with_cache` returns a `transformer_lens.ActivationCache`.
    """

    model_type: ClassVar[str] = ""
    spec_type: ClassVar[Any] = None  # the task's typed spec class (with from_dict / to_dict)
    # ModelConfig fields the model requires at their defaults: a checkpoint may leave them out
    optional_config_fields: ClassVar[frozenset[str]] = frozenset()
    extra_fields: ClassVar[frozenset[str]] = frozenset()  # the keys of `cfg.extra` the model reads

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("model_type"):  # a subclass that does not name its own type does not replace its parent
            MODEL_TYPES[cls.model_type] = cls

    def __init__(self, cfg: ModelConfig, task_spec: dict[str, Any]):
        super().__init__()
        unknown = sorted(set(cfg.extra) - self.extra_fields)
        if unknown:
            raise FieldError("extra", cfg.extra, f"holds settings {unknown} this model does not read")
        self.cfg = cfg
        self.task_spec = task_spec  # the JSON form of the typed `spec` that subclasses set

    def sync_norms(self) -> None:
        """Put the LayerNorms on their fused path while no hook is attached anywhere (call first in forward)."""
        hooked = any(hp._forward_hooks or hp._backward_hooks for hp in self.hook_dict.values())
        for norm in self._norms():
            norm.hookable = hooked

    def _norms(self) -> list[nn.Module]:
        if not hasattr(self, "_norm_list"):
            from ktlens.models.components import LayerNorm

            self._norm_list = [m for m in self.modules() if isinstance(m, LayerNorm)]
        return self._norm_list

    def run_with_cache(self, *args: Any, metric: Any = None, **kwargs: Any) -> tuple[torch.Tensor, ActivationCache]:
        """Run the model and return (output, ActivationCache of every hook or of `names_filter`).

        Takes TransformerLens' options (`names_filter`, `device`, `remove_batch_dim`, `incl_bwd`,
        `pos_slice`, ...). With `incl_bwd=True`, `metric` maps the output to the scalar whose gradients
        are cached (as `NAME_grad`); the output itself is used only when it is one number. With no
        option but `names_filter`, one plain forward hook per cached HookPoint stores the detached
        activation, which skips TransformerLens' per-hook bookkeeping (~2 ms a call on the K-theory
        model); any other option goes through TransformerLens itself. The cache is a
        `KtlensActivationCache` (TransformerLens' class with the decompositions fixed for these models).
        """
        if metric is not None and not kwargs.get("incl_bwd"):
            raise ValueError("metric is only used with incl_bwd=True (it is the scalar that is differentiated)")
        if kwargs.get("incl_bwd"):
            return self._run_with_cache_bwd(*args, metric=metric, **kwargs)
        if not kwargs.keys() & _TL_CACHE_OPTIONS - {"names_filter"}:
            return self._run_with_cache_fast(*args, **kwargs)
        out, cache_dict = super().run_with_cache(*args, **kwargs)
        return out, KtlensActivationCache(cache_dict, self, has_batch_dim=not kwargs.get("remove_batch_dim", False))

    def _run_with_cache_bwd(self, *args: Any, metric: Any, **kwargs: Any) -> tuple[torch.Tensor, ActivationCache]:
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in _TL_CACHE_OPTIONS}
        remove_batch_dim = options.get("remove_batch_dim", False)
        cache_dict, fwd, bwd = self.get_caching_hooks(
            options.get("names_filter"), True, options.get("device"), remove_batch_dim=remove_batch_dim,
            pos_slice=options.get("pos_slice"),
        )
        with self.hooks(fwd_hooks=fwd, bwd_hooks=bwd, reset_hooks_end=options.get("reset_hooks_end", True)):
            out = self(*args, **kwargs)
            value = out if metric is None else metric(out)
            if not isinstance(value, torch.Tensor) or value.numel() != 1:
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise ValueError(
                    f"incl_bwd=True differentiates one number, but {'the output' if metric is None else 'metric(output)'} "
                    f"has shape {shape}; pass metric=fn mapping the logits to a scalar (e.g. a mean logit difference)"
                )
            value.reshape(()).backward()
        return out, KtlensActivationCache(cache_dict, self, has_batch_dim=not remove_batch_dim)

    def _run_with_cache_fast(self, *args: Any, names_filter: Any = None, **kwargs: Any) -> tuple[torch.Tensor, ActivationCache]:
        cache: dict[str, torch.Tensor] = {}

        def save(name: str):
            return lambda module, inputs, output: cache.__setitem__(name, output.detach())

        handles = [self.hook_dict[name].register_forward_hook(save(name)) for name in self._cached_names(names_filter)]
        try:
            out = self(*args, **kwargs)
        finally:
            for handle in handles:
                handle.remove()
        return out, KtlensActivationCache(cache, self, has_batch_dim=True)

    def _cached_names(self, names_filter: Any) -> list[str]:
        """Hook names selected by a TransformerLens `names_filter` (None, a name, a list, or a predicate)."""
        if names_filter is None:
            return list(self.hook_dict)
        if isinstance(names_filter, str):
            return [n for n in self.hook_dict if n == names_filter]
        if isinstance(names_filter, (list, tuple, set)):
            return [n for n in self.hook_dict if n in names_filter]
        if callable(names_filter):
            return [n for n in self.hook_dict if names_filter(n)]
        raise ValueError(f"names_filter must be a string, list of strings, or function, got {names_filter!r}")

    # ----- TransformerLens' weight surface (stacked over layers, TransformerLens' shapes) -----------------
    def _stack(self, part: str, name: str) -> Tensor:
        return torch.stack([getattr(getattr(block, part), name) for block in self.blocks])

    @property
    def W_E(self) -> Float[Tensor, "d_vocab d_model"]:
        """Token embedding as the model uses it (with any number features added)."""
        return self.embed.W_E_eff

    @property
    def W_pos(self) -> Float[Tensor, "n_ctx d_model"]:
        return self.pos_embed.W_pos

    @property
    def W_Q(self) -> Float[Tensor, "n_layers n_heads d_model d_head"]:
        return self._stack("attn", "W_Q")

    @property
    def W_K(self) -> Float[Tensor, "n_layers n_heads d_model d_head"]:
        return self._stack("attn", "W_K")

    @property
    def W_V(self) -> Float[Tensor, "n_layers n_heads d_model d_head"]:
        return self._stack("attn", "W_V")

    @property
    def W_O(self) -> Float[Tensor, "n_layers n_heads d_head d_model"]:
        return self._stack("attn", "W_O")

    @property
    def b_Q(self) -> Float[Tensor, "n_layers n_heads d_head"]:
        return self._stack("attn", "b_Q")

    @property
    def b_K(self) -> Float[Tensor, "n_layers n_heads d_head"]:
        return self._stack("attn", "b_K")

    @property
    def b_V(self) -> Float[Tensor, "n_layers n_heads d_head"]:
        return self._stack("attn", "b_V")

    @property
    def b_O(self) -> Float[Tensor, "n_layers d_model"]:
        return self._stack("attn", "b_O")

    @property
    def W_in(self) -> Float[Tensor, "n_layers d_model d_mlp"]:
        return self._stack("mlp", "W_in")

    @property
    def b_in(self) -> Float[Tensor, "n_layers d_mlp"]:
        return self._stack("mlp", "b_in")

    @property
    def W_out(self) -> Float[Tensor, "n_layers d_mlp d_model"]:
        return self._stack("mlp", "W_out")

    @property
    def b_out(self) -> Float[Tensor, "n_layers d_model"]:
        return self._stack("mlp", "b_out")

    @property
    def OV(self) -> Any:
        """Self-attention OV circuits as a TransformerLens `FactoredMatrix` [n_layers, n_heads, d_model, d_model]."""
        from transformer_lens import FactoredMatrix

        return FactoredMatrix(self.W_V, self.W_O)

    @property
    def QK(self) -> Any:
        """Self-attention QK circuits as a TransformerLens `FactoredMatrix` [n_layers, n_heads, d_model, d_model]."""
        from transformer_lens import FactoredMatrix

        return FactoredMatrix(self.W_Q, self.W_K.transpose(-2, -1))

    def to_single_token(self, token: Any) -> int:
        """TransformerLens asks this of `logit_attrs`; ktlens tokens are already ids."""
        if isinstance(token, Tensor) and token.numel() == 1:
            return int(token.item())
        if isinstance(token, int) and not isinstance(token, bool):
            return token
        raise ValueError(f"token must be one integer id, got {token!r}")

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def hook_shapes(self, *args: Any, **kwargs: Any) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every hook for one forward pass on the given input."""
        with torch.no_grad():
            _, cache = self.run_with_cache(*args, **kwargs)
        return {name: tuple(t.shape) for name, t in cache.items()}


def check_token_ids(tokens: Int[Tensor, "batch pos"], d_vocab: int, what: str, offset: int = 0) -> None:
    """ValueError naming the first id outside 0..d_vocab-1 and its (row, position); `offset` is added to
    the position (the column of `tokens` in the packed input). One min/max reduction when all is well."""
    if tokens.is_floating_point() or tokens.dtype in (torch.bool, torch.complex64, torch.complex128):
        raise ValueError(f"{what} token ids must be an integer tensor, got dtype {tokens.dtype}")
    if tokens.numel() == 0:
        return
    lo, hi = torch.aminmax(tokens)
    if lo >= 0 and hi < d_vocab:
        return
    row, col = ((tokens < 0) | (tokens >= d_vocab)).nonzero()[0].tolist()
    raise ValueError(
        f"{what} token id {int(tokens[row, col])} at (row {row}, position {col + offset}) is outside "
        f"the {what} vocabulary 0..{d_vocab - 1}"
    )


def build_model(model_type: str, cfg: ModelConfig, task_spec: dict[str, Any]) -> HookedModel:
    """Instantiate a registered model class by its checkpoint name."""
    if model_type not in MODEL_TYPES:
        raise ValueError(f"unknown model_type {model_type!r}; known: {sorted(MODEL_TYPES)}")
    return MODEL_TYPES[model_type](cfg, task_spec)
