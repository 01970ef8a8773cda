"""Opening the database: SQLite (WAL) by default, PostgreSQL by URL; schema on start.

Every way the database can be unusable — a directory that cannot be created, a file that is not a
database, a schema newer than this mmflow, a missing PostgreSQL driver, a server that refuses the
connection — is a StorageError whose message says what and where (any password in a URL masked),
never a driver traceback. ``check_database`` answers the same question without creating, upgrading or
writing anything (``run.py serve --check``).
"""
from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import peewee as pw
from loguru import logger

from storage.models import ALL_MODELS, SCHEMA_VERSION, SchemaVersion, database_proxy
from storage.postgres import DEFAULT_POOL_SIZE, PooledPostgres, pooled_database, widen_real_columns


class StorageError(RuntimeError):
    pass


def masked_url(url: str) -> str:
    """The URL with its password (if any) replaced by ``***``."""
    try:
        parts = urlparse(url)
        password = parts.password
    except ValueError:
        return url.split("@", 1)[-1] if "@" in url else url
    if not password:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}").geturl()


def _scrub(text: str, url: str) -> str:
    """A driver's message without the URL's password (drivers do not echo it, but never say never)."""
    try:
        password = urlparse(url).password
    except ValueError:
        password = None
    for secret in {password, unquote(password or "")} - {None, ""}:
        text = text.replace(secret, "***")
    return " ".join(str(text).split())  # one line


def _sqlite_path(url: str) -> str:
    return url[len("sqlite:///"):]


def _prepare_sqlite_directory(path: str) -> None:
    """Create the database file's directory (and parents), or say why it cannot be."""
    parent = Path(path).parent
    if parent.is_dir():
        return
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = _blocking_file(parent)
        why = f"{blocker} is a file, not a directory" if blocker else (exc.strerror or type(exc).__name__)
        raise StorageError(f"cannot create the directory {parent} for the SQLite database: {why}") from None


def _blocking_file(directory: Path) -> Path | None:
    """The first existing non-directory among ``directory`` and its parents, if any."""
    for candidate in [directory, *directory.parents]:
        if candidate.exists() or candidate.is_symlink():
            return None if candidate.is_dir() else candidate
    return None


def _pg_database(url: str, busy_timeout: float, pool_size: int = DEFAULT_POOL_SIZE):
    try:
        import psycopg  # noqa: F401 - the driver PooledPostgres uses
    except ImportError:
        raise StorageError("PostgreSQL needs the psycopg driver, which is not installed: "
                           "pip install 'mmflow[postgres]'") from None
    try:
        import psycopg_pool  # noqa: F401 - the pool PooledPostgres uses
    except ImportError:
        raise StorageError("PostgreSQL needs psycopg_pool, which is not installed: "
                           "pip install 'mmflow[postgres]'") from None
    try:
        return pooled_database(url, timeout=busy_timeout or 10, pool_size=pool_size)
    except ValueError as exc:
        why = _scrub(str(exc), url)
        if why.startswith("names no database"):
            raise StorageError(f"{masked_url(url)} {why}") from None
        raise StorageError(f"{masked_url(url)} is not a valid URL ({why})") from None


def _where(url: str) -> str:
    if url.startswith("sqlite:///"):
        return f"SQLite database {_sqlite_path(url)}"
    return f"PostgreSQL database {masked_url(url)}"


def _unusable(url: str, exc: BaseException) -> StorageError:
    """A driver/OS error while opening ``url`` as a StorageError that says what, where, and without secrets."""
    if isinstance(exc, StorageError):
        return exc
    where = _where(url)
    text = _scrub(str(exc) or type(exc).__name__, url)
    if isinstance(exc, pw.ImproperlyConfigured) or "driver not installed" in text:
        return StorageError(f"{where}: the PostgreSQL driver (psycopg) is not installed: "
                            "pip install 'mmflow[postgres]'")
    if "file is not a database" in text or "malformed" in text:
        return StorageError(f"{where}: the file is not an SQLite database ({text})")
    if isinstance(exc, OSError):
        return StorageError(f"{where}: {exc.strerror or text}")
    return StorageError(f"{where}: cannot be opened: {text}")


_DRIVER_ERRORS = (pw.PeeweeException, sqlite3.Error, OSError)


def open_database(url: str, *, busy_timeout: float = 5.0, pool_size: int = DEFAULT_POOL_SIZE) -> pw.Database:
    """Connect, bind the models, create the schema if new and check its version.

    SQLite: one connection shared by every greenlet (thread_safe=False). Under
    gevent sqlite3 calls never yield, so sharing is safe as long as no
    transaction spans a yield — the group-commit writer guarantees that — and it
    avoids one connection per actor (peewee's thread-local is per greenlet).
    PostgreSQL: a pool of at most ``pool_size`` psycopg 3 connections, each lent for one statement or one
    transaction (storage/postgres.py), cooperative under gevent; connecting and waiting for a free connection
    time out after ``busy_timeout`` seconds.
    """
    try:
        db = _connect(url, busy_timeout, pool_size)
    except _DRIVER_ERRORS as exc:
        raise _unusable(url, exc) from None
    database_proxy.initialize(db)
    try:
        ensure_schema(db)
    except _DRIVER_ERRORS as exc:
        database_proxy.initialize(None)
        _close_quietly(db)
        raise _unusable(url, exc) from None
    except StorageError as exc:
        database_proxy.initialize(None)
        _close_quietly(db)
        raise StorageError(f"{_where(url)}: {exc}") from None
    if isinstance(db, PooledPostgres):
        db.release()  # the opening greenlet holds no connection between statements, like every other
    return db


