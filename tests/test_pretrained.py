"""The models shipped inside the package load offline and do what their metrics files say.

Labels are recomputed here from the definition (``tests.tasks.ktheory_brute.definition_counts``), not
taken from the package's own tables.
"""

import json

import numpy as np
import pytest

import ktlens
from ktlens.checkpoint import PRETRAINED_DIR
from tests.tasks.ktheory_brute import definition_counts


def test_ktheory_small_predicts_its_domain():
    model = ktlens.load_pretrained("ktheory-small")
    spec = model.task_spec
    assert spec["primes"][:25] == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97]
    assert spec["r_max"] >= 20 and spec["e_max"] >= 20
    rng = np.random.default_rng(0)
    p = rng.choice(spec["primes"], 400)
    r = rng.integers(1, spec["r_max"] + 1, 400)
    e = rng.integers(1, spec["e_max"] + 1, 400)
    predicted = model.predict(p=p.tolist(), r=r.tolist(), e=e.tolist())
    right = [list(pred) == definition_counts(int(a), int(b), int(c)) for pred, a, b, c in zip(predicted, p, r, e)]
    metrics = json.loads((PRETRAINED_DIR / "ktheory-small" / "metrics.json").read_text())
    # the metrics file's domain accuracy (0.965), within the sampling error of 400 triples
    assert np.mean(right) > metrics["domain"]["all"]["ar_exact"] - 0.05


def test_ktheory_base_predicts_its_held_out_split_as_its_metrics_say():
    from ktlens.tasks.ktheory_data import KTheoryGridSpec, build_dataset

    model = ktlens.load_pretrained("ktheory-base")
    assert model.spec.re_max == 400 and model.spec.scratch == ("re", "quotients") and model.spec.n1_from_order
    ds = build_dataset(KTheoryGridSpec.from_dict(model.task_spec["grid"]))
    rows = np.random.default_rng(0).choice(ds.test_idx, 300, replace=False)
    p, r, e = ds.p[rows], ds.r[rows], ds.e[rows]
    assert (r * e <= 400).all()
    predicted = model.predict(p=p.tolist(), r=r.tolist(), e=e.tolist())
    right = [list(pred) == definition_counts(int(a), int(b), int(c)) for pred, a, b, c in zip(predicted, p, r, e)]
    metrics = json.loads((PRETRAINED_DIR / "ktheory-base" / "metrics.json").read_text())
    # the metrics file's held-out accuracy (0.940), within the sampling error of 300 triples
    assert np.mean(right) > metrics["domain"]["test"]["ar_exact"] - 0.05
    with pytest.raises(ValueError, match=r"r\*e=500"):
        model.predict(p=[3], r=[10], e=[50])


def test_ktheory_base_eprime_predicts_its_held_out_split_as_its_metrics_say():
    from ktlens.tasks.ktheory_data import KTheoryGridSpec, build_dataset

    model = ktlens.load_pretrained("ktheory-base-eprime")
    assert model.spec.re_max == 400 and model.spec.scratch == ("re", "quotients", "e_prime_quotients")
    ds = build_dataset(KTheoryGridSpec.from_dict(model.task_spec["grid"]))
    rows = np.random.default_rng(1).choice(ds.test_idx, 300, replace=False)
    p, r, e = ds.p[rows], ds.r[rows], ds.e[rows]
    predicted = model.predict(p=p.tolist(), r=r.tolist(), e=e.tolist())
    right = [list(pred) == definition_counts(int(a), int(b), int(c)) for pred, a, b, c in zip(predicted, p, r, e)]
    metrics = json.loads((PRETRAINED_DIR / "ktheory-base-eprime" / "metrics.json").read_text())
    # the metrics file's held-out accuracy, within the sampling error of 300 triples
    assert np.mean(right) > metrics["domain"]["test"]["ar_exact"] - 0.05


@pytest.mark.parametrize("kwargs, match", [({"p": [4]}, "p=4 "), ({"p": [101]}, "p=101 "), ({"r": [21]}, "r=21 "), ({"e": [0]}, "e=0 ")])
def test_ktheory_small_refuses_values_outside_its_domain(kwargs, match):
    model = ktlens.load_pretrained("ktheory-small")
    args = {"p": [3], "r": [2], "e": [2], **kwargs}
    with pytest.raises(ValueError, match=match):
        model.predict(**args)


def test_shipped_models_are_package_data():
    names = {path.name for path in PRETRAINED_DIR.iterdir() if (path / "config.json").is_file()}
    assert {"ktheory-small", "ktheory-base", "ktheory-base-eprime", "miiii-small"} <= names
    for name in names:
        assert {"config.json", "model.safetensors", "metrics.json"} <= {f.name for f in (PRETRAINED_DIR / name).iterdir()}
        assert (PRETRAINED_DIR / name / "model.safetensors").stat().st_size < 20_000_000


def test_miiii_small_is_exact_on_every_number():
    model = ktlens.load_pretrained("miiii-small")
    assert model.p >= 37
    moduli = [q for q in range(2, model.p) if all(q % d for d in range(2, q))]  # every prime q < p
    assert list(model.moduli) == moduli
    n = np.arange(model.p**2)
    predicted = np.asarray(model.predict(n))
    assert predicted.shape == (len(n), len(moduli))
    assert (predicted == n[:, None] % np.array(moduli)[None, :]).all()
    assert np.asarray(model.predict(40)).tolist() == [[40 % q for q in moduli]]  # an int gives one row


@pytest.mark.parametrize("bad, match", [(-1, "n=-1 "), (37 * 37, "n=1369 "), ([0, 5000], "n=5000 ")])
def test_miiii_small_refuses_numbers_out_of_range(bad, match):
    model = ktlens.load_pretrained("miiii-small")
    with pytest.raises(ValueError, match=match):
        model.predict(bad)
