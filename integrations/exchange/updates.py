"""Order updates and start-up reconciliation of ONE exchange account, as plain functions.

The ExchangeGateway (actors/gateway.py) calls these from its own handlers; they take the
account, the group-commit writer and the time, so they are testable without an actor. Every
write is a unit of ``storage.exchange_repo`` (or the alert unit here) run by the writer; reads
go straight to the DB.

``reconcile_account`` — before any quoting (peers §3.3, Nautilus's startup reconciliation):
for every symbol, the exchange's open orders are matched with the orders DB by client order id
(``domain.exchange_orders.reconcile``):

- known orders are adopted: their exchange status is applied (state, exchange-id mapping); when
  the exchange shows fills the DB lacks, the symbol's trades are fetched and applied;
- orders open in the DB but not listed are resolved by a targeted ``fetch_order(client_order_id=)``:
  found → ``apply_status``; an explicit not-found → ``resolve_not_found`` (Nautilus's table), but
  only once the order's last event is ``not_found_grace`` seconds old (Binance answers -2013 for an
  order placed a moment ago); an unknown outcome leaves it open for the stream;
- unknown orders carrying our prefix (``is_ours``) are cancelled and reported (Alert
  ``unknown_exchange_order``); foreign orders are left alone and reported once (WARNING + Alert
  ``foreign_exchange_order``); orders the DB holds final but the exchange lists open are conflicts
  (ERROR + Alert ``exchange_order_conflict``).
A failure to LIST a symbol's open orders or trades (UnknownOutcome / RateLimited) raises: without
that list nothing can be reconciled, and the caller retries the whole (idempotent) procedure. The first
symbol's listing is requested before the account's open rows are read (``_Listing``): the venue builds its
reply (seconds for 100,000 orders) while they are read. The account is not published meanwhile: no order of it
is placed or cancelled in between (but for a request already under way when a gateway restarts, as before).

``poll_updates`` — one round of the update stream: for each symbol with something to watch,
``fetch_open_orders`` (statuses and mappings of listed orders), targeted lookups of DB-open orders
the list no longer shows (at most ``max_lookups`` per round and one per order per ``lookup_every``
seconds, least recently looked at first; orders with an event younger than ``settle`` are skipped:
their own actor is mid-request), then ``fetch_my_trades(since_ms)`` and
``apply_fill`` (dedup by fill key, so re-reading is harmless). A trade whose order is not mapped
yet is retried in later rounds (the symbol's ``since_ms`` does not move past it) and reported
(Alert ``exchange_fill_unmatched``) when it is still unmatched after ``unmatched_retry`` seconds
and at least 3 rounds. Exchange errors never escape a round: UnknownOutcome / RateLimited are
returned in ``UpdateRound.errors`` (state kept, next round retries); a DefinitiveError that is not
a not-found is logged at ERROR and raised as an Alert (``exchange_error``), once per call/kind.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import gevent
import gevent.event
import gevent.pool
from loguru import logger

from domain.exchange_orders import (FINAL_STATES, OPEN_STATES, ZERO, DbOrder, ExOpenOrder, ExOrderState,
                                    IllegalExTransition, TradeFill, apply_exchange_status, fill_key, held_key,
                                    is_ours, plain_text, reconcile)
from domain.exchange_orders import resolve_not_found as not_found_target
from integrations.exchange.account import OrderInfo, TradeInfo
from integrations.exchange.errors import (AuthenticationFailed, DefinitiveError, ExchangeError, RateLimited,
                                          UnknownOutcome)
from storage import exchange_repo as xr
from storage.exchange_models import Fill
from storage.models import Alert
from storage.sql import run

__all__ = [
    "IN_FLIGHT_STATES",
    "OpenState",
    "OrderEvents",
    "ReconcileReport",
    "UpdateRound",
    "account_in_flight",
    "active_symbols",
    "is_in_flight",
    "open_state",
    "poll_updates",
    "raise_alert",
    "reconcile_account",
]

X = ExOrderState

DEFAULT_LOOKBACK = 86_400.0   # seconds of trades read back on start (Binance: at most 24 h per request)
NOT_FOUND_GRACE = 30.0        # a not-found is a verdict only this long after the order's last event (> a create
                              # queued in the limiter + its request timeout: a verdict before it lands is a lie)
SETTLE = 1.0                  # the stream does not look up orders whose last event is younger than this
RECENT = 5.0                  # an order placed this recently keeps the stream fast
IN_FLIGHT_MAX = 60.0          # a SUBMITTED / PENDING_CANCEL order older than this is stuck, not in flight
MAX_LOOKUPS = 10              # targeted lookups per round (Nautilus: 10 per cycle), oldest first
LOOKUP_EVERY = 2.0            # the same order is looked up at most this often (Nautilus: in-flight check every 2 s)
TRADES_PAGE = 1000            # Binance's maximum myTrades limit
UNMATCHED_RETRY = 30.0        # seconds (and at least UNMATCHED_ROUNDS rounds) before an unmatched trade is reported
UNMATCHED_ROUNDS = 3
SYMBOL_CONCURRENCY = 4        # symbols polled at once in one round
QUIET_MAX_AGE = 60.0          # a quiet symbol's status pass is skipped for at most this long after it ran in full
UNRESOLVED_NOTE = "not found on the exchange; unresolved"   # what exchange_repo.resolve_not_found records

IN_FLIGHT_STATES = frozenset({X.INITIALIZED, X.SUBMITTED, X.PENDING_CANCEL})
_TRANSIENT = (UnknownOutcome, RateLimited)
# Units that refuse a write because the DB and the exchange disagree (not bugs): reported, never crash a round.
_REFUSED = (xr.ExchangeOrderError, IllegalExTransition, ValueError)


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class OrderEvents:
    """What one round (or reconciliation) did to the exchange orders of ONE mmflow order."""
    order_id: str
    fills: tuple[TradeFill, ...]      # fills recorded for the first time, oldest first
    changed: tuple[str, ...]          # client order ids whose state changed


@dataclass
class ReconcileReport:
    account_id: str
    symbols: tuple[str, ...] = ()
    adopted: list[str] = field(default_factory=list)                  # client ids open on both sides
    resolved: dict[str, ExOrderState] = field(default_factory=dict)   # client id -> state after its lookup
    unresolved: list[str] = field(default_factory=list)               # lookups left open for the stream
    cancelled_unknown: list[str] = field(default_factory=list)        # ours by prefix, unknown to the DB: cancelled
    cancel_failed: list[str] = field(default_factory=list)            # ... whose cancel did not (surely) happen
    foreign: list[str] = field(default_factory=list)                  # "<symbol>:<exchange id>", left alone
    conflicts: list[str] = field(default_factory=list)
    fills_applied: int = 0
    fills_missing: list[str] = field(default_factory=list)            # exchange shows more filled than the DB has
    failed_symbols: dict[str, str] = field(default_factory=dict)      # refused definitively (e.g. unknown symbol)
    changes: int = 0                                                  # DB writes that changed something
    events: dict[str, OrderEvents] = field(default_factory=dict)      # mmflow order id -> what changed
    # symbols where every open row was listed as held and nothing else listed: the stream's first ``quiet=``
    quiet: dict[str, tuple[bytes, tuple, float]] = field(default_factory=dict)

    def summary(self) -> str:
        return (f"{len(self.symbols)} symbols, {len(self.adopted)} adopted, {len(self.resolved)} resolved, "
                f"{len(self.unresolved)} unresolved, {len(self.cancelled_unknown)} unknown cancelled, "
                f"{len(self.foreign)} foreign, {len(self.conflicts)} conflicts, {self.fills_applied} fills applied, "
                f"{len(self.fills_missing)} orders still missing fills, {self.changes} changes")


@dataclass(frozen=True)
class UpdateRound:
    events: dict[str, OrderEvents]            # mmflow order id -> fills recorded / client orders changed
    next_since_ms: dict[str, int]             # where each symbol's trades are read from next round
    in_flight: bool                           # poll fast: something was placed or cancelled just now
    # trades whose order is not mapped yet: key -> (first seen, rounds seen, reported)
    unmatched: dict[str, tuple[float, int, bool]] = field(default_factory=dict)
    looked_up: dict[str, float] = field(default_factory=dict)   # client id -> time of its last targeted lookup
    errors: tuple[str, ...] = ()              # transient exchange errors of this round (state kept)
    polled: tuple[str, ...] = ()              # symbols looked at
    listed: tuple[str, ...] = ()              # symbols whose open orders were requested
    trades_fetched: tuple[str, ...] = ()      # symbols whose trades were read
    lookups: int = 0
    changes: int = 0
    # symbol -> (digest of the venue's open-order reply, fingerprint of the DB's open rows, when) of a status pass
    # that found nothing to do: pass it to the next round (``quiet=``), which skips the pass while both hold
    quiet: dict[str, tuple[bytes, tuple, float]] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()             # symbols whose status pass was skipped (nothing changed on either side)


# ---------------------------------------------------------------- reads and the alert unit


def raise_alert(kind: str, subject: str, message: str, now: float) -> bool:
    """Unit: write an Alert unless one of this (kind, subject) exists. True if it is new."""
    cursor = run(f"INSERT INTO {Alert._meta.table_name} (kind, subject, message, created_at, resolved) "
                 f"VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", (kind, subject, message, now, False))
    return cursor.rowcount == 1


# where a raw row of xr.rows_in_states holds what the round's quiet check reads
_CID, _STATE, _XID = (xr.ROW_COLUMNS.index(c) for c in ("client_order_id", "state", "exchange_order_id"))


def _open_rows_by_symbol(account_id: str, symbol: str | None = None) -> dict[str, list[tuple]]:
    """The account's open orders (of one symbol, or all) as raw rows, by symbol: a round views (``xr.view``) only
    those it acts on."""
    out: dict[str, list[tuple]] = {}
    symbol_at = xr.ROW_COLUMNS.index("symbol")
    for row in xr.rows_in_states(OPEN_STATES, account=account_id, ordered=False, symbol=symbol):
        out.setdefault(row[symbol_at], []).append(row)
    return out


@dataclass(frozen=True)
class OpenState:
    """What a stream round reads first of the account's orders (``open_state``): per symbol the fingerprint of its
    open rows (``xr.open_fingerprints``), and the symbols whose fills are still owed."""

    fingerprints: dict[str, tuple]
    owed: set[str]

    @property
    def active(self) -> set[str]:
        """Symbols the stream must watch: open orders in the DB, or fills still owed."""
        return set(self.fingerprints) | self.owed


def open_state(account_id: str) -> OpenState:
    """The account's ``OpenState``: two aggregate reads, not a view of every open order. The gateway reads it once
    a round and hands it to ``poll_updates`` (which read both again before)."""
    return OpenState(xr.open_fingerprints(account_id, OPEN_STATES), xr.owed_symbols(account_id))


def active_symbols(account_id: str) -> set[str]:
    """Symbols the stream must watch: open orders in the DB, or fills still owed."""
    return open_state(account_id).active


def is_in_flight(order: DbOrder, now: float, *, recent: float = RECENT, stale_after: float = IN_FLIGHT_MAX) -> bool:
    """Placed or cancelled a moment ago: a request of its own actor may be landing right now."""
    if order.state not in OPEN_STATES:
        return False
    if order.state in IN_FLIGHT_STATES and now - order.updated_at < stale_after:
        return True
    placed = order.submitted_at if order.submitted_at is not None else order.created_at
    return now - placed < recent


def account_in_flight(account_id: str, now: float, *, recent: float = RECENT,
                      stale_after: float = IN_FLIGHT_MAX) -> bool:
    # is_in_flight as one read: in flight by state and age, or placed within `recent` (asked every round, over
    # what may be 100,000 open orders)
    return xr.any_in_flight(account_id, OPEN_STATES, IN_FLIGHT_STATES, now - stale_after, now - recent)


def _known_fill_keys(keys: Iterable[str]) -> set[str]:
    keys = list(dict.fromkeys(keys))
    found: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        found.update(row.fill_key for row in Fill.select(Fill.fill_key).where(Fill.fill_key.in_(chunk)))
    return found


# ---------------------------------------------------------------- shared machinery


def _ex_open(o: OrderInfo) -> ExOpenOrder:
    return ExOpenOrder(client_order_id=o.client_order_id, exchange_order_id=o.id, symbol=o.symbol,
                       side=o.side or "", price=o.price if o.price is not None else ZERO,
                       amount=o.amount if o.amount is not None else ZERO,
                       filled=o.filled if o.filled is not None else ZERO)


def _trade_fill(t: TradeInfo, db: DbOrder, now: float) -> TradeFill:
    """A trade of one of our orders as the domain's TradeFill (ValueError/TypeError if it is malformed)."""
    fee = t.fee if t.fee is not None else ZERO
    return TradeFill(trade_id=t.id, client_order_id=db.client_order_id, exchange_order_id=t.order_id,
                     symbol=db.symbol, side=t.side or db.side, price=t.price, amount=t.amount, fee=fee,
                     fee_currency=t.fee_currency or None,
                     timestamp_ms=t.timestamp_ms if t.timestamp_ms is not None else int(now * 1000),
                     liquidity=t.taker_or_maker if t.taker_or_maker in ("maker", "taker") else None)


