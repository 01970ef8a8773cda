"""`python run.py audit` for real: orders run through the whole flow (a settled order that traded and was left
by an exit memo carrying an amount, an order refunded while its payment was pending, a stranger's exit into a
running order, a late payment into a settled order) audit clean — hot, and again once archived; a tally
changed behind mmflow's back, a payment's stored amount that differs from its raw snapshot, and a payout left
unconfirmed are each reported on one line with exit 1."""
from __future__ import annotations

import time
from decimal import Decimal

import pytest

from domain.memo import ACTION_EXIT, encode_market_making
from domain.money import fmt
from sim.bridge import world_with_exchange
from sim.world import BTC, BTC_USDT_PAIR, USDT_ERC20, dump_toml, new_order_id
from storage import exchange_repo
from storage.models import MoneyMovement, Order, PaymentTally, Snapshot
from tests.databases import database_url
from tests.support import running_mmflow, wait_until
from tests.test_archive import FUNDING, pairs, run_py
from tests.test_flow_funding import exchange_table

D = Decimal


@pytest.mark.timeout(300)
def test_a_real_flow_audits_clean_hot_and_archived_and_tampering_is_reported(tmp_path, monkeypatch):
    ew = world_with_exchange(deposit_delay=0.1)
    ew.exchange.withdraw_delay = 0.1
    monkeypatch.setenv("MMF_BINANCE_KEY", ew.api_key)
    monkeypatch.setenv("MMF_BINANCE_SECRET", ew.secret)
    settings = {"exchanges": [exchange_table(ew)], "funding": dict(FUNDING), "pairs": pairs(),
                "strategy": {"tick_interval": 0.1}, "stream": {"slow_interval": 0.2, "fast_interval": 0.05}}
    raw = ew.world.config_dict(database_url(tmp_path / "mmflow.db"), tmp_path / "keystore.json", **settings)
    raw["archive"] = {"retention": "1s", "directory": "cold"}
    config_path = tmp_path / "mmflow.toml"
    config_path.write_text(dump_toml(raw))
    try:
        with running_mmflow(tmp_path, ew.world, **settings) as mm:
            pair = mm.services.config.pair(BTC_USDT_PAIR)
            user, settled = ew.world.new_user(), new_order_id()
            ew.world.pay_invoice(user, pair, settled, ew.world.invoice(pair, D("0.1"), D("5000")))
            mm.wait_state(settled, "running", timeout=30)
            stranger_exit = ew.world.pay(ew.world.new_user(), USDT_ERC20, "3",
                                         encode_market_making(BTC_USDT_PAIR, settled, action=ACTION_EXIT))
            ew.exchange.start_price_process(interval=0.05, vol=0.0005, taker_prob=0.9, taker_size=0.01)
            try:
                wait_until(lambda: len(exchange_repo.fills_of(settled)) >= 2, timeout=30, message="some fills")
            finally:
                ew.exchange.stop_price_process()
            wait_until(lambda: MoneyMovement.get_or_none(MoneyMovement.snapshot_id == stranger_exit["snapshot_id"]),
                       timeout=10, message="the stranger's exit refunded")
            ew.world.pay(user, USDT_ERC20, "1", encode_market_making(BTC_USDT_PAIR, settled, action=ACTION_EXIT))
            payer, refunded = ew.world.new_user(), new_order_id()
            invoice = ew.world.invoice(pair, D("0.1"), D("5000"))
            ew.world.pay(payer, BTC, invoice[BTC], encode_market_making(BTC_USDT_PAIR, refunded))
            mm.wait_state(refunded, "payment_pending", timeout=10)
            ew.world.pay(payer, USDT_ERC20, "2", encode_market_making(BTC_USDT_PAIR, refunded, action=ACTION_EXIT))
            mm.wait_state(settled, "settled", timeout=60)
            mm.wait_state(refunded, "refunded", timeout=30)
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

            # An unconfirmed payout of a settled order is a difference too (restored to change it).
            assert run_py(config_path, "archive", "restore", "--order", settled).returncode == 0
            MoneyMovement.update(state="sent").where((MoneyMovement.order_id == settled)
                                                     & (MoneyMovement.kind == "payout")).execute()
            unconfirmed = run_py(config_path, "audit", "--order", settled)
            assert unconfirmed.returncode == 1 and "is sent, not confirmed" in unconfirmed.stdout, unconfirmed
    finally:
        ew.stop()
        ew.world.fake.stop()
