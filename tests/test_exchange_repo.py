"""The orders DB on a real SQLite file, every write through the real group-commit writer."""
from __future__ import annotations

from decimal import Decimal as D

import gevent
import peewee as pw
import pytest

from domain.exchange_orders import (OPEN_STATES, ExOpenOrder, IllegalExTransition, TradeFill, client_order_id,
                                    is_ours, reconcile, seq_of)
from domain.exchange_orders import ExOrderState as S
from storage import exchange_repo as xr
from storage.db import open_database
from storage.exchange_models import EXCHANGE_MODELS, ExchangeOrder, Fill, OrderSequence
from storage.models import Alert, LedgerEntry, database_proxy
from storage.writer import Writer
from tests.databases import database_url

A, B = "order-a", "order-b"
ACC = "binance-main"
SYM = "BTC/USDT"


@pytest.fixture
def db(tmp_path):
    database = open_database(database_url(tmp_path / "t.db"))
    database.create_tables(EXCHANGE_MODELS)   # until storage.models lists them in the schema
    yield database
    database.close()
    database_proxy.initialize(None)


@pytest.fixture
def w(db):
    writer = Writer(db, batch_max=50).start()
    yield writer
    writer.stop()


def reserve(w, order_id=A, side="buy", price="100", amount="1", symbol=SYM, account=ACC, level=0, now=1.0):
    return w.run(xr.reserve_client_order, order_id, account, symbol, side, D(price), D(amount), level, now)


def fill(cid, trade_id, amount, price="100", side="buy", fee="0", fee_currency=None, xid=None, symbol=SYM, ts=1000):
    return TradeFill(trade_id=trade_id, client_order_id=cid, exchange_order_id=xid, symbol=symbol, side=side,
                     price=D(price), amount=D(amount), fee=D(fee), fee_currency=fee_currency, timestamp_ms=ts)


def deposit(w, order_id, asset, amount):
    w.run(lambda: LedgerEntry.create(order_id=order_id, asset=asset, delta=D(amount), reason="deposit",
                                     ref=f"deposit:{order_id}:{asset}", at=0))


def state(cid):
    return xr.get_exchange_order(cid).state


# ---------------------------------------------------------------- reserve, send, map

def test_mark_submitted_stamps_once(w):
    cid = reserve(w)
    assert w.run(xr.mark_submitted, cid, 2.0) is True
    assert w.run(xr.mark_submitted, cid, 3.0) is False            # a retry of the send
    row = xr.get_exchange_order(cid)
    assert (row.state, row.submitted_at, row.exchange_order_id) == (S.SUBMITTED, 2.0, None)
    assert w.run(xr.transition, cid, S.SUBMITTED, 4.0) is S.SUBMITTED   # idempotent


def test_reserve_then_send_then_map(w):
    calls = []

    def fake_create_order(cid):
        row = xr.get_exchange_order(cid)
        calls.append((row.state, row.exchange_order_id, row.price, row.amount, row.level))
        return "9001"

    cid = reserve(w, price="100.5", amount="0.25", level=2)
    assert cid == client_order_id(A, 1) and is_ours(cid)
    xid = fake_create_order(cid)
    assert calls == [(S.INITIALIZED, None, D("100.5"), D("0.25"), 2)]
    assert w.run(xr.map_exchange_id, cid, xid, S.ACCEPTED, 3.0) is S.ACCEPTED
    row = xr.get_exchange_order(cid)
    assert (row.state, row.exchange_order_id, row.submitted_at) == (S.ACCEPTED, "9001", 3.0)
    assert xr.find_by_exchange_id(ACC, SYM, "9001").client_order_id == cid
    assert w.run(xr.map_exchange_id, cid, xid, S.ACCEPTED, 4.0) is S.ACCEPTED   # same mapping again: no-op


