"""Independent checks of the primes section of ktlens.tasks.ktheory: `is_prime` against trial division."""

from __future__ import annotations

from ktlens.tasks import ktheory as kt
from tests.tasks.ktheory_brute import PRIMES_400, naive_is_prime


def test_primes_against_trial_division():
    assert [n for n in range(-5, 3000) if kt.is_prime(n)] == [
        n for n in range(-5, 3000) if naive_is_prime(n)
    ]
    assert kt.first_primes(0) == []
    assert kt.first_primes(1) == [2]
    assert PRIMES_400 == [n for n in range(2, 2742) if naive_is_prime(n)]
    assert PRIMES_400[-1] == 2741
    big = [10**9 + 7, 2**61 - 1, 999_999_999_989]
    assert all(kt.is_prime(n) for n in big)
    assert not any(kt.is_prime(n) for n in [10**9 + 9 * 7, 2**61 + 1, 561, 1105, 3215031751])
