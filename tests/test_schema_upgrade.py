"""Databases written by earlier releases (schema versions 1 and 2) open, are upgraded in place, and work.

The SQLite tests build their old database file with sqlite3 from the release's own DDL, so they stay on SQLite in
every run; the PostgreSQL test loads that release's PostgreSQL DDL and runs on the PostgreSQL pass
(``MMFLOW_TEST_DATABASE_URL``)."""
from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from storage.db import open_database
from storage.models import SCHEMA_VERSION, MoneyMovement, Order, SchemaVersion, Snapshot, database_proxy
from tests.databases import database_url, on_postgres, query

V1 = Path(__file__).parent / "data" / "schema_v1_sqlite.sql"
V2 = Path(__file__).parent / "data" / "schema_v2_sqlite.sql"  # as created by the release with the way back
V2_PG = Path(__file__).parent / "data" / "schema_v2_postgresql.sql"  # the same release on PostgreSQL


def test_v1_database_is_upgraded_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.executescript(V1.read_text())
    con.execute("INSERT INTO schema_version (version, applied_at) VALUES (1, 0)")
    con.execute("INSERT INTO orders (order_id, pair_id, state, state_reason, base_fee_asset_id, base_fee_amount, "
                "quote_fee_asset_id, quote_fee_amount, market_making_fee_percent, created_at, updated_at) "
                "VALUES ('o1', 'p1', 'running', 'x', 'a', '0.1', 'b', '0.2', '0.1', 1, 1)")
    con.commit()
    con.close()
    db = open_database(f"sqlite:///{path}")
    try:
        versions = [v.version for v in SchemaVersion.select().order_by(SchemaVersion.version)]
        assert versions == list(range(1, SCHEMA_VERSION + 1))
        row = Order.get_by_id("o1")
        assert row.state == "running" and row.exit_requested_at is None and row.statement is None
        columns = {c.name for c in db.get_columns("money_movement")}
        assert {"arrival_snapshot_id", "client_id", "exchange_txid", "attempt"} <= columns
        assert "purpose" in {c.name for c in db.get_columns("snapshot")}
        assert MoneyMovement.select().count() == 0 and Snapshot.select().count() == 0
    finally:
        db.close()
        database_proxy.initialize(None)
    # Opening again is a no-op.
    db = open_database(f"sqlite:///{path}")
    try:
        assert SchemaVersion.select().count() == SCHEMA_VERSION
    finally:
        db.close()
        database_proxy.initialize(None)


def test_v2_database_is_upgraded_for_venues_and_rewards(tmp_path):
    from storage.exchange_models import Fill
    from storage.models import TradingHalt

    path = tmp_path / "v2.db"
    con = sqlite3.connect(path)
    con.executescript(V2.read_text())
    con.executemany("INSERT INTO schema_version (version, applied_at) VALUES (?, 0)", [(1,), (2,)])
    con.execute("INSERT INTO exchange_fill (fill_key, trade_id, exchange_account, client_order_id, order_id, symbol, "
                "side, price, amount, fee, fee_currency, at, recorded_at) VALUES ('k1', 't1', 'binance', "
                "'mmflow-0123456789abcdef-1', 'o1', 'BTC/USDT', 'buy', '60000', '0.01', '0', NULL, 1, 1)")
    con.commit()
    con.close()
    db = open_database(f"sqlite:///{path}")
    try:
        assert [v.version for v in SchemaVersion.select().order_by(SchemaVersion.version)] == list(range(1, SCHEMA_VERSION + 1))
        fill = Fill.get_by_id("k1")
        assert fill.liquidity is None and fill.amount == Decimal("0.01")  # unknown: scored as taker, and said so
        assert TradingHalt.select().count() == 0
    finally:
        db.close()
        database_proxy.initialize(None)