class _Work:
    """State shared by one reconciliation or one poll round: writes, events, alerts, errors."""

    def __init__(self, account: Any, writer: Any, now: float, grace: float) -> None:
        self.account = account
        self.writer = writer
        self.account_id = account.account_id
        self.now = now
        self.grace = grace
        self.changes = 0
        self.errors: list[str] = []
        self._fills: dict[str, list[TradeFill]] = {}
        self._changed: dict[str, dict[str, None]] = {}
        self._before: dict[str, tuple[str, ExOrderState]] = {}   # cid -> (order id, state when first read)

    # ------------------------------------------------------------ writes

    def write(self, calls: list[tuple[Callable[..., Any], tuple]]) -> list[tuple[bool, Any]]:
        """Run units through the writer as one group (one commit); refusals come back as (False, exc)."""
        pending = [self.writer.submit(unit, *args) for unit, args in calls]
        out: list[tuple[bool, Any]] = []
        for result in pending:
            try:
                out.append((True, result.get(timeout=60)))
            except _REFUSED as exc:
                out.append((False, exc))
        return out

    def alert(self, kind: str, subject: str, message: str, level: str = "WARNING") -> bool:
        [(ok, new)] = self.write([(raise_alert, (kind, subject, message, self.now))])
        if ok and new:
            self.changes += 1
            logger.log(level, "exchange {}: {}", self.account_id, message)
            return True
        logger.debug("exchange {}: (already reported) {}", self.account_id, message)
        return False

    def definitive(self, exc: DefinitiveError, what: str, subject: str) -> None:
        """A refusal that is not a not-found: ERROR + Alert, once per call and kind."""
        self.alert("exchange_error", f"{self.account_id}:{subject}:{exc.kind}",
                   f"{what} refused by the exchange ({exc.kind}): {exc}", level="ERROR")

    def transient(self, exc: ExchangeError, what: str) -> None:
        self.errors.append(f"{what}: {type(exc).__name__} {exc.kind}: {exc}")

    def refused(self, db: DbOrder, exc: Exception, what: str) -> None:
        self.alert("exchange_order_conflict", f"{self.account_id}:{db.client_order_id}",
                   f"{db.client_order_id} ({db.symbol}): {what} refused by the orders DB: "
                   f"{type(exc).__name__}: {exc}", level="ERROR")

    # ------------------------------------------------------------ events

    def seen(self, db: DbOrder) -> None:
        self.seen_as(db.client_order_id, db.order_id, db.state)

    def seen_as(self, client_order_id: str, order_id: str, state: ExOrderState) -> None:
        """An order's state when this round first read it (``events`` compares with it after fills)."""
        self._before.setdefault(client_order_id, (order_id, state))

    def state_written(self, db: DbOrder, new_state: Any) -> None:
        self.seen(db)
        if isinstance(new_state, ExOrderState) and new_state is not db.state:
            self.changes += 1
            self._changed.setdefault(db.order_id, {})[db.client_order_id] = None

    def fill_written(self, db: DbOrder, fill: TradeFill) -> None:
        self.seen(db)
        self.changes += 1
        self._fills.setdefault(db.order_id, []).append(fill)

    def events(self) -> dict[str, OrderEvents]:
        # a fill may move a state too (ACCEPTED -> FILLED): compare with the state first read
        for cid, (order_id, before) in self._before.items():
            if order_id in self._fills:
                row = xr.get_exchange_order(cid)
                if row is not None and row.state is not before:
                    self._changed.setdefault(order_id, {})[cid] = None
        out: dict[str, OrderEvents] = {}
        for order_id in sorted(set(self._fills) | set(self._changed)):
            fills = sorted(self._fills.get(order_id, ()), key=lambda f: (f.timestamp_ms, f.trade_id))
            out[order_id] = OrderEvents(order_id, tuple(fills), tuple(self._changed.get(order_id, ())))
        return out

    # ------------------------------------------------------------ the steps shared by both procedures

    def status_call(self, db: DbOrder, status: str, filled: Decimal, amount: Decimal,
                    exchange_id: str | None) -> tuple[Callable[..., Any], tuple] | None:
        """The apply_status unit for a report, or None when it would change nothing."""
        try:
            target = apply_exchange_status(db.state, status, filled, amount)
        except ValueError as exc:
            self.refused(db, exc, f"status {status!r}")
            return None
        if target is db.state and (exchange_id is None or db.exchange_order_id == exchange_id):
            return None
        return xr.apply_status, (db.client_order_id, status, filled, amount, self.now, exchange_id)

    def apply_statuses(self, items: list[tuple[DbOrder, tuple[Callable[..., Any], tuple]]]) -> dict[str, Any]:
        results = self.write([call for _, call in items])
        out: dict[str, Any] = {}
        for (db, _), (ok, value) in zip(items, results):
            self.seen(db)
            if not ok:
                self.refused(db, value, "status")
                continue
            if db.exchange_order_id is None and value is db.state:
                self.changes += 1          # only the mapping was new
            self.state_written(db, value)
            out[db.client_order_id] = value
        return out

    def lookup(self, db: DbOrder) -> tuple[str, Any]:
        """Targeted fetch_order: by the exchange's order id once it is mapped (a venue may find a finished
        order only by its id — Gate: "only order ID can be used after the order is finished"), else by
        client id. ('found', OrderInfo) | ('not_found', None) | ('unknown', None)."""
        try:
            if db.exchange_order_id:
                info = self.account.fetch_order(db.symbol, order_id=db.exchange_order_id)
            else:
                info = self.account.fetch_order(db.symbol, client_order_id=db.client_order_id)
        except DefinitiveError as exc:
            if exc.not_found:
                return "not_found", None
            self.definitive(exc, f"looking up {db.client_order_id}", f"{db.symbol}:fetch_order")
            return "unknown", None
        except _TRANSIENT as exc:
            self.transient(exc, f"looking up {db.client_order_id}")
            return "unknown", None
        return "found", info

    def settle_lookup(self, db: DbOrder, outcome: str, info: OrderInfo | None) -> tuple[str, Any]:
        """What to write after a lookup: ('status', call) | ('not_found', call|None) | ('open', None)."""
        if outcome == "found":
            if not info.status:
                return "open", None
            amount = info.amount if info.amount else db.amount
            call = self.status_call(db, info.status, info.filled or ZERO, amount, info.id)
            return "status", call
        if outcome == "not_found":
            age = self.now - db.updated_at
            if age < self.grace:
                return "open", None     # the exchange's query service may lag its matching engine
            target = not_found_target(db.state)
            if target is None:
                if db.state is X.PENDING_CANCEL and db.last_error != UNRESOLVED_NOTE:
                    self.alert("exchange_order_unresolved", f"{self.account_id}:{db.client_order_id}",
                               f"{db.client_order_id} ({db.symbol}) is pending cancel and the exchange does not "
                               f"know it: left unresolved for an operator")
                    return "not_found", (xr.resolve_not_found, (db.client_order_id, self.now))
                return "open", None
            return "not_found", (xr.resolve_not_found, (db.client_order_id, self.now))
        return "open", None

    def fetch_trades(self, symbol: str, since_ms: int, *, all_pages: bool) -> list[TradeInfo]:
        trades: list[TradeInfo] = []
        since = since_ms
        venue = getattr(self.account, "venue", None)
        size = getattr(venue, "trades_page", TRADES_PAGE)
        backwards = bool(getattr(venue, "trades_newest_first", False))
        until = None
        while True:
            page = (self.account.fetch_my_trades(symbol, since, size, until) if until is not None
                    else self.account.fetch_my_trades(symbol, since, size))
            trades.extend(page)
            if not all_pages or len(page) < size:
                break
            if backwards:  # the page holds the newest trades: go on up to (and with) the oldest of them
                oldest = min((t.timestamp_ms or 0) for t in page)
                if oldest <= since or oldest == until:  # no older trade left, or no progress (one ms full)
                    break
                until = oldest  # inclusive: trades of that millisecond the page could not hold come again
                continue
            newest = max((t.timestamp_ms or 0) for t in page)
            if newest <= since:
                break
            since = newest
        unique: dict[tuple[str, str | None], TradeInfo] = {}
        for t in trades:
            unique[(t.id, t.side)] = t
        return sorted(unique.values(), key=lambda t: (t.timestamp_ms or 0, t.id))

    def apply_trades(self, trades: list[TradeInfo],
                     on_unmatched: Callable[[TradeInfo], None] | None = None) -> int:
        """Apply the trades that belong to mapped orders of ours (dedup by fill key). Returns how many were new."""
        candidates: list[tuple[DbOrder, TradeFill]] = []
        for t in trades:
            db = xr.find_by_exchange_id(self.account_id, t.symbol, t.order_id) if t.order_id else None
            if db is None:
                if on_unmatched is not None:
                    on_unmatched(t)
                continue
            try:
                fill = _trade_fill(t, db, self.now)
            except (ValueError, TypeError) as exc:
                self.alert("exchange_fill_mismatch", f"{self.account_id}:{t.symbol}:{t.id}:{t.side}",
                           f"trade {t.id} of {db.client_order_id} cannot be recorded: {exc}", level="ERROR")
                continue
            candidates.append((db, fill))
        known = _known_fill_keys(fill_key(self.account_id, f) for _, f in candidates)
        fresh = [(db, f) for db, f in candidates if fill_key(self.account_id, f) not in known]
        applied = 0
        # submitted in trade order: the writer runs units in order, each reads the order as the previous left it
        results = self.write([(xr.apply_fill, (self.account_id, f, self.now)) for _, f in fresh])
        for (db, f), (ok, value) in zip(fresh, results):
            if not ok:
                self.alert("exchange_fill_mismatch", fill_key(self.account_id, f),
                           f"trade {f.trade_id} of {db.client_order_id} refused: {type(value).__name__}: {value}",
                           level="ERROR")
            elif value:
                applied += 1
                self.fill_written(db, f)
        return applied


