"""Plotly figures of MIIII models; ``write_figures`` saves them as offline HTML (plotly.js embedded).

    training_curves(history, moduli)      per-task test accuracy over training (which q generalize first)
    first_exact_steps(history, moduli)    step at which each task first reached 100% test accuracy
    embedding_fourier(model)              the digit embedding in the Fourier basis of Z_p
    neuron_grids_figure(model)            activation grids of the strongest neurons and their 2-D spectra
    task_spectra(model)                   per-task frequency spectra (neuron spectra weighted per task)
    key_frequency_timeline(rows)          embedding frequency norms over training + number of key ones
    polar_figure(p)                       n < p^2 at (r, theta) = (n, n), coloured by divisibility
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from jaxtyping import Float
from plotly.subplots import make_subplots

from ktlens.analysis import fourier as fa

__all__ = [
    "training_curves",
    "first_exact_steps",
    "embedding_fourier",
    "neuron_grids_figure",
    "task_spectra",
    "key_frequency_timeline",
    "polar_figure",
    "write_figures",
    "find_metrics",
]


def _color(i: int, n: int) -> str:
    import plotly.colors as pc

    return pc.sample_colorscale("Viridis", [i / max(1, n - 1)])[0]


def first_full_steps(history: Sequence[dict[str, float | int]], moduli: Sequence[int], split: str = "test") -> dict[int, int | None]:
    """Step at which each task first reached accuracy 1.0 on the split (None: never)."""
    out: dict[int, int | None] = {}
    for q in moduli:
        out[int(q)] = next((int(r["step"]) for r in history if r.get(f"{split}_acc_q{q}", 0.0) >= 1.0), None)
    return out


def training_curves(history: Sequence[dict[str, float | int]], moduli: Sequence[int], title: str = "") -> go.Figure:
    """Test accuracy of every task over training (train mean dashed), legend ordered by when each
    task first reached 100% test accuracy."""
    steps = [r["step"] for r in history]
    first = first_full_steps(history, moduli)
    order = sorted(moduli, key=lambda q: (first[q] is None, first[q] or 0, q))
    fig = go.Figure()
    for i, q in enumerate(moduli):
        rank = order.index(q) + 1
        when = f"exact at step {first[q]}" if first[q] is not None else "never exact"
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=[r[f"test_acc_q{q}"] for r in history],
                mode="lines",
                name=f"q={q} (#{rank}, {when})",
                line=dict(color=_color(i, len(moduli))),
                legendrank=rank,
            )
        )
    if history and "train_acc_mean" in history[0]:
        fig.add_trace(go.Scatter(x=steps, y=[r["train_acc_mean"] for r in history], name="train mean", line=dict(dash="dash", color="black")))
    fig.update_layout(title=title or "Test accuracy per task over training", xaxis_title="step", yaxis_title="test accuracy", yaxis_range=[0, 1.02])
    return fig


def first_exact_steps(history: Sequence[dict[str, float | int]], moduli: Sequence[int]) -> go.Figure:
    """Bar chart: first step at which each task is exact on the test split."""
    first = first_full_steps(history, moduli)
    fig = go.Figure(go.Bar(x=[str(q) for q in moduli], y=[first[q] if first[q] is not None else np.nan for q in moduli]))
    fig.update_layout(title="First step with 100% test accuracy, per modulus q", xaxis_title="q", yaxis_title="step")
    return fig


def embedding_fourier(model: Any) -> go.Figure:
    """Heatmap of |B W_E| (basis vector x embedding dimension) and the norm per frequency."""
    coeffs = fa.embedding_in_fourier_basis(model)
    norms = fa.frequency_norms(coeffs)
    keys = fa.key_frequencies(norms)
    p = model.p
    fig = make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4], subplot_titles=("|W_E| in the Fourier basis of Z_p", "norm per frequency"))
    fig.add_trace(go.Heatmap(z=np.abs(coeffs), y=fa.basis_labels(p), colorscale="Blues", showscale=False), row=1, col=1)
    colors = ["crimson" if k in keys else "steelblue" for k in range(len(norms))]
    fig.add_trace(go.Bar(x=list(range(len(norms))), y=norms, marker_color=colors, name="norm"), row=1, col=2)
    fig.update_xaxes(title_text="embedding dimension", row=1, col=1)
    fig.update_xaxes(title_text="frequency k (red: key, > mean + 2 std)", row=1, col=2)
    fig.update_layout(title=f"Digit embeddings in the Fourier basis (p={p}; key frequencies {keys})", showlegend=False, height=600)
    return fig


def neuron_grids_figure(model: Any, n_neurons: int = 6, grids: Float[np.ndarray, "d_mlp p p"] | None = None) -> go.Figure:
    """Activation grids (x0 rows, x1 columns) of the highest-variance neurons and their 2-D spectra."""
    grids = fa.neuron_grids(model) if grids is None else grids
    top = np.argsort(-grids.reshape(len(grids), -1).var(1))[:n_neurons]
    power = fa.frequency_power_2d(fa.fourier_2d(grids[top]))
    titles = [t for i in top for t in (f"neuron {i}: activation", f"neuron {i}: spectrum")]
    fig = make_subplots(rows=len(top), cols=2, subplot_titles=titles, vertical_spacing=0.03)
    for r, i in enumerate(top):
        fig.add_trace(go.Heatmap(z=grids[i], colorscale="Viridis", showscale=False), row=r + 1, col=1)
        fig.add_trace(go.Heatmap(z=np.sqrt(power[r]), colorscale="Magma", showscale=False), row=r + 1, col=2)
        fig.update_yaxes(title_text="x0", row=r + 1, col=1)
        fig.update_yaxes(title_text="k0", row=r + 1, col=2)
    fig.update_xaxes(title_text="x1", row=len(top), col=1)
    fig.update_xaxes(title_text="k1", row=len(top), col=2)
    fig.update_layout(title=f"MLP neurons at '=' over the digit grid (p={model.p})", height=300 * len(top), width=800)
    return fig


def task_spectra(model: Any, grids: Float[np.ndarray, "d_mlp p p"] | None = None) -> go.Figure:
    """Per task: marginal frequency norms along x0 and x1 of the task-weighted neuron spectra."""
    power = fa.task_frequency_power(model, grids)  # [T, K+1, K+1]
    norm = lambda a: a / a.max(1, keepdims=True).clip(1e-30)  # noqa: E731
    x0 = norm(np.sqrt(power.sum(2)))
    x1 = norm(np.sqrt(power.sum(1)))
    labels = [f"q={q}" for q in model.moduli]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("frequencies of x0 (most significant digit)", "frequencies of x1"))
    fig.add_trace(go.Heatmap(z=x0, y=labels, colorscale="Blues", showscale=False), row=1, col=1)
    fig.add_trace(go.Heatmap(z=x1, y=labels, colorscale="Blues", showscale=False), row=1, col=2)
    fig.update_xaxes(title_text="frequency k of Z_p")
    fig.update_layout(title="Frequencies each task reads (neuron spectra weighted by their write to the task)", height=300 + 20 * len(labels))
    return fig


def key_frequency_timeline(rows: Sequence[dict[str, Any]]) -> go.Figure:
    """Embedding frequency norms over training (heatmap) and the number of key frequencies (line).
    ``rows``: ``[{"step", "norms", "n_active"}]`` (``active_frequencies_over_training`` or metrics.json)."""
    steps = [r["step"] for r in rows]
    z = np.array([r["norms"][1:] for r in rows]).T  # [K, n_snapshots]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.05)
    fig.add_trace(go.Heatmap(x=steps, y=list(range(1, z.shape[0] + 1)), z=z, colorscale="Viridis", colorbar=dict(len=0.65, y=0.65)), row=1, col=1)
    fig.add_trace(go.Scatter(x=steps, y=[r["n_active"] for r in rows], mode="lines+markers", name="key frequencies"), row=2, col=1)
    fig.update_yaxes(title_text="frequency k", row=1, col=1)
    fig.update_yaxes(title_text="# key", row=2, col=1)
    fig.update_xaxes(title_text="step", row=2, col=1)
    fig.update_layout(title="Embedding frequency norms over training (key: > mean + 2 std)", height=650, showlegend=False)
    return fig


def polar_figure(p: int, moduli: Sequence[int] = (2, 3, 5, 7)) -> go.Figure:
    """n < p^2 at polar coordinates (n, n), one toggleable colour per 'divisible by q' (and primes)."""
    data = fa.polar_data(p, moduli)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=data["x"], y=data["y"], mode="markers", marker=dict(size=3, color="lightgray"), name="all n"))
    for i, q in enumerate(moduli):
        m = data[f"div_{q}"]
        fig.add_trace(go.Scatter(x=data["x"][m], y=data["y"][m], mode="markers", marker=dict(size=4, color=_color(i, len(moduli))), name=f"{q} | n", visible=True if i == 0 else "legendonly"))
    m = data["is_prime"]
    fig.add_trace(go.Scatter(x=data["x"][m], y=data["y"][m], mode="markers", marker=dict(size=4, color="crimson"), name="prime", visible="legendonly"))
    fig.update_layout(title=f"n < {p}^2 at polar coordinates (r, theta) = (n, n)", width=750, height=750, xaxis=dict(scaleanchor="y", visible=False), yaxis=dict(visible=False))
    return fig


def find_metrics(model_dir: str | Path | None) -> dict[str, Any] | None:
    """metrics.json of a checkpoint folder (or of its parent run folder), if there is one."""
    if model_dir is None:
        return None
    model_dir = Path(model_dir)
    for cand in (model_dir / "metrics.json", model_dir.parent / "metrics.json"):
        if cand.is_file():
            return json.loads(cand.read_text())
    return None


def write_figures(model: Any, out: str | Path, model_dir: str | Path | None = None, snapshots: Sequence[str | Path] | None = None) -> list[Path]:
    """Write every figure of ``model`` to ``out`` as standalone HTML (plotly.js embedded, works offline).

    The training-curve figures need a metrics.json (looked up in ``model_dir`` and its parent); the
    timeline uses ``snapshots`` (checkpoint folders), else ``<run>/snapshots``, else the
    ``fourier_timeline`` stored in metrics.json.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, go.Figure] = {}
    metrics = find_metrics(model_dir)
    if metrics and metrics.get("history"):
        figures["training_curves"] = training_curves(metrics["history"], model.moduli)
        figures["first_exact_steps"] = first_exact_steps(metrics["history"], model.moduli)
    grids = fa.neuron_grids(model)
    figures["embedding_fourier"] = embedding_fourier(model)
    figures["neuron_grids"] = neuron_grids_figure(model, grids=grids)
    figures["task_spectra"] = task_spectra(model, grids=grids)
    if snapshots is None and model_dir is not None and (Path(model_dir).parent / "snapshots").is_dir():
        snapshots = sorted(p for p in (Path(model_dir).parent / "snapshots").iterdir() if (p / "config.json").is_file())
    if snapshots:
        figures["key_frequency_timeline"] = key_frequency_timeline(fa.active_frequencies_over_training(snapshots))
    elif metrics and metrics.get("fourier_timeline"):
        figures["key_frequency_timeline"] = key_frequency_timeline(metrics["fourier_timeline"])
    figures["polar"] = polar_figure(model.p, [q for q in (2, 3, 5, 7) if q < model.p])
    paths = []
    for name, fig in figures.items():
        path = out / f"{name}.html"
        fig.write_html(str(path), include_plotlyjs=True, full_html=True)
        paths.append(path)
    return paths
