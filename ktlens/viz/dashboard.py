"""Offline feature dashboards: one HTML site per model / SAE.

Layout: ``index.html`` (density histogram, coverage table, searchable and sortable unit list),
``units/unit_NNNNN.html`` (one page per unit), ``assets/plotly.min.js`` (plotly.js, written once and
loaded by every page with a relative ``<script src>``; nothing is fetched from the network).
Figures are plotly.js specifications written as JSON (no Python plotly figure objects: fast for
thousands of pages).

Direct effect on the logits: the unit's write direction times the final LayerNorm's weight times
``W_U``; the LayerNorm's per-example scale 1/std is ignored.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ktlens.analysis.features.report import FeatureReport
from ktlens.analysis.features.stats import histograms, quantile_rows, top_rows

__all__ = ["write_dashboard", "write_plotly_asset"]

PLOTLY_ASSET = "assets/plotly.min.js"
UNIT_CHUNK = 128  # units transposed at a time while writing pages
CSS = """body{font-family:system-ui,sans-serif;margin:16px 28px;max-width:1360px;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}
th{background:#f0f0f0;cursor:pointer}.grid{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.fig{min-height:340px}h1{font-size:22px}h2{font-size:17px;margin-top:18px}input{font-size:14px;padding:4px;width:380px}
.lbl{font-weight:bold;color:#1a5}"""


def write_plotly_asset(out: Path) -> Path:
    """Write plotly.js to ``out/assets/plotly.min.js`` once (kept when it is already there)."""
    from plotly.offline import get_plotlyjs

    path = Path(out) / PLOTLY_ASSET
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(get_plotlyjs(), encoding="utf-8")
    return path


def _fig(div: str, data: list[dict], title: str, xtitle: str, ytitle: str, **layout: Any) -> str:
    lay = {"title": {"text": title}, "xaxis": {"title": {"text": xtitle}, "automargin": True},
           "yaxis": {"title": {"text": ytitle}, "automargin": True},
           "margin": {"l": 60, "r": 20, "t": 50, "b": 50}, "height": 340}
    for axis in ("xaxis", "yaxis"):  # rotated tick labels push the axis title out instead of covering it
        if axis in layout:
            layout[axis] = {"automargin": True, **layout[axis]}
    lay.update(layout)
    spec = json.dumps({"data": data, "layout": lay}, default=_json_default)
    return f'<div class="fig" id="{div}"></div><script>(function(){{var s={spec};Plotly.newPlot("{div}",s.data,s.layout,{{responsive:true,displayModeBar:false}});}})();</script>'


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o))


def _page(title: str, body: str, depth: int) -> str:
    src = "../" * depth + PLOTLY_ASSET
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style><script src='{src}'></script></head><body>{body}</body></html>")


def _example_text(report: FeatureReport, i: int, k: int) -> str:
    d = report.domain
    if d.model_type == "ktheory":
        from ktlens.tasks.ktheory import group_string

        p, r, e = (int(d.inputs[c][i]) for c in "pre")
        where = d.position_names[k] if k >= d.n_scratch else f"{d.position_names[k]} (writes {int(d.scratch_values[i, k])})"
        return f"(p={p}, r={r}, e={e}) at {where}: K = {group_string(p, r, e)}"
    from ktlens.tasks.remainders import primes_below

    n = int(d.inputs["n"][i])
    pp = int(d.context["spec"].p)
    res = ", ".join(f"{n % q} mod {q}" for q in primes_below(pp))
    return f"n={n} (x0={n // pp}, x1={n % pp}): {res}"


def _examples_table(report: FeatureReport, rows: list[tuple[int, int, float]]) -> str:
    body = "".join(f"<tr><td>{a:.4g}</td><td>{html.escape(_example_text(report, i, k))}</td></tr>" for i, k, a in rows)
    return f"<table><tr><th>activation</th><th>example</th></tr>{body}</table>"


