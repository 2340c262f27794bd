"""Interventions: exact effects in a hand-built model, ablations that must change nothing, errors."""

import pytest
import torch

from ktlens.analysis.interventions import Intervention, difference_of_means, dose_response, intervene, intervention_effect
from ktlens.models import KTheoryTransformer, RemaindersTransformer
from ktlens.tasks.remainders import RemaindersSpec


def hand_built():
    """MIIII p=5 (tasks q=2, 3) with every weight 0 but the embeddings and a planted readout: the stream at
    '=' is embed + pos, the MLP is a constant (W_in = 0), and task 0's class 1 reads direction d."""
    torch.manual_seed(0)
    model = RemaindersTransformer.create(RemaindersSpec(p=5), d_model=8, n_heads=2, d_mlp=4, normalization="none").eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if not name.startswith(("embed", "pos_embed")):
                param.zero_()
        d = torch.tensor([3.0, 4.0, 0, 0, 0, 0, 0, 0])  # |d| = 5
        model.unembed.W_U[0, :, 1] = d
        model.unembed.W_U[1, :, 2] = torch.tensor([0, 0, 1.0, 0, 0, 0, 0, 0])
        model.blocks[0].mlp.W_out[2] = torch.tensor([0, 0, 0.5, 0, 0, 0, 0, 0])
    return model, d


def test_adding_along_a_planted_direction_moves_exactly_that_logit():
    model, d = hand_built()
    tokens = model.tokens_for([0, 7, 24])
    before = model(tokens)
    after = intervene(model, tokens, [Intervention("blocks.0.hook_resid_mid", "add", 2.0, direction=d)])
    expected = torch.zeros_like(before)
    expected[:, 0, 1] = 2.0 * 5.0  # value x (d / |d|) . d
    assert torch.allclose(after - before, expected, atol=1e-5)
    # set the coordinate instead: the logit becomes value x |d| whatever it was
    after = intervene(model, tokens, [Intervention("blocks.0.hook_resid_mid", "set", -1.5, direction=d, positions=[-1])])
    assert torch.allclose(after[:, 0, 1], torch.full((3,), -1.5 * 5.0), atol=1e-5)


def test_setting_a_neuron_writes_its_output_row():
    model, _ = hand_built()
    tokens = model.tokens_for([3, 11])
    effect = intervention_effect(model, tokens, [Intervention("blocks.0.mlp.hook_post", "set", 4.0, neuron=2)])
    expected = torch.zeros_like(effect.delta)
    expected[:, 1, 2] = 4.0 * 0.5  # post_2 (0 -> 4) x W_out[2] . W_U[task 1][:, 2]
    assert torch.allclose(effect.delta, expected, atol=1e-6)
    assert effect.max_abs_change == pytest.approx(2.0, abs=1e-6)


def test_mean_ablation_of_a_constant_unit_changes_nothing():
    torch.manual_seed(1)
    model = KTheoryTransformer.create({"primes": [2, 3, 5], "r_max": 3, "e_max": 3, "label_order": "ascending"},
                                      d_model=16, n_heads=2, d_mlp=8, n_layers=1, normalization="pre").eval()
    with torch.no_grad():
        model.blocks[0].mlp.W_in[:, 5] = 0.0
        model.blocks[0].mlp.b_in[5] = 0.7  # neuron 5 is relu(0.7) on every input
    tokens = model.make_batch([2, 3, 5, 5], [1, 2, 3, 1], [3, 1, 2, 2])
    reference = model.make_batch([3, 2], [3, 3], [3, 1])
    iv = [Intervention("blocks.0.mlp.hook_post", "mean", neuron=5)]
    effect = intervention_effect(model, tokens, iv, reference=reference)
    assert effect.max_abs_change < 1e-6 and effect.predictions_changed == 0
    resampled = intervention_effect(model, tokens, [Intervention("blocks.0.mlp.hook_post", "resample", neuron=5)], reference=reference)
    assert resampled.max_abs_change < 1e-6
    # the unit does matter: zero ablation (0.7 -> 0) moves the logits by W_out[5] through the rest
    zero = intervention_effect(model, tokens, [Intervention("blocks.0.mlp.hook_post", "zero", neuron=5)])
    assert zero.max_abs_change > 1e-3


def test_dose_response_is_linear_through_a_linear_readout():
    model, d = hand_built()
    tokens = model.tokens_for([1, 2, 3])
    targets = torch.tensor([[1, 1], [0, 2], [1, 0]])
    curve = dose_response(model, tokens, targets, [-1.0, 0.0, 1.0, 2.0], op="add", hook="blocks.0.hook_resid_mid", direction=d)
    # only task 0 class 1 moves, by 5 v; rows whose task-0 target is 1 (2 of 3) carry it, averaged over 2 tasks
    assert torch.allclose(curve.target_logit_change, torch.tensor([-1.0, 0.0, 1.0, 2.0]) * 5.0 * (2 / 3) / 2, atol=1e-5)
    assert curve.exact_match.shape == (4,)


def test_bad_interventions_name_the_value():
    model, d = hand_built()
    tokens = model.tokens_for([1])
    with pytest.raises(ValueError, match="blocks.9.hook_nowhere"):
        intervene(model, tokens, [Intervention("blocks.9.hook_nowhere", "add", 1.0, neuron=0)])
    with pytest.raises(ValueError, match="neuron=99"):
        intervene(model, tokens, [Intervention("blocks.0.mlp.hook_post", "set", 1.0, neuron=99)])
    with pytest.raises(ValueError, match="head=5"):
        intervene(model, tokens, [Intervention("blocks.0.attn.hook_z", "zero", neuron=0, head=5)])
    with pytest.raises(ValueError, match="length 3"):
        intervene(model, tokens, [Intervention("blocks.0.hook_resid_mid", "add", 1.0, direction=torch.ones(3))])
    with pytest.raises(ValueError, match="reference"):
        intervene(model, tokens, [Intervention("blocks.0.mlp.hook_post", "mean", neuron=0)])
    with pytest.raises(ValueError, match="op='double'"):
        Intervention("blocks.0.mlp.hook_post", "double", neuron=0)


def test_difference_of_means_direction_is_the_embedding_difference():
    model, _ = hand_built()
    # at '=' the stream before the block is embed('=') + pos(2) for every n; at x0 it is embed(x0) + pos(0)
    a, b = model.tokens_for([5, 6]), model.tokens_for([10, 11])  # x0 = 1 vs x0 = 2
    direction = difference_of_means(model, a, b, "blocks.0.hook_resid_pre", position=0)
    assert torch.allclose(direction, model.W_E[1] - model.W_E[2], atol=1e-6)
    assert torch.allclose(difference_of_means(model, a, b, "blocks.0.hook_resid_pre", position=-1), torch.zeros(8), atol=1e-6)
    with pytest.raises(ValueError, match="position=7"):
        difference_of_means(model, a, b, "blocks.0.hook_resid_pre", position=7)
