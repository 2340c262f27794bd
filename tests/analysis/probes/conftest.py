"""A tiny K-theory model shared by the probe tests."""

import pytest

from ktlens.models import KTheoryTransformer

SPEC = {"primes": [2, 3, 5, 7], "r_max": 4, "e_max": 4, "seq_len": 4, "max_count": 8, "label_order": "ascending"}


def make_kt_model(**spec):
    return KTheoryTransformer.create({**SPEC, **spec}, d_model=32, n_heads=4, d_mlp=64).eval()


@pytest.fixture
def kt_model():
    return make_kt_model()
