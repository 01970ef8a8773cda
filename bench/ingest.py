"""Ingest benchmark: snapshots through the fake Mixin over real HTTP → poller → router → OrderActors → durable
tallies, against the floor cost of batch-inserting the same rows into the same table.

    python bench/ingest.py [--snapshots 100000] [--orders 10000] [--repeats 3]
                           [--database postgresql://postgres@127.0.0.1:5432/mmflow_bench_ingest]

Prints ONE JSON line:

- ``e2e_per_s``: snapshots per CPU second of the mmflow process, start of the tree → every snapshot tallied;
- ``raw_per_s``: rows per CPU second of a plain batched insert (500 rows a transaction, the same rows, the same
  schema and database kind);
- ``ratio`` = e2e_per_s / raw_per_s (CPU per row of the floor over CPU per snapshot end to end; on
  PostgreSQL both sides count the client process only, not the server's);
- the same rates by wall time (``e2e_wall_per_s``, ``raw_wall_per_s``, ``wall_ratio``), and the CPU the fake
  Mixin spent serving the pages (``fake_cpu_s``, another process).

Each figure is the median of ``--repeats`` trials; ``trials`` lists them. A trial is a fresh child process
with a fresh database against the same fake Mixin (one child process, pre-filled with every snapshot, built
once). The trial knows when it is done without scanning a table: each order's tally row is read by its
primary key, walking the orders in turn (an order's count only grows), one lookup per 50 ms; then it waits
until the process is idle (under 15 ms of CPU in 100 ms): the orders hear about the pages after their commit
(while catching up, once for many pages), and that CPU is the ingest's too.

``--database URL`` (PostgreSQL): the bench creates the database the URL names (refusing one that exists),
drops it after each trial, and does the same with ``<name>_raw`` for the floor. Default: SQLite files in a
temp directory.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import urlparse, urlunparse  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import measure  # noqa: E402

BATCH = 500
RAW_COLUMNS = "snapshot_id, created_at, created_ns, asset_id, amount, opponent_id, memo, raw, inserted_at"


def order_id_of(k: int) -> str:
    return f"{k:08x}-0000-4000-8000-{k:012x}"


# ---------------------------------------------------------------- the fake Mixin (a child process)


def serve_fake(snapshots: int, orders: int, keystore_path: str, port_file: str) -> None:
    import gevent

    from domain.memo import encode_market_making
    from sim.world import BTC, BTC_USDT_PAIR, build_world

    world = build_world()
    Path(keystore_path).write_text(json.dumps(world.keystore_dict))
    users = [world.fake.new_user() for _ in range(orders)]
    memos = [encode_market_making(BTC_USDT_PAIR, order_id_of(k)) for k in range(orders)]
    base_ns = time.time_ns() - snapshots * 1000
    for i in range(snapshots):
        k = i % orders
        world.fake.pay(world.bot_id, users[k], BTC, "0.001", memos[k], created_at_ns=base_ns + i * 1000)
    Path(port_file).write_text(str(world.fake.port))
    while True:
        gevent.sleep(3600)


# ---------------------------------------------------------------- PostgreSQL: the bench's own databases


def _named(url: str, name: str) -> str:
    return urlunparse(urlparse(url)._replace(path="/" + name))


def _admin(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(_named(url, "postgres"), autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql)


def _exists(url: str, name: str) -> bool:
    import psycopg

    with psycopg.connect(_named(url, "postgres"), autocommit=True, connect_timeout=10) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


class BenchDatabase:
    """A database the trial creates and drops: an SQLite file, or a PostgreSQL database named by the URL."""

    def __init__(self, url: str | None, work: Path, name: str):
        self.server = url
        if url:
            self.name = urlparse(url).path.lstrip("/") + ("" if name == "main" else f"_{name}")
            self.url = _named(url, self.name)
        else:
            self.name = name
            self.url = f"sqlite:///{work / (name + '.db')}"

    def create(self) -> "BenchDatabase":
        if self.server:
            _admin(self.server, f'CREATE DATABASE "{self.name}"')
        return self

    def drop(self) -> None:
        if self.server:
            _admin(self.server, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


# ---------------------------------------------------------------- one trial (a child process)


def wait_all_tallied(db, snapshots: int, orders: int, asset_id: str, timeout: float) -> int:
    """Block until every order's tally counts its payments; returns how many orders are complete.

    Walks the orders in id order with one primary-key lookup per poll (no scan), so the cost of waiting does
    not grow with the table and is not charged to the ingest."""
    import gevent

    per_order, extra = divmod(snapshots, orders)
    sql = f"SELECT payments FROM payment_tally WHERE order_id = {db.param} AND asset_id = {db.param}"
    k = 0
    deadline = time.monotonic() + timeout
    while k < orders:
        row = db.execute_sql(sql, (order_id_of(k), asset_id)).fetchone()
        if row is not None and row[0] >= per_order + (1 if k < extra else 0):
            k += 1
            continue
        if time.monotonic() > deadline:
            break
        gevent.sleep(0.05)
    return k


def wait_idle(quiet_cpu_s: float = 0.015, interval: float = 0.1, limit: float = 60.0) -> None:
    """Block until a `interval` passes with under `quiet_cpu_s` of this process's CPU (idle polls only)."""
    import gevent

    last, deadline = time.process_time(), time.monotonic() + limit
    while time.monotonic() < deadline:
        gevent.sleep(interval)
        now = time.process_time()
        if now - last < quiet_cpu_s:
            return
        last = now


