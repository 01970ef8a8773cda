"""Exchange orders, pure: the state table, client ids, status mapping, fills, reconciliation."""
from __future__ import annotations

import re
from decimal import Decimal as D
from itertools import product

import pytest

from domain import exchange_orders as eo
from domain.exchange_orders import (FINAL_STATES, OPEN_STATES, TRANSITIONS, DbOrder, ExOpenOrder,
                                    IllegalExTransition, TradeFill, after_fill, apply_exchange_status, can_transition,
                                    cancel_rejected_target, check, client_order_id, fill_key, is_ours, merge_report,
                                    owner_prefix, path, reconcile, resolve_not_found, seq_of, split_symbol)
from domain.exchange_orders import ExOrderState as S

# Written out independently of the module: NautilusTrader's Python table (peers §3.2) restricted to our states.
NAUTILUS = {
    S.INITIALIZED: {S.DENIED, S.SUBMITTED, S.REJECTED, S.ACCEPTED, S.CANCELED, S.EXPIRED},
    S.SUBMITTED: {S.PENDING_CANCEL, S.REJECTED, S.CANCELED, S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED},
    S.ACCEPTED: {S.REJECTED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED, S.PARTIALLY_FILLED, S.FILLED},
    S.CANCELED: {S.PARTIALLY_FILLED, S.FILLED},
    S.PENDING_CANCEL: {S.REJECTED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED, S.ACCEPTED, S.PARTIALLY_FILLED,
                       S.FILLED},
    S.PARTIALLY_FILLED: {S.PENDING_CANCEL, S.CANCELED, S.EXPIRED, S.PARTIALLY_FILLED, S.FILLED},
    S.DENIED: set(), S.REJECTED: set(), S.EXPIRED: set(), S.FILLED: set(),
}
ALLOWED = sorted(((a, b) for a, targets in NAUTILUS.items() for b in targets), key=str)
ILLEGAL = sorted(((a, b) for a, b in product(S, S) if b not in NAUTILUS[a]), key=str)
OID = "0f8fad5b-d9cb-469f-a165-70867728950e"


# ---------------------------------------------------------------- the table

def test_table_is_nautilus_restricted_to_our_states():
    assert {k: set(v) for k, v in TRANSITIONS.items()} == NAUTILUS
    assert set(TRANSITIONS) == set(S)


@pytest.mark.parametrize("current,target", ALLOWED, ids=lambda s: str(s))
def test_every_allowed_edge_passes(current, target):
    check(current, target)
    check(current.value, target.value)  # plain strings from the DB work too
    assert can_transition(current, target)
    assert path(current, target) == (() if current is target else (target,))


@pytest.mark.parametrize("current,target", ILLEGAL, ids=lambda s: str(s))
def test_every_other_edge_raises(current, target):
    assert not can_transition(current, target)
    with pytest.raises(IllegalExTransition) as info:
        check(current, target, "cid-1")
    assert info.value.current is current and info.value.target is target
    assert f"cid-1: illegal transition {current} -> {target}" in str(info.value)


@pytest.mark.parametrize("current,target", [
    (S.FILLED, S.CANCELED), (S.FILLED, S.PARTIALLY_FILLED), (S.CANCELED, S.ACCEPTED), (S.REJECTED, S.ACCEPTED),
    (S.EXPIRED, S.FILLED), (S.DENIED, S.SUBMITTED), (S.ACCEPTED, S.SUBMITTED), (S.PARTIALLY_FILLED, S.ACCEPTED),
    (S.SUBMITTED, S.INITIALIZED), (S.CANCELED, S.PENDING_CANCEL), (S.INITIALIZED, S.INITIALIZED),
])
def test_sample_of_illegal_edges_raise(current, target):
    with pytest.raises(IllegalExTransition, match="illegal transition"):
        check(current, target)


@pytest.mark.parametrize("current,target", [
    (S.PENDING_CANCEL, S.PARTIALLY_FILLED), (S.PENDING_CANCEL, S.FILLED),
    (S.CANCELED, S.PARTIALLY_FILLED), (S.CANCELED, S.FILLED),
])
def test_fill_after_cancel_is_allowed(current, target):
    check(current, target)


def test_open_and_final_states_partition_the_states():
    assert OPEN_STATES | FINAL_STATES == set(S) and not OPEN_STATES & FINAL_STATES
    assert S.INITIALIZED in OPEN_STATES and S.PENDING_CANCEL in OPEN_STATES
    # Final states go nowhere, except a late fill of a canceled order.
    for state in FINAL_STATES - {S.CANCELED}:
        assert TRANSITIONS[state] == frozenset()
    assert TRANSITIONS[S.CANCELED] == {S.PARTIALLY_FILLED, S.FILLED}


