"""Position specs: the default convention per model type and hook, selecting positions of an activation."""

import numpy as np
import pytest
import torch

from ktlens.analysis.probes.positions import default_position, resolve_position, select_positions


def test_default_convention(kt_model):
    assert default_position(kt_model, "hook_src") == "flatten"
    assert default_position(kt_model, "blocks.0.cross_attn.hook_k") == "flatten"
    assert default_position(kt_model, "blocks.0.hook_resid_post") == 0  # BOS
    assert resolve_position(kt_model, "blocks.0.hook_resid_post", "default", ndim=2) == "none"
    assert resolve_position(kt_model, "blocks.0.hook_resid_post", "default", 3, lambda m, h: -1) == -1
    assert resolve_position(kt_model, "x", [0, 1], 3) == [0, 1]


def test_select_positions_modes():
    act = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)  # [batch, pos, d]
    x, pos = select_positions(act, "blocks.0.hook_resid_post", -1)
    assert torch.equal(x, act[:, 2]) and pos.tolist() == [2, 2]
    x, pos = select_positions(act, "blocks.0.hook_resid_post", "all")
    assert x.shape == (6, 4) and pos.tolist() == [0, 1, 2, 0, 1, 2]
    x, pos = select_positions(act, "blocks.0.hook_resid_post", [0, 2])
    assert torch.equal(x, torch.cat([act[:, 0], act[:, 2]], 1)) and pos is None
    pattern = torch.zeros(2, 5, 3, 3)  # [batch, head, query, key]
    assert select_positions(pattern, "blocks.0.attn.hook_pattern", 0)[0].shape == (2, 5 * 3)
    with pytest.raises(ValueError, match="position 3"):
        select_positions(act, "h", 3)
    with pytest.raises(ValueError, match="'none'"):
        select_positions(act, "h", "none")
    with pytest.raises(ValueError, match="no position axis"):
        select_positions(act[:, 0], "h", 0)
    assert isinstance(pos, (np.ndarray, type(None)))
