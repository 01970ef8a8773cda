"""storage.reports.DrawdownBasis (what a running order's drawdown check reads besides the mark): the figures it
works out once (the realized PnL floored, the funded value) are those worked out at each mark, and orders funded
alike without fills share one basis that equals each one's own."""
from __future__ import annotations

import random
from decimal import Decimal
from types import SimpleNamespace

from domain.money import floor8, fmt
from storage import reports
from storage.reports import drawdown_basis

D = Decimal


def fills(rng, count):
    """A replayable run of fills (buys first, sells within what is held), as exchange_repo.fills_of gives them."""
    out = []
    for i in range(count):
        side = "buy" if i < (count + 1) // 2 else "sell"
        out.append(SimpleNamespace(side=side, price=D(rng.randint(59_000, 61_000)) + D("0.01") * rng.randint(0, 99),
                                   amount=D("0.001"), fee=D("0.0000001") * rng.randint(0, 9),
                                   fee_currency=rng.choice(["BTC", "USDT"]), fill_key=f"f{i}", at=float(i)))
    return out


def per_mark(basis, mark):
    """pnl_at / funded_at as they were worked out at every mark (before the basis kept its fixed parts)."""
    replay = basis.replay
    pnl = D(0) if replay is None else floor8(replay.realized) + floor8(replay.unrealized_at(mark))
    price = D(fmt(basis.opening_price)) if basis.opening_price is not None else mark
    return pnl, basis.opening.get("BTC", D(0)) * price + basis.opening.get("USDT", D(0))


def test_the_figures_kept_are_those_worked_out_at_each_mark():
    rng = random.Random(3)
    for _ in range(200):
        opening = {"BTC": D("0.01") * rng.randint(1, 5), "USDT": D(rng.randint(100, 2000))}
        opening_price = rng.choice([None, D("60000"), D("60000.00"), D("59876.5")])
        trades = fills(rng, rng.randint(0, 6))
        basis = drawdown_basis("o", "BTC", "USDT", opening=opening, opening_price=opening_price, trades=trades)
        for mark in (D("1"), D("45000"), D("60000"), D("60000.123456789"), D("90000")):
            assert (basis.pnl_at(mark), basis.funded_at(mark)) == per_mark(basis, mark)


def test_orders_funded_alike_without_fills_share_a_basis_equal_to_their_own():
    reports._UNTRADED.clear()
    rng = random.Random(5)
    for _ in range(100):
        opening = {"BTC": D("0.01") * rng.randint(1, 3), "USDT": D(rng.randint(1, 3) * 1000)}
        opening_price = rng.choice([None, D("60000"), D("61000")])
        first = drawdown_basis("a", "BTC", "USDT", opening=dict(opening), opening_price=opening_price, trades=[])
        again = drawdown_basis("b", "BTC", "USDT", opening=dict(opening), opening_price=opening_price, trades=[])
        own = reports._basis([], dict(opening), opening_price, "BTC", "USDT")
        assert again is first and first == own
        for mark in (D("50000"), D("60000"), D("70000")):
            assert (first.pnl_at(mark), first.funded_at(mark)) == (own.pnl_at(mark), own.funded_at(mark))
    other = drawdown_basis("c", "BTC", "USDT", opening={"BTC": D("0.07"), "USDT": D("5")}, opening_price=None,
                           trades=[])
    assert other.opening == {"BTC": D("0.07"), "USDT": D("5")} and other.opening_price is None
