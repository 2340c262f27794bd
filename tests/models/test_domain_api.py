"""The K-theory model's domain and target API: the trained domain, count positions, per-position targets."""

import numpy as np
import pytest

from ktlens.models import KTheoryTransformer
from ktlens.tasks.ktheory_data import KTheoryGridSpec
from ktlens.tasks.ktheory_spec import KTheoryTaskSpec

from tests.tasks.ktheory_brute import definition_counts


def _model(**grid):
    grid = KTheoryGridSpec(n_primes=2, r_max=6, e_max=5, split="random", test_fraction=0.25, seed=0, **grid)
    spec = KTheoryTaskSpec.of_grid(grid, "descending", scratch=("re", "quotients"))
    return KTheoryTransformer.create(spec, d_model=16, n_layers=1, n_heads=2, d_mlp=32)


def test_domain_triples_respect_the_re_bound():
    model = _model(re_max=12)
    p, r, e = model.domain_triples()
    assert (r * e <= 12).all() and model.n_domain == len(p)
    expected = {(pp, rr, ee) for pp in (2, 3) for rr in range(1, 7) for ee in range(1, 6) if rr * ee <= 12}
    assert set(zip(p.tolist(), r.tolist(), e.tolist())) == expected


def test_targets_hold_scratch_values_then_counts_from_the_definition():
    model = _model(re_max=12)
    p, r, e = model.domain_triples()
    ids = model.targets(p, r, e).numpy()
    assert ids.shape == (len(p), model.dec_len)
    assert list(model.count_positions) == list(range(model.n_scratch, model.dec_len))
    for row, pp, rr, ee in zip(ids, p.tolist(), r.tolist(), e.tolist()):
        re = rr * ee
        assert row[0] == re  # scratch "re"
        assert list(row[1 : model.n_scratch]) == [re // pp**h for h in range(1, model.n_scratch)]
        counts = definition_counts(pp, rr, ee)
        counts = counts + [0] * (model.seq_len - len(counts))
        in_order = counts if model.label_order == "ascending" else counts[::-1]
        assert list(row[model.n_scratch :]) == in_order


def test_targets_refuse_a_triple_outside_the_bound():
    with pytest.raises(ValueError, match="r\\*e=30"):
        _model(re_max=12).targets([2], [6], [5])