@pytest.mark.skipif(not on_postgres(), reason="needs a PostgreSQL server: MMFLOW_TEST_DATABASE_URL")
def test_v2_postgresql_database_is_upgraded_in_place_and_keeps_its_rows(tmp_path):
    import psycopg

    from storage.exchange_models import Fill
    from storage.models import TradingHalt

    url = database_url(tmp_path / "v2", empty=True)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(V2_PG.read_text())
        conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (1, 0), (2, 0)")
        conn.execute("INSERT INTO exchange_fill (fill_key, trade_id, exchange_account, client_order_id, order_id, "
                     "symbol, side, price, amount, fee, fee_currency, at, recorded_at) VALUES ('k1', 't1', 'binance', "
                     "'mmflow-0123456789abcdef-1', 'o1', 'BTC/USDT', 'buy', '60000', '0.01', '0', NULL, 1, 1)")
        conn.execute("INSERT INTO orders (order_id, pair_id, state, state_reason, base_fee_asset_id, base_fee_amount, "
                     "quote_fee_asset_id, quote_fee_amount, market_making_fee_percent, created_at, updated_at) "
                     "VALUES ('o1', 'p1', 'running', 'x', 'a', '0.1', 'b', '0.2', '0.1', 1, 1)")
    db = open_database(url)
    try:
        assert [v.version for v in SchemaVersion.select().order_by(SchemaVersion.version)] == list(range(1, SCHEMA_VERSION + 1))
        fill = Fill.get_by_id("k1")
        assert fill.liquidity is None and fill.amount == Decimal("0.01")
        assert TradingHalt.select().count() == 0 and Order.get_by_id("o1").state == "running"
        # The release's REAL (4-byte) time columns are double precision now: a time keeps its sub-second part.
        assert query(url, "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = 'public' "
                          "AND data_type = 'real'") == [(0,)]
        now = 1796604000.123456
        Order.update(updated_at=now).where(Order.order_id == "o1").execute()
        assert Order.get_by_id("o1").updated_at == now
    finally:
        db.close()
        database_proxy.initialize(None)
    db = open_database(url)  # opening again is a no-op
    try:
        assert SchemaVersion.select().count() == SCHEMA_VERSION
    finally:
        db.close()
        database_proxy.initialize(None)


def test_v4_database_indexes_only_the_waiting_snapshots_by_outcome(tmp_path):
    """Version 5: the index of every snapshot's outcome (schema 4) gives way to a partial index of the snapshots not
    applied (outcome, order id); the queries that look for those use it. Runs on SQLite and, on the PostgreSQL pass,
    on PostgreSQL: the version-4 database is this schema with version 4's index and version row."""
    from storage import repo
    from storage.ingest import orders_waiting

    url = database_url(tmp_path / "v4.db", empty=True)
    open_database(url).close()
    database_proxy.initialize(None)
    db = open_database(url)
    try:
        db.execute_sql("DROP INDEX snapshot_waiting")
        db.execute_sql('CREATE INDEX snapshot_outcome ON snapshot (outcome)')
        SchemaVersion.update(version=4).where(SchemaVersion.version == 5).execute()
        rows = [("s-unrouted", None, None, False), ("s-waiting", "order", "o1", False),
                ("s-applied", "order", "o2", True)]
        for snapshot_id, outcome, order_id, applied in rows:
            Snapshot.insert(snapshot_id=snapshot_id, created_at="2026-12-07T00:00:00Z", created_ns=1, asset_id="a",
                            amount=Decimal("1"), memo="", raw=b"\x80", outcome=outcome, order_id=order_id,
                            pair_id="p" if order_id else None, applied=applied, inserted_at=1.0).execute()
    finally:
        db.close()
        database_proxy.initialize(None)
    db = open_database(url)
    try:
        assert [v.version for v in SchemaVersion.select().order_by(SchemaVersion.version)] == [4, 5]
        indexes = {i.name: i for i in db.get_indexes("snapshot")}
        assert "snapshot_outcome" not in indexes and "snapshot_waiting" in indexes
        assert indexes["snapshot_waiting"].columns == ["outcome", "order_id"]
        assert [f.snapshot_id for f in repo.unrouted_snapshots()] == ["s-unrouted"]
        assert orders_waiting(["o1", "o2"]) == {"o1"}
        assert ("o1", "p") in repo.orders_to_recover(["settled", "refunded"])
        assert ("o2", "p") not in repo.orders_to_recover(["settled", "refunded"])
        if not on_postgres():  # the planner answers these from the partial index, not by reading every snapshot
            plan = db.execute_sql("EXPLAIN QUERY PLAN SELECT snapshot_id FROM snapshot WHERE outcome IS NULL AND "
                                  "applied = FALSE").fetchall()
            assert "snapshot_waiting" in str(plan)
    finally:
        db.close()
        database_proxy.initialize(None)
