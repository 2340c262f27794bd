"""Typed presets: read-only tables, fresh copies, the shipped models' settings, and train_preset's result."""

import dataclasses
import json

import pytest
import torch

from ktlens.checkpoint import PRETRAINED_DIR, load_pretrained
from ktlens.experiments import ktheory, miiii
from ktlens.experiments.overrides import apply_overrides


@pytest.mark.parametrize("study", [ktheory, miiii])
def test_tables_are_read_only_and_get_preset_copies(study):
    with pytest.raises(TypeError):
        study.PRESETS["new"] = study.get_preset("tiny")
    copy = study.get_preset("tiny")
    copy.model["d_model"] = 1
    copy.train.lr = 123.0
    assert study.PRESETS["tiny"].model["d_model"] == 64 and study.PRESETS["tiny"].train.lr == 3e-3
    with pytest.raises(ValueError, match="'nope'"):
        study.get_preset("nope")
    for name, preset in study.PRESETS.items():
        assert preset.description, name
        assert type(preset).from_dict(json.loads(json.dumps(preset.to_dict()))) == preset, name


@pytest.mark.parametrize("study, shipped", [(ktheory, "ktheory-small"), (miiii, "miiii-small")])
def test_small_preset_builds_the_shipped_models_config(study, shipped):
    if not (PRETRAINED_DIR / shipped / "config.json").is_file():
        pytest.skip(f"{shipped} is not installed")
    model = (study.build_preset("small")[2] if study is ktheory else study.build("small")[2])
    reference = load_pretrained(shipped)
    assert model.cfg == reference.cfg
    assert model.task_spec == reference.task_spec


def test_miiii_small_matches_the_shipped_training_settings():
    path = PRETRAINED_DIR / "miiii-small" / "metrics.json"
    if not path.is_file():
        pytest.skip("miiii-small is not installed")
    recorded = miiii.MiiiiPreset.from_dict(json.loads(path.read_text())["preset_config"])
    assert recorded == dataclasses.replace(miiii.get_preset("small"), description="")


def test_presets_refuse_bad_sections():
    base = ktheory.get_preset("tiny")
    with pytest.raises(ValueError, match=r"unknown ModelConfig field\(s\) \['width'\]"):
        dataclasses.replace(base, model={"width": 3})
    with pytest.raises(ValueError, match=r"unknown TrainConfig field\(s\) \['speed'\]"):
        dataclasses.replace(base, train={"speed": 3})
    with pytest.raises(ValueError, match=r"unknown RemaindersSpec field\(s\) \['q'\]"):
        miiii.MiiiiPreset.from_dict({**miiii.get_preset("tiny").to_dict(), "task": {"q": 3}})
    with pytest.raises(ValueError, match=r"unknown KTheoryPreset fields \['extra'\]"):
        ktheory.KTheoryPreset.from_dict({**base.to_dict(), "extra": 1})


def test_ktheory_train_preset_returns_the_metrics_it_writes(tmp_path):
    preset = apply_overrides(ktheory.get_preset("tiny"), ["train.steps=6", "train.eval_every=3"])
    run = ktheory.train_preset(preset, tmp_path / "run", progress=False, name="probe-run")
    assert run.step == 6 and [r["step"] for r in run.history] == [3, 6]
    written = json.loads((tmp_path / "run" / "model" / "metrics.json").read_text())
    assert run.metrics == written
    assert written["preset"] == "probe-run" and written["steps"] == 6
    assert ktheory.KTheoryPreset.from_dict(written["preset_config"]) == preset
    # the domain metrics are those of the returned model, recomputed here
    data = ktheory.KTheoryTrainData(ktheory.build_preset(preset)[1], run.model)
    idx = data.test_idx
    with torch.no_grad():
        again = ktheory.sequence_metrics(run.model.eval(), data.tokens[idx], data.targets[idx], data.nontrivial[idx], data.small_p[idx])
    assert written["domain"]["test"] == pytest.approx(again)
