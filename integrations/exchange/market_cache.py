"""Shared market data of one exchange account: one order-book request per symbol per ``ttl``.

Every OrderActor quoting a pair needs the pair's book each tick. Asked directly, 1,000 orders on
one pair would send 1,000 depth requests per tick and eat the account's weight budget (Binance
charges 5 per depth request up to 100 levels). ``BookCache.book(symbol)`` answers from a cache
younger than ``ttl`` seconds; otherwise exactly one caller (the first) sends the request and every
concurrent caller for the same symbol waits for that request's answer (single flight). A failed
request is not cached: the first caller and everyone waiting on it get the same error
(``ExchangeError`` subclasses, as the account raises them) and the next call tries again.

The age of a cached book counts from the moment its request was SENT, so a slow answer is never
served as fresher than it is. ``sent_after`` asks for a book whose request left after a given moment
(``clock()``): a post-only placement that follows this order's cancels must price on a book asked for
after them — a book cached (or in flight) from before could predate a move and let the order cross.
Greenlet-safe (gevent); not thread-safe.
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
        self._inflight: dict[str, tuple[float, AsyncResult]] = {}
        self.requests = 0      # depth requests sent
        self.hits = 0          # answers from the cache
        self.joined = 0        # callers that waited for another caller's request

    def clock(self) -> float:
        """The cache's own clock: the time base of ``sent_after``."""
        return self._clock()

    def book(self, symbol: str, *, max_age: float | None = None, sent_after: float | None = None) -> OrderBook:
        """The symbol's order book, at most ``max_age`` (default ``ttl``) seconds old and, with
        ``sent_after``, from a request sent at or after that moment of :meth:`clock`."""
        max_age = self.ttl if max_age is None else max_age
        cached = self._books.get(symbol)
        if (cached is not None and self._clock() - cached[0] < max_age
                and (sent_after is None or cached[0] >= sent_after)):
            self.hits += 1
            return cached[1]
        waiting = self._inflight.get(symbol)
        if waiting is not None and (sent_after is None or waiting[0] >= sent_after):
            self.joined += 1
            return waiting[1].get()          # the leader's book, or its exception re-raised
        result = AsyncResult()
        sent_at = self._clock()
        self._inflight[symbol] = (sent_at, result)   # a request sent before sent_after is not joined
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
            current = self._inflight.get(symbol)
            if current is not None and current[1] is result:
                del self._inflight[symbol]
        cached = self._books.get(symbol)
        if cached is None or cached[0] <= sent_at:     # never replace a book asked for later
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
