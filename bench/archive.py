"""Archive benchmark: N finished orders (bulk-inserted with every row a real one has), archived day after day
with a retention window, then every order checked readable — a sample through the whole read layer.

    python bench/archive.py [--orders 100000] [--days 20] [--retention-days 3] [--batch-size 1000] [--database-url URL]

Prints one JSON line: rows inserted per second, orders archived per second, the largest number of hot orders
seen (bounded by the retention window), the hot tables' row counts at the end, segment bytes per order,
milliseconds per archived-order read, and verify's time.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--retention-days", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--database-url", default=None, help="default: an SQLite file in a temp directory")
    args = parser.parse_args()

    from loguru import logger

    logger.remove()
    from ops import reads
    from storage import archive
    from storage.db import close_database, open_database
    from tests.archive_rows import DAY, insert_finished_orders

    work = Path(tempfile.mkdtemp(prefix="mmflow-bench-archive-"))
    db = open_database(args.database_url or f"sqlite:///{work / 'bench.db'}")
    cold = work / "cold"
    per_day = args.orders // args.days
    start = time.time() - (args.days + 40) * DAY
    ids: list[str] = []
    insert_s = archive_s = insert_cpu = archive_cpu = 0.0
    archived = max_hot = 0
    for day in range(args.days):
        t, c = time.perf_counter(), time.process_time()
        ids += insert_finished_orders(per_day, closed_from=start + day * DAY, spread=DAY - 1, start=day * per_day)
        insert_s += time.perf_counter() - t
        insert_cpu += time.process_time() - c
        t, c = time.perf_counter(), time.process_time()
        archived += archive.archive_due(cold, args.retention_days * DAY, args.batch_size,
                                        now=start + (day + 1) * DAY).archived
        archive_s += time.perf_counter() - t
        archive_cpu += time.process_time() - c
        max_hot = max(max_hot, archive.counts()["orders"])
    counts = archive.counts()
    rows_per_order = 15.2   # tests/archive_rows.py: 80 % settled (16 rows), 20 % refunded (12 rows)
    config = SimpleNamespace(pairs=[], pair=lambda _id: None, archive=None, source="-")
    sample = random.Random(1).sample(ids, 200)
    t = time.perf_counter()
    unreadable = [oid for oid in sample if reads.order_document(config, oid) is None]
    read_ms = (time.perf_counter() - t) * 1000 / len(sample)
    t, c = time.perf_counter(), time.process_time()
    verified = archive.verify(cold)
    verify_s, verify_cpu = time.perf_counter() - t, time.process_time() - c
    size = sum(p.stat().st_size for p in cold.glob("*/*.mmarc"))
    every_order_once = counts["orders"] + counts["archived_order"] == len(ids)
    print(json.dumps({
        "bench": "archive", "orders": len(ids), "days": args.days, "retention_days": args.retention_days,
        "database": "postgresql" if args.database_url else "sqlite",
        "insert_rows_per_s": round(len(ids) * rows_per_order / insert_s),
        "insert_cpu_s": round(insert_cpu, 2), "archive_cpu_s": round(archive_cpu, 2), "archive_wall_s": round(archive_s, 2),
        "archived": archived, "archive_orders_per_s": round(archived / archive_s),
        "max_hot_orders": max_hot, "hot_rows_end": {k: v for k, v in counts.items() if v},
        "segments": counts["archive_segment"], "segment_bytes_per_order": round(size / max(archived, 1)),
        "read_ms_per_archived_order": round(read_ms, 2), "sample_unreadable": len(unreadable),
        "verify_s": round(verify_s, 2), "verify_cpu_s": round(verify_cpu, 2), "verify_problems": len(verified.problems),
        "every_order_exactly_once": every_order_once,
    }))
    close_database(db)
    shutil.rmtree(work, ignore_errors=True)
    return 0 if every_order_once and not unreadable and not verified.problems else 1


if __name__ == "__main__":
    sys.exit(main())
