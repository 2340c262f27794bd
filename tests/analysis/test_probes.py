"""Linear probes: planted features are found, controls behave, nonlinear features are not linear,
both studies' models are probed end to end through their hooks, bad inputs are named."""

import json

import numpy as np
import pytest
import torch

from ktlens.analysis.probe_targets import default_hooks, probe_data
from ktlens.analysis.probes import (
    ProbeTarget,
    gather_features,
    probe_features,
    random_control_model,
    results_table,
    run_probes,
)
from ktlens.models import KTheoryTransformer

torch.set_num_threads(1)

SPEC = {"primes": [2, 3, 5, 7], "r_max": 4, "e_max": 4, "seq_len": 4, "max_count": 8, "label_order": "ascending"}


def kt_model():
    return KTheoryTransformer.create(SPEC, d_model=32, n_heads=4, d_mlp=64).eval()


# ----- synthetic features ----------------------------------------------------------------------------


def test_planted_linear_class_feature_is_found_and_shuffled_is_chance():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 20))
    W = rng.normal(size=(20, 3))
    y = (X @ W).argmax(1)
    res = probe_features(X, ProbeTarget("planted", "class", y, "argmax of a linear map"))
    assert res.accuracy > 0.95
    assert res.baseline < 0.6
    assert res.n_classes == 3
    # shuffled labels: nothing to learn beyond the class frequencies
    assert res.shuffled_accuracy < res.baseline + 0.08
    assert res.selectivity > 0.5


def test_shuffled_labels_on_pure_noise_give_chance():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 30))
    y = rng.integers(0, 4, size=2000)
    res = probe_features(X, ProbeTarget("noise", "class", y))
    assert abs(res.accuracy - 0.25) < 0.06
    assert abs(res.shuffled_accuracy - 0.25) < 0.06


def test_xor_of_two_signs_is_not_linearly_decodable():
    rng = np.random.default_rng(2)
    s = rng.choice([-1.0, 1.0], size=(2000, 2))
    X = np.concatenate([s + 0.1 * rng.normal(size=s.shape), rng.normal(size=(2000, 6))], 1)
    y = (s[:, 0] * s[:, 1] > 0).astype(int)
    res = probe_features(X, ProbeTarget("xor", "class", y))
    assert res.accuracy < 0.6
    # each sign on its own is linear
    assert probe_features(X, ProbeTarget("sign0", "class", s[:, 0] > 0)).accuracy > 0.99


def test_parity_of_a_linear_coordinate_is_not_linearly_decodable():
    rng = np.random.default_rng(3)
    n = rng.integers(0, 64, size=3000)
    X = np.stack([n, rng.normal(size=3000)], 1).astype(float)
    res = probe_features(X, ProbeTarget("parity", "class", n % 2))
    assert res.accuracy < 0.6


def test_masked_target_uses_only_its_examples():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3000, 5))
    keep = X[:, 0] > 0
    y = np.where(keep, (X[:, 1] > 0).astype(int), 7)  # outside the mask: a constant junk class
    res = probe_features(X, ProbeTarget("masked", "class", y, mask=keep))
    assert res.n_train + res.n_test == keep.sum()
    assert res.n_classes == 2 and res.accuracy > 0.97
    assert res.shuffled_accuracy < 0.6
    with pytest.raises(ValueError, match="mask"):
        ProbeTarget("m", "class", y, mask=keep[:10])


def test_ridge_recovers_a_planted_scalar_and_not_noise():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(3000, 10))
    y = X @ rng.normal(size=10) + 3.0 + 0.01 * rng.normal(size=3000)
    res = probe_features(X, ProbeTarget("planted", "scalar", y))
    assert res.metric == "r2"
    assert res.accuracy > 0.999
    assert abs(res.baseline) < 0.02
    assert abs(res.shuffled_accuracy) < 0.03
    noise = probe_features(X, ProbeTarget("noise", "scalar", rng.normal(size=3000)))
    assert abs(noise.accuracy) < 0.03


# ----- models through hooks --------------------------------------------------------------------------


def test_ktheory_model_end_to_end():
    model = kt_model()
    data = probe_data(model, n_max=None)
    hooks = default_hooks(model)
    assert hooks[:3] == ["hook_src", "blocks.0.hook_resid_mid", "blocks.0.hook_resid_mid_cross"]
    results = run_probes(model, data.tokens, data.targets, hooks, max_iter=50, test_fraction=0.5)
    names = {t.name for t in data.targets}
    assert {(r.hook, r.target) for r in results} == {(h, n) for h in hooks for n in names if h != "hook_src" or n != "n_at_position"}
    by = {(r.hook, r.target): r for r in results}
    # the source embedding holds the inputs (one vector per token id, concatenated over p, r, e)
    assert by[("hook_src", "p")].position == "flatten"
    assert by[("hook_src", "p")].accuracy == 1.0
    assert by[("blocks.0.hook_resid_mid_cross", "u")].position == "0"
    kept = {t.name: 64 if t.mask is None else int(t.mask.sum()) for t in data.targets}
    assert kept["u_when_p_divides_e"] == 12  # p = 2 with e in {2, 4}, p = 3 with e = 3; r in 1..4
    for r in results:
        assert r.control_accuracy is not None and r.shuffled_accuracy is not None
        assert r.n_train + r.n_test == kept[r.target]
        json.dumps(r.to_dict())
    assert "u_and_e_prime" in results_table(results)
    assert results_table(results, markdown=True).startswith("| target")


