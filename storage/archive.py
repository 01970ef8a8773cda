"""Cold storage: finished orders move from the hot tables into segment files, and back.

What moves, per order: every row naming it in ``ORDER_TABLES`` — the order, its tally, history, commands,
top-ups, money movements, ledger, exchange orders, fills and sequence, its raw snapshots, KPI samples and
quote spans, campaign participation. Only ``settled`` and ``refunded`` orders closed before the retention
cutoff move.

A run, per segment, is ONE transaction (``archive_segment``, crash-safe at every step): keep the candidates
still at rest, read their rows and encode one record each, write the segment and fsync it
(storage/archive_segments), record the segment and the orders in the index, delete their hot rows, commit.
The rows are read and deleted in the same transaction, so nothing is deleted that the file does not hold —
and each row is read once (reading them twice, before the file and again at the commit to compare, was most
of a run's CPU).

A crash before the commit leaves the orders hot and an unindexed file nobody reads; a rerun archives them
again into a new segment. After the commit they are archived. So every order is readable exactly once, and a rerun
finds nothing left to do. Restore is the reverse: insert the rows and drop the index rows in one transaction.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import peewee as pw

from domain.states import OrderState
from integrations.crashpoints import crash_point
from storage.archive_models import ArchivedOrder, ArchivedOrderListing, ArchiveSegment, archived_entries
from storage.archive_segments import (FORMAT, ArchiveCorrupt, encode_record, read_record, read_segment,
                                      record_at, segment_files, write_segment)
from storage.campaign_models import CampaignParticipation
from storage.exchange_models import ExchangeOrder, Fill, OrderSequence
from storage.kpi_models import KpiQuoteSpan, KpiSample
from storage.models import (LedgerEntry, MoneyMovement, Order, OrderCommand, OrderStateChange, OrderTopUp,
                            PaymentTally, Snapshot, database_proxy)
from storage.sql import chunks, marks, run, run_many

ARCHIVABLE_STATES = (OrderState.SETTLED.value, OrderState.REFUNDED.value)
AT_REST = ("confirmed", "failed", "arrived", "kept")   # money movements nobody works on any more
ORDER_TABLES: tuple[type[pw.Model], ...] = (
    Order, PaymentTally, OrderStateChange, OrderCommand, OrderTopUp, MoneyMovement, LedgerEntry, ExchangeOrder,
    Fill, OrderSequence, Snapshot, KpiSample, KpiQuoteSpan, CampaignParticipation)
CHUNK = 500   # ids per IN (…): well under SQLite's and PostgreSQL's parameter limits


# ---------------------------------------------------------------- rows ⇄ records

def _normalizer(model: type[pw.Model]) -> list[tuple[str, Callable | None]]:
    """Columns of a table with how a driver's value becomes the same plain value on SQLite and PostgreSQL
    (booleans come back as 0/1 from SQLite, blobs as memoryview from some drivers)."""
    out = []
    for f in model._meta.sorted_fields:
        if isinstance(f, pw.BooleanField):
            out.append((f.column_name, lambda v: None if v is None else bool(v)))
        elif isinstance(f, pw.BlobField):
            out.append((f.column_name, lambda v: None if v is None else bytes(v)))
        else:
            out.append((f.column_name, None))
    return out


def _key_columns(model: type[pw.Model]) -> list[str]:
    """The primary key's columns: rows are read in key order, so a record is deterministic."""
    pk = model._meta.primary_key
    keys = pk.field_names if isinstance(pk, pw.CompositeKey) else [pk.name]
    return [model._meta.fields[k].column_name for k in keys]


def collect(order_ids: Sequence[str]) -> dict[str, dict]:
    """The records of these orders: ``{"format", "order_id", "tables": {table: {"columns", "rows"}}}``.

    One SELECT per table per 500 orders, ordered by the database (order, then primary key); only the columns
    that need it are converted (most need nothing): at 100,000 orders this is most of an archive run."""
    records = {oid: {"format": FORMAT, "order_id": oid, "tables": {}} for oid in order_ids}
    for model in ORDER_TABLES:
        table = model._meta.table_name
        columns = _normalizer(model)
        names = [c for c, _ in columns]
        converts = [(i, convert) for i, (_, convert) in enumerate(columns) if convert is not None]
        select = f"SELECT {', '.join(names)} FROM {table} WHERE order_id IN "
        order_by = f" ORDER BY order_id, {', '.join(_key_columns(model))}"
        order_at = names.index("order_id")
        for chunk in chunks(list(order_ids), CHUNK):
            last, rows = None, None
            for values in run(select + f"({marks(len(chunk))})" + order_by, chunk).fetchall():
                if converts:   # (a row is the driver's tuple when nothing needs converting)
                    values = list(values)
                    for i, convert in converts:
                        values[i] = convert(values[i])
                if values[order_at] != last:
                    last, rows = values[order_at], []
                    records[last]["tables"][table] = {"columns": names, "rows": rows}
                rows.append(values)
    return records


