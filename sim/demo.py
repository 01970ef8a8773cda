"""`python run.py demo`: mmflow on the embedded simulation, with synthetic users.

Starts a fake Mixin network on loopback, writes a keystore and a config into a
work directory (SQLite database there too), runs the real actor tree, and plays
a script of users: correct payments, a split payment, a partial payment that
times out, another user paying into someone's order, bad memos, an unknown and
a disabled pair, an oversized order, an operator top-up and an external
deposit. Within a minute every order reaches `payment_complete` or `refunding`.
"""
from __future__ import annotations

import os
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

import gevent
from loguru import logger

from actors.system import Escalation, build_services, setup_logging, start_tree, stop_tree
from domain.config import load_config
from domain.memo import encode_market_making
from sim.bridge import world_with_exchange
from sim.world import dump_toml
from sim.world import (BTC, BTC_USDT_PAIR, DISABLED_PAIR, ETH, ETH_USDT_PAIR, USDT_ERC20, XIN,
                       new_order_id)
from storage import repo
from storage.reports import strategy_report
from storage.models import Alert, MoneyMovement, Order, Snapshot

PAYMENT_TIMEOUT = 20.0
DEMO_STRATEGY = {
    "BTC/USDT": {"bid_spread": "0.0015", "ask_spread": "0.0015", "order_amount": "0.004", "order_levels": 2,
                 "order_level_spread": "0.001", "order_refresh_time": 5, "order_refresh_tolerance_pct": "0.001",
                 "filled_order_delay": 3, "inventory_skew_enabled": True},
    "ETH/USDT": {"bid_spread": "0.002", "ask_spread": "0.002", "order_amount": "0.2", "order_levels": 1,
                 "order_refresh_time": 5, "order_refresh_tolerance_pct": "0.001", "filled_order_delay": 3},
}
SYMBOLS = {BTC: "BTC", ETH: "ETH", USDT_ERC20: "USDT", XIN: "XIN"}
PAIR_SYMBOLS = {BTC_USDT_PAIR: ("BTC", "USDT", "BTC/USDT"), ETH_USDT_PAIR: ("ETH", "USDT", "ETH/USDT")}


