"""Worked examples for domain/statement.py: the per-asset equation of an order's money,

    paid_in − refunded − mixin_withdrawal_fees − market_making_fee − deposit_difference + trading
      − exchange_withdrawal_fees − dust − transit_difference − paid_out = held

which is exactly 0 for every asset of a final order.

Running example: a BTC/USDT order on binance, market-making fee 0.1 %, Mixin withdrawal fees 0.0001 BTC
(base, in BTC) and 0.002 ETH (the USDT leg's fee, in a third asset). Every figure below is written out by
hand; domain/payment.py is used only to confirm the invoice matches the hand numbers.
"""
from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest

from domain.payment import FeeRequirements, PairRules, PaymentStatus, evaluate_payment
from domain.statement import (
    SIGNS,
    TERMS,
    Charge,
    Dust,
    Outgoing,
    PaidIn,
    Return,
    Statement,
    StatementInput,
    TradeFill,
    build_statement,
    format_statement,
)
from tests.cases import BTC, E8, ETH, USDT, property_cases


SYMBOLS = {BTC: "BTC", USDT: "USDT", ETH: "ETH"}
ORDER = "7f3a1c52-0000-4000-8000-000000000001"
Z = D(0)

PAIR = PairRules(pair_id="0776b00f-95c0-46f9-85e4-7b8e7ca51e94", symbol="BTC/USDT", exchange="binance",
                 base_asset_id=BTC, quote_asset_id=USDT, base_symbol="BTC", quote_symbol="USDT")
FEES = FeeRequirements(base_fee_asset_id=BTC, base_fee_amount=D("0.0001"), quote_fee_asset_id=ETH,
                       quote_fee_amount=D("0.002"), market_making_fee_percent=D("0.1"))




# ================================ the settled order, by hand ================================
#
# Payment: BTC 0.1002 = 0.1 principal + 0.0001 market-making fee (0.1 % of 0.1) + 0.0001 Mixin fee;
#          USDT 5005 = 5000 principal + 5 market-making fee (0.1 % of 5000);
#          ETH 0.002 = the USDT leg's Mixin withdrawal fee.
# Later the owner asks to exit with a transfer of 1 USDT (held for the owner, paid back with the payout).
#
# Fills (fees in USDT), ledger after each (opening 0.1 BTC, 5000 USDT):
#   F1 sell 0.02  @ 50500    fee 1.01      BTC −0.02   USDT +1010 − 1.01          = +1008.99
#   F2 buy  0.01  @ 49900    fee 0.499     BTC +0.01   USDT −499 − 0.499          = −499.499
#   F3 sell 0.03  @ 50200    fee 1.506     BTC −0.03   USDT +1506 − 1.506         = +1504.494
#   F4 buy  0.002 @ 50000.5  fee 0.100001  BTC +0.002  USDT −100.001 − 0.100001   = −100.101001
#   trading: BTC −0.02 + 0.01 − 0.03 + 0.002 = −0.038
#            USDT 1008.99 − 499.499 + 1504.494 − 100.101001 = 1913.883999
#   ledger at exit: BTC 0.1 − 0.038 = 0.062;  USDT 5000 + 1913.883999 = 6913.883999
#
# Way back (binance: BTC fee 0.0002; USDT fee 3, precision 0.0001):
#   BTC  withdraw 0.062,     fee 0.0002 → expected 0.0618,     arrived 0.0618 (exact)
#   USDT withdraw 6913.8839, fee 3      → expected 6910.8839,  arrived 6910.88 (short by 0.0039)
#        dust 6913.883999 − 6913.8839 = 0.000099 (below the precision, left on the exchange)
# Payouts: BTC 0.0618; USDT 6910.88 + 1 (exit transfer) = 6911.88; ETH: the overpaid part, if any.

FILLS = (
    TradeFill("sell", D("50500"), D("0.02"), D("1.01"), "USDT"),
    TradeFill("buy", D("49900"), D("0.01"), D("0.499"), "USDT"),
    TradeFill("sell", D("50200"), D("0.03"), D("1.506"), "USDT"),
    TradeFill("buy", D("50000.5"), D("0.002"), D("0.100001"), "USDT"),
)

BASE_CHARGES = (
    Charge(BTC, "mixin_withdrawal_fee", D("0.0001")),
    Charge(ETH, "mixin_withdrawal_fee", D("0.002")),
    Charge(BTC, "market_making_fee", D("0.0001")),
    Charge(USDT, "market_making_fee", D("5")),
)

TO_EXCHANGE = (
    Outgoing("mmflow:withdrawal:btc", BTC, D("0.1"), "confirmed", "snap-w-btc", credited=D("0.1")),
    Outgoing("mmflow:withdrawal:usdt", USDT, D("5000"), "confirmed", "snap-w-usdt", credited=D("5000")),
)


