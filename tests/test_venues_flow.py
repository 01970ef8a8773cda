"""The same flow on every venue with a fake of ours (parametrised, never copied): stage 5–6 funding, the
quoting loop with fills (ledgers sum to the shared account), reconciliation after kill -9 right after a
create or a cancel was sent and with live orders, the exit with a refused withdrawal retried, and kill -9 right after the exchange withdrawal is sent
(exactly one withdrawal per currency) — with the venue's client id and, for every venue, without it."""
from __future__ import annotations

from decimal import Decimal as D

import pytest

from sim.bridge import world_with_exchange
from storage import exchange_repo, exit_repo, repo
from tests.support import wait_until
from tests.test_exit_crash import run_kill_on_the_way_back
from tests.test_flow_exit import assert_settled_and_balanced, exit_memo, pay, run
from tests.test_strategy_crash import run_kill_with_orders

VENUES = ["binance", "mexc", "gate", "bybit"]
OTHERS = [v for v in VENUES if v != "binance"]   # binance runs these paths in its own test files too


@pytest.fixture(params=VENUES)
def vworld(request, monkeypatch):
    ew = world_with_exchange(deposit_delay=0.1, venue=request.param)
    ew.exchange.withdraw_delay = 0.1
    monkeypatch.setenv("MMF_BINANCE_KEY", ew.api_key)
    monkeypatch.setenv("MMF_BINANCE_SECRET", ew.secret)
    yield ew
    ew.stop()
    ew.world.fake.stop()


def test_fund_quote_fill_and_exit(tmp_path, vworld):
    ew = vworld
    with run(tmp_path, ew) as mm:
        user, order_id = pay(ew, mm)
        mm.wait_passed(order_id, "deposit_confirmed", timeout=40)
        assert repo.ledger_balances(order_id) in ({"BTC": D("0.1"), "USDT": D("5000")},)
        mm.wait_state(order_id, "running", timeout=30)
        wait_until(lambda: {o.side for o in exchange_repo.open_orders_of(order_id)} == {"buy", "sell"}, timeout=20,
                   message="quotes on both sides")
        ew.exchange.start_price_process(interval=0.05, vol=0.0005, taker_prob=0.9, taker_size=0.01)
        try:
            wait_until(lambda: exchange_repo.fills_of(order_id), timeout=40, message="a fill")
        finally:
            ew.exchange.stop_price_process()
        wait_until(lambda: exchange_repo.orders_in_states(["submitted", "pending_cancel"]) == [], timeout=15)
        for code in ("BTC", "USDT"):   # the shared account holds exactly the order's ledger
            wait_until(lambda: sum(ew.exchange.balance(ew.api_key, code)) == repo.ledger_balances(order_id)[code],
                       timeout=15, message=f"{code} account == ledger")
        ew.exchange.inject_withdrawal_fault("reject", 1, "BTC")
        ew.world.pay(user, "4d8c508b-91c5-375b-92b0-ee702ed2dac5", "1", exit_memo(order_id))
        assert_settled_and_balanced(mm, order_id)
        btc = next(m for m in exit_repo.returns_of(order_id) if m.exchange_code == "BTC")
        assert btc.rejections == 1
        completed = [w for w in ew.exchange.withdrawals_of(ew.api_key)]
        assert sorted(w.coin for w in completed) == ["BTC", "USDT"]


@pytest.mark.timeout(150)
@pytest.mark.parametrize("step", ["order_sent", "cancel_sent", "live"])
@pytest.mark.parametrize("venue", OTHERS)
def test_reconciliation_after_kill_with_orders(tmp_path, venue, step, monkeypatch):
    """kill -9 right after a create or a cancel went out (the reply lost: the order is found by its client id,
    which each venue looks up its own way), and with quotes resting and filling."""
    run_kill_with_orders(tmp_path, step, monkeypatch, venue=venue)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("client_id", [True, False], ids=["client_id", "history"])
@pytest.mark.parametrize("venue", OTHERS)
def test_kill_right_after_the_exchange_withdrawal_is_sent(tmp_path, venue, client_id):
    run_kill_on_the_way_back(tmp_path, "after_exchange_withdraw", client_id=client_id, venue=venue)
