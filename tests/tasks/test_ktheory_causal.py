"""Algorithm 1 as a causal model: no intervention is the definition, self-swaps change nothing, and
hand-checked counterfactuals."""

import itertools

import numpy as np
import pytest

from ktlens.tasks import ktheory as kt
from ktlens.tasks import ktheory_causal as kc
from tests.tasks.ktheory_brute import definition_counts, trim

GRID = np.array(list(itertools.product([2, 3, 5, 7, 11], range(1, 9), range(1, 19))))


def _triples(rows):
    return rows[:, 0], rows[:, 1], rows[:, 2]


def test_no_intervention_is_the_definition_on_a_grid():
    got = kc.counterfactual(_triples(GRID))
    for row, (p, r, e) in zip(got, GRID.tolist()):
        assert trim(row) == definition_counts(p, r, e), (p, r, e)
    # and the closed form of the task module, at a fixed length
    np.testing.assert_array_equal(kc.counterfactual(_triples(GRID), length=8),
                                  kt.summand_count_table(*_triples(GRID), length=8))


@pytest.mark.parametrize("variable", ["u", "e_prime", "re", "capped", "n_1", "n_2", "n_5"])
def test_swapping_a_variable_with_itself_changes_nothing(variable):
    base = _triples(GRID)
    np.testing.assert_array_equal(kc.counterfactual(base, {variable: base}), kc.counterfactual(base))
    assert not kc.changes_answer(variable, base, base).any()


def _definition_with(p, u, e_prime, re):
    """The definition with (u, e', re) given directly (brute force over m)."""
    hs = []
    for m in range(1, re + 1):
        if m % p == 0:
            continue
        s = next(s for s in itertools.count(1) if re < p**s * m)
        h = min(u, s) if m % e_prime == 0 else s
        if h:
            hs.append(h)
    return [hs.count(k) for k in range(1, max(hs, default=0) + 1)]


def test_counterfactuals_by_hand():
    # (2, 1, 6): u=1, e'=3, re=6; m = 1, 3, 5 have s = 3, 2, 1; m = 3 (e' | m) is capped at Z/2: [2, 0, 1]
    base = ([2], [1], [6])
    assert kc.counterfactual(base).tolist() == [[2, 0, 1]]
    # u from (2, 1, 4) (u = 2): m = 3 now gives Z/4: [1, 1, 1] (order 2^6, no e gives it: r(e-1) = 5)
    assert kc.counterfactual(base, {"u": ([2], [1], [4])}).tolist() == [[1, 1, 1]]
    # e' from (2, 1, 4) (e' = 1): every m is capped at Z/2: [3]
    assert kc.counterfactual(base, {"e_prime": ([2], [1], [4])}).tolist() == [[3]]
    # e' = 2 from (3, 1, 2) is divisible by the base's p = 2: nothing is capped: [1, 1, 1]
    assert kc.counterfactual(base, {"e_prime": ([3], [1], [2])}).tolist() == [[1, 1, 1]]
    # capped from (2, 3, 2) (u=1, e'=1, re=6: m = 1, 3, 5 all capped): n_1 = (1 - 0) + 3 = 4
    assert kc.counterfactual(base, {"capped": ([2], [3], [2])}).tolist() == [[4, 0, 1]]
    # n_3 from (2, 1, 3) = [2, 1]: n_3 = 0
    assert kc.counterfactual(base, {"n_3": ([2], [1], [3])}).tolist() == [[2]]
    assert kc.changes_answer("n_3", base, ([2], [1], [3])).tolist() == [True]
    assert kc.changes_answer("n_2", base, ([2], [1], [3])).tolist() == [True]
    assert kc.changes_answer("re", base, ([3], [2], [3])).tolist() == [False]  # re = 6 both


def test_mixed_upstream_values_follow_the_definition():
    rng = np.random.default_rng(0)
    base = GRID[rng.choice(len(GRID), 150)]
    source = GRID[rng.choice(len(GRID), 150)]
    for names in (["u"], ["e_prime"], ["re"], ["u", "e_prime"], ["u", "re"]):
        got = kc.counterfactual(_triples(base), {n: _triples(source) for n in names})
        bv, sv = kc.intermediates(*_triples(base)), kc.intermediates(*_triples(source))
        for i, row in enumerate(got):
            vals = {k: int((sv if k in names else bv)[k][i]) for k in kc.UPSTREAM}
            assert trim(row) == _definition_with(int(base[i, 0]), vals["u"], vals["e_prime"], vals["re"]), (names, i)


def test_capped_is_the_reference_count_for_u_one():
    p, r, e = _triples(GRID)
    v = kc.intermediates(p, r, e)
    capped = kc.capped_from(p, v["u"], v["e_prime"], v["re"])
    ref = kt.VARIABLES["count_capped"](p=p, r=r, e=e)
    np.testing.assert_array_equal(capped[v["u"] <= 1], ref[v["u"] <= 1])


def test_bad_input_names_it():
    with pytest.raises(ValueError, match="'v'"):
        kc.counterfactual(([2], [1], [6]), {"v": ([2], [1], [6])})
    with pytest.raises(ValueError, match="'n_0'"):
        kc.check_variable("n_0")
    with pytest.raises(ValueError, match="length=2"):
        kc.counterfactual(([2], [1], [6]), length=2)
    with pytest.raises(ValueError, match="4 is not a prime"):
        kc.counterfactual(([4], [1], [6]))


def test_e_rebuilt_swaps_give_the_label_of_the_rebuilt_triple():
    """Under e_rebuilt, setting u (or e') from a source is the definition on (p, r, p^u e') (brute force)."""
    rng = np.random.default_rng(0)
    base = GRID[rng.integers(len(GRID), size=60)]
    source = GRID[rng.integers(len(GRID), size=60)]
    source[:, 0] = base[:, 0]  # the source has the base's prime
    for variable in ("u", "e_prime"):
        got = kc.counterfactual(_triples(base), {variable: _triples(source)}, causal_model="e_rebuilt")
        for row, (p, r, e), (_, _, e2) in zip(got, base.tolist(), source.tolist()):
            u_b, u_s = kt_val(e, p), kt_val(e2, p)
            u, e_prime = (u_s, e // p**u_b) if variable == "u" else (u_b, e2 // p**u_s)
            assert trim(row) == definition_counts(p, r, p**u * e_prime), (variable, p, r, e, e2)
    np.testing.assert_array_equal(kc.counterfactual(_triples(GRID), causal_model="e_rebuilt"), kc.counterfactual(_triples(GRID)))


def kt_val(e: int, p: int) -> int:
    u = 0
    while e % p == 0:
        e, u = e // p, u + 1
    return u
