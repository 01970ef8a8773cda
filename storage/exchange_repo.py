"""Units and reads of the orders DB (exchange orders, their exchange-id mapping, fills).

Units run inside the writer's transaction (storage/writer.py): DB statements only,
no I/O, no yields. Hot paths (reserve, transitions, fills) use plain SQL.

The protocol of one exchange order:
  1. `reserve_client_order` — the row is written INITIALIZED with its deterministic
     client id, and its funds are locked, before anything is sent;
  2. a local refusal before sending → `transition(cid, DENIED)`;
     `mark_submitted` just before (or after an ambiguous failure of) the request;
  3. the exchange's answer → `map_exchange_id(cid, exchange_order_id, ACCEPTED…)`,
     a definitive refusal → `transition(cid, REJECTED, error=…)`; a timeout or a
     transport error leaves it in flight for reconciliation, never "rejected";
  4. trades → `apply_fill` (deduplicated; moves filled, state and the order's ledger);
     status reports → `apply_status`; an explicit not-found → `resolve_not_found`.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

from domain.exchange_orders import (FINAL_STATES, OPEN_STATES, SIDES, ZERO, DbOrder, ExOrderState,
                                    IllegalExTransition, TradeFill, after_fill, apply_exchange_status,
                                    client_order_id, fill_key, merge_report, path, split_symbol)
from domain.exchange_orders import resolve_not_found as _not_found_target
from domain.records import copied
from storage.exchange_models import ExchangeOrder, Fill, OrderSequence
from storage.kpi_models import KpiQuoteSpan
from storage.models import Alert, LedgerEntry, database_proxy
from storage.repo import ledger_balances  # the ledger journal's one reader
from storage.sql import adapt, chunks, marks, run, run_many

X = ExOrderState
_ORDERS = ExchangeOrder._meta.table_name
_FILLS = Fill._meta.table_name
_SEQ = OrderSequence._meta.table_name
_LEDGER = LedgerEntry._meta.table_name
_ALERTS = Alert._meta.table_name
_SPANS = KpiQuoteSpan._meta.table_name


class ExchangeOrderError(RuntimeError):
    pass


class UnknownExchangeOrder(ExchangeOrderError, LookupError):
    pass


class MappingConflict(ExchangeOrderError):
    """An exchange order id already mapped elsewhere, or a second id for one order."""


class UnknownOrderFill(ExchangeOrderError, LookupError):
    """A trade for an order the DB cannot find (yet): keep it and apply it again later."""


class FillMismatch(ExchangeOrderError, ValueError):
    """A trade that contradicts its order (account, symbol, side, exchange id, or an overfill)."""


def _text(value: Decimal) -> str:
    if not isinstance(value, Decimal):
        raise TypeError(f"refusing to store {value!r} ({type(value).__name__}); use Decimal")
    return format(value, "f")


def _positive(value: object, name: str) -> Decimal:
    if isinstance(value, float) or not isinstance(value, Decimal):
        raise TypeError(f"{name}: {value!r} is a {type(value).__name__}, expected Decimal")
    if not value.is_finite() or value <= 0:
        raise ValueError(f"{name}: {value} must be a finite amount > 0")
    return value


_COLUMNS = ("client_order_id", "order_id", "exchange_account", "symbol", "side", "price", "amount", "filled",
            "state", "exchange_order_id", "level", "created_at", "submitted_at", "updated_at", "last_error", "hanging")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM {_ORDERS}"


ROW_COLUMNS = _COLUMNS
_STATE_OF = {s.value: s for s in ExOrderState}


def _view(row: Sequence) -> DbOrder:
    # positional, in _COLUMNS' order: the update stream views every open order of an account each round
    (cid, order_id, account, symbol, side, price, amount, filled, state, exchange_order_id, level, created_at,
     submitted_at, updated_at, last_error, hanging) = row
    return DbOrder(cid, order_id, account, symbol, side, Decimal(price), Decimal(amount), Decimal(filled),
                   _STATE_OF.get(state) or ExOrderState(state), exchange_order_id, level, created_at, submitted_at,
                   updated_at, last_error, bool(hanging))


view = _view   # a raw row of rows_in_states as a DbOrder


def _load(cid: str) -> DbOrder | None:
    row = run(f"{_SELECT} WHERE client_order_id = ?", (cid,)).fetchone()
    return None if row is None else _view(row)


def _require(cid: str) -> DbOrder:
    order = _load(cid)
    if order is None:
        raise UnknownExchangeOrder(f"exchange order {cid!r} is not in the orders DB")
    return order


# ---------------------------------------------------------------- units

def reserve_client_order(order_id: str, account: str, symbol: str, side: str, price: Decimal, amount: Decimal,
                         level: int, now: float, submitted: bool = False) -> str:
    """Take the order's next sequence number and write the exchange order INITIALIZED. Returns its client id.

    Runs before anything is sent: once the caller has the id, the row is durable and its
    funds are locked (`locked_by_open_orders`). Sequence numbers are never reused.
    ``submitted``: written SUBMITTED at once (``submitted_at`` = now) — the row ``mark_submitted`` would leave
    in the same unit, without reading it back."""
    return _reserve_many(order_id, account, symbol, [(side, price, amount, level)], now, submitted)[0]


def _reserve_many(order_id: str, account: str, symbol: str, wanted: Sequence[tuple[str, Decimal, Decimal, int]],
                  now: float, submitted: bool) -> list[str]:
    """``reserve_client_order`` for several (side, price, amount, level) at once: one sequence read and write, one
    insert statement for all rows. Client ids in the order given."""
    if not account:
        raise ValueError("exchange account is required")
    split_symbol(symbol)
    for side, price, amount, level in wanted:
        if side not in SIDES:
            raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")
        _positive(price, "price")
        _positive(amount, "amount")
        if isinstance(level, bool) or not isinstance(level, int) or level < 0:
            raise ValueError(f"level must be an int >= 0, got {level!r}")
    if not wanted:
        return []
    # the sequence taken and moved on in one statement (RETURNING: SQLite >= 3.35, PostgreSQL)
    taken = run(f"UPDATE {_SEQ} SET next_seq = next_seq + ? WHERE order_id = ? RETURNING next_seq",
                (len(wanted), order_id)).fetchall()
    if taken:
        seq = int(taken[0][0]) - len(wanted)
    else:
        seq = 1
        run(f"INSERT INTO {_SEQ} (order_id, next_seq) VALUES (?, ?)", (order_id, seq + len(wanted)))
    state = (X.SUBMITTED if submitted else X.INITIALIZED).value
    cids = [client_order_id(order_id, seq + i) for i in range(len(wanted))]
    rows = [(cid, order_id, account, symbol, side, _text(price), _text(amount), "0", state, level, now,
             now if submitted else None, now) for cid, (side, price, amount, level) in zip(cids, wanted)]
    text = (f"INSERT INTO {_ORDERS} (client_order_id, order_id, exchange_account, symbol, side, price, amount, "
            f"filled, state, level, created_at, submitted_at, updated_at) "
            f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    if len(rows) == 1:
        run(text, rows[0])
    else:
        run_many(text, rows)
    return cids


class _AtOnce:
    """Where the transitions below write: at once, one statement each (the single-order units). ``_Planned``
    plans them against rows read once and writes them together instead."""

    def update(self, order: DbOrder, sets: dict) -> None:
        run(f"UPDATE {_ORDERS} SET {', '.join(f'{k} = ?' for k in sets)} WHERE client_order_id = ?",
            (*sets.values(), order.client_order_id))

    def acked(self, order: DbOrder, now: float) -> None:
        run(f"INSERT INTO {_SPANS} (client_order_id, order_id, acked_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            (order.client_order_id, order.order_id, now))

    def closed(self, order: DbOrder, now: float) -> None:
        run(f"UPDATE {_SPANS} SET closed_at = ? WHERE client_order_id = ? AND closed_at IS NULL",
            (now, order.client_order_id))

    def mapped_elsewhere(self, order: DbOrder, exchange_order_id: str) -> str | None:
        other = run(f"SELECT client_order_id FROM {_ORDERS} WHERE exchange_account = ? AND symbol = ? AND "
                    f"exchange_order_id = ? AND client_order_id <> ?",
                    (order.exchange_account, order.symbol, exchange_order_id, order.client_order_id)).fetchone()
        return None if other is None else other[0]

    def reported_filled(self, order: DbOrder) -> Decimal | None:
        row = run(f"SELECT reported_filled FROM {_ORDERS} WHERE client_order_id = ?",
                  (order.client_order_id,)).fetchone()
        return None if row is None or row[0] is None else Decimal(row[0])


_AT_ONCE = _AtOnce()


def _check_mapping(order: DbOrder, exchange_order_id: str, rows: _AtOnce = _AT_ONCE) -> None:
    if not exchange_order_id:
        raise ValueError(f"exchange order {order.client_order_id}: empty exchange order id")
    if order.exchange_order_id is not None and order.exchange_order_id != exchange_order_id:
        raise MappingConflict(f"exchange order {order.client_order_id} is already mapped to "
                              f"{order.exchange_order_id}, refusing to map it to {exchange_order_id}")
    other = rows.mapped_elsewhere(order, exchange_order_id)
    if other is not None:
        raise MappingConflict(f"exchange order id {exchange_order_id} ({order.exchange_account} {order.symbol}) "
                              f"is already mapped to {other}, refusing to map it to {order.client_order_id}")


def _move(order: DbOrder, target: ExOrderState, now: float, error: str | None = None,
          extra: dict | None = None, rows: _AtOnce = _AT_ONCE) -> ExOrderState:
    """Write `target` after checking the route to it; submitted_at is stamped when it leaves INITIALIZED."""
    path(order.state, target, order.client_order_id)   # raises IllegalExTransition
    sets = {"state": target.value, "updated_at": now}
    if error is not None:
        sets["last_error"] = error
    if order.state is X.INITIALIZED and target is not X.DENIED and order.submitted_at is None:
        sets["submitted_at"] = now       # whatever it moves to (but DENIED), it went out
    sets.update(extra or {})
    rows.update(order, sets)
    _note_quote_span(order, target, now, rows)
    return target


def _note_quote_span(order: DbOrder, target: ExOrderState, now: float, rows: _AtOnce = _AT_ONCE) -> None:
    """KPI uptime needs when the order rested on the book: its first acknowledgement and its first final
    state (updated_at moves on with late fills and reports). Same commit as the state change."""
    if target in (X.ACCEPTED, X.PARTIALLY_FILLED) and order.state in (X.INITIALIZED, X.SUBMITTED):
        rows.acked(order, now)
    elif target in FINAL_STATES and order.state not in FINAL_STATES:
        rows.closed(order, now)


def mark_submitted(cid: str, now: float) -> bool:
    """INITIALIZED → SUBMITTED. A no-op (False) once the order has moved on (its ack may come first).

    DENIED means "never sent": submitting a denied order raises."""
    order = _require(cid)
    if order.state is X.INITIALIZED:
        _move(order, X.SUBMITTED, now)
        return True
    if order.state is X.DENIED:
        raise IllegalExTransition(order.state, X.SUBMITTED, cid)
    return False


def map_exchange_id(cid: str, exchange_order_id: str, state: ExOrderState | str = X.ACCEPTED,
                    now: float | None = None) -> ExOrderState:
    """Record the exchange's order id for our client id, and the state reported with it.

    The mapping is unique both ways (one exchange id per order, per account and symbol);
    mapping the same pair again is a no-op. A reported state older than what is known
    (an ack after a fill or a cancel) does not move the order back. Returns the state."""
    return _map(_require(cid), exchange_order_id, ExOrderState(state), time.time() if now is None else now)


def _map(order: DbOrder, exchange_order_id: str, state: ExOrderState, now: float,
         rows: _AtOnce = _AT_ONCE) -> ExOrderState:
    _check_mapping(order, exchange_order_id, rows)
    target = merge_report(order.state, state)
    if target is order.state:
        if order.exchange_order_id is None:
            rows.update(order, {"exchange_order_id": exchange_order_id, "updated_at": now})
        return target
    return _move(order, target, now, extra={"exchange_order_id": exchange_order_id}, rows=rows)


def transition(cid: str, target: ExOrderState | str, now: float, error: str | None = None) -> ExOrderState:
    """Move an exchange order to `target`, enforcing the table (domain.exchange_orders.TRANSITIONS).

    Already there → no-op (the error, if given, is recorded). An INITIALIZED/SUBMITTED order
    may pass through the acknowledgements a later state proves (`path`); anything else
    illegal raises IllegalExTransition and nothing is written."""
    return _transition(_require(cid), ExOrderState(target), now, error)


def _transition(order: DbOrder, target: ExOrderState, now: float, error: str | None = None,
                rows: _AtOnce = _AT_ONCE) -> ExOrderState:
    if order.state is target:
        if error is not None:
            rows.update(order, {"last_error": error, "updated_at": now})
        return target
    return _move(order, target, now, error, rows=rows)


# ---------------------------------------------------------------- a strategy tick's requests, set-based

class Outcome(NamedTuple):
    """What the venue did with one order of a tick: ``report`` (``OrderInfo``-like: id, status, filled, amount)
    of an order it placed (``placed``) or cancelled; or ``error``: a new order it did not place (REJECTED)."""

    client_order_id: str
    report: Any = None
    placed: bool = False
    error: str | None = None


class _Planned(_AtOnce):
    """The writes of a set-based unit, planned against rows read once and written at the end: one statement per
    kind of change (``executemany``), not one per order. What each order's rows look like after the changes
    planned so far is kept, so the same checks as the single-order units apply (``_move``, ``_check_mapping``)."""

    def __init__(self, orders: dict[str, DbOrder], reported: dict[str, Decimal | None] | None = None,
                 mapped: dict[tuple[str, str, str], str] | None = None) -> None:
        self.current = orders
        self.reported = reported or {}
        self.mapped = mapped or {}
        self.updates: dict[str, dict] = {}
        self.acks: dict[str, tuple] = {}
        self.closes: dict[str, tuple] = {}
        self._saved: tuple | None = None

    def order(self, cid: str) -> DbOrder:
        order = self.current.get(cid)
        if order is None:
            raise UnknownExchangeOrder(f"exchange order {cid!r} is not in the orders DB")
        return order

    def update(self, order: DbOrder, sets: dict) -> None:
        cid = order.client_order_id
        self.updates.setdefault(cid, {}).update(sets)
        fields = {k: v for k, v in sets.items() if k in _VIEW_FIELDS}
        if "state" in fields:
            fields["state"] = ExOrderState(fields["state"])
        self.current[cid] = copied(self.current[cid], fields)   # a tick's units plan a few of these per order
        if "reported_filled" in sets:
            self.reported[cid] = Decimal(sets["reported_filled"])
        if sets.get("exchange_order_id"):
            self.mapped[(order.exchange_account, order.symbol, sets["exchange_order_id"])] = cid

    def acked(self, order: DbOrder, now: float) -> None:
        self.acks.setdefault(order.client_order_id, (order.client_order_id, order.order_id, now))

    def closed(self, order: DbOrder, now: float) -> None:
        self.closes.setdefault(order.client_order_id, (now, order.client_order_id))

    def mapped_elsewhere(self, order: DbOrder, exchange_order_id: str) -> str | None:
        other = self.mapped.get((order.exchange_account, order.symbol, exchange_order_id))
        return None if other in (None, order.client_order_id) else other

    def reported_filled(self, order: DbOrder) -> Decimal | None:
        return self.reported.get(order.client_order_id)

    def save(self) -> None:
        """Remember the plan so far: what ``restore`` goes back to when one order's changes fail halfway."""
        self._saved = (dict(self.current), dict(self.reported), dict(self.mapped),
                       {k: dict(v) for k, v in self.updates.items()}, dict(self.acks), dict(self.closes))

    def restore(self) -> None:
        self.current, self.reported, self.mapped, self.updates, self.acks, self.closes = self._saved

    def write(self) -> None:
        by_columns: dict[tuple[str, ...], list[tuple]] = {}
        for cid, sets in self.updates.items():
            by_columns.setdefault(tuple(sets), []).append((*sets.values(), cid))
        for columns, rows in by_columns.items():
            run_many(f"UPDATE {_ORDERS} SET {', '.join(f'{k} = ?' for k in columns)} WHERE client_order_id = ?",
                     rows)
        if self.acks:
            run_many(f"INSERT INTO {_SPANS} (client_order_id, order_id, acked_at) VALUES (?, ?, ?) "
                     f"ON CONFLICT DO NOTHING", list(self.acks.values()))
        if self.closes:
            run_many(f"UPDATE {_SPANS} SET closed_at = ? WHERE client_order_id = ? AND closed_at IS NULL",
                     list(self.closes.values()))


