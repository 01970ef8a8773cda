"""Snapshot parsing, routing and per-order payment decisions (domain/routing.py)."""
from __future__ import annotations

import hashlib
import uuid
from decimal import Decimal as D

import pytest

from domain.memo import b58encode, encode_market_making, memo_text_to_hex
from domain.payment import FeeRequirements, PairRules
from domain.routing import (
    BadSnapshot,
    PaymentDecision,
    PaymentDecisionKind,
    Route,
    RouteKind,
    SnapshotFacts,
    decide_payment,
    parse_snapshot,
    refund_memo,
    route_snapshot,
)
from domain.states import OrderState

BTC = "c6d0c728-2624-429b-8e0d-d9d19b6592fa"
USDT = "4d8c508b-91c5-375b-92b0-ee702ed2dac5"
ETH = "43d61dcd-e413-450d-80b8-101d5e903357"
XIN = "c94ac88f-4671-3976-b60a-09064f1811e8"
PAIR_ID = "0776b00f-95c0-46f9-85e4-7b8e7ca51e94"
DISABLED_PAIR_ID = "11111111-2222-4333-8444-555555555555"
UNKNOWN_PAIR_ID = "99999999-9999-4999-8999-999999999999"
ORDER_ID = "b0177350-ae29-43ec-a26e-d46f821e416e"
USER = "e9e5b807-fa8b-455a-8dfa-b189d28310ff"
OTHER_USER = "6a87e67f-02fb-47cf-b31f-32a13dd5b3d9"
OPERATOR = "fcb87491-4fa0-4c2f-b387-262b63cbc112"
SNAP = "a1f4e4a0-7c8e-4a5e-9d3c-0f8c5b0f4c11"

PAIR = PairRules(pair_id=PAIR_ID, symbol="BTC/USDT", exchange="binance", base_asset_id=BTC,
                 quote_asset_id=USDT, base_symbol="BTC", quote_symbol="USDT")
DISABLED = PairRules(pair_id=DISABLED_PAIR_ID, symbol="XIN/USDT", exchange="mexc", base_asset_id=XIN,
                     quote_asset_id=USDT, base_symbol="XIN", quote_symbol="USDT", enabled=False)
PAIRS = {PAIR_ID: PAIR, DISABLED_PAIR_ID: DISABLED}
FEES = FeeRequirements(base_fee_asset_id=BTC, base_fee_amount=D("0.0005"), quote_fee_asset_id=ETH,
                       quote_fee_amount=D("0.002"), market_making_fee_percent=D("0.1"))
OPERATORS = frozenset({OPERATOR})
VALID_MEMO_HEX = memo_text_to_hex(encode_market_making(PAIR_ID, ORDER_ID))


def raw_snapshot(**overrides) -> dict:
    raw = {
        "snapshot_id": SNAP,
        "created_at": "2024-05-06T07:08:09.123456789Z",
        "asset_id": BTC,
        "amount": "1.0015",
        "opponent_id": USER,
        "memo": VALID_MEMO_HEX,
    }
    raw.update(overrides)
    return {k: v for k, v in raw.items() if v is not ...}


def facts(**overrides) -> SnapshotFacts:
    return parse_snapshot(raw_snapshot(**overrides))


def route(**overrides) -> Route:
    return route_snapshot(facts(**overrides), pair_lookup=PAIRS.get, operator_ids=OPERATORS)


def hex_of_payload(payload: bytes) -> str:
    check = hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    return memo_text_to_hex(b58encode(payload + check))


# ================================ parse_snapshot ================================


def test_parse_valid_snapshot():
    f = facts()
    assert f == SnapshotFacts(
        snapshot_id=SNAP, created_at="2024-05-06T07:08:09.123456789Z",
        created_ns=1714979289123456789, asset_id=BTC, amount=D("1.0015"), opponent_id=USER,
        memo_hex=VALID_MEMO_HEX, is_deposit=False, is_withdrawal=False)
    assert f.refundable is True


def test_parse_missing_memo_and_opponent_become_empty_strings():
    f = facts(memo=None, opponent_id=...)
    assert (f.memo_hex, f.opponent_id) == ("", "")
    assert f.refundable is False


