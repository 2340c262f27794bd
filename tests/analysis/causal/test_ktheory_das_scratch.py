"""DAS on a tiny model with a bounded domain (r e <= 12) and scratch positions (r e, floor(r e / p^h)): pairs stay in
the domain, the decoder input holds the base's scratch values, IIA is scored at the count positions."""

import numpy as np
import pytest
import torch
from transformer_lens.tools.analysis.interchange import SubspaceInterchange, random_basis

from ktlens.analysis.causal.dose import dose_response_capped
from ktlens.analysis.causal.interchange import FitConfig, collect, interchange_hits
from ktlens.analysis.causal.ktheory import (das, default_locations, exact_triples, pair_tokens, parse_location,
                                            position_indices, sample_pairs, scored_positions)
from ktlens.models import KTheoryTransformer
from ktlens.tasks.ktheory_data import KTheoryGridSpec
from ktlens.tasks.ktheory_spec import KTheoryTaskSpec
from tests.analysis.probes.conftest import make_kt_model
from tests.tasks.ktheory_brute import definition_counts

RE_MAX = 12


@pytest.fixture(scope="module")
def model():
    grid = KTheoryGridSpec(n_primes=2, r_max=6, e_max=5, re_max=RE_MAX, split="random", test_fraction=0.25, seed=0)
    spec = KTheoryTaskSpec.of_grid(grid, "descending", scratch=("re", "quotients"))
    return KTheoryTransformer.create(spec, d_model=16, n_layers=1, n_heads=2, d_mlp=32).eval()


def _label(model, p, r, e) -> list[int]:
    c = definition_counts(int(p), int(r), int(e))
    return (c + [0] * model.seq_len)[: model.seq_len]


def _v_p(p: int, e: int) -> tuple[int, int]:
    u = 0
    while e % p == 0:
        e, u = e // p, u + 1
    return u, e


def test_pool_is_the_bounded_domain(model):
    triples = exact_triples(model)  # untrained: the whole domain
    want = {(p, r, e) for p in (2, 3) for r in range(1, 7) for e in range(1, 6) if r * e <= RE_MAX}
    assert set(map(tuple, triples.tolist())) == want


@pytest.mark.parametrize("variable", ["u", "e_prime", "re"])
@pytest.mark.parametrize("causal_model", ["algorithm1", "e_rebuilt"])
def test_pairs_stay_in_the_domain(model, variable, causal_model):
    pairs = sample_pairs(model, variable, exact_triples(model), 32, seed=0, causal_model=causal_model, draws=16)
    for t in (pairs.base, pairs.source):
        assert (t[:, 1] * t[:, 2] <= RE_MAX).all() and np.isin(t[:, 0], model.primes).all()
    if causal_model == "e_rebuilt" and variable != "re":
        for (p, r, e), (_, _, e_src), counts in zip(pairs.base, pairs.source, pairs.counts):
            (u_b, ep_b), (u_s, ep_s) = _v_p(p, e), _v_p(p, e_src)
            e_new = p ** u_s * ep_b if variable == "u" else p ** u_b * ep_s
            assert e_new <= model.e_max and r * e_new <= RE_MAX  # the rebuilt triple is a real one of the domain
            assert counts.tolist() == _label(model, p, r, e_new)
    re_cf = pairs.source[:, 1] * pairs.source[:, 2] if variable == "re" else pairs.base[:, 1] * pairs.base[:, 2]
    if causal_model == "algorithm1":
        np.testing.assert_array_equal(pairs.scratch_changed, re_cf != pairs.base[:, 1] * pairs.base[:, 2])


def test_decoder_input_holds_the_base_scratch_values_and_targets_are_the_counts(model):
    pairs = sample_pairs(model, "u", exact_triples(model), 16, seed=1)
    base_tokens, _, targets = pair_tokens(model, pairs)
    s = model.n_scratch
    assert base_tokens.shape == (16, 3 + model.dec_len) and targets.shape == (16, model.seq_len)
    for row, (p, r, e), counts, tgt in zip(base_tokens.numpy(), pairs.base, pairs.counts, targets.numpy()):
        re = r * e
        assert row[3] == model.bos and row[4] == re
        assert row[5 : 4 + s].tolist() == [re // p**h for h in range(1, s)]
        assert row[4 + s :].tolist() == counts[::-1][:-1].tolist()  # descending: n_L .. n_2 as input
        assert tgt.tolist() == counts[::-1].tolist()
    assert scored_positions(model) == tuple(range(s, model.dec_len))


def test_no_swap_and_a_self_swap_give_the_base_answer(model):
    triples = exact_triples(model)
    p, r, e = triples.T
    tokens = model.make_batch(p, r, e)
    targets = torch.as_tensor(np.array([_label(model, *t)[::-1] for t in triples]))
    at = scored_positions(model)
    truth = (model(tokens).argmax(-1)[:, list(at)] == targets).numpy()  # the base's own answer, scored at the counts
    for loc in ("blocks.0.mlp.hook_post@all", "blocks.0.hook_resid_post@scratch", "hook_src@src"):
        loc = parse_location(loc)
        pos = position_indices(model, loc)
        src = collect(model, loc.hook, tokens, pos)
        for swap in (None, SubspaceInterchange(random_basis(src.shape[-1], 3, seed=0)),
                     SubspaceInterchange(torch.eye(src.shape[-1]))):
            hits = interchange_hits(model, loc.hook, pos, swap, tokens, src, targets, target_positions=at).numpy()
            np.testing.assert_array_equal(hits, truth)


def test_das_report_names_the_scored_count_positions(model):
    r = das(model, "u", "blocks.0.mlp.hook_post@count", FitConfig(rank=2, steps=3, batch_size=16), n_train=32, n_test=32,
            progress=False)
    assert r.scored_positions == [f"n_{k}" for k in range(model.seq_len, 0, -1)]
    assert len(r.iia_per_position) == model.seq_len and r.scratch_changed_share == 0.0
    assert 0.0 <= r.iia <= 1.0 and 0.0 <= r.iia_no_intervention <= 1.0


def test_position_sets(model):
    s, d = model.n_scratch, model.dec_len
    get = lambda text: position_indices(model, parse_location(text))  # noqa: E731
    assert get("blocks.0.mlp.hook_post@scratch") == tuple(range(1, s + 1))
    assert get("blocks.0.mlp.hook_post@count") == tuple(range(s, d))
    assert get("blocks.0.mlp.hook_post@all") == tuple(range(d))
    assert get(f"blocks.0.mlp.hook_post@{d - 1}") == (d - 1,)
    labels = [l.label for l in default_locations(model)]
    assert "blocks.0.hook_resid_post@scratch" in labels and "blocks.0.hook_resid_post@count" in labels
    plain = make_kt_model()
    with pytest.raises(ValueError, match="'scratch'"):
        position_indices(plain, parse_location("blocks.0.mlp.hook_post@scratch"))
    assert position_indices(plain, parse_location("blocks.0.mlp.hook_post@count")) == tuple(range(plain.seq_len))
    assert [l.label for l in default_locations(plain)][1:3] == ["blocks.0.hook_resid_mid_cross@bos",
                                                                 "blocks.0.hook_resid_mid_cross@all"]


def test_dose_response_reads_the_n1_position_after_the_scratch_values(model):
    curves = dose_response_capped(model, deltas=(-1, 0, 1), n_max=40)
    for c in curves:
        assert model.position_labels()[c.position] == "n_1"
        assert np.asarray(c.logit_change).shape == (3, model.dec_len) and c.mean_shift[1] == 0.0
