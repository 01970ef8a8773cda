"""A page of snapshots at once: the pure plan (domain/ingest.py, domain/tally.py) and the unit that writes it
(storage/ingest.py) — stored, routed and applied in one transaction, with statements that do not grow
with the page."""
from __future__ import annotations

import random
import uuid
from decimal import Decimal as D

import pytest

from domain.ingest import IngestRules, orders_named, plan_payments, route_page
from domain.memo import ACTION_CREATE, ACTION_DEPOSIT, ACTION_EXIT, encode_market_making, memo_text_to_hex
from domain.payment import FeeRequirements, PairRules
from domain.order_view import OrderView
from domain.routing import RouteKind, SnapshotFacts, parse_snapshot
from domain.states import OrderState
from domain.tally import OrderApplication, apply_plain_payments, apply_to_order, decide_for
from domain.timefmt import format_ns
from storage import repo
from storage.db import open_database
from storage.ingest import KnownViews, SettledOrders, ingest_page, load_views
from storage.models import database_proxy
from storage.writer import Writer
from storage.sql import run
from tests.databases import database_url

BTC = "c6d0c728-2624-429b-8e0d-d9d19b6592fa"
USDT = "4d8c508b-91c5-375b-92b0-ee702ed2dac5"
PAIR_ID = "0776b00f-95c0-46f9-85e4-7b8e7ca51e94"
PAIR = PairRules(pair_id=PAIR_ID, symbol="BTC/USDT", exchange="binance", base_asset_id=BTC,
                 quote_asset_id=USDT, base_symbol="BTC", quote_symbol="USDT")
FEES = FeeRequirements(BTC, D("0.0001"), USDT, D("1"), D("0.1"))
ALICE, BOB = "e9e5b807-fa8b-455a-8dfa-b189d28310ff", "6a87e67f-02fb-47cf-b31f-32a13dd5b3d9"


def order_id(i: int) -> str:
    return f"{i:08x}-0000-4000-8000-{i:012x}"


def snapshot(ns: int, order: str, *, payer=ALICE, amount="0.01", action=None):
    memo = (encode_market_making(PAIR_ID, order) if action is None
            else encode_market_making(PAIR_ID, order, action=action))
    raw = {"snapshot_id": str(uuid.uuid4()), "created_at": format_ns(ns), "asset_id": BTC, "amount": amount,
           "opponent_id": payer, "memo": memo_text_to_hex(memo)}
    return parse_snapshot(raw), raw


def query(sql: str, params=()) -> list[tuple]:
    return [tuple(r) for r in run(sql, params).fetchall()]


def rules(fees=FEES, now=1000.0) -> IngestRules:
    return IngestRules(pair_lookup={PAIR_ID: PAIR}.get, operator_ids=frozenset(), fees_by_pair={PAIR_ID: fees},
                       timeout=600.0, now=now)


# ---------------------------------------------------------------- the pure plan

def plan(items, views=None, waiting=(), fees=FEES):
    routed = route_page([f for f, _ in items], rules(fees))
    return plan_payments(routed, views or {}, waiting, rules(fees))


def test_first_payer_owns_the_order_and_another_payer_is_refunded():
    o = order_id(1)
    later, first = snapshot(2_000, o, payer=BOB), snapshot(1_000, o)  # listed out of order: applied by time
    result = plan([later, first])
    (app,) = result.applications
    assert app.created and app.view.user_id == ALICE and app.view.tallies == {BTC: D("0.01")}
    assert [(o.snapshot_id, o.result) for o in app.outcomes] == [(first[0].snapshot_id, "accepted"),
                                                                  (later[0].snapshot_id, "refunded")]
    assert [r.code for r in app.refunds] == ["not_owner"] and app.counts == {BTC: 1}
    assert [t.to_state for t in app.transitions] == [OrderState.PAYMENT_PENDING.value]