def test_parse_deposit_and_withdrawal_flags():
    f = facts(opponent_id="", deposit={"deposit_hash": "0xabc", "sender": "0xdef"})
    assert f.is_deposit is True and f.is_withdrawal is False
    assert f.refundable is False
    f = facts(amount="-1", withdrawal={"withdrawal_hash": "0x1"})
    assert f.is_withdrawal is True
    assert f.amount == D("-1")


def test_deposit_with_an_opponent_is_still_not_refundable():
    assert facts(deposit={"deposit_hash": "0xabc"}).refundable is False


@pytest.mark.parametrize("snapshot_id", [..., None, "", 42])
def test_parse_missing_snapshot_id(snapshot_id):
    with pytest.raises(BadSnapshot, match="no snapshot_id"):
        parse_snapshot(raw_snapshot(snapshot_id=snapshot_id))


@pytest.mark.parametrize("created_at", [..., None, "", "yesterday", "2024-05-06 07:08:09Z",
                                        "2024-05-06T07:08:09", "2024-05-06T07:08:09.1234567891Z"])
def test_parse_bad_created_at(created_at):
    with pytest.raises(BadSnapshot, match=f"snapshot {SNAP}: not an RFC3339 timestamp"):
        parse_snapshot(raw_snapshot(created_at=created_at))


@pytest.mark.parametrize("created_at", [1714979289, ["2024-05-06T07:08:09Z"]])
def test_parse_non_string_created_at_is_a_bad_snapshot(created_at):
    with pytest.raises(BadSnapshot):
        parse_snapshot(raw_snapshot(created_at=created_at))


def test_parse_created_at_with_month_13_is_a_bad_snapshot():
    with pytest.raises(BadSnapshot):
        parse_snapshot(raw_snapshot(created_at="2024-13-06T07:08:09Z"))


def test_parse_float_amount_is_refused():
    with pytest.raises(BadSnapshot, match="amount: 1.5 is a float"):
        parse_snapshot(raw_snapshot(amount=1.5))


@pytest.mark.parametrize("amount", [..., None, "abc", "NaN", "Infinity", "", True])
def test_parse_bad_amount_is_refused(amount):
    with pytest.raises(BadSnapshot, match=f"snapshot {SNAP}: amount"):
        parse_snapshot(raw_snapshot(amount=amount))


@pytest.mark.parametrize("asset_id", [..., None, "", 7])
def test_parse_missing_asset_id(asset_id):
    with pytest.raises(BadSnapshot, match="has no asset_id"):
        parse_snapshot(raw_snapshot(asset_id=asset_id))


@pytest.mark.parametrize("field", ["memo", "opponent_id"])
def test_parse_non_string_memo_or_opponent(field):
    with pytest.raises(BadSnapshot, match="memo/opponent_id are not strings"):
        parse_snapshot(raw_snapshot(**{field: 12345}))


@pytest.mark.parametrize("raw,kind", [([], "list"), (None, "NoneType"), ("snapshot", "str"), (7, "int")])
def test_parse_non_dict(raw, kind):
    with pytest.raises(BadSnapshot, match=f"snapshot is a {kind}, not an object"):
        parse_snapshot(raw)


def test_parse_integer_amount_is_accepted():
    assert facts(amount=3).amount == D(3)


@pytest.mark.parametrize("amount", ["0.001", " 2.5 ", "1E-8", "-0", "12345678901.12345678", "1_000", "0.10"])
def test_parse_string_amounts_are_exact_decimals_on_every_path(amount):
    # the usual snapshot's one-pass parse and the full checks (a deposit goes there) read an amount alike
    fast = facts(amount=amount)
    checked = facts(amount=amount, deposit={"deposit_hash": "0xabc"})
    assert fast.amount.__class__ is D and not checked.is_withdrawal
    assert str(fast.amount) == str(checked.amount) == str(D(amount.strip()))


# ================================ route_snapshot ================================


def test_valid_memo_routes_to_the_order():
    assert route() == Route(RouteKind.ORDER, f"payment for order {ORDER_ID}", "order",
                            order_id=ORDER_ID, pair_id=PAIR_ID, action=1)


def test_deposit_action_routes_to_the_order_with_action_2():
    r = route(memo=memo_text_to_hex(encode_market_making(PAIR_ID, ORDER_ID, action=2)))
    assert (r.kind, r.order_id, r.action) == (RouteKind.ORDER, ORDER_ID, 2)


