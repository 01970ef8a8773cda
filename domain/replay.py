"""Audit replay, pure: an order's tally, refunds, fees and settlement rebuilt from its raw Mixin snapshots
with the rules the live path uses, compared with what is stored. Each difference is one line.

What is rebuilt, and from what:
- each snapshot from its raw bytes (``domain.routing.parse_snapshot``, the poller's parser): the stored
  asset, amount, payer and memo must be what Mixin sent;
- the owner (the first payer) and every tallied payment re-decided by ``domain.routing.decide_payment``
  as the order saw it while payment was pending: a tallied payment the rules would refuse is a difference;
- the tally: per asset, the sum and count of the raw amounts of the payments taken;
- refunds: one per refunded snapshot, of its raw amount and asset, to its payer; a refunded order refunded
  every payment it took, a settled one none;
- fees: ``domain.payment.evaluate_payment`` of the rebuilt tally must be complete with exactly the stored
  breakdown (principals, market-making and withdrawal fees, surplus) for an order that was funded;
- settlement: ``domain.statement.build_statement`` of the order's records balances to zero for a final
  order and equals the statement frozen when it closed; its payouts (or refunds) are confirmed.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from domain.memo import memo_action
from domain.money import ZERO, fmt
from domain.payment import FeeRequirements, PairRules, PaymentStatus, evaluate_payment
from domain.routing import BadSnapshot, PaymentDecisionKind, SnapshotFacts, decide_payment, parse_snapshot
from domain.statement import StatementInput, build_statement
from domain.states import OrderState


@dataclass(frozen=True)
class StoredSnapshot:
    """A snapshot row naming the order: its raw document (decoded) and what was stored beside it."""
    snapshot_id: str
    raw: object
    asset_id: str
    amount: Decimal
    opponent_id: str
    memo: str
    outcome: str | None
    purpose: str | None
    applied: bool


@dataclass(frozen=True)
class StoredTransfer:
    """A refund or payout movement."""
    request_id: str
    kind: str
    snapshot_id: str | None
    asset_id: str
    amount: Decimal
    recipient_id: str
    state: str


@dataclass(frozen=True)
class OrderFacts:
    order_id: str
    pair_id: str
    state: str
    user_id: str | None
    fees: FeeRequirements
    breakdown: Mapping | None              # stored at payment_complete
    states_passed: frozenset[str]          # every state in the order's history
    snapshots: tuple[StoredSnapshot, ...]
    tallies: Mapping[str, tuple[Decimal, int]]
    transfers: tuple[StoredTransfer, ...]
    statement_input: StatementInput | None  # the order's records as the statement takes them
    frozen_statement: Mapping | None
    funded: bool                           # its principal left Mixin (withdrawals to the exchange exist)


@dataclass
class Replay:
    owner: str | None = None
    tallies: dict[str, tuple[Decimal, int]] = field(default_factory=dict)
    differences: list[str] = field(default_factory=list)


def _raw_facts(snap: StoredSnapshot, out: list[str]) -> SnapshotFacts | None:
    try:
        facts = parse_snapshot(snap.raw)
    except BadSnapshot as exc:
        out.append(f"snapshot {snap.snapshot_id}: the raw snapshot does not parse: {exc}")
        return None
    for name, stored, raw in (("snapshot_id", snap.snapshot_id, facts.snapshot_id),
                              ("asset", snap.asset_id, facts.asset_id), ("amount", snap.amount, facts.amount),
                              ("payer", snap.opponent_id, facts.opponent_id), ("memo", snap.memo, facts.memo_hex)):
        if stored != raw:
            out.append(f"snapshot {snap.snapshot_id}: stored {name} {_show(stored)}, the raw snapshot says {_show(raw)}")
    return facts


def _show(value) -> str:
    return fmt(value) if isinstance(value, Decimal) else repr(value)


def replay_order(order: OrderFacts, pair: PairRules | None) -> list[str]:
    """Every difference between the order's stored tally, refunds, fees and settlement and their replay."""
    replay = Replay()
    out = replay.differences
    facts_of: dict[str, SnapshotFacts] = {}
    for snap in order.snapshots:
        facts = _raw_facts(snap, out)
        if facts is not None:
            facts_of[snap.snapshot_id] = facts
    payments = sorted((s for s in order.snapshots if s.purpose == "payment" and s.outcome == "order" and s.applied
                       and s.snapshot_id in facts_of),
                      key=lambda s: (facts_of[s.snapshot_id].created_ns, s.snapshot_id))
    _replay_payments(order, pair, payments, facts_of, replay)
    _compare_tally(order, replay)
    _check_refunds(order, payments, facts_of, out)
    if pair is not None:
        _check_fees(order, pair, replay)
    _check_settlement(order, out)
    return out


def _replay_payments(order: OrderFacts, pair: PairRules | None, payments: Sequence[StoredSnapshot],
                     facts_of: Mapping[str, SnapshotFacts], replay: Replay) -> None:
    for snap in payments:
        facts = facts_of[snap.snapshot_id]
        if pair is not None:
            decision = decide_payment(state=OrderState.PAYMENT_PENDING, owner_id=replay.owner, facts=facts, pair=pair,
                                      fees=order.fees, action=memo_action(facts.memo_hex))
            if decision.kind not in (PaymentDecisionKind.ACCEPT, PaymentDecisionKind.ATTENTION):
                replay.differences.append(f"snapshot {snap.snapshot_id}: tallied as a payment, but the rules "
                                          f"{decision.kind.value} it: {decision.reason}")
        if replay.owner is None and facts.refundable:
            replay.owner = facts.opponent_id
        amount, count = replay.tallies.get(facts.asset_id, (ZERO, 0))
        replay.tallies[facts.asset_id] = (amount + facts.amount, count + 1)
    if replay.owner != order.user_id and payments:
        replay.differences.append(f"owner: stored {order.user_id!r}, the first payment came from {replay.owner!r}")