def settled_input(*, eth_paid: D = D("0.002"), **overrides) -> StatementInput:
    """The settled order above; `eth_paid` above 0.002 is a fee overpayment that is paid back."""
    eth_surplus = eth_paid - D("0.002")
    paid_in = (
        PaidIn("snap-1", BTC, D("0.1002"), "payment", "2025-01-01T00:00:00Z"),
        PaidIn("snap-2", USDT, D("5005"), "payment", "2025-01-01T00:00:01Z"),
        PaidIn("snap-3", ETH, eth_paid, "payment", "2025-01-01T00:00:02Z"),
        PaidIn("snap-4", USDT, D("1"), "exit", "2025-01-02T00:00:00Z"),
    )
    returns = (
        Return("mmflow:return:btc", BTC, "BTC", D("0.062"), D("0.0002"), "arrived", D("0.0618"), "snap-r-btc",
               "wd-1", "0x" + "aa" * 32),
        Return("mmflow:return:usdt", USDT, "USDT", D("6913.8839"), D("3"), "arrived", D("6910.88"), "snap-r-usdt",
               "wd-2", "bb" * 32),
    )
    payouts = [
        Outgoing("mmflow:payout:btc", BTC, D("0.0618"), "confirmed", "snap-p-btc"),
        Outgoing("mmflow:payout:usdt", USDT, D("6911.88"), "confirmed", "snap-p-usdt"),
    ]
    if eth_surplus:
        payouts.append(Outgoing("mmflow:payout:eth", ETH, eth_surplus, "confirmed", "snap-p-eth"))
    values = dict(
        order_id=ORDER, state="settled", symbol="BTC/USDT", base_asset_id=BTC, quote_asset_id=USDT,
        base_code="BTC", quote_code="USDT", symbols=SYMBOLS, paid_in=paid_in, refunds=(),
        to_exchange=TO_EXCHANGE, charges=BASE_CHARGES, fills=FILLS, returns=returns,
        dust=(Dust(USDT, "USDT", D("0.000099")),), payouts=tuple(payouts),
        opening_price=D("50000"), exit_price=D("50100"), final=True,
    )
    values.update(overrides)
    return StatementInput(**values)


def terms(**nonzero) -> dict:
    out = {t: Z for t in TERMS}
    out.update({k: D(v) for k, v in nonzero.items()})
    return out


# The hand-computed lines of the settled order (ETH paid exactly).
SETTLED_TERMS = {
    # 0.1002 − 0.0001 − 0.0001 − 0 + (−0.038) − 0.0002 − 0 − 0 − 0.0618 = 0
    BTC: terms(paid_in="0.1002", mixin_withdrawal_fees="0.0001", market_making_fee="0.0001", trading="-0.038",
               exchange_withdrawal_fees="0.0002", paid_out="0.0618"),
    # 0.002 − 0.002 = 0
    ETH: terms(paid_in="0.002", mixin_withdrawal_fees="0.002"),
    # 5006 − 5 + 1913.883999 − 3 − 0.000099 − 0.0039 − 6911.88
    #   = 5001 + 1913.883999 = 6914.883999 → 6911.883999 → 6911.8839 → 6911.88 → 0
    USDT: terms(paid_in="5006", market_making_fee="5", trading="1913.883999", exchange_withdrawal_fees="3",
                dust="0.000099", transit_difference="0.0039", paid_out="6911.88"),
}


def line(statement: Statement, asset_id: str):
    (found,) = [a for a in statement.assets if a.asset_id == asset_id]
    return found


def test_hand_numbers_match_the_payment_rules():
    # the invoice split used above is what domain/payment.py decides for these totals
    ev = evaluate_payment({BTC: D("0.1002"), USDT: D("5005"), ETH: D("0.002")}, PAIR, FEES)
    assert ev.status is PaymentStatus.COMPLETE
    b = ev.breakdown
    assert (b.base_principal, b.base_market_making_fee, b.base_withdrawal_fee) == (D("0.1"), D("0.0001"),
                                                                                   D("0.0001"))
    assert (b.quote_principal, b.quote_market_making_fee, b.quote_withdrawal_fee) == (D("5000"), D("5"),
                                                                                      D("0.002"))
    assert dict(b.surplus) == {}


def test_settled_order_balances_exactly():
    st_ = build_statement(settled_input())
    assert [a.symbol for a in st_.assets] == ["BTC", "ETH", "USDT"]  # sorted by symbol
    for asset_id, expected in SETTLED_TERMS.items():
        got = line(st_, asset_id)
        assert dict(got.terms) == expected, SYMBOLS[asset_id]
        assert got.held == D(0)
    assert st_.balanced is True
    assert st_.final is True and st_.state == "settled" and st_.order_id == ORDER


