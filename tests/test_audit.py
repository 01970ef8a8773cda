"""`python run.py audit` for real: orders run through the whole flow (a settled order that traded and was left
by an exit memo carrying an amount, an order refunded while its payment was pending, a stranger's exit into a
running order, a late payment into a settled order) audit clean — hot, and again once archived; a tally
changed behind mmflow's back, a payment's stored amount that differs from its raw snapshot, and a payout left
unconfirmed are each reported on one line with exit 1."""
from __future__ import annotations

import time

import pytest

from actors.system import stop_tree
from domain.memo import ACTION_EXIT, encode_market_making
from domain.money import fmt
from sim.world import BTC, BTC_USDT_PAIR, USDT_ERC20, new_order_id
from storage.models import MoneyMovement, Order, PaymentTally, Snapshot
from tests.support import wait_until
from tests.test_archive import flow_service, run_py, settle_and_refund


@pytest.mark.timeout(300)
def test_a_real_flow_audits_clean_hot_and_archived_and_tampering_is_reported(tmp_path, monkeypatch):
    def strangers_exit(order_id):
        snapshot = ew.world.pay(ew.world.new_user(), USDT_ERC20, "3",
                                encode_market_making(BTC_USDT_PAIR, order_id, action=ACTION_EXIT))
        wait_until(lambda: MoneyMovement.get_or_none(MoneyMovement.snapshot_id == snapshot["snapshot_id"]),
                   timeout=10, message="the stranger's exit refunded")

    with flow_service(tmp_path, monkeypatch) as (ew, mm, config_path):
        user, settled, refunded = settle_and_refund(ew, mm, while_running=strangers_exit)
        late = ew.world.pay(user, BTC, "0.01", encode_market_making(BTC_USDT_PAIR, settled))
        wait_until(lambda: (MoneyMovement.get_or_none(MoneyMovement.snapshot_id == late["snapshot_id"])
                            or MoneyMovement(state="")).state == "confirmed", timeout=10, message="late refund")

        clean = run_py(config_path, "audit")
        assert clean.returncode == 0, clean.stdout
        assert clean.stdout.strip().splitlines() == ["2 orders replayed from their raw snapshots: no differences"]

        # Tampering, each reported on its own line.
        tally = PaymentTally.get((PaymentTally.order_id == settled) & (PaymentTally.asset_id == BTC)).amount
        PaymentTally.update(amount=PaymentTally.amount.concat("1")).where(
            (PaymentTally.order_id == settled) & (PaymentTally.asset_id == BTC)).execute()
        payment = Snapshot.get((Snapshot.order_id == refunded) & (Snapshot.purpose == "payment"))
        Snapshot.update(amount=payment.amount + 1).where(Snapshot.snapshot_id == payment.snapshot_id).execute()
        tampered = run_py(config_path, "audit")
        assert tampered.returncode == 1, tampered
        lines = tampered.stdout.strip().splitlines()
        assert lines[-1].endswith("differences") and not lines[-1].endswith("no differences"), lines
        assert f"order {settled}: tally {BTC}: stored {fmt(tally)}1 from 1 payments, replay {fmt(tally)} from 1 payments" in tampered.stdout, lines
        assert [line for line in lines if line.startswith(f"order {refunded}: snapshot {payment.snapshot_id}: "
                                                          "stored amount ")], lines
        only = run_py(config_path, "audit", "--order", settled)
        assert only.returncode == 1 and len(only.stdout.strip().splitlines()) == 2, only
        assert run_py(config_path, "audit", "--order", new_order_id()).returncode == 2

        # Put right, archived, and audited again from the archive.
        PaymentTally.update(amount=tally).where(
            (PaymentTally.order_id == settled) & (PaymentTally.asset_id == BTC)).execute()
        Snapshot.update(amount=payment.amount).where(Snapshot.snapshot_id == payment.snapshot_id).execute()
        wait_until(lambda: all(Order.get_by_id(o).closed_at < time.time() - 1.5 for o in (settled, refunded)),
                   timeout=5)
        moved = run_py(config_path, "archive", "run")
        assert moved.returncode == 0 and "archived 2 orders" in moved.stdout, moved
        again = run_py(config_path, "audit")
        assert again.returncode == 0 and "2 orders replayed" in again.stdout, again

        # An unconfirmed payout of a settled order is a difference too (restored to change it). The service stops
        # first: running, its treasury would confirm the "sent" payout again before the audit looks.
        assert run_py(config_path, "archive", "restore", "--order", settled).returncode == 0
        stop_tree(mm.root, timeout=10)
        MoneyMovement.update(state="sent").where((MoneyMovement.order_id == settled)
                                                 & (MoneyMovement.kind == "payout")).execute()
        unconfirmed = run_py(config_path, "audit", "--order", settled)
        assert unconfirmed.returncode == 1 and "is sent, not confirmed" in unconfirmed.stdout, unconfirmed