def raw_insert(rows: list[tuple], target: BenchDatabase) -> measure.Span:
    """The floor: the same rows into the same table (same schema), BATCH rows a transaction, executemany."""
    from storage.db import open_database
    from storage.models import database_proxy

    target.create()
    open_database(target.url).close()  # mmflow's schema (and pragmas) on a fresh database
    database_proxy.initialize(None)
    marks = "?" if not target.server else "%s"
    sql = f"INSERT INTO snapshot ({RAW_COLUMNS}, applied) VALUES ({', '.join([marks] * 9)}, FALSE)"
    try:
        if target.server:
            import psycopg

            conn = psycopg.connect(target.url, autocommit=True)
            span = measure.start()
            for i in range(0, len(rows), BATCH):
                with conn.transaction():
                    conn.cursor().executemany(sql, rows[i:i + BATCH])
            span.stop()
            conn.close()
        else:
            import sqlite3

            from storage.db import SQLITE_PRAGMAS

            conn = sqlite3.connect(target.url.removeprefix("sqlite:///"), isolation_level=None)
            for name, value in SQLITE_PRAGMAS.items():  # the connection settings mmflow's own connection has
                conn.execute(f"PRAGMA {name}={value}")
            span = measure.start()
            for i in range(0, len(rows), BATCH):
                conn.execute("BEGIN")
                conn.executemany(sql, rows[i:i + BATCH])
                conn.execute("COMMIT")
            span.stop()
            conn.close()
    finally:
        target.drop()
    return span


def trial(args) -> dict:
    from loguru import logger

    from actors.system import Escalation, build_services, start_tree, stop_tree
    from domain.config import parse_config
    from integrations.mixin.keystore import load_keystore
    from sim.world import BTC, default_pairs, placeholder_exchange

    logger.remove()
    logger.add(sys.stderr, level="WARNING", diagnose=False, backtrace=False)
    work = Path(args.work)
    main_db = BenchDatabase(args.database, work, "main").create()
    try:
        config = parse_config({
            "database": {"url": main_db.url},
            "mixin": {"api_base": f"http://127.0.0.1:{args.port}", "keystore": args.keystore,
                      "poll_interval": 0.05},
            "payments": {"market_making_fee_percent": "0.1", "check_delay": 3600, "timeout": 7200},
            "exchanges": [placeholder_exchange(work)],  # pairs name an account; switched off: no gateway
            "pairs": default_pairs(),
        })
        services = build_services(config, keystore=load_keystore(args.keystore))
        escalation = Escalation(event=threading.Event())
        span = measure.start()
        root = start_tree(services, escalation)
        done = wait_all_tallied(services.db, args.snapshots, args.orders, BTC, args.timeout)
        wait_idle()
        span.stop()
        rows = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                for row in services.db.execute_sql(f"SELECT {RAW_COLUMNS} FROM snapshot").fetchall()]
        batches = services.writer.batches if services.writer else None
        stop_tree(root)
        services.db.close()
    finally:
        main_db.drop()
    raw = raw_insert(rows, BenchDatabase(args.database, work, "raw"))
    return {
        "complete": done == args.orders,
        "orders_complete": done,
        "e2e_cpu_s": round(span.cpu_s, 3), "e2e_wall_s": round(span.wall_s, 3),
        "raw_rows": len(rows), "raw_cpu_s": round(raw.cpu_s, 3), "raw_wall_s": round(raw.wall_s, 3),
        "e2e_per_s": round(args.snapshots / span.cpu_s), "e2e_wall_per_s": round(args.snapshots / span.wall_s),
        "raw_per_s": round(len(rows) / raw.cpu_s), "raw_wall_per_s": round(len(rows) / raw.wall_s),
        "writer_batches": batches,
        "rss_kib": measure.rss_kib(),
    }


