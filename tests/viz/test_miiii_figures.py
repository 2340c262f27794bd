"""MIIII figures: what each one draws (checked against independent computations), and offline HTML."""

import json
import math
import re

import numpy as np
import pytest
import torch

from ktlens.analysis import fourier as fa
from ktlens.models.encoder import RemaindersTransformer
from ktlens.tasks.remainders import RemaindersSpec
from ktlens.viz import miiii_figures as mf

P = 7  # tasks q = 2, 3, 5


@pytest.fixture(scope="module")
def model():
    spec = RemaindersSpec(p=P)
    return RemaindersTransformer.create(spec, d_model=16, n_heads=2, d_mlp=24, normalization="none").eval()


def history():
    """q=2 exact from step 20, q=5 from step 30, q=3 never."""
    acc = {20: {2: 1.0, 3: 0.5, 5: 0.9}, 10: {2: 0.6, 3: 0.4, 5: 0.5}, 30: {2: 1.0, 3: 0.7, 5: 1.0}}
    return [
        {"step": s, **{f"test_acc_q{q}": a for q, a in acc[s].items()}, "train_acc_mean": s / 30}
        for s in (10, 20, 30)
    ]


def assert_offline(page) -> None:
    """No script is loaded from a URL (plotly's CDN or any other): the page loads the one plotly.js
    written beside it, by a relative path, and that file is plotly.js."""
    html = page.read_text()
    srcs = re.findall(r"<script[^>]*\bsrc\s*=\s*\"([^\"]*)\"", html)
    assert srcs == ["plotly.min.js"], srcs
    bundle = page.parent / "plotly.min.js"
    assert re.search(r"plotly\.js v\d", bundle.read_text()[:2000]), "plotly.js is not beside the page"


def test_first_full_steps():
    assert mf.first_full_steps(history(), [2, 3, 5]) == {2: 20, 3: None, 5: 30}
    assert mf.first_full_steps(history(), [2], split="train") == {2: None}


def test_training_curves_draw_each_task_in_order_of_exactness():
    fig = mf.training_curves(history(), [2, 3, 5])
    lines = {t.name: t for t in fig.data}
    assert set(lines) == {"q=2 (#1, exact at step 20)", "q=3 (#3, never exact)", "q=5 (#2, exact at step 30)", "train mean"}
    q5 = lines["q=5 (#2, exact at step 30)"]
    assert list(q5.x) == [10, 20, 30] and list(q5.y) == [0.5, 0.9, 1.0] and q5.legendrank == 2
    assert list(lines["train mean"].y) == pytest.approx([1 / 3, 2 / 3, 1.0]) and lines["train mean"].line.dash == "dash"
    assert fig.layout.title.text == "Test accuracy per task over training"
    assert fig.layout.xaxis.title.text == "step" and fig.layout.yaxis.title.text == "test accuracy"
    assert mf.training_curves(history(), [2], title="run 7").layout.title.text == "run 7"


def test_first_exact_steps_bars():
    fig = mf.first_exact_steps(history(), [2, 3, 5])
    (bar,) = fig.data
    assert list(bar.x) == ["2", "3", "5"]
    assert bar.y[0] == 20 and math.isnan(bar.y[1]) and bar.y[2] == 30
    assert fig.layout.xaxis.title.text == "q" and fig.layout.yaxis.title.text == "step"
    assert "100% test accuracy" in fig.layout.title.text


def test_embedding_fourier_draws_the_embedding_in_the_basis(model):
    fig = mf.embedding_fourier(model)
    const, heat, bars = fig.data
    W_E = model.embed.W_E.detach().double().numpy()[:P]
    # independent basis: the DFT of each embedding column, as cos/sin coefficients
    x = np.arange(P)
    cos1 = np.cos(2 * np.pi * x / P) * math.sqrt(2 / P)
    assert np.allclose(np.asarray(const.z)[0], np.abs(W_E.sum(0) / math.sqrt(P)))  # the constant, apart
    assert np.allclose(np.asarray(heat.z)[0], np.abs(cos1 @ W_E))
    assert list(const.y) == ["const"] and list(heat.y) == ["cos 1", "sin 1", "cos 2", "sin 2", "cos 3", "sin 3"]
    assert heat.showscale is not False and heat.colorbar.title.text == "|coefficient|"
    norms = np.asarray(bars.y)
    assert list(bars.x) == [0, 1, 2, 3]
    assert norms[0] == pytest.approx(np.linalg.norm(W_E.sum(0) / math.sqrt(P)))
    assert np.sum(norms**2) == pytest.approx(np.sum(W_E**2))  # Parseval
    assert bars.marker.color[0] == "lightgray"
    assert "no frequency stands out" in fig.layout.title.text  # a random embedding: nothing found


