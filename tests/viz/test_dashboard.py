"""Offline dashboards: no network URL, plotly.js once, every unit page names its label."""

import re

import pytest

from ktlens.analysis.features import analyze_units, neuron_units
from ktlens.models import KTheoryTransformer, RemaindersTransformer
from ktlens.tasks.remainders import RemaindersSpec
from ktlens.viz.dashboard import PLOTLY_ASSET, write_dashboard


@pytest.mark.parametrize("kind", ["ktheory", "miiii"])
def test_dashboard_is_offline_with_one_plotly_and_labelled_pages(tmp_path, kind):
    if kind == "ktheory":
        model = KTheoryTransformer.create({"primes": [2, 3], "r_max": 2, "e_max": 4, "label_order": "ascending"}, d_model=16, n_heads=2, d_mlp=8, n_layers=1).eval()
    else:
        model = RemaindersTransformer.create(RemaindersSpec(p=5), d_model=16, n_heads=2, d_mlp=8, n_layers=1).eval()
    report = analyze_units(model, neuron_units(model, "blocks.0.mlp.hook_post"), progress=False)
    index = write_dashboard(report, tmp_path, model, progress=False)
    pages = sorted(tmp_path.rglob("*.html"))
    assert index in pages and len(pages) == 1 + 8
    bundles = [f for f in tmp_path.rglob("*") if f.is_file() and "plotly.js v" in f.read_text(errors="ignore")[:2000]]
    assert bundles == [tmp_path / PLOTLY_ASSET]
    for page in pages:
        text = page.read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), page  # no network URL
        assert "plotly.js v" not in text and text.count("assets/plotly.min.js") == 1
    for u in range(8):
        text = (tmp_path / "units" / f"unit_{u:05d}.html").read_text()
        label = report.label(u)
        assert label.replace("<", "&lt;").replace(">", "&gt;") in text
        assert "Label:" in text
    assert all(f"units/unit_{u:05d}.html" in index.read_text() for u in range(8))
