"""PostgreSQL: peewee over psycopg 3 and psycopg_pool, a pooled connection lent one statement (or one transaction)
at a time.

Why this shape: under gevent every actor is a greenlet and peewee keeps one connection per greenlet, so a
connection per actor would need thousands of server sessions and keep them forever. Here a greenlet holds a
connection only while it needs one:

- a statement outside a transaction borrows a pooled connection (autocommit), runs, and gives it back
  before the caller reads the rows (psycopg's client-side cursors hold the whole result);
- a transaction (``db.atomic()``, the group-commit writer's batch) keeps one connection from BEGIN to
  COMMIT/ROLLBACK, then gives it back;
- ``connect()`` still pins a connection to the calling greenlet until ``release()`` (peewee's own API).

The pool is psycopg_pool's: waiting greenlets are served first come, first served (peewee's own pool let a
greenlet that had just given a connection back take it again, so with thousands of greenlets starting at once
some waited for ever), it grows to ``pool_size`` on demand and shrinks back when idle.

Waiting is cooperative: psycopg 3 waits on its socket with ``select``/``poll``, which gevent patches (psycopg
detects the patching and leaves its C wait aside), so a slow query in one greenlet never stalls the others;
psycopg_pool's waits, workers and scheduler are ``threading`` objects, which gevent patches into greenlets (so
this module must be imported after ``patch_all()``, as every entry point does). ``close()`` shuts the whole
pool: the process is done with the database; a pool still open at exit is closed then, quietly.
"""
from __future__ import annotations

import atexit
import select
import threading
import time
import weakref
from urllib.parse import parse_qsl, unquote, urlparse

import peewee as pw

# A pooled connection idle longer than this is checked with a round trip before it is lent again (the server
# may have been restarted meanwhile); a younger one only by its local status, so a hot path pays no extra trip.
IDLE_CHECK_SECONDS = 30.0

DEFAULT_POOL_SIZE = 10

# Pools not closed yet: closed at exit (psycopg_pool would otherwise warn from its finalizer while the
# interpreter is going down) and by tests before they drop a database (tests/databases.py).
_open_pools: weakref.WeakSet[PooledPostgres] = weakref.WeakSet()


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


class PooledPostgres(pw.PostgresqlDatabase):
    """The mmflow PostgreSQL database (psycopg 3, psycopg_pool): see the module docstring."""

    # peewee's FloatField is FLOAT → REAL on PostgreSQL: 4 bytes, 24 bits of mantissa, so a Unix time is kept to
    # about two minutes. mmflow's floats are times: 8-byte DOUBLE PRECISION, what SQLite's REAL is.
    field_types = {**pw.PostgresqlDatabase.field_types, "FLOAT": "DOUBLE PRECISION"}

    def __init__(self, database, *, pool_size: int = DEFAULT_POOL_SIZE, timeout: float = 10.0, **kwargs):
        self.pool_size = pool_size
        self.timeout = timeout
        self._pool = None
        self._opening = threading.Lock()  # one pool, however many greenlets ask for the first connection at once
        super().__init__(database, prefer_psycopg3=True, **kwargs)
        # peewee serializes connect()/close() of every greenlet on one lock, held while a connection is taken:
        # a greenlet waiting for a free connection would keep the others from giving theirs back. The state it
        # guards is per greenlet, and the pool has its own locks.
        self._lock = pw._NoopLock()

    # -- the pool ---------------------------------------------------------------------------------------------

    def _connection_arguments(self) -> dict:
        return {"dbname": self.database, **self.connect_params, "autocommit": True}

    def _open_pool(self):
        """The pool, opened on first use: one direct connection first, so a server that refuses or cannot be
        reached is one clear error (psycopg's) instead of a pool that retries in the background and times out."""
        import psycopg
        from psycopg_pool import ConnectionPool

        psycopg.connect(**self._connection_arguments()).close()
        pool = ConnectionPool(
            kwargs=self._connection_arguments(), min_size=1, max_size=self.pool_size, timeout=self.timeout,
            name=f"mmflow-{self.database}", open=False)
        pool.open()
        self._pool = pool
        _open_pools.add(self)
        return pool

    def _connect(self):
        pool = self._pool
        if pool is None or pool.closed:  # first use, or used again after close()
            with self._opening:
                pool = self._pool
                if pool is None or pool.closed:
                    pool = self._open_pool()
        for _ in range(self.pool_size):  # each unusable one is replaced by the pool; the next may be fine
            conn = pool.getconn()
            if _usable(conn):
                return conn
            conn.close()
            pool.putconn(conn)
        return pool.getconn()

    def _close(self, conn):
        conn._mmflow_idle_since = time.monotonic()
        pool = getattr(conn, "_pool", None) or self._pool
        if pool is None or pool.closed:
            conn.close()
        else:
            pool.putconn(conn)

    def pool_stats(self) -> dict[str, int]:
        """psycopg_pool's figures: ``pool_size`` (connections open), ``pool_available`` (idle among them),
        ``requests_waiting``, ... (empty before first use)."""
        return self._pool.get_stats() if self._pool is not None else {}

    def lent_count(self) -> int:
        """How many pooled connections are lent out now."""
        stats = self.pool_stats()
        return stats.get("pool_size", 0) - stats.get("pool_available", 0)

    # -- statements and transactions --------------------------------------------------------------------------

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
        """Shut the pool: this greenlet's connection and the idle ones now; one still lent when it comes back."""
        was_open = self.release()
        pool, self._pool = self._pool, None
        _open_pools.discard(self)
        if pool is not None:
            pool.close()
        return was_open


def _usable(conn) -> bool:
    """Whether a pooled connection may be lent: its local status; a round trip only when the server has sent
    something unasked (a session it ended says so and closes the socket) or after a long idle — psycopg_pool's
    own check costs a round trip every time."""
    if conn.closed or conn.broken:
        return False
    idle = time.monotonic() - getattr(conn, "_mmflow_idle_since", time.monotonic())
    if idle < IDLE_CHECK_SECONDS and not select.select([conn.fileno()], [], [], 0)[0]:
        return True
    try:
        conn.execute("")
    except Exception:  # noqa: BLE001 - any failure: the connection is not to be lent
        return False
    return True


def close_pools(database: str | None = None) -> None:
    """Close every open pool (of ``database`` only, if given)."""
    for db in list(_open_pools):
        if database is None or db.database == database:
            db.close()


@atexit.register
def _close_pools_at_exit() -> None:
    try:
        close_pools()
    except Exception:  # noqa: BLE001, S110 - the process is ending; the server ends the sessions anyway
        pass


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
    return PooledPostgres(name, pool_size=pool_size, timeout=timeout, **arguments)