def test_the_equation_is_the_signed_sum_of_the_terms():
    # held = Σ sign(term) × term, with the signs of the docstring's equation
    assert SIGNS == {"paid_in": 1, "refunded": -1, "mixin_withdrawal_fees": -1, "market_making_fee": -1,
                     "deposit_difference": -1, "trading": 1, "exchange_withdrawal_fees": -1, "dust": -1,
                     "transit_difference": -1, "paid_out": -1}
    for a in build_statement(settled_input()).assets:
        assert a.held == sum((SIGNS[t] * a.terms[t] for t in TERMS), Z)


def test_settled_order_with_an_eth_overpayment_pays_it_back():
    # ETH paid 0.0025: 0.002 is the fee, 0.0005 goes back → 0.0025 − 0.002 − 0.0005 = 0
    ev = evaluate_payment({BTC: D("0.1002"), USDT: D("5005"), ETH: D("0.0025")}, PAIR, FEES)
    assert dict(ev.breakdown.surplus) == {ETH: D("0.0005")}
    st_ = build_statement(settled_input(eth_paid=D("0.0025")))
    assert dict(line(st_, ETH).terms) == terms(paid_in="0.0025", mixin_withdrawal_fees="0.002", paid_out="0.0005")
    assert st_.balanced is True
    assert all(a.held == 0 for a in st_.assets)


def test_settled_trading_summary_average_cost_pnl():
    # Average cost, opening 0.1 BTC valued at 50000 = 5000 USDT:
    #   F1 sell 0.02: cost removed 5000 × 0.02 / 0.1 = 1000; in 1010 − 1.01 = 1008.99; realised 8.99;
    #                 cost 4000 for 0.08 BTC
    #   F2 buy 0.01:  cost 4000 + 499 + 0.499 = 4499.499 for 0.09 BTC
    #   F3 sell 0.03: cost removed 4499.499 × 0.03 / 0.09 = 1499.833; in 1506 − 1.506 = 1504.494;
    #                 realised 8.99 + 4.661 = 13.651; cost 2999.666 for 0.06 BTC
    #   F4 buy 0.002: cost 2999.666 + 100.001 + 0.100001 = 3099.767001 for 0.062 BTC
    #   unrealised at 50100: 0.062 × 50100 − 3099.767001 = 3106.2 − 3099.767001 = 6.432999
    # volume: 1010 + 499 + 1506 + 100.001 = 3115.001; fees 1.01 + 0.499 + 1.506 + 0.100001 = 3.115001
    t = build_statement(settled_input()).trading
    assert t == {"fills": 4, "volume_quote": "3115.001", "trading_fees": {"USDT": "3.115001"},
                 "opening_price": "50000", "mark_price": "50100", "realized_pnl_quote": "13.651",
                 "unrealized_pnl_quote": "6.432999", "buys": 2, "sells": 2}


# (name, how the record is perturbed, asset, held)
PERTURBATIONS = [
    # a payout 0.00000001 short: 0.0618 − 0.06179999 = 0.00000001 still held
    ("btc payout short", lambda d: replace(d, payouts=(replace(d.payouts[0], amount=D("0.06179999")),)
                                           + d.payouts[1:]), BTC, "0.00000001"),
    # dust recorded 0.00000001 too large: 0.000099 → 0.00009901, the check goes to −0.00000001
    ("usdt dust too large", lambda d: replace(d, dust=(Dust(USDT, "USDT", D("0.00009901")),)), USDT, "-0.00000001"),
    # the USDT payout overpaid by 0.01: −0.01
    ("usdt payout over", lambda d: replace(d, payouts=d.payouts[:1] + (replace(d.payouts[1],
                                                                              amount=D("6911.89")),)),
     USDT, "-0.01"),
    # a USDT fill fee forgotten (1.01 missing): trading +1.01 → held 1.01
    ("fill fee missing", lambda d: replace(d, fills=(replace(d.fills[0], fee=Z),) + d.fills[1:]), USDT, "1.01"),
    # the arrival recorded 0.0001 higher with the same payout: transit −0.0001 → held 0.0001
    ("arrival higher", lambda d: replace(d, returns=(replace(d.returns[0], arrived=D("0.0619")),) + d.returns[1:]),
     BTC, "0.0001"),
    # the ETH fee charge missing: 0.002 held
    ("eth charge missing", lambda d: replace(d, charges=tuple(c for c in d.charges if c.asset_id != ETH)),
     ETH, "0.002"),
]


