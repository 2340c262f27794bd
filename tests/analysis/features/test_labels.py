"""Labels on a tiny synthetic domain: a planted unit is found at F1 = 1, a random unit gets no label."""

import numpy as np
import torch

from ktlens.analysis.features.coverage import coverage, periodic_units
from ktlens.analysis.features.hypotheses import EventSet, Hypothesis
from ktlens.analysis.features.labels import LabelConfig, score_units


def _domain(seed=0, N=400, K=3):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 5, size=N)  # a class variable with 5 values
    y = rng.integers(0, 4, size=N)
    hyps, cols = [], []
    for name, v in (("x", x), ("y", y)):
        for val in range(int(v.max()) + 1):
            hyps.append(Hypothesis(name, "==", val))
            cols.append(np.repeat((v == val)[:, None], K, axis=1))
    return x, y, EventSet(hyps, np.stack(cols, axis=-1))


def test_planted_unit_is_labelled_with_its_event_at_f1_one():
    x, y, events = _domain()
    N, K = len(x), 3
    acts = torch.zeros(N, K, 3)
    acts[:, 1, 0] = torch.as_tensor((x == 2).astype(np.float32)) * 3.0  # fires exactly on x == 2 at position 1
    fires = torch.as_tensor((y == 3).astype(np.float32))[:, None]
    acts[:, :, 1] = fires * (torch.rand(N, K, generator=torch.Generator().manual_seed(0)) + 0.5)
    scores = score_units(acts, events, LabelConfig(), progress=False)
    best = scores.candidate(scores.best[0, 0])
    assert (best.variable, best.relation, best.value, best.position) == ("x", "==", 2, 1)
    assert scores.f1[0, 0] == 1.0 and scores.precision[0, 0] == 1.0 and scores.recall[0, 0] == 1.0
    assert scores.labelled[0]
    best1 = scores.candidate(scores.best[1, 0])
    assert (best1.variable, best1.value, best1.position) == ("y", 3, None) and scores.f1[1, 0] == 1.0
    assert not scores.labelled[2]  # never fires
    cov = coverage(scores)
    assert cov.best_f1[cov.events.index("x == 2")] == 1.0 and cov.unit[cov.events.index("x == 2")] == 0


def test_random_unit_gets_no_label_above_chance():
    x, y, events = _domain(seed=1, N=2000)
    gen = torch.Generator().manual_seed(0)
    acts = torch.relu(torch.randn(len(x), 3, 20, generator=gen))  # independent of x and y
    scores = score_units(acts, events, LabelConfig(), progress=False)
    assert not scores.labelled.any()
    # what chance means here: an independent unit's held-out F1 is close to the chance F1
    ok = scores.best[:, 0] >= 0
    assert np.all(scores.f1[ok, 0] - scores.chance[ok, 0] < 0.2)


def test_periodic_unit_gets_its_frequency_and_task():
    p, moduli = 11, [2, 3, 5, 7]
    n = np.arange(p * p)
    grids = np.stack([np.cos(2 * np.pi * 3 * (n % p) / p), (n % 5 == 0).astype(float), np.zeros(p * p)]).reshape(3, p, p)
    out = periodic_units(grids, moduli)
    assert out.periodic[0] and tuple(out.frequency[0]) == (0, 3)
    assert out.task_q[1] == 5 and out.eta2[1] > 0.99  # constant within each residue class of 5
    assert not out.periodic[2]


def test_top_and_quantile_rows_match_a_sort():
    from ktlens.analysis.features.stats import quantile_rows, top_rows

    rng = np.random.default_rng(3)
    flat = np.maximum(rng.normal(size=60), 0).astype(np.float32)
    got = top_rows(flat, 3, 5)
    want = np.argsort(-flat, kind="stable")[:5]
    assert [i * 3 + k for i, k, _ in got] == list(want)
    for _, rows in quantile_rows(flat, 3):
        assert all(a > 0 and flat[i * 3 + k] == a for i, k, a in rows)


def test_event_best_finds_the_planted_unit_anywhere_and_at_its_position():
    from ktlens.analysis.features.coverage import event_best

    x, y, events = _domain()
    N, K = len(x), 3
    acts = torch.zeros(N, K, 2)
    acts[:, 1, 1] = torch.as_tensor((x == 2).astype(np.float32))  # unit 1 fires exactly on x == 2 at position 1
    scores = score_units(acts, events, LabelConfig(), progress=False)
    best = event_best(scores, "x == 2")
    assert best["unit"] == 1 and best["f1"] == 1.0
    at_1 = event_best(scores, "x == 2", [1])
    assert at_1 == {"f1": 1.0, "unit": 1, "position": 1}
    assert event_best(scores, "x == 2", [0, 2])["f1"] < 1.0  # elsewhere the unit is silent
    import pytest

    with pytest.raises(ValueError, match="x == 9"):
        event_best(scores, "x == 9")
