"""Exchange orders: one strict state machine, deterministic client ids, reconciliation — all pure.

The model is NautilusTrader's order state table (market-making-peers.md §3.2),
restricted to the states a spot limit-order market maker needs:

    INITIALIZED       written to the orders DB, not (known to be) sent yet
    DENIED            refused locally before the request went out (terminal)
    SUBMITTED         the request went out, no definitive answer yet (in flight)
    ACCEPTED          resting on the book
    PARTIALLY_FILLED  resting, some of it traded
    PENDING_CANCEL    a cancel was sent, not yet confirmed
    CANCELED          gone from the book (terminal — but a late fill may still arrive)
    EXPIRED           the exchange expired it (IOC/FOK remainder, self-trade prevention) (terminal)
    REJECTED          the exchange refused it or does not know it (terminal)
    FILLED            fully traded (terminal)

Left out of Nautilus's set: EMULATED, RELEASED, TRIGGERED (no emulated or
conditional orders), PENDING_UPDATE (we never amend: a quote moves by cancel
and new order). DENIED is kept: a reserved row that is refused by a local check
needs a terminal state that says "never sent".

Transport errors are never verdicts: "not found" below means an explicit
not-found answer to a targeted lookup (Hummingbot issue #8457, peers §2.3).
"""
from __future__ import annotations

import enum
import hashlib
import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

ZERO = Decimal(0)


class ExOrderState(str, enum.Enum):
    INITIALIZED = "initialized"
    DENIED = "denied"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    PENDING_CANCEL = "pending_cancel"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"
    FILLED = "filled"

    def __str__(self) -> str:
        return self.value


X = ExOrderState

# Nautilus's Python `_ORDER_STATE_TABLE`, minus the states we do not use.
TRANSITIONS: dict[ExOrderState, frozenset[ExOrderState]] = {
    # INITIALIZED → REJECTED/ACCEPTED/CANCELED/EXPIRED are Nautilus's "external order" edges; for us they
    # are a reserved order found (or not found) on the exchange by reconciliation after a crash.
    X.INITIALIZED: frozenset({X.DENIED, X.SUBMITTED, X.REJECTED, X.ACCEPTED, X.CANCELED, X.EXPIRED}),
    X.SUBMITTED: frozenset({X.PENDING_CANCEL, X.REJECTED, X.CANCELED, X.ACCEPTED, X.PARTIALLY_FILLED,
                            X.FILLED}),
    X.ACCEPTED: frozenset({X.REJECTED, X.PENDING_CANCEL, X.CANCELED, X.EXPIRED, X.PARTIALLY_FILLED,
                           X.FILLED}),
    # PENDING_CANCEL → ACCEPTED / PARTIALLY_FILLED: the cancel was rejected (previous status restored).
    X.PENDING_CANCEL: frozenset({X.REJECTED, X.PENDING_CANCEL, X.CANCELED, X.EXPIRED, X.ACCEPTED,
                                 X.PARTIALLY_FILLED, X.FILLED}),
    X.PARTIALLY_FILLED: frozenset({X.PENDING_CANCEL, X.CANCELED, X.EXPIRED, X.PARTIALLY_FILLED, X.FILLED}),
    # A fill can race a cancel ("real world possibility").
    X.CANCELED: frozenset({X.PARTIALLY_FILLED, X.FILLED}),
    X.DENIED: frozenset(),
    X.REJECTED: frozenset(),
    X.EXPIRED: frozenset(),
    X.FILLED: frozenset(),
}

# Not final: the order is (or may be) live on the exchange and locks funds. INITIALIZED counts: it may
# have been sent just before a crash.
OPEN_STATES = frozenset({X.INITIALIZED, X.SUBMITTED, X.ACCEPTED, X.PARTIALLY_FILLED, X.PENDING_CANCEL})
# Off the book for good. Only fills can still change a final order (CANCELED → FILLED).
FINAL_STATES = frozenset({X.DENIED, X.REJECTED, X.CANCELED, X.EXPIRED, X.FILLED})
# Acknowledgements an exchange report of a later state proves happened (see `path`).
_IMPLIED = (X.SUBMITTED, X.ACCEPTED)