def test_states_are_strings_for_the_db_and_logs():
    assert S("pending_cancel") is S.PENDING_CANCEL
    assert str(S.PARTIALLY_FILLED) == "partially_filled"


def test_path_generates_only_missing_acknowledgements():
    assert path(S.INITIALIZED, S.PARTIALLY_FILLED) == (S.SUBMITTED, S.PARTIALLY_FILLED)
    assert path(S.INITIALIZED, S.FILLED) == (S.SUBMITTED, S.FILLED)
    assert path(S.SUBMITTED, S.EXPIRED) == (S.ACCEPTED, S.EXPIRED)
    assert path(S.ACCEPTED, S.ACCEPTED) == ()
    for current, target in [(S.FILLED, S.CANCELED), (S.CANCELED, S.ACCEPTED), (S.DENIED, S.ACCEPTED),
                            (S.REJECTED, S.FILLED), (S.PARTIALLY_FILLED, S.ACCEPTED), (S.EXPIRED, S.FILLED)]:
        with pytest.raises(IllegalExTransition):
            path(current, target, "c")


def test_every_path_is_a_chain_of_legal_edges():
    for current, target in product(S, S):
        try:
            steps = path(current, target)
        except IllegalExTransition:
            continue
        state = current
        for step in steps:
            check(state, step)
            state = step
        assert state is target
        assert all(s in (S.SUBMITTED, S.ACCEPTED) for s in steps[:-1])


# ---------------------------------------------------------------- client order ids

BINANCE = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")


def test_client_id_format_and_length():
    cid = client_order_id(OID, 1)
    assert re.fullmatch(r"mm[0-9a-f]{16}-1", cid)
    assert client_order_id(OID, 36).endswith("-10") and client_order_id(OID, 10).endswith("-a")
    longest = client_order_id(OID, eo.MAX_SEQ)
    assert len(longest) == 28 and BINANCE.match(longest) and re.fullmatch(r"[A-Za-z0-9_-]+", longest)
    assert is_ours(cid) and is_ours(longest) and seq_of(longest) == eo.MAX_SEQ
    assert eo.MAX_SEQ > 10 ** 14   # ten orders a second for three hundred thousand years


def test_client_ids_fit_every_venue():
    from integrations.exchange.venues import venues
    longest = client_order_id(OID, eo.MAX_SEQ)
    assert len(venues()) >= 4
    for v in venues().values():   # the limit is on our part (gate adds its own "t-" in front)
        assert len(longest) <= v.client_id_max_length, v.ccxt_id


@pytest.mark.parametrize("cid,seq", [("mmflow-0123456789abcdef-1", 1), ("mmflow-0123456789abcdef-10000", 10000),
                                     ("mmflow-0123456789abcdef-999999999999", 999999999999)])
def test_first_format_client_ids_are_still_ours(cid, seq):
    """Ids placed before the 28-character format are still found, reconciled and numbered."""
    assert is_ours(cid) and seq_of(cid) == seq


def test_client_id_is_deterministic_and_unique():
    assert client_order_id(OID, 7) == client_order_id(OID, 7)
    ids = {client_order_id(f"order-{n}", seq) for n in range(500) for seq in (1, 2, 10, 11, 101)}
    assert len(ids) == 2500
    assert client_order_id("a", 1) != client_order_id("b", 1)


def test_client_id_prefix_identifies_its_order():
    prefix = owner_prefix(OID)
    assert client_order_id(OID, 3).startswith(prefix)
    assert not client_order_id("other", 3).startswith(prefix)
    assert seq_of(client_order_id(OID, 42)) == 42
    assert all(seq_of(client_order_id(OID, n)) == n for n in range(1, 5000))


@pytest.mark.parametrize("seq", [0, -1, True, eo.MAX_SEQ + 1, "1", 1.0])
def test_client_id_refuses_bad_sequences(seq):
    with pytest.raises(ValueError):
        client_order_id(OID, seq)


@pytest.mark.parametrize("order_id", ["", None])
def test_client_id_refuses_empty_order_ids(order_id):
    with pytest.raises(ValueError):
        owner_prefix(order_id)


