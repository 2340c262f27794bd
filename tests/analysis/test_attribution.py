"""Exact decomposition of the logits into writers of the final residual stream, and the logit lens."""

import pytest
import torch

from ktlens.analysis.attribution import (
    decompose_final_resid,
    direct_logit_attribution,
    ktheory_targets,
    logit_lens,
    miiii_targets,
)
from ktlens.models import KTheoryTransformer, RemaindersTransformer
from ktlens.tasks.remainders import RemaindersSpec

SPEC = {"primes": [2, 3, 5, 7], "r_max": 4, "e_max": 4, "label_order": "descending"}


def ktheory_model(normalization):
    model = KTheoryTransformer.create(SPEC, d_model=32, n_heads=4, d_mlp=64, n_layers=2, normalization=normalization, seed=1)
    with torch.no_grad():  # non-zero biases, so that the bias terms are tested too
        for name, param in model.named_parameters():
            if name.endswith(("b_O", "b_out", "b_U", ".b", "b_in")):
                param.normal_(0, 0.3)
    return model.eval()


@pytest.mark.parametrize("normalization", ["pre", "none"])
def test_ktheory_parts_add_up_to_every_logit(normalization):
    model = ktheory_model(normalization)
    p, r, e = [2, 5, 7], [3, 1, 4], [4, 2, 3]
    logits, cache = model.run_with_cache(model.make_batch(p, r, e))
    decomposition = decompose_final_resid(model, cache)
    n_heads = model.cfg.n_heads
    # every self- and cross-attention head of every layer is a component of its own
    for layer in range(2):
        for h in range(n_heads):
            assert f"L{layer}H{h}" in decomposition.labels and f"L{layer}C{h}" in decomposition.labels
    assert torch.allclose(decomposition.stack.sum(0), cache["blocks.1.hook_resid_post"], atol=1e-5)
    # a head's part is its own z through its own W_O rows: independent of the fused forward
    z = cache["blocks.1.cross_attn.hook_z"][:, :, 2]
    assert torch.allclose(decomposition.stack[decomposition.labels.index("L1C2")], z @ model.blocks[1].cross_attn.W_O[2], atol=1e-6)
    targets = ktheory_targets(model, p, r, e)
    attribution = direct_logit_attribution(model, cache, targets)
    expected = logits.gather(-1, targets[..., None])[..., 0]
    assert attribution.contributions.shape == (len(decomposition.labels) + 1, 3, model.seq_len)
    assert torch.allclose(attribution.contributions.sum(0), expected, atol=1e-4)
    # any other token too (not only the true label)
    other = (targets + 3) % model.cfg.d_vocab_out
    assert torch.allclose(direct_logit_attribution(model, cache, other).logits, logits.gather(-1, other[..., None])[..., 0], atol=1e-4)
    lens, labels = logit_lens(model, cache, targets)
    assert labels == ["0_pre", "1_pre", "final_post"] and torch.allclose(lens[-1], expected, atol=1e-4)


@pytest.mark.parametrize("normalization", ["pre", "none"])
def test_miiii_parts_add_up_at_equals(normalization):
    model = RemaindersTransformer.create(RemaindersSpec(p=7), d_model=32, n_heads=4, d_mlp=64, n_layers=2, normalization=normalization)
    model.eval()
    with torch.no_grad():
        model.unembed.b_U.normal_(0, 0.5)
    n = [3, 17, 40]
    logits, cache = model.run_with_cache(model.tokens_for(n))
    targets = miiii_targets(model, n)
    assert targets[1].tolist() == [17 % q for q in model.moduli]
    attribution = direct_logit_attribution(model, cache, targets)
    assert torch.allclose(attribution.contributions.sum(0), logits.gather(-1, targets[..., None])[..., 0], atol=1e-4)
    assert "L1H3" in attribution.labels


def test_post_ln_and_wrong_targets_are_refused():
    model = ktheory_model("post")
    _, cache = model.run_with_cache(model.make_batch([2], [1], [1]))
    with pytest.raises(ValueError, match="post"):
        decompose_final_resid(model, cache)
    model = ktheory_model("pre")
    _, cache = model.run_with_cache(model.make_batch([2], [1], [1]))
    with pytest.raises(ValueError, match="targets"):
        direct_logit_attribution(model, cache, torch.zeros(1, 2, dtype=torch.long))


@pytest.mark.parametrize("label_order", ["ascending", "descending"])
def test_targets_and_parts_on_a_bounded_domain_with_scratch_positions(label_order):
    from tests.analysis.domain_model import domain_model, domain_set
    from tests.tasks.ktheory_brute import definition_counts

    model = domain_model(label_order)
    p, r, e = zip(*sorted(domain_set()))
    targets = ktheory_targets(model, list(p), list(r), list(e))
    assert targets.shape == (len(p), model.dec_len)
    for row, pp, rr, ee in zip(targets.tolist(), p, r, e):
        counts = definition_counts(pp, rr, ee)
        counts = counts + [0] * (model.seq_len - len(counts))
        assert row[: model.n_scratch] == [rr * ee // pp**h for h in range(model.n_scratch)]  # re, re/p, re/p^2, ...
        assert row[model.n_scratch :] == (counts if label_order == "ascending" else counts[::-1])
    with pytest.raises(ValueError, match="r\\*e=15"):
        ktheory_targets(model, [2], [3], [5])
    logits, cache = model.run_with_cache(model.make_batch(list(p[:6]), list(r[:6]), list(e[:6])))
    attribution = direct_logit_attribution(model, cache, targets[:6])
    assert attribution.contributions.shape[1:] == (6, model.dec_len)
    assert torch.allclose(attribution.contributions.sum(0), logits.gather(-1, targets[:6, :, None])[..., 0], atol=1e-4)
