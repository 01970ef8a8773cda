"""`python run.py demo`: mmflow on the embedded simulation, with synthetic users who come and go.

Starts a fake Mixin network and a fake Binance on loopback (real ccxt.binance against it), writes a
keystore and a config into a work directory (SQLite database there too), runs the real actor tree, and
plays a script of users: correct payments, a split payment, a partial payment that times out, payments
into someone else's order, bad memos, an unknown and a disabled pair, an oversized order, an operator
top-up, an external deposit — and the way back: users leaving by exit memo, one while its funds are
still in flight, one who adds funds first, an operator exit, an order that reaches its end time.

The script ends once its story is told (frank's order ended by itself, bob's timed out; at most
``--duration`` seconds). Then every order still open is exited, and the demo waits until each is settled
or refunded.
The narration (stderr) shows each user's money in and out; the LAST LINE on stdout is one JSON object:
orders_by_state, paid_in, paid_out, fees, trading, dust (per asset symbol, decimal strings) and
stranded (what the bot's Mixin wallet and the exchange account hold that no record accounts for).
Exit 0 only when every order is final and nothing is stranded.

The HTTP API and the dashboard are served during the demo (``--api HOST:PORT``, default a free loopback
port): the narration gives the dashboard's URL, a demo-only operator token, and the simulated Mixin's login
page lists the demo's users. ``--hold SECONDS`` keeps the world and the API up that long after the summary.
"""
from __future__ import annotations

import json
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

import gevent
from loguru import logger

from actors.system import Escalation, build_services, setup_logging, start_tree, stop_tree
from domain.config import load_config
from domain.memo import ACTION_DEPOSIT, ACTION_EXIT, encode_market_making
from domain.money import fmt
from domain.states import FINAL_STATES
from sim.bridge import world_with_exchange
from sim.fake_mixin_oauth import install_oauth
from sim.world import (BTC, BTC_USDT_PAIR, DISABLED_PAIR, ETH, ETH_USDT_PAIR, USDT_ERC20, XIN, dump_toml,
                       new_order_id)
from storage import audit, commands, repo, topup_repo
from storage.api_auth import create_api_token
from storage.models import Alert, MoneyMovement, Order, Snapshot
from storage.reports import strategy_report

PAYMENT_TIMEOUT = 20.0
ETH_USDT_MAX_DURATION = 15  # seconds: frank's ETH/USDT order ends by itself
DEFAULT_DURATION = 90.0     # at most this long of user activity; the script ends sooner once its story is told
DEMO_STRATEGY = {
    "BTC/USDT": {"bid_spread": "0.0015", "ask_spread": "0.0015", "order_amount": "0.004", "order_levels": 2,
                 "order_level_spread": "0.001", "order_refresh_time": 5, "order_refresh_tolerance_pct": "0.001",
                 "filled_order_delay": 3, "inventory_skew_enabled": True},
    "ETH/USDT": {"bid_spread": "0.002", "ask_spread": "0.002", "order_amount": "0.2", "order_levels": 1,
                 "order_refresh_time": 5, "order_refresh_tolerance_pct": "0.001", "filled_order_delay": 3},
}
SYMBOLS = {BTC: "BTC", ETH: "ETH", USDT_ERC20: "USDT", XIN: "XIN"}
PAIR_SYMBOLS = {BTC_USDT_PAIR: ("BTC", "USDT", "BTC/USDT"), ETH_USDT_PAIR: ("ETH", "USDT", "ETH/USDT")}
OPERATOR_ID = "00000000-0000-4000-8000-000000000001"


