"""Patching through TransformerLens with the K-theory model's packed tokens."""

import pytest
import torch

from ktlens.analysis.patching import patch_by_position, patch_hooks
from ktlens.models import KTheoryTransformer

SPEC = {"primes": [2, 3, 5, 7], "r_max": 4, "e_max": 4, "seq_len": 4, "max_count": 8, "label_order": "ascending"}


@pytest.fixture(scope="module")
def model():
    return KTheoryTransformer.create(SPEC, d_model=32, n_heads=4, d_mlp=64, n_layers=2).eval()


def test_patch_by_position_matches_a_hand_written_patch(model):
    clean = model.make_batch(p=[2, 3, 5], r=[3, 2, 4], e=[4, 3, 2])
    corrupted = clean.clone()
    corrupted[:, 3 + 1] = (corrupted[:, 3 + 1] + 1) % (SPEC["max_count"] + 1)  # change the first label token
    answer = clean[:, 3 + 2]

    def metric(logits):  # logit of the clean next token at label position 1
        return logits[torch.arange(len(answer)), 1, answer].mean()

    table = patch_by_position(model, clean, corrupted, "resid_pre", metric)
    assert table.shape == (2, 4)
    _, cache = model.run_with_cache(clean)
    for layer in range(2):
        for pos in range(4):
            def setter(act, hook, pos=pos):
                act = act.clone()
                act[:, pos] = cache[hook.name][:, pos]
                return act
            logits = model.run_with_hooks(corrupted, fwd_hooks=[(f"blocks.{layer}.hook_resid_pre", setter)])
            assert table[layer, pos].item() == pytest.approx(metric(logits).item(), abs=1e-6)
    # the changed token sits at position 1: patching it in layer 0 restores the clean metric exactly
    assert table[0, 1].item() == pytest.approx(metric(model(clean)).item(), abs=1e-5)
    # positions after the one asked about cannot matter (causal self-attention)
    assert table[0, 2].item() == pytest.approx(metric(model(corrupted)).item(), abs=1e-6)


def test_patch_hooks_restores_clean_logits(model):
    clean = model.make_batch(p=[2, 7], r=[3, 1], e=[4, 2])
    corrupted = model.make_batch(p=[3, 5], r=[1, 4], e=[2, 3])
    clean_logits, _ = model.run_with_cache(clean)  # a hooked run, like the patched one
    assert torch.equal(patch_hooks(model, clean, corrupted, ["blocks.1.hook_resid_post"]), clean_logits)


def test_patching_errors_name_the_problem(model):
    tokens = model.make_batch(p=[2], r=[1], e=[2])
    with pytest.raises(ValueError, match="resid_nowhere"):
        patch_by_position(model, tokens, tokens, "resid_nowhere", lambda x: x.sum())
    with pytest.raises(ValueError, match="shape"):
        patch_by_position(model, tokens, tokens[:, :-1], "resid_pre", lambda x: x.sum())
