"""The database each test uses: an SQLite file in its tmp_path, or — with ``MMFLOW_TEST_DATABASE_URL`` set to a
``postgresql://`` URL — a PostgreSQL database of its own on that server, dropped when the test ends.

Tests ask :func:`database_url` for "the database at this path" wherever they would write ``sqlite:///PATH``; the
same path gives the same database for as long as it lives (a restart opens what the first run wrote). A PostgreSQL
database is a copy of a template that already holds mmflow's schema (``CREATE DATABASE … TEMPLATE``, much faster
than creating 20-odd tables per test), or empty (``empty=True``) for tests about creating or upgrading a schema.
conftest.py creates the template once per session and drops each database when the scope that created it ends: a
test's own after the test, a module or class fixture's after its module or class. The copies are made ahead and
dropped in the background by tests/database_keeper.py (a create costs ~0.3 s and a drop ~1 s on PostgreSQL 15:
most of the suite's time if paid inside the tests); pools the test left open on a database are closed first.

Names are ``mmt_<pid>_…``: runs side by side on one server never meet, and what a killed run left behind is
dropped by the next one (its pid is gone).
"""
from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ENV = "MMFLOW_TEST_DATABASE_URL"
_PREFIX = "mmt_"
_OURS = re.compile(rf"^{_PREFIX}(\d+)_")

_created: dict[str, str] = {}   # str(path) -> database name, in creation order
_counter = itertools.count(1)


def server_url() -> str | None:
    """The PostgreSQL URL the suite runs on, or None (SQLite)."""
    url = os.environ.get(ENV, "").strip()
    if not url:
        return None
    if not url.startswith(("postgresql://", "postgres://")):
        raise RuntimeError(f"{ENV} must be a postgresql:// URL, got {url.split('@')[-1]!r}")
    return url


def on_postgres() -> bool:
    return server_url() is not None


def _with_database(url: str, name: str) -> str:
    return urlunparse(urlparse(url)._replace(path="/" + name))


_admin_connection = None


def _admin(sql: str) -> None:
    """One statement on the server's maintenance database, on a connection kept for the session (a new one for
    each of the thousands of CREATE/DROP DATABASE would cost a connection start-up each)."""
    global _admin_connection
    import psycopg

    if _admin_connection is None or _admin_connection.closed:
        _admin_connection = psycopg.connect(server_url(), autocommit=True, connect_timeout=10)
    try:
        _admin_connection.execute(sql)
    except psycopg.OperationalError:  # the kept connection was lost (server restarted): once more on a new one
        _admin_connection.close()
        _admin_connection = psycopg.connect(server_url(), autocommit=True, connect_timeout=10)
        _admin_connection.execute(sql)


def template_name() -> str:
    return f"{_PREFIX}{os.getpid()}_template"


def database_url(path: Path | str, *, empty: bool = False) -> str:
    """The URL of this test's database at ``path``: ``sqlite:///path``, or on PostgreSQL a database of its own
    (with mmflow's schema already created, or ``empty``), the same one every time this test names ``path``."""
    url = server_url()
    if url is None:
        return f"sqlite:///{path}"
    key = str(path)
    name = _created.get(key)
    if name is None:
        if empty or _keeper is None:
            name = f"{_PREFIX}{os.getpid()}_{next(_counter)}"
            _admin(f'CREATE DATABASE "{name}" TEMPLATE "{"template0" if empty else template_name()}"')
        else:
            name = _take()
        _created[key] = name
    return _with_database(url, name)


def create_template() -> None:
    """The template every test database is copied from: mmflow's schema at the current version."""
    from storage.db import open_database
    from storage.models import database_proxy

    drop_leftovers()
    name = template_name()
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{name}" TEMPLATE template0')
    db = open_database(_with_database(server_url(), name))
    db.close()
    database_proxy.initialize(None)


def drop_template() -> None:
    _admin(f'DROP DATABASE IF EXISTS "{template_name()}" WITH (FORCE)')


_keeper: subprocess.Popen | None = None


