"""Order updates and start-up reconciliation (integrations/exchange/updates.py) and the shared BookCache:
the real ccxt.binance against the real FakeExchange, the orders DB on a real SQLite file through the
real group-commit writer."""
from __future__ import annotations

import time
from decimal import Decimal as D

import gevent
import pytest

from domain.exchange_config import ExchangeAccountConfig
from domain.exchange_orders import ExOrderState as S
from domain.exchange_orders import client_order_id
from integrations.exchange import updates
from integrations.exchange.account import ExchangeAccount
from integrations.exchange.errors import UnknownOutcome
from integrations.exchange.market_cache import BookCache
from sim.fake_exchange import FakeExchange
from storage import exchange_repo as xr
from storage.db import open_database
from storage.exchange_models import ExchangeOrder, Fill
from storage.models import Alert, LedgerEntry, database_proxy
from storage.writer import Writer
from tests.databases import database_url

SYM = "BTC/USDT"
MID = "BTCUSDT"
ACC = "fake-upd"
KEY, SECRET = "upd-key", "upd-secret"


@pytest.fixture
def fx():
    with FakeExchange(seed=7) as server:
        server.add_market(SYM, "BTC", "USDT", tick_size="0.01", step_size="0.00001", mid="60000")
        server.add_account(KEY, SECRET)
        server.credit(KEY, "USDT", "100000")
        server.credit(KEY, "BTC", "10")
        yield server


def make_account(fx, **overrides) -> ExchangeAccount:
    fields = {"account_id": ACC, "ccxt_id": "binance", "api_key": KEY, "secret": SECRET, "urls": {"api": fx.url},
              "request_timeout": 2.0}
    fields.update(overrides)
    account = ExchangeAccount(ExchangeAccountConfig(**fields))
    account.load_markets()
    return account


@pytest.fixture
def acct(fx):
    account = make_account(fx)
    yield account
    account.close()


@pytest.fixture
def w(tmp_path):
    db = open_database(database_url(tmp_path / "updates.db"))
    writer = Writer(db, batch_max=100).start()
    yield writer
    writer.stop()
    db.close()
    database_proxy.initialize(None)


def reserve(w, order_id, side, price, amount, now):
    cid = w.run(xr.reserve_client_order, order_id, ACC, SYM, side, D(price), D(amount), 0, now)
    w.run(xr.mark_submitted, cid, now)
    return cid


def place(w, acct, order_id, side, price, amount, now, *, ack=True):
    """The OrderActor's protocol: reserve, mark submitted, create with the client id, map the ack."""
    cid = reserve(w, order_id, side, price, amount, now)
    info = acct.create_limit_order(SYM, side, D(amount), D(price), client_order_id=cid)
    if ack:
        w.run(xr.map_exchange_id, cid, info.id, S.ACCEPTED, now)
    return cid, info


def row(cid):
    return xr.get_exchange_order(cid)


def count(fx, method, path):
    return sum(1 for m, p, _ in fx.requests_log if m == method and p == path)


def db_dump():
    orders = sorted(tuple(str(v) for v in r) for r in ExchangeOrder.select().tuples())
    fills = sorted(tuple(str(v) for v in r) for r in Fill.select().tuples())
    ledger = sorted(tuple(str(v) for v in r) for r in LedgerEntry.select().tuples())
    alerts = sorted(tuple(str(v) for v in r) for r in Alert.select().tuples())
    return orders, fills, ledger, alerts


def alerts(kind):
    return list(Alert.select().where(Alert.kind == kind))


def expected_ledger(fx, exchange_ids):
    """What the fake's own fills of these exchange orders mean for the order's ledger."""
    totals: dict[str, D] = {}
    for f in fx.engine.fills(KEY, MID):
        if str(f.order_id) not in exchange_ids:
            continue
        sign = 1 if f.side == "BUY" else -1
        for asset, delta in (("BTC", sign * f.qty), ("USDT", -sign * f.quote_qty),
                             (f.commission_asset, -f.commission)):
            totals[asset] = totals.get(asset, D(0)) + delta
    return {k: v for k, v in totals.items() if v != 0}


# ---------------------------------------------------------------- start-up reconciliation


