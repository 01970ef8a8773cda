"""kill -9 while the principal is on its way to the exchange: no second withdrawal, order still arrives."""
from __future__ import annotations

import os
import signal
from decimal import Decimal
from pathlib import Path

import pytest

from sim.bridge import world_with_exchange
from sim.world import BTC_USDT_PAIR, dump_toml, new_order_id
from domain.config import parse_config
from tests.databases import database_url, query, query_errors
from tests.support import start_service, wait_until

ROOT = Path(__file__).resolve().parent.parent


def order_state(db_url, order_id):
    try:
        rows = query(db_url, "SELECT to_state FROM order_state_change WHERE order_id = ?", (order_id,))
    except query_errors():
        return None
    return "deposit_confirmed" if ("deposit_confirmed",) in rows else None


@pytest.mark.timeout(120)
@pytest.mark.parametrize("step", ["before_prepare", "after_verify", "after_broadcast", "before_confirm_recorded"])
def test_kill_during_withdrawal_sends_each_leg_once(tmp_path, step, monkeypatch):
    ew = world_with_exchange(deposit_delay=0.2)
    monkeypatch.setenv("MMF_BINANCE_KEY", ew.api_key)
    monkeypatch.setenv("MMF_BINANCE_SECRET", ew.secret)
    env = dict(os.environ, MMF_BINANCE_KEY=ew.api_key, MMF_BINANCE_SECRET=ew.secret)
    db_url = database_url(tmp_path / "mmflow.db")
    raw = ew.world.config_dict(db_url, ew.world.write_keystore(tmp_path / "keystore.json"))
    raw["funding"] = {"poll_interval": 0.05, "retry_delay": 0.1, "withdrawal_timeout": 60, "deposit_timeout": 60}
    raw["exchanges"] = [{"id": "binance", "ccxt": "binance", "api_key_env": "MMF_BINANCE_KEY",
                         "secret_env": "MMF_BINANCE_SECRET", "urls": {"api": ew.exchange.url},
                         "options": ew.ccxt_config()["options"]}]
    config_path = tmp_path / "mmflow.toml"
    config_path.write_text(dump_toml(raw))
    pair = parse_config(raw).pair(BTC_USDT_PAIR)
    order_id = new_order_id()
    ew.world.pay_invoice(ew.world.new_user(), pair, order_id, ew.world.invoice(pair, Decimal("0.3"), Decimal("900")))
    log_path = tmp_path / "service.log"
    proc = start_service(config_path, log_path, env, step)
    try:
        assert proc.wait(timeout=60) == -signal.SIGKILL, f"expected a self-kill at {step}"
        proc = start_service(config_path, log_path, env)
        wait_until(lambda: order_state(db_url, order_id) == "deposit_confirmed", timeout=60, interval=0.1,
                   message="order funded after the kill")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        ew.stop()
        ew.world.fake.stop()
    withdrawals = ew.world.safe.withdrawals
    assert len(withdrawals) == 2, f"exactly one withdrawal per leg, got {len(withdrawals)}"
    assert ew.exchange.balance(ew.api_key, "BTC")[0] == Decimal("0.3")
    assert ew.exchange.balance(ew.api_key, "USDT")[0] == Decimal("900")
