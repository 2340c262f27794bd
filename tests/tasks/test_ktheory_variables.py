"""K-theory task variables against a brute-force computation from the definition (loops over m in 1..re)."""


import numpy as np
import pytest

from ktlens.tasks.ktheory import MAX_NAMED_COUNT, VARIABLES
from ktlens.tasks.variables import TaskVariable, compute_variables, make_registry
from tests.tasks.ktheory_brute import definition_counts

PRIMES = [2, 3, 5, 7, 11, 13]


def brute(p: int, r: int, e: int) -> dict:
    """Every variable of one triple straight from the definition (the counts from the shared ground truth)."""
    u, ep = 0, e
    while ep % p == 0:
        ep //= p
        u += 1
    re = r * e
    counts = definition_counts(p, r, e)
    out = {
        "p": p, "r": r, "e": e, "u": u, "e_prime": ep, "re": re, "p_divides_e": e % p == 0,
        "count_div_p": sum(1 for m in range(1, re + 1) if m % p == 0),
        "count_prime_to_p": sum(1 for m in range(1, re + 1) if m % p != 0),
        "count_div_e_prime": sum(1 for m in range(1, re + 1) if m % ep == 0),
        "count_capped": sum(1 for m in range(1, re + 1) if m % p != 0 and m % ep == 0),
        "is_trivial": all(p * m > re for m in range(1, re + 1) if m % p), "num_summands": sum(counts),
        "log_p_order": sum(k * n for k, n in enumerate(counts, start=1)),  # the order is prod p^h
        "max_exponent": len(counts), "counts": counts,
    }
    for k in range(1, MAX_NAMED_COUNT + 1):
        out[f"n_{k}"] = counts[k - 1] if k <= len(counts) else 0
    return out


@pytest.fixture(scope="module")
def sample():
    rng = np.random.default_rng(12)
    n = 300
    p = rng.choice(PRIMES, size=n)
    r = rng.integers(1, 13, size=n)
    e = rng.integers(1, 30, size=n)
    e[:40] = p[:40] ** rng.integers(1, 4, size=40)  # powers of p: e' = 1
    return p, r, e, [brute(int(a), int(b), int(c)) for a, b, c in zip(p, r, e)]


def test_per_example_variables_match_brute_force(sample):
    p, r, e, truth = sample
    names = [n for n, v in VARIABLES.items() if not v.per_position]
    values = compute_variables(VARIABLES, names, p=p, r=r, e=e)
    assert list(values) == names
    for name in names:
        want = np.array([t[name] for t in truth])
        got = values[name]
        assert got.shape == (len(p),), name
        assert (got == want).all(), (name, np.flatnonzero(got != want)[:5])


def test_required_variables_exist_with_kinds():
    need = {"p": "class", "r": "class", "e": "class", "u": "class", "e_prime": "class", "re": "scalar",
            "p_divides_e": "class", "count_div_p": "scalar", "count_div_e_prime": "scalar", "count_capped": "scalar",
            "is_trivial": "class", "n_1": "scalar", "n_2": "scalar", "num_summands": "scalar", "log_p_order": "scalar",
            "max_exponent": "class", "counts": "scalar", "n_at_position": "scalar"}
    for name, kind in need.items():
        assert VARIABLES[name].kind == kind and VARIABLES[name].description and VARIABLES[name].definition
    assert VARIABLES["n_at_position"].per_position and not VARIABLES["n_2"].per_position


@pytest.mark.parametrize("order", ["ascending", "descending"])
def test_label_per_position_in_both_orders(sample, order):
    p, r, e, truth = sample
    L = 10
    got = VARIABLES["n_at_position"](p=p, r=r, e=e, length=L, label_order=order)
    natural = VARIABLES["counts"](p=p, r=r, e=e, length=L)
    assert got.shape == natural.shape == (len(p), L)
    for i, t in enumerate(truth):
        row = (t["counts"] + [0] * L)[:L]
        assert natural[i].tolist() == row
        assert got[i].tolist() == (row if order == "ascending" else row[::-1])  # position k: n_{k+1} or n_{L-k}
    # default length: the longest label of the input
    assert VARIABLES["counts"](p=p, r=r, e=e).shape[1] == max(len(t["counts"]) for t in truth)


def test_feature_label_question_exactly_one_z_p2():
    p, r, e = np.array([2, 3, 5]), np.array([1, 1, 3]), np.array([4, 9, 2])
    one = compute_variables(VARIABLES, ["n_2"], p=p, r=r, e=e)["n_2"] == 1
    assert one.tolist() == [brute(int(a), int(b), int(c))["n_2"] == 1 for a, b, c in zip(p, r, e)]


def test_unknown_and_bad_inputs_are_named():
    p, r, e = np.array([2]), np.array([1]), np.array([3])
    with pytest.raises(ValueError, match="'n_0'"):
        compute_variables(VARIABLES, ["u", "n_0"], p=p, r=r, e=e)
    with pytest.raises(ValueError, match="'sideways'"):
        VARIABLES["n_at_position"](p=p, r=r, e=e, label_order="sideways")
    with pytest.raises(ValueError, match="p"):
        VARIABLES["u"](p=np.array([4]), r=r, e=e)
    with pytest.raises(ValueError, match="length"):
        VARIABLES["counts"](p=np.array([2]), r=np.array([8]), e=np.array([8]), length=1)


def test_task_variable_record_is_validated():
    f = lambda **_: np.zeros(3, dtype=np.int64)  # noqa: E731
    with pytest.raises(ValueError, match="'vector'"):
        TaskVariable("x", "vector", "", "", f)
    with pytest.raises(ValueError, match="identifier"):
        TaskVariable("not a name", "class", "", "", f)
    with pytest.raises(ValueError, match="defined twice"):
        make_registry([TaskVariable("x", "class", "", "", f), TaskVariable("x", "scalar", "", "", f)])
    with pytest.raises(ValueError, match="2-D"):
        TaskVariable("x", "class", "", "", f, per_position=True)()
    with pytest.raises(ValueError, match="float64"):
        TaskVariable("x", "class", "", "", lambda **_: np.zeros(3))()
    reg = make_registry([TaskVariable("x", "class", "", "", f)])
    with pytest.raises(TypeError):
        reg["y"] = reg["x"]  # read-only
