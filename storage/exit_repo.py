"""Units and reads of the way back: exit requests, returns from the exchange, their arrival on Mixin,
dust, payouts and the final statement.

Units run inside the writer's transaction (DB statements only, no I/O, no yields). Every movement is a
MoneyMovement row written before it is sent, keyed by an id derived from its cause:

- return  (exchange → the bot's Mixin deposit address): `mmflow:return:<order>:<asset>`; its states
  queued → sending (the attempt's client id written, then the request sent) → sent (the exchange
  accepted: the ledger is debited in the same unit) → completed (the exchange reports the chain hash)
  → arrived (the Mixin deposit is matched to it; one deposit credits one return, ever). A withdrawal the
  exchange rejects at once goes back to queued (retried later); one it fails later is undone on the
  ledger and tried again with the next attempt's client id.
- dust    (state `kept`): what stays on the exchange account, below its minimum or precision.
- payout  (a Mixin transfer to the owner, run by the Treasury): `mmflow:payout:<order>:<asset>`.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from decimal import Decimal

from domain.ids import unique_object_id
from domain.money import ZERO
from domain.routing import Route, RouteKind, SnapshotFacts
from domain.states import OrderState
from domain.way_back import ReturnCandidate, match_arrival
from storage.models import WAITING, LedgerEntry, MoneyMovement, Order, OrderTopUp, Snapshot
from storage.repo import OrderView, _raise_alert, _transition, load_order, order_movements
from storage.sql import run

RETURN_AWAITING_ARRIVAL = ("sending", "sent", "completed")
RETURN_OPEN = ("queued",) + RETURN_AWAITING_ARRIVAL
PAYOUT_MEMO_PREFIX = "mmflow:payout:"


def return_request_id(order_id: str, asset_id: str) -> str:
    return unique_object_id("mmflow:return:", order_id, ":", asset_id)


def payout_request_id(order_id: str, asset_id: str) -> str:
    return unique_object_id("mmflow:payout:", order_id, ":", asset_id)


def dust_request_id(order_id: str, code: str) -> str:
    return unique_object_id("mmflow:dust:", order_id, ":", code)


def withdrawal_client_id(request_id: str, attempt: int) -> str:
    """The exchange withdrawal's client id of one attempt: derived, so it is known before the request."""
    return f"mmr{request_id.replace('-', '')[:24]}n{attempt}"


# ---------------------------------------------------------------- exit requests and stopping

def request_exit(order_id: str, source: str, reason: str, now: float) -> OrderView | None:
    """Remember that this order must exit (the first request wins; later ones change nothing)."""
    run("UPDATE orders SET exit_requested_at = ?, exit_source = ?, exit_reason = ?, updated_at = ? "
         "WHERE order_id = ? AND exit_requested_at IS NULL", (now, source, reason, now, order_id))
    return load_order(order_id)


def set_end_at(order_id: str, end_at: float | None, now: float) -> None:
    run("UPDATE orders SET end_at = ?, updated_at = ? WHERE order_id = ?", (end_at, now, order_id))


def transition(order_id: str, target: OrderState, reason: str, now: float, **columns) -> OrderView:
    row = Order.get_by_id(order_id)
    _transition(row, target, reason, now)
    for name, value in columns.items():
        setattr(row, name, value)
    row.save()
    return load_order(order_id)


# ---------------------------------------------------------------- returns

def start_return(order_id: str, plans: Sequence[dict], exit_price: Decimal | None, reason: str,
                 now: float) -> OrderView:
    """stopped → returning_funds with a return movement per currency to withdraw and a dust record per
    currency left behind (its ledger entry takes it out of the order's balance). One transaction.

    Each plan: code, asset_id, withdraw, fee, dust, network, destination, tag, exchange_account, note."""
    row = Order.get_by_id(order_id)
    if row.state != OrderState.STOPPED.value:
        return load_order(order_id)
    for plan in plans:
        if plan["withdraw"] > 0:
            request_id = return_request_id(order_id, plan["asset_id"])
            MoneyMovement.insert(
                request_id=request_id, kind="return", cause=f"return:{order_id}:{plan['asset_id']}",
                order_id=order_id, asset_id=plan["asset_id"], amount=plan["withdraw"], recipient_id="",
                destination=plan["destination"], tag=plan["tag"] or "", memo="", state="queued",
                fee_asset_id=plan["asset_id"], fee_amount=plan["fee"], exchange_account=plan["exchange_account"],
                exchange_code=plan["code"], network=plan["network"], attempt=1, created_at=now, updated_at=now,
            ).on_conflict_ignore().execute()
        if plan["dust"] > 0:
            MoneyMovement.insert(
                request_id=dust_request_id(order_id, plan["code"]), kind="dust",
                cause=f"dust:{order_id}:{plan['code']}", order_id=order_id, asset_id=plan["asset_id"] or "",
                amount=plan["dust"], recipient_id="", memo="", state="kept", last_error=plan.get("note") or None,
                exchange_account=plan["exchange_account"], exchange_code=plan["code"], created_at=now,
                updated_at=now,
            ).on_conflict_ignore().execute()
            LedgerEntry.insert(order_id=order_id, asset=plan["code"], delta=-plan["dust"],
                               reason="dust: left on the exchange account for the owner's statement",
                               ref=f"dust:{order_id}:{plan['code']}", at=now).on_conflict_ignore().execute()
    _transition(row, OrderState.RETURNING_FUNDS, reason, now)
    if exit_price is not None:
        row.exit_price = exit_price
    row.save()
    return load_order(order_id)