def test_a_ticks_requests_are_one_unit_of_intent_and_one_of_outcome(w, db, monkeypatch):
    """The intent of a whole tick — every new order reserved SUBMITTED, every replaced one PENDING_CANCEL — is one
    unit; what the venue did with all of them is one more: cancelled + placed; cancelled + refused (REJECTED with
    the reason); cancel failed (the new one never attempted: REJECTED; the old stays PENDING_CANCEL for the
    stream); a plain place. The same rows the single-order units would leave, in a few statements."""
    from types import SimpleNamespace as Info

    olds = [reserve(w, price=p) for p in ("100", "99", "98")]
    for n, old in enumerate(olds, 1):
        w.run(xr.mark_submitted, old, 1.0)
        w.run(xr.map_exchange_id, old, str(n), S.ACCEPTED, 1.0)
    units = w.units
    statements = count_statements(monkeypatch)
    reserved, placed = w.run(xr.reserve_tick, A, ACC, SYM, [(old, "buy", D("101"), D("1"), 0) for old in olds],
                             [("sell", D("105"), D("1"), 1)], 2.0)
    assert w.units == units + 1
    assert statements() == 4     # the olds read, the sequence taken, the inserts, the olds' update
    new = [cid for cid, _ in reserved]
    assert [state for _, state in reserved] == [S.ACCEPTED] * 3
    assert [seq_of(c) for c in [*new, *placed]] == [4, 5, 6, 7]
    assert {xr.get_exchange_order(c).state for c in olds} == {S.PENDING_CANCEL}
    assert {xr.get_exchange_order(c).state for c in [*new, *placed]} == {S.SUBMITTED}
    statements = count_statements(monkeypatch)
    problems = w.run(xr.record_tick, [
        xr.Outcome(olds[0], Info(status="canceled", filled=D("0.25"), amount=D("1"), id="1")),
        xr.Outcome(new[0], Info(status="open", filled=D(0), amount=D("1"), id="11"), placed=True),
        xr.Outcome(olds[1], Info(status="canceled", filled=D(0), amount=D("1"), id="2")),
        xr.Outcome(new[1], error="invalid_order: would cross"),
        xr.Outcome(new[2], error="not attempted: cancel failed"),
        xr.Outcome(placed[0], Info(status="open", filled=D(0), amount=D("1"), id="12"), placed=True),
    ], 3.0)
    assert problems == []
    assert w.units == units + 2
    assert statements() <= 8    # the rows read, the ids mapped, an update per kind of change, the spans
    assert xr.get_exchange_order(olds[0]).state is S.CANCELED     # its 0.25 filled arrives as fills, counted once
    assert xr.fills_owed(A) == [(olds[0], D(0), D("0.25"))]
    assert (xr.get_exchange_order(new[0]).state, xr.get_exchange_order(new[0]).exchange_order_id) == (S.ACCEPTED,
                                                                                                       "11")
    assert xr.get_exchange_order(olds[1]).state is S.CANCELED
    assert (xr.get_exchange_order(new[1]).state, xr.get_exchange_order(new[1]).last_error) == (
        S.REJECTED, "invalid_order: would cross")
    assert (xr.get_exchange_order(olds[2]).state, xr.get_exchange_order(new[2]).state) == (S.PENDING_CANCEL,
                                                                                           S.REJECTED)
    assert xr.get_exchange_order(placed[0]).state is S.ACCEPTED
    spans = dict(db.execute_sql("SELECT client_order_id, closed_at FROM kpi_quote_span WHERE acked_at = 3.0"))
    assert spans == {new[0]: None, placed[0]: None}
    closed = {c for (c,) in db.execute_sql("SELECT client_order_id FROM kpi_quote_span WHERE closed_at = 3.0")}
    assert closed == {olds[0], olds[1]}


