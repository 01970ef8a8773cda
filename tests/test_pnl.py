"""Profit and inventory of one order: worked examples, exact to the last digit."""
import random
from decimal import Decimal as D

import pytest

from domain.strategy.pnl import Fill, PnlError, compute_pnl, inventory_base_share


def test_buy_then_sell_higher_realizes_the_profit_minus_both_fees():
    fills = [Fill("buy", D(100), D(1), fee=D("0.1")), Fill("sell", D(110), D(1), fee=D("0.11"))]
    r = compute_pnl(fills, opening_base=D(0), opening_quote=D(1000), opening_price=D(100), mark_price=D(110))
    assert r.realized == D("9.79")                     # 110 - 100 - 0.1 - 0.11
    assert r.fees_quote == D("0.21")
    assert (r.base, r.quote) == (D(0), D("1009.79"))
    assert r.unrealized == D(0) and r.total == D("9.79")
    assert r.equity == D("1009.79") and r.opening_equity == D(1000)
    assert r.avg_cost is None and r.base_share == D(0)
    assert (r.buys, r.sells, r.volume_quote) == (1, 1, D(210))


def test_fee_charged_in_base_on_the_buy():
    # the buy of 1 delivers 0.999 base for 100 quote; all 0.999 are sold at 110 with a 0.1 % quote fee
    fills = [Fill("buy", D(100), D(1), fee=D("0.001"), fee_asset="base"),
             Fill("sell", D(110), D("0.999"), fee=D("0.10989"))]
    r = compute_pnl(fills, opening_base=D(0), opening_quote=D(1000), opening_price=D(100), mark_price=D(110))
    assert r.realized == D("9.78011")                  # 109.89 - 0.10989 - 100
    assert r.fees_quote == D("0.20989")                # 0.001 base valued at 100, plus 0.10989
    assert (r.base, r.quote) == (D(0), D("1009.78011"))


def test_unrealized_at_a_mark_price_includes_the_buy_fee_in_the_cost():
    r = compute_pnl([Fill("buy", D(100), D(2), fee=D("0.2"))], opening_base=D(0), opening_quote=D(1000),
                    opening_price=D(100), mark_price=D(105))
    assert r.cost_basis == D("200.2") and r.avg_cost == D("100.1")
    assert r.realized == D(0) and r.unrealized == D("9.8") and r.total == D("9.8")
    assert r.equity == D("1009.8")
    assert r.base_share == D(210) / D("1009.8")


def test_average_cost_with_opening_base_and_a_partial_sell():
    # opening 2 base valued at 100; buy 2 at 90 -> 4 held at an average of 95; sell 1 at 100
    fills = [Fill("buy", D(90), D(2)), Fill("sell", D(100), D(1))]
    r = compute_pnl(fills, opening_base=D(2), opening_quote=D(0), opening_price=D(100), mark_price=D(100))
    assert r.realized == D(5)
    assert r.base == D(3) and r.cost_basis == D(285) and r.avg_cost == D(95)
    assert r.unrealized == D(15) and r.total == D(20)
    assert r.equity - r.opening_equity == D(20)        # 220 - 200
    assert r.quote == D(-80)                           # the opening ledger had no quote: spent 180, got 100


def test_without_a_mark_price_only_realized_values():
    r = compute_pnl([Fill("buy", D(100), D(1))], opening_base=D(0), opening_quote=D(100), opening_price=D(0))
    assert r.unrealized is None and r.total is None and r.equity is None and r.base_share is None
    assert r.realized == D(0) and r.base == D(1) and r.quote == D(0)


def test_a_fill_seen_twice_counts_once():
    fill = Fill("buy", D(100), D(1), fee=D("0.1"), trade_id="t-1")
    r = compute_pnl([fill, fill, Fill("sell", D(110), D(1), trade_id="t-2")], opening_base=D(0),
                    opening_quote=D(1000), opening_price=D(100))
    assert r.buys == 1 and r.base == D(0) and r.realized == D("9.9")


def test_selling_more_than_held_is_loud():
    with pytest.raises(PnlError, match="sell of 2 base exceeds the 1 held"):
        compute_pnl([Fill("sell", D(100), D(2))], opening_base=D(1), opening_quote=D(0), opening_price=D(90))


def test_identity_realized_plus_unrealized_is_the_change_in_equity():
    rng = random.Random(11)
    for _ in range(200):
        base, quote = D(rng.randint(0, 500)) / 100, D(rng.randint(0, 10 ** 5)) / 100
        opening_price = D(rng.randint(50, 150))
        fills = []
        held, cash = base, quote                      # a feasible history: never spend what is not held
        for i in range(rng.randint(0, 12)):
            price = D(rng.randint(8000, 12000)) / 100
            fee_asset = rng.choice(["base", "quote"])
            buying = rng.random() < 0.5 or held <= D("0.02")
            if buying:
                amount = D(rng.randint(1, 300)) / 100
            else:
                amount = (held * D(rng.randint(1, 90)) / 100).quantize(D("0.0001"))
            fee = amount * D("0.001") if fee_asset == "base" else amount * price * D("0.001")
            fee_b, fee_q = (fee, 0) if fee_asset == "base" else (0, fee)
            if buying and amount * price + fee_q <= cash:
                fills.append(Fill("buy", price, amount, fee=fee, fee_asset=fee_asset, trade_id=str(i)))
                held, cash = held + amount - fee_b, cash - amount * price - fee_q
            elif not buying and amount > 0:
                fills.append(Fill("sell", price, amount, fee=fee, fee_asset=fee_asset, trade_id=str(i)))
                held, cash = held - amount - fee_b, cash + amount * price - fee_q
        mark = D(rng.randint(8000, 12000)) / 100
        r = compute_pnl(fills, opening_base=base, opening_quote=quote, opening_price=opening_price, mark_price=mark)
        assert (r.base, r.quote) == (held, cash)
        assert abs(r.total - (r.equity - r.opening_equity)) < D("1e-18")
        assert r.fees_quote >= 0 and (r.base_share is None or D(0) <= r.base_share <= D(1))


def test_inventory_base_share():
    assert inventory_base_share(D(1), D(100), D(100)) == D("0.5")
    assert inventory_base_share(D(0), D(0), D(100)) is None


def test_fill_validation():
    with pytest.raises(TypeError):
        Fill("buy", 100.0, D(1))
    with pytest.raises(ValueError):
        Fill("bid", D(100), D(1))
    with pytest.raises(ValueError):
        Fill("buy", D(100), D(1), fee_asset="bnb")
    with pytest.raises(ValueError):
        Fill("buy", D(100), D(0))
