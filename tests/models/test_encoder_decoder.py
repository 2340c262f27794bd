"""The hooked K-theory encoder-decoder: hooks, shapes, causality, patching, input checks."""

import math

import pytest
import torch
from transformer_lens import ActivationCache
from transformer_lens.utilities import get_act_name

from ktlens.models import KTheoryTransformer

SPEC = {"primes": [2, 3, 5, 7], "r_max": 4, "e_max": 4, "seq_len": 4, "max_count": 8, "label_order": "ascending"}


def make_model(normalization="post", n_layers=1):
    return KTheoryTransformer.create(SPEC, d_model=32, n_heads=4, d_mlp=64, n_layers=n_layers, normalization=normalization).eval()


def random_tokens(batch=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = torch.tensor(SPEC["primes"])[torch.randint(0, 4, (batch,), generator=g)]
    r = torch.randint(1, 5, (batch,), generator=g)
    e = torch.randint(1, 5, (batch,), generator=g)
    dec = torch.randint(0, SPEC["max_count"] + 1, (batch, SPEC["seq_len"]), generator=g)
    dec[:, 0] = SPEC["max_count"] + 1  # BOS
    return torch.cat([torch.stack([p, r, e], 1), dec], 1)


def expected_shapes(b, n_layers=1, pre=False):
    L, S, H, dh, d, m = 4, 3, 4, 8, 32, 64
    shapes = {
        "hook_src_embed": (b, S, d),
        "hook_src_pos_embed": (b, S, d),
        "hook_src": (b, S, d),
        "hook_embed": (b, L, d),
        "hook_pos_embed": (b, L, d),
    }
    for l in range(n_layers):
        for name in ("hook_resid_pre", "hook_attn_out", "hook_resid_mid", "hook_cross_attn_out", "hook_resid_mid_cross", "hook_mlp_out", "hook_resid_post"):
            shapes[f"blocks.{l}.{name}"] = (b, L, d)
        for attn, keys in (("attn", L), ("cross_attn", S)):
            shapes[f"blocks.{l}.{attn}.hook_q"] = (b, L, H, dh)
            shapes[f"blocks.{l}.{attn}.hook_k"] = (b, keys, H, dh)
            shapes[f"blocks.{l}.{attn}.hook_v"] = (b, keys, H, dh)
            shapes[f"blocks.{l}.{attn}.hook_z"] = (b, L, H, dh)
            shapes[f"blocks.{l}.{attn}.hook_attn_scores"] = (b, H, L, keys)
            shapes[f"blocks.{l}.{attn}.hook_pattern"] = (b, H, L, keys)
        shapes[f"blocks.{l}.mlp.hook_pre"] = (b, L, m)
        shapes[f"blocks.{l}.mlp.hook_post"] = (b, L, m)
        for ln in ("ln1", "ln_cross", "ln2"):
            shapes[f"blocks.{l}.{ln}.hook_scale"] = (b, L, 1)
            shapes[f"blocks.{l}.{ln}.hook_normalized"] = (b, L, d)
    shapes["ln_src.hook_scale"] = (b, S, 1)
    shapes["ln_src.hook_normalized"] = (b, S, d)
    if pre:
        shapes["ln_final.hook_scale"] = (b, L, 1)
        shapes["ln_final.hook_normalized"] = (b, L, d)
    return shapes


@pytest.mark.parametrize("normalization", ["post", "pre"])
def test_every_documented_hook_has_its_shape(normalization):
    model = make_model(normalization, n_layers=2)
    shapes = model.hook_shapes(random_tokens(5))
    assert shapes == expected_shapes(5, n_layers=2, pre=normalization == "pre")


def test_transformer_lens_names_and_cache_type():
    model = make_model()
    logits, cache = model.run_with_cache(random_tokens(3))
    assert isinstance(cache, ActivationCache)
    assert logits.shape == (3, 4, SPEC["max_count"] + 1)
    for name in ("resid_pre", "resid_mid", "resid_post", "pattern", "post", "attn_out", "mlp_out", "q", "z"):
        assert get_act_name(name, 0) in cache
    assert "blocks.0.cross_attn.hook_pattern" in cache


@pytest.mark.parametrize("names_filter", [None, "blocks.0.hook_resid_post", ["hook_embed", "blocks.0.attn.hook_pattern"],
                                          lambda name: name.endswith("hook_z")])
def test_fast_cache_matches_transformer_lens_cache(names_filter):
    model = make_model("pre")
    tokens = random_tokens(4)
    fast_out, fast = model.run_with_cache(tokens, names_filter=names_filter)
    # any TransformerLens-only option takes TransformerLens' own caching path
    tl_out, tl = model.run_with_cache(tokens, names_filter=names_filter, reset_hooks_end=True)
    assert torch.equal(fast_out, tl_out)
    assert list(fast.keys()) == list(tl.keys()) and len(fast.keys()) > 0
    for name in tl.keys():
        assert torch.equal(fast[name], tl[name]), name
    assert not any(hp._forward_hooks for hp in model.hook_dict.values())  # nothing left attached
    with pytest.raises(ValueError, match="names_filter"):
        model.run_with_cache(tokens, names_filter=3)


def test_self_attention_is_causal_and_cross_attention_is_not():
    model = make_model()
    _, cache = model.run_with_cache(random_tokens(6))
    pattern = cache["blocks.0.attn.hook_pattern"]
    assert torch.all(pattern.triu(1) == 0)
    assert torch.allclose(pattern.sum(-1), torch.ones_like(pattern.sum(-1)))
    cross = cache["blocks.0.cross_attn.hook_pattern"]
    assert (cross > 0).all()


def test_later_label_tokens_do_not_change_earlier_logits():
    model = make_model()
    a = random_tokens(4, seed=1)
    b = a.clone()
    b[:, -1] = (b[:, -1] + 3) % (SPEC["max_count"] + 1)
    la, lb = model(a), model(b)
    assert torch.equal(la[:, :-1], lb[:, :-1])
    assert not torch.equal(la[:, -1], lb[:, -1])


@pytest.mark.parametrize("normalization", ["post", "pre"])
@pytest.mark.parametrize(
    "hooks",
    [
        ["blocks.0.hook_resid_post"],
        ["blocks.0.hook_resid_mid_cross"],
        ["blocks.0.hook_resid_pre", "hook_src"],
        ["hook_embed", "hook_pos_embed", "hook_src_embed"],
        ["blocks.0.hook_mlp_out", "blocks.0.hook_resid_mid_cross"],
    ],
)
def test_patching_clean_activations_at_every_position_reproduces_clean_logits(normalization, hooks):
    model = make_model(normalization)
    clean, corrupted = random_tokens(6, seed=2), random_tokens(6, seed=3)
    clean_logits, cache = model.run_with_cache(clean)
    corrupted_logits = model(corrupted)
    assert not torch.allclose(clean_logits, corrupted_logits)

    def put_clean(act, hook):
        return cache[hook.name]

    patched = model.run_with_hooks(corrupted, fwd_hooks=[(h, put_clean) for h in hooks])
    assert torch.equal(patched, clean_logits)


def test_patching_one_position_changes_only_that_position_and_later():
    model = make_model()
    clean, corrupted = random_tokens(6, seed=4), random_tokens(6, seed=5)
    clean[:, :3] = corrupted[:, :3]  # same source, different label prefixes
    _, cache = model.run_with_cache(clean)
    base = model(corrupted)

    def patch_pos2(act, hook):
        act = act.clone()
        act[:, 2] = cache[hook.name][:, 2]
        return act

    patched = model.run_with_hooks(corrupted, fwd_hooks=[("blocks.0.hook_resid_pre", patch_pos2)])
    # `base` ran without hooks (fused LayerNorm), `patched` with them: equal up to float rounding
    assert torch.allclose(patched[:, :2], base[:, :2], atol=1e-5)
    assert not torch.allclose(patched[:, 2], base[:, 2])


def test_bad_inputs_name_the_value():
    model = make_model()
    with pytest.raises(ValueError, match="p=4"):
        model.predict(p=[4], r=[1], e=[1])
    with pytest.raises(ValueError, match="p=11"):
        model.predict(p=[11], r=[1], e=[1])
    with pytest.raises(ValueError, match="r=5"):
        model.predict(p=[2], r=[5], e=[1])
    with pytest.raises(ValueError, match="e=0"):
        model.predict(p=[2], r=[1], e=[0])
    with pytest.raises(ValueError, match="equal lengths"):
        model.predict(p=[2, 3], r=[1], e=[1])
    with pytest.raises(ValueError, match="integer"):
        model.predict(p=[2.5], r=[1], e=[1])
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(2, 9, dtype=torch.long))


