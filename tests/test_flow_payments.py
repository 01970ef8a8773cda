"""Stages 1–4 end to end: fake Mixin over HTTP → poller → router → OrderActor → durable tally.

Every payment rule of issue 2 is exercised through the running actor tree
against the fake Mixin server and a real SQLite file.
"""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from domain.ids import refund_request_id
from domain.memo import encode_market_making
from sim.world import (BTC, BTC_USDT_PAIR, DISABLED_PAIR, ETH, ETH_USDT_PAIR, USDT_ERC20, XIN, build_world,
                       new_order_id)
from storage.models import Alert, MoneyMovement, Order, OrderStateChange, Snapshot
from tests.support import running_mmflow, wait_until


@pytest.fixture
def world():
    w = build_world()
    yield w
    w.fake.stop()


def snapshot_row(snapshot_id):
    return Snapshot.get_by_id(snapshot_id)


def wait_routed(snapshot_id, timeout=10.0):
    return wait_until(lambda: (s := Snapshot.get_or_none(Snapshot.snapshot_id == snapshot_id)) is not None
                      and s.applied and s, timeout, message=f"snapshot {snapshot_id} consumed")


def refund_of(snapshot_id):
    return MoneyMovement.get_or_none(MoneyMovement.request_id == refund_request_id(snapshot_id))


def test_full_payment_completes_order_with_fee_breakdown(tmp_path, world):
    with running_mmflow(tmp_path, world) as mm:
        pair = mm.services.config.pair(BTC_USDT_PAIR)
        user = world.new_user()
        order_id = new_order_id()
        invoice = world.invoice(pair, Decimal("0.1"), Decimal("5000"))
        world.pay_invoice(user, pair, order_id, invoice)
        view = mm.wait_state(order_id, "payment_complete")
        assert view.user_id == user
        assert view.tallies == invoice
        row = Order.get_by_id(order_id)
        assert '"base_principal": "0.1"' in row.breakdown
        assert '"quote_market_making_fee": "5"' in row.breakdown  # 0.1% of 5000, tracked not ignored
        assert view.fees.base_fee_asset_id == BTC and view.fees.base_fee_amount == Decimal("0.0001")
        assert view.fees.quote_fee_asset_id == ETH  # USDT-ERC20 withdrawal fee is paid in ETH
        assert MoneyMovement.select().count() == 0
        history = [(h.from_state, h.to_state) for h in OrderStateChange.select().where(
            OrderStateChange.order_id == order_id).order_by(OrderStateChange.id)]
        assert history == [(None, "payment_pending"), ("payment_pending", "payment_complete")]


def test_fee_in_base_asset_must_be_covered_on_top_of_principal(tmp_path, world):
    """BTC's withdrawal fee is in BTC. Paying exactly the pair minimum (0.001 BTC) covers the minimum
    principal OR the fee, not both: the order must not complete (Mr.Market G3 compared the whole
    principal against the fee and accepted it)."""
    with running_mmflow(tmp_path, world, payments={"timeout": 1.0}) as mm:
        pair = mm.services.config.pair(BTC_USDT_PAIR)
        user = world.new_user()
        order_id = new_order_id()
        invoice = world.invoice(pair, Decimal("0.1"), Decimal("5000"))
        invoice[BTC] = Decimal("0.001")
        paid = world.pay_invoice(user, pair, order_id, invoice)
        mm.wait_state(order_id, "refunded", timeout=10)
        for asset_id in invoice:
            assert world.fake.balance(user, asset_id) == 0
        reasons = [h.reason for h in OrderStateChange.select().where(
            (OrderStateChange.order_id == order_id) & (OrderStateChange.to_state == "refunding"))]
        assert "base BTC: principal 0.0008991 below minimum 0.001" in reasons[0]
        for snap in paid:  # every leg refunded, each exactly once
            movement = refund_of(snap["snapshot_id"])
            assert movement is not None and movement.amount == Decimal(snap["amount"])
            assert movement.recipient_id == user
            assert movement.memo == f"Refund:{snap['snapshot_id']}:timeout"
        assert MoneyMovement.select().count() == len(paid)


