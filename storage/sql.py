"""Plain SQL for the hot paths, one text for SQLite and PostgreSQL.

peewee's query building costs ~0.2 ms a statement, the SQL ~10 µs, so units and frequent reads write SQL. It is
written once, with ``?`` placeholders and syntax both backends share (``ON CONFLICT DO NOTHING``, ``CAST(x AS
DOUBLE PRECISION)``, booleans as parameters, never ``rowid`` or ``INSERT OR IGNORE``), and adapted here to the
driver's parameter style: psycopg's ``%s``, with any literal ``%`` doubled so it stays a ``%``.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import peewee as pw

from storage.models import database_proxy


def adapt(text: str, db: pw.Database) -> str:
    """``text`` with its ``?`` placeholders in ``db``'s parameter style."""
    return text if db.param == "?" else text.replace("%", "%%").replace("?", db.param)


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    """``items`` in slices of at most ``size``: one statement's ``IN (…)`` list each, well below the drivers'
    parameter limits (SQLite's 32,766, PostgreSQL's 65,535) and the planner's comfort."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def run(text: str, params: Sequence = ()):
    """Run one statement on the open database; the cursor (rows already fetched on PostgreSQL)."""
    db = database_proxy.obj
    return db.execute_sql(adapt(text, db), tuple(params))


def run_many(text: str, rows: Sequence[Sequence]) -> None:
    """One statement for each row (``executemany``); in the caller's transaction, or in one of its own."""
    if not rows:
        return
    db = database_proxy.obj
    values = [tuple(r) for r in rows]
    if db.in_transaction():
        db.cursor().executemany(adapt(text, db), values)
        return
    with db.atomic():  # PostgreSQL lends a connection for the transaction, and takes it back after
        db.cursor().executemany(adapt(text, db), values)


def marks(n: int) -> str:
    """``?, ?, …`` for an ``IN (…)`` of n values."""
    return ",".join("?" * n)
