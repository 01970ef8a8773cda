"""Units of work and reads. Units run inside the writer's transaction: DB statements only, no I/O, no yields."""
from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import msgpack
import peewee as pw

from domain.ids import refund_request_id
from domain.money import ZERO
from domain.payment import FeeRequirements, PaymentBreakdown
from domain.routing import (PaymentDecision, PaymentDecisionKind, Route, RouteKind, SnapshotFacts,
                            refund_memo)
from domain.states import OrderState, check_transition
from storage.models import (Alert, MoneyMovement, Order, OrderStateChange, PaymentTally, PollCursor,
                            Snapshot)

CHUNK = 400  # keep IN (...) lists well below SQLite's variable limit


def _chunks(items: Sequence, size: int = CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# ---------------------------------------------------------------- snapshots

def read_cursor(name: str) -> PollCursor | None:
    return PollCursor.get_or_none(PollCursor.name == name)


def store_snapshot_page(items: Sequence[tuple[SnapshotFacts, dict]], cursor_name: str,
                        offset: str | None, offset_ns: int | None) -> list[SnapshotFacts]:
    """Insert the snapshots not seen before and move the cursor forward, in one transaction.

    Returns the newly stored ones (duplicates from the inclusive offset, or from
    Mixin repeating itself, are dropped here by primary key)."""
    now = time.time()
    unique: dict[str, tuple[SnapshotFacts, dict]] = {}
    for facts, raw in items:
        unique.setdefault(facts.snapshot_id, (facts, raw))
    ids = list(unique)
    existing: set[str] = set()
    for chunk in _chunks(ids):
        existing.update(s for (s,) in Snapshot.select(Snapshot.snapshot_id)
                        .where(Snapshot.snapshot_id.in_(list(chunk))).tuples())
    fresh = [unique[i] for i in ids if i not in existing]
    rows = [{
        "snapshot_id": f.snapshot_id, "created_at": f.created_at, "created_ns": f.created_ns,
        "asset_id": f.asset_id, "amount": f.amount, "opponent_id": f.opponent_id, "memo": f.memo_hex,
        "raw": msgpack.packb(raw, use_bin_type=True), "inserted_at": now,
    } for f, raw in fresh]
    for chunk in _chunks(rows, 100):
        Snapshot.insert_many(list(chunk)).execute()
    if offset is not None and offset_ns is not None:
        current = PollCursor.get_or_none(PollCursor.name == cursor_name)
        if current is None:
            PollCursor.create(name=cursor_name, offset=offset, offset_ns=offset_ns, updated_at=now)
        elif offset_ns > current.offset_ns:
            PollCursor.update(offset=offset, offset_ns=offset_ns, updated_at=now).where(
                PollCursor.name == cursor_name).execute()
    return [f for f, _ in fresh]


def facts_from_row(row: Snapshot) -> SnapshotFacts:
    raw = msgpack.unpackb(row.raw, raw=False)
    return SnapshotFacts(
        snapshot_id=row.snapshot_id, created_at=row.created_at, created_ns=row.created_ns,
        asset_id=row.asset_id, amount=row.amount, opponent_id=row.opponent_id, memo_hex=row.memo,
        is_deposit=bool(raw.get("deposit")), is_withdrawal=bool(raw.get("withdrawal")),
    )


def unrouted_snapshots(limit: int = 5000) -> list[SnapshotFacts]:
    query = (Snapshot.select().where(Snapshot.outcome.is_null())
             .order_by(Snapshot.created_ns, Snapshot.snapshot_id).limit(limit))
    return [facts_from_row(r) for r in query]


def _queue_refund(facts: SnapshotFacts, code: str, order_id: str | None, now: float) -> str:
    request_id = refund_request_id(facts.snapshot_id)
    MoneyMovement.insert(
        request_id=request_id, kind="refund", cause=f"refund:{facts.snapshot_id}", order_id=order_id,
        snapshot_id=facts.snapshot_id, asset_id=facts.asset_id, amount=facts.amount,
        recipient_id=facts.opponent_id, memo=refund_memo(facts.snapshot_id, code), state="queued",
        created_at=now, updated_at=now,
    ).on_conflict_ignore().execute()
    return request_id


def _raise_alert(kind: str, subject: str, message: str, now: float) -> None:
    Alert.insert(kind=kind, subject=subject, message=message, created_at=now).on_conflict_ignore().execute()


def record_routes(routed: Sequence[tuple[SnapshotFacts, Route]]) -> list[str]:
    """Write each snapshot's routing outcome (once) and queue the refunds it implies.

    Returns the request ids of refunds queued. A snapshot that already has an
    outcome keeps it: re-routing after a crash never doubles anything."""
    now = time.time()
    refunds: list[str] = []
    for facts, route in routed:
        updated = (Snapshot.update(outcome=route.kind.value, reason=route.reason, order_id=route.order_id,
                                   pair_id=route.pair_id, routed_at=now)
                   .where((Snapshot.snapshot_id == facts.snapshot_id) & Snapshot.outcome.is_null())
                   .execute())
        if not updated:
            continue
        if route.kind is RouteKind.REFUND:
            refunds.append(_queue_refund(facts, route.code, None, now))
            Snapshot.update(applied=True, applied_at=now).where(
                Snapshot.snapshot_id == facts.snapshot_id).execute()
        elif route.kind is RouteKind.ATTENTION:
            _raise_alert("unrefundable_snapshot", facts.snapshot_id, route.reason, now)
        elif route.kind in (RouteKind.IGNORE, RouteKind.TOPUP):
            Snapshot.update(applied=True, applied_at=now).where(
                Snapshot.snapshot_id == facts.snapshot_id).execute()
    return refunds


def raise_alert(kind: str, subject: str, message: str) -> None:
    _raise_alert(kind, subject, message, time.time())


# ---------------------------------------------------------------- orders

@dataclass
class OrderView:
    """An order as its actor keeps it in memory (mirrors the row after each commit)."""
    order_id: str
    pair_id: str
    state: OrderState
    state_reason: str
    user_id: str | None
    fees: FeeRequirements
    first_payment_at: float | None
    deadline_at: float | None
    created_at: float
    tallies: dict[str, Decimal] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Order, tallies: dict[str, Decimal]) -> OrderView:
        return cls(
            order_id=row.order_id, pair_id=row.pair_id, state=OrderState(row.state),
            state_reason=row.state_reason, user_id=row.user_id,
            fees=FeeRequirements(row.base_fee_asset_id, row.base_fee_amount, row.quote_fee_asset_id,
                                 row.quote_fee_amount, row.market_making_fee_percent),
            first_payment_at=row.first_payment_at, deadline_at=row.deadline_at, created_at=row.created_at,
            tallies=tallies,
        )


