"""The audit replay command (shared by the CLI and any other channel): every order — hot or archived — or
one, replayed from its raw snapshots (storage/replay_facts.py → domain/replay.py). Reads only; needs only the
database."""
from __future__ import annotations

from storage import replay_facts
from storage.archive import is_hot
from storage.archive_models import archived_entries


def order_problem(order_id: str) -> str | None:
    if is_hot(order_id) or order_id in archived_entries([order_id]):
        return None
    return f"no order {order_id}"


def run(config, order_id: str | None = None) -> replay_facts.AuditOutcome:
    directory = config.archive.directory if getattr(config, "archive", None) is not None else None
    ids = [order_id] if order_id else replay_facts.audited_ids()
    return replay_facts.audit(config, ids, directory)
