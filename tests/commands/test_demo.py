"""`ktlens demo --model M`: the default grid's summary, then the model checked against the exact answers."""

import re

import numpy as np

from ktlens.checkpoint import load_checkpoint
from ktlens.cli import main
from ktlens.tasks.ktheory import summand_counts
from ktlens.tasks.ktheory_data import KTheoryGridSpec, build_dataset


def test_demo_checks_the_model_on_its_own_grid(ktheory_run, capsys):
    assert main(["demo", "--model", str(ktheory_run)]) == 0
    out = capsys.readouterr().out
    assert "25 primes (max 97), r <= 20, e <= 20: 10000 triples" in out  # the default grid's summary
    assert "trained on 4 primes, r <= 4, e <= 4" in out
    # the printed exact-match counts, recomputed from the model's answers and the group of each triple
    model = load_checkpoint(ktheory_run / "model")
    grid = build_dataset(KTheoryGridSpec.from_dict(model.task_spec["grid"]))
    predicted = model.predict(grid.p, grid.r, grid.e)
    ok = np.array([pred == summand_counts(int(p), int(r), int(e)) for pred, p, r, e in zip(predicted, grid.p, grid.r, grid.e)])
    lines = dict(re.findall(r"autoregressive exact match, (all|held-out): [0-9.]+ \((\d+/\d+)\)", out))
    assert lines == {"all": f"{ok.sum()}/64", "held-out": f"{ok[grid.test_idx].sum()}/{len(grid.test_idx)}"}
    examples = re.findall(r"K_(\d+)\(F_(\d+)\[x\]/\(x\^(\d+)\)\): predicted (\[.*?\])  true (\[.*?\])", out)
    assert len(examples) == 5
    for degree, p, e, _, truth in examples:
        assert truth == str(summand_counts(int(p), (int(degree) + 1) // 2, int(e)))


def test_demo_refuses_a_missing_model(tmp_path, capsys):
    assert main(["demo", "--model", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err
