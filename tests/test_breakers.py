"""Risk breakers: pure decisions (domain/breakers.py), then one fault scenario per breaker on the fake venue
with the real service — each trips with a reason, an alert and a visible change, and is reversed."""
from __future__ import annotations

import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path


from domain.breakers import PriceGuard, RejectionCounter, RiskLimits, drawdown_trip
from storage import commands, exchange_repo, risk
from storage.models import Alert
from tests.databases import database_url
from tests.support import wait_until

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- pure

def test_drawdown_trips_only_beyond_the_limit():
    limits = RiskLimits(max_drawdown=D("0.1"))
    assert drawdown_trip(D("-99"), D("1000"), limits) is None            # 9.9 %
    assert drawdown_trip(D("-100"), D("1000"), limits) is None           # exactly 10 %: not beyond
    reason = drawdown_trip(D("-100.01"), D("1000"), limits)
    assert reason and "10 % limit" in reason and "-100.01" in reason
    assert drawdown_trip(D("50"), D("1000"), limits) is None
    assert drawdown_trip(D("-5"), D("0"), limits) is None                # nothing funded: nothing to compare


def test_rejections_in_a_sliding_window():
    counter = RejectionCounter(RiskLimits(max_rejections=3, rejection_window=10))
    assert [counter.note(t) for t in (0, 1, 2)] == [None, None, None]
    assert counter.note(3) is not None                                  # 4 in 10 s
    counter = RejectionCounter(RiskLimits(max_rejections=3, rejection_window=10))
    assert [counter.note(t) for t in (0, 5, 11, 16, 22)] == [None] * 5  # never more than 3 in a window


def test_price_guard_jump_then_settle():
    g = PriceGuard(RiskLimits(max_price_jump=D("0.05"), price_settle=5, stale_price_after=30))
    assert g.observe(D("100"), 0) is None
    assert g.observe(D("104"), 1) is None                               # 4 %
    assert "moved" in g.observe(D("110"), 2)                            # 5.77 % in one tick
    assert g.observe(D("110.5"), 3) is not None                         # sane, but not for long enough
    assert g.observe(D("110.4"), 7) is not None
    assert g.observe(D("110.3"), 8) is None                             # 5 s sane since t=3
    assert "moved" in g.observe(D("90"), 9)


def test_price_guard_stale_book():
    g = PriceGuard(RiskLimits(stale_price_after=10, price_settle=2))
    assert g.book_missing(5) is None                                    # never had a book: nothing to call stale
    assert g.observe(D("100"), 10) is None
    assert g.book_missing(15) is None
    assert "no fresh order book" in g.book_missing(21)
    assert g.observe(D("100"), 22) is not None
    assert g.observe(D("100.1"), 24) is None


# ---------------------------------------------------------------- on the fake venue

from sim.world import USDT_ERC20  # noqa: E402
from tests.test_flow_exit import assert_settled_and_balanced, exit_memo, pay, run, xworld  # noqa: E402,F401,I001


def open_quotes(order_id):
    return exchange_repo.open_orders_of(order_id)


def test_price_jump_withdraws_quotes_until_sane(tmp_path, xworld):  # noqa: F811
    with run(tmp_path, xworld, risk={"max_price_jump_pct": "0.05", "price_settle": 1.0}) as mm:
        _, order_id = pay(xworld, mm)
        mm.wait_state(order_id, "running", timeout=30)
        wait_until(lambda: len(open_quotes(order_id)) == 2, timeout=15, message="quoting")
        xworld.exchange.set_mid("BTC/USDT", xworld.exchange.mid("BTC/USDT") * D("1.2"))
        wait_until(lambda: Alert.get_or_none((Alert.kind == "price_breaker") & (Alert.subject == order_id)),
                   timeout=15, message="price breaker alert")
        wait_until(lambda: "quotes withdrawn: price breaker" in mm.order(order_id).state_reason, timeout=15)
        wait_until(lambda: len(open_quotes(order_id)) == 2, timeout=20, message="quoting again once sane")
        assert mm.state(order_id) == "running"


