"""Worked examples for domain/topup.py: which legs an add-funds pool pays for, with what principal and fees.

Two pairs:
- BTC/USDT: BTC's Mixin withdrawal fee 0.0001 BTC (in the leg's own asset); USDT's 0.002 ETH (a third asset).
- ETH/USDT: ETH's fee 0.001 ETH; USDT's fee 0.002 ETH — the quote leg's fee is paid in the base asset.
Market-making fee 0.1 %: principal = floor8(available / 1.001), the fee takes the remainder.
"""
from __future__ import annotations

import uuid
from decimal import ROUND_DOWN
from decimal import Decimal as D

import pytest

from domain.payment import FeeRequirements, PairRules
from domain.topup import TopUpEvaluation, TopUpLeg, evaluate_top_up
from tests.cases import BTC, E8, ETH, USDT, property_cases


XIN = "c94ac88f-4671-3976-b60a-09064f1811e8"
Z = D(0)


def pair(base, quote, symbol) -> PairRules:
    b, q = symbol.split("/")
    return PairRules(pair_id=str(uuid.uuid5(uuid.NAMESPACE_OID, symbol)), symbol=symbol, exchange="binance", base_asset_id=base,
                     quote_asset_id=quote, base_symbol=b, quote_symbol=q)


def fees(base_fee_asset, base_fee, quote_fee_asset, quote_fee, percent="0.1") -> FeeRequirements:
    return FeeRequirements(base_fee_asset_id=base_fee_asset, base_fee_amount=D(base_fee),
                           quote_fee_asset_id=quote_fee_asset, quote_fee_amount=D(quote_fee),
                           market_making_fee_percent=D(percent))


BTC_USDT = pair(BTC, USDT, "BTC/USDT")
BTC_USDT_FEES = fees(BTC, "0.0001", ETH, "0.002")
ETH_USDT = pair(ETH, USDT, "ETH/USDT")
ETH_USDT_FEES = fees(ETH, "0.001", ETH, "0.002")




def leg(name, asset, principal, mm_fee, fee_asset, withdrawal_fee) -> TopUpLeg:
    return TopUpLeg(name, asset, D(principal), D(mm_fee), fee_asset, D(withdrawal_fee))