def _compare_tally(order: OrderFacts, replay: Replay) -> None:
    for asset in sorted(set(order.tallies) | set(replay.tallies)):
        stored = order.tallies.get(asset, (ZERO, 0))
        rebuilt = replay.tallies.get(asset, (ZERO, 0))
        if stored[0] != rebuilt[0] or stored[1] != rebuilt[1]:
            replay.differences.append(f"tally {asset}: stored {fmt(stored[0])} from {stored[1]} payments, replay "
                                      f"{fmt(rebuilt[0])} from {rebuilt[1]} payments")


def _check_refunds(order: OrderFacts, payments: Sequence[StoredSnapshot], facts_of: Mapping[str, SnapshotFacts],
                   out: list[str]) -> None:
    refunds: dict[str, list[StoredTransfer]] = {}
    for t in order.transfers:
        if t.kind == "refund":
            refunds.setdefault(t.snapshot_id or "", []).append(t)
    for snapshot_id, found in refunds.items():
        facts = facts_of.get(snapshot_id)
        if facts is None:
            out.append(f"refund {found[0].request_id}: refunds snapshot {snapshot_id or '-'}, which is not one of "
                       f"the order's")
            continue
        if len(found) > 1:
            out.append(f"snapshot {snapshot_id}: refunded {len(found)} times")
        for t in found:
            if (t.asset_id, t.amount, t.recipient_id) != (facts.asset_id, facts.amount, facts.opponent_id):
                out.append(f"refund {t.request_id}: {fmt(t.amount)} of {t.asset_id} to {t.recipient_id}, but snapshot "
                           f"{snapshot_id} brought {fmt(facts.amount)} of {facts.asset_id} from {facts.opponent_id}")
    for snap in order.snapshots:
        if snap.outcome == "refund" and snap.snapshot_id not in refunds:
            out.append(f"snapshot {snap.snapshot_id}: marked refunded, but no refund was written for it")
    taken = [s for s in payments if facts_of[s.snapshot_id].refundable]
    if order.state == OrderState.REFUNDED.value:
        for snap in taken:
            if snap.snapshot_id not in refunds:
                out.append(f"snapshot {snap.snapshot_id}: the order was refunded, but this payment was not")
    if order.state == OrderState.SETTLED.value:
        for snap in taken:
            if snap.snapshot_id in refunds:
                out.append(f"snapshot {snap.snapshot_id}: the order settled, yet this payment was also refunded")


def _check_fees(order: OrderFacts, pair: PairRules, replay: Replay) -> None:
    out = replay.differences
    if order.breakdown is None:
        if order.funded or OrderState.PAYMENT_COMPLETE.value in order.states_passed:
            out.append("fees: the order was completed but no payment breakdown is stored")
        return
    evaluation = evaluate_payment({a: amount for a, (amount, _) in replay.tallies.items()}, pair, order.fees)
    if evaluation.status is not PaymentStatus.COMPLETE:
        out.append(f"fees: the replayed tally is {evaluation.status.value}, not complete: "
                   + "; ".join(evaluation.reasons))
        return
    rebuilt = evaluation.breakdown.as_dict()
    for key in sorted(set(rebuilt) | set(order.breakdown)):
        if rebuilt.get(key) != order.breakdown.get(key):
            out.append(f"fees {key}: stored {order.breakdown.get(key)!r}, replay {rebuilt.get(key)!r}")


def _check_settlement(order: OrderFacts, out: list[str]) -> None:
    if order.state not in (OrderState.SETTLED.value, OrderState.REFUNDED.value) or order.statement_input is None:
        return
    statement = build_statement(order.statement_input)
    for line in statement.assets:
        if line.held != 0:
            out.append(f"settlement {line.symbol}: the check line is {fmt(line.held)}, not 0")
    kind = "payout" if order.state == OrderState.SETTLED.value else "refund"
    for t in order.transfers:
        if t.kind == kind and t.state != "confirmed":
            out.append(f"settlement: {kind} {t.request_id} is {t.state}, not confirmed")
    if order.frozen_statement is not None:
        # Frozen a moment before the last transition, so it names the state before (settling, refunding).
        rebuilt = {k: v for k, v in json.loads(json.dumps(statement.as_dict(), sort_keys=True)).items()
                   if k != "state"}
        frozen = {k: v for k, v in order.frozen_statement.items() if k != "state"}
        if rebuilt != frozen:
            out += [f"settlement: {what}" for what in _statement_changes(frozen, rebuilt)]


def _statement_changes(frozen: Mapping, rebuilt: Mapping) -> list[str]:
    """What differs between the frozen statement and the rebuilt one, term by term where possible."""
    lines = []
    frozen_assets = {a.get("asset_id"): a for a in frozen.get("assets", [])}
    rebuilt_assets = {a.get("asset_id"): a for a in rebuilt.get("assets", [])}
    for asset_id in sorted(set(frozen_assets) | set(rebuilt_assets), key=str):
        a, b = frozen_assets.get(asset_id, {}), rebuilt_assets.get(asset_id, {})
        for term in sorted((set(a) | set(b)) - {"details"}):
            if a.get(term) != b.get(term):
                lines.append(f"{b.get('symbol') or a.get('symbol')} {term}: frozen {a.get(term)!r}, "
                             f"replay {b.get(term)!r}")
    if not lines:
        keys = sorted(k for k in set(frozen) | set(rebuilt) if frozen.get(k) != rebuilt.get(k))
        lines.append(f"the frozen statement differs from the replay in {', '.join(keys) or 'its details'}")
    return lines
