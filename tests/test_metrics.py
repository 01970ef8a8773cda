"""Prometheus metrics (integrations/metrics.py): the exposition parses, every family is there with its labels
after the real service polled, routed, funded and traded on the fake exchange, labels stay bounded, and the
scrape-time database collectors count exactly the rows in the database."""
from __future__ import annotations

import re
import time
from decimal import Decimal

import gevent
import pykka
import pytest
from prometheus_client.parser import text_string_to_metric_families

from integrations import metrics
from integrations.exchange.limiter import WeightedLimiter
from sim.bridge import world_with_exchange
from storage.db import open_database
from storage.exchange_models import ExchangeOrder, Fill
from storage.models import MoneyMovement, Order, database_proxy
from tests.databases import database_url
from tests.support import wait_until
from tests.test_storage import db  # noqa: F401 - the fixture: a fresh SQLite database in tmp_path

D = Decimal
CLIENT_ID = re.compile(r"mm[0-9a-f]{16}-")  # domain.exchange_orders.client_order_id
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def scrape() -> dict:
    """Family name → family, from the exposition exactly as /metrics would serve it."""
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain; version=0.0.4")
    return {f.name: f for f in text_string_to_metric_families(body.decode("utf-8"))}


def value(families: dict, family: str, sample: str | None = None, **labels) -> float:
    """The one sample of ``family`` named ``sample`` (default: the family's own) with these labels; 0 if none."""
    name = sample or family
    found = [s.value for s in families[family].samples
             if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else 0.0


def label_names(families: dict, family: str) -> set[str]:
    return {k for s in families[family].samples for k in s.labels if k != "le"}


# ---------------------------------------------------------------- scrape-time database collectors

def _order(order_id: str, state: str) -> None:
    Order.insert(order_id=order_id, pair_id="pair-1", state=state, base_fee_asset_id="a", base_fee_amount=D(0),
                 quote_fee_asset_id="b", quote_fee_amount=D(0), market_making_fee_percent=D("0.1"),
                 created_at=1.0, updated_at=1.0).execute()


def _movement(request_id: str, kind: str, state: str) -> None:
    MoneyMovement.insert(request_id=request_id, kind=kind, cause=f"cause:{request_id}", asset_id="a",
                         amount=D("1"), recipient_id="u", state=state, created_at=1.0, updated_at=1.0).execute()


def _exchange_order(cid: str, order_id: str, side: str, state: str, symbol: str = "BTC/USDT") -> None:
    ExchangeOrder.insert(client_order_id=cid, order_id=order_id, exchange_account="binance", symbol=symbol,
                         side=side, price=D("100"), amount=D("1"), state=state, created_at=1.0,
                         updated_at=1.0).execute()


def _fill(key: str, side: str, price: str, amount: str, liquidity: str | None) -> None:
    Fill.insert(fill_key=key, trade_id=key, exchange_account="binance", client_order_id="c", order_id="o",
                symbol="BTC/USDT", side=side, price=D(price), amount=D(amount), fee=D(0), liquidity=liquidity,
                at=1.0, recorded_at=1.0).execute()


def test_database_collectors_count_the_rows_in_the_database(db):
    for i in range(3):
        _order(f"run-{i}", "running")
    _order("done-0", "settled")
    _movement("r1", "refund", "queued")
    _movement("r2", "refund", "queued")
    _movement("p1", "payout", "confirmed")
    _exchange_order("a-buy", "A", "buy", "accepted")
    _exchange_order("a-sell", "A", "sell", "partially_filled")   # A quotes both sides
    _exchange_order("b-buy1", "B", "buy", "accepted")
    _exchange_order("b-buy2", "B", "buy", "submitted")          # B only bids
    _exchange_order("c-sell", "C", "sell", "canceled")          # final: not a live quote
    _exchange_order("d-buy", "D", "buy", "pending_cancel", symbol="ETH/USDT")
    _fill("f1", "buy", "100", "0.5", "maker")
    _fill("f2", "buy", "101", "0.25", "maker")
    _fill("f3", "sell", "102", "2", None)

    families = scrape()
    assert value(families, "mmflow_orders", state="running") == 3
    assert value(families, "mmflow_orders", state="settled") == 1
    assert value(families, "mmflow_orders", state="attention") == 0  # every state is reported, 0 included
    assert {s.labels["state"] for s in families["mmflow_orders"].samples} >= {"payment_pending", "refunded"}
    assert value(families, "mmflow_money_movements", kind="refund", state="queued") == 2
    assert value(families, "mmflow_money_movements", kind="payout", state="confirmed") == 1
    quotes = {(s.labels["symbol"], s.labels["side"]): s.value for s in families["mmflow_pair_live_quotes"].samples}
    assert quotes == {("BTC/USDT", "buy"): 3, ("BTC/USDT", "sell"): 1, ("ETH/USDT", "buy"): 1}
    assert value(families, "mmflow_pair_two_sided_orders", exchange="binance", symbol="BTC/USDT") == 1
    fills = "mmflow_pair_fills"
    assert value(families, fills, "mmflow_pair_fills_total", side="buy", liquidity="maker") == 2
    assert value(families, fills, "mmflow_pair_fills_total", side="sell", liquidity="unknown") == 1
    base = "mmflow_pair_fill_base_volume"
    assert value(families, base, base + "_total", side="buy", liquidity="maker") == pytest.approx(0.75)
    quote = "mmflow_pair_fill_quote_volume"
    assert value(families, quote, quote + "_total", side="buy", liquidity="maker") == pytest.approx(75.25)
    assert value(families, quote, quote + "_total", side="sell", liquidity="unknown") == pytest.approx(204)

    # The refunds are confirmed: their old series reads 0 (it does not go stale), the new one 2.
    MoneyMovement.update(state="confirmed").where(MoneyMovement.kind == "refund").execute()
    ExchangeOrder.update(state="canceled").where(ExchangeOrder.order_id == "A").execute()
    families = scrape()
    assert value(families, "mmflow_money_movements", kind="refund", state="queued") == 0
    assert value(families, "mmflow_money_movements", kind="refund", state="confirmed") == 2
    assert value(families, "mmflow_pair_two_sided_orders", exchange="binance", symbol="BTC/USDT") == 0
    assert value(families, "mmflow_pair_live_quotes", side="sell", symbol="BTC/USDT") == 0


def test_kpis_per_pair_average_each_running_orders_latest_sample(db):
    from domain.kpi import Sample
    from storage.kpi import write_sample

    for order_id, state in (("k1", "running"), ("k2", "paused"), ("k3", "settled")):
        _order(order_id, state)
        _exchange_order(f"{order_id}-buy", order_id, "buy", "canceled")
    # k1: an old sample (ignored), then 45 of 60 s two-sided at 20 bps; k2: 60 of 60 s at 40 bps, depth 100/50;
    # k3 is final: not counted
    write_sample(Sample(order_id="k1", ts=1000.0, interval_seconds=60, running_seconds=60, two_sided_seconds=0))
    write_sample(Sample(order_id="k1", ts=1060.0, interval_seconds=60, running_seconds=60, two_sided_seconds=45,
                        spread_bps=D("20")))
    write_sample(Sample(order_id="k2", ts=1060.0, interval_seconds=60, running_seconds=60, two_sided_seconds=60,
                        spread_bps=D("40"), depth_bid=D("100"), depth_ask=D("50")))
    write_sample(Sample(order_id="k3", ts=1060.0, interval_seconds=60, running_seconds=60, two_sided_seconds=0))
    families = scrape()
    pair = {"exchange": "binance", "symbol": "BTC/USDT"}
    assert value(families, "mmflow_pair_sampled_orders", **pair) == 2
    assert value(families, "mmflow_pair_two_sided_uptime_ratio", **pair) == pytest.approx((0.75 + 1.0) / 2)
    assert value(families, "mmflow_pair_spread_bps", **pair) == pytest.approx(30)
    assert value(families, "mmflow_pair_depth_quote", side="buy", **pair) == pytest.approx(100)  # k1 has none
    assert value(families, "mmflow_pair_depth_quote", side="sell", **pair) == pytest.approx(50)


def test_without_a_database_the_scrape_has_no_database_families_and_does_not_fail():
    opened = database_proxy.obj
    database_proxy.initialize(None)
    try:
        families = scrape()
    finally:
        database_proxy.initialize(opened)
    assert "mmflow_orders" not in families and "mmflow_snapshots_polled" in families


def test_fills_are_added_up_incrementally_and_start_over_with_another_database(db, tmp_path):
    _fill("f1", "buy", "100", "0.5", "maker")
    fills = "mmflow_pair_fills"
    assert value(scrape(), fills, fills + "_total", side="buy", liquidity="maker") == 1
    _fill("f2", "buy", "101", "0.25", "maker")
    _fill("f3", "buy", "99", "1", "taker")
    families = scrape()
    assert value(families, fills, fills + "_total", side="buy", liquidity="maker") == 2
    assert value(families, fills, fills + "_total", side="buy", liquidity="taker") == 1
    assert value(scrape(), fills, fills + "_total", side="buy", liquidity="maker") == 2  # nothing new: same
    db.close()
    other = open_database(database_url(tmp_path / "other.db"))
    try:
        _fill("g1", "sell", "100", "1", "maker")
        families = scrape()
        assert value(families, fills, fills + "_total", side="sell", liquidity="maker") == 1
        assert value(families, fills, fills + "_total", side="buy", liquidity="maker") == 0
    finally:
        other.close()


def test_a_failing_database_read_is_counted_and_the_scrape_goes_on(db):
    before = value(scrape(), "mmflow_scrape_errors", "mmflow_scrape_errors_total", collector="database")
    db.execute_sql("ALTER TABLE orders RENAME TO orders_away")  # the GROUP BY on orders now fails
    try:
        families = scrape()
    finally:
        db.execute_sql("ALTER TABLE orders_away RENAME TO orders")
    assert value(families, "mmflow_scrape_errors", "mmflow_scrape_errors_total", collector="database") == before + 1
    assert "mmflow_orders" not in families and "mmflow_snapshots_polled" in families


# ---------------------------------------------------------------- actors and mailboxes

class _Blocker(pykka.ThreadingActor):
    """Holds its first message until released, so later messages wait in its mailbox."""

    use_daemon_thread = True

    def __init__(self, started, release):
        super().__init__()
        self.started, self.release = started, release

    def on_receive(self, message):
        self.started.set()
        self.release.wait()


def test_live_actors_and_mailbox_depth_per_kind():
    release = gevent.event.Event()
    refs = []
    try:
        for backlog in (3, 1):
            started = gevent.event.Event()
            ref = _Blocker.start(started, release)
            refs.append(ref)
            ref.tell("hold")
            assert started.wait(10), "the blocker took its first message"
            for _ in range(backlog):
                ref.tell("wait")
        families = scrape()
        assert value(families, "mmflow_actors", kind="_Blocker") == 2
        assert value(families, "mmflow_actor_mailbox_depth", kind="_Blocker") == 4
        assert value(families, "mmflow_actor_mailbox_max_depth", kind="_Blocker") == 3
    finally:
        release.set()
        for ref in refs:
            ref.stop(timeout=10)
    assert value(scrape(), "mmflow_actors", kind="_Blocker") == 0


# ---------------------------------------------------------------- events, pure

def test_limiter_waits_are_observed_per_account():
    family = "mmflow_limiter_wait_seconds"
    before = value(scrape(), family, family + "_count", account="metrics-acct")
    limiter = WeightedLimiter(2, window=0.1, latency_margin=0.0, name="metrics-acct")  # burst 1, then 10/s
    limiter.acquire().release()
    limiter.acquire().release()  # queued for its token
    families = scrape()
    assert value(families, family, family + "_count", account="metrics-acct") == before + 1
    assert value(families, family, family + "_sum", account="metrics-acct") > 0


def test_histogram_buckets_are_cumulative_and_a_bound_is_inclusive():
    metrics.reset_for_tests()
    for units in (1, 5, 5, 7, 5000):
        metrics.writer_commit(units, 0.001)
    family = scrape()["mmflow_writer_batch_units"]
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name.endswith("_bucket")}
    assert (buckets["1.0"], buckets["2.0"], buckets["5.0"], buckets["10.0"], buckets["2000.0"]) == (1, 1, 3, 4, 4)
    assert buckets["+Inf"] == 5
    assert value(scrape(), "mmflow_writer_batch_units", "mmflow_writer_batch_units_sum") == 5018
    assert value(scrape(), "mmflow_writer_commit_seconds", "mmflow_writer_commit_seconds_count") == 5