@pytest.mark.parametrize("name,perturb,asset_id,held", PERTURBATIONS, ids=[p[0] for p in PERTURBATIONS])
def test_a_perturbed_record_unbalances_exactly_that_asset(name, perturb, asset_id, held):
    st_ = build_statement(perturb(settled_input()))
    assert st_.balanced is False
    assert line(st_, asset_id).held == D(held)
    for a in st_.assets:
        if a.asset_id != asset_id:
            assert a.held == 0, a.symbol


def test_returns_not_yet_sent_do_not_count():
    # a queued / sending return has not left the exchange: no fee, no transit term, no detail
    data = settled_input()
    extra = (Return("r-q", BTC, "BTC", D("5"), D("1"), "queued"),
             Return("r-s", BTC, "BTC", D("5"), D("1"), "sending", arrived=D("4")))
    st_ = build_statement(replace(data, returns=data.returns + extra))
    assert st_.balanced is True
    assert line(st_, BTC).terms["exchange_withdrawal_fees"] == D("0.0002")
    assert [r["request_id"] for r in line(st_, BTC).details["returned"]] == ["mmflow:return:btc"]


def test_details_name_the_records():
    st_ = build_statement(settled_input())
    usdt = line(st_, USDT).details
    assert [(p["snapshot_id"], p["amount"], p["as"]) for p in usdt["paid_in"]] == [("snap-2", "5005", "payment"),
                                                                                  ("snap-4", "1", "exit")]
    assert usdt["returned"] == [{"request_id": "mmflow:return:usdt", "code": "USDT", "withdrawn": "6913.8839",
                                 "fee": "3", "arrived": "6910.88", "state": "arrived",
                                 "exchange_withdrawal_id": "wd-2", "txid": "bb" * 32,
                                 "arrival_snapshot_id": "snap-r-usdt"}]
    assert usdt["dust"][0]["amount"] == "0.000099"
    assert usdt["paid_out"] == [{"request_id": "mmflow:payout:usdt", "amount": "6911.88", "state": "confirmed",
                                 "snapshot_id": "snap-p-usdt"}]
    assert usdt["sent_to_exchange"] == [{"request_id": "mmflow:withdrawal:usdt", "amount": "5000",
                                         "credited": "5000", "state": "confirmed"}]


# ================================ a refunded order ================================

def refunded_input() -> StatementInput:
    # The payment never completed: everything it received goes back, nothing is charged.
    # A later payment for the same order was refused (outside the payment window) and refunded as well.
    paid_in = (PaidIn("snap-1", BTC, D("0.1002"), "payment"), PaidIn("snap-2", USDT, D("4000"), "payment"),
               PaidIn("snap-3", ETH, D("0.002"), "payment"), PaidIn("snap-9", USDT, D("12.5"), "refused"))
    refunds = tuple(Outgoing(f"mmflow:refund:{p.snapshot_id}", p.asset_id, p.amount, "confirmed",
                             f"snap-refund-{p.snapshot_id}") for p in paid_in)
    return StatementInput(order_id=ORDER, state="refunded", symbol="BTC/USDT", base_asset_id=BTC,
                          quote_asset_id=USDT, base_code="BTC", quote_code="USDT", symbols=SYMBOLS,
                          paid_in=paid_in, refunds=refunds, final=True)


def test_refunded_order_balances_with_no_charges():
    st_ = build_statement(refunded_input())
    # BTC 0.1002 − 0.1002 = 0; ETH 0.002 − 0.002 = 0; USDT 4000 + 12.5 − (4000 + 12.5) = 0
    assert {a.asset_id: dict(a.terms) for a in st_.assets} == {
        BTC: terms(paid_in="0.1002", refunded="0.1002"),
        ETH: terms(paid_in="0.002", refunded="0.002"),
        USDT: terms(paid_in="4012.5", refunded="4012.5"),
    }
    assert st_.balanced is True
    assert st_.trading == {"fills": 0, "volume_quote": "0", "trading_fees": {}}  # no price: no PnL
    assert [r["as"] for r in line(st_, USDT).details["paid_in"]] == ["payment", "refused"]


def test_refund_still_in_flight_is_counted_by_its_record():
    # the refund movement is recorded (queued) before it is sent: it counts, the order holds nothing more
    data = refunded_input()
    data = replace(data, state="refunding", final=False,
                   refunds=tuple(replace(r, state="queued", snapshot_id=None) for r in data.refunds))
    assert all(a.held == 0 for a in build_statement(data).assets)


def test_refunded_order_missing_one_refund_holds_it():
    data = refunded_input()
    st_ = build_statement(replace(data, refunds=data.refunds[:-1]))  # the refused 12.5 USDT not refunded
    assert st_.balanced is False
    assert line(st_, USDT).held == D("12.5")


