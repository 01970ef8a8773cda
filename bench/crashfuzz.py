"""Random crash-fuzz: the whole flow in a `serve` subprocess, SIGKILLed at random moments and restarted.

    python bench/crashfuzz.py [--seed N] [--kills 200] [--minutes 15] [--users K] [--verbose] [--workdir DIR]

The fakes live in this process: the fake Mixin network with Safe (UTXOs, transactions, withdrawals), the
fake Binance (real ccxt.binance talks to it) with a price process and synthetic takers, the bridge that
turns a Mixin withdrawal into an exchange deposit and the return bridge (an exchange withdrawal to the
bot's deposit address becomes a Mixin deposit). mmflow runs as `python run.py serve --config …`, one
process at a time, on one SQLite file, with short timeouts so orders live their whole life between kills.

The run is a list of cycles, one per kill: start the service (some cycles armed with a random named crash
point, `MMFLOW_CRASH_AT`, at which it SIGKILLs itself), wait until it logs that it runs (a few cycles are
killed during the start-up instead), let it work a random 0.3–3 s, `os.kill(pid, SIGKILL)`, restart at
once. Meanwhile synthetic users act on the fakes, each action pinned to a cycle and a point in it:

- pay an order in full (BTC/USDT or ETH/USDT; sometimes one asset in two parts), then leave it by exit
  memo (action 3), by `python run.py orders exit ID --wait 0`, or not at all (the final phase exits it);
- sometimes add funds (action 2) that cover their fees, or that never do (refunded at the timeout); send
  the exit memo twice; a stranger tries to exit the order or pays into it;
- pay only part of an order (refunded at the payment timeout), pay part and ask to exit at once, pay for
  an oversized order, a bad memo, an unknown or disabled pair, an exit for an unknown order;
- exchange withdrawal faults (refused, failed later) and a short arrival on the way back.

Then a final phase without kills: every order still open gets an operator exit, the harness waits (bounded)
until every order is settled, refunded or in `attention`, every transfer confirmed and nothing is in
flight, stops the service with SIGTERM (exit code 0 expected) and checks, from the FAKES' records first:

- each snapshot refunded at most once (transfers to users with memo `Refund:<snapshot id>:<code>`), and
  a refund is the whole snapshot, to its sender, in its asset;
- each order paid out at most once per asset (memo `mmflow:payout:<order id>`), to its owner, the amount
  the database recorded; no other transfer from the bot to a user;
- each exchange withdrawal sent once: per client id (`withdrawOrderId`) at most one that did not fail,
  per (return, currency) at most one completed; nothing still processing;
- one Mixin withdrawal to the exchange per withdrawal request id ((order, leg) or (order, top-up batch,
  leg)), each one a withdrawal movement the database knows; nothing the bridges could not deliver;
- every order settled or refunded (a settled one with a balanced frozen statement), or in `attention`
  with a reason; every refund/payout/withdrawal confirmed (except those of an order in attention);
- nothing stranded: `storage.audit.money_totals` against what the fakes hold (the bot's Mixin balance per
  asset + the exchange account's free + locked), exactly as `run.py demo` computes it.

The LAST stdout line is one JSON object: kills, violations (a count), seed, restarts, orders by state and
more; `--verbose` prints each violation (and progress) to stderr. A run with violations keeps its work
directory (config, SQLite file, `service.log` with a marker line at every start and kill,
`violations.txt`) and names it in the JSON line.

Reproducing: `--seed N --kills K --users U` (the `repro` field of the line) gives the same schedule — the
same users, amounts, memos, faults, crash points, kill delays and the same cycle for every action. The
outcomes are not bit-identical: wall-clock timing (start-up time, scheduling on a loaded machine) decides
where exactly inside the service each kill lands, so a failing seed reproduces the same pressure, usually
the same failure, not necessarily the same interleaving.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from decimal import Decimal  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import gevent  # noqa: E402
from gevent.pool import Pool  # noqa: E402
from loguru import logger  # noqa: E402

D = Decimal

# Named crash points in the service (integrations/crashpoints.py; `grep -rn crash_point(`). The treasury's
# f"{row.kind}_…" points exist for each kind it sends. tests/test_crashfuzz.py checks this list against the code.
MOVEMENT_KINDS = ("refund", "withdrawal", "payout")
CRASH_POINTS = (
    "before_prepare", "after_prepare", "after_broadcast", "before_confirm_recorded", "after_verify",
    *(f"{kind}_{step}" for kind in MOVEMENT_KINDS
      for step in ("before_prepare", "after_broadcast", "before_confirm_recorded")),
    "before_exchange_withdraw", "after_exchange_withdraw", "after_deposit_stored",
    "order_reserved", "order_sent", "cancel_sent", "replace_reserved", "replace_sent",
)

READY_MARK = "mmflow running"
STRATEGY = {
    "BTC/USDT": {"bid_spread": "0.002", "ask_spread": "0.002", "order_amount": "0.01", "order_levels": 1,
                 "order_refresh_time": 1, "order_refresh_tolerance_pct": "0.0005", "filled_order_delay": 1},
    "ETH/USDT": {"bid_spread": "0.002", "ask_spread": "0.002", "order_amount": "0.1", "order_levels": 1,
                 "order_refresh_time": 1, "order_refresh_tolerance_pct": "0.0005", "filled_order_delay": 1},
}
PAYMENT_TIMEOUT = 3.0
UNKNOWN_PAIR = "11111111-2222-4333-8444-555555555555"
WITHDRAW_FAILED = (1, 3, 5)  # cancelled, rejected, failure (funds returned)
WITHDRAW_PROCESSING, WITHDRAW_COMPLETED = 4, 6


# --------------------------------------------------------------------------- the plan (deterministic in the seed)


@dataclass
class Cycle:
    index: int
    crash_at: str | None
    startup_kill: bool  # killed during start-up (delay from the spawn), else `delay` after it logged READY_MARK
    delay: float


@dataclass
class Action:
    at: float          # cycle index + fraction of that cycle (between its start/ready and its kill)
    kind: str          # pay | exit_memo | add_funds | operator_exit | stray | fault | short
    args: dict
    seq: int = 0       # plan order, breaks ties


@dataclass
class Plan:
    seed: int
    kills: int
    users: int
    deposit_delay: float
    withdraw_delay: float
    cycles: list[Cycle]
    actions: list[Action]
    stories: dict[str, str] = field(default_factory=dict)  # order label -> what its user does


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def build_plan(seed: int, kills: int, users: int) -> Plan:
    rng = random.Random(seed)
    deposit_delay = round(rng.uniform(0.1, 0.3), 3)
    withdraw_delay = round(rng.uniform(0.1, 0.3), 3)
    cycles = []
    for i in range(kills):
        crash_at = rng.choice(CRASH_POINTS) if rng.random() < 0.25 else None
        startup = rng.random() < 0.1
        delay = rng.uniform(0.05, 1.5) if startup else rng.uniform(0.3, 3.0)
        cycles.append(Cycle(i, crash_at, startup, round(delay, 3)))
    actions: list[Action] = []
    stories: dict[str, str] = {}
    last_start = max(1.0, kills * 0.8)
    longest = max(4.0, min(15.0, kills * 0.3))  # cycles from the payment to the exit

    def add(at: float, kind: str, **args) -> None:
        actions.append(Action(round(at, 4), kind, args, len(actions)))

    for u in range(users):
        user = f"u{u}"
        start = rng.uniform(0, last_start)
        story = rng.choices(
            ["full", "incomplete", "pending_exit", "oversized", "bad_memo", "bad_pair", "unknown_exit"],
            weights=[62, 12, 5, 4, 7, 5, 5])[0]
        order = f"o{u}"
        order_id = _uuid(rng)
        btc = rng.random() < 0.75
        pair = "BTC/USDT" if btc else "ETH/USDT"
        base = rng.choice(["0.02", "0.05", "0.1", "0.15"]) if btc else rng.choice(["0.5", "1", "2"])
        quote = rng.choice(["1000", "2500", "5000"])
        if story == "full":
            split = rng.choice([None, None, None, "quote_in_two", "fee_later"])
            add(start, "pay", user=user, order=order, order_id=order_id, pair=pair, base=base, quote=quote,
                part="first" if split else "all", split=split)
            if split:
                add(start + rng.uniform(0.05, 0.4), "pay", user=user, order=order, order_id=order_id, pair=pair,
                    base=base, quote=quote, part="rest", split=split)
            leave = start + rng.uniform(3, longest)
            how = rng.choices(["memo", "operator", "final"], weights=[6, 3, 1])[0]
            text = [f"pays {pair} {base}/{quote}{' split ' + split if split else ''}",
                    f"leaves by {how} at {leave:.2f}"]
            if btc and rng.random() < 0.3:
                at = start + rng.uniform(1.5, max(1.6, leave - start))
                covered = rng.random() < 0.8
                add(at, "add_funds", user=user, order=order, order_id=order_id, pair=pair, covered=covered)
                text.append(f"adds funds{'' if covered else ' (fee never paid)'} at {at:.2f}")
            if rng.random() < 0.1:
                at = start + rng.uniform(0.5, leave - start)
                add(at, "exit_memo", user=f"stranger-{u}", order=order, order_id=order_id, pair=pair, amount="2")
                text.append(f"a stranger asks to exit it at {at:.2f}")
            if rng.random() < 0.1:
                at = start + rng.uniform(0.0, leave - start)
                add(at, "stray", user=f"intruder-{u}", what="into_order", order_id=order_id, pair=pair)
                text.append(f"an intruder pays into it at {at:.2f}")
            if how == "memo":
                add(leave, "exit_memo", user=user, order=order, order_id=order_id, pair=pair, amount="1")
                if rng.random() < 0.1:
                    add(leave + rng.uniform(0.1, 2.0), "exit_memo", user=user, order=order, order_id=order_id,
                        pair=pair, amount="1")
                    text.append("sends the exit memo twice")
            elif how == "operator":
                add(leave, "operator_exit", order=order, order_id=order_id)
            stories[order] = "; ".join(text)
        elif story in ("incomplete", "pending_exit", "oversized"):
            if story == "oversized":
                base = "20" if btc else "2000"
            add(start, "pay", user=user, order=order, order_id=order_id, pair=pair, base=base, quote=quote,
                part="all" if story == "oversized" else "base_only")
            if story == "pending_exit":
                add(start + rng.uniform(0.05, 0.3), "exit_memo", user=user, order=order, order_id=order_id,
                    pair=pair, amount="1")
            stories[order] = f"{story}: {pair} {base}/{quote}"
        else:
            what = {"bad_memo": "hello", "bad_pair": rng.choice(["unknown_pair", "disabled_pair"]),
                    "unknown_exit": "unknown_exit"}[story]
            add(start, "stray", user=user, what=what, order_id=order_id, pair=pair)
            stories[order] = f"stray payment: {what}"
    for _ in range(max(2, kills // 20)):
        at = rng.uniform(0, kills)
        kind = rng.choices(["reject", "fail_later", "short"], weights=[4, 4, 2])[0]
        coin = rng.choice(["BTC", "USDT", "ETH", None])
        if kind == "short":
            add(at, "short", by=rng.choice(["0.000001", "0.00001"]))
        else:
            add(at, "fault", fault=kind, count=rng.choice([1, 2]) if kind == "reject" else 1, coin=coin)
    actions.sort(key=lambda a: (a.at, a.seq))
    return Plan(seed, kills, users, deposit_delay, withdraw_delay, cycles, actions, stories)


# --------------------------------------------------------------------------- the world and the service


class Harness:
    def __init__(self, plan: Plan, work: Path, *, verbose: bool, minutes: float, final_timeout: float):
        from domain.config import parse_config
        from sim.bridge import world_with_exchange
        from sim.world import BTC_USDT_PAIR, ETH_USDT_PAIR, default_pairs, dump_toml

        self.plan, self.work, self.verbose = plan, work, verbose
        self.budget = minutes * 60.0
        self.final_timeout = final_timeout
        self.started = time.monotonic()
        self.ew = world_with_exchange(seed=plan.seed, deposit_delay=plan.deposit_delay)
        self.ew.exchange.withdraw_delay = plan.withdraw_delay
        self.api_keys = [self.ew.api_key]   # every exchange account of the world (bench/clusterfail.py adds some)
        self.env = dict(os.environ, CRASHFUZZ_EXCHANGE_KEY=self.ew.api_key,
                        CRASHFUZZ_EXCHANGE_SECRET=self.ew.secret)
        self.env.pop("MMFLOW_CRASH_AT", None)
        self.db_path = work / "mmflow.db"
        self.log_path = work / "service.log"
        world = self.ew.world
        raw = world.config_dict(self.db_path, world.write_keystore(work / "keystore.json"))
        raw["payments"].update({"timeout": PAYMENT_TIMEOUT, "check_delay": 0.05})
        raw["funding"] = {"poll_interval": 0.05, "retry_delay": 0.1, "withdrawal_timeout": 600,
                          "deposit_timeout": 600, "return_timeout": 600, "return_retry_delay": 0.1,
                          "return_max_attempts": 5, "lookup_grace": 1.0}
        raw["strategy"] = {"tick_interval": 0.2, "stop_timeout": 300}
        raw["stream"] = {"slow_interval": 0.2, "fast_interval": 0.1}
        raw["exchanges"] = [{"id": "binance", "ccxt": "binance", "api_key_env": "CRASHFUZZ_EXCHANGE_KEY",
                             "secret_env": "CRASHFUZZ_EXCHANGE_SECRET", "urls": {"api": self.ew.exchange.url},
                             "options": self.ew.ccxt_config()["options"]}]
        pairs = default_pairs()
        for p in pairs:
            if p["symbol"] in STRATEGY:
                p["strategy"] = dict(STRATEGY[p["symbol"]])
        raw["pairs"] = pairs
        self.config_path = work / "mmflow.toml"
        self.config_path.write_text(dump_toml(raw))
        config = parse_config(raw, read_secrets=False)
        self.pairs = {"BTC/USDT": config.pair(BTC_USDT_PAIR), "ETH/USDT": config.pair(ETH_USDT_PAIR)}
        self.users: dict[str, str] = {}
        self.proc: subprocess.Popen | None = None
        self.crash_at: str | None = None
        self.we_killed = False
        self.kills = self.crash_point_kills = self.startup_kills = self.spawns = 0
        self.cycles_run = 0
        self.violations: list[str] = []
        self.notes: list[str] = []
        self.cli = Pool(4)
        self.cli_results: Counter = Counter()
        self.executed = 0
        self.exit_queued: set[str] = set()   # orders whose exit command the CLI queued (exit 0)
        self.exit_running: set[str] = set()  # a CLI call for it is under way
        self.ew.exchange.start_price_process(interval=0.2, vol=0.0005, taker_prob=0.5, taker_size=0.01)

    # ------------------------------------------------------------------ helpers

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, text: str) -> None:
        if self.verbose:
            print(f"[crashfuzz {self.elapsed():7.1f}s] {text}", file=sys.stderr, flush=True)

    def mark(self, text: str) -> None:
        """A marker line in the service log, so a kill can be found next to what the service was doing."""
        with open(self.log_path, "a") as f:
            f.write(f"---- crashfuzz {time.strftime('%H:%M:%S')} +{self.elapsed():.2f}s: {text} ----\n")

    def user(self, name: str) -> str:
        if name not in self.users:
            self.users[name] = self.ew.world.new_user()
        return self.users[name]

    # ------------------------------------------------------------------ the service

    def spawn(self, crash_at: str | None) -> int:
        env = dict(self.env)
        if crash_at:
            env["MMFLOW_CRASH_AT"] = crash_at
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.mark(f"start #{self.spawns + 1}" + (f" armed with MMFLOW_CRASH_AT={crash_at}" if crash_at else ""))
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen([sys.executable, "run.py", "serve", "--config", str(self.config_path)],
                                         cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.crash_at, self.we_killed = crash_at, False
        self.spawns += 1
        return offset

    def wait_ready(self, offset: int, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                if READY_MARK.encode() in f.read():
                    return True
            gevent.sleep(0.05)
        self.notes.append(f"start #{self.spawns}: no '{READY_MARK}' within {timeout:.0f}s")
        return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.we_killed = True
            os.kill(self.proc.pid, signal.SIGKILL)
        self.reap()

    def reap(self) -> None:
        """Wait for the dead service and classify its end."""
        code = self.proc.wait()
        if code == -signal.SIGKILL:
            self.kills += 1
            if not self.we_killed:
                if self.crash_at:
                    self.crash_point_kills += 1
                else:
                    self.violations.append(f"start #{self.spawns}: the service died of SIGKILL nobody sent")
            how = "SIGKILL" if self.we_killed else f"self-kill at crash point {self.crash_at}"
        else:
            self.violations.append(f"start #{self.spawns}: the service exited by itself with code {code}"
                                   f"{' (crash point ' + self.crash_at + ' armed)' if self.crash_at else ''}")
            how = f"exit code {code}"
        self.mark(f"pid {self.proc.pid} ended: {how}")
        self.proc = None

    # ------------------------------------------------------------------ user actions

    def run_action(self, action: Action) -> None:
        from domain.memo import ACTION_DEPOSIT, ACTION_EXIT, encode_market_making
        from sim.world import BTC, DISABLED_PAIR, USDT_ERC20, XIN

        a, world = action.args, self.ew.world
        self.executed += 1
        self.say(f"action {action.kind} {a}")
        self.mark(f"action @{action.at:.2f} {action.kind} {a}")
        if action.kind == "pay":
            pair = self.pairs[a["pair"]]
            invoice = world.invoice(pair, D(a["base"]), D(a["quote"]))
            memo = encode_market_making(pair.pair_id, a["order_id"])
            user = self.user(a["user"])
            # quote_in_two: 40 % of the quote asset first (often enough to complete a smaller order: the rest is
            # then refunded); fee_later: everything but the quote leg's fee asset, which completes the order.
            held = pair.quote_asset_id if a.get("split") == "quote_in_two" else self.quote_fee_asset(pair)
            for asset_id, amount in invoice.items():
                if a["part"] == "base_only" and asset_id != pair.base_asset_id:
                    continue
                if a["part"] in ("first", "rest") and asset_id == held:
                    if a["split"] == "quote_in_two":
                        first = (amount * D("0.4")).quantize(D("0.000001"))
                        amount = first if a["part"] == "first" else amount - first
                    elif a["part"] == "first":
                        continue
                elif a["part"] == "rest":
                    continue
                world.pay(user, asset_id, amount, memo)
        elif action.kind == "exit_memo":
            pair = self.pairs[a["pair"]]
            world.pay(self.user(a["user"]), USDT_ERC20, a["amount"],
                      encode_market_making(pair.pair_id, a["order_id"], action=ACTION_EXIT))
        elif action.kind == "add_funds":
            pair = self.pairs[a["pair"]]
            memo = encode_market_making(pair.pair_id, a["order_id"], action=ACTION_DEPOSIT)
            if a["covered"]:
                world.pay(self.user(a["user"]), BTC, "0.0502", memo)    # 0.05 + 0.0001 fee + 0.1 %
            else:
                world.pay(self.user(a["user"]), USDT_ERC20, "50", memo)  # its fee is due in ETH, never sent
        elif action.kind == "stray":
            user, what = self.user(a["user"]), a["what"]
            if what == "hello":
                world.pay(user, USDT_ERC20, "25", "hello")
            elif what == "unknown_pair":
                world.pay(user, USDT_ERC20, "30", encode_market_making(UNKNOWN_PAIR, a["order_id"]))
            elif what == "disabled_pair":
                world.pay(user, XIN, "3", encode_market_making(DISABLED_PAIR, a["order_id"]))
            elif what == "unknown_exit":
                world.pay(user, USDT_ERC20, "5", encode_market_making(self.pairs[a["pair"]].pair_id, a["order_id"],
                                                                      action=ACTION_EXIT))
            elif what == "into_order":
                pair = self.pairs[a["pair"]]
                world.pay(user, pair.base_asset_id, "0.01" if pair.base_asset_id == BTC else "0.1",
                          encode_market_making(pair.pair_id, a["order_id"]))
            else:  # pragma: no cover - the plan only makes the kinds above
                raise ValueError(what)
        elif action.kind == "operator_exit":
            self.operator_exit(a["order_id"], retries=5)
        elif action.kind == "fault":
            self.ew.exchange.inject_withdrawal_fault(a["fault"], a["count"], a["coin"])
        elif action.kind == "short":
            self.ew.returns.short_next(1, D(a["by"]))
        else:  # pragma: no cover
            raise ValueError(action.kind)

    def quote_fee_asset(self, pair) -> str:
        return self.ew.world.fees_for(pair).quote_fee_asset_id

    def operator_exit(self, order_id: str, retries: int = 0, reason: str = "crashfuzz operator exit") -> None:
        """`python run.py orders exit ID --wait 0` in the background (retried while the order is not known yet)."""
        if order_id in self.exit_running:
            return
        self.exit_running.add(order_id)

        def run() -> None:
            try:
                for attempt in range(retries + 1):
                    done = subprocess.run([sys.executable, "run.py", "orders", "exit", order_id, "--config",
                                           str(self.config_path), "--wait", "0", "--reason", reason],
                                          cwd=ROOT, env=self.env, capture_output=True, text=True, check=False)
                    self.cli_results[done.returncode] += 1
                    if done.returncode == 0:
                        self.exit_queued.add(order_id)
                    if done.returncode != 2 or attempt == retries:
                        if done.returncode not in (0, 2):
                            self.notes.append(f"orders exit {order_id}: exit {done.returncode}: "
                                              f"{(done.stderr or done.stdout).strip()[-300:]}")
                        return
                    gevent.sleep(1.0)
            finally:
                self.exit_running.discard(order_id)

        self.cli.spawn(run)

    # ------------------------------------------------------------------ database reads (sqlite3, read only)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Read only (mode=ro: never a checkpoint behind the service's back); retried while the file is
        missing, locked or being recovered by a starting service."""
        last = None
        for _ in range(100):
            try:
                conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
                try:
                    return conn.execute(sql, params).fetchall()
                finally:
                    conn.close()
            except sqlite3.Error as exc:
                last = exc
                gevent.sleep(0.1)
        raise RuntimeError(f"cannot read {self.db_path}: {last}")

    # ------------------------------------------------------------------ phases

    def kill_phase(self) -> None:
        actions = list(self.plan.actions)
        reserve = min(240.0, max(60.0, self.final_timeout + 30.0))
        for cycle in self.plan.cycles:
            if self.elapsed() > self.budget - reserve:
                self.notes.append(f"time budget: kill phase stopped after {self.cycles_run} cycles")
                break
            self.cycles_run += 1
            offset = self.spawn(cycle.crash_at)
            t0 = time.monotonic()
            if cycle.startup_kill:
                base = t0
            else:
                self.wait_ready(offset)
                base = time.monotonic()
            kill_at = base + cycle.delay
            while actions and actions[0].at < cycle.index + 1:
                action = actions.pop(0)
                when = base + (action.at - cycle.index) * cycle.delay
                while time.monotonic() < when and self.proc.poll() is None:
                    gevent.sleep(min(0.05, max(0.0, when - time.monotonic())))
                self.run_action(action)
            while time.monotonic() < kill_at and self.proc.poll() is None:
                gevent.sleep(min(0.05, max(0.0, kill_at - time.monotonic())))
            if cycle.startup_kill and self.proc.poll() is None:
                with open(self.log_path, "rb") as f:
                    f.seek(offset)
                    if READY_MARK.encode() not in f.read():
                        self.startup_kills += 1
            self.kill()
            if self.verbose and self.cycles_run % 10 == 0 and self.db_path.exists():
                self.say(f"cycle {self.cycles_run}: kills {self.kills} (crash points {self.crash_point_kills}), "
                         f"orders {dict(Counter(s for (s,) in self.query('SELECT state FROM orders')))}")
        self.leftover = actions

    def final_phase(self) -> None:
        from domain.states import FINAL_STATES

        final = {s.value for s in FINAL_STATES}
        self.final_started = time.monotonic()
        offset = self.spawn(None)
        if not self.wait_ready(offset, timeout=60):
            self.violations.append("final phase: the service did not start")
            return
        for action in self.leftover:
            self.run_action(action)
        deadline = time.monotonic() + self.final_timeout
        reason = "crashfuzz: final phase, every open order exits"
        while True:
            if self.proc.poll() is not None:
                self.reap()
                self.violations.append("final phase: the service died")
                return
            pending = self.unrouted()
            orders = self.query("SELECT order_id, state FROM orders")
            if not pending:
                for order_id, state in orders:
                    if state not in final and state != "attention" and order_id not in self.exit_queued:
                        self.operator_exit(order_id, reason=reason)
            busy = self.still_busy(final)
            if not busy and not pending and self.cli.free_count() == self.cli.size:
                break
            if time.monotonic() > deadline:
                for line in busy:
                    self.violations.append(f"final phase: after {self.final_timeout:.0f}s {line}")
                if pending:
                    self.violations.append(f"final phase: {len(pending)} snapshots of the bot never routed: "
                                           f"{sorted(pending)[:5]}")
                break
            gevent.sleep(0.5)
        self.cli.join(timeout=30)
        self.mark("SIGTERM")
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.violations.append("SIGTERM: the service did not stop within 60 s")
            self.kill()
            return
        self.mark(f"pid {self.proc.pid} ended with {code}")
        if code != 0:
            self.violations.append(f"SIGTERM: the service exited with code {code}, not 0")
        self.proc = None

    def unrouted(self) -> set[str]:
        """The bot's incoming snapshots on the fake Mixin that the database has not routed yet."""
        fake, bot = self.ew.world.fake, self.ew.world.bot_id
        incoming = {sid for sid, s in list(fake.snapshots.items())
                    if s.data["user_id"] == bot and D(s.data["amount"]) > 0}
        routed = {sid for (sid,) in self.query("SELECT snapshot_id FROM snapshot WHERE outcome IS NOT NULL")}
        return incoming - routed

    def still_busy(self, final: set[str]) -> list[str]:
        out = []
        attention = set()
        for order_id, state, reason in self.query("SELECT order_id, state, state_reason FROM orders"):
            if state == "attention":
                attention.add(order_id)
            elif state not in final:
                out.append(f"order {order_id} is still {state} ({reason[:200]})")
        for rid, kind, state, order_id in self.query(
                "SELECT request_id, kind, state, order_id FROM money_movement "
                "WHERE kind IN ('refund', 'payout', 'withdrawal') AND state != 'confirmed'"):
            if order_id not in attention:
                out.append(f"{kind} {rid} of order {order_id} is still {state}")
        for wd in [w for key in self.api_keys for w in self.ew.exchange.withdrawals_of(key)]:
            if wd.status == WITHDRAW_PROCESSING:
                out.append(f"exchange withdrawal {wd.id} ({wd.withdraw_order_id}, {wd.amount} {wd.coin}) still "
                           f"processing")
        pending = self.ew.world.fake.pending_deposits(self.ew.world.bot_id)
        if pending:
            out.append(f"{len(pending)} Mixin deposits still pending")
        return out

    # ------------------------------------------------------------------ checks

    def check(self) -> dict:
        from domain.config import load_config
        from sim.demo import _actual_holdings
        from sim.fake_mixin_safe import MIXIN_CASHIER_ID
        from storage import audit
        from storage.db import close_database, open_database

        v = self.violations
        world, fake, bot = self.ew.world, self.ew.world.fake, self.ew.world.bot_id
        orders = {oid: (state, reason or "", user, statement) for oid, state, reason, user, statement in
                  self.query("SELECT order_id, state, state_reason, user_id, statement FROM orders")}
        movements = self.query("SELECT request_id, kind, order_id, asset_id, amount, recipient_id, state, leg, "
                               "top_up_batch, client_id, exchange_code, snapshot_id FROM money_movement")
        by_request = {m[0]: m for m in movements}

        # Transfers from the bot to users, as the fake Mixin recorded them (the recipient's snapshots).
        refunds: dict[str, list[dict]] = defaultdict(list)
        payouts: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for s in list(fake.snapshots.values()):
            data = s.data
            if data["opponent_id"] != bot or data["user_id"] in (bot, MIXIN_CASHIER_ID) or D(data["amount"]) <= 0:
                continue
            memo = bytes.fromhex(data["memo"]).decode("utf-8", "replace")
            if memo.startswith("Refund:"):
                refunds[memo.split(":")[1]].append(data)
            elif memo.startswith("mmflow:payout:"):
                payouts[(memo[len("mmflow:payout:"):], data["asset_id"])].append(data)
            else:
                v.append(f"transfer {data['snapshot_id']} of {data['amount']} {data['asset_id']} to "
                         f"{data['user_id']} is neither a refund nor a payout (memo {memo!r})")
        for sid, sent in refunds.items():
            if len(sent) > 1:
                v.append(f"snapshot {sid} refunded {len(sent)} times: "
                         f"{[(t['amount'], t['request_id']) for t in sent]}")
            original = fake.snapshots.get(sid)
            if original is None or original.data["user_id"] != bot or D(original.data["amount"]) <= 0:
                v.append(f"refund of {sid}: no such incoming snapshot of the bot")
                continue
            o = original.data
            for t in sent:
                if (t["user_id"], t["asset_id"], D(t["amount"])) != (o["opponent_id"], o["asset_id"], D(o["amount"])):
                    v.append(f"refund of {sid}: {t['amount']} {t['asset_id']} to {t['user_id']}, the snapshot was "
                             f"{o['amount']} {o['asset_id']} from {o['opponent_id']}")
        recorded_payouts = {(m[2], m[3]): m for m in movements if m[1] == "payout"}
        for (order_id, asset_id), sent in payouts.items():
            if len(sent) > 1:
                v.append(f"order {order_id} paid out {len(sent)} times in {asset_id}: "
                         f"{[(t['amount'], t['request_id']) for t in sent]}")
            owner = orders.get(order_id, (None, None, None, None))[2]
            row = recorded_payouts.get((order_id, asset_id))
            for t in sent:
                if t["user_id"] != owner:
                    v.append(f"payout of order {order_id} went to {t['user_id']}, the owner is {owner}")
                if row is None or D(row[4]) != D(t["amount"]):
                    v.append(f"payout of order {order_id}: {t['amount']} {asset_id} sent, the database recorded "
                             f"{row[4] if row else 'nothing'}")

        # Mixin withdrawals to the exchange: one per request id, each a withdrawal movement we know.
        per_request = Counter(r["request_id"] for r in world.safe.withdrawals)
        for rid, n in per_request.items():
            row = by_request.get(rid)
            if n > 1:
                v.append(f"Mixin withdrawal request {rid} sent {n} times")
            if row is None or row[1] != "withdrawal":
                v.append(f"Mixin withdrawal {rid} is no withdrawal movement of the database")
        legs = Counter((m[2], m[7], m[8]) for m in movements if m[1] == "withdrawal")
        for key, n in legs.items():
            if n > 1:
                v.append(f"{n} withdrawal movements for (order, leg, top-up batch) {key}")
        for m in movements:
            if m[1] == "withdrawal" and m[6] == "confirmed" and per_request.get(m[0], 0) != 1:
                v.append(f"withdrawal {m[0]} of order {m[2]} confirmed but sent {per_request.get(m[0], 0)} times")
        if self.ew.bridge.unmatched or self.ew.bridge.errors:
            v.append(f"bridge to the exchange: unmatched {self.ew.bridge.unmatched}, errors {self.ew.bridge.errors}")
        if self.ew.returns.unmatched:
            v.append(f"return bridge: unmatched {self.ew.returns.unmatched}")
        if world.safe.hook_errors:
            v.append(f"fake Safe withdrawal hook errors: {world.safe.hook_errors}")

        # Exchange withdrawals: per client id at most one that did not fail; per return at most one completed.
        by_client: dict[str, list] = defaultdict(list)
        completed: dict[tuple[str, str], list] = defaultdict(list)
        exchange_withdrawals = [w for key in self.api_keys for w in self.ew.exchange.withdrawals_of(key)]
        for wd in exchange_withdrawals:
            if not wd.withdraw_order_id:
                v.append(f"exchange withdrawal {wd.id} ({wd.amount} {wd.coin}) has no client id")
                continue
            by_client[wd.withdraw_order_id].append(wd)
            if wd.status == WITHDRAW_COMPLETED:
                completed[(wd.withdraw_order_id.rsplit("n", 1)[0], wd.coin)].append(wd)
        owner_of_client = {}
        for m in movements:
            if m[1] == "return" and m[9]:
                owner_of_client[m[9].rsplit("n", 1)[0]] = m[2]
        for client_id, wds in by_client.items():
            live = [w for w in wds if w.status not in WITHDRAW_FAILED]
            if len(live) > 1:
                v.append(f"exchange withdrawal client id {client_id} (order "
                         f"{owner_of_client.get(client_id.rsplit('n', 1)[0])}) sent {len(live)} times: "
                         f"{[(w.id, w.amount, w.status) for w in live]}")
        for (prefix, coin), wds in completed.items():
            if len(wds) > 1:
                v.append(f"order {owner_of_client.get(prefix)}: {len(wds)} completed {coin} withdrawals from the "
                         f"exchange: {[(w.id, w.withdraw_order_id, w.amount) for w in wds]}")
            if prefix not in owner_of_client:
                v.append(f"completed exchange withdrawal(s) {[w.id for w in wds]} match no return of the database")

        # Every order final (a settled one balanced) or in attention with a reason.
        for order_id, (state, reason, _user, statement) in orders.items():
            if state == "attention":
                if not reason.strip():
                    v.append(f"order {order_id} is in attention without a reason")
            elif state == "settled":
                frozen = json.loads(statement) if statement else None
                if not frozen or frozen.get("balanced") is not True:
                    v.append(f"order {order_id} settled without a balanced statement")
            elif state != "refunded":
                v.append(f"order {order_id} ended {state}: {reason[:300]}")

        # Nothing stranded: what the fakes hold against what the records account for (as the demo does).
        config = load_config(self.config_path, read_secrets=False)
        db = open_database(config.database.url)
        try:
            totals = audit.money_totals(config)
        finally:
            close_database(db)
        stranded = audit.stranded(_actual_holdings(self.ew, self.api_keys), totals["accounted"])
        if stranded:
            v.append(f"stranded (held minus accounted, per symbol): {audit.as_strings(stranded)}")
        return {
            "orders_by_state": totals["orders_by_state"],
            "refunds": sum(len(x) for x in refunds.values()),
            "payouts": sum(len(x) for x in payouts.values()),
            "mixin_withdrawals": len(world.safe.withdrawals),
            "exchange_withdrawals": len(exchange_withdrawals),
            "exchange_faults_applied": len(self.ew.exchange.withdrawal_faults_applied),
            "short_arrivals": len(self.ew.returns.shorted),
            "stranded": audit.as_strings(stranded),
        }

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.cli.kill()
        self.ew.exchange.stop_price_process()
        self.ew.stop()


