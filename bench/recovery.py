"""Restart benchmark: how long a restart takes until every order is ready, and resident memory per order.

    python bench/recovery.py [--orders 100000] [--running 50000] [--repeats 3] [--timeout 120]
                             [--first-timeout 300] [--distinct-funds]

Prints ONE JSON line: ``{"orders", "running", "restart_s", "kib_per_order", "cpu_s", "wall_s", ...}`` —
medians over ``--repeats`` restarts, each listed in ``restarts``. Goals (issue 14): restart <= 10 s,
<= 10 KiB per idle order; the bench measures whatever today's code does.

1. The world: the fake Mixin and the fake exchange (Binance dialect, rate limit off, the mid standing
   still) in a child process (``fakes.py``); the exchange account is funded with every running order's
   ledger.
   Every running order is funded alike (0.01 BTC, 1,000 USDT) unless ``--distinct-funds`` gives each its own
   amounts, as real users' orders are: what the service shares between orders alike (a quiet band, a drawdown
   basis, a budget) is then worked out once per order.
2. The database (SQLite), built in bulk (``seeding.py``, timed as ``build_s``): ``--orders`` open orders,
   of which ``--running`` are ``running`` (state history, payment tallies, ledger deposits of 0.01 BTC and
   1,000 USDT each) and the rest ``payment_pending`` with a deadline a month away — idle: an actor each,
   nothing to do.
   The running orders' ladders (1 level a side, BTC/USDT, 0.5 % from the mid 60,000, 0.001 BTC each) are
   seeded too, consistent on both sides: the fake places them straight into its matching engine at its start
   (``--ladders``: no HTTP, no rate limit) and the database gets them as the strategy's units leave acknowledged
   orders (``seeding.seed_ladders``: ACCEPTED rows with the fake's exchange ids, sequence numbers, quote spans,
   the opening price). Placing 50,000 ladders through the service took longer than any first start may (one
   ladder is two signed requests and four commits per order); what is measured is the restart.
3. The first start (``first_start``, bounded by ``--first-timeout``): a start over the seeded world — the
   running orders find their ladders within tolerance and keep them, the gateway reconciles them.
4. ``--repeats`` restarts. Each is a fresh process running the service as ``run.py serve`` does
   (``build_services`` + ``start_tree``, INFO log to a file) that ends like a crash (``os._exit``, no clean
   stop) once it has reported, so the next restart reconciles what it left.

The KPI sampler samples hourly here (``[kpi] sample_interval``, 60 s by default): its round, on wall-clock
multiples of the interval, samples every running order at once (~2 ms each: 50,000 orders are ~90 s of CPU)
and landed inside a restart's window or not by chance; it is the sampler's cost, not the restart's.

A restart is ready when the order supervisor logged ``orders: recovery done`` (every open order has its
actor), every order actor has run its setup() (``set_up``: an actor's start returns before its setup runs,
and an order's view is loaded there) and every running order has finished one strategy tick in this process without "not ready" (the
exchange account's markets loaded and its open orders reconciled, the order's ladder kept or replaced).
``restart_s`` is from just before the process is spawned (interpreter start and imports included) to
ready; ``cpu_s`` is the process's own CPU over the same span. ``kib_per_order`` = (resident memory at
the end - resident memory just before the tree started, with the imports and the database open) / order
actors up at the end: running orders carry more than idle ones, so it bounds an idle order's share from
above (``--running 0`` measures idle orders alone). A restart not ready within ``--timeout`` stops there
and reports what it reached (``recovered`` order actors, ``running_ready`` orders), ``ready: false`` and
``restart_s: null``; ``cpu_s`` / ``wall_s`` / ``kib_per_order`` are then those of the span it ran.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from decimal import Decimal  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import fakes  # noqa: E402
import measure  # noqa: E402
import seeding  # noqa: E402

KEY, SECRET = "recovery-bench-key", "recovery-bench-secret"
LEDGER_BASE, LEDGER_QUOTE = Decimal("0.01"), Decimal("1000")
IDLE_TIMEOUT = 30 * 86400.0  # payment_pending orders' deadline: nothing expires while the bench runs
# Every running order: one level a side 0.5 % from the mid, refreshed every 30 s, a ladder within 0.2 % kept.
STRATEGY = {"bid_spread": "0.005", "ask_spread": "0.005", "order_amount": "0.001", "order_levels": 1,
            "order_refresh_time": 30, "order_refresh_tolerance_pct": "0.002"}
RECOVERY_DONE = "orders: recovery done"
KPI_INTERVAL = 3600.0


def config_dict(work: Path, mixin_port: int, exchange_port: int) -> dict:
    from sim.world import BTC_USDT_PAIR, default_pairs

    pairs = [p for p in default_pairs() if p.get("enabled", True)]  # the disabled XIN pair has no market here
    for pair in pairs:
        if pair["id"] == BTC_USDT_PAIR:
            pair["strategy"] = dict(STRATEGY)
    return {
        "database": {"url": f"sqlite:///{work / 'mmflow.db'}"},
        "mixin": {"api_base": f"http://127.0.0.1:{mixin_port}", "keystore": str(work / "keystore.json")},
        "payments": {"market_making_fee_percent": "0.1"},
        "exchanges": [fakes.exchange_account(exchange_port, KEY, SECRET)],
        "pairs": pairs,
        # the KPI sampler's round (on wall-clock minutes, every running order) is periodic work, not the
        # restart's: hourly here, so a round does not land in a restart's window by chance (see the docstring)
        "kpi": {"sample_interval": KPI_INTERVAL},
    }


# ---------------------------------------------------------------- the database, in bulk

MID = Decimal("60000")
LADDER_PRICES = {"buy": MID * (1 - Decimal(STRATEGY["bid_spread"])), "sell": MID * (1 + Decimal(STRATEGY["ask_spread"]))}


def running_ids(running: int) -> list[str]:
    return [seeding.order_id_of(i, salt=1) for i in range(running)]


def write_ladders(path: Path, running: int) -> None:
    """The running orders' ladders, for the fake to place at its start (it writes back the exchange ids)."""
    ladders = [o for order_id in running_ids(running)
               for o in seeding.ladder_of(order_id, LADDER_PRICES, Decimal(STRATEGY["order_amount"]))]
    path.write_text(json.dumps(ladders))