def test_an_exit_for_an_unknown_order_is_refunded_and_creates_nothing():
    result = plan([snapshot(1_000, order_id(2), action=ACTION_EXIT)])
    (app,) = result.applications
    assert app.view is None and not app.created and [r.code for r in app.refunds] == ["exit_unknown_order"]


def test_payments_go_to_the_actor_when_fees_are_unknown_or_earlier_payments_wait():
    a, b = order_id(3), order_id(4)
    no_fees = plan([snapshot(1_000, a)], fees=None)
    assert not no_fees.applications and [d[0] for d in no_fees.deliveries] == [a]
    waiting = plan([snapshot(1_000, b)], waiting={b})
    assert not waiting.applications and [d[0] for d in waiting.deliveries] == [b]


def test_the_plan_never_changes_the_views_it_is_given():
    o = order_id(5)
    first = plan([snapshot(1_000, o)]).applications[0].view
    before = (first.tallies.copy(), first.user_id)
    again = plan([snapshot(2_000, o)], views={o: first}).applications[0]
    assert again.view.tallies == {BTC: D("0.02")} and (first.tallies, first.user_id) == before


def _application_facts(app):
    """Everything an application says, comparable with ==."""
    view = None if app.view is None else {**app.view.__dict__, "tallies": dict(app.view.tallies)}
    return (app.order_id, app.pair_id, view, app.created, app.changed, app.row_changed,
            [(o.snapshot_id, o.result, o.reason, o.refund_request_id) for o in app.outcomes],
            [(r.facts.snapshot_id, r.code, r.reason, r.order_id) for r in app.refunds],
            [(t.from_state, t.to_state, t.reason) for t in app.transitions], dict(app.counts))


def test_the_usual_payments_shortcut_decides_what_the_rule_decides_on_random_pages():
    """apply_plain_payments answers only when every payment is usual, and then exactly as apply_to_order."""
    rng = random.Random(14)
    other_asset = "43d61dcd-e413-450d-80b8-101d5e903357"
    payers = [ALICE, BOB, ""]
    states = [OrderState.PAYMENT_PENDING] * 4 + [OrderState.RUNNING, OrderState.ATTENTION, OrderState.REFUNDED]
    answered = 0
    for case in range(3000):
        o = order_id(100 + case)
        view = None
        if rng.random() < 0.7:
            view = OrderView(order_id=o, pair_id=PAIR_ID, state=rng.choice(states), state_reason="r",
                             user_id=rng.choice([None, None, ALICE, BOB]), fees=FEES, first_payment_at=None,
                             deadline_at=1600.0, created_at=900.0,
                             tallies=rng.choice([{}, {BTC: D("0.5")}, {USDT: D("3"), BTC: D("0.1")}]),
                             exit_requested_at=rng.choice([None, None, 950.0]))
        snapshots, actions = [], {}
        for k in range(rng.choice([1, 1, 1, 2, 3, 5])):
            sid = (snapshots[-1].snapshot_id if snapshots and rng.random() < 0.05 else str(uuid.uuid4()))
            # mostly the usual payment (the first payer, a leg of the pair, create), each other case now and then
            usual = rng.random() < 0.8
            facts = SnapshotFacts(sid, format_ns(1_000 + k), 1_000 + k,
                                  rng.choice([BTC, USDT]) if usual else rng.choice([BTC, USDT, other_asset]),
                                  D(rng.choice(["0.001", "0.25", "7"])),
                                  ALICE if usual else rng.choice(payers), "00",
                                  is_deposit=not usual and rng.random() < 0.2)
            snapshots.append(facts)
            actions[sid] = (ACTION_CREATE if usual else
                            rng.choice([ACTION_CREATE, ACTION_DEPOSIT, ACTION_EXIT, None]))
        fees = FEES if rng.random() < 0.9 else None
        before = None if view is None else _application_facts(OrderApplication(o, PAIR_ID, view))
        shortcut = apply_plain_payments(o, PAIR_ID, view, fees, snapshots, PAIR, actions, now=1000.0,
                                        timeout=600.0)
        if shortcut is None:
            continue
        answered += 1
        rule = apply_to_order(o, PAIR_ID, view, fees, snapshots,
                              lambda v, f: decide_for(v, f, PAIR, actions[f.snapshot_id]), now=1000.0,
                              timeout=600.0)
        assert _application_facts(shortcut) == _application_facts(rule), case
        assert shortcut.view is not view
        if view is not None:  # the view it was given is never changed
            assert _application_facts(OrderApplication(o, PAIR_ID, view)) == before
    assert answered > 1000  # the usual case is the common one here too


