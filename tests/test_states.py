"""The order state machine (domain/states.py): every legal edge, a sample of illegal ones."""
from __future__ import annotations

import pytest

from domain.states import (
    ACCEPTS_PAYMENT,
    FINAL_STATES,
    TRANSITIONS,
    IllegalTransition,
    OrderState,
    can_transition,
    check_transition,
)

S = OrderState
ALL_EDGES = [(src, dst) for src, targets in TRANSITIONS.items() for dst in sorted(targets)]
NON_FINAL = [s for s in OrderState if s not in FINAL_STATES and s is not S.ATTENTION]

# The happy path and its documented branches, written out by hand (not read from TRANSITIONS).
EXPECTED = {
    S.PAYMENT_PENDING: {S.PAYMENT_COMPLETE, S.REFUNDING},
    S.PAYMENT_COMPLETE: {S.WITHDRAWING, S.REFUNDING},
    S.WITHDRAWING: {S.WITHDRAWAL_CONFIRMED},
    S.WITHDRAWAL_CONFIRMED: {S.DEPOSIT_CONFIRMING},
    S.DEPOSIT_CONFIRMING: {S.DEPOSIT_CONFIRMED},
    S.DEPOSIT_CONFIRMED: {S.JOINING_CAMPAIGN, S.STOPPING},
    S.JOINING_CAMPAIGN: {S.CAMPAIGN_JOINED, S.STOPPING},
    S.CAMPAIGN_JOINED: {S.RUNNING, S.STOPPING},
    S.RUNNING: {S.PAUSED, S.STOPPING},
    S.PAUSED: {S.RUNNING, S.STOPPING},
    S.STOPPING: {S.STOPPED},
    S.STOPPED: {S.RUNNING, S.RETURNING_FUNDS},
    S.RETURNING_FUNDS: {S.SETTLING},
    S.SETTLING: {S.SETTLED},
    S.REFUNDING: {S.REFUNDED},
}


def test_every_state_has_a_row():
    assert set(TRANSITIONS) == set(OrderState)
    assert len(OrderState) == 18


@pytest.mark.parametrize("src,dst", ALL_EDGES, ids=[f"{a.value}->{b.value}" for a, b in ALL_EDGES])
def test_every_listed_transition_is_allowed(src, dst):
    check_transition(src, dst)  # must not raise
    assert can_transition(src, dst) is True


@pytest.mark.parametrize("src", list(EXPECTED), ids=[s.value for s in EXPECTED])
def test_table_is_the_expected_lifecycle_plus_attention(src):
    assert TRANSITIONS[src] == frozenset(EXPECTED[src] | {S.ATTENTION})


def test_number_of_edges():
    # 15 rows of EXPECTED (23 edges) + 15 edges to attention + 17 from attention
    assert sum(len(v) for v in EXPECTED.values()) == 23
    assert len(ALL_EDGES) == 23 + 15 + 17


@pytest.mark.parametrize("src,dst", [
    (S.PAYMENT_PENDING, S.RUNNING),
    (S.PAYMENT_PENDING, S.WITHDRAWING),
    (S.PAYMENT_PENDING, S.REFUNDED),
    (S.PAYMENT_PENDING, S.PAYMENT_PENDING),
    (S.PAYMENT_COMPLETE, S.PAYMENT_PENDING),
    (S.WITHDRAWING, S.REFUNDING),
    (S.WITHDRAWING, S.RUNNING),
    (S.DEPOSIT_CONFIRMING, S.RUNNING),
    (S.RUNNING, S.STOPPED),
    (S.RUNNING, S.SETTLED),
    (S.STOPPING, S.RUNNING),
    (S.STOPPED, S.SETTLED),
    (S.RETURNING_FUNDS, S.REFUNDING),
    (S.SETTLING, S.RUNNING),
    (S.REFUNDING, S.PAYMENT_PENDING),
    (S.ATTENTION, S.ATTENTION),
], ids=lambda s: s.value)
def test_illegal_transitions_raise(src, dst):
    with pytest.raises(IllegalTransition) as info:
        check_transition(src, dst, "order-42")
    assert info.value.current is src
    assert info.value.target is dst
    assert str(info.value) == f"order order-42: illegal transition {src.value} -> {dst.value}"
    assert can_transition(src, dst) is False


