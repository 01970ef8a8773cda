"""The way back end to end: exit by memo, by an operator and by the end time, in every state group, with the
funds withdrawn from the fake exchange (real ccxt.binance) to the bot's Mixin deposit address, matched on
arrival and paid out to the owner — and a statement that balances exactly for every settled order."""
from __future__ import annotations

from decimal import Decimal

import pytest

from domain.memo import ACTION_DEPOSIT, ACTION_EXIT, encode_market_making
from sim.bridge import world_with_exchange
from sim.world import BTC, BTC_USDT_PAIR, ETH, USDT_ERC20, default_pairs, new_order_id
from storage import commands, exit_repo, repo
from storage.models import MoneyMovement, Order, Snapshot
from storage.statements import order_statement
from tests.support import running_mmflow, wait_until
from tests.test_flow_funding import exchange_table

D = Decimal
FUNDING = {"poll_interval": 0.05, "retry_delay": 0.1, "withdrawal_timeout": 30, "deposit_timeout": 30,
           "return_timeout": 30, "return_retry_delay": 0.1, "return_max_attempts": 3, "lookup_grace": 0.5}
STRATEGY = {"bid_spread": "0.002", "ask_spread": "0.002", "order_amount": "0.01", "order_levels": 1,
            "order_refresh_time": 1, "order_refresh_tolerance_pct": "0.0005", "filled_order_delay": 1}


def pairs(**extra):
    out = default_pairs()
    for pair in out:
        if pair["id"] == BTC_USDT_PAIR:
            pair["strategy"] = dict(STRATEGY)
            pair.update(extra)
    return out


@pytest.fixture
def xworld(monkeypatch):
    ew = world_with_exchange(deposit_delay=0.1)
    ew.exchange.withdraw_delay = 0.1
    monkeypatch.setenv("MMF_BINANCE_KEY", ew.api_key)
    monkeypatch.setenv("MMF_BINANCE_SECRET", ew.secret)
    yield ew
    ew.stop()
    ew.world.fake.stop()


def run(tmp_path, ew, pair_extra=None, **overrides):
    settings = {"exchanges": [exchange_table(ew)], "funding": dict(FUNDING), "pairs": pairs(**(pair_extra or {})),
                "strategy": {"tick_interval": 0.1}, "stream": {"slow_interval": 0.2, "fast_interval": 0.05}}
    settings.update(overrides)
    return running_mmflow(tmp_path, ew.world, **settings)


def pay(ew, mm, base="0.1", quote="5000", user=None):
    pair = mm.services.config.pair(BTC_USDT_PAIR)
    user, order_id = user or ew.world.new_user(), new_order_id()
    ew.world.pay_invoice(user, pair, order_id, ew.world.invoice(pair, D(base), D(quote)))
    return user, order_id


def exit_memo(order_id: str) -> str:
    return encode_market_making(BTC_USDT_PAIR, order_id, action=ACTION_EXIT)


def assert_settled_and_balanced(mm, order_id):
    view = mm.wait_state(order_id, "settled", timeout=60)
    statement = order_statement(order_id, mm.services.config)
    assert statement.final and statement.balanced, statement.as_dict()
    frozen = exit_repo.frozen_statement(order_id)
    assert frozen is not None and frozen["balanced"] is True
    return view, statement


def user_net(ew, user, asset):
    """What the user got back minus what they paid (the fake lets user balances go negative)."""
    return ew.world.fake.balance(user, asset)