assert OPEN_STATES | FINAL_STATES == set(ExOrderState) and not OPEN_STATES & FINAL_STATES


class IllegalExTransition(RuntimeError):
    def __init__(self, current: ExOrderState, target: ExOrderState, client_order_id: str = ""):
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "nothing"
        super().__init__(f"exchange order {client_order_id or '?'}: illegal transition {current} -> {target} "
                         f"(allowed from {current}: {allowed})")
        self.current = current
        self.target = target
        self.client_order_id = client_order_id


def check(current: ExOrderState | str, target: ExOrderState | str, client_order_id: str = "") -> None:
    """Raise IllegalExTransition unless `current → target` is an edge of the table."""
    current, target = ExOrderState(current), ExOrderState(target)
    if target not in TRANSITIONS[current]:
        raise IllegalExTransition(current, target, client_order_id)


def can_transition(current: ExOrderState | str, target: ExOrderState | str) -> bool:
    return ExOrderState(target) in TRANSITIONS[ExOrderState(current)]


def path(current: ExOrderState | str, target: ExOrderState | str,
         client_order_id: str = "") -> tuple[ExOrderState, ...]:
    """The states to pass through to reach `target`: () if already there, (target,) for a direct edge.

    Otherwise the shortest route whose intermediate states are only SUBMITTED or ACCEPTED:
    a report of a later state (a fill, "expired") proves the order was sent and acknowledged,
    so those missing events are generated, as Nautilus's reconciliation does (peers §3.3).
    Anything else raises IllegalExTransition."""
    current, target = ExOrderState(current), ExOrderState(target)
    if current is target:
        return ()
    if target in TRANSITIONS[current]:
        return (target,)
    queue: deque[tuple[ExOrderState, tuple[ExOrderState, ...]]] = deque([(current, ())])
    seen = {current}
    while queue:
        state, steps = queue.popleft()
        for step in _IMPLIED:
            if step in seen or step not in TRANSITIONS[state]:
                continue
            route = steps + (step,)
            if target in TRANSITIONS[step]:
                return route + (target,)
            seen.add(step)
            queue.append((step, route))
    raise IllegalExTransition(current, target, client_order_id)


# ---------------------------------------------------------------- client order ids

# "mm<16 hex>-<seq in base 36>": 28 characters at most, so one format fits every venue in the table (Gate's
# order `text` allows 28 after its "t-"; Binance, MEXC and Bybit 36) with room for 36**9 - 1 orders per
# mmflow order. Ids of the first format, "mmflow-<16 hex>-<decimal seq>" (36 at most, too long for Gate once
# seq >= 10000), are still recognised, so orders placed before the change are found and reconciled.
CLIENT_ID_PREFIX = "mm"
_HASH_CHARS = 16          # 64 bits of sha256(order_id): distinct orders never share a prefix in practice
CLIENT_ID_MAX = 28        # the shortest limit in the venue table (gate); tests hold every venue to it
_SEQ_DIGITS = CLIENT_ID_MAX - len(CLIENT_ID_PREFIX) - _HASH_CHARS - 1
MAX_SEQ = 36 ** _SEQ_DIGITS - 1
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_OURS = re.compile(rf"^{CLIENT_ID_PREFIX}[0-9a-f]{{{_HASH_CHARS}}}-([1-9a-z][0-9a-z]{{0,{_SEQ_DIGITS - 1}}})$")
_LEGACY_PREFIX = "mmflow-"
_OURS_LEGACY = re.compile(rf"^{_LEGACY_PREFIX}[0-9a-f]{{{_HASH_CHARS}}}-([1-9][0-9]{{0,11}})$")


def owner_prefix(order_id: str) -> str:
    """The part of every client id of one mmflow order that identifies the order: "mm<16 hex>-"."""
    if not isinstance(order_id, str) or not order_id:
        raise ValueError(f"order id must be a non-empty string, got {order_id!r}")
    digest = hashlib.sha256(f"mmflow:exchange-order:{order_id}".encode()).hexdigest()[:_HASH_CHARS]
    return f"{CLIENT_ID_PREFIX}{digest}-"