def insert_record(record: dict) -> None:
    """Put a record's rows into the current database (hot tables on restore, a scratch copy for a read).
    Columns this mmflow no longer has are dropped; new ones take their defaults."""
    for model in ORDER_TABLES:
        data = record["tables"].get(model._meta.table_name)
        if not data:
            continue
        known = {f.column_name for f in model._meta.sorted_fields}
        keep = [i for i, c in enumerate(data["columns"]) if c in known]
        columns = [data["columns"][i] for i in keep]
        run_many(f"INSERT INTO {model._meta.table_name} ({', '.join(columns)}) VALUES ({marks(len(columns))})",
                 [[row[i] for i in keep] for row in data["rows"]])


def clear_records() -> None:
    """Empty every order table of the current database (a scratch copy being given back)."""
    for model in ORDER_TABLES:
        run(f"DELETE FROM {model._meta.table_name}")


def _delete_hot(order_ids: Sequence[str]) -> None:
    for model in ORDER_TABLES:
        for chunk in chunks(list(order_ids), CHUNK):
            run(f"DELETE FROM {model._meta.table_name} WHERE order_id IN ({marks(len(chunk))})", chunk)


# ---------------------------------------------------------------- archiving

@dataclass(frozen=True)
class Candidate:
    order_id: str
    state: str
    pair_id: str
    user_id: str | None
    closed_at: float

    @property
    def day(self) -> str:
        return datetime.fromtimestamp(self.closed_at, timezone.utc).strftime("%Y-%m-%d")


@dataclass
class RunOutcome:
    archived: int = 0
    segments: int = 0
    changed: list[str] = field(default_factory=list)    # no longer at rest when their turn came: left hot


# Still finished and at rest: no money moving (a late transfer's refund not confirmed yet) and no routed payment
# waiting to be applied — the treasury and the order's actor work on hot rows, so such an order waits.
_AT_REST_SQL = (f"state IN ({marks(len(ARCHIVABLE_STATES))}) "
                f"AND NOT EXISTS (SELECT 1 FROM money_movement m WHERE m.order_id = o.order_id "
                f"AND m.state NOT IN ({marks(len(AT_REST))})) "
                f"AND NOT EXISTS (SELECT 1 FROM snapshot s WHERE s.order_id = o.order_id AND s.outcome = ? "
                f"AND s.applied = ?)")
_AT_REST_PARAMS = (*ARCHIVABLE_STATES, *AT_REST, "order", False)


def due(cutoff: float, limit: int) -> list[Candidate]:
    """Finished orders at rest closed before ``cutoff``, oldest first (an order without closed_at: its last
    update)."""
    rows = run(f"SELECT order_id, state, pair_id, user_id, COALESCE(closed_at, updated_at) AS closed FROM orders o "
               f"WHERE COALESCE(closed_at, updated_at) < ? AND {_AT_REST_SQL} "
               f"ORDER BY closed, order_id LIMIT {int(limit)}", (cutoff, *_AT_REST_PARAMS)).fetchall()
    return [Candidate(r[0], r[1], r[2], r[3], float(r[4])) for r in rows]


