"""Predicted task frequencies against brute force, and the per-task test on built and random models."""

import numpy as np
import pytest
import torch

from ktlens.analysis import fourier as fa
from ktlens.analysis import miiii_frequencies as mf
from ktlens.analysis.fourier_ablation import ablate_task
from ktlens.analysis.miiii_analysis import analyse
from ktlens.models.encoder import RemaindersTransformer
from ktlens.tasks.remainders import RemaindersSpec, primes_below


@pytest.mark.parametrize("p", [11, 13, 37])
def test_label_spectrum_closed_form_equals_fft(p):
    for q in primes_below(p):
        n = np.arange(p * p)
        Y = np.stack([(n % q == r).reshape(p, p).astype(float) for r in range(q)])
        F = np.abs(np.fft.fft2(Y)) ** 2
        K = p // 2
        brute = np.zeros((K + 1, K + 1))
        for k0 in range(K + 1):
            for k1 in range(K + 1):  # the real basis pools the distinct sign combinations
                cells = {((s0 * k0) % p, (s1 * k1) % p) for s0 in (1, -1) for s1 in (1, -1)}
                brute[k0, k1] = sum(F[:, a, b].sum() for a, b in cells) / p**2
        assert np.allclose(mf.label_power_2d(p, q), brute, atol=1e-9)
        # and the same through the package's real basis
        assert np.allclose(fa.frequency_power_2d(fa.fourier_2d(Y)).sum(0), brute, atol=1e-9)


@pytest.mark.parametrize("p", [11, 37, 61])
def test_predicted_frequencies_hold_the_label_power(p):
    for q in primes_below(p):
        pred = mf.predicted_frequencies(p, q)
        power = mf.label_power_2d(p, q)
        power[0, 0] = 0.0
        # the strongest frequency pair of the label is a predicted one, as is each axis' strongest frequency
        k0, k1 = np.unravel_index(np.argmax(power), power.shape)
        assert (k0, k1) in pred.pairs
        assert int(np.argmax(power.sum(1))) in pred.x0 and int(np.argmax(power.sum(0))) in pred.x1
        # the floor/ceil pairs of the centres carry at least (8 / pi^2)^2 of the non-constant power
        inside = sum(power[a, b] for a, b in pred.pairs)
        assert inside / power.sum() > (8 / np.pi**2) ** 2 - 1e-9
        # centres: j p / q along x1, ((j a) mod q) p / q along x0, folded
        a = p % q
        for j, (c0, c1) in enumerate(pred.centres, start=1):
            assert np.isclose(c1, mf.fold(j * p / q, p), atol=1e-6)
            assert np.isclose(c0, mf.fold((j * a % q) * p / q, p), atol=1e-6)


def test_known_small_cases():
    assert mf.predicted_frequencies(37, 2).x1 == [18]  # parity: 37 / 2 = 18.5
    assert mf.predicted_frequencies(37, 3).x0 == [12, 13]  # 37 / 3 = 12.33
    pred = mf.predicted_frequencies(37, 5)  # a = 2: character 1 at (14.8, 7.4), character 2 at (7.4, 14.8)
    assert pred.centres == [(14.8, 7.4), (7.4, 14.8)] and pred.x1 == [7, 8, 14, 15]
    with pytest.raises(ValueError, match="q=37"):
        mf.predicted_frequencies(37, 37)


def test_significance_test_on_planted_and_flat_spectra():
    rng = np.random.default_rng(0)
    flat = np.concatenate([[0.0], rng.chisquare(2, size=18)])
    assert mf.significant_frequencies(flat) == []
    planted = flat.copy()
    planted[[5, 12]] += 200.0
    assert mf.significant_frequencies(planted) == [5, 12]
    grid = rng.chisquare(2, size=(19, 19))
    assert mf.significant_pairs(grid) == []
    grid[3, 7] += 500.0
    assert mf.significant_pairs(grid) == [(3, 7)]
    with pytest.raises(ValueError, match="shape"):
        mf.significant_frequencies(np.zeros((2, 2)))