# ---------------------------------------------------------------- start-up reconciliation


def reconcile_account(account: Any, writer: Any, *, symbols: Iterable[str], now: float,
                      lookback: float = DEFAULT_LOOKBACK, not_found_grace: float = NOT_FOUND_GRACE
                      ) -> ReconcileReport:
    """Reconcile the account's open orders with the orders DB (see the module docstring).

    ``symbols``: the configured pairs' symbols of this account; every symbol with open DB orders of
    the account is added. Idempotent: a second run on an unchanged exchange writes nothing.
    Raises UnknownOutcome / RateLimited when a symbol's open orders or trades cannot be listed,
    AuthenticationFailed when the key is refused."""
    work = _Work(account, writer, now, not_found_grace)
    fingerprints = xr.open_fingerprints(work.account_id, OPEN_STATES)   # before the rows: a write in between only costs a pass
    symbols = set(symbols)
    # the first symbol's listing goes out before the rows are read: the venue builds its reply (seconds, for 100,000
    # open orders) while they are read, and its records are claimed once they are (its _Claims wait for them)
    ahead = sorted(symbols | set(fingerprints))[:1]
    listings = {symbol: _Listing(account, symbol) for symbol in ahead}
    try:
        db_rows = _open_rows_by_symbol(work.account_id)   # raw rows: only those the plan needs are viewed (oldest first)
        wanted = sorted(symbols | set(db_rows))
        report = ReconcileReport(account_id=work.account_id, symbols=tuple(wanted))
        for symbol in wanted:
            digest = _reconcile_symbol(work, report, symbol, db_rows.get(symbol, []), lookback,
                                       listings.pop(symbol, None))
            if digest is not None and symbol in fingerprints:
                report.quiet[symbol] = (digest, fingerprints[symbol], now)
    finally:
        for listing in listings.values():   # not taken (a failure before its symbol's turn)
            listing.cancel()
    report.changes = work.changes
    report.events = work.events()
    return report


