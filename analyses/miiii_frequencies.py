"""MIIII per task: found frequencies against the predicted ones, and the restricted / excluded ablations
(`ktlens miiii-analysis` prints every frequency; this prints the figures the report quotes).

    python analyses/miiii_frequencies.py [--fast] [--out report]
"""

from reproduce_section import run


def rows(s):
    yield "tasks whose found frequencies are predicted", None, f"{s['tasks_found_subset_of_predicted']} of {s['n_tasks']}"
    yield "lowest restricted accuracy", None, s["min_restricted_accuracy"]
    yield "highest excluded accuracy, q >= 5", None, s["max_excluded_accuracy_q_ge_5"]
    for q, t in s["per_task"].items():
        yield f"q = {q}: restricted / excluded", None, f"{t['restricted_accuracy']:.3f} / {t['excluded_accuracy']:.3f}"


if __name__ == "__main__":
    run("miiii.frequencies", rows, __doc__)
