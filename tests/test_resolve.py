"""domain/resolve.py: where an operator may move an order out of `attention`, by the order's facts.

The legal targets are written out by hand for every combination of the four facts (not derived from the
module), including combinations the records cannot produce (e.g. a ledger without funding): the rules are
independent of each other and the table shows exactly what each one adds.
"""
from __future__ import annotations

import itertools

import pytest

from domain.resolve import ResolveFacts, ResolveRefused, check_resolve, resolve_options
from domain.states import TRANSITIONS, OrderState

S = OrderState

ON_MIXIN = {S.PAYMENT_PENDING, S.REFUNDING, S.REFUNDED}          # not funded: the money never left Mixin
IN_FLIGHT = {S.WITHDRAWING}                                     # funded, no ledger yet
ON_EXCHANGE = {S.RUNNING, S.PAUSED, S.STOPPING}                 # ledger open, nothing coming back yet
COMING_BACK = {S.RETURNING_FUNDS}                               # returns written, not all arrived
ARRIVED = {S.SETTLING}                                          # returns written and all arrived
ALWAYS = {S.SETTLED}                                            # closing by hand is always possible

# (funded, ledger_open, returns, returns_arrived) → legal targets
EXPECTED = {
    (False, False, False, False): ON_MIXIN | ALWAYS,
    (False, False, False, True): ON_MIXIN | ALWAYS,
    (False, False, True, False): ON_MIXIN | COMING_BACK | ALWAYS,
    (False, False, True, True): ON_MIXIN | ARRIVED | ALWAYS,
    (False, True, False, False): ON_MIXIN | ON_EXCHANGE | ALWAYS,
    (False, True, False, True): ON_MIXIN | ON_EXCHANGE | ALWAYS,
    (False, True, True, False): ON_MIXIN | COMING_BACK | ALWAYS,
    (False, True, True, True): ON_MIXIN | ARRIVED | ALWAYS,
    # the combinations the records produce:
    (True, False, False, False): IN_FLIGHT | ALWAYS,            # stuck between Mixin and the exchange
    (True, False, False, True): IN_FLIGHT | ALWAYS,
    (True, False, True, False): IN_FLIGHT | COMING_BACK | ALWAYS,
    (True, False, True, True): IN_FLIGHT | ARRIVED | ALWAYS,
    (True, True, False, False): ON_EXCHANGE | ALWAYS,           # funds on the exchange
    (True, True, False, True): ON_EXCHANGE | ALWAYS,            # (all() of no returns is True)
    (True, True, True, False): COMING_BACK | ALWAYS,            # on the way back
    (True, True, True, True): ARRIVED | ALWAYS,                 # back on Mixin, not paid out
}


def facts(funded=True, ledger_open=True, returns=False, returns_arrived=False, state=S.ATTENTION,
          holdings="0.062 BTC, 6913.883999 USDT") -> ResolveFacts:
    return ResolveFacts(state=state, exchange="binance", funded=funded, ledger_open=ledger_open, returns=returns,
                        returns_arrived=returns_arrived, holdings=holdings)


def test_the_table_covers_every_combination():
    assert set(EXPECTED) == set(itertools.product([False, True], repeat=4))


@pytest.mark.parametrize("combo", sorted(EXPECTED), ids=lambda c: "-".join("TF"[not x] for x in c))
def test_legal_targets(combo):
    options = resolve_options(facts(*combo))
    assert set(options) == EXPECTED[combo]
    assert S.ATTENTION not in options
    for target, effect in options.items():
        assert isinstance(effect, str) and effect
        assert target in TRANSITIONS[S.ATTENTION]          # the state machine allows the move
        assert check_resolve(facts(*combo), target) == effect
        assert check_resolve(facts(*combo), target.value) == effect  # by name too (the CLI passes text)


@pytest.mark.parametrize("combo", sorted(EXPECTED), ids=lambda c: "-".join("TF"[not x] for x in c))
def test_every_other_target_is_refused(combo):
    legal = EXPECTED[combo]
    for target in set(OrderState) - legal:
        with pytest.raises(ResolveRefused) as exc:
            check_resolve(facts(*combo), target)
        message = str(exc.value)
        assert f"{target.value} is not a legal target for this order now; legal: " in message
        listed = set(message.split("legal: ", 1)[1].split(", "))
        assert listed == {s.value for s in legal}


def test_refused_message_lists_the_legal_targets_in_order():
    with pytest.raises(ResolveRefused, match=r"^payment_pending is not a legal target for this order now; "
                                             r"legal: running, paused, stopping, settled$"):
        check_resolve(facts(), "payment_pending")


@pytest.mark.parametrize("state", [s for s in OrderState if s is not S.ATTENTION])
def test_only_an_order_in_attention_can_be_resolved(state):
    with pytest.raises(ResolveRefused, match=f"order is {state.value}, not in attention: nothing to resolve"):
        check_resolve(facts(state=state), S.SETTLED)


@pytest.mark.parametrize("name", ["", "settle", "SETTLED", "Running", "attention!", "refund"])
def test_unknown_state_names_are_refused(name):
    with pytest.raises(ResolveRefused, match="is not an order state"):
        check_resolve(facts(), name)


def test_attention_itself_is_not_a_target():
    with pytest.raises(ResolveRefused, match="attention is not a legal target"):
        check_resolve(facts(), "attention")


def test_money_effects_name_the_exchange_and_holdings():
    on_exchange = facts()
    assert check_resolve(on_exchange, "running") == ("quotes again on binance with its own funds "
                                                     "(0.062 BTC, 6913.883999 USDT)")
    assert check_resolve(on_exchange, "paused") == ("keeps its funds on binance (0.062 BTC, 6913.883999 USDT) "
                                                    "without quoting")
    assert check_resolve(on_exchange, "stopping") == ("exits: its quotes are cancelled, its funds (0.062 BTC, "
                                                      "6913.883999 USDT) come back from binance to Mixin and are "
                                                      "paid to the owner")
    # no holdings text: "its ledger"
    assert "(its ledger)" in check_resolve(facts(holdings=""), "running")
    assert "binance" in check_resolve(facts(ledger_open=False), "withdrawing")
    assert "nothing new is sent" in check_resolve(facts(ledger_open=False), "withdrawing")
    assert "looked up before anything is sent again" in check_resolve(facts(returns=True), "returning_funds")
    assert "one transfer per asset" in check_resolve(facts(returns=True, returns_arrived=True), "settling")


def test_money_effects_before_funding():
    unfunded = facts(funded=False, ledger_open=False)
    assert "new payment deadline" in check_resolve(unfunded, S.PAYMENT_PENDING)
    assert "refunded to its payer" in check_resolve(unfunded, S.REFUNDING)
    assert "BY HAND" in check_resolve(unfunded, S.REFUNDED)
    assert "BY HAND" in check_resolve(unfunded, S.SETTLED)
