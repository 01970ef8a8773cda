"""The stream's event feed on a real SQLite file, every write through the real group-commit writer:
which rows become which events, in what order, for whom, and what happens to a subscriber that lags."""
from __future__ import annotations

import json
from decimal import Decimal as D

import peewee as pw
import pytest

from actors.outage import open_alert, resolve_alerts
from api.event_feed import CLOSE_GOING_AWAY, CLOSE_POLICY_VIOLATION, EventFeed
from api.stream_sources import AlertSource, Event, FillSource, default_sources, model_source
from domain.exchange_orders import TradeFill
from domain.payment import FeeRequirements
from domain.states import OrderState
from storage import exchange_repo as xr
from storage import repo
from storage.db import open_database
from storage.models import BaseModel, DecimalText, Order, OrderStateChange, database_proxy
from storage.writer import Writer
from tests.databases import database_url
from tests.support import wait_until

PAIR = "0776b00f-95c0-46f9-85e4-7b8e7ca51e94"
FEES = FeeRequirements("asset-b", D("0.0001"), "asset-q", D("1"), D("0.1"))


@pytest.fixture
def writer(tmp_path):
    database = open_database(database_url(tmp_path / "feed.db"))
    w = Writer(database).start()
    yield w
    w.stop()
    database.close()
    database_proxy.initialize(None)


def new_order(w, order_id, user_id, now=1.0):
    w.run(repo.create_order, order_id, PAIR, FEES, now, 600)
    w.run(lambda: Order.update(user_id=user_id).where(Order.order_id == order_id).execute())


def move(w, order_id, *states):
    for state in states:
        w.run(repo.set_order_state, order_id, OrderState(state), f"to {state}", 2.0)


def fill_order(w, order_id, trade_id, side="buy", amount="0.5", fee="0.01"):
    cid = w.run(xr.reserve_client_order, order_id, "binance", "BTC/USDT", side, D("100"), D("1"), 0, 1.0)
    trade = TradeFill(trade_id=trade_id, client_order_id=cid, exchange_order_id=None, symbol="BTC/USDT",
                      side=side, price=D("100.5"), amount=D(amount), fee=D(fee), fee_currency="USDT",
                      timestamp_ms=1_000, liquidity="maker")
    assert w.run(xr.apply_fill, "binance", trade, 3.0)
    return cid


def drain(subscriber):
    texts = []
    while (text := subscriber.take()) is not None:
        texts.append(json.loads(text))
    return texts


def test_sources_start_at_the_end_and_turn_rows_into_events(writer):
    new_order(writer, "o-1", "user-a")
    sources = default_sources()
    cursors = [s.latest() for s in sources]
    move(writer, "o-1", "attention", "running")
    fill_order(writer, "o-1", "t-1")
    writer.run(repo.raise_alert, "exchange_unreachable", "binance", "binance: timeout")

    found = {}
    for source, cursor in zip(sources, cursors):
        events, _ = source.read_after(cursor, 100)
        found[source.kind] = events
    states = found["order_state"]
    assert [(e.data["from_state"], e.data["to_state"]) for e in states] == [("payment_pending", "attention"),
                                                                           ("attention", "running")]
    assert {(e.order_id, e.user_id, e.seq) for e in states} == {("o-1", "user-a", 0)}
    [fill] = found["fill"]
    assert (fill.order_id, fill.user_id) == ("o-1", "user-a")
    assert fill.data["price"] == "100.5" and fill.data["amount"] == "0.5" and fill.data["fee"] == "0.01"
    assert fill.data["side"] == "buy" and fill.data["liquidity"] == "maker" and "order_id" not in fill.data
    [alert] = found["alert"]
    assert (alert.order_id, alert.user_id) == (None, None)
    assert alert.data["kind"] == "exchange_unreachable" and alert.data["resolved"] is False
    assert alert.data["reopened"] is False


def test_fill_source_resumes_after_the_last_fill_it_took(writer):
    new_order(writer, "o-1", "user-a")
    source = FillSource()
    cursor = source.latest()
    for n in range(5):
        fill_order(writer, "o-1", f"t-{n}", side="buy" if n % 2 == 0 else "sell", fee="0" if n == 3 else "0.01")
    seen = []
    for _ in range(10):
        events, cursor = source.read_after(cursor, 2)
        seen += [e.data["trade_id"] for e in events]
        if not events:
            break
    assert seen == [f"t-{n}" for n in range(5)]