class Script:
    """The synthetic users. Each step logs what the user does, so the log reads as a story."""

    def __init__(self, world, pairs, stop: threading.Event, oauth=None):
        self.world, self.pairs, self.stop, self.oauth = world, pairs, stop, oauth
        self.say = logger.bind(order_id="").opt(colors=False)
        self.users: dict[str, str] = {}     # name → Mixin user id
        self.orders: dict[str, str] = {}    # label → order id

    def step(self, at: float, started: float, text: str, after=None) -> None:
        """Narrate ``text`` ``at`` seconds after the start — and not before ``after()`` holds (what the user
        is about to do needs it: an order running, funds credited), however long the service takes."""
        if self.stop.wait(timeout=max(0.0, started + at - time.monotonic())):
            raise gevent.GreenletExit
        if after is not None:
            self.until(after)
        self.say.info("demo user: {}", text)

    def until(self, condition) -> None:
        """Wait until ``condition()`` holds (polled), or leave the script when the demo's time is up."""
        while not condition():
            if self.stop.wait(timeout=0.2):
                raise gevent.GreenletExit

    def order(self, label: str):
        return repo.load_order(self.orders[label])

    def has_run(self, label: str) -> bool:
        return any(h.to_state == "running" for h in repo.order_history(self.orders[label]))

    def user(self, name: str) -> str:
        if name not in self.users:
            self.users[name] = OPERATOR_ID if name == "operator" else self.world.new_user()
            if self.oauth is not None and name != "operator":
                self.oauth.names[self.users[name]] = name  # listed on the simulated Mixin's login page
        return self.users[name]

    def pay_order(self, name: str, label: str, pair_id: str, base: str, quote: str, skip=()) -> str:
        order_id = self.orders.setdefault(label, new_order_id())
        pair = self.pairs[pair_id]
        self.world.pay_invoice(self.user(name), pair, order_id, self.world.invoice(pair, Decimal(base), Decimal(quote)),
                               skip=skip)
        return order_id

    def memo(self, label: str, pair_id: str, action: int) -> str:
        return encode_market_making(pair_id, self.orders[label], action=action)

    def run(self, started: float) -> None:
        w, step, btc_usdt, eth_usdt = self.world, self.step, BTC_USDT_PAIR, ETH_USDT_PAIR
        try:
            step(1, started, "alice pays a BTC/USDT order in full (0.1 BTC + 5000 USDT + fees)")
            self.pay_order("alice", "A", btc_usdt, "0.1", "5000")
            step(2, started, "bob pays only the BTC leg of his order and walks away (it will time out)")
            self.pay_order("bob", "B", btc_usdt, "0.05", "2000", skip=(USDT_ERC20, ETH))
            step(3, started, "carol pays with a memo that is not ours ('hello')")
            w.pay(self.user("carol"), USDT_ERC20, "25", "hello")
            step(3.5, started, "dave pays for a pair that does not exist")
            w.pay(self.user("dave"), USDT_ERC20, "30",
                  encode_market_making("11111111-2222-4333-8444-555555555555", new_order_id()))
            step(4, started, "erin pays for a disabled pair")
            w.pay(self.user("erin"), XIN, "3", encode_market_making(DISABLED_PAIR, new_order_id()))
            step(5, started, "frank starts an ETH/USDT order: the ETH leg now, the rest a bit later "
                             f"(the pair ends orders after {ETH_USDT_MAX_DURATION}s)")
            self.pay_order("frank", "F", eth_usdt, "2", "1500", skip=(USDT_ERC20,))
            step(6, started, "mallory sends USDT into frank's order (only the first payer owns an order)")
            w.pay(self.user("mallory"), USDT_ERC20, "100", self.memo("F", eth_usdt, 1))
            step(6.5, started, "the Mixin API throttles us once (429) and fails once (503); mmflow retries")
            w.fake.inject("/safe/snapshots", status=429, count=1, retry_after=0.5)
            w.fake.inject("/safe/snapshots", status=503, count=1)
            step(8, started, "frank pays the USDT leg: his order completes")
            pair = self.pairs[eth_usdt]
            w.pay(self.user("frank"), USDT_ERC20, w.invoice(pair, Decimal("2"), Decimal("1500"))[USDT_ERC20],
                  self.memo("F", eth_usdt, 1))
            step(9, started, "george tries to market-make 20 BTC, above the pair's 10 BTC maximum")
            self.pay_order("george", "G", btc_usdt, "20", "5000")
            step(10, started, "an operator tops up the treasury (never refunded)")
            w.pay(self.user("operator"), USDT_ERC20, "10000", "treasury top-up")
            step(11, started, "an external on-chain deposit arrives with no memo (an operator must look)")
            w.fake.deposit(w.bot_id, ETH, "0.5")
            step(12, started, "helen pays a BTC/USDT order (she will add funds later)")
            self.pay_order("helen", "I", btc_usdt, "0.05", "3000")
            step(13, started, "ivan pays a BTC/USDT order and changes his mind at once: exit while his funds "
                              "are still on their way to the exchange")
            self.pay_order("ivan", "J", btc_usdt, "0.03", "1500")
            step(15, started, "ivan sends his exit memo (1 USDT, returned with the settlement)")
            w.pay(self.user("ivan"), USDT_ERC20, "1", self.memo("J", btc_usdt, ACTION_EXIT))
            step(16, started, "judy pays the BTC leg of an order, then asks to exit before paying the rest: "
                              "everything is refunded at once")
            self.pay_order("judy", "K", btc_usdt, "0.02", "900", skip=(USDT_ERC20, ETH))
            step(18, started, "judy sends her exit memo")
            w.pay(self.user("judy"), USDT_ERC20, "1", self.memo("K", btc_usdt, ACTION_EXIT))
            step(19, started, "Mixin serves every snapshot twice for a while; tallies must not double")
            w.fake.duplicate_factor = 2
            self.pay_order("alice", "H", btc_usdt, "0.02", "800")
            step(22, started, "duplicates off again")
            w.fake.duplicate_factor = 1
            step(23, started, "mallory tries to exit alice's order (only the owner can)")
            w.pay(self.user("mallory"), USDT_ERC20, "2", self.memo("A", btc_usdt, ACTION_EXIT))
            step(24, started, "helen adds 0.02 BTC to her running order (memo action 2)",
                 after=lambda: self.has_run("I"))
            w.pay(self.user("helen"), BTC, "0.02012", self.memo("I", btc_usdt, ACTION_DEPOSIT))
            step(26, started, "the operator exits alice's second order (`orders exit`)",
                 after=lambda: self.has_run("H"))
            commands.queue(self.orders["H"], "exit", {"reason": "operator exit in the demo"})
            step(28, started, "alice asks to exit her first order (exit memo with 1 USDT)")
            w.pay(self.user("alice"), USDT_ERC20, "1", self.memo("A", btc_usdt, ACTION_EXIT))
            step(30, started, "helen leaves too (exit memo)",
                 after=lambda: topup_repo.batches(self.orders["I"], "credited"))
            w.pay(self.user("helen"), USDT_ERC20, "1", self.memo("I", btc_usdt, ACTION_EXIT))
            # The story is told once frank's order has ended by itself and bob's has timed out.
            self.until(lambda: self.order("F").exit_source == "end_time"
                       and self.order("B").state.value in ("refunding", "refunded"))
        except gevent.GreenletExit:
            return


