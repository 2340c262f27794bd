"""Shared SAE machinery: hooks, unit-norm decoder rows under training, scale folding, planted dictionary."""

import pytest
import torch

from ktlens.saes import ReLUSAE, ReLUSAEConfig, TopKSAE, TopKSAEConfig
from ktlens.saes.activations import TensorRows
from ktlens.saes.training import SAETrainData
from ktlens.train import TrainConfig, train


def run(sae, x, steps, lr=3e-3, batch_rows=256, seed=0):
    store = TensorRows(x, batch_rows, seed=seed)
    sae.initialize_from_sample(x[:4096])
    data = SAETrainData(sae, store, eval_rows=1024, seed=seed)
    cfg = TrainConfig(steps=steps, batch_size=batch_rows, lr=lr, weight_decay=0.0, betas=(0.9, 0.999), warmup_steps=20,
                      eval_every=steps, checkpoint_every=steps, seed=seed)
    return train(sae, data, cfg, progress=False), data


def best_cosines(sae, atoms):
    """For each planted atom, the largest cosine with any decoder row."""
    w = sae.W_dec.detach()
    w = w / w.norm(dim=1, keepdim=True)
    return (atoms @ w.T).max(1).values


@pytest.mark.parametrize("arch", ["topk", "relu"])
def test_planted_sparse_dictionary_is_recovered(planted_data, arch):
    x, atoms = planted_data
    if arch == "topk":
        sae = TopKSAE(TopKSAEConfig(d_in=32, d_sae=96, k=3, dead_window_rows=4096))
    else:
        sae = ReLUSAE(ReLUSAEConfig(d_in=32, d_sae=96, l1_coefficient=0.3, l1_warmup_steps=100, resample_every=150,
                                    resample_stop=400, resample_window_rows=4096))
    before = best_cosines(sae, atoms)
    run(sae, x, steps=500, lr=5e-3)
    cos = best_cosines(sae, atoms)
    assert (before >= 0.9).float().mean() < 0.1  # the random start does not already know the atoms
    assert (cos >= 0.9).float().mean() >= 0.9, cos


def test_decoder_rows_stay_unit_norm_and_gradient_is_projected(planted_data):
    x, _ = planted_data
    sae = ReLUSAE(ReLUSAEConfig(d_in=32, d_sae=64, l1_coefficient=0.3))
    sae.initialize_from_sample(x)
    store = TensorRows(x, 128)
    data = SAETrainData(sae, store)
    opt = torch.optim.Adam(sae.parameters(), lr=0.05)
    for step in range(20):
        opt.zero_grad()
        data.loss(sae, data.batch_at(step)).backward()
        raw = sae.W_dec.grad.clone()
        data.before_step(sae)
        # what is left of the gradient is orthogonal to each row, and it is raw minus its projection
        along = (sae.W_dec.grad * sae.W_dec).sum(1)
        assert along.abs().max() < 1e-5
        expected = raw - (raw * sae.W_dec).sum(1, keepdim=True) * sae.W_dec
        torch.testing.assert_close(sae.W_dec.grad, expected)
        opt.step()
        assert (sae.W_dec.norm(dim=1) - 1).abs().max() > 1e-4 or step == 0  # Adam moves rows off the sphere...
        data.after_step(sae, opt, step + 1)
        torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(64))  # ...and the renormalisation puts them back


def test_hooks_report_the_map_and_fold_keeps_outputs():
    torch.manual_seed(0)
    sae = TopKSAE(TopKSAEConfig(d_in=8, d_sae=16, k=4))
    x = torch.randn(2, 5, 8) * 3 + 1
    sae.initialize_from_sample(x.reshape(-1, 8))
    with torch.no_grad():
        sae.b_enc.normal_()
        out, cache = sae.run_with_cache(x)
    assert set(cache.keys()) == {"hook_sae_input", "hook_sae_acts_pre", "hook_sae_acts_post", "hook_sae_recons", "hook_sae_error"}
    assert cache["hook_sae_acts_post"].shape == (2, 5, 16)
    assert ((cache["hook_sae_acts_post"] > 0).sum(-1) <= 4).all()
    torch.testing.assert_close(cache["hook_sae_error"], x - out)
    # reconstruction from the definition: f W_dec + b_dec in scaled units, divided by the scale
    f = cache["hook_sae_acts_post"]
    torch.testing.assert_close(out, (f @ sae.W_dec + sae.b_dec) / sae.input_scale)
    assert sae.input_scale.item() != 1.0
    with torch.no_grad():
        active_before = sae.encode(x) > 0
        sae.fold_input_scale()
        torch.testing.assert_close(sae(x), out, rtol=1e-5, atol=1e-5)
        assert torch.equal(sae.encode(x) > 0, active_before)
    assert sae.input_scale.item() == 1.0


def test_bad_configs_and_inputs_name_the_value():
    with pytest.raises(ValueError, match="d_sae"):
        TopKSAEConfig(d_in=8, d_sae=0)
    with pytest.raises(ValueError, match="k must be in 1..d_sae=16, got 17"):
        TopKSAEConfig(d_in=8, d_sae=16, k=17)
    with pytest.raises(ValueError, match="l1_coefficient"):
        ReLUSAEConfig(d_in=8, d_sae=16, l1_coefficient=-1.0)
    sae = ReLUSAE(ReLUSAEConfig(d_in=8, d_sae=16))
    with pytest.raises(ValueError, match=r"d_in=8.*\(3, 7\)"):
        sae(torch.zeros(3, 7))