def test_an_alert_opened_again_is_an_event_again(writer):
    now = [0.0]
    source = AlertSource(reopen_every=1.0, clock=lambda: now[0])
    writer.run(open_alert, "mixin_unreachable", "mixin", "down", 10.0)
    cursor = source.latest()
    writer.run(resolve_alerts, ["mixin_unreachable"], "mixin")
    writer.run(open_alert, "mixin_unreachable", "mixin", "down again", 20.0)
    events, cursor = source.read_after(cursor, 100)
    assert [(e.data["message"], e.data["reopened"]) for e in events] == [("down again", True)]
    now[0] = 0.5   # the next scan waits for reopen_every; new alerts (by id) never wait
    writer.run(repo.raise_alert, "unrefundable_snapshot", "snap-1", "from outside Mixin")
    events, cursor = source.read_after(cursor, 100)
    assert [(e.data["kind"], e.data["reopened"]) for e in events] == [("unrefundable_snapshot", False)]
    now[0] = 2.0
    assert source.read_after(cursor, 100)[0] == []


def test_a_model_source_needs_an_integer_key():
    with pytest.raises(TypeError, match="integer"):
        model_source("order", Order)
    assert model_source("order_state", OrderStateChange).table == "order_state_change"


def test_users_get_their_orders_viewers_get_everything(writer):
    new_order(writer, "o-a", "user-a")
    new_order(writer, "o-b", "user-b")
    feed = EventFeed(interval=0.01)
    feed._cursors = [s.latest() for s in feed.sources]   # positioned like start(), polled by hand
    a = feed.subscribe("user-a", sees_all=False)
    viewer = feed.subscribe(None, sees_all=True)
    move(writer, "o-a", "attention")
    move(writer, "o-b", "attention")
    writer.run(repo.raise_alert, "treasury_shortfall", "asset-q", "short")
    assert feed.poll_once() is False
    mine, everything = drain(a), drain(viewer)
    assert [(m["type"], m["order_id"]) for m in mine] == [("order_state", "o-a")]
    assert [(m["type"], m["order_id"]) for m in everything] == [("order_state", "o-a"), ("order_state", "o-b"),
                                                               ("alert", None)]
    assert [m["seq"] for m in everything] == [1, 2, 3] and mine[0]["seq"] == 1
    assert everything[0]["to_state"] == "attention" and everything[0]["user_id"] == "user-a"


def test_a_full_subscriber_is_dropped_and_the_others_keep_everything(writer):
    feed = EventFeed(queue_size=4, close_grace=0.01)
    slow = feed.subscribe(None, sees_all=True)
    fast = feed.subscribe(None, sees_all=True)
    aborted = []
    slow.abort = lambda: aborted.append(True)
    received = []
    for n in range(10):
        feed.publish([Event("kpi", 0, "o-1", "u", {"n": n})])
        received += drain(fast)
    assert [m["n"] for m in received] == list(range(10))
    assert slow.closing == (CLOSE_POLICY_VIOLATION, "too slow: 4 events waiting")
    assert slow.take() is None and feed.dropped == 1 and feed.subscriber_count == 1
    wait_until(lambda: aborted, message="the dropped subscriber's socket to be shut")


def test_the_feed_greenlet_tails_and_stop_says_goodbye(writer):
    new_order(writer, "o-1", "user-a")
    feed = EventFeed(interval=0.01, batch=3).start()
    try:
        subscriber = feed.subscribe("user-a", sees_all=False)
        move(writer, "o-1", "attention", "running", "paused", "running", "paused", "running", "stopping")
        got = []
        wait_until(lambda: got.extend(drain(subscriber)) or len(got) >= 7, message="seven state changes")
        assert [m["to_state"] for m in got] == ["attention", "running", "paused", "running", "paused", "running",
                                               "stopping"]
        assert [m["seq"] for m in got] == list(range(1, 8))
        assert feed.running
    finally:
        feed.stop()
    assert not feed.running and subscriber.closing == (CLOSE_GOING_AWAY, "server stopping")
    assert feed.subscriber_count == 0


class LateSample(BaseModel):
    """A table the schema does not create (like a new source's before its migration)."""
    order_id = pw.CharField()
    value = DecimalText()

    class Meta:
        table_name = "stream_test_late_sample"


def test_a_source_that_cannot_be_read_does_not_stop_the_others(writer):
    new_order(writer, "o-1", "user-a")
    feed = EventFeed(sources=[model_source("kpi", LateSample), model_source("order_state", OrderStateChange)],
                     interval=0.01).start()
    try:
        subscriber = feed.subscribe("user-a", sees_all=False)
        move(writer, "o-1", "attention")
        got = []
        wait_until(lambda: got.extend(drain(subscriber)) or got, message="the state change")
        assert [(m["type"], m["to_state"]) for m in got] == [("order_state", "attention")]
        assert feed.unreadable == ["kpi"]
        writer.run(lambda: LateSample.create_table())
        wait_until(lambda: not feed.unreadable, message="the new table to be found")
        writer.run(lambda: LateSample.create(order_id="o-1", value=D("0.25")))
        wait_until(lambda: got.extend(drain(subscriber)) or len(got) == 2, message="the sample")
        assert got[1]["type"] == "kpi" and got[1]["value"] == "0.25" and got[1]["order_id"] == "o-1"
    finally:
        feed.stop()