class _Listing:
    """One symbol's open orders (``_fetch_open``, with claims) listed on a greenlet of its own, started before the
    caller reads the symbol's rows; ``result`` hands the claims their rows (``_Claims.load``) and waits for it."""

    def __init__(self, account: Any, symbol: str) -> None:
        self.claims = _Claims(None)
        self._greenlet = gevent.spawn(self._run, account, symbol)
        gevent.sleep(0)   # the request goes out now: the caller's reads that follow do not yield (SQLite)

    def _run(self, account: Any, symbol: str) -> tuple[bool, Any]:
        try:
            return True, _fetch_open(account, symbol, None, self.claims)
        except Exception as exc:  # noqa: BLE001 - raised again in the caller, by result()
            return False, exc

    def result(self, db_rows: list[tuple]) -> tuple[bytes | None, list[OrderInfo] | None]:
        self.claims.load(db_rows)
        try:
            ok, value = self._greenlet.get()
        finally:
            self.cancel()
        if not ok:
            raise value
        return value

    def cancel(self) -> None:
        if not self._greenlet.dead:
            self._greenlet.kill(block=False)


_SIDE, _SYMBOL, _PRICE, _AMOUNT, _FILLED, _ORDER, _CREATED = (
    xr.ROW_COLUMNS.index(c) for c in ("side", "symbol", "price", "amount", "filled", "order_id", "created_at"))


