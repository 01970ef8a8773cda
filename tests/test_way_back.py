"""Worked examples for domain/way_back.py: how a balance splits into withdrawal and dust, which Mixin
deposit completes which return, and what is paid out to the owner.

Running example: a BTC/USDT order on binance exits with 0.062 BTC and 6913.883999 USDT on its ledger
(the same numbers as tests/test_statement.py). Binance asks 0.0002 BTC (minimum 0.001) and 3 USDT
(minimum 10, precision 0.0001) for a withdrawal.
"""
from __future__ import annotations

from decimal import Decimal as D

import pytest

from domain.way_back import (
    ArrivalMatch,
    ReturnCandidate,
    ReturnPlan,
    WithdrawalTerms,
    match_arrival,
    plan_payouts,
    plan_return,
)
from tests.cases import BTC, E8, ETH, USDT, property_cases



BTC_TERMS = WithdrawalTerms(fee=D("0.0002"), minimum=D("0.001"), step=E8)
USDT_TERMS = WithdrawalTerms(fee=D("3"), minimum=D("10"), step=D("0.0001"))




# ================================ plan_return: worked examples ================================

# (name, code, balance, terms, withdraw, expected, fee, dust, note contains)
PLAN_CASES = [
    # 0.062 is a multiple of 1e-8 and above 0.001: all of it; 0.062 − 0.0002 = 0.0618 arrives.
    ("btc whole balance", "BTC", "0.062", BTC_TERMS, "0.062", "0.0618", "0.0002", "0", ""),
    # 6913.883999 / 0.0001 = 69138839.99 → 69138839 steps = 6913.8839; dust 6913.883999 − 6913.8839 = 0.000099;
    # 6913.8839 − 3 = 6910.8839 arrives.
    ("usdt precision dust", "USDT", "6913.883999", USDT_TERMS, "6913.8839", "6910.8839", "3", "0.000099",
     "0.000099 USDT below the exchange's precision 0.0001"),
    # 0.0009 < minimum 0.001: nothing is withdrawn, all of it is dust.
    ("below minimum", "BTC", "0.0009", BTC_TERMS, "0", "0", "0", "0.0009",
     "below the exchange's withdrawal minimum 0.001"),
    # exactly the minimum 0.001 (> fee 0.0002): 0.001 − 0.0002 = 0.0008 arrives.
    ("exactly the minimum", "BTC", "0.001", BTC_TERMS, "0.001", "0.0008", "0.0002", "0", ""),
    # 0.0002 == fee, no minimum: nothing would arrive → dust.
    ("equal to the fee", "BTC", "0.0002", WithdrawalTerms(fee=D("0.0002")), "0", "0", "0", "0.0002",
     "not more than the withdrawal fee 0.0002"),
    # below the fee as well
    ("below the fee", "BTC", "0.00015", WithdrawalTerms(fee=D("0.0002")), "0", "0", "0", "0.00015",
     "not more than the withdrawal fee 0.0002"),
    # one satoshi above the fee: 0.00020001 − 0.0002 = 0.00000001 arrives.
    ("one unit above the fee", "BTC", "0.00020001", WithdrawalTerms(fee=D("0.0002")), "0.00020001", "0.00000001",
     "0.0002", "0", ""),
    # the minimum is checked on the truncated amount: 10.00009 → 10.0000 (step 0.0001) ≥ 10; dust 0.00009.
    ("minimum after truncation ok", "USDT", "10.00009", USDT_TERMS, "10.0000", "7", "3", "0.00009",
     "0.00009 USDT below the exchange's precision 0.0001"),
    # 10.9 with step 1 → 10 < minimum 11: all dust (even though the balance itself is 10.9).
    ("minimum after truncation fails", "USDT", "10.9", WithdrawalTerms(fee=D("1"), minimum=D("11"), step=D("1")),
     "0", "0", "0", "10.9", "below the exchange's withdrawal minimum 11"),
    # 3.00009 → 3.0000 with step 0.0001: equal to the fee 3 → all dust.
    ("truncated down to the fee", "USDT", "3.00009", WithdrawalTerms(fee=D("3"), step=D("0.0001")),
     "0", "0", "0", "3.00009", "not more than the withdrawal fee 3"),
    # a coarse step: 7.3 / 0.25 = 29.2 → 29 × 0.25 = 7.25; dust 0.05; 7.25 − 0.5 = 6.75 arrives.
    ("quarter step", "XYZ", "7.3", WithdrawalTerms(fee=D("0.5"), step=D("0.25")), "7.25", "6.75", "0.5", "0.05",
     "0.05 XYZ"),
    # no step, 9 decimals on the exchange: Mixin's 8 decimals floor it: 0.12345678, dust 0.000000009.
    ("mixin floor without step", "ETH", "0.123456789", WithdrawalTerms(fee=D("0.001")), "0.12345678", "0.12245678",
     "0.001", "0.000000009", "0.000000009 ETH"),
    # a step finer than Mixin's: 0.123456789 is a multiple of 1e-10 but still floored to 8 decimals.
    ("mixin floor finer step", "ETH", "0.123456789", WithdrawalTerms(fee=D("0.001"), step=D("0.0000000001")),
     "0.12345678", "0.12245678", "0.001", "0.000000009", "0.000000009 ETH"),
    # step 0 means "any amount" (not a division by zero)
    ("step zero is no step", "BTC", "0.5", WithdrawalTerms(fee=D("0.0002"), step=D("0")), "0.5", "0.4998", "0.0002",
     "0", ""),
    # zero fee: everything arrives
    ("zero fee", "USDT", "12.5", WithdrawalTerms(fee=D("0")), "12.5", "12.5", "0", "0", ""),
    # disabled withdrawals: everything is dust, however large.
    ("disabled", "BTC", "1.5", WithdrawalTerms(fee=D("0.0002"), minimum=D("0.001"), step=E8, enabled=False),
     "0", "0", "0", "1.5", "disabled"),
    # zero balance
    ("zero balance", "BTC", "0", BTC_TERMS, "0", "0", "0", "0", "nothing to return"),
]


