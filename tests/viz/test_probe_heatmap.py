"""The probe heatmap: one panel per score, targets x (hook @ position), clipped colours, offline HTML."""

import math
import re

import numpy as np
import pytest

from ktlens.analysis.probes import ProbeResult
from ktlens.viz.probe_heatmap import probe_heatmap, save_probe_heatmap


def result(target, hook, position, accuracy, control=None, shuffled=None, kind="class", description=""):
    return ProbeResult(
        target=target, hook=hook, position=position, kind=kind, metric="accuracy" if kind == "class" else "r2",
        accuracy=accuracy, baseline=0.25, shuffled_accuracy=shuffled, control_accuracy=control, train_accuracy=1.0,
        n_train=80, n_test=20, n_features=16, n_classes=4 if kind == "class" else None, description=description,
    )


RESULTS = [
    result("u", "blocks.0.hook_resid_post", "-1", 0.875, control=0.3, shuffled=0.2, description="v_p(e)"),
    result("u", "hook_src", "none", 0.5, control=0.25, shuffled=0.25),
    result("re", "blocks.0.hook_resid_post", "-1", -0.4, control=1.3, kind="scalar"),  # R^2 below 0 / above 1
]


def test_panels_rows_columns_and_values():
    fig = probe_heatmap(RESULTS, title="K-theory probes")
    assert fig.layout.title.text == "K-theory probes"
    assert [a.text for a in fig.layout.annotations] == ["trained model", "random-init model", "shuffled labels"]
    trained, control, shuffled = fig.data
    for heat in fig.data:
        assert list(heat.y) == ["u", "re"]
        assert list(heat.x) == ["blocks.0.hook_resid_post @ -1", "hook_src"]  # position "none" is not shown
        assert heat.zmin == 0 and heat.zmax == 1
    z = np.asarray(trained.z, dtype=float)
    assert z[0, 0] == 0.875 and z[0, 1] == 0.5 and z[1, 0] == 0.0  # R^2 = -0.4 drawn as 0
    assert math.isnan(z[1, 1])  # no probe of re at hook_src
    assert trained.text[0][0] == "0.88" and trained.text[1][0] == "-0.40"  # the text keeps the true value
    assert np.asarray(control.z, dtype=float)[1, 0] == 1.0 and control.text[1][0] == "1.30"
    zs = np.asarray(shuffled.z, dtype=float)
    assert zs[0, 0] == 0.2 and math.isnan(zs[1, 0])  # no shuffled score for re
    hover = trained.hovertext[0][0]
    assert "<b>u</b> at blocks.0.hook_resid_post @ -1" in hover
    assert "probe 0.8750 | random 0.3000 | shuffled 0.2000 | baseline 0.2500" in hover and "v_p(e)" in hover
    assert "random -" not in hover and "shuffled -" in trained.hovertext[1][0]
    assert [heat.showscale for heat in fig.data] == [False, False, True]
    assert fig.layout.yaxis.autorange == "reversed"


def test_panels_without_scores_are_left_out():
    fig = probe_heatmap([result("u", "hook_src", "none", 0.5)])
    assert [a.text for a in fig.layout.annotations] == ["trained model"]
    assert len(fig.data) == 1 and fig.layout.title.text == "Linear probes"


def test_no_results_is_an_error():
    with pytest.raises(ValueError, match="no probe results"):
        probe_heatmap([])


def test_saved_html_is_offline_and_holds_the_table(tmp_path):
    path = save_probe_heatmap(RESULTS, tmp_path / "deep" / "probes.html", title="K-theory probes")
    assert path == tmp_path / "deep" / "probes.html"
    html = path.read_text()
    assert not re.search(r"<script[^>]*\bsrc\s*=", html), "a script is loaded from elsewhere"
    assert re.search(r"plotly\.js v\d", html), "plotly.js is not embedded"
    assert "K-theory probes" in html and "blocks.0.hook_resid_post @ -1" in html and "random-init model" in html
