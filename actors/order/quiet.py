"""Quiet orders sleep on their book: one watcher per exchange book wakes them when it moves.

A running order whose last tick did nothing (``StrategyRunner.quiet_state``: its plan holds while the book
top, its holdings and its orders stay as they were) need not tick every ``tick_interval``: 50,000 such orders
were 50,000 actor messages a second, each deciding again what it had just decided. Such an order registers
here with the book top it planned on and sleeps until the first of: this watcher sees the top differ (or the
book fail, or the account halted) — checked once per interval for all its sleepers; its own timer at the next
moment its plan's clock rules, its end time, its drawdown check or its re-read are due (at most QUIET_MAX
ahead); or anything else reaching its actor (exchange events, commands, added funds: ``StrategyStage.changed``).

Memory only: a restart starts every order ticking, and each sleeps again after a tick that did nothing. The
watcher's greenlet runs while it has sleepers; a failure of its own wakes every sleeper (they tick as before).
"""
from __future__ import annotations

import time
from typing import Any

import gevent
import pykka
from loguru import logger

from actors.protocol import StrategyTick
from domain.strategy.ladder import BookTop
from integrations.exchange.errors import ExchangeError
from storage import risk

QUIET_MAX = 30.0  # seconds a quiet order sleeps at most without being woken


def book_top(book) -> BookTop:
    """The top of an order book (the cache's or the exchange's answer) as the strategy reads it."""
    return BookTop(best_bid=book.bids[0][0] if book.bids else None,
                   best_ask=book.asks[0][0] if book.asks else None, last_trade=None)


class BookWatch:
    """The sleeping orders of one (account, symbol) and the greenlet that wakes them."""

    def __init__(self, services, account_id: str, symbol: str, interval: float) -> None:
        self.services = services
        self.account_id = account_id
        self.symbol = symbol
        self.interval = interval
        self.sleepers: dict[str, tuple[Any, BookTop]] = {}   # order id → (its actor ref, the top it planned on)
        self.fresh_at: float | None = None   # when the book was last read fine (a sleeper's guard counts it)
        self._greenlet: gevent.Greenlet | None = None

    def sleep(self, order_id: str, actor_ref, top: BookTop) -> None:
        self.sleepers[order_id] = (actor_ref, top)
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run)

    def leave(self, order_id: str) -> None:
        self.sleepers.pop(order_id, None)

    def _run(self) -> None:
        # A fixed cadence (one look per interval, not an interval after the last look ended): a sleeper woken by
        # a move ticks about once an interval, as it would awake — not a look's duration later each time.
        due = time.monotonic()
        while self.sleepers:
            due += self.interval
            now = time.monotonic()
            if due < now:       # a look took longer than an interval: the next one now, not a burst
                due = now
            gevent.sleep(due - now)
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - a bug here must not leave orders asleep
                logger.opt(exception=exc).warning("quiet orders of {} {}: watcher failed; waking them all",
                                                  self.account_id, self.symbol)
                self.wake(lambda top: True)

    def check(self) -> int:
        """One look at the book: wake the sleepers whose top is not the book's now. Returns how many woke."""
        if not self.sleepers:
            return 0
        cache = (getattr(self.services, "book_caches", None) or {}).get(self.account_id)
        if cache is None or risk.halted(self.account_id):
            return self.wake(lambda seen: True)
        try:
            top = book_top(cache.book(self.symbol))
        except ExchangeError:
            return self.wake(lambda seen: True)
        self.fresh_at = self.services.clock()
        return self.wake(lambda seen: seen != top)

    def wake(self, moved) -> int:
        woken = [order_id for order_id, (_ref, seen) in self.sleepers.items() if moved(seen)]
        for order_id in woken:
            ref, _ = self.sleepers.pop(order_id)
            try:
                ref.tell(StrategyTick())
            except pykka.ActorDeadError:
                pass
        return len(woken)


def watch_of(services, account_id: str, symbol: str, interval: float) -> BookWatch:
    """The process's watcher of this book (kept with the services' shared per-account state)."""
    watches = services.risk_state.setdefault("quiet_watches", {})
    watch = watches.get((account_id, symbol))
    if watch is None:
        watch = watches[(account_id, symbol)] = BookWatch(services, account_id, symbol, interval)
    return watch
