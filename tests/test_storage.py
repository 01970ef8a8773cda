"""Storage: the group-commit writer, schema versioning, and the idempotent units."""
from __future__ import annotations

import uuid
from decimal import Decimal

import gevent
import pytest

from domain.memo import memo_text_to_hex
from domain.routing import Route, RouteKind, parse_snapshot
from domain.timefmt import format_ns
from storage import repo
from storage.db import StorageError, ensure_schema, open_database
from storage.models import Alert, MoneyMovement, PollCursor, SchemaVersion, Snapshot, database_proxy
from storage.writer import Writer, WriterStopped
from tests.databases import database_url, on_postgres, query


@pytest.fixture
def db(tmp_path):
    database = open_database(database_url(tmp_path / "test.db"))
    yield database
    database.close()
    database_proxy.initialize(None)


@pytest.fixture
def writer(db):
    w = Writer(db, batch_max=50).start()
    yield w
    w.stop()


def snap(ns, amount="1", memo="hello", opponent="u1"):
    raw = {"snapshot_id": str(uuid.uuid4()), "created_at": format_ns(ns), "asset_id": "a", "amount": amount,
           "opponent_id": opponent, "memo": memo_text_to_hex(memo)}
    return parse_snapshot(raw), raw


def test_schema_version_recorded_and_newer_schema_refused(db):
    assert SchemaVersion.select().count() == 1
    SchemaVersion.create(version=999, applied_at=0)
    with pytest.raises(StorageError, match="newer"):
        ensure_schema(db)


@pytest.mark.skipif(on_postgres(), reason="about SQLite itself: its journal mode")
def test_wal_mode_is_on(db):
    assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_decimal_text_refuses_floats(db):
    with pytest.raises(TypeError, match="float"):
        MoneyMovement.create(request_id="r", kind="refund", cause="c", asset_id="a", amount=1.5,
                             recipient_id="u", state="queued", created_at=0, updated_at=0)


def test_writer_batches_concurrent_units_into_few_commits(writer):
    results = [writer.submit(lambda i=i: Alert.create(kind="k", subject=str(i), message="m", created_at=0).id)
               for i in range(200)]
    ids = [r.get(timeout=5) for r in results]
    assert len(set(ids)) == 200
    assert writer.batches <= 5  # 200 units submitted at once: group commit, not 200 transactions
    assert Alert.select().count() == 200


def test_failing_unit_is_rolled_back_alone(writer):
    def good(i):
        Alert.create(kind="good", subject=str(i), message="", created_at=0)

    def bad():
        Alert.create(kind="bad", subject="x", message="", created_at=0)
        raise ValueError("boom")

    futures = [writer.submit(good, 1), writer.submit(bad), writer.submit(good, 2)]
    futures[0].get(timeout=5)
    with pytest.raises(ValueError, match="boom"):
        futures[1].get(timeout=5)
    futures[2].get(timeout=5)
    assert sorted(a.kind for a in Alert.select()) == ["good", "good"]


def test_result_is_durable_when_the_caller_hears_of_it(writer, tmp_path):
    writer.run(lambda: Alert.create(kind="k", subject="s", message="m", created_at=0))
    assert query(database_url(tmp_path / "test.db"), "SELECT COUNT(*) FROM alert") == [(1,)]  # another connection


def test_stopped_writer_refuses_work(db):
    w = Writer(db).start()
    w.stop()
    with pytest.raises(WriterStopped):
        w.run(lambda: None)


def test_snapshot_page_dedupes_and_cursor_only_moves_forward(writer):
    first, second = snap(10), snap(20)
    fresh = writer.run(repo.store_snapshot_page, [first, second, first], "c", second[0].created_at, 20)
    assert [f.snapshot_id for f in fresh] == [first[0].snapshot_id, second[0].snapshot_id]
    again = writer.run(repo.store_snapshot_page, [second, first], "c", first[0].created_at, 10)
    assert again == []
    assert PollCursor.get_by_id("c").offset_ns == 20  # an older offset never moves the cursor back
    assert Snapshot.select().count() == 2


def test_route_recorded_once_and_refund_queued_once(writer):
    item = snap(5)
    writer.run(repo.store_snapshot_page, [item], "c", None, None)
    route = Route(RouteKind.REFUND, "memo is not ours", "memo_not_base58")
    first = writer.run(repo.record_routes, [(item[0], route), (item[0], route)])
    second = writer.run(repo.record_routes, [(item[0], route)])
    assert len(first.refunds) == 1 and second.refunds == []
    movement = MoneyMovement.get()
    assert movement.amount == Decimal("1") and movement.memo.endswith(":memo_not_base58")
    assert Snapshot.get().applied is True


def test_writer_is_cooperative_under_gevent(writer):
    """Other greenlets keep running while units are committed (no transaction spans a yield)."""
    ticks = []
    ticker = gevent.spawn(lambda: [ticks.append(gevent.sleep(0.001)) for _ in range(50)])
    for _ in range(20):
        writer.run(lambda: [Alert.create(kind="k", subject=str(uuid.uuid4()), message="", created_at=0)
                            for _ in range(50)])
    ticker.join(timeout=5)
    assert len(ticks) == 50