def tallies_of(order_id: str) -> dict[str, Decimal]:
    return {t.asset_id: t.amount for t in PaymentTally.select().where(PaymentTally.order_id == order_id)}


def load_order(order_id: str) -> OrderView | None:
    row = Order.get_or_none(Order.order_id == order_id)
    return None if row is None else OrderView.from_row(row, tallies_of(order_id))


def pending_snapshots_of(order_id: str) -> list[SnapshotFacts]:
    """Snapshots routed to this order that its actor has not consumed yet (crash between route and apply)."""
    query = (Snapshot.select()
             .where((Snapshot.order_id == order_id) & (Snapshot.outcome == RouteKind.ORDER.value)
                    & (Snapshot.applied == False))  # noqa: E712
             .order_by(Snapshot.created_ns, Snapshot.snapshot_id))
    return [facts_from_row(r) for r in query]


def orders_to_recover(final_states: Iterable[str]) -> list[tuple[str, str]]:
    """(order_id, pair_id) of every order an actor must own after a start."""
    found: dict[str, str] = {}
    for order_id, pair_id in (Order.select(Order.order_id, Order.pair_id)
                              .where(Order.state.not_in(list(final_states))).tuples()):
        found[order_id] = pair_id
    pending = (Snapshot.select(Snapshot.order_id, Snapshot.pair_id)
               .where((Snapshot.outcome == RouteKind.ORDER.value) & (Snapshot.applied == False))  # noqa: E712
               .distinct())
    for order_id, pair_id in pending.tuples():
        found.setdefault(order_id, pair_id)
    return sorted(found.items())