_VIEW_FIELDS = frozenset(f.name for f in dataclasses.fields(DbOrder))


def _load_many(cids: Iterable[str], reported: bool = False) -> tuple[dict[str, DbOrder], dict[str, Decimal | None]]:
    """The rows of these client ids (one statement), and their ``reported_filled`` if asked."""
    cids = sorted(set(cids))
    if not cids:
        return {}, {}
    extra = ", reported_filled" if reported else ""
    rows = run(f"SELECT {', '.join(_COLUMNS)}{extra} FROM {_ORDERS} WHERE client_order_id IN ({marks(len(cids))})",
               cids).fetchall()
    n = len(_COLUMNS)
    orders = {row[0]: _view(row[:n]) for row in rows}
    filled = {row[0]: (None if row[n] is None else Decimal(row[n])) for row in rows} if reported else {}
    return orders, filled


def reserve_tick(order_id: str, account: str, symbol: str,
                 replacements: Sequence[tuple[str, str, Decimal, Decimal, int]],
                 places: Sequence[tuple[str, Decimal, Decimal, int]], now: float,
                 ) -> tuple[list[tuple[str | None, ExOrderState | None]], list[str]]:
    """The intent of every request of one strategy tick, in ONE unit, before any is sent.

    ``replacements``: (old client id, side, price, amount, level) — one cancel-replace each: the new order
    reserved SUBMITTED with its deterministic client id and the old one marked PENDING_CANCEL, when the old one
    rests on the book (ACCEPTED / PARTIALLY_FILLED); else nothing is written for it. ``places``: (side, price,
    amount, level) — reserved SUBMITTED. Returns, per replacement, (new client id or None, the old order's state
    as read here — None when it is unknown), and the client ids of the places.

    A crash after this commit and before the answers are recorded leaves pending cancels and submitted orders,
    which the update stream resolves by client id."""
    olds, _ = _load_many(old for old, *_ in replacements)
    rows = _Planned(olds)
    results, wanted = [], []
    for old_cid, side, price, amount, level in replacements:
        old = olds.get(old_cid)
        if old is None or old.state not in (X.ACCEPTED, X.PARTIALLY_FILLED):
            results.append((None, None if old is None else old.state))
            continue
        _move(old, X.PENDING_CANCEL, now, rows=rows)
        results.append((len(wanted), old.state))
        wanted.append((side, price, amount, level))
    cids = _reserve_many(order_id, account, symbol, [*wanted, *places], now, submitted=True)
    rows.write()
    results = [(None if at is None else cids[at], state) for at, state in results]
    return results, cids[len(wanted):]