def _unit_page(report: FeatureReport, u: int, col: np.ndarray, counts: np.ndarray, edges: np.ndarray, effects: np.ndarray | None) -> str:
    """The page of unit u; ``col`` its activations over all rows."""
    d, s = report.domain, report.scores
    label = report.label(u)
    held_out = f" (held-out F1 {s.f1[u, 0]:.3f})" if s.labelled[u] else ""
    parts = [f"<p><a href='../index.html'>index</a></p><h1>Unit {u} of {html.escape(report.units.source.name)}</h1>",
             f"<p>Label: <span class='lbl'>{html.escape(label)}</span>{held_out} &middot; density {report.density[u]:.4f}</p>"]
    figs = []
    centers = (edges[u, :-1] + edges[u, 1:]) / 2
    figs.append(_fig(f"hist{u}", [{"type": "bar", "x": centers, "y": counts[u], "marker": {"color": "#3465a4"}}],
                     f"Positive activations (density {report.density[u]:.3g})", "activation", "rows", yaxis={"type": "log", "title": {"text": "rows (log)"}}))
    figs.append(_fig(f"pos{u}", [{"type": "bar", "x": d.position_names, "y": report.position_share[u], "marker": {"color": "#c0504d"}}],
                     "Share of firing at each position", "decoder position (model order)" if d.model_type == "ktheory" else "position", "share of firing rows"))
    if effects is not None:
        e = effects[u]
        if e.ndim == 1:  # K-theory: count tokens (and scratch values, which share the output tokens)
            order = np.argsort(e)
            pick = np.concatenate([order[:10], order[-10:]])
            what = "value" if d.n_scratch else "count"
            figs.append(_fig(f"eff{u}", [{"type": "bar", "x": [f"{what} {int(c)}" for c in pick], "y": e[pick],
                                          "marker": {"color": ["#c0504d"] * 10 + ["#4e9a06"] * 10}}],
                             f"Direct effect on logits: bottom and top 10 {what} tokens", "output token", "logit change per unit activation"))
        else:  # MIIII: tasks x classes
            lim = float(np.abs(e).max()) or 1.0
            figs.append(_fig(f"eff{u}", [{"type": "heatmap", "z": e, "y": [f"q={q}" for q in report.periodic_tasks()],
                                          "colorscale": "RdBu", "zmid": 0, "zmin": -lim, "zmax": lim,
                                          "colorbar": {"title": {"text": "logit / act"}}}],
                             "Direct effect on logits per task and class", "class (residue)", "task"))
    if report.periodic is not None:
        pp = int(d.context["spec"].p)
        grid = col.reshape(pp, pp)
        figs.append(_fig(f"grid{u}", [{"type": "heatmap", "z": grid, "colorscale": "Viridis", "zmin": 0,
                                       "colorbar": {"title": {"text": "activation"}}}],
                         "Activation over the digits (n = x0 p + x1)", "x1 (low digit)", "x0 (high digit)"))
        power = report.periodic.power[u].copy()
        total = power.sum() - power[0, 0]
        power[0, 0] = 0.0
        figs.append(_fig(f"four{u}", [{"type": "heatmap", "z": power / max(total, 1e-12), "colorscale": "Viridis", "zmin": 0,
                                       "colorbar": {"title": {"text": "share of non-constant power"}}}],
                         "2-D Fourier spectrum (constant term removed)", "frequency k1 (low digit)", "frequency k0 (high digit)"))
    parts.append("<div class='grid'>" + "".join(figs) + "</div>")
    hyp_rows = []
    for j in range(s.best.shape[1]):
        if s.best[u, j] < 0:
            break
        h = s.candidate(s.best[u, j])
        hyp_rows.append(f"<tr><td>{html.escape(h.text(d.position_names))}</td><td>{s.f1[u, j]:.3f}</td><td>{s.precision[u, j]:.3f}</td>"
                        f"<td>{s.recall[u, j]:.3f}</td><td>{s.chance[u, j]:.3f}</td><td>{s.threshold[u, j]:.3g}</td></tr>")
    parts.append("<h2>Best hypotheses (held-out half; threshold chosen on the fit half)</h2><table><tr><th>hypothesis</th>"
                 "<th>F1</th><th>precision</th><th>recall</th><th>chance F1</th><th>threshold</th></tr>" + "".join(hyp_rows) + "</table>")
    if report.correlation.size:
        top = np.argsort(-np.abs(report.correlation[u]))[:5]
        parts.append("<h2>Correlation with scalar variables</h2><table><tr><th>variable</th><th>r</th></tr>" + "".join(
            f"<tr><td>{html.escape(report.scalars.names[j])}</td><td>{report.correlation[u, j]:+.3f}</td></tr>" for j in top) + "</table>")
    K = d.n_positions
    parts.append("<h2>Top activating examples</h2>" + _examples_table(report, top_rows(col, K, 10)))
    for name, rows in quantile_rows(col, K):
        parts.append(f"<h2>Quantile {html.escape(name)}</h2>" + _examples_table(report, rows))
    return _page(f"unit {u}: {label}", "".join(parts), depth=1)


