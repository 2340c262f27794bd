"""One override parser for both studies' presets."""

import dataclasses

import pytest

from ktlens.experiments import ktheory, miiii
from ktlens.experiments.overrides import apply_overrides


@pytest.mark.parametrize("study", [ktheory, miiii])
def test_values_are_json_and_the_input_is_left_as_it_was(study):
    base = study.get_preset("tiny")
    out = apply_overrides(base, ["train.lr=7e-4", "train.betas=[0.8,0.9]", "train.grad_clip=null", "model.n_layers=2",
                                 "model.normalization=pre"])
    assert out.train.lr == 7e-4 and out.train.betas == (0.8, 0.9) and out.train.grad_clip is None
    assert out.model["n_layers"] == 2 and out.model["normalization"] == "pre"
    assert isinstance(out.train, type(base.train))
    assert base == study.PRESETS["tiny"]  # neither the input nor the table changed
    assert out.train == dataclasses.replace(base.train, lr=7e-4, betas=(0.8, 0.9), grad_clip=None)


def test_task_sections_and_study_extras():
    k = apply_overrides(ktheory.get_preset("small"), ["grid.test_fraction=0.1", 'preset.label_order="ascending"'])
    assert k.grid.test_fraction == 0.1 and k.label_order == "ascending"
    assert k.grid == dataclasses.replace(ktheory.PRESETS["small"].grid, test_fraction=0.1)
    m = apply_overrides(miiii.get_preset("small"), ["task.masked=[2,3]", "task.digit_tokens=separate", "snapshot_every=0"])
    assert m.task.masked == (2, 3) and m.task.digit_tokens == "separate" and m.snapshot_every == 0


@pytest.mark.parametrize(
    "item, match",
    [
        ("nosuch.lr=1", "unknown section 'nosuch'"),
        ("train.nosuch=1", "unknown key 'nosuch' in section 'train'"),
        ("grid.nosuch=1", "unknown key 'nosuch' in section 'grid'"),
        ("model.d_vocab=3", "unknown key 'd_vocab' in section 'model'"),  # derived from the task
        ("model.seed=3", "unknown key 'seed'"),  # K-theory models are initialised with train.seed
        ("train.lr", "'train.lr' is not of the form"),
        ("train.steps=abc", "steps='abc': must be an integer"),
        ("grid.n_primes=2.5", "n_primes=2.5"),
        ("train.steps=0", "steps must be >= 1, got 0"),
        ("model.d_model=-1", "d_model=-1"),
        ("model.n_heads=3", "not divisible by n_heads=3"),
        ("label_order=up", "label_order must be one of .* got 'up'"),
        ("grid=3", "'grid' is a section"),
        ("description.x=1", "'description' is a value, not a section"),
    ],
)
def test_bad_override_is_a_value_error_naming_it(item, match):
    with pytest.raises(ValueError, match=match):
        apply_overrides(ktheory.get_preset("tiny"), [item])


def test_miiii_values_are_validated_by_their_dataclasses():
    with pytest.raises(ValueError, match="p=12: must be prime"):
        apply_overrides(miiii.get_preset("tiny"), ["task.p=12"])
    with pytest.raises(ValueError, match=r"masked=\[4\]"):
        apply_overrides(miiii.get_preset("tiny"), ["task.masked=[4]"])
    with pytest.raises(ValueError, match="snapshot_every must be an integer >= 0, got -1"):
        apply_overrides(miiii.get_preset("tiny"), ["snapshot_every=-1"])
    with pytest.raises(ValueError, match="a preset dataclass"):
        apply_overrides({"train": {}}, ["train.lr=1"])
