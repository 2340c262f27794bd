"""Units scored in chunks give exactly what scoring them all at once gives (memory is the only difference)."""

import numpy as np
import torch

from ktlens.analysis.features import stats
from ktlens.analysis.features.hypotheses import EventSet, Hypothesis, ScalarSet
from ktlens.analysis.features.labels import LabelConfig, correlations, score_units, units_per_chunk


def _problem(N=300, K=3, U=11, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, size=(N, K))
    hyps = [Hypothesis("x", "==", v) for v in range(4)]
    events = EventSet(hyps, np.stack([x == v for v in range(4)], axis=-1))
    gen = torch.Generator().manual_seed(seed)
    acts = torch.relu(torch.randn(N, K, U, generator=gen))
    acts[..., 3] = torch.as_tensor(x == 2, dtype=torch.float32) * 2.0  # a planted unit
    acts[..., 7] = torch.as_tensor(x == 2, dtype=torch.float32) * 2.0  # its twin: events keep the lower unit
    acts[..., 9] = 0.0  # a dead unit
    return acts, events, x


def test_score_units_in_chunks_equals_all_at_once():
    acts, events, _ = _problem()
    whole = score_units(acts, events, LabelConfig(), progress=False, unit_chunk=acts.shape[-1])
    for chunk in (1, 3, 4):
        part = score_units(acts, events, LabelConfig(), progress=False, unit_chunk=chunk)
        for name in ("best", "threshold", "precision", "recall", "f1", "chance", "labelled", "event_f1", "event_unit"):
            np.testing.assert_array_equal(getattr(part, name), getattr(whole, name), err_msg=f"{name}, chunk {chunk}")
    h = [x.text() for x in whole.hypotheses].index("x == 2")
    assert whole.event_unit[h] == 3 and whole.event_f1[h] == 1.0  # the planted unit, not its twin
    assert whole.labelled[3] and whole.f1[3, 0] == 1.0


def test_statistics_in_chunks_equal_the_direct_formulas(monkeypatch):
    acts, _, x = _problem()
    monkeypatch.setattr(stats, "CHUNK_BYTES", 2 * 4 * acts.shape[0] * acts.shape[1])  # two units per chunk
    fired = (acts > 0).double()
    np.testing.assert_allclose(stats.density(acts), fired.mean((0, 1)).numpy())
    counts = fired.sum(0).T
    np.testing.assert_allclose(stats.position_share(acts), (counts / counts.sum(1, keepdim=True).clamp(min=1)).numpy())
    hist, edges = stats.histograms(acts, bins=5)
    for u in (0, 3, 10):
        col = acts[..., u].reshape(-1).numpy()
        expected, _ = np.histogram(col[col > 0], bins=edges[u]) if (col > 0).any() else (np.zeros(5), None)
        np.testing.assert_array_equal(hist[u], expected)
    assert hist[9].sum() == 0


def test_correlations_match_numpy_pearson():
    acts, _, x = _problem()
    z = np.stack([x, (x == 2).astype(float), np.ones_like(x)], axis=-1).astype(np.float64)
    corr = correlations(acts, ScalarSet(["x", "x==2", "const"], z))
    flat = acts.reshape(-1, acts.shape[-1]).double().numpy()
    for u in (0, 3, 5):
        assert abs(corr[u, 0] - np.corrcoef(flat[:, u], x.reshape(-1))[0, 1]) < 1e-9
    assert abs(corr[3, 1] - 1.0) < 1e-9
    assert np.all(corr[:, 2] == 0) and np.all(corr[9] == 0)  # a constant variable, a dead unit


def test_units_per_chunk_fits_the_budget():
    assert units_per_chunk(1000, 50, budget_bytes=4000 * 10) == 10
    assert units_per_chunk(10**9, 50) == 1 and units_per_chunk(10, 50) == 50
