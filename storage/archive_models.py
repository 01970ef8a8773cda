"""The archive's index: which segment files exist (with their sha256) and where each archived order is.

An order id is either hot (a row in ``orders``) or here, never both: ``storage.archive`` writes these rows
and deletes the hot ones in one transaction. Segment paths are relative to the archive directory (the
configured one; ``directory`` remembers where it was when written, for readers without a config)."""
from __future__ import annotations

import peewee as pw

from storage.models import BaseModel


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


ARCHIVE_MODELS = [ArchiveSegment, ArchivedOrder]
