"""`ktlens dla`: on the shipped models the contributions add up to the model's own logit."""

import json

import pytest
import torch

from ktlens.checkpoint import load_pretrained
from ktlens.cli import main


@pytest.mark.parametrize("model_name, text", [("ktheory-small", "3,4,9"), ("miiii-small", "100")])
def test_dla_json_adds_up_to_the_models_logit(model_name, text, capsys):
    assert main(["dla", "--model", model_name, "--input", text, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["positions"]
    model = load_pretrained(model_name).eval()
    if model_name == "miiii-small":
        logits = model(model.tokens_for([100]))[0].detach()
        assert [row["task"] for row in rows] == list(model.moduli)
        assert [row["token"] for row in rows] == [100 % q for q in model.moduli]
    else:
        logits = model(model.make_batch([3], [4], [9]))[0].detach()
        assert len(rows) == model.seq_len
        names = {c["name"] for c in rows[0]["components"]}
        assert {f"L{l}C{h}" for l in range(2) for h in range(4)} <= names
    for k, row in enumerate(rows):
        assert row["logit"] == pytest.approx(float(logits[k, row["token"]]), abs=1e-4)
        assert sum(c["contribution"] for c in row["components"]) == pytest.approx(row["logit"], abs=1e-3)


def test_dla_bad_input_is_one_line(capsys):
    assert main(["dla", "--model", "ktheory-small", "--input", "4,4,9"]) == 2
    assert "p=4" in capsys.readouterr().err
    assert main(["dla", "--model", "miiii-small", "--input", "3,4"]) == 2