def _close_quietly(db: pw.Database) -> None:
    try:
        db.close()
    except Exception:  # noqa: BLE001, S110 - already failing; the first error is the one to report
        pass


# Per-connection SQLite settings (bench/ingest.py's floor uses them too). Beyond WAL and synchronous=normal: a
# 64 MiB page cache instead of 2 MiB (a page of snapshots touches hundreds of random index pages — snapshot, order
# and tally keys are UUIDs — which a 2 MiB cache reads back from the OS again and again), and a checkpoint every
# 10,000 WAL pages instead of 1,000 (at 1,000 nearly every ingest commit also checkpointed, writing the same hot
# index pages twice). Profiled on bench/ingest.py: a third less CPU in the reads of a page, a fifth less per commit.
# temp_store=memory: the writer runs every unit in a SAVEPOINT, and SQLite copies each page a savepoint first
# changes into a sub-journal — a temp FILE by default: a page of snapshots inserted inside a savepoint cost ~60 %
# more CPU than the same insert outside one; in memory, ~7 % (the sub-journal only serves ROLLBACK TO inside the
# open transaction: durability is the WAL's). Temp tables and big sorts also stay in memory.
SQLITE_PRAGMAS = {"journal_mode": "wal", "synchronous": "normal", "foreign_keys": 1, "cache_size": -65536,
                  "wal_autocheckpoint": 10000, "temp_store": "memory"}


def _connect(url: str, busy_timeout: float, pool_size: int = DEFAULT_POOL_SIZE) -> pw.Database:
    if url.startswith("sqlite:///"):
        path = _sqlite_path(url)
        if path != ":memory:":
            if not path.strip():
                raise StorageError("sqlite:/// names no database file")
            _prepare_sqlite_directory(path)
            if Path(path).is_dir():
                raise StorageError(f"SQLite database {path}: is a directory, not a file")
        db = pw.SqliteDatabase(
            path,
            pragmas={**SQLITE_PRAGMAS, "busy_timeout": int(busy_timeout * 1000)},
            thread_safe=False,
            check_same_thread=False,
            autoconnect=True,
            # BEGIN IMMEDIATE: a transaction takes the write lock when it begins, waiting up to busy_timeout for
            # another process's (the CLI's `archive run`, an operator command). A deferred BEGIN that read first
            # and then wrote after another process had committed got SQLITE_BUSY at once, no wait: the poller's
            # ingest unit failed and the poller restarted (seen while `archive run` ran beside the service).
            lock_type="IMMEDIATE",
        )
    elif url.startswith(("postgresql://", "postgres://")):
        db = _pg_database(url, busy_timeout, pool_size)
    else:
        raise StorageError(f"unsupported database url {masked_url(url)!r}")
    db.connect(reuse_if_open=True)
    return db


def check_database(url: str, *, busy_timeout: float = 5.0) -> str:
    """Whether ``open_database(url)`` would work, without creating, upgrading or writing anything.

    Returns a short description of what was found ("new", "schema version 2", ...); StorageError
    (same messages as open_database) when the database is unusable."""
    from storage.models import SCHEMA_VERSION

    try:
        if url.startswith("sqlite:///"):
            return _check_sqlite(_sqlite_path(url), SCHEMA_VERSION, busy_timeout)
        if url.startswith(("postgresql://", "postgres://")):
            db = _pg_database(url, busy_timeout)
            try:
                db.connect()
                return _schema_state(db, SCHEMA_VERSION)
            except StorageError as exc:
                raise StorageError(f"{_where(url)}: {exc}") from None
            finally:
                _close_quietly(db)
        raise StorageError(f"unsupported database url {masked_url(url)!r}")
    except _DRIVER_ERRORS as exc:
        raise _unusable(url, exc) from None


