"""MIIII task order and progress measures (docs/results/miiii_small_rerun_progress.json) beside the
reference's "q = 2, 3, 5, 7 learned first".

    python analyses/miiii_progress.py [--out report]
"""

from reproduce_section import run


def rows(s):
    if not s.get("available"):
        return
    yield "first four tasks to become exact", "2, 3, 5, 7", ", ".join(map(str, s["first_order"][:4]))
    yield "first four exact for good", "2, 3, 5, 7", ", ".join(map(str, s["order_for_good"][:4]))
    yield "claim holds (first exact / for good)", None, f"{s['claim_2357_first_holds']} / {s['claim_2357_first_holds_for_good']}"
    yield "total weight norm, start -> end", None, f"{s['weight_norm_start']:.0f} -> {s['weight_norm_end']:.0f}"
    yield "Gini of the embedding's Fourier norms", None, f"{s['gini_embed_start']:.2f} -> {s['gini_embed_end']:.2f}"


if __name__ == "__main__":
    run("miiii.progress", rows, __doc__)