@pytest.mark.parametrize("cid", [
    None, "", "x-XEKWYICX5f2b1a3e", "mmflow-", "mmflow-0123456789abcdef-0", "mmflow-0123456789ABCDEF-1",
    "mmflow-0123456789abcde-1", "mmflow-0123456789abcdef-1x", "MMFLOW-0123456789abcdef-1", "web_12345",
    "mmflow-0123456789abcdef-1234567890123", "mm", "mm0123456789abcdef-0", "mm0123456789abcdef-01",
    "mm0123456789ABCDEF-1", "mm0123456789abcde-1", "mm0123456789abcdef-1234567890", "mm0123456789abcdef-1A",
    "mmr0123456789abcdef01234567n1", "MM0123456789abcdef-1", "mm0123456789abcdef-",
])
def test_is_ours_rejects_other_ids(cid):
    assert not is_ours(cid)
    if cid is not None:
        with pytest.raises(ValueError):
            seq_of(cid)


# ---------------------------------------------------------------- exchange statuses → states

@pytest.mark.parametrize("current,status,filled,expected", [
    (S.INITIALIZED, "open", "0", S.ACCEPTED),
    (S.SUBMITTED, "open", "0", S.ACCEPTED),
    (S.SUBMITTED, "OPEN", "0.4", S.PARTIALLY_FILLED),
    (S.ACCEPTED, "open", "0.4", S.PARTIALLY_FILLED),
    (S.PARTIALLY_FILLED, "open", "0.6", S.PARTIALLY_FILLED),
    (S.PARTIALLY_FILLED, "open", "0", S.PARTIALLY_FILLED),      # a stale report never goes back
    (S.ACCEPTED, "closed", "1", S.FILLED),
    (S.ACCEPTED, "closed", "0.3", S.CANCELED),                  # closed but not full: remainder gone
    (S.PARTIALLY_FILLED, "canceled", "0.3", S.CANCELED),
    (S.PENDING_CANCEL, "cancelled", "0", S.CANCELED),
    (S.PENDING_CANCEL, "canceled", "1", S.FILLED),              # the fill won the race
    (S.ACCEPTED, "canceling", "0", S.PENDING_CANCEL),
    (S.ACCEPTED, "expired", "0.2", S.EXPIRED),
    (S.SUBMITTED, "rejected", "0", S.REJECTED),
    (S.INITIALIZED, "expired", "0", S.EXPIRED),
    (S.PENDING_CANCEL, "open", "0", S.PENDING_CANCEL),          # "still open" proves nothing about our cancel
    (S.PENDING_CANCEL, "open", "0.5", S.PENDING_CANCEL),
    (S.PENDING_CANCEL, "open", "1", S.FILLED),
    (S.CANCELED, "open", "0.5", S.CANCELED),                    # poll taken before the cancel landed
    (S.CANCELED, "closed", "1", S.FILLED),                      # fill after cancel
    (S.CANCELED, "expired", "0", S.CANCELED),                   # first "done" verdict stands
    (S.FILLED, "canceled", "1", S.FILLED),
    (S.EXPIRED, "closed", "1", S.EXPIRED),
    (S.ACCEPTED, "open", "1", S.FILLED),
])
def test_apply_exchange_status(current, status, filled, expected):
    assert apply_exchange_status(current, status, D(filled), D("1")) is expected


def test_apply_exchange_status_refuses_unknown_statuses_and_floats():
    with pytest.raises(ValueError, match="unknown exchange order status"):
        apply_exchange_status(S.ACCEPTED, "weird", D(0), D(1))
    with pytest.raises(TypeError):
        apply_exchange_status(S.ACCEPTED, "open", 0.5, D(1))


def test_every_status_result_is_reachable_or_unchanged():
    for current, status, filled in product(S, ["open", "closed", "canceled", "canceling", "expired", "rejected"],
                                           ["0", "0.5", "1"]):
        target = apply_exchange_status(current, status, D(filled), D(1))
        if target is current or status == "rejected":
            continue
        if current in OPEN_STATES or target is S.FILLED:
            path(current, target)  # legal (possibly via the implied acks)


def test_merge_report_keeps_later_news():
    assert merge_report(S.PARTIALLY_FILLED, S.ACCEPTED) is S.PARTIALLY_FILLED
    assert merge_report(S.ACCEPTED, S.SUBMITTED) is S.ACCEPTED
    assert merge_report(S.PENDING_CANCEL, S.ACCEPTED) is S.PENDING_CANCEL
    assert merge_report(S.CANCELED, S.ACCEPTED) is S.CANCELED
    assert merge_report(S.CANCELED, S.FILLED) is S.FILLED
    assert merge_report(S.SUBMITTED, S.ACCEPTED) is S.ACCEPTED
    assert merge_report(S.ACCEPTED, S.REJECTED) is S.REJECTED
    assert merge_report(S.PARTIALLY_FILLED, S.REJECTED) is S.REJECTED  # for the table to refuse


