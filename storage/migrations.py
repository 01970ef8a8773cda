"""Schema upgrades, one function per version, applied in order at start (same path for every database).

A database records the versions applied (`schema_version`). Tables new in a version are created by
`ensure_schema` (create_tables is idempotent); columns added to existing tables are added here.
"""
from __future__ import annotations

from collections.abc import Callable

import peewee as pw
from playhouse.migrate import SchemaMigrator, migrate


def _add_missing_columns(db: pw.Database, model, names: tuple[str, ...]) -> None:
    table = model._meta.table_name
    present = {c.name for c in db.get_columns(table)}
    migrator = SchemaMigrator.from_database(db)
    operations = [migrator.add_column(table, name, model._meta.fields[name]) for name in names
                  if model._meta.fields[name].column_name not in present]
    if operations:
        migrate(*operations)


def to_v2(db: pw.Database) -> None:
    """The way back: exit requests, end times, statements; return movements and arrivals; top-ups;
    alert acknowledgements."""
    from storage.exchange_models import ExchangeOrder
    from storage.models import Alert, MoneyMovement, Order, Snapshot

    _add_missing_columns(db, Order, ("exit_requested_at", "exit_source", "exit_reason", "end_at", "started_at",
                                     "exit_price", "statement", "closed_at"))
    _add_missing_columns(db, Snapshot, ("purpose", "top_up_batch"))
    _add_missing_columns(db, MoneyMovement, ("top_up_batch", "client_id", "attempt", "rejections", "requested_at",
                                             "next_try_at", "exchange_withdrawal_id", "exchange_txid",
                                             "arrival_snapshot_id", "arrived_amount", "arrived_at"))
    _add_missing_columns(db, Alert, ("acked_at",))
    _add_missing_columns(db, ExchangeOrder, ("reported_filled",))


def to_v3(db: pw.Database) -> None:
    """Venues and rewards: a fill keeps whether it was maker or taker (HuFi weighs them differently).
    New tables (trading halts, HuFi campaign listings and leaderboards) are created by ensure_schema."""
    from storage.exchange_models import Fill

    _add_missing_columns(db, Fill, ("liquidity",))


def to_v4(db: pw.Database) -> None:
    """Several instances on one PostgreSQL: membership and leases are new tables (cluster_member,
    cluster_lease), created by ensure_schema; no column of an existing table changes."""


def to_v5(db: pw.Database) -> None:
    """The snapshots' outcome is indexed only where they wait (snapshot_waiting, a partial index on outcome and
    order id where not applied: created by ensure_schema after this), not for every snapshot stored."""
    db.execute_sql("DROP INDEX IF EXISTS snapshot_outcome")


UPGRADES: dict[int, Callable[[pw.Database], None]] = {2: to_v2, 3: to_v3, 4: to_v4, 5: to_v5}
