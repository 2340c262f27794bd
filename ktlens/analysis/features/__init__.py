"""Features: units (MLP neurons, SAE latents) read over a model's whole domain and labelled automatically
against the task's own variables.

    from ktlens.analysis.features import analyze_units, neuron_units
    report = analyze_units(model, neuron_units(model, "blocks.1.mlp.hook_post"))
    report.label(12), report.coverage.share, report.to_json()

Modules: ``units`` (unit sources and the domain), ``hypotheses`` (events from the task's variables),
``labels`` (precision / recall / F1 with a fit/held-out split), ``stats`` (density, positions, examples),
``coverage`` (best F1 per event; periodic MIIII units), ``report`` (all of it in one call).
"""

from ktlens.analysis.features.coverage import Coverage, PeriodicUnits, coverage, event_best, periodic_units
from ktlens.analysis.features.hypotheses import EventSet, Hypothesis, ScalarSet, scalar_variables, task_events
from ktlens.analysis.features.labels import LabelConfig, UnitScores, correlations, score_units
from ktlens.analysis.features.report import FeatureReport, analyze_units, direct_logit_effects
from ktlens.analysis.features.units import (
    FeatureDomain,
    UnitActivations,
    UnitSource,
    feature_domain,
    neuron_units,
    read_units,
    sae_units,
)

__all__ = [
    "Coverage", "PeriodicUnits", "coverage", "event_best", "periodic_units", "EventSet", "Hypothesis", "ScalarSet",
    "scalar_variables", "task_events", "LabelConfig", "UnitScores", "correlations", "score_units",
    "FeatureReport", "analyze_units", "direct_logit_effects", "FeatureDomain", "UnitActivations", "UnitSource",
    "feature_domain", "neuron_units", "read_units", "sae_units",
]