def test_stale_book_withdraws_quotes(tmp_path, xworld):  # noqa: F811
    with run(tmp_path, xworld, risk={"stale_price_after": 1.0, "price_settle": 0.5},
             stream={"slow_interval": 0.2, "fast_interval": 0.05, "book_ttl": 0.05}) as mm:
        _, order_id = pay(xworld, mm)
        mm.wait_state(order_id, "running", timeout=30)
        wait_until(lambda: len(open_quotes(order_id)) == 2, timeout=15, message="quoting")
        xworld.exchange.inject("/api/v3/depth", status=503, count=10_000)
        wait_until(lambda: "no fresh order book" in mm.order(order_id).state_reason, timeout=20)
        wait_until(lambda: not open_quotes(order_id), timeout=20, message="quotes cancelled")
        xworld.exchange.reset_faults()
        wait_until(lambda: len(open_quotes(order_id)) == 2, timeout=20, message="quoting again")


def test_rejections_halt_the_account_until_an_operator_lifts_it(tmp_path, xworld):  # noqa: F811
    with run(tmp_path, xworld, risk={"max_rejections": 2, "rejection_window": 60}) as mm:
        _, order_id = pay(xworld, mm)
        mm.wait_state(order_id, "running", timeout=30)
        wait_until(lambda: len(open_quotes(order_id)) == 2, timeout=15, message="quoting")
        # Every new order is refused by the venue (Binance -2010); the ladder keeps trying to replace.
        xworld.exchange.inject("/api/v3/order", method="POST", status=400, error_code=-2010,
                               msg="Account has insufficient balance for requested action.", count=10_000)
        xworld.exchange.set_mid("BTC/USDT", xworld.exchange.mid("BTC/USDT") * D("1.01"))
        wait_until(lambda: risk.halted("binance"), timeout=30, message="account halted by the breaker")
        assert Alert.get_or_none(Alert.kind == "halt_rejections") is not None
        wait_until(lambda: not open_quotes(order_id), timeout=20, message="no quotes while halted")
        xworld.exchange.reset_faults()
        mm.services.writer.run(risk.lift, "binance", "test: venue fixed", 0.0)
        wait_until(lambda: len(open_quotes(order_id)) == 2, timeout=20, message="quoting again")


def test_requests_refused_for_their_timestamp_do_not_halt_the_account(tmp_path, xworld):  # noqa: F811
    """Binance -1021 (a request reaching the venue after its recvWindow: a saturated process or a clock off)
    is not the venue refusing our orders: the rejection breaker does not count it, the account is not halted
    and the ladder is quoted again."""
    with run(tmp_path, xworld, risk={"max_rejections": 2, "rejection_window": 60}) as mm:
        _, order_id = pay(xworld, mm)
        mm.wait_state(order_id, "running", timeout=30)
        wait_until(lambda: len(open_quotes(order_id)) == 2, timeout=15, message="quoting")
        before = {q.client_order_id for q in open_quotes(order_id)}
        fault = xworld.exchange.inject("/api/v3/order", method="POST", status=400, error_code=-1021,
                                       msg="Timestamp for this request is outside of the recvWindow.", count=6)
        xworld.exchange.set_mid("BTC/USDT", xworld.exchange.mid("BTC/USDT") * D("1.01"))
        wait_until(lambda: fault.remaining == 0, timeout=30, message="six requests refused with -1021")
        # quoting again around the new mid, on the same (not halted) account
        wait_until(lambda: len(open_quotes(order_id)) == 2
                   and not before & {q.client_order_id for q in open_quotes(order_id)},
                   timeout=20, message="a new ladder quoted")
        assert not risk.halted("binance")
        assert Alert.get_or_none(Alert.kind == "halt_rejections") is None


