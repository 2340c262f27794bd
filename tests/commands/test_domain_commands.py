"""`ktlens dla / patch / attention / probe` on a bounded-domain model with scratch positions (untrained, tiny)."""

import json

import pytest

from ktlens.checkpoint import load_pretrained, save_checkpoint
from ktlens.cli import main
from tests.analysis.domain_model import domain_model

LABELS = ["re", "re/p", "re/p^2", "re/p^3", "n_4", "n_3", "n_2", "n_1"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("domain-model") / "model"
    save_checkpoint(path, domain_model())
    return path


def test_dla_names_scratch_positions_and_adds_up(checkpoint, capsys):
    assert main(["dla", "--model", str(checkpoint), "--input", "2,3,4", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["positions"]
    assert [row["label"] for row in rows] == LABELS
    assert [row["token"] for row in rows[:4]] == [12, 6, 3, 1]  # r*e = 12, then 12 // 2^h
    model = load_pretrained(checkpoint).eval()
    logits = model(model.make_batch([2], [3], [4]))[0].detach()
    for k, row in enumerate(rows):
        assert row["logit"] == pytest.approx(float(logits[k, row["token"]]), abs=1e-4)
        assert sum(c["contribution"] for c in row["components"]) == pytest.approx(row["logit"], abs=1e-3)
    assert main(["dla", "--model", str(checkpoint), "--input", "2,3,5"]) == 2  # r*e = 15 > 12
    assert "r*e=15" in capsys.readouterr().err


def test_patch_scores_the_first_differing_count(checkpoint, tmp_path, capsys):
    argv = ["patch", "--model", str(checkpoint), "--clean", "2,3,4", "--corrupt", "3,3,4", "--kinds", "resid_pre,cross_attn_head",
            "--out", str(tmp_path), "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    # re/p differs first (6 vs 4), but the metric reads the first count that differs: counts [3, 3] vs [4, 1, 1],
    # in descending order n_3 (0 vs 1) at decoder position 5
    assert report["metric"] == "logit[0] - logit[1] at position 5 (n_3)"
    resid = report["sweeps"][0]
    assert resid["axis_labels"][1] == [f"{k}:{name}" for k, name in enumerate(LABELS)]
    assert (tmp_path / "patching.html").exists()


def test_attention_summary_over_the_domain_names_scratch_positions(checkpoint, tmp_path):
    assert main(["attention", "--model", str(checkpoint), "--input", "3,4,3", "--summary-size", "32", "--out", str(tmp_path)]) == 0
    page = (tmp_path / "attention.html").read_text()
    rows = '"0:re","1:re\\u002fp","2:re\\u002fp^2","3:re\\u002fp^3","4:n_4","5:n_3","6:n_2","7:n_1"'  # plotly escapes '/'
    assert "Mean cross-attention" in page and page.count(rows) == 4 + 3  # 4 heads of the example, 3 summary panels


def test_probe_runs_over_scratch_positions(checkpoint, capsys):
    argv = ["probe", "--model", str(checkpoint), "--n-max", "40", "--no-control", "--no-progress", "--json", "--positions", "all",
            "--targets", "u", "n_at_position", "scratch_at_position", "--hooks", "blocks.1.hook_resid_post"]
    assert main(argv) == 0
    records = json.loads(capsys.readouterr().out)
    assert sorted(r["target"] for r in records) == ["n_at_position", "scratch_at_position", "u"]
