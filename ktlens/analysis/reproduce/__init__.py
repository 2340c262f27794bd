"""`ktlens reproduce`: both studies end to end, from the shipped models, SAEs and results, as data.

    from ktlens.analysis.reproduce import reproduce
    report = reproduce(["ktheory", "miiii"], "report", fast=True)   # Report: sections (dicts), computed
    report.summary()                                                  # what summary.json holds

`ktlens.viz.report.write_report(report, DIR)` draws it (DIR/index.html, one page per section).

Sections. Each section is a function ``run(ctx) -> dict`` in `ktheory` or `miiii` (``ctx``:
`registry.Context` with the study's model, loaded once per run, and the section's settings) returning

    {"claim":   the reference's claim and figure, in words,
     "ours":    what we measured now, in words with the numbers,
     "differs": where we differ and why,
     "summary": nested dict of plain numbers (goes to summary.json),
     "tables":  [figures.table(...)], "figures": [figures.heatmap(...) | bars | lines | ...]}

Adding a section is one such function and one `registry.Section(...)` line in `registry.SECTIONS`
(study, name, title, function, full settings, ``--fast`` settings, the modules its result depends on,
and optionally the input files beyond the model's checkpoint). The page, the index entry, summary.json
and the cache key follow from the registry. A causal-abstraction section (interchange interventions,
DAS) is added this way once `ktlens.analysis.causal` is part of the package.

Caching (`cache`): each finished section is stored in ``DIR/.cache`` under a content hash of its input
files (model weights, SAE weights, shipped results), the ktlens version and the source of the modules
it depends on, and its settings; a rerun, interrupted or not, reuses every section whose hash is unchanged.
"""

from ktlens.analysis.reproduce.registry import DEFAULT_MODELS, SECTIONS, STUDIES, Context, Section, sections_of
from ktlens.analysis.reproduce.runner import Report, reproduce, section_key, summary_of

__all__ = ["reproduce", "Report", "section_key", "summary_of", "SECTIONS", "STUDIES", "DEFAULT_MODELS", "Section",
           "Context", "sections_of"]