def test_reconcile_adopts_resolves_cancels_unknown_reports_foreign_and_is_idempotent(fx, acct, w):
    t0 = time.time() - 30   # everything in the DB happened before the "crash"
    kept, kept_info = place(w, acct, "order-a", "buy", "59000", "0.01", t0)        # still open (and 40% filled)
    filled, filled_info = place(w, acct, "order-a", "sell", "61000", "0.01", t0)   # filled while we were down
    gone, gone_info = place(w, acct, "order-b", "buy", "58500", "0.01", t0)        # cancelled while we were down
    never = reserve(w, "order-b", "buy", "58400", "0.01", t0 - 30)                 # crashed before the request
    unknown_cid = client_order_id("order-zzz", 1)                                  # ours by prefix, not in the DB
    unknown = acct.create_limit_order(SYM, "buy", D("0.01"), D("58000"), client_order_id=unknown_cid)
    foreign = acct.create_limit_order(SYM, "buy", D("0.01"), D("57000"), client_order_id="manual-desk-1")
    fx.place_taker(SYM, "buy", "0.01", price="61000")      # fills `filled` completely
    fx.place_taker(SYM, "sell", "0.004", price="59000")    # fills 0.004 of `kept`
    acct.cancel_order(SYM, client_order_id=gone)
    assert row(kept).state is row(filled).state is row(gone).state is S.ACCEPTED
    assert row(never).state is S.SUBMITTED

    report = updates.reconcile_account(acct, w, symbols=[SYM], now=time.time())

    assert report.adopted == [kept]
    k = row(kept)
    assert (k.state, k.filled, k.exchange_order_id) == (S.PARTIALLY_FILLED, D("0.004"), kept_info.id)
    f = row(filled)
    assert (f.state, f.filled) == (S.FILLED, D("0.01"))
    assert row(gone).state is S.CANCELED
    assert row(never).state is S.REJECTED            # not found, and its last event is long past the grace
    assert report.resolved == {filled: S.FILLED, gone: S.CANCELED, never: S.REJECTED}
    assert report.unresolved == [] and report.conflicts == [] and report.fills_missing == []
    # the fills: one row per trade, and the order's ledger is exactly what the exchange did
    assert report.fills_applied == 2
    assert sorted((x.client_order_id, x.amount) for x in xr.fills_of("order-a")) == sorted(
        [(kept, D("0.004")), (filled, D("0.01"))])
    assert xr.ledger_balances("order-a") == expected_ledger(fx, {kept_info.id, filled_info.id})
    assert xr.ledger_balances("order-b") == {}
    # unknown with our prefix: cancelled on the exchange and reported; foreign: untouched, reported
    assert report.cancelled_unknown == [unknown_cid]
    assert fx.engine.get_order(KEY, MID, order_id=int(unknown.id)).status == "CANCELED"
    assert report.foreign == [f"{SYM}:{foreign.id}"]
    assert fx.engine.get_order(KEY, MID, order_id=int(foreign.id)).status == "NEW"
    assert [a.subject for a in alerts("unknown_exchange_order")] == [f"{ACC}:{SYM}:{unknown.id}"]
    assert [a.subject for a in alerts("foreign_exchange_order")] == [f"{ACC}:{SYM}:{foreign.id}"]
    # what the order actors are told
    assert set(report.events) == {"order-a", "order-b"}
    assert set(report.events["order-a"].changed) == {kept, filled}
    assert sorted(x.client_order_id for x in report.events["order-a"].fills) == sorted([kept, filled])
    assert set(report.events["order-b"].changed) == {gone, never}
    assert report.changes > 0

    # a second run on the unchanged exchange changes nothing and sends no cancel
    before = db_dump()
    cancels = count(fx, "DELETE", "/api/v3/order")
    again = updates.reconcile_account(acct, w, symbols=[SYM], now=time.time())
    assert db_dump() == before
    assert again.changes == 0 and again.events == {}
    assert again.adopted == [kept] and again.resolved == {} and again.cancelled_unknown == []
    assert again.foreign == [f"{SYM}:{foreign.id}"]          # still listed, reported once (one alert row)
    assert count(fx, "DELETE", "/api/v3/order") == cancels
    assert len(alerts("foreign_exchange_order")) == 1