# --------------------------------------------------------------------------- main


def run(seed: int, kills: int, users: int, minutes: float, *, verbose: bool = False, workdir: str | None = None,
        final_timeout: float = 150.0) -> dict:
    plan = build_plan(seed, kills, users)
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"crashfuzz-{seed}-"))
    work.mkdir(parents=True, exist_ok=True)
    logger.remove()
    # the fakes' own log lines (bridges, faults)
    logger.add(work / "harness.log", level="INFO", diagnose=False, backtrace=False)
    h = Harness(plan, work, verbose=verbose, minutes=minutes, final_timeout=final_timeout)

    def interrupted() -> None:  # SIGTERM/SIGINT: never leave a service behind
        if h.proc is not None and h.proc.poll() is None:
            os.kill(h.proc.pid, signal.SIGKILL)
        print(f"crashfuzz: interrupted; work dir {work}", file=sys.stderr, flush=True)
        os._exit(143)

    gevent.signal_handler(signal.SIGTERM, interrupted)
    gevent.signal_handler(signal.SIGINT, interrupted)
    h.say(f"seed {seed}: {kills} cycles, {users} users, {len(plan.actions)} actions; work dir {work}")
    (work / "plan.txt").write_text("\n".join(
        [f"seed {seed} kills {kills} users {users} deposit_delay {plan.deposit_delay} "
         f"withdraw_delay {plan.withdraw_delay}"]
        + [f"{label}: {text}" for label, text in plan.stories.items()]
        + [f"cycle {c.index}: crash_at={c.crash_at} startup_kill={c.startup_kill} delay={c.delay}"
           for c in plan.cycles]
        + [f"@{a.at:.2f} {a.kind} {a.args}" for a in plan.actions]) + "\n")
    summary: dict = {}
    try:
        h.kill_phase()
        kill_seconds = h.elapsed()
        h.final_phase()
        final_seconds = time.monotonic() - h.final_started
        summary = h.check()
    except BaseException as exc:
        h.violations.append(f"harness error: {type(exc).__name__}: {exc}")
        kill_seconds = final_seconds = None
        if not isinstance(exc, Exception):
            raise
    finally:
        h.close()
    keep = bool(h.violations) or workdir is not None
    if h.violations:
        (work / "violations.txt").write_text("\n".join(h.violations) + "\n")
    if verbose:
        for line in h.notes:
            print(f"[crashfuzz] note: {line}", file=sys.stderr)
        for line in h.violations:
            print(f"[crashfuzz] VIOLATION: {line}", file=sys.stderr)
    result = {
        "kills": h.kills, "violations": len(h.violations), "seed": seed,
        "target_kills": kills, "users": users, "restarts": h.spawns - 1 if h.spawns else 0,
        "crash_point_kills": h.crash_point_kills, "startup_kills": h.startup_kills, "cycles": h.cycles_run,
        "actions": h.executed, "operator_exits": dict(sorted(h.cli_results.items())),
        **summary,
        "seconds": round(h.elapsed(), 1),
        "kill_phase_seconds": None if kill_seconds is None else round(kill_seconds, 1),
        "final_phase_seconds": None if final_seconds is None else round(final_seconds, 1),
        "notes": len(h.notes),
        "repro": f"python bench/crashfuzz.py --seed {seed} --kills {kills} --users {users}",
    }
    if keep:
        result["workdir"] = str(work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return result


def default_users(kills: int) -> int:
    return max(6, kills // 5)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=None, help="the schedule's seed (default: random, printed)")
    parser.add_argument("--kills", type=int, default=200, help="SIGKILLs to reach (one per cycle; default 200)")
    parser.add_argument("--minutes", type=float, default=15.0, help="time budget of the whole run (default 15)")
    parser.add_argument("--users", type=int, default=None, help="synthetic users (default: max(6, kills / 5))")
    parser.add_argument("--final-timeout", type=float, default=150.0,
                        help="seconds the final phase waits for every order to end (default 150)")
    parser.add_argument("--workdir", default=None, help="keep the config, database and logs here")
    parser.add_argument("--verbose", action="store_true", help="progress and every violation on stderr")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    users = args.users if args.users is not None else default_users(args.kills)
    result = run(seed, args.kills, users, args.minutes, verbose=args.verbose, workdir=args.workdir,
                 final_timeout=args.final_timeout)
    sys.stdout.flush()
    print(json.dumps(result, sort_keys=True), flush=True)
    return 0 if result["violations"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
