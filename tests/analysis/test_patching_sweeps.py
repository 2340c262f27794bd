"""Patching sweeps: identities that must hold exactly, errors that name the bad value, and attribution patching."""

import pytest
import torch

from ktlens.analysis.patching import (
    NODE_KINDS,
    Node,
    attribution_patch,
    correlation,
    ktheory_corruptions,
    logit_diff_metric,
    patch_nodes,
    patch_sweep,
)
from ktlens.models import KTheoryTransformer, RemaindersTransformer
from ktlens.tasks.remainders import RemaindersSpec

SPEC = {"primes": [2, 3, 5, 7], "r_max": 4, "e_max": 4, "label_order": "descending"}
KINDS = ["resid_pre", "resid_mid_cross", "attn_out", "cross_attn_out", "mlp_out", "attn_head", "cross_attn_head",
         "cross_attn_head_by_pos", "src", "mlp_neuron"]


@pytest.fixture(scope="module")
def model():
    return KTheoryTransformer.create(SPEC, d_model=32, n_heads=4, d_mlp=16, n_layers=2, normalization="pre", seed=3).eval()


@pytest.fixture(scope="module")
def pair(model):
    return model.make_batch([2, 3], [3, 4], [4, 2]), model.make_batch([3, 5], [3, 4], [4, 2])


def metric_of(model):
    return logit_diff_metric(model, 1, 1, 0)


@pytest.mark.parametrize("kind", KINDS)
def test_patching_a_run_with_itself_changes_nothing(model, pair, kind):
    clean, _ = pair
    metric = metric_of(model)
    for direction in ("denoise", "noise"):
        sweep = patch_sweep(model, clean, clean, kind, metric, direction=direction)
        assert torch.all(sweep.values == sweep.clean_value), kind
        estimate = attribution_patch(model, clean, clean, kind, metric, direction=direction)
        assert torch.all(estimate.values == estimate.clean_value)


def test_sweep_cells_match_hand_written_patches(model, pair):
    clean, corrupted = pair
    metric = metric_of(model)
    sweep = patch_sweep(model, clean, corrupted, "cross_attn_head_by_pos", metric)
    assert sweep.axis_names == ["layer", "pos", "head"] and sweep.values.shape == (2, model.seq_len, 4)
    _, cache = model.run_with_cache(clean)
    for layer, pos, head in [(0, 1, 2), (1, 0, 3)]:
        name = f"blocks.{layer}.cross_attn.hook_z"

        def hook(act, hook, pos=pos, head=head):
            act = act.clone()
            act[:, pos, head] = cache[hook.name][:, pos, head]
            return act

        expected = metric(model.run_with_hooks(corrupted, fwd_hooks=[(name, hook)]))
        assert sweep.values[layer, pos, head].item() == pytest.approx(expected.item(), abs=1e-6)
    noise = patch_sweep(model, clean, corrupted, "src", metric, direction="noise")
    assert noise.axis_labels == [["p", "r", "e"]]
    # r and e are the same in both runs: patching them changes nothing, in either direction
    assert noise.values[1] == noise.clean_value and noise.values[2] == noise.clean_value


def test_denoising_every_node_at_once_restores_the_clean_logits(model, pair):
    clean, corrupted = pair
    clean_logits, _ = model.run_with_cache(clean)  # a hooked run, like the patched one
    # every writer of the decoder stream and everything the source feeds: all clean
    nodes = [Node("src", pos=k) for k in range(3)] + [Node("resid_pre", 0, pos=k) for k in range(model.seq_len)]
    assert torch.equal(patch_nodes(model, clean, corrupted, nodes), clean_logits)
    heads = [Node(kind, l, head=h) for kind in ("attn_head", "cross_attn_head") for l in range(2) for h in range(4)]
    nodes = heads + [Node("mlp_neuron", l, neuron=n) for l in range(2) for n in range(16)] + [Node("resid_pre", 0)]
    assert torch.allclose(patch_nodes(model, clean, corrupted, nodes), clean_logits, atol=1e-5)
    corrupted_logits, _ = model.run_with_cache(corrupted)
    assert torch.allclose(patch_nodes(model, clean, corrupted, nodes, direction="noise"), corrupted_logits, atol=1e-5)