@pytest.mark.parametrize("current,expected", [
    (S.INITIALIZED, S.REJECTED), (S.SUBMITTED, S.REJECTED), (S.ACCEPTED, S.REJECTED),
    (S.PARTIALLY_FILLED, S.CANCELED), (S.PENDING_CANCEL, None), (S.FILLED, None), (S.CANCELED, None),
])
def test_resolve_not_found_follows_nautilus(current, expected):
    assert resolve_not_found(current) is expected


def test_cancel_rejected_restores_previous_status():
    assert cancel_rejected_target(D(0)) is S.ACCEPTED
    assert cancel_rejected_target(D("0.1")) is S.PARTIALLY_FILLED
    for filled in (D(0), D(1)):
        check(S.PENDING_CANCEL, cancel_rejected_target(filled))


@pytest.mark.parametrize("current,filled,expected", [
    (S.INITIALIZED, "0.5", S.PARTIALLY_FILLED), (S.SUBMITTED, "1", S.FILLED), (S.ACCEPTED, "0.5", S.PARTIALLY_FILLED),
    (S.PARTIALLY_FILLED, "0.7", S.PARTIALLY_FILLED), (S.PARTIALLY_FILLED, "1", S.FILLED),
    (S.PENDING_CANCEL, "0.5", S.PENDING_CANCEL), (S.PENDING_CANCEL, "1", S.FILLED),
    (S.CANCELED, "0.5", S.CANCELED), (S.CANCELED, "1", S.FILLED),
    (S.EXPIRED, "0.5", S.EXPIRED), (S.REJECTED, "0.5", S.REJECTED), (S.DENIED, "1", S.DENIED),
    (S.FILLED, "1", S.FILLED),
])
def test_after_fill(current, filled, expected):
    target = after_fill(current, D(filled), D(1))
    assert target is expected
    path(current, target)


# ---------------------------------------------------------------- trades

def trade(**kw):
    base = dict(trade_id="t1", client_order_id="c", exchange_order_id=None, symbol="BTC/USDT", side="buy",
                price=D("100"), amount=D("1"), fee=D("0.001"), fee_currency="BTC", timestamp_ms=1)
    base.update(kw)
    return TradeFill(**base)


@pytest.mark.parametrize("kw,error", [
    (dict(price=100.0), TypeError), (dict(amount=1.5), TypeError), (dict(fee=0.1), TypeError),
    (dict(amount=D(0)), ValueError), (dict(price=D(-1)), ValueError), (dict(side="BUY"), ValueError),
    (dict(client_order_id=None, exchange_order_id=None), ValueError), (dict(trade_id=""), ValueError),
    (dict(fee_currency=None), ValueError), (dict(symbol="BTCUSDT"), ValueError), (dict(timestamp_ms=1.5), TypeError),
    (dict(amount=D("NaN")), ValueError),
])
def test_trade_fill_is_validated(kw, error):
    with pytest.raises(error):
        trade(**kw)


def test_trade_fill_allows_rebates_and_zero_fees():
    assert trade(fee=D("-0.01"), fee_currency="USDT").fee == D("-0.01")
    assert trade(fee=D(0), fee_currency=None).fee == 0


def test_fill_key_tells_symbols_and_sides_apart():
    assert fill_key("acc", trade()) == "acc:BTC/USDT:t1:buy"
    keys = {fill_key("acc", trade(symbol=s, side=side)) for s in ("BTC/USDT", "ETH/USDT") for side in ("buy", "sell")}
    assert len(keys) == 4
    assert fill_key("acc", trade()) != fill_key("acc2", trade())


def test_split_symbol():
    assert split_symbol("BTC/USDT") == ("BTC", "USDT")
    assert split_symbol("BTC/USDT:USDT") == ("BTC", "USDT")
    for bad in ("BTCUSDT", "/USDT", "BTC/", "A/B/C"):
        with pytest.raises(ValueError):
            split_symbol(bad)


# ---------------------------------------------------------------- reconciliation

def db_order(seq, state=S.ACCEPTED, xid=None, filled="0", order_id=OID, **kw):
    fields = dict(client_order_id=client_order_id(order_id, seq), order_id=order_id, exchange_account="acc",
                  symbol="BTC/USDT", side="buy", price=D("100"), amount=D("1"), filled=D(filled), state=state,
                  exchange_order_id=xid)
    fields.update(kw)
    return DbOrder(**fields)


def ex_order(cid, xid, filled="0", **kw):
    fields = dict(client_order_id=cid, exchange_order_id=xid, symbol="BTC/USDT", side="buy", price=D("100"),
                  amount=D("1"), filled=D(filled))
    fields.update(kw)
    return ExOpenOrder(**fields)


