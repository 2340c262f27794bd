"""Data-parallel training: 2 gloo ranks on CPU give the weights of one process with the same global batch.

One `mp.spawn` of 2 ranks runs every data-parallel case (starting processes is the slow part); the
single-process references are computed here, independently, with the unchanged loop. The cases are the
tiny K-theory preset (plain, grokfast) and SAEs on its MLP hook (TopK and BatchTopK with AuxK, ReLU with
resampling), whose firing counters are part of the compared state.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from ktlens.distributed import DistContext, resolve_device, shard
from ktlens.experiments.ktheory import KTheoryTrainData, build_preset
from ktlens.saes.training import SAETrainConfig, build_run
from ktlens.train import TrainConfig, TrainData, _batch_indices, train

WORLD = 2
STEPS = 30
INTERRUPT_AT = 15


def ktheory_tiny(**train_overrides) -> tuple[torch.nn.Module, TrainData, TrainConfig]:
    """The tiny K-theory preset, 30 steps: a fresh model, its data and the train config."""
    preset, dataset, model = build_preset("tiny")
    cfg = dataclasses.replace(preset.train, steps=STEPS, **train_overrides)
    return model, KTheoryTrainData(dataset, model), cfg


SAE_HOOK = "blocks.0.mlp.hook_post"
SAE_ROWS = 47  # odd: the ranks' slices of every SAE batch differ in size (24 and 23 rows)
DEAD_WINDOW = 2 * SAE_ROWS  # latents silent for 2 steps count as dead: AuxK acts within 30 steps
SAE_SETTINGS = {
    "topk": {"d_sae": 64, "k": 4, "k_aux": 16, "dead_window_rows": DEAD_WINDOW},
    "batchtopk": {"d_sae": 64, "k": 4, "k_aux": 16, "dead_window_rows": DEAD_WINDOW},
    # resampling every 8 steps (376 rows) of latents silent for 282 rows: a rank counting only its own slice
    # (192 rows in 8 steps) would find none to resample
    "relu": {"d_sae": 64, "l1_coefficient": 20.0, "resample_every": 8, "resample_stop": 25,
             "resample_window_rows": 6 * SAE_ROWS, "resample_rows": 256},
}


def sae_tiny(arch: str) -> tuple[torch.nn.Module, TrainData, TrainConfig]:
    """An SAE on the tiny K-theory model's MLP hook, 30 steps, with 8 latents dead from the start."""
    _, _, model = build_preset("tiny")
    cfg = SAETrainConfig(arch=arch, sae=SAE_SETTINGS[arch], store={"batch_rows": SAE_ROWS, "buffer_examples": 16, "model_batch": 16},
                         train={"steps": STEPS, "eval_every": STEPS, "warmup_steps": 2}, init_rows=256, eval_rows=128)
    sae, _, data = build_run(model.eval(), "tiny", SAE_HOOK, cfg)
    with torch.no_grad():
        sae.b_enc[:8] = -100.0
    return sae, data, cfg.train


# name -> builder of (model, data, config); any TrainData runs through the same helpers
CASES: dict[str, Callable[[], tuple[torch.nn.Module, TrainData, TrainConfig]]] = {
    "plain": lambda: ktheory_tiny(),
    "grokfast": lambda: ktheory_tiny(grokfast_lambda=2.0, grokfast_alpha=0.9),
    **{f"sae-{arch}": (lambda arch=arch: sae_tiny(arch)) for arch in SAE_SETTINGS},
}
SAE_CASES = sorted(name for name in CASES if name.startswith("sae-"))
RESUME_CASE = "grokfast"  # the resume checks carry the optimizer and the filter state across world sizes


