"""DAS on a hand-built model whose output reads one known direction: it finds that direction, a random one does not."""

import numpy as np
import pytest
import torch
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint
from transformer_lens.tools.analysis.interchange import NormMatchedPlacebo, SubspaceInterchange, random_basis

from ktlens.analysis.causal.interchange import FitConfig, collect, fit_subspace, interchange_accuracy, subspace_cosine

D, N_VALUES = 8, 5


class Toy(HookedRootModule):
    """tokens [batch, 3] = (a, b, c) in 0..4 -> h = a v_a + b v_b + c v_c (hook_h) -> logits over 0..4 reading
    h . v_a only. The output is a; the variable a lives in the known direction v_a."""

    def __init__(self):
        super().__init__()
        q = torch.linalg.qr(torch.randn(D, D, generator=torch.Generator().manual_seed(0)))[0]
        self.register_buffer("dirs", q[:, :3].T.contiguous())  # rows v_a, v_b, v_c
        self.hook_h = HookPoint()
        self.setup()

    def forward(self, tokens):
        h = self.hook_h(tokens.float() @ self.dirs)
        read = h @ self.dirs[0]
        return -4.0 * (read[:, None] - torch.arange(N_VALUES, dtype=h.dtype)) ** 2


def _pairs(n, seed):
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(N_VALUES, (n, 3), generator=g)
    source = torch.randint(N_VALUES, (n, 3), generator=g)
    source[:, 0] = (base[:, 0] + 1 + torch.randint(N_VALUES - 1, (n,), generator=g)) % N_VALUES  # a always changes
    return base, source, source[:, 0].clone()


def test_das_finds_the_known_subspace_and_a_random_one_does_not():
    model = Toy().eval()
    base, source, targets = _pairs(512, 0)
    subspace, losses = fit_subspace(model, "hook_h", None, base, source, targets, FitConfig(rank=1, steps=300, batch_size=64, lr=0.05))
    assert losses[-1] < losses[0]
    tb, ts, tt = _pairs(256, 1)
    src = collect(model, "hook_h", ts, None)
    basis = subspace.basis.detach()
    iia, _ = interchange_accuracy(model, "hook_h", None, SubspaceInterchange(basis), tb, src, tt)
    assert iia == 1.0
    assert subspace_cosine(model.dirs[:1].T, basis) > 0.99
    rand = random_basis(D, 1, seed=3)
    assert interchange_accuracy(model, "hook_h", None, SubspaceInterchange(rand), tb, src, tt)[0] < 0.5
    placebo = NormMatchedPlacebo(SubspaceInterchange(basis), rand)
    assert interchange_accuracy(model, "hook_h", None, placebo, tb, src, tt)[0] < 0.5
    assert interchange_accuracy(model, "hook_h", None, None, tb, src, tt)[0] == 0.0  # no swap: the base's a


def test_positions_swap_every_listed_position_and_nothing_else():
    class Seq(HookedRootModule):
        def __init__(self):
            super().__init__()
            self.hook_x = HookPoint()
            self.setup()

        def forward(self, x):
            return self.hook_x(x.float())[..., None].repeat(1, 1, 1, 2)[..., 0, :]

    model = Seq().eval()
    base = torch.zeros(2, 4, 3, dtype=torch.long)
    source = torch.ones(2, 4, 3, dtype=torch.long)
    from ktlens.analysis.causal.interchange import run_interchange

    src = collect(model, "hook_x", source, (1, 3))
    assert src.shape == (2, 2, 3)
    full = SubspaceInterchange(torch.eye(3))
    out = run_interchange(model, "hook_x", (1, 3), full, base, src)
    assert out[:, [1, 3]].eq(1).all() and out[:, [0, 2]].eq(0).all()


def test_bad_hook_and_rank_are_named():
    model = Toy().eval()
    base, source, targets = _pairs(16, 0)
    with pytest.raises(ValueError, match="'hook_nope'"):
        fit_subspace(model, "hook_nope", None, base, source, targets, FitConfig(rank=1, steps=1))
    with pytest.raises(ValueError, match="rank=9"):
        fit_subspace(model, "hook_h", None, base, source, targets, FitConfig(rank=9, steps=1))
    with pytest.raises(ValueError, match="rank=0"):
        FitConfig(rank=0)
    with pytest.raises(ValueError, match="eval mode"):
        fit_subspace(Toy().train(), "hook_h", None, base, source, targets, FitConfig(rank=1, steps=1))


class ScratchToy(HookedRootModule):
    """tokens (a, b, c) -> h [batch, 4, D] (hook_h): every position holds a v_a + b v_b + c v_c. Positions 0 and 1
    (the 'scratch' positions) output b read off v_b, positions 2 and 3 output a read off v_a: a variable scored
    only at the last two positions lives in the known direction v_a."""

    def __init__(self):
        super().__init__()
        q = torch.linalg.qr(torch.randn(D, D, generator=torch.Generator().manual_seed(1)))[0]
        self.register_buffer("dirs", q[:, :3].T.contiguous())
        self.hook_h = HookPoint()  # [batch, 4, D]
        self.setup()

    def forward(self, tokens):
        h = self.hook_h((tokens.float() @ self.dirs)[:, None, :].repeat(1, 4, 1))
        read = torch.cat([h[:, :2] @ self.dirs[1], h[:, 2:] @ self.dirs[0]], dim=1)
        return -4.0 * (read[..., None] - torch.arange(N_VALUES, dtype=h.dtype)) ** 2


def test_das_scored_at_some_positions_finds_the_subspace_those_positions_read():
    model = ScratchToy().eval()
    base, source, a_src = _pairs(512, 0)
    targets = a_src[:, None].repeat(1, 2)  # positions 2 and 3 should say the source's a
    at = (2, 3)
    subspace, _ = fit_subspace(model, "hook_h", (0, 1, 2, 3), base, source, targets,
                               FitConfig(rank=1, steps=300, batch_size=64, lr=0.05), target_positions=at)
    tb, ts, ta = _pairs(256, 1)
    tt = ta[:, None].repeat(1, 2)
    src = collect(model, "hook_h", ts, (0, 1, 2, 3))
    basis = subspace.basis.detach()
    iia, per = interchange_accuracy(model, "hook_h", (0, 1, 2, 3), SubspaceInterchange(basis), tb, src, tt, target_positions=at)
    assert iia == 1.0 and per.shape == (2,)
    assert subspace_cosine(model.dirs[:1].T, basis) > 0.99
    assert interchange_accuracy(model, "hook_h", (0, 1, 2, 3), SubspaceInterchange(random_basis(D, 1, seed=3)), tb, src, tt,
                                target_positions=at)[0] < 0.5
    assert interchange_accuracy(model, "hook_h", (0, 1, 2, 3), None, tb, src, tt, target_positions=at)[0] == 0.0
    # the scratch positions still say the base's b: v_a is not what they read
    b_hits = interchange_accuracy(model, "hook_h", (0, 1, 2, 3), SubspaceInterchange(basis), tb, src, tb[:, 1:2].repeat(1, 2),
                                  target_positions=(0, 1))[0]
    assert b_hits == 1.0
    with pytest.raises(ValueError, match="target position 7"):
        interchange_accuracy(model, "hook_h", None, None, tb, src, tt, target_positions=(2, 7))
