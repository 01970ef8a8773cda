"""What to do with a snapshot: pure decisions, no I/O.

Two steps, mirroring the actor tree:
- route_snapshot (Router): is it ours, and for which order? Anything we cannot
  account for is refunded with a reason — Mr.Market silently kept such money.
- decide_payment (OrderActor): does this order accept this payment?
"""
from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass, fields
from decimal import Decimal

from domain.memo import ACTION_CREATE, ACTION_DEPOSIT, ACTION_EXIT, MemoError, decode_snapshot_memo
from domain.money import BadAmount, to_decimal
from domain.payment import FeeRequirements, PairRules, legs_for_asset
from domain.records import made
from domain.states import ACCEPTS_PAYMENT, ACCEPTS_TOP_UP, EXITING_STATES, FINAL_STATES, OrderState
from domain.timefmt import BadTimestamp, parse_ns

REFUND_MEMO_PREFIX = "Refund:"


class BadSnapshot(ValueError):
    pass


@dataclass(frozen=True)
class SnapshotFacts:
    """The fields of a Mixin snapshot mmflow relies on, validated."""
    snapshot_id: str
    created_at: str
    created_ns: int
    asset_id: str
    amount: Decimal
    opponent_id: str
    memo_hex: str
    is_deposit: bool = False
    is_withdrawal: bool = False
    # A deposit from outside Mixin (e.g. an exchange returning an order's funds): where it was sent and its
    # on-chain hash, which is how it is matched to the movement that sent it.
    deposit_hash: str = ""
    deposit_destination: str = ""
    deposit_tag: str = ""

    @property
    def refundable(self) -> bool:
        """Only a transfer from a Mixin user can go back by transfer."""
        return bool(self.opponent_id) and not self.is_deposit


_FACT_FIELDS = ("snapshot_id", "created_at", "created_ns", "asset_id", "amount", "opponent_id", "memo_hex",
                "is_deposit", "is_withdrawal", "deposit_hash", "deposit_destination", "deposit_tag")
# _transfer gives every field in one dict (domain.records.made): a field added or renamed must be given there too
if tuple(f.name for f in fields(SnapshotFacts)) != _FACT_FIELDS:
    raise TypeError("SnapshotFacts' fields changed: update _transfer's dict")


def parse_snapshot(raw: object) -> SnapshotFacts:
    """A snapshot's facts, validated; BadSnapshot (naming what is wrong) otherwise."""
    # The usual snapshot (a transfer: string fields, no deposit object) in one pass over its fields; anything else,
    # or anything in doubt, goes through the full checks below (their error messages).
    if raw.__class__ is dict and not raw.get("deposit"):
        snapshot_id, asset_id = raw.get("snapshot_id"), raw.get("asset_id")
        amount_text, memo, opponent = raw.get("amount"), raw.get("memo") or "", raw.get("opponent_id") or ""
        if snapshot_id.__class__ is str and asset_id.__class__ is str and amount_text.__class__ is str \
                and memo.__class__ is str and opponent.__class__ is str and snapshot_id and asset_id:
            amount = _amount_of(amount_text)
            if amount is not None:
                created_at = raw.get("created_at")
                try:
                    created_ns = parse_ns(created_at)  # type: ignore[arg-type]
                except BadTimestamp as exc:
                    raise BadSnapshot(f"snapshot {snapshot_id}: {exc}") from None
                return _transfer(raw, snapshot_id, created_at, created_ns, asset_id, amount, opponent, memo)
    return _parse_snapshot_checked(raw)


def _transfer(raw: dict, snapshot_id: str, created_at: str, created_ns: int, asset_id: str, amount: Decimal,
              opponent: str, memo: str) -> SnapshotFacts:
    """The facts of a transfer between Mixin users (no deposit object), made without the frozen __init__
    (domain.records: it cost twice the rest of parsing, for every snapshot of every page)."""
    return made(SnapshotFacts, {"snapshot_id": snapshot_id, "created_at": created_at, "created_ns": created_ns,
                                "asset_id": asset_id, "amount": amount, "opponent_id": opponent, "memo_hex": memo,
                                "is_deposit": False, "is_withdrawal": bool(raw.get("withdrawal")), "deposit_hash": "",
                                "deposit_destination": "", "deposit_tag": ""})


@functools.lru_cache(maxsize=4096)
def _amount_of(text: str) -> Decimal | None:
    """A decimal string's exact amount as to_decimal reads it, None when to_decimal would refuse it. Cached: a page's
    payments repeat a few amounts (a Decimal is immutable, so one is shared)."""
    try:
        return to_decimal(text)
    except BadAmount:
        return None


