"""Heatmaps of patching sweeps (labelled axes, a colour bar of the normalised metric) and one offline page."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from ktlens.analysis.patching import PatchSweep

__all__ = ["sweep_heatmap", "estimate_scatter", "write_page"]


def _grid(sweep: PatchSweep) -> tuple[np.ndarray, list[str], list[str], str, str]:
    """2-D view of a sweep: rows, columns and their axis names (layer x pos x head -> 'L{l} H{h}' x pos)."""
    z = sweep.normalized().detach().cpu().numpy()
    names, labels = sweep.axis_names, sweep.axis_labels
    if z.ndim == 1:
        return z[None, :], [sweep.kind], labels[0], "", names[0]
    if z.ndim == 2:
        return z, labels[0], labels[1], names[0], names[1]
    # [layer, pos, head] -> rows (layer, head), columns pos
    z = z.transpose(0, 2, 1).reshape(-1, z.shape[1])
    rows = [f"{l} {h}" for l in labels[0] for h in labels[2]]
    return z, rows, labels[1], f"{names[0]} {names[2]}", names[1]


def sweep_heatmap(sweep: PatchSweep, title: str | None = None) -> go.Figure:
    """One sweep as a heatmap: 1 = the clean run's metric, 0 = the corrupted run's (diverging colours)."""
    z, rows, cols, row_name, col_name = _grid(sweep)
    span = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    fig = go.Figure(go.Heatmap(
        z=z, x=cols, y=rows, zmid=0, zmin=-max(span, 1), zmax=max(span, 1), colorscale="RdBu",
        colorbar={"title": {"text": "normalised<br>" + sweep.metric_name}},
        hovertemplate=f"{row_name} %{{y}}<br>{col_name} %{{x}}<br>normalised %{{z:.3f}}<extra></extra>",
    ))
    what = "clean into corrupted (denoising)" if sweep.direction == "denoise" else "corrupted into clean (noising)"
    fig.update_layout(
        title=title or f"{sweep.kind}: {what}<br><sub>{sweep.metric_name}: clean {sweep.clean_value:.3f}, corrupted {sweep.corrupted_value:.3f}</sub>",
        xaxis_title=col_name, yaxis_title=row_name or sweep.kind, yaxis_autorange="reversed",
        height=max(340, 28 * len(rows) + 180), width=max(760, 22 * len(cols) + 300) if len(cols) < 60 else 1200,
    )
    return fig


def estimate_scatter(real: PatchSweep, estimate: PatchSweep, r: float) -> go.Figure:
    """Attribution-patching estimate against real patching, one point per cell."""
    x, y = real.normalized().flatten().numpy(), estimate.normalized().flatten().numpy()
    fig = go.Figure(go.Scatter(x=x, y=y, mode="markers", marker={"size": 6}))
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line={"dash": "dot", "color": "grey"}, showlegend=False))
    fig.update_layout(title=f"{real.kind}: attribution patching vs activation patching<br><sub>Pearson r = {r:.3f} over {len(x)} cells</sub>",
                      xaxis_title="activation patching (normalised)", yaxis_title="attribution patching (normalised)",
                      showlegend=False, width=760, height=460)
    return fig


def write_page(figures: Sequence[go.Figure], path: str | Path, title: str, intro: str = "") -> Path:
    """All figures on one offline page, plotly's JavaScript embedded once."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = [fig.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figures)]
    path.write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
        f"<h1>{title}</h1><p>{intro}</p>" + "\n".join(body) + "</body></html>",
        encoding="utf-8",
    )
    return path
