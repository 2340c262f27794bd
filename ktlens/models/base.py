"""What every ktlens model shares: TransformerLens plumbing, a task spec, a registry for loading."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn
from transformer_lens import ActivationCache, HookedRootModule

from ktlens.models.config import ModelConfig

MODEL_TYPES: dict[str, type["HookedModel"]] = {}


class HookedModel(HookedRootModule):
    """A `HookedRootModule` that knows its config and the task domain it was trained on.

    Subclasses set `model_type` (the key stored in checkpoints) and call `self.setup()` at the end of
    `__init__`. `run_with_cache` returns a `transformer_lens.ActivationCache`.
    """

    model_type: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.model_type:
            MODEL_TYPES[cls.model_type] = cls

    def __init__(self, cfg: ModelConfig, task_spec: dict[str, Any]):
        super().__init__()
        self.cfg = cfg
        self.task_spec = task_spec

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

    def run_with_cache(self, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, ActivationCache]:
        """Run the model and return (output, ActivationCache of every hook or of `names_filter`)."""
        out, cache_dict = super().run_with_cache(*args, **kwargs)
        return out, ActivationCache(cache_dict, self, has_batch_dim=not kwargs.get("remove_batch_dim", False))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def hook_shapes(self, *args: Any, **kwargs: Any) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every hook for one forward pass on the given input."""
        with torch.no_grad():
            _, cache = self.run_with_cache(*args, **kwargs)
        return {name: tuple(t.shape) for name, t in cache.items()}


def build_model(model_type: str, cfg: ModelConfig, task_spec: dict[str, Any]) -> HookedModel:
    """Instantiate a registered model class by its checkpoint name."""
    if model_type not in MODEL_TYPES:
        raise ValueError(f"unknown model_type {model_type!r}; known: {sorted(MODEL_TYPES)}")
    return MODEL_TYPES[model_type](cfg, task_spec)