def _check_sqlite(path: str, schema_version: int, busy_timeout: float) -> str:
    if path == ":memory:":
        return "in memory"
    if not path.strip():
        raise StorageError("sqlite:/// names no database file")
    target = Path(path)
    if target.is_dir():
        raise StorageError(f"SQLite database {path}: is a directory, not a file")
    if not target.exists():
        parent = target.parent
        blocker = _blocking_file(parent)
        if blocker is not None:
            raise StorageError(f"cannot create the directory {parent} for the SQLite database: "
                               f"{blocker} is a file, not a directory")
        existing = next((p for p in [parent, *parent.parents] if p.exists()), Path("/"))
        try:  # the truth about writability (os.access says yes to root on a read-only or virtual file system)
            os.rmdir(tempfile.mkdtemp(prefix=".mmflow-check-", dir=existing))
        except OSError as exc:
            what = f"the directory {parent} for the SQLite database" if existing != parent \
                else f"the SQLite database {path}"
            raise StorageError(f"cannot create {what}: {exc.strerror or type(exc).__name__} "
                               f"(in {existing})") from None
        return "new (will be created)"
    conn = sqlite3.connect(f"file:{target}?mode=ro", uri=True, timeout=max(busy_timeout, 0.1))
    try:
        conn.execute("PRAGMA schema_version").fetchone()  # reads the header: 'file is not a database' here
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        table = SchemaVersion._meta.table_name
        if table not in tables:
            if tables:
                raise StorageError(f"SQLite database {path}: holds tables but no schema_version: "
                                   "not an mmflow database")
            return "empty (the schema will be created)"
        current = conn.execute(f"SELECT MAX(version) FROM {table}").fetchone()[0] or 1
    finally:
        conn.close()
    try:
        return _compare(current, schema_version)
    except StorageError as exc:
        raise StorageError(f"SQLite database {path}: {exc}") from None


def _schema_state(db: pw.Database, schema_version: int) -> str:
    if not db.table_exists(SchemaVersion._meta.table_name):
        if db.get_tables():
            raise StorageError("holds tables but no schema_version: not an mmflow database")
        return "empty (the schema will be created)"
    row = db.execute_sql(f"SELECT MAX(version) FROM {SchemaVersion._meta.table_name}").fetchone()
    return _compare((row[0] if row else None) or 1, schema_version)


def _compare(current: int, schema_version: int) -> str:
    if current > schema_version:
        raise StorageError(f"database schema version {current} is newer than this mmflow "
                           f"({schema_version}); refusing to run an older binary on it")
    if current < schema_version:
        return f"schema version {current} (will be upgraded to {schema_version})"
    return f"schema version {current}"


def all_models() -> list:
    """Every table of mmflow. Modules that extend the schema register here (they import storage.models)."""
    from storage.exchange_models import EXCHANGE_MODELS
    models = list(ALL_MODELS) + list(EXCHANGE_MODELS)
    try:
        from storage.campaign_models import CAMPAIGN_MODELS
    except ImportError:  # pragma: no cover - present once campaigns land
        CAMPAIGN_MODELS = []
    from storage.api_models import API_MODELS
    from storage.archive_models import ARCHIVE_MODELS
    from storage.kpi_models import KPI_MODELS
    return models + list(CAMPAIGN_MODELS) + list(API_MODELS) + list(KPI_MODELS) + list(ARCHIVE_MODELS)


SCHEMA_LOCK_KEY = 0x6D6D666C6F77  # "mmflow": the advisory lock that serialises schema creation and upgrades


def ensure_schema(db: pw.Database) -> None:
    from storage.migrations import UPGRADES

    with db.atomic():
        if isinstance(db, PooledPostgres):
            # several instances of a cluster may start at once on an empty or older database: one creates or
            # upgrades the schema, the others wait here (a transaction-level lock: released by the commit)
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
        if not db.table_exists(SchemaVersion._meta.table_name):
            db.create_tables(all_models(), safe=True)
            SchemaVersion.create(version=SCHEMA_VERSION, applied_at=time.time())
            logger.info("database schema created at version {}", SCHEMA_VERSION)
            return
        current = SchemaVersion.select(pw.fn.MAX(SchemaVersion.version)).scalar() or 1
        if current > SCHEMA_VERSION:
            raise StorageError(f"database schema version {current} is newer than this mmflow "
                               f"({SCHEMA_VERSION}); refusing to run an older binary on it")
        if current == SCHEMA_VERSION and {m._meta.table_name for m in all_models()} <= set(db.get_tables()):
            # up to date: no DDL at all — CREATE INDEX IF NOT EXISTS still takes a SHARE lock on each table, which
            # would stall (or deadlock with) the writers of running services each time a CLI command opens the DB
            return
        # Columns first (on the tables that exist), then new tables and indexes.
        for version in range(current + 1, SCHEMA_VERSION + 1):
            UPGRADES[version](db)
            SchemaVersion.create(version=version, applied_at=time.time())
            logger.info("database schema upgraded to version {}", version)
        db.create_tables(all_models(), safe=True)
        if isinstance(db, PooledPostgres):
            widened = widen_real_columns(db, [m._meta.table_name for m in all_models()])
            if widened:
                logger.info("PostgreSQL: {} time column(s) widened from real to double precision", len(widened))


def close_database(db: pw.Database) -> None:
    """Close the database: SQLite's connection; PostgreSQL's whole pool (no greenlet may hold one then)."""
    if isinstance(db, PooledPostgres) or not db.is_closed():
        db.close()
