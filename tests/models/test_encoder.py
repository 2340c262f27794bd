import numpy as np
import pytest
import torch

from ktlens.checkpoint import load_checkpoint, save_checkpoint
from ktlens.models.config import ModelConfig
from ktlens.models.encoder import RemaindersTransformer
from ktlens.tasks.remainders import RemaindersSpec


def small_model(p=11, normalization="none", n_layers=1, **kw):
    spec = RemaindersSpec(p=p, **kw)
    return RemaindersTransformer.create(spec, d_model=32, n_heads=4, d_mlp=48, n_layers=n_layers, normalization=normalization).eval()


def documented_shapes(B, T, C, n_layers, d=32, h=4, dh=8, m=48, ln=False, pre=False):
    shapes = {"hook_embed": (B, 3, d), "hook_pos_embed": (B, 3, d), "hook_resid_final": (B, d), "unembed.hook_logits": (B, T, C)}
    for l in range(n_layers):
        P = 1 if l == n_layers - 1 else 3
        b = f"blocks.{l}."
        shapes.update({
            b + "hook_resid_pre": (B, 3, d), b + "hook_resid_mid": (B, P, d), b + "hook_resid_post": (B, P, d),
            b + "attn.hook_q": (B, P, h, dh), b + "attn.hook_k": (B, 3, h, dh), b + "attn.hook_v": (B, 3, h, dh),
            b + "attn.hook_z": (B, P, h, dh), b + "attn.hook_attn_scores": (B, h, P, 3), b + "attn.hook_pattern": (B, h, P, 3),
            b + "hook_attn_out": (B, P, d), b + "hook_mlp_out": (B, P, d),
            b + "mlp.hook_pre": (B, P, m), b + "mlp.hook_post": (B, P, m),
        })
        if ln:
            N = 3 if pre else P  # pre-LN normalizes every position the attention reads
            shapes.update({b + "ln1.hook_scale": (B, N, 1), b + "ln1.hook_normalized": (B, N, d),
                           b + "ln2.hook_scale": (B, P, 1), b + "ln2.hook_normalized": (B, P, d)})
    if pre:
        shapes.update({"ln_final.hook_scale": (B, 1, 1), "ln_final.hook_normalized": (B, 1, d)})
    return shapes


@pytest.mark.parametrize("normalization,n_layers", [("none", 1), ("pre", 2), ("post", 2)])
def test_every_documented_hook_has_its_shape(normalization, n_layers):
    model = small_model(normalization=normalization, n_layers=n_layers)
    tokens = model.tokens_for(np.arange(5))
    got = model.hook_shapes(tokens)
    want = documented_shapes(5, 4, 7, n_layers, ln=normalization != "none", pre=normalization == "pre")
    assert got == want


def test_attention_is_bidirectional_and_readout_at_last_position():
    model = small_model(n_layers=2)
    tokens = model.tokens_for(np.arange(121))
    _, cache = model.run_with_cache(tokens)
    pattern = cache["blocks.0.attn.hook_pattern"]
    assert (pattern[:, :, 0, 1:] > 0).all()  # first position sees the later ones
    assert torch.allclose(pattern.sum(-1), torch.ones(()))
    last = cache["blocks.1.attn.hook_pattern"]  # the last block queries from '=' only
    assert last.shape[2] == 1 and (last > 0).all()
    # changing either digit changes the prediction input at '='
    a = model.tokens_for([0])
    b = a.clone()
    b[0, 0] = 3
    assert not torch.allclose(model(a), model(b))


def test_logits_masked_to_classes():
    model = small_model()
    out = model(model.tokens_for(np.arange(121)))
    for t, q in enumerate(model.moduli):
        assert (out[:, t, q:] <= -1e8).all() and (out[:, t, :q] > -1e8).all()
    pred = model.predict(np.arange(121))
    assert pred.shape == (121, 4) and pred.dtype == np.int64
    assert (pred < np.array(model.moduli)).all()


def test_attributes():
    model = small_model(p=13)
    assert model.p == 13 and model.moduli == [2, 3, 5, 7, 11] and model.model_type == "miiii"
    assert model.cfg.d_vocab == 14 and model.cfg.n_ctx == 3 and model.cfg.d_vocab_out == 11
    assert model.unembed.W_U.shape == (5, 32, 11)
    div = small_model(p=13, variant="divisibility")
    assert div.n_classes == [2] * 5 and div.cfg.d_vocab_out == 2


def test_predict_int_and_array():
    model = small_model()
    one = model.predict(7)
    assert one.shape == (1, 4)
    many = model.predict(np.array([7, 8, 120], dtype=np.int32))
    assert (many[0] == one[0]).all()
    assert model.predict([np.int64(7)]).shape == (1, 4)


@pytest.mark.parametrize(
    "bad,match",
    [(-1, "n=-1"), (121, "n=121"), ([3, 500], "n=500"), (2.5, "2.5"), ([1, 2.5], "2.5"), ("7", "'7'"), (True, "True"),
     (np.zeros((2, 2), dtype=int), "shape \\(2, 2\\)")],
)
def test_predict_errors_name_the_value(bad, match):
    model = small_model()
    with pytest.raises(ValueError, match=match):
        model.predict(bad)


def test_bad_tokens_and_config():
    model = small_model()
    with pytest.raises(ValueError, match=r"\[batch, 3\]"):
        model(torch.zeros(2, 4, dtype=torch.long))
    spec = RemaindersSpec(p=11)
    cfg = ModelConfig(d_vocab=13, d_vocab_out=7, n_ctx=3)
    with pytest.raises(ValueError, match="p=11"):
        RemaindersTransformer(cfg, spec.to_dict())


def test_checkpoint_round_trip(tmp_path):
    model = small_model(p=13, masked=(2,), digit_order="lsd")
    with torch.no_grad():
        for prm in model.parameters():
            prm.add_(torch.randn_like(prm) * 0.1)
    save_checkpoint(tmp_path / "ck", model)
    again = load_checkpoint(tmp_path / "ck")
    assert type(again) is RemaindersTransformer and again.spec == model.spec
    tokens = model.tokens_for(np.arange(169))
    assert torch.equal(again(tokens), model(tokens))
    assert (again.predict(np.arange(169)) == model.predict(np.arange(169))).all()
    assert "class_mask" not in again.state_dict()


def test_transformer_lens_patching_runs():
    from transformer_lens import patching

    model = small_model()
    clean = model.tokens_for(np.arange(0, 20))
    corrupt = model.tokens_for(np.arange(20, 40))
    _, cache = model.run_with_cache(clean)

    def metric(logits):
        return logits[:, 0, :2].diff(dim=-1).mean()

    out = patching.get_act_patch_resid_pre(model, corrupt, cache, metric)
    assert out.shape == (1, 3) and torch.isfinite(out).all()


@pytest.mark.parametrize("normalization", ["none", "pre", "post"])
def test_last_block_at_eq_matches_the_full_block(normalization):
    model = small_model(normalization=normalization, n_layers=2)
    resid = torch.randn(7, 3, 32)
    block = model.blocks[-1]
    full = block(resid)[:, -1:]  # every position computed, then '=' taken
    assert torch.allclose(block(resid, last_only=True), full, atol=1e-5)


def test_last_only_causal_block_sees_every_earlier_position():
    from ktlens.models.components import Block

    block = Block(ModelConfig(d_vocab=5, d_vocab_out=5, n_ctx=6, d_model=32, n_heads=4, d_mlp=48), causal=True, cross=False).eval()
    resid = torch.randn(7, 6, 32)
    assert torch.allclose(block(resid, last_only=True), block(resid)[:, -1:], atol=1e-5)
