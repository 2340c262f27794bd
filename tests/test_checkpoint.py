"""Checkpoints: exact round trip, and clear errors for corrupt, truncated or mismatched folders."""

import json
import shutil

import pytest
import torch

from ktlens import load_pretrained
from ktlens.checkpoint import load_checkpoint, save_checkpoint
from ktlens.models import KTheoryTransformer

SPEC = {"primes": [2, 3, 5, 7], "r_max": 4, "e_max": 4, "seq_len": 4, "max_count": 8, "label_order": "ascending"}


@pytest.fixture
def saved(tmp_path):
    model = KTheoryTransformer.create(SPEC, d_model=32, n_heads=4, d_mlp=64, seed=3)
    return model, save_checkpoint(tmp_path / "ckpt", model)


def test_round_trip_is_exact(saved):
    model, path = saved
    loaded = load_checkpoint(path)
    assert type(loaded) is KTheoryTransformer
    assert loaded.task_spec == model.task_spec and loaded.cfg == model.cfg
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    tokens = model.make_batch(p=[2, 3, 7], r=[1, 2, 4], e=[4, 2, 3])
    assert torch.equal(model.eval()(tokens), loaded(tokens))
    assert load_pretrained(path).cfg == model.cfg


def test_overwriting_a_checkpoint_keeps_it_loadable(saved):
    model, path = saved
    with torch.no_grad():
        model.unembed.b_U += 1
    save_checkpoint(path, model)
    assert torch.equal(load_checkpoint(path).unembed.b_U, model.unembed.b_U)


def test_truncated_weights(saved):
    _, path = saved
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_checkpoint(path)


def test_garbage_weights(saved):
    _, path = saved
    (path / "model.safetensors").write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(ValueError, match="model.safetensors"):
        load_checkpoint(path)


def test_corrupt_config(saved):
    _, path = saved
    (path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_checkpoint(path)


def test_mismatched_config(saved):
    _, path = saved
    meta = json.loads((path / "config.json").read_text())
    meta["model_config"]["d_mlp"] = 128
    (path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="shape"):
        load_checkpoint(path)


def test_unknown_model_type_and_missing_files(saved, tmp_path):
    _, path = saved
    other = tmp_path / "other"
    shutil.copytree(path, other)
    meta = json.loads((other / "config.json").read_text())
    meta["model_type"] = "gpt"
    (other / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="gpt"):
        load_checkpoint(other)
    (path / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="missing"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match="no-such-model"):
        load_pretrained("no-such-model")


def test_non_finite_weights_are_refused(saved):
    model, path = saved
    with torch.no_grad():
        model.unembed.b_U[0] = float("nan")
    save_checkpoint(path, model)
    with pytest.raises(ValueError, match="NaN"):
        load_checkpoint(path)