def test_exit_memo_from_the_owner_brings_everything_back_and_settles(tmp_path, xworld):
    with run(tmp_path, xworld) as mm:
        user, order_id = pay(xworld, mm)
        mm.wait_state(order_id, "running", timeout=30)
        wait_until(lambda: repo.ledger_balances(order_id), timeout=10)
        xworld.world.pay(user, USDT_ERC20, "1", exit_memo(order_id))
        view, statement = assert_settled_and_balanced(mm, order_id)
        history = [h.to_state for h in repo.order_history(order_id)]
        assert history[-5:] == ["stopping", "stopped", "returning_funds", "settling", "settled"]
        payouts = {m.asset_id: m for m in exit_repo.payouts_of(order_id)}
        assert set(payouts) == {BTC, USDT_ERC20} and all(m.state == "confirmed" for m in payouts.values())
        returns = exit_repo.returns_of(order_id)
        assert {m.exchange_code for m in returns} == {"BTC", "USDT"}
        assert all(m.state == "arrived" and m.arrival_snapshot_id and m.exchange_withdrawal_id for m in returns)
        # One exchange withdrawal per currency, and the account holds nothing of this order any more.
        assert len(xworld.exchange.withdrawals_of(xworld.api_key)) == 2
        assert repo.ledger_balances(order_id) == {"BTC": D(0), "USDT": D(0)}
        # The 1 USDT sent with the exit request comes back with the settlement.
        usdt = next(a for a in statement.assets if a.asset_id == USDT_ERC20)
        assert usdt.terms["paid_out"] == payouts[USDT_ERC20].amount
        assert usdt.terms["exchange_withdrawal_fees"] == D("3")
        # Every arrival snapshot is routed to the order as a return, never an alert.
        for m in returns:
            snap = Snapshot.get_by_id(m.arrival_snapshot_id)
            assert snap.outcome == "return" and snap.order_id == order_id
        assert not Order.get_by_id(order_id).state == "attention"


def test_operator_exit_of_a_trading_order_settles_with_a_balanced_statement(tmp_path, xworld):
    with run(tmp_path, xworld) as mm:
        user, order_id = pay(xworld, mm)
        mm.wait_state(order_id, "running", timeout=30)
        xworld.exchange.start_price_process(interval=0.05, vol=0.0005, taker_prob=0.9, taker_size=0.01)
        try:
            from storage import exchange_repo
            wait_until(lambda: len(exchange_repo.fills_of(order_id)) >= 2, timeout=30, message="some fills")
        finally:
            xworld.exchange.stop_price_process()
        command = commands.queue(order_id, "exit", {"reason": "client asked by phone"})
        wait_until(lambda: commands.get(command).result, timeout=20)
        assert commands.get(command).result.startswith("done: exiting")
        view, statement = assert_settled_and_balanced(mm, order_id)
        assert statement.trading["fills"] >= 2
        base = next(a for a in statement.assets if a.asset_id == BTC)
        quote = next(a for a in statement.assets if a.asset_id == USDT_ERC20)
        assert base.terms["trading"] != 0 and quote.terms["trading"] != 0
        # What the owner got back is exactly what the statement says was paid out.
        for line in (base, quote):
            paid = sum((m.amount for m in exit_repo.payouts_of(order_id) if m.asset_id == line.asset_id), D(0))
            assert line.terms["paid_out"] == paid
        assert Order.get_by_id(order_id).exit_source == "operator"
        # A second exit is a no-op with a clear answer.
        again = commands.queue(order_id, "exit", {})
        wait_until(lambda: commands.get(again).result, timeout=10)
        assert commands.get(again).result == "refused: order is settled"


def test_end_time_of_the_pair_exits_the_order_by_itself(tmp_path, xworld):
    with run(tmp_path, xworld, pair_extra={"max_duration": 1}) as mm:
        _, order_id = pay(xworld, mm)
        mm.wait_passed(order_id, "running", timeout=30)
        assert_settled_and_balanced(mm, order_id)
        assert Order.get_by_id(order_id).exit_source == "end_time"


def test_set_params_end_at_exits_at_that_time(tmp_path, xworld):
    import time
    with run(tmp_path, xworld) as mm:
        _, order_id = pay(xworld, mm)
        mm.wait_state(order_id, "running", timeout=30)
        when = time.time() + 1
        command = commands.queue(order_id, "set-params", {"end_at": str(when)})
        wait_until(lambda: commands.get(command).result, timeout=10)
        assert commands.get(command).result.startswith("done: end_at ")
        assert_settled_and_balanced(mm, order_id)
        assert Order.get_by_id(order_id).exit_source == "end_time"
        assert Order.get_by_id(order_id).end_at == pytest.approx(when)


