"""MIIII Fourier features: periodic MLP neurons per task and the digit embedding's Fourier norms, beside the
reference's "periodic embeddings and neurons".

    python analyses/miiii_fourier.py [--out report]
"""

from reproduce_section import run


def rows(s):
    yield "periodic MLP neurons (of alive)", "periodic", f"{s['periodic_neurons']} of {s['alive']}"
    yield "embedding: Gini of the Fourier norms", "periodic", s["embedding_gini"]
    yield "embedding: frequencies standing out", "periodic", ", ".join(map(str, s["embedding_standout_frequencies"])) or "none"
    for q, n in s["periodic_by_task_q"].items():
        yield f"periodic neurons for q = {q}", None, n


if __name__ == "__main__":
    run("miiii.fourier", rows, __doc__)
