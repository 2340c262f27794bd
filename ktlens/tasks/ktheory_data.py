"""Dataset of K-groups ``K_{2r-1}(F_p[x]/(x^e), (x))`` on a grid of triples ``(p, r, e)``.

Each example maps the source ``(p, r, e)`` to its label ``[n_1, ..., n_L]`` (``n_i`` = number of
``Z/p^i`` summands, see :mod:`ktlens.tasks.ktheory`), padded with zeros to the grid's label
length ``L``.

Token scheme (:class:`KTheoryVocab`):

* source: the integers ``p, r, e`` themselves are the token ids, in one shared vocabulary of size
  ``src_vocab = max(max_prime, r_max, e_max) + 1``; the role is given by the position (0, 1, 2).
* target: counts ``0..max_count`` are their own ids (0 is a real count: "no summand of that
  order"), then ``bos = max_count + 1``, ``pad = max_count + 2``, ``tgt_vocab = max_count + 3``.
  Decoder input ``[bos, n_1, ..., n_{L-1}]``, decoder target ``[n_1, ..., n_L]``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import no_type_check

import numpy as np

from ktlens.tasks.ktheory import (
    first_primes,
    is_prime,
    sequence_length,
    summand_count_table,
)
from ktlens.validation import FieldError, check_choice, check_int, check_keys, check_real

__all__ = ["KTheoryGridSpec", "KTheoryVocab", "KTheoryDataset", "build_dataset", "SPLITS"]

SPLITS = ("random", "heldout_r", "heldout_e", "heldout_primes")
FORMAT_VERSION = 1
OPTIONAL_GRID_FIELDS = ("re_max", "train_fraction")  # may be absent from a stored grid (added later; absent = 0)
MAX_N_PRIMES = 100_000  # bounds the work of listing the grid's primes


@no_type_check  # a validating entry point: validate() raises ValueError naming a mistyped field
@dataclass
class KTheoryGridSpec:
    """Which triples ``(p, r, e)`` make the grid and how they are split into train / test."""

    n_primes: int = 25  # use the first n_primes primes (ignored when `primes` is given)
    primes: list[int] | None = None  # explicit primes (sorted, distinct); overrides n_primes
    r_max: int = 20  # r ranges over 1..r_max
    e_max: int = 20  # e ranges over 1..e_max
    re_max: int = 0  # > 0: keep only the triples with r * e <= re_max (more (r, e) pairs per prime for a label size)
    split: str = "random"  # "random" | "heldout_r" | "heldout_e" | "heldout_primes"
    test_fraction: float = 0.2  # "random": fraction of triples in the test set
    heldout_from: int = 16  # "heldout_r" / "heldout_e": values >= heldout_from are test only
    n_heldout_primes: int = 5  # "heldout_primes": how many primes go to the test set
    heldout_prime_choice: str = "last"  # "heldout_primes": "last" (largest) or "random"
    seed: int = 0  # seeds numpy.random.default_rng for every random choice
    train_fraction: float = 1.0  # < 1: train on this share of the non-test triples (the test split is unchanged)

    def __post_init__(self):
        if self.primes is not None:
            if not isinstance(self.primes, (list, tuple)):
                raise FieldError("primes", self.primes, "must be null or a list of primes")
            self.primes = [check_int(f"primes[{i}]", q) for i, q in enumerate(self.primes)]
        self.validate()

    # ---- presets ---------------------------------------------------------------------------

    @classmethod
    def small(cls) -> KTheoryGridSpec:
        """First 25 primes, r <= 20, e <= 20, random 80/20 split, seed 0 (10,000 triples)."""
        return cls(n_primes=25, r_max=20, e_max=20, split="random", test_fraction=0.2, seed=0)

    @classmethod
    def reference(cls) -> KTheoryGridSpec:
        """Reference grid: first 400 primes, r <= 100, e <= 50 (2,000,000 triples).

        Also available as ``KTheoryGridSpec.seed()`` (attached after the class body, because
        ``seed`` is also the name of a field; on an instance ``spec.seed`` is the int).
        """
        return cls(n_primes=400, r_max=100, e_max=50, split="random", test_fraction=0.2)

    # ---- helpers ---------------------------------------------------------------------------

    def prime_list(self) -> list[int]:
        """The primes of the grid, ascending."""
        return list(self.primes) if self.primes is not None else first_primes(self.n_primes)

    @property
    def num_triples(self) -> int:
        return len(self.prime_list()) * int(re_bounded_pairs(self.r_max, self.e_max, self.re_max)[0].size)

    def validate(self) -> None:
        """Raise ``FieldError`` (a ``ValueError`` naming the field) on a mistyped or inconsistent spec."""
        for name in ("n_primes", "r_max", "e_max", "heldout_from", "n_heldout_primes", "seed"):
            check_int(name, getattr(self, name), minimum=0)
        if self.primes is not None:
            if not self.primes:
                raise FieldError("primes", self.primes, "must be non-empty")
            bad = [p for p in self.primes if not is_prime(p)]
            if bad:
                raise FieldError("primes", self.primes, f"contains a non-prime: {bad[0]}")
            if sorted(set(self.primes)) != self.primes:
                raise FieldError("primes", self.primes, "must be sorted and distinct")
        elif not 1 <= self.n_primes <= MAX_N_PRIMES:
            raise FieldError("n_primes", self.n_primes, f"must be in 1..{MAX_N_PRIMES}")
        check_int("r_max", self.r_max, minimum=1)
        check_int("e_max", self.e_max, minimum=1)
        if check_int("re_max", self.re_max, minimum=0) and self.re_max < max(self.r_max, self.e_max):
            raise FieldError("re_max", self.re_max, f"must be 0 (no bound) or >= max(r_max, e_max) = {max(self.r_max, self.e_max)}")
        check_choice("split", self.split, SPLITS)
        check_real("test_fraction", self.test_fraction, 0.0, 1.0)
        if not 0.0 < check_real("train_fraction", self.train_fraction, 0.0, 1.0):
            raise FieldError("train_fraction", self.train_fraction, "must be in (0, 1]")
        check_choice("heldout_prime_choice", self.heldout_prime_choice, ("last", "random"))
        n_p = len(self.primes) if self.primes is not None else self.n_primes
        if self.split == "heldout_primes" and not 1 <= self.n_heldout_primes < n_p:
            raise FieldError("n_heldout_primes", self.n_heldout_primes, f"must be in 1..{n_p - 1}")
        if self.split == "heldout_r" and not 2 <= self.heldout_from <= self.r_max:
            raise FieldError("heldout_from", self.heldout_from, f"must be in 2..r_max={self.r_max}")
        if self.split == "heldout_e" and not 2 <= self.heldout_from <= self.e_max:
            raise FieldError("heldout_from", self.heldout_from, f"must be in 2..e_max={self.e_max}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, strict: bool = False) -> KTheoryGridSpec:
        """Inverse of `to_dict`. Unknown fields are errors; with `strict` (checkpoints), so are missing ones."""
        known = [f.name for f in dataclasses.fields(cls)]
        required = [k for k in known if k not in OPTIONAL_GRID_FIELDS] if strict else ()
        return cls(**check_keys(d, known, required, what="KTheoryGridSpec fields"))

    def cache_key(self) -> str:
        """Short hash of the spec (and the file format version), used to name cache files."""
        blob = json.dumps({"format": FORMAT_VERSION, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# The preset ``seed()`` cannot be defined in the class body: the dataclass would take the
# classmethod as the default of the ``seed`` field.  Class access gives the preset, instance
# access the field value (the instance attribute shadows the non-data descriptor).
KTheoryGridSpec.seed = classmethod(lambda cls: cls.reference())  # type: ignore[assignment]
KTheoryGridSpec.seed.__func__.__doc__ = KTheoryGridSpec.reference.__doc__


@dataclass(frozen=True)
class KTheoryVocab:
    """Token ids for the source triple and the target count sequence (see module docstring)."""

    src_vocab: int  # max(max_prime, r_max, e_max) + 1; source token id = the integer itself
    max_count: int  # largest count in the grid's labels (or scratch value); 0..max_count are target ids
    seq_len: int  # label length L
    n_scratch: int = 0  # values the decoder writes before the counts (e.g. r*e); decoder length n_scratch + L

    @property
    def dec_len(self) -> int:
        """Decoder positions: the scratch values, then the L counts."""
        return self.n_scratch + self.seq_len

    @property
    def bos(self) -> int:
        """Decoder start token (never a count)."""
        return self.max_count + 1

    @property
    def pad(self) -> int:
        """Padding token (never a count; unused by fixed-length labels, reserved)."""
        return self.max_count + 2

    @property
    def tgt_vocab(self) -> int:
        return self.max_count + 3

    @classmethod
    def for_spec(cls, spec: KTheoryGridSpec, max_count: int, seq_len: int) -> KTheoryVocab:
        """The vocabulary of a grid whose labels have length `seq_len` and largest count `max_count`."""
        primes = spec.prime_list()
        return cls(src_vocab=max(max(primes), spec.r_max, spec.e_max) + 1, max_count=int(max_count), seq_len=int(seq_len))

    def encode(self, p, r, e) -> np.ndarray:
        """Source tokens ``[..., 3]`` (int64) = ``(p, r, e)``, each in ``1..src_vocab - 1``."""
        src = np.stack(np.broadcast_arrays(*(np.asarray(x) for x in (p, r, e))), axis=-1)
        if src.dtype.kind not in "iu":
            raise ValueError(f"source values must be integers, got dtype {src.dtype}")
        src = src.astype(np.int64)
        bad = (src < 1) | (src >= self.src_vocab)
        if bad.any():
            raise ValueError(
                f"source value {src.flat[int(np.argmax(bad))]} outside 1..{self.src_vocab - 1}"
            )
        return src

    def decoder_input(self, counts, scratch=None) -> np.ndarray:
        """``[bos, n_1, ..., n_{L-1}]`` for counts of shape ``[..., L]``; with scratch values ``[..., S]``
        (``S = n_scratch``) ``[bos, s_1, ..., s_S, n_1, ..., n_{L-1}]``."""
        seq = self.decoder_target(counts, scratch)
        bos = np.full(seq.shape[:-1] + (1,), self.bos, dtype=np.int64)
        return np.concatenate([bos, seq[..., :-1]], axis=-1)

    def decoder_target(self, counts, scratch=None) -> np.ndarray:
        """``[s_1, ..., s_S, n_1, ..., n_L]``: the scratch values (none when ``n_scratch`` is 0), then the
        counts, each checked against the vocabulary."""
        counts = self._check_counts(counts)
        if not self.n_scratch:
            if scratch is not None and np.asarray(scratch).shape[-1] != 0:
                raise ValueError("this vocabulary has no scratch values")
            return counts.copy()
        if scratch is None:
            raise ValueError(f"this vocabulary needs {self.n_scratch} scratch value(s) before the counts")
        scratch = np.asarray(scratch)
        if scratch.shape != counts.shape[:-1] + (self.n_scratch,):
            raise ValueError(f"scratch values must have shape {counts.shape[:-1] + (self.n_scratch,)}, got {scratch.shape}")
        if scratch.size and (scratch.min() < 0 or scratch.max() > self.max_count):
            raise ValueError(f"scratch values outside 0..{self.max_count}")
        return np.concatenate([scratch.astype(np.int64), counts], axis=-1)

    def decode_counts(self, tokens) -> list[int]:
        """Token sequence -> label with trailing zeros cut.

        A leading ``bos`` is skipped and decoding stops at the first ``pad``; any other
        non-count token raises ``ValueError``.
        """
        toks = [int(t) for t in np.asarray(tokens).reshape(-1)]
        if toks and toks[0] == self.bos:
            toks = toks[1:]
        if self.pad in toks:
            toks = toks[: toks.index(self.pad)]
        bad = [t for t in toks if not 0 <= t <= self.max_count]
        if bad:
            raise ValueError(f"token {bad[0]} is not a count (counts are 0..{self.max_count})")
        while toks and toks[-1] == 0:
            toks.pop()
        return toks

    def _check_counts(self, counts) -> np.ndarray:
        counts = np.asarray(counts)
        if counts.shape[-1:] != (self.seq_len,):
            raise ValueError(f"counts must have last dim {self.seq_len}, got {counts.shape}")
        if counts.size and (counts.min() < 0 or counts.max() > self.max_count):
            raise ValueError(f"counts outside 0..{self.max_count}")
        return counts.astype(np.int64, copy=False)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> KTheoryVocab:
        return cls(**d)


_ARRAYS = ("p", "r", "e", "counts", "train_idx", "test_idx")


@dataclass
class KTheoryDataset:
    """All triples of a grid with their labels and a train / test split (numpy arrays)."""

    spec: KTheoryGridSpec
    vocab: KTheoryVocab
    p: np.ndarray  # (N,) int64
    r: np.ndarray  # (N,) int64
    e: np.ndarray  # (N,) int64
    counts: np.ndarray  # (N, L) int64 label n_1..n_L
    train_idx: np.ndarray  # sorted int64 indices into the N triples
    test_idx: np.ndarray  # sorted int64 indices, disjoint from train_idx

    def __len__(self) -> int:
        return int(self.p.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.counts.shape[1])

    @property
    def is_trivial(self) -> np.ndarray:
        """``p > r e``: label is just ``n_1 = r (e - 1)``."""
        return self.p > self.r * self.e

    @property
    def src(self) -> np.ndarray:
        """Source tokens, shape (N, 3)."""
        return self.vocab.encode(self.p, self.r, self.e)

    @property
    def decoder_input(self) -> np.ndarray:
        """(N, L): ``[bos, n_1, ..., n_{L-1}]``."""
        return self.vocab.decoder_input(self.counts)

    @property
    def decoder_target(self) -> np.ndarray:
        """(N, L): ``[n_1, ..., n_L]``."""
        return self.vocab.decoder_target(self.counts)

    def summary(self) -> str:
        """A few lines describing sizes, vocabularies and the split."""
        n = len(self)
        triv = self.is_trivial
        lines = [
            f"K-theory grid: {len(self.spec.prime_list())} primes (max {int(self.p.max())}), "
            f"r <= {self.spec.r_max}, e <= {self.spec.e_max}: {n} triples",
            f"trivial (p > r e) fraction: {triv.mean():.3f}",
            f"label length L = {self.seq_len}, max count = {self.vocab.max_count}",
            f"vocab: src_vocab = {self.vocab.src_vocab}, tgt_vocab = {self.vocab.tgt_vocab} "
            f"(bos = {self.vocab.bos}, pad = {self.vocab.pad})",
            f"split '{self.spec.split}': train {len(self.train_idx)}, test {len(self.test_idx)}",
        ]
        for name, idx in (("train", self.train_idx), ("test", self.test_idx)):
            k = int(triv[idx].sum())
            lines.append(f"  {name}: {len(idx)} triples, {k} trivial, {len(idx) - k} non-trivial")
        if len(self.test_idx):
            share = 1.0 - triv[self.test_idx].mean()
            lines.append(f"non-trivial share in test: {share:.3f}")
        return "\n".join(lines)

    # ---- persistence -----------------------------------------------------------------------

    def save(self, path) -> Path:
        """Write ``<path>.npz`` (arrays) and ``<path>.json`` (spec, vocab); return the npz path."""
        npz, meta = _paths(path)
        npz.parent.mkdir(parents=True, exist_ok=True)
        info = {
            "format": FORMAT_VERSION,
            "spec": self.spec.to_dict(),
            "vocab": self.vocab.to_dict(),
            "num_triples": len(self),
        }
        _atomic_write(npz, lambda f: np.savez(f, **{k: getattr(self, k) for k in _ARRAYS}))
        _atomic_write(meta, lambda f: f.write(json.dumps(info, indent=2).encode()))
        return npz

    @classmethod
    def load(cls, path) -> KTheoryDataset:
        """Inverse of :meth:`save` (``allow_pickle=False``)."""
        npz, meta = _paths(path)
        info = json.loads(meta.read_text())
        if info.get("format") != FORMAT_VERSION:
            raise ValueError(f"{meta}: unsupported format {info.get('format')!r}")
        with np.load(npz, allow_pickle=False) as z:
            arrays = {k: z[k] for k in _ARRAYS}
        ds = cls(
            spec=KTheoryGridSpec.from_dict(info["spec"]),
            vocab=KTheoryVocab.from_dict(info["vocab"]),
            **arrays,
        )
        if len(ds) != info["num_triples"] or ds.counts.shape != (len(ds), ds.vocab.seq_len):
            raise ValueError(f"{npz}: arrays do not match {meta}")
        return ds


def _paths(path) -> tuple[Path, Path]:
    path = Path(path)
    if path.suffix in (".npz", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".npz"), path.with_name(path.name + ".json")


def _atomic_write(target: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def re_bounded_pairs(r_max: int, e_max: int, re_max: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The pairs (r, e) in 1..r_max x 1..e_max (r outer, e inner), with r * e <= re_max when re_max > 0."""
    r, e = np.meshgrid(np.arange(1, r_max + 1, dtype=np.int64), np.arange(1, e_max + 1, dtype=np.int64), indexing="ij")
    r, e = r.ravel(), e.ravel()
    if re_max > 0:
        keep = r * e <= re_max
        r, e = r[keep], e[keep]
    return r, e


