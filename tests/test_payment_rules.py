"""Worked examples for domain/payment.py: fee choice, legs, completeness, invoices.

Running example: BTC/USDT(ERC20) on binance. Moving BTC to the exchange costs
0.0005 BTC (fee in the base asset itself); moving ERC20 USDT costs 0.002 ETH
(a separate fee asset). The market-making fee is 0.1 % of the principal.
"""
from __future__ import annotations

import random
from decimal import Decimal as D

import pytest

from domain.payment import (
    FeeOption,
    FeeRequirements,
    FeeUnavailable,
    Leg,
    PairRules,
    PaymentBreakdown,
    PaymentStatus,
    choose_withdrawal_fee,
    evaluate_payment,
    legs_for_asset,
    required_payment,
)

BTC = "c6d0c728-2624-429b-8e0d-d9d19b6592fa"
USDT = "4d8c508b-91c5-375b-92b0-ee702ed2dac5"   # ERC20 USDT
ETH = "43d61dcd-e413-450d-80b8-101d5e903357"
XIN = "c94ac88f-4671-3976-b60a-09064f1811e8"
OTHER = "31d2ea9c-95eb-3355-b65b-ba096853bc18"
PAIR_ID = "0776b00f-95c0-46f9-85e4-7b8e7ca51e94"
STEP = D("0.00000001")


def make_pair(**overrides) -> PairRules:
    values = dict(pair_id=PAIR_ID, symbol="BTC/USDT", exchange="binance", base_asset_id=BTC,
                  quote_asset_id=USDT, base_symbol="BTC", quote_symbol="USDT")
    values.update(overrides)
    return PairRules(**values)


def make_fees(base_fee_asset=BTC, base_fee="0.0005", quote_fee_asset=ETH, quote_fee="0.002",
              percent="0.1") -> FeeRequirements:
    return FeeRequirements(base_fee_asset_id=base_fee_asset, base_fee_amount=D(base_fee),
                           quote_fee_asset_id=quote_fee_asset, quote_fee_amount=D(quote_fee),
                           market_making_fee_percent=D(percent))


PAIR = make_pair()
FEES = make_fees()


# ================================ choose_withdrawal_fee ================================


def test_same_asset_fee_is_preferred_over_higher_priority():
    options = [FeeOption(ETH, D("0.002"), priority=10), FeeOption(BTC, D("0.0005"), priority=1)]
    assert choose_withdrawal_fee(BTC, options) == FeeOption(BTC, D("0.0005"), priority=1)


def test_first_same_asset_option_wins_when_several():
    options = [FeeOption(XIN, D("1")), FeeOption(BTC, D("0.0007")), FeeOption(BTC, D("0.0005"))]
    assert choose_withdrawal_fee(BTC, options).amount == D("0.0007")


def test_highest_priority_when_asset_not_offered():
    options = [FeeOption(ETH, D("0.002"), priority=1), FeeOption(XIN, D("0.01"), priority=5),
               FeeOption(OTHER, D("3"), priority=None)]
    assert choose_withdrawal_fee(USDT, options) == FeeOption(XIN, D("0.01"), priority=5)


def test_priority_zero_still_beats_no_priority():
    options = [FeeOption(XIN, D("0.01")), FeeOption(ETH, D("0.002"), priority=0)]
    assert choose_withdrawal_fee(USDT, options).asset_id == ETH


def test_priority_tie_keeps_the_first():
    options = [FeeOption(ETH, D("0.002"), priority=3), FeeOption(XIN, D("0.01"), priority=3)]
    assert choose_withdrawal_fee(USDT, options).asset_id == ETH


def test_first_option_when_no_priorities():
    options = iter([FeeOption(ETH, D("0.002")), FeeOption(XIN, D("0.01"))])  # any iterable
    assert choose_withdrawal_fee(USDT, options) == FeeOption(ETH, D("0.002"))


def test_zero_fee_is_acceptable():
    assert choose_withdrawal_fee(BTC, [FeeOption(BTC, D("0"))]).amount == D(0)


def test_no_options_is_fee_unavailable():
    with pytest.raises(FeeUnavailable, match=USDT):
        choose_withdrawal_fee(USDT, [])


