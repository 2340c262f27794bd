"""Checks of the K-theory grid dataset: sizes, splits, vocabulary, caching."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ktlens.tasks import ktheory as kt
from ktlens.tasks.ktheory_data import (
    KTheoryDataset,
    KTheoryGridSpec,
    KTheoryVocab,
    build_dataset,
)


@pytest.fixture(scope="module")
def small():
    return build_dataset(KTheoryGridSpec.small())


def naive_primes(n):
    out, k = [], 2
    while len(out) < n:
        if all(k % d for d in range(2, int(k**0.5) + 1)):
            out.append(k)
        k += 1
    return out


def test_presets():
    s = KTheoryGridSpec.small()
    assert (s.n_primes, s.r_max, s.e_max, s.split, s.test_fraction, s.seed) == (
        25, 20, 20, "random", 0.2, 0)
    ref = KTheoryGridSpec.seed()
    assert isinstance(ref, KTheoryGridSpec)
    assert (ref.n_primes, ref.r_max, ref.e_max) == (400, 100, 50)
    assert ref.num_triples == 2_000_000
    assert ref.seed == 0 and KTheoryGridSpec(seed=5).seed == 5  # the field still works
    assert ref == KTheoryGridSpec.reference()
    assert kt.sequence_length(ref.prime_list(), ref.r_max, ref.e_max) == 13


def test_spec_json_round_trip():
    for spec in [
        KTheoryGridSpec.small(),
        KTheoryGridSpec(primes=[2, 3, 7], r_max=5, e_max=9, split="heldout_e", heldout_from=4),
        KTheoryGridSpec(split="heldout_primes", n_heldout_primes=3, heldout_prime_choice="random",
                        seed=11),
    ]:
        again = KTheoryGridSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
        assert again == spec
        assert again.cache_key() == spec.cache_key()
    assert KTheoryGridSpec(seed=1).cache_key() != KTheoryGridSpec(seed=2).cache_key()


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(primes=[2, 4]),
        dict(primes=[3, 2]),
        dict(n_primes=0),
        dict(r_max=0),
        dict(e_max=2.5),
        dict(split="nope"),
        dict(test_fraction=1.5),
        dict(split="heldout_r", heldout_from=21),
        dict(split="heldout_primes", n_heldout_primes=25),
        dict(heldout_prime_choice="first"),
    ],
)
def test_bad_specs(kwargs):
    with pytest.raises(ValueError):
        KTheoryGridSpec(**kwargs)
    with pytest.raises(ValueError):
        KTheoryGridSpec.from_dict({**KTheoryGridSpec().to_dict(), **kwargs})


def test_sizes_and_labels(small):
    n = 25 * 20 * 20
    assert len(small) == n
    assert small.p.shape == small.r.shape == small.e.shape == (n,)
    assert small.counts.shape == (n, small.seq_len) and small.counts.dtype == np.int64
    assert sorted(set(small.p.tolist())) == naive_primes(25)
    assert set(small.r.tolist()) == set(range(1, 21)) and set(small.e.tolist()) == set(range(1, 21))
    assert len(set(zip(small.p.tolist(), small.r.tolist(), small.e.tolist()))) == n
    # label length = brute max exponent over the grid: floor(log_2 400) + 1 = 9
    brute = max(max(kt.k_group_reference(int(a), int(b), int(c)), default=0)
                for a, b, c in zip(small.p, small.r, small.e))
    assert small.seq_len == brute == 9
    # labels agree with the loop reference on a sample
    rng = np.random.default_rng(0)
    for i in rng.choice(n, 300, replace=False):
        hs = kt.k_group_reference(int(small.p[i]), int(small.r[i]), int(small.e[i]))
        assert np.bincount(hs, minlength=small.seq_len + 1)[1:].tolist() == small.counts[i].tolist()
    np.testing.assert_array_equal(small.is_trivial, small.p > small.r * small.e)
    triv = small.is_trivial
    np.testing.assert_array_equal(small.counts[triv, 0], (small.r * (small.e - 1))[triv])
    assert not small.counts[triv, 1:].any()


def test_vocab(small):
    v = small.vocab
    assert v.src_vocab == max(97, 20, 20) + 1
    assert v.max_count == int(small.counts.max())
    assert (v.bos, v.pad, v.tgt_vocab) == (v.max_count + 1, v.max_count + 2, v.max_count + 3)
    assert v.bos not in range(v.max_count + 1) and v.pad not in range(v.max_count + 1)
    src = small.src
    assert src.shape == (len(small), 3)
    np.testing.assert_array_equal(src, np.stack([small.p, small.r, small.e], axis=1))
    assert src.max() < v.src_vocab
    dec_in, dec_tgt = small.decoder_input, small.decoder_target
    assert dec_in.shape == dec_tgt.shape == small.counts.shape
    assert (dec_in[:, 0] == v.bos).all()
    np.testing.assert_array_equal(dec_in[:, 1:], small.counts[:, :-1])
    np.testing.assert_array_equal(dec_tgt, small.counts)
    assert dec_tgt.max() < v.bos  # targets are counts only
    assert (small.counts == 0).any()  # 0 is a legitimate count token
    # decode
    i = int(np.flatnonzero((small.p == 3) & (small.r == 2) & (small.e == 2))[0])
    assert v.decode_counts(dec_tgt[i]) == [0, 1]  # Z/9
    assert v.decode_counts(np.r_[v.bos, dec_tgt[i]]) == [0, 1]
    assert v.decode_counts([0, 1, 0, v.pad, 5]) == [0, 1]
    assert v.decode_counts([0, 0, 0]) == []
    with pytest.raises(ValueError):
        v.decode_counts([1, v.bos, 2])
    with pytest.raises(ValueError):
        v.encode(4000, 1, 1)
    np.testing.assert_array_equal(v.encode(3, 2, 2), [3, 2, 2])
    assert KTheoryVocab.from_dict(json.loads(json.dumps(v.to_dict()))) == v


def test_random_split_disjoint_covering_deterministic(small):
    tr, te = small.train_idx, small.test_idx
    assert len(te) == round(0.2 * len(small))
    assert np.intersect1d(tr, te).size == 0
    np.testing.assert_array_equal(np.sort(np.r_[tr, te]), np.arange(len(small)))
    assert (np.diff(tr) > 0).all() and (np.diff(te) > 0).all()
    again = build_dataset(KTheoryGridSpec.small())
    np.testing.assert_array_equal(again.test_idx, te)
    other = build_dataset(KTheoryGridSpec(seed=1))
    assert not np.array_equal(other.test_idx, te)
    assert "non-trivial share in test" in small.summary()
    assert "10000 triples" in small.summary()


def _check_partition(ds):
    tr, te = ds.train_idx, ds.test_idx
    assert np.intersect1d(tr, te).size == 0
    np.testing.assert_array_equal(np.sort(np.r_[tr, te]), np.arange(len(ds)))


def test_heldout_r_and_e():
    for split, field in [("heldout_r", "r"), ("heldout_e", "e")]:
        ds = build_dataset(KTheoryGridSpec(split=split, heldout_from=16))
        _check_partition(ds)
        values = getattr(ds, field)
        assert (values[ds.test_idx] >= 16).all()
        assert (values[ds.train_idx] < 16).all()
        assert len(ds.test_idx) == 25 * 20 * 5


def test_heldout_primes():
    ds = build_dataset(KTheoryGridSpec(split="heldout_primes", n_heldout_primes=4))
    _check_partition(ds)
    primes = naive_primes(25)
    assert set(ds.p[ds.test_idx].tolist()) == set(primes[-4:])
    assert not set(ds.p[ds.train_idx].tolist()) & set(primes[-4:])
    spec = KTheoryGridSpec(split="heldout_primes", n_heldout_primes=4,
                           heldout_prime_choice="random", seed=3)
    a, b = build_dataset(spec), build_dataset(spec)
    _check_partition(a)
    held = set(a.p[a.test_idx].tolist())
    assert len(held) == 4 and not held & set(a.p[a.train_idx].tolist())
    np.testing.assert_array_equal(a.test_idx, b.test_idx)


def test_explicit_primes_grid():
    ds = build_dataset(KTheoryGridSpec(primes=[2, 5, 11], r_max=6, e_max=8, test_fraction=0.5))
    assert len(ds) == 3 * 6 * 8
    assert ds.seq_len == kt.sequence_length([2, 5, 11], 6, 8) == 6  # floor(log2 48) + 1
    assert ds.vocab.src_vocab == 12


def test_save_load_bit_identical(tmp_path, small):
    path = small.save(tmp_path / "grid")
    assert path.suffix == ".npz" and (tmp_path / "grid.json").exists()
    again = KTheoryDataset.load(tmp_path / "grid")
    assert again.spec == small.spec and again.vocab == small.vocab
    for name in ("p", "r", "e", "counts", "train_idx", "test_idx"):
        a, b = getattr(small, name), getattr(again, name)
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes(), name
    # np.load with allow_pickle=False works on the file directly
    with np.load(path, allow_pickle=False) as z:
        assert set(z.files) == {"p", "r", "e", "counts", "train_idx", "test_idx"}


def test_build_dataset_cache(tmp_path):
    spec = KTheoryGridSpec(primes=[2, 3, 5], r_max=7, e_max=9, split="heldout_e", heldout_from=6)
    first = build_dataset(spec, cache_dir=tmp_path)
    files = sorted(x.name for x in tmp_path.iterdir())
    assert files == [f"ktheory_{spec.cache_key()}.json", f"ktheory_{spec.cache_key()}.npz"]
    # tamper with the cached counts: a cache hit must return the cached file's contents
    npz = tmp_path / f"ktheory_{spec.cache_key()}.npz"
    with np.load(npz) as z:
        arrays = dict(z)
    arrays["counts"] = arrays["counts"].copy()
    arrays["counts"][0, 0] = 123
    np.savez(npz, **arrays)
    cached = build_dataset(spec, cache_dir=tmp_path)
    assert cached.counts[0, 0] == 123
    np.testing.assert_array_equal(cached.counts[1:], first.counts[1:])
    # a different spec gets its own file
    build_dataset(KTheoryGridSpec(primes=[2, 3, 5], r_max=7, e_max=9), cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 4