def domain_triples(primes, r_max: int, e_max: int, re_max: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every triple of the domain in lexicographic order (p outer, then r, then e inner)."""
    r, e = re_bounded_pairs(r_max, e_max, re_max)
    p = np.repeat(np.asarray(primes, dtype=np.int64), r.size)
    return p, np.tile(r, len(primes)), np.tile(e, len(primes))


def domain_labels(primes, r_max: int, e_max: int, re_max: int = 0) -> tuple[np.ndarray, ...]:
    """``p, r, e, counts`` of every triple of the domain (order of `domain_triples`). Without an r * e bound
    the label length is the closed form `sequence_length`; with one, the columns that are zero everywhere on
    the bounded domain are cut."""
    p, r, e = domain_triples(primes, r_max, e_max, re_max)
    counts = summand_count_table(p, r, e, length=sequence_length(primes, r_max, e_max))
    if re_max > 0:
        nonzero = np.flatnonzero(counts.any(axis=0))
        counts = counts[:, : int(nonzero[-1]) + 1 if nonzero.size else 1]
    return p, r, e, np.ascontiguousarray(counts)


def domain_label_shape(primes, r_max: int, e_max: int, re_max: int = 0) -> tuple[int, int]:
    """(label length L, largest count) over the domain (see `domain_labels`)."""
    counts = domain_labels(primes, r_max, e_max, re_max)[3]
    return counts.shape[1], int(counts.max(initial=0))


def _split(spec: KTheoryGridSpec, p, r, e) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(spec.seed)
    n = p.shape[0]
    if spec.split == "random":
        n_test = int(round(spec.test_fraction * n))
        test = np.zeros(n, dtype=bool)
        test[rng.permutation(n)[:n_test]] = True
    elif spec.split == "heldout_r":
        test = r >= spec.heldout_from
    elif spec.split == "heldout_e":
        test = e >= spec.heldout_from
    else:  # heldout_primes
        primes = np.asarray(spec.prime_list())
        k = spec.n_heldout_primes
        if spec.heldout_prime_choice == "last":
            held = primes[-k:]
        else:
            held = rng.choice(primes, k, replace=False)
        test = np.isin(p, held)
    train_idx = np.flatnonzero(~test).astype(np.int64)
    if spec.train_fraction < 1.0:  # a nested subsample: a smaller fraction keeps a subset of a larger one
        order = np.random.default_rng([spec.seed, 1]).permutation(train_idx.size)
        train_idx = np.sort(train_idx[order[: max(1, int(round(spec.train_fraction * train_idx.size)))]])
    return train_idx, np.flatnonzero(test).astype(np.int64)


def build_dataset(spec: KTheoryGridSpec | None = None, cache_dir=None) -> KTheoryDataset:
    """Build the dataset for ``spec`` (default: ``KTheoryGridSpec.small()``).

    With ``cache_dir`` the result is stored as ``ktheory_<spec hash>.npz/.json`` there and
    reloaded on the next call with an equal spec.
    """
    spec = KTheoryGridSpec.small() if spec is None else spec
    spec.validate()
    if cache_dir is not None:
        base = Path(cache_dir) / f"ktheory_{spec.cache_key()}"
        npz, meta = _paths(base)
        if npz.exists() and meta.exists():
            ds = KTheoryDataset.load(base)
            if ds.spec == spec:
                return ds
    p, r, e, counts = domain_labels(spec.prime_list(), spec.r_max, spec.e_max, spec.re_max)
    vocab = KTheoryVocab.for_spec(spec, max_count=int(counts.max(initial=0)), seq_len=counts.shape[1])
    train_idx, test_idx = _split(spec, p, r, e)
    ds = KTheoryDataset(spec, vocab, p, r, e, counts, train_idx, test_idx)
    if cache_dir is not None:
        ds.save(base)
    return ds