# ================================ an open order ================================

def open_input(**overrides) -> StatementInput:
    values = dict(order_id=ORDER, state="running", symbol="BTC/USDT", base_asset_id=BTC, quote_asset_id=USDT,
                  base_code="BTC", quote_code="USDT", symbols=SYMBOLS,
                  paid_in=(PaidIn("snap-1", BTC, D("0.1002"), "payment"), PaidIn("snap-2", USDT, D("5005"), "payment"),
                           PaidIn("snap-3", ETH, D("0.002"), "payment")),
                  to_exchange=TO_EXCHANGE, charges=BASE_CHARGES, fills=FILLS, opening_price=D("50000"), final=False)
    values.update(overrides)
    return StatementInput(**values)


def test_open_order_holds_what_is_on_the_exchange():
    st_ = build_statement(open_input())
    # BTC 0.1002 − 0.0001 − 0.0001 − 0.038 = 0.062 = the exchange ledger (0.1 − 0.038)
    # USDT 5005 − 5 + 1913.883999 = 6913.883999 = the exchange ledger (5000 + 1913.883999)
    # ETH 0.002 − 0.002 = 0 (spent on the Mixin withdrawal fee)
    assert {a.asset_id: a.held for a in st_.assets} == {BTC: D("0.062"), USDT: D("6913.883999"), ETH: Z}
    assert st_.balanced is False  # not meaningful for an open order, but honest
    assert st_.as_dict()["balanced"] is None
    # no mark price yet: realised only
    assert st_.trading["realized_pnl_quote"] == "13.651" and st_.trading["unrealized_pnl_quote"] is None
    assert st_.trading["mark_price"] is None


def test_open_order_funds_in_flight_to_the_exchange_are_held():
    # withdrawals sent, not yet credited: no deposit difference yet, the principal is still the order's
    sent = tuple(replace(w, credited=None, state="sent") for w in TO_EXCHANGE)
    st_ = build_statement(open_input(to_exchange=sent, fills=(), state="withdrawing"))
    # BTC 0.1002 − 0.0002 = 0.1; USDT 5005 − 5 = 5000
    assert {a.asset_id: a.held for a in st_.assets} == {BTC: D("0.1"), USDT: D("5000"), ETH: Z}
    assert line(st_, BTC).details["sent_to_exchange"][0]["credited"] is None


def test_deposit_difference_is_taken_off():
    # the exchange credited 4999 of the 5000 USDT sent: deposit difference 1; held 5005 − 5 − 1 = 4999
    credited = (TO_EXCHANGE[0], replace(TO_EXCHANGE[1], credited=D("4999")))
    st_ = build_statement(open_input(to_exchange=credited, fills=()))
    assert line(st_, USDT).terms["deposit_difference"] == D("1")
    assert line(st_, USDT).held == D("4999")


def test_returns_in_flight_are_held_net_of_the_fee():
    # stopped, withdrawals from the exchange accepted (sent), nothing arrived yet:
    # BTC 0.062 − fee 0.0002 = 0.0618 in flight; USDT 6913.883999 − 3 − dust 0.000099 = 6910.8839 in flight
    returns = (Return("r-btc", BTC, "BTC", D("0.062"), D("0.0002"), "sent"),
               Return("r-usdt", USDT, "USDT", D("6913.8839"), D("3"), "completed", txid="cc" * 32))
    st_ = build_statement(open_input(state="returning_funds", returns=returns,
                                     dust=(Dust(USDT, "USDT", D("0.000099")),)))
    assert line(st_, BTC).held == D("0.0618")
    assert line(st_, USDT).held == D("6910.8839")
    assert line(st_, BTC).terms["transit_difference"] == Z  # unknown until it arrives


def test_long_arrival_is_a_negative_transit_difference():
    # 0.062 withdrawn, fee 0.0002, 0.0619 arrived (0.0001 more than expected): transit 0.0618 − 0.0619 = −0.0001
    # and the owner is paid all of it: 0.1002 − 0.0002 − 0.038 − 0.0002 + 0.0001 − 0.0619 = 0
    data = settled_input()
    data = replace(data, returns=(replace(data.returns[0], arrived=D("0.0619")),) + data.returns[1:],
                   payouts=(replace(data.payouts[0], amount=D("0.0619")),) + data.payouts[1:])
    st_ = build_statement(data)
    assert line(st_, BTC).terms["transit_difference"] == D("-0.0001")
    assert st_.balanced is True


# ================================ as_dict and the text ================================