def record_tick(outcomes: Sequence[Outcome], now: float) -> list[str]:
    """What the venue did with one tick's requests, in ONE unit: the rows read once, every change planned with
    the single-order rules (an order placed: its exchange id and ACCEPTED, then whatever its report says; an order
    cancelled: its report's state; a new order not placed: REJECTED with the reason), written set-based.

    An outcome that cannot be applied (an illegal transition, a mapping conflict) changes nothing of its own and
    is returned as a problem: the others are written, and the update stream resolves that order."""
    orders, reported = _load_many((o.client_order_id for o in outcomes), reported=True)
    mapped: dict[tuple[str, str, str], str] = {}
    placed: dict[tuple[str, str], set[str]] = {}
    for o in outcomes:
        order = orders.get(o.client_order_id)
        if o.placed and order is not None and o.report is not None and o.report.id:
            placed.setdefault((order.exchange_account, order.symbol), set()).add(str(o.report.id))
    for (account, symbol), ids in placed.items():
        ids = sorted(ids)
        for cid, xid in run(f"SELECT client_order_id, exchange_order_id FROM {_ORDERS} WHERE exchange_account = ? "
                            f"AND symbol = ? AND exchange_order_id IN ({marks(len(ids))})",
                            (account, symbol, *ids)).fetchall():
            mapped[(account, symbol, xid)] = cid
    rows = _Planned(orders, reported, mapped)
    problems = []
    for o in outcomes:
        rows.save()
        try:
            order = rows.order(o.client_order_id)
            report = o.report
            if o.error is not None:
                _transition(order, X.REJECTED, now, o.error, rows)
            elif o.placed:
                _map(order, str(report.id), X.ACCEPTED, now, rows)
                filled = report.filled or ZERO
                if report.status and report.status != "open" or filled > 0:
                    _apply_status(rows.order(o.client_order_id), report.status or "open", filled,
                                  report.amount or ZERO, now, rows=rows)
            else:
                _apply_status(order, report.status or "canceled", report.filled or ZERO,
                              report.amount or order.amount, now, rows=rows)
        except (ExchangeOrderError, IllegalExTransition, ValueError) as exc:
            rows.restore()
            problems.append(f"{o.client_order_id}: {exc}")
    rows.write()
    return problems


