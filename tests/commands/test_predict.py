"""`ktlens predict P R E --model M`: the model's answer beside the true group."""

import json

from ktlens.checkpoint import load_checkpoint
from ktlens.cli import main


def test_json_answer_of_a_run_folder(ktheory_run, capsys):
    assert main(["predict", "2", "1", "4", "--model", str(ktheory_run), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    expected = load_checkpoint(ktheory_run / "model").predict([2], [1], [4])[0]
    # true: Z/2 + Z/4 (the unit group 1 + x F_2[x]/(x^4)), i.e. one Z/2 and one Z/4
    assert record == {"p": 2, "r": 1, "e": 4, "predicted": expected, "true": [1, 1], "correct": expected == [1, 1]}


def test_text_answer(ktheory_run, capsys):
    assert main(["predict", "3", "2", "2", "--model", str(ktheory_run / "model")]) == 0
    out = capsys.readouterr().out
    expected = load_checkpoint(ktheory_run / "model").predict([3], [2], [2])[0]
    assert out.startswith(f"predicted {expected}   true [0, 1]")
    assert out.rstrip().endswith("correct" if expected == [0, 1] else "WRONG")


def test_bad_input_and_wrong_model(ktheory_run, miiii_run, capsys):
    assert main(["predict", "4", "2", "2", "--model", str(ktheory_run)]) == 2
    assert "p=4" in capsys.readouterr().err
    assert main(["predict", "3", "2", "2", "--model", str(miiii_run)]) == 2
    assert "is a 'miiii' model, not a K-theory model" in capsys.readouterr().err
    assert main(["predict", "3", "2", "2", "--model", str(ktheory_run.parent)]) == 2
    err = capsys.readouterr().err
    assert "give one of the checkpoint folders inside it" in err and str(ktheory_run / "model") in err
