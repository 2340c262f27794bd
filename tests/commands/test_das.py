"""`ktlens das`: tiny settings on the untrained tiny model."""

import json

from ktlens.cli import main
from ktlens.commands.das import KEYS

TINY = ["--rank", "1", "--steps", "2", "--n-train", "16", "--n-test", "16", "--no-progress"]


def test_json_best_location(ktheory_run, capsys):
    argv = ["das", "--model", str(ktheory_run), "--variable", "u", "--location", "blocks.0.hook_resid_post@bos",
            "--location", "hook_src", *TINY, "--json"]
    assert main(argv) == 0
    row = json.loads(capsys.readouterr().out)
    assert list(row) == list(KEYS)
    assert row["variable"] == "u" and row["location"] in ("blocks.0.hook_resid_post@bos", "hook_src@src")
    assert row["n_pairs"] == 16 and row["subspace_dim"] == 1 and 0 <= row["iia_random_model"] <= 1


def test_sweep_rows_and_bad_input(ktheory_run, capsys):
    assert main(["das", "--model", str(ktheory_run), "--variable", "n_1", "--location", "hook_src@e", *TINY, "--sweep"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == list(KEYS) and lines[1].split()[:2] == ["n_1", "hook_src@e"]
    assert main(["das", "--model", str(ktheory_run), "--variable", "v", *TINY]) == 2
    assert "'v'" in capsys.readouterr().err
    assert main(["das", "--model", str(ktheory_run), "--variable", "u", "--location", "blocks.0.nope", *TINY]) == 2
    assert "'blocks.0.nope'" in capsys.readouterr().err