def test_a_tick_replaces_only_orders_resting_on_the_book_and_an_answer_it_cannot_apply_changes_nothing(w):
    """An old order not acknowledged, or whose cancel is already pending, gets no replacement (its state says
    why); one outcome that contradicts the rows (a second exchange id) is a problem of its own: the rest of
    the tick's answers are written."""
    from types import SimpleNamespace as Info

    never_acked = reserve(w)
    resting = reserve(w, price="99")
    w.run(xr.map_exchange_id, resting, "7", S.ACCEPTED, 1.0)
    cancelling = reserve(w, price="98")
    w.run(xr.map_exchange_id, cancelling, "8", S.ACCEPTED, 1.0)
    w.run(xr.transition, cancelling, S.PENDING_CANCEL, 1.5)
    reserved, _ = w.run(xr.reserve_tick, A, ACC, SYM, [(c, "buy", D("97"), D("1"), 0) for c in
                                                         (never_acked, resting, cancelling, "mmnot-ours")], [], 2.0)
    assert [state for _, state in reserved] == [S.INITIALIZED, S.ACCEPTED, S.PENDING_CANCEL, None]
    assert [cid is not None for cid, _ in reserved] == [False, True, False, False]
    new = reserved[1][0]
    problems = w.run(xr.record_tick, [
        xr.Outcome(resting, Info(status="canceled", filled=D(0), amount=D("1"), id="7")),
        xr.Outcome(new, Info(status="open", filled=D(0), amount=D("1"), id="8"), placed=True),  # 8 is taken
    ], 3.0)
    assert len(problems) == 1 and new in problems[0] and "already mapped" in problems[0]
    assert xr.get_exchange_order(resting).state is S.CANCELED
    assert (xr.get_exchange_order(new).state, xr.get_exchange_order(new).exchange_order_id) == (S.SUBMITTED, None)


def count_statements(monkeypatch):
    """How many statements the orders DB's units issue from now on (``run`` once, ``run_many`` once for all its
    rows: one prepared statement); call the result to read it. The real functions run."""
    seen = []
    for name in ("run", "run_many"):
        real = getattr(xr, name)
        monkeypatch.setattr(xr, name, lambda *a, _real=real: (seen.append(a[0]), _real(*a))[1])
    return lambda: len(seen)


def test_mapping_is_unique_both_ways(w):
    c1, c2 = reserve(w), reserve(w)
    w.run(xr.map_exchange_id, c1, "1", S.ACCEPTED, 1.0)
    with pytest.raises(xr.MappingConflict, match="already mapped to " + c1):
        w.run(xr.map_exchange_id, c2, "1", S.ACCEPTED, 1.0)
    with pytest.raises(xr.MappingConflict, match="already mapped to 1"):
        w.run(xr.map_exchange_id, c1, "2", S.ACCEPTED, 1.0)
    assert xr.get_exchange_order(c2).exchange_order_id is None and state(c2) is S.INITIALIZED
    # exchange ids are per account and symbol
    c3 = reserve(w, symbol="ETH/USDT")
    c4 = reserve(w, account="binance-other")
    w.run(xr.map_exchange_id, c3, "1", S.ACCEPTED, 1.0)
    w.run(xr.map_exchange_id, c4, "1", S.ACCEPTED, 1.0)
    # and the database itself refuses a second row with the same mapping
    with pytest.raises(pw.IntegrityError, match="(?i)unique"):  # SQLite: UNIQUE constraint; PostgreSQL: unique constraint
        w.run(lambda: ExchangeOrder.update(exchange_order_id="1").where(
            ExchangeOrder.client_order_id == c2).execute())


def test_sequences_are_per_order_and_survive_a_restart(tmp_path, w, db):
    ids = [reserve(w) for _ in range(3)] + [reserve(w, order_id=B)]
    assert [seq_of(c) for c in ids] == [1, 2, 3, 1]
    assert ids[0] == client_order_id(A, 1) and ids[3] == client_order_id(B, 1) and ids[3] != ids[0]
    w.stop()
    db.close()
    reopened = open_database(database_url(tmp_path / "t.db"))
    w2 = Writer(reopened).start()
    try:
        assert seq_of(reserve(w2)) == 4
    finally:
        w2.stop()