def place_ladders(fx, path: Path) -> None:
    """In the fake's process: every ladder order straight into the matching engine (resting, funds locked), and
    its exchange id written next to the file."""
    ladders = json.loads(path.read_text())
    market = fx.market_id("BTC/USDT")
    now_ms = fx.now_ms()
    for o in ladders:
        order = fx.engine.place_order(KEY, market, o["side"].upper(), "LIMIT", now_ms=now_ms,
                                      quantity=Decimal(o["amount"]), price=Decimal(o["price"]), time_in_force="GTC",
                                      client_order_id=o["cid"])
        assert order.status == "NEW", (o, order.status)
        o["exchange_order_id"] = order.order_id
    path.with_suffix(".placed").write_text(json.dumps(ladders))


DISTINCT_SPAN = (Decimal("1e-8"), Decimal("0.01"))  # --distinct-funds: more per order index (BTC, USDT)


def funds_of(distinct: bool):
    """A running order's deposits: LEDGER_BASE and LEDGER_QUOTE each, or (``--distinct-funds``) each order its own
    amounts (up to DISTINCT_SPAN more), as real users' orders are — work the service shares between orders alike
    (a quiet band, a drawdown basis, a budget) is then done once per order."""
    if not distinct:
        return None

    def funds(order_id: str) -> tuple[Decimal, Decimal]:
        k = int(order_id[:8], 16)
        return LEDGER_BASE + k * DISTINCT_SPAN[0], LEDGER_QUOTE + k * DISTINCT_SPAN[1]

    return funds


