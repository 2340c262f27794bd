"""Attention views on one offline page.

- K-theory decoder self-attention (causal, square): circuitsvis' `AttentionHeads`, its bundled
  JavaScript (`circuitsvis/dist/cdn/iife.js`) embedded once per page as a plain script (circuitsvis
  itself loads it from a CDN, or inlines it again for every figure).
- K-theory cross-attention (decoder positions x source p / r / e, not square: circuitsvis cannot draw
  it): one labelled plotly heatmap per layer and head, and a summary of the mean attention to p, r, e per
  head and decoder position over a batch.
- MIIII: the attention from '=' to x0, x1 and '=' per layer and head (bidirectional: not a causal view).
Plotly's JavaScript is embedded once too: the page loads nothing from the network.
"""

from __future__ import annotations

import html
import json
import uuid
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from jaxtyping import Float
from plotly.subplots import make_subplots

__all__ = ["circuitsvis_script", "self_attention_html", "cross_attention_figure", "cross_attention_summary_figure",
           "miiii_attention_figure", "write_attention_page", "SOURCE_NAMES"]

SOURCE_NAMES = ("p", "r", "e")


def circuitsvis_script() -> str:
    """circuitsvis' bundled JavaScript as one plain `<script>` (defines the global `CircuitsVis`)."""
    import circuitsvis

    source = (Path(circuitsvis.__file__).parent / "dist" / "cdn" / "iife.js").read_text(encoding="utf-8")
    return "<script>" + source.replace("</script>", "<\\/script>") + "</script>"


def self_attention_html(pattern: Float[np.ndarray, "head query key"], tokens: list[str], head_names: list[str]) -> str:
    """One circuitsvis `AttentionHeads` view (needs `circuitsvis_script()` earlier on the page)."""
    pattern = np.asarray(pattern, dtype=float)
    if pattern.ndim != 3 or pattern.shape[1] != pattern.shape[2] or pattern.shape[1] != len(tokens):
        raise ValueError(f"a self-attention view needs [head, n, n] with n = {len(tokens)} tokens, got {pattern.shape}")
    element = "circuits-vis-" + uuid.uuid4().hex[:12]
    props = json.dumps({"attention": pattern.round(4).tolist(), "tokens": tokens, "attentionHeadNames": head_names, "maskUpperTri": True})
    return (f'<div id="{element}" style="margin: 15px 0;"></div>'
            f'<script>CircuitsVis.render("{element}", CircuitsVis.AttentionHeads, {props});</script>')


def cross_attention_figure(
    pattern: Float[np.ndarray, "layer head pos src"], position_labels: list[str], source_labels: list[str], title: str
) -> go.Figure:
    """One heatmap per (layer, head): rows the decoder positions, columns p / r / e; colour 0..1."""
    pattern = np.asarray(pattern, dtype=float)
    n_layers, n_heads = pattern.shape[:2]
    fig = make_subplots(rows=n_layers, cols=n_heads, subplot_titles=[f"L{l}C{h}" for l in range(n_layers) for h in range(n_heads)],
                        shared_yaxes=True, horizontal_spacing=0.03, vertical_spacing=0.12)
    for l in range(n_layers):
        for h in range(n_heads):
            fig.add_trace(go.Heatmap(
                z=pattern[l, h], x=source_labels, y=position_labels, zmin=0, zmax=1, colorscale="Blues",
                coloraxis="coloraxis", text=np.round(pattern[l, h], 2), texttemplate="%{text}",
                hovertemplate=f"L{l}C{h}<br>position %{{y}}<br>source %{{x}}<br>attention %{{z:.3f}}<extra></extra>",
            ), row=l + 1, col=h + 1)
    fig.update_yaxes(autorange="reversed")
    fig.update_yaxes(title_text="decoder position (predicts)", col=1)
    fig.update_xaxes(title_text="source", row=n_layers)
    fig.update_layout(title=title, coloraxis={"colorscale": "Blues", "cmin": 0, "cmax": 1, "colorbar": {"title": {"text": "attention"}}},
                      height=max(330, 22 * len(position_labels) + 100) * n_layers + 120, width=260 * n_heads + 220)
    return fig


def cross_attention_summary_figure(
    mean_pattern: Float[np.ndarray, "layer head pos src"], position_labels: list[str], n_examples: int
) -> go.Figure:
    """Mean attention to p, r and e (one panel each): rows heads `L{l}C{h}`, columns decoder positions."""
    mean_pattern = np.asarray(mean_pattern, dtype=float)
    n_layers, n_heads = mean_pattern.shape[:2]
    rows = [f"L{l}C{h}" for l in range(n_layers) for h in range(n_heads)]
    fig = make_subplots(rows=1, cols=3, subplot_titles=[f"attention to {s}" for s in SOURCE_NAMES], shared_yaxes=True,
                        horizontal_spacing=0.03)
    for s in range(3):
        z = mean_pattern[..., s].reshape(n_layers * n_heads, -1)
        fig.add_trace(go.Heatmap(
            z=z, x=position_labels, y=rows, zmin=0, zmax=1, coloraxis="coloraxis", text=np.round(z, 2), texttemplate="%{text}",
            hovertemplate=f"%{{y}} at %{{x}}<br>mean attention to {SOURCE_NAMES[s]} %{{z:.3f}}<extra></extra>",
        ), row=1, col=s + 1)
        fig.update_xaxes(title_text="decoder position (predicts)", row=1, col=s + 1)
    fig.update_yaxes(autorange="reversed", title_text="cross-attention head", col=1)
    fig.update_layout(title=f"Mean cross-attention to p, r, e per head and position ({n_examples} inputs)",
                      coloraxis={"colorscale": "Blues", "cmin": 0, "cmax": 1, "colorbar": {"title": {"text": "mean<br>attention"}}},
                      height=60 + 34 * len(rows) + 200, width=max(1300, 108 * len(position_labels) + 250))
    return fig


def miiii_attention_figure(from_equals: Float[np.ndarray, "layer head key"], key_labels: list[str], title: str) -> go.Figure:
    """Attention from '=' to each input position: rows `L{l}H{h}`, columns x0 / x1 / '='."""
    from_equals = np.asarray(from_equals, dtype=float)
    n_layers, n_heads = from_equals.shape[:2]
    z = from_equals.reshape(n_layers * n_heads, -1)
    fig = go.Figure(go.Heatmap(
        z=z, x=key_labels, y=[f"L{l}H{h}" for l in range(n_layers) for h in range(n_heads)], zmin=0, zmax=1, colorscale="Blues",
        text=np.round(z, 2), texttemplate="%{text}", colorbar={"title": {"text": "attention"}},
        hovertemplate="%{y} from '=' to %{x}: %{z:.3f}<extra></extra>",
    ))
    fig.update_layout(title=title, xaxis_title="key position", yaxis_title="head", yaxis_autorange="reversed",
                      height=120 + 40 * len(z) + 100, width=640)
    return fig


def write_attention_page(path: str | Path, title: str, sections: list[tuple[str, object]]) -> Path:
    """One offline page: each section is (heading, plotly figure or HTML string); circuitsvis' and plotly's
    JavaScript are each embedded once, and only when a section needs it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    if any(isinstance(body, str) and "CircuitsVis.render" in body for _, body in sections):
        parts.append(circuitsvis_script())
    plotly_done = False
    for heading, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if isinstance(body, go.Figure):
            parts.append(body.to_html(full_html=False, include_plotlyjs=not plotly_done))
            plotly_done = True
        else:
            parts.append(str(body))
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