def _script(world, pairs, stop: threading.Event) -> None:
    """The synthetic users. Each step logs what the user does, so the log reads as a story."""
    btc_usdt, eth_usdt = pairs[BTC_USDT_PAIR], pairs[ETH_USDT_PAIR]
    say = logger.bind(order_id="").opt(colors=False)

    def step(delay, text):
        if stop.wait(timeout=delay):
            raise gevent.GreenletExit
        say.info("demo user: {}", text)

    alice, bob, carol, dave, erin, frank, mallory, george, operator = (world.new_user() for _ in range(9))
    try:
        step(1, "alice pays a BTC/USDT order in full (0.1 BTC + 5000 USDT + fees)")
        order_a = new_order_id()
        world.pay_invoice(alice, btc_usdt, order_a, world.invoice(btc_usdt, Decimal("0.1"), Decimal("5000")))

        step(1, "bob pays only the BTC leg of his order and walks away (it will time out)")
        order_b = new_order_id()
        inv_b = world.invoice(btc_usdt, Decimal("0.05"), Decimal("2000"))
        world.pay_invoice(bob, btc_usdt, order_b, inv_b, skip=(USDT_ERC20, ETH))

        step(1, "carol pays with a memo that is not ours ('hello')")
        world.pay(carol, USDT_ERC20, "25", "hello")

        step(1, "dave pays for a pair that does not exist")
        world.pay(dave, USDT_ERC20, "30", encode_market_making("11111111-2222-4333-8444-555555555555",
                                                               new_order_id()))
        step(1, "erin pays for a disabled pair")
        world.pay(erin, XIN, "3", encode_market_making(DISABLED_PAIR, new_order_id()))

        step(1, "frank starts an ETH/USDT order: the ETH leg now, the rest a bit later")
        order_f = new_order_id()
        inv_f = world.invoice(eth_usdt, Decimal("2"), Decimal("1500"))
        world.pay_invoice(frank, eth_usdt, order_f, inv_f, skip=(USDT_ERC20,))

        step(1, "mallory sends USDT into frank's order (only the first payer owns an order)")
        world.pay(mallory, USDT_ERC20, "100", encode_market_making(ETH_USDT_PAIR, order_f))

        step(1, "the Mixin API throttles us once (429) and fails once (503); mmflow retries")
        world.fake.inject("/safe/snapshots", status=429, count=1, retry_after=0.5)
        world.fake.inject("/safe/snapshots", status=503, count=1)

        step(2, "frank pays the USDT leg: his order completes")
        world.pay(frank, USDT_ERC20, inv_f[USDT_ERC20], encode_market_making(ETH_USDT_PAIR, order_f))

        step(1, "george tries to market-make 20 BTC, above the pair's 10 BTC maximum")
        order_g = new_order_id()
        world.pay_invoice(george, btc_usdt, order_g, world.invoice(btc_usdt, Decimal("20"), Decimal("5000")))

        step(1, "an operator tops up the treasury (never refunded)")
        world.pay(operator, USDT_ERC20, "10000", "treasury top-up")

        step(1, "an external on-chain deposit arrives with no memo (cannot be refunded by transfer)")
        world.fake.deposit(world.bot_id, ETH, "0.5")

        step(1, "Mixin serves every snapshot twice for a while; tallies must not double")
        world.fake.duplicate_factor = 2
        order_h = new_order_id()
        world.pay_invoice(alice, btc_usdt, order_h, world.invoice(btc_usdt, Decimal("0.02"), Decimal("800")))
        step(3, "duplicates off again")
        world.fake.duplicate_factor = 1
    except gevent.GreenletExit:
        return
    world.operator = operator


def _summary(title: str, ew=None) -> None:
    rows = Order.select().order_by(Order.created_at)
    logger.info("── {} ── orders:", title)
    for row in rows:
        ledger = repo.ledger_balances(row.order_id)
        holdings = (f"on exchange {', '.join(f'{v} {k}' for k, v in sorted(ledger.items()))}" if ledger else
                    f"paid {', '.join(f'{v} {SYMBOLS.get(k, k[:8])}' for k, v in repo.tallies_of(row.order_id).items())}")
        logger.info("  {}  {:<18} {}  [{}]", row.order_id[:8], row.state, row.state_reason[:80], holdings)
        if ledger and ew is not None and row.state in ("running", "stopping", "stopped"):
            pair = PAIR_SYMBOLS.get(row.pair_id)
            if pair:
                base, quote, symbol = pair
                mark = ew.exchange.mid(symbol)
                rep = strategy_report(row.order_id, base, quote, mark)
                logger.info("      {} trades ({} buys / {} sells), volume {} {}, realized {} {}, unrealized {} {}, "
                            "base share {}, {} orders resting", rep["trades"], rep.get("buys", 0),
                            rep.get("sells", 0), rep.get("volume_quote", "0"), quote, rep.get("realized_pnl", "0"),
                            quote, rep.get("unrealized_pnl", "0"), quote, rep.get("base_share"),
                            len(rep["open_orders"]))
    by_state = {}
    for m in MoneyMovement.select():
        by_state[(m.kind, m.state)] = by_state.get((m.kind, m.state), 0) + 1
    logger.info("  snapshots {}, money movements {}, operator alerts {}", Snapshot.select().count(),
                {f"{k}/{s}": n for (k, s), n in sorted(by_state.items())}, Alert.select().count())
    if ew is not None:
        free = {c: str(ew.exchange.balance(ew.api_key, c)[0]) for c in ("BTC", "ETH", "USDT")}
        logger.info("  fake exchange account balance (shared by all orders): {}", free)