def test_embedding_fourier_title_names_a_planted_frequency():
    spec = RemaindersSpec(p=37)
    model = RemaindersTransformer.create(spec, d_model=32, n_heads=2, d_mlp=24, normalization="none").eval()
    B = fa.fourier_basis(37)
    rng = np.random.default_rng(0)
    with torch.no_grad():
        model.embed.W_E[:37] = torch.as_tensor(np.outer(B[2 * 9 - 1], rng.normal(size=32)) * 10 + 0.01 * rng.normal(size=(37, 32)), dtype=torch.float32)
    fig = mf.embedding_fourier(model)
    assert "frequencies [9] stand out" in fig.layout.title.text
    assert fig.data[2].marker.color[9] == "crimson"


def test_neuron_grids_figure_shows_the_most_varying_neurons(model):
    grids = fa.neuron_grids(model)
    fig = mf.neuron_grids_figure(model, n_neurons=3, grids=grids)
    variances = [grids[i].var() for i in range(len(grids))]
    top = sorted(range(len(grids)), key=lambda i: -variances[i])[:3]
    assert len(fig.data) == 6
    for r, i in enumerate(top):
        assert np.allclose(np.asarray(fig.data[2 * r].z), grids[i])
        spectrum = np.asarray(fig.data[2 * r + 1].z)
        assert spectrum.shape == (4, 4) and spectrum[0, 0] == 0
        # Parseval over the grid, the mean (shown by the activation grid) left out of the spectrum
        assert np.sum(spectrum**2) == pytest.approx(np.sum((grids[i] - grids[i].mean()) ** 2))
        assert fig.data[2 * r].colorbar.title.text == "act" and fig.data[2 * r + 1].colorbar.title.text == "norm"
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0].startswith(f"neuron {top[0]}: activation (writes most to q=") and titles[1] == f"neuron {top[0]}: spectrum (mean removed)"
    assert fig.layout.title.text == f"MLP neurons at '=' over the digit grid (p={P})"


def test_task_spectra_marks_predicted_and_found(model):
    from ktlens.analysis import miiii_frequencies as mfreq

    fig = mf.task_spectra(model)
    heats = [t for t in fig.data if t.type == "heatmap"]
    assert len(heats) == 4  # per axis: frequency 0 apart, then k = 1 .. K
    spectra = mfreq.task_spectra(model)
    marg = spectra.readout.sum(2)  # x0 axis
    share = marg / marg.sum(1, keepdims=True)
    assert np.allclose(np.asarray(heats[0].z)[:, 0], share[:, 0]) and np.allclose(np.asarray(heats[1].z), share[:, 1:])
    assert list(heats[1].y) == ["q=2", "q=3", "q=5"] and list(heats[1].x) == [1, 2, 3]
    predicted = [t for t in fig.data if t.name and t.name.startswith("predicted")]
    # x0 axis: every task's predicted frequencies, e.g. q = 2 at p = 7 sits at 3.5 -> 3
    pts = set(zip(predicted[0].x, predicted[0].y))
    assert ("q=2" and (3, "q=2") in pts) and all((k, f"q={q}") in pts for q in (2, 3, 5) for k in mfreq.predicted_frequencies(P, q).x0)
    assert "found frequencies (x) are predicted ones (o)" in fig.layout.title.text


def test_ablation_figure_bars(model):
    from ktlens.analysis.miiii_analysis import analyse

    rows = analyse(model, where=("resid",))
    fig = mf.ablation_figure(rows)
    acc = {t.name: list(t.y) for t in fig.data if t.xaxis == "x"}
    assert acc["as trained"] == [r.full_accuracy for r in rows]
    assert acc["restricted to the characters"] == [r.restricted_accuracy for r in rows]
    assert acc["characters excluded"] == [r.excluded_accuracy for r in rows]
    assert fig.layout.title.text.startswith("Fourier ablation at the readout: restricted accuracy >= ")


def test_key_frequency_timeline():
    flat = [9.0] + [1.0] * 18
    peaked = [9.0] + [1.0] * 6 + [40.0] + [1.0] * 11  # frequency 7 stands out
    rows = [{"step": 0, "norms": flat, "n_active": 0}, {"step": 50, "norms": peaked, "n_active": 5}]
    fig = mf.key_frequency_timeline(rows)
    heat, line = fig.data
    assert np.array_equal(np.asarray(heat.z), np.array([flat[1:], peaked[1:]]).T)  # constant dropped
    assert list(heat.x) == [0, 50] and list(heat.y) == list(range(1, 19))
    assert list(line.y) == pytest.approx([0.0, fa.gini(peaked[1:])])
    assert fig.layout.yaxis.title.text == "frequency k (constant left out)" and fig.layout.xaxis2.title.text == "step"
    assert fig.layout.title.text.endswith("frequencies [7] stand out at the end")


