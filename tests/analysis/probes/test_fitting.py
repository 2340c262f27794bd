"""Fitting: planted linear features are found, shuffled labels and noise give chance, nonlinear features
(xor, parity) are not linear; the fitting functions directly on a split."""

import numpy as np
import torch

from ktlens.analysis.probes import ProbeTarget, fit_classifiers, fit_ridge, probe_features


def test_planted_linear_class_feature_is_found_and_shuffled_is_chance():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 20))
    W = rng.normal(size=(20, 3))
    y = (X @ W).argmax(1)
    res = probe_features(X, ProbeTarget("planted", "class", y, "argmax of a linear map"))
    assert res.accuracy > 0.95
    assert res.baseline < 0.6
    assert res.n_classes == 3
    # shuffled labels: nothing to learn beyond the class frequencies
    assert res.shuffled_accuracy < res.baseline + 0.08
    assert res.selectivity > 0.5


def test_shuffled_labels_on_pure_noise_give_chance():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 30))
    y = rng.integers(0, 4, size=2000)
    res = probe_features(X, ProbeTarget("noise", "class", y))
    assert abs(res.accuracy - 0.25) < 0.06
    assert abs(res.shuffled_accuracy - 0.25) < 0.06


def test_xor_of_two_signs_is_not_linearly_decodable():
    rng = np.random.default_rng(2)
    s = rng.choice([-1.0, 1.0], size=(2000, 2))
    X = np.concatenate([s + 0.1 * rng.normal(size=s.shape), rng.normal(size=(2000, 6))], 1)
    y = (s[:, 0] * s[:, 1] > 0).astype(int)
    res = probe_features(X, ProbeTarget("xor", "class", y))
    assert res.accuracy < 0.6
    # each sign on its own is linear
    assert probe_features(X, ProbeTarget("sign0", "class", s[:, 0] > 0)).accuracy > 0.99


def test_parity_of_a_linear_coordinate_is_not_linearly_decodable():
    rng = np.random.default_rng(3)
    n = rng.integers(0, 64, size=3000)
    X = np.stack([n, rng.normal(size=3000)], 1).astype(float)
    res = probe_features(X, ProbeTarget("parity", "class", n % 2))
    assert res.accuracy < 0.6


def test_ridge_recovers_a_planted_scalar_and_not_noise():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(3000, 10))
    y = X @ rng.normal(size=10) + 3.0 + 0.01 * rng.normal(size=3000)
    res = probe_features(X, ProbeTarget("planted", "scalar", y))
    assert res.metric == "r2"
    assert res.accuracy > 0.999
    assert abs(res.baseline) < 0.02
    assert abs(res.shuffled_accuracy) < 0.03
    noise = probe_features(X, ProbeTarget("noise", "scalar", rng.normal(size=3000)))
    assert abs(noise.accuracy) < 0.03


def test_fit_functions_on_a_split():
    rng = np.random.default_rng(6)
    X = torch.as_tensor(rng.normal(size=(400, 6)), dtype=torch.float32)
    y_class = (X[:, 0] > 0).numpy().astype(np.int64)
    y_scalar = (2 * X[:, 1] - X[:, 2]).double().numpy()
    train, test = np.arange(300), np.arange(300, 400)
    [cls] = fit_classifiers(X, [y_class], train, test)
    assert cls["test"] > 0.95 and cls["n_classes"] == 2
    majority = int(y_class[train].mean() > 0.5)  # majority class of the train split, scored on test
    assert abs(cls["baseline"] - (y_class[test] == majority).mean()) < 1e-6
    ridge, noise = fit_ridge(X, [y_scalar, rng.normal(size=400)], train, test)
    assert ridge["test"] > 0.99 and abs(noise["test"]) < 0.05
    assert fit_ridge(X, [y_scalar], train, test, l2=1e3)[0]["test"] < ridge["test"]  # heavy shrinkage costs
