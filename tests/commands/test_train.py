"""`ktlens train STUDY --preset P --set section.key=value --out DIR` for both studies."""

import json

import pytest
import torch

from ktlens.checkpoint import load_checkpoint
from ktlens.cli import main
from ktlens.experiments import ktheory, miiii
from ktlens.experiments.overrides import apply_overrides


def weights(model):
    return torch.cat([p.detach().flatten() for p in model.state_dict().values()])


def test_ktheory_run_folder_resume_and_refusal(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "ktheory", "--preset", "tiny", "--set", "train.steps=20", "train.eval_every=10",
            "model.n_layers=2", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.rstrip().endswith(f"model written to {out}/model")
    final = json.loads(printed[: printed.rindex("}") + 1])
    assert final["step"] == 20
    assert {p.name for p in (out / "model").iterdir()} == {"config.json", "model.safetensors", "metrics.json", "history.json"}
    assert (out / "checkpoint" / "train_state.json").is_file()
    metrics = json.loads((out / "model" / "metrics.json").read_text())
    assert metrics["steps"] == 20 and metrics["final_eval"] == final
    assert metrics["preset"] == "tiny train.steps=20 train.eval_every=10 model.n_layers=2"
    model = load_checkpoint(out / "model")
    assert model.cfg.n_layers == 2 and model.cfg.d_model == 64  # the override, and the rest of the preset
    # the same model as building the preset with the same overrides in Python and training it
    preset = apply_overrides(ktheory.get_preset("tiny"), ["train.steps=20", "train.eval_every=10", "model.n_layers=2"])
    again = ktheory.train_preset(preset, tmp_path / "python", progress=False)
    assert torch.equal(weights(model), weights(again.model)) and again.final == final
    # rerunning the finished run resumes at step 20: nothing more is trained, the same model is written
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out.split("\nmodel written")[0]) == final
    assert torch.equal(weights(load_checkpoint(out / "model")), weights(model))
    # the same folder with other settings is refused
    assert main(argv + ["--set", "train.lr=0.5"]) == 2
    assert "different TrainConfig" in capsys.readouterr().err


def test_miiii_run_folder_and_resume(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "miiii", "--preset", "tiny", "--set", "train.steps=20", "train.eval_every=10",
            "model.d_mlp=32", "snapshot_every=10", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    capsys.readouterr()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == json.loads((out / "model" / "metrics.json").read_text())
    assert metrics["steps"] == 20 and [r["step"] for r in metrics["history"]] == [10, 20]
    assert metrics["preset_config"]["train"]["steps"] == 20 and metrics["preset_config"]["model"]["d_mlp"] == 32
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == ["step_000000", "step_000010", "step_000020"]
    model = load_checkpoint(out / "model")
    assert model.cfg.d_mlp == 32 and model.cfg.d_model == 64
    assert main(argv) == 0  # resumes the finished run: same model, same history
    capsys.readouterr()
    assert torch.equal(weights(load_checkpoint(out / "model")), weights(model))
    assert json.loads((out / "metrics.json").read_text())["history"] == metrics["history"]


def test_list_and_bad_overrides(tmp_path, capsys):
    assert main(["train", "ktheory", "--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == list(ktheory.PRESETS)
    assert main(["train", "miiii", "--list"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == list(miiii.PRESETS)
    for study, item, message in [
        ("miiii", "nosuch.lr=1", "unknown section 'nosuch'"),
        ("ktheory", "train.nosuch=1", "unknown key 'nosuch' in section 'train'"),
        ("ktheory", "model.d_model=-1", "d_model=-1"),
        ("miiii", "task.p=12", "p=12: must be prime"),
    ]:
        assert main(["train", study, "--preset", "tiny", "--set", item, "--out", str(tmp_path / "x")]) == 2
        assert message in capsys.readouterr().err
    assert main(["train", "ktheory", "--preset", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown K-theory preset 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # nothing was written


@pytest.mark.parametrize("flag, value", [("--threads", "0"), ("--steps", "0")])
def test_bad_numbers(flag, value, tmp_path, capsys):
    assert main(["train", "ktheory", "--preset", "tiny", flag, value, "--out", str(tmp_path / "x")]) == 2
    assert f"{flag} must be >= 1, got 0" in capsys.readouterr().err