# ---------------------------------------------------------------- the unit, on a real database

@pytest.fixture
def writer(tmp_path):
    database = open_database(database_url(tmp_path / "test.db"))
    w = Writer(database, batch_max=50).start()
    yield w
    w.stop()
    database.close()
    database_proxy.initialize(None)


def test_a_page_is_stored_routed_and_applied_once(writer):
    orders = [order_id(10 + i) for i in range(3)]
    page = [snapshot(1_000 + i, orders[i % 3]) for i in range(9)]
    done = writer.run(ingest_page, page, "c", page[-1][0].created_at, 1_008, rules())
    assert len(done.fresh) == 9 and len(done.applications) == 3 and not done.deliveries
    assert {(o, bool(a), p) for o, a, p in query("SELECT outcome, applied, purpose FROM snapshot")} == {
        ("order", True, "payment")}
    assert query("SELECT order_id, amount, payments FROM payment_tally ORDER BY order_id") == [
        (o, "0.03", 3) for o in orders]
    views = writer.run(load_views, orders)
    assert all(v.user_id == ALICE and v.state is OrderState.PAYMENT_PENDING for v in views.values())
    assert repo.read_cursor("c").offset_ns == 1_008

    replay = writer.run(ingest_page, page, "c", page[-1][0].created_at, 1_008, rules(now=2000.0))
    assert not replay.fresh and not replay.applications
    assert query("SELECT SUM(payments) FROM payment_tally") == [(9,)]

    more = [snapshot(2_000, orders[0]), snapshot(2_001, orders[0], payer=BOB)]
    again = writer.run(ingest_page, more, "c", more[-1][0].created_at, 2_001, rules(now=3000.0))
    (app,) = again.applications
    assert [o.result for o in app.outcomes] == ["accepted", "refunded"] and again.refunds == app.refund_ids
    assert query("SELECT amount, payments FROM payment_tally WHERE order_id = ?", (orders[0],)) == [("0.04", 4)]
    assert query("SELECT kind, state, amount, recipient_id FROM money_movement") == [
        ("refund", "queued", "0.01", BOB)]
    assert query("SELECT outcome FROM snapshot WHERE snapshot_id = ?", (more[1][0].snapshot_id,)) == [("refund",)]


def test_a_replayed_snapshot_older_than_the_newest_stored_is_still_found(writer):
    """The dedupe looks up only what is not newer than the newest stored snapshot: a page that repeats old
    snapshots among newer ones stores (and applies) only the new ones."""
    order = order_id(50)
    first = [snapshot(5_000 + i, order) for i in range(3)]
    writer.run(ingest_page, first, "c", first[-1][0].created_at, 5_002, rules())
    later = [snapshot(9_000, order)]
    writer.run(ingest_page, later, "c", later[-1][0].created_at, 9_000, rules(now=2000.0))
    mixed = [first[1], snapshot(7_000, order), later[0], snapshot(9_500, order)]  # stored, older new, stored, newer
    done = writer.run(ingest_page, mixed, "c", mixed[-1][0].created_at, 9_500, rules(now=3000.0))
    assert sorted(f.created_ns for f in done.fresh) == [7_000, 9_500]
    assert query("SELECT amount, payments FROM payment_tally WHERE order_id = ?", (order,)) == [("0.06", 6)]
    assert query("SELECT COUNT(*) FROM snapshot") == [(6,)]