def test_strategy_tick_outcomes():
    class NotReady(Exception):
        pass

    class PriceBreaker(NotReady):
        pass

    @metrics.timed_strategy_tick
    def tick(result):
        if isinstance(result, Exception):
            raise result
        return result

    name = "mmflow_strategy_ticks"
    before = {o: value(scrape(), name, name + "_total", outcome=o) for o in metrics.TICK_OUTCOMES}
    assert tick("placed 2") == "placed 2"
    assert tick("") == ""
    for exc in (NotReady("no book"), PriceBreaker("jump"), ValueError("bug")):
        with pytest.raises(type(exc)):
            tick(exc)
    families = scrape()
    for outcome in metrics.TICK_OUTCOMES:
        assert value(families, name, name + "_total", outcome=outcome) == before[outcome] + 1, outcome


def test_openmetrics_when_asked():
    body, content_type = metrics.exposition("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


# ---------------------------------------------------------------- the real service, driven a little

FAMILIES = {  # family → its labels (besides a histogram's le)
    "mmflow_snapshots_polled": {"result"},
    "mmflow_routing_outcomes": {"outcome"},
    "mmflow_exchange_requests": {"venue", "endpoint", "result"},
    "mmflow_exchange_request_seconds": {"venue", "endpoint"},
    "mmflow_limiter_wait_seconds": {"account"},
    "mmflow_exchange_rate_limited": {"account", "status"},
    "mmflow_strategy_ticks": {"outcome"},
    "mmflow_strategy_tick_seconds": set(),
    "mmflow_writer_batch_units": set(),
    "mmflow_writer_commit_seconds": set(),
    "mmflow_orders": {"state"},
    "mmflow_money_movements": {"kind", "state"},
    "mmflow_actors": {"kind"},
    "mmflow_actor_mailbox_depth": {"kind"},
    "mmflow_actor_mailbox_max_depth": {"kind"},
    "mmflow_pair_live_quotes": {"exchange", "symbol", "side"},
    "mmflow_pair_two_sided_orders": {"exchange", "symbol"},
    "mmflow_pair_fills": {"exchange", "symbol", "side", "liquidity"},
    "mmflow_pair_fill_base_volume": {"exchange", "symbol", "side", "liquidity"},
    "mmflow_pair_fill_quote_volume": {"exchange", "symbol", "side", "liquidity"},
    "mmflow_process_cpu_seconds": set(),
}


@pytest.fixture(scope="module")
def driven(tmp_path_factory):
    """The real service on the fake Mixin and the fake Binance: an order paid, funded, quoting and filled,
    a payment with a bad memo refunded, one 429 from the exchange. Yields (scrape, the order id)."""
    from tests.test_flow_funding import FAST_FUNDING, exchange_table, pay_order
    from tests.test_flow_strategy import pairs_with_strategy
    from tests.support import running_mmflow
    from sim.world import BTC
    from storage import exchange_repo

    metrics.reset_for_tests()
    ew = world_with_exchange(deposit_delay=0.1)
    tmp_path = tmp_path_factory.mktemp("metrics")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMF_BINANCE_KEY", ew.api_key)
        mp.setenv("MMF_BINANCE_SECRET", ew.secret)
        try:
            with running_mmflow(tmp_path, ew.world, exchanges=[exchange_table(ew)], funding=FAST_FUNDING,
                                pairs=pairs_with_strategy(), strategy={"tick_interval": 0.1},
                                stream={"slow_interval": 0.2, "fast_interval": 0.05}) as mm:
                order_id, _ = pay_order(ew, mm, "0.1", "5000")
                ew.world.fake.pay(ew.world.bot_id, ew.world.new_user(), BTC, "0.001", "not an mmflow memo")
                mm.wait_state(order_id, "running", timeout=30)
                wait_until(lambda: {o.side for o in exchange_repo.open_orders_of(order_id)
                                    if o.exchange_order_id} == {"buy", "sell"}, timeout=15, message="two sides quoted")
                ew.exchange.place_taker("BTC/USDT", "sell", "0.005")  # hits our best bid
                wait_until(lambda: exchange_repo.fills_of(order_id), timeout=15, message="our fill recorded")
                ew.exchange.inject("/api/v3/ticker", status=429, retry_after=0.05)
                mm.services.exchanges["binance"].fetch_ticker("BTC/USDT")  # refused once, then answered
                wait_until(lambda: value(scrape(), "mmflow_routing_outcomes", "mmflow_routing_outcomes_total",
                                         outcome="refund"), timeout=15, message="the bad memo routed to a refund")
                yield scrape(), order_id
        finally:
            ew.stop()
            ew.world.fake.stop()


def test_every_family_is_exposed_with_its_labels(driven):
    families, _ = driven
    for family, labels in FAMILIES.items():
        assert family in families, family
        assert families[family].samples, f"{family} has no samples"
        assert label_names(families, family) == labels, family


def test_the_driven_service_is_counted(driven):
    f, _ = driven
    assert value(f, "mmflow_snapshots_polled", "mmflow_snapshots_polled_total", result="new") >= 3
    assert value(f, "mmflow_routing_outcomes", "mmflow_routing_outcomes_total", outcome="order") >= 2
    assert value(f, "mmflow_routing_outcomes", "mmflow_routing_outcomes_total", outcome="refund") == 1
    requests = "mmflow_exchange_requests_total"
    assert value(f, "mmflow_exchange_requests", requests, venue="binance", endpoint="create_order", result="ok") >= 2
    assert value(f, "mmflow_exchange_requests", requests, venue="binance", endpoint="fetch_ticker",
                 result="rate_limited") == 1
    assert value(f, "mmflow_exchange_requests", requests, venue="binance", endpoint="fetch_ticker", result="ok") == 1
    latency = "mmflow_exchange_request_seconds"
    assert value(f, latency, latency + "_count", venue="binance", endpoint="create_order") >= 2
    assert value(f, "mmflow_exchange_rate_limited", "mmflow_exchange_rate_limited_total", account="binance",
                 status="429") == 1
    wait = "mmflow_limiter_wait_seconds"
    assert value(f, wait, wait + "_count", account="binance") >= 1  # the retry waited out the pause
    assert value(f, "mmflow_strategy_ticks", "mmflow_strategy_ticks_total", outcome="acted") >= 1
    assert value(f, "mmflow_strategy_tick_seconds", "mmflow_strategy_tick_seconds_count") >= 1
    assert value(f, "mmflow_writer_batch_units", "mmflow_writer_batch_units_count") >= 10
    assert value(f, "mmflow_writer_commit_seconds", "mmflow_writer_commit_seconds_count") >= 10
    assert value(f, "mmflow_orders", state="running") == 1
    assert value(f, "mmflow_money_movements", kind="withdrawal", state="confirmed") == 2
    # the bad memo's refund: queued, prepared, sent or confirmed by now
    assert sum(s.value for s in f["mmflow_money_movements"].samples if s.labels["kind"] == "refund") == 1
    for kind in ("OrderActor", "SnapshotPoller", "Router", "StoreActor", "Treasury", "ExchangeGateway"):
        assert value(f, "mmflow_actors", kind=kind) >= 1, kind
    assert value(f, "mmflow_pair_live_quotes", exchange="binance", symbol="BTC/USDT", side="sell") >= 1
    assert value(f, "mmflow_pair_two_sided_orders", exchange="binance", symbol="BTC/USDT") <= 1
    assert sum(s.value for s in f["mmflow_pair_fills"].samples
               if s.name == "mmflow_pair_fills_total" and s.labels["side"] == "buy") >= 1


def test_labels_stay_bounded(driven):
    families, order_id = driven
    series = [s for fam in families.values() for s in fam.samples]
    for s in series:
        for label, text in s.labels.items():
            assert order_id not in text and not UUID.search(text), (s.name, label, text)
            assert not CLIENT_ID.match(text), (s.name, label, text)
    endpoints = {s.labels["endpoint"] for s in families["mmflow_exchange_requests"].samples}
    assert endpoints <= {"load_markets", "fetch_open_orders", "fetch_order_book", "create_order", "cancel_order",
                         "fetch_order", "fetch_my_trades", "fetch_balance", "fetch_deposit_address", "fetch_deposits",
                         "fetch_withdrawals", "fetch_deposit_withdraw_fees", "withdraw", "fetch_ticker",
                         "fetch_currencies"}, endpoints
    assert len(series) < 1500  # one order or a thousand: the same series


def test_scrape_is_quick(driven):
    started = time.perf_counter()
    for _ in range(5):
        metrics.exposition()
    assert (time.perf_counter() - started) / 5 < 0.5
