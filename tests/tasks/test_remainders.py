import json

import numpy as np
import pytest
import torch

from ktlens.tasks.remainders import RemaindersData, RemaindersSpec, encode, primes_below, targets_for


def test_primes_below():
    assert primes_below(3) == [2]
    assert primes_below(37) == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31]
    assert len(primes_below(113)) == 29


@pytest.mark.parametrize("p", [1, 2, 4, 9, 15, 0, -7])
def test_bad_p_is_named(p):
    with pytest.raises(ValueError, match=f"p={p}"):
        RemaindersSpec(p=p)


@pytest.mark.parametrize("p", [3.0, "7", True])
def test_non_integer_p(p):
    with pytest.raises(ValueError, match=r"p=.*must be an integer"):
        RemaindersSpec(p=p)


@pytest.mark.parametrize("frac", [0.0, 1.0, -0.5, 1.5, float("nan")])
def test_bad_fraction_is_named(frac):
    with pytest.raises(ValueError, match="train_frac"):
        RemaindersSpec(p=11, train_frac=frac)


def test_fraction_leaving_empty_split():
    with pytest.raises(ValueError, match="train_frac=0.001"):
        RemaindersSpec(p=3, train_frac=0.001)


def test_bad_variant_order_mask():
    with pytest.raises(ValueError, match="'mod'"):
        RemaindersSpec(p=11, variant="mod")
    with pytest.raises(ValueError, match="'big'"):
        RemaindersSpec(p=11, digit_order="big")
    with pytest.raises(ValueError, match="'both'"):
        RemaindersSpec(p=11, digit_tokens="both")
    with pytest.raises(ValueError, match=r"\[4\]"):
        RemaindersSpec(p=11, masked=(2, 4))
    with pytest.raises(ValueError, match="masks every task"):
        RemaindersSpec(p=5, masked=(2, 3))


def test_spec_json_round_trip():
    spec = RemaindersSpec(p=13, variant="divisibility", digit_order="lsd", train_frac=0.3, split_seed=4, shuffle_labels=True, masked=(3, 2))
    again = RemaindersSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert again.masked == (2, 3)


def test_targets_are_remainders():
    spec = RemaindersSpec(p=13)
    n = np.arange(13**2)
    tg = targets_for(spec, n)
    for j, q in enumerate([2, 3, 5, 7, 11]):
        assert all(tg[i, j] == i % q for i in range(13**2))
    toks = encode(spec, n)
    assert (toks[:, 0] * 13 + toks[:, 1] == n).all() and (toks[:, 2] == 13).all()
    lsd = encode(RemaindersSpec(p=13, digit_order="lsd"), n)
    assert (lsd[:, 1] * 13 + lsd[:, 0] == n).all()


def test_separate_digit_tokens():
    spec = RemaindersSpec(p=13, digit_tokens="separate")
    n = np.arange(13**2)
    toks = encode(spec, n)
    assert spec.d_vocab == 27 and spec.eq_token == 26 and RemaindersSpec(p=13).d_vocab == 14
    assert toks[:, 0].max() == 12 and toks[:, 1].min() == 13 and (toks[:, 2] == 26).all()
    assert (toks[:, 0] * 13 + toks[:, 1] - 13 == n).all()
    assert RemaindersSpec.from_dict(spec.to_dict()) == spec


def test_divisibility_and_addition_targets():
    n = np.arange(11**2)
    div = targets_for(RemaindersSpec(p=11, variant="divisibility"), n)
    assert div.shape == (121, 4) and (div[:, 2] == (n % 5 == 0)).all()
    spec = RemaindersSpec(p=11, variant="addition")
    assert spec.moduli == [11] and spec.n_classes == [11]
    add = targets_for(spec, n)
    assert (add[:, 0] == (n // 11 + n % 11) % 11).all()


def test_split():
    data = RemaindersData(RemaindersSpec(p=11, train_frac=0.6, split_seed=1))
    tr, te = set(data.train_idx.tolist()), set(data.test_idx.tolist())
    assert len(tr) == data.n_train == round(0.6 * 121) and not tr & te and tr | te == set(range(121))
    other = RemaindersData(RemaindersSpec(p=11, train_frac=0.6, split_seed=2))
    assert set(other.train_idx.tolist()) != tr
    again = RemaindersData(RemaindersSpec(p=11, train_frac=0.6, split_seed=1))
    assert torch.equal(again.train_idx, data.train_idx)


def test_shuffled_labels_keep_distribution():
    plain = RemaindersData(RemaindersSpec(p=11))
    shuf = RemaindersData(RemaindersSpec(p=11, shuffle_labels=True))
    assert not torch.equal(plain.targets, shuf.targets)
    for j in range(plain.targets.shape[1]):
        assert torch.equal(plain.targets[:, j].sort().values, shuf.targets[:, j].sort().values)
    assert torch.equal(plain.tokens, shuf.tokens)


def _model(spec, **kw):
    from ktlens.models.encoder import RemaindersTransformer

    return RemaindersTransformer.create(spec, d_model=32, n_heads=4, d_mlp=64, normalization="none", **kw)


def test_masked_tasks_get_zero_gradient():
    spec = RemaindersSpec(p=13, masked=(2, 3, 5, 7))
    data = RemaindersData(spec)
    model = _model(spec)
    loss = data.loss(model, data.batch(torch.arange(data.n_train)))
    loss.backward()
    g = model.unembed.W_U.grad
    gb = model.unembed.b_U.grad
    for t, q in enumerate(spec.moduli):
        if q in spec.masked:
            assert torch.count_nonzero(g[t]) == 0 and torch.count_nonzero(gb[t]) == 0
        else:
            assert g[t].abs().sum() > 0
    # the masked tasks do not enter the loss at all
    model.unembed.W_U.data[0] += 5.0
    assert torch.allclose(data.loss(model, data.batch(torch.arange(data.n_train))), loss)


def test_loss_is_mean_of_normalised_ce():
    spec = RemaindersSpec(p=11)
    data = RemaindersData(spec)
    model = _model(spec)
    with torch.no_grad():
        model.unembed.W_U.zero_()
        model.unembed.b_U.zero_()
    # uniform logits: CE_q = ln q, so every normalised task loss is 1
    assert data.loss(model, data.batch(torch.arange(5))).item() == pytest.approx(1.0, abs=1e-6)


def test_evaluate_keys():
    spec = RemaindersSpec(p=11, masked=(2,))
    data = RemaindersData(spec)
    model = _model(spec).eval()
    rec = data.evaluate(model)
    for q in spec.moduli:
        assert 0 <= rec[f"train_acc_q{q}"] <= 1 and 0 <= rec[f"test_acc_q{q}"] <= 1
    for key in ("test_acc_mean", "test_acc_min", "train_acc_min", "train_acc_mean", "all_acc_min", "test_loss", "train_eval_loss"):
        assert key in rec
    unmasked = [rec[f"test_acc_q{q}"] for q in (3, 5, 7)]
    assert rec["test_acc_min"] == pytest.approx(min(unmasked)) and rec["test_acc_mean"] == pytest.approx(np.mean(unmasked))
