"""Run folders shared by the command tests: an untrained tiny K-theory model and a short tiny MIIII run."""

import pytest

from ktlens.checkpoint import save_checkpoint
from ktlens.experiments import ktheory, miiii
from ktlens.experiments.overrides import apply_overrides


@pytest.fixture(scope="session")
def ktheory_run(tmp_path_factory):
    """A run folder laid out as `ktlens train` writes it, holding the tiny preset's freshly built model."""
    run = tmp_path_factory.mktemp("ktheory-run")
    save_checkpoint(run / "model", ktheory.build_preset("tiny")[2])
    return run


@pytest.fixture(scope="session")
def miiii_run(tmp_path_factory):
    """A 40-step tiny MIIII run with snapshots every 20 steps."""
    run = tmp_path_factory.mktemp("miiii-run")
    preset = apply_overrides(miiii.get_preset("tiny"), ["train.steps=40", "train.eval_every=20", "snapshot_every=20"])
    miiii.train_preset(preset, run, progress=False)
    return run