@pytest.mark.parametrize("normalization", ["post", "pre"])
def test_fused_and_hookable_layernorm_paths_agree(normalization):
    model = make_model(normalization)
    tokens = random_tokens(8, seed=6)
    plain = model(tokens)
    cached, _ = model.run_with_cache(tokens)
    assert torch.allclose(plain, cached, atol=1e-5)  # fused vs step-by-step LayerNorm
    assert all(n.hookable for n in model._norms())  # the cached run took the hookable path
    model(tokens)
    assert not any(n.hookable for n in model._norms())  # a plain forward takes the fused one


def test_config_rejects_vocab_mismatch():
    model = make_model()
    with pytest.raises(ValueError, match="max_count"):
        KTheoryTransformer(model.cfg, {**SPEC, "max_count": 20})


def test_magnitude_features_add_log_and_linear_directions(tmp_path):
    from ktlens.checkpoint import load_checkpoint, save_checkpoint

    model = KTheoryTransformer.create(SPEC, d_model=32, n_heads=4, d_mlp=64, magnitude_features=True).eval()
    src = model.src_embed
    n_src = model.cfg.d_vocab_src  # source numbers 0..max(prime, r_max, e_max)
    for n in (1, 3, 7):
        expected = math.log(n) / math.log(n_src - 1) * src.W_magnitude[0] + n / (n_src - 1) * src.W_magnitude[1]
        torch.testing.assert_close(src.W_E_eff[n] - src.W_E[n], expected)
    bos = model.bos  # a special token: no magnitude
    torch.testing.assert_close(model.embed.W_E_eff[bos], model.embed.W_E[bos])
    k = torch.arange(SPEC["max_count"] + 1, dtype=torch.float64)
    feats = torch.stack([k.clamp(min=1).log() / math.log(SPEC["max_count"]), k / SPEC["max_count"]], 1).float()
    torch.testing.assert_close(model.unembed.W_U_eff - model.unembed.W_U, (feats @ model.unembed.W_magnitude).t())
    tokens = random_tokens()
    path = save_checkpoint(tmp_path / "m", model)
    again = load_checkpoint(path)
    assert again.cfg.magnitude_features
    torch.testing.assert_close(again(tokens), model(tokens))
