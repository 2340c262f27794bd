"""`ktlens kgroup P R E`: the group, as text or JSON; bad input exits 2 naming the value."""

import json

import pytest

from ktlens.cli import main


def test_prints_the_group(capsys):
    # K_1(F_2[x]/(x^4), (x)) is the unit group 1 + x F_2[x]/(x^4): order 8, 1 + x has order 4
    # ((1 + x)^2 = 1 + x^2), and only 4 elements square to 1, so it is Z/2 + Z/4
    assert main(["kgroup", "2", "1", "4"]) == 0
    assert capsys.readouterr().out == "Z/2 + Z/4\n"
    assert main(["kgroup", "3", "2", "2"]) == 0
    assert capsys.readouterr().out == "Z/9\n"


def test_json_record(capsys):
    assert main(["kgroup", "2", "1", "4", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record == {"p": 2, "r": 1, "e": 4, "f": 1, "degree": 1, "group": "Z/2 + Z/4", "counts": [1, 1], "log_p_order": 3}
    assert main(["kgroup", "3", "2", "2", "--f", "2", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["group"] == "(Z/9)^2" and record["log_p_order"] == 4  # F_9 doubles every summand


@pytest.mark.parametrize("argv, message", [(["4", "2", "2"], "p=4"), (["3", "0", "2"], "r=0"), (["3", "2", "0"], "e=0")])
def test_bad_input_exits_2_naming_the_value(argv, message, capsys):
    assert main(["kgroup", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("ktlens: error: ") and message in captured.err
