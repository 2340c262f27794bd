"""SAE training through the one loop: same seed same numbers, resume, and a run folder that loads."""

import pytest
import torch

import ktlens
from ktlens.saes.training import SAETrainConfig, build_run, train_sae, with_overrides
from ktlens.train import train

HOOK = "blocks.0.mlp.hook_post"


def config(arch="relu", steps=24):
    sae = {"d_sae": 64, "l1_coefficient": 20.0, "l1_warmup_steps": 5, "resample_every": 8, "resample_stop": 20,
           "resample_window_rows": 48} if arch == "relu" else {"d_sae": 64, "k": 4, "dead_window_rows": 64}
    return SAETrainConfig(arch=arch, sae=sae, store={"batch_rows": 48, "buffer_examples": 16, "model_batch": 16},
                          train={"steps": steps, "eval_every": 8, "checkpoint_every": 8, "warmup_steps": 2},
                          init_rows=256, eval_rows=128)


def weights(sae):
    return torch.cat([v.flatten().double() for v in sae.state_dict().values()])


@pytest.mark.parametrize("arch", ["relu", "topk"])
def test_same_seed_same_numbers_and_resume_matches(tiny_ktheory, tmp_path, arch):
    cfg = config(arch)
    runs = []
    for _ in range(2):
        sae, _, data = build_run(tiny_ktheory, "tiny", HOOK, cfg)
        with torch.no_grad():
            sae.b_enc[:8] = -100.0  # dead from the start: resampled (ReLU) or trained by AuxK (TopK)
        runs.append((train(sae, data, cfg.train, progress=False), data))
    assert torch.equal(weights(runs[0][0].model), weights(runs[1][0].model))
    assert runs[0][0].history == runs[1][0].history
    if arch == "relu":
        assert runs[0][1].n_resampled > 0  # resampling happened inside the compared runs
    # interrupted at step 13 and resumed: the uninterrupted result
    sae, _, data = build_run(tiny_ktheory, "tiny", HOOK, cfg)
    with torch.no_grad():
        sae.b_enc[:8] = -100.0
    after_step = data.after_step

    def stop_at_13(model, opt, steps_done):
        after_step(model, opt, steps_done)
        if steps_done == 13:
            raise KeyboardInterrupt

    data.after_step = stop_at_13
    with pytest.raises(KeyboardInterrupt):
        train(sae, data, cfg.train, run_dir=tmp_path, progress=False)
    sae, _, data = build_run(tiny_ktheory, "tiny", HOOK, cfg)
    resumed = train(sae, data, cfg.train, run_dir=tmp_path, progress=False)
    assert resumed.step == 24
    assert torch.equal(weights(resumed.model), weights(runs[0][0].model))
    def drop_running_loss(history):  # the loop's running loss average restarts on resume
        return [{k: v for k, v in record.items() if k != "train_loss"} for record in history]

    assert drop_running_loss(resumed.history) == drop_running_loss(runs[0][0].history)


def test_train_sae_writes_a_loadable_sae_with_metrics(tiny_ktheory, tmp_path):
    sae, metrics = train_sae(tiny_ktheory, "tiny", HOOK, config("topk", steps=16), tmp_path / "out", progress=False)
    loaded = ktlens.load_sae(tmp_path / "out")
    assert loaded.cfg.hook_name == HOOK and loaded.cfg.model_name == "tiny" and loaded.input_scale.item() == 1.0
    x = torch.randn(3, 256).relu()
    torch.testing.assert_close(loaded(x), sae(x))
    assert metrics["l0"] <= 4 and 0 < metrics["explained_variance"] <= 1
    assert metrics["training"]["steps"] == 16


def test_overrides_reach_the_sections_and_bad_keys_are_named():
    cfg = with_overrides(SAETrainConfig(), ["sae.k=8", "train.lr=3e-4", "store.batch_rows=512", "arch=relu"])
    assert cfg.sae["k"] == 8 and cfg.train.lr == 3e-4 and cfg.store.batch_rows == 512 and cfg.train.batch_size == 512
    assert cfg.arch == "relu"
    with pytest.raises(ValueError, match="train has no field 'lrr'"):
        with_overrides(SAETrainConfig(), ["train.lrr=1"])
    with pytest.raises(ValueError, match="arch must be one of"):
        with_overrides(SAETrainConfig(), ["arch=gated"])
    with pytest.raises(ValueError, match="batch_rows must be >= 1, got 0"):
        with_overrides(SAETrainConfig(), ["store.batch_rows=0"])


def test_downstream_term_is_the_error_seen_through_w_out(tiny_ktheory):
    from ktlens.saes.training import downstream_matrix

    cfg = with_overrides(config("topk"), ["downstream_weight=2.0"])
    sae, _, data = build_run(tiny_ktheory, "tiny", HOOK, cfg)
    x, step = data.batch_at(0)
    w = tiny_ktheory.blocks[0].mlp.W_out.detach()
    p = w * (w.shape[0] ** 0.5 / w.norm())
    torch.testing.assert_close(downstream_matrix(tiny_ktheory, HOOK), p)
    out = sae.training_loss(x, 0)
    expected = out["loss"] + 2.0 * (((x - out["recons"]) * sae.input_scale) @ p).pow(2).sum(-1).mean()
    sae.rows_since_fired.zero_()
    torch.testing.assert_close(data.loss(sae, (x, step)), expected)
    with pytest.raises(ValueError, match="needs an MLP hidden-layer hook"):
        build_run(tiny_ktheory, "tiny", "blocks.0.hook_resid_post", cfg)
