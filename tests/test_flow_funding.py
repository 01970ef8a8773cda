"""Stages 5–6 end to end: a paid order's principal moves from the fake Mixin to the fake exchange
(real ccxt.binance against it), both deposits are matched and credited, the order's ledger opens."""
from __future__ import annotations

from decimal import Decimal

import pytest

from sim.bridge import world_with_exchange
from sim.world import BTC_USDT_PAIR, new_order_id
from storage import repo
from storage.models import MoneyMovement
from tests.support import running_mmflow

FAST_FUNDING = {"poll_interval": 0.05, "retry_delay": 0.1, "withdrawal_timeout": 30, "deposit_timeout": 30}


@pytest.fixture
def xworld(monkeypatch):
    ew = world_with_exchange(deposit_delay=0.2)
    monkeypatch.setenv("MMF_BINANCE_KEY", ew.api_key)
    monkeypatch.setenv("MMF_BINANCE_SECRET", ew.secret)
    yield ew
    ew.stop()
    ew.world.fake.stop()


def exchange_table(ew, **extra) -> dict:
    """The [[exchanges]] table of the world's fake venue (its id is always "binance": the pairs name it)."""
    table = {"id": "binance", "ccxt": ew.exchange.venue, "api_key_env": "MMF_BINANCE_KEY",
             "secret_env": "MMF_BINANCE_SECRET", "urls": {"api": ew.exchange.url},
             "options": ew.ccxt_config()["options"]}
    table.update(extra)
    return table


def pay_order(ew, mm, base="0.1", quote="5000"):
    pair = mm.services.config.pair(BTC_USDT_PAIR)
    user, order_id = ew.world.new_user(), new_order_id()
    invoice = ew.world.invoice(pair, Decimal(base), Decimal(quote))
    ew.world.pay_invoice(user, pair, order_id, invoice)
    return order_id, invoice


def test_paid_order_reaches_deposit_confirmed(tmp_path, xworld):
    with running_mmflow(tmp_path, xworld.world, exchanges=[exchange_table(xworld)], funding=FAST_FUNDING) as mm:
        order_id, invoice = pay_order(xworld, mm)
        mm.wait_passed(order_id, "deposit_confirmed", timeout=30)
        reasons = {h.to_state: h.reason for h in repo.order_history(order_id)}
        assert "credited on binance" in reasons["deposit_confirmed"]
        # The order's own ledger holds exactly the principal: fees paid for the move, mm fee kept.
        assert repo.ledger_balances(order_id) == {"BTC": Decimal("0.1"), "USDT": Decimal("5000")}
        legs = {m.leg: m for m in MoneyMovement.select().where(MoneyMovement.kind == "withdrawal")}
        assert set(legs) == {"base", "quote"}
        assert legs["base"].amount == Decimal("0.1") and legs["quote"].amount == Decimal("5000")
        assert legs["quote"].network == "ERC20"  # USDT-ERC20's chain is Ethereum
        for m in legs.values():
            assert m.state == "confirmed" and m.withdrawal_hash and m.deposit_id
        # Exactly two withdrawals left the fake Mixin, and the exchange account holds them.
        assert len(xworld.world.safe.withdrawals) == 2
        assert xworld.exchange.balance(xworld.api_key, "BTC")[0] == Decimal("0.1")
        assert xworld.exchange.balance(xworld.api_key, "USDT")[0] == Decimal("5000")
        states = [h.to_state for h in repo.order_history(order_id)]
        assert states[:6] == ["payment_pending", "payment_complete", "withdrawing", "withdrawal_confirmed",
                              "deposit_confirming", "deposit_confirmed"]


def test_two_orders_each_claim_their_own_deposit(tmp_path, xworld):
    with running_mmflow(tmp_path, xworld.world, exchanges=[exchange_table(xworld)], funding=FAST_FUNDING) as mm:
        first, _ = pay_order(xworld, mm, "0.1", "5000")
        second, _ = pay_order(xworld, mm, "0.2", "700")
        mm.wait_passed(first, "deposit_confirmed", timeout=30)
        mm.wait_passed(second, "deposit_confirmed", timeout=30)
        assert repo.ledger_balances(first) == {"BTC": Decimal("0.1"), "USDT": Decimal("5000")}
        assert repo.ledger_balances(second) == {"BTC": Decimal("0.2"), "USDT": Decimal("700")}
        ids = [m.deposit_id for m in MoneyMovement.select().where(MoneyMovement.kind == "withdrawal")]
        assert len(ids) == len(set(ids)) == 4


def test_exchange_faults_do_not_duplicate_withdrawals(tmp_path, xworld):
    """Timeouts and 5xx while fetching addresses and deposits: retried, nothing sent twice."""
    xworld.exchange.inject("/sapi/v1/capital/deposit/address", status=503, count=2)
    xworld.exchange.inject("/sapi/v1/capital/deposit/hisrec", status=500, count=3)
    with running_mmflow(tmp_path, xworld.world, exchanges=[exchange_table(xworld)], funding=FAST_FUNDING) as mm:
        order_id, _ = pay_order(xworld, mm)
        mm.wait_passed(order_id, "deposit_confirmed", timeout=40)
        assert len(xworld.world.safe.withdrawals) == 2
        assert MoneyMovement.select().where(MoneyMovement.kind == "withdrawal").count() == 2


def test_deposit_never_credited_goes_to_attention_not_refund(tmp_path, xworld):
    xworld.bridge.disconnect()  # the exchange never sees the deposits
    funding = dict(FAST_FUNDING, deposit_timeout=1.0)
    with running_mmflow(tmp_path, xworld.world, exchanges=[exchange_table(xworld)], funding=funding) as mm:
        order_id, _ = pay_order(xworld, mm)
        view = mm.wait_state(order_id, "attention", timeout=30)
        assert "do not refund" in view.state_reason and "withdrawal hash" in view.state_reason
        assert MoneyMovement.select().where(MoneyMovement.kind == "refund").count() == 0


def test_asset_without_network_on_the_exchange_needs_an_operator(tmp_path, xworld):
    """Force a network the exchange does not list: a clear error for the order, not a guess."""
    eth_chain = "43d61dcd-e413-450d-80b8-101d5e903357"
    table = exchange_table(xworld, networks={eth_chain: "SOL"})
    with running_mmflow(tmp_path, xworld.world, exchanges=[table], funding=FAST_FUNDING) as mm:
        order_id, _ = pay_order(xworld, mm)
        view = mm.wait_state(order_id, "attention", timeout=30)
        assert "no usable network" in view.state_reason
        assert len(xworld.world.safe.withdrawals) == 0
