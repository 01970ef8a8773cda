"""A refresh follows the tick cadence: a ladder placed by a tick counts as refreshed when that tick was DUE, so the
next tick on the cadence replaces it even when it ran less late than this one (on the wall clock the refresh came
due a few milliseconds after it: that tick kept the ladder and a second one replaced it a moment later).

A real StrategyRunner with the real orders DB (SQLite, the real writer and units); the venue is a small stand-in
that answers at once with the account's return types."""
from __future__ import annotations

import time
from decimal import Decimal
from types import SimpleNamespace

import pytest
from loguru import logger

from actors.order.strategy import StrategyRunner
from domain.config import parse_config
from domain.strategy.params import parse_params
from integrations.exchange.account import MarketRules, OrderBook, OrderInfo, ReplaceOutcome
from sim.world import BTC_USDT_PAIR, default_pairs, placeholder_exchange
from storage import exchange_repo
from storage.db import open_database
from storage.models import database_proxy
from storage.strategy_seed import StrategySeed
from storage.writer import Writer

D = Decimal
SYMBOL = "BTC/USDT"


class Venue:
    """Answers like ExchangeAccount (Binance, cancel-replace), at once; the book around ``mid``."""

    account_id = "binance"
    can_cancel_replace = True

    def __init__(self):
        self.mid = D("60000")
        self.requests: list[str] = []
        self._seq = 0

    def market_rules(self, symbol):
        return MarketRules(symbol=symbol, price_tick=D("0.01"), amount_step=D("0.00001"), min_amount=D("0.00001"),
                           min_cost=D("5"), maker_fee=D("0.001"), taker_fee=D("0.001"))

    def fetch_order_book(self, symbol, limit=20):
        tick = D("0.01")
        return OrderBook(symbol=symbol, bids=((self.mid - tick, D(1)),), asks=((self.mid + tick, D(1)),), nonce=None,
                         timestamp_ms=int(time.time() * 1000))

    def _info(self, cid, side, price, amount, status):
        self._seq += 1
        return OrderInfo(id=str(self._seq), client_order_id=cid, symbol=SYMBOL, side=side, type="limit",
                         status=status, price=price, amount=amount, filled=D(0), remaining=amount, cost=D(0),
                         average=None, fee=None, fee_currency=None, timestamp_ms=int(time.time() * 1000),
                         post_only=True)

    def create_limit_order(self, symbol, side, amount, price, *, client_order_id, post_only=True):
        self.requests.append("place")
        return self._info(client_order_id, side, price, amount, "open")

    def replace_limit_order(self, symbol, side, amount, price, *, cancel_client_order_id, client_order_id,
                            post_only=True):
        self.requests.append("replace")
        return ReplaceOutcome(cancelled=self._info(cancel_client_order_id, side, price, amount, "canceled"),
                              placed=self._info(client_order_id, side, price, amount, "open"))


@pytest.fixture
def runner(tmp_path):
    url = f"sqlite:///{tmp_path / 'mmflow.db'}"
    db = open_database(url)
    writer = Writer(db).start()
    config = parse_config({"database": {"url": url}, "mixin": {"keystore": "unused"},
                           "payments": {"market_making_fee_percent": "0.1"}, "pairs": default_pairs(),
                           "exchanges": [placeholder_exchange(tmp_path)]})
    pair = config.pair(BTC_USDT_PAIR)
    venue = Venue()
    services = SimpleNamespace(exchanges={"binance": venue}, book_caches={}, writer=writer, config=config,
                               clock=time.time)
    actor = SimpleNamespace(services=services, order_id="00000000-0000-4000-8000-000000000001", pair=pair,
                            log=logger.bind(order_id="test"))
    params = parse_params({"bid_spread": "0.002", "ask_spread": "0.002", "order_amount": "0.01", "order_levels": 1,
                           "order_refresh_time": 1, "order_refresh_tolerance_pct": "0", "filled_order_delay": 1,
                           "max_order_age": 1800}, {})
    seed = StrategySeed(opening_price=D("60000"), balances={pair.base_symbol: D("0.1"), pair.quote_symbol: D("5000")})
    yield StrategyRunner(actor, params, seed), venue
    writer.stop()
    db.close()
    database_proxy.initialize(None)


def test_the_next_tick_on_the_cadence_replaces_a_ladder_placed_by_a_tick_that_ran_late(runner):
    runner, venue = runner
    t0 = time.time()
    runner.due = t0                     # due at t0, ran 300 ms late: places the first ladder
    assert runner.tick(t0 + 0.3)
    assert venue.requests == ["place", "place"]
    assert runner.last_refresh_at == t0
    venue.mid += D("5")
    runner.due = t0 + 1                 # the next tick on the cadence, only 100 ms late: the refresh is due
    assert "refresh" in runner.tick(t0 + 1.1)
    assert venue.requests[2:] == ["replace", "replace"]
    assert runner.routine
    assert len(exchange_repo.open_orders_of(runner.actor.order_id)) == 2


def test_a_tick_off_the_cadence_counts_its_own_moment(runner):
    """Woken (no due time) or later than a whole refresh_time: the refresh counts from when the tick ran."""
    runner, venue = runner
    t0 = time.time()
    assert runner.tick(t0)              # not on the cadence
    assert runner.last_refresh_at == t0
    venue.mid += D("5")
    runner.due = t0 + 1 - 0.5           # due half a second before the refresh
    assert runner.tick(t0 + 0.9) == ""  # keeps the ladder: refresh in 0.1 s
    runner.due = t0 - 5                 # a tick 6 s late: counts its own moment
    assert runner.tick(t0 + 1.0)
    assert runner.last_refresh_at == t0 + 1.0
