"""plan_cycle's shortcut for a kept ladder decides exactly as the full path: compared on generated ladders, books
and clocks, the boundaries included (a price exactly at tolerance, an order exactly at max_order_age or exactly
minimum_spread from the reference, the refresh due exactly now, hanging orders, repeated client ids)."""
import random
from decimal import Decimal as D

from domain.strategy.ladder import Proposal
from domain.strategy.params import parse_params
from domain.strategy.refresh import LiveOrder, _kept_as_is, _plan_in_full, plan_cycle

REF = D(1000)
TOLERANCES = (D("-1"), D(0), D("0.001"), D("0.002"), D("0.01"))
# moves of a proposal from its live price, in units of the tolerance: inside, exactly at, just beyond it
MOVES = (D(0), D("0.5"), D("-0.5"), D(1), D(-1), D("1.001"), D("-1.001"), D(3))


def _params(rng):
    return parse_params({"bid_spread": "0.01", "ask_spread": "0.01", "order_amount": "1"}, {
        "order_refresh_time": rng.choice((10, 30)), "order_refresh_tolerance_pct": str(rng.choice(TOLERANCES)),
        "max_order_age": rng.choice((100, 300)), "filled_order_delay": rng.choice((0, 60)),
        "minimum_spread": rng.choice(("0", "0.005", "0.01")), "hanging_orders_enabled": rng.random() < 0.3,
        "hanging_orders_cancel_pct": rng.choice(("0.01", "0.05"))})


def _case(rng):
    p = _params(rng)
    now = float(rng.choice((100, 400, 1000)))
    live, proposals = [], []
    for side, sign in (("buy", -1), ("sell", 1)):
        levels = rng.choice((0, 1, 1, 2))
        for level in range(levels):
            # whole prices: 1 % steps from REF give distances exactly at 0.01 / 0.005 (minimum_spread boundaries)
            price = REF + sign * rng.choice((5, 10, 10, 20, 30)) * (level + 1)
            created_at = now - float(rng.choice((0, 50, p.max_order_age, p.max_order_age, p.max_order_age + 1)))
            cid = f"{side[0]}{level}" if rng.random() < 0.95 else "dup"
            live.append(LiveOrder(cid, side, price, D(1), D(1), created_at,
                                  hanging=rng.random() < 0.15, level=level))
            move = rng.choice(MOVES) * abs(p.order_refresh_tolerance_pct)
            proposals.append(Proposal(side, price + price * move, D(1), level))
        if rng.random() < 0.1:   # a count that changed
            proposals.append(Proposal(side, REF + sign * 50, D(1), levels))
    rng.shuffle(live)
    last_refresh_at = rng.choice((None, now - p.order_refresh_time, now - 5, now - 100))
    last_fill_at = rng.choice((None, None, now - 1, now - p.filled_order_delay, now - 200))
    ref = rng.choice((REF, REF, REF + rng.choice((1, -1, 3)), None))
    return dict(params=p, proposals=proposals, live=live, now=now, last_refresh_at=last_refresh_at,
                last_fill_at=last_fill_at, ref_price=ref, replace=rng.random() < 0.3)


def test_the_kept_ladder_shortcut_decides_as_the_full_path():
    rng = random.Random(14)
    shortcuts = 0
    for _ in range(8000):
        case = _case(rng)
        full = _plan_in_full(**case)
        assert plan_cycle(**case) == full, case
        if _kept_as_is(case["params"], case["proposals"], case["live"], case["now"], case["last_refresh_at"],
                       case["last_fill_at"], case["ref_price"]) is not None:
            shortcuts += 1
            assert full.cancel == () and full.place == () and full.reason.startswith("keep: ")
    # the generator reaches the shortcut often, and the full path often too
    assert 800 < shortcuts < 7200, shortcuts
