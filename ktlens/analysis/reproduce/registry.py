"""The sections of `ktlens reproduce`, their settings and what their results depend on.

A section is a function ``run(ctx) -> dict`` (see `ktlens.analysis.reproduce`) plus one `Section` line in
`SECTIONS`: its study, name, title, full and ``--fast`` settings, and the modules whose source its
result depends on (hashed into its cache key with the section's own module).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ktlens.analysis.reproduce import ktheory as kt
from ktlens.analysis.reproduce import miiii as mi
from ktlens.defaults import DEFAULT_MODELS

__all__ = ["Section", "Context", "SECTIONS", "STUDIES", "DEFAULT_MODELS", "sections_of"]

STUDIES = ("ktheory", "miiii")


@dataclass
class Context:
    """What a section gets: its study's model (loaded once per run), settings and the run's flags."""

    study: str
    model_name: str
    settings: dict[str, Any]
    fast: bool
    models: dict[str, Any] = field(default_factory=dict)  # shared by the sections of one run

    @property
    def model(self) -> Any:
        return self.load(self.model_name)

    def load(self, name: str) -> Any:
        if name not in self.models:
            from ktlens.checkpoint import load_pretrained
            from ktlens.commands.common import resolve_model

            self.models[name] = load_pretrained(resolve_model(name)).eval()
        return self.models[name]

    @property
    def model_dir(self) -> Path:
        from ktlens.commands.common import resolve_model

        return Path(resolve_model(self.model_name))


def model_inputs(ctx: Context) -> list[Path]:
    """The model's checkpoint folder (config and weights)."""
    return [ctx.model_dir]


@dataclass(frozen=True)
class Section:
    study: str
    name: str
    title: str
    run: Callable[[Context], dict]
    full: Mapping[str, Any]
    fast: Mapping[str, Any]
    modules: tuple[str, ...] = ()
    inputs: Callable[[Context], list[Path]] = model_inputs

    def settings(self, fast: bool) -> dict[str, Any]:
        return dict(self.fast if fast else self.full)

    @property
    def key_name(self) -> str:
        return f"{self.study}.{self.name}"


A = "ktlens.analysis."
SECTIONS: list[Section] = [
    Section("ktheory", "accuracy", "Exact match: whole domain and held-out split", kt.accuracy,
            {"n_examples": None}, {"n_examples": 200}, ("ktlens.saes.domains", "ktlens.tasks.ktheory_data")),
    Section("ktheory", "probes", "Linear probes with controls", kt.probes,
            {"n_max": 4000, "source_control": True, "max_iter": 100}, {"n_max": 500, "source_control": False, "max_iter": 40}, (A + "probes.running", A + "probes.fitting", A + "probes.targets")),
    Section("ktheory", "saes", "Sparse autoencoders: the field's metrics", kt.saes,
            {"recon_examples": None, "spliced_examples": 500}, {"recon_examples": 1000, "spliced_examples": 100},
            ("ktlens.saes.metrics", "ktlens.saes.domains", "ktlens.saes.activations"), kt.sae_inputs),
    Section("ktheory", "features", "Feature labels and coverage", kt.features,
            {"n_examples": None, "neurons": True}, {"n_examples": 1200, "neurons": False},
            (A + "features.report", A + "features.labels", A + "features.coverage", A + "features.hypotheses"), kt.sae_inputs),
    Section("ktheory", "patching", "Activation patching of the cross-attention heads, and necessity", kt.patching,
            {"pairs": 10, "ablation_examples": 256, "estimate_kinds": ["cross_attn_head_by_pos", "attn_head_by_pos", "src"]},
            {"pairs": 2, "ablation_examples": 64, "estimate_kinds": ["cross_attn_head_by_pos", "src"]},
            (A + "patching", A + "interventions")),
    Section("ktheory", "attribution", "Direct logit attribution", kt.attribution,
            {"input": [5, 4, 9], "examples": 256}, {"input": [5, 4, 9], "examples": 64}, (A + "attribution",)),
    Section("ktheory", "attention", "Attention of one example, and the mean cross-attention", kt.attention,
            {"input": [5, 4, 9], "summary_size": 256}, {"input": [5, 4, 9], "summary_size": 64}, ()),
    Section("ktheory", "causal", "Causal abstraction: is u or e' a swappable variable?", kt.causal,
            {"variables": ["u", "e_prime"], "locations": ["blocks.1.mlp.hook_post@all", "blocks.1.hook_resid_mid_cross@all",
                                                          "hook_src@e"], "ranks": [1, 8], "steps": 100, "n_train": 1024, "n_test": 512},
            {"variables": ["u"], "locations": ["blocks.1.mlp.hook_post@all"], "ranks": [1], "steps": 30, "n_train": 128, "n_test": 128},
            (A + "causal.interchange", A + "causal.ktheory", A + "causal.sweep", "ktlens.tasks.ktheory_causal")),
    Section("miiii", "accuracy", "Accuracy per task", mi.accuracy, {}, {}, ()),
    Section("miiii", "frequencies", "Predicted and found frequencies, restricted and excluded ablations", mi.frequencies,
            {"where": ["resid", "neurons", "embed"]}, {"where": ["resid"]},
            (A + "miiii_analysis", A + "miiii_frequencies", A + "fourier_ablation", A + "fourier")),
    Section("miiii", "progress", "Progress measures over training and the task order", mi.progress,
            {}, {}, (A + "progress",), mi.progress_inputs),
    Section("miiii", "fourier", "Fourier features: embedding and neurons", mi.fourier,
            {"min_share": 0.25}, {"min_share": 0.25}, (A + "fourier", A + "features.coverage")),
]


def sections_of(studies: list[str] | tuple[str, ...]) -> list[Section]:
    bad = [s for s in studies if s not in STUDIES]
    if bad:
        raise ValueError(f"unknown study {bad[0]!r}; known: {', '.join(STUDIES)} (or 'all')")
    return [s for s in SECTIONS if s.study in studies]
