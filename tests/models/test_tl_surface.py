"""TransformerLens' weight surface, readable tokens and ActivationCache methods on both models."""

import pytest
import torch

from ktlens.models import KTheoryTransformer, RemaindersTransformer
from ktlens.models.cache import KtlensActivationCache

SPEC = {"primes": [2, 3, 5, 7], "r_max": 4, "e_max": 4, "label_order": "descending"}


@pytest.fixture(scope="module")
def kt():
    torch.manual_seed(0)
    return KTheoryTransformer.create(SPEC, d_model=32, n_heads=4, d_mlp=64, n_layers=2, normalization="pre").eval()


@pytest.fixture(scope="module")
def mi():
    from ktlens.tasks.remainders import RemaindersSpec

    return RemaindersTransformer.create(RemaindersSpec(p=7), d_model=32, n_heads=4, d_mlp=64, n_layers=2, normalization="pre").eval()


def test_weights_have_transformer_lens_shapes_and_are_the_parameters(kt):
    assert kt.W_Q.shape == (2, 4, 32, 8) and kt.W_O.shape == (2, 4, 8, 32) and kt.b_O.shape == (2, 32)
    assert kt.W_Q_cross.shape == (2, 4, 32, 8) and kt.W_O_cross.shape == (2, 4, 8, 32)
    assert kt.W_in.shape == (2, 32, 64) and kt.W_out.shape == (2, 64, 32)
    assert kt.W_U.shape == (32, kt.cfg.d_vocab_out) and kt.b_U.shape == (kt.cfg.d_vocab_out,)
    assert torch.equal(kt.W_O[1, 2], kt.blocks[1].attn.W_O[2])
    assert torch.equal(kt.W_V_cross[0, 3], kt.blocks[0].cross_attn.W_V[3])
    assert kt.W_E.shape == (kt.cfg.d_vocab, 32) and kt.W_pos.shape == (kt.cfg.n_ctx, 32) and kt.W_E_src.shape[1] == 32
    assert kt.cfg.normalization_type == "LN" and kt.cfg.attn_only is False


def test_logits_are_the_final_residual_through_w_u(kt):
    tokens = kt.make_batch([3, 7], [2, 4], [4, 3])
    logits, cache = kt.run_with_cache(tokens)
    normalized = cache["ln_final.hook_normalized"] * kt.ln_final.w + kt.ln_final.b
    assert torch.allclose(normalized @ kt.W_U + kt.b_U, logits, atol=1e-5)


def test_to_str_tokens_spells_out_the_packed_layout(kt):
    # descending: the decoder writes n_L first; its inputs are BOS, n_L, ..., n_2
    tokens = kt.make_batch([3], [4], [4])
    words = kt.to_str_tokens(tokens[0])
    L = kt.seq_len
    assert words[:4] == ["p=3", "r=4", "e=4", "BOS"]
    assert [w.split("=")[0] for w in words[4:]] == [f"n_{i}" for i in range(L, 1, -1)]
    assert kt.position_labels() == [f"n_{i}" for i in range(L, 0, -1)]
    assert kt.to_str_tokens(tokens)[0] == words


def test_decompose_resid_includes_cross_attention_and_sums_to_the_stream(kt):
    tokens = kt.make_batch([2, 5], [3, 1], [4, 2])
    _, cache = kt.run_with_cache(tokens)
    assert isinstance(cache, KtlensActivationCache)
    stack, labels = cache.decompose_resid(return_labels=True)
    assert "1_cross_attn_out" in labels
    assert isinstance(cache.apply_slice_to_batch_dim(0), KtlensActivationCache)
    assert torch.allclose(stack.sum(0), cache["blocks.1.hook_resid_post"], atol=1e-5)
    with pytest.raises(ValueError, match="decompose_final_resid"):
        cache.get_full_resid_decomposition()
    # the logit lens' last row, through ln_final, is the model's own final stream read out
    lens, lens_labels = cache.accumulated_resid(apply_ln=True, return_labels=True)
    assert lens_labels == ["0_pre", "1_pre", "final_post"]
    logits, _ = kt.run_with_cache(tokens)
    assert torch.allclose(lens[-1] @ kt.W_U + kt.b_U, logits, atol=1e-4)


def test_logit_attrs_adds_up_with_the_final_ln_bias(kt):
    tokens = kt.make_batch([5], [2], [3])
    logits, cache = kt.run_with_cache(tokens)
    stack = cache.decompose_resid()
    answer = logits[0].argmax(-1)
    attrs = cache.logit_attrs(stack, tokens=answer)  # [component, batch, pos]
    const = kt.ln_final.b @ kt.W_U[:, answer] + kt.b_U[answer]
    assert torch.allclose(attrs.sum(0)[0] + const, logits[0, torch.arange(len(answer)), answer], atol=1e-4)


def test_run_with_cache_incl_bwd_needs_a_scalar(kt):
    tokens = kt.make_batch([3], [2], [2])
    out, cache = kt.run_with_cache(tokens, incl_bwd=True, metric=lambda logits: logits[:, -1, 0].sum())
    grad = cache["blocks.1.hook_mlp_out_grad"]
    assert grad.shape == cache["blocks.1.hook_mlp_out"].shape and grad.abs().sum() > 0
    with pytest.raises(ValueError, match="metric"):
        kt.run_with_cache(tokens, incl_bwd=True)
    kt.zero_grad(set_to_none=True)


def test_miiii_surface(mi):
    tokens = mi.tokens_for([10, 30])
    assert mi.to_str_tokens(tokens[0]) == ["x0=1", "x1=3", "="]
    assert mi.W_U.shape == (len(mi.moduli), 32, mi.cfg.d_vocab_out)
    _, cache = mi.run_with_cache(tokens)
    stack = cache.decompose_resid(apply_ln=False)
    assert torch.allclose(stack.sum(0)[:, -1], cache["blocks.1.hook_resid_post"][:, -1], atol=1e-5)
    with pytest.raises(ValueError, match="task"):
        mi.tokens_to_residual_directions(torch.tensor([0]))
    with pytest.raises(ValueError, match="q=4"):
        mi.tokens_to_residual_directions(torch.tensor([0]), task=4)
    assert mi.tokens_to_residual_directions(torch.tensor([1]), task=5).shape == (1, 32)
