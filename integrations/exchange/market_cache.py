"""Shared market data of one exchange account: one order-book request per symbol per ``ttl``.

Every OrderActor quoting a pair needs the pair's book each tick. Asked directly, 1,000 orders on
one pair would send 1,000 depth requests per tick and eat the account's weight budget (Binance
charges 5 per depth request up to 100 levels). ``BookCache.book(symbol)`` answers from a cache
younger than ``ttl`` seconds; otherwise exactly one caller (the first) sends the request and every
concurrent caller for the same symbol waits for that request's answer (single flight). A failed
request is not cached: the first caller and everyone waiting on it get the same error
(``ExchangeError`` subclasses, as the account raises them) and the next call tries again.

The age of a cached book counts from the moment its request was SENT, so a slow answer is never
served as fresher than it is. Greenlet-safe (gevent); not thread-safe.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gevent.event import AsyncResult

from integrations.exchange.account import OrderBook
from integrations.exchange.errors import UnknownOutcome

__all__ = ["BookCache"]


class BookCache:
    def __init__(self, account: Any, ttl: float = 0.5, *, limit: int | None = 20,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if ttl < 0:
            raise ValueError(f"ttl must be >= 0, got {ttl!r}")
        self.account = account
        self.ttl = float(ttl)
        self.limit = limit
        self._clock = clock
        self._books: dict[str, tuple[float, OrderBook]] = {}
        self._inflight: dict[str, AsyncResult] = {}
        self.requests = 0      # depth requests sent
        self.hits = 0          # answers from the cache
        self.joined = 0        # callers that waited for another caller's request

    def book(self, symbol: str, *, max_age: float | None = None) -> OrderBook:
        """The symbol's order book, at most ``max_age`` (default ``ttl``) seconds old."""
        max_age = self.ttl if max_age is None else max_age
        cached = self._books.get(symbol)
        if cached is not None and self._clock() - cached[0] < max_age:
            self.hits += 1
            return cached[1]
        waiting = self._inflight.get(symbol)
        if waiting is not None:
            self.joined += 1
            return waiting.get()          # the leader's book, or its exception re-raised
        result = AsyncResult()
        self._inflight[symbol] = result
        sent_at = self._clock()
        self.requests += 1
        try:
            book = self.account.fetch_order_book(symbol, self.limit)
        except Exception as exc:
            result.set_exception(exc)
            raise
        except BaseException:         # the leader was killed (GreenletExit): its waiters must not die of it
            result.set_exception(UnknownOutcome(f"order-book request of {symbol} was interrupted",
                                                kind="interrupted"))
            raise
        finally:
            if self._inflight.get(symbol) is result:
                del self._inflight[symbol]
        self._books[symbol] = (sent_at, book)
        result.set(book)
        return book

    def invalidate(self, symbol: str | None = None) -> None:
        """Forget the cached book of ``symbol`` (all symbols: None); a request in flight is not affected."""
        if symbol is None:
            self._books.clear()
        else:
            self._books.pop(symbol, None)

    def __repr__(self) -> str:
        return (f"BookCache({getattr(self.account, 'account_id', self.account)!r}, ttl={self.ttl:g}, "
                f"{self.requests} requests, {self.hits} hits, {self.joined} joined)")