def test_bos_position_before_cross_attention_is_constant():
    model = kt_model()
    data = probe_data(model, n_max=None)
    feats = gather_features(model, data.tokens, ["blocks.0.hook_resid_mid", "blocks.0.hook_resid_mid_cross"])
    assert feats["blocks.0.hook_resid_mid"].X.std(0).max() < 1e-4  # self-attention at BOS sees only BOS
    assert feats["blocks.0.hook_resid_mid_cross"].X.std(0).max() > 1e-3


def test_position_modes():
    model = kt_model()
    data = probe_data(model, n_max=None)
    hook = "blocks.0.hook_resid_post"
    f = gather_features(model, data.tokens, [hook], positions="all")[hook]
    assert f.X.shape == (64 * 4, 32)
    assert (f.position[:4] == np.arange(4)).all() and (f.example[:4] == 0).all()
    assert gather_features(model, data.tokens, [hook], positions="flatten")[hook].X.shape == (64, 128)
    assert gather_features(model, data.tokens, [hook], positions=[0, 2])[hook].X.shape == (64, 64)
    pat = "blocks.0.cross_attn.hook_pattern"  # [B, heads, query, source]: query axis selected
    assert gather_features(model, data.tokens, [pat], positions=0)[pat].X.shape == (64, 4 * 3)
    target = data.select(["n_at_position"]).targets
    rows = run_probes(model, data.tokens, target, [hook], positions="all", control=False, max_iter=30)
    assert rows[0].n_train + rows[0].n_test == 64 * 4


def test_random_control_model_is_same_architecture_other_weights():
    model = kt_model()
    state = torch.random.get_rng_state()
    ctrl = random_control_model(model)
    assert torch.equal(state, torch.random.get_rng_state())
    assert type(ctrl) is type(model) and ctrl.cfg.d_model == model.cfg.d_model
    assert ctrl.cfg.seed != model.cfg.seed
    assert not torch.equal(ctrl.src_embed.W_E, model.src_embed.W_E)


def test_remainders_model_end_to_end():
    encoder = pytest.importorskip("ktlens.models.encoder")
    from ktlens.tasks.remainders import RemaindersSpec

    model = encoder.RemaindersTransformer.create(RemaindersSpec(p=11), d_model=32, n_heads=4, d_mlp=64).eval()
    data = probe_data(model, n_max=None)
    hooks = default_hooks(model)
    assert hooks[0] == "hook_embed" and hooks[-1] == "hook_resid_final"
    results = run_probes(model, data.tokens, data.targets, hooks, max_iter=50)
    by = {(r.hook, r.target): r for r in results}
    assert by[("hook_resid_final", "n_mod_2")].position == "none"
    assert by[("blocks.0.hook_resid_post", "n_mod_2")].position == "-1"
    assert by[("hook_embed", "digit_0")].accuracy == 1.0
    assert {f"n_mod_{q}" for q in (2, 3, 5, 7)} <= {t.name for t in data.targets}
    assert ("hook_embed", "cos_1_digit_1") in by


# ----- bad inputs ------------------------------------------------------------------------------------


def test_unknown_hook_is_named():
    model = kt_model()
    data = probe_data(model, n_max=None)
    with pytest.raises(ValueError, match="blocks.0.hook_nonsense"):
        run_probes(model, data.tokens, data.targets, ["blocks.0.hook_nonsense"])


def test_target_length_mismatch_is_named():
    model = kt_model()
    data = probe_data(model, n_max=None)
    bad = ProbeTarget("too_short", "class", np.zeros(10, dtype=int))
    with pytest.raises(ValueError, match="too_short.*10"):
        run_probes(model, data.tokens, [bad], ["hook_src"])
    with pytest.raises(ValueError, match="too_short"):
        probe_features(np.zeros((20, 3)), bad)


def test_bad_targets_and_positions():
    with pytest.raises(ValueError, match="'vector'"):
        ProbeTarget("x", "vector", np.zeros(3))
    with pytest.raises(ValueError, match="float64"):
        ProbeTarget("x", "class", np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        ProbeTarget("x", "scalar", np.array([1.0, np.nan]))
    model = kt_model()
    data = probe_data(model, n_max=None)
    with pytest.raises(ValueError, match="position 9"):
        gather_features(model, data.tokens, ["blocks.0.hook_resid_post"], positions=9)
    with pytest.raises(ValueError, match="'middle'"):
        gather_features(model, data.tokens, ["blocks.0.hook_resid_post"], positions="middle")
    with pytest.raises(ValueError, match="'nope'"):
        data.select(["nope"])