def test_polar_figure_points():
    fig = mf.polar_figure(P, [2, 3])
    traces = {t.name: t for t in fig.data}
    assert set(traces) == {"all n", "2 | n", "3 | n", "prime"}
    assert len(traces["all n"].x) == P * P
    assert len(traces["2 | n"].x) == len([n for n in range(P * P) if n % 2 == 0])
    assert len(traces["3 | n"].x) == len([n for n in range(P * P) if n % 3 == 0])
    primes = [n for n in range(2, P * P) if all(n % d for d in range(2, n))]
    assert np.allclose(traces["prime"].x, [n * math.cos(n) for n in primes])
    assert np.allclose(traces["prime"].y, [n * math.sin(n) for n in primes])
    assert traces["2 | n"].visible is True and traces["3 | n"].visible == "legendonly"
    assert fig.layout.title.text == f"n < {P}^2 at polar coordinates (r, theta) = (n, n)"


def test_find_metrics(tmp_path):
    assert mf.find_metrics(None) is None
    assert mf.find_metrics(tmp_path / "run" / "model") is None
    (tmp_path / "run" / "model").mkdir(parents=True)
    (tmp_path / "run" / "metrics.json").write_text(json.dumps({"from": "run"}))
    assert mf.find_metrics(tmp_path / "run" / "model") == {"from": "run"}
    (tmp_path / "run" / "model" / "metrics.json").write_text(json.dumps({"from": "model"}))
    assert mf.find_metrics(tmp_path / "run" / "model") == {"from": "model"}


def test_write_figures_offline_html(model, tmp_path):
    model_dir = tmp_path / "run" / "model"
    model_dir.mkdir(parents=True)
    timeline = [{"step": 0, "norms": [1.0, 2.0, 3.0, 4.0], "n_active": 1}]
    (model_dir / "metrics.json").write_text(json.dumps({"history": history(), "fourier_timeline": timeline}))
    paths = mf.write_figures(model, tmp_path / "figs", model_dir=model_dir)
    names = sorted(p.name for p in paths)
    assert names == sorted(
        f"{n}.html"
        for n in ("training_curves", "first_exact_steps", "embedding_fourier", "neuron_grids", "task_spectra", "key_frequency_timeline", "polar")
    )
    for path in paths:
        assert_offline(path)
    assert sum(1 for p in (tmp_path / "figs").iterdir() if p.stat().st_size > 1_000_000) == 1  # one plotly.js
    assert "Test accuracy per task over training" in (tmp_path / "figs" / "training_curves.html").read_text()
    # without metrics: only the model's own figures
    bare = mf.write_figures(model, tmp_path / "bare")
    assert sorted(p.name for p in bare) == ["embedding_fourier.html", "neuron_grids.html", "polar.html", "task_spectra.html"]


def test_progress_figure_draws_each_measure_and_states_the_orders():
    task = lambda v: {"accuracy": v, "loss": 1 - v, "restricted_loss": 0.5 * (1 - v) + 1e-3, "excluded_loss": 2.0, "gini": v / 2}  # noqa: E731
    measures = {
        "rows": [{"step": s, "weight_norm": 10.0 - s / 100, "gini_embed": s / 1000, "tasks": {"2": task(s / 200), "3": task(s / 400)}}
                 for s in (0, 100, 200)],
        "exact_steps": {"2": 200, "3": None}, "order": [2, 3], "first_exact_steps": {"2": 100, "3": None}, "first_order": [2, 3],
    }
    fig = mf.progress_figure(measures)
    restricted = [t for t in fig.data if t.xaxis == "x" and t.name.startswith("q=2")][0]
    assert list(restricted.x) == [0, 100, 200] and list(restricted.y) == pytest.approx([0.501, 0.251, 0.001])
    assert restricted.name == "q=2 (exact from 200)"
    assert [t.name for t in fig.data if t.xaxis == "x"][1] == "q=3 (not exact)"
    assert "first exact: 2, 3" in fig.layout.title.text and "exact for good (after the lr-6e-3 spikes): 2, 3" in fig.layout.title.text
    assert fig.layout.yaxis.type == "log"
