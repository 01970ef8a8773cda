"""Reading an archived order with the same code that reads a hot one.

``order_source(order_id)``: if the order is not hot but archived, its record (checked against its sha256)
is loaded into a scratch in-memory SQLite database with mmflow's schema, and this greenlet's models read that
database until the block ends (storage.models.ModelDatabase). Every read the CLI and the API make of one
order — show, statement, detail, fills, owner — therefore works unchanged on archived orders, and other
greenlets never notice. Nothing may be written inside the block (it would land in the scratch copy).
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import peewee as pw

from storage.models import database_proxy

# Emptied scratch databases kept for the next read: creating mmflow's 30-odd tables is most of a read's cost.
# A greenlet takes one for itself (never shared while in use) and gives it back empty. One connection per
# database, not one per greenlet (thread_safe=False): an in-memory database lives in its connection.
_SPARE: list[pw.SqliteDatabase] = []
SPARE_COPIES = 4


@contextmanager
def order_source(order_id: str, directory: Path | None = None):
    """Read ``order_id`` from the hot tables or, when archived there only, from its archive record (the
    block gets its ArchivedOrder index row; None when hot or unknown). ArchiveCorrupt when the record does
    not match its checksum."""
    from storage.archive import clear_records, insert_record, is_hot, load_record
    from storage.archive_models import archived_entries
    from storage.db import all_models

    if getattr(database_proxy._scratch, "db", None) is not None or is_hot(order_id):
        yield None
        return
    entry = archived_entries([order_id]).get(order_id)
    if entry is None:
        yield None
        return
    record = load_record(entry, directory)
    spare = _SPARE.pop() if _SPARE else None
    scratch = spare or pw.SqliteDatabase(":memory:", thread_safe=False, check_same_thread=False)
    database_proxy.use_scratch(scratch)
    try:
        if spare is None:
            scratch.create_tables(all_models())
        insert_record(record)
        yield entry
    finally:
        kept = False
        try:
            clear_records()
            if len(_SPARE) < SPARE_COPIES:
                _SPARE.append(scratch)
                kept = True
        finally:
            database_proxy.use_scratch(None)
            if not kept:
                scratch.close()