def test_negative_fee_is_fee_unavailable_even_if_not_chosen():
    with pytest.raises(FeeUnavailable, match="negative"):
        choose_withdrawal_fee(BTC, [FeeOption(BTC, D("0.0005")), FeeOption(ETH, D("-0.1"))])
    with pytest.raises(FeeUnavailable):
        choose_withdrawal_fee(BTC, [FeeOption(BTC, D("-0.00000001"))])


# ================================ legs_for_asset ================================


def test_legs_with_fee_asset_equal_to_base():
    assert legs_for_asset(BTC, PAIR, FEES) == (Leg.BASE, Leg.BASE_FEE)
    assert legs_for_asset(USDT, PAIR, FEES) == (Leg.QUOTE,)
    assert legs_for_asset(ETH, PAIR, FEES) == (Leg.QUOTE_FEE,)
    assert legs_for_asset(XIN, PAIR, FEES) == ()


def test_legs_with_both_fees_in_one_separate_asset():
    fees = make_fees(base_fee_asset=ETH, base_fee="0.001", quote_fee_asset=ETH, quote_fee="0.002")
    assert legs_for_asset(ETH, PAIR, fees) == (Leg.BASE_FEE, Leg.QUOTE_FEE)
    assert legs_for_asset(BTC, PAIR, fees) == (Leg.BASE,)


def test_zero_fee_asset_is_not_a_leg():
    fees = make_fees(quote_fee="0")
    assert legs_for_asset(ETH, PAIR, fees) == ()
    fees = make_fees(base_fee="0")
    assert legs_for_asset(BTC, PAIR, fees) == (Leg.BASE,)


def test_leg_values():
    assert [leg.value for leg in Leg] == ["base", "quote", "base_fee", "quote_fee"]


# ================================ evaluate_payment ================================


def test_full_payment_is_complete_with_exact_principal_and_fee():
    totals = {BTC: D("1.0015"), USDT: D("50050"), ETH: D("0.002")}
    result = evaluate_payment(totals, PAIR, FEES)
    assert result.status is PaymentStatus.COMPLETE
    assert result.reasons == ()
    assert result.breakdown == PaymentBreakdown(
        base_principal=D("1"), quote_principal=D("50000"),
        base_market_making_fee=D("0.001"), quote_market_making_fee=D("50"),
        base_withdrawal_fee=D("0.0005"), quote_withdrawal_fee=D("0.002"), surplus={})
    assert result.breakdown.as_dict() == {
        "base_principal": "1", "quote_principal": "50000",
        "base_market_making_fee": "0.001", "quote_market_making_fee": "50",
        "base_withdrawal_fee": "0.0005", "quote_withdrawal_fee": "0.002", "surplus": {}}


def test_principal_plus_fees_account_for_every_unit_paid():
    totals = {BTC: D("0.73456789"), USDT: D("1234.56789012"), ETH: D("0.002")}
    b = evaluate_payment(totals, PAIR, FEES).breakdown
    assert b.base_principal + b.base_market_making_fee + b.base_withdrawal_fee == totals[BTC]
    assert b.quote_principal + b.quote_market_making_fee == totals[USDT]
    # fee >= 0.1 % of principal, and principal carries at most 8 decimals
    assert b.base_market_making_fee >= b.base_principal * D("0.001")
    assert b.base_principal == b.base_principal.quantize(STEP)
    assert (b.base_principal, b.base_market_making_fee) == (D("0.73333455"), D("0.00073334"))


def test_fee_asset_equal_to_base_paying_less_than_the_fee_is_incomplete_with_fee_reason():
    totals = {BTC: D("0.0004"), USDT: D("50050"), ETH: D("0.002")}
    result = evaluate_payment(totals, PAIR, FEES)
    assert result.status is PaymentStatus.INCOMPLETE
    assert result.reasons == ("base BTC: withdrawal fee 0.0005 not covered (received 0.0004)",)
    assert result.breakdown.base_principal == D(0)
    assert result.breakdown.base_market_making_fee == D(0)


def test_fee_asset_equal_to_base_paying_exactly_the_fee_leaves_no_principal():
    totals = {BTC: D("0.0005"), USDT: D("50050"), ETH: D("0.002")}
    result = evaluate_payment(totals, PAIR, FEES)
    assert result.status is PaymentStatus.INCOMPLETE
    assert result.reasons == ("base BTC: principal 0 below more than zero",)