# (name, pair, fees, pool, legs, surplus)
READY = [
    # 0.1002 − 0.0001 = 0.1001; 0.1001 / 1.001 = 0.1; fee 0.0001
    ("base only, exact", BTC_USDT, BTC_USDT_FEES, {BTC: "0.1002"},
     [leg("base", BTC, "0.1", "0.0001", BTC, "0.0001")], {}),
    # 0.0502 − 0.0001 = 0.0501; 0.0501 / 1.001 = 0.050049950049… → 0.05004995; fee 0.0501 − 0.05004995 = 0.00005005
    ("base only, floored", BTC_USDT, BTC_USDT_FEES, {BTC: "0.0502"},
     [leg("base", BTC, "0.05004995", "0.00005005", BTC, "0.0001")], {}),
    # 1001 / 1.001 = 1000, fee 1; the Mixin fee 0.002 ETH comes from the ETH sent
    ("quote only", BTC_USDT, BTC_USDT_FEES, {USDT: "1001", ETH: "0.002"},
     [leg("quote", USDT, "1000", "1", ETH, "0.002")], {}),
    # 100 / 1.001 = 99.9000999000… → 99.90009990; fee 100 − 99.9000999 = 0.0999001
    ("quote only, floored", BTC_USDT, BTC_USDT_FEES, {USDT: "100", ETH: "0.002"},
     [leg("quote", USDT, "99.9000999", "0.0999001", ETH, "0.002")], {}),
    ("both legs", BTC_USDT, BTC_USDT_FEES, {BTC: "0.1002", USDT: "5005", ETH: "0.002"},
     [leg("base", BTC, "0.1", "0.0001", BTC, "0.0001"), leg("quote", USDT, "5000", "5", ETH, "0.002")], {}),
    # ETH overpaid by 0.0005: goes back with the settlement
    ("third-asset surplus", BTC_USDT, BTC_USDT_FEES, {BTC: "0.1002", USDT: "5005", ETH: "0.0025"},
     [leg("base", BTC, "0.1", "0.0001", BTC, "0.0001"), leg("quote", USDT, "5000", "5", ETH, "0.002")],
     {ETH: "0.0005"}),
    # an asset that is neither a leg nor a fee goes back too
    ("unrelated asset is surplus", BTC_USDT, BTC_USDT_FEES, {BTC: "0.1002", XIN: "3"},
     [leg("base", BTC, "0.1", "0.0001", BTC, "0.0001")], {XIN: "3"}),
    # ETH/USDT: ETH pays both fees: 0.5035 − 0.001 − 0.002 = 0.5005; 0.5005 / 1.001 = 0.5, fee 0.0005;
    # USDT 1001 → 1000 + 1
    ("fee in the other leg's asset, both", ETH_USDT, ETH_USDT_FEES, {ETH: "0.5035", USDT: "1001"},
     [leg("base", ETH, "0.5", "0.0005", ETH, "0.001"), leg("quote", USDT, "1000", "1", ETH, "0.002")], {}),
    # ETH/USDT, the ETH sent only pays the USDT leg's fee: with both legs ETH needs 0.003 (available
    # 0.002 − 0.003 < 0): the base leg drops out; alone the quote leg needs 0.002 ETH: exactly what was sent
    ("base leg drops, its asset pays the quote fee", ETH_USDT, ETH_USDT_FEES, {ETH: "0.002", USDT: "1001"},
     [leg("quote", USDT, "1000", "1", ETH, "0.002")], {}),
    # same with 0.0025 ETH: 0.0025 − 0.003 < 0 → base drops; 0.0025 − 0.002 = 0.0005 goes back
    ("base leg drops, rest is surplus", ETH_USDT, ETH_USDT_FEES, {ETH: "0.0025", USDT: "1001"},
     [leg("quote", USDT, "1000", "1", ETH, "0.002")], {ETH: "0.0005"}),
    # 0.0031 ETH: 0.0031 − 0.003 = 0.0001 → 0.0001 / 1.001 = 0.0000999000… → 0.0000999; fee 0.0000001
    ("tiny base leg survives", ETH_USDT, ETH_USDT_FEES, {ETH: "0.0031", USDT: "1001"},
     [leg("base", ETH, "0.0000999", "0.0000001", ETH, "0.001"), leg("quote", USDT, "1000", "1", ETH, "0.002")], {}),
    # BTC/USDT with just the BTC fee in BTC: base has nothing left (0.0001 − 0.0001 = 0) → drops;
    # the 0.0001 BTC is not spent (nothing goes to the exchange in BTC) → back with the settlement
    ("base leg drops, its asset back", BTC_USDT, BTC_USDT_FEES, {BTC: "0.0001", USDT: "1001", ETH: "0.002"},
     [leg("quote", USDT, "1000", "1", ETH, "0.002")], {BTC: "0.0001"}),
    # no market-making fee: principal is all that is left
    ("zero rate", BTC_USDT, fees(BTC, "0.0001", ETH, "0.002", percent="0"), {BTC: "0.1001"},
     [leg("base", BTC, "0.1", "0", BTC, "0.0001")], {}),
    # a fee of 0 in a third asset: nothing of it is needed
    ("zero withdrawal fee", BTC_USDT, fees(BTC, "0", ETH, "0"), {USDT: "1001"},
     [leg("quote", USDT, "1000", "1", ETH, "0")], {}),
]