def test_the_statements_of_a_page_do_not_grow_with_it(writer):
    counts = []
    for size, base in ((20, 100), (200, 1000)):
        page = [snapshot(base * 1000 + i, order_id(base + i)) for i in range(size)]
        routed = route_page([f for f, _ in page], rules())
        assert len(orders_named(routed)) == size
        db = database_proxy.obj
        seen = []
        original = db.execute_sql

        def counting(sql, params=None, *args, **kwargs):
            seen.append(sql)
            return original(sql, params, *args, **kwargs)
        db.execute_sql = counting
        try:
            writer.run(ingest_page, page, "c", page[-1][0].created_at, base * 1000 + size, rules())
        finally:
            del db.execute_sql
        counts.append(len(seen))
        assert query("SELECT COUNT(*) FROM snapshot WHERE outcome = ? AND applied = ?",
                     (RouteKind.ORDER.value, True))[0][0] >= size
    assert counts[1] <= counts[0], counts  # the first page also creates the cursor row


# ---------------------------------------------------------------- the poller's memory of the orders' views

def counting_statements(db, seen: list[str]):
    original = db.execute_sql

    def counting(sql, params=None, *args, **kwargs):
        seen.append(sql)
        return original(sql, params, *args, **kwargs)
    return counting


def ingest_counting(writer, page, ns, known, now):
    """Run a page with the poller's memories; the statements that read orders' rows, and the unit's result."""
    db, seen = database_proxy.obj, []
    db.execute_sql = counting_statements(db, seen)
    try:
        done = writer.run(ingest_page, page, "c", page[-1][0].created_at, ns, rules(now=now), SettledOrders(), known)
    finally:
        del db.execute_sql
    return done, [sql for sql in seen if "FROM orders" in sql]


def test_the_views_a_poller_wrote_are_not_read_again_on_its_next_page(writer):
    orders = [order_id(300 + i) for i in range(3)]
    known = KnownViews()
    first, reads = ingest_counting(writer, [snapshot(10_000 + i, o) for i, o in enumerate(orders)], 10_002, known,
                                   1000.0)
    assert len(reads) == 1  # new orders: looked for once
    told = {a.order_id: a.view for a in first.applications}
    second, reads = ingest_counting(writer, [snapshot(20_000 + i, o) for i, o in enumerate(orders)], 20_002, known,
                                    2000.0)
    assert reads == []
    assert {a.order_id: a.view.tallies for a in second.applications} == {o: {BTC: D("0.02")} for o in orders}
    assert all(v.tallies == {BTC: D("0.01")} for v in told.values())  # the views told after page 1 never change
    assert writer.run(load_views, orders) == {a.order_id: a.view for a in second.applications}


def test_another_unit_in_between_makes_the_poller_read_the_orders_again(writer):
    """An order's row changed by another path (here an operator's attention; in the service an actor's unit, a
    command) is never planned on from memory: any unit between two of the poller's forgets every view."""
    paused, other = order_id(400), order_id(401)
    known = KnownViews()
    ingest_counting(writer, [snapshot(30_000, paused), snapshot(30_001, other)], 30_001, known, 1000.0)
    writer.run(repo.set_order_state, paused, OrderState.ATTENTION, "an operator looks at it", 1500.0)
    done, reads = ingest_counting(writer, [snapshot(40_000, paused), snapshot(40_001, other)], 40_001, known, 2000.0)
    assert len(reads) == 1
    views = {a.order_id: a.view for a in done.applications}
    assert views[paused].state is OrderState.ATTENTION and views[paused].state_reason == "an operator looks at it"
    assert views[other].state is OrderState.PAYMENT_PENDING and views[other].tallies == {BTC: D("0.02")}
    # after a unit of its own that failed (its batch rolled back), the poller forgets what that unit remembered
    known.forget()
    _, reads = ingest_counting(writer, [snapshot(50_000, other)], 50_000, known, 3000.0)
    assert len(reads) == 1


