"""The activation store: rows are the hook's activations with their (example, position); memory is flat."""

import gc
import tracemalloc

import numpy as np
import pytest
import torch

from ktlens.saes.activations import ActivationStore, StoreConfig
from ktlens.saes.domains import domain_of


class RepeatedDomain:
    """A domain `factor` times as large as `base`: example i is base example i mod n."""

    def __init__(self, base, factor):
        self.base, self.n_examples = base, base.n_examples * factor

    def tokens(self, idx):
        return self.base.tokens(np.asarray(idx) % self.base.n_examples)

    def task_metrics(self, model, idx, fwd_hooks):
        return self.base.task_metrics(model, np.asarray(idx) % self.base.n_examples, fwd_hooks)


def test_rows_are_the_hook_at_their_example_and_position(tiny_ktheory):
    hook = "blocks.0.mlp.hook_post"
    domain = domain_of(tiny_ktheory)
    store = ActivationStore(tiny_ktheory, hook, domain, StoreConfig(batch_rows=64, buffer_examples=16))
    assert store.n_examples == 64 and store.positions == tiny_ktheory.seq_len and store.d_in == 256
    rows = store.batch_at(5)
    with torch.no_grad():
        _, cache = tiny_ktheory.run_with_cache(domain.tokens(rows.example.numpy()), names_filter=hook)
    direct = cache[hook][torch.arange(len(rows.acts)), rows.position]
    torch.testing.assert_close(rows.acts, direct)


def test_one_epoch_serves_every_row_once_and_any_step_is_reproducible(tiny_ktheory):
    cfg = StoreConfig(batch_rows=32, buffer_examples=10, seed=3)
    store = ActivationStore(tiny_ktheory, "blocks.0.hook_resid_post", domain_of(tiny_ktheory), cfg)
    seen = [store.batch_at(s) for s in range(store.batches_per_epoch)]
    pairs = [(int(e), int(p)) for b in seen for e, p in zip(b.example, b.position)]
    assert len(pairs) == len(set(pairs)) > 0.8 * store.n_rows  # no row twice; only a remainder per block dropped
    assert {e for e, _ in pairs} == set(range(64))
    fresh = ActivationStore(tiny_ktheory, "blocks.0.hook_resid_post", domain_of(tiny_ktheory), cfg)
    for step in (7, 3, store.batches_per_epoch + 2):  # a resumed run: any step, in any order
        again = fresh.batch_at(step)
        first = store.batch_at(step)
        assert torch.equal(again.acts, first.acts) and torch.equal(again.example, first.example)
    assert not torch.equal(store.batch_at(0).example, store.batch_at(store.batches_per_epoch).example)  # new order each epoch


def test_disk_cache_gives_the_same_batches(tiny_ktheory, tmp_path):
    hook = "blocks.0.mlp.hook_post"
    plain = ActivationStore(tiny_ktheory, hook, domain_of(tiny_ktheory), StoreConfig(batch_rows=40, buffer_examples=12))
    cached = ActivationStore(tiny_ktheory, hook, domain_of(tiny_ktheory), StoreConfig(batch_rows=40, buffer_examples=12, cache_dir=str(tmp_path)))
    assert (tmp_path / "activations.f32").stat().st_size == plain.n_rows * 256 * 4
    reopened = ActivationStore(tiny_ktheory, hook, domain_of(tiny_ktheory), StoreConfig(batch_rows=40, buffer_examples=12, cache_dir=str(tmp_path)))
    for step in (0, 4, 9):
        torch.testing.assert_close(cached.batch_at(step).acts, plain.batch_at(step).acts)
        torch.testing.assert_close(reopened.batch_at(step).acts, plain.batch_at(step).acts)


def _traced_peak(store) -> int:
    """Python-side peak allocation while the store serves 39 batches (many buffer refills)."""
    gc.collect()
    tracemalloc.start()
    for step in range(1, 40):
        store.batch_at(step)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


@pytest.mark.parametrize("hook", ["blocks.0.mlp.hook_post", "blocks.0.attn.hook_z"])
def test_memory_does_not_grow_with_the_dataset(tiny_ktheory, hook):
    """A dataset 10x larger (6,400 vs 64,000 examples): the same rows held at once and the same
    Python-side peak (an index array over the dataset would add 512 kB at the larger size)."""
    peaks = {}
    for factor in (100, 1000):
        domain = RepeatedDomain(domain_of(tiny_ktheory), factor)
        store = ActivationStore(tiny_ktheory, hook, domain, StoreConfig(batch_rows=64, buffer_examples=16, model_batch=16))
        store.batch_at(0)  # warm-up outside the measurement
        peak = min(_traced_peak(store) for _ in range(2))  # the lower of two runs: other threads' allocations also count
        peaks[factor] = (store.peak_buffer_bytes, peak, store.n_rows)
    assert peaks[1000][2] == 10 * peaks[100][2]
    assert peaks[1000][0] == peaks[100][0] > 0  # rows held at once: one block, whatever the dataset size
    assert peaks[1000][1] <= 1.2 * peaks[100][1] + 50_000, peaks