def test_exit_while_payment_is_pending_refunds_everything_now(tmp_path, xworld):
    with run(tmp_path, xworld) as mm:
        pair = mm.services.config.pair(BTC_USDT_PAIR)
        user, order_id = xworld.world.new_user(), new_order_id()
        invoice = xworld.world.invoice(pair, D("0.1"), D("5000"))
        xworld.world.pay(user, BTC, invoice[BTC], encode_market_making(BTC_USDT_PAIR, order_id))
        mm.wait_state(order_id, "payment_pending", timeout=10)
        wait_until(lambda: mm.order(order_id).user_id == user, timeout=10)
        xworld.world.pay(user, USDT_ERC20, "2", exit_memo(order_id))
        mm.wait_state(order_id, "refunded", timeout=30)
        refunds = [m for m in repo.order_movements(order_id) if m.kind == "refund"]
        assert sorted(m.amount for m in refunds) == sorted([invoice[BTC], D("2")])
        assert all(m.state == "confirmed" for m in refunds)
        assert user_net(xworld, user, BTC) == 0 and user_net(xworld, user, USDT_ERC20) == 0
        statement = order_statement(order_id, mm.services.config)
        assert statement.balanced
        assert not [m for m in repo.order_movements(order_id) if m.kind == "withdrawal"]


def test_exit_from_someone_else_is_refunded_and_the_order_keeps_running(tmp_path, xworld):
    with run(tmp_path, xworld) as mm:
        _, order_id = pay(xworld, mm)
        mm.wait_state(order_id, "running", timeout=30)
        stranger = xworld.world.new_user()
        snap = xworld.world.pay(stranger, USDT_ERC20, "3", exit_memo(order_id))
        wait_until(lambda: MoneyMovement.get_or_none(MoneyMovement.snapshot_id == snap["snapshot_id"]),
                   timeout=10, message="refund queued")
        refund = MoneyMovement.get(MoneyMovement.snapshot_id == snap["snapshot_id"])
        assert refund.memo.endswith(":not_owner") and refund.recipient_id == stranger
        wait_until(lambda: MoneyMovement.get_by_id(refund.request_id).state == "confirmed", timeout=10)
        assert mm.state(order_id) == "running" and Order.get_by_id(order_id).exit_requested_at is None


def test_exit_and_payments_into_a_final_order_are_refunded_with_its_state(tmp_path, xworld):
    with run(tmp_path, xworld) as mm:
        user, order_id = pay(xworld, mm)
        mm.wait_state(order_id, "running", timeout=30)
        xworld.world.pay(user, USDT_ERC20, "1", exit_memo(order_id))
        assert_settled_and_balanced(mm, order_id)
        late_exit = xworld.world.pay(user, USDT_ERC20, "4", exit_memo(order_id))
        late_pay = xworld.world.pay(user, BTC, "0.01", encode_market_making(BTC_USDT_PAIR, order_id))
        for snap, code in ((late_exit, "exit_order_settled"), (late_pay, "order_settled")):
            wait_until(lambda: MoneyMovement.get_or_none(MoneyMovement.snapshot_id == snap["snapshot_id"]),
                       timeout=10, message="late payment refunded")
            assert MoneyMovement.get(MoneyMovement.snapshot_id == snap["snapshot_id"]).memo.endswith(":" + code)
        assert mm.state(order_id) == "settled"


