"""Cold storage commands, shared by the CLI (and any other channel): run, verify, restore.

They need only the database and the ``[archive]`` table (storage/archive.py does the moving). ``run``
moves what is older than the retention; ``verify`` re-reads every segment; ``restore`` puts orders back.
"""
from __future__ import annotations

from storage import archive


def settings_problem(config) -> str | None:
    """Why these commands cannot run with this config (None: they can)."""
    if getattr(config, "archive", None) is None:
        return (f"{config.source}: archive: no [archive] table: add one (retention = \"30d\") to archive "
                "finished orders")
    return None


def run(config, *, now: float | None = None, max_orders: int | None = None) -> archive.RunOutcome:
    settings = config.archive
    return archive.archive_due(settings.directory, settings.retention, settings.batch_size, now=now,
                               max_orders=max_orders)


def verify(config) -> archive.VerifyOutcome:
    return archive.verify(config.archive.directory)


def restore(config, order_ids: list[str] | None) -> archive.RestoreOutcome:
    """``order_ids`` None: every archived order."""
    return archive.restore(order_ids, config.archive.directory)


def status(config) -> dict:
    """Rows per hot table and the index's size (what `archive run` prints after moving)."""
    return archive.counts()