def _transition(row: Order, target: OrderState, reason: str, now: float) -> None:
    check_transition(OrderState(row.state), target, row.order_id)
    OrderStateChange.create(order_id=row.order_id, from_state=row.state, to_state=target.value,
                            reason=reason, at=now)
    row.state = target.value
    row.state_reason = reason
    row.updated_at = now


def create_order(order_id: str, pair_id: str, fees: FeeRequirements, now: float) -> Order:
    row = Order.create(
        order_id=order_id, pair_id=pair_id, state=OrderState.PAYMENT_PENDING.value,
        state_reason="waiting for payment", base_fee_asset_id=fees.base_fee_asset_id,
        base_fee_amount=fees.base_fee_amount, quote_fee_asset_id=fees.quote_fee_asset_id,
        quote_fee_amount=fees.quote_fee_amount, market_making_fee_percent=fees.market_making_fee_percent,
        created_at=now, updated_at=now,
    )
    OrderStateChange.create(order_id=order_id, from_state=None, to_state=OrderState.PAYMENT_PENDING.value,
                            reason="first payment seen", at=now)
    return row


@dataclass(frozen=True)
class ApplyOutcome:
    snapshot_id: str
    result: str            # "accepted", "refunded", "attention", "duplicate"
    reason: str
    refund_request_id: str | None
    order: OrderView


def apply_payment(order_id: str, pair_id: str, new_order_fees: FeeRequirements | None,
                  facts: SnapshotFacts, decide, timeout: float, now: float) -> ApplyOutcome:
    """Apply one payment to an order, exactly once (the snapshot's applied flag gates it).

    `decide(order_view, facts) -> PaymentDecision` is the pure rule; it runs here so
    the decision and its effects commit together."""
    snap = Snapshot.get_by_id(facts.snapshot_id)
    row = Order.get_or_none(Order.order_id == order_id)
    if row is None:
        if new_order_fees is None:
            raise LookupError(f"order {order_id} does not exist and no fee requirements were given")
        row = create_order(order_id, pair_id, new_order_fees, now)
    if snap.applied:
        return ApplyOutcome(facts.snapshot_id, "duplicate", "already applied", None,
                            OrderView.from_row(row, tallies_of(order_id)))
    view = OrderView.from_row(row, tallies_of(order_id))
    decision: PaymentDecision = decide(view, facts)
    refund_id = None
    if decision.kind is PaymentDecisionKind.REFUND:
        refund_id = _queue_refund(facts, decision.code, order_id, now)
        Snapshot.update(outcome=RouteKind.REFUND.value, reason=decision.reason, applied=True,
                        applied_at=now).where(Snapshot.snapshot_id == facts.snapshot_id).execute()
        result = "refunded"
    else:
        tally = PaymentTally.get_or_none((PaymentTally.order_id == order_id)
                                         & (PaymentTally.asset_id == facts.asset_id))
        if tally is None:
            PaymentTally.create(order_id=order_id, asset_id=facts.asset_id, amount=facts.amount, payments=1)
        else:
            PaymentTally.update(amount=tally.amount + facts.amount, payments=tally.payments + 1).where(
                (PaymentTally.order_id == order_id) & (PaymentTally.asset_id == facts.asset_id)).execute()
        Snapshot.update(applied=True, applied_at=now).where(
            Snapshot.snapshot_id == facts.snapshot_id).execute()
        if decision.kind is PaymentDecisionKind.ATTENTION:
            if row.state != OrderState.ATTENTION.value:
                _transition(row, OrderState.ATTENTION, decision.reason, now)
            result = "attention"
        else:
            if row.user_id is None:
                row.user_id = facts.opponent_id
                row.first_payment_at = now
                row.deadline_at = now + timeout
            result = "accepted"
        row.updated_at = now
        row.save()
    return ApplyOutcome(facts.snapshot_id, result, decision.reason, refund_id,
                        OrderView.from_row(row, tallies_of(order_id)))


