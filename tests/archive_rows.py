"""Finished orders by bulk insert, for the archive's test and bench (tests/test_archive.py, bench/archive.py):
each one a settled or refunded order with the rows a real one has — tally, history, payments (raw msgpack
snapshots), refunds or payouts, ledger, an exchange order and its fill, its sequence — written as multi-row
INSERTs (hundreds of rows a statement) in large transactions, so 100,000 take seconds, not the hours the real
flow would (on PostgreSQL a statement per row, executemany, cost the client ~20 % more CPU)."""
from __future__ import annotations

import json

import msgpack

from storage.models import database_proxy
from storage.sql import run

BTC = "c6d0c728-2624-429b-8e0d-d9d19b6592fa"
USDT = "4d8c508b-91c5-375b-92b0-ee702ed2dac5"
PAIR = "0776b00f-95c0-46f9-85e4-7b8e7ca51e94"
DAY = 86400.0


def order_id_of(n: int, tag: int = 0) -> str:
    return f"{tag:08x}-0000-4000-8000-{n:012x}"


def insert_finished_orders(count: int, *, closed_from: float, spread: float = 10 * DAY, start: int = 0,
                           tag: int = 0, chunk: int = 5000) -> list[str]:
    """``count`` finished orders closed evenly between ``closed_from`` and ``closed_from + spread``."""
    ids = []
    for first in range(start, start + count, chunk):
        rows = {name: [] for name in ("orders", "tally", "history", "snapshot", "movement", "ledger", "xorder",
                                      "fill", "seq")}
        for n in range(first, min(first + chunk, start + count)):
            oid = order_id_of(n, tag)
            ids.append(oid)
            closed = closed_from + spread * (n - start) / max(count, 1)
            created = closed - 3600
            settled = n % 5 != 0
            state = "settled" if settled else "refunded"
            user = f"{n:08x}-1111-4000-8000-000000000000"
            statement = json.dumps({"order_id": oid, "balanced": True, "final": True}, sort_keys=True)
            rows["orders"].append((oid, PAIR, user, state, "done", BTC, "0.0001", USDT, "1", "0.1",
                                   json.dumps({"base_principal": "0.1"}) if settled else None,
                                   statement, closed, created, created + 1, created + 601, created + 10, closed))
            for asset, amount in ((BTC, "0.1002"), (USDT, "5006")):
                rows["tally"].append((oid, asset, amount, 1))
            for at, a, b in ((created, None, "payment_pending"), (created + 10, "payment_pending",
                             "payment_complete" if settled else "refunding"),
                             (closed, "settling" if settled else "refunding", state)):
                rows["history"].append((oid, a, b, "", at))
            for k, (asset, amount) in enumerate(((BTC, "0.1002"), (USDT, "5006"))):
                sid = f"{n:08x}-{k:04x}-4000-9000-{tag:012x}"
                raw = msgpack.packb({"snapshot_id": sid, "asset_id": asset, "amount": amount, "opponent_id": user,
                                     "memo": "", "created_at": "2026-01-01T00:00:00Z"}, use_bin_type=True)
                rows["snapshot"].append((sid, "2026-01-01T00:00:00Z", int(created * 1e9) + k, asset, amount, user,
                                         "", raw, "order", oid, PAIR, True, "payment", created, created, created))
                kind = "payout" if settled else "refund"
                rows["movement"].append((f"{sid}-{kind}", kind, f"{kind}:{sid}", oid, sid, asset, amount, user,
                                         "", "confirmed", 1, 0, 0, closed, closed))
            if settled:
                rows["ledger"] += [(oid, "BTC", "0.1", "deposit", f"deposit:{oid}:BTC", created + 20),
                                   (oid, "BTC", "-0.1", "return", f"return:{oid}:BTC", closed - 60)]
                coid = f"mm{tag:04x}{n:012x}-1"
                rows["xorder"].append((coid, oid, "binance", "BTC/USDT", "buy", "50000", "0.01", "0.01", "filled",
                                       f"x{tag}-{n}", 0, created + 30, created + 30, created + 31))
                trade = f"t{tag}-{n}"
                rows["fill"].append((f"binance:BTC/USDT:{trade}:buy", trade, "binance", coid, oid, "BTC/USDT", "buy",
                                     "50000", "0.01", "0.00001", "BTC", "maker", created + 31, created + 31))
                rows["seq"].append((oid, 2))
        with database_proxy.atomic():
            _insert_many("INSERT INTO orders (order_id, pair_id, user_id, state, state_reason, base_fee_asset_id, "
                     "base_fee_amount, quote_fee_asset_id, quote_fee_amount, market_making_fee_percent, breakdown, "
                     "statement, closed_at, created_at, first_payment_at, deadline_at, completed_at, updated_at) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows["orders"])
            _insert_many("INSERT INTO payment_tally (order_id, asset_id, amount, payments) VALUES (?, ?, ?, ?)",
                     rows["tally"])
            _insert_many("INSERT INTO order_state_change (order_id, from_state, to_state, reason, at) "
                     "VALUES (?, ?, ?, ?, ?)", rows["history"])
            _insert_many("INSERT INTO snapshot (snapshot_id, created_at, created_ns, asset_id, amount, opponent_id, memo, "
                     "raw, outcome, order_id, pair_id, applied, purpose, inserted_at, routed_at, applied_at) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows["snapshot"])
            _insert_many("INSERT INTO money_movement (request_id, kind, cause, order_id, snapshot_id, asset_id, amount, "
                     "recipient_id, memo, state, attempts, attempt, rejections, created_at, updated_at) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows["movement"])
            _insert_many("INSERT INTO ledger_entry (order_id, asset, delta, reason, ref, at) VALUES (?, ?, ?, ?, ?, ?)",
                     rows["ledger"])
            _insert_many("INSERT INTO exchange_order (client_order_id, order_id, exchange_account, symbol, side, price, "
                     "amount, filled, state, exchange_order_id, level, created_at, submitted_at, updated_at) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows["xorder"])
            _insert_many("INSERT INTO exchange_fill (fill_key, trade_id, exchange_account, client_order_id, order_id, "
                     "symbol, side, price, amount, fee, fee_currency, liquidity, at, recorded_at) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows["fill"])
            _insert_many("INSERT INTO exchange_order_sequence (order_id, next_seq) VALUES (?, ?)", rows["seq"])
    return ids


def _insert_many(text: str, rows: list[tuple]) -> None:
    """``INSERT INTO t (columns) VALUES (?, …)`` for every row, as few statements of many rows each (each well
    under SQLite's 32,766 and PostgreSQL's 65,535 parameters)."""
    if not rows:
        return
    head, one = text.rsplit(" VALUES ", 1)
    per_statement = max(1, 8000 // len(rows[0]))
    for first in range(0, len(rows), per_statement):
        batch = rows[first:first + per_statement]
        run(f"{head} VALUES " + ", ".join([one] * len(batch)), [value for row in batch for value in row])
