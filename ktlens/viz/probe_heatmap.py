"""Heatmaps of a probe table (targets x hooks): the probe, its random-model control, shuffled labels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ktlens.analysis.probes import ProbeResult

PANELS = (("accuracy", "trained model"), ("control_accuracy", "random-init model"), ("shuffled_accuracy", "shuffled labels"))


def _column(r: ProbeResult) -> str:
    return r.hook if r.position in ("none",) else f"{r.hook} @ {r.position}"


def probe_heatmap(results: Sequence[ProbeResult], title: str = "Linear probes") -> go.Figure:
    """One panel per score; rows are targets, columns hooks (with the position read). Colour is the
    test accuracy (class targets) or test R^2 clipped to [0, 1] (scalar targets); hover gives the exact
    numbers, the baseline and what the target is."""
    if not results:
        raise ValueError("no probe results to plot")
    targets = list(dict.fromkeys(r.target for r in results))
    columns = list(dict.fromkeys(_column(r) for r in results))
    by = {(r.target, _column(r)): r for r in results}
    panels = [(field, name) for field, name in PANELS if any(getattr(r, field) is not None for r in results)]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[n for _, n in panels], shared_yaxes=True,
                        horizontal_spacing=0.02)
    for c, (field, name) in enumerate(panels, start=1):
        z = np.full((len(targets), len(columns)), np.nan)
        text = [["" for _ in columns] for _ in targets]
        hover = [["" for _ in columns] for _ in targets]
        for i, t in enumerate(targets):
            for j, col in enumerate(columns):
                r = by.get((t, col))
                if r is None or getattr(r, field) is None:
                    continue
                v = float(getattr(r, field))
                z[i, j] = min(max(v, 0.0), 1.0)
                text[i][j] = f"{v:.2f}"
                hover[i][j] = (
                    f"<b>{t}</b> at {col}<br>{r.metric} ({name}): {v:.4f}<br>"
                    f"probe {r.accuracy:.4f} | random {_f(r.control_accuracy)} | shuffled {_f(r.shuffled_accuracy)}"
                    f" | baseline {r.baseline:.4f}<br>{r.description}"
                )
        fig.add_trace(
            go.Heatmap(z=z, x=columns, y=targets, text=text, texttemplate="%{text}", hovertext=hover,
                       hoverinfo="text", zmin=0, zmax=1, colorscale="Viridis", showscale=c == len(panels),
                       colorbar=dict(title="acc / R²")),
            row=1, col=c,
        )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickangle=45)
    fig.update_layout(title=title, height=max(400, 28 * len(targets) + 250), width=max(900, 90 * len(columns) * len(panels) + 300))
    return fig


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def save_probe_heatmap(results: Sequence[ProbeResult], path: str | Path, title: str = "Linear probes") -> Path:
    """Write the heatmap as a self-contained HTML file (plotly.js included: opens offline)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    probe_heatmap(results, title).write_html(str(path), include_plotlyjs=True, full_html=True)
    return path