def test_missing_separate_fee_asset_keeps_order_pending(tmp_path, world):
    with running_mmflow(tmp_path, world) as mm:
        pair = mm.services.config.pair(BTC_USDT_PAIR)
        user = world.new_user()
        order_id = new_order_id()
        invoice = world.invoice(pair, Decimal("0.1"), Decimal("5000"))
        world.pay_invoice(user, pair, order_id, invoice, skip=(ETH,))
        wait_until(lambda: mm.order(order_id) and len(mm.order(order_id).tallies) == 2, message="two legs tallied")
        # The check runs after check_delay; the order must still wait for the ETH fee.
        wait_until(lambda: OrderStateChange.select().where(OrderStateChange.order_id == order_id).count() >= 1)
        import gevent
        gevent.sleep(0.3)
        assert mm.state(order_id) == "payment_pending"
        world.pay(user, ETH, invoice[ETH], encode_market_making(pair.pair_id, order_id))
        mm.wait_state(order_id, "payment_complete")


def test_partial_payment_times_out_and_refunds_every_leg(tmp_path, world):
    with running_mmflow(tmp_path, world, payments={"timeout": 0.8}) as mm:
        pair = mm.services.config.pair(BTC_USDT_PAIR)
        user = world.new_user()
        order_id = new_order_id()
        memo = encode_market_making(pair.pair_id, order_id)
        first = world.pay(user, BTC, "0.05", memo)
        second = world.pay(user, BTC, "0.01", memo)
        view = mm.wait_state(order_id, "refunded")
        assert view.tallies == {BTC: Decimal("0.06")}
        for snap in (first, second):
            movement = refund_of(snap["snapshot_id"])
            assert movement.state == "confirmed" and movement.recipient_id == user
            assert movement.transaction_hash
        assert world.fake.balance(user, BTC) == 0  # paid 0.06, got 0.06 back, once


def test_another_payer_is_refunded_and_first_payer_keeps_the_order(tmp_path, world):
    with running_mmflow(tmp_path, world) as mm:
        pair = mm.services.config.pair(BTC_USDT_PAIR)
        owner, intruder = world.new_user(), world.new_user()
        order_id = new_order_id()
        memo = encode_market_making(pair.pair_id, order_id)
        invoice = world.invoice(pair, Decimal("0.1"), Decimal("5000"))
        world.pay(owner, BTC, invoice[BTC], memo)
        wait_until(lambda: mm.order(order_id) is not None and mm.order(order_id).user_id == owner)
        foreign = world.pay(intruder, USDT_ERC20, "5005", memo)
        row = wait_routed(foreign["snapshot_id"])
        assert row.outcome == "refund" and "first" in row.reason
        assert refund_of(foreign["snapshot_id"]).recipient_id == intruder
        assert refund_of(foreign["snapshot_id"]).memo.endswith(":not_owner")
        world.pay(owner, USDT_ERC20, invoice[USDT_ERC20], memo)
        world.pay(owner, ETH, invoice[ETH], memo)
        view = mm.wait_state(order_id, "payment_complete")
        assert view.tallies == invoice and view.user_id == owner


@pytest.mark.parametrize("memo_maker,code", [
    (lambda: encode_market_making("11111111-2222-4333-8444-555555555555", new_order_id()), "unknown_pair"),
    (lambda: encode_market_making(DISABLED_PAIR, new_order_id()), "pair_disabled"),
    (lambda: encode_market_making(BTC_USDT_PAIR, new_order_id(), version=2), "memo_bad_version"),
    (lambda: "hello, not ours", "memo_not_base58"),
    (lambda: "", "memo_empty"),
    (lambda: encode_market_making(BTC_USDT_PAIR, new_order_id())[:-3], "memo_bad_checksum"),
    (lambda: b"\xff\xfe\x00", "memo_not_utf8"),
])
def test_unroutable_payments_are_refunded_with_reason(tmp_path, world, memo_maker, code):
    with running_mmflow(tmp_path, world):
        user = world.new_user()
        snap = world.pay(user, USDT_ERC20, "12.5", memo_maker())
        row = wait_routed(snap["snapshot_id"])
        assert row.outcome == "refund"
        movement = refund_of(snap["snapshot_id"])
        assert movement.amount == Decimal("12.5") and movement.asset_id == USDT_ERC20
        assert movement.recipient_id == user
        assert movement.memo == f"Refund:{snap['snapshot_id']}:{code}"
        assert Order.select().count() == 0
        wait_until(lambda: MoneyMovement.get_by_id(movement.request_id).state == "confirmed",
                   message="refund confirmed on Mixin")
        assert world.fake.balance(user, USDT_ERC20) == 0