def test_fee_asset_equal_to_base_paying_only_the_principal_is_incomplete():
    """Mr.Market G3 compared the whole base amount against the fee, so 1 BTC 'covered' the 0.0005 BTC
    fee and the whole 1 BTC was treated as principal. mmflow takes the withdrawal fee and the
    market-making fee out first: for a 1 BTC minimum, paying just 1 BTC is not enough."""
    pair = make_pair(min_base_amount=D("1"))
    totals = {BTC: D("1"), USDT: D("50050"), ETH: D("0.002")}
    result = evaluate_payment(totals, pair, FEES)
    assert result.status is PaymentStatus.INCOMPLETE
    assert result.reasons == ("base BTC: principal 0.99850149 below minimum 1",)
    assert result.breakdown.base_principal == D("0.99850149")
    assert result.breakdown.base_market_making_fee == D("0.00099851")
    # ...and the invoice amount (principal + fee + withdrawal fee) completes it
    totals[BTC] = D("1.0015")
    assert evaluate_payment(totals, pair, FEES).status is PaymentStatus.COMPLETE


def test_separate_fee_asset_missing_is_incomplete():
    totals = {BTC: D("1.0015"), USDT: D("50050")}
    result = evaluate_payment(totals, PAIR, FEES)
    assert result.status is PaymentStatus.INCOMPLETE
    assert result.reasons == (f"withdrawal fee asset {ETH}: need 0.002, received 0",)
    assert result.breakdown.quote_principal == D("50000")


def test_separate_fee_asset_short_by_one_satoshi_is_incomplete():
    totals = {BTC: D("1.0015"), USDT: D("50050"), ETH: D("0.00199999")}
    result = evaluate_payment(totals, PAIR, FEES)
    assert result.status is PaymentStatus.INCOMPLETE
    assert result.reasons == (f"withdrawal fee asset {ETH}: need 0.002, received 0.00199999",)


def test_surplus_of_separate_fee_asset_is_recorded():
    totals = {BTC: D("1.0015"), USDT: D("50050"), ETH: D("0.005")}
    result = evaluate_payment(totals, PAIR, FEES)
    assert result.status is PaymentStatus.COMPLETE
    assert dict(result.breakdown.surplus) == {ETH: D("0.003")}
    assert result.breakdown.as_dict()["surplus"] == {ETH: "0.003"}


def test_both_fees_in_the_same_separate_asset_are_summed():
    fees = make_fees(base_fee_asset=ETH, base_fee="0.001", quote_fee_asset=ETH, quote_fee="0.002")
    ok = evaluate_payment({BTC: D("1.001"), USDT: D("50050"), ETH: D("0.003")}, PAIR, fees)
    assert ok.status is PaymentStatus.COMPLETE
    assert ok.breakdown.surplus == {}
    short = evaluate_payment({BTC: D("1.001"), USDT: D("50050"), ETH: D("0.002")}, PAIR, fees)
    assert short.status is PaymentStatus.INCOMPLETE
    assert short.reasons == (f"withdrawal fee asset {ETH}: need 0.003, received 0.002",)


def test_fee_asset_equal_to_quote_is_taken_from_the_quote():
    """Fee for moving the base paid in the quote asset: the quote must cover principal + both."""
    fees = make_fees(base_fee_asset=USDT, base_fee="5", quote_fee_asset=USDT, quote_fee="1")
    result = evaluate_payment({BTC: D("1.001"), USDT: D("1007")}, PAIR, fees)
    assert result.status is PaymentStatus.COMPLETE
    assert (result.breakdown.quote_principal, result.breakdown.quote_market_making_fee) == (D("1000"), D("1"))
    short = evaluate_payment({BTC: D("1.001"), USDT: D("5.9")}, PAIR, fees)
    assert short.reasons == ("quote USDT: withdrawal fee 6 not covered (received 5.9)",)
    assert result.breakdown.base_principal == D("1")


def test_below_minimum_is_incomplete():
    pair = make_pair(min_base_amount=D("0.5"), min_quote_amount=D("100"))
    totals = {BTC: D("0.2007"), USDT: D("100.1"), ETH: D("0.002")}
    result = evaluate_payment(totals, pair, FEES)
    assert result.status is PaymentStatus.INCOMPLETE
    assert result.reasons == ("base BTC: principal 0.2 below minimum 0.5",)
    assert result.breakdown.quote_principal == D("100")   # exactly at the minimum is fine