@pytest.mark.parametrize("final", sorted(FINAL_STATES), ids=lambda s: s.value)
def test_final_states_have_no_exit(final):
    assert TRANSITIONS[final] == frozenset()
    for target in OrderState:
        with pytest.raises(IllegalTransition):
            check_transition(final, target)


def test_final_states_are_settled_and_refunded():
    assert FINAL_STATES == frozenset({S.SETTLED, S.REFUNDED})


@pytest.mark.parametrize("state", NON_FINAL, ids=lambda s: s.value)
def test_every_non_final_state_can_go_to_attention(state):
    check_transition(state, S.ATTENTION)
    assert can_transition(state, S.ATTENTION)


def test_attention_can_be_resolved_to_any_other_state():
    assert TRANSITIONS[S.ATTENTION] == frozenset(set(OrderState) - {S.ATTENTION})
    for target in OrderState:
        assert can_transition(S.ATTENTION, target) is (target is not S.ATTENTION)


def test_only_payment_pending_accepts_payments():
    assert ACCEPTS_PAYMENT == frozenset({S.PAYMENT_PENDING})


def test_string_states_are_accepted():
    check_transition("payment_pending", "refunding")
    assert can_transition("running", "paused") is True
    assert can_transition("refunded", "refunding") is False
    with pytest.raises(IllegalTransition) as info:
        check_transition("refunded", "refunding")
    assert info.value.current is S.REFUNDED


def test_unknown_state_name_is_a_value_error():
    with pytest.raises(ValueError):
        check_transition("bogus", S.RUNNING)


def test_str_is_the_value():
    assert str(S.PAYMENT_PENDING) == "payment_pending"
    assert f"{S.RETURNING_FUNDS}" == "returning_funds"


def test_no_message_order_id_placeholder():
    with pytest.raises(IllegalTransition, match=r"^order \?: illegal transition settled -> running$"):
        check_transition(S.SETTLED, S.RUNNING)


# ---------------------------------------------------------------- exit plan by state (issue: the way back)

from domain.states import ExitPlan, exit_plan  # noqa: E402

EXIT_BY_STATE = {
    S.PAYMENT_PENDING: ExitPlan.REFUND_ALL, S.PAYMENT_COMPLETE: ExitPlan.REFUND_ALL,
    S.WITHDRAWING: ExitPlan.REMEMBER, S.WITHDRAWAL_CONFIRMED: ExitPlan.REMEMBER,
    S.DEPOSIT_CONFIRMING: ExitPlan.REMEMBER, S.ATTENTION: ExitPlan.REMEMBER,
    S.DEPOSIT_CONFIRMED: ExitPlan.STOP_NOW, S.JOINING_CAMPAIGN: ExitPlan.STOP_NOW,
    S.CAMPAIGN_JOINED: ExitPlan.STOP_NOW, S.RUNNING: ExitPlan.STOP_NOW, S.PAUSED: ExitPlan.STOP_NOW,
    S.STOPPED: ExitPlan.STOP_NOW,
    S.STOPPING: ExitPlan.REFUSE, S.RETURNING_FUNDS: ExitPlan.REFUSE, S.SETTLING: ExitPlan.REFUSE,
    S.SETTLED: ExitPlan.REFUSE, S.REFUNDING: ExitPlan.REFUSE, S.REFUNDED: ExitPlan.REFUSE,
}


@pytest.mark.parametrize("state", list(OrderState), ids=[s.value for s in OrderState])
def test_exit_plan_by_state(state):
    assert exit_plan(state) is EXIT_BY_STATE[state]
    assert exit_plan(state, already_requested=True) is ExitPlan.REFUSE


@pytest.mark.parametrize("state", [s for s, p in EXIT_BY_STATE.items() if p is ExitPlan.STOP_NOW])
def test_stop_now_states_can_reach_stopping_or_returning(state):
    assert can_transition(state, S.STOPPING) or can_transition(state, S.RETURNING_FUNDS)
