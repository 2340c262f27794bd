"""K-theory exact match (teacher-forced and autoregressive, domain and held-out) beside the reference's 94%.

    python analyses/ktheory_accuracy.py [--fast] [--out report]     # the whole domain: ~1 min on 2 cores
"""

from reproduce_section import run


def rows(s):
    yield "teacher-forced exact match, domain", s["reference_tf_exact"], s["tf_exact_domain"]
    yield "teacher-forced exact match, held-out", s["reference_tf_exact"], s["tf_exact_heldout"]
    yield "autoregressive exact match, domain", None, s["ar_exact_domain"]
    yield "autoregressive exact match, held-out", None, s["ar_exact_heldout"]
    yield "autoregressive, held-out non-trivial (p <= re)", None, s["ar_exact_heldout_nontrivial"]


if __name__ == "__main__":
    run("ktheory.accuracy", rows, __doc__)