def test_exit_memo_for_an_unknown_order_is_refunded_and_creates_nothing(tmp_path, xworld):
    with run(tmp_path, xworld):
        ghost = new_order_id()
        snap = xworld.world.pay(xworld.world.new_user(), USDT_ERC20, "5", exit_memo(ghost))
        wait_until(lambda: MoneyMovement.get_or_none(MoneyMovement.snapshot_id == snap["snapshot_id"]),
                   timeout=10, message="refund queued")
        assert MoneyMovement.get(MoneyMovement.snapshot_id == snap["snapshot_id"]).memo.endswith(
            ":exit_unknown_order")
        assert Order.get_or_none(Order.order_id == ghost) is None


def test_exit_asked_while_funds_are_in_flight_happens_once_they_are_credited(tmp_path, monkeypatch):
    ew = world_with_exchange(deposit_delay=1.5)
    ew.exchange.withdraw_delay = 0.1
    monkeypatch.setenv("MMF_BINANCE_KEY", ew.api_key)
    monkeypatch.setenv("MMF_BINANCE_SECRET", ew.secret)
    try:
        with run(tmp_path, ew) as mm:
            user, order_id = pay(ew, mm)
            mm.wait_passed(order_id, "deposit_confirming", timeout=30)
            ew.world.pay(user, USDT_ERC20, "1", exit_memo(order_id))
            wait_until(lambda: Order.get_by_id(order_id).exit_requested_at is not None, timeout=10)
            assert mm.state(order_id) in ("deposit_confirming", "withdrawing", "withdrawal_confirmed")
            assert "exit asked" in mm.order(order_id).state_reason
            assert_settled_and_balanced(mm, order_id)
            passed = [h.to_state for h in repo.order_history(order_id)]
            assert "running" not in passed and "joining_campaign" not in passed
            assert passed.index("deposit_confirmed") < passed.index("stopping")
    finally:
        ew.stop()
        ew.world.fake.stop()


def test_added_funds_reach_the_exchange_and_come_back_with_the_exit(tmp_path, xworld):
    with run(tmp_path, xworld) as mm:
        user, order_id = pay(xworld, mm)
        mm.wait_state(order_id, "running", timeout=30)
        add = encode_market_making(BTC_USDT_PAIR, order_id, action=ACTION_DEPOSIT)
        xworld.world.pay(user, BTC, "0.0502", add)           # 0.05 principal + 0.0001 fee + 0.1 % market making
        wait_until(lambda: repo.ledger_balances(order_id).get("BTC", D(0)) > D("0.12"), timeout=30,
                   message="added BTC credited to the order's ledger")
        batch = exit_repo.top_ups_of(order_id)[0]
        assert batch.state == "credited"
        stranger = xworld.world.new_user()
        foreign = xworld.world.pay(stranger, BTC, "0.01", add)
        wait_until(lambda: MoneyMovement.get_or_none(MoneyMovement.snapshot_id == foreign["snapshot_id"]),
                   timeout=10, message="a stranger's added funds are refunded")
        xworld.world.pay(user, USDT_ERC20, "1", exit_memo(order_id))
        _, statement = assert_settled_and_balanced(mm, order_id)
        btc = next(a for a in statement.assets if a.asset_id == BTC)
        assert btc.terms["paid_in"] == D("0.1002") + D("0.0502") + D("0.01")
        assert btc.terms["refunded"] == D("0.01")


def test_added_funds_that_never_cover_their_fees_are_refunded_at_the_timeout(tmp_path, xworld):
    with run(tmp_path, xworld, payments={"timeout": 1.0, "check_delay": 0.05}) as mm:
        user, order_id = pay(xworld, mm)
        mm.wait_state(order_id, "running", timeout=30)
        add = encode_market_making(BTC_USDT_PAIR, order_id, action=ACTION_DEPOSIT)
        snap = xworld.world.pay(user, USDT_ERC20, "50", add)  # its fee is due in ETH, which never comes
        wait_until(lambda: MoneyMovement.get_or_none(MoneyMovement.snapshot_id == snap["snapshot_id"]),
                   timeout=10, message="pool refunded")
        refund = MoneyMovement.get(MoneyMovement.snapshot_id == snap["snapshot_id"])
        assert refund.memo.endswith(":topup_refund") and refund.amount == D("50")
        assert mm.state(order_id) == "running" and exit_repo.top_ups_of(order_id) == []


