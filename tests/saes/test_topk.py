"""TopK: exactly k latents, and AuxK gives dead latents gradient."""

import torch

from ktlens.saes import TopKSAE, TopKSAEConfig


def test_topk_keeps_the_k_largest_positive_preactivations():
    torch.manual_seed(0)
    sae = TopKSAE(TopKSAEConfig(d_in=5, d_sae=12, k=3))
    x = torch.randn(9, 5)
    pre = sae.pre_acts(x)
    f = sae.encode(x)
    for row_pre, row_f in zip(pre, f):
        top = set(row_pre.argsort(descending=True)[:3].tolist())
        assert {i for i in range(12) if row_f[i] != 0} <= top
        for i in top:
            assert row_f[i] == max(row_pre[i].item(), 0.0)


def test_auxk_gives_dead_latents_gradient():
    torch.manual_seed(0)
    cfg = TopKSAEConfig(d_in=8, d_sae=32, k=2, k_aux=4, dead_window_rows=100)
    x = torch.randn(64, 8)
    grads = {}
    for coef in (0.0, 1 / 32):
        sae = TopKSAE(TopKSAEConfig(**{**cfg.__dict__, "aux_coefficient": coef}))
        dead = torch.zeros(32, dtype=torch.bool)
        dead[16:] = True
        with torch.no_grad():
            sae.b_enc[dead] = -5.0  # never in the top k
            sae.rows_since_fired[dead] = 1000
        out = sae.training_loss(x, step=0)
        out["loss"].backward()
        grads[coef] = (sae.W_enc.grad[:, dead].norm(dim=0), sae.W_dec.grad[dead].norm(dim=1), out["auxk_loss"])
    assert (grads[0.0][0] == 0).all() and (grads[0.0][1] == 0).all()  # no AuxK: dead latents learn nothing
    enc, dec, aux = grads[1 / 32]
    assert aux > 0
    assert (enc > 0).sum() >= 4 and (dec > 0).sum() >= 4  # at least k_aux dead latents get gradient


def test_auxk_is_zero_without_dead_latents():
    sae = TopKSAE(TopKSAEConfig(d_in=8, d_sae=32, k=2, dead_window_rows=100))
    assert sae.training_loss(torch.randn(16, 8), step=0)["auxk_loss"] == 0


def test_batchtopk_keeps_k_per_row_on_average_and_infers_with_its_threshold(tmp_path):
    from ktlens.saes import BatchTopKSAE, BatchTopKSAEConfig, load_sae, save_sae

    torch.manual_seed(0)
    sae = BatchTopKSAE(BatchTopKSAEConfig(d_in=8, d_sae=32, k=3, threshold_decay=0.0))
    x = torch.randn(50, 8)
    with torch.no_grad():
        pre = sae.pre_acts(x)
        acts = sae.batch_activation(pre)
    assert (acts > 0).sum() == 150  # k * rows over the batch...
    assert (acts > 0).sum(1).max() > 3  # ...unevenly over rows
    kept = torch.relu(pre).flatten().sort(descending=True).values[:150]
    assert sae.threshold.item() == kept.min().item()
    with torch.no_grad():
        inference = sae.encode(x)
    assert torch.equal(inference > 0, pre > kept.min())  # at inference: above the threshold
    save_sae(sae, tmp_path / "b")
    torch.testing.assert_close(load_sae(tmp_path / "b")(x), sae(x))


def test_sparse_training_path_equals_the_dense_definition():
    torch.manual_seed(1)
    sae = TopKSAE(TopKSAEConfig(d_in=8, d_sae=32, k=3))
    x = torch.randn(20, 8)
    sae.initialize_from_sample(x)
    loss = sae.training_loss(x, step=0)["loss"]
    loss.backward()
    sparse_grads = [p.grad.clone() for p in (sae.W_enc, sae.W_dec, sae.b_enc, sae.b_dec)]
    sae.zero_grad()
    dense = ((x - sae.decode(sae.encode(x))) * sae.input_scale).pow(2).sum(-1).mean()
    dense.backward()
    torch.testing.assert_close(loss, dense)
    for a, p in zip(sparse_grads, (sae.W_enc, sae.W_dec, sae.b_enc, sae.b_dec)):
        torch.testing.assert_close(a, p.grad)
    fired = (sae.encode(x) > 0).any(0)
    assert torch.equal(sae.rows_since_fired == 0, fired)
