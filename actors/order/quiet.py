"""Quiet orders sleep on their book: one watcher per exchange book wakes them when it moves — out of their band.

A running order whose last tick did nothing (``StrategyRunner.quiet_state``: its plan holds while the book
top, its holdings and its orders stay as they were) need not tick every ``tick_interval``: 50,000 such orders
were 50,000 actor messages a second, each deciding again what it had just decided. Such an order registers
here with the book top it planned on and, where one can be shown, its band (``domain/strategy/band.py``: the
mids over which its plan provably holds), and sleeps until the first of: this watcher sees the book leave its
band (checked every BAND_LOOK) — or, without a band, its top differ from the one it planned on (once per
interval) — or the book fail, or the account halted; its own timer at the next moment its plan's clock rules, its
end time, its drawdown check or its re-read are due (at most QUIET_MAX ahead); or anything else reaching its
actor (exchange events, commands, added funds: ``StrategyStage.changed``).

A look costs O(log N + woken), not O(N): banded sleepers sit in two heaps (the highest low bound, the lowest
high bound), popped while the mid is outside them; the others are grouped by the top they planned on. A
sleeper that leaves (woken by its timer or a message) stays in the heaps until popped or a rebuild drops it.

A banded order woken by a move did not see the moves inside its band: ``prior`` keeps, for it, the last top
it was asleep at (the look before), so its price guard measures the jump from there — one interval's move, as
when every move woke it.

Memory only: a restart starts every order ticking, and each sleeps again after a tick that did nothing. The
watcher's greenlet runs while it has sleepers; a failure of its own wakes every sleeper (they tick as before).
"""
from __future__ import annotations

import heapq
import time
from typing import Any, NamedTuple

import gevent
import pykka
from loguru import logger

from actors.protocol import StrategyTick
from domain.strategy.band import QuietBand
from domain.strategy.ladder import BookTop, mid_price
from integrations.exchange.errors import ExchangeError
from storage import risk

# Seconds a quiet order sleeps at most without being woken: a net under the wake-ups above, each of which is
# explicit. It was 30 s: 5,000 quiet orders were then ~170 ticks a second re-planning what their band already
# proves; its re-read (every REREAD_EVERY, 300 s, jittered per order) comes first now.
QUIET_MAX = 300.0
BAND_LOOK = 0.25  # seconds between the watcher's looks for banded sleepers (at most the interval)


def book_top(book) -> BookTop:
    """The top of an order book (the cache's or the exchange's answer) as the strategy reads it. The same prices
    (the very objects: the cache hands every order of a book the same answer) give the same BookTop object —
    a restart's 50,000 first ticks made one each, and the tick's comparisons of equal tops short-cut on it."""
    bid = book.bids[0][0] if book.bids else None
    ask = book.asks[0][0] if book.asks else None
    last = _LAST_TOP[0]
    if last is not None and last.best_bid is bid and last.best_ask is ask:
        return last
    top = _LAST_TOP[0] = BookTop(best_bid=bid, best_ask=ask, last_trade=None)
    return top


_LAST_TOP: list[BookTop | None] = [None]   # the last top book_top made (one slot: BookTop is immutable)


class Sleeper(NamedTuple):
    actor_ref: Any
    top: BookTop              # the top it planned on
    band: QuietBand | None    # None: any change of the top wakes it
    seq: int                  # tells its heap entries from those of an earlier sleep
    looks: int                # the watcher's looks before it slept


