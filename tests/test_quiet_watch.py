"""actors/order/quiet.py: a book's watcher wakes exactly the sleeping orders whose book top moved — all of them
when the book cannot be read or the account is halted."""
from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pykka

from actors.order.quiet import BookWatch, book_top
from actors.protocol import StrategyTick
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