def test_above_maximum_is_rejected():
    pair = make_pair(max_base_amount=D("0.5"), max_quote_amount=D("50000"))
    totals = {BTC: D("1.0015"), USDT: D("50050"), ETH: D("0.002")}
    result = evaluate_payment(totals, pair, FEES)
    assert result.status is PaymentStatus.REJECTED
    assert result.reasons == ("base BTC: principal 1 above the pair maximum 0.5",)  # quote == max is fine


def test_rejection_wins_over_missing():
    pair = make_pair(max_base_amount=D("0.5"))
    result = evaluate_payment({BTC: D("1.0015")}, pair, FEES)
    assert result.status is PaymentStatus.REJECTED
    assert result.reasons == ("base BTC: principal 1 above the pair maximum 0.5",)


def test_nothing_paid_lists_every_missing_leg():
    result = evaluate_payment({}, PAIR, FEES)
    assert result.status is PaymentStatus.INCOMPLETE
    assert result.reasons == (
        "base BTC: withdrawal fee 0.0005 not covered (received 0)",
        "quote USDT: principal 0 below more than zero",
        f"withdrawal fee asset {ETH}: need 0.002, received 0",
    )
    assert (result.breakdown.base_principal, result.breakdown.quote_principal) == (D(0), D(0))


def test_zero_principal_with_all_fees_paid_is_incomplete():
    result = evaluate_payment({BTC: D("0.0005"), USDT: D("0"), ETH: D("0.002")}, PAIR, FEES)
    assert result.status is PaymentStatus.INCOMPLETE
    assert result.reasons == ("base BTC: principal 0 below more than zero",
                              "quote USDT: principal 0 below more than zero")


def test_smallest_principal_too_small_to_carry_a_fee_is_zero():
    """1 satoshi after fees at 0.1 %: floor8(0.00000001 / 1.001) = 0, so nothing is principal."""
    result = evaluate_payment({BTC: D("0.00050001"), USDT: D("1"), ETH: D("0.002")}, PAIR, FEES)
    assert result.breakdown.base_principal == D(0)
    assert result.breakdown.base_market_making_fee == D("0.00000001")
    assert result.status is PaymentStatus.INCOMPLETE


def test_fee_percent_zero_makes_principal_equal_to_payment_after_withdrawal_fee():
    fees = make_fees(percent="0")
    result = evaluate_payment({BTC: D("1.0005"), USDT: D("50000"), ETH: D("0.002")}, PAIR, fees)
    assert result.status is PaymentStatus.COMPLETE
    b = result.breakdown
    assert (b.base_principal, b.base_market_making_fee) == (D("1"), D(0))
    assert (b.quote_principal, b.quote_market_making_fee) == (D("50000"), D(0))


def test_zero_withdrawal_fees_need_no_fee_asset():
    fees = make_fees(base_fee="0", quote_fee="0", percent="1")
    result = evaluate_payment({BTC: D("1.01"), USDT: D("101")}, PAIR, fees)
    assert result.status is PaymentStatus.COMPLETE
    assert (result.breakdown.base_principal, result.breakdown.quote_principal) == (D("1"), D("100"))


def test_market_making_fee_rate():
    assert make_fees(percent="0.1").market_making_fee_rate == D("0.001")
    assert make_fees(percent="2.5").market_making_fee_rate == D("0.025")


def test_unrelated_asset_in_totals_is_ignored():
    totals = {BTC: D("1.0015"), USDT: D("50050"), ETH: D("0.002"), XIN: D("7")}
    result = evaluate_payment(totals, PAIR, FEES)
    assert result.status is PaymentStatus.COMPLETE
    assert result.breakdown.surplus == {}


# ================================ required_payment ================================


def test_invoice_worked_example():
    assert required_payment(PAIR, FEES, D("1"), D("50000")) == {
        BTC: D("1.0015"), USDT: D("50050"), ETH: D("0.002")}


