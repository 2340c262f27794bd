"""DAS on a tiny K-theory model: pairs follow the causal model, reports carry every control, bad input is named."""

import numpy as np
import pytest

from ktlens.analysis.causal.dose import dose_response_capped
from ktlens.analysis.causal.interchange import FitConfig
from ktlens.analysis.causal.ktheory import (das, default_locations, exact_triples, pair_tokens, parse_location,
                                            position_indices, random_model_like, sample_pairs)
from ktlens.tasks import ktheory as kt
from ktlens.tasks import ktheory_causal as kc
from tests.analysis.probes.conftest import make_kt_model

TINY = FitConfig(rank=2, steps=3, batch_size=16)


@pytest.fixture(scope="module")
def model():
    return make_kt_model()


def test_pairs_follow_the_causal_model(model):
    triples = exact_triples(model)
    pairs = sample_pairs(model, "u", triples, 64, seed=0)
    b, s = pairs.base, pairs.source
    assert (b[:, 0] == s[:, 0]).all()  # same prime
    want = kc.counterfactual((b[:, 0], b[:, 1], b[:, 2]), {"u": (s[:, 0], s[:, 1], s[:, 2])}, length=model.seq_len)
    np.testing.assert_array_equal(pairs.counts, want)
    changed = (want != kc.counterfactual((b[:, 0], b[:, 1], b[:, 2]), length=model.seq_len)).any(1)
    np.testing.assert_array_equal(pairs.changing, changed)
    assert changed[: int(changed.sum())].all()  # answer-changing pairs first
    base_tokens, source_tokens, targets = pair_tokens(model, pairs)
    assert base_tokens.shape == source_tokens.shape == (64, 3 + model.seq_len)
    np.testing.assert_array_equal(targets.numpy(), model.to_model_order(want))
    iso = sample_pairs(model, "u", triples, 32, seed=0, same_prime="isolate")
    vb = kc.intermediates(*iso.base.T)
    vs = kc.intermediates(*iso.source.T)
    assert (vb["e_prime"] == vs["e_prime"]).all() and (vb["re"] == vs["re"]).all()
    np.testing.assert_array_equal(iso.counts, kc.counterfactual(tuple(iso.source.T), length=model.seq_len))


def test_report_has_every_control(model):
    r = das(model, "e_prime", "blocks.0.hook_resid_mid_cross@all", TINY, n_train=32, n_test=32,
            random_model=random_model_like(model), progress=False)
    d = r.to_dict()
    for key in ("iia", "iia_random_subspace", "iia_placebo", "iia_no_intervention", "iia_random_model", "answer_changing_share"):
        assert 0.0 <= d[key] <= 1.0, key
    assert d["location"] == "blocks.0.hook_resid_mid_cross@all" and d["n_pairs"] == 32 and d["subspace_dim"] == 2
    assert len(d["iia_per_position"]) == model.seq_len and r.basis.shape == (model.cfg.d_model, 2)
    again = das(model, "e_prime", "blocks.0.hook_resid_mid_cross@all", TINY, n_train=32, n_test=32, progress=False)
    assert again.iia == r.iia and again.final_loss == r.final_loss  # same seed, same numbers


def test_locations(model):
    locs = default_locations(model)
    assert locs[0].label == "hook_src@src" and len(locs) == 1 + 6 * model.cfg.n_layers
    assert position_indices(model, parse_location("hook_src@e")) == (2,)
    assert position_indices(model, parse_location("blocks.0.mlp.hook_post@labels")) == tuple(range(1, model.seq_len))
    with pytest.raises(ValueError, match="'blocks.9.hook_resid_post'"):
        position_indices(model, parse_location("blocks.9.hook_resid_post"))
    with pytest.raises(ValueError, match="'middle'"):
        position_indices(model, parse_location("blocks.0.hook_resid_post@middle"))
    with pytest.raises(ValueError, match="'w'"):
        das(model, "w", "hook_src", TINY, n_train=8, n_test=8, progress=False)


def test_dose_response_shapes(model):
    curves = dose_response_capped(model, deltas=(-1, 0, 1), n_max=40)
    assert [c.method for c in curves] == ["probe", "mean_difference"]
    for c in curves:
        assert len(c.mean_shift) == 3 and np.asarray(c.logit_change).shape == (3, model.seq_len)
        assert c.mean_shift[1] == 0.0 and c.agreement[1] == pytest.approx(float(np.mean(c.agreement[1])))
    with pytest.raises(ValueError, match="'blocks.7.mlp.hook_post'"):
        dose_response_capped(model, "blocks.7.mlp.hook_post")


def test_on_manifold_pairs_ask_for_the_label_of_a_real_triple(model):
    triples = exact_triples(model)
    pairs = sample_pairs(model, "u", triples, 16, seed=0, on_manifold=True, draws=64)
    p, r, e = (a.ravel() for a in np.meshgrid(model.primes, np.arange(1, model.r_max + 1), np.arange(1, model.e_max + 1), indexing="ij"))
    labels = kt.summand_count_table(p, r, e, length=model.seq_len)  # the task's closed form, not the causal model
    for base, counts in zip(pairs.base, pairs.counts):
        assert ((p == base[0]) & (labels == counts).all(1)).any(), (base, counts)
    assert pairs.changing[0]  # answer-changing pairs first, and there are some
    loose = sample_pairs(model, "u", triples, 16, seed=0, draws=64)
    assert loose.changing.sum() >= pairs.changing.sum()
