"""Input validation of ktlens.tasks.ktheory: every bad value gets a ValueError naming it (and its
index, for arrays); numpy integer scalars are accepted."""

from __future__ import annotations

import numpy as np
import pytest

from ktlens.tasks import ktheory as kt


BAD = [
    ((4, 1, 2), "4"),
    ((1, 1, 2), "1"),
    ((0, 1, 2), "0"),
    ((-3, 1, 2), "-3"),
    ((2, 0, 2), "0"),
    ((2, 1, 0), "0"),
    ((2, -1, 2), "-1"),
    ((2, 1, 2.5), "2.5"),
    ((2.0, 1, 2), "2.0"),
    ((2, "3", 2), "'3'"),
    ((True, 1, 2), "True"),
    ((2, 1, True), "True"),
    ((2, None, 2), "None"),
]


SCALAR_FUNCS = [kt.k_group_reference, kt.k_group, kt.summand_counts, kt.group_string]


ARRAY_FUNCS = [kt.summand_count_table, kt.s_value_table, kt.derived_quantities,
               kt.num_summands, kt.max_exponent, kt.e_prime, kt.is_trivial]


@pytest.mark.parametrize("func", SCALAR_FUNCS + ARRAY_FUNCS + [kt.s_values, kt.validate_triple])
@pytest.mark.parametrize("args,shown", BAD)
def test_bad_inputs_raise_value_error_naming_value(func, args, shown):
    with pytest.raises(ValueError) as info:
        func(*args)
    assert shown in str(info.value)


@pytest.mark.parametrize("func", SCALAR_FUNCS + [kt.validate_triple])
def test_bad_f(func):
    for f, shown in [(0, "0"), (-2, "-2"), (1.5, "1.5"), (True, "True")]:
        with pytest.raises(ValueError, match="f"):
            func(2, 1, 2, f)
        with pytest.raises(ValueError, match=shown.replace(".", r"\.")):
            func(2, 1, 2, f)


def test_absurd_sizes():
    with pytest.raises(ValueError, match="too large"):
        kt.k_group_reference(2, 10**4, 10**4)
    with pytest.raises(ValueError, match="too large"):
        kt.k_group(2, 10**4, 10**4)
    with pytest.raises(ValueError, match="too large"):
        kt.summand_counts(2, 10**7, 10**7)
    with pytest.raises(ValueError, match="too large"):
        kt.summand_count_table([2, 3], [1, 10**7], [1, 10**7])
    with pytest.raises(ValueError, match="too large"):
        kt.summand_counts(2, 1, 2, 10**9)


def test_vectorized_errors_name_first_bad_value_and_index():
    with pytest.raises(ValueError, match=r"p\[2\] = 4 is not a prime"):
        kt.summand_count_table([2, 3, 4, 6], 1, 2)
    with pytest.raises(ValueError, match=r"r\[1\] = 0"):
        kt.summand_count_table(2, [1, 0, -1], 2)
    with pytest.raises(ValueError, match=r"e\[1\] = 2\.5"):
        kt.summand_count_table(2, 1, [2.0, 2.5])
    with pytest.raises(ValueError, match=r"e\[0, 1\] = 0"):
        kt.derived_quantities(2, 1, [[1, 0], [0, 1]])
    with pytest.raises(ValueError, match=r"r\[2\] = '3'"):
        kt.summand_count_table(2, np.array([1, 2, "3"], dtype=object), 2)
    with pytest.raises(ValueError, match=r"p\[1\] = True"):
        kt.summand_count_table(np.array([2, True], dtype=object), 1, 2)
    with pytest.raises(ValueError, match="broadcast"):
        kt.summand_count_table([2, 3], [1, 2, 3], 2)
    with pytest.raises(ValueError, match=r"p\[1\] = 1"):
        kt.is_trivial([2, 1], 1, 1)


def test_numpy_integer_scalars_accepted():
    assert kt.k_group(np.int64(3), np.int32(2), np.uint8(2)) == [2]
    assert kt.summand_count_table(np.array([3], dtype=np.uint16), 2, 2).tolist() == [[0, 1]]