def test_invoice_rounds_the_market_making_fee_up_to_8_decimals():
    invoice = required_payment(PAIR, FEES, D("0.12345679"), D("1"))
    # 0.12345679 * 1.001 = 0.12358024679 -> 0.12358025, plus the 0.0005 BTC withdrawal fee
    assert invoice == {BTC: D("0.12408025"), USDT: D("1.001"), ETH: D("0.002")}
    result = evaluate_payment(invoice, PAIR, FEES)
    assert result.status is PaymentStatus.COMPLETE
    assert result.breakdown.base_principal == D("0.12345679")


def test_invoice_leaves_out_zero_amounts():
    fees = make_fees(base_fee="0", quote_fee="0", percent="0")
    assert required_payment(PAIR, fees, D("0"), D("10")) == {USDT: D("10")}


FEE_LAYOUTS = [
    ("fee in base + separate ETH", dict(base_fee_asset=BTC, base_fee="0.0005", quote_fee_asset=ETH,
                                         quote_fee="0.002")),
    ("fees in base and quote", dict(base_fee_asset=BTC, base_fee="0.00001", quote_fee_asset=USDT,
                                    quote_fee="3.5")),
    ("both fees in ETH", dict(base_fee_asset=ETH, base_fee="0.0011", quote_fee_asset=ETH, quote_fee="0.002")),
    ("crossed", dict(base_fee_asset=USDT, base_fee="7", quote_fee_asset=BTC, quote_fee="0.00002")),
    ("no fees", dict(base_fee_asset=BTC, base_fee="0", quote_fee_asset=USDT, quote_fee="0")),
]
PERCENTS = ["0", "0.1", "0.25", "0.333", "1", "2.5", "7", "99.9"]


def random_principal(rng: random.Random) -> D:
    digits = rng.choice((1, 4, 8))
    return D(rng.randint(1, 10 ** (digits + rng.randint(0, 5)))) / D(10) ** digits


@pytest.mark.parametrize("name,layout", FEE_LAYOUTS, ids=[n for n, _ in FEE_LAYOUTS])
def test_invoice_is_the_inverse_of_evaluate_payment(name, layout):
    rng = random.Random(len(name) * 7919)
    for _ in range(200):
        fees = make_fees(percent=rng.choice(PERCENTS), **layout)
        base, quote = random_principal(rng), random_principal(rng)
        invoice = required_payment(PAIR, fees, base, quote)
        assert all(v > 0 and v == v.quantize(STEP) for v in invoice.values())
        result = evaluate_payment(invoice, PAIR, fees)
        assert result.status is PaymentStatus.COMPLETE, (fees, base, quote, result.reasons)
        assert (result.breakdown.base_principal, result.breakdown.quote_principal) == (base, quote)
        assert result.breakdown.surplus == {}
        # the market-making fee is at least the configured share of the principal, never below
        assert result.breakdown.base_market_making_fee >= base * fees.market_making_fee_rate
        assert result.breakdown.base_market_making_fee < base * fees.market_making_fee_rate + STEP

        # pay one satoshi less of any asset: never "complete with these principals"
        pair_at_min = make_pair(min_base_amount=base, min_quote_amount=quote)
        assert evaluate_payment(invoice, pair_at_min, fees).status is PaymentStatus.COMPLETE
        for asset in invoice:
            short = dict(invoice, **{asset: invoice[asset] - STEP})
            loose = evaluate_payment(short, PAIR, fees)
            assert not (loose.status is PaymentStatus.COMPLETE
                        and loose.breakdown.base_principal == base
                        and loose.breakdown.quote_principal == quote), (asset, fees, base, quote)
            # with the pair minimum at exactly the invoiced principals it is not complete at all
            assert evaluate_payment(short, pair_at_min, fees).status is PaymentStatus.INCOMPLETE


def test_invoice_at_the_maximum_is_complete_and_one_more_satoshi_of_principal_is_rejected():
    pair = make_pair(max_base_amount=D("2"), max_quote_amount=D("1000"))
    invoice = required_payment(pair, FEES, D("2"), D("1000"))
    assert evaluate_payment(invoice, pair, FEES).status is PaymentStatus.COMPLETE
    over = required_payment(pair, FEES, D("2.00000001"), D("1000"))
    result = evaluate_payment(over, pair, FEES)
    assert result.status is PaymentStatus.REJECTED
    assert result.reasons == ("base BTC: principal 2.00000001 above the pair maximum 2",)
