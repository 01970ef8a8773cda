"""The Treasury tells an apparent shortfall (change of an in-flight spend not back yet) from a real one.

Built for real: the fake Mixin's Safe holds transactions unfinal (``finality_delay``), so the change
of a spend comes back late, exactly as on Mixin. UTXOs are selected in sequence order, so refunds
processed out of the order of the UTXOs they spend can lock more than they pay out:

    bot's USDT UTXOs, in sequence:  T=1000 (operator top-up) | a1 a2 a3 = 10 each (order A) | u1 u2 u3 = 1 each
    router refunds u1, u2, u3 at once:   u1 spends T, u2 spends a1, u3 spends a2   (changes 999, 9, 9 pending)
    order A times out, refunds a1..a3:   a1 spends a3; a2 and a3 find u1+u2+u3 = 3 < 10

3 USDT "available" of 10 required is no shortfall: 1030 USDT are locked in spends whose change is on
its way. The refunds must wait for it (retry_delay), not back off to retry_max_delay behind a
"top up the treasury" note and an alert.
"""
from __future__ import annotations

from decimal import Decimal

import pytest
from loguru import logger

from actors.treasury import locked_amount
from domain.ids import refund_request_id, unique_object_id
from domain.memo import encode_market_making
from integrations.mixin.client import MixinClient
from integrations.mixin.safe_wallet import SafeWallet
from sim.world import BTC, BTC_USDT_PAIR, ETH, USDT_ERC20, build_world, new_order_id
from storage.models import Alert, MoneyMovement, Order, OrderStateChange, Snapshot
from tests.support import running_mmflow, wait_until

TOP_UP_NOTE = "top up the treasury"


@pytest.fixture
def world():
    w = build_world()
    yield w
    w.fake.stop()


@pytest.fixture
def log_lines():
    """Every log line of the run (the real actors' own logging), to check what was ever said."""
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="DEBUG")
    yield lines
    logger.remove(sink)


def movement(request_id: str) -> MoneyMovement | None:
    return MoneyMovement.get_or_none(MoneyMovement.request_id == request_id)


def routed(snapshot_id: str) -> Snapshot | None:
    s = Snapshot.get_or_none(Snapshot.snapshot_id == snapshot_id)
    return s if s is not None and s.outcome else None


def shortfall_alerts() -> list[Alert]:
    return list(Alert.select().where(Alert.kind == "treasury_shortfall"))


@pytest.mark.timeout(60)
def test_refunds_wait_for_change_instead_of_alarming(tmp_path, world, log_lines):
    operator = world.new_user()
    safe = world.safe
    safe.finality_delay = 3600.0  # nothing becomes final until the test releases it (finalize_pending)
    with running_mmflow(tmp_path, world, mixin={"operator_user_ids": [operator]},
                        payments={"timeout": 2.0},
                        treasury={"retry_delay": 0.05, "retry_max_delay": 600.0}) as mm:
        top_up = world.pay(operator, USDT_ERC20, "1000", "funding")
        assert wait_until(lambda: routed(top_up["snapshot_id"]), message="top-up routed").outcome == "topup"

        owner = world.new_user()
        order_id = new_order_id()
        memo = encode_market_making(BTC_USDT_PAIR, order_id)
        paid = [world.pay(owner, USDT_ERC20, "10", memo) for _ in range(3)]  # no BTC: it will time out
        wait_until(lambda: (v := mm.order(order_id)) is not None and v.tallies == {USDT_ERC20: Decimal("30")},
                   message="the order's three payments tallied")
        strangers = [world.new_user() for _ in range(3)]
        foreign = [world.pay(u, USDT_ERC20, "1", "not an mmflow memo") for u in strangers]
        foreign_refunds = [refund_request_id(s["snapshot_id"]) for s in foreign]
        order_refunds = [refund_request_id(s["snapshot_id"]) for s in paid]

        # The router's refunds go out first and stay in flight (u1 takes T, u2 a1, u3 a2) ...
        wait_until(lambda: all((m := movement(r)) is not None and m.state == "sent" for r in foreign_refunds),
                   message="the strangers' refunds broadcast, not final")
        assert mm.state(order_id) == "payment_pending", "scenario: the order must time out after those spends"
        # ... then the order times out; its first refund takes a3, the other two find 3 USDT of 10.
        mm.wait_state(order_id, "refunding", timeout=10)
        wait_until(lambda: (m := movement(order_refunds[0])) is not None and m.state == "sent",
                   message="the order's first refund broadcast")
        wait_until(lambda: all((m := movement(r)) is not None and m.last_error for r in order_refunds[1:]),
                   message="the order's other refunds tried and held back")
        for r in order_refunds[1:]:
            assert movement(r).state == "queued"
            assert TOP_UP_NOTE not in movement(r).last_error
            assert "waiting for change" in movement(r).last_error
        assert TOP_UP_NOTE not in Order.get_by_id(order_id).state_reason
        assert any("waiting for change of" in line for line in log_lines)

        # Mixin makes the spends final: the changes (999, 9, 9) come back and the held refunds go.
        safe.finality_delay = 0.2
        safe.finalize_pending()
        everything = foreign_refunds + order_refunds
        wait_until(lambda: all(movement(r).state == "confirmed" for r in everything), timeout=15,
                   message="every refund confirmed well before retry_max_delay")
        mm.wait_state(order_id, "refunded", timeout=10)

        assert shortfall_alerts() == []
        assert not any(TOP_UP_NOTE in (h.reason or "") for h in
                       OrderStateChange.select().where(OrderStateChange.order_id == order_id))
        assert TOP_UP_NOTE not in Order.get_by_id(order_id).state_reason
        assert all(movement(r).last_error is None for r in everything)
    assert not any(TOP_UP_NOTE in line for line in log_lines), "a false shortfall was reported"
    for user, amount in [(owner, Decimal(0))] + [(u, Decimal(0)) for u in strangers]:
        assert world.fake.balance(user, USDT_ERC20) == amount  # paid, refunded once
    assert safe.unspent_total(world.bot_id, USDT_ERC20) == Decimal("1000")