def _base36(n: int) -> str:
    digits = ""
    while n:
        n, r = divmod(n, 36)
        digits = _BASE36[r] + digits
    return digits


def client_order_id(order_id: str, seq: int) -> str:
    """Deterministic client order id of the `seq`-th exchange order (1-based) of an mmflow order.

    "mm<16 hex of sha256(order id)>-<seq in base 36>", at most 28 chars of [a-z0-9-]: valid on every
    venue of the table, and the same id on every retry of the same reservation."""
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= MAX_SEQ:
        raise ValueError(f"sequence must be an int in 1..{MAX_SEQ}, got {seq!r}")
    cid = f"{owner_prefix(order_id)}{_base36(seq)}"
    assert len(cid) <= CLIENT_ID_MAX
    return cid


def plain_text(text: str) -> str:
    """Plain decimal text (``format(d, "f")`` as the orders DB stores it, a venue's "60300.00000000") without the
    zeros after its point, nor the point once they are gone: two such texts are one number exactly when these are
    equal, so a listing and a row compare as strings, with no Decimal each (100,000 orders at a start)."""
    return text.rstrip("0").rstrip(".") if "." in text else text


def held_key(client_order_id: str, exchange_order_id: str, side: str, price: str, amount: str) -> tuple[str, ...]:
    """What an open order with nothing filled is, as ``plain_text`` tuples: a row held ACCEPTED and a venue's listing
    of it with the same key say the same thing (the start's adoption without a plan, ``updates._Claims``)."""
    return client_order_id, exchange_order_id, side, plain_text(price), plain_text(amount)


def is_ours(cid: str | None) -> bool:
    """Was this client id made by `client_order_id` (of any mmflow order, either format)?"""
    return isinstance(cid, str) and (_OURS.match(cid) is not None or _OURS_LEGACY.match(cid) is not None)


def seq_of(cid: str) -> int:
    """The sequence number inside one of our client ids (ValueError for anyone else's)."""
    if isinstance(cid, str):
        if m := _OURS.match(cid):
            return int(m.group(1), 36)
        if m := _OURS_LEGACY.match(cid):
            return int(m.group(1))
    raise ValueError(f"{cid!r} is not an mmflow client order id")


# ---------------------------------------------------------------- records

SIDES = ("buy", "sell")


def _decimal(value: object, name: str, *, positive: bool = False, non_negative: bool = False) -> Decimal:
    if not isinstance(value, Decimal) or isinstance(value, bool):
        raise TypeError(f"{name}: {value!r} is a {type(value).__name__}, expected Decimal")
    if not value.is_finite():
        raise ValueError(f"{name}: {value!r} is not finite")
    if positive and value <= 0:
        raise ValueError(f"{name}: {value} must be > 0")
    if non_negative and value < 0:
        raise ValueError(f"{name}: {value} must be >= 0")
    return value


def _side(value: str) -> str:
    if value not in SIDES:
        raise ValueError(f"side must be 'buy' or 'sell', got {value!r}")
    return value


def split_symbol(symbol: str) -> tuple[str, str]:
    """ccxt unified symbol → (base, quote) currency codes: "BTC/USDT" and "BTC/USDT:USDT" → ("BTC", "USDT")."""
    pair = symbol.split(":", 1)[0]
    base, sep, quote = pair.partition("/")
    if not sep or not base or not quote or "/" in quote:
        raise ValueError(f"{symbol!r} is not a ccxt unified symbol BASE/QUOTE")
    return base, quote


