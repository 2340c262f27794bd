import numpy as np
import pytest
import torch

from ktlens.analysis import fourier as fa
from ktlens.checkpoint import save_checkpoint
from ktlens.models.encoder import RemaindersTransformer
from ktlens.tasks.remainders import RemaindersData, RemaindersSpec


def model_for(p=11, d_model=32, d_mlp=48, **kw):
    spec = RemaindersSpec(p=p, **kw)
    return RemaindersTransformer.create(spec, d_model=d_model, n_heads=4, d_mlp=d_mlp, normalization="none").eval()


@pytest.mark.parametrize("n", [1, 2, 3, 8, 11, 37, 113])
def test_basis_is_orthonormal(n):
    B = fa.fourier_basis(n)
    assert B.shape == (n, n)
    assert np.allclose(B @ B.T, np.eye(n), atol=1e-12)
    assert np.allclose(B.T @ B, np.eye(n), atol=1e-12)
    assert len(fa.basis_labels(n)) == n


@pytest.mark.parametrize("n", [7, 10, 37])
def test_basis_matches_numpy_fft(n):
    rng = np.random.default_rng(n)
    f = rng.normal(size=n)
    coeffs = fa.fourier_basis(n) @ f
    F = np.fft.rfft(f)  # F_k = sum_x f(x) exp(-2 pi i k x / n)
    expected = [F[0].real / np.sqrt(n)]
    for k in range(1, (n - 1) // 2 + 1):
        expected += [np.sqrt(2 / n) * F[k].real, -np.sqrt(2 / n) * F[k].imag]
    if n % 2 == 0:
        expected.append(F[n // 2].real / np.sqrt(n))
    assert np.allclose(coeffs, expected)
    # the per-frequency norm is |F_k| scaled the same way (the power spectrum)
    norms = fa.frequency_norms(coeffs)
    K = (n - 1) // 2
    assert np.allclose(norms[1 : K + 1], np.sqrt(2 / n) * np.abs(F[1 : K + 1]))


def test_bad_basis_size():
    with pytest.raises(ValueError, match="0"):
        fa.fourier_basis(0)


def test_key_frequencies_recover_planted_embedding():
    p, planted = 37, [3, 11, 14]
    model = model_for(p=p, d_model=64)
    rng = np.random.default_rng(0)
    B = fa.fourier_basis(p)
    rows = [0] + [2 * k - 1 for k in planted] + [2 * k for k in planted]
    W = B[rows].T @ rng.normal(size=(len(rows), 64)) + 0.01 * rng.normal(size=(p, 64))
    with torch.no_grad():
        model.embed.W_E[:p] = torch.as_tensor(W, dtype=torch.float32)
    norms = fa.embedding_frequency_norms(model)
    assert norms.shape == (19,)
    assert fa.key_frequencies(norms) == planted
    assert fa.key_frequencies(norms, threshold=1e9) == []
    assert fa.key_frequencies([5.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 9.0]) == [9]


def test_separate_digit_tables_are_read_apart():
    p = 13
    model = model_for(p=p, digit_tokens="separate")
    B = fa.fourier_basis(p)
    with torch.no_grad():  # first digit's table holds frequency 2 only, the second's frequency 4 only
        model.embed.W_E[:p] = torch.as_tensor(np.outer(B[3], np.ones(32)), dtype=torch.float32)
        model.embed.W_E[p : 2 * p] = torch.as_tensor(np.outer(B[8], np.ones(32)), dtype=torch.float32)
    assert fa.key_frequencies(fa.embedding_frequency_norms(model, table=0)) == [2]
    assert fa.key_frequencies(fa.embedding_frequency_norms(model, table=1)) == [4]
    with pytest.raises(ValueError, match="table=2"):
        fa.embedding_frequency_norms(model, table=2)
    with pytest.raises(ValueError, match="table=1"):
        fa.embedding_frequency_norms(model_for(p=p), table=1)


def test_neuron_grids_read_the_hook():
    model = model_for(p=11)
    grids = fa.neuron_grids(model)
    assert grids.shape == (48, 11, 11)
    x0, x1 = 4, 7
    _, cache = model.run_with_cache(model.tokens_for([x0 * 11 + x1]))
    assert np.allclose(grids[:, x0, x1], cache["blocks.0.mlp.hook_post"][0, -1].double().numpy(), atol=1e-6)


def test_fourier_2d_of_planted_grid():
    p = 13
    x = np.arange(p)
    grid = np.outer(np.cos(2 * np.pi * 2 * x / p), np.sin(2 * np.pi * 5 * x / p))[None]
    power = fa.frequency_power_2d(fa.fourier_2d(grid))
    assert power.shape == (1, 7, 7)
    assert np.unravel_index(power[0].argmax(), power[0].shape) == (2, 5)
    assert np.isclose(power.sum(), (grid**2).sum())  # Parseval
    assert fa.neuron_key_frequencies(power) == [[(2, 5)]]


def test_task_key_frequencies_shapes():
    model = model_for(p=11)
    power = fa.task_frequency_power(model)
    assert power.shape == (4, 6, 6) and (power >= 0).all() and (power[:, 0, 0] == 0).all()
    keys = fa.task_key_frequencies(model)
    assert set(keys) == {2, 3, 5, 7} and set(keys[2]) == {"x0", "x1"}


def test_gini():
    assert fa.gini(np.ones(10)) == pytest.approx(0.0)
    assert fa.gini(np.eye(1, 10)[0]) == pytest.approx(0.9)
    assert 0 < fa.gini([1, 2, 3, 10]) < 1
    assert fa.gini(np.zeros(4)) == 0.0


def test_active_frequencies_over_training(tmp_path):
    model = model_for(p=13)
    save_checkpoint(tmp_path / "step_000200", model)
    with torch.no_grad():
        model.embed.W_E[:13] = torch.as_tensor(fa.fourier_basis(13)[[3, 4]].T @ np.ones((2, 32)), dtype=torch.float32)
    save_checkpoint(tmp_path / "step_001000", model)
    rows = fa.active_frequencies_over_training([tmp_path / "step_001000", tmp_path / "step_000200"])
    assert [r["step"] for r in rows] == [200, 1000]
    assert rows[1]["key_frequencies"] == [2] and rows[1]["n_active"] == 1
    assert len(rows[0]["norms"]) == 7


def test_progress_measures_definitions():
    spec = RemaindersSpec(p=11, variant="addition")
    model = model_for(p=11, variant="addition")
    data = RemaindersData(spec)
    logits, restricted, excluded = fa.restricted_and_excluded_logits(model, [1, 4])
    assert torch.allclose(restricted + excluded, logits + logits.mean(0, keepdim=True))
    _, r_none, e_none = fa.restricted_and_excluded_logits(model, [])
    assert torch.allclose(e_none, logits)
    pm = fa.progress_measures(model, data, freqs=[1, 4])
    for key in ("restricted_loss", "excluded_loss", "train_loss", "test_loss", "gini_embed", "gini_neuron_logit"):
        assert np.isfinite(pm[key])
    with pytest.raises(ValueError, match="remainders"):
        fa.progress_measures(model_for(p=11), RemaindersData(RemaindersSpec(p=11)))


def test_progress_measures_on_planted_addition_logits():
    """A model whose logits are exactly cos(w_k (a + b - c)) for k in {2, 5}: restricted to those
    frequencies it is perfect, with them excluded it is at chance."""
    p = 29
    spec = RemaindersSpec(p=p, variant="addition")
    model = model_for(p=p, variant="addition")
    data = RemaindersData(spec)
    a, b = np.divmod(np.arange(p * p), p)
    c = np.arange(p)
    planted = sum(np.cos(2 * np.pi * k * ((a + b)[:, None] - c[None]) / p) for k in (2, 5)) * 20
    fake = torch.as_tensor(planted)[:, None, :]

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model
            self.p, self.spec, self.n_classes = model.p, model.spec, model.n_classes
            self.embed, self.blocks, self.unembed, self.training = model.embed, model.blocks, model.unembed, False

        def tokens_for(self, n):
            return torch.as_tensor(np.asarray(n))

        def forward(self, n):
            return fake[n]

    wrapped = Wrapped()
    assert fa.addition_key_frequencies(wrapped) == [2, 5]
    pm = fa.progress_measures(wrapped, data)
    assert pm["key_frequencies"] == [2, 5]
    assert pm["restricted_loss"] < 1e-3
    assert pm["excluded_loss"] == pytest.approx(np.log(p), rel=1e-6)


def test_polar_data():
    d = fa.polar_data(11, (2, 3))
    assert len(d["n"]) == 121
    assert (d["div_2"] == (d["n"] % 2 == 0)).all() and (d["div_3"] == (d["n"] % 3 == 0)).all()
    assert np.allclose(np.hypot(d["x"], d["y"]), d["r"])
    assert d["is_prime"][[2, 3, 5, 7, 11, 113]].all() and not d["is_prime"][[0, 1, 4, 9, 120]].any()
