"""The Treasury executes exactly the Mixin-side kinds of the outbox (refund, withdrawal, payout).

Other kinds live in the same table and are never touched by it: `return` (exchange → Mixin, run by the
order's actor through the exchange API) and `dust` (a record, state `kept`). A payout is a Safe transfer
to a Mixin user, sent and confirmed exactly like a refund. Rows are written through the service's own
writer, as the actors that will queue them do; the real actor tree runs against the fake Mixin.
"""
from __future__ import annotations

import time
from decimal import Decimal

import pytest

from actors.protocol import MovementsQueued
from actors.treasury import TREASURY_KINDS
from domain.ids import unique_object_id
from sim.world import BTC, BTC_USDT_PAIR, ETH, USDT_ERC20, XIN, build_world, new_order_id
from storage.models import Alert, MoneyMovement, Order, Snapshot
from tests.support import running_mmflow, wait_until


@pytest.fixture
def world():
    w = build_world()
    yield w
    w.fake.stop()


def movement(request_id: str) -> MoneyMovement:
    return MoneyMovement.get_by_id(request_id)


def as_dict(request_id: str) -> dict:
    return dict(MoneyMovement.select().where(MoneyMovement.request_id == request_id).dicts().get())


def queue(mm, *rows: dict) -> None:
    def unit():
        now = time.time()
        for row in rows:
            MoneyMovement.insert(**{"memo": "", "created_at": now, "updated_at": now, **row}).execute()
    mm.services.writer.run(unit)


def payout(request_id: str, order_id: str, recipient: str, asset_id: str, amount: str) -> dict:
    return dict(request_id=request_id, kind="payout", cause=f"payout:{request_id}", order_id=order_id,
                asset_id=asset_id, amount=Decimal(amount), recipient_id=recipient, memo=f"Payout:{order_id}",
                state="queued")


def add_order(mm, state: str, reason: str) -> str:
    order_id = new_order_id()

    def unit():
        now = time.time()
        Order.insert(order_id=order_id, pair_id=BTC_USDT_PAIR, user_id=None, state=state, state_reason=reason,
                     base_fee_asset_id=BTC, base_fee_amount=Decimal("0.0001"), quote_fee_asset_id=ETH,
                     quote_fee_amount=Decimal("0.002"), market_making_fee_percent=Decimal("0.1"),
                     created_at=now, updated_at=now).execute()
    mm.services.writer.run(unit)
    return order_id


def top_up(world, operator: str, asset_id: str, amount: str) -> None:
    snap = world.pay(operator, asset_id, amount, "funding")
    wait_until(lambda: (s := Snapshot.get_or_none(Snapshot.snapshot_id == snap["snapshot_id"])) is not None
               and s.outcome == "topup", message="top-up routed")


def test_treasury_kinds():
    assert TREASURY_KINDS == ("refund", "withdrawal", "payout")


@pytest.mark.timeout(60)
def test_returns_and_dust_are_never_touched_and_payouts_are_sent(tmp_path, world):
    operator = world.new_user()
    config = dict(mixin={"operator_user_ids": [operator]})
    order_id = new_order_id()
    recipient = world.new_user()
    first_payout = unique_object_id("mmflow:payout:", order_id, ":1")
    second_payout = unique_object_id("mmflow:payout:", order_id, ":2")
    return_id = unique_object_id("mmflow:return:", order_id, ":quote")
    dust_id = unique_object_id("mmflow:dust:", order_id, ":quote")
    with running_mmflow(tmp_path, world, **config) as mm:
        top_up(world, operator, USDT_ERC20, "100")
        queue(mm,
              # exchange → the bot's Mixin deposit address: the order's actor runs it, never the Treasury
              dict(request_id=return_id, kind="return", cause=f"return:{order_id}:quote", order_id=order_id,
                   asset_id=USDT_ERC20, amount=Decimal("30"), recipient_id="", state="queued",
                   destination="0x000000000000000000000000000000000000dEaD", exchange_account="binance"),
              dict(request_id=dust_id, kind="dust", cause=f"dust:{order_id}:quote", order_id=order_id,
                   asset_id=USDT_ERC20, amount=Decimal("0.0001"), recipient_id="", state="kept"),
              payout(first_payout, order_id, recipient, USDT_ERC20, "12"),
              payout(second_payout, order_id, recipient, USDT_ERC20, "3"))  # never announced: the sweep finds it
        untouched = {rid: as_dict(rid) for rid in (return_id, dust_id)}
        mm.services.tell("treasury", MovementsQueued((return_id, dust_id, first_payout)))
        wait_until(lambda: movement(first_payout).state == "confirmed", message="the payout confirmed")
        paid = movement(first_payout)
        assert paid.transaction_hash and paid.mixin_snapshot_id and paid.last_error is None
        assert world.safe.request(first_payout).state == "spent"
        # A movement nobody announced (its message lost) is found by the Treasury's outbox sweep.
        wait_until(lambda: movement(second_payout).state == "confirmed", timeout=30,
                   message="the unannounced payout found by the sweep and confirmed")
        assert world.fake.balance(recipient, USDT_ERC20) == Decimal("15")
        assert {rid: as_dict(rid) for rid in untouched} == untouched

    # Restart: the Treasury resumes the open rows of its kinds only (the queued return is open too) and sends
    # nothing twice.
    with running_mmflow(tmp_path, world, **config):
        wait_until(lambda: world.safe.unspent_total(world.bot_id, USDT_ERC20) == Decimal("85"),
                   message="the treasury's view settled")
        assert world.fake.balance(recipient, USDT_ERC20) == Decimal("15")
        assert {rid: as_dict(rid) for rid in untouched} == untouched
    assert world.safe.request(return_id) is None and world.safe.request(dust_id) is None
    assert world.safe.unspent_total(world.bot_id, USDT_ERC20) == Decimal("85")


@pytest.mark.timeout(60)
def test_the_note_names_the_kind_and_spares_final_orders(tmp_path, world):
    """The bot holds no XIN: both payouts are short. The settling order is told why its payout waits; the
    refunded order's reason is its history and stays."""
    with running_mmflow(tmp_path, world, treasury={"retry_delay": 0.05, "retry_max_delay": 600.0}) as mm:
        stopped = add_order(mm, "settling", "paying the owner")
        refunded = add_order(mm, "refunded", "2 refunds confirmed by Mixin")
        user = world.new_user()
        to_stopped = unique_object_id("mmflow:payout:", stopped)
        to_refunded = unique_object_id("mmflow:payout:", refunded)
        queue(mm, payout(to_stopped, stopped, user, XIN, "5"), payout(to_refunded, refunded, user, XIN, "5"))
        mm.services.tell("treasury", MovementsQueued((to_stopped, to_refunded)))
        wait_until(lambda: movement(to_stopped).last_error and movement(to_refunded).last_error,
                   message="both payouts tried")
        reason = Order.get_by_id(stopped).state_reason
        assert reason.startswith("payout queued, not yet sent: insufficient balance in the bot's wallet: 0 ")
        assert "top up the treasury" in reason
        assert Order.get_by_id(stopped).state == "settling"
        assert Order.get_by_id(refunded).state_reason == "2 refunds confirmed by Mixin"
        assert movement(to_refunded).state == movement(to_stopped).state == "queued"
        alerts = list(Alert.select().where(Alert.kind == "treasury_shortfall"))
        assert [(a.subject, a.resolved) for a in alerts] == [(XIN, False)]
