"""Every notebook in notebooks/ runs top to bottom without an error, and its last cell states the result
that the test checks again here (the cell prints ``RESULT {json}`` after its sentence, and asserts it too)."""

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))

# what each notebook's last cell must have shown
EXPECTED = {
    "ktheory_circuits": lambda r: r["r_head"] == "L1C3" and r["exact_match_clean"] - r["exact_match_without_r_head"] > 0.3
    and r["exact_match_without_looker"] > r["exact_match_without_r_head"] + 0.2,
    "sae_features": lambda r: r["explained_variance"] > 0.95 and r["n2_eq_1_f1"] > 0.9 and r["n2_eq_1_f1_before_input"] < 0.8,
    "miiii_grokking": lambda r: r["all_exact"] and r["max_excluded_accuracy_q_ge_5"] < 0.1 and sorted(r["first_four"]) == [2, 3, 5, 7],
}


def last_result(nb) -> dict:
    """The RESULT line printed by the last code cell."""
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    text = "".join(o.get("text", "") for o in last.get("outputs", []) if o.output_type == "stream")
    lines = [line for line in text.splitlines() if line.startswith("RESULT ")]
    assert lines, f"the last cell printed no RESULT line: {text!r}"
    sentence = [line for line in text.splitlines() if line and not line.startswith("RESULT ")]
    assert sentence, "the last cell states no result in words"
    return json.loads(lines[-1][len("RESULT "):])


def test_every_notebook_has_an_expectation():
    assert {p.stem for p in NOTEBOOKS} == set(EXPECTED)


def test_notebooks_store_no_outputs():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", []) if o.output_type == "error"]
    assert not errors
    assert EXPECTED[path.stem](last_result(nb))
