"""Probe records: targets are validated on construction, results serialise."""

import json

import numpy as np
import pytest

from ktlens.analysis.probes import ProbeResult, ProbeTarget


def test_bad_targets_are_named():
    with pytest.raises(ValueError, match="'vector'"):
        ProbeTarget("x", "vector", np.zeros(3))
    with pytest.raises(ValueError, match="float64"):
        ProbeTarget("x", "class", np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        ProbeTarget("x", "scalar", np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match=r"2-D"):
        ProbeTarget("x", "scalar", np.zeros(3), per_position=True)
    with pytest.raises(ValueError, match="first_position=2 needs per_position"):
        ProbeTarget("x", "scalar", np.zeros(3), first_position=2)
    with pytest.raises(ValueError, match="-1"):
        ProbeTarget("x", "scalar", np.zeros((3, 2)), per_position=True, first_position=-1)
    y = np.arange(20) % 2
    with pytest.raises(ValueError, match="mask"):
        ProbeTarget("m", "class", y, mask=np.ones(10, dtype=bool))
    with pytest.raises(ValueError, match="keeps 1"):
        ProbeTarget("m", "class", y, mask=np.arange(20) == 3)


def test_scalar_values_become_float_and_result_serialises():
    t = ProbeTarget("s", "scalar", np.arange(4))
    assert t.values.dtype == np.float64 and len(t) == 4
    r = ProbeResult("s", "h", "0", "scalar", "r2", 0.9, 0.0, 0.1, 0.2, 0.95, 3, 1, 8, None)
    d = r.to_dict()
    assert d["selectivity"] == pytest.approx(0.8)
    json.dumps(d)
