"""Shared by the pure-logic tests: asset ids and a property-test runner that needs no extra package."""
from __future__ import annotations

import random
from decimal import Decimal

try:  # property tests use hypothesis when it is installed, else a seeded random loop
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - depends on the environment
    given = None

BTC = "c6d0c728-2624-429b-8e0d-d9d19b6592fa"
USDT = "4d8c508b-91c5-375b-92b0-ee702ed2dac5"
ETH = "43d61dcd-e413-450d-80b8-101d5e903357"
E8 = Decimal("0.00000001")


def property_cases(n: int):
    """Run the decorated check(rng) on n random cases: hypothesis-driven when available (it shrinks a
    failure), otherwise n seeded random.Random instances."""
    def deco(check):
        if given is not None:
            return settings(max_examples=n, deadline=None, database=None,
                            suppress_health_check=list(HealthCheck))(given(st.randoms(use_true_random=False))(check))

        def loop():
            for seed in range(n):
                check(random.Random(seed))
        loop.__name__ = check.__name__
        loop.__doc__ = check.__doc__
        return loop
    return deco
