"""The shipped miiii-small against the Fourier story: every judged number, task by task."""

import pytest

import ktlens
from ktlens.analysis.miiii_analysis import analyse


@pytest.fixture(scope="module")
def rows():
    return analyse(ktlens.load_pretrained("miiii-small"), where=("resid",))


def test_found_frequencies_are_predicted_ones(rows):
    assert [r.q for r in rows] == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31]
    for r in rows:
        assert r.found_frequencies["x0"] and r.found_frequencies["x1"], r.q
        assert r.matched["all_predicted"], r.q
        assert r.characters, r.q  # a found pair sits next to a predicted character's centre
    # the small moduli, where the prediction is sharp: p / 2 = 18.5 and p / 3 = 12.33
    assert rows[0].found_frequencies["x0"] == [18] and rows[1].found_frequencies["x1"] == [12]


def test_restricted_keeps_every_task_and_excluded_breaks_it(rows):
    for r in rows:
        assert r.full_accuracy == 1.0
        assert r.restricted_accuracy >= 0.95, r.q
        if r.q >= 5:
            assert r.excluded_accuracy <= r.restricted_accuracy - 0.3, r.q


def test_characters_not_identified_do_not_carry_the_task(rows):
    controls = [r for r in rows if r.control_characters]
    assert len(controls) >= 8  # q = 2, 3 (one character) and q = 5 (both used) have no control
    for r in controls:
        assert r.control_restricted_accuracy < 0.5 and r.control_excluded_accuracy > 0.95, r.q
