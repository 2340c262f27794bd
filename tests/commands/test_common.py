"""`resolve_model`: what every --model argument accepts."""

import pytest

from ktlens.commands.common import PRETRAINED_DIR, resolve_model


def test_shipped_name_checkpoint_folder_and_run_folder(ktheory_run):
    assert resolve_model(ktheory_run / "model") == ktheory_run / "model"
    assert resolve_model(str(ktheory_run)) == ktheory_run / "model"  # a run folder from `ktlens train`
    for name in ("ktheory-small", "miiii-small"):
        if (PRETRAINED_DIR / name / "config.json").is_file():
            assert resolve_model(name) == PRETRAINED_DIR / name


def test_a_folder_above_checkpoints_lists_them(miiii_run):
    parent = miiii_run / "snapshots"
    with pytest.raises(ValueError, match="not a checkpoint folder") as err:
        resolve_model(parent)
    assert str(parent / "step_000000") in str(err.value) and str(parent / "step_000020") in str(err.value)
    with pytest.raises(ValueError, match=str(miiii_run / "model")):
        resolve_model(miiii_run.parent)  # the run folder's parent: the run's model/ and checkpoint/ are named


def test_missing_or_empty(tmp_path):
    with pytest.raises(ValueError, match="'nonexistent-model' is neither a shipped model"):
        resolve_model("nonexistent-model")
    with pytest.raises(ValueError, match="holds no checkpoint folder"):
        resolve_model(tmp_path)
