"""The update stream's round over many resting orders views only the orders it acts on
(integrations/exchange/updates.py): it still sees every fill and every status change, and writes nothing for a
resting order the exchange lists as the database holds it."""
from __future__ import annotations

import itertools
import time
from decimal import Decimal as D

from domain.exchange_orders import OPEN_STATES, ExOrderState, apply_exchange_status
from domain.exchange_orders import ExOrderState as S
from integrations.exchange import updates
from storage import exchange_repo as xr
from tests.test_exchange_updates import ACC, MID, SYM, acct, db_dump, fx, place, reserve, rounds, row, w  # noqa: F401


def test_listed_as_held_only_where_the_status_machinery_moves_nothing():
    """Sound (it skips only what status_call would not write), and it holds for every resting order: accepted
    with nothing filled, partially filled with part of it."""
    quantities = [D("0"), D("0.001"), D("0.004"), D("0.01"), D("0.02")]
    for state, filled, amount in itertools.product(ExOrderState, quantities, quantities):
        try:
            moves_nothing = apply_exchange_status(state, "open", filled, amount) is state
        except ValueError:
            moves_nothing = False      # refused: the machinery reports it, the quiet check must not skip it
        if updates._listed_as_held(state, filled, amount):
            assert moves_nothing, (state, filled, amount)
    assert updates._listed_as_held(S.ACCEPTED, D("0"), D("0.01"))
    assert updates._listed_as_held(S.PARTIALLY_FILLED, D("0.004"), D("0.01"))
    assert not updates._listed_as_held(S.ACCEPTED, D("0.004"), D("0.01"))      # a fill: PARTIALLY_FILLED next
    assert not updates._listed_as_held(S.PARTIALLY_FILLED, D("0.01"), D("0.01"))  # complete: FILLED next


def test_symbols_and_in_flight_in_one_read_agree_with_the_views(fx, acct, w):
    now = time.time()
    assert updates.active_symbols(ACC) == set() and not updates.account_in_flight(ACC, now)
    place(w, acct, "order-old", "buy", "59000", "0.01", now - 600)            # accepted long ago: not in flight
    assert updates.active_symbols(ACC) == {SYM}
    views = xr.orders_in_states(OPEN_STATES, account=ACC)
    for at in (now, now + 3, now + 120):
        assert updates.account_in_flight(ACC, at) == any(updates.is_in_flight(o, at) for o in views)
    reserve(w, "order-new", "sell", "61000", "0.01", now - 2)                 # submitted 2 s ago: in flight
    views = xr.orders_in_states(OPEN_STATES, account=ACC)
    for at in (now, now + 30, now + 120):
        expected = any(updates.is_in_flight(o, at) for o in views)
        assert updates.account_in_flight(ACC, at) == expected, at
    assert updates.account_in_flight(ACC, now) and not updates.account_in_flight(ACC, now + 120)


def test_a_round_over_resting_orders_sees_each_fill_and_status_change_and_writes_nothing_else(fx, acct, w):
    t0 = time.time() - 60
    resting = [place(w, acct, f"order-{i}", "buy", str(58000 + i), "0.01", t0)[0] for i in range(20)]
    filled_cid, _ = place(w, acct, "order-fill", "buy", "59500", "0.01", t0)
    gone_cid, gone = place(w, acct, "order-gone", "sell", "61500", "0.01", t0)
    unacked_cid, unacked = place(w, acct, "order-unacked", "sell", "61600", "0.01", t0, ack=False)
    rounds(acct, w, 1)                     # maps the unacknowledged one, reads the trade window once
    assert row(unacked_cid).exchange_order_id == unacked.id and row(unacked_cid).state is S.ACCEPTED
    before = db_dump()
    [quiet] = rounds(acct, w, 1)
    assert quiet.events == {} and quiet.changes == 0 and db_dump() == before   # nothing moved: nothing written

    fx.place_taker(SYM, "sell", "0.004", price="59500")                     # part of order-fill
    fx.engine.cancel_order(acct.cfg.api_key, MID, now_ms=fx.now_ms(), order_id=int(gone.id))  # venue-side cancel
    r1, r2 = rounds(acct, w, 2, not_found_grace=0.0, settle=0.0, lookup_every=0.0)
    events = {**r1.events, **{k: v for k, v in r2.events.items() if k not in r1.events}}
    assert set(events) == {"order-fill", "order-gone"}
    assert [f.amount for f in events["order-fill"].fills] == [D("0.004")]
    assert (row(filled_cid).state, row(filled_cid).filled) == (S.PARTIALLY_FILLED, D("0.004"))
    assert row(gone_cid).state is S.CANCELED
    assert all(row(cid).state is S.ACCEPTED for cid in resting)


