"""kill -9 at every step of the way back: after a restart there is exactly one exchange withdrawal per
currency and exactly one payout per asset, and the statement still balances."""
from __future__ import annotations

import json
import os
import signal
from decimal import Decimal

import pytest

from domain.memo import ACTION_EXIT, encode_market_making
from sim.bridge import world_with_exchange
from sim.world import BTC, BTC_USDT_PAIR, USDT_ERC20, default_pairs, dump_toml, new_order_id
from domain.config import parse_config
from tests.databases import database_url, query, query_errors
from tests.support import start_service, wait_until

STEPS = ["before_exchange_withdraw", "after_exchange_withdraw", "after_deposit_stored", "payout_before_prepare",
         "payout_after_broadcast", "payout_before_confirm_recorded"]


def state_of(db_url, order_id):
    try:
        rows = query(db_url, "SELECT state, statement FROM orders WHERE order_id = ?", (order_id,))
    except query_errors():
        return None
    return rows[0] if rows else None


@pytest.mark.timeout(180)
@pytest.mark.parametrize("step", STEPS)
def test_kill_on_the_way_back_sends_each_movement_once(tmp_path, step):
    run_kill_on_the_way_back(tmp_path, step, client_id=True)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("step", ["before_exchange_withdraw", "after_exchange_withdraw"])
def test_without_a_withdrawal_client_id_the_history_finds_it_and_nothing_is_sent_twice(tmp_path, step):
    """A venue that keeps no client id (here: the operator turned it off): a withdrawal whose reply was lost
    is found again by currency, address, tag, amount and time before anything is sent again."""
    run_kill_on_the_way_back(tmp_path, step, client_id=False)


def run_kill_on_the_way_back(tmp_path, step, *, client_id: bool, venue: str = "binance"):
    ew = world_with_exchange(deposit_delay=0.1, venue=venue)
    ew.exchange.withdraw_delay = 0.2
    env = dict(os.environ, MMF_BINANCE_KEY=ew.api_key, MMF_BINANCE_SECRET=ew.secret)
    db_url = database_url(tmp_path / "mmflow.db")
    raw = ew.world.config_dict(db_url, ew.world.write_keystore(tmp_path / "keystore.json"))
    raw["funding"] = {"poll_interval": 0.05, "retry_delay": 0.1, "withdrawal_timeout": 60, "deposit_timeout": 60,
                      "return_timeout": 60, "return_retry_delay": 0.1, "lookup_grace": 1.0}
    raw["strategy"] = {"tick_interval": 0.2}
    raw["stream"] = {"slow_interval": 0.2, "fast_interval": 0.1}
    raw["exchanges"] = [{"id": "binance", "ccxt": venue, "api_key_env": "MMF_BINANCE_KEY",
                         "secret_env": "MMF_BINANCE_SECRET", "urls": {"api": ew.exchange.url},
                         "options": ew.ccxt_config()["options"], "withdraw_client_id": client_id}]
    pairs = default_pairs()
    for p in pairs:
        if p["id"] == BTC_USDT_PAIR:
            p["strategy"] = {"bid_spread": "0.002", "ask_spread": "0.002", "order_amount": "0.01",
                             "order_levels": 1, "order_refresh_time": 1}
    raw["pairs"] = pairs
    config_path = tmp_path / "mmflow.toml"
    config_path.write_text(dump_toml(raw))
    pair = parse_config(raw, read_secrets=False).pair(BTC_USDT_PAIR)
    user, order_id = ew.world.new_user(), new_order_id()
    invoice = ew.world.invoice(pair, Decimal("0.1"), Decimal("5000"))
    ew.world.pay_invoice(user, pair, order_id, invoice)
    log_path = tmp_path / "service.log"
    proc = start_service(config_path, log_path, env, step)
    try:
        wait_until(lambda: (s := state_of(db_url, order_id)) and s[0] == "running", timeout=60, interval=0.1,
                   message="order running")
        ew.world.pay(user, USDT_ERC20, "1", encode_market_making(BTC_USDT_PAIR, order_id, action=ACTION_EXIT))
        assert proc.wait(timeout=60) == -signal.SIGKILL, f"expected a self-kill at {step}"
        proc = start_service(config_path, log_path, env)
        wait_until(lambda: (s := state_of(db_url, order_id)) and s[0] == "settled", timeout=90, interval=0.1,
                   message=f"order settled after a kill at {step}: {state_of(db_url, order_id)}")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        ew.stop()
        ew.world.fake.stop()
    # Exactly one exchange withdrawal per currency.
    withdrawals = ew.exchange.withdrawals_of(ew.api_key)
    assert sorted(w.coin for w in withdrawals) == ["BTC", "USDT"], withdrawals
    if not client_id:
        assert all(not w.withdraw_order_id for w in withdrawals)  # nothing relied on a client id
    # Exactly one payout per asset: the owner's balance on the fake Mixin is what they paid, minus the
    # fees, plus one payout of what came back (a second payout would show here).
    payouts = dict(query(db_url, "SELECT asset_id, amount FROM money_movement WHERE kind = 'payout' AND order_id = ?",
                         (order_id,)))
    states = [r[0] for r in query(db_url, "SELECT state FROM money_movement WHERE kind = 'payout'")]
    assert set(payouts) == {BTC, USDT_ERC20} and states == ["confirmed", "confirmed"]
    paid_btc = invoice[BTC]
    assert ew.world.fake.balance(user, BTC) == -paid_btc + Decimal(payouts[BTC])
    assert ew.world.fake.balance(user, USDT_ERC20) == -invoice[USDT_ERC20] - 1 + Decimal(payouts[USDT_ERC20])
    assert Decimal(payouts[BTC]) == Decimal("0.1") - Decimal("0.0002")
    assert Decimal(payouts[USDT_ERC20]) == Decimal("5000") - Decimal("3") + 1
    statement = json.loads(state_of(db_url, order_id)[1])
    assert statement["balanced"] is True
    assert all(Decimal(a["check"]) == 0 for a in statement["assets"])