@pytest.mark.parametrize("name,code,balance,terms,withdraw,expected,fee,dust,note", PLAN_CASES,
                         ids=[c[0] for c in PLAN_CASES])
def test_plan_return_worked_examples(name, code, balance, terms, withdraw, expected, fee, dust, note):
    plan = plan_return(code, D(balance), terms)
    assert isinstance(plan, ReturnPlan)
    assert plan.code == code
    assert plan.balance == D(balance)
    assert plan.withdraw == D(withdraw)
    assert plan.expected == D(expected)
    assert plan.fee == D(fee)
    assert plan.dust == D(dust)
    assert plan.withdraw + plan.dust == plan.balance
    if note:
        assert note in plan.note
    else:
        assert plan.note == ""


def test_dust_note_without_a_step_does_not_print_none():
    # 0.123456789 with no exchange step: the 0.000000009 is cut by Mixin's 8 decimals, not by "precision None".
    plan = plan_return("ETH", D("0.123456789"), WithdrawalTerms(fee=D("0.001")))
    assert "None" not in plan.note
    assert "8 decimals" in plan.note


def test_plan_return_negative_balance_is_refused():
    with pytest.raises(ValueError, match="negative"):
        plan_return("BTC", D("-0.00000001"), BTC_TERMS)


def test_plan_return_never_rounds_up():
    # 0.09999999 BTC with step 0.0001 → 0.0999 (never 0.1, which the order does not own).
    plan = plan_return("BTC", D("0.09999999"), WithdrawalTerms(fee=D("0.0002"), step=D("0.0001")))
    assert plan.withdraw == D("0.0999")
    assert plan.dust == D("0.00009999")
    assert plan.expected == D("0.0997")


def test_plan_return_amounts_have_at_most_eight_decimals():
    plan = plan_return("ETH", D("1.123456789123"), WithdrawalTerms(fee=D("0.001")))
    assert plan.withdraw == D("1.12345678")
    assert plan.withdraw == plan.withdraw.quantize(E8)
    assert plan.expected == D("1.12245678")
    assert plan.dust == D("0.000000009123")


# ================================ plan_return: properties ================================

STEPS = [None, D("0.0000000001"), E8, D("0.000001"), D("0.0001"), D("0.01"), D("0.25"), D("1")]


def _random_amount(rng, max_units: int, decimals: int) -> D:
    return D(rng.randint(0, max_units)).scaleb(-decimals)


