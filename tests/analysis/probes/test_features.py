"""Gathering activations through hooks: positions, the BOS sanity row, the random-init control, bad hooks."""

import numpy as np
import pytest
import torch

from ktlens.analysis.probe_targets import probe_data
from ktlens.analysis.probes import check_hooks, gather_features, random_control_model


def test_bos_position_before_cross_attention_is_constant(kt_model):
    data = probe_data(kt_model, n_max=None)
    feats = gather_features(kt_model, data.tokens, ["blocks.0.hook_resid_mid", "blocks.0.hook_resid_mid_cross"])
    assert feats["blocks.0.hook_resid_mid"].X.std(0).max() < 1e-4  # self-attention at BOS sees only BOS
    assert feats["blocks.0.hook_resid_mid_cross"].X.std(0).max() > 1e-3


def test_position_modes(kt_model):
    data = probe_data(kt_model, n_max=None)
    hook = "blocks.0.hook_resid_post"
    f = gather_features(kt_model, data.tokens, [hook], positions="all")[hook]
    assert f.X.shape == (64 * 4, 32)
    assert (f.position[:4] == np.arange(4)).all() and (f.example[:4] == 0).all()
    assert gather_features(kt_model, data.tokens, [hook], positions="flatten")[hook].X.shape == (64, 128)
    assert gather_features(kt_model, data.tokens, [hook], positions=[0, 2])[hook].X.shape == (64, 64)
    pat = "blocks.0.cross_attn.hook_pattern"  # [B, heads, query, source]: query axis selected
    assert gather_features(kt_model, data.tokens, [pat], positions=0)[pat].X.shape == (64, 4 * 3)
    # batching does not change the features
    one = gather_features(kt_model, data.tokens, [hook], positions=1, batch_size=7)[hook].X
    assert torch.allclose(one, gather_features(kt_model, data.tokens, [hook], positions=1)[hook].X, atol=1e-6)
    # another position convention
    conv = gather_features(kt_model, data.tokens, [hook], convention=lambda m, h: "flatten")[hook]
    assert conv.spec == "flatten" and conv.X.shape == (64, 128)


def test_random_control_model_is_same_architecture_other_weights(kt_model):
    state = torch.random.get_rng_state()
    ctrl = random_control_model(kt_model)
    assert torch.equal(state, torch.random.get_rng_state())
    assert type(ctrl) is type(kt_model) and ctrl.cfg.d_model == kt_model.cfg.d_model
    assert ctrl.cfg.seed != kt_model.cfg.seed
    assert not torch.equal(ctrl.src_embed.W_E, kt_model.src_embed.W_E)


def test_bad_hooks_and_positions_are_named(kt_model):
    data = probe_data(kt_model, n_max=None)
    with pytest.raises(ValueError, match="blocks.0.hook_nonsense"):
        check_hooks(kt_model, ["blocks.0.hook_nonsense"])
    with pytest.raises(ValueError, match="no hooks"):
        check_hooks(kt_model, [])
    with pytest.raises(ValueError, match="position 9"):
        gather_features(kt_model, data.tokens, ["blocks.0.hook_resid_post"], positions=9)
    with pytest.raises(ValueError, match="'middle'"):
        gather_features(kt_model, data.tokens, ["blocks.0.hook_resid_post"], positions="middle")
    with pytest.raises(ValueError, match="not probed"):
        gather_features(kt_model, data.tokens, ["hook_src"], positions={"blocks.0.hook_resid_post": 0})