def test_bad_trading_type_is_refunded(tmp_path, world):
    from domain.memo import _checksum, b58encode
    import uuid
    payload = bytes([1, 2, 1]) + uuid.uuid4().bytes + uuid.uuid4().bytes  # Simply Grow, not market making
    memo = b58encode(payload + _checksum(payload))
    with running_mmflow(tmp_path, world):
        snap = world.pay(world.new_user(), USDT_ERC20, "7", memo)
        row = wait_routed(snap["snapshot_id"])
        assert row.outcome == "refund" and refund_of(snap["snapshot_id"]).memo.endswith("memo_bad_trading_type")


def test_unknown_asset_for_the_pair_is_refunded(tmp_path, world):
    with running_mmflow(tmp_path, world) as mm:
        pair = mm.services.config.pair(BTC_USDT_PAIR)
        user = world.new_user()
        order_id = new_order_id()
        snap = world.pay(user, XIN, "1", encode_market_making(pair.pair_id, order_id))
        row = wait_routed(snap["snapshot_id"])
        assert row.outcome == "refund" and refund_of(snap["snapshot_id"]).memo.endswith(":unknown_asset")
        assert mm.order(order_id).tallies == {}


def test_over_maximum_is_rejected_and_refunded(tmp_path, world):
    with running_mmflow(tmp_path, world) as mm:
        pair = mm.services.config.pair(BTC_USDT_PAIR)
        user = world.new_user()
        order_id = new_order_id()
        paid = world.pay_invoice(user, pair, order_id, world.invoice(pair, Decimal("11"), Decimal("5000")))
        mm.wait_state(order_id, "refunding")
        assert {refund_of(s["snapshot_id"]).memo.rsplit(":", 1)[1] for s in paid} == {"rejected"}


def test_late_payment_to_complete_order_is_refunded(tmp_path, world):
    with running_mmflow(tmp_path, world) as mm:
        pair = mm.services.config.pair(ETH_USDT_PAIR)
        user = world.new_user()
        order_id = new_order_id()
        invoice = world.invoice(pair, Decimal("1"), Decimal("100"))
        world.pay_invoice(user, pair, order_id, invoice)
        mm.wait_state(order_id, "payment_complete")
        late = world.pay(user, ETH, "0.5", encode_market_making(pair.pair_id, order_id))
        row = wait_routed(late["snapshot_id"])
        assert row.outcome == "refund"
        assert refund_of(late["snapshot_id"]).memo.endswith(":order_payment_complete")
        assert mm.order(order_id).tallies == invoice


def test_zero_and_outgoing_amounts_are_ignored(tmp_path, world):
    with running_mmflow(tmp_path, world):
        out = world.fake.record_snapshot(world.bot_id, USDT_ERC20, Decimal("-5"), opponent_id=world.new_user(),
                                         memo=b"Refund:x")
        row = wait_routed(out["snapshot_id"])
        assert row.outcome == "ignored"
        assert MoneyMovement.select().count() == 0


def test_operator_top_up_is_never_refunded(tmp_path, world):
    operator = world.new_user()
    with running_mmflow(tmp_path, world, mixin={"operator_user_ids": [operator]}):
        snap = world.pay(operator, USDT_ERC20, "1000", "funding")
        row = wait_routed(snap["snapshot_id"])
        assert row.outcome == "topup"
        assert MoneyMovement.select().count() == 0


def test_external_deposit_cannot_be_refunded_and_alerts_operator(tmp_path, world):
    with running_mmflow(tmp_path, world):
        snap = world.fake.deposit(world.bot_id, ETH, "0.5")
        row = wait_until(lambda: (s := Snapshot.get_or_none(Snapshot.snapshot_id == snap["snapshot_id"]))
                         and s.outcome and s)
        assert row.outcome == "attention"
        assert Alert.get(Alert.subject == snap["snapshot_id"]).kind == "unrefundable_snapshot"
        assert MoneyMovement.select().count() == 0


