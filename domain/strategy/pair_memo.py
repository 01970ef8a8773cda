"""Answers remembered per (parameters, market rules) pair of objects, for the strategy's pure functions.

The orders quoting a pair share one StrategyParams and one MarketRules object (actors/order/strategy.py keeps one of
each), so what depends on those objects (and on a few plain inputs) is worked out once for all of them. A key starts
with the two objects' ids; an entry keeps the objects themselves, so an id that a freed object's successor reuses
is never taken for it. Full, the memo is cleared whole (a bound, not an LRU: the working set is a few pairs).
"""
from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class PairMemo(Generic[T]):
    __slots__ = ("_entries", "_limit")

    def __init__(self, limit: int) -> None:
        self._entries: dict[Hashable, tuple[Any, Any, T]] = {}
        self._limit = limit

    def get(self, key: Hashable, params: Any, rules: Any, compute: Callable[..., T], *args: Any) -> T:
        """The answer remembered under ``key`` (which starts with ``id(params), id(rules)``) for these very
        objects, else ``compute(*args)``, remembered."""
        known = self._entries.get(key)
        if known is not None and known[0] is params and known[1] is rules:
            return known[2]
        value = compute(*args)
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[key] = (params, rules, value)
        return value

    def peek(self, key: Hashable, params: Any, rules: Any) -> T | None:
        """The answer remembered under ``key`` for these very objects, else None (nothing is computed)."""
        known = self._entries.get(key)
        if known is not None and known[0] is params and known[1] is rules:
            return known[2]
        return None

    def clear(self) -> None:
        self._entries.clear()
