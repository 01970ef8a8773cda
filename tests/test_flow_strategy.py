"""Stages 7–9 end to end: a funded order joins its campaign, runs the quoting loop on the fake
exchange (real ccxt.binance), and stops on an operator command with all its orders cancelled."""
from __future__ import annotations

from decimal import Decimal

import pytest

from domain.exchange_orders import OPEN_STATES, is_ours
from sim.bridge import world_with_exchange
from sim.world import BTC_USDT_PAIR, default_pairs
from storage import commands, exchange_repo, repo
from storage.campaign_models import CampaignParticipation
from tests.databases import database_url
from tests.support import running_mmflow, wait_until
from tests.test_flow_funding import FAST_FUNDING, exchange_table, pay_order

STRATEGY = {"bid_spread": "0.002", "ask_spread": "0.002", "order_amount": "0.01", "order_levels": 2,
            "order_level_spread": "0.001", "order_refresh_time": 1, "order_refresh_tolerance_pct": "0.0005",
            "filled_order_delay": 1, "max_order_age": 30}


def pairs_with_strategy(**overrides):
    pairs = default_pairs()
    for pair in pairs:
        if pair["id"] == BTC_USDT_PAIR:
            pair["strategy"] = dict(STRATEGY, **overrides)
    return pairs


@pytest.fixture
def xworld(monkeypatch):
    ew = world_with_exchange(deposit_delay=0.1)
    monkeypatch.setenv("MMF_BINANCE_KEY", ew.api_key)
    monkeypatch.setenv("MMF_BINANCE_SECRET", ew.secret)
    yield ew
    ew.stop()
    ew.world.fake.stop()


def run(tmp_path, ew, **overrides):
    return running_mmflow(tmp_path, ew.world, exchanges=overrides.pop("exchanges", [exchange_table(ew)]),
                          funding=FAST_FUNDING,
                          pairs=pairs_with_strategy(**overrides.pop("strategy", {})),
                          strategy={"tick_interval": 0.1}, stream={"slow_interval": 0.2, "fast_interval": 0.05},
                          **overrides)


def exchange_open_orders(ew):
    return [o for o in ew.exchange.engine.open_orders(ew.api_key)] if hasattr(ew.exchange.engine, "open_orders") \
        else None


def test_funded_order_joins_campaign_runs_and_stops(tmp_path, xworld):
    with run(tmp_path, xworld) as mm:
        order_id, _ = pay_order(xworld, mm, "0.1", "5000")
        mm.wait_state(order_id, "running", timeout=30)
        record = CampaignParticipation.get_by_id(order_id)
        assert record.campaign_id == "mm_binance_BTCUSDT"  # no HuFi configured: the local record is still written
        # A full ladder the exchange acknowledged (each order has its exchange id once its ack is recorded).
        def full_ladder():
            live = exchange_repo.open_orders_of(order_id)
            return live if len(live) == 4 and all(o.exchange_order_id for o in live) else None
        live = wait_until(full_ladder, timeout=15, message="a 2-level ladder on both sides")
        assert {o.side for o in live} == {"buy", "sell"}
        assert all(is_ours(o.client_order_id) and o.exchange_order_id for o in live)
        # Quotes only with this order's own funds.
        assert sum(o.amount * o.price for o in live if o.side == "buy") <= Decimal("5000")
        assert sum(o.amount for o in live if o.side == "sell") <= Decimal("0.1")
        # Operator pause: every quote cancelled, the funds stay on the exchange.
        command = commands.queue(order_id, "pause", {"reason": "test pause"})
        wait_until(lambda: commands.get(command).result, timeout=20, message="pause carried out")
        assert commands.get(command).result.startswith("done: paused")
        mm.wait_state(order_id, "paused", timeout=20)
        wait_until(lambda: exchange_repo.open_orders_of(order_id) == [], timeout=20, message="quotes cancelled")
        account = mm.services.exchanges["binance"]
        wait_until(lambda: account.fetch_open_orders("BTC/USDT") == [], timeout=20, message="none on the book")
        assert repo.ledger_balances(order_id)  # the funds stay
        # `stop` is an alias of pause; resume quotes again.
        again = commands.queue(order_id, "stop", {})
        wait_until(lambda: commands.get(again).result, timeout=20)
        assert commands.get(again).result == "done: already paused"
        resumed = commands.queue(order_id, "resume", {})
        wait_until(lambda: commands.get(resumed).result, timeout=20)
        assert commands.get(resumed).result == "done: running again"
        wait_until(lambda: len(exchange_repo.open_orders_of(order_id)) == 4, timeout=20, message="quoting again")


