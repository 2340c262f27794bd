"""`ktlens sae train` then `ktlens sae eval --json` on a tiny model checkpoint."""

import json

import pytest

from ktlens.checkpoint import save_checkpoint
from ktlens.cli import main


@pytest.fixture
def tiny_ktheory_folder(tmp_path):
    from ktlens.experiments.ktheory import build_preset

    _, _, model = build_preset("tiny")
    return save_checkpoint(tmp_path / "tiny-model", model)


def test_sae_train_then_eval(tiny_ktheory_folder, tmp_path, capsys):
    out = tmp_path / "sae"
    rc = main([
        "sae", "train", "--model", str(tiny_ktheory_folder), "--hook", "blocks.0.mlp.hook_post", "--arch", "topk",
        "--set", "sae.d_sae=32", "sae.k=4", "train.steps=6", "train.eval_every=3", "store.batch_rows=32",
        "store.buffer_examples=16", "init_rows=64", "eval_rows=64", "--out", str(out), "--quiet",
    ])
    assert rc == 0 and (out / "cfg.json").is_file() and (out / "sae.safetensors").is_file()
    capsys.readouterr()
    assert main(["sae", "eval", "--sae", str(out), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["hook_name"] == "blocks.0.mlp.hook_post" and m["model_name"] == str(tiny_ktheory_folder)
    for key in ("l0", "explained_variance", "mse", "dead_features", "dense_features", "ce_loss_score", "accuracy_recovered"):
        assert key in m
    assert m["l0"] <= 4 and set(m["clean"]) == set(m["sae"]) == set(m["zero_ablation"]) >= {"loss", "ar_exact", "tf_exact"}


def test_bad_hook_and_bad_override_are_one_line_errors(tiny_ktheory_folder, tmp_path, capsys):
    args = ["sae", "train", "--model", str(tiny_ktheory_folder), "--out", str(tmp_path / "x"), "--quiet"]
    assert main(args + ["--hook", "blocks.0.mlp.hook_postt"]) == 2
    assert "hook 'blocks.0.mlp.hook_postt' does not exist" in capsys.readouterr().err
    assert main(args + ["--hook", "blocks.0.mlp.hook_post", "--set", "sae.k=0", "store.batch_rows=32"]) == 2
    assert "k must be in 1..d_sae" in capsys.readouterr().err
    assert main(["sae", "eval", "--sae", str(tmp_path / "nothing")]) == 2
    assert "no shipped SAE or SAE folder" in capsys.readouterr().err



def test_cuda_without_a_gpu_is_a_clear_error(tiny_ktheory_folder, tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = ["--model", str(tiny_ktheory_folder), "--device", "cuda"]
    assert main(["sae", "train", *args, "--hook", "blocks.0.mlp.hook_post", "--out", str(tmp_path / "x")]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err
    assert main(["sae", "eval", "--sae", "ktheory-small/blocks.0.mlp.hook_post", *args]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err