@property_cases(400)
def test_plan_return_invariants(rng):
    """withdraw + dust == balance; withdraw is a multiple of the step with ≤ 8 decimals and ≤ balance; when
    withdrawn: expected == withdraw − fee > 0 and withdraw ≥ minimum; else the whole balance is dust."""
    balance = _random_amount(rng, 10 ** rng.randint(1, 14), rng.choice([0, 2, 6, 8, 9, 10]))
    step = rng.choice(STEPS)
    fee = _random_amount(rng, 10 ** rng.randint(0, 9), 8)
    minimum = rng.choice([D(0), fee, _random_amount(rng, 10 ** rng.randint(0, 10), 8)])
    terms = WithdrawalTerms(fee=fee, minimum=minimum, step=step, enabled=rng.random() > 0.1)
    plan = plan_return("X", balance, terms)

    assert plan.withdraw + plan.dust == balance
    assert D(0) <= plan.withdraw <= balance
    assert plan.withdraw == plan.withdraw.quantize(E8)  # fits Mixin's 8 decimals
    if step is not None:
        assert plan.withdraw % step == 0
    if plan.withdraw > 0:
        assert terms.enabled
        assert plan.withdraw >= minimum
        assert plan.fee == fee
        assert plan.expected == plan.withdraw - fee
        assert plan.expected > 0
        # truncation only: less than one unit of the effective precision is left behind
        assert plan.dust < max(step or E8, E8)
    else:
        assert plan.expected == 0 and plan.fee == 0
        assert plan.dust == balance


# ================================ match_arrival ================================

HASH = "ab12cd34" * 8
R1 = ReturnCandidate("ret-1", BTC, "0x" + HASH, "bc1qbotaddress", "", D("0.0618"))
R2 = ReturnCandidate("ret-2", BTC, "", "bc1qbotaddress", "", D("0.0618"))
R3 = ReturnCandidate("ret-3", BTC, "", "bc1qbotaddress", "", D("0.5"))
R4 = ReturnCandidate("ret-4", USDT, "", "0xbotusdt", "", D("6910.8839"))
R5 = ReturnCandidate("ret-5", ETH, "", "0xbotusdt", "", D("6910.8839"))      # same address, other asset
XRP_A = ReturnCandidate("ret-x1", "xrp", "", "rBot", "1001", D("25"))
XRP_B = ReturnCandidate("ret-x2", "xrp", "", "rBot", "1002", D("25"))


def arrival(asset_id=BTC, amount="0.0618", deposit_hash="", destination="bc1qbotaddress", tag="",
            candidates=()):
    return match_arrival(asset_id=asset_id, amount=D(amount), deposit_hash=deposit_hash, destination=destination,
                         tag=tag, candidates=list(candidates))


# (name, kwargs, request_id, how)
MATCH_CASES = [
    ("hash exact", dict(deposit_hash="0x" + HASH, candidates=[R1, R2]), "ret-1", "hash"),
    ("hash without 0x", dict(deposit_hash=HASH, candidates=[R1]), "ret-1", "hash"),
    ("hash upper case", dict(deposit_hash="0X" + HASH.upper(), candidates=[R1]), "ret-1", "hash"),
    ("hash with spaces", dict(deposit_hash=f"  {HASH}\n", candidates=[R1]), "ret-1", "hash"),
    # a short arrival still matches by hash (the amount is not compared)
    ("hash short arrival", dict(amount="0.06", deposit_hash=HASH, candidates=[R1]), "ret-1", "hash"),
    # a long arrival too
    ("hash long arrival", dict(amount="0.07", deposit_hash=HASH, candidates=[R1]), "ret-1", "hash"),
    # the hash on another asset's return does not count
    ("hash other asset", dict(asset_id=USDT, deposit_hash=HASH, destination="x", candidates=[R1]), None, "none"),
    # two returns report the same hash: never a guess
    ("two with the hash", dict(deposit_hash=HASH, candidates=[R1, ReturnCandidate("ret-9", BTC, HASH.upper(),
                                                                                 "bc1qbotaddress", "",
                                                                                 D("0.0618"))]),
     None, "ambiguous"),
    # no hash known yet: destination + tag + exact expected amount, only one fits
    ("address amount", dict(candidates=[R2, R3]), "ret-2", "address_amount"),
    ("address amount, other digits", dict(amount="0.06180000", candidates=[R2, R3]), "ret-2", "address_amount"),
    # the deposit has a hash that no return reports yet: falls back to address + amount
    ("unknown hash falls back", dict(deposit_hash="ff" * 32, candidates=[R2]), "ret-2", "address_amount"),
    # a return whose (different) hash is known is never matched by address
    ("known other hash excluded", dict(deposit_hash="ff" * 32, candidates=[R1]), None, "none"),
    ("known hash, deposit without hash", dict(candidates=[R1]), None, "none"),
    # short by one unit: no address match (amount must be exact)
    ("short without hash", dict(amount="0.06179999", candidates=[R2]), None, "none"),
    ("other destination", dict(destination="bc1qsomeoneelse", candidates=[R2]), None, "none"),
    # two that fit: ambiguous, waits for the hash
    ("two fit", dict(candidates=[R2, ReturnCandidate("ret-8", BTC, "", "bc1qbotaddress", "", D("0.0618"))]),
     None, "ambiguous"),
    # same address and amount in another asset: not a candidate
    ("asset filters", dict(asset_id=USDT, amount="6910.8839", destination="0xbotusdt", candidates=[R4, R5]),
     "ret-4", "address_amount"),
    # tags: the tag picks one of two otherwise equal returns
    ("tag picks", dict(asset_id="xrp", amount="25", destination="rBot", tag="1002", candidates=[XRP_A, XRP_B]),
     "ret-x2", "address_amount"),
    ("missing tag", dict(asset_id="xrp", amount="25", destination="rBot", tag="", candidates=[XRP_A, XRP_B]),
     None, "none"),
    ("no candidates", dict(candidates=[]), None, "none"),
]