@dataclass(frozen=True)
class TradeFill:
    """One trade of one of our orders, as the exchange reports it (ccxt trade, Decimals).

    client_order_id or exchange_order_id (or both) must be given: the order is found by
    the first, else by the second. `fee` may be negative (a maker rebate)."""
    trade_id: str
    client_order_id: str | None
    exchange_order_id: str | None
    symbol: str
    side: str
    price: Decimal
    amount: Decimal
    fee: Decimal
    fee_currency: str | None
    timestamp_ms: int
    liquidity: str | None = None   # maker | taker as the exchange reports it (HuFi weighs them differently)

    def __post_init__(self) -> None:
        if self.liquidity not in (None, "maker", "taker"):
            raise ValueError(f"trade {self.trade_id}: liquidity {self.liquidity!r} is not maker or taker")
        if not self.trade_id:
            raise ValueError("trade_id is required")
        if not self.client_order_id and not self.exchange_order_id:
            raise ValueError(f"trade {self.trade_id}: neither client nor exchange order id")
        _side(self.side)
        split_symbol(self.symbol)
        _decimal(self.price, "price", positive=True)
        _decimal(self.amount, "amount", positive=True)
        _decimal(self.fee, "fee")
        if self.fee != 0 and not self.fee_currency:
            raise ValueError(f"trade {self.trade_id}: a fee of {self.fee} without a currency")
        if isinstance(self.timestamp_ms, bool) or not isinstance(self.timestamp_ms, int):
            raise TypeError(f"timestamp_ms must be an int, got {self.timestamp_ms!r}")


def fill_key(account: str, trade: TradeFill) -> str:
    """Dedup key of one trade of ours: "<account>:<symbol>:<trade_id>:<side>".

    Wider than "<account>:<trade_id>": Binance trade ids are counted per symbol, and a
    trade between two of our own orders on one account has one id and two sides."""
    return f"{account}:{trade.symbol}:{trade.trade_id}:{trade.side}"


@dataclass(frozen=True)
class DbOrder:
    """An exchange order as the orders DB holds it."""
    client_order_id: str
    order_id: str
    exchange_account: str
    symbol: str
    side: str
    price: Decimal
    amount: Decimal
    filled: Decimal
    state: ExOrderState
    exchange_order_id: str | None = None
    level: int = 0
    created_at: float = 0.0
    submitted_at: float | None = None
    updated_at: float = 0.0
    last_error: str | None = None
    hanging: bool = False

    @property
    def remaining(self) -> Decimal:
        return max(self.amount - self.filled, ZERO)


@dataclass(frozen=True)
class ExOpenOrder:
    """An open order as the exchange lists it (ccxt fetch_open_orders, one account)."""
    client_order_id: str | None
    exchange_order_id: str
    symbol: str
    side: str
    price: Decimal
    amount: Decimal
    filled: Decimal = ZERO


# ---------------------------------------------------------------- exchange reports → states

_PROGRESSED = frozenset({X.PARTIALLY_FILLED, X.PENDING_CANCEL}) | FINAL_STATES


def merge_report(current: ExOrderState | str, reported: ExOrderState | str) -> ExOrderState:
    """The state to move to when the exchange reports `reported`, never going back on later news.

    Reports race (a REST ack after the websocket's fill, a status poll taken before our
    cancel landed), so a report older than what we know is kept out:
    - an ack (SUBMITTED/ACCEPTED) after a fill, a cancel request or a final state;
    - "still open" (ACCEPTED/PARTIALLY_FILLED) while our cancel is pending: it proves
      nothing — a rejected cancel is recorded explicitly (`cancel_rejected_target`);
    - anything but FILLED once the order is final: the first "done" verdict stands, and only
      a fill that raced the cancel (CANCELED → FILLED) can follow it. (An order the DB holds
      final but the exchange lists open is caught by `reconcile` as a conflict.)
    Everything else is returned as reported, for the table to judge."""
    current, reported = ExOrderState(current), ExOrderState(reported)
    if reported is current:
        return current
    if current in FINAL_STATES:
        return reported if reported is X.FILLED and can_transition(current, reported) else current
    if reported in _IMPLIED and current in _PROGRESSED:
        return current
    if reported is X.SUBMITTED and current is X.ACCEPTED:
        return current
    if current is X.PENDING_CANCEL and reported in (X.ACCEPTED, X.PARTIALLY_FILLED):
        return current
    return reported


