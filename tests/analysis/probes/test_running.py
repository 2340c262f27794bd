"""Running probes: both studies' models end to end through their hooks, masked targets, the
per-position label, bad inputs named, progress on stderr, warnings on samples too small for the classes."""

import json
import warnings

import numpy as np
import pytest

from ktlens.analysis.probe_targets import default_hooks, probe_data
from ktlens.analysis.probes import (
    ProbeTarget,
    SmallSampleWarning,
    probe_features,
    results_table,
    run_probes,
    sample_size_warnings,
)


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


def test_ktheory_model_end_to_end(kt_model):
    model = kt_model
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


def test_unknown_hook_is_named(kt_model):
    model = kt_model
    data = probe_data(model, n_max=None)
    with pytest.raises(ValueError, match="blocks.0.hook_nonsense"):
        run_probes(model, data.tokens, data.targets, ["blocks.0.hook_nonsense"])


def test_target_length_mismatch_is_named(kt_model):
    model = kt_model
    data = probe_data(model, n_max=None)
    bad = ProbeTarget("too_short", "class", np.zeros(10, dtype=int))
    with pytest.raises(ValueError, match="too_short.*10"):
        run_probes(model, data.tokens, [bad], ["hook_src"])
    with pytest.raises(ValueError, match="too_short"):
        probe_features(np.zeros((20, 3)), bad)


def test_per_position_target_over_all_positions(kt_model):
    data = probe_data(kt_model, n_max=None)
    target = data.select(["n_at_position"]).targets
    rows = run_probes(kt_model, data.tokens, target, ["blocks.0.hook_resid_post"], positions="all", control=False, max_iter=30)
    assert rows[0].n_train + rows[0].n_test == 64 * 4
    # per-position targets are undefined on rows that mix positions: no row
    assert run_probes(kt_model, data.tokens, target, ["blocks.0.hook_resid_post"], positions="flatten", control=False) == []


def test_small_sample_warnings():
    rng = np.random.default_rng(0)
    many = ProbeTarget("many_classes", "class", np.arange(40) % 20)  # 2 per class
    few = ProbeTarget("two_classes", "class", np.arange(40) % 2)
    scalar = ProbeTarget("scalar", "scalar", rng.normal(size=40))
    msgs = sample_size_warnings([many, few, scalar], 0.25)
    assert len(msgs) == 1 and "'many_classes'" in msgs[0] and "20 classes" in msgs[0]
    masked = ProbeTarget("masked", "class", np.arange(40) % 4, mask=np.arange(40) < 12)  # 12 examples, 4 classes
    assert "'masked'" in sample_size_warnings([masked], 0.25)[0]
    with pytest.warns(SmallSampleWarning, match="many_classes"):
        probe_features(rng.normal(size=(40, 3)), many)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probe_features(rng.normal(size=(40, 3)), few)  # 20 per class: no warning


def test_run_probes_warns_and_shows_progress(kt_model, capsys):
    data = probe_data(kt_model, n_max=None).select(["e", "u"])
    tokens, targets = data.tokens[:12], [ProbeTarget(t.name, t.kind, t.values[:12], t.description) for t in data.targets]
    with pytest.warns(SmallSampleWarning) as caught:
        rows = run_probes(kt_model, tokens, targets, ["hook_src", "blocks.0.hook_resid_post"], max_iter=10, progress=True)
    messages = [str(w.message) for w in caught]
    assert any("'e': 12 examples" in m and "4 classes" in m for m in messages)
    assert any("'u': 12 examples" in m for m in messages)
    assert len(rows) == 4
    err = capsys.readouterr().err
    assert "/8 " in err and "blocks.0.hook_resid_post" in err  # 2 hooks x 2 targets x (probe + control)
    with pytest.warns(SmallSampleWarning, match="'u'"):
        run_probes(kt_model, tokens, targets[1:], ["hook_src"], control=False, max_iter=10)
    assert capsys.readouterr().err == ""  # no bar unless asked
