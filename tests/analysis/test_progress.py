"""Progress measures: exact steps from a history, and the measures of a built model against direct sums."""

import numpy as np
import pytest
import torch

from ktlens.analysis import progress as pg
from ktlens.models.encoder import RemaindersTransformer
from ktlens.tasks.remainders import RemaindersSpec


def test_exact_steps_need_both_splits_and_staying_exact():
    history = [
        {"step": 10, "train_acc_q2": 1.0, "test_acc_q2": 1.0, "train_acc_q3": 0.5, "test_acc_q3": 0.2},
        {"step": 20, "train_acc_q2": 1.0, "test_acc_q2": 0.9, "train_acc_q3": 1.0, "test_acc_q3": 0.9},
        {"step": 30, "train_acc_q2": 1.0, "test_acc_q2": 1.0, "train_acc_q3": 1.0, "test_acc_q3": 1.0},
        {"step": 40, "train_acc_q2": 1.0, "test_acc_q2": 1.0, "train_acc_q3": 1.0, "test_acc_q3": 1.0},
    ]
    steps = pg.exact_steps(history, [2, 3, 5])
    assert steps == {2: 30, 3: 30, 5: None}  # q = 2 was exact at 10 but not at 20
    assert pg.exact_steps(history, [2, 3, 5], stay=False) == {2: 10, 3: 30, 5: None}
    assert pg.task_order({2: 30, 3: 10, 5: None, 7: 10}) == [3, 7, 2, 5]
    # a history with test accuracies only (older runs)
    assert pg.exact_steps([{"step": 5, "test_acc_q2": 1.0}], [2]) == {2: 5}


def test_snapshot_measures_match_direct_computation():
    spec = RemaindersSpec(p=11)
    model = RemaindersTransformer.create(spec, d_model=16, n_heads=2, d_mlp=24, normalization="none").eval()
    out = pg.snapshot_measures(model, {2: [1], 3: [1], 5: [], 7: [1, 2]})
    direct = np.sqrt(sum(float((p.detach().double() ** 2).sum()) for p in model.parameters()))
    assert out["weight_norm"] == pytest.approx(direct)
    n = np.arange(121)
    with torch.no_grad():
        logits = model(model.tokens_for(n)).double()
    for t, q in enumerate(spec.moduli):
        task = out["tasks"][q]
        lg = logits[:, t, :q]
        assert task["accuracy"] == pytest.approx(float((lg.argmax(-1).numpy() == n % q).mean()))
        assert task["loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(lg, torch.as_tensor(n % q))))
        assert 0 <= task["gini"] <= 1
    # no characters: restricted keeps only the mean logits (a uniform-ish guess), excluded is the model itself
    assert out["tasks"][5]["excluded_loss"] == pytest.approx(out["tasks"][5]["loss"])
