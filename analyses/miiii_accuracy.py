"""MIIII accuracy per task beside the reference's 100% on all 29 tasks at p = 113.

    python analyses/miiii_accuracy.py [--out report]
"""

from reproduce_section import run


def rows(s):
    yield "p", s["reference_p"], s["p"]
    yield "tasks", s["reference_tasks"], s["n_tasks"]
    yield "lowest task accuracy, all inputs", s["reference_accuracy"], s["min_accuracy"]
    yield "lowest task accuracy, held-out", s["reference_accuracy"], s["min_test_accuracy"]
    for q, acc in s["accuracy"].items():
        yield f"q = {q}", None, acc


if __name__ == "__main__":
    run("miiii.accuracy", rows, __doc__)
