"""Attention pages: offline (no resource loaded from the network), labelled p / r / e, circuitsvis once."""

import re

import numpy as np
import pytest

from ktlens.cli import main
from ktlens.viz.attention import cross_attention_figure, self_attention_html, write_attention_page

# markup that would fetch something; inside the embedded bundles, URLs are strings (namespaces, links
# the library would show), so the page is checked for scripts with a src, module imports from a URL,
# and fetching attributes outside the scripts
NETWORK_LOAD = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?https?://""", re.I)


def loads_from_network(page: str) -> bool:
    script_tags = re.findall(r"<script([^>]*)>", page, re.I)
    outside = re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S | re.I)
    module_import = re.search(r"""import[^;'"]{0,200}from\s*["'](?:https?:)?//""", page)
    return any("src" in attrs for attrs in script_tags) or bool(NETWORK_LOAD.search(outside)) or bool(module_import)


def test_ktheory_attention_page_is_offline_and_labelled(tmp_path):
    assert main(["attention", "--model", "ktheory-small", "--input", "5,4,9", "--summary-size", "16", "--out", str(tmp_path)]) == 0
    page = (tmp_path / "attention.html").read_text()
    assert not loads_from_network(page)
    assert loads_from_network('<script src="https://unpkg.com/x.js"></script>')  # the check can fail
    assert "unpkg.com" not in page and "cdn.plot.ly/plotly" not in page
    assert page.count("CircuitsVis.render(") == 2 and page.count("var CircuitsVis") <= 1  # bundle once, a view per layer
    for label in ("p=5", "r=4", "e=9", "attention to p", "attention to r", "attention to e", "L1C3", "n_9=0"):
        assert label in page


def test_miiii_attention_from_equals(tmp_path):
    assert main(["attention", "--model", "miiii-small", "--input", "100", "--out", str(tmp_path)]) == 0
    page = (tmp_path / "attention.html").read_text()
    assert not loads_from_network(page) and "CircuitsVis" not in page
    assert "x0=2" in page and "x1=26" in page and "from '='" in page


def test_views_check_their_shapes(tmp_path):
    with pytest.raises(ValueError, match="3 tokens"):
        self_attention_html(np.zeros((2, 3, 4)), ["a", "b", "c"], ["H0", "H1"])
    fig = cross_attention_figure(np.full((1, 2, 4, 3), 1 / 3), ["0", "1", "2", "3"], ["p=2", "r=1", "e=3"], "t")
    path = write_attention_page(tmp_path / "x.html", "t", [("cross", fig)])
    assert "p=2" in path.read_text() and "CircuitsVis" not in path.read_text()
