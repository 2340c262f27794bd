"""`ktlens probe --model M`: linear probes of a model's hooks (tiny settings: a small sample, no control)."""

import json

import pytest

from ktlens.analysis.probes import SmallSampleWarning
from ktlens.cli import main
from tests.analysis.probes.conftest import make_kt_model

TINY = ["--n-max", "64", "--no-control", "--targets", "u", "re"]


def test_json_records_and_out_folder(ktheory_run, tmp_path, capsys):
    argv = ["probe", "--model", str(ktheory_run), *TINY, "--hooks", "hook_src", "blocks.0.hook_resid_post",
            "--json", "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    records = json.loads(capsys.readouterr().out)
    assert sorted((r["target"], r["hook"]) for r in records) == sorted(
        (t, h) for t in ("u", "re") for h in ("hook_src", "blocks.0.hook_resid_post"))
    for r in records:
        assert r["control_accuracy"] is None  # --no-control
        if r["metric"] == "accuracy":
            assert 0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["baseline"] <= 1.0
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"probes.json", "probes.md", "probe_heatmap.html"}
    assert len(json.loads((tmp_path / "out" / "probes.json").read_text())) == 4
    assert (tmp_path / "out" / "probes.md").read_text().startswith("| target")
    html = (tmp_path / "out" / "probe_heatmap.html").read_text()
    assert "plotly" in html and len(html) > 1_000_000  # plotly.js inlined: opens offline


def test_table_names_targets_and_hooks(ktheory_run, capsys):
    assert main(["probe", "--model", str(ktheory_run / "model"), *TINY, "--hooks", "hook_src"]) == 0
    out = capsys.readouterr().out
    header, _, *rows = out.splitlines()
    assert header.split()[:3] == ["target", "hook", "pos"]
    assert [row.split()[:2] for row in rows[:2]] == [["u", "hook_src"], ["re", "hook_src"]]
    assert "2 probes on 64 examples" in out


@pytest.mark.parametrize("extra, message", [
    (["--hooks", "blocks.9.nosuch"], "'blocks.9.nosuch'"),
    (["--hooks", "hook_src", "--targets", "nosuch"], "'nosuch'"),
    (["--hooks", "hook_src", "--positions", "middle"], "'middle'"),
])
def test_bad_hook_target_or_position_exits_2_naming_it(ktheory_run, extra, message, capsys):
    assert main(["probe", "--model", str(ktheory_run), "--n-max", "64", "--no-control", *extra]) == 2
    assert message in capsys.readouterr().err


def test_probe_command_warns_on_a_small_sample(tmp_path, capsys):
    import argparse

    from ktlens.checkpoint import save_checkpoint
    from ktlens.commands import probe

    save_checkpoint(tmp_path / "model", make_kt_model())
    parser = argparse.ArgumentParser()
    probe.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["probe", "--model", str(tmp_path / "model"), "--n-max", "12", "--targets", "e",
                              "--hooks", "hook_src", "--no-control", "--no-progress"])
    with pytest.warns(SmallSampleWarning, match="'e': 12 examples"):
        assert args.run(args) == 0
    out = capsys.readouterr()
    assert "hook_src" in out.out and "probe/s" not in out.err