def test_fifty_concurrent_reserves_get_fifty_sequential_ids(w):
    results = {}

    def one(i):
        results[i] = reserve(w, price=str(100 + i), level=i % 3)

    gevent.joinall([gevent.spawn(one, i) for i in range(50)], raise_error=True)
    cids = list(results.values())
    assert len(set(cids)) == 50
    assert sorted(seq_of(c) for c in cids) == list(range(1, 51))
    assert OrderSequence.get_by_id(A).next_seq == 51
    assert len(xr.open_orders_of(A)) == 50
    assert w.batches < 50   # they were group-committed


def test_bad_reservations_write_nothing(w):
    with pytest.raises(TypeError, match="float"):
        w.run(xr.reserve_client_order, A, ACC, SYM, "buy", 100.5, D(1), 0, 1.0)
    for args in [(A, ACC, SYM, "BUY", D(1), D(1), 0, 1.0), (A, ACC, "BTCUSDT", "buy", D(1), D(1), 0, 1.0),
                 (A, ACC, SYM, "buy", D(0), D(1), 0, 1.0), (A, ACC, SYM, "buy", D(1), D(1), -1, 1.0),
                 (A, "", SYM, "buy", D(1), D(1), 0, 1.0)]:
        with pytest.raises(ValueError):
            w.run(xr.reserve_client_order, *args)
    assert OrderSequence.select().count() == 0 and ExchangeOrder.select().count() == 0
    assert seq_of(reserve(w)) == 1


# ---------------------------------------------------------------- transitions

def test_transitions_enforce_the_table(w):
    cid = reserve(w)
    assert w.run(xr.transition, cid, S.SUBMITTED, 2.0) is S.SUBMITTED
    assert w.run(xr.transition, cid, "accepted", 3.0) is S.ACCEPTED
    assert w.run(xr.transition, cid, S.ACCEPTED, 4.0, "again") is S.ACCEPTED        # idempotent
    assert xr.get_exchange_order(cid).last_error == "again"
    assert w.run(xr.transition, cid, S.PENDING_CANCEL, 5.0) is S.PENDING_CANCEL
    assert w.run(xr.transition, cid, S.CANCELED, 6.0) is S.CANCELED
    with pytest.raises(IllegalExTransition, match=f"{cid}: illegal transition canceled -> accepted"):
        w.run(xr.transition, cid, S.ACCEPTED, 7.0)
    row = xr.get_exchange_order(cid)
    assert row.state is S.CANCELED and row.updated_at == 6.0      # nothing written by the refused move
    with pytest.raises(xr.UnknownExchangeOrder):
        w.run(xr.transition, "mmflow-nope", S.ACCEPTED, 1.0)


def test_denied_orders_are_never_submitted(w):
    cid = reserve(w)
    w.run(xr.transition, cid, S.DENIED, 2.0, "below min notional")
    with pytest.raises(IllegalExTransition):
        w.run(xr.mark_submitted, cid, 3.0)
    assert xr.get_exchange_order(cid).last_error == "below min notional"


def test_an_ack_after_later_news_does_not_move_the_order_back(w):
    cid = reserve(w, amount="1")
    # the websocket's fill beats the REST answer
    assert w.run(xr.apply_fill, ACC, fill(cid, "t1", "0.4"), 2.0) is True
    assert state(cid) is S.PARTIALLY_FILLED and xr.get_exchange_order(cid).submitted_at == 2.0
    assert w.run(xr.mark_submitted, cid, 3.0) is False
    assert w.run(xr.map_exchange_id, cid, "77", S.ACCEPTED, 3.0) is S.PARTIALLY_FILLED
    row = xr.get_exchange_order(cid)
    assert (row.state, row.exchange_order_id) == (S.PARTIALLY_FILLED, "77")