def test_a_final_order_is_not_kept_in_memory(writer):
    done_order = order_id(500)
    known = KnownViews()
    ingest_counting(writer, [snapshot(60_000, done_order)], 60_000, known, 1000.0)
    writer.run(repo.set_order_state, done_order, OrderState.REFUNDING, "refused", 1100.0)
    writer.run(repo.set_order_state, done_order, OrderState.REFUNDED, "refunds confirmed", 1200.0)
    late, _ = ingest_counting(writer, [snapshot(70_000, done_order)], 70_000, known, 2000.0)
    assert [o.result for a in late.applications for o in a.outcomes] == ["refunded"]
    _, reads = ingest_counting(writer, [snapshot(80_000, done_order)], 80_000, known, 3000.0)
    assert len(reads) == 1  # read again: cold storage may move a final order outside the writer


def test_a_number_where_mixin_sends_a_text_is_stored_as_its_text(writer):
    """The Mixin client decodes a JSON number as an exact Decimal: the page is stored (msgpack has no Decimal) with
    the number's own text in the raw snapshot, and the payment is applied like any other."""
    import msgpack
    order = order_id(70)
    facts, raw = snapshot(7_000, order)
    raw = {**raw, "amount": D("0.0100"), "fee": D("1E-8"), "confirmations": 12}
    done = writer.run(ingest_page, [(facts, raw)], "c", facts.created_at, 7_000, rules())
    assert len(done.fresh) == 1
    (blob,) = query("SELECT raw FROM snapshot")[0]
    stored = msgpack.unpackb(bytes(blob), raw=False)
    assert stored["amount"] == "0.0100" and stored["fee"] == "1E-8" and stored["confirmations"] == 12
    assert query("SELECT amount, payments FROM payment_tally WHERE order_id = ?", (order,)) == [("0.01", 1)]


def test_route_page_routes_each_snapshot_as_route_snapshot_does():
    """route_page decides the usual payment inline (its own copy of route_snapshot's first rules): on generated
    pages — refunds, operators' top-ups, bad and unknown memos, a disabled pair, deposits from outside Mixin,
    exits — every snapshot gets the very route route_snapshot gives it, in the page's order."""
    from domain.routing import route_snapshot
    disabled_id = "5b1f2a44-64b6-4c3c-9a55-8a1c5c8b2f11"
    disabled = PAIR.model_copy(update={"pair_id": disabled_id, "enabled": False})
    lookup = {PAIR_ID: PAIR, disabled_id: disabled}.get
    operators = frozenset({BOB})
    page_rules = IngestRules(pair_lookup=lookup, operator_ids=operators, fees_by_pair={PAIR_ID: FEES},
                             timeout=600.0, now=1000.0)
    memos = [encode_market_making(PAIR_ID, order_id(1)), encode_market_making(PAIR_ID, order_id(2), action=ACTION_EXIT),
             encode_market_making(disabled_id, order_id(3)), encode_market_making(str(uuid.uuid4()), order_id(4)),
             "not a memo", ""]
    rng = random.Random(5)
    for _ in range(40):
        page = []
        for i in range(rng.randint(1, 30)):
            raw = {"snapshot_id": str(uuid.uuid4()), "created_at": format_ns(10_000 + i), "asset_id": BTC,
                   "amount": rng.choice(["0.01", "-0.01", "0", "2"]), "opponent_id": rng.choice([ALICE, BOB, ""]),
                   "memo": memo_text_to_hex(rng.choice(memos))}
            if raw["opponent_id"] == "":
                raw["deposit"] = {"transaction_hash": "0xabc", "sender": "0xdef"}
            page.append(parse_snapshot(raw))
        expected = [(f, route_snapshot(f, pair_lookup=lookup, operator_ids=operators)) for f in page]
        assert route_page(page, page_rules) == expected
