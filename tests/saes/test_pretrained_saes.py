"""The shipped SAEs: they load, name where they read, and reconstruct their hook on a sample of the domain."""

import numpy as np
import pytest
import torch

import ktlens
from ktlens.saes.activations import ActivationStore, StoreConfig
from ktlens.saes.domains import domain_of
from ktlens.saes.io import read_sae_metrics

SHIPPED = ktlens.pretrained_saes()


def test_the_issue_s_saes_are_shipped():
    assert {"ktheory-small/blocks.0.mlp.hook_post", "ktheory-small/blocks.1.mlp.hook_post",
            "ktheory-base-eprime/blocks.0.mlp.hook_post", "ktheory-base-eprime/blocks.1.mlp.hook_post"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_sae_reconstructs_its_hook(name):
    sae = ktlens.load_sae(name)
    model = ktlens.load_pretrained(sae.cfg.model_name)
    assert name == f"{sae.cfg.model_name}/{sae.cfg.hook_name}"
    store = ActivationStore(model, sae.cfg.hook_name, domain_of(model), StoreConfig(batch_rows=1))
    x = store.sample(2048, seed=5).acts
    with torch.no_grad():
        f = sae.encode(x)
        x_hat = sae.decode(f)
    ev = 1 - (x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    assert ev >= 0.85 and (f > 0).sum(-1).float().mean() <= 32
    m = read_sae_metrics(name)
    assert m["d_sae"] * 4 <= m["distinct_rows"]  # at most a quarter as many latents as distinct rows
    assert abs(m["explained_variance"] - ev.item()) < 0.05  # the stored figure is of these weights