def test_quiet_rounds_skip_an_unchanged_listing_and_still_see_fills_cancels_and_new_rows(fx, acct, w):
    """A round whose venue reply (byte for byte) and DB open rows (their fingerprint) are what a quiet pass saw
    neither decodes the reply nor reads the rows; a fill, a venue-side cancel or a new row in the DB ends that."""
    t0 = time.time() - 60
    resting = [place(w, acct, f"order-{i}", "buy", str(58000 + i), "0.01", t0)[0] for i in range(10)]
    filled_cid, _ = place(w, acct, "order-fill", "buy", "59500", "0.01", t0)
    gone_cid, gone = place(w, acct, "order-gone", "sell", "61500", "0.01", t0)
    fast = dict(not_found_grace=0.0, settle=0.0, lookup_every=0.0)
    before = db_dump()
    r1, r2, r3 = rounds(acct, w, 3, **fast)
    assert SYM not in r1.skipped and SYM in r1.quiet                 # the first pass in full, found nothing
    assert r2.skipped == r3.skipped == (SYM,) and r3.events == {}     # then skipped: same reply, same rows
    assert db_dump() == before

    fx.place_taker(SYM, "sell", "0.004", price="59500")               # part of order-fill
    fx.engine.cancel_order(acct.cfg.api_key, MID, now_ms=fx.now_ms(), order_id=int(gone.id))  # venue-side cancel
    r4, r5 = rounds(acct, w, 2, quiet=r3.quiet, since=r3.next_since_ms, **fast)
    assert SYM not in r4.skipped                                      # the reply changed: read in full
    events = {**r4.events, **{k: v for k, v in r5.events.items() if k not in r4.events}}
    assert set(events) == {"order-fill", "order-gone"}
    assert [f.amount for f in events["order-fill"].fills] == [D("0.004")]
    assert (row(filled_cid).state, row(filled_cid).filled) == (S.PARTIALLY_FILLED, D("0.004"))
    assert row(gone_cid).state is S.CANCELED
    r6, r7 = rounds(acct, w, 2, quiet=r5.quiet, since=r5.next_since_ms, **fast)
    assert r7.skipped == (SYM,)                                       # quiet again (a partial fill held as listed)

    # a row the venue does not list (reserved, its create never sent): the rows' fingerprint moved, so the pass
    # runs and the order is looked up (and resolved once the exchange says it does not know it)
    lost = reserve(w, "order-lost", "buy", "57000", "0.01", time.time() - 120)
    [r8] = rounds(acct, w, 1, quiet=r7.quiet, since=r7.next_since_ms, **fast)
    assert SYM not in r8.skipped and r8.lookups == 1 and SYM not in r8.quiet
    assert row(lost).state not in OPEN_STATES
    assert all(row(cid).state is S.ACCEPTED for cid in resting)


def test_a_quiet_pass_is_skipped_for_at_most_quiet_max_age(fx, acct, w):
    place(w, acct, "order-a", "buy", "58000", "0.01", time.time() - 60)
    r1, r2 = rounds(acct, w, 2)
    assert r2.skipped == (SYM,)
    digest, fingerprint, at = r2.quiet[SYM]
    old = {SYM: (digest, fingerprint, at - updates.QUIET_MAX_AGE)}
    [r3] = rounds(acct, w, 1, quiet=old, since=r2.next_since_ms)
    assert r3.skipped == () and r3.quiet[SYM][2] > at                 # read in full again, quiet from now on


def test_a_symbol_with_nothing_to_reconcile_starts_the_stream_quiet(fx, acct, w):
    t0 = time.time() - 60
    for i in range(3):
        place(w, acct, f"order-{i}", "buy", str(58000 + i), "0.01", t0)
    report = updates.reconcile_account(acct, w, symbols=[SYM], now=time.time())
    assert len(report.adopted) == 3 and set(report.quiet) == {SYM}
    [r1] = rounds(acct, w, 1, quiet=report.quiet)
    assert r1.skipped == (SYM,) and r1.events == {}
    fx.place_taker(SYM, "sell", "0.004", price="58002")                   # a fill after the start: seen
    [r2] = rounds(acct, w, 1, quiet=r1.quiet, since=r1.next_since_ms)
    assert r2.skipped == () and [f.amount for e in r2.events.values() for f in e.fills] == [D("0.004")]
    fx.place_taker(SYM, "sell", "0.002", price="58001")                   # a fill the DB lacks at a start: not quiet
    again = updates.reconcile_account(acct, w, symbols=[SYM], now=time.time())
    assert again.quiet == {} and again.fills_applied == 1