def test_status_reports_and_not_found(w):
    c1, c2, c3, c4 = (reserve(w) for _ in range(4))
    assert w.run(xr.apply_status, c1, "open", D("0"), D("1"), 2.0, "11") is S.ACCEPTED
    assert xr.get_exchange_order(c1).exchange_order_id == "11"
    assert w.run(xr.apply_status, c1, "closed", D("1"), D("1"), 3.0) is S.FILLED
    w.run(xr.map_exchange_id, c2, "12", S.ACCEPTED, 2.0)
    w.run(xr.transition, c2, S.CANCELED, 3.0)
    assert w.run(xr.apply_status, c2, "open", D("0"), D("1"), 4.0) is S.CANCELED    # stale poll
    w.run(xr.mark_submitted, c3, 2.0)
    assert w.run(xr.resolve_not_found, c3, 3.0) is S.REJECTED
    assert xr.get_exchange_order(c3).last_error == "not found on the exchange"
    w.run(xr.transition, c4, S.PENDING_CANCEL, 2.0)
    assert w.run(xr.resolve_not_found, c4, 3.0) is None
    assert state(c4) is S.PENDING_CANCEL and "unresolved" in xr.get_exchange_order(c4).last_error


# ---------------------------------------------------------------- fills and the ledger

def ledger(order_id):
    return xr.ledger_balances(order_id)


def test_duplicate_trade_ids_are_applied_once(w):
    cid = reserve(w, side="buy", price="100.10", amount="1")
    w.run(xr.map_exchange_id, cid, "9", S.ACCEPTED, 1.0)
    t = fill(cid, "t1", "0.5", price="100.10", fee="0.0005", fee_currency="BTC")
    assert w.run(xr.apply_fill, ACC, t, 2.0) is True
    assert w.run(xr.apply_fill, ACC, t, 3.0) is False
    # a replay in one batch, and one found through the exchange id only
    same = [w.submit(xr.apply_fill, ACC, t, 4.0) for _ in range(5)]
    by_xid = w.submit(xr.apply_fill, ACC, fill(None, "t1", "0.5", price="100.10", fee="0.0005",
                                                fee_currency="BTC", xid="9"), 4.0)
    assert [r.get(timeout=5) for r in same] + [by_xid.get(timeout=5)] == [False] * 6
    row = xr.get_exchange_order(cid)
    assert (row.filled, row.state) == (D("0.5"), S.PARTIALLY_FILLED)
    assert ledger(A) == {"BTC": D("0.4995"), "USDT": D("-50.050")}
    assert LedgerEntry.select().count() == 3 and Fill.select().count() == 1
    legs = ("base", "quote", "fee")
    assert {e.ref for e in LedgerEntry.select()} == {f"fill:{ACC}:{SYM}:t1:buy:{leg}" for leg in legs}
    # a new trade reported five times at once (websocket + poll): one batch, applied once
    t2 = fill(cid, "t2", "0.25", price="100.10")
    results = [w.submit(xr.apply_fill, ACC, t2, 5.0) for _ in range(5)]
    assert [r.get(timeout=5) for r in results] == [True, False, False, False, False]
    assert xr.get_exchange_order(cid).filled == D("0.75")
    assert ledger(A) == {"BTC": D("0.7495"), "USDT": D("-75.075")}


def test_buy_and_sell_ledgers_are_exact(w):
    buy = reserve(w, side="buy", price="0.1", amount="3")
    sell = reserve(w, side="sell", price="0.3", amount="3")
    for i in range(3):
        w.run(xr.apply_fill, ACC, fill(buy, f"b{i}", "1", price="0.1", fee="0.001", fee_currency="BTC"), 2.0)
        w.run(xr.apply_fill, ACC, fill(sell, f"s{i}", "1", price="0.3", side="sell", fee="0.0003",
                                       fee_currency="USDT"), 2.0)
    assert ledger(A) == {"BTC": D("3") - D("0.003") - D("3"), "USDT": D("-0.3") + D("0.9") - D("0.0009")}
    assert ledger(A)["USDT"] == D("0.5991") and ledger(A)["BTC"] == D("-0.003")
    assert state(buy) is S.FILLED and state(sell) is S.FILLED
    assert [f.trade_id for f in xr.fills_of(A)] == ["b0", "b1", "b2", "s0", "s1", "s2"]   # same time: by key