class _Claims:
    """The venue's records that say what the DB holds — an ACCEPTED, mapped row with nothing filled, listed under
    its client id and exchange id with the same side, price and amount and nothing filled — taken out of the
    listing as it is read (``fetch_open_orders_unless``'s ``claim``): a tuple of texts matched against a dict
    (``domain.exchange_orders.held_key``), not an OrderInfo of five Decimals per record, then compared field by
    field (100,000 orders at a start, and in every stream round after a write to them). ``settle`` gives back
    (reads in full) every record whose client id or exchange id is listed more than once, so the plan still sees
    every duplicate."""

    __slots__ = ("_loaded", "_rows", "_taken", "_twice")

    def __init__(self, db_rows: list[tuple] | None) -> None:
        """``db_rows`` None: given later (``load``); a claim asked before waits for them (a listing that went out
        before its rows were read)."""
        self._rows: dict[tuple[str, ...], tuple] | None = None
        self._loaded = gevent.event.Event() if db_rows is None else None
        self._taken: dict[tuple[str, ...], Any] = {}
        self._twice: set[tuple[str, ...]] = set()
        if db_rows is not None:
            self.load(db_rows)

    def load(self, db_rows: list[tuple]) -> None:
        accepted = X.ACCEPTED.value
        self._rows = {held_key(row[_CID], row[_XID], row[_SIDE], row[_PRICE], row[_AMOUNT]): row for row in db_rows
                      if row[_STATE] == accepted and row[_XID] is not None and plain_text(row[_FILLED]) == "0"}
        if self._loaded is not None:
            self._loaded.set()

    def __call__(self, key: tuple[str, ...], raw: Any) -> bool:
        if self._rows is None:
            self._loaded.wait()
        if key not in self._rows:
            return False
        if key in self._taken:
            self._twice.add(key)
            return False
        self._taken[key] = raw
        return True

    def settle(self, account: Any, symbol: str, infos: list[OrderInfo],
               db_rows: list[tuple]) -> tuple[list[tuple], list[tuple], list[OrderInfo]]:
        """(the DB rows held as listed, the other DB rows, the listing's other orders): a taken record whose client
        id or exchange id is listed again is read back into the listing, sorted by time as the venue's reply is."""
        if not self._taken:
            return [], db_rows, infos
        cids = {o.client_order_id for o in infos}
        xids = {o.id for o in infos}
        back = [key for key in self._taken if key in self._twice or key[0] in cids or key[1] in xids]
        if back:
            infos = infos + account.open_orders_from([self._taken.pop(key) for key in back], symbol)
            infos.sort(key=lambda o: o.timestamp_ms or 0)
        held = [self._rows[key] for key in self._taken]
        held_cids = {row[_CID] for row in held}
        return held, [row for row in db_rows if row[_CID] not in held_cids], infos


def _fetch_open(account: Any, symbol: str, known: bytes | None,
                claims: _Claims | None) -> tuple[bytes | None, list[OrderInfo] | None]:
    """The symbol's open orders (``fetch_open_orders_unless`` with ``claims``: the account asks them only where it
    reads the venue's records itself; an account without it: every order read)."""
    fetch = getattr(account, "fetch_open_orders_unless", None)
    if fetch is None:
        return None, account.fetch_open_orders(symbol)
    return fetch(symbol, known, claims)


def _adopted_as_held(report: ReconcileReport, work: _Work, db_rows: list[tuple],
                     listed: list[OrderInfo]) -> tuple[list[tuple], list[OrderInfo]]:
    """The usual case at a start, 100,000 times over: an order the DB holds ACCEPTED, mapped and with nothing
    filled, listed once under its client id and exchange id with the same side, price and amount and nothing
    filled. ``reconcile`` would adopt it with nothing to write and no fills missing; it is adopted here from its
    raw row (no view, no plan). Returns the rows and listed orders left for the plan (each matched pair leaves
    both lists; nothing listed twice is taken here, so the plan still sees every duplicate)."""
    cids = Counter(o.client_order_id for o in listed)
    xids = Counter(o.id for o in listed)
    by_cid = {o.client_order_id: o for o in listed if o.client_order_id}
    accepted = X.ACCEPTED.value
    taken: set[str] = set()
    rest_rows = []
    for row in db_rows:
        cid = row[_CID]
        ex = by_cid.get(cid)
        if (ex is not None and row[_STATE] == accepted and row[_XID] is not None and ex.id == row[_XID]
                and cids[cid] == 1 and xids[ex.id] == 1 and not ex.filled and ex.side == row[_SIDE]
                and ex.symbol == row[_SYMBOL] and ex.amount and ex.amount > ZERO
                and Decimal(row[_FILLED]) == ZERO and Decimal(row[_AMOUNT]) == ex.amount
                and Decimal(row[_PRICE]) == ex.price):
            taken.add(cid)
            report.adopted.append(cid)
            work.seen_as(cid, row[_ORDER], X.ACCEPTED)   # work.seen, without the view
        else:
            rest_rows.append(row)
    return rest_rows, [o for o in listed if o.client_order_id not in taken]