def _snapshot(title: str, ew) -> None:
    rows = Order.select().order_by(Order.created_at)
    logger.info("── {} ── orders:", title)
    for row in rows:
        ledger = repo.ledger_balances(row.order_id)
        held = {k: v for k, v in ledger.items() if v}
        where = (f"on exchange {', '.join(f'{fmt(v)} {k}' for k, v in sorted(held.items()))}" if held else
                 f"paid {', '.join(f'{fmt(v)} {SYMBOLS.get(k, k[:8])}' for k, v in repo.tallies_of(row.order_id).items())}")
        logger.info("  {}  {:<17} {}  [{}]", row.order_id[:8], row.state, row.state_reason[:80], where)
        if held and row.state in ("running", "paused", "stopping"):
            pair = PAIR_SYMBOLS.get(row.pair_id)
            if pair:
                base, quote, symbol = pair
                rep = strategy_report(row.order_id, base, quote, ew.exchange.mid(symbol))
                logger.info("      {} trades ({} buys / {} sells), volume {} {}, realized {} {}, unrealized {} {}",
                            rep["trades"], rep.get("buys", 0), rep.get("sells", 0), rep.get("volume_quote", "0"),
                            quote, rep.get("realized_pnl", "0"), quote, rep.get("unrealized_pnl", "0"), quote)
    by_state: dict = {}
    for m in MoneyMovement.select():
        by_state[(m.kind, m.state)] = by_state.get((m.kind, m.state), 0) + 1
    logger.info("  snapshots {}, money movements {}, operator alerts {}", Snapshot.select().count(),
                {f"{k}/{s}": n for (k, s), n in sorted(by_state.items())}, Alert.select().count())