@pytest.mark.parametrize("name,kwargs,request_id,how", MATCH_CASES, ids=[c[0] for c in MATCH_CASES])
def test_match_arrival(name, kwargs, request_id, how):
    assert arrival(**kwargs) == ArrivalMatch(request_id, how)


def test_match_arrival_tag_none_equals_empty():
    no_tag = ReturnCandidate("ret-n", BTC, "", "bc1qbotaddress", None, D("1"))  # type: ignore[arg-type]
    assert arrival(amount="1", tag=None, candidates=[no_tag]) == ArrivalMatch("ret-n", "address_amount")
    assert arrival(amount="1", tag="", candidates=[no_tag]) == ArrivalMatch("ret-n", "address_amount")


def test_match_arrival_accepts_any_iterable():
    assert match_arrival(asset_id=BTC, amount=D("0.0618"), deposit_hash=HASH, destination="", tag="",
                         candidates=iter([R1, R2])) == ArrivalMatch("ret-1", "hash")


# ================================ plan_payouts ================================

def test_plan_payouts_sums_arrived_held_and_surplus():
    # BTC: 0.0618 arrived; USDT: 6910.88 arrived + 1 sent with the exit request = 6911.88;
    # ETH: 0.0005 overpaid for the USDT leg's Mixin fee.
    payouts = plan_payouts(arrived={BTC: D("0.0618"), USDT: D("6910.88")}, held={USDT: D("1")},
                           surplus={ETH: D("0.0005")})
    assert payouts == {BTC: D("0.0618"), USDT: D("6911.88"), ETH: D("0.0005")}
    assert list(payouts) == sorted(payouts)  # deterministic order (by asset id)


def test_plan_payouts_leaves_zeros_out():
    # everything stayed as dust: nothing arrived, nothing held
    assert plan_payouts(arrived={BTC: D("0"), USDT: D("0")}, held={}, surplus={}) == {}
    assert plan_payouts(arrived={}, held={USDT: D("0")}, surplus={ETH: D("0.002")}) == {ETH: D("0.002")}


def test_plan_payouts_refuses_negative_parts():
    for kwargs in (dict(arrived={BTC: D("-0.00000001")}, held={}, surplus={}),
                   dict(arrived={}, held={USDT: D("-1")}, surplus={}),
                   dict(arrived={}, held={}, surplus={ETH: D("-0.1")})):
        with pytest.raises(ValueError, match="negative"):
            plan_payouts(**kwargs)


def test_plan_payouts_is_exact_decimal():
    payouts = plan_payouts(arrived={USDT: D("0.1")}, held={USDT: D("0.2")}, surplus={})
    assert payouts[USDT] == D("0.3")