def test_as_dict_final_uses_check_and_decimal_strings():
    d = build_statement(settled_input()).as_dict()
    assert d["final"] is True and d["balanced"] is True and d["state"] == "settled"
    assert d["equation"].endswith("- paid_out = 0")
    btc = next(a for a in d["assets"] if a["symbol"] == "BTC")
    assert "check" in btc and "held" not in btc
    assert btc["check"] == "0"
    assert btc["paid_in"] == "0.1002" and btc["trading"] == "-0.038" and btc["paid_out"] == "0.0618"
    assert btc["refunded"] == "0"
    usdt = next(a for a in d["assets"] if a["symbol"] == "USDT")
    assert usdt["dust"] == "0.000099" and usdt["transit_difference"] == "0.0039" and usdt["trading"] == "1913.883999"
    for a in d["assets"]:
        for term in TERMS:
            assert isinstance(a[term], str) and "E" not in a[term]
    assert d["trading"]["realized_pnl_quote"] == "13.651"


def test_as_dict_open_uses_held():
    d = build_statement(open_input()).as_dict()
    assert d["final"] is False and d["balanced"] is None
    assert d["equation"].endswith("- paid_out = held")
    btc = next(a for a in d["assets"] if a["symbol"] == "BTC")
    assert "held" in btc and "check" not in btc
    assert btc["held"] == "0.062"
    assert next(a for a in d["assets"] if a["symbol"] == "USDT")["held"] == "6913.883999"


def test_as_dict_small_amounts_have_no_exponent():
    st_ = build_statement(replace(settled_input(), payouts=(replace(settled_input().payouts[0],
                                                                    amount=D("0.06179999")),)
                                  + settled_input().payouts[1:]))
    btc = next(a for a in st_.as_dict()["assets"] if a["symbol"] == "BTC")
    assert btc["check"] == "0.00000001"


def test_format_statement_final():
    text = format_statement(build_statement(settled_input()))
    lines = text.splitlines()
    assert lines[0] == f"Statement of order {ORDER} (BTC/USDT) — settled"
    assert f"  BTC ({BTC})" in lines
    assert "check (must be 0)" in text and "still held for the owner" not in text
    assert any("short arrival" in ln and ln.rstrip().endswith("0.0039") for ln in lines)
    assert any("dust left on the exchange" in ln and ln.rstrip().endswith("0.000099") for ln in lines)
    assert any(ln.strip().startswith("±") and ln.rstrip().endswith("-0.038") for ln in lines)
    # zero terms are left out, except paid in / paid out; ETH: paid in, fee, paid out 0, check 0
    eth_block = text.split(f"  ETH ({ETH})")[1].split(f"  USDT ({USDT})")[0]
    assert "refunded" not in eth_block and "paid out" in eth_block and "Mixin withdrawal fees" in eth_block
    assert "trading: 4 fills, volume 3115.001 (quote)" in text
    assert "realised PnL 13.651, unrealised at exit 6.432999" in text


def test_format_statement_open_and_without_fills():
    text = format_statement(build_statement(open_input(fills=())))
    assert "still held for the owner" in text and "check (must be 0)" not in text
    assert "trading:" not in text


# ================================ trading summary edge cases ================================

def test_fee_in_base_and_in_another_currency():
    # buy 0.01 BTC @ 50000, fee 0.00001 BTC: BTC +0.01 − 0.00001 = 0.00999, USDT −500
    # sell 0.005 BTC @ 51000, fee 0.0003 BNB: BTC −0.005, USDT +255, BNB −0.0003 (no Mixin asset: reported apart)
    fills = (TradeFill("buy", D("50000"), D("0.01"), D("0.00001"), "BTC"),
             TradeFill("sell", D("51000"), D("0.005"), D("0.0003"), "BNB"))
    st_ = build_statement(open_input(fills=fills))
    assert line(st_, BTC).terms["trading"] == D("0.00499")   # 0.00999 − 0.005
    assert line(st_, USDT).terms["trading"] == D("-245")     # −500 + 255
    assert st_.trading["other_currencies"] == {"BNB": "-0.0003"}
    assert st_.trading["trading_fees"] == {"BNB": "0.0003", "BTC": "0.00001"}
    assert st_.trading["volume_quote"] == "755"                # 500 + 255


def test_fill_without_fee_code_changes_no_fee_term():
    fills = (TradeFill("buy", D("50000"), D("0.01"), D("0"), None),)
    st_ = build_statement(open_input(fills=fills))
    assert line(st_, USDT).terms["trading"] == D("-500")
    assert st_.trading["trading_fees"] == {}