def complete_order(order_id: str, breakdown: PaymentBreakdown, reason: str, now: float) -> OrderView:
    row = Order.get_by_id(order_id)
    _transition(row, OrderState.PAYMENT_COMPLETE, reason, now)
    row.breakdown = json.dumps(breakdown.as_dict(), sort_keys=True)
    row.completed_at = now
    row.save()
    return OrderView.from_row(row, tallies_of(order_id))


def refund_order(order_id: str, reason: str, code: str, now: float) -> tuple[OrderView, list[str]]:
    """Move the order to `refunding` and queue a refund of every payment it took."""
    row = Order.get_by_id(order_id)
    _transition(row, OrderState.REFUNDING, reason, now)
    row.save()
    request_ids = []
    taken = Snapshot.select().where((Snapshot.order_id == order_id) & (Snapshot.outcome == RouteKind.ORDER.value)
                                    & (Snapshot.applied == True))  # noqa: E712
    for snap in taken.order_by(Snapshot.created_ns):
        facts = facts_from_row(snap)
        if not facts.refundable:
            _raise_alert("unrefundable_snapshot", facts.snapshot_id,
                         f"order {order_id} is refunding but payment {facts.snapshot_id} came from outside "
                         f"Mixin: return it by withdrawal", now)
            continue
        request_ids.append(_queue_refund(facts, code, order_id, now))
    return OrderView.from_row(row, tallies_of(order_id)), request_ids


def set_order_state(order_id: str, target: OrderState, reason: str, now: float) -> OrderView:
    row = Order.get_by_id(order_id)
    _transition(row, target, reason, now)
    row.save()
    return OrderView.from_row(row, tallies_of(order_id))


def note_order(order_id: str, reason: str, now: float, *, only_in: OrderState | None = None) -> None:
    """Update the human-readable reason without a state change (e.g. 'refund queued, not sent')."""
    query = Order.update(state_reason=reason, updated_at=now).where(Order.order_id == order_id)
    if only_in is not None:
        query = query.where((Order.order_id == order_id) & (Order.state == only_in.value))
    query.execute()


# ---------------------------------------------------------------- outbox

def movements_in_states(states: Iterable[str]) -> list[MoneyMovement]:
    return list(MoneyMovement.select().where(MoneyMovement.state.in_(list(states)))
                .order_by(MoneyMovement.created_at, MoneyMovement.request_id))


def get_movement(request_id: str) -> MoneyMovement | None:
    return MoneyMovement.get_or_none(MoneyMovement.request_id == request_id)


def update_movement(request_id: str, **fields) -> None:
    fields["updated_at"] = time.time()
    MoneyMovement.update(**fields).where(MoneyMovement.request_id == request_id).execute()


def order_movements(order_id: str) -> list[MoneyMovement]:
    return list(MoneyMovement.select().where(MoneyMovement.order_id == order_id))


def order_history(order_id: str) -> list[OrderStateChange]:
    return list(OrderStateChange.select().where(OrderStateChange.order_id == order_id)
                .order_by(OrderStateChange.at, OrderStateChange.id))


def list_orders(state: str | None = None, limit: int = 200) -> list[Order]:
    query = Order.select().order_by(Order.created_at.desc()).limit(limit)
    if state:
        query = query.where(Order.state == state)
    return list(query)


def sum_tallies() -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for t in PaymentTally.select():
        totals[t.asset_id] = totals.get(t.asset_id, ZERO) + t.amount
    return totals


__all__ = [name for name in dir() if not name.startswith("_") and name not in {"pw", "json", "time", "msgpack"}]


def refund_unapplied(snapshots: Sequence[SnapshotFacts], code: str, reason: str, order_id: str | None,
                     now: float) -> list[str]:
    """Refund payments an order could not take at all (e.g. no withdrawal fee for the pair's asset)."""
    ids = []
    for facts in snapshots:
        updated = (Snapshot.update(outcome=RouteKind.REFUND.value, reason=reason, applied=True, applied_at=now)
                   .where((Snapshot.snapshot_id == facts.snapshot_id) & (Snapshot.applied == False))  # noqa: E712
                   .execute())
        if updated:
            ids.append(_queue_refund(facts, code, order_id, now))
    return ids