def _reconcile_symbol(work: _Work, report: ReconcileReport, symbol: str, db_rows: list[tuple],
                      lookback: float, listing: _Listing | None = None) -> bytes | None:
    """Reconcile one symbol (``listing``: its open orders listed already under way). Returns the digest of the
    venue's reply when the symbol was quiet (every open row listed as held, nothing else listed: nothing to do),
    else None."""
    acc = work.account_id
    claims = _Claims(db_rows) if listing is None else listing.claims
    try:
        digest, infos = (_fetch_open(work.account, symbol, None, claims) if listing is None
                         else listing.result(db_rows))
    except AuthenticationFailed:
        raise
    except DefinitiveError as exc:
        report.failed_symbols[symbol] = f"{exc.kind}: {exc}"
        work.definitive(exc, f"listing open orders of {symbol}", f"{symbol}:fetch_open_orders")
        return None
    open_cids = {row[_CID] for row in db_rows}
    held, db_rows, infos = claims.settle(work.account, symbol, infos, db_rows)
    for row in held:
        report.adopted.append(row[_CID])
        work.seen_as(row[_CID], row[_ORDER], X.ACCEPTED)   # work.seen, without the view
    db_rows, infos = _adopted_as_held(report, work, db_rows, infos)
    if not db_rows and not infos:
        return digest if open_cids else None   # all held as listed: no plan, nothing to write or read
    db_open = [xr.view(row) for row in sorted(db_rows, key=lambda r: (r[_CREATED], r[_CID]))]
    listed = [_ex_open(o) for o in infos]
    db_final = []
    for ex in listed:
        if ex.client_order_id and ex.client_order_id not in open_cids and is_ours(ex.client_order_id):
            row = xr.get_exchange_order(ex.client_order_id)
            if row is not None and row.state in FINAL_STATES:
                db_final.append(row)
    plan = reconcile(db_open, listed, is_ours, db_final)
    want_trades = False
    reported_filled: dict[str, Decimal] = {}

    # adopt: apply the exchange's status (state, mapping); fills the DB lacks are fetched below
    items = []
    for adopted in plan.adopt:
        db, ex = adopted.db, adopted.exchange
        report.adopted.append(db.client_order_id)
        work.seen(db)
        if adopted.fills_missing > 0:
            want_trades = True
            reported_filled[db.client_order_id] = ex.filled
        if adopted.target is db.state and db.exchange_order_id == ex.exchange_order_id:
            continue    # the plan's own verdict: status_call would write nothing (100,000 of them at a start)
        call = work.status_call(db, "open", ex.filled, ex.amount, ex.exchange_order_id)
        if call is not None:
            items.append((db, call))
    work.apply_statuses(items)

    # open in the DB, not listed: a targeted lookup decides
    not_found_calls: list[tuple[DbOrder, tuple]] = []
    items = []
    for db in plan.lookup:
        work.seen(db)
        outcome, info = work.lookup(db)
        kind, call = work.settle_lookup(db, outcome, info)
        if outcome == "found" and info is not None and (info.filled or ZERO) > db.filled:
            want_trades = True
            reported_filled[db.client_order_id] = info.filled
        if kind == "status":
            if call is not None:
                items.append((db, call))
            else:
                report.resolved[db.client_order_id] = db.state
        elif kind == "not_found" and call is not None:
            not_found_calls.append((db, call))
        else:
            report.unresolved.append(db.client_order_id)
    for cid, state in work.apply_statuses(items).items():
        report.resolved[cid] = state
    for (db, call), (ok, value) in zip(not_found_calls, work.write([c for _, c in not_found_calls])):
        if not ok:
            work.refused(db, value, "not-found resolution")
            report.unresolved.append(db.client_order_id)
        elif value is None:          # PENDING_CANCEL: the note is recorded, the verdict left to an operator
            work.changes += 1
            report.unresolved.append(db.client_order_id)
        else:
            work.state_written(db, value)
            report.resolved[db.client_order_id] = value

    # ours by prefix, unknown to the DB: cancel and report
    for ex in plan.cancel_unknown:
        what = (f"unknown order of ours {ex.client_order_id} (exchange id {ex.exchange_order_id}, {ex.side} "
                f"{ex.amount} {symbol} @ {ex.price}, {ex.filled} filled)")
        try:
            work.account.cancel_order(symbol, order_id=ex.exchange_order_id)
        except DefinitiveError as exc:
            if not exc.not_found:
                report.cancel_failed.append(ex.client_order_id)
                work.alert("unknown_exchange_order", f"{acc}:{symbol}:{ex.exchange_order_id}",
                           f"{what}: cancel refused ({exc.kind}: {exc})", level="ERROR")
                continue
        except _TRANSIENT as exc:
            report.cancel_failed.append(ex.client_order_id)
            work.alert("unknown_exchange_order", f"{acc}:{symbol}:{ex.exchange_order_id}",
                       f"{what}: cancel outcome unknown ({exc.kind}); check it", level="ERROR")
            continue
        report.cancelled_unknown.append(ex.client_order_id)
        work.alert("unknown_exchange_order", f"{acc}:{symbol}:{ex.exchange_order_id}", f"{what}: cancelled")

    # not ours: never touched, reported once
    for ex in plan.foreign:
        report.foreign.append(f"{symbol}:{ex.exchange_order_id}")
        work.alert("foreign_exchange_order", f"{acc}:{symbol}:{ex.exchange_order_id}",
                   f"foreign open order {ex.exchange_order_id} (client id {ex.client_order_id!r}, {ex.side} "
                   f"{ex.amount} {symbol} @ {ex.price}) left alone")

    for conflict in plan.conflicts:
        cid = conflict.exchange.client_order_id or conflict.exchange.exchange_order_id
        report.conflicts.append(cid)
        work.alert("exchange_order_conflict", f"{acc}:{cid}",
                   f"{cid} ({symbol}, exchange id {conflict.exchange.exchange_order_id}): {conflict.reason}",
                   level="ERROR")

    # fills the DB lacks: read the symbol's trades of the lookback window, apply what is ours
    if want_trades:
        since = int((work.now - lookback) * 1000)
        trades = work.fetch_trades(symbol, since, all_pages=True)   # transient errors raise: retry the whole
        report.fills_applied += work.apply_trades(trades)
        for cid, filled in reported_filled.items():
            row = xr.get_exchange_order(cid)
            if row is not None and row.filled < filled:
                report.fills_missing.append(cid)
                logger.warning("exchange {}: {} shows {} filled on the exchange, {} in the DB after reading "
                               "{:g} h of trades", acc, cid, filled, row.filled, lookback / 3600)


# ---------------------------------------------------------------- one round of the update stream