def test_rebates_and_third_currency_fees(w):
    cid = reserve(w, side="sell", price="200", amount="1")
    w.run(xr.apply_fill, ACC, fill(cid, "t1", "0.5", price="200", side="sell", fee="-0.01", fee_currency="USDT"), 1.0)
    w.run(xr.apply_fill, ACC, fill(cid, "t2", "0.5", price="200", side="sell", fee="0.002", fee_currency="BNB"), 1.0)
    assert ledger(A) == {"BTC": D("-1.0"), "USDT": D("200.01"), "BNB": D("-0.002")}


def test_two_orders_on_one_account_never_touch_each_others_ledger(w):
    deposit(w, A, "USDT", "1000")
    deposit(w, B, "BTC", "2")
    a = reserve(w, order_id=A, side="buy", price="100", amount="1")
    b = reserve(w, order_id=B, side="sell", price="100", amount="1")
    w.run(xr.map_exchange_id, a, "1", S.ACCEPTED, 1.0)
    w.run(xr.map_exchange_id, b, "2", S.ACCEPTED, 1.0)
    # the same trade on both sides: our two orders crossed each other on one account
    w.run(xr.apply_fill, ACC, fill(a, "t1", "0.4", side="buy", fee="0.0004", fee_currency="BTC", xid="1"), 2.0)
    w.run(xr.apply_fill, ACC, fill(b, "t1", "0.4", side="sell", fee="0.04", fee_currency="USDT", xid="2"), 2.0)
    # and a fill of B that names only its exchange id
    w.run(xr.apply_fill, ACC, fill(None, "t2", "0.1", side="sell", xid="2"), 2.0)
    assert ledger(A) == {"USDT": D("960.0"), "BTC": D("0.3996")}
    assert ledger(B) == {"BTC": D("1.5"), "USDT": D("49.96")}
    assert [f.client_order_id for f in xr.fills_of(A)] == [a]
    assert sorted(f.trade_id for f in xr.fills_of(B)) == ["t1", "t2"]
    assert xr.get_exchange_order(a).filled == D("0.4") and xr.get_exchange_order(b).filled == D("0.5")
    # a trade of B's exchange order can never be booked to A: the side and the id give it away
    with pytest.raises(xr.FillMismatch, match="exchange id 2 is not the order's 1"):
        w.run(xr.apply_fill, ACC, fill(a, "t3", "0.1", side="buy", xid="2"), 3.0)
    with pytest.raises(xr.FillMismatch, match="side sell"):
        w.run(xr.apply_fill, ACC, fill(a, "t4", "0.1", side="sell"), 3.0)
    with pytest.raises(xr.FillMismatch, match="account"):
        w.run(xr.apply_fill, "binance-other", fill(a, "t5", "0.1"), 3.0)
    assert ledger(A) == {"USDT": D("960.0"), "BTC": D("0.3996")}


def test_refused_fills_write_nothing(w):
    cid = reserve(w, amount="1")
    with pytest.raises(xr.UnknownOrderFill):
        w.run(xr.apply_fill, ACC, fill(None, "t0", "0.1", xid="404"), 1.0)
    w.run(xr.apply_fill, ACC, fill(cid, "t1", "0.9"), 1.0)
    with pytest.raises(xr.FillMismatch, match="overfills"):
        w.run(xr.apply_fill, ACC, fill(cid, "t2", "0.2"), 1.0)
    with pytest.raises(xr.FillMismatch, match="symbol"):
        w.run(xr.apply_fill, ACC, fill(cid, "t3", "0.1", symbol="ETH/USDT"), 1.0)
    with pytest.raises(TypeError):
        w.run(xr.apply_fill, ACC, {"trade_id": "t4"}, 1.0)
    assert Fill.select().count() == 1 and LedgerEntry.select().count() == 2
    assert xr.get_exchange_order(cid).filled == D("0.9")
    # the refused trade id is still free: a correct report of it applies
    assert w.run(xr.apply_fill, ACC, fill(cid, "t2", "0.1"), 2.0) is True
    assert state(cid) is S.FILLED