@pytest.mark.parametrize("name,pair_,fees_,pool,legs,surplus", READY, ids=[c[0] for c in READY])
def test_ready(name, pair_, fees_, pool, legs, surplus):
    ev = evaluate_top_up({k: D(v) for k, v in pool.items()}, pair_, fees_)
    assert ev.ready is True
    assert ev.reason == ""
    assert list(ev.legs) == legs
    assert dict(ev.surplus) == {k: D(v) for k, v in surplus.items()}


# (name, pair, fees, pool, reason contains)
NOT_READY = [
    # only the fee asset: no leg at all
    ("only the fee asset", BTC_USDT, BTC_USDT_FEES, {ETH: "0.002"}, ["do not pay for a transfer", f"0.002 {ETH}"]),
    ("empty pool", BTC_USDT, BTC_USDT_FEES, {}, ["(nothing)"]),
    ("zero amounts", BTC_USDT, BTC_USDT_FEES, {BTC: "0", USDT: "0"}, ["(nothing)"]),
    # USDT without the ETH for its Mixin fee: waits for it
    ("quote without its fee asset", BTC_USDT, BTC_USDT_FEES, {USDT: "1001"},
     [f"added funds miss 0.002 of {ETH} for the withdrawal fee, have 0"]),
    ("quote with too little fee", BTC_USDT, BTC_USDT_FEES, {USDT: "1001", ETH: "0.0019"},
     [f"0.002 of {ETH} for the withdrawal fee, have 0.0019"]),
    # both legs but no ETH: the whole pool waits (the base leg is not sent alone)
    ("both legs, fee asset missing", BTC_USDT, BTC_USDT_FEES, {BTC: "0.1002", USDT: "5005"},
     [f"0.002 of {ETH}"]),
    # base only with exactly its fee: 0.0001 − 0.0001 = 0 → nothing to send
    ("base exactly its fee", BTC_USDT, BTC_USDT_FEES, {BTC: "0.0001"}, ["do not pay for a transfer", f"0.0001 {BTC}"]),
    ("base below its fee", BTC_USDT, BTC_USDT_FEES, {BTC: "0.00005"}, ["do not pay for a transfer"]),
    # 0.00010001 − 0.0001 = 0.00000001; / 1.001 → 0.00000000999 → floor8 0: cannot carry the market-making fee
    ("one unit left after the fee", BTC_USDT, BTC_USDT_FEES, {BTC: "0.00010001"}, ["do not pay for a transfer"]),
    # ETH/USDT: ETH alone below its own fee
    ("eth below its fee", ETH_USDT, ETH_USDT_FEES, {ETH: "0.0009"}, ["do not pay for a transfer"]),
    # ETH/USDT: USDT alone, no ETH for its fee
    ("usdt without eth", ETH_USDT, ETH_USDT_FEES, {USDT: "1001"}, [f"0.002 of {ETH} for the withdrawal fee, have 0"]),
]


@pytest.mark.parametrize("name,pair_,fees_,pool,reason", NOT_READY, ids=[c[0] for c in NOT_READY])
def test_not_ready(name, pair_, fees_, pool, reason):
    ev = evaluate_top_up({k: D(v) for k, v in pool.items()}, pair_, fees_)
    assert ev == TopUpEvaluation(False, (), {}, ev.reason)
    for part in reason:
        assert part in ev.reason


def test_a_leg_that_fails_only_because_of_the_other_legs_fee_is_retried_alone():
    # ETH/USDT: 0.0025 ETH and 0.00000001 USDT. Together ETH needs 0.003 (0.0025 − 0.003 < 0: base fails) and
    # the USDT leg has floor8(0.00000001 / 1.001) = 0 (quote fails) — both drop at once. The base leg alone
    # needs 0.001: 0.0025 − 0.001 = 0.0015 → 0.0015 / 1.001 = 0.0014985014… → 0.0014985, fee 0.0000015.
    ev = evaluate_top_up({ETH: D("0.0025"), USDT: D("0.00000001")}, ETH_USDT, ETH_USDT_FEES)
    assert ev.ready
    assert list(ev.legs) == [leg("base", ETH, "0.0014985", "0.0000015", ETH, "0.001")]
    assert dict(ev.surplus) == {USDT: E8}


