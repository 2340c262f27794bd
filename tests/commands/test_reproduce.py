"""`ktlens reproduce`: both studies with tiny settings on the shipped models into one offline site."""

import json
import re

import pytest

from ktlens.analysis.reproduce import SECTIONS, reproduce
from ktlens.cli import main
from ktlens.viz.report import page_name, write_report

TINY = {
    "ktheory.accuracy": {"n_examples": 40},
    "ktheory.probes": {"n_max": 200, "max_iter": 20},
    "ktheory.saes": {"recon_examples": 40, "spliced_examples": 10},
    "ktheory.features": {"n_examples": 150},
    "ktheory.patching": {"pairs": 1, "ablation_examples": 16, "estimate_kinds": ["src"]},
    "ktheory.attribution": {"examples": 16},
    "ktheory.attention": {"summary_size": 16},
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    first = reproduce(["all"], out, fast=True, settings=TINY, progress=False)
    write_report(first, out)
    second = reproduce(["all"], out, fast=True, settings=TINY, progress=False)
    write_report(second, out)
    return out, first, second


def _numbers(x):
    if isinstance(x, bool):
        return []
    if isinstance(x, (int, float)):
        return [x]
    if isinstance(x, dict):
        return [v for value in x.values() for v in _numbers(value)]
    if isinstance(x, list):
        return [v for value in x for v in _numbers(value)]
    return []


def test_every_page_exists(site):
    out, first, _ = site
    assert (out / "index.html").is_file()
    assert len(first.sections) == len(SECTIONS)
    index = (out / "index.html").read_text()
    for s in first.sections:
        assert (out / page_name(s)).is_file()
        assert page_name(s) in index
        text = (out / page_name(s)).read_text()
        assert "The reference" in text and "Ours, measured now" in text and "Where we differ" in text


def test_plotly_once_and_nothing_from_the_network(site):
    from plotly.offline import get_plotlyjs

    out, _, _ = site
    signature = get_plotlyjs()[:300]
    files = [p for p in out.rglob("*") if p.is_file() and ".cache" not in p.parts]
    holding = [p.name for p in files if signature in p.read_text(errors="ignore")]
    assert holding == ["plotly.min.js"]
    remote = re.compile(r"<(script|link|img|iframe)[^>]*(src|href)\s*=\s*[\"']?\s*(https?:)?//", re.I)
    for p in files:
        if p.suffix == ".html":
            assert not remote.search(p.read_text()), p.name
            assert 'src="plotly.min.js"' in p.read_text() or "Plotly.newPlot" not in p.read_text()
    cv = [p.name for p in files if "CircuitsVis" in p.read_text(errors="ignore") and "var CircuitsVis" in p.read_text(errors="ignore")]
    assert cv == ["ktheory_attention.html"]  # circuitsvis' bundle once, in the page that draws it


def test_summary_has_numbers_for_every_section(site):
    out, first, _ = site
    summary = json.loads((out / "summary.json").read_text())
    for s in first.sections:
        assert _numbers(summary[s["study"]][s["name"]]), s["name"]
    assert summary["miiii"]["accuracy"]["all_exact"] == 1
    assert summary["miiii"]["progress"]["claim_2357_first_holds"] == 1


def test_rerun_computes_nothing(site):
    _, first, second = site
    assert len(first.computed) == len(SECTIONS) and not any(s["cached"] for s in first.sections)
    assert second.computed == [] and all(s["cached"] for s in second.sections)
    assert [s["summary"] for s in first.sections] == [s["summary"] for s in second.sections]


def test_changed_settings_recompute_only_that_section(site):
    out, _, _ = site
    third = reproduce(["miiii"], out, fast=True, settings={"miiii.fourier": {"min_share": 0.3}}, progress=False)
    assert third.computed == ["miiii.fourier"]


def test_bad_input_names_the_value(tmp_path):
    with pytest.raises(ValueError, match="nope"):
        reproduce(["nope"], tmp_path)
    with pytest.raises(ValueError, match="ktheory.nope"):
        reproduce(["ktheory"], tmp_path, settings={"ktheory.nope": {}})
    with pytest.raises(ValueError, match="pairz"):
        reproduce(["ktheory"], tmp_path, settings={"ktheory.patching": {"pairz": 1}})
    assert main(["reproduce", "all", "--threads", "0", "--out", str(tmp_path)]) == 2
