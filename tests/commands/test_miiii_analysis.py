"""`ktlens miiii-analysis`: the JSON per task, the figures, the progress measures, bad input."""

import json

import numpy as np

from ktlens.cli import main
from ktlens.commands.miiii_analysis import JSON_KEYS


def test_json_has_every_task_with_the_documented_keys(miiii_run, capsys):
    assert main(["miiii-analysis", "--model", str(miiii_run), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["q"] for r in rows] == [2, 3, 5, 7]  # the tiny preset: p = 11
    for r in rows:
        assert tuple(r) == JSON_KEYS
        assert set(r["predicted_frequencies"]) >= {"x0", "x1"} and set(r["found_frequencies"]) >= {"x0", "x1"}
        for key in ("restricted_accuracy", "excluded_accuracy"):
            assert 0.0 <= r[key] <= 1.0
        assert r["restricted_loss"] >= 0 and r["excluded_loss"] >= 0
    # q = 2 at p = 11: 11 / 2 = 5.5, so frequency 5 on both axes
    assert rows[0]["predicted_frequencies"]["x0"] == [5] and rows[0]["predicted_frequencies"]["x1"] == [5]


def test_out_writes_analysis_figures_and_progress(miiii_run, tmp_path, capsys):
    out = tmp_path / "a"
    assert main(["miiii-analysis", "--model", str(miiii_run), "--out", str(out), "--progress"]) == 0
    printed = capsys.readouterr().out
    assert "| q | predicted x0 |" in printed and "written: " in printed
    names = {p.name for p in out.iterdir()}
    assert {"analysis.json", "task_spectra.html", "ablation_resid.html", "progress.json", "progress.html",
            "plotly.min.js", "index.html"} <= names
    assert sum(1 for p in out.iterdir() if p.stat().st_size > 1_000_000) == 1  # the one shared plotly.js
    measures = json.loads((out / "progress.json").read_text())
    steps = [r["step"] for r in measures["rows"]]
    assert steps == sorted(steps) and steps[0] == 0 and len(steps) == 3  # snapshots at 0, 20, 40
    for row in measures["rows"]:
        assert set(row["tasks"]) == {"2", "3", "5", "7"}
        assert row["weight_norm"] > 0 and 0 <= row["gini_embed"] <= 1
    index = (out / "index.html").read_text()
    assert "progress.html" in index and "task_spectra.html" in index


def test_bad_input_exits_2(miiii_run, ktheory_run, capsys):
    assert main(["miiii-analysis", "--model", str(ktheory_run)]) == 2
    assert "not a miiii model" in capsys.readouterr().err
    assert main(["miiii-analysis", "--model", str(miiii_run), "--progress"]) == 2
    assert "--progress needs --out" in capsys.readouterr().err