def returns_of(order_id: str) -> list[MoneyMovement]:
    return [m for m in order_movements(order_id) if m.kind == "return"]


def dust_of(order_id: str) -> list[MoneyMovement]:
    return [m for m in order_movements(order_id) if m.kind == "dust"]


def payouts_of(order_id: str) -> list[MoneyMovement]:
    return [m for m in order_movements(order_id) if m.kind == "payout"]


def _movement(request_id: str) -> MoneyMovement:
    return MoneyMovement.get_by_id(request_id)


def begin_return_attempt(request_id: str, now: float) -> str | None:
    """queued → sending, recording when this attempt is sent; returns its client id (None: not queued)."""
    m = _movement(request_id)
    if m.state != "queued":
        return None
    client_id = withdrawal_client_id(request_id, m.attempt)
    MoneyMovement.update(state="sending", client_id=client_id, requested_at=now, updated_at=now).where(
        (MoneyMovement.request_id == request_id) & (MoneyMovement.state == "queued")).execute()
    return client_id


def _debit_ledger(m: MoneyMovement, now: float) -> None:
    LedgerEntry.insert(order_id=m.order_id, asset=m.exchange_code, delta=-m.amount,
                       reason=f"withdrawn to Mixin ({m.client_id})", ref=f"return:{m.client_id}",
                       at=now).on_conflict_ignore().execute()


def record_return_accepted(request_id: str, withdrawal_id: str, fee: Decimal | None, txid: str | None,
                           now: float) -> bool:
    """sending → sent: the exchange took the withdrawal; the order's ledger gives the amount up."""
    m = _movement(request_id)
    if m.state != "sending":
        return False
    changes = {"state": "sent", "exchange_withdrawal_id": withdrawal_id, "sent_at": now, "last_error": None,
               "updated_at": now}
    if fee is not None and fee >= 0:
        changes["fee_amount"] = fee
    if txid:
        changes["exchange_txid"] = txid
    MoneyMovement.update(**changes).where(MoneyMovement.request_id == request_id).execute()
    _debit_ledger(_movement(request_id), now)
    return True


def record_return_absent(request_id: str, note: str, now: float) -> None:
    """sending → queued: after the grace period the exchange has no withdrawal with this client id."""
    MoneyMovement.update(state="queued", last_error=note, updated_at=now).where(
        (MoneyMovement.request_id == request_id) & (MoneyMovement.state == "sending")).execute()


def record_return_rejected(request_id: str, error: str, next_try_at: float, now: float) -> int:
    """sending → queued: the exchange refused at once (nothing withdrawn). Returns the rejection count."""
    m = _movement(request_id)
    if m.state != "sending":
        return m.rejections
    MoneyMovement.update(state="queued", rejections=m.rejections + 1, last_error=error, next_try_at=next_try_at,
                         updated_at=now).where(MoneyMovement.request_id == request_id).execute()
    return m.rejections + 1


def record_return_progress(request_id: str, status: str, txid: str | None, fee: Decimal | None,
                           now: float) -> None:
    """What the exchange's withdrawal history says of an accepted withdrawal: its hash, and "ok" →
    completed."""
    m = _movement(request_id)
    if m.state not in ("sent", "completed"):
        return
    changes: dict = {"updated_at": now}
    if txid and not m.exchange_txid:
        changes["exchange_txid"] = txid
    if fee is not None and fee >= 0 and m.state == "sent":
        changes["fee_amount"] = fee
    if status == "ok" and m.state == "sent":
        changes["state"] = "completed"
        changes["confirmed_at"] = now
    MoneyMovement.update(**changes).where(MoneyMovement.request_id == request_id).execute()