def test_reconcile_leaves_a_fresh_not_found_open_and_raises_when_the_list_is_unreadable(fx, acct, w):
    now = time.time()
    fresh = reserve(w, "order-c", "buy", "58000", "0.01", now - 1)   # sent a second ago: Binance may lag
    fx.inject("/api/v3/openOrders", status=503, count=1)
    with pytest.raises(UnknownOutcome):
        updates.reconcile_account(acct, w, symbols=[SYM], now=now)
    report = updates.reconcile_account(acct, w, symbols=[], now=now)   # its symbol comes from the DB
    assert report.symbols == (SYM,)
    assert report.unresolved == [fresh] and row(fresh).state is S.SUBMITTED
    later = updates.reconcile_account(acct, w, symbols=[], now=now + updates.NOT_FOUND_GRACE)
    assert later.resolved == {fresh: S.REJECTED}


# ---------------------------------------------------------------- the update stream, one round at a time


def rounds(acct, w, n, *, since=None, unmatched=None, looked_up=None, quiet=None, **kwargs):
    """n rounds in a row, each handed the previous round's memory (quiet symbols too), as the gateway does."""
    since = {} if since is None else since
    out = []
    for _ in range(n):
        r = updates.poll_updates(acct, w, since_ms=since, unmatched=unmatched, looked_up=looked_up,
                                 now=time.time(), quiet=quiet, **kwargs)
        since, unmatched, looked_up, quiet = r.next_since_ms, r.unmatched, r.looked_up, r.quiet
        out.append(r)
    return out


def test_a_partial_fill_is_recorded_once_across_rounds_and_reported_once(fx, acct, w):
    t0 = time.time() - 30
    cid, info = place(w, acct, "order-d", "buy", "59000", "0.01", t0)
    fx.place_taker(SYM, "sell", "0.003", price="59000")
    trades_before = count(fx, "GET", "/api/v3/myTrades")

    r1, r2, r3 = rounds(acct, w, 3)

    assert set(r1.events) == {"order-d"}
    ev = r1.events["order-d"]
    assert [(f.client_order_id, f.amount, f.price) for f in ev.fills] == [(cid, D("0.003"), D("59000"))]
    assert ev.changed == (cid,)
    assert r2.events == {} and r3.events == {}                 # re-read (since = the trade's time), not re-applied
    assert count(fx, "GET", "/api/v3/myTrades") - trades_before == 3
    assert [x.amount for x in xr.fills_of("order-d")] == [D("0.003")]
    o = row(cid)
    assert (o.state, o.filled) == (S.PARTIALLY_FILLED, D("0.003"))
    assert xr.ledger_balances("order-d") == expected_ledger(fx, {info.id})
    assert r1.next_since_ms[SYM] == fx.engine.fills(KEY, MID)[-1].time
    assert not r3.in_flight


def test_trades_are_read_only_on_evidence_or_when_due(fx, acct, w):
    t0 = time.time() - 30
    place(w, acct, "order-e", "buy", "59000", "0.01", t0)
    base = count(fx, "GET", "/api/v3/myTrades")
    quiet = rounds(acct, w, 2, trades_for=())
    assert count(fx, "GET", "/api/v3/myTrades") == base and quiet[-1].trades_fetched == ()
    fx.place_taker(SYM, "sell", "0.002", price="59000")           # the open list now shows 0.002 filled
    [r] = rounds(acct, w, 1, trades_for=())
    assert r.trades_fetched == (SYM,) and sum(len(e.fills) for e in r.events.values()) == 1


def test_a_cancel_in_flight_is_resolved_to_canceled(fx, acct, w):
    t0 = time.time() - 30
    cid, _ = place(w, acct, "order-f", "sell", "61000", "0.01", t0)
    w.run(xr.transition, cid, S.PENDING_CANCEL, time.time() - 2)    # the cancel went out two seconds ago ...
    acct.cancel_order(SYM, client_order_id=cid)                       # ... and landed; its answer was lost
    lookups = count(fx, "GET", "/api/v3/order")
    [r] = rounds(acct, w, 1)
    assert row(cid).state is S.CANCELED
    assert r.events["order-f"].changed == (cid,) and r.events["order-f"].fills == ()
    assert count(fx, "GET", "/api/v3/order") == lookups + 1          # one targeted lookup
    assert not r.in_flight


