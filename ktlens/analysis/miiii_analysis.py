"""Per task of a MIIII model: predicted vs found frequencies and the Fourier ablations, as one record.

``analyse(model)`` returns one `TaskAnalysis` per task q (in ``model.moduli`` order):

* ``predicted_frequencies``: ``{"x0": [...], "x1": [...], "centres": [[c0, c1], ...]}`` from p and q alone;
* ``found_frequencies``: ``{"x0", "x1", "pairs", "embedding"}`` from the per-task test on the readout
  and neuron spectra (``embedding``: the test on the shared digit embedding, the same for every task);
* ``characters``: the characters j identified from the found pairs (the components ablated);
* ``restricted_*`` / ``excluded_*``: accuracy and loss (nats, all p^2 inputs) of the ablation at the
  readout (``hook_resid_final``: the task's logits keep / lose the characters), and ``ablations`` with
  every place ablated (``resid``, ``neurons``, ``embed``);
* ``control_*``: the same readout ablation with as many characters that were NOT identified (the
  lowest j outside ``characters``; none when every character was identified): restricted to them the
  task should fail and without them it should stay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ktlens.analysis import miiii_frequencies as mf
from ktlens.analysis.fourier_ablation import WHERE, ablate_task, final_residual

__all__ = ["TaskAnalysis", "analyse", "PRIMARY"]

PRIMARY = "resid"  # the ablation reported as restricted/excluded


@dataclass
class TaskAnalysis:
    q: int
    predicted_frequencies: dict[str, Any]
    found_frequencies: dict[str, Any]
    matched: dict[str, Any]
    characters: list[int]
    full_accuracy: float
    full_loss: float
    restricted_accuracy: float
    excluded_accuracy: float
    restricted_loss: float
    excluded_loss: float
    ablations: dict[str, dict[str, float]] = field(default_factory=dict)
    control_characters: list[int] = field(default_factory=list)
    control_restricted_accuracy: float | None = None
    control_excluded_accuracy: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def analyse(model: Any, where: Sequence[str] = WHERE, alpha: float = mf.ALPHA) -> list[TaskAnalysis]:
    """Predicted and found frequencies of every task and the ablations at ``where`` (must include
    ``"resid"``, the one reported as restricted / excluded)."""
    if PRIMARY not in where:
        raise ValueError(f"where={list(where)} must include {PRIMARY!r}")
    bad = [w for w in where if w not in WHERE]
    if bad:
        raise ValueError(f"unknown ablation place(s) {bad}; known: {list(WHERE)}")
    spectra = mf.task_spectra(model)
    found = mf.found_frequencies(spectra, alpha)
    embedding = mf.significant_frequencies(spectra.embedding, alpha)
    resid = final_residual(model)
    out = []
    for q in model.moduli:
        pred = mf.predicted_frequencies(model.p, q)
        f = found[q]
        chars = mf.identified_characters(f, pred)
        abl = {w: ablate_task(model, q, chars, w, resid=resid if w == PRIMARY else None) for w in where}
        main = abl[PRIMARY]
        n_chars = max(1, (q - 1) // 2)
        control = [j for j in range(1, n_chars + 1) if j not in chars][: len(chars)]
        ctrl = ablate_task(model, q, control, PRIMARY, resid=resid) if control else None
        out.append(TaskAnalysis(
            q=q,
            predicted_frequencies={"x0": pred.x0, "x1": pred.x1, "centres": [list(c) for c in pred.centres]},
            found_frequencies={"x0": f.x0, "x1": f.x1, "pairs": [list(pr) for pr in f.pairs], "embedding": embedding},
            matched=mf.matches_prediction(f, pred),
            characters=chars,
            full_accuracy=main.full_accuracy,
            full_loss=main.full_loss,
            restricted_accuracy=main.restricted_accuracy,
            excluded_accuracy=main.excluded_accuracy,
            restricted_loss=main.restricted_loss,
            excluded_loss=main.excluded_loss,
            ablations={w: {k: getattr(r, k) for k in ("restricted_accuracy", "excluded_accuracy", "restricted_loss", "excluded_loss")}
                       for w, r in abl.items()},
            control_characters=control,
            control_restricted_accuracy=ctrl.restricted_accuracy if ctrl else None,
            control_excluded_accuracy=ctrl.excluded_accuracy if ctrl else None,
        ))
    return out
