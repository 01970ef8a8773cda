"""What the audit replay (domain/replay.py) takes, read from the database: one order's raw snapshots,
tally, refunds and payouts, breakdown, history and statement records — hot or archived alike (read inside
``storage.archive_view.order_source``). Reads only."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

import msgpack

from domain.ids import refund_request_id
from domain.payment import FeeRequirements
from domain.replay import OrderFacts, StoredSnapshot, StoredTransfer, replay_order
from storage import exit_repo, repo
from storage.archive_models import ArchivedOrder
from storage.archive_view import order_source
from storage.models import MoneyMovement, Order, PaymentTally, Snapshot
from storage.statements import statement_input


def _raw(blob) -> object:
    try:
        return msgpack.unpackb(bytes(blob), raw=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        return f"<not msgpack: {type(exc).__name__}>"


def order_facts(order_id: str, config) -> OrderFacts | None:
    row = Order.get_or_none(Order.order_id == order_id)
    if row is None:
        return None
    snaps = list(Snapshot.select().where(Snapshot.order_id == order_id).order_by(Snapshot.created_ns))
    ids = [s.snapshot_id for s in snaps]
    transfers = list(MoneyMovement.select().where(
        (MoneyMovement.kind.in_(["refund", "payout"]))
        & ((MoneyMovement.order_id == order_id) | MoneyMovement.snapshot_id.in_(ids or [""]))))
    movements = repo.order_movements(order_id)
    data = statement_input(order_id, config)
    # A transfer into the order after it closed was refused and refunded: it is not in the frozen statement.
    late = {s.snapshot_id for s in snaps if s.outcome == "refund" and row.closed_at is not None
            and s.applied_at is not None and s.applied_at > row.closed_at}
    if data is not None and late:
        late_refunds = {refund_request_id(sid) for sid in late}
        data = dataclasses.replace(data, paid_in=tuple(p for p in data.paid_in if p.snapshot_id not in late),
                                   refunds=tuple(r for r in data.refunds if r.request_id not in late_refunds))
    return OrderFacts(
        order_id=order_id, pair_id=row.pair_id, state=row.state, user_id=row.user_id,
        fees=FeeRequirements(row.base_fee_asset_id, row.base_fee_amount, row.quote_fee_asset_id, row.quote_fee_amount,
                             row.market_making_fee_percent),
        breakdown=json.loads(row.breakdown) if row.breakdown else None,
        states_passed=frozenset(h.to_state for h in repo.order_history(order_id)),
        snapshots=tuple(StoredSnapshot(s.snapshot_id, _raw(s.raw), s.asset_id, s.amount, s.opponent_id, s.memo,
                                       s.outcome, s.purpose, bool(s.applied)) for s in snaps),
        tallies={t.asset_id: (t.amount, t.payments)
                 for t in PaymentTally.select().where(PaymentTally.order_id == order_id)},
        transfers=tuple(StoredTransfer(m.request_id, m.kind, m.snapshot_id, m.asset_id, m.amount, m.recipient_id,
                                       m.state) for m in transfers),
        statement_input=data,
        frozen_statement=exit_repo.frozen_statement(order_id),
        funded=any(m.kind == "withdrawal" and m.top_up_batch is None for m in movements),
    )


@dataclass
class AuditOutcome:
    orders: int = 0
    differences: list[str] = field(default_factory=list)   # "order <id>: <what differs>"


def audited_ids() -> list[str]:
    """Every order, hot then archived, oldest first."""
    hot = Order.select(Order.order_id).order_by(Order.created_at, Order.order_id).tuples()
    cold = ArchivedOrder.select(ArchivedOrder.order_id).order_by(ArchivedOrder.closed_at, ArchivedOrder.order_id)
    return [r[0] for r in hot] + [r[0] for r in cold.tuples()]


def audit(config, order_ids, directory=None) -> AuditOutcome:
    """Replay each order and collect its differences."""
    outcome = AuditOutcome()
    for order_id in order_ids:
        with order_source(order_id, directory):
            facts = order_facts(order_id, config)
        if facts is None:
            continue
        outcome.orders += 1
        outcome.differences += [f"order {order_id}: {line}"
                                for line in replay_order(facts, config.pair(facts.pair_id))]
    return outcome
