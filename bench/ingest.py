"""Ingest benchmark: snapshots/s from the fake Mixin over real HTTP through poller → router →
OrderActors to durable tallies, next to the raw rate of batch-inserting the same rows into SQLite.

    python bench/ingest.py [--snapshots 100000] [--orders 10000]

Prints one JSON line. The fake Mixin runs in a child process (the other core),
pre-filled with every snapshot, so the measured time is mmflow's alone.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def serve_fake(snapshots: int, orders: int, keystore_path: str, port_file: str) -> None:
    import gevent

    from domain.memo import encode_market_making
    from sim.world import BTC, BTC_USDT_PAIR, build_world

    world = build_world()
    Path(keystore_path).write_text(json.dumps(world.keystore_dict))
    users = [world.fake.new_user() for _ in range(orders)]
    order_ids = [f"{i:08x}-0000-4000-8000-{i:012x}" for i in range(orders)]
    memos = [encode_market_making(BTC_USDT_PAIR, o) for o in order_ids]
    base_ns = time.time_ns() - snapshots * 1000
    for i in range(snapshots):
        k = i % orders
        world.fake.pay(world.bot_id, users[k], BTC, "0.001", memos[k], created_at_ns=base_ns + i * 1000)
    Path(port_file).write_text(str(world.fake.port))
    while True:
        gevent.sleep(3600)


def raw_insert_rate(rows: list[tuple], db_path: Path) -> float:
    """The floor cost: the same rows into the same table, 500 per transaction, plain executemany."""
    import sqlite3

    from storage.db import open_database
    from storage.models import database_proxy
    open_database(f"sqlite:///{db_path}").close()  # same schema and pragmas as mmflow's database
    database_proxy.initialize(None)
    conn = sqlite3.connect(str(db_path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("PRAGMA synchronous=normal")
    sql = ("INSERT INTO snapshot (snapshot_id, created_at, created_ns, asset_id, amount, opponent_id, memo, raw, "
           "applied, inserted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)")
    started = time.perf_counter()
    for start in range(0, len(rows), 500):
        conn.execute("BEGIN")
        conn.executemany(sql, rows[start:start + 500])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return len(rows) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--snapshots", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--keystore", help=argparse.SUPPRESS)
    parser.add_argument("--port-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        serve_fake(args.snapshots, args.orders, args.keystore, args.port_file)
        return 0

    import gevent
    from loguru import logger

    from actors.system import Escalation, build_services, start_tree, stop_tree
    from domain.config import parse_config
    from integrations.mixin.keystore import load_keystore
    from sim.world import default_pairs, placeholder_exchange
    from storage.models import Snapshot

    work = Path(tempfile.mkdtemp(prefix="mmflow-bench-"))
    keystore_path, port_file = work / "keystore.json", work / "port"
    fake = subprocess.Popen([sys.executable, __file__, "--serve-fake", "--snapshots", str(args.snapshots),
                             "--orders", str(args.orders), "--keystore", str(keystore_path),
                             "--port-file", str(port_file)])
    try:
        deadline = time.time() + 600
        while not port_file.exists():
            if fake.poll() is not None or time.time() > deadline:
                raise SystemExit("fake Mixin did not start")
            time.sleep(0.2)
        port = int(port_file.read_text())
        logger.remove()
        logger.add(sys.stderr, level="WARNING")
        config = parse_config({
            "database": {"url": f"sqlite:///{work / 'mmflow.db'}"},
            "mixin": {"api_base": f"http://127.0.0.1:{port}", "keystore": str(keystore_path),
                      "poll_interval": 0.05},
            "payments": {"market_making_fee_percent": "0.1", "check_delay": 3600, "timeout": 7200},
            "exchanges": [placeholder_exchange(work)],  # pairs name an account; switched off: no gateway
            "pairs": default_pairs(),
        })
        services = build_services(config, keystore=load_keystore(keystore_path))
        escalation = Escalation(event=threading.Event())
        cpu0 = time.process_time()
        started = time.perf_counter()
        root = start_tree(services, escalation)
        done = 0
        stored_at = None
        while done < args.snapshots:
            gevent.sleep(0.1)
            if stored_at is None and Snapshot.select().count() >= args.snapshots:
                stored_at = time.perf_counter() - started
            done = Snapshot.select().where(Snapshot.applied == True).count()  # noqa: E712
            if time.perf_counter() - started > 900:
                raise SystemExit(f"timed out with {done} snapshots applied")
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu0
        rows = list(services.db.execute_sql(
            "SELECT snapshot_id, created_at, created_ns, asset_id, amount, opponent_id, memo, raw, inserted_at "
            "FROM snapshot").fetchall())
        stop_tree(root)
        services.db.close()
    finally:
        fake.kill()
    raw_rate = raw_insert_rate(rows, work / "raw.db")
    e2e = args.snapshots / elapsed
    print(json.dumps({
        "bench": "ingest",
        "snapshots": args.snapshots,
        "orders": args.orders,
        "e2e_snapshots_per_s": round(e2e),
        "raw_insert_rows_per_s": round(raw_rate),
        "ratio": round(e2e / raw_rate, 3),
        "elapsed_s": round(elapsed, 2),
        "all_stored_s": round(stored_at or elapsed, 2),
        "cpu_s": round(cpu, 2),
        "writer_batches": services.writer.batches if services.writer else None,
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
