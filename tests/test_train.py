"""The training loop: learning, determinism, resume, divergence, and the K-theory preset adapter."""

import dataclasses
import math

import pytest
import torch

from ktlens.experiments.ktheory import KTheoryTrainData, build_preset, get_preset
from ktlens.experiments.overrides import apply_overrides
from ktlens.train import TrainConfig, TrainingDiverged, _batch_indices, train


def tiny(steps=None, preset="tiny", **train_overrides):
    preset, dataset, model = build_preset(preset)
    cfg = dataclasses.replace(preset.train, **train_overrides)
    if steps is not None:
        cfg = dataclasses.replace(cfg, steps=steps)
    return model, KTheoryTrainData(dataset, model), cfg


def weights(model):
    return torch.cat([p.detach().flatten() for p in model.state_dict().values()])


def test_tiny_model_learns_tiny_grid():
    model, data, cfg = tiny()
    with torch.no_grad():
        before = data.evaluate(model.eval())
    assert before["train_ar_exact"] < 0.2 and before["train_loss"] > 1.0
    result = train(model, data, cfg, progress=False)
    last = result.final
    assert last["train_ar_exact"] == 1.0
    assert last["train_loss"] < 0.05
    # autoregressive decoding agrees with the teacher-forced whole-sequence match on a memorized set
    assert last["train_tf_exact"] == 1.0


def test_descending_label_order_learns_and_predicts_in_natural_order():
    model, data, cfg = tiny(preset=apply_overrides(get_preset("tiny"), ["label_order=descending"]))
    ds = data.dataset
    assert model.task_spec["label_order"] == "descending"
    # decoder input is [BOS, n_L, ..., n_2]; training targets are [n_L, ..., n_1]
    assert torch.equal(data.tokens[:, 4:], torch.as_tensor(ds.counts[:, ::-1][:, :-1].copy()))
    assert torch.equal(data.targets, torch.as_tensor(ds.counts[:, ::-1].copy()))
    last = train(model, data, cfg, progress=False).final
    assert last["train_ar_exact"] == 1.0
    i = int(data.train_idx[0])
    expected = [int(c) for c in ds.counts[i]]
    while expected and expected[-1] == 0:
        expected.pop()
    assert model.predict([int(ds.p[i])], [int(ds.r[i])], [int(ds.e[i])]) == [expected]


def test_same_seed_same_numbers_and_other_seed_differs():
    runs = [train(*tiny(steps=30), progress=False) for _ in range(2)]
    assert torch.equal(weights(runs[0].model), weights(runs[1].model))
    assert runs[0].history == runs[1].history
    model, data, cfg = tiny(steps=30, seed=1)
    other = train(model, data, cfg, progress=False)
    assert not torch.equal(weights(other.model), weights(runs[0].model))


def test_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path):
    straight = train(*tiny(steps=40, eval_every=10, checkpoint_every=10, grokfast_lambda=1.0), progress=False)

    def interrupt(record):
        if record["step"] == 20:
            raise KeyboardInterrupt

    model, data, cfg = tiny(steps=40, eval_every=10, checkpoint_every=10, grokfast_lambda=1.0)
    with pytest.raises(KeyboardInterrupt):
        train(model, data, cfg, run_dir=tmp_path, progress=False, on_eval=interrupt)
    fresh, data, cfg = tiny(steps=40, eval_every=10, checkpoint_every=10, grokfast_lambda=1.0)
    resumed = train(fresh, data, cfg, run_dir=tmp_path, progress=False)
    assert resumed.step == 40
    assert torch.equal(weights(resumed.model), weights(straight.model))
    assert resumed.history == straight.history


def test_resume_refuses_a_different_config(tmp_path):
    model, data, cfg = tiny(steps=5, eval_every=5)
    train(model, data, cfg, run_dir=tmp_path, progress=False)
    model, data, cfg = tiny(steps=5, eval_every=5, lr=0.5)
    with pytest.raises(ValueError, match="different TrainConfig"):
        train(model, data, cfg, run_dir=tmp_path, progress=False)


def test_nan_loss_stops_with_a_clear_error():
    model, data, cfg = tiny(steps=5)

    class Poisoned:
        n_train = data.n_train
        batch = data.batch
        evaluate = data.evaluate

        def loss(self, model, batch):
            return data.loss(model, batch) * float("nan")

    with pytest.raises(TrainingDiverged, match="step 0"):
        train(model, Poisoned(), cfg, progress=False)


def test_batches_cover_each_epoch_exactly_once():
    cfg = TrainConfig(batch_size=7, seed=3)
    seen = torch.cat([_batch_indices(cfg, 30, s) for s in range(5)])  # 5 batches = one epoch of 30
    assert sorted(seen.tolist()) == list(range(30))
    assert not torch.equal(_batch_indices(cfg, 30, 0), _batch_indices(cfg, 30, 5))


@pytest.mark.parametrize(
    "kwargs, match",
    [({"steps": 0}, "steps"), ({"batch_size": 0}, "batch_size"), ({"schedule": "step"}, "schedule"), ({"grokfast_alpha": 1.0}, "grokfast_alpha"), ({"decay_fraction": 0.0}, "decay_fraction"), ({"adam_eps": 0.0}, "adam_eps")],
)
def test_bad_train_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_learning_rate_schedule():
    cfg = TrainConfig(steps=100, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert cfg.lr_at(0) == pytest.approx(0.1)
    assert cfg.lr_at(9) == pytest.approx(1.0)
    assert cfg.lr_at(10) == pytest.approx(1.0)
    assert cfg.lr_at(99) == pytest.approx(0.1, abs=1e-3)
    assert cfg.lr_at(55) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))


def test_decay_fraction_holds_the_peak_then_decays():
    cfg = TrainConfig(steps=110, lr=1.0, warmup_steps=10, min_lr_ratio=0.1, decay_fraction=0.5)
    assert [cfg.lr_at(s) for s in (10, 30, 60)] == [1.0, 1.0, 1.0]  # constant over the first half after warmup
    assert cfg.lr_at(85) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))  # cosine midpoint of the decay
    assert cfg.lr_at(109) == pytest.approx(0.1, abs=1e-3)


def test_adam_eps_reaches_the_optimizer():
    start = weights(tiny()[0])
    moved = {eps: (weights(train(*tiny(steps=5, adam_eps=eps, warmup_steps=1, weight_decay=0.0), progress=False).model) - start).abs().max().item() for eps in (1e-8, 1e3)}
    assert moved[1e3] < 1e-3 * moved[1e-8]  # a huge epsilon turns Adam's normalized steps into tiny ones
