"""Figures of a reproduced section as plain data (JSON), drawn by `ktlens.viz.report`.

A section returns its figures as dicts built here, so that the section (analysis) stays free of plotly
and its result can be cached as JSON. Kinds: ``heatmap``, ``bars``, ``lines``, ``attention_heads``
(circuitsvis), ``cross_attention`` and ``miiii_progress`` (the existing `ktlens.viz` figures).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["plain", "heatmap", "bars", "lines", "attention_heads", "cross_attention", "miiii_progress", "table"]


def plain(x: Any) -> Any:
    """JSON-ready copy: arrays and tensors to lists, numpy scalars to Python, floats to 6 significant digits."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return plain(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return None if math.isnan(x) or math.isinf(x) else float(f"{x:.6g}")
    if isinstance(x, Mapping):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    return x


def heatmap(title: str, z: Any, x: Any, y: Any, xaxis: str, yaxis: str, colorbar: str,
            zmin: Any = None, zmax: Any = None, colorscale: str = "Viridis", text: bool = False,
            markers: Any = (), height: Any = None) -> dict:
    """``z[i][j]`` at (x[j], y[i]); ``markers``: ``[{"name", "x", "y", "symbol", "color"}]`` drawn on top."""
    return plain({"kind": "heatmap", "title": title, "z": z, "x": list(x), "y": list(y), "xaxis": xaxis, "yaxis": yaxis,
                  "colorbar": colorbar, "zmin": zmin, "zmax": zmax, "colorscale": colorscale, "text": text,
                  "markers": list(markers), "height": height})


def bars(title: str, x: Any, series: Mapping[str, Any], xaxis: str, yaxis: str,
         yrange: Any = None, log: bool = False, reference: Any = None,
         reference_name: str = "reference") -> dict:
    """Grouped bars, one group per x, one bar per series; an optional horizontal reference line."""
    return plain({"kind": "bars", "title": title, "x": list(x), "series": dict(series), "xaxis": xaxis, "yaxis": yaxis,
                  "yrange": yrange, "log": log, "reference": reference, "reference_name": reference_name})


def lines(title: str, x: Any, series: Mapping[str, Any], xaxis: str, yaxis: str, log: bool = False) -> dict:
    return plain({"kind": "lines", "title": title, "x": list(x), "series": dict(series), "xaxis": xaxis, "yaxis": yaxis, "log": log})


def attention_heads(title: str, pattern: Any, tokens: Sequence[str], heads: Sequence[str]) -> dict:
    """A causal self-attention pattern [head, query, key] for circuitsvis' AttentionHeads."""
    return plain({"kind": "attention_heads", "title": title, "pattern": np.round(np.asarray(pattern, dtype=float), 4),
                  "tokens": list(tokens), "heads": list(heads)})


def cross_attention(title: str, pattern: Any, rows: Sequence[str], source: Sequence[str]) -> dict:
    """Cross-attention [layer, head, decoder position, source] (`ktlens.viz.attention.cross_attention_figure`)."""
    return plain({"kind": "cross_attention", "title": title, "pattern": np.round(np.asarray(pattern, dtype=float), 4),
                  "rows": list(rows), "source": list(source)})


def miiii_progress(measures: Mapping[str, Any]) -> dict:
    """Progress measures as `ktlens.viz.miiii_figures.progress_figure` reads them."""
    return {"kind": "miiii_progress", "measures": plain(measures)}


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict:
    return plain({"title": title, "columns": list(columns), "rows": [list(r) for r in rows]})
