"""A seeded sample of a domain: the same examples, renumbered."""

import numpy as np
import pytest
import torch

from ktlens.saes.domains import DomainSample, sample_domain


class Numbers:
    """A stand-in domain whose example i is the token i."""

    n_examples = 50

    def tokens(self, idx):
        return torch.as_tensor(np.asarray(idx))[:, None]

    def task_metrics(self, model, idx, fwd_hooks):  # part of the Domain protocol; needs a model, not called here
        raise NotImplementedError


def test_sample_is_seeded_sorted_and_renumbered():
    domain = Numbers()
    a, b = sample_domain(domain, 10, seed=3), sample_domain(domain, 10, seed=3)
    assert isinstance(a, DomainSample) and a.n_examples == 10
    assert np.array_equal(a.idx, b.idx) and np.all(np.diff(a.idx) > 0)
    assert a.tokens(np.arange(10))[:, 0].tolist() == a.idx.tolist()
    assert not np.array_equal(sample_domain(domain, 10, seed=4).idx, a.idx)


def test_whole_domain_and_bad_sizes():
    domain = Numbers()
    assert sample_domain(domain, None) is domain and sample_domain(domain, 50) is domain
    with pytest.raises(ValueError, match="n >= 1"):
        sample_domain(domain, 0)
    with pytest.raises(ValueError, match="within 0..49"):
        DomainSample(domain, np.array([3, 50]))