class BookWatch:
    """The sleeping orders of one (account, symbol) and the greenlet that wakes them."""

    def __init__(self, services, account_id: str, symbol: str, interval: float) -> None:
        self.services = services
        self.account_id = account_id
        self.symbol = symbol
        self.interval = interval
        self.sleepers: dict[str, Sleeper] = {}
        self.fresh_at: float | None = None   # when the book was last read fine (a sleeper's guard counts it)
        self.prior: dict[str, BookTop] = {}  # order id → the last top it slept at, for an order woken by a move
        self._by_top: dict[BookTop, set[str]] = {}       # sleepers without a band, by the top they planned on
        self._lows: list[tuple[Any, int, str]] = []      # (-low, seq, order id): the highest low first
        self._highs: list[tuple[Any, int, str]] = []     # (high, seq, order id): the lowest high first
        self._banded = 0
        self._seq = 0
        self._looks = 0
        self._last_top: BookTop | None = None   # what the last good look saw
        self._greenlet: gevent.Greenlet | None = None

    def sleep(self, order_id: str, actor_ref, top: BookTop, band: QuietBand | None = None) -> None:
        if order_id in self.sleepers:
            self.leave(order_id)
        if self.prior:
            self.prior.pop(order_id, None)
        self._seq += 1
        self.sleepers[order_id] = Sleeper(actor_ref, top, band, self._seq, self._looks)
        if band is None:
            self._by_top.setdefault(top, set()).add(order_id)
        else:
            self._banded += 1
            heapq.heappush(self._lows, (-band.low, self._seq, order_id))
            heapq.heappush(self._highs, (band.high, self._seq, order_id))
            if len(self._lows) > 2 * self._banded + 64:
                self._rebuild()
        greenlet = self._greenlet
        if greenlet is None or greenlet.dead:
            self._greenlet = gevent.spawn(self._run)

    def last_seen(self, order_id: str) -> BookTop | None:
        """For a banded order waking now: the last top it slept at (its price guard measures from there)."""
        prior = self.prior.pop(order_id, None)
        if prior is not None:
            return prior
        sleeper = self.sleepers.get(order_id)
        if sleeper is None or sleeper.band is None:
            return None
        return self._last_top if sleeper.looks < self._looks and self._last_top is not None else sleeper.top

    def leave(self, order_id: str) -> None:
        sleeper = self.sleepers.pop(order_id, None)
        if sleeper is None:
            return
        if sleeper.band is None:
            group = self._by_top.get(sleeper.top)
            if group is not None:
                group.discard(order_id)
                if not group:
                    del self._by_top[sleeper.top]
        else:
            self._banded -= 1   # its heap entries go when popped or rebuilt

    def _rebuild(self) -> None:
        """Drop the heap entries of orders that left (each rebuild at least halves the heaps)."""
        banded = [(order_id, s) for order_id, s in self.sleepers.items() if s.band is not None]
        self._lows = [(-s.band.low, s.seq, order_id) for order_id, s in banded]
        self._highs = [(s.band.high, s.seq, order_id) for order_id, s in banded]
        heapq.heapify(self._lows)
        heapq.heapify(self._highs)

    def _run(self) -> None:
        # A fixed cadence (not a step after the last look ended). Banded sleepers are looked at every BAND_LOOK
        # (a look costs O(log N + woken), and an order leaving its band must replace its ladder soon); the
        # others once per interval: one woken by a move ticks about once an interval, as it would awake.
        step = min(self.interval, BAND_LOOK)
        every = max(1, round(self.interval / step))
        due = time.monotonic()
        looks = 0
        while self.sleepers:
            due += step
            now = time.monotonic()
            if due < now:       # a look took longer than a step: the next one now, not a burst
                due = now
            gevent.sleep(due - now)
            looks += 1
            try:
                self.check(plain=looks % every == 0)
            except Exception as exc:  # noqa: BLE001 - a bug here must not leave orders asleep
                logger.opt(exception=exc).warning("quiet orders of {} {}: watcher failed; waking them all",
                                                  self.account_id, self.symbol)
                self.wake_all()

    def check(self, plain: bool = True) -> int:
        """One look at the book: wake the sleepers it moved out of their band (or, without one and when
        ``plain``, off their top). Returns how many woke."""
        if not self.sleepers:
            return 0
        cache = (getattr(self.services, "book_caches", None) or {}).get(self.account_id)
        if cache is None or risk.halted(self.account_id):
            return self.wake_all()
        try:
            top = book_top(cache.book(self.symbol))
        except ExchangeError:
            return self.wake_all()
        self.fresh_at = self.services.clock()
        woken: list[str] = []
        for seen in [seen for seen in self._by_top if seen != top] if plain else ():
            woken.extend(self._by_top.pop(seen))
        mid = mid_price(top)
        if mid is None:   # a side missing or crossed: no band holds
            woken.extend(order_id for order_id, s in self.sleepers.items() if s.band is not None)
        else:
            woken.extend(self._popped(self._lows, lambda key: -key > mid))
            woken.extend(self._popped(self._highs, lambda key: key < mid))
        last, self._last_top = self._last_top, top
        for order_id in woken:
            sleeper = self.sleepers.get(order_id)
            if sleeper is not None and sleeper.band is not None:
                self.prior[order_id] = last if sleeper.looks < self._looks and last is not None else sleeper.top
        self._looks += 1
        return self._wake(woken)

    def _popped(self, heap: list, outside) -> list[str]:
        """Pop the entries whose bound the mid is past; the order ids of those still asleep on that sleep."""
        out = []
        while heap and outside(heap[0][0]):
            _key, seq, order_id = heapq.heappop(heap)
            sleeper = self.sleepers.get(order_id)
            if sleeper is not None and sleeper.seq == seq:
                out.append(order_id)
        return out

    def wake_all(self) -> int:
        return self._wake(list(self.sleepers))

    def _wake(self, order_ids: list[str]) -> int:
        woken = 0
        for order_id in order_ids:
            sleeper = self.sleepers.get(order_id)
            if sleeper is None:
                continue   # woken twice in one look (below its low and above its high cannot be; a repeat can)
            self.leave(order_id)
            woken += 1
            try:
                sleeper.actor_ref.tell(StrategyTick())
            except pykka.ActorDeadError:
                self.prior.pop(order_id, None)
        if not self._banded:
            self._lows.clear()
            self._highs.clear()
        return woken


def watch_of(services, account_id: str, symbol: str, interval: float) -> BookWatch:
    """The process's watcher of this book (kept with the services' shared per-account state)."""
    watches = services.risk_state.setdefault("quiet_watches", {})
    watch = watches.get((account_id, symbol))
    if watch is None:
        watch = watches[(account_id, symbol)] = BookWatch(services, account_id, symbol, interval)
    return watch