def apply_exchange_status(current: ExOrderState | str, exchange_status: str, filled: Decimal,
                          amount: Decimal) -> ExOrderState:
    """Map a ccxt unified order status and its fill quantities to our target state.

    open → ACCEPTED (nothing filled) or PARTIALLY_FILLED; closed → FILLED (a "closed"
    order not fully filled is done with its remainder gone: CANCELED, fills kept);
    canceled/cancelled → CANCELED; canceling → PENDING_CANCEL; expired → EXPIRED;
    rejected → REJECTED. Whatever the status, filled ≥ amount means FILLED.
    The result goes through `merge_report`, so a stale report never moves an order back.
    The quantities decide states only: fills (with trade ids) are the only thing that
    changes what an order has filled."""
    _decimal(filled, "filled", non_negative=True)
    _decimal(amount, "amount", positive=True)
    status = (exchange_status or "").strip().lower()
    complete = filled >= amount
    if status == "open":
        reported = X.FILLED if complete else X.PARTIALLY_FILLED if filled > 0 else X.ACCEPTED
    elif status == "closed":
        reported = X.FILLED if complete else X.CANCELED
    elif status in ("canceled", "cancelled"):
        reported = X.FILLED if complete else X.CANCELED
    elif status == "canceling":
        reported = X.FILLED if complete else X.PENDING_CANCEL
    elif status == "expired":
        reported = X.FILLED if complete else X.EXPIRED
    elif status == "rejected":
        reported = X.REJECTED
    else:
        raise ValueError(f"unknown exchange order status {exchange_status!r}")
    return merge_report(current, reported)


def resolve_not_found(current: ExOrderState | str) -> ExOrderState | None:
    """What an explicit "order not found" answer to a targeted lookup resolves an order to.

    Nautilus's resolution table (peers §3.3): never-acknowledged or accepted orders the
    exchange does not know were rejected; a partially filled one was canceled with its
    fills kept; PENDING_CANCEL stays unresolved (None: report it, do not guess); final
    orders are left alone (exchanges drop finished orders)."""
    current = ExOrderState(current)
    if current in (X.INITIALIZED, X.SUBMITTED, X.ACCEPTED):
        return X.REJECTED
    if current is X.PARTIALLY_FILLED:
        return X.CANCELED
    return None


def cancel_rejected_target(filled: Decimal) -> ExOrderState:
    """PENDING_CANCEL → the status the order had before the cancel (Nautilus: CancelRejected restores it)."""
    return X.PARTIALLY_FILLED if _decimal(filled, "filled", non_negative=True) > 0 else X.ACCEPTED


def after_fill(current: ExOrderState | str, filled: Decimal, amount: Decimal) -> ExOrderState:
    """The state after a fill has brought the order's filled quantity to `filled`.

    Complete → FILLED (also from PENDING_CANCEL and CANCELED: the fill raced the cancel).
    Partial → PARTIALLY_FILLED from INITIALIZED/SUBMITTED/ACCEPTED/PARTIALLY_FILLED;
    PENDING_CANCEL stays PENDING_CANCEL (the cancel is still pending, and the order is
    open either way); CANCELED and EXPIRED stay as they are (a late fill of a remainder
    that is gone: fills kept). REJECTED and DENIED never change here — a fill for them
    is an anomaly the caller reports, and the fill still counts."""
    current = ExOrderState(current)
    complete = filled >= amount
    if current in (X.REJECTED, X.DENIED, X.FILLED, X.EXPIRED):
        return current
    if complete:
        return X.FILLED
    if current in (X.PENDING_CANCEL, X.CANCELED):
        return current
    return X.PARTIALLY_FILLED


# ---------------------------------------------------------------- startup reconciliation

@dataclass(frozen=True)
class Adopted:
    """A DB order the exchange lists as open: keep managing it."""
    db: DbOrder
    exchange: ExOpenOrder
    target: ExOrderState              # state to move the DB order to (merge_report'ed)
    fills_missing: Decimal            # exchange filled − DB filled, > 0: fetch this order's trades

    @property
    def needs_mapping(self) -> bool:
        return self.db.exchange_order_id is None


@dataclass(frozen=True)
class Conflict:
    """The exchange and the DB disagree about an order of ours: an operator must look."""
    exchange: ExOpenOrder
    db: DbOrder | None
    reason: str