def test_principal_and_fee_split_exactly():
    # available 123.45678901 USDT at 0.25 %: 123.45678901 / 1.0025 = 123.14891671… → 123.14891671;
    # fee = 123.45678901 − 123.14891671 = 0.3078723
    ev = evaluate_top_up({USDT: D("123.45678901"), ETH: D("0.002")}, BTC_USDT,
                         fees(BTC, "0.0001", ETH, "0.002", percent="0.25"))
    (q,) = ev.legs
    assert q.principal == D("123.14891671")
    assert q.market_making_fee == D("0.3078723")
    assert q.principal + q.market_making_fee == D("123.45678901")
    assert q.market_making_fee >= q.principal * D("0.0025")  # the fee is never short of the rate


def test_as_dict():
    ev = evaluate_top_up({BTC: D("0.1002"), USDT: D("5005"), ETH: D("0.0025")}, BTC_USDT, BTC_USDT_FEES)
    assert ev.as_dict() == {
        "legs": [{"leg": "base", "asset_id": BTC, "principal": "0.1", "market_making_fee": "0.0001",
                  "fee_asset_id": BTC, "withdrawal_fee": "0.0001"},
                 {"leg": "quote", "asset_id": USDT, "principal": "5000", "market_making_fee": "5",
                  "fee_asset_id": ETH, "withdrawal_fee": "0.002"}],
        "surplus": {ETH: "0.0005"},
    }


# ================================ property: nothing is lost or made up ================================

@property_cases(300)
def test_ready_pools_are_spent_exactly(rng):
    """For a ready pool, per asset: principals + market-making fees + withdrawal fees + surplus == the pool;
    each principal is floor8(available / (1 + rate)) and > 0; the market-making fee is at least rate × principal."""
    base, quote = rng.choice([(BTC, USDT), (ETH, USDT)])
    third = rng.choice([ETH, XIN]) if base == BTC else XIN
    fee_assets = [base, quote, third]
    f = FeeRequirements(base_fee_asset_id=rng.choice(fee_assets), base_fee_amount=D(rng.randint(0, 10 ** 6)).scaleb(-8),
                        quote_fee_asset_id=rng.choice(fee_assets),
                        quote_fee_amount=D(rng.randint(0, 10 ** 6)).scaleb(-8),
                        market_making_fee_percent=rng.choice([D("0"), D("0.1"), D("0.25"), D("1")]))
    p = pair(base, quote, "B/Q")
    pool = {}
    for asset in {base, quote, third}:
        if rng.random() < 0.8:
            pool[asset] = D(rng.randint(0, 10 ** rng.randint(1, 12))).scaleb(-8)
    ev = evaluate_top_up(pool, p, f)
    if not ev.ready:
        assert ev.reason and not ev.legs and not ev.surplus
        return
    rate = f.market_making_fee_rate
    spent: dict[str, D] = {}
    for lg in ev.legs:
        assert lg.principal > 0 and lg.market_making_fee >= 0
        assert lg.market_making_fee >= lg.principal * rate
        spent[lg.asset_id] = spent.get(lg.asset_id, Z) + lg.principal + lg.market_making_fee
        spent[lg.fee_asset_id] = spent.get(lg.fee_asset_id, Z) + lg.withdrawal_fee
        available = lg.principal + lg.market_making_fee
        assert lg.principal == (available / (1 + rate)).quantize(E8, rounding=ROUND_DOWN)
    for asset, amount in pool.items():
        assert spent.get(asset, Z) + ev.surplus.get(asset, Z) == amount, asset
        assert ev.surplus.get(asset, Z) >= 0
    assert set(ev.surplus) <= set(pool)
    assert all(v > 0 for v in ev.surplus.values())