def test_overpaid_third_asset_fee_goes_back_with_the_settlement(tmp_path, xworld):
    with run(tmp_path, xworld) as mm:
        pair = mm.services.config.pair(BTC_USDT_PAIR)
        user, order_id = xworld.world.new_user(), new_order_id()
        invoice = xworld.world.invoice(pair, D("0.1"), D("5000"))
        invoice[ETH] = invoice[ETH] + D("0.5")  # the USDT leg's fee is paid in ETH: 0.5 ETH too much
        xworld.world.pay_invoice(user, pair, order_id, invoice)
        mm.wait_state(order_id, "running", timeout=30)
        xworld.world.pay(user, USDT_ERC20, "1", exit_memo(order_id))
        _, statement = assert_settled_and_balanced(mm, order_id)
        eth_payout = [m for m in exit_repo.payouts_of(order_id) if m.asset_id == ETH]
        assert len(eth_payout) == 1 and eth_payout[0].amount == D("0.5")
        eth = next(a for a in statement.assets if a.asset_id == ETH)
        assert eth.terms["paid_out"] == D("0.5") and eth.terms["mixin_withdrawal_fees"] == invoice[ETH] - D("0.5")


def test_an_order_whose_only_payment_was_refused_ends_refunded(tmp_path, xworld):
    with run(tmp_path, xworld, payments={"timeout": 1.0, "check_delay": 0.05}) as mm:
        from sim.world import XIN
        order_id = new_order_id()
        xworld.world.pay(xworld.world.new_user(), XIN, "3", encode_market_making(BTC_USDT_PAIR, order_id))
        view = mm.wait_state(order_id, "refunded", timeout=20)
        assert view.deadline_at is not None
        assert order_statement(order_id, mm.services.config).balanced


# ---------------------------------------------------------------- faults on the way back

def _exit_now(ew, mm, coin_fault=None):
    user, order_id = pay(ew, mm)
    mm.wait_state(order_id, "running", timeout=30)
    if coin_fault:
        ew.exchange.inject_withdrawal_fault(*coin_fault)
    ew.world.pay(user, USDT_ERC20, "1", exit_memo(order_id))
    return user, order_id


def test_rejected_withdrawal_is_retried_then_settles(tmp_path, xworld):
    with run(tmp_path, xworld) as mm:
        _, order_id = _exit_now(xworld, mm, ("reject", 2, "BTC"))
        assert_settled_and_balanced(mm, order_id)
        btc = next(m for m in exit_repo.returns_of(order_id) if m.exchange_code == "BTC")
        assert btc.rejections == 2 and btc.attempt == 1
        assert [k for k, _ in xworld.exchange.withdrawal_faults_applied] == ["reject", "reject"]
        assert len(xworld.exchange.withdrawals_of(xworld.api_key)) == 2  # one per currency, none twice


def test_withdrawal_refused_too_often_needs_an_operator_with_everything_known(tmp_path, xworld):
    with run(tmp_path, xworld) as mm:
        _, order_id = _exit_now(xworld, mm, ("reject", 10, "BTC"))
        view = mm.wait_state(order_id, "attention", timeout=30)
        assert "refused or failed the withdrawal 3 times" in view.state_reason
        assert "BTC" in view.state_reason and "Current asset is not open for withdrawal" in view.state_reason
        btc = next(m for m in exit_repo.returns_of(order_id) if m.exchange_code == "BTC")
        assert btc.state == "queued"
        assert repo.ledger_balances(order_id)["BTC"] == D("0.1")  # nothing left the exchange for BTC
        # The operator resolves once the venue works again: the way back carries on.
        xworld.exchange.withdrawal_faults.clear()
        facts = commands.resolve_facts(order_id, "binance")
        from domain.resolve import resolve_options
        from domain.states import OrderState
        assert OrderState.RETURNING_FUNDS in resolve_options(facts)
        MoneyMovement.update(rejections=0).where(MoneyMovement.request_id == btc.request_id).execute()
        command = commands.queue(order_id, "resolve", {"to": "returning_funds", "reason": "venue fixed"})
        wait_until(lambda: commands.get(command).result, timeout=10)
        assert commands.get(command).result.startswith("done: returning_funds")
        assert_settled_and_balanced(mm, order_id)


