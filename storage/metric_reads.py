"""Aggregate reads for the Prometheus scrape (integrations/metrics.py): one GROUP BY query per figure.

Only counts and sums grouped by low-cardinality columns (state, kind, exchange account, symbol, side,
liquidity) — never a row id — so what a scrape returns stays bounded however many orders exist.

A scrape must not stall the service. On SQLite every statement runs on the gevent hub and an aggregate
over a large table holds it for as long as it takes (measured: 5 s for 500k fills, 0.2 s for 40k money
movements on a loaded 2-core machine), so the queries run on their own connection in a native thread of
gevent's pool: sqlite3 releases the GIL while a statement steps, WAL lets that reader run beside the one
writer, and one read transaction gives every figure from the same instant. PostgreSQL queries already wait
cooperatively (psycopg under gevent): they run in one repeatable-read transaction on one of the service's pooled
connections.

Fills grow without bound, so on SQLite they are read incrementally: only the rows after a rowid the caller
has already counted (the table is insert-only and rowids only grow). On PostgreSQL they are summed whole.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import gevent
import peewee as pw

from domain.exchange_orders import OPEN_STATES
from storage.archive_models import ArchivedOrder
from storage.exchange_models import ExchangeOrder, Fill
from storage.kpi_models import KpiSample
from storage.models import MoneyMovement, Order, database_proxy
from storage.sql import adapt

_OPEN = tuple(sorted(s.value for s in OPEN_STATES))
_IN_OPEN = f"state IN ({', '.join('?' * len(_OPEN))})"
_ORDERS, _MOVEMENTS = Order._meta.table_name, MoneyMovement._meta.table_name
_EX_ORDERS, _FILLS = ExchangeOrder._meta.table_name, Fill._meta.table_name

_KPI = KpiSample._meta.table_name

ORDERS_BY_STATE = f"SELECT state, COUNT(*) FROM {_ORDERS} GROUP BY state"
# orders in cold storage (storage/archive.py), from the archive's index: never a segment read
ARCHIVED_BY_STATE = f"SELECT state, COUNT(*) FROM {ArchivedOrder._meta.table_name} GROUP BY state"
# Each running or paused order's latest KPI sample, averaged per pair (the account and symbol it quotes on):
# orders, two-sided uptime ratio, spread (bps), depth within ±2 % of mid per side (quote value)
KPI_PER_PAIR = (f"SELECT q.exchange_account, q.symbol, COUNT(*), AVG(k.two_sided_seconds / k.running_seconds), "
                "AVG(CAST(k.spread_bps AS DOUBLE PRECISION)), AVG(CAST(k.depth_bid AS DOUBLE PRECISION)), "
                f"AVG(CAST(k.depth_ask AS DOUBLE PRECISION)) FROM {_KPI} k "
                f"JOIN (SELECT order_id, MAX(id) AS id FROM {_KPI} GROUP BY order_id) latest ON latest.id = k.id "
                f"JOIN {_ORDERS} o ON o.order_id = k.order_id "
                f"JOIN (SELECT DISTINCT order_id, exchange_account, symbol FROM {_EX_ORDERS}) q "
                "ON q.order_id = k.order_id "
                "WHERE o.state IN ('running', 'paused') AND k.running_seconds > 0 "
                "GROUP BY q.exchange_account, q.symbol")
MOVEMENTS_BY_KIND_AND_STATE = f"SELECT kind, state, COUNT(*) FROM {_MOVEMENTS} GROUP BY kind, state"
LIVE_QUOTES = (f"SELECT exchange_account, symbol, side, COUNT(*) FROM {_EX_ORDERS} WHERE {_IN_OPEN} "
               "GROUP BY exchange_account, symbol, side")
# mmflow orders with at least one live bid and one live ask, per pair
TWO_SIDED = (f"SELECT exchange_account, symbol, COUNT(*) FROM (SELECT order_id, exchange_account, symbol "
             f"FROM {_EX_ORDERS} WHERE {_IN_OPEN} GROUP BY order_id, exchange_account, symbol "
             "HAVING COUNT(DISTINCT side) = 2) AS two_sided GROUP BY exchange_account, symbol")
# DOUBLE PRECISION: REAL affinity on SQLite, float8 on PostgreSQL (amounts are decimal text)
_FILL_SUMS = ("SELECT exchange_account, symbol, side, COALESCE(liquidity, 'unknown'), COUNT(*), "
              "SUM(CAST(amount AS DOUBLE PRECISION)), "
              "SUM(CAST(price AS DOUBLE PRECISION) * CAST(amount AS DOUBLE PRECISION)){last} "
              f"FROM {_FILLS}{{where}} GROUP BY exchange_account, symbol, side, COALESCE(liquidity, 'unknown')")
FILLS_AFTER_ROWID = _FILL_SUMS.format(last=", MAX(rowid)", where=" WHERE rowid > ?")
FILLS_ALL = _FILL_SUMS.format(last="", where="")

Execute = Callable[[str, Sequence], list[tuple]]


@dataclass(frozen=True)
class FillTotals:
    count: int = 0
    base_volume: float = 0.0   # Σ amount (floats: a metric, not money)
    quote_volume: float = 0.0  # Σ price × amount

    def __add__(self, other: FillTotals) -> FillTotals:
        return FillTotals(self.count + other.count, self.base_volume + other.base_volume,
                          self.quote_volume + other.quote_volume)


@dataclass
class StateCounts:
    """What the database says right now, grouped (see each query above)."""
    orders: dict[str, int] = field(default_factory=dict)                             # state (hot and archived)
    archived: dict[str, int] = field(default_factory=dict)                           # state (archived only)
    movements: dict[tuple[str, str], int] = field(default_factory=dict)              # kind, state
    live_quotes: dict[tuple[str, str, str], int] = field(default_factory=dict)       # account, symbol, side
    two_sided: dict[tuple[str, str], int] = field(default_factory=dict)              # account, symbol
    fills: dict[tuple[str, str, str, str], FillTotals] = field(default_factory=dict)  # account, symbol, side, liq.
    # account, symbol → (orders, uptime ratio, spread bps, depth bid, depth ask); None where no sample says
    kpi: dict[tuple[str, str], tuple] = field(default_factory=dict)
    # SQLite: `fills` holds only the rows after the rowid asked for, up to this one (the caller adds them up).
    # None: `fills` is the whole table.
    fills_through: int | None = None


def database_key() -> tuple | None:
    """Identifies the open database (None: none is open): running totals kept for one database are not
    carried over to another (tests open many)."""
    db = database_proxy.obj
    return None if db is None else (id(db), getattr(db, "database", None))


def read_state(fills_after: int) -> StateCounts:
    """Every scrape-time figure, from one read transaction (SQLite: in a native thread, see above).

    ``fills_after``: on SQLite, count only fills after this rowid (0: all)."""
    db = database_proxy.obj
    if db is None:
        raise RuntimeError("no database is open")
    if isinstance(db, pw.SqliteDatabase) and db.database != ":memory:":
        uri = Path(db.database).resolve().as_uri() + "?mode=rw"  # never creates a file
        return gevent.get_hub().threadpool.apply(_read_sqlite, (uri, fills_after))

    def execute(sql: str, params: Sequence) -> list[tuple]:
        return list(db.execute_sql(adapt(sql, db), tuple(params)).fetchall())
    with db.atomic():  # one read transaction (PostgreSQL: one pooled connection, one snapshot for every figure)
        if not isinstance(db, pw.SqliteDatabase):
            db.execute_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return _collect(execute, fills_after=None)


def _read_sqlite(uri: str, fills_after: int) -> StateCounts:
    """Runs in a native thread: its own connection, one snapshot for all the queries."""
    conn = sqlite3.connect(uri, uri=True, timeout=5.0, isolation_level=None)
    try:
        conn.execute("BEGIN")
        try:
            return _collect(lambda sql, params: conn.execute(sql, tuple(params)).fetchall(), fills_after)
        finally:
            conn.execute("ROLLBACK")
    finally:
        conn.close()


def _collect(execute: Execute, fills_after: int | None) -> StateCounts:
    out = StateCounts()
    out.archived = {state: n for state, n in execute(ARCHIVED_BY_STATE, ())}
    out.orders = {state: n for state, n in execute(ORDERS_BY_STATE, ())}
    for state, n in out.archived.items():
        out.orders[state] = out.orders.get(state, 0) + n
    out.movements = {(kind, state): n for kind, state, n in execute(MOVEMENTS_BY_KIND_AND_STATE, ())}
    out.live_quotes = {(a, s, side): n for a, s, side, n in execute(LIVE_QUOTES, _OPEN)}
    out.two_sided = {(a, s): n for a, s, n in execute(TWO_SIDED, _OPEN)}
    out.kpi = {(a, s): tuple(rest) for a, s, *rest in execute(KPI_PER_PAIR, ())}
    if fills_after is None:
        out.fills = {tuple(r[:4]): FillTotals(r[4], r[5] or 0.0, r[6] or 0.0) for r in execute(FILLS_ALL, ())}
        return out
    out.fills_through = fills_after
    for *key, count, base, quote, last in execute(FILLS_AFTER_ROWID, (fills_after,)):
        out.fills[tuple(key)] = FillTotals(count, base or 0.0, quote or 0.0)
        out.fills_through = max(out.fills_through, last)
    return out