def test_fill_after_cancel(w):
    cid = reserve(w, amount="1")
    w.run(xr.map_exchange_id, cid, "5", S.ACCEPTED, 1.0)
    w.run(xr.transition, cid, S.PENDING_CANCEL, 2.0)
    w.run(xr.apply_fill, ACC, fill(cid, "t1", "0.3"), 3.0)
    assert state(cid) is S.PENDING_CANCEL                 # the cancel is still pending
    w.run(xr.transition, cid, S.CANCELED, 4.0)
    w.run(xr.apply_fill, ACC, fill(cid, "t2", "0.3"), 5.0)  # a late fill of a canceled order: kept
    row = xr.get_exchange_order(cid)
    assert (row.state, row.filled) == (S.CANCELED, D("0.6"))
    w.run(xr.apply_fill, ACC, fill(cid, "t3", "0.4"), 6.0)  # ... and one that completes it
    assert state(cid) is S.FILLED and ledger(A)["BTC"] == D("1.0")


def test_a_fill_for_a_rejected_order_counts_and_raises_an_alert(w):
    cid = reserve(w)
    w.run(xr.mark_submitted, cid, 1.0)
    w.run(xr.resolve_not_found, cid, 2.0)
    assert w.run(xr.apply_fill, ACC, fill(cid, "t1", "0.5"), 3.0) is True
    row = xr.get_exchange_order(cid)
    assert (row.state, row.filled) == (S.REJECTED, D("0.5")) and "held rejected" in row.last_error
    assert ledger(A)["BTC"] == D("0.5")
    assert Alert.get(Alert.kind == "exchange_fill_anomaly").subject == f"{ACC}:{SYM}:t1:buy"


# ---------------------------------------------------------------- locked and free

def test_locked_and_free(w):
    deposit(w, A, "BTC", "2")
    deposit(w, A, "USDT", "1000")
    sell = reserve(w, side="sell", price="110", amount="0.5")
    buy = reserve(w, side="buy", price="90", amount="0.3")
    assert xr.locked_by_open_orders(A) == (D("0.5"), D("27.0"))       # INITIALIZED already locks
    assert xr.ledger_free(A, "BTC", "USDT") == (D("1.5"), D("973.0"))
    w.run(xr.map_exchange_id, sell, "1", S.ACCEPTED, 1.0)
    w.run(xr.map_exchange_id, buy, "2", S.ACCEPTED, 1.0)
    w.run(xr.apply_fill, ACC, fill(sell, "t1", "0.2", price="110", side="sell", fee="0.022", fee_currency="USDT"),
          2.0)
    assert xr.locked_by_open_orders(A) == (D("0.3"), D("27.0"))
    assert xr.ledger_free(A, "BTC", "USDT") == (D("1.5"), D("1000") + D("22.0") - D("0.022") - D("27.0"))
    w.run(xr.transition, buy, S.PENDING_CANCEL, 3.0)
    assert xr.locked_by_open_orders(A) == (D("0.3"), D("27.0"))      # still live until confirmed
    w.run(xr.transition, buy, S.CANCELED, 4.0)
    assert xr.locked_by_open_orders(A) == (D("0.3"), D(0))
    # the exchange says "filled" before the fills arrive: the remainder stays locked until they do
    w.run(xr.apply_status, sell, "closed", D("0.5"), D("0.5"), 5.0)
    assert state(sell) is S.FILLED
    assert xr.locked_by_open_orders(A) == (D("0.3"), D(0))
    w.run(xr.apply_fill, ACC, fill(sell, "t2", "0.3", price="110", side="sell"), 6.0)
    assert xr.locked_by_open_orders(A) == (D(0), D(0))
    assert xr.ledger_free(A, "BTC", "USDT") == (D("1.5"), D("1054.978"))
    assert xr.locked_by_open_orders(B) == (D(0), D(0)) and xr.ledger_free(B, "BTC", "USDT") == (D(0), D(0))