def built_model(p=37, kappa=8.0, d_mlp=2048, seed=0):
    """A model whose digit embeddings are exactly each task's character j = 1 (cos/sin of 2 pi a x0 / q
    at the high digit, of 2 pi x1 / q at the low digit), uniform attention that brings both digits to
    '=', random ReLU features, and a readout fitted so that task q's logits are kappa cos(2 pi (r - c) / q)."""
    spec = RemaindersSpec(p=p, digit_tokens="separate")
    moduli = spec.moduli
    d_char = 4 * len(moduli)
    model = RemaindersTransformer.create(spec, d_model=d_char + 32, n_heads=1, d_mlp=d_mlp, normalization="none").eval()
    g = torch.Generator().manual_seed(seed)
    x = torch.arange(p, dtype=torch.float64)
    with torch.no_grad():
        for par in model.parameters():
            par.zero_()
        for i, q in enumerate(moduli):
            a = p % q
            model.embed.W_E[:p, 4 * i] = torch.cos(2 * torch.pi * a * x / q).float()
            model.embed.W_E[:p, 4 * i + 1] = torch.sin(2 * torch.pi * a * x / q).float()
            model.embed.W_E[p : 2 * p, 4 * i + 2] = torch.cos(2 * torch.pi * x / q).float()
            model.embed.W_E[p : 2 * p, 4 * i + 3] = torch.sin(2 * torch.pi * x / q).float()
        attn, mlp = model.blocks[0].attn, model.blocks[0].mlp
        d_head = attn.W_V.shape[-1]
        assert d_head >= d_char
        attn.W_V[0, :d_char, :d_char] = torch.eye(d_char)
        attn.W_O[0, :d_char, :d_char] = 3 * torch.eye(d_char)  # uniform attention over 3 positions, undone
        m = d_mlp // len(moduli)  # each task gets its own neurons, reading its own character
        for i in range(len(moduli)):
            mlp.W_in[4 * i : 4 * i + 4, i * m : (i + 1) * m] = torch.randn(4, m, generator=g)
        mlp.b_in[:] = torch.randn(d_mlp, generator=g)
        n = np.arange(p * p)
        _, cache = model.run_with_cache(model.tokens_for(n), names_filter="blocks.0.mlp.hook_post")
        feats = cache["blocks.0.mlp.hook_post"][:, -1].double()  # [p*p, d_mlp]
        C = max(spec.n_classes)
        M = torch.zeros(d_mlp, len(moduli) * C, dtype=torch.float64)
        for i, q in enumerate(moduli):  # least squares per task: its logits kappa cos(2 pi (r - c) / q)
            r = n % q
            T = torch.as_tensor(kappa * np.cos(2 * np.pi * (r[:, None] - np.arange(C)[None, :]) / q))
            M[i * m : (i + 1) * m, i * C : (i + 1) * C] = torch.linalg.lstsq(feats[:, i * m : (i + 1) * m], T, driver="gelsd").solution
        U, S, Vh = torch.linalg.svd(M, full_matrices=False)
        rank = min(32, S.numel())
        mlp.W_out[:, d_char : d_char + rank] = (U[:, :rank] * S[:rank]).float()
        model.unembed.W_U[:, d_char : d_char + rank, :] = Vh[:rank].reshape(rank, len(moduli), C).permute(1, 0, 2).float()
    return model


def test_built_model_finds_the_predicted_frequencies_and_restricted_equals_full():
    model = built_model()
    n = np.arange(model.p**2)
    assert (model.predict(n) == n[:, None] % np.array(model.moduli)).all()
    found = mf.found_frequencies(mf.task_spectra(model))
    for q in model.moduli:
        pred = mf.predicted_frequencies(model.p, q)
        f = found[q]
        c0, c1 = pred.centres[0]  # character 1 is all the model holds
        assert f.readout_x0 and f.readout_x1
        assert set(f.readout_x0) <= mf._neighbours(c0, model.p) and set(f.readout_x1) <= mf._neighbours(c1, model.p)
        # the ReLU neurons also hold harmonics, i.e. other characters: still predicted frequencies
        assert set(f.x0) <= set(pred.x0) and set(f.x1) <= set(pred.x1) and mf.matches_prediction(f, pred)["all_predicted"]
        assert mf.identified_characters(f, pred) == [1]
    for q in (2, 5, 13, 31):
        for where in ("resid", "neurons"):  # the readout is linear in these: restricted is the model itself
            r = ablate_task(model, q, [1], where)
            assert r.full_accuracy == 1.0 and r.restricted_accuracy == 1.0, (q, where)
            assert abs(r.restricted_loss - r.full_loss) < 1e-3, (q, where)
            assert r.excluded_accuracy <= 0.55, (q, where)
        # the embedding feeds random features of every task's characters: restricting it to one task's
        # character changes the features a little
        r = ablate_task(model, q, [1], "embed")
        assert r.restricted_accuracy > 0.99 and r.excluded_accuracy <= 0.55, q


def test_random_model_reports_nothing():
    spec = RemaindersSpec(p=37)
    model = RemaindersTransformer.create(spec, d_model=64, n_heads=4, d_mlp=256, normalization="none", init_std=0.125).eval()
    rows = analyse(model, where=("resid",))
    assert all(r.found_frequencies["x0"] == [] and r.found_frequencies["x1"] == [] and r.characters == [] for r in rows)
    assert rows[0].found_frequencies["embedding"] == []
