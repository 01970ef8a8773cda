"""The order lifecycle: one transition table, enforced everywhere.

Extends Mr.Market's states (mrmarket-flow.md §3.6) with explicit exit paths.
Every transition is recorded (from, to, reason, time) by the storage layer.
"""
from __future__ import annotations

import enum


class OrderState(str, enum.Enum):
    PAYMENT_PENDING = "payment_pending"
    PAYMENT_COMPLETE = "payment_complete"
    WITHDRAWING = "withdrawing"
    WITHDRAWAL_CONFIRMED = "withdrawal_confirmed"
    DEPOSIT_CONFIRMING = "deposit_confirming"
    DEPOSIT_CONFIRMED = "deposit_confirmed"
    JOINING_CAMPAIGN = "joining_campaign"
    CAMPAIGN_JOINED = "campaign_joined"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    STOPPED = "stopped"
    RETURNING_FUNDS = "returning_funds"
    SETTLING = "settling"
    SETTLED = "settled"
    REFUNDING = "refunding"
    REFUNDED = "refunded"
    ATTENTION = "attention"

    def __str__(self) -> str:  # log lines read "payment_pending", not "OrderState.PAYMENT_PENDING"
        return self.value


S = OrderState

TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    S.PAYMENT_PENDING: frozenset({S.PAYMENT_COMPLETE, S.REFUNDING}),
    S.PAYMENT_COMPLETE: frozenset({S.WITHDRAWING, S.REFUNDING}),
    S.WITHDRAWING: frozenset({S.WITHDRAWAL_CONFIRMED}),
    S.WITHDRAWAL_CONFIRMED: frozenset({S.DEPOSIT_CONFIRMING}),
    S.DEPOSIT_CONFIRMING: frozenset({S.DEPOSIT_CONFIRMED}),
    S.DEPOSIT_CONFIRMED: frozenset({S.JOINING_CAMPAIGN, S.STOPPING}),
    S.JOINING_CAMPAIGN: frozenset({S.CAMPAIGN_JOINED, S.STOPPING}),
    S.CAMPAIGN_JOINED: frozenset({S.RUNNING, S.STOPPING}),
    S.RUNNING: frozenset({S.PAUSED, S.STOPPING}),
    S.PAUSED: frozenset({S.RUNNING, S.STOPPING}),
    S.STOPPING: frozenset({S.STOPPED}),
    S.STOPPED: frozenset({S.RUNNING, S.RETURNING_FUNDS}),
    S.RETURNING_FUNDS: frozenset({S.SETTLING}),
    S.SETTLING: frozenset({S.SETTLED}),
    S.SETTLED: frozenset(),
    S.REFUNDING: frozenset({S.REFUNDED}),
    S.REFUNDED: frozenset(),
    # An operator resolves `attention` by moving the order on to where it belongs.
    S.ATTENTION: frozenset(set(OrderState) - {S.ATTENTION}),
}

# Any state may go to `attention`: money is never guessed at.
for _state in OrderState:
    if _state not in (S.ATTENTION, S.SETTLED, S.REFUNDED):
        TRANSITIONS[_state] = TRANSITIONS[_state] | {S.ATTENTION}

FINAL_STATES = frozenset({S.SETTLED, S.REFUNDED})
# States in which an incoming payment for the order is accepted into the tally.
ACCEPTS_PAYMENT = frozenset({S.PAYMENT_PENDING})
# States in which the owner may add funds (memo action 2): they go to the exchange like stage 5.
ACCEPTS_TOP_UP = frozenset({S.RUNNING, S.PAUSED})

# Stages of an order's life, by name: where each state belongs (README lifecycle table).
STAGES: dict[str, tuple[OrderState, ...]] = {
    "payment": (S.PAYMENT_PENDING, S.PAYMENT_COMPLETE, S.REFUNDING, S.REFUNDED),
    "funding": (S.WITHDRAWING, S.WITHDRAWAL_CONFIRMED, S.DEPOSIT_CONFIRMING, S.DEPOSIT_CONFIRMED),
    "campaign": (S.JOINING_CAMPAIGN, S.CAMPAIGN_JOINED),
    "strategy": (S.RUNNING, S.PAUSED),
    "exit": (S.STOPPING, S.STOPPED, S.RETURNING_FUNDS, S.SETTLING, S.SETTLED),
    "operator": (S.ATTENTION,),
}

# States already on the way out: an exit asked again is refused (refunded) with this reason.
EXITING_STATES = frozenset({S.STOPPING, S.RETURNING_FUNDS, S.SETTLING, S.REFUNDING})
# Funds between Mixin and the exchange: an exit is remembered and carried out once they are on the exchange.
FUNDS_IN_FLIGHT = frozenset({S.WITHDRAWING, S.WITHDRAWAL_CONFIRMED, S.DEPOSIT_CONFIRMING})
# Funds still on Mixin: an exit refunds every payment.
FUNDS_ON_MIXIN = frozenset({S.PAYMENT_PENDING, S.PAYMENT_COMPLETE})
# Funds on the exchange: an exit stops the order now and brings them back.
FUNDS_ON_EXCHANGE = frozenset({S.DEPOSIT_CONFIRMED, S.JOINING_CAMPAIGN, S.CAMPAIGN_JOINED, S.RUNNING, S.PAUSED,
                               S.STOPPED})


class ExitPlan(str, enum.Enum):
    """What an exit request does to an order, by the state it finds it in (one table, below)."""
    REFUND_ALL = "refund_all"      # funds still on Mixin: refund every payment now
    REMEMBER = "remember"          # funds in flight (or an operator must decide first): carried out later
    STOP_NOW = "stop_now"          # funds on the exchange: cancel quotes, bring them back, settle
    REFUSE = "refuse"              # already exiting or final: the request (and its amount) goes back


def exit_plan(state: OrderState, *, already_requested: bool = False) -> ExitPlan:
    state = OrderState(state)
    if state in FINAL_STATES or state in EXITING_STATES or already_requested:
        return ExitPlan.REFUSE
    if state in FUNDS_ON_MIXIN:
        return ExitPlan.REFUND_ALL
    if state in FUNDS_ON_EXCHANGE:
        return ExitPlan.STOP_NOW
    return ExitPlan.REMEMBER  # FUNDS_IN_FLIGHT and ATTENTION


def remembered_exit_reason(state: OrderState, state_reason: str, exit_source: str | None) -> tuple[str, str]:
    """(the order's reason with a remembered exit noted, where the exit will happen) — noted once: an order whose
    reason already says so keeps it."""
    where = ("an operator must resolve it first" if OrderState(state) is S.ATTENTION
             else "carried out as soon as the funds are credited on the exchange")
    suffix = f" — exit asked ({exit_source}): {where}"
    return (state_reason if state_reason.endswith(suffix) else state_reason + suffix), where


class IllegalTransition(RuntimeError):
    def __init__(self, current: OrderState, target: OrderState, order_id: str = ""):
        super().__init__(f"order {order_id or '?'}: illegal transition {current} -> {target}")
        self.current = current
        self.target = target


def check_transition(current: OrderState, target: OrderState, order_id: str = "") -> None:
    if target not in TRANSITIONS[OrderState(current)]:
        raise IllegalTransition(OrderState(current), OrderState(target), order_id)


def can_transition(current: OrderState, target: OrderState) -> bool:
    return target in TRANSITIONS[OrderState(current)]
