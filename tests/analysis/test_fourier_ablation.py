"""Fourier ablations: the character directions, the readout path, bad input."""

import numpy as np
import pytest
import torch

from ktlens.analysis import fourier_ablation as fab
from ktlens.models.encoder import RemaindersTransformer
from ktlens.tasks.remainders import RemaindersSpec


@pytest.fixture(scope="module")
def model():
    return RemaindersTransformer.create(RemaindersSpec(p=11), d_model=16, n_heads=2, d_mlp=24, normalization="none").eval()


def test_character_directions_are_orthonormal_and_span_the_character():
    v = np.arange(121) % 7
    D = fab.character_directions(v, 7, [1, 3])
    assert D.shape == (121, 5) and np.allclose(D.T @ D, np.eye(5))
    for j in (1, 3):  # cos and sin of the character lie in the span
        for f in (np.cos(2 * np.pi * j * v / 7), np.sin(2 * np.pi * j * v / 7)):
            assert np.allclose(D @ (D.T @ f), f)
    f = np.cos(2 * np.pi * 2 * v / 7)  # another character is orthogonal to them (up to the uneven count of residues)
    assert np.linalg.norm(D[:, 1:].T @ f) < 0.2 * np.linalg.norm(f)


def test_readout_path_equals_the_model(model):
    n = np.arange(121)
    with torch.no_grad():
        logits = model(model.tokens_for(n))
        direct = model.unembed(fab.final_residual(model))
    for t, q in enumerate(model.moduli):
        assert torch.allclose(direct[:, t, :q], logits[:, t, :q], atol=1e-5)
    r = fab.ablate_task(model, 5, [1, 2], "resid")
    full = fab.ablate_task(model, 5, [1, 2], "neurons")
    assert r.full_accuracy == pytest.approx(full.full_accuracy) and r.full_loss == pytest.approx(full.full_loss, rel=1e-5)


def test_bad_input_names_the_value(model):
    with pytest.raises(ValueError, match="q=13"):
        fab.ablate_task(model, 13, [1])
    with pytest.raises(ValueError, match="character 3"):
        fab.ablate_task(model, 5, [3])
    with pytest.raises(ValueError, match="where='attn'"):
        fab.ablate_task(model, 5, [1], "attn")
    with pytest.raises(ValueError, match="resid must have shape"):
        fab.ablate_task(model, 5, [1], "resid", resid=torch.zeros(3, 16))
