"""Domains bounded by r * e: the grid, the task spec and the model's domain check."""

import numpy as np
import pytest
import torch

from ktlens.models.encoder_decoder import KTheoryTransformer
from ktlens.tasks.ktheory_data import KTheoryGridSpec, build_dataset
from ktlens.tasks.ktheory_spec import KTheoryTaskSpec
from tests.tasks.ktheory_brute import definition_counts

GRID = KTheoryGridSpec(n_primes=3, r_max=12, e_max=9, re_max=30, split="random", test_fraction=0.25, seed=1)


def test_bounded_grid_holds_exactly_the_triples_under_the_bound_with_their_definition_labels():
    ds = build_dataset(GRID)
    expected = {(p, r, e) for p in (2, 3, 5) for r in range(1, 13) for e in range(1, 10) if r * e <= 30}
    got = set(zip(ds.p.tolist(), ds.r.tolist(), ds.e.tolist()))
    assert got == expected and len(ds) == len(expected) == GRID.num_triples
    labels = {t: definition_counts(*t) for t in expected}
    assert ds.seq_len == max(len(v) for v in labels.values())
    assert ds.vocab.max_count == max(max(v, default=0) for v in labels.values())
    for i in range(len(ds)):
        label = labels[(int(ds.p[i]), int(ds.r[i]), int(ds.e[i]))]
        assert ds.counts[i].tolist() == label + [0] * (ds.seq_len - len(label))
    assert sorted(ds.train_idx.tolist() + ds.test_idx.tolist()) == list(range(len(ds)))


def test_task_spec_of_a_bounded_grid_round_trips_and_old_specs_still_load():
    spec = KTheoryTaskSpec.of_grid(GRID, "descending", n1_from_order=True)
    again = KTheoryTaskSpec.from_dict(spec.to_dict())
    assert again == spec and again.re_max == 30 and again.n1_from_order
    old = KTheoryTaskSpec.of_grid(KTheoryGridSpec(n_primes=3, r_max=4, e_max=4), "ascending").to_dict()
    assert "re_max" not in old and "n1_from_order" not in old
    old["grid"].pop("re_max")  # a grid stored before the bound existed
    assert KTheoryTaskSpec.from_dict(old).re_max == 0


@pytest.mark.parametrize("bad", [5, -1, "40"])
def test_bad_re_max_is_a_value_error_naming_it(bad):
    with pytest.raises(ValueError, match="re_max"):
        KTheoryGridSpec(n_primes=3, r_max=12, e_max=9, re_max=bad)


def test_a_stored_spec_whose_bound_disagrees_with_its_grid_is_refused():
    d = KTheoryTaskSpec.of_grid(GRID, "ascending").to_dict()
    d["re_max"] = 40
    with pytest.raises(ValueError, match="re_max"):
        KTheoryTaskSpec.from_dict(d)


def test_model_refuses_a_triple_outside_the_bound():
    model = KTheoryTransformer.create(KTheoryTaskSpec.of_grid(GRID, "ascending"), d_model=16, n_heads=2, d_mlp=32)
    model.predict(2, 10, 3)
    with pytest.raises(ValueError, match=r"r\*e=36"):
        model.predict(2, 12, 3)


class _OracleOffByOneInN1(KTheoryTransformer):
    """Decodes every count right except n_1, which it always writes one too high."""

    def forward(self, tokens):
        src, tgt = tokens[:, :3].numpy(), tokens[:, 3:]
        counts = np.array([(definition_counts(*map(int, t)) + [0] * 20)[: self.seq_len] for t in src])
        counts[:, 0] += 1
        want = torch.as_tensor(self.to_model_order(counts).copy())[:, : tgt.shape[1]]
        return torch.nn.functional.one_hot(want, self.max_count + 1).float()


@pytest.mark.parametrize("order", ["ascending", "descending"])
def test_n1_from_order_answers_n1_from_the_other_counts(order):
    ds = build_dataset(GRID)
    rows = np.flatnonzero(ds.counts[:, 0] < ds.vocab.max_count)  # n_1 + 1 must stay a count
    p, r, e = ds.p[rows], ds.r[rows], ds.e[rows]
    truth = [definition_counts(*t) for t in zip(p.tolist(), r.tolist(), e.tolist())]
    plain = _OracleOffByOneInN1.create(KTheoryTaskSpec.of_grid(GRID, order), d_model=16, n_heads=2, d_mlp=32)
    fixed = _OracleOffByOneInN1.create(KTheoryTaskSpec.of_grid(GRID, order, True), d_model=16, n_heads=2, d_mlp=32)
    assert all(a != b for a, b in zip(plain.predict(p, r, e), truth))
    assert fixed.predict(p, r, e) == truth


def test_train_fraction_keeps_the_test_split_and_nests_the_training_subsets():
    import dataclasses

    full = build_dataset(GRID)
    half = build_dataset(dataclasses.replace(GRID, train_fraction=0.5))
    quarter = build_dataset(dataclasses.replace(GRID, train_fraction=0.25))
    assert np.array_equal(full.test_idx, half.test_idx) and np.array_equal(full.test_idx, quarter.test_idx)
    assert len(half.train_idx) == round(0.5 * len(full.train_idx))
    assert set(quarter.train_idx) < set(half.train_idx) < set(full.train_idx)
    with pytest.raises(ValueError, match="train_fraction"):
        KTheoryGridSpec(n_primes=3, train_fraction=0.0)