INDEX_JS = """
function filt(){var q=document.getElementById('q').value.toLowerCase();
 document.querySelectorAll('#units tbody tr').forEach(function(r){r.style.display=r.textContent.toLowerCase().indexOf(q)>=0?'':'none';});}
function sortBy(c){var tb=document.querySelector('#units tbody');var rows=Array.from(tb.rows);
 var asc=tb.getAttribute('data-c')==String(c)?tb.getAttribute('data-a')!='1':false;
 rows.sort(function(a,b){var x=a.cells[c].getAttribute('data-v'),y=b.cells[c].getAttribute('data-v');
  var nx=parseFloat(x),ny=parseFloat(y);var r=(isNaN(nx)||isNaN(ny))?x.localeCompare(y):nx-ny;return asc?r:-r;});
 rows.forEach(function(r){tb.appendChild(r);});tb.setAttribute('data-c',c);tb.setAttribute('data-a',asc?'1':'0');}
"""


def write_dashboard(report: FeatureReport, out: str | Path, model: Any = None, title: str | None = None,
                    progress: bool = True) -> Path:
    """Write the site for ``report`` under ``out`` (created); returns the index path."""
    from ktlens.analysis.features.report import direct_logit_effects

    out = Path(out)
    (out / "units").mkdir(parents=True, exist_ok=True)
    write_plotly_asset(out)
    U = report.density.size
    counts, edges = histograms(report.units.by_position)
    effects = direct_logit_effects(model, report.units.source) if model is not None else None
    flat = report.units.acts
    for start in tqdm(range(0, U, UNIT_CHUNK), desc="unit pages", leave=False, disable=not progress):
        cols = flat[:, start : start + UNIT_CHUNK].T.contiguous().numpy()  # [chunk, rows]: one unit per row
        for j, col in enumerate(cols):
            u = start + j
            (out / "units" / f"unit_{u:05d}.html").write_text(_unit_page(report, u, col, counts, edges, effects), encoding="utf-8")
    title = title or f"Features: {report.units.source.name}"
    dens = np.log10(np.maximum(report.density, 1e-6))
    cov = report.coverage
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>{U} units; {report.n_labelled(0.9)} labelled with held-out F1 &ge; 0.9; "
             f"{int(report.scores.labelled.sum())} labelled above chance; coverage of {len(cov.events)} events at F1 &ge; 0.9: "
             f"{cov.share:.1%}. Dead units (density 0) plotted at log10 = -6.</p>",
             "<div class='grid'>",
             _fig("density", [{"type": "histogram", "x": dens, "nbinsx": 40, "marker": {"color": "#3465a4"}}],
                  "Unit density (share of rows with activation > 0)", "log10 density", "units"),
             _fig("coverage", [{"type": "histogram", "x": cov.best_f1, "nbinsx": 20, "marker": {"color": "#4e9a06"}}],
                  "Best held-out F1 any unit reaches, per event", "best F1", "events"),
             "</div>"]
    best_events = np.argsort(-cov.best_f1)
    parts.append("<h2>Coverage: events by best F1 (top 40)</h2><table><tr><th>event</th><th>best F1</th><th>unit</th><th>as</th></tr>" + "".join(
        f"<tr><td>{html.escape(cov.events[j])}</td><td>{cov.best_f1[j]:.3f}</td><td><a href='units/unit_{int(cov.unit[j]):05d}.html'>{int(cov.unit[j])}</a></td>"
        f"<td>{html.escape(report.scores.candidate(cov.candidate[j]).text(report.domain.position_names))}</td></tr>"
        for j in best_events[:40] if cov.unit[j] >= 0) + "</table>")
    rows = []
    for u in range(U):
        top_pos = int(np.argmax(report.position_share[u]))
        f1 = report.scores.f1[u, 0] if report.scores.labelled[u] else 0.0
        label = report.label(u)
        rows.append(f"<tr><td data-v='{u}'><a href='units/unit_{u:05d}.html'>{u}</a></td><td data-v='{report.density[u]:.6g}'>{report.density[u]:.4f}</td>"
                    f"<td data-v='{report.position_share[u, top_pos]:.4f}'>{html.escape(report.domain.position_names[top_pos])} "
                    f"({report.position_share[u, top_pos]:.0%})</td><td data-v='{html.escape(label)}'>{html.escape(label)}</td>"
                    f"<td data-v='{f1:.4f}'>{f1:.3f}</td></tr>")
    parts.append("<h2>Units</h2><p><input id='q' placeholder='search labels, e.g. n_2 == 1' oninput='filt()'> "
                 "(click a column header to sort)</p><table id='units'><thead><tr><th onclick='sortBy(0)'>unit</th>"
                 "<th onclick='sortBy(1)'>density</th><th onclick='sortBy(2)'>main position (share)</th>"
                 "<th onclick='sortBy(3)'>label</th><th onclick='sortBy(4)'>F1</th></tr></thead><tbody>" + "".join(rows) +
                 f"</tbody></table><script>{INDEX_JS}</script>")
    index = out / "index.html"
    index.write_text(_page(title, "".join(parts), depth=0), encoding="utf-8")
    return index
