"""ReLU + L1: the loss from its definition, L1 warm-up, and Towards Monosemanticity resampling."""

import torch

from ktlens.saes import ReLUSAE, ReLUSAEConfig
from ktlens.saes.activations import TensorRows
from ktlens.saes.training import SAETrainData


def test_loss_is_mse_plus_warmed_up_l1():
    torch.manual_seed(0)
    sae = ReLUSAE(ReLUSAEConfig(d_in=6, d_sae=10, l1_coefficient=2.0, l1_warmup_steps=4))
    x = torch.randn(7, 6)
    with torch.no_grad():
        sae.b_enc.fill_(0.1)
    out = sae.training_loss(x, step=1)
    # by hand: f = relu((x - b_dec) W_enc + b_enc), x_hat = f W_dec + b_dec
    f = torch.relu((x - sae.b_dec) @ sae.W_enc + sae.b_enc)
    mse = (x - f @ sae.W_dec - sae.b_dec).pow(2).sum(1).mean()
    torch.testing.assert_close(out["mse_loss"], mse)
    torch.testing.assert_close(out["loss"], mse + 2.0 * (2 / 4) * f.sum(1).mean())
    assert sae.l1_coefficient_at(3) == sae.l1_coefficient_at(100) == 2.0


def test_resampling_revives_dead_latents_as_the_paper_says(planted_data):
    x, _ = planted_data
    cfg = ReLUSAEConfig(d_in=32, d_sae=40, l1_coefficient=0.1, resample_every=1, resample_stop=10, resample_window_rows=512)
    sae = ReLUSAE(cfg)
    sae.initialize_from_sample(x)
    dead = torch.zeros(40, dtype=torch.bool)
    dead[:10] = True
    with torch.no_grad():
        sae.b_enc[dead] = -1e4  # never fire
    data = SAETrainData(sae, TensorRows(x, 256))
    opt = torch.optim.Adam(sae.parameters(), lr=1e-3)
    for step in range(3):  # fills the counters and Adam's moments
        opt.zero_grad()
        data.loss(sae, data.batch_at(step)).backward()
        data.before_step(sae)
        opt.step()
        sae.normalize_decoder()
    assert sae.dead_mask(512).tolist() == dead.tolist()
    assert all((opt.state[p]["exp_avg"] != 0).any() for p in (sae.W_enc, sae.W_dec))
    alive_norm = sae.W_enc.norm(dim=0)[~dead].mean()
    data.after_step(sae, opt, 3)
    assert data.n_resampled == 10
    # new decoder rows: unit norm, each the direction of one input centred by b_dec
    w = sae.W_dec[dead]
    torch.testing.assert_close(w.norm(dim=1), torch.ones(10))
    centred = x * sae.input_scale - sae.b_dec
    cos = (w @ (centred / centred.norm(dim=1, keepdim=True)).T).max(1).values
    assert (cos > 1 - 1e-5).all()
    # encoder: the same direction at 0.2 x the mean alive norm; bias 0; Adam moments reset
    torch.testing.assert_close(sae.W_enc[:, dead].norm(dim=0), torch.full((10,), 0.2 * alive_norm.item()))
    torch.testing.assert_close(sae.W_enc[:, dead].T / sae.W_enc[:, dead].norm(dim=0)[:, None], w)
    assert (sae.b_enc[dead] == 0).all()
    for p, part in ((sae.W_dec, opt.state[sae.W_dec]["exp_avg"][dead]), (sae.W_enc, opt.state[sae.W_enc]["exp_avg_sq"][:, dead])):
        assert (part == 0).all()
    assert (opt.state[sae.W_dec]["exp_avg"][~dead] != 0).any()
    # and they fire again
    with torch.no_grad():
        fires = (sae.encode(x[:4096]) > 0).any(0)
    assert fires[dead].all()