def _parse_snapshot_checked(raw: object) -> SnapshotFacts:
    if not isinstance(raw, dict):
        raise BadSnapshot(f"snapshot is a {type(raw).__name__}, not an object")
    snapshot_id = raw.get("snapshot_id")
    if not isinstance(snapshot_id, str) or not snapshot_id:
        raise BadSnapshot("snapshot has no snapshot_id")
    created_at = raw.get("created_at")
    try:
        created_ns = parse_ns(created_at)  # type: ignore[arg-type]
    except BadTimestamp as exc:
        raise BadSnapshot(f"snapshot {snapshot_id}: {exc}") from None
    asset_id = raw.get("asset_id")
    if not isinstance(asset_id, str) or not asset_id:
        raise BadSnapshot(f"snapshot {snapshot_id} has no asset_id")
    try:
        amount = to_decimal(raw.get("amount"), field="amount")
    except BadAmount as exc:
        raise BadSnapshot(f"snapshot {snapshot_id}: {exc}") from None
    memo = raw.get("memo") or ""
    opponent = raw.get("opponent_id") or ""
    if not isinstance(memo, str) or not isinstance(opponent, str):
        raise BadSnapshot(f"snapshot {snapshot_id}: memo/opponent_id are not strings")
    deposit = raw.get("deposit")
    if not deposit:  # a transfer between Mixin users, the usual payment
        return _transfer(raw, snapshot_id, created_at, created_ns, asset_id, amount, opponent, memo)
    if not isinstance(deposit, dict):
        raise BadSnapshot(f"snapshot {snapshot_id}: deposit is not an object")
    return SnapshotFacts(
        snapshot_id=snapshot_id,
        created_at=created_at,  # type: ignore[arg-type]
        created_ns=created_ns,
        asset_id=asset_id,
        amount=amount,
        opponent_id=opponent,
        memo_hex=memo,
        is_deposit=True,
        is_withdrawal=bool(raw.get("withdrawal")),
        **deposit_fields(deposit),
    )


def deposit_fields(deposit: dict) -> dict:
    """The deposit object's hash, destination and tag as SnapshotFacts fields (strings, "" when absent)."""
    def text(key: str) -> str:
        value = deposit.get(key)
        return value if isinstance(value, str) else ""
    return {"deposit_hash": text("deposit_hash"), "deposit_destination": text("destination"),
            "deposit_tag": text("tag")}


class RouteKind(str, enum.Enum):
    ORDER = "order"          # hand to the OrderActor of order_id
    REFUND = "refund"        # send it back to the payer with the reason
    IGNORE = "ignored"       # outgoing or zero: not a payment
    TOPUP = "topup"          # an operator funding the bot's treasury: keep
    ATTENTION = "attention"  # cannot be refunded by transfer: an operator decides
    RETURN = "return"        # a deposit bringing an order's funds back from the exchange (matched to it)
    AWAITING = "awaiting"    # a deposit that may be a return whose exchange withdrawal is not yet identified


@dataclass(frozen=True)
class Route:
    kind: RouteKind
    reason: str
    code: str = ""
    order_id: str | None = None
    pair_id: str | None = None
    action: int | None = None


def refund_memo(snapshot_id: str, code: str) -> str:
    """The extra of a refund transfer: `Refund:<snapshot_id>:<reason code>` (well under 256 bytes)."""
    memo = f"{REFUND_MEMO_PREFIX}{snapshot_id}:{code}".encode("utf-8")[:256]
    return memo.decode("utf-8", errors="ignore")  # never split a multi-byte character


def route_snapshot(facts: SnapshotFacts, *, pair_lookup: Callable[[str], PairRules | None],
                   operator_ids: frozenset[str]) -> Route:
    if facts.amount <= 0:
        return Route(RouteKind.IGNORE, f"amount {facts.amount} is not an incoming payment", "not_incoming")
    if facts.opponent_id and facts.opponent_id in operator_ids:
        return Route(RouteKind.TOPUP, "transfer from an operator: treasury top-up, never refunded", "topup")

    def problem(code: str, reason: str) -> Route:
        if not facts.refundable:
            return Route(RouteKind.ATTENTION,
                         f"{reason}; it came from outside Mixin (no opponent), so it cannot be refunded "
                         f"by transfer: an operator must return it by withdrawal", code)
        return Route(RouteKind.REFUND, reason, code)

    try:
        memo = decode_snapshot_memo(facts.memo_hex)
    except MemoError as exc:
        return problem(f"memo_{exc.code}", f"memo is not a valid mmflow memo: {exc}")
    pair = pair_lookup(memo.pair_id)
    if pair is None:
        return problem("unknown_pair", f"pair {memo.pair_id} is not configured")
    if not pair.enabled:
        return problem("pair_disabled", f"pair {pair.symbol} ({pair.pair_id}) is disabled")
    return order_route(memo.order_id, memo.pair_id, memo.action)


@functools.lru_cache(maxsize=16384)
def order_route(order_id: str, pair_id: str, action: int) -> Route:
    """An order's payments share one immutable Route (building it was a tenth of routing a page)."""
    return Route(RouteKind.ORDER, f"payment for order {order_id}", "order", order_id=order_id, pair_id=pair_id,
                 action=action)


