"""SAE files round-trip, name their parent model and hook, and refuse corrupt or mismatched input."""

import json

import pytest
import torch

import ktlens
from ktlens.saes import TopKSAE, TopKSAEConfig, load_sae, save_sae
from ktlens.saes.activations import ActivationStore, StoreConfig
from ktlens.saes.domains import domain_of
from ktlens.saes.metrics import evaluate_sae


def small_sae(d_in=8, **kw):
    sae = TopKSAE(TopKSAEConfig(d_in=d_in, d_sae=16, k=2, model_name="m", hook_name="blocks.0.mlp.hook_post", **kw))
    with torch.no_grad():
        sae.b_enc.normal_()
        sae.b_dec.normal_()
    return sae


def test_round_trip_gives_the_same_map_and_names(tmp_path):
    sae = small_sae()
    save_sae(sae, tmp_path / "s", metrics={"l0": 2.0})
    meta = json.loads((tmp_path / "s" / "cfg.json").read_text())
    assert meta["config"]["model_name"] == "m" and meta["config"]["hook_name"] == "blocks.0.mlp.hook_post"
    assert meta["config"]["architecture"] == "topk"
    loaded = ktlens.load_sae(str(tmp_path / "s"))
    assert isinstance(loaded, TopKSAE) and loaded.cfg == sae.cfg
    x = torch.randn(5, 8)
    torch.testing.assert_close(loaded(x), sae(x))


def test_corrupt_or_missing_files_name_the_file(tmp_path):
    save_sae(small_sae(), tmp_path / "s")
    weights = tmp_path / "s" / "sae.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match="sae.safetensors is corrupt"):
        load_sae(tmp_path / "s")
    (tmp_path / "s" / "cfg.json").write_text("{not json")
    with pytest.raises(ValueError, match="cfg.json is corrupt"):
        load_sae(tmp_path / "s")
    with pytest.raises(ValueError, match="no shipped SAE or SAE folder named 'nowhere'"):
        load_sae("nowhere")


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    save_sae(small_sae(), tmp_path / "s")
    meta = json.loads((tmp_path / "s" / "cfg.json").read_text())
    meta["config"]["d_sae"] = 32
    (tmp_path / "s" / "cfg.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"W_dec has shape \(16, 8\), its config expects \(32, 8\)"):
        load_sae(tmp_path / "s")
    meta["config"]["architecture"] = "gated"
    (tmp_path / "s" / "cfg.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="unknown SAE architecture 'gated'"):
        load_sae(tmp_path / "s")


def test_hook_that_does_not_exist_and_width_mismatch(tiny_ktheory):
    with pytest.raises(ValueError, match="hook 'blocks.7.mlp.hook_post' does not exist"):
        ActivationStore(tiny_ktheory, "blocks.7.mlp.hook_post", domain_of(tiny_ktheory))
    sae = small_sae(d_in=8)
    with pytest.raises(ValueError, match=r"SAE d_in=8 does not match hook 'blocks.0.mlp.hook_post', whose rows have width 256"):
        evaluate_sae(sae, tiny_ktheory, ActivationStore(tiny_ktheory, "blocks.0.mlp.hook_post", domain_of(tiny_ktheory), StoreConfig(batch_rows=1)))


def test_shipped_saes_are_listed_and_load():
    names = ktlens.pretrained_saes()
    for name in names:
        sae = ktlens.load_sae(name)
        model_name, hook = name.split("/")
        assert sae.cfg.model_name == model_name and sae.cfg.hook_name == hook