def test_locked_needs_a_symbol_when_an_order_trades_several(w):
    reserve(w, side="sell", amount="1")
    reserve(w, side="buy", symbol="ETH/USDT", price="10", amount="2")
    with pytest.raises(ValueError, match="name the symbol"):
        xr.locked_by_open_orders(A)
    assert xr.locked_by_open_orders(A, SYM) == (D(1), D(0))
    assert xr.locked_by_open_orders(A, "ETH/USDT") == (D(0), D(20))
    assert xr.locked_by_currency(A) == {"BTC": D(1), "USDT": D(20)}


# ---------------------------------------------------------------- reads and reconciliation

def test_reads(w):
    c1 = reserve(w, now=1.0)
    c2 = reserve(w, now=2.0)
    c3 = reserve(w, order_id=B, now=3.0)
    w.run(xr.transition, c2, S.DENIED, 2.5)
    assert [o.client_order_id for o in xr.open_orders_of(A)] == [c1]
    assert [o.client_order_id for o in xr.orders_in_states([S.DENIED, "initialized"])] == [c1, c2, c3]
    assert [o.client_order_id for o in xr.orders_in_states(OPEN_STATES, account=ACC, order_id=B)] == [c3]
    assert xr.orders_in_states([]) == [] and xr.orders_in_states(OPEN_STATES, account="x") == []
    w.run(xr.apply_fill, ACC, fill(c1, "t2", "0.1", ts=2000), 4.0)
    w.run(xr.apply_fill, ACC, fill(c1, "t1", "0.1", ts=1000), 4.0)
    assert [(f.trade_id, f.at, f.price) for f in xr.fills_of(A)] == [("t1", 1.0, D(100)), ("t2", 2.0, D(100))]


def test_startup_reconciliation_from_the_db(w):
    adopted = reserve(w)
    w.run(xr.map_exchange_id, adopted, "1", S.ACCEPTED, 1.0)
    in_flight = reserve(w)                   # crashed after sending, before the answer
    w.run(xr.mark_submitted, in_flight, 1.0)
    vanished = reserve(w)
    w.run(xr.map_exchange_id, vanished, "3", S.ACCEPTED, 1.0)
    reserve(w, account="other-account")
    exchange = [ExOpenOrder(adopted, "1", SYM, "buy", D(100), D(1)),
                ExOpenOrder(in_flight, "2", SYM, "buy", D(100), D(1), D("0.5")),
                ExOpenOrder(client_order_id("lost-order", 1), "4", SYM, "sell", D(100), D(1)),
                ExOpenOrder("manual", "5", SYM, "sell", D(100), D(1))]
    plan = reconcile(xr.orders_in_states(OPEN_STATES, account=ACC), exchange)
    assert [(a.db.client_order_id, a.target, a.fills_missing) for a in plan.adopt] == [
        (adopted, S.ACCEPTED, D(0)), (in_flight, S.PARTIALLY_FILLED, D("0.5"))]
    assert [o.client_order_id for o in plan.lookup] == [vanished]
    assert [o.exchange_order_id for o in plan.cancel_unknown] == ["4"]
    assert [o.exchange_order_id for o in plan.foreign] == ["5"]
    for a in plan.adopt:
        if a.needs_mapping:
            # the state comes from the fills, which the caller fetches for fills_missing
            w.run(xr.map_exchange_id, a.db.client_order_id, a.exchange.exchange_order_id, S.ACCEPTED, 2.0)
    w.run(xr.apply_fill, ACC, fill(in_flight, "t9", "0.5", xid="2"), 2.0)
    assert state(in_flight) is S.PARTIALLY_FILLED
    w.run(xr.apply_status, vanished, "canceled", D(0), D(1), 2.0)
    assert state(vanished) is S.CANCELED


def test_hanging_flag_is_durable(w):
    """A hanging order stays hanging across a restart: the flag lives in the orders DB, not in memory."""
    bid = reserve(w, side="buy")
    ask = reserve(w, side="sell", price="110")
    w.run(xr.mark_hanging, [ask], 2.0)
    flags = {o.client_order_id: o.hanging for o in xr.open_orders_of(A)}
    assert flags == {bid: False, ask: True}