def apply_status(cid: str, exchange_status: str, filled: Decimal, amount: Decimal, now: float,
                 exchange_order_id: str | None = None) -> ExOrderState:
    """A ccxt order status for one of our orders (fetch_order, websocket): the state it implies,
    without going back on later news (domain `apply_exchange_status`). Maps the exchange id if new."""
    return _apply_status(_require(cid), exchange_status, filled, amount, now, exchange_order_id)


def _apply_status(order: DbOrder, exchange_status: str, filled: Decimal, amount: Decimal, now: float,
                  exchange_order_id: str | None = None, rows: _AtOnce = _AT_ONCE) -> ExOrderState:
    target = apply_exchange_status(order.state, exchange_status, filled, amount)
    _note_reported_filled(order, filled, now, rows)
    extra = {}
    if exchange_order_id is not None and order.exchange_order_id != exchange_order_id:
        _check_mapping(order, exchange_order_id, rows)
        extra["exchange_order_id"] = exchange_order_id
    if target is order.state:
        if extra:
            rows.update(order, {"exchange_order_id": exchange_order_id, "updated_at": now})
        return target
    return _move(order, target, now, extra=extra, rows=rows)


def _note_reported_filled(order: DbOrder, filled: Decimal, now: float, rows: _AtOnce = _AT_ONCE) -> None:
    if filled is None or filled <= 0:
        return
    known = rows.reported_filled(order)
    if known is None or known < filled:
        rows.update(order, {"reported_filled": _text(filled), "updated_at": now})