def test_an_unknown_create_outcome_is_resolved_by_client_id(fx, w):
    acct = make_account(fx, request_timeout=0.3)
    try:
        now = time.time()
        cid = reserve(w, "order-g", "buy", "59000", "0.01", now)
        fx.inject("/api/v3/order", method="POST", status=200, delay=0.8, after_apply=True)
        with pytest.raises(UnknownOutcome):
            acct.create_limit_order(SYM, "buy", D("0.01"), D("59000"), client_order_id=cid)
        placed = fx.engine.get_order(KEY, MID, client_order_id=cid)
        assert row(cid).state is S.SUBMITTED and row(cid).exchange_order_id is None
        [r] = rounds(acct, w, 1)
        assert r.in_flight                                            # it was placed a moment ago
        o = row(cid)
        assert (o.state, o.exchange_order_id) == (S.ACCEPTED, str(placed.order_id))
        assert r.events["order-g"].changed == (cid,)
    finally:
        acct.close()


def test_not_found_window_is_not_a_verdict_and_a_trade_waits_for_its_order(fx, w):
    acct = make_account(fx, request_timeout=0.3)
    try:
        fx.order_not_found_window(1.0)
        now = time.time()
        lost = reserve(w, "order-h", "sell", "61000", "0.01", now)
        fx.inject("/api/v3/order", method="POST", status=200, delay=0.8, after_apply=True)
        with pytest.raises(UnknownOutcome):
            acct.create_limit_order(SYM, "sell", D("0.01"), D("61000"), client_order_id=lost)
        fx.place_taker(SYM, "buy", "0.01", price="61000")           # filled at once: not in the open list
        never = reserve(w, "order-h", "buy", "58000", "0.01", now - 60)   # really never placed, a minute ago

        [r1] = rounds(acct, w, 1, settle=0)
        assert r1.lookups == 2 and set(r1.looked_up) == {lost, never}
        assert row(lost).state is S.SUBMITTED                        # -2013 inside the window: no verdict
        assert row(never).state is S.REJECTED                        # not found long after its last event
        assert xr.fills_of("order-h") == []                          # its trade has no order to go to yet
        assert len(r1.unmatched) == 1
        trade_time = fx.engine.fills(KEY, MID)[-1].time
        assert r1.next_since_ms[SYM] <= trade_time                   # the trade will be read again

        gevent.sleep(1.05)
        [r2] = rounds(acct, w, 1, since=r1.next_since_ms, unmatched=r1.unmatched, looked_up=r1.looked_up, settle=0,
                      lookup_every=0.5)
        o = row(lost)
        assert (o.state, o.filled) == (S.FILLED, D("0.01")) and o.exchange_order_id is not None
        assert [f.client_order_id for f in r2.events["order-h"].fills] == [lost]
        assert r2.unmatched == {} and alerts("exchange_fill_unmatched") == []
        assert set(r2.looked_up) == {lost}                               # `never` went final: forgotten
    finally:
        acct.close()


def test_errors_keep_state_and_never_escape_a_round(fx, acct, w):
    t0 = time.time() - 30
    cid, _ = place(w, acct, "order-i", "buy", "59000", "0.01", t0)
    fx.place_taker(SYM, "sell", "0.001", price="59000")
    fx.inject("/api/v3/openOrders", status=503, count=1)
    fx.inject("/api/v3/myTrades", status=400, error_code=-1121, msg="Invalid symbol.", count=1)
    [r1] = rounds(acct, w, 1)
    assert len(r1.errors) == 1 and "listing open orders" in r1.errors[0]   # transient: kept for next round
    assert r1.events == {} and row(cid).state is S.ACCEPTED and xr.fills_of("order-i") == []
    assert [a.kind for a in Alert.select()] == ["exchange_error"]    # the definitive refusal is reported
    [r2] = rounds(acct, w, 1)
    assert r2.errors == ()
    assert row(cid).state is S.PARTIALLY_FILLED and len(xr.fills_of("order-i")) == 1