def archive_segment(directory: str, day: str, candidates: Sequence[Candidate], now: float) -> list[str]:
    """A storage unit (one transaction) for candidates that closed on ``day``: keep those still at rest, read
    their rows, write them as a segment (fsynced, storage/archive_segments), index the segment and them, and
    delete their hot rows. Returns the ids archived.

    The rows are read, written to the file and deleted inside one transaction, so the file holds exactly what
    is deleted (a row that changed after ``due`` chose the order is simply in its record). A crash after the
    file is written and before the commit leaves the orders hot and an unindexed file nobody reads."""
    wanted = [c.order_id for c in candidates]
    still = {r[0] for chunk in chunks(wanted, CHUNK) for r in run(
        f"SELECT order_id FROM orders o WHERE order_id IN ({marks(len(chunk))}) AND {_AT_REST_SQL}",
        (*chunk, *_AT_REST_PARAMS)).fetchall()}
    kept = [c for c in candidates if c.order_id in still]
    if not kept:
        return []
    ids = [c.order_id for c in kept]
    records = collect(ids)
    segment = write_segment(Path(directory), day, [encode_record(records[oid]) for oid in ids])
    crash_point("archive_segment_written")
    try:
        ArchiveSegment.insert(segment_id=segment.segment_id, path=segment.path, directory=directory, day=day,
                              sha256=segment.sha256, size=segment.size, orders=len(segment.records),
                              created_at=now).execute()
        run_many('INSERT INTO archived_order (order_id, segment_id, "offset", length, sha256, state, pair_id, '
                 'user_id, closed_at, archived_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
                 [(c.order_id, segment.segment_id, offset, length, sha, c.state, c.pair_id, c.user_id, c.closed_at,
                   now) for c, (offset, length, sha) in zip(kept, segment.records)])
        _insert_listing(records[oid] for oid in ids)
        _delete_hot(ids)
    except BaseException:
        (Path(directory) / segment.path).unlink(missing_ok=True)   # never indexed: nobody would read it
        raise
    return ids


def _listing_row(record: dict) -> tuple | None:
    """(order_id, created_at, updated_at, state_reason) of a record's order row (None: a record without one)."""
    table = record["tables"].get(Order._meta.table_name)
    if not table or not table["rows"]:
        return None
    row = dict(zip(table["columns"], table["rows"][0]))
    return record["order_id"], row.get("created_at") or 0.0, row.get("updated_at"), row.get("state_reason") or ""


def _insert_listing(records: Iterable[dict]) -> None:
    run_many("INSERT INTO archived_order_listing (order_id, created_at, updated_at, state_reason) VALUES (?, ?, ?, ?) "
             "ON CONFLICT DO NOTHING", [r for r in map(_listing_row, records) if r is not None])


def unlisted(limit: int | None = None) -> list[ArchivedOrder]:
    """Archived orders without a listing row (archived before the listing table existed), by segment."""
    query = (ArchivedOrder.select().join(ArchivedOrderListing, pw.JOIN.LEFT_OUTER,
                                         on=(ArchivedOrderListing.order_id == ArchivedOrder.order_id))
             .where(ArchivedOrderListing.order_id.is_null()).order_by(ArchivedOrder.segment_id, ArchivedOrder.offset))
    return list(query.limit(limit) if limit else query)


def backfill_listing(directory: Path | None, *, write=None, batch: int = 5000) -> int:
    """List every archived order that has no listing row yet, from its record (read once per segment)."""
    write = write or in_transaction
    done = 0
    while entries := unlisted(batch):
        records = []
        for segment_id, group in _by_segment(entries).items():
            segment = ArchiveSegment.get_or_none(ArchiveSegment.segment_id == segment_id)
            try:
                records += _records_in(segment, group, directory) if segment is not None else []
            except ArchiveCorrupt:
                continue   # `archive verify` reports it; its orders stay unlisted until it is mended
        if not records:
            break
        write(_insert_listing, records)
        done += len(records)
        if len(records) < len(entries):
            break
    return done


def _records_in(segment: ArchiveSegment, entries: Sequence[ArchivedOrder], directory: Path | None) -> list[dict]:
    """The records of these entries of one segment, the whole file read and checked once (ArchiveCorrupt)."""
    where = _segment_path(segment, directory)
    data = read_segment(where, segment.sha256)
    return [record_at(data, e.offset, e.length, e.sha256, where) for e in entries]


def _by_segment(entries: Iterable[ArchivedOrder]) -> dict[str, list[ArchivedOrder]]:
    out: dict[str, list[ArchivedOrder]] = {}
    for e in entries:
        out.setdefault(e.segment_id, []).append(e)
    return out