def test_external_deposit_with_our_memo_puts_order_in_attention(tmp_path, world):
    with running_mmflow(tmp_path, world) as mm:
        order_id = new_order_id()
        world.fake.deposit(world.bot_id, BTC, "0.2", memo=encode_market_making(BTC_USDT_PAIR, order_id))
        view = mm.wait_state(order_id, "attention")
        assert "outside Mixin" in view.state_reason
        assert view.tallies == {BTC: Decimal("0.2")}
        assert MoneyMovement.select().count() == 0


def test_duplicated_pages_do_not_double_tallies(tmp_path, world):
    world.fake.duplicate_factor = 3
    with running_mmflow(tmp_path, world) as mm:
        pair = mm.services.config.pair(BTC_USDT_PAIR)
        orders = {}
        for _ in range(5):
            user, order_id = world.new_user(), new_order_id()
            orders[order_id] = world.invoice(pair, Decimal("0.01"), Decimal("100"))
            world.pay_invoice(user, pair, order_id, orders[order_id])
        for order_id, invoice in orders.items():
            view = mm.wait_state(order_id, "payment_complete")
            assert view.tallies == invoice
        assert Snapshot.select().count() == 15


def test_poller_survives_429_and_5xx(tmp_path, world):
    world.fake.inject("/safe/snapshots", status=429, count=2, retry_after=0.05)
    world.fake.inject("/safe/snapshots", status=503, count=2)
    world.fake.inject("/safe/assets/", status=500, count=3)
    with running_mmflow(tmp_path, world) as mm:
        pair = mm.services.config.pair(BTC_USDT_PAIR)
        order_id = new_order_id()
        invoice = world.invoice(pair, Decimal("0.01"), Decimal("100"))
        world.pay_invoice(world.new_user(), pair, order_id, invoice)
        view = mm.wait_state(order_id, "payment_complete", timeout=15)
        assert view.tallies == invoice
        statuses = [status for _, uri, status in world.fake.requests_log if uri.startswith("/safe/snapshots")]
        assert 429 in statuses and 503 in statuses


def test_fee_endpoint_down_keeps_payments_until_it_answers(tmp_path, world):
    world.fake.inject("/safe/assets/", status=503, count=12)  # outlasts the client's own retries
    with running_mmflow(tmp_path, world, mixin={"max_attempts": 2}) as mm:
        pair = mm.services.config.pair(BTC_USDT_PAIR)
        order_id = new_order_id()
        invoice = world.invoice(pair, Decimal("0.01"), Decimal("100"))
        world.pay_invoice(world.new_user(), pair, order_id, invoice)
        view = mm.wait_state(order_id, "payment_complete", timeout=20)
        assert view.tallies == invoice
        assert MoneyMovement.select().count() == 0



def test_a_malformed_snapshot_is_alerted_once_and_the_rest_of_its_page_is_ingested(tmp_path, world):
    # one snapshot of a page lacks its asset_id: the page is parsed one by one, that one alerted and skipped
    user, order_id = world.new_user(), new_order_id()
    held = world.fake.inject("/safe/snapshots", status=503, count=10_000)  # the page fills up while it is held
    with running_mmflow(tmp_path, world) as mm:
        pair = mm.services.config.pair(BTC_USDT_PAIR)
        invoice = world.invoice(pair, Decimal("0.01"), Decimal("100"))
        world.pay_invoice(user, pair, order_id, invoice)
        bad = world.pay(world.new_user(), BTC, "0.5", "anything")
        stored = world.fake.snapshots[bad["snapshot_id"]]
        stored.data = dict(stored.data, asset_id="")
        stored.encoded = json.dumps(stored.data).encode()
        held.remaining = 0
        assert mm.wait_state(order_id, "payment_complete", timeout=15).tallies == invoice
        alerts = list(Alert.select().where(Alert.kind == "malformed_snapshot"))
        assert [a.subject for a in alerts] == [bad["snapshot_id"]] and "has no asset_id" in alerts[0].message
        assert Snapshot.get_or_none(Snapshot.snapshot_id == bad["snapshot_id"]) is None