def test_drawdown_pauses_the_order(tmp_path, xworld, monkeypatch):  # noqa: F811
    import actors.order.strategy as strategy
    monkeypatch.setattr(strategy, "DRAWDOWN_EVERY", 0.2)
    with run(tmp_path, xworld, risk={"max_drawdown_pct": "0.0005", "max_price_jump_pct": "1"}) as mm:
        _, order_id = pay(xworld, mm)
        mm.wait_state(order_id, "running", timeout=30)
        wait_until(lambda: len(open_quotes(order_id)) == 2, timeout=15, message="quoting")
        # The market falls through our bid (filled), then keeps falling: the order holds BTC worth less.
        mid = xworld.exchange.mid("BTC/USDT")
        xworld.exchange.start_price_process(interval=0.05, vol=0.0, taker_prob=1.0, taker_size=0.05)
        try:
            for step in range(1, 40):
                xworld.exchange.set_mid("BTC/USDT", mid * (1 - D("0.0005") * step))
                if mm.state(order_id) == "paused":
                    break
                import gevent
                gevent.sleep(0.1)
        finally:
            xworld.exchange.stop_price_process()
        view = mm.wait_state(order_id, "paused", timeout=20)
        assert "drawdown breaker" in view.state_reason
        assert Alert.get_or_none((Alert.kind == "drawdown_breaker") & (Alert.subject == order_id))
        result = commands.queue(order_id, "resume", {"reason": "operator accepts the loss"})
        wait_until(lambda: commands.get(result).result, timeout=10)
        assert commands.get(result).result == "done: running again"


def test_halt_survives_a_restart_until_lifted(tmp_path, xworld):  # noqa: F811
    """`halt` cancels every quote within seconds; a restart keeps it; an order can still leave (exit) while
    halted; `halt --lift` lets the others quote again."""
    with run(tmp_path, xworld) as mm:
        leaving_user, leaving = pay(xworld, mm)
        _, staying = pay(xworld, mm, "0.05", "2000")
        for order_id in (leaving, staying):
            mm.wait_state(order_id, "running", timeout=30)
            wait_until(lambda: len(open_quotes(order_id)) == 2, timeout=15, message="quoting")
        cfg = tmp_path / "cli.toml"
        from sim.world import dump_toml
        cfg.write_text(dump_toml({"database": {"url": database_url(tmp_path / "mmflow.db")},
                                  "mixin": {"keystore": str(tmp_path / "keystore.json"), "api_base": xworld.world.fake.url},
                                  "payments": {"market_making_fee_percent": "0.1"},
                                  "exchanges": [{"id": "binance", "ccxt": "binance", "enabled": False,
                                                 "api_key_file": str(_key(tmp_path)), "secret_file": str(_key(tmp_path))}],
                                  "pairs": []}))
        out = subprocess.run([sys.executable, "run.py", "halt", "--config", str(cfg), "--reason", "test halt"],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        wait_until(lambda: not open_quotes(leaving) and not open_quotes(staying), timeout=15,
                   message="every quote cancelled")
        # the order's reason is written through the store's writer after its cancels went out: wait for it
        wait_until(lambda: "halted" in mm.order(staying).state_reason, timeout=15, message="halt in the reason")
    with run(tmp_path, xworld) as mm:   # restarted: still halted
        out = subprocess.run([sys.executable, "run.py", "halt", "--config", str(cfg), "--status"], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
        assert "test halt" in out.stdout
        wait_until(lambda: "halted" in mm.order(staying).state_reason, timeout=15, message="halt seen after restart")
        assert not open_quotes(staying) and not open_quotes(leaving)
        # The owner leaves while the halt is in force: funds come back, the statement balances.
        xworld.world.pay(leaving_user, USDT_ERC20, "1", exit_memo(leaving))
        assert_settled_and_balanced(mm, leaving)
        assert not open_quotes(staying)
        out = subprocess.run([sys.executable, "run.py", "halt", "--config", str(cfg), "--lift"], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "1 halt(s) lifted" in out.stdout, out
        wait_until(lambda: len(open_quotes(staying)) == 2, timeout=20, message="quoting again")


def _key(tmp_path):
    path = tmp_path / "dummy.key"
    path.write_text("dummy-key-value")
    return path