def fills_owed(order_id: str) -> list[tuple[str, Decimal, Decimal]]:
    """(client id, filled by our fills, filled as the exchange reported) of this order's exchange orders whose
    trades have not all arrived."""
    rows = run(f"SELECT client_order_id, filled, reported_filled FROM {_ORDERS} WHERE order_id = ? AND "
                f"reported_filled IS NOT NULL", (order_id,)).fetchall()
    return [(cid, Decimal(f), Decimal(r)) for cid, f, r in rows if Decimal(r) > Decimal(f)]


def resolve_not_found(cid: str, now: float) -> ExOrderState | None:
    """The exchange explicitly answered "no such order" to a targeted lookup (never a transport error).

    Applies Nautilus's resolution (domain `resolve_not_found`); returns the new state, or
    None when it stays unresolved (PENDING_CANCEL) — that is for an operator."""
    order = _require(cid)
    target = _not_found_target(order.state)
    if target is None:
        if order.state not in FINAL_STATES:
            run(f"UPDATE {_ORDERS} SET last_error = ?, updated_at = ? WHERE client_order_id = ?",
                 ("not found on the exchange; unresolved", now, cid))
        return None
    return _move(order, target, now, "not found on the exchange")


def _find_for_trade(account: str, trade: TradeFill) -> DbOrder:
    order = _load(trade.client_order_id) if trade.client_order_id else None
    if order is None and trade.exchange_order_id:
        row = run(f"{_SELECT} WHERE exchange_account = ? AND symbol = ? AND exchange_order_id = ?",
                   (account, trade.symbol, trade.exchange_order_id)).fetchone()
        order = None if row is None else _view(row)
    if order is None:
        raise UnknownOrderFill(f"trade {trade.trade_id} on {account} {trade.symbol}: no order with client id "
                               f"{trade.client_order_id!r} or exchange id {trade.exchange_order_id!r}")
    problems = []
    if order.exchange_account != account:
        problems.append(f"account {account} is not the order's {order.exchange_account}")
    if order.symbol != trade.symbol:
        problems.append(f"symbol {trade.symbol} is not the order's {order.symbol}")
    if order.side != trade.side:
        problems.append(f"side {trade.side} is not the order's {order.side}")
    if (order.exchange_order_id and trade.exchange_order_id
            and order.exchange_order_id != trade.exchange_order_id):
        problems.append(f"exchange id {trade.exchange_order_id} is not the order's {order.exchange_order_id}")
    if problems:
        raise FillMismatch(f"trade {trade.trade_id} for {order.client_order_id}: " + "; ".join(problems))
    return order


