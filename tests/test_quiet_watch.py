"""actors/order/quiet.py: a book's watcher wakes exactly the sleeping orders whose book top moved — all of them
when the book cannot be read or the account is halted."""
from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pykka
import pytest

from actors.order.quiet import BookWatch, book_top
from actors.protocol import StrategyTick
from domain.strategy.band import QuietBand
from domain.strategy.ladder import BookTop
from integrations.exchange.errors import ExchangeError
from storage import risk


class Inbox(pykka.ThreadingActor):
    def __init__(self, got):
        super().__init__()
        self.got = got

    def on_receive(self, message):
        if isinstance(message, StrategyTick):
            self.got.append(message)
        return len(self.got)


class Cache:
    def __init__(self):
        self.answer = SimpleNamespace(bids=[(Decimal("99"), Decimal(1))], asks=[(Decimal("101"), Decimal(1))])

    def book(self, symbol):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_the_watcher_wakes_the_orders_whose_book_moved_and_all_when_it_cannot_tell(monkeypatch):
    halted = {"acct": None}
    monkeypatch.setattr(risk, "halted", lambda account: halted[account])
    cache = Cache()
    services = SimpleNamespace(book_caches={"acct": cache}, clock=lambda: 1000.0)
    watch = BookWatch(services, "acct", "BTC/USDT", interval=3600)
    inboxes = {name: [] for name in ("same", "moved", "later")}
    refs = {name: Inbox.start(got) for name, got in inboxes.items()}
    try:
        top = book_top(cache.answer)
        watch.sleep("same", refs["same"], top)
        watch.sleep("moved", refs["moved"], BookTop(Decimal("98"), Decimal("101")))
        assert watch.check() == 1 and set(watch.sleepers) == {"same"} and watch.fresh_at == 1000.0
        assert refs["moved"].ask(None) == 1 and refs["same"].ask(None) == 0

        watch.sleep("later", refs["later"], top)
        cache.answer = ExchangeError("book down", kind="network")
        assert watch.check() == 2 and not watch.sleepers        # cannot tell: everyone ticks
        assert refs["same"].ask(None) == 1 and refs["later"].ask(None) == 1

        cache.answer = SimpleNamespace(bids=[(Decimal("99"), Decimal(1))], asks=[(Decimal("101"), Decimal(1))])
        watch.sleep("same", refs["same"], top)
        halted["acct"] = "account acct halted (operator): test"
        assert watch.check() == 1 and not watch.sleepers        # a halt: everyone ticks (and cancels)
        watch.leave("nobody")
        assert watch.check() == 0
    finally:
        for ref in refs.values():
            ref.stop()


@pytest.fixture
def inboxes():
    """name -> a started Inbox (its StrategyTicks counted by ``.ask(None)``), stopped after the test."""
    refs = {}

    class Started(dict):
        def __missing__(self, name):
            refs[name] = self[name] = Inbox.start([])
            return refs[name]

    yield Started()
    for ref in refs.values():
        ref.stop()


@pytest.fixture
def watched(monkeypatch):
    """(a watcher of a book nobody halted, that book's cache)."""
    monkeypatch.setattr(risk, "halted", lambda account: None)
    cache = Cache()
    return BookWatch(SimpleNamespace(book_caches={"acct": cache}, clock=lambda: 1000.0), "acct", "BTC/USDT",
                     interval=3600), cache


def test_a_move_wakes_only_the_banded_orders_it_took_out_of_their_band(watched, inboxes):
    watch, cache = watched

    def set_mid(mid):
        cache.answer = SimpleNamespace(bids=[(Decimal(mid) - 1, Decimal(1))], asks=[(Decimal(mid) + 1, Decimal(1))])
        return book_top(cache.answer)

    bands = {"narrow": ("99", "101"), "up": ("99", "105"), "down": ("95", "101"), "wide": ("90", "110")}
    top = set_mid("100")
    for name, (low, high) in bands.items():
        watch.sleep(name, inboxes[name], top, QuietBand(Decimal(low), Decimal(high)))
    watch.sleep("plain", inboxes["plain"], top)
    watch.sleep("left", inboxes["left"], top, QuietBand(Decimal("99.5"), Decimal("100.5")))
    watch.leave("left")                                     # its heap entries stay, but wake nobody
    watch.sleep("left", inboxes["left"], top, QuietBand(Decimal("80"), Decimal("120")))
    assert watch.check() == 0                               # the same top: nobody
    set_mid("100.5")
    assert watch.check(plain=False) == 0                    # a look between the plain sleepers' looks
    assert watch.check() == 1 and "plain" not in watch.sleepers   # inside every band: only the plain one
    assert inboxes["plain"].ask(None) == 1
    set_mid("102")
    assert watch.check() == 2 and set(watch.sleepers) == {"up", "wide", "left"}
    assert inboxes["narrow"].ask(None) == 1 and inboxes["down"].ask(None) == 1 and inboxes["up"].ask(None) == 0
    # the woken ones slept through 100.5 last: their guard measures from there
    assert watch.last_seen("narrow") == BookTop(Decimal("99.5"), Decimal("101.5"))
    assert watch.last_seen("up") == BookTop(Decimal("101"), Decimal("103"))   # asleep: the last look's top
    set_mid("94")
    assert watch.check() == 1 and set(watch.sleepers) == {"wide", "left"}
    cache.answer = SimpleNamespace(bids=[], asks=[(Decimal("101"), Decimal(1))])
    assert watch.check() == 2 and not watch.sleepers        # no mid: no band holds
    assert not watch._lows and not watch._highs


def test_orders_that_leave_and_sleep_again_do_not_grow_the_heaps(watched):
    watch, cache = watched
    top = book_top(cache.answer)
    for round_ in range(50):
        for i in range(20):
            watch.sleep(f"o{i}", None, top, QuietBand(Decimal(90 - round_ % 3), Decimal(110)))
    assert len(watch.sleepers) == 20 and len(watch._lows) <= 2 * 20 + 64 + 1
