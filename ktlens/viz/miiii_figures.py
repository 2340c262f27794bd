"""Plotly figures of MIIII models; ``write_figures`` saves them as offline HTML pages sharing one plotly.js.

    training_curves(history, moduli)      per-task test accuracy over training (which q generalize first)
    first_exact_steps(history, moduli)    step at which each task first reached 100% test accuracy
    embedding_fourier(model)              the digit embedding in the Fourier basis of Z_p
    neuron_grids_figure(model)            activation grids of the strongest neurons and their 2-D spectra
    task_spectra(model)                   per-task readout spectra, predicted (o) and found (x) frequencies
    ablation_figure(rows)                 per-task accuracy / loss as trained, restricted and excluded
    key_frequency_timeline(rows)          embedding frequency norms over training + number of key ones
    polar_figure(p)                       n < p^2 at (r, theta) = (n, n), coloured by divisibility
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from jaxtyping import Float
from plotly.subplots import make_subplots

from ktlens.analysis import fourier as fa
from ktlens.viz.html import write_pages

__all__ = [
    "training_curves",
    "first_exact_steps",
    "embedding_fourier",
    "neuron_grids_figure",
    "task_spectra",
    "key_frequency_timeline",
    "polar_figure",
    "ablation_figure",
    "progress_figure",
    "write_figures",
    "analysis_figures_html",
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
    """Heatmap of |B W_E| (basis vector x embedding dimension, constant row apart) and the norm per
    frequency; red bars pass the per-spectrum test of `miiii_frequencies` (the title says what it found)."""
    from ktlens.analysis import miiii_frequencies as mfreq

    coeffs = fa.embedding_in_fourier_basis(model)
    norms = fa.frequency_norms(coeffs)
    keys = mfreq.significant_frequencies(norms**2)
    p = model.p
    labels = fa.basis_labels(p)
    fig = make_subplots(rows=2, cols=2, column_widths=[0.6, 0.4], row_heights=[0.06, 0.94], vertical_spacing=0.03,
                        specs=[[{}, {"rowspan": 2}], [{}, None]],
                        subplot_titles=("|W_E| in the Fourier basis of Z_p (constant row apart)", "norm per frequency (k = 0: constant)"))
    zmax = float(np.abs(coeffs[1:]).max()) if len(coeffs) > 1 else None
    fig.add_trace(go.Heatmap(z=np.abs(coeffs[:1]), y=labels[:1], colorscale="Greys", showscale=False), row=1, col=1)
    fig.add_trace(go.Heatmap(z=np.abs(coeffs[1:]), y=labels[1:], colorscale="Blues", zmin=0, zmax=zmax,
                             colorbar=dict(title="|coefficient|", x=0.55, len=0.9, y=0.45)), row=2, col=1)
    colors = ["lightgray" if k == 0 else "crimson" if k in keys else "steelblue" for k in range(len(norms))]
    fig.add_trace(go.Bar(x=list(range(len(norms))), y=norms, marker_color=colors, name="norm"), row=1, col=2)
    fig.update_xaxes(showticklabels=False, row=1, col=1)
    fig.update_xaxes(title_text="embedding dimension", row=2, col=1)
    fig.update_xaxes(title_text="frequency k (red: passes the per-spectrum test)", row=1, col=2)
    found = f"frequencies {keys} stand out" if keys else "no frequency stands out: the one table serves every task, spread over all k"
    fig.update_layout(title=f"Digit embedding in the Fourier basis of Z_{p}: {found}", showlegend=False, height=700, width=1350)
    return fig


def neuron_grids_figure(model: Any, n_neurons: int = 6, grids: Float[np.ndarray, "d_mlp p p"] | None = None) -> go.Figure:
    """Activation grids (x0 rows, x1 columns) of the highest-variance neurons and their 2-D spectra."""
    grids = fa.neuron_grids(model) if grids is None else grids
    top = np.argsort(-grids.reshape(len(grids), -1).var(1))[:n_neurons]
    power = fa.frequency_power_2d(fa.fourier_2d(grids[top]))
    power[:, 0, 0] = 0.0  # the mean is shown by the activation grid; it would wash out the spectrum
    writes = fa._neuron_task_weights(model)  # [T, d_mlp]
    task_of = {int(i): int(model.moduli[int(np.argmax(writes[:, i]))]) for i in top}
    titles = [t for i in top for t in (f"neuron {i}: activation (writes most to q={task_of[int(i)]})", f"neuron {i}: spectrum (mean removed)")]
    fig = make_subplots(rows=len(top), cols=2, subplot_titles=titles, vertical_spacing=0.03, horizontal_spacing=0.16)
    for r, i in enumerate(top):
        y = 1 - (r + 0.5) / len(top)
        bar = dict(len=0.9 / len(top), y=y, thickness=12)
        fig.add_trace(go.Heatmap(z=grids[i], colorscale="Viridis", colorbar=dict(x=0.43, title="act", **bar)), row=r + 1, col=1)
        fig.add_trace(go.Heatmap(z=np.sqrt(power[r]), colorscale="Magma", colorbar=dict(x=1.0, title="norm", **bar)), row=r + 1, col=2)
        fig.update_yaxes(title_text="x0", row=r + 1, col=1)
        fig.update_yaxes(title_text="k0", row=r + 1, col=2)
    fig.update_xaxes(title_text="x1", row=len(top), col=1)
    fig.update_xaxes(title_text="k1", row=len(top), col=2)
    fig.update_layout(title=f"MLP neurons at '=' over the digit grid (p={model.p})", height=300 * len(top), width=1000)
    return fig


def task_spectra(model: Any, spectra: Any = None, found: Any = None) -> go.Figure:
    """Per task (rows) the share of its readout power at each frequency of x0 and of x1, frequency 0 in
    its own column; open circles mark the predicted frequencies, crosses the found ones (per-task test)."""
    from ktlens.analysis import miiii_frequencies as mfreq

    spectra = mfreq.task_spectra(model) if spectra is None else spectra
    found = mfreq.found_frequencies(spectra) if found is None else found
    moduli = list(spectra.moduli)
    labels = [f"q={q}" for q in moduli]
    K = spectra.readout.shape[-1] - 1
    fig = make_subplots(rows=1, cols=4, column_widths=[0.04, 0.44, 0.04, 0.44], horizontal_spacing=0.02, shared_yaxes=True,
                        subplot_titles=("k=0", "x0 = n // p (high digit)", "k=0", "x1 = n % p (low digit)"))
    n_match = 0
    for axis, col in ((0, 1), (1, 3)):
        marg = spectra.readout.sum(2 - axis)  # [T, K + 1]: axis 0 sums over k1, axis 1 over k0
        share = marg / marg.sum(1, keepdims=True).clip(1e-30)
        fig.add_trace(go.Heatmap(z=share[:, :1], x=[0], y=labels, colorscale="Greys", zmin=0, zmax=1, showscale=False,
                                 hovertemplate="%{y}, k=0: %{z:.3f} of the power<extra></extra>"), row=1, col=col)
        fig.add_trace(go.Heatmap(z=share[:, 1:], x=list(range(1, K + 1)), y=labels, colorscale="Blues", zmin=0,
                                 zmax=float(share[:, 1:].max()), showscale=axis == 1,
                                 colorbar=dict(title="share of the task's<br>readout power", thickness=14),
                                 hovertemplate="%{y}, k=%{x}: %{z:.3f} of the power<extra></extra>"), row=1, col=col + 1)
        px, py, fx, fy = [], [], [], []
        for q, lab in zip(moduli, labels):
            pred = mfreq.predicted_frequencies(int(model.p), int(q))
            ks = pred.x0 if axis == 0 else pred.x1
            px += ks
            py += [lab] * len(ks)
            got = found[q].readout_x0 if axis == 0 else found[q].readout_x1
            fx += got
            fy += [lab] * len(got)
        fig.add_trace(go.Scatter(x=px, y=py, mode="markers", marker=dict(symbol="circle-open", size=9, color="darkorange", line=dict(width=1.5)),
                                 name="predicted (next to j p / q)", showlegend=axis == 0), row=1, col=col + 1)
        fig.add_trace(go.Scatter(x=fx, y=fy, mode="markers", marker=dict(symbol="x", size=9, color="crimson"),
                                 name="found (per-task test)", showlegend=axis == 0), row=1, col=col + 1)
    for q in moduli:
        pred = mfreq.predicted_frequencies(int(model.p), int(q))
        f = found[q]
        if (f.readout_x0 or f.readout_x1) and set(f.readout_x0) <= set(pred.x0) and set(f.readout_x1) <= set(pred.x1):
            n_match += 1
    fig.update_xaxes(showticklabels=False, col=1)
    fig.update_xaxes(showticklabels=False, col=3)
    fig.update_xaxes(title_text="frequency k of Z_p", dtick=1, range=[0.5, K + 0.5], col=2)
    fig.update_xaxes(title_text="frequency k of Z_p", dtick=1, range=[0.5, K + 0.5], col=4)
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(
        title=f"Readout spectrum per task (p={model.p}): found frequencies (x) are predicted ones (o) for {n_match} of {len(moduli)} tasks",
        height=260 + 34 * len(moduli), width=1350, legend=dict(orientation="h", y=-0.15),
    )
    return fig


def ablation_figure(rows: Sequence[Any], where: str = "resid") -> go.Figure:
    """Accuracy (top) and loss (bottom) per task as trained, restricted to its identified characters and
    with them excluded (``rows``: `ktlens.analysis.miiii_analysis.TaskAnalysis` records)."""
    labels = [f"q={r.q}" for r in rows]
    get = lambda r, k: r.ablations[where][k] if where in r.ablations else getattr(r, k)  # noqa: E731
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("accuracy (all p^2 inputs)", "cross-entropy (nats, log scale)"))
    series = (("as trained", "full", "gray"), ("restricted to the characters", "restricted", "seagreen"), ("characters excluded", "excluded", "crimson"))
    for name, key, color in series:
        acc = [r.full_accuracy if key == "full" else get(r, f"{key}_accuracy") for r in rows]
        loss = [r.full_loss if key == "full" else get(r, f"{key}_loss") for r in rows]
        fig.add_trace(go.Bar(x=labels, y=acc, name=name, marker_color=color, legendgroup=key), row=1, col=1)
        fig.add_trace(go.Bar(x=labels, y=[max(v, 1e-6) for v in loss], name=name, marker_color=color, legendgroup=key, showlegend=False), row=2, col=1)
    fig.update_yaxes(range=[0, 1.02], title_text="accuracy", row=1, col=1)
    fig.update_yaxes(type="log", title_text="loss", row=2, col=1)
    res = min(get(r, "restricted_accuracy") for r in rows)
    big = [get(r, "excluded_accuracy") for r in rows if r.q >= 5]
    exc = f"; excluded <= {max(big):.2f} for q >= 5" if big else ""
    place = {"resid": "the readout", "neurons": "the MLP neurons", "embed": "the digit embeddings"}.get(where, where)
    fig.update_layout(barmode="group", height=750, width=1300, legend=dict(orientation="h", y=1.08),
                      title=f"Fourier ablation at {place}: restricted accuracy >= {res:.2f} on every task{exc}")
    return fig


def key_frequency_timeline(rows: Sequence[dict[str, Any]]) -> go.Figure:
    """Embedding frequency norms over training (heatmap) and their Gini coefficient (line); the title says
    which frequencies pass the per-spectrum test at the last snapshot.
    ``rows``: ``[{"step", "norms", "n_active"}]`` (``active_frequencies_over_training`` or metrics.json)."""
    from ktlens.analysis import miiii_frequencies as mfreq

    steps = [r["step"] for r in rows]
    z = np.array([r["norms"][1:] for r in rows]).T  # [K, n_snapshots]
    active = [len(mfreq.significant_frequencies(np.asarray(r["norms"]) ** 2)) for r in rows]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.05)
    fig.add_trace(go.Heatmap(x=steps, y=list(range(1, z.shape[0] + 1)), z=z, colorscale="Viridis",
                             colorbar=dict(len=0.65, y=0.65, title="norm")), row=1, col=1)
    ginis = [fa.gini(np.asarray(r["norms"][1:])) for r in rows]
    fig.add_trace(go.Scatter(x=steps, y=ginis, mode="lines+markers", name="Gini of the norms"), row=2, col=1)
    fig.update_yaxes(title_text="frequency k (constant left out)", row=1, col=1)
    fig.update_yaxes(title_text="Gini", row=2, col=1)
    fig.update_xaxes(title_text="step", row=2, col=1)
    end = f"frequencies {mfreq.significant_frequencies(np.asarray(rows[-1]['norms']) ** 2)} stand out at the end" if active and active[-1] else "no single frequency stands out"
    fig.update_layout(title=f"Embedding frequency norms over training: Gini {ginis[0]:.2f} -> {ginis[-1]:.2f}; {end}",
                      height=650, width=1300, showlegend=False)
    return fig


def progress_figure(measures: Mapping[str, Any]) -> go.Figure:
    """Progress measures per task over training (``ktlens.analysis.progress``): restricted and excluded
    loss, Gini of the readout spectrum, accuracy; weight norm and embedding Gini. ``measures``:
    ``{"rows": [...], "exact_steps": {q: step}, "order": [...]}`` as ``miiii-analysis --progress`` writes."""
    rows = measures["rows"]
    steps = [r["step"] for r in rows]
    moduli = [int(q) for q in rows[0]["tasks"]]
    exact = {int(q): s for q, s in measures.get("exact_steps", {}).items()}
    fig = make_subplots(rows=3, cols=2, shared_xaxes=True, vertical_spacing=0.07, horizontal_spacing=0.08,
                        subplot_titles=("restricted loss (characters kept; nats, log)", "excluded loss (characters removed; nats, log)",
                                        "Gini of the task's readout spectrum", "test accuracy (evaluations)" if "test_accuracy" in measures else "accuracy on all inputs",
                                        "total weight norm", "Gini of the digit embedding's Fourier norms"))
    for i, q in enumerate(moduli):
        color = _color(i, len(moduli))
        when = exact.get(q)
        name = f"q={q} (exact from {when:,})" if when is not None else f"q={q} (not exact)"
        for (r, c), key in zip(((1, 1), (1, 2), (2, 1), (2, 2)), ("restricted_loss", "excluded_loss", "gini", "accuracy")):
            x, y = steps, [max(row["tasks"][str(q) if str(q) in row["tasks"] else q][key], 1e-7) for row in rows]
            if key == "accuracy" and "test_accuracy" in measures:
                x, y = measures["test_accuracy"]["step"], measures["test_accuracy"][str(q)]
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line=dict(color=color), name=name, legendgroup=name,
                                     showlegend=(r, c) == (1, 1)), row=r, col=c)
    fig.add_trace(go.Scatter(x=steps, y=[row["weight_norm"] for row in rows], mode="lines+markers", line=dict(color="black"), showlegend=False), row=3, col=1)
    fig.add_trace(go.Scatter(x=steps, y=[row["gini_embed"] for row in rows], mode="lines+markers", line=dict(color="black"), showlegend=False), row=3, col=2)
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_xaxes(title_text="step", row=3)
    order = measures.get("order") or []
    first = measures.get("first_order") or []
    title = "Progress measures per task"
    if first:
        title += f"; first exact: {', '.join(map(str, first))}"
    if order:
        title += f"<br>exact for good (after the lr-6e-3 spikes): {', '.join(map(str, order))}"
    fig.update_layout(title=title, height=1000, width=1350, margin=dict(t=110))
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
    """Write every figure of ``model`` to ``out`` as HTML pages sharing ``out/plotly.min.js`` (offline).

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
    figures["task_spectra"] = task_spectra(model)
    if snapshots is None and model_dir is not None and (Path(model_dir).parent / "snapshots").is_dir():
        snapshots = sorted(p for p in (Path(model_dir).parent / "snapshots").iterdir() if (p / "config.json").is_file())
    if snapshots:
        figures["key_frequency_timeline"] = key_frequency_timeline(fa.active_frequencies_over_training(snapshots))
    elif metrics and metrics.get("fourier_timeline"):
        figures["key_frequency_timeline"] = key_frequency_timeline(metrics["fourier_timeline"])
    figures["polar"] = polar_figure(model.p, [q for q in (2, 3, 5, 7) if q < model.p])
    return write_pages(figures, out, title=f"MIIII p={model.p}")


def analysis_figures_html(model: Any, rows: Sequence[Any], out: str | Path) -> list[Path]:
    """The predicted-vs-found and ablation figures of ``miiii-analysis`` (one shared plotly.js)."""
    figures = {"task_spectra": task_spectra(model)}
    for where in ("resid", "neurons", "embed"):
        if all(where in r.ablations for r in rows):
            figures[f"ablation_{where}"] = ablation_figure(rows, where)
    return write_pages(figures, out, title=f"MIIII p={model.p}: frequencies and ablations")