def record_return_failed(request_id: str, error: str, next_try_at: float, now: float) -> None:
    """The exchange failed or cancelled an accepted withdrawal (the funds are back on the account): undo the
    ledger debit and queue the next attempt, with a new client id."""
    m = _movement(request_id)
    if m.state not in ("sent", "completed") or m.arrival_snapshot_id:
        return
    LedgerEntry.insert(order_id=m.order_id, asset=m.exchange_code, delta=m.amount,
                       reason=f"exchange withdrawal {m.exchange_withdrawal_id} failed ({m.client_id}): back to "
                              f"the order", ref=f"return-undo:{m.client_id}", at=now).on_conflict_ignore().execute()
    MoneyMovement.update(state="queued", attempt=m.attempt + 1, exchange_withdrawal_id=None, exchange_txid=None,
                         client_id=None, requested_at=None, sent_at=None, last_error=error, next_try_at=next_try_at,
                         rejections=m.rejections + 1, updated_at=now).where(
        MoneyMovement.request_id == request_id).execute()


def claimed_withdrawal_ids(exchange_account: str) -> frozenset[str]:
    """Exchange withdrawal ids already recorded as one of our returns on this account."""
    return frozenset(i for (i,) in MoneyMovement.select(MoneyMovement.exchange_withdrawal_id).where(
        (MoneyMovement.kind == "return") & (MoneyMovement.exchange_account == exchange_account)
        & MoneyMovement.exchange_withdrawal_id.is_null(False)).tuples())


def note_movement(request_id: str, note: str, now: float) -> None:
    MoneyMovement.update(last_error=note, updated_at=now).where(MoneyMovement.request_id == request_id).execute()


# ---------------------------------------------------------------- arrivals on Mixin

def _candidates(asset_id: str) -> list[MoneyMovement]:
    return list(MoneyMovement.select().where(
        (MoneyMovement.kind == "return") & (MoneyMovement.asset_id == asset_id)
        & MoneyMovement.state.in_(list(RETURN_AWAITING_ARRIVAL)) & MoneyMovement.arrival_snapshot_id.is_null()))


def _claim(m: MoneyMovement, facts: SnapshotFacts, now: float) -> None:
    if m.state == "sending":  # arrived before we recorded the exchange's answer: it was accepted
        _debit_ledger(m, now)
    MoneyMovement.update(state="arrived", arrival_snapshot_id=facts.snapshot_id, arrived_amount=facts.amount,
                         arrived_at=now, exchange_txid=m.exchange_txid or facts.deposit_hash or None,
                         updated_at=now).where(MoneyMovement.request_id == m.request_id).execute()


def route_arrival(facts: SnapshotFacts, now: float) -> tuple[Route, str | None] | None:
    """A deposit snapshot: the return it completes (claimed now), a wait for one, or None (not ours)."""
    rows = _candidates(facts.asset_id)
    if not rows:
        return None
    match = match_arrival(asset_id=facts.asset_id, amount=facts.amount, deposit_hash=facts.deposit_hash,
                          destination=facts.deposit_destination, tag=facts.deposit_tag,
                          candidates=[_candidate(m) for m in rows])
    if match.request_id is None:
        return (Route(RouteKind.AWAITING, f"deposit of {facts.amount} may be one of {len(rows)} returns from the "
                      f"exchange not yet identified ({match.how}); matched once the exchange reports its hash",
                      "awaiting"), None)
    m = next(r for r in rows if r.request_id == match.request_id)
    _claim(m, facts, now)
    pair_id = Order.get_by_id(m.order_id).pair_id
    return (Route(RouteKind.RETURN, f"funds of order {m.order_id} back from {m.exchange_account} "
                  f"({m.exchange_code}, matched by {match.how.replace('_', ' + ')})", "return",
                  order_id=m.order_id, pair_id=pair_id), m.request_id)


def _candidate(m: MoneyMovement) -> ReturnCandidate:
    return ReturnCandidate(m.request_id, m.asset_id, m.exchange_txid or "", m.destination or "", m.tag or "",
                           m.amount - (m.fee_amount or ZERO))


