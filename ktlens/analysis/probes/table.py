"""A probe table as text or markdown: one row per (target, hook, position) with every score."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ktlens.analysis.probes.records import ProbeResult

__all__ = ["results_table"]


def _fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.3f}"


def results_table(results: Sequence[ProbeResult], markdown: bool = False) -> str:
    """A text (or markdown) table: one row per (target, hook, position) with every score."""
    head = ["target", "hook", "pos", "metric", "probe", "random model", "shuffled", "baseline", "selectivity"]
    rows = [
        [r.target, r.hook, r.position, r.metric, _fmt(r.accuracy), _fmt(r.control_accuracy),
         _fmt(r.shuffled_accuracy), _fmt(r.baseline), _fmt(r.selectivity)]
        for r in results
    ]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        lines += ["| " + " | ".join(f"`{c}`" if i in (0, 1) else c for i, c in enumerate(row)) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head), fmt.format(*("-" * w for w in widths))] + [fmt.format(*row) for row in rows])