def apply_fill(account: str, trade: TradeFill, now: float | None = None) -> bool:
    """Apply one trade of ours exactly once. False: this trade was applied before (nothing written).

    Writes the fill (the order's trade history), adds it to the order's `filled`, moves its
    state (`after_fill`: a fill racing a cancel completes a canceled order) and writes the
    mmflow order's ledger: buy +base −quote, sell −base +quote, −fee in the fee currency,
    each entry with a ref derived from the fill key. An overfill or a trade contradicting
    its order raises (nothing written). A fill for a REJECTED or DENIED order still counts
    (the money moved) and raises an alert: the verdict on that order was wrong."""
    if not isinstance(trade, TradeFill):
        raise TypeError(f"expected a TradeFill, got {type(trade).__name__}")
    now = time.time() if now is None else now
    key = fill_key(account, trade)
    if run(f"SELECT 1 FROM {_FILLS} WHERE fill_key = ?", (key,)).fetchone() is not None:
        return False
    order = _find_for_trade(account, trade)
    filled = order.filled + trade.amount
    if filled > order.amount:
        raise FillMismatch(f"trade {trade.trade_id} overfills {order.client_order_id}: {order.filled} + "
                           f"{trade.amount} > {order.amount}")
    if filled == order.amount:
        filled = order.amount            # stored as the amount's own text (see locked_by_open_orders)
    target = after_fill(order.state, filled, order.amount)
    extra = {"filled": _text(filled)}
    if order.exchange_order_id is None and trade.exchange_order_id:
        _check_mapping(order, trade.exchange_order_id)
        extra["exchange_order_id"] = trade.exchange_order_id
    anomaly = None
    if order.state in (X.REJECTED, X.DENIED):
        anomaly = f"fill {trade.trade_id} for an order held {order.state}"
    elif order.state is X.EXPIRED and filled == order.amount:
        anomaly = f"fill {trade.trade_id} completes an order held expired"
    if anomaly is not None:
        extra["last_error"] = anomaly
        run(f"INSERT INTO {_ALERTS} (kind, subject, message, created_at, resolved) VALUES (?, ?, ?, ?, ?) "
             f"ON CONFLICT DO NOTHING", ("exchange_fill_anomaly", key, f"{order.client_order_id}: {anomaly}", now,
                                         False))
    if target is order.state:
        sets = {"updated_at": now, **extra}
        run(f"UPDATE {_ORDERS} SET {', '.join(f'{k} = ?' for k in sets)} WHERE client_order_id = ?",
             (*sets.values(), order.client_order_id))
    else:
        _move(order, target, now, extra=extra)
    at = trade.timestamp_ms / 1000
    run(f"INSERT INTO {_FILLS} (fill_key, trade_id, exchange_account, client_order_id, order_id, symbol, side, "
         f"price, amount, fee, fee_currency, liquidity, at, recorded_at) "
         f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
         (key, trade.trade_id, account, order.client_order_id, order.order_id, trade.symbol, trade.side,
          _text(trade.price), _text(trade.amount), _text(trade.fee), trade.fee_currency, trade.liquidity, at, now))
    base, quote = split_symbol(trade.symbol)
    cost = trade.price * trade.amount
    sign = 1 if trade.side == "buy" else -1
    reason = f"fill {trade.side} {trade.amount} @ {trade.price} ({order.client_order_id})"
    entries = [(base, sign * trade.amount, "base"), (quote, -sign * cost, "quote")]
    if trade.fee != 0:
        entries.append((trade.fee_currency, -trade.fee, "fee"))
    for asset, delta, leg in entries:
        run(f"INSERT INTO {_LEDGER} (order_id, asset, delta, reason, ref, at) VALUES (?, ?, ?, ?, ?, ?) "
             f"ON CONFLICT DO NOTHING", (order.order_id, asset, _text(delta), reason, f"fill:{key}:{leg}", now))
    return True