def claim_awaiting(asset_ids: Iterable[str], now: float) -> list[tuple[str, str]]:
    """Match deposits that waited for their return's hash. A waiting deposit with no return left that it
    could belong to becomes an operator alert. Returns the (order_id, request_id) newly arrived."""
    from storage.repo import facts_from_row

    arrived = []
    for asset_id in sorted(set(asset_ids)):
        waiting = list(Snapshot.select().where((Snapshot.outcome == RouteKind.AWAITING.value) & WAITING
                                               & (Snapshot.asset_id == asset_id)).order_by(Snapshot.created_ns))
        for snap in waiting:
            facts = facts_from_row(snap)
            routed = route_arrival(facts, now)
            if routed is None:
                reason = (f"deposit of {facts.amount} {asset_id} from outside Mixin (hash {facts.deposit_hash or '-'}) "
                          f"matches no return from an exchange: an operator must look")
                Snapshot.update(outcome=RouteKind.ATTENTION.value, reason=reason).where(
                    Snapshot.snapshot_id == snap.snapshot_id).execute()
                _raise_alert("unrefundable_snapshot", snap.snapshot_id, reason, now)
                continue
            route, request_id = routed
            if request_id is None:
                continue
            Snapshot.update(outcome=route.kind.value, reason=route.reason, order_id=route.order_id,
                            pair_id=route.pair_id, applied=True, applied_at=now).where(
                Snapshot.snapshot_id == snap.snapshot_id).execute()
            arrived.append((route.order_id, request_id))
    return arrived


# ---------------------------------------------------------------- settlement

def start_settlement(order_id: str, payouts: dict[str, Decimal], reason: str, now: float) -> tuple[OrderView,
                                                                                                list[str]]:
    """returning_funds → settling with one payout transfer per asset to the owner, in one transaction."""
    row = Order.get_by_id(order_id)
    ids = [payout_request_id(order_id, a) for a in payouts]
    if row.state != OrderState.RETURNING_FUNDS.value:
        return load_order(order_id), ids
    if not row.user_id and payouts:
        raise ValueError(f"order {order_id} has no owner to pay out to")
    for asset_id, amount in payouts.items():
        MoneyMovement.insert(
            request_id=payout_request_id(order_id, asset_id), kind="payout", cause=f"payout:{order_id}:{asset_id}",
            order_id=order_id, asset_id=asset_id, amount=amount, recipient_id=row.user_id,
            memo=f"{PAYOUT_MEMO_PREFIX}{order_id}", state="queued", created_at=now, updated_at=now,
        ).on_conflict_ignore().execute()
    _transition(row, OrderState.SETTLING, reason, now)
    row.save()
    return load_order(order_id), ids


def close_order(order_id: str, target: OrderState, reason: str, statement: dict, now: float) -> OrderView:
    """→ settled / refunded with the statement frozen."""
    row = Order.get_by_id(order_id)
    if row.state != target.value:
        _transition(row, target, reason, now)
    row.statement = json.dumps(statement, sort_keys=True)
    row.closed_at = now
    row.save()
    return load_order(order_id)


# ---------------------------------------------------------------- reads for the statement

def held_for_owner(order_id: str) -> dict[str, Decimal]:
    """Amounts that came with exit requests: they go back with the settlement."""
    out: dict[str, Decimal] = {}
    for snap in Snapshot.select().where((Snapshot.order_id == order_id) & (Snapshot.purpose == "exit")
                                        & (Snapshot.outcome == RouteKind.ORDER.value) & (Snapshot.applied == True)):  # noqa: E712
        out[snap.asset_id] = out.get(snap.asset_id, ZERO) + snap.amount
    return out


def routed_snapshots(order_id: str) -> list[Snapshot]:
    """Every incoming snapshot that named this order (taken or refused). Amounts are text: compared here."""
    rows = Snapshot.select().where((Snapshot.order_id == order_id)
                                   & Snapshot.outcome.in_([RouteKind.ORDER.value, RouteKind.REFUND.value]))
    return [r for r in rows.order_by(Snapshot.created_ns) if r.amount > 0]


def top_ups_of(order_id: str) -> list[OrderTopUp]:
    return list(OrderTopUp.select().where(OrderTopUp.order_id == order_id).order_by(OrderTopUp.batch))


def frozen_statement(order_id: str) -> dict | None:
    row = Order.get_or_none(Order.order_id == order_id)
    return json.loads(row.statement) if row is not None and row.statement else None


def exit_price(order_id: str) -> Decimal | None:
    row = Order.get_or_none(Order.order_id == order_id)
    return row.exit_price if row is not None else None