class PaymentDecisionKind(str, enum.Enum):
    ACCEPT = "accept"        # into the order's payment tally (create, or add funds while payment is pending)
    TOP_UP = "top_up"        # add funds to a running/paused order: to the exchange like stage 5
    EXIT = "exit"            # the owner asks for an exit; the amount comes back with the settlement
    REFUND = "refund"
    ATTENTION = "attention"


@dataclass(frozen=True)
class PaymentDecision:
    kind: PaymentDecisionKind
    reason: str = ""
    code: str = ""


_ACCEPT = PaymentDecision(PaymentDecisionKind.ACCEPT)  # immutable: one for every accepted payment


def decide_payment(*, state: OrderState, owner_id: str | None, facts: SnapshotFacts, pair: PairRules,
                   fees: FeeRequirements, action: int | None = ACTION_CREATE,
                   exit_requested: bool = False) -> PaymentDecision:
    """What this order does with this payment, by its memo action (create 1, deposit 2, exit 3).

    create: taken into the tally while payment is pending, else refunded with the order's state.
    deposit (add funds): like create while payment is pending; from the owner into a running or paused
    order it is a top-up; otherwise refunded. exit: from the owner, into an order that is not final or
    already exiting, it is an exit request; otherwise refunded with the reason."""
    if not facts.refundable:
        return PaymentDecision(PaymentDecisionKind.ATTENTION,
                               f"payment {facts.snapshot_id} came from outside Mixin (no opponent): the order "
                               f"cannot be owned or refunded by transfer", "no_opponent")
    if state.__class__ is not OrderState:
        state = OrderState(state)
    if action == ACTION_EXIT:
        return _decide_exit(state, owner_id, facts, exit_requested)
    if action == ACTION_DEPOSIT and state in ACCEPTS_TOP_UP:
        if exit_requested:
            return PaymentDecision(PaymentDecisionKind.REFUND, "order is exiting: no funds can be added",
                                   "order_exiting")
        decision = _owner_and_asset(owner_id, facts, pair, fees)
        return decision or PaymentDecision(PaymentDecisionKind.TOP_UP, "funds added to a running order")
    if state not in ACCEPTS_PAYMENT:
        if action == ACTION_DEPOSIT:
            return PaymentDecision(PaymentDecisionKind.REFUND,
                                   f"order is {state}: funds can be added only to a running or paused order",
                                   f"order_{state}")
        return PaymentDecision(PaymentDecisionKind.REFUND, f"order is {state}, not accepting payments",
                               f"order_{state}")
    return _owner_and_asset(owner_id, facts, pair, fees) or _ACCEPT


def _owner_and_asset(owner_id: str | None, facts: SnapshotFacts, pair: PairRules,
                     fees: FeeRequirements) -> PaymentDecision | None:
    if owner_id and facts.opponent_id != owner_id:
        return PaymentDecision(PaymentDecisionKind.REFUND,
                               f"order belongs to the user who paid first ({owner_id})", "not_owner")
    asset_id = facts.asset_id
    if asset_id == pair.base_asset_id or asset_id == pair.quote_asset_id:
        return None  # a leg of the pair (legs_for_asset would say so): the usual payment, no tuple built
    if not legs_for_asset(facts.asset_id, pair, fees):
        return PaymentDecision(PaymentDecisionKind.REFUND,
                               f"asset {facts.asset_id} is not part of {pair.symbol} or its fees", "unknown_asset")
    return None


def _decide_exit(state: OrderState, owner_id: str | None, facts: SnapshotFacts,
                 exit_requested: bool) -> PaymentDecision:
    if state in FINAL_STATES:
        return PaymentDecision(PaymentDecisionKind.REFUND, f"exit refused: order is already {state}",
                               f"exit_order_{state}")
    if not owner_id:
        return PaymentDecision(PaymentDecisionKind.REFUND, "exit refused: the order has no accepted payment yet, "
                               "so nobody owns it", "exit_no_owner")
    if facts.opponent_id != owner_id:
        return PaymentDecision(PaymentDecisionKind.REFUND,
                               f"exit refused: only the order's owner ({owner_id}) may ask for an exit", "not_owner")
    if exit_requested or state in EXITING_STATES:
        return PaymentDecision(PaymentDecisionKind.REFUND, f"exit refused: order is already exiting ({state})",
                               "exit_already")
    return PaymentDecision(PaymentDecisionKind.EXIT, "the owner asked for an exit")


def exit_request_for_unknown_order(facts: SnapshotFacts) -> PaymentDecision:
    """An exit memo naming an order mmflow has never seen: refunded, no order is created."""
    return PaymentDecision(PaymentDecisionKind.REFUND, "exit refused: no such order", "exit_unknown_order")