def build_database(work: Path, mixin_port: int, exchange_port: int, orders: int, running: int,
                   ladders: list[dict], distinct: bool = False) -> None:
    from domain.config import parse_config
    from domain.payment import FeeRequirements
    from sim.world import BTC, BTC_USDT_PAIR, ETH
    from storage.db import open_database
    from storage.models import database_proxy

    config = parse_config(config_dict(work, mixin_port, exchange_port))
    pair = config.pair(BTC_USDT_PAIR)
    fees = FeeRequirements(BTC, Decimal("0.0001"), ETH, Decimal("0.002"), Decimal("0.1"))
    db = open_database(config.database.url)
    now = time.time()
    step = 10_000
    for start in range(0, orders, step):
        ids = [seeding.order_id_of(i, salt=1) for i in range(start, min(orders, start + step))]
        with db.atomic():
            busy = ids[:max(0, running - start)]
            if busy:
                seeding.seed_orders(db, busy, pair, fees, now, state="running", base=LEDGER_BASE,
                                    quote=LEDGER_QUOTE, user_id="00000000-0000-4000-8000-0000000000b0",
                                    funds=funds_of(distinct))
            idle = ids[len(busy):]
            if idle:
                seeding.seed_orders(db, idle, pair, fees, now, state="payment_pending", timeout=IDLE_TIMEOUT)
    for start in range(0, len(ladders), step):
        with db.atomic():
            seeding.seed_ladders(db, ladders[start:start + step], pair.exchange, pair.symbol, now, opening_price=MID)
    db.close()
    database_proxy.initialize(None)


# ---------------------------------------------------------------- one start (a child process)


def service_run(args) -> None:
    """Start the service on the database; a native thread reports once every order is ready (or at --timeout,
    or when the tree cannot start) and ends the process hard.

    The watchdog is an OS thread, not a greenlet: a service whose hub is saturated would delay a greenlet's
    check (and its timeout) without bound; the thread reads the counts (a set's and a dict's length) as they
    are and keeps the bench's time bounded."""
    import gevent
    from gevent import monkey as gevent_monkey
    from loguru import logger

    from actors.order.strategy import StrategyRunner
    from actors.order.actor import OrderActor
    from actors.orders import OrderSupervisor
    from actors.system import Escalation, build_services, start_tree
    from domain.config import parse_config
    from integrations.mixin.keystore import load_keystore

    imported_s = time.time() - args.spawned_at
    work = Path(args.work)
    logger.remove()
    logger.configure(extra={"order_id": ""})
    logger.add(sys.stderr, level="WARNING", diagnose=False, backtrace=False)
    # what production logs (INFO), to a file
    logger.add(str(work / f"service-{args.label}.log"), level="INFO", diagnose=False, backtrace=False)
    state: dict = {"recovered_at": None, "tree_at": None, "tree_up_at": None, "tree_error": None,
                   "supervisor": None}
    logger.add(lambda m: state.update(recovered_at=state["recovered_at"] or time.time()), level="INFO", diagnose=False,
               filter=lambda r: r["message"].startswith(RECOVERY_DONE))

    gc_time = {"s": 0.0, "at": 0.0, "full": 0, "full_at": []}   # the cyclic collector's own time (a heap of 100k actors)

    def gc_watch(phase: str, info: dict) -> None:
        if phase == "start":
            gc_time["at"] = time.perf_counter()
        else:
            gc_time["s"] += time.perf_counter() - gc_time["at"]
            if info.get("generation") == 2:  # when (after spawn) and how long each full pass took
                gc_time["full"] += 1
                gc_time["full_at"].append((round(time.time() - args.spawned_at, 2),
                                           round(time.perf_counter() - gc_time["at"], 3)))

    gc.callbacks.append(gc_watch)
    ready: set[str] = set()
    plain_tick, plain_setup, plain_order_setup = StrategyRunner.tick, OrderSupervisor.setup, OrderActor.setup
    set_up = [0]  # order actors whose setup() has run (a count: a set of ids would add to the memory measured)

    def tick(self, now):  # a tick that returns (no NotReady, no price breaker) quoted: its ladder is kept or new
        result = plain_tick(self, now)
        ready.add(self.actor.order_id)
        return result

    def setup(self):  # keep a handle on the order supervisor: its children are counted without asking it
        state["supervisor"] = self
        return plain_setup(self)

    def order_setup(self):  # an actor's start returns before its setup() runs (pooled actors): count them
        try:
            return plain_order_setup(self)
        finally:
            set_up[0] += 1

    StrategyRunner.tick, OrderSupervisor.setup, OrderActor.setup = tick, setup, order_setup

    mixin_port, exchange_port, _ = (int(x) for x in args.ports.split(","))
    config = parse_config(config_dict(work, mixin_port, exchange_port))
    services = build_services(config, keystore=load_keystore(work / "keystore.json"))
    rss_before = measure.rss_kib()

    profile = None
    if os.environ.get("MMFLOW_BENCH_PROFILE"):  # a cProfile of each start, written next to its log
        import cProfile

        profile = cProfile.Profile()
        profile.enable()

    def report(is_ready: bool, why: str) -> None:
        done_at = time.time()
        if profile is not None:
            profile.disable()
            profile.dump_stats(str(work / f"profile-{args.label.replace(' ', '-')}.pstats"))
        cpu_s = time.process_time()
        rss_now = measure.rss_kib()
        supervisor = state["supervisor"]
        recovered = len(supervisor._children) if supervisor is not None else 0
        at = (lambda t: round(t - args.spawned_at, 2) if t else None)
        measure.emit({
            "ready": is_ready, "why": why,
            "restart_s": round(done_at - args.spawned_at, 2), "cpu_s": round(cpu_s, 2),
            "wall_s": round(done_at - args.spawned_at, 2),
            "imports_s": round(imported_s, 2), "tree_started_after_s": at(state["tree_at"]),
            "tree_up_s": at(state["tree_up_at"]), "recovered_s": at(state["recovered_at"]),
            "recovered": recovered, "set_up": set_up[0], "running_ready": len(ready),
            "rss_before_tree_kib": rss_before, "rss_end_kib": rss_now,
            "gc_s": round(gc_time["s"], 2), "gc_full_collections": gc_time["full"],
            "gc_full_at": gc_time["full_at"],
            # per order whose actor is up: at a timeout that is fewer than --orders
            "kib_per_order": round((rss_now - rss_before) / recovered, 2) if recovered else None,
        })
        os._exit(0)  # like a crash: no clean stop; the next start reconciles what this one left

    def watchdog() -> None:
        sleep = gevent_monkey.get_original("time", "sleep")
        deadline = args.spawned_at + args.timeout
        while True:
            if state["tree_error"]:
                report(False, f"the tree did not start ({state['tree_error']}): run.py serve exits 70 here")
            supervisor = state["supervisor"]
            if (state["recovered_at"] and len(ready) >= args.running and supervisor is not None
                    and set_up[0] >= len(supervisor._children)):
                report(True, "")
            if time.time() >= deadline:
                report(False, f"not ready within --timeout {args.timeout:g}s")
            sleep(0.02)

    gevent_monkey.get_original("_thread", "start_new_thread")(watchdog, ())
    escalation = Escalation(event=threading.Event())
    state["tree_at"] = time.time()
    try:
        start_tree(services, escalation)
        state["tree_up_at"] = time.time()
    except Exception as exc:  # noqa: BLE001 - reported by the watchdog, like serve's one CRITICAL line
        state["tree_error"] = f"{type(exc).__name__}: {exc}"
    while True:
        gevent.sleep(3600)


