"""The e'-chain scratchpad: the decoder writes floor(r e / (e' p^h)), h = 0..L-1, after the level boundaries,
and with both chains and u = v_p(e) the counts are sums of second differences (`counts_from_boundaries`)."""

import numpy as np
import pytest

from ktlens.analysis.features.hypotheses import scratch_variable_name
from ktlens.models.encoder_decoder import KTheoryTransformer
from ktlens.tasks.ktheory import counts_from_boundaries
from ktlens.tasks.ktheory_data import KTheoryGridSpec
from ktlens.tasks.ktheory_spec import KTheoryTaskSpec
from tests.tasks.ktheory_brute import definition_counts

GRID = KTheoryGridSpec(n_primes=4, r_max=12, e_max=18, re_max=60, split="random", test_fraction=0.25, seed=0)
CHAINS = ("re", "quotients", "e_prime_quotients")


def _valuation(p: int, e: int) -> tuple[int, int]:
    u = 0
    while e % p == 0:
        e, u = e // p, u + 1
    return u, e


def _multiples_below(bound: int, d: int) -> int:
    """How many m in 1..bound are divisible by d, by counting them."""
    return sum(1 for m in range(1, bound + 1) if m % d == 0)


def test_the_e_prime_chain_counts_the_multiples_of_e_prime_below_each_boundary():
    spec = KTheoryTaskSpec.of_grid(GRID, "descending", scratch=CHAINS)
    L = spec.seq_len
    labels = spec.scratch_labels()
    assert labels == ["re"] + ["re/p"] + [f"re/p^{h}" for h in range(2, L)] + ["re/e'", "re/e'p"] + [f"re/e'p^{h}" for h in range(2, L)]
    assert spec.vocab.n_scratch == 2 * L and KTheoryTaskSpec.from_dict(spec.to_dict()) == spec
    p, r, e = (np.array(x) for x in zip(*[(2, 3, 12), (3, 5, 9), (5, 4, 10), (7, 2, 14), (2, 7, 5)]))
    values = spec.scratch_values(p, r, e)
    for i, (pp, rr, ee) in enumerate(zip(p.tolist(), r.tolist(), e.tolist())):
        boundaries = [rr * ee // pp**h for h in range(L)]
        ep = _valuation(pp, ee)[1]
        assert values[i, :L].tolist() == boundaries
        assert values[i, L:].tolist() == [_multiples_below(b, ep) for b in boundaries]


def test_the_e_prime_chain_is_r_times_p_to_the_u_divided_down():
    """e = p^u e', so r e / e' = r p^u exactly: the chain is floor(r p^u / p^h), a function of r and u alone."""
    spec = KTheoryTaskSpec.of_grid(GRID, "descending", scratch=CHAINS)
    L = spec.seq_len
    triples = [(p, r, e) for p in (2, 3, 5, 7) for r in range(1, 13) for e in range(1, 19) if r * e <= 60]
    p, r, e = (np.array(x) for x in zip(*triples))
    values = spec.scratch_values(p, r, e)[:, L:]
    for i, (pp, rr, ee) in enumerate(triples):
        u = _valuation(pp, ee)[0]
        assert values[i].tolist() == [rr * pp**u // pp**h for h in range(L)]
    np.testing.assert_array_equal(spec.scratch_values_from(p, r * e, np.array([_valuation(a, b)[1] for a, b in zip(p, e)])),
                                  spec.scratch_values(p, r, e))


def test_counts_from_both_chains_equal_the_definition_on_every_triple():
    checked = 0
    for p in (2, 3, 5, 7, 11):
        for r in range(1, 16):
            for e in range(1, 31):
                L = 10
                u, ep = _valuation(p, e)
                B = [r * e // p**h for h in range(L)]
                C = [_multiples_below(b, ep) for b in B]
                want = definition_counts(p, r, e)
                got = counts_from_boundaries(np.array(B), np.array(C), u).tolist()
                assert got == want + [0] * (L - len(want)), (p, r, e)
                checked += 1
    assert checked == 5 * 15 * 30


def test_counts_from_boundaries_refuses_chains_that_do_not_match():
    with pytest.raises(ValueError, match="do not match"):
        counts_from_boundaries(np.zeros((2, 5), int), np.zeros((2, 4), int), np.zeros(2, int))


def test_a_model_with_both_chains_writes_them_first_and_names_every_position():
    model = KTheoryTransformer.create(KTheoryTaskSpec.of_grid(GRID, "descending", scratch=CHAINS), d_model=16, n_heads=2, d_mlp=32)
    L = model.seq_len
    assert model.dec_len == 3 * L and list(model.count_positions) == list(range(2 * L, 3 * L))
    p, r, e = model.domain_triples()
    targets = model.targets(p, r, e).numpy()
    scratch = model.spec.scratch_values(p, r, e)
    assert np.array_equal(targets[:, : 2 * L], scratch)
    counts = counts_from_boundaries(scratch[:, :L], scratch[:, L:], [_valuation(int(a), int(b))[0] for a, b in zip(p, e)])
    assert np.array_equal(model.to_model_order(counts), targets[:, 2 * L :])
    names = [scratch_variable_name(label) for label in model.position_labels()[: 2 * L]]
    assert all(name.isidentifier() for name in names) and len(set(names)) == 2 * L
    assert names[L : L + 3] == ["re_div_eprime", "re_div_eprime_p", "re_div_eprime_p2"]