HUFI_VENUES = ("mexc", "gate", "bybit")


def _hufi_world(venue: str):
    """A fake HuFi with a market-making campaign on the venue's BTC/USDT (joined) and a HOLDING campaign
    (listed, never joined) — HuFi runs no campaigns on Binance."""
    if venue not in HUFI_VENUES:
        return None
    from sim.fake_hufi import FakeHufi

    hufi = FakeHufi().start()
    mm = hufi.add_campaign(exchange=venue, symbol="BTC/USDT", chain_id=137, fund_amount="30000",
                           details={"daily_volume_target": 50000})
    # two other market makers on its public leaderboard: the estimate is a share of all scores
    hufi.set_leaderboard(137, mm["address"], "0x" + "5a" * 20, "18000", "21000", "310.5")
    hufi.set_leaderboard(137, mm["address"], "0x" + "6b" * 20, "2500", "6000", "43.1")
    hufi.add_campaign(exchange=venue, symbol="BTC", chain_id=137, type="HOLDING", fund_amount="5000",
                      details={"daily_balance_target": 10})
    return hufi


def _campaigns_and_rewards() -> None:
    """Each order's HuFi campaign, whether its account joined, and what its own fills earn by HuFi's rules."""
    from storage.campaign_models import CampaignParticipation, HufiCampaign
    from storage.rewards import order_rewards

    listed = list(HufiCampaign.select())
    if not listed:
        return
    logger.info("── HuFi campaigns ──")
    for c in listed:
        logger.info("  {} {} {} on {} ({}{})", c.key[:20] + "…", c.type, c.symbol, c.exchange_name, c.status,
                    "" if c.type.endswith("MARKET_MAKING") else ": listed, not joined")
    formula = None
    boards_told: set[str] = set()
    for part in CampaignParticipation.select().where(CampaignParticipation.hufi_chain_id.is_null(False)):
        r = order_rewards(part.order_id)
        if not r or "estimate" not in r:
            continue
        e = r["estimate"]
        formula = e["formula"]
        logger.info("  order {}: {} — weighted volume {} since joining; estimated reward today {} {} "
                    "({} of its account's score)", part.order_id[:8], "joined" if r["joined"] else "not joined",
                    r["order_weighted_volume_total"], e["order_reward"], e["token"],
                    (e["order_share_of_account"] or "0")[:6])
        if r.get("leaderboard") and r["campaign"] not in boards_told:
            boards_told.add(r["campaign"])
            board = r["leaderboard"]
            logger.info("    leaderboard: {} participants; the others' score {}, volume {}", board["participants"],
                        board["others_score"], board["others_volume"])
    if formula:
        logger.info("  how: {}", formula)


def _users_in_and_out(script: Script) -> None:
    """Each user's money in and out, as the fake Mixin saw it (a user's balance starts at zero)."""
    logger.info("── every user's money, in and out ──")
    for name, user_id in script.users.items():
        if name == "operator":
            continue
        paid: dict[str, Decimal] = {}
        back: dict[str, Decimal] = {}
        for snap in Snapshot.select().where(Snapshot.opponent_id == user_id):
            if snap.amount > 0:
                paid[snap.asset_id] = paid.get(snap.asset_id, Decimal(0)) + snap.amount
        for m in MoneyMovement.select().where((MoneyMovement.recipient_id == user_id)
                                              & (MoneyMovement.state == "confirmed")):
            back[m.asset_id] = back.get(m.asset_id, Decimal(0)) + m.amount
        text = lambda d: ", ".join(f"{fmt(v)} {SYMBOLS.get(k, k[:8])}" for k, v in sorted(d.items())) or "nothing"  # noqa: E731
        logger.info("  {:<8} paid {}  →  got back {}", name, text(paid), text(back))