def test_bad_input_names_the_value(model, pair):
    clean, corrupted = pair
    metric = metric_of(model)
    with pytest.raises(ValueError, match="resid_nowhere"):
        patch_sweep(model, clean, corrupted, "resid_nowhere", metric)
    with pytest.raises(ValueError, match="head=4"):
        patch_nodes(model, clean, corrupted, [Node("cross_attn_head", 1, head=4)])
    with pytest.raises(ValueError, match="layer=2"):
        patch_nodes(model, clean, corrupted, [Node("attn_head", 2, head=0)])
    with pytest.raises(ValueError, match=r"\(2, 4\)|shape"):
        patch_sweep(model, clean, corrupted[:1], "attn_head", metric)
    with pytest.raises(ValueError, match="sideways"):
        patch_sweep(model, clean, corrupted, "attn_head", metric, direction="sideways")
    miiii = RemaindersTransformer.create(RemaindersSpec(p=5), d_model=16, n_heads=2, d_mlp=16).eval()
    with pytest.raises(ValueError, match="cross_attn_head"):
        patch_sweep(miiii, miiii.tokens_for([3]), miiii.tokens_for([4]), "cross_attn_head", lambda x: x.sum())


def test_miiii_sweep_over_positions():
    model = RemaindersTransformer.create(RemaindersSpec(p=5), d_model=16, n_heads=2, d_mlp=16, n_layers=2).eval()
    clean, corrupted = model.tokens_for([7, 8]), model.tokens_for([12, 13])  # the high digit differs
    metric = logit_diff_metric(model, 0, 2, 1, task=3)
    sweep = patch_sweep(model, clean, corrupted, "resid_pre", metric)
    assert sweep.axis_labels[1] == ["x0", "x1", "="]
    assert sweep.values[0, 0].item() == pytest.approx(sweep.clean_value, abs=1e-6)  # x0 carries the difference
    assert sweep.values[0, 1].item() == pytest.approx(sweep.corrupted_value, abs=1e-6)
    # the last block's MLP runs at '=' only: its row x0 does not exist, and patching it reaches nothing
    mlp = patch_sweep(model, clean, corrupted, "mlp_out", metric)
    assert mlp.values[1, 0].item() == mlp.corrupted_value and mlp.values[1, 1].item() == mlp.corrupted_value


def test_attribution_patching_is_exact_for_a_linear_path(model, pair):
    clean, corrupted = pair
    metric = metric_of(model)
    # the metric is linear in the final MLP's output at fixed LayerNorm scale: the estimate tracks the real patch
    real = patch_sweep(model, clean, corrupted, "cross_attn_head", metric)
    estimate = attribution_patch(model, clean, corrupted, "cross_attn_head", metric)
    assert estimate.values.shape == real.values.shape
    assert correlation(real, estimate) > 0.5
    for p in model.parameters():
        assert p.grad is None  # the backward pass leaves no parameter gradients behind


def test_corruptions_stay_in_distribution(model):
    corruptions = ktheory_corruptions(model, 3, 2, 3)
    assert corruptions["p"] == (2, 2, 3) or corruptions["p"] == (5, 2, 3)
    p, r, e = corruptions["u"]
    assert (p, r) == (3, 2) and e != 3 and (e % 3 == 0) != (3 % 3 == 0) or e in (1, 2, 4)
    model.check_domain([c[0] for c in corruptions.values()], [c[1] for c in corruptions.values()], [c[2] for c in corruptions.values()])


def test_every_node_kind_is_listed():
    assert set(KINDS) <= set(NODE_KINDS)
