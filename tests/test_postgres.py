"""PostgreSQL under gevent (storage/postgres.py): queries wait cooperatively, the pool lends a connection per
statement or per transaction and never holds more server sessions than its size.

These run only on PostgreSQL (``MMFLOW_TEST_DATABASE_URL=postgresql://…``, as .ci/run's second pass does)."""
from __future__ import annotations

import time

import gevent
import pytest
from gevent.event import Event

from storage.db import open_database
from storage.models import Alert, database_proxy
from storage.writer import Writer
from tests.databases import database_url, on_postgres, query
from tests.support import wait_until

pytestmark = pytest.mark.skipif(not on_postgres(), reason="needs a PostgreSQL server: MMFLOW_TEST_DATABASE_URL")


@pytest.fixture
def url(tmp_path):
    return database_url(tmp_path / "pg")


@pytest.fixture
def db(url):
    database = open_database(url, pool_size=3)
    yield database
    database.close()
    database_proxy.initialize(None)


def sessions(url: str) -> int:
    """Server sessions open on this test's database, not counting the one asking."""
    return query(url, "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
                      "AND pid <> pg_backend_pid()")[0][0]


def test_a_slow_query_does_not_stall_other_greenlets(db):
    """``SELECT pg_sleep(1)`` in one greenlet: meanwhile another keeps ticking and runs its own query to the end."""
    sleeping, ticks, other_done = Event(), [], []
    span = {}

    def slow():
        span["start"] = time.monotonic()
        sleeping.set()
        db.execute_sql("SELECT pg_sleep(1)").fetchone()
        span["end"] = time.monotonic()

    def busy():
        sleeping.wait(5)
        for _ in range(5):
            gevent.sleep(0.01)
            ticks.append(time.monotonic())
        assert db.execute_sql("SELECT 41 + 1").fetchone() == (42,)
        other_done.append(time.monotonic())

    jobs = [gevent.spawn(slow), gevent.spawn(busy)]
    gevent.joinall(jobs, timeout=30, raise_error=True)
    assert span["end"] - span["start"] >= 1.0
    # every tick, and the other query, happened while pg_sleep was still running
    assert len(ticks) == 5 and all(span["start"] < t < span["end"] for t in ticks)
    assert other_done and other_done[0] < span["end"]


def test_many_greenlets_share_a_small_pool_and_give_every_connection_back(db, url):
    peak = []

    def work(i):
        row = db.execute_sql("SELECT %s::int, pg_sleep(0.02)", (i,)).fetchone()
        peak.append(db.lent_count())
        return row[0]

    jobs = [gevent.spawn(work, i) for i in range(40)]
    gevent.joinall(jobs, timeout=60, raise_error=True)
    assert sorted(j.value for j in jobs) == list(range(40))
    assert max(peak) <= 3 and db.lent_count() == 0  # nobody keeps a connection between statements
    assert sessions(url) <= 3


def test_a_transaction_keeps_its_connection_and_others_see_only_what_is_committed(db):
    written, checked = Event(), Event()
    seen_inside = []

    def reader():
        written.wait(5)
        seen_inside.append(Alert.select().count())
        checked.set()

    job = gevent.spawn(reader)
    with db.atomic():
        Alert.create(kind="k", subject="s", message="m", created_at=0)
        written.set()
        checked.wait(5)
        assert Alert.select().count() == 1  # the transaction sees its own row
    job.join(5)
    assert seen_inside == [0]
    assert Alert.select().count() == 1
    assert db.lent_count() == 0


def test_the_writer_commits_on_postgres_while_readers_go_on(db):
    writer = Writer(db, batch_max=50).start()
    try:
        reads = []
        reader = gevent.spawn(lambda: [reads.append(Alert.select().count()) or gevent.sleep(0.001)
                                       for _ in range(30)])
        results = [writer.submit(lambda i=i: Alert.create(kind="k", subject=str(i), message="", created_at=0).id)
                   for i in range(100)]
        assert len({r.get(timeout=30) for r in results}) == 100
        reader.join(30)
        assert len(reads) == 30 and reads == sorted(reads)  # committed batches only ever add rows
    finally:
        writer.stop()
    assert Alert.select().count() == 100


def test_close_ends_every_server_session(db, url):
    gevent.joinall([gevent.spawn(db.execute_sql, "SELECT pg_sleep(0.05)") for _ in range(3)], timeout=30)
    assert 1 <= sessions(url) <= 3
    db.close()
    assert sessions(url) == 0


def test_a_connection_the_server_ended_is_not_lent_again(db, url):
    """After the server ends a pooled connection, it fails at most the statement that found it; then a new one."""
    assert db.execute_sql("SELECT 1").fetchone() == (1,)
    query(url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
               "AND pid <> pg_backend_pid()")
    outcomes = []
    for _ in range(2):
        try:
            outcomes.append(db.execute_sql("SELECT 2").fetchone()[0])
        except Exception as exc:  # noqa: BLE001 - the one statement that met the dead connection
            outcomes.append(type(exc).__name__)
    assert outcomes[-1] == 2 and len([o for o in outcomes if o != 2]) <= 1


def test_hundreds_of_greenlets_starting_at_once_are_all_served(db):
    """Every one of 300 greenlets gets its turn on a pool of 3 (peewee's own pool left some waiting for ever)."""
    jobs = [gevent.spawn(lambda i=i: db.execute_sql("SELECT %s::int", (i,)).fetchone()[0]) for i in range(300)]
    gevent.joinall(jobs, timeout=60, raise_error=True)
    assert sorted(j.value for j in jobs) == list(range(300))
    assert db.lent_count() == 0


def test_a_process_that_exits_with_its_pool_open_ends_quietly(url):
    """No close() before exit: the pool is closed at exit, without a traceback or a warning."""
    import subprocess
    import sys

    from tests.support import ROOT

    script = ("from integrations.gevent_patch import patch_all; patch_all()\n"
              "import sys\n"
              "from storage.db import open_database\n"
              "db = open_database(sys.argv[1])\n"
              "print(db.execute_sql('SELECT 40 + 2').fetchone()[0])\n")
    done = subprocess.run([sys.executable, "-c", script, url], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "42")
    assert "Traceback" not in done.stderr and "WARNING" not in done.stderr and "Error" not in done.stderr
    wait_until(lambda: sessions(url) == 0, timeout=10, message="the exited process's sessions end")
