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
    S.JOINING_CAMPAIGN: frozenset({S.CAMPAIGN_JOINED}),
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