@pytest.mark.parametrize("amount", ["0", "-0.5", "-0.00000001"])
def test_non_positive_amount_is_ignored(amount):
    r = route(amount=amount, memo="zz")
    assert (r.kind, r.code) == (RouteKind.IGNORE, "not_incoming")
    assert r.order_id is None


def test_operator_transfer_is_a_topup_even_with_a_bad_memo():
    for memo in ("", "zz", memo_text_to_hex("hello"), VALID_MEMO_HEX):
        r = route(opponent_id=OPERATOR, memo=memo)
        assert r == Route(RouteKind.TOPUP, "transfer from an operator: treasury top-up, never refunded", "topup")


def test_outgoing_operator_transfer_is_ignored_not_topup():
    assert route(opponent_id=OPERATOR, amount="-1").kind is RouteKind.IGNORE


@pytest.mark.parametrize("memo,code", [
    ("", "memo_empty"),
    (..., "memo_empty"),
    ("zz", "memo_not_hex"),
    ("abc", "memo_not_hex"),
    ("ff00", "memo_not_utf8"),
    (memo_text_to_hex("hello"), "memo_not_base58"),
    (memo_text_to_hex("Refund:something"), "memo_not_base58"),
    (memo_text_to_hex("   "), "memo_empty"),
    (memo_text_to_hex("2NEpo7TZRRrLZSi2U"), "memo_bad_checksum"),
    (hex_of_payload(b"\x01\x01\x01"), "memo_bad_length"),
    (hex_of_payload(b"\x02\x01\x01" + bytes(32)), "memo_bad_version"),
    (hex_of_payload(b"\x01\x00\x01" + bytes(32)), "memo_bad_trading_type"),
    (memo_text_to_hex("5JkNjkChhHjzsFr6cm4yAbJPUGVDST6tk9Cxdapvvq9kFgBmJuQVoahd8v"), "memo_bad_trading_type"),
    (hex_of_payload(b"\x01\x01\x07" + bytes(32)), "memo_bad_action"),
], ids=lambda v: v if isinstance(v, str) and v.startswith("memo_") else None)
def test_bad_memo_from_a_user_is_refunded_with_the_memo_code(memo, code):
    r = route(memo=memo)
    assert r.kind is RouteKind.REFUND
    assert r.code == code
    assert r.reason.startswith("memo is not a valid mmflow memo: ")
    assert r.order_id is None


def test_unknown_pair_is_refunded():
    r = route(memo=memo_text_to_hex(encode_market_making(UNKNOWN_PAIR_ID, ORDER_ID)))
    assert r == Route(RouteKind.REFUND, f"pair {UNKNOWN_PAIR_ID} is not configured", "unknown_pair")


def test_disabled_pair_is_refunded():
    r = route(memo=memo_text_to_hex(encode_market_making(DISABLED_PAIR_ID, ORDER_ID)))
    assert r == Route(RouteKind.REFUND, f"pair XIN/USDT ({DISABLED_PAIR_ID}) is disabled", "pair_disabled")


@pytest.mark.parametrize("source", [dict(opponent_id=""), dict(opponent_id=...),
                                    dict(deposit={"deposit_hash": "0x1"}),
                                    dict(opponent_id="", deposit={"deposit_hash": "0x1"})])
def test_external_deposit_with_bad_memo_needs_attention(source):
    r = route(memo=memo_text_to_hex("hello"), **source)
    assert r.kind is RouteKind.ATTENTION
    assert r.code == "memo_not_base58"
    assert "cannot be refunded by transfer" in r.reason


def test_external_deposit_for_unknown_or_disabled_pair_needs_attention():
    r = route(opponent_id="", memo=memo_text_to_hex(encode_market_making(UNKNOWN_PAIR_ID, ORDER_ID)))
    assert (r.kind, r.code) == (RouteKind.ATTENTION, "unknown_pair")
    r = route(deposit={"deposit_hash": "0x1"},
              memo=memo_text_to_hex(encode_market_making(DISABLED_PAIR_ID, ORDER_ID)))
    assert (r.kind, r.code) == (RouteKind.ATTENTION, "pair_disabled")


def test_external_deposit_with_a_valid_memo_still_routes_to_the_order():
    r = route(opponent_id="")
    assert (r.kind, r.order_id) == (RouteKind.ORDER, ORDER_ID)