def test_invalid_strategy_parameters_need_an_operator(tmp_path, xworld):
    with run(tmp_path, xworld, strategy={"order_levels": 1}) as mm:
        order_id, _ = pay_order(xworld, mm, "0.1", "5000")
        repo_overrides = {"bid_spread": "1.5"}  # >= 1: refused
        mm.wait_passed(order_id, "deposit_confirmed", timeout=30)
        # An override arriving after start is refused without touching the running order.
        commands.queue(order_id, "set-params", repo_overrides)
        mm.wait_state(order_id, "running", timeout=30)
        wait_until(lambda: repo.strategy_overrides(order_id) == {} and commands.pending() == [],
                   message="override refused")


def test_two_orders_on_one_pair_never_touch_each_others_orders_or_funds(tmp_path, xworld):
    from domain.exchange_orders import owner_prefix
    with run(tmp_path, xworld) as mm:
        first, _ = pay_order(xworld, mm, "0.1", "5000")
        second, _ = pay_order(xworld, mm, "0.05", "3000")
        mm.wait_state(first, "running", timeout=30)
        mm.wait_state(second, "running", timeout=30)
        wait_until(lambda: exchange_repo.open_orders_of(first) and exchange_repo.open_orders_of(second),
                   timeout=15, message="both orders quoting")
        xworld.exchange.start_price_process(interval=0.1, vol=0.0005, taker_prob=0.9, taker_size=0.01)
        try:
            wait_until(lambda: exchange_repo.fills_of(first) and exchange_repo.fills_of(second), timeout=30,
                       message="both orders filled")
        finally:
            xworld.exchange.stop_price_process()
        for order_id in (first, second):
            for o in exchange_repo.orders_in_states(list(OPEN_STATES), order_id=order_id):
                assert o.client_order_id.startswith(owner_prefix(order_id))
        # The shared account holds exactly the sum of the two orders' own ledgers.
        wait_until(lambda: exchange_repo.orders_in_states(["submitted", "pending_cancel"]) == [], timeout=10)
        for code in ("BTC", "USDT"):
            free, locked = xworld.exchange.balance(xworld.api_key, code)
            ledgers = sum(repo.ledger_balances(o).get(code, Decimal(0)) for o in (first, second))
            assert free + locked == ledgers, code
        # Each trade counted once: the fake's trades for our account == our fill rows.
        keys = [f.fill_key for o in (first, second) for f in exchange_repo.fills_of(o)]
        assert len(keys) == len(set(keys))
        # Pausing one order leaves the other's orders alone.
        commands.queue(first, "pause", {"reason": "only the first"})
        mm.wait_state(first, "paused", timeout=20)
        wait_until(lambda: exchange_repo.open_orders_of(first) == [], timeout=20, message="first's quotes gone")
        assert mm.state(second) == "running"
        wait_until(lambda: exchange_repo.open_orders_of(second), timeout=10, message="second still quoting")


def test_ladder_follows_the_market(tmp_path, xworld):
    with run(tmp_path, xworld) as mm:
        order_id, _ = pay_order(xworld, mm, "0.1", "5000")
        mm.wait_state(order_id, "running", timeout=30)
        # A full ladder the exchange acknowledged (an order still in flight may yet be refused by it).
        wait_until(lambda: len(live := exchange_repo.open_orders_of(order_id)) == 4
                   and all(o.exchange_order_id for o in live), timeout=15)
        before = {o.client_order_id for o in exchange_repo.open_orders_of(order_id)}
        mid = xworld.exchange.mid("BTC/USDT")
        xworld.exchange.set_mid("BTC/USDT", mid * Decimal("1.01"))  # beyond the 0.05 % tolerance
        wait_until(lambda: (now := {o.client_order_id for o in exchange_repo.open_orders_of(order_id)})
                   and not (now & before) and len(now) == 4, timeout=15, message="ladder replaced")
        bids = [o.price for o in exchange_repo.open_orders_of(order_id) if o.side == "buy"]
        assert min(bids) > mid  # the new bids follow the higher market
        # Every replaced order ends final: cancelled, or filled when the jump let the market take it while
        # its cancel was in flight (then the update stream's lookup resolves the pending cancel).
        states = lambda: {c: exchange_repo.get_exchange_order(c).state.value for c in before}  # noqa: E731
        wait_until(lambda: set(states().values()) <= {"canceled", "filled", "expired"}, timeout=40,
                   message=f"replaced orders final: {states()}")  # never rejected or left open


