"""Offline HTML for a set of plotly figures: plotly.js is written ONCE beside the pages.

``write_pages(figures, out)`` writes ``out/plotly.min.js`` (the bundle shipped with the plotly package,
~4.8 MB), one ``out/<name>.html`` per figure that loads it by a relative path (the folder opens offline,
from disk, with no network), and ``out/index.html`` linking every page in the folder (pages written by earlier calls too).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path

import plotly.graph_objects as go

__all__ = ["PLOTLY_JS", "write_bundle", "write_pages"]

PLOTLY_JS = "plotly.min.js"

_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<script src="{js}"></script>
<style>body {{ font-family: sans-serif; margin: 12px; }}</style></head>
<body><p><a href="index.html">all figures</a></p>
{body}
</body></html>
"""


def _bundle() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def write_bundle(out: str | Path) -> Path:
    """``out/plotly.min.js`` (written only when missing or different); returns its path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    js = out / PLOTLY_JS
    bundle = _bundle()
    if not js.is_file() or js.stat().st_size != len(bundle.encode()):
        js.write_text(bundle)
    return js


def write_pages(figures: Mapping[str, go.Figure], out: str | Path, title: str = "figures") -> list[Path]:
    """Write each figure as ``out/<name>.html`` sharing one ``out/plotly.min.js``; returns the page paths
    (not the bundle or the index). Names must be plain file stems."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in figures:
        if not name or "/" in name or "\\" in name or name.startswith(".") or name == "index":
            raise ValueError(f"figure name {name!r} is not a plain file name")
    write_bundle(out)
    paths = []
    for name, fig in figures.items():
        body = fig.to_html(full_html=False, include_plotlyjs=False)
        fig_title = fig.layout.title.text or name
        path = out / f"{name}.html"
        path.write_text(_PAGE.format(title=html.escape(fig_title), js=PLOTLY_JS, body=body))
        paths.append(path)
    pages = sorted(p for p in out.glob("*.html") if p.name != "index.html")  # earlier pages in the folder too
    links = "\n".join(f'<li><a href="{p.name}">{html.escape(p.stem)}</a></li>' for p in pages)
    (out / "index.html").write_text(_PAGE.format(title=html.escape(title), js=PLOTLY_JS, body=f"<h1>{html.escape(title)}</h1><ul>{links}</ul>"))
    return paths