def poll_updates(account: Any, writer: Any, *, symbols: Collection[str] | None = None,
                 since_ms: Mapping[str, int], now: float,
                 unmatched: Mapping[str, tuple[float, int, bool]] | None = None,
                 looked_up: Mapping[str, float] | None = None,
                 trades_for: Collection[str] | None = None,
                 lookback: float = DEFAULT_LOOKBACK, not_found_grace: float = NOT_FOUND_GRACE,
                 settle: float = SETTLE, recent: float = RECENT, max_lookups: int = MAX_LOOKUPS,
                 lookup_every: float = LOOKUP_EVERY, unmatched_retry: float = UNMATCHED_RETRY,
                 quiet: Mapping[str, tuple[bytes, tuple, float]] | None = None,
                 opened: OpenState | None = None) -> UpdateRound:
    """One round of the order-update stream (see the module docstring). Never raises ExchangeError.

    ``symbols``: the symbols to look at (None: ``active_symbols`` of the account); symbols with
    unmatched trades pending are added. ``since_ms``: per symbol, where the previous round's trades
    ended (missing: ``now - lookback``). ``unmatched`` / ``looked_up``: the previous round's
    ``UpdateRound.unmatched`` / ``.looked_up`` (an order is looked up at most every ``lookup_every`` s).
    ``trades_for``: symbols whose trades are read whatever the evidence (None: all of them);
    others are read only when the exchange shows fills the DB lacks or fills are owed. ``quiet``: the previous
    round's ``UpdateRound.quiet``: while a symbol's DB open rows (their fingerprint: count, newest and summed
    ``updated_at``, ...) and the venue's reply (byte for byte, by digest) are both what a status pass found with
    nothing to do, at most ``QUIET_MAX_AGE`` ago, neither the reply is decoded nor the rows read: the same inputs
    would find nothing again (a quiet pass has no order missing from the listing, so nothing time-dependent
    either). Its trades are read as always: fills are still seen. ``opened``: the account's ``open_state`` as the
    caller read it just before (None: read here)."""
    work = _Work(account, writer, now, not_found_grace)
    acc = work.account_id
    opened = opened if opened is not None else open_state(acc)
    fingerprints = opened.fingerprints
    quiet_before = {symbol: q for symbol, q in (quiet or {}).items()
                    if q[1] == fingerprints.get(symbol) and now - q[2] < QUIET_MAX_AGE}
    # the rows are read only for symbols that may need them: all of them unless a quiet pass may be skipped
    db_open = _open_rows_by_symbol(acc) if len(quiet_before) < len(fingerprints) else {}
    owed = opened.owed
    pending = dict(unmatched or {})
    pending_symbols = {key.split("\x1f", 1)[0] for key in pending}
    wanted = set(opened.active if symbols is None else symbols) | pending_symbols
    floor_ms = int((now - lookback) * 1000)
    next_since = {s: max(v, floor_ms) for s, v in since_ms.items()}
    state = _RoundState(work=work, pending=pending, lookups_left=max_lookups, settle=settle,
                        unmatched_retry=unmatched_retry, floor_ms=floor_ms, next_since=next_since,
                        trades_for=None if trades_for is None else set(trades_for), owed=owed,
                        looked_up=dict(looked_up or {}), lookup_every=lookup_every, quiet_before=quiet_before,
                        fingerprints=fingerprints)

    def one(symbol: str) -> None:
        if symbol in db_open or symbol not in fingerprints:
            rows = db_open.get(symbol, [])
            _poll_symbol(state, symbol, lambda: rows, _Claims(rows) if rows else None)
        else:   # read only if the venue's reply changed
            _poll_symbol(state, symbol, lambda: _open_rows_by_symbol(acc, symbol).get(symbol, []))

    ordered = sorted(wanted)
    if len(ordered) <= 1:
        for symbol in ordered:
            one(symbol)
    else:
        gevent.pool.Pool(SYMBOL_CONCURRENCY).map(one, ordered)
    in_flight = account_in_flight(acc, now, recent=recent)
    # lookups are remembered for orders still open (of the symbols whose rows were read: a skipped symbol's last
    # pass had no order to look up)
    looked = {cid: at for cid, at in state.looked_up.items() if cid in state.open_cids}
    return UpdateRound(events=work.events(), next_since_ms=state.next_since, in_flight=in_flight,
                       unmatched=state.pending, looked_up=looked, errors=tuple(work.errors),
                       polled=tuple(ordered), listed=tuple(sorted(state.listed)),
                       trades_fetched=tuple(sorted(state.trades_fetched)), lookups=state.lookups,
                       changes=work.changes, quiet=state.quiet, skipped=tuple(sorted(state.skipped)))


@dataclass
class _RoundState:
    work: _Work
    pending: dict[str, tuple[float, int, bool]]
    lookups_left: int
    settle: float
    unmatched_retry: float
    floor_ms: int
    next_since: dict[str, int]
    trades_for: set[str] | None
    owed: set[str]
    looked_up: dict[str, float]
    lookup_every: float
    quiet_before: dict[str, tuple[bytes, tuple, float]]
    fingerprints: dict[str, tuple]
    trades_fetched: set[str] = field(default_factory=set)
    open_cids: set[str] = field(default_factory=set)
    listed: set[str] = field(default_factory=set)
    lookups: int = 0
    quiet: dict[str, tuple[bytes, tuple, float]] = field(default_factory=dict)
    skipped: set[str] = field(default_factory=set)


def _unmatched_key(t: TradeInfo) -> str:
    return f"{t.symbol}\x1f{t.id}\x1f{t.side}"


def _poll_symbol(st: _RoundState, symbol: str, read_rows: Callable[[], list[tuple]],
                 claims: _Claims | None = None) -> None:
    """One symbol's round. ``claims``: over its rows when they were read before the listing (then the records
    that say what the DB holds are not even read)."""
    work = st.work
    evidence = symbol in st.owed or any(k.startswith(f"{symbol}\x1f") for k in st.pending)
    fingerprint = st.fingerprints.get(symbol)
    if fingerprint is not None:    # open orders in the DB
        st.listed.add(symbol)
        before = st.quiet_before.get(symbol)
        known = before[0] if before is not None else None
        try:
            digest, listed = _fetch_open(work.account, symbol, known, claims)
        except DefinitiveError as exc:
            work.definitive(exc, f"listing open orders of {symbol}", f"{symbol}:fetch_open_orders")
            digest = listed = None
        except _TRANSIENT as exc:
            work.transient(exc, f"listing open orders of {symbol}")
            digest = listed = None
        if listed is None and digest is not None:   # the same reply over the same rows: nothing to do again
            st.skipped.add(symbol)
            st.quiet[symbol] = before
        elif listed is not None:
            db_rows = read_rows()
            st.open_cids.update(row[_CID] for row in db_rows)
            held, rest, listed = (claims.settle(work.account, symbol, listed, db_rows) if claims is not None
                                  else ([], db_rows, listed))
            if held:    # listed as the DB holds them: nothing to write, no fills missing (as _statuses finds them)
                found, quiet = _statuses(st, symbol, rest, listed) if rest or listed else (False, True)
            else:
                found, quiet = _statuses(st, symbol, db_rows, listed) if db_rows else (False, False)
            evidence |= found
            if quiet and digest is not None and db_rows:
                st.quiet[symbol] = (digest, fingerprint, work.now)
        else:
            st.open_cids.update(row[_CID] for row in read_rows())   # listing failed: lookups remembered
    if st.trades_for is not None and symbol not in st.trades_for and not evidence:
        return
    since = st.next_since.get(symbol, st.floor_ms)
    try:
        trades = work.fetch_trades(symbol, since, all_pages=False)
    except DefinitiveError as exc:
        work.definitive(exc, f"reading trades of {symbol}", f"{symbol}:fetch_my_trades")
        return
    except _TRANSIENT as exc:
        work.transient(exc, f"reading trades of {symbol}")
        return
    st.trades_fetched.add(symbol)
    _trades(st, symbol, since, trades)


