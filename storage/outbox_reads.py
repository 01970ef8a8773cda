"""Reads of the outbox for the Treasury: plain queries over the peewee models, no I/O besides the DB.

Safe to call from an actor (a read outside the writer) or from inside a writer unit.
"""
from __future__ import annotations

from collections.abc import Iterable

from storage.models import MoneyMovement, Order
from storage.repo import LOCKING_STATES, OPEN_MOVEMENT_STATES


def open_movements(kinds: Iterable[str]) -> list[MoneyMovement]:
    """Movements of these kinds not final yet (queued, prepared, sent), oldest first."""
    return list(MoneyMovement.select().where(MoneyMovement.state.in_(list(OPEN_MOVEMENT_STATES))
                                             & MoneyMovement.kind.in_(list(kinds)))
                .order_by(MoneyMovement.created_at, MoneyMovement.request_id))


def in_flight_spending(asset_id: str, kinds: Iterable[str], *, exclude: str | None = None) -> list[tuple[str, str]]:
    """(request_id, prepared JSON) of the movements of these kinds that lock inputs (prepared or sent) and
    spend ``asset_id``: as their asset, or as the asset their withdrawal fee is paid in."""
    query = (MoneyMovement.select(MoneyMovement.request_id, MoneyMovement.prepared)
             .where(MoneyMovement.state.in_(list(LOCKING_STATES)) & MoneyMovement.kind.in_(list(kinds))
                    & MoneyMovement.prepared.is_null(False)
                    & ((MoneyMovement.asset_id == asset_id) | (MoneyMovement.fee_asset_id == asset_id)))
             .order_by(MoneyMovement.created_at, MoneyMovement.request_id))
    if exclude is not None:
        query = query.where(MoneyMovement.request_id != exclude)
    return [(rid, prepared) for rid, prepared in query.tuples()]


def order_state(order_id: str) -> str | None:
    """The order's current state, or None when there is no such order."""
    row = Order.select(Order.state).where(Order.order_id == order_id).tuples().first()
    return None if row is None else row[0]
