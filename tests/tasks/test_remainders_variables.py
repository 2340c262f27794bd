"""Remainders task variables against Python's %, divmod and math.cos/sin, for every digit order."""

import math

import numpy as np
import pytest

from ktlens.tasks.remainders import VARIABLES, RemaindersSpec, fourier_frequencies
from ktlens.tasks.variables import compute_variables


def primes_below(p):
    return [q for q in range(2, p) if all(q % d for d in range(2, q))]


@pytest.mark.parametrize("p,order,variant", [(37, "msd", "remainders"), (23, "lsd", "divisibility"), (13, "msd", "addition")])
def test_every_variable_matches_python(p, order, variant):
    spec = RemaindersSpec(p=p, digit_order=order, variant=variant)
    n = np.random.default_rng(p).integers(0, p * p, size=300)
    values = compute_variables(VARIABLES, None, n=n, spec=spec)
    assert set(values) == set(VARIABLES)
    qs = primes_below(p)
    ks = list(range(1, (p - 1) // 2 + 1))
    assert fourier_frequencies(spec) == ks
    for i, x in enumerate(n.tolist()):
        hi, lo = divmod(x, p)
        d0, d1 = (hi, lo) if order == "msd" else (lo, hi)
        assert values["n"][i] == x and values["high_digit"][i] == hi and values["low_digit"][i] == lo
        assert values["digit_0"][i] == d0 and values["digit_1"][i] == d1
        assert values["n_mod_q"][i].tolist() == [x % q for q in qs]
        if variant == "remainders":
            label = [x % q for q in qs]
        elif variant == "divisibility":
            label = [int(x % q == 0) for q in qs]
        else:
            label = [(hi + lo) % p]
        assert values["label"][i].tolist() == label
        for name, v in (("n", x), ("digit_0", d0), ("digit_1", d1)):
            for j, k in enumerate(ks):
                assert values[f"cos_{name}"][i, j] == pytest.approx(math.cos(2 * math.pi * k * v / p), abs=1e-12)
                assert values[f"sin_{name}"][i, j] == pytest.approx(math.sin(2 * math.pi * k * v / p), abs=1e-12)


def test_kinds_and_shapes():
    spec = RemaindersSpec(p=11)
    assert VARIABLES["n_mod_q"].kind == "class" and VARIABLES["n_mod_q"].per_position
    assert VARIABLES["cos_n"].kind == "scalar"
    assert VARIABLES["n_mod_q"](n=np.arange(5), spec=spec).shape == (5, 4)


def test_unknown_variable_and_bad_inputs_are_named():
    spec = RemaindersSpec(p=7)
    with pytest.raises(ValueError, match="'n_mod_4'"):
        compute_variables(VARIABLES, ["n", "n_mod_4"], n=np.arange(3), spec=spec)
    with pytest.raises(ValueError, match="49"):
        VARIABLES["n"](n=np.array([3, 49]), spec=spec)
    with pytest.raises(ValueError, match="-1"):
        VARIABLES["digit_0"](n=np.array([-1]), spec=spec)
    with pytest.raises(ValueError, match="RemaindersSpec"):
        VARIABLES["n"](n=np.arange(3), spec={"p": 7})
