"""Where the live stream's events come from: indexed "newer than the last id seen" reads of the database.

Every source answers two questions, both with plain SQL on an indexed integer key:

- ``latest()``: the cursor at the current end of its table (the feed starts there: no history replay);
- ``read_after(cursor, limit)``: the next rows after ``cursor``, oldest first, as events without a
  sequence number, and the new cursor.

The sources (``default_sources()``), in the order the feed reads them each round:

- ``order_state``: ``order_state_change`` by its id — one order's changes come in history order;
- ``fill``: exchange fills. ``exchange_fill`` is keyed by text (no increasing key, and no index on
  ``recorded_at``), but every fill writes its order's ledger entries in the same unit with the ref
  ``fill:<fill key>:base`` (storage/exchange_repo.apply_fill), and ``ledger_entry`` has an increasing
  integer id: the cursor is that id, the fill is then read by its primary key;
- ``alert``: ``alert`` by id for new alerts; an alert that is opened again (``actors/outage.open_alert``,
  a second halt: same row, new ``created_at``) is found by a scan of ``created_at`` at most every
  ``reopen_every`` seconds — the table holds one row per (kind, subject), so it stays small.

- ``kpi``: ``kpi_sample`` by id — one KPI sample of an order (storage/kpi_models.py).

Another table with an integer ``id`` and an ``order_id`` column becomes a source with one line,
``model_source(kind, Model)``, added to ``default_sources()``.

Ids become visible in increasing order because every write of the service goes through the one writer
(one transaction at a time, storage/writer.py); a "greater than" tail therefore never skips a row.
Amounts are stored as decimal text and stay strings in the events.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import peewee as pw

from storage.exchange_models import Fill
from storage.models import Alert, LedgerEntry, Order, OrderStateChange
from storage.sql import marks, run

FILL_REF_PREFIX = "fill:"
FILL_REF_BASE_LEG = ":base"   # one ledger entry per fill always has this leg (the others may be absent)


@dataclass(frozen=True)
class Event:
    """One thing that happened, as the stream sends it.

    kind: order_state | fill | alert | kpi (hello and bye are messages of the connection, not events).
    seq: the feed's running number (0 until the feed publishes it); order_id/user_id: whose it is
    (None for alerts, and user_id None for an order nobody owns yet). data: JSON-ready fields."""
    kind: str
    seq: int
    order_id: str | None
    user_id: str | None
    data: dict[str, Any] = field(default_factory=dict)

    def message(self) -> dict[str, Any]:
        """The JSON object sent to clients: ``{"type", "seq", "order_id", "user_id", **data}``."""
        return {"type": self.kind, "seq": self.seq, "order_id": self.order_id, "user_id": self.user_id,
                **self.data}


class EventSource(Protocol):
    kind: str

    def latest(self) -> Any:
        """The cursor at the current end of the source."""

    def read_after(self, cursor: Any, limit: int) -> tuple[list[Event], Any]:
        """At most ``limit`` events after ``cursor`` (oldest first, seq 0) and the cursor after them."""


def json_value(value: Any) -> Any:
    """A column value as JSON wants it: Decimals as exact strings, everything else unchanged."""
    return format(value, "f") if isinstance(value, Decimal) else value


def _max_id(table: str, column: str = "id") -> int:
    row = run(f"SELECT MAX({column}) FROM {table}").fetchone()
    return int(row[0] or 0)


class TableSource:
    """Rows of one table with an increasing integer primary key, each one event of ``kind``.

    The event's data is every column but the key column of the order (``order_column``), converted by
    the model's fields (DecimalText → Decimal → string, booleans as booleans); the owner comes from
    ``orders.user_id`` (LEFT JOIN: an order without an owner yet gives user_id None)."""

    def __init__(self, kind: str, model, *, order_column: str | None = "order_id") -> None:
        meta = model._meta
        key = meta.primary_key
        if not isinstance(key, (pw.AutoField, pw.BigAutoField)):
            raise TypeError(f"{model.__name__}: a stream source needs an integer auto-increment key")
        self.kind = kind
        self.table = meta.table_name
        self.key = key.column_name
        self.key_name = key.name
        self.order_column = order_column
        self.fields = [f for f in meta.sorted_fields if f.column_name != order_column]
        columns = ", ".join(f"t.{f.column_name}" for f in self.fields)
        if order_column is None:
            self._select = f"SELECT {columns}, NULL, NULL FROM {self.table} t"
        else:
            self._select = (f"SELECT {columns}, t.{order_column}, o.user_id FROM {self.table} t "
                            f"LEFT JOIN {Order._meta.table_name} o ON o.order_id = t.{order_column}")

    def latest(self) -> int:
        return _max_id(self.table, self.key)

    def read_after(self, cursor: int, limit: int) -> tuple[list[Event], int]:
        rows = run(f"{self._select} WHERE t.{self.key} > ? ORDER BY t.{self.key} LIMIT ?",
                    (cursor, limit)).fetchall()
        events = [self._event(row) for row in rows]
        if events:
            cursor = events[-1].data[self.key_name]
        return events, cursor

    def _event(self, row: Sequence) -> Event:
        n = len(self.fields)
        data = {f.name: json_value(f.python_value(value)) for f, value in zip(self.fields, row[:n])}
        return Event(self.kind, 0, row[n], row[n + 1], data)


class AlertSource(TableSource):
    """New alerts by id, plus alerts opened again (same row, newer ``created_at``), with ``reopened``."""

    def __init__(self, *, reopen_every: float = 2.0, clock=time.monotonic) -> None:
        super().__init__("alert", Alert, order_column=None)
        self.reopen_every = reopen_every
        self._clock = clock
        self._next_scan = 0.0

    def latest(self) -> tuple[int, float]:
        row = run(f"SELECT MAX({self.key}), MAX(created_at) FROM {self.table}").fetchone()
        return int(row[0] or 0), float(row[1] or 0.0)

    def read_after(self, cursor: tuple[int, float], limit: int) -> tuple[list[Event], tuple[int, float]]:
        last_id, newest = cursor
        events, last_id = super().read_after(last_id, limit)
        for event in events:
            event.data["reopened"] = False
        now = self._clock()
        if now >= self._next_scan and len(events) < limit:
            self._next_scan = now + self.reopen_every
            rows = run(f"{self._select} WHERE t.created_at > ? AND t.{self.key} <= ? "
                        f"ORDER BY t.created_at, t.{self.key} LIMIT ?",
                        (newest, cursor[0], limit - len(events))).fetchall()
            for row in rows:
                event = self._event(row)
                event.data["reopened"] = True
                events.append(event)
        for event in events:
            newest = max(newest, float(event.data["created_at"]))
        return events, (last_id, newest)


class FillSource:
    """Exchange fills, tailed through their ledger entries' increasing id (see the module docstring)."""
    kind = "fill"

    def __init__(self) -> None:
        self.ledger = LedgerEntry._meta.table_name
        meta = Fill._meta
        self.fields = [f for f in meta.sorted_fields if f.column_name != "order_id"]
        columns = ", ".join(f"f.{f.column_name}" for f in self.fields)
        self._select = (f"SELECT {columns}, f.order_id, o.user_id FROM {meta.table_name} f "
                        f"LEFT JOIN {Order._meta.table_name} o ON o.order_id = f.order_id")

    def latest(self) -> int:
        return _max_id(self.ledger)

    def read_after(self, cursor: int, limit: int) -> tuple[list[Event], int]:
        # a fill writes two or three entries: read enough of them for `limit` fills
        entries = run(f"SELECT id, ref FROM {self.ledger} WHERE id > ? ORDER BY id LIMIT ?",
                       (cursor, limit * 3)).fetchall()
        keys = [ref[len(FILL_REF_PREFIX):-len(FILL_REF_BASE_LEG)] for _, ref in entries
                if ref.startswith(FILL_REF_PREFIX) and ref.endswith(FILL_REF_BASE_LEG)][:limit]
        if not entries:
            return [], cursor
        if len(keys) == limit:   # stop after the entry of the last fill taken; the rest comes next round
            last_ref = f"{FILL_REF_PREFIX}{keys[-1]}{FILL_REF_BASE_LEG}"
            cursor = next(entry_id for entry_id, ref in entries if ref == last_ref)
        else:
            cursor = entries[-1][0]
        if not keys:
            return [], cursor
        rows = {row[0]: row for row in run(f"{self._select} WHERE f.fill_key IN ({marks(len(keys))})",
                                            keys).fetchall()}
        n = len(self.fields)
        events = []
        for key in keys:   # ledger order = the order the fills were recorded in
            row = rows.get(key)
            if row is None:
                continue
            data = {f.name: json_value(f.python_value(value)) for f, value in zip(self.fields, row[:n])}
            events.append(Event(self.kind, 0, row[n], row[n + 1], data))
        return events, cursor


def model_source(kind: str, model, *, order_column: str | None = "order_id") -> TableSource:
    """A source of ``kind`` events from a peewee model with an integer auto-increment key and an order
    column (for example ``model_source("kpi", KpiSample)``)."""
    return TableSource(kind, model, order_column=order_column)


def default_sources() -> list[EventSource]:
    """Order state changes, fills, alerts and KPI samples, in the order the feed reads them each round."""
    from storage.kpi_models import KpiSample
    return [model_source("order_state", OrderStateChange), FillSource(), AlertSource(), model_source("kpi", KpiSample)]