# ================================ refund_memo ================================


def test_refund_memo_format():
    assert refund_memo(SNAP, "memo_bad_checksum") == f"Refund:{SNAP}:memo_bad_checksum"
    assert refund_memo("s-1", "unknown_pair") == "Refund:s-1:unknown_pair"


@pytest.mark.parametrize("code", ["memo_empty", "memo_not_base58", "memo_bad_trading_type", "unknown_pair",
                                  "pair_disabled", "not_owner", "unknown_asset", "order_payment_complete",
                                  "order_returning_funds"])
def test_refund_memo_for_real_codes_is_well_under_256_bytes(code):
    memo = refund_memo(str(uuid.uuid4()), code)
    assert memo.split(":") == ["Refund", memo.split(":")[1], code]
    assert len(memo.encode("utf-8")) <= 80


def test_refund_memo_is_cut_at_256_bytes():
    memo = refund_memo("s" * 300, "unknown_pair")
    assert memo == "Refund:" + "s" * 249
    assert len(memo.encode("utf-8")) == 256


def test_refund_memo_is_at_most_256_bytes_even_for_non_ascii_ids():
    assert len(refund_memo("é" * 300, "memo_not_hex").encode("utf-8")) <= 256


# ================================ decide_payment ================================


def decide(state=OrderState.PAYMENT_PENDING, owner=None, **overrides) -> PaymentDecision:
    return decide_payment(state=state, owner_id=owner, facts=facts(**overrides), pair=PAIR, fees=FEES)


@pytest.mark.parametrize("asset", [BTC, USDT, ETH])
def test_first_payment_of_a_pair_or_fee_asset_is_accepted(asset):
    assert decide(asset_id=asset) == PaymentDecision(PaymentDecisionKind.ACCEPT, "", "")


def test_payment_from_the_owner_is_accepted():
    assert decide(owner=USER).kind is PaymentDecisionKind.ACCEPT


def test_payment_from_someone_else_is_refunded_not_owner():
    d = decide(owner=OTHER_USER)
    assert d == PaymentDecision(PaymentDecisionKind.REFUND,
                                f"order belongs to the user who paid first ({OTHER_USER})", "not_owner")


@pytest.mark.parametrize("state", [s for s in OrderState if s is not OrderState.PAYMENT_PENDING],
                         ids=lambda s: s.value)
def test_order_not_accepting_payments_refunds(state):
    d = decide(state=state, owner=USER)
    assert d.kind is PaymentDecisionKind.REFUND
    assert d.code == f"order_{state.value}"
    assert d.reason == f"order is {state.value}, not accepting payments"


def test_state_given_as_string_gives_the_same_code():
    assert decide(state="payment_complete").code == "order_payment_complete"
    assert decide(state="refunding").code == "order_refunding"
    assert decide(state="payment_pending").kind is PaymentDecisionKind.ACCEPT


def test_unknown_asset_is_refunded():
    d = decide(asset_id=XIN)
    assert d == PaymentDecision(PaymentDecisionKind.REFUND,
                                f"asset {XIN} is not part of BTC/USDT or its fees", "unknown_asset")


def test_fee_asset_with_zero_fee_is_an_unknown_asset():
    fees = FeeRequirements(BTC, D("0.0005"), ETH, D("0"), D("0.1"))
    d = decide_payment(state=OrderState.PAYMENT_PENDING, owner_id=None, facts=facts(asset_id=ETH), pair=PAIR,
                       fees=fees)
    assert (d.kind, d.code) == (PaymentDecisionKind.REFUND, "unknown_asset")


@pytest.mark.parametrize("source", [dict(opponent_id=""), dict(deposit={"deposit_hash": "0x1"})])
def test_no_opponent_needs_attention_before_any_other_check(source):
    # even for a closed order, another owner and an unknown asset: it cannot be refunded by transfer
    d = decide(state=OrderState.REFUNDED, owner=OTHER_USER, asset_id=XIN, **source)
    assert (d.kind, d.code) == (PaymentDecisionKind.ATTENTION, "no_opponent")
    assert SNAP in d.reason


def test_state_is_checked_before_ownership_and_asset():
    d = decide(state=OrderState.RUNNING, owner=OTHER_USER, asset_id=XIN)
    assert d.code == "order_running"
    d = decide(owner=OTHER_USER, asset_id=XIN)
    assert d.code == "not_owner"


