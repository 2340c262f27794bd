"""Hooked models. Importing this package registers every model class for checkpoint loading."""

from ktlens.models.base import HookedModel, build_model
from ktlens.models.config import ModelConfig
from ktlens.models.encoder_decoder import KTheoryTransformer
from ktlens.models.encoder import RemaindersTransformer  # noqa: F401  (registers "miiii")

__all__ = ["HookedModel", "ModelConfig", "KTheoryTransformer", "build_model"]
