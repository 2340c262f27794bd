"""The offline report site of `ktlens reproduce`: ``DIR/index.html`` and one page per section.

Pages load plotly.js from one shared ``DIR/plotly.min.js`` (`ktlens.viz.html.write_bundle`); circuitsvis'
bundled JavaScript is inlined once, in the one page that draws a self-attention view. Nothing is loaded
from the network. Each page shows the reference's claim, what we measured now and where we differ,
then the section's tables and figures (`ktlens.analysis.reproduce.figures` kinds).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go

from ktlens.viz.html import PLOTLY_JS, write_bundle

__all__ = ["write_report", "figure_of", "page_name"]

STUDY_TITLES = {"ktheory": "K-theory of truncated polynomial rings", "miiii": "Multi-task modular arithmetic (MIIII)"}

_STYLE = """
body { font-family: sans-serif; margin: 18px 28px; max-width: 1360px; color: #222; }
nav { font-size: 14px; margin-bottom: 8px; } nav a { margin-right: 12px; }
.box { border-left: 5px solid #888; padding: 6px 12px; margin: 10px 0; background: #f7f7f7; }
.claim { border-color: #c17d11; } .ours { border-color: #3465a4; } .differs { border-color: #cc0000; }
.box b { display: block; font-size: 13px; text-transform: uppercase; color: #555; margin-bottom: 2px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #eee; } .meta { color: #666; font-size: 12px; }
"""


def page_name(section: Mapping[str, Any]) -> str:
    return f"{section['study']}_{section['name']}.html"


def _page(title: str, body: str, plotly: bool, extra_head: str = "") -> str:
    js = f'<script src="{PLOTLY_JS}"></script>' if plotly else ""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{js}"
            f"<style>{_STYLE}</style>{extra_head}</head><body>{body}</body></html>\n")


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:,.1f}"
    if v is None:
        return "-"
    text = html.escape(str(v))
    parts = text.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _table(t: Mapping[str, Any]) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in t["columns"])
    rows = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in t["rows"])
    return f"<h3>{html.escape(t['title'])}</h3><table><tr>{head}</tr>{rows}</table>"


def _layout(fig: go.Figure, spec: Mapping[str, Any], height: int = 460) -> go.Figure:
    fig.update_layout(title={"text": spec["title"], "font": {"size": 15}}, height=spec.get("height") or height,
                      margin={"l": 70, "r": 30, "t": 60, "b": 60}, template="plotly_white")
    fig.update_xaxes(title_text=spec.get("xaxis"))
    fig.update_yaxes(title_text=spec.get("yaxis"))
    return fig


def figure_of(spec: Mapping[str, Any]) -> go.Figure | str:
    """A plotly figure (or, for ``attention_heads``, an HTML snippet) for one figure spec."""
    kind = spec["kind"]
    if kind == "heatmap":
        z = np.array([[np.nan if v is None else v for v in row] for row in spec["z"]], dtype=float)
        text = np.round(z, 2).astype(str) if spec.get("text") else None
        fig = go.Figure(go.Heatmap(z=z, x=[str(x) for x in spec["x"]] if spec.get("text") else spec["x"], y=[str(y) for y in spec["y"]],
                                   zmin=spec.get("zmin"), zmax=spec.get("zmax"), colorscale=spec.get("colorscale", "Viridis"),
                                   colorbar={"title": {"text": spec["colorbar"]}}, text=text,
                                   texttemplate="%{text}" if text is not None else None))
        for m in spec.get("markers", []):
            fig.add_trace(go.Scatter(x=m["x"], y=[str(y) for y in m["y"]], mode="markers", name=m["name"],
                                     marker={"symbol": m.get("symbol", "circle"), "size": 9, "color": m.get("color", "black"),
                                             "line": {"width": 1.5, "color": m.get("color", "black")}}))
        fig.update_yaxes(autorange="reversed")
        if spec.get("markers"):
            fig.update_layout(legend={"orientation": "h", "y": -0.18})
        return _layout(fig, spec, 300 + 28 * len(spec["y"]) if len(spec["y"]) < 20 else 700)
    if kind in ("bars", "lines"):
        fig = go.Figure()
        x = [str(v) for v in spec["x"]] if kind == "bars" else spec["x"]
        for name, ys in spec["series"].items():
            if kind == "bars":
                fig.add_trace(go.Bar(x=x, y=ys, name=name))
            else:
                fig.add_trace(go.Scatter(x=x, y=ys, name=name, mode="lines+markers"))
        if spec.get("reference") is not None:
            fig.add_hline(y=spec["reference"], line_dash="dash", line_color="#c17d11",
                          annotation_text=spec.get("reference_name", "reference"), annotation_position="top left")
        if spec.get("yrange"):
            fig.update_yaxes(range=spec["yrange"])
        if spec.get("log"):
            fig.update_yaxes(type="log")
        fig.update_layout(barmode="group", showlegend=len(spec["series"]) > 1)
        return _layout(fig, spec)
    if kind == "attention_heads":
        from ktlens.viz.attention import self_attention_html

        return self_attention_html(np.asarray(spec["pattern"]), spec["tokens"], spec["heads"])
    if kind == "cross_attention":
        from ktlens.viz.attention import cross_attention_figure

        return cross_attention_figure(np.asarray(spec["pattern"]), spec["rows"], spec["source"], spec["title"])
    if kind == "miiii_progress":
        from ktlens.viz.miiii_figures import progress_figure

        return progress_figure(spec["measures"])
    raise ValueError(f"unknown figure kind {kind!r}")


def _nav(sections: Sequence[Mapping[str, Any]], i: int) -> str:
    links = ['<a href="index.html">index</a>']
    if i > 0:
        links.append(f'<a href="{page_name(sections[i - 1])}">&larr; {html.escape(sections[i - 1]["title"])}</a>')
    if i + 1 < len(sections):
        links.append(f'<a href="{page_name(sections[i + 1])}">{html.escape(sections[i + 1]["title"])} &rarr;</a>')
    return "<nav>" + "".join(links) + "</nav>"


def _boxes(s: Mapping[str, Any]) -> str:
    out = []
    for cls, label in (("claim", "The reference"), ("ours", "Ours, measured now"), ("differs", "Where we differ, and why")):
        if s.get(cls):
            out.append(f"<div class='box {cls}'><b>{label}</b>{html.escape(s[cls])}</div>")
    return "".join(out)


def _section_page(sections: Sequence[Mapping[str, Any]], i: int) -> tuple[str, bool]:
    s = sections[i]
    parts = [_nav(sections, i), f"<h1>{html.escape(STUDY_TITLES.get(s['study'], s['study']))}: {html.escape(s['title'])}</h1>",
             f"<p class='meta'>model <code>{html.escape(s['model'])}</code>; settings {html.escape(json.dumps(s['settings']))}; "
             f"computed in {s.get('seconds', 0):.1f} s{' (read from the cache in this run)' if s.get('cached') else ''}</p>",
             _boxes(s)]
    parts += [_table(t) for t in s.get("tables", [])]
    figs = [figure_of(f) for f in s.get("figures", [])]
    needs_cv = any(isinstance(f, str) for f in figs)
    if needs_cv:
        from ktlens.viz.attention import circuitsvis_script

        parts.append(circuitsvis_script())
    for spec, fig in zip(s.get("figures", []), figs):
        if isinstance(fig, str):
            parts.append(f"<h3>{html.escape(spec['title'])}</h3>{fig}")
        else:
            parts.append(fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False}))
    has_plotly = any(not isinstance(f, str) for f in figs)
    return _page(s["title"], "\n".join(parts), has_plotly), has_plotly


def _index(report: Any) -> str:
    parts = ["<h1>ktlens reproduce: both studies, the reference's claims beside ours</h1>",
             f"<p class='meta'>{'--fast (small settings; figures are estimates on samples)' if report.fast else 'full settings'}; "
             f"models: {html.escape(', '.join(f'{k}: {v}' for k, v in report.models.items()))}; "
             f"{len(report.sections) - len(report.computed)} of {len(report.sections)} sections from the cache; "
             "numbers in <a href='summary.json'>summary.json</a>. Everything here opens offline.</p>"]
    for study in report.studies:
        rows = [s for s in report.sections if s["study"] == study]
        parts.append(f"<h2>{html.escape(STUDY_TITLES.get(study, study))}</h2><table><tr><th>section</th><th>the reference</th>"
                     "<th>ours, measured now</th><th>where we differ</th></tr>")
        for s in rows:
            parts.append(f"<tr><td><a href='{page_name(s)}'>{html.escape(s['title'])}</a></td><td>{html.escape(s.get('claim', ''))}</td>"
                         f"<td>{html.escape(s.get('ours', ''))}</td><td>{html.escape(s.get('differs', ''))}</td></tr>")
        parts.append("</table>")
    return _page("ktlens reproduce", "\n".join(parts), plotly=False)


def write_report(report: Any, out: str | Path) -> Path:
    """Write the site for a `ktlens.analysis.reproduce.Report` into ``out``; returns ``out/index.html``.
    Also writes ``out/summary.json`` (every section's numbers)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    any_plotly = False
    for i in range(len(report.sections)):
        text, has_plotly = _section_page(report.sections, i)
        any_plotly |= has_plotly
        (out / page_name(report.sections[i])).write_text(text, encoding="utf-8")
    if any_plotly:
        write_bundle(out)
    (out / "summary.json").write_text(json.dumps(report.summary(), indent=1) + "\n", encoding="utf-8")
    index = out / "index.html"
    index.write_text(_index(report), encoding="utf-8")
    return index
