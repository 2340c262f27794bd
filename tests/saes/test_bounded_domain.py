"""The SAE activation domain of a K-theory model with r*e <= re_max and scratch decoder positions."""

import itertools

import numpy as np
import pytest
import torch

from ktlens.models.encoder_decoder import KTheoryTransformer
from ktlens.saes.activations import ActivationStore, StoreConfig
from ktlens.saes.domains import KTheoryDomain, domain_of
from ktlens.saes.training import SAETrainConfig, train_sae
from ktlens.tasks.ktheory_data import KTheoryGridSpec
from ktlens.tasks.ktheory_spec import KTheoryTaskSpec
from tests.tasks.ktheory_brute import definition_counts, naive_is_prime

GRID = KTheoryGridSpec(n_primes=3, r_max=6, e_max=5, split="random", test_fraction=0.25, seed=0, re_max=12)
HOOK = "blocks.0.mlp.hook_post"


def make(cls=KTheoryTransformer, order="descending"):
    spec = KTheoryTaskSpec.of_grid(GRID, order, scratch=("re", "quotients"))
    return cls.create(spec, d_model=16, n_layers=1, n_heads=2, d_mlp=32, seed=3).eval()


def brute_triples(re_max=12):
    primes = [n for n in range(2, 6) if naive_is_prime(n)]
    return [(p, r, e) for p, r, e in itertools.product(primes, range(1, 7), range(1, 6)) if r * e <= re_max]


def brute_decoder_row(p, r, e, n_scratch, L, order):
    """What the decoder writes: r*e, floor(r*e / p^h) for h = 1..n_scratch-1, then the counts."""
    counts = definition_counts(p, r, e)
    counts = counts + [0] * (L - len(counts))
    return [r * e] + [r * e // p**h for h in range(1, n_scratch)] + (counts if order == "ascending" else counts[::-1])


@pytest.fixture(scope="module")
def model():
    return make()


def test_domain_is_exactly_the_bounded_triples_in_order(model):
    dom = domain_of(model)
    assert isinstance(dom, KTheoryDomain)
    want = brute_triples()
    assert dom.n_examples == len(want) < 3 * 6 * 5
    got = list(zip(*(a.tolist() for a in dom.triples(np.arange(dom.n_examples)))))
    assert got == want  # p outer, then r, then e
    idx = np.array([0, 7, dom.n_examples - 1])
    assert np.array_equal(dom.index_of(*dom.triples(idx)), idx)
    with pytest.raises(ValueError, match="\\(2, 6, 5\\)"):
        dom.index_of([2], [6], [5])  # r*e = 30 > 12


def test_a_given_grid_is_bounded_by_the_model_re_max(model):
    dom = KTheoryDomain(model, primes=[3, 5], r_max=4, e_max=5)
    want = [(p, r, e) for p, r, e in brute_triples() if p in (3, 5) and r <= 4]
    assert list(zip(*(a.tolist() for a in dom.triples(np.arange(dom.n_examples))))) == want
    with pytest.raises(ValueError, match="p=7"):
        KTheoryDomain(model, primes=[7], r_max=2, e_max=2)


@pytest.mark.parametrize("order", ["ascending", "descending"])
def test_tokens_hold_the_true_scratch_values_and_counts(order):
    m = make(order=order)
    dom = domain_of(m)
    tokens = dom.tokens(np.arange(dom.n_examples)).numpy()
    rows = [brute_decoder_row(p, r, e, m.n_scratch, m.seq_len, order) for p, r, e in brute_triples()]
    assert np.array_equal(tokens[:, :3], np.array(brute_triples()))
    assert np.array_equal(tokens[:, 3], np.full(len(rows), m.bos))
    assert np.array_equal(tokens[:, 4:], np.array(rows)[:, :-1])  # teacher forcing: the previous true value


class _Oracle(KTheoryTransformer):
    """Writes every true value (from the brute-force definition) but `scratch_error` away at position 0."""

    scratch_error = 0

    def forward(self, tokens):
        src = tokens[:, :3].tolist()
        want = torch.tensor([brute_decoder_row(*t, self.n_scratch, self.seq_len, self.label_order) for t in src])
        want[:, 0] = (want[:, 0] + self.scratch_error) % (self.max_count + 1)  # another token when nonzero
        return 30.0 * torch.nn.functional.one_hot(want[:, : tokens.shape[1] - 3], self.max_count + 1).float()


@pytest.mark.parametrize("scratch_error", [0, 1])
def test_task_metrics_score_every_position_teacher_forced_and_the_counts_autoregressively(scratch_error):
    m = make(cls=_Oracle)
    m.scratch_error = scratch_error
    dom = domain_of(m)
    out = dom.task_metrics(m, np.arange(dom.n_examples), [])
    # a wrong scratch value fails teacher-forced exact match (it is scored against the scratch target) but
    # not the autoregressive answer, which is the counts
    assert out["tf_exact"].tolist() == [float(not scratch_error)] * dom.n_examples
    assert out["ar_exact"].tolist() == [1.0] * dom.n_examples
    per_position = torch.log1p(torch.tensor(float(m.max_count)) * np.exp(-30.0))  # CE of a right 30-logit one-hot
    wrong = 30.0 + per_position  # CE at the wrong scratch position: 30 below the right token
    want = (per_position * (m.dec_len - 1) + (wrong if scratch_error else per_position)) / m.dec_len
    torch.testing.assert_close(out["loss"], torch.full((dom.n_examples,), float(want)), rtol=1e-4, atol=1e-4)


def test_store_rows_cover_every_decoder_position_and_an_sae_trains(model, tmp_path):
    dom = domain_of(model)
    store = ActivationStore(model, HOOK, dom, StoreConfig(batch_rows=32, buffer_examples=16))
    assert store.n_rows == dom.n_examples * model.dec_len
    cfg = SAETrainConfig(arch="topk", sae={"d_sae": 32, "k": 4}, store={"batch_rows": 32, "buffer_examples": 16},
                         train={"steps": 6, "eval_every": 3, "checkpoint_every": 3, "warmup_steps": 1}, init_rows=64, eval_rows=64)
    sae, metrics = train_sae(model, "tiny-bounded", HOOK, cfg, tmp_path / "sae", progress=False)
    assert sae.cfg.d_in == model.cfg.d_mlp and metrics["n_rows"] == dom.n_examples * model.dec_len
    assert metrics["l0"] <= 4 and 0 <= metrics["dead_features"] <= 1
    assert set(metrics["clean"]) == {"loss", "tf_exact", "ar_exact"} and np.isfinite(metrics["explained_variance"])
