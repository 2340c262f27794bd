"""Feature labelling on a K-theory model with r*e <= re_max and scratch decoder positions."""

import itertools

import numpy as np
import pytest
import torch

from ktlens.analysis.features import (
    LabelConfig,
    analyze_units,
    feature_domain,
    neuron_units,
    read_units,
    scalar_variables,
    score_units,
    task_events,
)
from ktlens.models.encoder_decoder import KTheoryTransformer
from ktlens.tasks.ktheory_data import KTheoryGridSpec
from ktlens.tasks.ktheory_spec import KTheoryTaskSpec
from tests.tasks.ktheory_brute import definition_counts

GRID = KTheoryGridSpec(n_primes=3, r_max=8, e_max=6, split="random", test_fraction=0.25, seed=0, re_max=24)


@pytest.fixture(scope="module")
def model():
    spec = KTheoryTaskSpec.of_grid(GRID, "descending", scratch=("re", "quotients"))
    return KTheoryTransformer.create(spec, d_model=16, n_layers=1, n_heads=2, d_mlp=32, seed=5).eval()


@pytest.fixture(scope="module")
def domain(model):
    return feature_domain(model)


def brute_triples():
    return [(p, r, e) for p, r, e in itertools.product((2, 3, 5), range(1, 9), range(1, 7)) if r * e <= 24]


def test_domain_rows_are_bounded_triples_times_every_decoder_position(model, domain):
    got = list(zip(*(domain.inputs[c].tolist() for c in "pre")))
    assert got == brute_triples()
    assert domain.n_positions == model.dec_len == model.n_scratch + model.seq_len
    assert domain.position_names == model.position_labels() and domain.position_names[:3] == ["re", "re/p", "re/p^2"]
    assert list(domain.count_positions) == list(model.count_positions)
    want = [[r * e // p**h for h in range(model.n_scratch)] for p, r, e in brute_triples()]
    assert np.array_equal(domain.scratch_values, np.array(want))
    units = read_units(model, neuron_units(model, "blocks.0.mlp.hook_post"), progress=False)
    _, cache = model.run_with_cache(domain.tokens[4:5])
    torch.testing.assert_close(units.by_position[4], cache["blocks.0.mlp.hook_post"][0])


def test_count_events_hold_at_count_positions_only_and_scratch_values_are_variables(model, domain):
    events = task_events(domain)
    names = [h.text() for h in events.hypotheses]
    S = model.n_scratch
    counts = [(definition_counts(p, r, e) + [0] * 9)[: model.seq_len] for p, r, e in brute_triples()]
    n_at = np.array([c[::-1] for c in counts])  # descending: position S + k writes n_{L-k}
    ev = events.events[..., names.index("n_at_position == 1")]
    assert not ev[:, :S].any() and np.array_equal(ev[:, S:], n_at == 1)
    # per-example variables hold at every position, scratch ones included
    n2 = events.events[..., names.index("n_2 == 1")]
    assert np.array_equal(n2, np.repeat((np.array(counts)[:, 1] == 1)[:, None], model.dec_len, axis=1))
    # the value written at a scratch position, there only
    re_p = np.array([r * e // p for p, r, e in brute_triples()])
    sc = events.events[..., names.index("scratch_at_position == 1")]
    assert not sc[:, S:].any() and np.array_equal(sc[:, 1], re_p == 1)
    # floor(re / p^2) is a variable of its own; r*e and floor(re / p) already are (re, count_div_p)
    re_p2 = np.array([r * e // p**2 for p, r, e in brute_triples()])
    assert np.array_equal(events.events[:, 0, names.index("re_div_p2 == 1")], re_p2 == 1)
    variables = {h.variable for h in events.hypotheses}
    assert "re_div_p" not in variables and "re_div_p0" not in variables and {"re", "count_div_p"} <= variables
    scalars = scalar_variables(domain)
    j = scalars.names.index("n_at_position")
    defined = n_at.astype(float)
    assert np.array_equal(scalars.values[:, S:, j], defined)
    assert np.allclose(scalars.values[:, :S, j], defined.mean())  # neutral where undefined


def test_a_planted_latent_at_a_scratch_position_is_labelled_with_that_position(model, domain):
    S, K, N = model.n_scratch, domain.n_positions, domain.n_examples
    re_p = domain.scratch_values[:, 1]
    p_div_e = np.array([e % p == 0 for p, r, e in brute_triples()])
    acts = torch.zeros(N, K, 3)
    acts[:, 1, 0] = torch.as_tensor((re_p == 2).astype(np.float32))  # at 're/p' when floor(re/p) == 2
    acts[:, :, 1] = torch.as_tensor(np.repeat(p_div_e[:, None], K, 1).astype(np.float32))  # everywhere p | e
    acts[:, S:, 2] = torch.as_tensor(np.array([c[::-1] for c in (
        (definition_counts(p, r, e) + [0] * 9)[: model.seq_len] for p, r, e in brute_triples())]) == 1).float()
    scores = score_units(acts, task_events(domain), LabelConfig(), progress=False)
    assert scores.labelled.all() and (scores.f1[:, 0] > 0.99).all()
    first = scores.candidate(scores.best[0, 0])
    assert first.position == 1 and first.text(domain.position_names).endswith("@ pos 1 (re/p)")
    assert first.relation == "==" and first.value == 2 and first.variable in ("count_div_p", "scratch_at_position")
    assert scores.candidate(scores.best[1, 0]).position is None
    third = scores.candidate(scores.best[2, 0])
    assert (third.variable, third.relation, third.value, third.position) == ("n_at_position", "==", 1, None)


def test_report_json_names_every_decoder_position(model):
    report = analyze_units(model, neuron_units(model, "blocks.0.mlp.hook_post"), progress=False)
    out = report.to_json()
    assert out["positions"] == model.position_labels()
    assert all(len(row["position_share"]) == model.dec_len for row in out["units"])
    sub = report.domain.subset(np.array([2, 0]))
    assert sub.n_examples == 2 and np.array_equal(sub.scratch_values, report.domain.scratch_values[[2, 0]])
    with pytest.raises(ValueError, match="subset"):
        report.domain.subset(np.array([report.domain.n_examples]))
