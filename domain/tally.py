"""Applying payments to an order: the pure rule behind stage 3, no I/O.

Given an order as it is (or None: not created yet) and its new payments in created_at order, say what
each payment does — taken into the tally, an exit request, funds added, refunded, attention — and what
the order looks like afterwards. Storage writes the result (a few set-based statements for a whole page
of snapshots); the OrderActor hears about it after the commit. One function serves both the page-at-once
ingest and an actor applying left-over payments, so the rule exists once.
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields

from domain.ids import refund_request_id
from domain.memo import ACTION_EXIT
from domain.money import ZERO
from domain.order_view import OrderView
from domain.payment import FeeRequirements, PairRules
from domain.records import copied, made
from domain.routing import (PaymentDecision, PaymentDecisionKind, SnapshotFacts, decide_payment,
                            exit_request_for_unknown_order)
from domain.states import ExitPlan, OrderState, check_transition, exit_plan, remembered_exit_reason

NEW_ORDER_REASON = "waiting for payment"
FIRST_SEEN_REASON = "first payment seen"

# What an applied snapshot is to its order (the snapshot's `purpose`), by outcome.
PURPOSE_OF = {"accepted": "payment", "attention": "payment", "top_up": "top_up", "exit": "exit"}

# The reason decide_payment gives an accepted payment (its one ACCEPT decision has the default reason).
_ACCEPTED_REASON = PaymentDecision(PaymentDecisionKind.ACCEPT).reason

_PAYMENT_PENDING = OrderState.PAYMENT_PENDING  # per order of every page: no enum look-up

Decide = Callable[[OrderView | None, SnapshotFacts], PaymentDecision]


@dataclass(frozen=True)
class ArchivedOrderFacts:
    """What a payment decision needs of an order in cold storage (it is final: the payment is refused)."""
    state: OrderState
    owner_id: str | None


def decide_for(view: OrderView | None, facts: SnapshotFacts, pair: PairRules, action: int | None,
               archived: ArchivedOrderFacts | None = None) -> PaymentDecision:
    """What an order (None: not created yet, or `archived`) does with a payment whose memo has `action`."""
    if view is None and archived is not None:
        return decide_payment(state=archived.state, owner_id=archived.owner_id, facts=facts, pair=pair, fees=None,
                              action=action)
    if view is None:
        if action == ACTION_EXIT:
            return exit_request_for_unknown_order(facts)
        return PaymentDecision(PaymentDecisionKind.ACCEPT, "creates the order")
    return decide_payment(state=view.state, owner_id=view.user_id, facts=facts, pair=pair, fees=view.fees,
                          action=action, exit_requested=view.exit_requested)


@dataclass(frozen=True)
class ApplyOutcome:
    snapshot_id: str
    result: str            # "accepted", "top_up", "exit", "refunded", "attention", "duplicate"
    reason: str
    refund_request_id: str | None = None

    @property
    def purpose(self) -> str | None:
        return PURPOSE_OF.get(self.result)


def _outcome(snapshot_id: str, result: str, reason: str, refund_id: str | None = None) -> ApplyOutcome:
    """ApplyOutcome(...) made without its frozen __init__ (one outcome per payment of every page: a tenth of
    planning a page)."""
    return made(ApplyOutcome, {"snapshot_id": snapshot_id, "result": result, "reason": reason,
                               "refund_request_id": refund_id})


@dataclass(frozen=True)
class Refund:
    facts: SnapshotFacts
    code: str
    reason: str
    order_id: str | None   # None: the order was never created (an exit naming an unknown order)


@dataclass(frozen=True)
class Transition:
    from_state: str | None
    to_state: str
    reason: str


@dataclass
class OrderApplication:
    """What one batch of payments did to one order."""
    order_id: str
    pair_id: str
    view: OrderView | None                 # the order afterwards (None: still does not exist)
    created: bool = False                  # the batch created the order (insert its row)
    changed: bool = False                  # the order's row must be written (owner, deadline, exit, state)
    row_changed: bool = False              # ... its fields other than updated_at too (else: only tallied)
    outcomes: list[ApplyOutcome] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # payments tallied in this batch, per asset

    def results(self, result: str) -> list[ApplyOutcome]:
        return [o for o in self.outcomes if o.result == result]

    @property
    def refund_ids(self) -> list[str]:
        return [o.refund_request_id for o in self.outcomes if o.refund_request_id]


_APPLICATION_FIELDS = ("order_id", "pair_id", "view", "created", "changed", "row_changed", "outcomes", "refunds",
                       "transitions", "counts")
# apply_to_order and apply_plain_payments give every field by position (the plain __init__ so, ~half what built()
# cost: no keyword dict, no instance __dict__ made): a field added or moved must be added or moved there too
if tuple(f.name for f in fields(OrderApplication)) != _APPLICATION_FIELDS:
    raise TypeError("OrderApplication's fields changed: update apply_to_order's and apply_plain_payments' construction")


def new_order(order_id: str, pair_id: str, fees: FeeRequirements, now: float, timeout: float) -> OrderView:
    """A new order in payment_pending, with a deadline from its first snapshot on (even if that payment is
    refused: every order reaches a final state or attention, none waits forever)."""
    return OrderView(order_id=order_id, pair_id=pair_id, state=OrderState.PAYMENT_PENDING,
                     state_reason=NEW_ORDER_REASON, user_id=None, fees=fees, first_payment_at=None,
                     deadline_at=now + timeout, created_at=now, tallies={})


def _row_fields(view: OrderView) -> tuple:
    return (view.state, view.state_reason, view.user_id, view.first_payment_at, view.deadline_at,
            view.exit_requested_at, view.exit_source, view.exit_reason)


def apply_to_order(order_id: str, pair_id: str, view: OrderView | None, new_order_fees: FeeRequirements | None,
                   snapshots: Sequence[SnapshotFacts], decide: Decide, *, now: float, timeout: float,
                   applied: Collection[str] = (), archived: bool = False, owned: bool = False) -> OrderApplication:
    """Apply `snapshots` (in created_at order) to the order, each exactly once.

    `applied` names snapshots already applied (a replay): they are duplicates, as is a snapshot listed twice.
    With no order yet, `decide(None, facts)` may refuse (an exit for an unknown order): refunded, and no order
    is created for it; otherwise the order is created with `new_order_fees` (LookupError if there are none).
    `archived`: the order is in cold storage — a refund names it (restored, its statement shows both).
    `owned`: the caller hands `view` over (read for this call alone): it becomes the result, changed in place."""
    app = OrderApplication(order_id, pair_id, None, False, False, False, [], [], [], {})  # every field: no factories
    if view is not None and not owned:
        view = view.copy()  # never change the caller's view
    before = None if view is None else _row_fields(view)
    seen: set[str] = set()
    for facts in snapshots:
        if facts.snapshot_id in applied or facts.snapshot_id in seen:
            app.outcomes.append(_outcome(facts.snapshot_id, "duplicate", "already applied"))
            continue
        seen.add(facts.snapshot_id)
        if view is None:
            decision = decide(None, facts)
            if decision.kind is PaymentDecisionKind.REFUND:
                _refund(app, facts, decision, order_id if archived else None)
                continue
            if new_order_fees is None:
                raise LookupError(f"order {order_id} does not exist and no fee requirements were given")
            view = new_order(order_id, pair_id, new_order_fees, now, timeout)
            before = _row_fields(view)
            app.created = True
            app.transitions.append(Transition(None, OrderState.PAYMENT_PENDING.value, FIRST_SEEN_REASON))
        decision = decide(view, facts)
        if decision.kind is PaymentDecisionKind.REFUND:
            _refund(app, facts, decision, order_id)
            continue
        if decision.kind is PaymentDecisionKind.EXIT:
            view.exit_requested_at, view.exit_source = now, "memo"
            view.exit_reason = f"the owner asked for an exit (snapshot {facts.snapshot_id})"
            if exit_plan(view.state) is ExitPlan.REMEMBER:  # funds in flight: the order says so from this commit on
                view.state_reason = remembered_exit_reason(view.state, view.state_reason, view.exit_source)[0]
            app.outcomes.append(_outcome(facts.snapshot_id, "exit", decision.reason))
            continue
        if decision.kind is PaymentDecisionKind.TOP_UP:
            app.outcomes.append(_outcome(facts.snapshot_id, "top_up", decision.reason))
            continue
        view.tallies[facts.asset_id] = view.tallies.get(facts.asset_id, ZERO) + facts.amount
        app.counts[facts.asset_id] = app.counts.get(facts.asset_id, 0) + 1
        if decision.kind is PaymentDecisionKind.ATTENTION:
            if view.state is not OrderState.ATTENTION:
                check_transition(view.state, OrderState.ATTENTION, order_id)
                app.transitions.append(Transition(view.state.value, OrderState.ATTENTION.value, decision.reason))
                view.state, view.state_reason = OrderState.ATTENTION, decision.reason
            app.outcomes.append(_outcome(facts.snapshot_id, "attention", decision.reason))
            continue
        if view.user_id is None:
            view.user_id = facts.opponent_id
            view.first_payment_at = now
            view.deadline_at = now + timeout
        app.outcomes.append(_outcome(facts.snapshot_id, "accepted", decision.reason))
    app.view = view
    app.row_changed = view is not None and (app.created or _row_fields(view) != before)
    app.changed = app.row_changed or (view is not None and bool(app.counts))
    return app


def apply_plain_payments(order_id: str, pair_id: str, view: OrderView | None, new_order_fees: FeeRequirements | None,
                         snapshots: Sequence[SnapshotFacts], pair: PairRules, actions: Mapping[str, int | None], *,
                         now: float, timeout: float) -> OrderApplication | None:
    """apply_to_order's answer for the usual payments, without asking the rule payment by payment — or None when
    one of them is not usual (then apply_to_order decides them all).

    Usual: the order waits for its payment (payment_pending, or not created yet and `new_order_fees` given), and
    every payment is a transfer from its owner (the order's, or the first payer's when it has none yet) in one of
    the pair's two assets, with a memo that does not ask for an exit, each snapshot once. decide_payment accepts
    every such payment into the tally, so what they do follows without it: the tallies grow, the first one owns
    the order. Same snapshots in, same application out (tests/test_ingest_page.py compares both on random pages).
    `view` is never changed: the application's view is a new one (in the usual page, each order's only copy)."""
    if view is None:
        if new_order_fees is None:
            return None
        state, owner = _PAYMENT_PENDING, None
    else:
        state, owner = view.state, view.user_id
    if state is not _PAYMENT_PENDING:
        return None
    payer = owner or snapshots[0].opponent_id
    base, quote = pair.base_asset_id, pair.quote_asset_id
    for facts in snapshots:
        if (facts.opponent_id != payer or not payer or facts.is_deposit
                or (facts.asset_id != base and facts.asset_id != quote)
                or actions[facts.snapshot_id] == ACTION_EXIT):
            return None
    if len(snapshots) > 1 and len({f.snapshot_id for f in snapshots}) < len(snapshots):
        return None  # a snapshot listed twice: the second is a duplicate (apply_to_order says so)
    transitions = []
    if view is None:
        view = new_order(order_id, pair_id, new_order_fees, now, timeout)
        transitions.append(Transition(None, OrderState.PAYMENT_PENDING.value, FIRST_SEEN_REASON))
        tallies = view.tallies
    else:  # a new view, the caller's left as it is (copied(...) without a dict of changes built per order)
        view = copied(view)
        tallies = view.__dict__["tallies"] = dict(view.tallies)
    fields_of = view.__dict__  # the view is this application's own: its fields set directly
    counts: dict[str, int] = {}
    outcomes = []
    for facts in snapshots:
        asset_id = facts.asset_id
        tallies[asset_id] = tallies.get(asset_id, ZERO) + facts.amount
        counts[asset_id] = counts.get(asset_id, 0) + 1
        outcomes.append(_outcome(facts.snapshot_id, "accepted", _ACCEPTED_REASON))
    owned_now = owner is None  # the first payment makes its payer the owner and starts its window
    if owned_now:
        fields_of["user_id"], fields_of["first_payment_at"], fields_of["deadline_at"] = payer, now, now + timeout
    row_changed = bool(transitions) or owned_now
    return OrderApplication(order_id, pair_id, view, bool(transitions), True, row_changed, outcomes, [], transitions,
                            counts)


def _refund(app: OrderApplication, facts: SnapshotFacts, decision: PaymentDecision, order_id: str | None) -> None:
    app.refunds.append(Refund(facts, decision.code, decision.reason, order_id))
    app.outcomes.append(_outcome(facts.snapshot_id, "refunded", decision.reason,
                                     refund_request_id(facts.snapshot_id)))