def test_pnl_error_is_reported_not_raised():
    # selling 0.5 BTC when the order holds 0.1: the ledger says impossible, the statement says so
    st_ = build_statement(open_input(fills=(TradeFill("sell", D("50000"), D("0.5"), D("0"), "USDT"),)))
    assert "pnl_error" in st_.trading
    assert "realized_pnl_quote" not in st_.trading
    assert line(st_, BTC).terms["trading"] == D("-0.5")  # the equation still counts it


def test_price_falls_back_to_first_fill_then_exit_price():
    st_ = build_statement(open_input(opening_price=None))
    assert st_.trading["opening_price"] == "50500"  # F1's price
    st_ = build_statement(open_input(opening_price=None, fills=(), exit_price=D("50100")))
    assert st_.trading["opening_price"] == "50100"
    # the opening 0.1 BTC is valued at the exit price 50100 (cost 5010) and marked at it (5010): 0 either way
    assert st_.trading["realized_pnl_quote"] == "0" and st_.trading["unrealized_pnl_quote"] == "0"


# ================================ property: always balanced ================================

def _amount(rng, max_units: int, decimals: int = 8) -> D:
    return D(rng.randint(0, max_units)).scaleb(-decimals)


def _positive(rng, max_units: int, decimals: int = 8) -> D:
    return D(rng.randint(1, max_units)).scaleb(-decimals)


