"""IIA per variable x location x subspace size, with the random-model control at each variable's best cell."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ktlens.analysis.causal.interchange import FitConfig
from ktlens.analysis.causal.ktheory import (DASReport, Location, _data, das, default_locations, exact_triples,
                                            parse_location, position_indices, random_model_like)
from ktlens.tasks import ktheory_causal as kc

__all__ = ["sweep", "best_reports"]


def sweep(model, variables: Sequence[str], locations: Sequence[Location | str] | None = None, ranks: Sequence[int] = (1, 8),
          steps: int = 100, n_train: int = 1024, n_test: int = 512, seed: int = 0, random_model_control: bool = True,
          progress: bool = True, on_report: Callable[[list[DASReport]], None] | None = None,
          scratch_input: str = "base") -> list[DASReport]:
    """One ``das`` per (variable, location, rank) on the same pairs per variable; then, for each variable, the
    random-model control at its best cell (highest IIA, ties to the smaller rank). ``on_report`` is called with
    the reports so far after each fit (to save a long sweep as it goes). ``scratch_input``: as in ``das``."""
    from tqdm.auto import tqdm

    for v in variables:
        kc.check_variable(v)
    locs = [parse_location(l) if isinstance(l, str) else l for l in (locations or default_locations(model))]
    for loc in locs:
        position_indices(model, loc)
    triples = exact_triples(model)
    reports: list[DASReport] = []
    bar = tqdm(total=len(variables) * len(locs) * len(ranks), desc="DAS sweep", disable=not progress)
    for v in variables:
        data = _data(model, v, n_train, n_test, seed, triples, scratch_input=scratch_input)
        for loc in locs:
            for k in ranks:
                bar.set_postfix_str(f"{v} @ {loc.label} k={k}")
                reports.append(das(model, v, loc, FitConfig(rank=k, steps=steps, seed=seed), data=data, progress=False))
                bar.update()
                if on_report is not None:
                    on_report(reports)
    bar.close()
    if random_model_control:
        rm = random_model_like(model, seed=seed + 1)
        for v in variables:
            best = max((r for r in reports if r.variable == v), key=lambda r: (r.iia, -r.subspace_dim))
            data = _data(model, v, n_train, n_test, seed, triples, scratch_input=scratch_input)
            ctl = das(model, v, parse_location(best.location), FitConfig(rank=best.subspace_dim, steps=steps, seed=seed),
                      data=data, random_model=rm, progress=progress)
            best.iia_random_model = ctl.iia_random_model
    return reports


def best_reports(reports: Sequence[DASReport]) -> dict[str, DASReport]:
    """Per variable, the report with the highest IIA (ties: smaller rank, then earlier location)."""
    out: dict[str, DASReport] = {}
    for r in reports:
        cur = out.get(r.variable)
        if cur is None or (r.iia, -r.subspace_dim) > (cur.iia, -cur.subspace_dim):
            out[r.variable] = r
    return out


def iia_table(reports: Sequence[DASReport]) -> tuple[list[str], list[str], list[int], np.ndarray, np.ndarray]:
    """(variables, locations, ranks, IIA [V, L, K], random-subspace IIA [V, L, K]) for plotting."""
    variables = list(dict.fromkeys(r.variable for r in reports))
    locations = list(dict.fromkeys(r.location for r in reports))
    ranks = sorted({r.subspace_dim for r in reports})
    iia = np.full((len(variables), len(locations), len(ranks)), np.nan)
    rnd = iia.copy()
    for r in reports:
        i, j, k = variables.index(r.variable), locations.index(r.location), ranks.index(r.subspace_dim)
        iia[i, j, k], rnd[i, j, k] = r.iia, r.iia_random_subspace
    return variables, locations, ranks, iia, rnd
