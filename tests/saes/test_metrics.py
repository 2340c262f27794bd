"""Metrics from their definitions, and splicing an exact identity changes nothing."""

import math

import numpy as np
import pytest
import torch

from ktlens.saes import ReLUSAE, ReLUSAEConfig, TopKSAE, TopKSAEConfig
from ktlens.saes.activations import ActivationStore, StoreConfig
from ktlens.saes.domains import domain_of
from ktlens.saes.metrics import evaluate_sae, reconstruction_metrics, splice_hook

HOOK = "blocks.0.mlp.hook_post"


def identity_sae(d, hook):
    """ReLU SAE with W_enc = W_dec = I and zero biases: the identity on non-negative inputs."""
    sae = ReLUSAE(ReLUSAEConfig(d_in=d, d_sae=d, hook_name=hook))
    with torch.no_grad():
        sae.W_enc.copy_(torch.eye(d))
        sae.W_dec.copy_(torch.eye(d))
    return sae


def all_rows(model, hook):
    domain = domain_of(model)
    with torch.no_grad():
        _, cache = model.run_with_cache(domain.tokens(np.arange(domain.n_examples)), names_filter=hook)
    return cache[hook].reshape(-1, cache[hook].shape[-1])


def test_splicing_an_exact_identity_leaves_ktheory_outputs_unchanged(tiny_ktheory):
    sae = identity_sae(256, HOOK)
    tokens = domain_of(tiny_ktheory).tokens(np.arange(64))
    with torch.no_grad():
        clean = tiny_ktheory.run_with_hooks(tokens, fwd_hooks=[(HOOK, lambda act, hook: act)])
        spliced = tiny_ktheory.run_with_hooks(tokens, fwd_hooks=[(HOOK, splice_hook(sae, HOOK))])
        with tiny_ktheory.hooks(fwd_hooks=[(HOOK, lambda act, hook: act)]):
            gen_clean = tiny_ktheory.generate(tokens[:, :3])
        with tiny_ktheory.hooks(fwd_hooks=[(HOOK, splice_hook(sae, HOOK))]):
            gen_spliced = tiny_ktheory.generate(tokens[:, :3])
    assert torch.equal(clean, spliced) and torch.equal(gen_clean, gen_spliced)
    m = evaluate_sae(sae, tiny_ktheory)
    assert m["sae"] == m["clean"] and m["ce_loss_score"] == 1.0
    assert m["explained_variance"] == 1.0 and m["mse"] == 0.0
    x = all_rows(tiny_ktheory, HOOK)
    assert m["l0"] == pytest.approx((x > 0).sum(1).double().mean().item())


def test_splicing_an_exact_identity_leaves_miiii_outputs_unchanged(tiny_miiii):
    sae = identity_sae(32, HOOK)
    m = evaluate_sae(sae, tiny_miiii)
    assert m["sae"] == m["clean"] and m["ce_loss_score"] == 1.0
    assert m["accuracy_metric"] == "worst_task_accuracy"
    assert m["clean"]["worst_task_accuracy"] == min(m["clean"][f"acc_q{q}"] for q in (2, 3, 5))


def test_reconstruction_metrics_match_a_direct_computation(tiny_ktheory):
    torch.manual_seed(0)
    sae = TopKSAE(TopKSAEConfig(d_in=256, d_sae=96, k=5, hook_name=HOOK))
    x = all_rows(tiny_ktheory, HOOK)
    with torch.no_grad():
        sae.initialize_from_sample(x)
        sae.b_enc[:40] = -1e3  # 40 latents can never fire
        sae.fold_input_scale()
        store = ActivationStore(tiny_ktheory, HOOK, domain_of(tiny_ktheory), StoreConfig(batch_rows=1, model_batch=7))
        m = reconstruction_metrics(sae, store, chunk_examples=7)
        f = torch.relu((x - sae.b_dec) @ sae.W_enc + sae.b_enc)
        keep = f >= f.topk(5, dim=1).values[:, -1:]
        f = f * keep
        x_hat = f @ sae.W_dec + sae.b_dec
    x, x_hat = x.double(), x_hat.double()
    assert m["n_rows"] == 64 * tiny_ktheory.seq_len
    assert m["mse"] == pytest.approx((x - x_hat).pow(2).sum(1).mean().item(), rel=1e-4)
    ev = 1 - (x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    assert m["explained_variance"] == pytest.approx(ev.item(), rel=1e-4)
    assert m["l0"] == pytest.approx((f > 0).sum(1).double().mean().item())
    density = (f > 0).double().mean(0)
    assert m["dead_features"] == pytest.approx((density == 0).double().mean().item()) and m["dead_features"] >= 40 / 96
    assert m["dense_features"] == pytest.approx((density > 0.1).double().mean().item())
    assert sum(m["feature_density_log10_hist"]["counts"]) == int((density > 0).sum())
    assert m["distinct_rows"] == len(torch.unique(x, dim=0))
    assert m["feature_density_log10_hist"]["edges"][0] <= math.log10(1 / m["n_rows"])