# ---------------------------------------------------------------- reads

def get_exchange_order(cid: str) -> DbOrder | None:
    return _load(cid)


def find_by_exchange_id(account: str, symbol: str, exchange_order_id: str) -> DbOrder | None:
    row = run(f"{_SELECT} WHERE exchange_account = ? AND symbol = ? AND exchange_order_id = ?",
               (account, symbol, exchange_order_id)).fetchone()
    return None if row is None else _view(row)


def orders_in_states(states: Iterable[ExOrderState | str], account: str | None = None,
                     order_id: str | None = None) -> list[DbOrder]:
    """Exchange orders in any of `states`, optionally of one account and/or one mmflow order."""
    return [_view(r) for r in rows_in_states(states, account, order_id)]


# An account's rows by their state: ``exchange_account || ''`` keeps the planner off the mapping index (account,
# symbol, exchange id), whose account prefix it otherwise picks for these reads (SQLite without statistics: an
# equality on an index prefix looks selective) — and one account's rows there are its whole order history, which
# every cancel-replace grows by one (a stream round then read ~all of it: 7 ms at 20k rows, four reads a round).
# Kept off it, the read goes by the state index: the open rows only. Same text on PostgreSQL.
_ACCOUNT_IS = "exchange_account || '' = ?"


def rows_in_states(states: Iterable[ExOrderState | str], account: str | None = None,
                   order_id: str | None = None, *, ordered: bool = True, symbol: str | None = None) -> list[tuple]:
    """``orders_in_states`` as raw rows (ROW_COLUMNS, text decimals), for a reader that views only some of them
    (``view``): the update stream's round over 100,000 resting orders of one account. ``ordered``: oldest first
    (a sort of every row; the round does not need it)."""
    values = sorted({ExOrderState(s).value for s in states})
    if not values:
        return []
    where, params = [f"state IN ({marks(len(values))})"], list(values)
    if account is not None:
        where.append(_ACCOUNT_IS)
        params.append(account)
    if order_id is not None:
        where.append("order_id = ?")
        params.append(order_id)
    if symbol is not None:
        where.append("symbol = ?")
        params.append(symbol)
    order_by = " ORDER BY created_at, client_order_id" if ordered else ""
    return run(f"{_SELECT} WHERE {' AND '.join(where)}{order_by}", params).fetchall()


def open_fingerprints(account: str, open_states: Iterable[ExOrderState | str]) -> dict[str, tuple]:
    """Per symbol, aggregates of the account's open rows that move with any write to them (every unit sets
    ``updated_at``; a row that comes or goes moves the count): one aggregate read through the state index (~25 ms
    over 100,000 rows on SQLite, against ~200 ms for the rows themselves), so a quiet stream round need not read
    the rows."""
    values = sorted({ExOrderState(s).value for s in open_states})
    rows = run(f"SELECT symbol, count(*), max(updated_at), sum(updated_at), sum(length(exchange_order_id)), "
               f"sum(length(state)) FROM {_ORDERS} WHERE state IN ({marks(len(values))}) AND {_ACCOUNT_IS} "
               f"GROUP BY symbol", (*values, account)).fetchall()
    return {row[0]: tuple(row[1:]) for row in rows}


def owed_symbols(account: str) -> set[str]:
    """The symbols of the account's orders whose fills have not all arrived: the exchange called it FILLED, or
    reported more filled (a status, a cancel reply) than our fills add up to. (The second half reads every row of
    the table that has a reported fill: no index holds ``reported_filled``.)"""
    owed = {symbol for (symbol,) in run(
        f"SELECT DISTINCT symbol FROM {_ORDERS} WHERE state = ? AND filled <> amount AND {_ACCOUNT_IS}",
        (X.FILLED.value, account)).fetchall()}
    rows = run(f"SELECT symbol, filled, reported_filled FROM {_ORDERS} WHERE reported_filled IS NOT NULL AND "
               f"filled <> reported_filled AND {_ACCOUNT_IS}", (account,)).fetchall()
    owed.update(symbol for symbol, filled, reported in rows if Decimal(reported) > Decimal(filled))
    return owed


