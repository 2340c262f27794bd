"""Patching on a bounded-domain model with scratch positions: every decoder position is on the axis and named,
self-patching is exact, corruptions and sampled pairs stay in the domain, metrics read counts at count positions."""

import pytest
import torch

from ktlens.analysis.patching import (
    Node,
    attribution_patch,
    corruption_sweeps,
    first_count_difference,
    ktheory_corruptions,
    logit_diff_metric,
    patch_nodes,
    patch_sweep,
)
from tests.tasks.ktheory_brute import definition_counts

from .domain_model import RE_MAX, domain_model, domain_set

KINDS = ["resid_pre", "attn_out", "cross_attn_out", "mlp_out", "attn_head", "cross_attn_head", "cross_attn_head_by_pos", "src"]


@pytest.fixture(scope="module")
def model():
    return domain_model()


@pytest.fixture(scope="module")
def pair(model):
    return model.make_batch([2, 3], [3, 4], [4, 3]), model.make_batch([3, 2], [3, 4], [4, 3])


def test_position_axis_covers_every_decoder_position_by_name(model, pair):
    clean, corrupted = pair
    metric = logit_diff_metric(model, model.dec_len - 1, 1, 0)
    names = ["re", "re/p", "re/p^2", "re/p^3", "n_4", "n_3", "n_2", "n_1"]  # scratch values, then counts descending
    for kind in ("resid_pre", "cross_attn_head_by_pos"):
        sweep = patch_sweep(model, clean, corrupted, kind, metric)
        assert sweep.axis_labels[1] == [f"{k}:{name}" for k, name in enumerate(names)]
        assert sweep.values.shape[:2] == (2, 8) and sweep.values.shape[1] == model.dec_len
        assert attribution_patch(model, clean, corrupted, kind, metric).values.shape == sweep.values.shape
    # a cell at a scratch position is the hand-written patch of that position
    sweep = patch_sweep(model, clean, corrupted, "resid_pre", metric)
    _, cache = model.run_with_cache(clean)

    def hook(act, hook):
        act = act.clone()
        act[:, 2] = cache[hook.name][:, 2]
        return act

    expected = metric(model.run_with_hooks(corrupted, fwd_hooks=[("blocks.1.hook_resid_pre", hook)]))
    assert sweep.values[1, 2].item() == pytest.approx(expected.item(), abs=1e-6)
    with pytest.raises(ValueError, match="position=8"):
        logit_diff_metric(model, 8, 1, 0)
    with pytest.raises(ValueError, match="pos=8"):
        patch_nodes(model, clean, corrupted, [Node("resid_pre", 0, pos=8)])


@pytest.mark.parametrize("kind", KINDS)
def test_patching_a_clean_activation_into_itself_restores_the_clean_metric(model, pair, kind):
    clean, _ = pair
    for position in (1, model.dec_len - 1):  # a scratch and a count position
        metric = logit_diff_metric(model, position, 2, 0)
        for direction in ("denoise", "noise"):
            sweep = patch_sweep(model, clean, clean, kind, metric, direction=direction)
            assert torch.all(sweep.values == sweep.clean_value), (kind, position)


def test_denoising_every_position_restores_the_clean_logits(model, pair):
    clean, corrupted = pair
    clean_logits, _ = model.run_with_cache(clean)
    nodes = [Node("src", pos=k) for k in range(3)] + [Node("resid_pre", 0, pos=k) for k in range(model.dec_len)]
    assert torch.equal(patch_nodes(model, clean, corrupted, nodes), clean_logits)
    # the scratch positions alone do not: the counts read the source through cross-attention too
    scratch_only = [Node("resid_pre", 1, pos=k) for k in range(model.n_scratch)]
    assert not torch.equal(patch_nodes(model, clean, corrupted, scratch_only), clean_logits)


def test_corruptions_stay_in_the_domain(model):
    domain = domain_set()
    seen = set()
    for p, r, e in sorted(domain):
        for kind, other in ktheory_corruptions(model, p, r, e).items():
            assert other in domain, (p, r, e, kind, other)
            seen.add(kind)
    assert seen == {"p", "r", "u"}
    # r + 1 would leave the domain (5 * 3 > 12): r - 1 instead
    assert ktheory_corruptions(model, 2, 4, 3)["r"] == (2, 3, 3)
    # e * p = 4 is inside the grid but not the domain (4 * 4 > 12); e / p = 1 is
    assert ktheory_corruptions(model, 2, 4, 2)["u"] == (2, 4, 1)


def test_first_count_difference_skips_the_scratch_positions(model):
    # (2, 3, 4) -> (3, 3, 4): r*e is the same; re/p differs (6 vs 4), and the counts differ first at n_4
    tc, tk = model.targets([2], [3], [4])[0], model.targets([3], [3], [4])[0]
    assert tc[1] != tk[1]
    clean, corrupt = definition_counts(2, 3, 4), definition_counts(3, 3, 4)
    clean, corrupt = (c + [0] * (model.seq_len - len(c)) for c in (clean, corrupt))
    first = next(i for i in range(model.seq_len, 0, -1) if clean[i - 1] != corrupt[i - 1])  # descending order: n_4 first
    k = first_count_difference(model, tc, tk)
    assert k >= model.n_scratch and model.count_index(k) == first
    assert first_count_difference(model, tc, tc) is None


def test_sampled_pairs_lie_in_the_domain_and_score_a_count(model):
    domain = domain_set()
    for kind in ("p", "r", "u"):
        sweeps, pairs = corruption_sweeps(model, kind, 3, node="cross_attn_head", seed=1, min_gap=0.0)
        assert len(pairs) == 3
        for pair, sweep in zip(pairs, sweeps):
            clean, corrupt, k = tuple(pair["clean"]), tuple(pair["corrupt"]), pair["position"]
            assert clean in domain and corrupt in domain and clean[1] * clean[2] <= RE_MAX
            assert k in model.count_positions
            tc, tk = model.targets(*([v] for v in clean))[0], model.targets(*([v] for v in corrupt))[0]
            assert tc[k] != tk[k] and all(tc[j] == tk[j] for j in model.count_positions if j < k)
            assert sweep.values.shape == (2, model.cfg.n_heads)
