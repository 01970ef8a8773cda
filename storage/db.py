"""Opening the database: SQLite (WAL) by default, PostgreSQL by URL; schema on start."""
from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import peewee as pw
from loguru import logger

from storage.models import ALL_MODELS, SCHEMA_VERSION, SchemaVersion, database_proxy


class StorageError(RuntimeError):
    pass


def open_database(url: str, *, busy_timeout: float = 5.0) -> pw.Database:
    """Connect, bind the models, create the schema if new and check its version.

    SQLite: one connection shared by every greenlet (thread_safe=False). Under
    gevent sqlite3 calls never yield, so sharing is safe as long as no
    transaction spans a yield — the group-commit writer guarantees that — and it
    avoids one connection per actor (peewee's thread-local is per greenlet).
    PostgreSQL: psycopg 3 pool (cooperative under gevent), always with a timeout.
    """
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = pw.SqliteDatabase(
            path,
            pragmas={"journal_mode": "wal", "synchronous": "normal", "foreign_keys": 1,
                     "busy_timeout": int(busy_timeout * 1000)},
            thread_safe=False,
            check_same_thread=False,
            autoconnect=True,
        )
    elif url.startswith(("postgresql://", "postgres://")):
        try:
            from playhouse.postgres_ext import PooledPsycopg3Database
        except ImportError as exc:  # pragma: no cover - depends on the optional extra
            raise StorageError("PostgreSQL needs the 'postgres' extra: pip install 'mmflow[postgres]'") from exc
        parts = urlparse(url)
        db = PooledPsycopg3Database(
            parts.path.lstrip("/"),
            user=unquote(parts.username or ""), password=unquote(parts.password or ""),
            host=parts.hostname or "127.0.0.1", port=parts.port or 5432,
            max_connections=20, stale_timeout=300, timeout=busy_timeout or 10,
        )
    else:
        raise StorageError(f"unsupported database url {url!r}")
    database_proxy.initialize(db)
    ensure_schema(db)
    return db


def all_models() -> list:
    """Every table of mmflow. Modules that extend the schema register here (they import storage.models)."""
    from storage.exchange_models import EXCHANGE_MODELS
    models = list(ALL_MODELS) + list(EXCHANGE_MODELS)
    try:
        from storage.campaign_models import CAMPAIGN_MODELS
    except ImportError:  # pragma: no cover - present once campaigns land
        CAMPAIGN_MODELS = []
    return models + list(CAMPAIGN_MODELS)


def ensure_schema(db: pw.Database) -> None:
    from storage.migrations import UPGRADES

    with db.atomic():
        if not db.table_exists(SchemaVersion._meta.table_name):
            db.create_tables(all_models(), safe=True)
            SchemaVersion.create(version=SCHEMA_VERSION, applied_at=time.time())
            logger.info("database schema created at version {}", SCHEMA_VERSION)
            return
        current = SchemaVersion.select(pw.fn.MAX(SchemaVersion.version)).scalar() or 1
        if current > SCHEMA_VERSION:
            raise StorageError(f"database schema version {current} is newer than this mmflow "
                               f"({SCHEMA_VERSION}); refusing to run an older binary on it")
        # Columns first (on the tables that exist), then new tables and indexes.
        for version in range(current + 1, SCHEMA_VERSION + 1):
            UPGRADES[version](db)
            SchemaVersion.create(version=version, applied_at=time.time())
            logger.info("database schema upgraded to version {}", version)
        db.create_tables(all_models(), safe=True)


def close_database(db: pw.Database) -> None:
    if not db.is_closed():
        db.close()
