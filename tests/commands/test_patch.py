"""`ktlens patch`: labelled sweeps, an offline page, JSON; bad input is one line."""

import json

from ktlens.cli import main


def test_patch_writes_labelled_sweeps(tmp_path, capsys):
    out = tmp_path / "patch"
    args = ["patch", "--model", "ktheory-small", "--clean", "5,4,9", "--corrupt", "7,4,9", "--kinds", "cross_attn_head,src", "--out", str(out), "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert "position 6 (n_3)" in report["metric"]
    src, heads = {s["kind"]: s for s in report["sweeps"]}["src"], {s["kind"]: s for s in report["sweeps"]}["cross_attn_head"]
    assert src["axis_labels"] == [["p", "r", "e"]]
    # only p differs: patching the clean p restores the clean run exactly, r and e do nothing
    assert abs(src["normalized"][0] - 1) < 1e-5 and abs(src["normalized"][1]) < 1e-5 and abs(src["normalized"][2]) < 1e-5
    assert heads["axis_labels"] == [["L0", "L1"], ["C0", "C1", "C2", "C3"]] and -1 <= heads["correlation"] <= 1
    html = (out / "patching.html").read_text()
    assert "cross_attn_head" in html and html.count("plotly.js v") <= 2
    assert json.loads((out / "patching.json").read_text())["sweeps"][0]["kind"] == "cross_attn_head"


def test_patch_bad_input(tmp_path, capsys):
    assert main(["patch", "--model", "ktheory-small", "--clean", "5,4,9", "--corrupt", "5,4,9", "--out", str(tmp_path)]) == 2
    assert "same label" in capsys.readouterr().err
    assert main(["patch", "--model", "ktheory-small", "--clean", "5,4,9", "--corrupt", "7,4,9", "--kinds", "nowhere", "--out", str(tmp_path)]) == 2
    assert "nowhere" in capsys.readouterr().err