def test_locked_amount_is_what_the_stored_raws_spend(world):
    """The inputs of a prepared movement, per asset, read back from its stored JSON (Σ outputs == Σ inputs):
    a transfer's whole input, and both transactions of a withdrawal whose fee is paid in the chain asset."""
    payer = world.new_user()
    for asset_id, amount in [(USDT_ERC20, "7"), (USDT_ERC20, "5"), (ETH, "1")]:
        world.pay(payer, asset_id, amount, "funding")
    client = MixinClient(world.fake.url, world.keystore, timeout=5.0, max_attempts=2, backoff_base=0.01,
                         backoff_max=0.05)
    try:
        wallet = SafeWallet(client, world.keystore)
        transfer = wallet.prepare_transfer(unique_object_id("t:transfer"), USDT_ERC20, Decimal("6"), payer, b"x")
        assert locked_amount(transfer.to_json(), USDT_ERC20) == Decimal("7")  # change 1 comes back
        assert locked_amount(transfer.to_json(), ETH) == 0
        withdrawal = wallet.prepare_withdrawal(unique_object_id("t:withdrawal"), USDT_ERC20, Decimal("10"),
                                               "0x" + "ab" * 20)
        assert withdrawal.fee_asset_id == ETH and len(withdrawal.raws) == 2
        assert locked_amount(withdrawal.to_json(), USDT_ERC20) == Decimal("12")
        assert locked_amount(withdrawal.to_json(), ETH) == Decimal("1")
        assert locked_amount("not json", USDT_ERC20) == 0  # unreadable: nothing counted, never a crash
    finally:
        client.close()


def spend_elsewhere(world, asset_id: str) -> None:
    """Another wallet holding the bot's spend key spends its outputs of ``asset_id``: on Mixin they are
    simply gone, with no snapshot the poller would see."""
    for out in world.safe.unspent(world.bot_id, asset_id):
        out.state = "spent"


def short_order(world, mm, amount: str) -> tuple[str, str]:
    """An order paid in BTC only (it times out) whose payment the bot no longer holds."""
    user = world.new_user()
    order_id = new_order_id()
    snap = world.pay(user, BTC, amount, encode_market_making(BTC_USDT_PAIR, order_id))
    spend_elsewhere(world, BTC)
    mm.wait_state(order_id, "refunding", timeout=10)
    return order_id, refund_request_id(snap["snapshot_id"])


@pytest.mark.timeout(60)
def test_real_shortfall_alerts_once_and_resolves_after_a_top_up(tmp_path, world):
    operator = world.new_user()
    with running_mmflow(tmp_path, world, mixin={"operator_user_ids": [operator]},
                        payments={"timeout": 0.5},
                        treasury={"retry_delay": 0.05, "retry_max_delay": 0.3}) as mm:
        order_id, request_id = short_order(world, mm, "0.05")
        alert = wait_until(lambda: Alert.get_or_none((Alert.kind == "treasury_shortfall") & (Alert.subject == BTC)),
                           message="a treasury_shortfall alert")
        assert not alert.resolved
        assert "0.05" in alert.message and request_id in alert.message
        wait_until(lambda: TOP_UP_NOTE in Order.get_by_id(order_id).state_reason, message="the order's note")
        assert Order.get_by_id(order_id).state_reason.startswith("refund queued, not yet sent: ")
        wait_until(lambda: movement(request_id).attempts >= 3, message="several slow retries")
        assert TOP_UP_NOTE in movement(request_id).last_error
        assert len(shortfall_alerts()) == 1  # one alert, however often it is retried

        top_up = world.pay(operator, BTC, "0.05", "funding")  # exactly enough: nothing left afterwards
        assert wait_until(lambda: routed(top_up["snapshot_id"]), message="top-up routed").outcome == "topup"
        wait_until(lambda: movement(request_id).state == "confirmed", timeout=10, message="refund confirmed")
        mm.wait_state(order_id, "refunded", timeout=10)
        wait_until(lambda: Alert.get(Alert.kind == "treasury_shortfall").resolved, message="alert resolved")
        assert len(shortfall_alerts()) == 1

        # Short again later: the same alert row opens again (unique (kind, subject)), and resolves again.
        second_order, second_request = short_order(world, mm, "0.02")
        wait_until(lambda: not Alert.get(Alert.kind == "treasury_shortfall").resolved, message="alert reopened")
        assert second_request in Alert.get(Alert.kind == "treasury_shortfall").message
        assert len(shortfall_alerts()) == 1
        world.pay(operator, BTC, "1", "funding")
        wait_until(lambda: movement(second_request).state == "confirmed", timeout=10, message="refund confirmed")
        mm.wait_state(second_order, "refunded", timeout=10)
        wait_until(lambda: Alert.get(Alert.kind == "treasury_shortfall").resolved, message="alert resolved again")
        assert len(shortfall_alerts()) == 1
