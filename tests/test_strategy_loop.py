"""Issue 5, the quoting loop message by message: the real service (OrderActor → StrategyRunner → gateway
stream → orders DB) against the fake Mixin and the fake exchange (real ccxt.binance), one behaviour per test.

Each test pays one order, waits for its first ladder, then moves the fake's market (``set_mid``) or trades
against the ladder (``place_taker``) and watches the orders DB: client ids kept or replaced, ``created_at``
of the next ladder, fills, ledger entries, REJECTED rows. Timings are short on purpose (refresh 1 s,
tick 0.1 s, stream 0.05/0.2 s) so every test runs in a few seconds.
"""
from __future__ import annotations

import time
from decimal import ROUND_DOWN, Decimal

import gevent
import pytest

from domain.exchange_orders import ExOrderState
from sim.bridge import world_with_exchange
from storage import commands, exchange_repo, repo
from tests.support import wait_until
from tests.test_flow_funding import exchange_table, pay_order
from tests.test_flow_strategy import run

SYMBOL = "BTC/USDT"
MAKER_FEE = Decimal("0.001")   # the fake's BTC/USDT maker fee (sim.bridge.world_with_exchange)
RESTING = (ExOrderState.ACCEPTED, ExOrderState.PARTIALLY_FILLED)


@pytest.fixture
def xworld(monkeypatch):
    ew = world_with_exchange(deposit_delay=0.1)
    monkeypatch.setenv("MMF_BINANCE_KEY", ew.api_key)
    monkeypatch.setenv("MMF_BINANCE_SECRET", ew.secret)
    yield ew
    ew.stop()
    ew.world.fake.stop()


# ------------------------------------------------------------------ helpers

def resting(order_id, side=None):
    """This order's orders acknowledged by the exchange and still on the book (per the orders DB)."""
    return [o for o in exchange_repo.open_orders_of(order_id)
            if o.state in RESTING and (side is None or o.side == side)]


def resting_ids(order_id):
    return {o.client_order_id for o in resting(order_id)}


def all_rows(order_id):
    """Every exchange order this order ever wrote, whatever its state."""
    return exchange_repo.orders_in_states(list(ExOrderState), order_id=order_id)


def start(xworld, mm, count, base="0.1", quote="5000"):
    """Pay an order and wait until `count` of its orders rest on the exchange."""
    order_id, _ = pay_order(xworld, mm, base, quote)
    mm.wait_state(order_id, "running", timeout=30)
    wait_until(lambda: len(resting(order_id)) == count, timeout=10, message=f"{count} resting orders")
    return order_id