def _actual_holdings(ew, api_keys=None) -> dict[str, Decimal]:
    """What the bot's Mixin wallet and the exchange account (or the accounts of ``api_keys``) hold, per symbol
    (read from the fakes)."""
    world = ew.world
    out: dict[str, Decimal] = {}
    for asset_id, symbol in SYMBOLS.items():
        out[symbol] = out.get(symbol, Decimal(0)) + world.fake.balance(world.bot_id, asset_id)
    for code in ("BTC", "ETH", "USDT"):
        for key in api_keys or [ew.api_key]:
            free, locked = ew.exchange.balance(key, code)
            out[code] = out.get(code, Decimal(0)) + free + locked
    return {k: v for k, v in out.items() if v}


def run_demo(*, duration: float | None = None, workdir: str | None = None, json_logs: bool = False,
             venue: str = "binance", api: tuple[str, int] | None = None, hold: float = 0.0,
             database: str | None = None, instances: int = 1, kill_one: bool = False) -> int:
    """Run the demo in `workdir` (kept, so its database can be inspected afterwards), or in a temporary
    directory that is removed at the end, keystore and keys included. ``duration``: at most this many
    seconds of user activity (default ``DEFAULT_DURATION``); the script ends sooner once its story is told."""
    setup_logging("INFO", json=json_logs)
    duration = DEFAULT_DURATION if duration is None else duration
    keep = workdir is not None
    work = Path(workdir) if keep else Path(tempfile.mkdtemp(prefix="mmflow-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _run(work, keep, duration, venue, api, hold, database=database, instances=instances,
                    kill_one=kill_one)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def _secret_file(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


def _api_table(work: Path, world, oauth, listen: tuple[str, int] | None) -> tuple[dict, str]:
    """The demo's ``[api]`` table and the dashboard's URL. Without ``listen``: a free loopback port (taken
    here, so the OAuth return address is known before the server binds)."""
    host, port = listen or ("127.0.0.1", 0)
    if port == 0:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    base_url = f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"
    client_secret = oauth.register_client(world.keystore.app_id)
    table = {"listen": f"[{host}]:{port}" if ":" in host else f"{host}:{port}", "public_base_url": base_url,
             "token_secret_file": _secret_file(work / "api-token.secret", secrets.token_hex(32)),
             "mixin_oauth_client_secret_file": _secret_file(work / "mixin-oauth.secret", client_secret),
             "mixin_oauth_authorize_url": f"{world.fake.url}/oauth/authorize"}
    return table, base_url


def _run(work: Path, keep: bool, duration: float, venue: str, api: tuple[str, int] | None = None,  # noqa: PLR0912,PLR0915
         hold: float = 0.0, *, database: str | None = None, instances: int = 1, kill_one: bool = False) -> int:
    ew = world_with_exchange(deposit_delay=2.0, return_confirm_delay=1.0, venue=venue)
    world = ew.world
    hufi = _hufi_world(venue)
    keystore_path = world.write_keystore(work / "keystore.json")
    raw = world.config_dict(work / "mmflow.db", keystore_path)
    raw["mixin"].update({"poll_interval": 0.5, "backoff_base": 0.2, "backoff_max": 2.0,
                         "operator_user_ids": [OPERATOR_ID]})
    raw["payments"].update({"timeout": PAYMENT_TIMEOUT, "check_delay": 1.0})
    raw["funding"] = {"poll_interval": 1.0, "retry_delay": 2.0, "return_retry_delay": 2.0, "lookup_grace": 10.0}
    raw["strategy"] = {"tick_interval": 1.0}
    raw["stream"] = {"slow_interval": 1.0, "fast_interval": 0.3}
    for pair in raw["pairs"]:
        if pair["symbol"] in DEMO_STRATEGY:
            pair["strategy"] = DEMO_STRATEGY[pair["symbol"]]
        if pair["symbol"] == "ETH/USDT":
            pair["max_duration"] = ETH_USDT_MAX_DURATION
    # The demo's exchange keys live in files next to its keystore (never in the environment: a key exported
    # from one run must not leak into the next).
    for pair in raw["pairs"]:
        pair["exchange"] = venue  # the account is named after its venue
    raw["exchanges"] = [{"id": venue, "ccxt": venue,
                         "api_key_file": _secret_file(work / "exchange.key", ew.api_key),
                         "secret_file": _secret_file(work / "exchange.secret", ew.secret),
                         "urls": {"api": ew.exchange.url}, "options": ew.ccxt_config()["options"]}]
    if hufi is not None:
        evm = Path(_secret_file(work / "hufi-evm.key", "0x" + "42" * 32))
        raw["hufi"] = hufi.config_table(str(evm), {venue: (_secret_file(work / "hufi-ro.key", "demo-read-only-key"),
                                                           _secret_file(work / "hufi-ro.secret", "demo-ro-secret"))},
                                        refresh_interval=20.0, retry_delay=1.0, retry_max_delay=5.0)
    oauth = install_oauth(world.fake)
    db_url = None
    if database:  # a PostgreSQL server: the demo's own fresh database on it
        from sim.demo_cluster import fresh_database
        db_url = fresh_database(database)
        raw["database"] = {"url": db_url}
        logger.info("demo: database {} (created for this run)", db_url.split("@")[-1])
    if instances > 1:
        from sim.demo_cluster import cluster_table
        raw["cluster"] = cluster_table()
        dashboard = None   # N instances of one config cannot all listen on one port: no [api] table here
    else:
        raw["api"], dashboard = _api_table(work, world, oauth, api)
    config_path = work / "mmflow.toml"
    config_path.write_text(dump_toml(raw))
    config = load_config(config_path)
    logger.info("demo: fake Mixin at {}, fake {} at {}, work dir {} (config {}), payment timeout {:g}s",
                world.fake.url, venue, ew.exchange.url, work, config_path, PAYMENT_TIMEOUT)
    if hufi is None:
        logger.info("demo: HuFi lists no campaigns on {} (its venues: {}): orders get local campaign records only; "
                    "try --venue mexc|gate|bybit", venue, ", ".join(HUFI_VENUES))
    world.fake.users.add(OPERATOR_ID)

    escalation = Escalation(event=threading.Event())
    root = cluster = None
    if instances > 1:
        from sim.demo_cluster import DemoInstances
        from storage.db import open_database
        open_database(config.database.url)   # the demo reads the shared database (and creates its schema)
        cluster = DemoInstances(work, config_path, instances)
        cluster.start()
    else:
        services = build_services(config)
        root = start_tree(services, escalation)
    if dashboard is not None:
        _, operator_token = create_api_token("operator", "demo", time.time(), None)
        logger.info("demo: dashboard at {} — users: 'Log in with Mixin' and pick a demo user on the simulated "
                    "Mixin's page; operators: 'Operator' with the demo-only token {} (API: {}openapi.json, metrics: "
                    "{}metrics)", dashboard, operator_token, dashboard, dashboard)
    # The market moves and synthetic takers trade against resting quotes, so running orders get fills.
    ew.exchange.start_price_process(interval=0.5, vol=0.0008, taker_prob=0.6, taker_size=0.01)
    stop = threading.Event()
    script = Script(world, {p.pair_id: p for p in config.pairs}, stop, oauth)
    started = time.monotonic()
    users = gevent.spawn(script.run, started)
    next_snapshot = started + 10
    try:
        while time.monotonic() - started < duration and not users.ready() and not escalation.event.is_set():
            gevent.sleep(0.2)
            if kill_one and cluster is not None and cluster.killed is None and _time_to_kill(started):
                cluster.kill_one()
            if time.monotonic() >= next_snapshot:
                _snapshot(f"t={time.monotonic() - started:.0f}s", ew)
                next_snapshot += 10
        stop.set()
        users.join(timeout=2)
        final_states = {f.value for f in FINAL_STATES}
        asked: set[str] = set()

        def exit_open_orders() -> None:
            # Payments sent just before the users stopped still make orders: they are asked to exit too. An
            # order whose exit is already asked for (by its owner, the operator, its end time) is on its way.
            open_orders = [o for o, s in Order.select(Order.order_id, Order.state)
                           .where(Order.exit_requested_at.is_null()).tuples()
                           if s not in final_states and o not in asked]
            if open_orders:
                logger.info("demo: time is up — exiting the {} orders still open", len(open_orders))
            for order_id in open_orders:
                commands.queue(order_id, "exit", {"reason": "the demo is over"})
                asked.add(order_id)

        deadline = time.monotonic() + (40 if cluster is None else 90)
        while time.monotonic() < deadline and not escalation.event.is_set():
            exit_open_orders()
            states = [s for (s,) in Order.select(Order.state).tuples()]
            if all(s in final_states for s in states) and _quiet() and _caught_up(world):
                break
            gevent.sleep(0.3)
    except KeyboardInterrupt:
        stop.set()
    ew.exchange.stop_price_process()
    _snapshot("final", ew)
    _campaigns_and_rewards()
    _users_in_and_out(script)
    totals = audit.money_totals(config)
    stranded = audit.stranded(_actual_holdings(ew), totals["accounted"])
    final = {f.value for f in FINAL_STATES}
    all_final = all(state in final for state in totals["orders_by_state"])
    summary = {"orders_by_state": totals["orders_by_state"],
               "paid_in": audit.as_strings(totals["paid_in"]), "paid_out": audit.as_strings(totals["paid_out"]),
               "fees": audit.as_strings(totals["fees"]), "trading": audit.as_strings(totals["trading"]),
               "dust": audit.as_strings(totals["dust"]), "differences": audit.as_strings(totals["other"]),
               "stranded": audit.as_strings(stranded),
               "all_final": all_final}
    if cluster is not None:
        summary["cluster"] = {"instances": instances, "killed": cluster.killed,
                              "leases": {name: holder for name, (holder, _) in sorted(cluster.leases().items())}}
    if keep:
        logger.info("demo: done. Inspect with: python run.py orders list --config {}  (orders show / statement "
                    "ORDER_ID, alerts list work the same way)", config_path)
    else:
        logger.info("demo: done; its temporary directory is removed. Run `python run.py demo --workdir DIR` to keep "
                    "the database and inspect it with `python run.py orders list --config DIR/mmflow.toml`")
    if not all_final or stranded:
        logger.error("demo: {}", "orders left open" if not all_final else f"money stranded: {summary['stranded']}")
    sys.stdout.flush()
    print(json.dumps(summary, sort_keys=True), flush=True)
    if hold > 0 and dashboard is not None and not escalation.event.is_set():
        logger.info("demo: the world and the dashboard stay up {:g}s more at {} (Ctrl-C ends it)", hold, dashboard)
        _hold(hold, escalation.event)
    if cluster is not None:
        cluster.stop()
    else:
        stop_tree(root)
    if db_url and not keep:
        from sim.demo_cluster import drop_database
        from storage.db import close_database
        from storage.models import database_proxy
        close_database(database_proxy.obj)
        drop_database(db_url)
    ew.stop()
    world.fake.stop()
    if hufi is not None:
        hufi.stop()
    if escalation.reason:
        return 70
    return 0 if all_final and not stranded else 1


def _hold(seconds: float, stop: threading.Event) -> None:
    """Wait ``seconds`` (or until SIGTERM/SIGINT, or the tree gives up)."""
    import signal

    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    stop.wait(timeout=seconds)


def _time_to_kill(started: float) -> bool:
    """--kill-one: in the middle of things — an order trading while others are still paying or funding."""
    states = {s for (s,) in Order.select(Order.state).tuples()}
    busy = states & {"payment_pending", "payment_complete", "withdrawing", "withdrawal_confirmed",
                     "deposit_confirming", "refunding", "stopping", "returning_funds", "settling"}
    return (time.monotonic() - started > 20 and "running" in states and bool(busy)) or time.monotonic() - started > 45


def _caught_up(world) -> bool:
    """Every snapshot the fake Mixin holds has been stored by the poller (none can still make an order)."""
    from storage.models import Snapshot
    bot_snapshots = sum(1 for snap in list(world.fake.snapshots.values()) if snap.data["user_id"] == world.bot_id)
    return Snapshot.select().count() >= bot_snapshots


def _quiet() -> bool:
    """No Mixin transfer still on its way (every refund and payout confirmed)."""
    return not MoneyMovement.select().where(MoneyMovement.kind.in_(["refund", "payout", "withdrawal"])
                                            & (MoneyMovement.state != "confirmed")).exists()