def _listed_as_held(state: ExOrderState, filled: Decimal, amount: Decimal) -> bool:
    """A listing as open with these quantities says what the DB holds: ``apply_exchange_status(state, "open",
    filled, amount)`` is ``state`` (ACCEPTED with nothing filled, PARTIALLY_FILLED with part of it)."""
    if state is X.ACCEPTED:
        return filled == ZERO < amount
    return state is X.PARTIALLY_FILLED and ZERO < filled < amount


def _statuses(st: _RoundState, symbol: str, db_rows: list[tuple], listed: list[OrderInfo]) -> tuple[bool, bool]:
    """Apply the open list and look up what it no longer shows. (whether some fills are missing in the DB,
    whether the pass was quiet: every row listed as the DB holds it and nothing listed that it lacks)."""
    work = st.work
    evidence = False
    by_cid = {o.client_order_id: o for o in listed if o.client_order_id}
    by_xid = {o.id: o for o in listed}
    items = []
    missing: list[DbOrder] = []
    accepted = X.ACCEPTED.value
    for row in db_rows:
        ex = by_cid.get(row[_CID])
        if ex is None and row[_XID] is not None:
            candidate = by_xid.get(row[_XID])
            ex = candidate if candidate is not None and not candidate.client_order_id else None
        if (ex is not None and row[_STATE] == accepted and ex.id == row[_XID] and not ex.filled and ex.amount
                and ex.amount > ZERO):
            # the usual case, every round for every resting order: listed as the DB holds it (nothing filled,
            # mapped): nothing to write and no fills missing, so not even a view of the row
            continue
        db = xr.view(row)
        work.seen(db)
        if ex is None:
            missing.append(db)
            continue
        filled = ex.filled or ZERO
        if filled > db.filled:
            evidence = True
        if not ex.amount:
            continue
        if ex.id == db.exchange_order_id and _listed_as_held(db.state, filled, ex.amount):
            continue    # status_call would write nothing
        call = work.status_call(db, "open", filled, ex.amount, ex.id)
        if call is not None:
            items.append((db, call))
    # not quiet: a lookup's turn depends on the time, evidence reads trades, a write changes the rows
    quiet = not missing and not evidence and not items
    work.apply_statuses(items)

    # listed, ours, but not among the DB's open orders: unknown or held final (the reconciliation's job
    # at start; here only reported, once)
    known = {row[_CID] for row in db_rows}
    for ex in listed:
        cid = ex.client_order_id
        if not cid or cid in known or not is_ours(cid):
            continue
        quiet = False
        row = xr.get_exchange_order(cid)
        if row is None:
            work.alert("unknown_exchange_order", f"{work.account_id}:{symbol}:{ex.id}",
                       f"open order {cid} (exchange id {ex.id}) carries our prefix but is not in the orders DB; "
                       f"it was not placed by this process since start: check it", level="ERROR")
        elif row.state in FINAL_STATES:
            work.alert("exchange_order_conflict", f"{work.account_id}:{cid}",
                       f"{cid} ({symbol}, exchange id {ex.id}): {row.state} in the DB but open on the exchange",
                       level="ERROR")

    # targeted lookups, oldest event first, capped per round; not while the order's own request may be landing
    due = sorted((db for db in missing if work.now - db.updated_at >= st.settle
                  and work.now - st.looked_up.get(db.client_order_id, float("-inf")) >= st.lookup_every),
                 key=lambda o: (st.looked_up.get(o.client_order_id, o.updated_at), o.created_at, o.client_order_id))
    items = []
    not_found_calls: list[tuple[DbOrder, tuple]] = []
    for db in due:
        if st.lookups_left <= 0:
            break
        st.lookups_left -= 1
        st.lookups += 1
        st.looked_up[db.client_order_id] = work.now
        outcome, info = work.lookup(db)
        if outcome == "found" and info is not None and (info.filled or ZERO) > db.filled:
            evidence = True
        kind, call = work.settle_lookup(db, outcome, info)
        if kind == "status" and call is not None:
            items.append((db, call))
        elif kind == "not_found" and call is not None:
            not_found_calls.append((db, call))
    work.apply_statuses(items)
    for (db, _), (ok, value) in zip(not_found_calls, work.write([c for _, c in not_found_calls])):
        if not ok:
            work.refused(db, value, "not-found resolution")
        elif value is None:          # PENDING_CANCEL: the note is recorded, the verdict left to an operator
            work.changes += 1
        else:
            logger.info("exchange {}: {} not found on the exchange {:.1f}s after its last event: {}",
                        work.account_id, db.client_order_id, work.now - db.updated_at, value)
            work.state_written(db, value)
    return evidence, quiet


def _trades(st: _RoundState, symbol: str, since: int, trades: list[TradeInfo]) -> None:
    work = st.work
    pending = st.pending
    seen_now: set[str] = set()

    def on_unmatched(t: TradeInfo) -> None:
        key = _unmatched_key(t)
        seen_now.add(key)
        first, rounds, reported = pending.get(key, (work.now, 0, False))
        rounds += 1
        if not reported and rounds >= UNMATCHED_ROUNDS and work.now - first >= st.unmatched_retry:
            work.alert("exchange_fill_unmatched", f"{work.account_id}:{symbol}:{t.id}:{t.side}",
                       f"trade {t.id} ({t.side} {t.amount} {symbol} @ {t.price}, exchange order {t.order_id}) "
                       f"matches no order in the orders DB after {rounds} rounds; not recorded", level="ERROR")
            reported = True
        pending[key] = (first, rounds, reported)

    work.apply_trades(trades, on_unmatched)
    # trades that matched by now (their order was mapped) are no longer pending
    for key in [k for k in pending if k.startswith(f"{symbol}\x1f") and k not in seen_now]:
        del pending[key]
    newest = max((t.timestamp_ms or since for t in trades), default=since)
    waiting = [t.timestamp_ms or since for t in trades
               if _unmatched_key(t) in seen_now and not pending[_unmatched_key(t)][2]]
    st.next_since[symbol] = max(since, min([newest, *waiting]))