def test_stuck_withdrawal_goes_to_attention_with_its_exchange_id(tmp_path, xworld):
    with run(tmp_path, xworld, funding=dict(FUNDING, return_timeout=1.0)) as mm:
        _, order_id = _exit_now(xworld, mm, ("stuck", 1, "USDT"))
        view = mm.wait_state(order_id, "attention", timeout=30)
        usdt = next(m for m in exit_repo.returns_of(order_id) if m.exchange_code == "USDT")
        assert "nothing arrived on Mixin" in view.state_reason
        assert usdt.exchange_withdrawal_id in view.state_reason and usdt.destination in view.state_reason
        assert usdt.state == "sent"


def test_failed_withdrawal_is_undone_and_tried_again_with_a_new_client_id(tmp_path, xworld):
    with run(tmp_path, xworld) as mm:
        _, order_id = _exit_now(xworld, mm, ("fail_later", 1, "BTC"))
        assert_settled_and_balanced(mm, order_id)
        btc = next(m for m in exit_repo.returns_of(order_id) if m.exchange_code == "BTC")
        assert btc.attempt == 2 and btc.client_id.endswith("n2")
        tried = [w for w in xworld.exchange.withdrawals_of(xworld.api_key) if w.coin == "BTC"]
        assert len(tried) == 2 and tried[0].withdraw_order_id.endswith("n1")


def test_short_arrival_is_settled_as_arrived_and_explained(tmp_path, xworld):
    with run(tmp_path, xworld) as mm:
        user, order_id = pay(xworld, mm)
        mm.wait_state(order_id, "running", timeout=30)
        xworld.returns.short_next(1, D("0.5"))
        xworld.exchange.inject_withdrawal_fault("reject", 1, "BTC")  # BTC goes later: USDT is the short one
        xworld.world.pay(user, USDT_ERC20, "1", exit_memo(order_id))
        _, statement = assert_settled_and_balanced(mm, order_id)
        usdt = next(a for a in statement.assets if a.asset_id == USDT_ERC20)
        assert usdt.terms["transit_difference"] == D("0.5")
        payout = next(m for m in exit_repo.payouts_of(order_id) if m.asset_id == USDT_ERC20)
        assert payout.amount == D("5000") - D("3") - D("0.5") + D("1")


def test_a_balance_below_the_exchange_minimum_stays_as_recorded_dust(tmp_path, xworld):
    # The venue's BTC withdrawal minimum is above what this small order holds.
    xworld.exchange.wallet.currencies["BTC"].networks["BTC"].withdraw_min = D("0.01")
    with run(tmp_path, xworld) as mm:
        user, order_id = pay(xworld, mm, base="0.0012", quote="5000")
        mm.wait_state(order_id, "running", timeout=30)
        xworld.world.pay(user, USDT_ERC20, "1", exit_memo(order_id))
        _, statement = assert_settled_and_balanced(mm, order_id)
        dust = exit_repo.dust_of(order_id)
        assert [(m.exchange_code, m.amount) for m in dust] == [("BTC", D("0.0012"))]
        assert not [m for m in exit_repo.payouts_of(order_id) if m.asset_id == BTC]
        btc = next(a for a in statement.assets if a.asset_id == BTC)
        assert btc.terms["dust"] == D("0.0012")
        assert xworld.exchange.balance(xworld.api_key, "BTC")[0] == D("0.0012")