def start_keeper() -> None:
    """tests/database_keeper.py: test databases made ahead from the template and dropped in the background."""
    global _keeper
    script = Path(__file__).with_name("database_keeper.py")
    _keeper = subprocess.Popen([sys.executable, str(script), server_url(), template_name(),
                                f"{_PREFIX}{os.getpid()}_k"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def stop_keeper(timeout: float = 600) -> None:
    """Wait until the keeper has dropped every database it made or was given."""
    global _keeper
    keeper, _keeper = _keeper, None
    if keeper is not None:
        keeper.stdin.close()
        keeper.wait(timeout)


def _take() -> str:
    _keeper.stdin.write("take\n")
    _keeper.stdin.flush()
    line = _keeper.stdout.readline().strip()
    if not line or line.startswith("error "):
        raise RuntimeError(f"the test database keeper could not create a database: {line[6:] or 'it exited'}")
    return line


def _drop(name: str) -> None:
    if _keeper is not None:
        _keeper.stdin.write(f"drop {name}\n")
        _keeper.stdin.flush()
    else:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def created_count() -> int:
    """How many databases are alive now: a scope notes it when it starts and gives it to drop_created_since."""
    return len(_created)


def drop_created_since(count: int) -> None:
    """Drop the databases created after ``created_count()`` was ``count`` (connections to them are ended)."""
    from storage.postgres import close_pools

    while len(_created) > count:
        name = _created.pop(next(reversed(_created)))
        close_pools(name)  # a pool the test left open would otherwise keep reconnecting to a dropped database
        _drop(name)


def drop_leftovers() -> None:
    """Databases of earlier runs on this machine whose process is gone (a run killed before it cleaned up)."""
    import psycopg

    with psycopg.connect(server_url(), autocommit=True, connect_timeout=10) as conn:
        names = [n for (n,) in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'mmt\\_%'")]
        for name in names:
            match = _OURS.match(name)
            if match and not _alive(int(match.group(1))):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def query_errors() -> tuple[type[BaseException], ...]:
    """What :func:`query` raises while the service has not created its database yet (or is mid-restart)."""
    import sqlite3

    import psycopg

    return (sqlite3.OperationalError, psycopg.OperationalError, psycopg.errors.UndefinedTable)


def query(url: str, sql: str, args: tuple | list = ()) -> list[tuple]:
    """Rows of one read, on its own short connection, from any process's database: ``?`` placeholders on both
    backends (SQLite read-only, so a test never writes behind the service's back)."""
    if url.startswith("sqlite:///"):
        import sqlite3

        conn = sqlite3.connect(f"file:{url[len('sqlite:///'):]}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql, tuple(args)).fetchall()
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        return [tuple(row) for row in conn.execute(sql.replace("?", "%s"), tuple(args) or None).fetchall()]


def execute(url: str, sql: str, args: tuple | list = ()) -> int:
    """One write on its own short connection (``?`` placeholders, both backends); the number of rows changed."""
    if url.startswith("sqlite:///"):
        import sqlite3

        conn = sqlite3.connect(url[len("sqlite:///"):], timeout=10)
        try:
            with conn:
                return conn.execute(sql, tuple(args)).rowcount
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        return conn.execute(sql.replace("?", "%s"), tuple(args) or None).rowcount


def database_text(url: str) -> str:
    """Every row of every table of a PostgreSQL database, as text (what a secret scan reads)."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        tables = [t for (t,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return "\n".join(str(row) for table in tables for row in conn.execute(f'SELECT * FROM "{table}"'))


class _HeldLocks:
    def __init__(self, close):
        self.close = close


def hold_write_locks(url: str) -> _HeldLocks:
    """Hold a lock that stops every write to the database until ``close()`` (reads go on): SQLite's
    ``BEGIN EXCLUSIVE``; on PostgreSQL every table locked ``IN EXCLUSIVE MODE`` in an open transaction."""
    if url.startswith("sqlite:///"):
        import sqlite3

        conn = sqlite3.connect(url[len("sqlite:///"):], timeout=10, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")

        def release():
            conn.rollback()
            conn.close()
        return _HeldLocks(release)
    import psycopg

    conn = psycopg.connect(url, connect_timeout=10)  # not autocommit: the locks last until the transaction ends
    tables = [t for (t,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    names = ", ".join('"' + table + '"' for table in tables)
    conn.execute(f"LOCK TABLE {names} IN EXCLUSIVE MODE")
    return _HeldLocks(conn.close)
