"""Sparse autoencoders on any hook of a ktlens model: architectures, activation store, training, metrics."""

from ktlens.saes.base import SAE, SAEConfig, build_sae
from ktlens.saes.batchtopk import BatchTopKSAE, BatchTopKSAEConfig
from ktlens.saes.io import load_sae, pretrained_saes, save_sae
from ktlens.saes.relu import ReLUSAE, ReLUSAEConfig
from ktlens.saes.topk import TopKSAE, TopKSAEConfig

__all__ = [
    "BatchTopKSAE",
    "BatchTopKSAEConfig",
    "SAE",
    "SAEConfig",
    "ReLUSAE",
    "ReLUSAEConfig",
    "TopKSAE",
    "TopKSAEConfig",
    "build_sae",
    "load_sae",
    "pretrained_saes",
    "save_sae",
]
