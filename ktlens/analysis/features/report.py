"""One call for everything about a set of units: `analyze_units` -> `FeatureReport`."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ktlens.analysis.features.coverage import Coverage, PeriodicUnits, coverage, periodic_units
from ktlens.analysis.features.hypotheses import EventSet, ScalarSet, scalar_variables, task_events
from ktlens.analysis.features.labels import LabelConfig, UnitScores, correlations, score_units
from ktlens.analysis.features.stats import density, position_share
from ktlens.analysis.features.units import FeatureDomain, UnitActivations, UnitSource, feature_domain, read_units

__all__ = ["FeatureReport", "analyze_units", "direct_logit_effects"]


@dataclass
class FeatureReport:
    """Units read over the domain with their statistics, labels, correlations and coverage."""

    units: UnitActivations
    events: EventSet
    scalars: ScalarSet
    scores: UnitScores
    density: np.ndarray
    position_share: np.ndarray
    correlation: np.ndarray  # [units, scalars]
    coverage: Coverage
    periodic: PeriodicUnits | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def domain(self) -> FeatureDomain:
        return self.units.domain

    def label(self, u: int) -> str:
        """The unit's label in words ("unlabelled" when no hypothesis beats chance)."""
        s = self.scores
        if s.best[u, 0] < 0 or not s.labelled[u]:
            text = "unlabelled"
        else:
            text = s.candidate(s.best[u, 0]).text(self.domain.position_names)
        if self.periodic is not None and self.periodic.periodic[u]:
            k0, k1 = self.periodic.frequency[u]
            text += f"; periodic (k0={k0}, k1={k1}), separates n mod {self.periodic.task_q[u]}"
        return text

    def periodic_tasks(self) -> list[int]:
        """The moduli of a MIIII model's tasks (rows of its logit effects)."""
        return list(self.domain.context["spec"].moduli) if self.domain.model_type == "miiii" else []

    def n_labelled(self, min_f1: float = 0.9) -> int:
        return int((self.scores.labelled & (self.scores.f1[:, 0] >= min_f1)).sum())

    def unit_json(self, u: int) -> dict:
        s = self.scores
        has = s.best[u, 0] >= 0 and bool(s.labelled[u])
        row: dict[str, Any] = {
            "unit": int(u),
            "density": float(self.density[u]),
            "position_share": [round(float(x), 4) for x in self.position_share[u]],
            "hypothesis": s.candidate(s.best[u, 0]).to_json() if has else None,
            "threshold": float(s.threshold[u, 0]) if has else None,
            "precision": float(s.precision[u, 0]) if has else None,
            "recall": float(s.recall[u, 0]) if has else None,
            "f1": float(s.f1[u, 0]) if has else None,
        }
        if self.correlation.size:
            j = int(np.abs(self.correlation[u]).argmax())
            row["correlation"] = {"variable": self.scalars.names[j], "r": round(float(self.correlation[u, j]), 4)}
        if self.periodic is not None:
            k0, k1 = (int(x) for x in self.periodic.frequency[u])
            row["periodic"] = {"periodic": bool(self.periodic.periodic[u]), "frequency": [k0, k1],
                               "share": round(float(self.periodic.share[u]), 4), "task_q": int(self.periodic.task_q[u]),
                               "eta2": round(float(self.periodic.eta2[u]), 4)}
        return row

    def to_json(self) -> dict:
        cov = self.coverage.to_json()
        cov["n_labelled_f1_0.9"] = self.n_labelled(0.9)
        cov["n_units"] = int(self.density.size)
        return {"units": [self.unit_json(u) for u in range(self.density.size)], "coverage": cov,
                "source": self.units.source.name, "hook": self.units.source.hook,
                "positions": list(self.domain.position_names)}


def analyze_units(model: Any, source: UnitSource, config: LabelConfig = LabelConfig(),
                  hypotheses: Mapping[str, Callable[..., np.ndarray]] | None = None,
                  domain: FeatureDomain | None = None, progress: bool = True) -> FeatureReport:
    """Read ``source`` over the model's domain and label, correlate and cover (see the package docstring);
    ``hypotheses``: extra user events, ``{name: fn(**inputs) -> bool [N] or [N, positions]}``."""
    seconds = {}
    t0 = time.perf_counter()
    units = read_units(model, source, domain, progress=progress)
    seconds["read"] = time.perf_counter() - t0
    domain = units.domain
    acts = units.by_position
    t1 = time.perf_counter()
    events = task_events(domain, hypotheses)
    scalars = scalar_variables(domain)
    scores = score_units(acts, events, config, progress=progress)
    corr = correlations(acts, scalars)
    periodic = None
    if domain.model_type == "miiii":
        p = int(model.p)
        periodic = periodic_units(acts[:, 0].T.reshape(-1, p, p).numpy(), list(model.moduli))
    seconds["label"] = time.perf_counter() - t1
    return FeatureReport(units, events, scalars, scores, density(acts), position_share(acts), corr, coverage(scores),
                         periodic, seconds)


@torch.no_grad()
def direct_logit_effects(model: Any, source: UnitSource) -> np.ndarray | None:
    """Each unit's direct effect on the output logits: its write direction times ``ln_final.w`` (the final
    LayerNorm's scale 1/std is ignored) times ``W_U``. K-theory: [units, d_vocab_out] (count tokens);
    MIIII: [units, n_tasks, classes]. None when the source has no directions."""
    d = source.directions()
    if d is None:
        return None
    d = d.float()
    w = getattr(model.ln_final, "w", None)
    if w is not None:
        d = d * w.detach().float()
    W_U = model.W_U.detach().float()
    out = torch.einsum("ud,tdc->utc", d, W_U) if W_U.ndim == 3 else d @ W_U
    return out.numpy()