def hold_for(seconds, check, interval=0.05):
    """`check()` must hold (truthy) on every look for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check()
        gevent.sleep(interval)


def engine_order(xworld, cid):
    return xworld.exchange.engine.get_order(xworld.api_key, "BTCUSDT", client_order_id=cid)


# ------------------------------------------------------------------ refresh tolerance


def test_small_moves_keep_the_ladder_large_moves_replace_it(tmp_path, xworld):
    """order_refresh_tolerance_pct 0.1 %: a 0.03 % move keeps every client id through three refresh
    periods; a 0.15 % move (still inside the 0.2 % spread: nothing fills) replaces the whole ladder."""
    strategy = {"order_refresh_tolerance_pct": "0.001", "max_order_age": 60}
    with run(tmp_path, xworld, strategy=strategy) as mm:
        order_id = start(xworld, mm, 4)
        before = resting_ids(order_id)
        mid = xworld.exchange.mid(SYMBOL)
        xworld.exchange.set_mid(SYMBOL, mid * Decimal("1.0003"))
        hold_for(3.3, lambda: resting_ids(order_id) == before)      # refresh every 1 s: kept each time
        assert all(exchange_repo.get_exchange_order(c).state is ExOrderState.ACCEPTED for c in before)

        xworld.exchange.set_mid(SYMBOL, mid * Decimal("1.0015"))     # beyond the tolerance
        wait_until(lambda: len(now := resting_ids(order_id)) == 4 and not (now & before), timeout=5,
                   message="a new ladder")
        assert {exchange_repo.get_exchange_order(c).state for c in before} == {ExOrderState.CANCELED}
        assert exchange_repo.fills_of(order_id) == []
        bids = [o.price for o in resting(order_id, "buy")]
        assert min(bids) > mid * Decimal("1.0015") * Decimal("0.996")  # built around the new mid


# ------------------------------------------------------------------ max order age


def test_orders_older_than_max_order_age_are_replaced_in_a_flat_market(tmp_path, xworld):
    strategy = {"order_levels": 1, "order_refresh_tolerance_pct": "0.5", "max_order_age": 2}
    with run(tmp_path, xworld, strategy=strategy) as mm:
        order_id = start(xworld, mm, 2)
        first = resting(order_id)
        born = max(o.created_at for o in first)
        ids = {o.client_order_id for o in first}
        hold_for(max(0.0, born + 1.7 - time.time()), lambda: resting_ids(order_id) == ids)
        wait_until(lambda: len(now := resting_ids(order_id)) == 2 and not (now & ids), timeout=4,
                   message="the ladder replaced by age")
        reborn = min(o.created_at for o in resting(order_id))
        assert 2.0 <= reborn - born <= 3.0, reborn - born
        assert {exchange_repo.get_exchange_order(c).state for c in ids} == {ExOrderState.CANCELED}
        assert xworld.exchange.mid(SYMBOL) == Decimal("60000")      # the market never moved


# ------------------------------------------------------------------ filled order delay


def test_no_new_order_before_filled_order_delay(tmp_path, xworld):
    strategy = {"order_levels": 1, "filled_order_delay": 2}
    with run(tmp_path, xworld, strategy=strategy) as mm:
        order_id = start(xworld, mm, 2)
        bid = resting(order_id, "buy")[0]
        fills = xworld.exchange.place_taker(SYMBOL, "sell", bid.amount)
        assert sum(f.qty for f in fills) == bid.amount
        filled_at = max(f.time for f in fills) / 1000
        wait_until(lambda: [o for o in resting(order_id, "buy") if o.created_at > filled_at], timeout=6,
                   message="a new bid after the fill")
        assert exchange_repo.get_exchange_order(bid.client_order_id).state is ExOrderState.FILLED
        later = [o for o in all_rows(order_id) if o.created_at > filled_at]
        assert later
        assert min(o.created_at for o in later) >= filled_at + 2 - 0.05


# ------------------------------------------------------------------ partial fill


def test_partial_fill_moves_the_ledger_by_exactly_the_fill_once(tmp_path, xworld):
    strategy = {"order_levels": 1, "order_refresh_tolerance_pct": "0.01", "max_order_age": 60}
    with run(tmp_path, xworld, strategy=strategy) as mm:
        order_id = start(xworld, mm, 2)
        ask = resting(order_id, "sell")[0]
        half = ask.amount / 2
        before = repo.ledger_balances(order_id)
        fills = xworld.exchange.place_taker(SYMBOL, "buy", half)
        assert [(f.price, f.qty) for f in fills] == [(ask.price, half)]
        wait_until(lambda: exchange_repo.fills_of(order_id), timeout=5, message="the fill recorded")
        fee = (ask.price * half * MAKER_FEE).quantize(Decimal("0.00000001"), rounding=ROUND_DOWN)
        row = exchange_repo.get_exchange_order(ask.client_order_id)
        assert row.filled == half
        assert row.state is ExOrderState.PARTIALLY_FILLED
        after = repo.ledger_balances(order_id)
        assert after["BTC"] - before["BTC"] == -half
        assert after["USDT"] - before["USDT"] == ask.price * half - fee
        gevent.sleep(1.2)  # several stream rounds (slow_interval 0.2 s) re-read the same trade
        recorded = exchange_repo.fills_of(order_id)
        assert len(recorded) == 1
        assert (recorded[0].client_order_id, recorded[0].amount, recorded[0].fee) == (ask.client_order_id, half, fee)
        assert repo.ledger_balances(order_id) == after
        assert exchange_repo.get_exchange_order(ask.client_order_id).filled == half


# ------------------------------------------------------------------ hanging orders

HANGING = {"order_levels": 1, "hanging_orders_enabled": True, "hanging_orders_cancel_pct": "0.005",
           "filled_order_delay": 1, "max_order_age": 60}


def _hanging_scenario(xworld, mm, take):
    order_id = start(xworld, mm, 2)
    bid, ask = resting(order_id, "buy")[0], resting(order_id, "sell")[0]
    fills = xworld.exchange.place_taker(SYMBOL, "sell", take(bid.amount))
    filled_at = max(f.time for f in fills) / 1000
    # The next ladder comes after filled_order_delay; the other side of the filled level stays.
    wait_until(lambda: [o for o in resting(order_id) if o.created_at > filled_at and o.side == "sell"],
               timeout=6, message="the next ladder")
    hold_for(2.2, lambda: ask.client_order_id in resting_ids(order_id))   # through the next refreshes
    sells = resting(order_id, "sell")
    assert len(sells) == 2 and ask.client_order_id in {o.client_order_id for o in sells}
    # A market 1 % lower leaves the hanging ask beyond hanging_orders_cancel_pct (0.5 %): cancelled.
    xworld.exchange.set_mid(SYMBOL, xworld.exchange.mid(SYMBOL) * Decimal("0.99"))
    wait_until(lambda: exchange_repo.get_exchange_order(ask.client_order_id).state is ExOrderState.CANCELED,
               timeout=5, message="the hanging order cancelled")
    assert engine_order(xworld, ask.client_order_id).executed_qty == 0


def test_hanging_order_survives_refresh_after_a_complete_fill(tmp_path, xworld):
    with run(tmp_path, xworld, strategy=HANGING) as mm:
        _hanging_scenario(xworld, mm, lambda amount: amount)


def test_hanging_order_survives_refresh_after_a_partial_fill(tmp_path, xworld):
    with run(tmp_path, xworld, strategy=HANGING) as mm:
        _hanging_scenario(xworld, mm, lambda amount: amount / 2)


# ------------------------------------------------------------------ post-only crossing filter


def test_post_only_filter_drops_a_bid_that_would_cross(tmp_path, xworld):
    """price_source last_own_fill: our bid fills at 59880, then the market falls to 59000. The ladder
    around the last fill would bid 59760 — above the best ask (59006): the filter drops it (no buy is
    sent, none is refused by the exchange); once the market is back, bids are placed again."""
    strategy = {"order_levels": 1, "price_source": "last_own_fill", "post_only": True, "filled_order_delay": 1}
    with run(tmp_path, xworld, strategy=strategy) as mm:
        order_id = start(xworld, mm, 2)
        bid = resting(order_id, "buy")[0]
        fills = xworld.exchange.place_taker(SYMBOL, "sell", bid.amount)
        filled_at = max(f.time for f in fills) / 1000
        xworld.exchange.set_mid(SYMBOL, "59000")
        engine = xworld.exchange.engine
        wait_until(lambda: [o for o in resting(order_id, "sell") if o.created_at > filled_at], timeout=5,
                   message="the next ladder (asks only)")
        hold_for(1.5, lambda: not [o for o in all_rows(order_id) if o.side == "buy" and o.created_at > filled_at])
        assert engine.best_ask("BTCUSDT") < bid.price * Decimal("0.998")   # the proposal would have crossed
        assert [o for o in all_rows(order_id) if o.state is ExOrderState.REJECTED] == []
        xworld.exchange.set_mid(SYMBOL, "60000")
        wait_until(lambda: resting(order_id, "buy"), timeout=5, message="bids again once they do not cross")
        for o in resting(order_id, "buy"):
            assert o.price < engine.best_ask("BTCUSDT")
        assert [o for o in all_rows(order_id) if o.state is ExOrderState.REJECTED] == []


def test_post_only_ladder_is_not_rejected_after_a_move_between_cancel_and_place(tmp_path, xworld):
    """Spreads of 1 bp, the ladder replaced every second (tolerance < 0): right after each cancel the market
    drops 0.1 %, so a bid priced from the book before the move would cross. None may be refused as crossing,
    and our bids always rest below the best ask."""
    strategy = {"order_levels": 1, "bid_spread": "0.0001", "ask_spread": "0.0001", "post_only": True,
                "order_refresh_tolerance_pct": "-1", "filled_order_delay": 0}
    # cancel, then place (a venue without cancel-replace): the ladder is off the book between the two
    with run(tmp_path, xworld, strategy=strategy, exchanges=[exchange_table(xworld, cancel_replace=False)]) as mm:
        order_id = start(xworld, mm, 2)
        engine = xworld.exchange.engine

        def rejected():
            return [o for o in all_rows(order_id) if o.state is ExOrderState.REJECTED]

        deadline = time.monotonic() + 7      # about 80 % of the attempts show it; stop at the first
        for _ in range(6):
            if time.monotonic() > deadline:
                break
            ids = resting_ids(order_id)
            wait_until(lambda: not (resting_ids(order_id) & ids) and not exchange_repo.open_orders_of(order_id),
                       timeout=5, interval=0.005, message="the ladder cancelled for refresh")
            xworld.exchange.set_mid(SYMBOL, xworld.exchange.mid(SYMBOL) * Decimal("0.999"))
            wait_until(lambda: len(resting(order_id)) == 2 or rejected(), timeout=5, message="the next ladder")
            for o in resting(order_id, "buy"):
                assert o.price < engine.best_ask("BTCUSDT")
            if rejected():
                break
        assert rejected() == [], [(o.side, o.price, o.last_error) for o in rejected()]


def test_refresh_on_binance_is_one_cancel_replace_per_quote_and_the_ladder_never_leaves_the_book(tmp_path, xworld):
    """Every refresh replaces each quote with ONE cancel-replace request: the exchange always holds the two
    quotes, each old one ends CANCELED and its successor ACCEPTED, no plain cancel is sent, nothing refused."""
    strategy = {"order_levels": 1, "order_refresh_tolerance_pct": "-1", "filled_order_delay": 0}
    log = xworld.exchange.requests_log
    with run(tmp_path, xworld, strategy=strategy) as mm:
        order_id = start(xworld, mm, 2)
        replaced_before = sum(1 for m, path, _ in log if path == "/api/v3/order/cancelReplace")
        cancels_before = sum(1 for m, path, _ in log if (m, path) == ("DELETE", "/api/v3/order"))
        first = resting_ids(order_id)
        hold_for(2.5, lambda: len(xworld.exchange.engine.open_orders(xworld.api_key, "BTCUSDT")) == 2)
        wait_until(lambda: not (resting_ids(order_id) & first) and len(resting(order_id)) == 2, timeout=5,
                   message="the ladder replaced")
        assert sum(1 for m, path, s in log if path == "/api/v3/order/cancelReplace" and s == 200) >= \
            replaced_before + 2
        assert sum(1 for m, path, _ in log if (m, path) == ("DELETE", "/api/v3/order")) == cancels_before
        rows = all_rows(order_id)
        assert [o for o in rows if o.state is ExOrderState.REJECTED] == []
        for cid in first:
            assert exchange_repo.get_exchange_order(cid).state is ExOrderState.CANCELED


# ------------------------------------------------------------------ budget


def test_bids_are_cut_to_the_quote_ledger(tmp_path, xworld):
    """100 USDT of quote and order_amount 0.05 BTC (3000 USDT a bid): the bid is cut to what 100 USDT
    buys with the fee, the second level dropped; the exchange never refuses one for funds."""
    strategy = {"order_amount": "0.05", "order_refresh_tolerance_pct": "-1"}
    with run(tmp_path, xworld, strategy=strategy) as mm:
        order_id = start(xworld, mm, 3, base="0.1", quote="100")
        seen = set()
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:     # three refreshes: each new ladder within the ledger
            quote = repo.ledger_balances(order_id)["USDT"]
            bids = resting(order_id, "buy")
            seen |= {o.client_order_id for o in bids}
            assert sum(o.price * (o.amount - o.filled) * (1 + MAKER_FEE) for o in bids) <= quote
            assert len(bids) <= 1
            gevent.sleep(0.05)
        assert len(seen) >= 3
        rows = all_rows(order_id)
        assert [o for o in rows if o.state is ExOrderState.REJECTED] == []
        for o in rows:
            if o.side == "buy":
                assert Decimal("0.001") < o.amount < Decimal("0.05")
                assert o.price * o.amount * (1 + MAKER_FEE) <= Decimal("100")


# ------------------------------------------------------------------ price band


def test_price_ceiling_below_the_market_means_no_buys_and_zero_or_less_is_off(tmp_path, xworld):
    with run(tmp_path, xworld, strategy={"price_ceiling": "50000"}) as mm:
        order_id, _ = pay_order(xworld, mm, "0.1", "5000")
        mm.wait_state(order_id, "running", timeout=30)
        wait_until(lambda: len(resting(order_id, "sell")) == 2, timeout=10, message="the asks")
        hold_for(1.5, lambda: [o for o in all_rows(order_id) if o.side == "buy"] == [])   # not one bid sent
        commands.queue(order_id, "set-params", {"price_ceiling": "0"})
        wait_until(lambda: len(resting(order_id, "buy")) == 2, timeout=6, message="bids with the ceiling off")
        commands.queue(order_id, "set-params", {"price_ceiling": "50000"})
        wait_until(lambda: not resting(order_id, "buy") and len(resting(order_id, "sell")) == 2, timeout=6,
                   message="bids gone under the ceiling again")
        commands.queue(order_id, "set-params", {"price_ceiling": "-1"})
        wait_until(lambda: len(resting(order_id, "buy")) == 2, timeout=6, message="bids with a negative ceiling")
