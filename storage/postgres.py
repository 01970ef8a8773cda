"""PostgreSQL: peewee over psycopg 3, a pool of connections lent one statement (or one transaction) at a time.

Why this shape: under gevent every actor is a greenlet and peewee keeps one connection per greenlet, so a
connection per actor would need thousands of server sessions and keep them forever. Here a greenlet holds a
connection only while it needs one:

- a statement outside a transaction borrows a pooled connection (autocommit), runs, and gives it back
  before the caller reads the rows (psycopg's client-side cursors hold the whole result);
- a transaction (``db.atomic()``, the group-commit writer's batch) keeps one connection from BEGIN to
  COMMIT/ROLLBACK, then gives it back;
- ``connect()`` still pins a connection to the calling greenlet until ``release()`` (peewee's own API).

Waiting is cooperative: psycopg 3 waits on its socket with ``select``/``poll``, which gevent patches (psycopg
detects the patching and leaves its C wait aside), so a slow query in one greenlet never stalls the others;
a greenlet that finds the pool empty waits on a (patched) condition. ``close()`` shuts the whole pool: the
process is done with the database.
"""
from __future__ import annotations

import time
from urllib.parse import parse_qsl, unquote, urlparse

import peewee as pw
from playhouse.pool import PooledPostgresqlDatabase

# A pooled connection idle longer than this is checked with a round trip before it is lent again (the server
# may have been restarted meanwhile); a younger one only by its local status, so a hot path pays no extra trip.
IDLE_CHECK_SECONDS = 30.0

DEFAULT_POOL_SIZE = 10


class _LentTransaction(pw._transaction):
    """peewee's transaction, which takes a pooled connection at BEGIN when the greenlet holds none and gives it
    back after COMMIT/ROLLBACK."""

    def __enter__(self):
        self._lent = self.db.transaction_depth() == 0 and self.db.is_closed()
        if self._lent:
            self.db.connect()
        try:
            return super().__enter__()
        except BaseException:
            if self._lent:
                self.db.release()
            raise

    def __exit__(self, exc_type, exc_val, exc_tb):
        try:
            return super().__exit__(exc_type, exc_val, exc_tb)
        finally:
            if self._lent and self.db.transaction_depth() == 0:
                self.db.release()


class PooledPostgres(PooledPostgresqlDatabase):
    """The mmflow PostgreSQL database (psycopg 3): see the module docstring."""

    # peewee's FloatField is FLOAT → REAL on PostgreSQL: 4 bytes, 24 bits of mantissa, so a Unix time is kept to
    # about two minutes. mmflow's floats are times: 8-byte DOUBLE PRECISION, what SQLite's REAL is.
    field_types = {**PooledPostgresqlDatabase.field_types, "FLOAT": "DOUBLE PRECISION"}

    def __init__(self, database, **kwargs):
        self._idle_since: dict[int, float] = {}
        super().__init__(database, prefer_psycopg3=True, **kwargs)

    def execute_sql(self, sql, params=None):
        if not self.is_closed():  # a pinned connection, or inside a transaction
            return super().execute_sql(sql, params)
        self.connect()
        try:
            return super().execute_sql(sql, params)
        finally:
            self.release()

    def transaction(self, *args, **kwargs):
        return _LentTransaction(self, *args, **kwargs)

    def release(self) -> bool:
        """Give this greenlet's connection back to the pool (peewee's ``close()`` of one connection)."""
        return pw.Database.close(self)

    def close(self) -> bool:
        """Shut the pool: this greenlet's connection, the idle ones, and any still lent."""
        was_open = self.release()
        with self._pool_lock:
            self.close_idle()
            lent, self._in_use = self._in_use, {}
            for pooled in lent.values():
                self._close_raw(pooled.connection)
            self._idle_since.clear()
            self._pool_available.notify_all()
        return was_open

    def _is_closed(self, conn) -> bool:
        """Whether a pooled connection is unusable, asked on lending: its local status, and a round trip only
        after a long idle (peewee's own check costs a round trip every time)."""
        if conn.closed or conn.broken:
            return True
        status = self._adapter.txn_status(conn)
        if status == self._adapter.txn_unknown:
            return True
        idle = time.monotonic() - self._idle_since.pop(id(conn), time.monotonic())
        if status == self._adapter.txn_idle and idle < IDLE_CHECK_SECONDS:
            return False
        return self._adapter.is_connection_closed(conn)

    def _close(self, conn, close_conn=False):
        self._idle_since[id(conn)] = time.monotonic()
        return super()._close(conn, close_conn)

    def _close_raw(self, conn):
        self._idle_since.pop(id(conn), None)
        return super()._close_raw(conn)


def widen_real_columns(db: PooledPostgres, tables: list[str]) -> list[str]:
    """Make any ``real`` column of these tables ``double precision`` (a database created before mmflow set
    FloatField's type); returns the columns changed ("table.column"). Inside the caller's transaction."""
    rows = db.execute_sql(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND data_type = 'real' ORDER BY table_name, ordinal_position").fetchall()
    wanted = set(tables)
    changed = [(table, column) for table, column in rows if table in wanted]
    for table, column in changed:
        db.execute_sql(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE DOUBLE PRECISION')
    return [f"{table}.{column}" for table, column in changed]


def connect_arguments(url: str) -> tuple[str, dict]:
    """The database name and psycopg connection arguments of a ``postgresql://USER[:PASSWORD]@HOST[:PORT]/DB[?k=v]``
    URL (query parameters are libpq's: sslmode, options, application_name, ...). ValueError if malformed."""
    parts = urlparse(url)
    port = parts.port or 5432
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ValueError("names no database (postgresql://USER@HOST/DATABASE)")
    arguments = dict(parse_qsl(parts.query, keep_blank_values=True))
    arguments.update(user=unquote(parts.username or ""), host=parts.hostname or "127.0.0.1", port=port)
    if parts.password:
        arguments["password"] = unquote(parts.password)
    return name, arguments


def pooled_database(url: str, *, timeout: float, pool_size: int = DEFAULT_POOL_SIZE) -> PooledPostgres:
    """A PooledPostgres for ``url``: at most ``pool_size`` server sessions; ``timeout`` seconds to connect, to
    wait for a free connection and to wait for a lock (``lock_timeout``: what SQLite's busy timeout is, so a
    write blocked by another session fails after it instead of waiting for ever)."""
    name, arguments = connect_arguments(url)
    arguments.setdefault("connect_timeout", max(1, int(timeout)))
    lock_timeout = f"-c lock_timeout={max(1, int(timeout * 1000))}"
    arguments["options"] = f"{arguments['options']} {lock_timeout}" if arguments.get("options") else lock_timeout
    return PooledPostgres(name, max_connections=pool_size, stale_timeout=3600, timeout=timeout, **arguments)
