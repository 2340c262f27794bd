"""Probe data of a bounded-domain model with scratch positions: only domain triples, the held-out split of the
model's dataset, count targets at count positions only, scratch targets at scratch positions only."""

import numpy as np
import pytest

from ktlens.analysis.probes import run_probes
from ktlens.analysis.probes.targets import KTHEORY_TARGETS, probe_data
from ktlens.tasks.ktheory_data import KTheoryGridSpec, build_dataset
from tests.analysis.domain_model import GRID, domain_model, domain_set
from tests.tasks.ktheory_brute import definition_counts


@pytest.fixture(scope="module")
def model():
    return domain_model()


def triples(data):
    return list(zip(*(data.inputs[k].tolist() for k in "pre")))


def test_probe_data_holds_the_domain_and_its_split(model):
    data = probe_data(model, n_max=None)
    assert sorted(triples(data)) == sorted(domain_set())
    sample = probe_data(model, n_max=20, seed=4)
    assert len(set(triples(sample))) == 20 and set(triples(sample)) <= domain_set()
    ds = build_dataset(KTheoryGridSpec(**GRID))
    held = {(int(ds.p[i]), int(ds.r[i]), int(ds.e[i])) for i in ds.test_idx}
    assert [t in held for t in triples(data)] == data.inputs["in_model_test_split"].tolist()
    # teacher-forced tokens: BOS, then every target but the last (scratch values, then counts)
    p, r, e = (data.inputs[k] for k in "pre")
    assert (data.tokens[:, 4:].numpy() == model.targets(p, r, e)[:, :-1].numpy()).all()


def test_targets_stay_as_they_are_and_scratch_targets_are_added(model):
    data = probe_data(model, n_max=None)
    names = [t.name for t in data.targets]
    assert names[: len(KTHEORY_TARGETS)] == [name for name, *_ in KTHEORY_TARGETS]
    assert names[len(KTHEORY_TARGETS) :] == ["scratch_at_position", "scratch_re/p^2", "scratch_re/p^3"]
    by = {t.name: t for t in data.targets}
    for i, (p, r, e) in enumerate(triples(data)):
        counts = definition_counts(p, r, e)
        counts = counts + [0] * (model.seq_len - len(counts))
        assert by["re"].values[i] == r * e and by["count_div_p"].values[i] == r * e // p
        assert by["n_at_position"].values[i].tolist() == counts[::-1]  # descending: n_4 .. n_1
        assert by["scratch_at_position"].values[i].tolist() == [r * e // p**h for h in range(4)]
        assert by["scratch_re/p^3"].values[i] == r * e // p**3
    assert by["n_at_position"].first_position == model.n_scratch and by["scratch_at_position"].first_position == 0
    plain = probe_data(domain_model(scratch=()), n_max=None)
    assert "scratch_at_position" not in {t.name for t in plain.targets}


def test_per_position_targets_read_only_the_positions_they_cover(model):
    data = probe_data(model, n_max=None).select(["n_at_position", "scratch_at_position", "u"])
    n = len(data.tokens)
    hook = ["blocks.1.hook_resid_post"]
    rows = {r.target: r for r in run_probes(model, data.tokens, data.targets, hook, positions="all", control=False, max_iter=20)}
    assert rows["n_at_position"].n_train + rows["n_at_position"].n_test == n * model.seq_len
    assert rows["scratch_at_position"].n_train + rows["scratch_at_position"].n_test == n * model.n_scratch
    assert rows["u"].n_train + rows["u"].n_test == n * model.dec_len
    at_scratch = {r.target for r in run_probes(model, data.tokens, data.targets, hook, positions=1, control=False, max_iter=20)}
    assert at_scratch == {"scratch_at_position", "u"}
    at_count = {r.target for r in run_probes(model, data.tokens, data.targets, hook, positions=5, control=False, max_iter=20)}
    assert at_count == {"n_at_position", "u"}