@dataclass
class ReconcilePlan:
    adopt: list[Adopted] = field(default_factory=list)
    lookup: list[DbOrder] = field(default_factory=list)            # open in the DB, not on the exchange
    cancel_unknown: list[ExOpenOrder] = field(default_factory=list)  # ours by prefix, unknown to the DB
    foreign: list[ExOpenOrder] = field(default_factory=list)       # not ours: leave alone, report
    conflicts: list[Conflict] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lookup or self.cancel_unknown or self.conflicts)


def _mismatch(db: DbOrder, ex: ExOpenOrder) -> str | None:
    if db.symbol != ex.symbol or db.side != ex.side:
        return f"DB has {db.side} {db.symbol}, exchange has {ex.side} {ex.symbol}"
    if db.amount != ex.amount or db.price != ex.price:
        return f"DB has {db.amount} @ {db.price}, exchange has {ex.amount} @ {ex.price}"
    if db.exchange_order_id is not None and db.exchange_order_id != ex.exchange_order_id:
        return f"DB maps it to exchange order {db.exchange_order_id}, exchange lists {ex.exchange_order_id}"
    return None


def reconcile(db_open: Sequence[DbOrder], exchange_open: Sequence[ExOpenOrder],
              prefix_of_ours: str | Callable[[str | None], bool] = is_ours,
              db_final: Iterable[DbOrder] = ()) -> ReconcilePlan:
    """Match one account's open orders on the exchange with the DB's open orders of that account.

    Matching is by client order id, falling back to the mapped exchange order id (for an
    exchange that drops client ids). `prefix_of_ours` is a prefix string or a predicate.
    - on both sides, same facts → adopt (with the state to move to and any fills missing);
    - open in the DB, not listed → lookup (a targeted fetch_order decides: apply_exchange_status,
      or resolve_not_found on an explicit not-found);
    - listed, ours, unknown to the DB → cancel_unknown (and report);
    - listed, not ours → foreign (never touched, reported);
    - listed but the DB's facts differ, or the DB holds it final (`db_final`, optional) → conflicts.
    Quoting must not start until the plan's lookups and cancels are done."""
    ours = (lambda cid: isinstance(cid, str) and cid.startswith(prefix_of_ours)) \
        if isinstance(prefix_of_ours, str) else prefix_of_ours
    plan = ReconcilePlan()
    by_cid = {o.client_order_id: o for o in db_open}
    by_xid = {(o.symbol, o.exchange_order_id): o for o in db_open if o.exchange_order_id}
    final_by_cid = {o.client_order_id: o for o in db_final}
    matched: set[str] = set()
    seen_ex: set[tuple[str, str]] = set()
    for ex in exchange_open:
        if (ex.symbol, ex.exchange_order_id) in seen_ex:   # pages overlapping: one order listed twice
            continue
        seen_ex.add((ex.symbol, ex.exchange_order_id))
        db = by_cid.get(ex.client_order_id) if ex.client_order_id else None
        if db is None:
            if not ex.client_order_id:
                db = by_xid.get((ex.symbol, ex.exchange_order_id))
        if db is not None:
            if db.client_order_id in matched:
                plan.conflicts.append(Conflict(ex, db, "listed twice by the exchange"))
                continue
            matched.add(db.client_order_id)
            reason = _mismatch(db, ex)
            if reason is not None:
                plan.conflicts.append(Conflict(ex, db, reason))
                continue
            target = apply_exchange_status(db.state, "open", ex.filled, ex.amount)
            plan.adopt.append(Adopted(db, ex, target, max(ex.filled - db.filled, ZERO)))
        elif ex.client_order_id in final_by_cid:
            db = final_by_cid[ex.client_order_id]
            plan.conflicts.append(Conflict(ex, db, f"{db.state} in the DB but open on the exchange"))
        elif ours(ex.client_order_id):
            plan.cancel_unknown.append(ex)
        else:
            plan.foreign.append(ex)
    plan.lookup = [o for o in db_open if o.client_order_id not in matched]
    return plan
