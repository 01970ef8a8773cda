"""Units and reads of funds added to a running order (memo action 2): the pool, batches, their credit."""
from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal

from domain.ids import unique_object_id
from domain.money import ZERO
from domain.routing import RouteKind
from storage.models import LedgerEntry, MoneyMovement, OrderTopUp, Snapshot
from storage.repo import _queue_refund, facts_from_row, order_movements
from storage.sql import run


def pool(order_id: str) -> list[Snapshot]:
    """Added funds not yet on their way to the exchange."""
    return list(Snapshot.select().where((Snapshot.order_id == order_id) & (Snapshot.purpose == "top_up")
                                        & (Snapshot.outcome == RouteKind.ORDER.value)
                                        & Snapshot.top_up_batch.is_null()).order_by(Snapshot.created_ns))


def has_pool(order_id: str) -> bool:
    """Whether added funds wait in the pool: plain SQL, asked by every running order's (re)start."""
    return run("SELECT 1 FROM snapshot WHERE order_id = ? AND purpose = ? AND outcome = ? AND top_up_batch IS NULL "
               "LIMIT 1", (order_id, "top_up", RouteKind.ORDER.value)).fetchone() is not None


def has_batch(order_id: str, state: str) -> bool:
    """Whether a batch of this order is in `state`: plain SQL (see has_pool)."""
    return run("SELECT 1 FROM order_top_up WHERE order_id = ? AND state = ? LIMIT 1",
               (order_id, state)).fetchone() is not None


def pool_totals(rows: Sequence[Snapshot]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for row in rows:
        totals[row.asset_id] = totals.get(row.asset_id, ZERO) + row.amount
    return totals


def batches(order_id: str, state: str | None = None) -> list[OrderTopUp]:
    query = OrderTopUp.select().where(OrderTopUp.order_id == order_id)
    if state is not None:
        query = query.where(OrderTopUp.state == state)
    return list(query.order_by(OrderTopUp.batch))


def batch_movements(order_id: str, batch: int) -> list[MoneyMovement]:
    return [m for m in order_movements(order_id) if m.kind == "withdrawal" and m.top_up_batch == batch]


def top_up_request_id(order_id: str, batch: int, leg: str) -> str:
    return unique_object_id("mmflow:topup:", order_id, ":", str(batch), ":", leg)


def start_batch(order_id: str, snapshot_ids: Sequence[str], legs: Sequence[dict], breakdown: dict,
                now: float) -> tuple[int, list[str]]:
    """Take the pool's snapshots into a new batch and write its withdrawals to the exchange, in one
    transaction. Returns (batch number, withdrawal request ids)."""
    last = [b.batch for b in batches(order_id)]
    batch = (max(last) + 1) if last else 1
    taken = (Snapshot.update(top_up_batch=batch).where(
        Snapshot.snapshot_id.in_(list(snapshot_ids)) & Snapshot.top_up_batch.is_null()).execute())
    if taken != len(snapshot_ids):
        raise ValueError(f"order {order_id}: the added funds changed while a batch was being made")
    OrderTopUp.create(order_id=order_id, batch=batch, state="withdrawing", breakdown=json.dumps(breakdown,
                      sort_keys=True), created_at=now, updated_at=now)
    ids = []
    for leg in legs:
        request_id = top_up_request_id(order_id, batch, leg["leg"])
        MoneyMovement.insert(
            request_id=request_id, kind="withdrawal", cause=f"topup:{order_id}:{batch}:{leg['leg']}",
            order_id=order_id, asset_id=leg["asset_id"], amount=leg["amount"], recipient_id="",
            destination=leg["destination"], tag=leg["tag"] or "", memo=f"MM:{order_id}:topup{batch}:{leg['leg']}",
            state="queued", leg=leg["leg"], exchange_account=leg["exchange_account"], top_up_batch=batch,
            exchange_code=leg["exchange_code"], network=leg["network"], created_at=now, updated_at=now,
        ).on_conflict_ignore().execute()
        ids.append(request_id)
    return batch, ids


def credit_batch(order_id: str, batch: int, now: float) -> bool:
    """Every leg of the batch is credited on the exchange: the order's ledger grows by what was credited."""
    row = OrderTopUp.get_or_none((OrderTopUp.order_id == order_id) & (OrderTopUp.batch == batch))
    if row is None or row.state != "withdrawing":
        return False
    legs = batch_movements(order_id, batch)
    if any(m.credited_amount is None for m in legs):
        raise ValueError(f"order {order_id}: top-up batch {batch} is not credited yet")
    for m in legs:
        LedgerEntry.insert(order_id=order_id, asset=m.exchange_code, delta=m.credited_amount,
                           reason=f"added funds credited (batch {batch}, {m.leg})", ref=f"deposit:{m.request_id}",
                           at=now).on_conflict_ignore().execute()
    OrderTopUp.update(state="credited", updated_at=now).where(
        (OrderTopUp.order_id == order_id) & (OrderTopUp.batch == batch)).execute()
    return True


def mark_batch(order_id: str, batch: int, state: str, now: float) -> None:
    OrderTopUp.update(state=state, updated_at=now).where(
        (OrderTopUp.order_id == order_id) & (OrderTopUp.batch == batch)).execute()


def refund_pool(order_id: str, reason: str, code: str, now: float) -> list[str]:
    """Refund every added-funds payment still in the pool (one refund per snapshot)."""
    ids = []
    for row in pool(order_id):
        facts = facts_from_row(row)
        Snapshot.update(outcome=RouteKind.REFUND.value, reason=reason).where(
            Snapshot.snapshot_id == row.snapshot_id).execute()
        ids.append(_queue_refund(facts, code, order_id, now))
    return ids