def listed(*, state: str | None = None, pair_id: str | None = None, user_id: str | None = None,
           before: tuple[float, str] | None = None, limit: int = 50) -> list[tuple[float, str]]:
    """(created_at, order_id) of archived orders, newest first, filtered, strictly before ``before`` — from the
    index and listing tables only (an order list merges these with the hot orders)."""
    where, params = [], []
    for column, value in (("a.state", state), ("a.pair_id", pair_id), ("a.user_id", user_id)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if before is not None:
        where.append("(l.created_at < ? OR (l.created_at = ? AND l.order_id < ?))")
        params += [before[0], before[0], before[1]]
    sql = ("SELECT l.created_at, l.order_id FROM archived_order_listing l JOIN archived_order a "
           "ON a.order_id = l.order_id" + (" WHERE " + " AND ".join(where) if where else "")
           + f" ORDER BY l.created_at DESC, l.order_id DESC LIMIT {int(limit)}")
    return [(float(r[0]), r[1]) for r in run(sql, params).fetchall()]


def in_transaction(unit, *args):
    """Run a storage unit in a transaction of its own (the CLI; the service hands units to its writer)."""
    with database_proxy.atomic():
        return unit(*args)


def archive_due(directory: Path, retention: float, batch_size: int, *, now: float | None = None,
                write=in_transaction, max_orders: int | None = None) -> RunOutcome:
    """Move every finished order closed more than ``retention`` seconds ago (at most ``max_orders``)."""
    now = time.time() if now is None else now
    outcome = RunOutcome()
    directory.mkdir(parents=True, exist_ok=True)
    backfill_listing(directory, write=write)
    skip: set[str] = set()
    while max_orders is None or outcome.archived < max_orders:
        limit = batch_size if max_orders is None else min(batch_size, max_orders - outcome.archived)
        batch = [c for c in due(now - retention, limit + len(skip)) if c.order_id not in skip][:limit]
        if not batch:
            break
        by_day: dict[str, list[Candidate]] = {}
        for c in batch:
            by_day.setdefault(c.day, []).append(c)
        for day, candidates in by_day.items():
            archived = write(archive_segment, str(directory), day, candidates, now)
            crash_point("archive_committed")
            outcome.segments += bool(archived)
            outcome.archived += len(archived)
            changed = {c.order_id for c in candidates} - set(archived)
            skip |= changed
            outcome.changed += sorted(changed)
    return outcome


# ---------------------------------------------------------------- reading

def _segment_path(segment: ArchiveSegment, directory: Path | None) -> Path:
    return Path(directory or segment.directory) / segment.path


def load_record(entry: ArchivedOrder, directory: Path | None = None) -> dict:
    """An archived order's record, checked against its sha256 (ArchiveCorrupt if it does not match)."""
    segment = ArchiveSegment.get_or_none(ArchiveSegment.segment_id == entry.segment_id)
    if segment is None:
        raise ArchiveCorrupt(f"order {entry.order_id}: its segment {entry.segment_id} is not in the index")
    record = read_record(_segment_path(segment, directory), entry.offset, entry.length, entry.sha256)
    if record.get("order_id") != entry.order_id:
        raise ArchiveCorrupt(f"order {entry.order_id}: the record at its offset is order {record.get('order_id')}")
    return record


def is_hot(order_id: str) -> bool:
    return run("SELECT 1 FROM orders WHERE order_id = ?", (order_id,)).fetchone() is not None


def counts() -> dict[str, int]:
    """Rows per hot table of ORDER_TABLES, and the index's size."""
    out = {m._meta.table_name: run(f"SELECT COUNT(*) FROM {m._meta.table_name}").fetchone()[0] for m in ORDER_TABLES}
    out["archived_order"] = ArchivedOrder.select().count()
    out["archived_order_listing"] = ArchivedOrderListing.select().count()
    out["archive_segment"] = ArchiveSegment.select().count()
    return out


# ---------------------------------------------------------------- verify and restore

@dataclass
class VerifyOutcome:
    segments: int = 0
    orders: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def verify(directory: Path | None) -> VerifyOutcome:
    """Re-read every segment: its sha256, every indexed record's sha256 and order id; no archived order is
    also hot. Files the index does not name are notes (left by an interrupted run: safe to delete)."""
    outcome = VerifyOutcome()
    entries = _by_segment(ArchivedOrder.select().order_by(ArchivedOrder.segment_id, ArchivedOrder.offset))
    known: dict[Path, set[str]] = {}
    for segment in ArchiveSegment.select().order_by(ArchiveSegment.day, ArchiveSegment.path):
        outcome.segments += 1
        where = _segment_path(segment, directory)
        known.setdefault(where.parents[1], set()).add(segment.path)
        indexed = entries.pop(segment.segment_id, [])
        try:
            data = read_segment(where, segment.sha256)
        except ArchiveCorrupt as exc:
            outcome.problems.append(f"segment {segment.path}: {exc}")
            data = None   # then each record is checked on its own: which orders are damaged
        for entry in indexed:
            outcome.orders += 1
            try:
                record = (read_record(where, entry.offset, entry.length, entry.sha256) if data is None
                          else record_at(data, entry.offset, entry.length, entry.sha256, where))
                if record["order_id"] != entry.order_id:
                    outcome.problems.append(f"order {entry.order_id}: its record names another order")
            except ArchiveCorrupt as exc:
                outcome.problems.append(f"order {entry.order_id}: {exc}")
    for segment_id, lost in entries.items():
        outcome.problems += [f"order {e.order_id}: its segment {segment_id} is not in the index" for e in lost]
    archived = [r[0] for r in run("SELECT a.order_id FROM archived_order a JOIN orders o ON o.order_id = a.order_id")]
    outcome.problems += [f"order {oid}: archived and also hot" for oid in archived]
    waiting = len(unlisted())
    if waiting:
        outcome.notes.append(f"{waiting} archived orders are not in order lists yet (archived before the listing "
                             "table existed): the next `archive run` lists them")
    for base in {*known, *([directory] if directory else [])}:
        for name in segment_files(base):
            if name not in known.get(base, set()):
                outcome.notes.append(f"{base / name}: not in the index (an interrupted run or restore left it): "
                                     "never read, safe to delete")
    return outcome


@dataclass
class RestoreOutcome:
    restored: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    files_removed: int = 0


def restore_segment_unit(segment_id: str, records: list[dict]) -> None:
    """A storage unit: put the records' rows back into the hot tables and drop them from the index (and the
    segment's index row once no order points at it)."""
    for record in records:
        insert_record(record)
    ids = [r["order_id"] for r in records]
    for chunk in chunks(ids, CHUNK):
        ArchivedOrder.delete().where(ArchivedOrder.order_id.in_(list(chunk))).execute()
        ArchivedOrderListing.delete().where(ArchivedOrderListing.order_id.in_(list(chunk))).execute()
    if not ArchivedOrder.select().where(ArchivedOrder.segment_id == segment_id).exists():
        ArchiveSegment.delete().where(ArchiveSegment.segment_id == segment_id).execute()


def restore(order_ids: Sequence[str] | None, directory: Path | None, *, write=in_transaction) -> RestoreOutcome:
    """Put archived orders (``None``: all) back into the hot tables, one transaction per segment."""
    outcome = RestoreOutcome()
    query = ArchivedOrder.select().order_by(ArchivedOrder.segment_id, ArchivedOrder.offset)
    if order_ids is not None:
        wanted = list(dict.fromkeys(order_ids))
        found = set(archived_entries(wanted))
        outcome.problems += [f"order {oid}: not archived" for oid in wanted if oid not in found]
        query = query.where(ArchivedOrder.order_id.in_(list(found))) if len(found) <= CHUNK else query
        wanted_set = found
    else:
        wanted_set = None
    by_segment = _by_segment(e for e in query if wanted_set is None or e.order_id in wanted_set)
    for segment_id, entries in by_segment.items():
        segment = ArchiveSegment.get_or_none(ArchiveSegment.segment_id == segment_id)
        if segment is None:
            outcome.problems += [f"order {e.order_id}: its segment is not in the index" for e in entries]
            continue
        where = _segment_path(segment, directory)
        try:
            records = _records_in(segment, entries, directory)
        except ArchiveCorrupt as exc:
            outcome.problems.append(f"segment {segment.path}: {exc}; its orders stay archived")
            continue
        write(restore_segment_unit, segment_id, records)
        outcome.restored += [e.order_id for e in entries]
        if ArchiveSegment.get_or_none(ArchiveSegment.segment_id == segment_id) is None:
            where.unlink(missing_ok=True)   # a crash before this leaves an unindexed file: verify notes it
            outcome.files_removed += 1
    return outcome
