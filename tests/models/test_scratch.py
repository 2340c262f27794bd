"""The decoder's scratchpad: with spec.scratch = ("re",) the decoder writes r*e before the counts."""

import numpy as np
import pytest
import torch

from ktlens.models.encoder_decoder import KTheoryTransformer
from ktlens.tasks.ktheory_data import KTheoryGridSpec, build_dataset
from ktlens.tasks.ktheory_spec import KTheoryTaskSpec
from tests.tasks.ktheory_brute import definition_counts

GRID = KTheoryGridSpec(n_primes=3, r_max=6, e_max=5, split="random", test_fraction=0.25, seed=0)


def make(order="descending", cls=KTheoryTransformer):
    return cls.create(KTheoryTaskSpec.of_grid(GRID, order, scratch=("re",)), d_model=16, n_heads=2, d_mlp=32)


def test_spec_with_a_scratchpad_round_trips_and_its_vocabulary_holds_every_product():
    spec = KTheoryTaskSpec.of_grid(GRID, "descending", scratch=("re",))
    assert KTheoryTaskSpec.from_dict(spec.to_dict()) == spec
    assert spec.vocab.n_scratch == 1 and spec.vocab.dec_len == spec.seq_len + 1
    assert spec.max_count >= 30  # r e <= 6 * 5
    with pytest.raises(ValueError, match="scratch"):
        KTheoryTaskSpec.of_grid(GRID, "descending", scratch=("r_times_e",))


@pytest.mark.parametrize("order", ["ascending", "descending"])
def test_targets_and_decoder_input_put_r_times_e_first_then_the_counts(order):
    model = make(order)
    p, r, e = np.array([2, 3, 5]), np.array([3, 6, 5]), np.array([4, 5, 2])
    counts = np.array([(definition_counts(*map(int, t)) + [0] * 9)[: model.seq_len] for t in zip(p, r, e)])
    targets = model.decoder_targets(p, r, e, counts)
    assert targets[:, 0].tolist() == [12, 30, 10]
    assert np.array_equal(targets[:, 1:], model.to_model_order(counts))
    tokens = model.pack(p, r, e, counts).numpy()
    assert np.array_equal(tokens[:, :3], np.stack([p, r, e], 1))
    assert np.array_equal(tokens[:, 3:], np.concatenate([np.full((3, 1), model.bos), targets[:, :-1]], 1))
    assert model.position_labels()[0] == "re" and model.to_str_tokens(tokens[0])[4] == "re=12"
    with pytest.raises(ValueError, match="count positions"):
        model.count_index(0)


class _Oracle(KTheoryTransformer):
    """Writes a scratch value `scratch_error` away from r*e, then the right counts."""

    scratch_error = 0

    def forward(self, tokens):
        src = tokens[:, :3].numpy()
        counts = np.array([(definition_counts(*map(int, t)) + [0] * 9)[: self.seq_len] for t in src])
        want = torch.as_tensor(self.decoder_targets(src[:, 0], src[:, 1], src[:, 2], counts))
        want[:, 0] = (want[:, 0] + self.scratch_error).clamp(0, self.max_count)
        return torch.nn.functional.one_hot(want[:, : tokens.shape[1] - 3], self.max_count + 1).float()


@pytest.mark.parametrize("scratch_error", [0, 1])
def test_answers_are_the_counts_without_the_scratch_value(scratch_error):
    ds = build_dataset(GRID)
    model = make(cls=_Oracle)
    model.scratch_error = scratch_error
    truth = [definition_counts(*t) for t in zip(ds.p.tolist(), ds.r.tolist(), ds.e.tolist())]
    assert model.predict(ds.p, ds.r, ds.e) == truth


def test_decode_writes_the_scratch_values_then_the_counts_and_answer_reads_them():
    ds = build_dataset(GRID)
    model = make(cls=_Oracle)
    src = torch.as_tensor(np.stack([ds.p, ds.r, ds.e], 1))
    decoded = model.decode(src)
    assert torch.equal(decoded, model.targets(ds.p, ds.r, ds.e))  # r*e, then the counts in decoder order
    assert decoded[:, 0].tolist() == (ds.r * ds.e).tolist()
    assert torch.equal(model.answer(src, decoded), model.generate(src))
