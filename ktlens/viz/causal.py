"""Figures of the causal-abstraction analysis: the DAS sweep heatmap and the dose-response curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["das_heatmap", "dose_figure"]


def das_heatmap(records: Sequence[Mapping], title: str = "DAS: interchange-intervention accuracy") -> go.Figure:
    """One panel per subspace size; rows variables, columns locations; colour the held-out IIA, text
    "IIA (random subspace)". ``records``: ``DASReport.to_dict()`` rows."""
    if not records:
        raise ValueError("no DAS records to plot")
    variables = list(dict.fromkeys(r["variable"] for r in records))
    locations = list(dict.fromkeys(r["location"] for r in records))
    ranks = sorted({int(r["subspace_dim"]) for r in records})
    by = {(r["variable"], r["location"], int(r["subspace_dim"])): r for r in records}
    fig = make_subplots(rows=len(ranks), cols=1, subplot_titles=[f"subspace size {k}" for k in ranks],
                        shared_xaxes=True, vertical_spacing=0.08)
    for i, k in enumerate(ranks, start=1):
        z = np.full((len(variables), len(locations)), np.nan)
        text = [["" for _ in locations] for _ in variables]
        for a, v in enumerate(variables):
            for b, loc in enumerate(locations):
                r = by.get((v, loc, k))
                if r is not None:
                    z[a, b] = r["iia"]
                    text[a][b] = f"{r['iia']:.2f}<br>({r['iia_random_subspace']:.2f})"
        fig.add_trace(go.Heatmap(z=z, x=locations, y=variables, text=text, texttemplate="%{text}", zmin=0, zmax=1,
                                 colorscale="Viridis", showscale=i == 1,
                                 colorbar={"title": {"text": "held-out IIA<br>(exact label)"}},
                                 hovertemplate="%{y} @ %{x}<br>IIA %{z:.3f}<extra></extra>"), row=i, col=1)
        fig.update_yaxes(title_text="variable", autorange="reversed", row=i, col=1)
    fig.update_xaxes(title_text="location (hook @ positions)", tickangle=30, row=len(ranks), col=1)
    fig.update_layout(title=title + " (in brackets: a random subspace of the same size)", width=1400,
                      height=320 * len(ranks) + 260)
    return fig


def dose_figure(curves: Sequence[Mapping], position_labels: Sequence[str], title: str) -> go.Figure:
    """Left: the mean shift of the n_1 prediction against delta, per direction, beside the causal model's
    prediction (shift = delta); right: the mean |logit change| at the n_1 position and the largest at any other. ``curves``:
    ``DoseCurve.to_dict()`` rows."""
    if not curves:
        raise ValueError("no dose-response curves to plot")
    fig = make_subplots(rows=1, cols=2, subplot_titles=["shift of the predicted n_1 (argmax)",
                                                        "mean |logit change| (over examples and count tokens)"])
    deltas = curves[0]["deltas"]
    fig.add_trace(go.Scatter(x=deltas, y=curves[0]["causal_shift"], name="causal model (Algorithm 1): shift = delta",
                             mode="lines", line={"dash": "dash", "color": "black"}), row=1, col=1)
    for c in curves:
        name = f"{c['method']} direction (in-sample R^2 of N {c['r2']:.2f})"
        fig.add_trace(go.Scatter(x=c["deltas"], y=c["mean_shift"], name=name, mode="lines+markers"), row=1, col=1)
        change = np.asarray(c["logit_change"])
        j = c["position"]
        others = np.delete(change, j, axis=1).max(1) if change.shape[1] > 1 else np.zeros(len(change))
        fig.add_trace(go.Scatter(x=c["deltas"], y=change[:, j], mode="lines+markers",
                                 name=f"{c['method']}: at the {position_labels[j]} position"), row=1, col=2)
        fig.add_trace(go.Scatter(x=c["deltas"], y=others, mode="lines", line={"dash": "dot"},
                                 name=f"{c['method']}: largest at any other position"), row=1, col=2)
    fig.update_xaxes(title_text="delta = N_intervened - N_true", row=1, col=1)
    fig.update_xaxes(title_text="delta = N_intervened - N_true", row=1, col=2)
    fig.update_yaxes(title_text="mean shift of the n_1 prediction", row=1, col=1)
    fig.update_yaxes(title_text="mean |logit change|", row=1, col=2)
    fig.update_layout(title=title, width=1400, height=700, legend={"font": {"size": 10}})
    return fig