def test_a_trade_of_no_known_order_is_retried_then_reported(fx, acct, w):
    t0 = time.time() - 30
    place(w, acct, "order-j", "buy", "58000", "0.01", t0)            # keeps the symbol watched
    manual = acct.create_limit_order(SYM, "sell", D("0.01"), D("61000"), client_order_id="manual-desk-2")
    fx.place_taker(SYM, "buy", "0.01", price="61000")
    first = rounds(acct, w, 2, unmatched_retry=0)
    assert [len(r.unmatched) for r in first] == [1, 1] and alerts("exchange_fill_unmatched") == []
    rs = rounds(acct, w, 2, since=first[-1].next_since_ms, unmatched=first[-1].unmatched, unmatched_retry=0)
    reported = alerts("exchange_fill_unmatched")
    assert len(reported) == 1 and str(manual.id) in reported[0].message
    # once reported, the cursor moves past it
    assert rs[-1].next_since_ms[SYM] == fx.engine.fills(KEY, MID)[-1].time


# ---------------------------------------------------------------- BookCache


def test_book_cache_is_single_flight_per_ttl(fx, acct):
    now = [1000.0]  # the cache's own clock: freshness must not depend on how fast this machine is
    cache = BookCache(acct, ttl=0.3, clock=lambda: now[0])
    fx.inject("/api/v3/depth", status=200, delay=0.1, count=2)       # slow answers: callers pile up behind them
    depth = count(fx, "GET", "/api/v3/depth")
    books = gevent.joinall([gevent.spawn(cache.book, SYM) for _ in range(200)], raise_error=True)
    assert count(fx, "GET", "/api/v3/depth") == depth + 1
    assert len({id(g.value) for g in books}) == 1 and books[0].value.bids
    assert cache.book(SYM) is books[0].value                          # still fresh
    now[0] += 0.35                                                    # ttl passed
    books = gevent.joinall([gevent.spawn(cache.book, SYM) for _ in range(200)], raise_error=True)
    assert count(fx, "GET", "/api/v3/depth") == depth + 2
    assert cache.requests == 2 and cache.joined + cache.hits == 399


def test_book_cache_shares_a_failure_and_caches_nothing(fx, acct):
    cache = BookCache(acct, ttl=5)
    fx.inject("/api/v3/depth", status=503, delay=0.1, count=1)
    depth = count(fx, "GET", "/api/v3/depth")
    greenlets = [gevent.spawn(cache.book, SYM) for _ in range(50)]
    gevent.joinall(greenlets)
    assert all(isinstance(g.exception, UnknownOutcome) for g in greenlets)
    assert count(fx, "GET", "/api/v3/depth") == depth + 1
    assert cache.book(SYM).asks and count(fx, "GET", "/api/v3/depth") == depth + 2


def test_book_cache_sent_after_refuses_a_book_asked_for_before_a_moment(fx, acct):
    """A post-only placement after our cancels asks for a book sent after them: neither the cached book nor a
    request in flight from before that moment answers it; a request sent after it is shared as usual."""
    now = [1000.0]
    cache = BookCache(acct, ttl=5, clock=lambda: now[0])
    depth = count(fx, "GET", "/api/v3/depth")
    old = cache.book(SYM)
    now[0] += 0.01
    cancelled = cache.clock()
    assert cache.book(SYM) is old                                     # without sent_after: fresh enough
    fx.inject("/api/v3/depth", status=200, delay=0.2, count=1)
    before = gevent.spawn(cache.book, SYM, max_age=0)                 # in flight, sent at the cancel's moment
    gevent.sleep(0.05)
    now[0] += 0.01
    after = [gevent.spawn(cache.book, SYM, sent_after=cancelled + 0.005) for _ in range(20)]
    gevent.joinall([before, *after], raise_error=True)
    assert count(fx, "GET", "/api/v3/depth") == depth + 3             # the old one, the one in flight, one after
    assert len({id(g.value) for g in after}) == 1 and after[0].value is not before.value
    assert cache.book(SYM, sent_after=cancelled + 0.005) is after[0].value   # cached, and after the moment


