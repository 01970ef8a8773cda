"""An exit in each state group, through the real service: funds still on Mixin (payment_complete) → every
payment refunded; an order in attention → the request is remembered for the operator; a paused order →
it exits from there; pause and resume refuse what they cannot do, with the reason."""
from __future__ import annotations

from decimal import Decimal

import pytest

from domain.memo import ACTION_EXIT, encode_market_making
from sim.world import BTC_USDT_PAIR, USDT_ERC20, new_order_id
from storage import commands, repo
from storage.models import Order
from tests.support import running_mmflow, wait_until
from tests.test_flow_exit import assert_settled_and_balanced, pay, run, xworld  # noqa: F401 (fixture)

D = Decimal


@pytest.fixture
def plain_world():
    """A world without an exchange for the pair: a paid order waits at payment_complete (funds on Mixin)."""
    from sim.world import build_world
    world = build_world()
    yield world
    world.fake.stop()


def pay_and_wait_complete(mm, world):
    pair = mm.services.config.pair(BTC_USDT_PAIR)
    user, order_id = world.new_user(), new_order_id()
    invoice = world.invoice(pair, D("0.1"), D("5000"))
    world.pay_invoice(user, pair, order_id, invoice)
    mm.wait_state(order_id, "payment_complete", timeout=20)
    return user, order_id, invoice


def outcome(command_id, timeout=15):
    wait_until(lambda: commands.get(command_id).result, timeout=timeout, message=f"command {command_id} carried out")
    return commands.get(command_id).result


def test_exit_while_complete_but_not_yet_sent_refunds_every_payment(tmp_path, plain_world):
    world = plain_world
    with running_mmflow(tmp_path, world) as mm:
        user, order_id, invoice = pay_and_wait_complete(mm, world)
        world.pay(user, USDT_ERC20, "1", encode_market_making(BTC_USDT_PAIR, order_id, action=ACTION_EXIT))
        view = mm.wait_state(order_id, "refunded", timeout=30)
        assert "refund" in view.state_reason
        refunds = [m for m in repo.order_movements(order_id) if m.kind == "refund"]
        assert sorted(m.amount for m in refunds) == sorted(list(invoice.values()) + [D("1")])
        assert not [m for m in repo.order_movements(order_id) if m.kind == "withdrawal"]
        for asset in invoice:
            assert world.fake.balance(user, asset) == 0


def test_exit_of_an_order_in_attention_is_remembered_for_the_operator(tmp_path, xworld):  # noqa: F811
    with run(tmp_path, xworld) as mm:
        _, order_id = pay(xworld, mm)
        mm.wait_state(order_id, "running", timeout=30)
        mm.services.writer.run(repo.set_order_state, order_id, repo.OrderState.ATTENTION, "test: an operator looks",
                               1.0)
        result = outcome(commands.queue(order_id, "exit", {"reason": "owner called"}))
        assert result.startswith("done: exit remembered; an operator must resolve it first"), result
        row = Order.get_by_id(order_id)
        assert row.state == "attention" and row.exit_source == "operator"
        # The operator resolves it into the exit: it carries on from there.
        result = outcome(commands.queue(order_id, "resolve", {"to": "stopping", "reason": "the owner's exit"}))
        assert result.startswith("done: stopping"), result
        assert_settled_and_balanced(mm, order_id)


def test_a_paused_order_exits_from_paused(tmp_path, xworld):  # noqa: F811
    with run(tmp_path, xworld) as mm:
        _, order_id = pay(xworld, mm)
        mm.wait_state(order_id, "running", timeout=30)
        assert outcome(commands.queue(order_id, "resume", {})) == "done: already running"
        assert outcome(commands.queue(order_id, "pause", {})).startswith("done: paused")
        assert outcome(commands.queue(order_id, "exit", {})).startswith("done: exiting")
        assert_settled_and_balanced(mm, order_id)
        assert "paused" in [h.to_state for h in repo.order_history(order_id)]
        assert outcome(commands.queue(order_id, "pause", {})) == "refused: order is settled"
        assert outcome(commands.queue(new_order_id(), "pause", {})) == "refused: no such order"


def test_pause_refuses_an_order_that_is_not_running(tmp_path, plain_world):
    with running_mmflow(tmp_path, plain_world) as mm:
        _, order_id, _ = pay_and_wait_complete(mm, plain_world)
        result = outcome(commands.queue(order_id, "pause", {}))
        assert result == "refused: order is payment_complete; only a running order can be paused"
        result = outcome(commands.queue(order_id, "resolve", {"to": "settled", "reason": "x"}))
        assert result.startswith("refused: order is payment_complete, not in attention")
        import time
        from storage.models import OrderCommand
        odd = OrderCommand.create(order_id=order_id, command="frobnicate", args="{}", created_at=time.time()).id
        assert outcome(odd) == "refused: unknown command 'frobnicate'"
        bad = OrderCommand.create(order_id=order_id, command="pause", args="[1]", created_at=time.time()).id
        assert outcome(bad) == "refused: arguments are not a JSON object"


def test_a_payment_into_a_refunded_order_is_refunded_also_across_a_restart(tmp_path, plain_world):
    world = plain_world
    from sim.world import XIN
    with running_mmflow(tmp_path, world, payments={"timeout": 0.5, "check_delay": 0.05}) as mm:
        order_id = new_order_id()
        world.pay(world.new_user(), XIN, "3", encode_market_making(BTC_USDT_PAIR, order_id))
        mm.wait_state(order_id, "refunded", timeout=20)
    # While the service is down the user pays into the refunded order; it is refunded after the restart.
    user = world.new_user()
    late = world.pay(user, USDT_ERC20, "7", encode_market_making(BTC_USDT_PAIR, order_id))
    with running_mmflow(tmp_path, world, payments={"timeout": 0.5, "check_delay": 0.05}):
        from storage.models import MoneyMovement
        wait_until(lambda: (m := MoneyMovement.get_or_none(MoneyMovement.snapshot_id == late["snapshot_id"]))
                   and m.state == "confirmed", timeout=20, message="late payment refunded")
        refund = MoneyMovement.get(MoneyMovement.snapshot_id == late["snapshot_id"])
        assert refund.memo.endswith(":order_refunded") and refund.amount == D("7")
        assert world.fake.balance(user, USDT_ERC20) == 0
        assert Order.get_by_id(order_id).state == "refunded"


def test_a_command_queued_in_the_services_own_process_is_carried_out_without_waiting_for_the_poll(
        tmp_path, plain_world):
    """The HTTP API queues in the service's process: that wakes the OrderSupervisor at once. With the poll an hour
    apart, only the wake can carry these out; after the tree stops, queuing wakes nothing (no dead actor told)."""
    with running_mmflow(tmp_path, plain_world, commands={"poll_interval": 3600}):
        assert outcome(commands.queue(new_order_id(), "pause", {})) == "refused: no such order"
        assert outcome(commands.queue(new_order_id(), "exit", {})) == "refused: no such order"
    assert commands._in_process_wakes == []
