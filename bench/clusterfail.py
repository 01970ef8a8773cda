"""Failover of a cluster: three `serve` instances on one PostgreSQL, one of them killed or frozen mid-flow.

    python bench/clusterfail.py --database postgresql://postgres@127.0.0.1:5432/DB [--mode kill|stop|accounts]
                                [--verbose]

The fakes live in this process (the crash-fuzz world: bench/crashfuzz.py — fake Mixin with Safe, fake Binance
with a price process and takers, both bridges). Three `python run.py serve` subprocesses share the config, with
a ``[cluster]`` table of a short lease (1.5 s). Users pay orders (some in two parts, one that never completes and
is refunded at the payment timeout); once orders are running and others are still paying or funding, the
instance holding the treasury role (and, in this world, whatever else it holds) is

- ``--mode kill``: SIGKILLed, or
- ``--mode stop``: SIGSTOPped until its leases have been taken over, then SIGCONTed — the zombie wakes up with
  stale leases: its writes are refused (fenced) and it steps back;

then half of the orders leave by exit memo and the rest by `orders exit` (operator command through any
instance), and the harness waits until every order is settled or refunded and checks, from the fakes' records,
the crash-fuzz invariants (no snapshot refunded twice, no payout or withdrawal sent twice, no duplicate or
orphaned exchange order, nothing stranded). The last stdout line is one JSON object; exit 0 without violations.

``--mode accounts``: four exchange accounts on the fake exchange (one key each, a BTC/USDT pair on each), one
order funded and quoting on each; instance names are chosen so that the first instance (which holds every role)
owns two accounts by consistent hashing and each other instance one, and that its two move to different
survivors. The first instance is SIGKILLed; the harness checks, from the lease rows, that every account is then
held by the instance the hash ring of the survivors names (the others' accounts did not move), that each new
owner logged taking its account (reconciling first), and that every order of a moved account quotes again (an
exchange order placed after the kill) — then the orders exit and the usual invariants are checked.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from decimal import Decimal  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
for where in (ROOT, ROOT / "bench"):
    if str(where) not in sys.path:
        sys.path.insert(0, str(where))

import gevent  # noqa: E402

import crashfuzz  # noqa: E402

D = Decimal
LEASE_TTL = 1.5
HEARTBEAT = 0.3


ACCOUNTS = ("binance", "binance-b", "binance-c", "binance-d")


def account_instance_names(accounts=ACCOUNTS) -> tuple[str, str, str]:
    """Three instance ids: the first owns two accounts and each other one, and the first's two go to different
    survivors when it leaves (so a kill spreads its accounts)."""
    from domain.cluster import assign_accounts

    for n in range(1, 200):
        names = (f"i{n}", f"i{n + 1}", f"i{n + 2}")
        before, after = assign_accounts(accounts, names), assign_accounts(accounts, names[1:])
        mine = [a for a, owner in before.items() if owner == names[0]]
        if len(mine) == 2 and len(set(before.values())) == 3 and len({after[a] for a in mine}) == 2:
            return names
    raise RuntimeError("no instance names found")


def instance_names() -> tuple[str, str, str]:
    """Three instance ids; the exchange account `binance` hashes to the first of them."""
    from domain.cluster import assign_accounts

    for n in range(1, 100):
        names = (f"i{n}", f"i{n + 1}", f"i{n + 2}")
        if assign_accounts(["binance"], names)["binance"] == names[0]:
            return names
    raise RuntimeError("no instance names found")


class ClusterHarness(crashfuzz.Harness):
    """The crash-fuzz world and checks, with N instances on PostgreSQL instead of one on SQLite."""

    def __init__(self, work: Path, database_url: str, *, verbose: bool, final_timeout: float = 150.0,
                 accounts: tuple[str, ...] = ("binance",)):
        import secrets
        import tomllib

        from domain.config import parse_config
        from sim.world import dump_toml

        plan = crashfuzz.build_plan(7, 1, 1)
        plan.actions.clear()
        super().__init__(plan, work, verbose=verbose, minutes=10, final_timeout=final_timeout)
        self.database_url = database_url
        raw = tomllib.loads(self.config_path.read_text())
        raw["database"] = {"url": database_url, "pool_size": 4}
        raw["cluster"] = {"lease_ttl": LEASE_TTL, "heartbeat": HEARTBEAT}
        # more exchange accounts: a key of their own on the same fake exchange, a BTC/USDT pair on each
        self.accounts = accounts
        btc = next(p for p in raw["pairs"] if p["symbol"] == "BTC/USDT")
        for n, account in enumerate(accounts[1:], start=1):
            key, secret = f"clusterfail-key-{n}", secrets.token_hex(16)
            self.ew.exchange.add_account(key, secret)
            self.api_keys.append(key)
            self.env[f"CLUSTERFAIL_KEY_{n}"], self.env[f"CLUSTERFAIL_SECRET_{n}"] = key, secret
            raw["exchanges"].append({**raw["exchanges"][0], "id": account, "api_key_env": f"CLUSTERFAIL_KEY_{n}",
                                     "secret_env": f"CLUSTERFAIL_SECRET_{n}"})
            raw["pairs"].append({**btc, "id": f"0776b00f-95c0-46f9-85e4-{n:012x}", "exchange": account})
        config = parse_config(raw, read_secrets=False)
        for p in raw["pairs"]:
            if p["exchange"] != "binance":
                self.pairs[f"BTC/USDT@{p['exchange']}"] = config.pair(p["id"])
        self.config_path.write_text(dump_toml(raw))
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.orders: list[str] = []

    # -- the instances ---------------------------------------------------------------------------------------

    def start_instance(self, name: str) -> None:
        env = dict(self.env, MMFLOW_CLUSTER_INSTANCE=name)
        log_path = self.work / f"{name}.log"
        self.logs[name] = log_path
        with open(log_path, "ab") as log:
            self.procs[name] = subprocess.Popen([sys.executable, "run.py", "serve", "--config", str(self.config_path)],
                                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def start_all(self, names, first_holds: str, holds) -> None:
        """Start the instances one after the other; after the first, wait until ``holds()`` (what it took)."""
        for i, name in enumerate(names):
            self.start_instance(name)
            self.wait_for(f"{name} running", lambda n=name: self.log_has(n, crashfuzz.READY_MARK)
                          or self.procs[n].poll() is not None, 60)
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"{name} ended at its start: {self.logs[name].read_text()[-2000:]}")
            if i == 0:
                self.wait_for(first_holds, holds, 30)

    def wait_for(self, what: str, condition, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            gevent.sleep(0.1)
        self.violations.append(f"timed out after {timeout:.0f}s waiting for {what}")
        return False

    def log_has(self, name: str, text: str) -> bool:
        path = self.logs.get(name)
        return path is not None and path.exists() and text in path.read_text(errors="replace")

    def holders(self) -> dict[str, tuple[str | None, int]]:
        return {name: (holder, epoch) for name, holder, epoch in
                self.query("SELECT name, holder, epoch FROM cluster_lease")}

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        import psycopg

        last = None
        for _ in range(50):
            try:
                with psycopg.connect(self.database_url, autocommit=True, connect_timeout=5) as conn:
                    return conn.execute(sql.replace("?", "%s"), params).fetchall()
            except psycopg.errors.UndefinedTable:
                return []
            except psycopg.Error as exc:
                last = exc
                gevent.sleep(0.1)
        raise RuntimeError(f"cannot read the database: {last}")

    # -- the users -------------------------------------------------------------------------------------------

    def pay(self, user: str, pair: str, base: str, quote: str, part: str = "all") -> str:
        order_id = crashfuzz._uuid(__import__("random").Random(len(self.orders) * 7919 + 1))
        self.run_action(crashfuzz.Action(0, "pay", {"pair": pair, "order_id": order_id, "user": user, "base": base,
                                                    "quote": quote, "part": part, "split": "fee_later"}))
        self.orders.append(order_id)
        return order_id

    def states(self) -> dict[str, str]:
        return dict(self.query("SELECT order_id, state FROM orders"))

    # -- the scenario ----------------------------------------------------------------------------------------

    def run_scenario(self, mode: str) -> dict:
        from domain.memo import ACTION_EXIT, encode_market_making
        from sim.world import USDT_ERC20

        # the first instance takes every role; the names are such that the exchange account hashes to it too, so
        # the victim holds the poller/router, the treasury AND the account
        names = instance_names()
        self.start_all(names, "every role and the account held by the first instance",
                       lambda: sum(1 for h, _ in self.holders().values() if h == names[0]) >= 5)
        self.say(f"leases: {self.holders()}")
        early = [self.pay(f"u{i}", pair, base, quote) for i, (pair, base, quote) in
                 enumerate([("BTC/USDT", "0.05", "3000"), ("ETH/USDT", "0.5", "1000"), ("BTC/USDT", "0.04", "2500")])]
        self.pay("partial", "BTC/USDT", "0.05", "3000", part="base_only")   # never completes: refunded
        self.wait_for("an order running", lambda: "running" in self.states().values(), 90)
        late = [self.pay(f"v{i}", pair, base, quote, part="first") for i, (pair, base, quote) in
                enumerate([("ETH/USDT", "0.5", "1000"), ("BTC/USDT", "0.03", "2000")])]
        # the victim: the instance holding the treasury (and the poller/router, the first to start holds them all)
        victim = self.holders().get("role:treasury", (None, 0))[0]
        before = self.holders()
        self.say(f"victim {victim} ({mode}); states {Counter(self.states().values())}")
        self.narration = [f"{victim} held {sorted(n for n, (h, _) in before.items() if h == victim)}"]
        proc = self.procs[victim]
        struck = time.monotonic()
        if mode == "kill":
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        else:
            os.kill(proc.pid, signal.SIGSTOP)
        took_over = self.wait_for("the victim's leases taken over",
                                  lambda: all(self.holders().get(n, (None, 0))[0] not in (None, victim)
                                              for n, (h, _) in before.items() if h == victim), LEASE_TTL * 10 + 30)
        self.took_over_after = round(time.monotonic() - struck, 2)
        if not took_over:
            self.say("sessions: " + repr(self.query(
                "SELECT pid, state, now() - state_change, wait_event_type, wait_event, left(query, 160) "
                "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")))
        after = self.holders()
        self.narration.append("now: " + ", ".join(f"{n} → {h} (epoch {e})" for n, (h, e) in sorted(after.items())))
        self.took_over = took_over
        for i, order_id in enumerate(late):   # the payments complete while the victim is gone
            self.run_action(crashfuzz.Action(0, "pay", {"pair": ("ETH/USDT", "BTC/USDT")[i], "order_id": order_id,
                                                        "user": f"v{i}", "base": ("0.5", "0.03")[i],
                                                        "quote": ("1000", "2000")[i], "part": "rest",
                                                        "split": "fee_later"}))
        if mode == "stop":
            os.kill(proc.pid, signal.SIGCONT)
            # it finds its leases lost at its next heartbeat — or, its sessions ended by the taker, its actors fail
            # and restart without them — and stops what ran under them
            self.wait_for("the zombie to step back", lambda: any(self.log_has(victim, text) for text in (
                "lost role:", "lost account:", "leases not renewed for", f"instance {victim} left")), 30)
        # leave: exit memos for the early orders, operator exits (any instance) for the rest
        for i, order_id in enumerate(early):
            pair = self.pairs[("BTC/USDT", "ETH/USDT", "BTC/USDT")[i]]
            self.wait_for(f"order {order_id} running", lambda o=order_id: self.states().get(o) == "running", 90)
            self.ew.world.pay(self.user(f"u{i}"), USDT_ERC20, "1",
                              encode_market_making(pair.pair_id, order_id, action=ACTION_EXIT))
        self.final(victim if mode == "kill" else None)
        return self.summary(mode, victim)

    def run_accounts_scenario(self) -> dict:
        """Several accounts spread over three instances; the first (every role, two accounts) killed."""
        from domain.cluster import account_lease, assign_accounts
        from domain.memo import ACTION_EXIT, encode_market_making
        from sim.world import USDT_ERC20

        names = account_instance_names(self.accounts)
        expected = {account_lease(a): owner for a, owner in assign_accounts(self.accounts, names).items()}
        self.start_all(names, "every role held by the first instance",
                       lambda: sum(1 for n, (h, _) in self.holders().items()
                                   if n.startswith("role:") and h == names[0]) >= 4)

        def accounts_held():
            return {n: h for n, (h, _) in self.holders().items() if n.startswith("account:")}
        self.wait_for("each account held by its instance on the ring of three", lambda: accounts_held() == expected,
                      60)
        owners_before = accounts_held()
        pair_of = {a: ("BTC/USDT" if a == self.accounts[0] else f"BTC/USDT@{a}") for a in self.accounts}
        orders = {a: self.pay(f"w{i}", pair_of[a], "0.05", "3000") for i, a in enumerate(self.accounts)}
        account_of = {o: a for a, o in orders.items()}

        def quoting_since(at: float) -> set[str]:
            return {o for (o,) in self.query("SELECT DISTINCT order_id FROM exchange_order WHERE created_at > ?",
                                             (at,))}
        self.wait_for("every order running and quoting", lambda: set(orders.values()) <= quoting_since(0)
                      and all(self.states().get(o) == "running" for o in orders.values()), 120)
        victim = names[0]
        moved = sorted(a for a in self.accounts if expected[account_lease(a)] == victim)
        self.narration = [f"{victim} held {sorted(n for n, (h, _) in self.holders().items() if h == victim)}",
                          "accounts before: " + ", ".join(f"{n} → {h}" for n, h in sorted(owners_before.items()))]
        self.say(f"victim {victim} (kill); accounts {owners_before}")
        struck_wall = float(self.query("SELECT EXTRACT(EPOCH FROM clock_timestamp())")[0][0])
        struck = time.monotonic()
        os.kill(self.procs[victim].pid, signal.SIGKILL)
        self.procs[victim].wait()
        survivors = names[1:]
        expected_after = {account_lease(a): owner for a, owner in assign_accounts(self.accounts, survivors).items()}
        self.took_over = self.wait_for(
            "the victim's roles and accounts taken over by the survivors' ring",
            lambda: accounts_held() == expected_after and all(
                h in survivors for n, (h, _) in self.holders().items() if n.startswith("role:")), LEASE_TTL * 10 + 30)
        self.took_over_after = round(time.monotonic() - struck, 2)
        owners_after = accounts_held()
        self.narration.append("accounts after: " + ", ".join(f"{n} → {h}" for n, h in sorted(owners_after.items())))
        for account in moved:
            owner = expected_after[account_lease(account)]
            self.wait_for(f"{owner} to log taking {account}", lambda o=owner, a=account: self.log_has(
                o, f"instance {o} took exchange account {a} (epoch"), 30)
        # every order of a moved account goes on: reconciled by its new owner, then quoting again
        self.wait_for("every order of a moved account quoting again after the kill",
                      lambda: {orders[a] for a in moved} <= quoting_since(struck_wall), 90)
        self.account_moves = {"owners_before": owners_before, "owners_after": owners_after, "moved": moved,
                              "expected_after": expected_after,
                              "quoting_again": sorted(account_of[o] for o in quoting_since(struck_wall)
                                                      if o in account_of)}
        for i, account in enumerate(self.accounts):
            pair = self.pairs[pair_of[account]]
            self.ew.world.pay(self.user(f"w{i}"), USDT_ERC20, "1",
                              encode_market_making(pair.pair_id, orders[account], action=ACTION_EXIT))
        self.final(victim)
        return {**self.summary("accounts", victim), "accounts": self.account_moves}

    def final(self, dead: str | None) -> None:
        from domain.states import FINAL_STATES

        final = {s.value for s in FINAL_STATES}
        deadline = time.monotonic() + self.final_timeout
        while True:
            for order_id, state in self.states().items():
                if state not in final and state != "attention" and order_id not in self.exit_queued \
                        and state in ("running", "paused"):
                    self.operator_exit(order_id, retries=3, reason="clusterfail: every open order exits")
            busy = self.still_busy(final)
            if not busy and not self.unrouted() and self.cli.free_count() == self.cli.size:
                break
            if time.monotonic() > deadline:
                self.violations.extend(f"after {self.final_timeout:.0f}s {line}" for line in busy)
                break
            gevent.sleep(0.5)
        self.cli.join(timeout=30)
        for name, proc in self.procs.items():
            if name != dead and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.procs.items():
            if name == dead:
                continue
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = "timeout"
            if code != 0:
                self.violations.append(f"{name}: SIGTERM ended it with {code}, not 0")

    def orphans(self) -> list[str]:
        """Exchange orders with our prefix the database does not know, or open on the exchange at the end."""
        known = {c for (c,) in self.query("SELECT client_order_id FROM exchange_order")}
        out = []
        theirs = [o for key in self.api_keys for o in self.ew.exchange.orders_of(key)] \
            if hasattr(self.ew.exchange, "orders_of") else []
        for order in theirs:
            cid = getattr(order, "client_order_id", None)
            if cid and cid.startswith("mm") and cid not in known:
                out.append(f"exchange order {cid} is not in the database")
        return out

    def summary(self, mode: str, victim: str) -> dict:
        checked = self.check()
        self.violations.extend(self.orphans())
        fenced = sum(self.logs[n].read_text(errors="replace").count("write refused") for n in self.logs)
        return {"mode": mode, "victim": victim, "took_over": self.took_over, "took_over_after_s": self.took_over_after,
                "lease_ttl_s": LEASE_TTL, "violations": len(self.violations),
                "fenced_writes": fenced, "narration": self.narration, **checked}

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGCONT)
                except OSError:
                    pass
                proc.kill()
                proc.wait()
        super().close()


def run(database_url: str, mode: str, *, verbose: bool = False, workdir: str | None = None) -> dict:
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"clusterfail-{mode}-"))
    work.mkdir(parents=True, exist_ok=True)
    h = ClusterHarness(work, database_url, verbose=verbose, accounts=ACCOUNTS if mode == "accounts" else ("binance",))
    try:
        result = h.run_accounts_scenario() if mode == "accounts" else h.run_scenario(mode)
    finally:
        h.close()
    if h.violations:
        (work / "violations.txt").write_text("\n".join(h.violations) + "\n")
        for line in h.violations:
            print(f"VIOLATION {line}", file=sys.stderr)
    if h.violations or workdir:
        result["workdir"] = str(work)   # kept: the instances' logs, the config, violations.txt
    else:
        shutil.rmtree(work, ignore_errors=True)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--mode", choices=("kill", "stop", "accounts"), default="kill")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--workdir")
    args = parser.parse_args(argv)
    result = run(args.database, args.mode, verbose=args.verbose, workdir=args.workdir)
    print(json.dumps(result), flush=True)
    return 0 if result["violations"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
