"""DAS with the causal model's counterfactual sequence as decoder input (``scratch_input="counterfactual"``) on a
tiny model that writes r e, floor(r e / p^h) and the e' chain floor(r e / (e' p^h)): the scratch values follow the
swap (recomputed here from the definitions), every decoder position is scored, and without a swap the base's own
prediction at the first moved scratch value is what an unused variable leaves."""

import numpy as np
import pytest
import torch

from ktlens.analysis.causal.interchange import FitConfig, interchange_hits
from ktlens.analysis.causal.ktheory import das, exact_triples, pair_tokens, sample_pairs
from ktlens.models import KTheoryTransformer
from ktlens.tasks.ktheory_data import KTheoryGridSpec
from ktlens.tasks.ktheory_spec import KTheoryTaskSpec
from tests.analysis.probes.conftest import make_kt_model
from tests.tasks.ktheory_brute import definition_counts

RE_MAX = 24


@pytest.fixture(scope="module")
def model():
    grid = KTheoryGridSpec(n_primes=2, r_max=6, e_max=8, re_max=RE_MAX, split="random", test_fraction=0.25, seed=0)
    spec = KTheoryTaskSpec.of_grid(grid, "descending", scratch=("re", "quotients", "e_prime_quotients"))
    return KTheoryTransformer.create(spec, d_model=16, n_layers=1, n_heads=2, d_mlp=32).eval()


def _e_prime(p: int, e: int) -> int:
    while e % p == 0:
        e //= p
    return e


def _scratch(model, p: int, re: int, e_prime: int) -> list[int]:
    """r e, floor(r e / p^h) for h = 1..L-1, floor(r e / (e' p^h)) for h = 0..L-1, by plain integer division."""
    L = model.seq_len
    return [re] + [re // p**h for h in range(1, L)] + [re // (e_prime * p**h) for h in range(L)]


@pytest.mark.parametrize("variable", ["e_prime", "re", "u"])
def test_pairs_carry_the_counterfactual_scratch_values(model, variable):
    pairs = sample_pairs(model, variable, exact_triples(model), 24, seed=0, scratch_input="counterfactual", draws=16)
    base_tokens, _, targets = pair_tokens(model, pairs)
    assert targets.shape == (24, model.dec_len)
    for (p, r, e), (_, rs, es), scratch, counts, row, tgt in zip(pairs.base, pairs.source, pairs.scratch, pairs.counts,
                                                               base_tokens.numpy(), targets.numpy()):
        re = rs * es if variable == "re" else r * e
        ep = _e_prime(p, es) if variable == "e_prime" else _e_prime(p, e)
        assert scratch.tolist() == _scratch(model, p, re, ep)
        assert tgt.tolist() == scratch.tolist() + counts[::-1].tolist()  # descending counts after the scratch values
        assert row[4:].tolist() == tgt[:-1].tolist()  # teacher forcing on the counterfactual sequence
    if variable == "u":  # u moves no scratch value: the base's own ones
        np.testing.assert_array_equal(pairs.scratch, model.spec.scratch_values(*pairs.base.T))
    if variable == "e_prime":  # the B chain stays, the e' chain moves on every answer-changing pair that changes it
        S_b = model.seq_len
        np.testing.assert_array_equal(pairs.scratch[:, :S_b], model.spec.scratch_values(*pairs.base.T)[:, :S_b])


def test_no_intervention_counterfactual_is_the_base_sequence(model):
    triples = exact_triples(model)
    pairs = sample_pairs(model, "e_prime", triples, 16, seed=3, scratch_input="counterfactual", draws=16)
    same = pairs.source.copy()
    same[:] = pairs.base  # a self-swap: the counterfactual is the base's own sequence
    from ktlens.tasks import ktheory_causal as kc

    split = lambda t: (t[:, 0], t[:, 1], t[:, 2])  # noqa: E731
    np.testing.assert_array_equal(kc.counterfactual_scratch(split(pairs.base), {"e_prime": split(same)}, "algorithm1", model.spec),
                                  model.spec.scratch_values(*split(pairs.base)))
    np.testing.assert_array_equal(kc.counterfactual_scratch(split(pairs.base), None, "algorithm1", model.spec),
                                  model.spec.scratch_values(*split(pairs.base)))
    for (p, r, e) in pairs.base[:4]:
        assert model.targets([p], [r], [e])[0, model.n_scratch:].tolist() == (definition_counts(int(p), int(r), int(e)) + [0] * 9)[: model.seq_len][::-1]


def test_das_scores_every_position(model):
    r = das(model, "e_prime", "hook_src@src", FitConfig(rank=2, steps=3, batch_size=16), n_train=32, n_test=32,
            progress=False, scratch_input="counterfactual")
    assert r.scored_positions == model.position_labels() and len(r.iia_per_position) == model.dec_len
    assert r.answer_changing_share == 1.0
    pairs = sample_pairs(model, "e_prime", exact_triples(model), 32, seed=1, scratch_input="counterfactual", draws=16)
    base, _, targets = pair_tokens(model, pairs)
    hits = interchange_hits(model, "hook_src", (0, 1, 2), None, base, torch.zeros(32, 3, 16), targets,
                            target_positions=None).numpy()
    assert hits.shape == (32, model.dec_len)  # every decoder position is a target


def test_counterfactual_input_needs_a_scratch_model():
    with pytest.raises(ValueError, match="scratch"):
        sample_pairs(make_kt_model(), "u", exact_triples(make_kt_model()), 8, seed=0, scratch_input="counterfactual")
    with pytest.raises(ValueError, match="scratch_input"):
        sample_pairs(make_kt_model(), "u", exact_triples(make_kt_model()), 8, seed=0, scratch_input="theirs")
