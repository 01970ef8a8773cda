"""The archive's index: which segment files exist (with their sha256) and where each archived order is.

An order id is either hot (a row in ``orders``) or here, never both: ``storage.archive`` writes these rows
and deletes the hot ones in one transaction. Segment paths are relative to the archive directory (the
configured one; ``directory`` remembers where it was when written, for readers without a config)."""
from __future__ import annotations

from collections.abc import Iterable

import peewee as pw

from storage.models import BaseModel
from storage.sql import marks, run


class ArchiveSegment(BaseModel):
    """One segment file: msgpack records of finished orders that closed on one UTC day."""
    segment_id = pw.CharField(primary_key=True)
    path = pw.CharField(unique=True)          # relative to the archive directory: YYYY-MM/YYYY-MM-DD-<id>.mmarc
    directory = pw.TextField()                # the archive directory it was written to (absolute)
    day = pw.CharField(index=True)            # closing day (UTC) of its orders
    sha256 = pw.CharField()                   # of the whole file
    size = pw.BigIntegerField()
    orders = pw.IntegerField()                # records written (some may have stayed hot: see ArchivedOrder)
    created_at = pw.FloatField()

    class Meta:
        table_name = "archive_segment"


class ArchivedOrder(BaseModel):
    """One archived order: its record's place in its segment and the record's own sha256 (a read of one
    order checks its record; ``archive verify`` and restore check the whole file)."""
    order_id = pw.CharField(primary_key=True)
    segment_id = pw.CharField(index=True)
    offset = pw.BigIntegerField()
    length = pw.IntegerField()
    sha256 = pw.CharField()
    state = pw.CharField()
    pair_id = pw.CharField()
    user_id = pw.CharField(null=True)
    closed_at = pw.FloatField()
    archived_at = pw.FloatField()

    class Meta:
        table_name = "archived_order"


class ArchivedOrderListing(BaseModel):
    """What an order list needs of an archived order besides its index row: the columns it sorts and pages
    on (created_at, order_id) and shows (updated_at, reason), so listing, filtering and paging read these
    two tables and never a segment. A table of its own, not columns of ``archived_order``: a database at
    this schema version gains it through ``ensure_schema`` (missing tables are created) with no upgrade
    step; orders archived before it existed get their rows at the next ``archive run`` (``backfill_listing``)."""
    order_id = pw.CharField(primary_key=True)
    created_at = pw.FloatField()
    updated_at = pw.FloatField(null=True)
    state_reason = pw.TextField(default="")

    class Meta:
        table_name = "archived_order_listing"
        indexes = ((("created_at", "order_id"), False),)


ARCHIVE_MODELS = [ArchiveSegment, ArchivedOrder, ArchivedOrderListing]

_ENTRY_COLUMNS = [f.column_name for f in ArchivedOrder._meta.sorted_fields]
# quoted: "offset" is a reserved word on PostgreSQL
_ENTRY_SELECT = (f"SELECT {', '.join(chr(34) + c + chr(34) for c in _ENTRY_COLUMNS)} "
                 f"FROM {ArchivedOrder._meta.table_name} WHERE order_id IN ")
_IDS_PER_QUERY = 500   # ids per IN (…): well under SQLite's and PostgreSQL's parameter limits


def archived_entries(order_ids: Iterable[str]) -> dict[str, ArchivedOrder]:
    """THE answer to "is this order archived?", for one id or many: ``{order_id: its index row}`` for those
    of ``order_ids`` in cold storage (absent: hot or unknown). One plain-SQL statement per 500 ids, so the
    ingest unit asks it for a whole page and a reader for one order alike; it lives here (the index's own
    module, which imports nothing but the models) so storage.repo and storage.ingest can use it without an
    import cycle through storage.archive."""
    ids = list(dict.fromkeys(order_ids))
    found: dict[str, ArchivedOrder] = {}
    for start in range(0, len(ids), _IDS_PER_QUERY):
        chunk = ids[start:start + _IDS_PER_QUERY]
        for row in run(_ENTRY_SELECT + f"({marks(len(chunk))})", chunk).fetchall():
            found[row[0]] = ArchivedOrder(**dict(zip(_ENTRY_COLUMNS, row)))
    return found
