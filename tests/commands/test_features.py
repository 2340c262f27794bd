"""`ktlens features` and `ktlens dashboard` on a tiny run folder."""

import json

from ktlens.cli import main


def test_features_json_and_dashboard(ktheory_run, tmp_path, capsys):
    assert main(["features", "--model", str(ktheory_run), "--hook", "blocks.0.mlp.hook_post", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"units", "coverage"} and out["units"][0]["unit"] == 0
    assert main(["features", "--model", str(ktheory_run), "--hook", "blocks.9.mlp.hook_post"]) == 2
    assert "blocks.9.mlp.hook_post" in capsys.readouterr().err
    assert main(["dashboard", "--model", str(ktheory_run), "--hook", "blocks.0.mlp.hook_post", "--out", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "index.html").exists() and (tmp_path / "d" / "assets" / "plotly.min.js").exists()


def test_sae_and_hook_exclude_each_other(ktheory_run, capsys):
    assert main(["features", "--model", str(ktheory_run), "--sae", "x", "--hook", "blocks.0.mlp.hook_post"]) == 2
    assert "--hook and --sae" in capsys.readouterr().err
