"""Run the sections of one or both studies with one progress display, caching each finished section."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ktlens.analysis.reproduce.cache import SectionCache, cache_key, code_hash, files_hash
from ktlens.analysis.reproduce.registry import DEFAULT_MODELS, STUDIES, Context, Section, sections_of

__all__ = ["Report", "reproduce", "section_key", "summary_of"]


@dataclass
class Report:
    """Every section's result (dicts in registry order), which of them were computed in this run (the
    rest came from the cache), and the run's flags."""

    sections: list[dict[str, Any]]
    computed: list[str]
    fast: bool
    models: dict[str, str]
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def studies(self) -> list[str]:
        return list(dict.fromkeys(s["study"] for s in self.sections))

    def summary(self) -> dict[str, Any]:
        return summary_of(self)


def summary_of(report: Report) -> dict[str, Any]:
    """``{study: {"model": name, section: {numbers}}}`` plus the run's flags: what summary.json holds."""
    import ktlens

    out: dict[str, Any] = {"ktlens_version": ktlens.__version__, "fast": int(report.fast)}
    for s in report.sections:
        out.setdefault(s["study"], {"model": report.models[s["study"]]})[s["name"]] = s["summary"]
    return out


@contextmanager
def _quiet():
    """Progress bars created inside (e.g. by transformer_lens' patching sweeps) start disabled, unless the
    caller asks for one: the run keeps one progress display. tqdm reads TQDM_DISABLE only at import."""
    from functools import partialmethod

    import tqdm.std

    original = tqdm.std.tqdm.__init__
    tqdm.std.tqdm.__init__ = partialmethod(original, disable=True)
    try:
        yield
    finally:
        tqdm.std.tqdm.__init__ = original


def section_key(section: Section, ctx: Context) -> str:
    """The content hash of (input files, code, settings) of one section (`ktlens.analysis.reproduce.cache`)."""
    modules = (section.run.__module__, "ktlens.analysis.reproduce.figures", *section.modules)
    return cache_key(section.key_name, files_hash(section.inputs(ctx)), code_hash(modules), {**ctx.settings, "model": ctx.model_name})


def reproduce(studies: Sequence[str], out: str | Path, fast: bool = False, models: Mapping[str, str] | None = None,
              progress: bool = True, only: Sequence[str] | None = None,
              settings: Mapping[str, Mapping[str, Any]] | None = None) -> Report:
    """Run the sections of ``studies`` (``"ktheory"``, ``"miiii"`` or ``"all"``), reusing ``out/.cache``.
    ``only``: section keys (``"ktheory.probes"``) to restrict to; ``settings``: per section key, entries
    that replace its full / ``fast`` settings (e.g. ``{"ktheory.patching": {"pairs": 1}}``).
    Returns the `Report` (nothing is drawn here)."""
    import torch
    from tqdm.auto import tqdm

    studies = list(STUDIES) if list(studies) == ["all"] else list(studies)
    sections = sections_of(studies)
    if only is not None:
        unknown = [k for k in only if k not in {s.key_name for s in sections}]
        if unknown:
            raise ValueError(f"unknown section {unknown[0]!r}; known: {', '.join(s.key_name for s in sections)}")
        sections = [s for s in sections if s.key_name in only]
    settings = dict(settings or {})
    for key, entries in settings.items():
        section = next((s for s in sections if s.key_name == key), None)
        if section is None:
            raise ValueError(f"settings for unknown section {key!r}; known: {', '.join(s.key_name for s in sections)}")
        bad = [k for k in entries if k not in section.settings(fast)]
        if bad:
            raise ValueError(f"section {key!r} has no setting {bad[0]!r}; its settings: {', '.join(section.settings(fast))}")
    names = {**DEFAULT_MODELS, **dict(models or {})}
    cache = SectionCache(Path(out) / ".cache")
    loaded: dict[str, Any] = {}
    results, computed = [], []
    t0 = time.perf_counter()
    bar = tqdm(sections, desc="reproduce", unit="section", disable=not progress, file=sys.stderr, leave=True)
    for section in bar:
        ctx = Context(section.study, names[section.study], {**section.settings(fast), **settings.get(section.key_name, {})}, fast, loaded)
        bar.set_postfix_str(section.key_name)
        key = section_key(section, ctx)
        result = cache.load(section.key_name, key)
        cached = result is not None
        if result is None:
            torch.manual_seed(0)
            start = time.perf_counter()
            with _quiet():  # one progress display: the analyses' own bars stay off
                result = dict(section.run(ctx))
            result["seconds"] = round(time.perf_counter() - start, 2)
            result.update(study=section.study, name=section.name, title=section.title, model=ctx.model_name, settings=ctx.settings)
            cache.save(section.key_name, key, result)
            computed.append(section.key_name)
        result = {**result, "cached": cached, "key": key}
        results.append(result)
    bar.close()
    return Report(results, computed, fast, {s: names[s] for s in studies}, round(time.perf_counter() - t0, 2))
