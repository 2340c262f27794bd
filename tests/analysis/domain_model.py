"""A tiny K-theory model over a bounded domain (r*e <= 12) whose decoder writes scratch values first."""

from ktlens.models import KTheoryTransformer
from ktlens.tasks.ktheory_data import KTheoryGridSpec
from ktlens.tasks.ktheory_spec import KTheoryTaskSpec

GRID = dict(n_primes=2, r_max=6, e_max=5, re_max=12, split="random", test_fraction=0.25, seed=0)
PRIMES, R_MAX, E_MAX, RE_MAX = (2, 3), 6, 5, 12


def domain_model(label_order: str = "descending", scratch: tuple[str, ...] = ("re", "quotients")) -> KTheoryTransformer:
    spec = KTheoryTaskSpec.of_grid(KTheoryGridSpec(**GRID), label_order, scratch=scratch)
    return KTheoryTransformer.create(spec, d_model=32, n_heads=2, d_mlp=32, n_layers=2, normalization="pre", seed=3).eval()


def domain_set() -> set[tuple[int, int, int]]:
    """The domain, enumerated here independently of ktlens."""
    return {(p, r, e) for p in PRIMES for r in range(1, R_MAX + 1) for e in range(1, E_MAX + 1) if r * e <= RE_MAX}