def _fee(rng, of: D) -> D:
    """An 8-decimal fee of at most 0.2 % of `of`."""
    return _amount(rng, int(of.scaleb(8)) // 500)


def _split(rng, total: D, parts: int) -> list[D]:
    """total in `parts` 8-decimal pieces (the last takes the remainder)."""
    units = int(total.scaleb(8))
    cuts = sorted(rng.randint(0, units) for _ in range(parts - 1))
    bounds = [0] + cuts + [units]
    return [D(b - a).scaleb(-8) for a, b in zip(bounds, bounds[1:]) if b > a] or [total]


@property_cases(300)
def test_random_settled_orders_always_balance(rng):
    """Random payments, fees, fills, dust and transit; payouts are the test's own closing term."""
    base_fee_asset = rng.choice([BTC, ETH])
    quote_fee_asset = rng.choice([USDT, ETH])
    expect: dict[str, dict[str, D]] = {a: {t: Z for t in TERMS} for a in (BTC, USDT, ETH)}
    paid_in, refunds, charges, to_exchange, fills, returns, dust, payouts = [], [], [], [], [], [], [], []
    n = 0

    def pay(asset_id, amount, purpose="payment"):
        nonlocal n
        for piece in _split(rng, amount, rng.randint(1, 3)):
            n += 1
            paid_in.append(PaidIn(f"snap-{n}", asset_id, piece, purpose))
            expect[asset_id]["paid_in"] += piece
            if purpose == "refused":
                refunds.append(Outgoing(f"refund-{n}", asset_id, piece, rng.choice(["queued", "confirmed"])))
                expect[asset_id]["refunded"] += piece

    # payment: principal + market-making fee (+ the Mixin fee when in that asset), fees, a third-asset surplus
    principal = {BTC: _positive(rng, 10 ** 9), USDT: _positive(rng, 10 ** 13)}
    mm = {a: _amount(rng, int(p.scaleb(8)) // 100) for a, p in principal.items()}
    mixin_fee = {"base": (base_fee_asset, _amount(rng, 10 ** 5)), "quote": (quote_fee_asset, _amount(rng, 10 ** 6))}
    surplus_eth = _amount(rng, 10 ** 5) if rng.random() < 0.5 else Z
    gross = {BTC: principal[BTC] + mm[BTC], USDT: principal[USDT] + mm[USDT], ETH: surplus_eth}
    for asset_id, fee in mixin_fee.values():
        gross[asset_id] += fee
        charges.append(Charge(asset_id, "mixin_withdrawal_fee", fee))
        expect[asset_id]["mixin_withdrawal_fees"] += fee
    for asset_id in (BTC, USDT):
        charges.append(Charge(asset_id, "market_making_fee", mm[asset_id]))
        expect[asset_id]["market_making_fee"] += mm[asset_id]
    for asset_id, amount in gross.items():
        if amount > 0:
            pay(asset_id, amount)
    if rng.random() < 0.3:
        pay(rng.choice([BTC, USDT, ETH]), _positive(rng, 10 ** 8), "refused")
    exit_held = {}
    if rng.random() < 0.5:
        asset_id = rng.choice([BTC, USDT])
        exit_held[asset_id] = _positive(rng, 10 ** 8)
        pay(asset_id, exit_held[asset_id], "exit")

    # to the exchange: the principal, minus a deposit difference now and then
    ledger = {}
    for asset_id in (BTC, USDT):
        diff = _amount(rng, int(principal[asset_id].scaleb(8)) // 1000) if rng.random() < 0.3 else Z
        credited = principal[asset_id] - diff
        to_exchange.append(Outgoing(f"wd-{asset_id}", asset_id, principal[asset_id], "confirmed", credited=credited))
        expect[asset_id]["deposit_difference"] += diff
        ledger[asset_id] = credited

    # fills that the ledger can pay for (the test keeps its own ledger)
    for _ in range(rng.randint(0, 8)):
        side = rng.choice(["buy", "sell"])
        price = _positive(rng, 10 ** 13)            # up to 100000 with 8 decimals
        fee_code = rng.choice(["USDT", "BTC", None])
        if side == "buy":
            amount = _positive(rng, 10 ** 8)
            cost = price * amount
            fee = _fee(rng, price * amount if fee_code == "USDT" else amount)
            quote_out = cost + (fee if fee_code == "USDT" else Z)
            if fee_code is None:
                fee = Z
            if quote_out > ledger[USDT]:
                continue
            base_in = amount - (fee if fee_code == "BTC" else Z)
            ledger[USDT] -= quote_out
            ledger[BTC] += base_in
            expect[USDT]["trading"] -= quote_out
            expect[BTC]["trading"] += base_in
        else:
            if ledger[BTC] <= E8:
                continue
            amount = _positive(rng, int(ledger[BTC].scaleb(8)) // 2 or 1)
            fee = _fee(rng, price * amount if fee_code == "USDT" else amount)
            if fee_code is None:
                fee = Z
            base_out = amount + (fee if fee_code == "BTC" else Z)
            if base_out > ledger[BTC]:
                continue
            quote_in = price * amount - (fee if fee_code == "USDT" else Z)
            ledger[BTC] -= base_out
            ledger[USDT] += quote_in
            expect[BTC]["trading"] -= base_out
            expect[USDT]["trading"] += quote_in
        fills.append(TradeFill(side, price, amount, fee, fee_code))

    # the way back: dust, withdrawal fee, short/long arrival
    arrived = {}
    for asset_id, code in ((BTC, "BTC"), (USDT, "USDT")):
        balance = ledger[asset_id]
        assert balance >= 0
        d = min(rng.choice([Z, balance, _amount(rng, 10 ** 4)]), balance)  # none, all, or a little
        withdraw = balance - d
        if d:
            dust.append(Dust(asset_id, code, d))
            expect[asset_id]["dust"] += d
        if withdraw > 0:
            fee = _amount(rng, int(withdraw.scaleb(8)) // 10)
            transit = rng.choice([Z, _amount(rng, int((withdraw - fee).scaleb(8)) // 10),
                                  -_amount(rng, 10 ** 4)])
            arrived[asset_id] = withdraw - fee - transit
            returns.append(Return(f"ret-{code}", asset_id, code, withdraw, fee, "arrived", arrived[asset_id]))
            expect[asset_id]["exchange_withdrawal_fees"] += fee
            expect[asset_id]["transit_difference"] += transit
        if rng.random() < 0.2:  # a return still queued counts for nothing
            returns.append(Return(f"ret-q-{code}", asset_id, code, _positive(rng, 10 ** 8), D("1"), "queued"))

    # the payout: the equation's closing term, computed here
    for asset_id in (BTC, USDT, ETH):
        closing = sum((SIGNS[t] * v for t, v in expect[asset_id].items() if t != "paid_out"), Z)
        # the same amount by the other road: what arrived + what was sent with the exit request + surplus
        other_road = arrived.get(asset_id, Z) + exit_held.get(asset_id, Z) + (surplus_eth if asset_id == ETH else Z)
        assert closing == other_road
        if closing:
            payouts.append(Outgoing(f"payout-{asset_id}", asset_id, closing, rng.choice(["queued", "confirmed"])))
            expect[asset_id]["paid_out"] = closing

    data = StatementInput(order_id=ORDER, state="settled", symbol="BTC/USDT", base_asset_id=BTC, quote_asset_id=USDT,
                          base_code="BTC", quote_code="USDT", symbols=SYMBOLS, paid_in=tuple(paid_in),
                          refunds=tuple(refunds), to_exchange=tuple(to_exchange), charges=tuple(charges),
                          fills=tuple(fills), returns=tuple(returns), dust=tuple(dust), payouts=tuple(payouts),
                          opening_price=_positive(rng, 10 ** 13), exit_price=_positive(rng, 10 ** 13), final=True)
    st_ = build_statement(data)
    assert st_.balanced is True
    for a in st_.assets:
        assert a.held == 0
        assert dict(a.terms) == expect[a.asset_id]
    d = st_.as_dict()
    assert d["balanced"] is True and all(a["check"] == "0" for a in d["assets"])
    format_statement(st_)  # renders