def start_and_measure(args, work: Path, ports: str, label: str, timeout: float) -> dict:
    import requests

    stats_url = f"http://127.0.0.1:{ports.split(',')[2]}"
    fake0 = requests.get(stats_url, timeout=30).json()
    spawned_at = time.time()
    cmd = [sys.executable, __file__, "--service", "--work", str(work), "--ports", ports, "--label", label,
           "--orders", str(args.orders), "--running", str(args.running), "--timeout", str(timeout),
           "--spawned-at", repr(spawned_at)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout + 120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, _ = proc.communicate()
    result = measure.last_json_line(out) or {"ready": False, "why": f"the {label} printed no result"}
    result.pop("machine", None)
    fake1 = requests.get(stats_url, timeout=30).json()
    result.update(label=label, exchange_open_orders_before=fake0["open_orders"],
                  exchange_open_orders_after=fake1["open_orders"], exchange_requests=fake1["requests"] -
                  fake0["requests"], fake_cpu_s=round(fake1["cpu_s"] - fake0["cpu_s"], 2))
    return result


# ---------------------------------------------------------------- the driver


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=100_000, help="open orders in the database")
    parser.add_argument("--running", type=int, default=50_000, help="of which running on the fake exchange")
    parser.add_argument("--repeats", type=int, default=3, help="restarts measured (medians)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a restart may take before it "
                                                                     "reports what it reached")
    parser.add_argument("--first-timeout", type=float, default=300.0,
                        help="seconds for the first start, where the running orders place their ladders")
    parser.add_argument("--distinct-funds", action="store_true",
                        help="each running order funded with its own amounts (default: every one alike)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (database, service logs)")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--service", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    parser.add_argument("--label", help=argparse.SUPPRESS)
    parser.add_argument("--spawned-at", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--port-file", help=argparse.SUPPRESS)
    parser.add_argument("--credit-btc", help=argparse.SUPPRESS)
    parser.add_argument("--credit-usdt", help=argparse.SUPPRESS)
    parser.add_argument("--ladders", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        fakes.serve_exchange_world(args.port_file, str(Path(args.work) / "keystore.json"), KEY, SECRET,
                                   price_process=False, credit={"BTC": args.credit_btc, "USDT": args.credit_usdt},
                                   prepare=lambda fx: place_ladders(fx, Path(args.ladders)))
        return 0
    if args.service:
        try:
            service_run(args)
        except BaseException as exc:  # report, never hang the driver
            measure.emit({"ready": False, "why": f"{type(exc).__name__}: {exc}"})
        os._exit(0)
    if args.orders < 1 or not 0 <= args.running <= args.orders or args.repeats < 1 or args.timeout <= 0:
        return measure.fail("need --orders >= 1, 0 <= --running <= --orders, --repeats >= 1, --timeout > 0")

    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING", diagnose=False, backtrace=False)
    total = measure.start()
    work = Path(tempfile.mkdtemp(prefix="mmflow-bench-recovery-"))
    port_file = work / "ports"
    ladders_file = work / "ladders.json"
    write_ladders(ladders_file, args.running)
    fake = subprocess.Popen([sys.executable, __file__, "--serve-fake", "--work", str(work), "--port-file",
                             str(port_file),
                             "--credit-btc", str((LEDGER_BASE + DISTINCT_SPAN[0] * args.running) * (args.running + 10)),
                             "--credit-usdt", str((LEDGER_QUOTE + DISTINCT_SPAN[1] * args.running) * (args.running + 10)),
                             "--ladders", str(ladders_file)])
    try:
        mixin_port, exchange_port, stats_port = fakes.wait_for_ports(port_file, fake)
        ports = f"{mixin_port},{exchange_port},{stats_port}"
        build = measure.start()
        build_database(work, mixin_port, exchange_port, args.orders, args.running,
                       json.loads(ladders_file.with_suffix(".placed").read_text()), args.distinct_funds)
        build.stop()
        first = start_and_measure(args, work, ports, "first start", args.first_timeout)
        restarts = [start_and_measure(args, work, ports, f"restart {i + 1}", args.timeout)
                    for i in range(args.repeats)]
    finally:
        fake.kill()
        fake.wait()
    measured = [r for r in restarts if "restart_s" in r]
    med = measure.median_of(measured) if measured else {}
    all_ready = bool(restarts) and all(r.get("ready") for r in restarts)
    db_file = work / "mmflow.db"
    measure.emit({
        "bench": "recovery",
        "orders": args.orders,
        "running": args.running,
        "distinct_funds": args.distinct_funds,
        "restart_s": med.get("restart_s") if all_ready else None,  # None: not ready within --timeout
        "kib_per_order": med.get("kib_per_order"),
        "cpu_s": med.get("cpu_s"),
        "wall_s": med.get("wall_s"),
        "ready": all_ready,
        # what the median restart reached when it stopped (ready or --timeout)
        "recovered": med.get("recovered"),
        "running_ready": med.get("running_ready"),
        "goal": {"restart_s": "<= 10", "kib_per_idle_order": "<= 10"},
        "build_s": round(build.wall_s, 2),
        "build_cpu_s": round(build.cpu_s, 2),
        "database_mib": round(db_file.stat().st_size / 2**20, 1) if db_file.exists() else None,
        "first_start": first,
        "restarts": restarts,
        "repeats": args.repeats,
        "timeout_s": args.timeout,
        "bench_wall_s": round(total.stop().wall_s, 1),
        "work": str(work) if args.keep else None,
    })
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all_ready else 1


if __name__ == "__main__":
    sys.exit(main())