class Interrupted:
    """A TrainData whose loss raises KeyboardInterrupt (like Ctrl-C) at call `at`, on every rank alike."""

    def __init__(self, data: TrainData, at: int):
        self.data, self.at, self.calls = data, at, 0
        self.n_train = data.n_train

    def batch(self, idx):
        return self.data.batch(idx)

    def loss(self, model, batch):
        if self.calls == self.at:
            raise KeyboardInterrupt
        self.calls += 1
        return self.data.loss(model, batch)

    def evaluate(self, model):
        return self.data.evaluate(model)


def save_weights(model: torch.nn.Module, path: Path) -> None:
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(path))


def save_resampled(data: TrainData, path: Path) -> None:
    """How many dead latents an SAE's training resampled (ReLU; None for other data)."""
    path.write_text(json.dumps(getattr(data, "n_resampled", None)))


def max_abs_diff(model: torch.nn.Module, path: Path) -> float:
    other = load_file(str(path))
    state = model.state_dict()
    assert set(state) == set(other)
    return max((state[k] - other[k]).abs().max().item() for k in state)


def _rank_main(rank: int, tmp: str) -> None:
    """One rank: every data-parallel case, each into its own files under `tmp`."""
    torch.set_num_threads(1)
    tmp_path = Path(tmp)
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), WORLD), rank=rank, world_size=WORLD)
    try:
        for name, build in CASES.items():
            model, data, cfg = build()
            result = train(model, data, cfg, progress=False)
            save_weights(model, tmp_path / f"ddp-{name}-rank{rank}.safetensors")
            save_resampled(data, tmp_path / f"ddp-{name}-resampled-rank{rank}.json")
            (tmp_path / f"ddp-{name}-history-rank{rank}.json").write_text(json.dumps(result.history))
        # a 2-rank run interrupted at step 15 (rank 0 checkpoints), resumed later in one process
        model, data, cfg = CASES[RESUME_CASE]()
        with pytest.raises(KeyboardInterrupt):
            train(model, Interrupted(data, INTERRUPT_AT), cfg, run_dir=tmp_path / "from-2-ranks", progress=False)
        dist.barrier()
        # a checkpoint written by one process, resumed by 2 ranks
        model, data, cfg = CASES[RESUME_CASE]()
        train(model, data, cfg, run_dir=tmp_path / "from-1-rank", progress=False)
        if rank == 0:
            save_weights(model, tmp_path / "ddp-resumed-from-1-rank.safetensors")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Single-process references, then the 2-rank runs (one spawn), all under one folder."""
    tmp_path = tmp_path_factory.mktemp("ddp")
    for name, build in CASES.items():
        model, data, cfg = build()
        result = train(model, data, cfg, progress=False)
        save_weights(model, tmp_path / f"single-{name}.safetensors")
        save_resampled(data, tmp_path / f"single-{name}-resampled.json")
        (tmp_path / f"single-{name}-history.json").write_text(json.dumps(result.history))
    model, data, cfg = CASES[RESUME_CASE]()
    with pytest.raises(KeyboardInterrupt):
        train(model, Interrupted(data, INTERRUPT_AT), cfg, run_dir=tmp_path / "from-1-rank", progress=False)
    mp.spawn(_rank_main, args=(str(tmp_path),), nprocs=WORLD, join=True)
    return tmp_path


def test_global_batches_include_uneven_splits():
    """The tiny preset's last batch of an epoch is odd, so the ranks' slices differ in size and the
    gradients must be weighted by slice size to match one process."""
    _, data, cfg = ktheory_tiny()
    sizes = {len(_batch_indices(cfg, data.n_train, step)) for step in range(STEPS)}
    assert any(size % WORLD for size in sizes), sizes


@pytest.mark.parametrize("name", sorted(CASES))
def test_two_ranks_match_one_process(runs: Path, name: str):
    """Every rank's weights and buffers (an SAE's firing counters and BatchTopK threshold included)."""
    for rank in range(WORLD):
        model, _, _ = CASES[name]()
        model.load_state_dict(load_file(str(runs / f"ddp-{name}-rank{rank}.safetensors")))
        assert max_abs_diff(model, runs / f"single-{name}.safetensors") <= 1e-5, rank
    fresh, _, _ = CASES[name]()  # and training did move the weights
    assert max_abs_diff(fresh, runs / f"single-{name}.safetensors") > 1e-2


@pytest.mark.parametrize("name", SAE_CASES)
def test_sae_firing_counters_are_those_of_one_process(runs: Path, name: str):
    """The counters behind AuxK and resampling count the global batch's rows on every rank: each rank
    counting only its own slice (24 or 23 rows a step) would leave them about half as large."""
    single = load_file(str(runs / f"single-{name}.safetensors"))["rows_since_fired"]
    resampled = json.loads((runs / f"single-{name}-resampled.json").read_text())
    if name == "sae-relu":  # resampling revives every dead latent: the counters mattered through how many it found
        assert resampled > 0
    else:  # latents still dead at the end: AuxK was acting on them
        assert single.max() >= DEAD_WINDOW and single.max() % SAE_ROWS == 0
    for rank in range(WORLD):
        assert torch.equal(load_file(str(runs / f"ddp-{name}-rank{rank}.safetensors"))["rows_since_fired"], single)
        assert json.loads((runs / f"ddp-{name}-resampled-rank{rank}.json").read_text()) == resampled


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_rank_reports_the_single_process_metrics(runs: Path, name: str):
    single = json.loads((runs / f"single-{name}-history.json").read_text())
    per_rank = [json.loads((runs / f"ddp-{name}-history-rank{r}.json").read_text()) for r in range(WORLD)]
    assert per_rank[0] == per_rank[1]
    assert [r["step"] for r in per_rank[0]] == [r["step"] for r in single] == [STEPS]
    for key, value in single[-1].items():
        assert per_rank[0][-1][key] == pytest.approx(value, abs=1e-4), key


def test_two_rank_checkpoint_resumes_in_one_process(runs: Path, tmp_path: Path):
    run_dir = tmp_path / "run"
    shutil.copytree(runs / "from-2-ranks", run_dir)
    assert json.loads((run_dir / "checkpoint" / "train_state.json").read_text())["step"] == INTERRUPT_AT
    model, data, cfg = CASES[RESUME_CASE]()
    result = train(model, data, cfg, run_dir=run_dir, progress=False)
    assert result.step == STEPS
    assert max_abs_diff(model, runs / f"single-{RESUME_CASE}.safetensors") <= 1e-5


def test_one_process_checkpoint_resumes_in_two_ranks(runs: Path):
    assert max_abs_diff(CASES[RESUME_CASE]()[0], runs / f"single-{RESUME_CASE}.safetensors") > 1e-2
    model, _, _ = CASES[RESUME_CASE]()
    model.load_state_dict(load_file(str(runs / "ddp-resumed-from-1-rank.safetensors")))
    assert max_abs_diff(model, runs / f"single-{RESUME_CASE}.safetensors") <= 1e-5


def test_shard_splits_a_batch_into_contiguous_slices():
    idx = torch.arange(7) * 3
    parts = [shard(idx, DistContext(r, 3)) for r in range(3)]
    assert [p.tolist() for p in parts] == [[0, 3, 6], [9, 12], [15, 18]]
    assert shard(idx, DistContext()) is idx


def test_shard_refuses_a_batch_smaller_than_the_world():
    with pytest.raises(ValueError, match="world_size=4"):
        shard(torch.arange(3), DistContext(0, 4))


def test_context_refuses_a_rank_outside_the_world():
    with pytest.raises(ValueError, match="rank"):
        DistContext(2, 2)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="'gpu'"):
        resolve_device("gpu")


def test_cuda_without_a_gpu_is_a_clear_error(capsys, monkeypatch):
    from ktlens.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["train", "ktheory", "--preset", "tiny", "--device", "cuda", "--out", "unused"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err
