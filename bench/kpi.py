"""KPI sampler bench: the CPU of one sampling round over N running orders.

    python bench/kpi.py [--orders 5000] [--fills 5] [--repeats 3]

Seeds N running orders into a fresh SQLite file (``bench/seeding.py``: orders, state history, deposits, a
two-sided resting ladder with its quote spans and opening price), plus ``--fills`` fills each (and their ledger
entries), then runs ``KpiSampler.sample_round`` on the real schema and the real group-commit ``Writer``, one
round per interval. The first round also loads every order's sampler memory (last sample, counted trades) —
reported apart as ``first_round_cpu_s``; ``cpu_s``/``wall_s`` are the median of ``--repeats`` later rounds
(each samples all N orders), ``cpu_ms_per_order_round`` = that CPU / N.

Prints ONE JSON line.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from decimal import Decimal as D
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import measure, seeding  # noqa: E402

MID = D("100")
INTERVAL = 60.0


def seed(db, order_ids, pair, fees, now: float, fills: int) -> None:
    ladders = []
    for order_id in order_ids:
        ladder = seeding.ladder_of(order_id, {"buy": D("99"), "sell": D("101")}, D("0.01"))
        for o in ladder:
            o["exchange_order_id"] = f"x-{o['cid']}"
        ladders += ladder
    p = db.param
    fill_rows, ledger_rows = [], []
    for i, order_id in enumerate(order_ids):
        cid = ladders[2 * i]["cid"]          # its bid takes the fills (partly filled, still resting)
        for k in range(fills):
            at = now - 300 + k
            price, amount = D("99"), D("0.001")
            key = f"binance:BTC/USDT:{order_id}-{k}:buy"
            fill_rows.append((key, f"{order_id}-{k}", "binance", cid, order_id, "BTC/USDT", "buy", str(price),
                              str(amount), "0", None, "maker" if k % 2 == 0 else None, at, at + 0.1))
            ledger_rows.append((order_id, pair.base_symbol, str(amount), "fill", f"fill:{key}:base", at))
            ledger_rows.append((order_id, pair.quote_symbol, str(-price * amount), "fill", f"fill:{key}:quote", at))
    with db.atomic():
        seeding.seed_orders(db, order_ids, pair, fees, now - 600, state="running", base=D("0.1"), quote=D("50"))
        seeding.seed_ladders(db, ladders, pair.exchange, pair.symbol, now - 590, opening_price=MID)
        cursor = db.cursor()
        for start in range(0, len(fill_rows), seeding.CHUNK):
            cursor.executemany(
                "INSERT INTO exchange_fill (fill_key, trade_id, exchange_account, client_order_id, order_id, symbol, "
                f"side, price, amount, fee, fee_currency, liquidity, at, recorded_at) VALUES ({', '.join([p] * 14)})",
                fill_rows[start:start + seeding.CHUNK])
        for start in range(0, len(ledger_rows), seeding.CHUNK):
            cursor.executemany(f"INSERT INTO ledger_entry (order_id, asset, delta, reason, ref, at) VALUES "
                               f"({', '.join([p] * 6)})", ledger_rows[start:start + seeding.CHUNK])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--fills", type=int, default=5, help="fills per order")
    parser.add_argument("--repeats", type=int, default=3, help="rounds measured after the first (medians)")
    args = parser.parse_args()

    from actors.kpi import KpiSampler
    from domain.config import parse_config
    from domain.payment import FeeRequirements
    from sim.world import BTC, BTC_USDT_PAIR, ETH, default_pairs, placeholder_exchange
    from storage.db import open_database
    from storage.kpi_models import KpiSample
    from storage.writer import Writer

    work = Path(tempfile.mkdtemp(prefix="bench-kpi-"))
    url = f"sqlite:///{work / 'kpi.db'}"
    db = open_database(url)
    config = parse_config({"database": {"url": url}, "mixin": {"keystore": "unused"},
                           "payments": {"market_making_fee_percent": "0.1"}, "pairs": default_pairs(),
                           "exchanges": [placeholder_exchange(work)]})
    pair = config.pair(BTC_USDT_PAIR)
    fees = FeeRequirements(BTC, D("0.0001"), ETH, D("0.002"), D("0.1"))
    now = (time.time() // INTERVAL) * INTERVAL
    order_ids = [seeding.order_id_of(i, 7) for i in range(args.orders)]
    seed(db, order_ids, pair, fees, now, args.fills)

    writer = Writer(db).start()
    services = type("BenchServices", (), {})()
    services.config, services.writer, services.clock, services.book_caches = config, writer, time.time, {}
    sampler = KpiSampler(services)
    trials = []
    try:
        first = measure.start()
        written = sampler.sample_round(now + INTERVAL)
        first.stop()
        if written != args.orders:
            return measure.fail(f"first round wrote {written} samples, expected {args.orders}")
        for r in range(args.repeats):
            span = measure.start()
            written = sampler.sample_round(now + INTERVAL * (r + 2))
            span.stop()
            if written != args.orders:
                return measure.fail(f"round {r + 2} wrote {written} samples, expected {args.orders}")
            trials.append({**span.as_dict(), "cpu_ms_per_order_round": round(span.cpu_s * 1000 / args.orders, 4)})
        stored = KpiSample.select().count()
    finally:
        writer.stop()
    med = measure.median_of(trials)
    measure.emit({"bench": "kpi", "orders": args.orders, "fills_per_order": args.fills,
                  "cpu_ms_per_order_round": med["cpu_ms_per_order_round"], "wall_s": med["wall_s"],
                  "cpu_s": med["cpu_s"], "first_round_cpu_s": round(first.cpu_s, 3), "samples": stored,
                  "trials": trials})
    return 0


if __name__ == "__main__":
    sys.exit(main())
