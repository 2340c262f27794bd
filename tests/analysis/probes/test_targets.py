"""The studies' probe data: targets read from the task variables, the label per decoder position in the
model's order, masks, selection, default hooks; the old import path still works."""

import numpy as np
import pytest

from ktlens.analysis.probes.targets import KTHEORY_TARGETS, default_hooks, joint_codes, probe_data

from .conftest import make_kt_model


def test_ktheory_targets_follow_the_variables(kt_model):
    data = probe_data(kt_model, n_max=None)
    p, r, e = (data.inputs[k] for k in "pre")
    assert len(p) == 64
    by = {t.name: t for t in data.targets}
    assert [t.name for t in data.targets] == [name for name, *_ in KTHEORY_TARGETS]
    for i in range(0, 64, 5):  # independent computation for a few triples
        pi, ri, ei = int(p[i]), int(r[i]), int(e[i])
        u, ep = 0, ei
        while ep % pi == 0:
            ep, u = ep // pi, u + 1
        assert by["u"].values[i] == u and by["e_prime"].values[i] == ep
        assert by["count_div_p"].values[i] == sum(1 for m in range(1, ri * ei + 1) if m % pi == 0)
        assert by["log_p_order"].values[i] == ri * (ei - 1)
    assert by["u_when_p_divides_e"].mask.tolist() == (e % p == 0).tolist()
    assert (joint_codes(by["u"].values, by["e_prime"].values) == by["u_and_e_prime"].values).all()
    # teacher-forced decoder input holds the natural-order labels n_1..n_{L-1} after BOS (ascending model)
    assert (data.tokens[:, 4:].numpy() == by["n_at_position"].values[:, :3]).all()


def test_label_per_position_follows_a_descending_model():
    asc = probe_data(make_kt_model(), n_max=None)
    desc_model = make_kt_model(label_order="descending")
    desc = probe_data(desc_model, n_max=None)
    a = asc.select(["n_at_position"]).targets[0].values
    d = desc.select(["n_at_position"]).targets[0].values
    assert (d == a[:, ::-1]).all()  # position k: n_{L-k}
    assert (d == desc_model.to_model_order(a)).all()
    assert (desc.tokens[:, 4:].numpy() == d[:, :3]).all()  # what the decoder reads is what the target says


def test_sampling_selection_and_hooks(kt_model):
    data = probe_data(kt_model, n_max=20, seed=3)
    assert len(data.tokens) == 20 and all(len(t) == 20 for t in data.targets)
    sub = data.subset(np.arange(12))
    assert sub.tokens.shape[0] == 12 and all(len(t) == 12 for t in sub.targets)
    masked = next(t for t in sub.targets if t.mask is not None)
    assert (masked.mask == next(t for t in data.targets if t.name == masked.name).mask[:12]).all()
    assert [t.name for t in data.select(["re", "u"]).targets] == ["re", "u"]
    with pytest.raises(ValueError, match="'nope'"):
        data.select(["nope"])
    assert default_hooks(kt_model)[:3] == ["hook_src", "blocks.0.hook_resid_mid", "blocks.0.hook_resid_mid_cross"]


def test_remainders_targets_follow_the_variables():
    encoder = pytest.importorskip("ktlens.models.encoder")
    from ktlens.tasks.remainders import RemaindersSpec

    spec = RemaindersSpec(p=11, digit_order="lsd", variant="divisibility", digit_tokens="separate")
    model = encoder.RemaindersTransformer.create(spec, d_model=16, n_heads=2, d_mlp=32).eval()
    data = probe_data(model, n_max=None)
    by = {t.name: t for t in data.targets}
    n = data.inputs["n"]
    assert [q for q in (2, 3, 5, 7) if f"n_mod_{q}" in by and f"label_{q}" in by] == [2, 3, 5, 7]
    assert (by["n_mod_7"].values == n % 7).all() and (by["label_3"].values == (n % 3 == 0)).all()
    assert (by["digit_0"].values == n % 11).all() and (by["digit_1"].values == n // 11).all()  # lsd first
    assert np.allclose(by["cos_2_digit_1"].values, np.cos(2 * np.pi * 2 * (n // 11) / 11))
    assert {"cos_3_digit_0", "sin_1_digit_1"} <= set(by)


def test_old_import_path_reexports_the_package():
    import ktlens.analysis.probe_targets as old
    import ktlens.analysis.probes.targets as new

    for name in old.__all__:
        assert getattr(old, name) is getattr(new, name)