def test_reference_price_from_another_exchange(tmp_path, xworld, monkeypatch):
    """price_source_exchange: quote on the trading venue around a second venue's price."""
    from sim.fake_exchange import FakeExchange
    ref_venue = FakeExchange(seed=5).start()
    try:
        ref_venue.add_market("BTC/USDT", "BTC", "USDT", tick_size="0.01", step_size="0.00001", min_qty="0.00001",
                             min_notional="5", mid=str(xworld.exchange.mid("BTC/USDT") * Decimal("0.99")))
        ref_venue.add_currency("BTC", [{"network": "BTC", "withdrawFee": "0.0002", "withdrawMin": "0.001"}])
        ref_venue.add_currency("USDT", [{"network": "ETH", "withdrawFee": "1", "withdrawMin": "10"}])
        ref_venue.add_account("ref-key", "ref-secret")
        monkeypatch.setenv("MMF_REF_KEY", "ref-key")
        monkeypatch.setenv("MMF_REF_SECRET", "ref-secret")
        ref_table = {"id": "refvenue", "ccxt": "binance", "api_key_env": "MMF_REF_KEY",
                     "secret_env": "MMF_REF_SECRET", "urls": {"api": ref_venue.url},
                     "options": xworld.ccxt_config()["options"]}
        with running_mmflow(tmp_path, xworld.world, exchanges=[exchange_table(xworld), ref_table],
                            funding=FAST_FUNDING, pairs=pairs_with_strategy(price_source_exchange="refvenue"),
                            strategy={"tick_interval": 0.1}, stream={"slow_interval": 0.2}) as mm:
            order_id, _ = pay_order(xworld, mm, "0.1", "5000")
            mm.wait_state(order_id, "running", timeout=30)
            wait_until(lambda: any(o.side == "buy" for o in exchange_repo.open_orders_of(order_id)), timeout=15,
                       message="bids placed")
            ref_mid = ref_venue.mid("BTC/USDT")
            bids = sorted((o.price for o in exchange_repo.open_orders_of(order_id) if o.side == "buy"),
                          reverse=True)
            # Level 0 sits 0.2 % under the OTHER venue's mid (1 % below this venue's market) ...
            assert abs(bids[0] - ref_mid * Decimal("0.998")) <= Decimal("0.02")
            # ... and asks that would cross this venue's book are dropped, not sent (post-only).
            best_bid_here = xworld.exchange.mid("BTC/USDT") * Decimal("0.999")
            assert all(o.price > best_bid_here for o in exchange_repo.open_orders_of(order_id) if o.side == "sell")
            assert not [o for o in exchange_repo.orders_in_states(["rejected"], order_id=order_id)]
    finally:
        ref_venue.stop()


def test_price_source_exchange_must_be_configured(tmp_path, xworld):
    from domain.config import ConfigError, parse_config
    raw = xworld.world.config_dict(database_url(tmp_path / "x.db"), tmp_path / "k.json")
    raw["pairs"] = pairs_with_strategy(price_source_exchange="nowhere")
    with pytest.raises(ConfigError, match="price_source_exchange: 'nowhere' is not a configured"):
        parse_config(raw)


def test_a_restart_keeps_a_ladder_that_still_matches(tmp_path, xworld, monkeypatch):
    """Recovery: the first ticks of a restarted running order keep the orders resting on the exchange while
    they still match its ladder (the price stood still) — no cancel, no replace, the same client ids."""
    from actors.order.strategy import StrategyRunner

    slow = {"order_refresh_time": 600, "max_order_age": 3600}
    ticks: list[str] = []
    plain_tick = StrategyRunner.tick

    def counted(self, now):
        result = plain_tick(self, now)
        ticks.append(self.actor.order_id)
        return result

    def full_ladder(order_id):
        live = exchange_repo.open_orders_of(order_id)
        return live if len(live) == 4 and all(o.exchange_order_id for o in live) else None

    with run(tmp_path, xworld, strategy=slow) as mm:
        order_id, _ = pay_order(xworld, mm, "0.1", "5000")
        mm.wait_state(order_id, "running", timeout=30)
        before = {o.client_order_id for o in wait_until(lambda: full_ladder(order_id), timeout=15,
                                                        message="a 2-level ladder on both sides")}
    monkeypatch.setattr(StrategyRunner, "tick", counted)
    with run(tmp_path, xworld, strategy=slow) as mm:
        # the first tick (its first drawdown check with it: the recovery seeded the basis): a tick that does nothing
        # then lets the order sleep until its book moves (actors/order/quiet.py), and this price stands still
        wait_until(lambda: order_id in ticks, timeout=30, message="the first tick of the recovered order")
        assert {o.client_order_id for o in exchange_repo.open_orders_of(order_id)} == before
        account = mm.services.exchanges["binance"]
        assert {o.client_order_id for o in account.fetch_open_orders("BTC/USDT")} == before
