"""Synthetic data with a planted sparse dictionary, and tiny parent models."""

import pytest
import torch

from ktlens.experiments.ktheory import build_preset
from ktlens.models.encoder import RemaindersTransformer
from ktlens.tasks.remainders import RemaindersSpec


def planted(n_rows=16384, d_in=32, n_atoms=48, active=3, seed=12345):
    """Rows that are sums of `active` of `n_atoms` random unit atoms with magnitudes in [1, 2]."""
    g = torch.Generator().manual_seed(seed)
    atoms = torch.randn(n_atoms, d_in, generator=g)
    atoms /= atoms.norm(dim=1, keepdim=True)
    idx = torch.rand(n_rows, n_atoms, generator=g).argsort(1)[:, :active]
    codes = torch.zeros(n_rows, n_atoms).scatter(1, idx, 1 + torch.rand(n_rows, active, generator=g))
    return codes @ atoms, atoms


@pytest.fixture(scope="session")
def planted_data():
    return planted()


@pytest.fixture(scope="session")
def tiny_ktheory():
    _, _, model = build_preset("tiny")
    return model.eval()


@pytest.fixture(scope="session")
def tiny_miiii():
    return RemaindersTransformer.create(RemaindersSpec(p=7), d_model=16, n_heads=2, d_mlp=32, n_layers=1).eval()