def run_demo(*, duration: float = 60.0, workdir: str | None = None, json_logs: bool = False) -> int:
    setup_logging("INFO", json=json_logs)
    work = Path(workdir or tempfile.mkdtemp(prefix="mmflow-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    ew = world_with_exchange(deposit_delay=2.0)
    world = ew.world
    os.environ.setdefault("MMFLOW_DEMO_EXCHANGE_KEY", ew.api_key)
    os.environ.setdefault("MMFLOW_DEMO_EXCHANGE_SECRET", ew.secret)
    keystore_path = world.write_keystore(work / "keystore.json")
    raw = world.config_dict(work / "mmflow.db", keystore_path)
    raw["mixin"].update({"poll_interval": 0.5, "backoff_base": 0.2, "backoff_max": 2.0})
    raw["payments"].update({"timeout": PAYMENT_TIMEOUT, "check_delay": 1.0})
    raw["funding"] = {"poll_interval": 1.0, "retry_delay": 2.0}
    raw["strategy"] = {"tick_interval": 1.0}
    raw["stream"] = {"slow_interval": 1.0, "fast_interval": 0.3}
    for pair in raw["pairs"]:
        pair["strategy"] = DEMO_STRATEGY[pair["symbol"]] if pair["symbol"] in DEMO_STRATEGY else {}
        if not pair["strategy"]:
            del pair["strategy"]
    raw["exchanges"] = [{"id": "binance", "ccxt": "binance", "api_key_env": "MMFLOW_DEMO_EXCHANGE_KEY",
                         "secret_env": "MMFLOW_DEMO_EXCHANGE_SECRET", "urls": {"api": ew.exchange.url},
                         "options": ew.ccxt_config()["options"]}]
    operator_placeholder = "00000000-0000-4000-8000-000000000001"
    raw["mixin"]["operator_user_ids"] = [operator_placeholder]
    config_path = work / "mmflow.toml"
    config_path.write_text(dump_toml(raw))
    config = load_config(config_path)
    logger.info("demo: fake Mixin at {}, work dir {} (config {}), payment timeout {:g}s", world.fake.url, work,
                config_path, PAYMENT_TIMEOUT)

    # The operator is a known user id: register it in the fake so the top-up comes from it.
    world.fake.users.add(operator_placeholder)
    world.new_user = _with_operator(world.new_user, operator_placeholder, after=8)

    services = build_services(config)
    escalation = Escalation(event=threading.Event())
    root = start_tree(services, escalation)
    # The market moves and synthetic takers trade against resting quotes, so running orders get fills.
    ew.exchange.start_price_process(interval=0.5, vol=0.0008, taker_prob=0.6, taker_size=0.01)
    stop = threading.Event()
    pairs = {p.pair_id: p for p in config.pairs}
    users = gevent.spawn(_script, world, pairs, stop)
    started = time.monotonic()
    next_summary = started + 10
    try:
        while time.monotonic() - started < duration and not escalation.event.is_set():
            gevent.sleep(0.2)
            if time.monotonic() >= next_summary:
                _summary(f"t={time.monotonic() - started:.0f}s", ew)
                next_summary += 10
    except KeyboardInterrupt:
        pass
    stop.set()
    users.join(timeout=2)
    for row in Order.select().where(Order.state == "running"):
        repo.queue_command(row.order_id, "stop", {"reason": "demo over"})
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and Order.select().where(Order.state.in_(["running", "stopping"])).count():
        gevent.sleep(0.2)
    _summary("final", ew)
    stop_tree(root)
    ew.stop()
    world.fake.stop()
    logger.info("demo: done. Inspect with: python run.py orders list --config {}", config_path)
    return 70 if escalation.reason else 0


def _with_operator(new_user, operator_id: str, *, after: int):
    """The demo's 9th user is the configured operator."""
    count = {"n": 0}

    def make() -> str:
        count["n"] += 1
        return operator_id if count["n"] == after + 1 else new_user()
    return make
