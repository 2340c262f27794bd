"""`ktlens probe`: JSON records, the --out files, position parsing, progress on stderr, a warning when the
sample is too small for a target's classes."""

import json

import pytest

from ktlens.analysis.probes import SmallSampleWarning
from tests.analysis.probes.conftest import make_kt_model


def test_probe_command_json_and_out(tmp_path, capsys):
    import argparse

    from ktlens.checkpoint import save_checkpoint
    from ktlens.commands import probe

    save_checkpoint(tmp_path / "model", make_kt_model())
    parser = argparse.ArgumentParser()
    probe.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["probe", "--model", str(tmp_path / "model"), "--json", "--out", str(tmp_path / "out"),
                              "--targets", "u", "re", "--hooks", "hook_src", "blocks.0.hook_resid_mid_cross"])
    assert args.run(args) == 0
    captured = capsys.readouterr()
    records = json.loads(captured.out)
    assert "probe" in captured.err  # the progress bar and the summary go to stderr
    assert len(records) == 4
    assert {"target", "hook", "accuracy", "control_accuracy", "shuffled_accuracy", "baseline"} <= set(records[0])
    html = (tmp_path / "out" / "probe_heatmap.html").read_text()
    assert "plotly" in html and len(html) > 1_000_000  # plotly.js inlined: opens offline
    assert (tmp_path / "out" / "probes.md").read_text().startswith("| target")
    assert probe.parse_positions("0,2") == [0, 2] and probe.parse_positions("-1") == -1
    with pytest.raises(ValueError, match="'middle'"):
        probe.parse_positions("middle")


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