def test_reconcile_sorts_every_order_into_its_bucket():
    known = db_order(1, xid="100")
    gone = db_order(2, xid="200")
    in_flight = db_order(3, state=S.INITIALIZED)
    stranger_of_ours = client_order_id("some-other-order", 5)
    plan = reconcile(
        [known, gone, in_flight],
        [ex_order(known.client_order_id, "100", filled="0.25"),
         ex_order(in_flight.client_order_id, "300"),
         ex_order(stranger_of_ours, "400"),
         ex_order("web_manual_1", "500"),
         ex_order(None, "600")])
    assert [(a.db, a.target, a.fills_missing) for a in plan.adopt] == [
        (known, S.PARTIALLY_FILLED, D("0.25")), (in_flight, S.ACCEPTED, D(0))]
    assert [a.needs_mapping for a in plan.adopt] == [False, True]
    assert plan.lookup == [gone]
    assert [o.exchange_order_id for o in plan.cancel_unknown] == ["400"]
    assert [o.exchange_order_id for o in plan.foreign] == ["500", "600"]
    assert plan.conflicts == [] and not plan.clean


def test_reconcile_empty_and_clean():
    assert reconcile([], []).clean
    o = db_order(1, xid="1")
    plan = reconcile([o], [ex_order(o.client_order_id, "1")])
    assert plan.clean and len(plan.adopt) == 1


def test_reconcile_falls_back_to_the_exchange_id_when_the_client_id_is_missing():
    o = db_order(1, xid="100")
    plan = reconcile([o], [ex_order(None, "100")])
    assert [a.db for a in plan.adopt] == [o] and plan.lookup == [] and plan.foreign == []
    # ... but exchange ids are per symbol
    plan = reconcile([o], [ex_order(None, "100", symbol="ETH/USDT")])
    assert plan.lookup == [o] and len(plan.foreign) == 1


def test_reconcile_reports_conflicts():
    a = db_order(1, xid="100")
    b = db_order(2, xid="200")
    c = db_order(3)
    dead = db_order(4, state=S.CANCELED, xid="400")
    plan = reconcile([a, b, c], [
        ex_order(a.client_order_id, "100", amount=D("2")),            # facts differ
        ex_order(b.client_order_id, "999"),                            # mapped to another exchange id
        ex_order(c.client_order_id, "300", side="sell"),               # side differs
        ex_order(dead.client_order_id, "400"),                         # final in the DB, open on the exchange
    ], db_final=[dead])
    assert [(x.db.client_order_id, x.exchange.exchange_order_id) for x in plan.conflicts] == [
        (a.client_order_id, "100"), (b.client_order_id, "999"), (c.client_order_id, "300"),
        (dead.client_order_id, "400")]
    assert "canceled in the DB but open" in plan.conflicts[3].reason
    assert plan.adopt == [] and plan.cancel_unknown == [] and not plan.clean
    # Without db_final, a dead order of ours listed open is at least cancelled.
    plan = reconcile([], [ex_order(dead.client_order_id, "400")])
    assert len(plan.cancel_unknown) == 1


def test_reconcile_ignores_an_order_listed_twice():
    o = db_order(1, xid="100")
    listed = ex_order(o.client_order_id, "100")
    plan = reconcile([o], [listed, listed])
    assert len(plan.adopt) == 1 and plan.conflicts == []


def test_reconcile_keeps_a_pending_cancel_pending():
    o = db_order(1, state=S.PENDING_CANCEL, xid="100")
    plan = reconcile([o], [ex_order(o.client_order_id, "100")])
    assert plan.adopt[0].target is S.PENDING_CANCEL


def test_reconcile_accepts_a_prefix_string():
    plan = reconcile([], [ex_order("bot1-7", "1"), ex_order("other-1", "2")], prefix_of_ours="bot1-")
    assert [o.exchange_order_id for o in plan.cancel_unknown] == ["1"]
    assert [o.exchange_order_id for o in plan.foreign] == ["2"]


@pytest.mark.parametrize("a, b", [("60300", "60300.00000000"), ("0.001", "0.00100000"), ("0", "0.00000000"),
                                  ("100", "100.0"), ("1000.5", "1000.50"), ("0.1", "0.10"), ("60300", "6030"),
                                  ("0.001", "0.01"), ("100", "10.0"), ("1", "0.1"), ("10", "1.0")])
def test_plain_texts_are_equal_exactly_when_their_numbers_are(a, b):
    assert (eo.plain_text(a) == eo.plain_text(b)) == (D(a) == D(b))
    assert eo.plain_text(format(D(b), "f")) == eo.plain_text(b)