def any_in_flight(account: str, open_states: Iterable[ExOrderState | str],
                  in_flight_states: Iterable[ExOrderState | str], updated_after: float, placed_after: float) -> bool:
    """Whether an open order of the account is in flight (``updates.is_in_flight`` as one read): in one of
    `in_flight_states` and updated after `updated_after`, or placed (submitted, else created) after `placed_after`."""
    opens = sorted({ExOrderState(s).value for s in open_states})
    flying = sorted({ExOrderState(s).value for s in in_flight_states} & set(opens))
    row = run(f"SELECT 1 FROM {_ORDERS} WHERE {_ACCOUNT_IS} AND state IN ({marks(len(opens))}) AND "
              f"((state IN ({marks(len(flying))}) AND updated_at > ?) OR COALESCE(submitted_at, created_at) > ?) "
              f"LIMIT 1", (account, *opens, *flying, updated_after, placed_after)).fetchone()
    return row is not None


def open_orders_of(order_id: str) -> list[DbOrder]:
    return orders_in_states(OPEN_STATES, order_id=order_id)


def fills_of(order_id: str) -> list[Fill]:
    """The trade history of one mmflow order, oldest first. A raw statement: building peewee's query cost most
    of it, and every running order's start and drawdown check reads it."""
    db = database_proxy.obj
    return list(Fill.raw(adapt(f"SELECT * FROM {Fill._meta.table_name} WHERE order_id = ? ORDER BY at, fill_key",
                               db), order_id))


def _locking(order_id: str) -> list[tuple[str, str, Decimal, Decimal]]:
    """(symbol, side, price, remaining) of every order that still locks funds: the open ones, and the
    FILLED ones whose fills have not all arrived (the exchange said "filled" first: the ledger does not
    show the trade yet, so its remainder stays locked until the fills come)."""
    opens = sorted(s.value for s in OPEN_STATES)
    rows = run(f"SELECT symbol, side, price, amount, filled, state FROM {_ORDERS} WHERE order_id = ? AND "
                f"(state IN ({marks(len(opens))}) OR (state = ? AND filled <> amount))",
                (order_id, *opens, X.FILLED.value)).fetchall()
    out = []
    for symbol, side, price, amount, filled, _state in rows:
        remaining = Decimal(amount) - Decimal(filled)
        if remaining > 0:
            out.append((symbol, side, Decimal(price), remaining))
    return out


def locked_by_currency(order_id: str) -> dict[str, Decimal]:
    """What this order's live exchange orders lock, per currency: sells their remaining base,
    buys remaining × price of quote (fees are not locked: they are taken from what is received)."""
    locked: dict[str, Decimal] = {}
    for symbol, side, price, remaining in _locking(order_id):
        base, quote = split_symbol(symbol)
        code, value = (base, remaining) if side == "sell" else (quote, remaining * price)
        locked[code] = locked.get(code, ZERO) + value
    return locked


def locked_by_open_orders(order_id: str, symbol: str | None = None) -> tuple[Decimal, Decimal]:
    """(base, quote) locked by this order's live exchange orders on `symbol` (default: its only symbol)."""
    rows = _locking(order_id)
    symbols = {r[0] for r in rows}
    if symbol is None:
        if len(symbols) > 1:
            raise ValueError(f"order {order_id} has live orders on {sorted(symbols)}; name the symbol")
    else:
        rows = [r for r in rows if r[0] == symbol]
    base = sum((rem for _, side, _, rem in rows if side == "sell"), ZERO)
    quote = sum((rem * price for _, side, price, rem in rows if side == "buy"), ZERO)
    return base, quote


def ledger_free(order_id: str, base_code: str, quote_code: str) -> tuple[Decimal, Decimal]:
    """(base, quote) this order may still quote with: its ledger balances minus what its live orders lock."""
    balances = ledger_balances(order_id)
    locked = locked_by_currency(order_id)
    return (balances.get(base_code, ZERO) - locked.get(base_code, ZERO),
            balances.get(quote_code, ZERO) - locked.get(quote_code, ZERO))



def mark_hanging(client_order_ids: Sequence[str], now: float) -> None:
    """Remember that these orders are hanging (their other side filled), so a restart keeps them hanging."""
    for ids in chunks(list(client_order_ids), 400):
        run(f"UPDATE {_ORDERS} SET hanging = ?, updated_at = ? WHERE client_order_id IN ({marks(len(ids))})",
            (True, now, *ids))