# ---------------------------------------------------------------- the driver


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--snapshots", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per trial before it reports what "
                                                                     "it reached")
    parser.add_argument("--database", help="postgresql://USER@HOST:PORT/NAME: a database the bench creates "
                                           "and drops (default: SQLite files in a temp directory)")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--trial", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--keystore", help=argparse.SUPPRESS)
    parser.add_argument("--port-file", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        serve_fake(args.snapshots, args.orders, args.keystore, args.port_file)
        return 0
    if args.trial:
        measure.emit(trial(args))
        return 0
    if args.snapshots < 1 or args.orders < 1 or args.repeats < 1:
        return measure.fail("--snapshots, --orders and --repeats must be at least 1")
    if args.database:
        if not args.database.startswith(("postgresql://", "postgres://")) or not urlparse(args.database).path.strip("/"):
            return measure.fail("--database must be postgresql://USER@HOST:PORT/NAME")
        name = urlparse(args.database).path.strip("/")
        try:
            taken = [n for n in (name, name + "_raw") if _exists(args.database, n)]
        except Exception as exc:  # server down, auth: one line
            return measure.fail(f"cannot reach PostgreSQL at {urlparse(args.database).hostname}: "
                                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        if taken:
            return measure.fail(f"database {taken[0]} exists: name one the bench may create and drop")

    work = Path(tempfile.mkdtemp(prefix="mmflow-bench-ingest-"))
    keystore_path, port_file = work / "keystore.json", work / "port"
    total = measure.start()
    fake = subprocess.Popen([sys.executable, __file__, "--serve-fake", "--snapshots", str(args.snapshots),
                             "--orders", str(args.orders), "--keystore", str(keystore_path),
                             "--port-file", str(port_file)])
    trials = []
    try:
        deadline = time.time() + 900
        while not port_file.exists():
            if fake.poll() is not None or time.time() > deadline:
                return measure.fail("the fake Mixin did not start")
            time.sleep(0.2)
        port = int(port_file.read_text())
        for n in range(args.repeats):
            (work / f"trial-{n}").mkdir()
            fake_cpu0 = measure.process_cpu_s(fake.pid)
            cmd = [sys.executable, __file__, "--trial", "--snapshots", str(args.snapshots), "--orders",
                   str(args.orders), "--keystore", str(keystore_path), "--port", str(port),
                   "--work", str(work / f"trial-{n}"), "--timeout", str(args.timeout)] + (["--database", args.database] if args.database else [])
            try:
                out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=args.timeout + 300).stdout
            except subprocess.TimeoutExpired:
                out = ""
            result = measure.last_json_line(out) or {"complete": False, "why": "the trial printed no result"}
            result.pop("machine", None)
            result["fake_cpu_s"] = round(measure.process_cpu_s(fake.pid) - fake_cpu0, 3)
            trials.append(result)
    finally:
        fake.kill()
        fake.wait()
        shutil.rmtree(work, ignore_errors=True)  # the SQLite files of every trial
    measured = [t for t in trials if "e2e_cpu_s" in t]
    med = measure.median_of(measured) if measured else {}
    out = {
        "bench": "ingest",
        "database": "postgresql" if args.database else "sqlite",
        "snapshots": args.snapshots,
        "orders": args.orders,
        "e2e_per_s": med.get("e2e_per_s"),
        "raw_per_s": med.get("raw_per_s"),
        "ratio": round(med["e2e_per_s"] / med["raw_per_s"], 4) if measured else None,
        "e2e_wall_per_s": med.get("e2e_wall_per_s"),
        "raw_wall_per_s": med.get("raw_wall_per_s"),
        "wall_ratio": round(med["e2e_wall_per_s"] / med["raw_wall_per_s"], 4) if measured else None,
        "cpu_s": med.get("e2e_cpu_s"),
        "wall_s": med.get("e2e_wall_s"),
        "fake_cpu_s": med.get("fake_cpu_s"),
        "complete": all(t.get("complete") for t in trials),
        "repeats": args.repeats,
        "trials": trials,
        "bench_wall_s": round(total.stop().wall_s, 1),
    }
    measure.emit(out)
    return 0 if out["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