def test_an_unresolved_order_is_looked_up_at_most_every_lookup_every(fx, acct, w):
    now = time.time()
    pending = reserve(w, "order-k", "buy", "58000", "0.01", now - 5)   # sent 5 s ago, not (yet) on the exchange
    before = count(fx, "GET", "/api/v3/order")
    rs = rounds(acct, w, 5, lookup_every=60)
    assert count(fx, "GET", "/api/v3/order") - before == 1 and [r.lookups for r in rs] == [1, 0, 0, 0, 0]
    assert row(pending).state is S.SUBMITTED and all(r.in_flight for r in rs)


def test_reconcile_adopts_orders_held_as_listed_from_their_rows_as_the_plan_would(fx, acct, w):
    """The start's shortcut for orders listed exactly as the DB holds them (ACCEPTED, mapped, nothing filled) agrees
    with the domain's plan over the same views: what it adopts, and what it leaves (a price the DB disagrees with
    stays a conflict, a fill the DB lacks is read)."""
    from domain.exchange_orders import OPEN_STATES, reconcile
    from storage.sql import run

    t0 = time.time() - 30
    held = [place(w, acct, f"order-h{i}", "buy", str(58000 + i), "0.01", t0)[0] for i in range(5)]
    part, _ = place(w, acct, "order-p", "buy", "59000", "0.01", t0)
    bent, _ = place(w, acct, "order-c", "sell", "61000", "0.01", t0)
    unmapped, unmapped_info = place(w, acct, "order-u", "sell", "61200", "0.01", t0, ack=False)
    fx.place_taker(SYM, "sell", "0.004", price="59000")           # part of order-p
    run(f"UPDATE {ExchangeOrder._meta.table_name} SET price = ? WHERE client_order_id = ?", ("61001", bent))
    views = xr.orders_in_states(OPEN_STATES, account=ACC)
    plan = reconcile(views, [updates._ex_open(o) for o in acct.fetch_open_orders(SYM)])
    assert sorted(a.db.client_order_id for a in plan.adopt) == sorted([*held, part, unmapped])
    assert [c.db.client_order_id for c in plan.conflicts] == [bent]

    report = updates.reconcile_account(acct, w, symbols=[SYM], now=time.time())

    assert sorted(report.adopted) == sorted([*held, part, unmapped]) and report.conflicts == [bent]
    assert all(row(cid).state is S.ACCEPTED for cid in held)
    assert (row(part).state, row(part).filled) == (S.PARTIALLY_FILLED, D("0.004")) and report.fills_applied == 1
    assert row(unmapped).exchange_order_id == unmapped_info.id
    assert report.cancelled_unknown == [] and report.resolved == {} and report.unresolved == []


def test_records_listed_as_held_are_claimed_unread_and_a_client_id_listed_twice_is_read_back(fx, acct, w):
    """The start's claims (records that say what an ACCEPTED, mapped, unfilled row holds are never read into
    OrderInfos) leave nothing for the plan when every record is held, and give a claimed record back when its
    client id is listed again: the plan then sees both."""
    from domain.exchange_orders import OPEN_STATES

    t0 = time.time() - 30
    a, _ = place(w, acct, "order-a", "buy", "58000", "0.01", t0)
    b, _ = place(w, acct, "order-b", "sell", "61000.5", "0.012", t0)
    rows = xr.rows_in_states(OPEN_STATES, account=ACC)
    raws = [o.info for o in acct.fetch_open_orders(SYM)]
    market = acct.exchange.market(SYM)

    claims = updates._Claims(rows)
    assert acct._open_orders_of(raws, market, SYM, claims) == []
    held, rest_rows, rest = claims.settle(acct, SYM, [], rows)
    assert sorted(r[0] for r in held) == sorted([a, b]) and rest == [] and rest_rows == []

    twice = [*raws, next(dict(r) for r in raws if (r.get("origClientOrderId") or r["clientOrderId"]) == a)]
    claims = updates._Claims(rows)
    infos = acct._open_orders_of(twice, market, SYM, claims)
    held, rest_rows, rest = claims.settle(acct, SYM, infos, rows)
    assert [r[0] for r in held] == [b] and [o.client_order_id for o in rest] == [a, a]
    assert [r[0] for r in rest_rows] == [a]
