"""Mean cross-attention of each head to p, r and e on K-theory triples (the reference showed none).

    python analyses/ktheory_attention.py [--fast] [--out report]
"""

from reproduce_section import run


def rows(s):
    for head, share in s["mean_cross_attention"].items():
        yield f"{head}: mean attention to p / r / e", None, " / ".join(f"{share[k]:.2f}" for k in "pre")


if __name__ == "__main__":
    run("ktheory.attention", rows, __doc__)
