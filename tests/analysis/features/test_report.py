"""Units read over a tiny model's whole domain: row order, events against the definition, the JSON form."""

import numpy as np
import pytest
import torch

from ktlens.analysis.features import analyze_units, feature_domain, neuron_units, read_units, task_events
from ktlens.models import KTheoryTransformer, RemaindersTransformer
from ktlens.tasks.remainders import RemaindersSpec
from tests.tasks.ktheory_brute import definition_counts

SPEC = {"primes": [2, 3, 5], "r_max": 3, "e_max": 4, "label_order": "descending"}


@pytest.fixture(scope="module")
def kmodel():
    return KTheoryTransformer.create(SPEC, d_model=32, n_heads=4, d_mlp=16, n_layers=2, seed=1).eval()


def test_rows_are_examples_times_decoder_positions_in_model_order(kmodel):
    units = read_units(kmodel, neuron_units(kmodel, "blocks.1.mlp.hook_post"), progress=False)
    d = units.domain
    assert d.n_examples == 3 * 3 * 4 and d.n_positions == kmodel.seq_len
    assert d.position_names == kmodel.position_labels()
    _, cache = kmodel.run_with_cache(d.tokens[5:6])
    direct = cache["blocks.1.mlp.hook_post"][0]  # [L, d_mlp]
    torch.testing.assert_close(units.acts[5 * d.n_positions : 6 * d.n_positions], direct)


def test_n2_equals_one_event_matches_the_definition(kmodel):
    d = feature_domain(kmodel)
    events = task_events(d)
    j = [h.text() for h in events.hypotheses].index("n_2 == 1")
    want = np.array([(definition_counts(int(p), int(r), int(e)) + [0, 0])[1] == 1
                     for p, r, e in zip(d.inputs["p"], d.inputs["r"], d.inputs["e"])])
    assert np.array_equal(events.events[:, 0, j], want) and np.array_equal(events.events[:, -1, j], want)


def test_json_has_the_issue_format_and_user_hypotheses(kmodel):
    report = analyze_units(kmodel, neuron_units(kmodel, "blocks.0.mlp.hook_post"),
                           hypotheses={"r_is_e": lambda p, r, e: r == e}, progress=False)
    assert any(h.variable == "r_is_e" and h.relation == "user" for h in report.events.hypotheses)
    out = report.to_json()
    assert len(out["units"]) == 16 and set(out["coverage"]) >= {"share_covered", "events"}
    for row in out["units"]:
        assert {"unit", "density", "position_share", "hypothesis", "threshold", "precision", "recall", "f1"} <= set(row)
        assert len(row["position_share"]) == kmodel.seq_len
        if row["hypothesis"] is not None:
            assert set(row["hypothesis"]) == {"variable", "relation", "value", "position"}
    with pytest.raises(ValueError, match="blocks.7.mlp.hook_post"):
        neuron_units(kmodel, "blocks.7.mlp.hook_post")
    with pytest.raises(ValueError, match="shape"):
        analyze_units(kmodel, neuron_units(kmodel, "blocks.0.mlp.hook_post"), hypotheses={"bad": lambda p, r, e: np.ones(3, bool)},
                      progress=False)


def test_miiii_units_get_periodicity_and_residue_events():
    model = RemaindersTransformer.create(RemaindersSpec(p=7), d_model=32, n_heads=4, d_mlp=16, n_layers=1).eval()
    report = analyze_units(model, neuron_units(model, "blocks.0.mlp.hook_post"), progress=False)
    assert report.domain.n_rows == 49 and report.periodic is not None
    names = {h.text() for h in report.events.hypotheses}
    assert {"n_mod_q[5] == 0", "digit_0 == 3"} <= names
    assert all(h.position is None for h in (report.scores.candidate(c) for c in report.scores.best[:, 0] if c >= 0))


class _ToySAE:
    """The SAE surface the features code uses: cfg.hook_name, encode, W_dec."""

    class cfg:
        hook_name = "blocks.0.mlp.hook_post"
        name = "toy"

    def __init__(self, d_in, d_sae):
        gen = torch.Generator().manual_seed(0)
        self.W_enc = torch.randn(d_in, d_sae, generator=gen)
        self.W_dec = torch.randn(d_sae, d_in, generator=gen)

    def encode(self, x):
        return torch.relu(x @ self.W_enc)


def test_sae_latents_are_units_with_decoder_directions(kmodel):
    from ktlens.analysis.features import direct_logit_effects, sae_units

    sae = _ToySAE(16, 24)
    source = sae_units(kmodel, sae)
    assert source.n_units == 24 and source.kind == "latent"
    units = read_units(kmodel, source, progress=False)
    neurons = read_units(kmodel, neuron_units(kmodel, "blocks.0.mlp.hook_post"), progress=False)
    torch.testing.assert_close(units.acts, torch.relu(neurons.acts @ sae.W_enc))
    effects = direct_logit_effects(kmodel, source)
    w = getattr(kmodel.ln_final, "w", None)
    direction = sae.W_dec @ kmodel.W_out[0].detach()
    want = (direction if w is None else direction * w.detach()) @ kmodel.W_U.detach()
    np.testing.assert_allclose(effects, want.numpy(), rtol=1e-4, atol=1e-5)