# ================================ decide_payment by memo action ================================

from domain.memo import ACTION_CREATE, ACTION_DEPOSIT, ACTION_EXIT  # noqa: E402

S = OrderState
K = PaymentDecisionKind
ACTION_TABLE = [
    # (action, state, owner, exit already asked, asset, expected kind, expected code)
    (ACTION_CREATE, S.PAYMENT_PENDING, None, False, BTC, K.ACCEPT, ""),
    (ACTION_CREATE, S.RUNNING, USER, False, BTC, K.REFUND, "order_running"),
    (ACTION_CREATE, S.REFUNDED, USER, False, BTC, K.REFUND, "order_refunded"),
    (ACTION_CREATE, S.SETTLED, USER, False, BTC, K.REFUND, "order_settled"),
    # add funds: into a pending order it is a payment like create
    (ACTION_DEPOSIT, S.PAYMENT_PENDING, None, False, BTC, K.ACCEPT, ""),
    (ACTION_DEPOSIT, S.PAYMENT_PENDING, OTHER_USER, False, BTC, K.REFUND, "not_owner"),
    (ACTION_DEPOSIT, S.RUNNING, USER, False, BTC, K.TOP_UP, ""),
    (ACTION_DEPOSIT, S.PAUSED, USER, False, ETH, K.TOP_UP, ""),
    (ACTION_DEPOSIT, S.RUNNING, OTHER_USER, False, BTC, K.REFUND, "not_owner"),
    (ACTION_DEPOSIT, S.RUNNING, USER, False, XIN, K.REFUND, "unknown_asset"),
    (ACTION_DEPOSIT, S.RUNNING, USER, True, BTC, K.REFUND, "order_exiting"),
    (ACTION_DEPOSIT, S.STOPPING, USER, False, BTC, K.REFUND, "order_stopping"),
    (ACTION_DEPOSIT, S.DEPOSIT_CONFIRMING, USER, False, BTC, K.REFUND, "order_deposit_confirming"),
    # exit: only the owner, only once, never into a final order
    (ACTION_EXIT, S.RUNNING, USER, False, XIN, K.EXIT, ""),
    (ACTION_EXIT, S.PAYMENT_PENDING, USER, False, BTC, K.EXIT, ""),
    (ACTION_EXIT, S.WITHDRAWING, USER, False, BTC, K.EXIT, ""),
    (ACTION_EXIT, S.ATTENTION, USER, False, BTC, K.EXIT, ""),
    (ACTION_EXIT, S.RUNNING, OTHER_USER, False, BTC, K.REFUND, "not_owner"),
    (ACTION_EXIT, S.PAYMENT_PENDING, None, False, BTC, K.REFUND, "exit_no_owner"),
    (ACTION_EXIT, S.RUNNING, USER, True, BTC, K.REFUND, "exit_already"),
    (ACTION_EXIT, S.RETURNING_FUNDS, USER, False, BTC, K.REFUND, "exit_already"),
    (ACTION_EXIT, S.REFUNDING, USER, False, BTC, K.REFUND, "exit_already"),
    (ACTION_EXIT, S.SETTLED, USER, False, BTC, K.REFUND, "exit_order_settled"),
    (ACTION_EXIT, S.REFUNDED, OTHER_USER, False, BTC, K.REFUND, "exit_order_refunded"),
]


@pytest.mark.parametrize("action,state,owner,asked,asset,kind,code", ACTION_TABLE,
                         ids=[f"{a}-{s.value}-{o and o[:4]}-{x}-{k.value}" for a, s, o, x, _, k, _ in ACTION_TABLE])
def test_decide_payment_by_action(action, state, owner, asked, asset, kind, code):
    d = decide_payment(state=state, owner_id=owner, facts=facts(asset_id=asset), pair=PAIR, fees=FEES,
                       action=action, exit_requested=asked)
    assert (d.kind, d.code) == (kind, code), d.reason


def test_exit_from_outside_mixin_still_needs_an_operator():
    d = decide_payment(state=S.RUNNING, owner_id=USER, facts=facts(opponent_id=""), pair=PAIR, fees=FEES,
                       action=ACTION_EXIT)
    assert d.kind is K.ATTENTION
