"""Refresh cycle: keep / cancel / place decisions, timers, hanging orders, budget for re-quoting."""
import random
from decimal import Decimal as D

from domain.strategy.ladder import Budget, MarketRules, Proposal
from domain.strategy.params import parse_params
from domain.strategy.refresh import (LiveOrder, orders_to_hang, pair_replacements, plan_cycle, quiet_until,
                                     quoting_budget, tolerance_check)

BASE = {"bid_spread": "0.01", "ask_spread": "0.01", "order_amount": "1", "order_levels": 2,
        "order_level_spread": "0.01", "order_refresh_time": 30, "order_refresh_tolerance_pct": "0.002",
        "max_order_age": 300, "filled_order_delay": 60}
RULES = MarketRules(tick_size=D("0.01"), step_size=D("0.01"), min_amount=D(0), min_notional=D(0))


def params(**kw):
    return parse_params(BASE, kw)


def ladder(ref):
    """Proposals for a 1 % / 1 % two-level ladder around ``ref`` (unrounded is fine here)."""
    ref = D(ref)
    return [Proposal("buy", ref * D("0.99"), D(1), 0), Proposal("buy", ref * D("0.98"), D(1), 1),
            Proposal("sell", ref * D("1.01"), D(1), 0), Proposal("sell", ref * D("1.02"), D(1), 1)]


def live_ladder(created_at=0.0):
    return [LiveOrder("b0", "buy", D(99), D(1), D(1), created_at, level=0),
            LiveOrder("b1", "buy", D(98), D(1), D(1), created_at, level=1),
            LiveOrder("s0", "sell", D(101), D(1), D(1), created_at, level=0),
            LiveOrder("s1", "sell", D(102), D(1), D(1), created_at, level=1)]


ALL = ("b0", "b1", "s0", "s1")


def plan(p=None, *, proposals=None, live=None, now, last_refresh_at=0.0, last_fill_at=None, ref="100"):
    ref = None if ref is None else D(ref)
    return plan_cycle(params=p or params(), proposals=ladder(ref) if proposals is None else proposals,
                      live=live_ladder() if live is None else live, now=now, last_refresh_at=last_refresh_at,
                      last_fill_at=last_fill_at, ref_price=ref)


def test_first_cycle_places_the_whole_ladder():
    result = plan(live=[], now=0, last_refresh_at=None)
    assert result.place == tuple(ladder("100")) and result.cancel == () and result.keep == ()
    assert result.reason == "place 4 order(s)"


def test_within_refresh_time_everything_is_kept_even_if_the_price_moved():
    result = plan(now=10, ref="100.4")                      # 0.4 %: beyond tolerance, not due yet
    assert result.keep == ALL and result.cancel == () and result.place == ()
    assert result.reason == "keep: refresh in 20.0 s"


def test_refresh_due_and_within_tolerance_keeps_the_orders():
    # ref 100.1: 99 -> 99.099 is 0.1 %, inside the 0.2 % tolerance; same for every level
    result = plan(now=30, ref="100.1")
    assert result.keep == ALL and result.cancel == () and result.place == ()
    assert result.reason == "keep: every price within tolerance 0.002"


def test_price_beyond_tolerance_cancels_then_places_once_the_cancels_are_confirmed():
    first = plan(now=30, ref="100.5")                       # 99 -> 99.495 = 0.5 %
    assert first.cancel == ALL and first.keep == () and first.place == ()
    assert first.reason == "cancel the ladder: refresh: buy price 99 -> 99.495 beyond tolerance 0.002"
    # the actor sends the cancels; while any is unconfirmed the orders are still "live": no new ladder yet
    pending = plan(now=31, ref="100.5", live=live_ladder()[:1])
    assert pending.place == () and pending.cancel == ("b0",)
    # every cancel confirmed: the new ladder goes out
    second = plan(now=31, ref="100.5", live=[])
    assert second.place == tuple(ladder("100.5")) and second.cancel == ()


def test_with_cancel_replace_the_ladder_is_replaced_in_one_call_and_paired_innermost_first():
    p = params()
    result = plan_cycle(params=p, proposals=ladder("100.5"), live=live_ladder(), now=30, last_refresh_at=0.0,
                        last_fill_at=None, ref_price=D("100.5"), replace=True)
    assert result.cancel == ALL and result.place == tuple(ladder("100.5"))
    assert result.reason.endswith("; replace with 4 order(s)")
    pairs, cancels, places = pair_replacements(live_ladder(), result.place)
    assert [(old, (new.side, new.level)) for old, new in pairs] == [
        ("b0", ("buy", 0)), ("b1", ("buy", 1)), ("s0", ("sell", 0)), ("s1", ("sell", 1))]
    assert cancels == () and places == ()
    # one ask fewer funded: its old order is cancelled alone; a bid more: placed alone
    proposals = ladder("100.5")[:3] + [Proposal("buy", D("97"), D(1), 2)]
    pairs, cancels, places = pair_replacements(live_ladder(), proposals)
    assert len(pairs) == 3 and cancels == ("s1",) and [(x.side, x.level) for x in places] == [("buy", 2)]
    # a fill's delay still holds new orders: cancel only
    held = plan_cycle(params=p, proposals=ladder("100.5"), live=live_ladder()[1:], now=30, last_refresh_at=0.0,
                      last_fill_at=20, ref_price=D("100.5"), replace=True)
    assert held.cancel == ("b1", "s0", "s1") and held.place == ()


def test_a_changed_order_count_means_refresh():
    result = plan(now=30, proposals=ladder("100")[:3])        # e.g. the budget now funds one ask fewer
    assert result.cancel == ALL
    assert result.reason == "cancel the ladder: refresh: sell count 2 -> 1"


def test_zero_tolerance_keeps_only_identical_prices_and_negative_always_replaces():
    same = [Proposal(o.side, o.price, o.amount, o.level) for o in live_ladder()]
    assert plan(params(order_refresh_tolerance_pct="0"), proposals=same, now=30).cancel == ()
    assert plan(params(order_refresh_tolerance_pct="0"), proposals=ladder("100.01"), now=30).cancel == ALL
    assert plan(params(order_refresh_tolerance_pct="-1"), proposals=same, now=30).cancel == ALL


def test_tolerance_compares_prices_not_sizes():
    bigger = [Proposal(o.side, o.price, D(5), o.level) for o in live_ladder()]
    assert tolerance_check(live_ladder(), bigger, D(0))[0] is True


def test_max_order_age_forces_a_refresh_even_before_refresh_time_and_within_tolerance():
    p = params(order_refresh_time=1000)
    assert plan(p, now=300, ref="100").cancel == ()           # exactly the max age: still fine
    result = plan(p, now=301, ref="100")
    assert result.cancel == ALL and result.place == ()
    assert result.reason == "cancel the ladder: 4 order(s) older than max_order_age 300 s"


def test_minimum_spread_breach_cancels_the_ladder_at_once():
    # the reference fell to 99.05: the 99 bid is only 0.05 % away, under minimum_spread 0.5 %
    result = plan(params(minimum_spread="0.005"), now=5, ref="99.05")
    assert result.cancel == ALL
    assert result.reason == "cancel the ladder: 1 order(s) within minimum_spread 0.005 of reference 99.05"


def test_default_minimum_spread_cancels_a_bid_above_the_reference():
    # an external price source fell below our bid: we would be buying above the fair price
    assert plan(now=5, ref="98.5").cancel == ALL
    assert plan(now=5, ref="99").cancel == ()                 # at the reference exactly: allowed


def test_filled_order_delay_holds_the_next_ladder():
    # every order filled at t=20; the ladder was placed at t=0
    held = plan(live=[], now=40, last_fill_at=20)
    assert held.place == () and held.reason == "hold: filled_order_delay, 40.0 s left"
    assert plan(live=[], now=80, last_fill_at=20).place == tuple(ladder("100"))


def test_fill_with_a_short_delay_brings_the_refresh_forward():
    # b0 filled completely at t=20, delay 5 s: refresh checked at 25 instead of 30 (hummingbot's cancel_ts)
    p = params(filled_order_delay=5)
    rest = live_ladder()[1:]
    assert plan(p, live=rest, now=24, last_fill_at=20).cancel == ()
    assert plan(p, live=rest, now=25, last_fill_at=20).cancel == ("b1", "s0", "s1")   # buy count 1 -> 2
    assert plan(p, live=[], now=26, last_fill_at=20).place == tuple(ladder("100"))


def test_fill_with_a_long_delay_cancels_at_refresh_but_holds_new_orders():
    rest = live_ladder()[1:]
    assert plan(live=rest, now=30, last_fill_at=20).cancel == ("b1", "s0", "s1")
    held = plan(live=[], now=31, last_fill_at=20)
    assert held.place == () and held.reason == "hold: filled_order_delay, 49.0 s left"


def test_fill_older_than_the_ladder_does_not_delay_it():
    assert plan(live=[], now=30, last_refresh_at=0, last_fill_at=-1).place == tuple(ladder("100"))


def test_orders_that_vanish_early_are_not_resent_before_the_refresh_time():
    # e.g. post-only rejections: the exchange is not spammed every tick
    result = plan(live=[], now=5)
    assert result.place == () and result.reason == "hold: next ladder in 25.0 s (order_refresh_time)"


def test_no_proposals_nothing_to_place():
    assert plan(live=[], now=0, last_refresh_at=None, proposals=[]).reason == "nothing to place (no proposals)"


def test_without_a_reference_price_nothing_is_placed_and_only_age_cancels():
    assert plan(live=[], now=0, last_refresh_at=None, proposals=[], ref=None).place == ()
    kept = plan(now=30, proposals=[], ref=None)
    assert kept.keep == ALL and kept.reason == "refresh due but no reference price: keeping the ladder"
    assert plan(now=301, proposals=[], ref=None).cancel == ALL


# --- hanging orders -------------------------------------------------------------------

HANG = {"hanging_orders_enabled": True, "hanging_orders_cancel_pct": "0.05"}


def hanging_sell(price="104", created_at=0.0):
    return LiveOrder("h1", "sell", D(price), D(1), D(1), created_at, hanging=True, level=0)


def test_hanging_order_is_outside_the_refresh_and_tolerance_count():
    result = plan(params(**HANG), live=live_ladder() + [hanging_sell()], now=30, ref="100")
    assert result.cancel == () and result.keep == ALL + ("h1",)


def test_hanging_order_survives_a_refresh_of_the_ladder():
    result = plan(params(**HANG), live=live_ladder() + [hanging_sell()], now=30, ref="100.5")
    assert result.cancel == ALL and result.keep == ("h1",)


def test_hanging_order_cancelled_once_farther_than_the_cancel_pct():
    p = params(**HANG)
    assert plan(p, live=[hanging_sell()], now=5, ref="99.1").keep == ("h1",)        # 4.9 % away
    result = plan(p, live=[hanging_sell()], now=5, ref="98.9")                      # 5.16 % away
    assert result.cancel == ("h1",)
    assert result.reason.startswith("cancel 1 hanging order(s) more than 0.05 from reference 98.9")


def test_hanging_order_is_not_cancelled_by_age_or_minimum_spread():
    p = params(**HANG, minimum_spread="0.01")
    old_close = LiveOrder("h2", "buy", D("99.9"), D(1), D(1), -10_000.0, hanging=True)
    result = plan(p, live=[old_close], now=5, ref="100")
    assert result.keep == ("h2",) and result.cancel == ()


def test_hanging_flag_ignored_when_hanging_orders_are_off():
    result = plan(live=live_ladder() + [hanging_sell()], now=30, ref="100")
    assert result.cancel == ALL + ("h1",)                      # it counts: sell count 3 -> 2


def test_the_other_side_of_a_filled_pair_becomes_hanging():
    live = live_ladder()
    b0 = live[0]
    assert orders_to_hang(params(**HANG), live, b0) == ("s0",)
    assert orders_to_hang(params(**HANG), live[1:], live[3]) == ("b1",)     # s1 filled: its pair is b1
    assert orders_to_hang(params(), live, b0) == ()                          # hanging orders off
    assert orders_to_hang(params(**HANG), live, hanging_sell()) == ()        # a hanging fill hangs nothing


def test_pairs_found_by_rank_when_levels_are_unknown():
    live = [LiveOrder(o.client_order_id, o.side, o.price, o.amount, o.remaining, o.created_at)
            for o in live_ladder()]
    filled_b1 = live[1]                                       # second-best bid pairs with second-best ask
    assert orders_to_hang(params(**HANG), [o for o in live if o is not filled_b1], filled_b1) == ("s1",)


def test_quoting_budget_excludes_only_what_hanging_orders_lock():
    ledger = Budget(base=D(3), quote=D(500))
    live = live_ladder() + [hanging_sell(), LiveOrder("h2", "buy", D(99), D(2), D("1.5"), 0.0, hanging=True)]
    # hanging sell locks 1 base; hanging buy locks 1.5 * 99 * 1.001 = 148.6485 quote
    assert quoting_budget(ledger, live, params(**HANG), RULES) == Budget(base=D(2), quote=D("351.3515"))
    assert quoting_budget(ledger, live, params(), RULES) == ledger          # off: nothing is hanging
    assert quoting_budget(Budget(D(0), D(1)), live, params(**HANG), RULES) == Budget(D(0), D(0))


# --- invariants ------------------------------------------------------------------------

def test_duplicate_live_entries_are_listed_once():
    live = live_ladder()
    result = plan(live=live + live[:1], now=30, ref="100.5")
    assert result.cancel == ALL


def test_property_only_the_given_orders_are_ever_cancelled():
    rng = random.Random(77)
    for _ in range(500):
        p = params(hanging_orders_enabled=rng.random() < 0.5, minimum_spread=str(D(rng.randint(0, 20)) / 1000),
                   order_refresh_tolerance_pct=str(D(rng.randint(-5, 20)) / 1000),
                   filled_order_delay=rng.randint(0, 90))
        live = []
        for i in range(rng.randint(0, 6)):
            side = rng.choice(["buy", "sell"])
            price = D(rng.randint(9000, 11000)) / 100
            live.append(LiveOrder(f"o{i}", side, price, D(1), D(1), float(rng.randint(-400, 60)),
                                  hanging=rng.random() < 0.3, level=rng.randint(0, 2)))
        ref = D(rng.randint(9000, 11000)) / 100
        proposals = ladder(ref)[: rng.randint(0, 4)]
        last_refresh = rng.choice([None, float(rng.randint(-100, 60))])
        last_fill = rng.choice([None, float(rng.randint(-100, 60))])
        now = float(rng.randint(0, 120))
        result = plan(p, proposals=proposals, live=live, now=now, last_refresh_at=last_refresh,
                      last_fill_at=last_fill, ref=ref)
        ids = [o.client_order_id for o in live]
        assert set(result.cancel) <= set(ids)
        assert not set(result.cancel) & set(result.keep)
        assert sorted(result.cancel + result.keep) == sorted(ids)
        active_kept = [o for o in live if o.client_order_id in result.keep
                       and not (p.hanging_orders_enabled and o.hanging)]
        active_any = [o for o in live if not (p.hanging_orders_enabled and o.hanging)]
        if result.place:
            assert not active_any                    # never a second ladder on top of the first
        if active_any:
            assert len(active_kept) in (0, len(active_any))   # the ladder is kept or cancelled as a set
        assert result.reason


def test_property_a_plan_that_does_nothing_holds_until_quiet_until():
    """What the strategy's quiet ticks rely on: with the same inputs, plan_cycle decides the same (nothing) at
    every moment before quiet_until; at quiet_until itself it may decide otherwise."""
    rng = random.Random(78)
    quiet = changed_at_the_moment = 0
    for _ in range(2000):
        p = params(hanging_orders_enabled=rng.random() < 0.5, max_order_age=rng.randint(20, 400),
                   order_refresh_tolerance_pct=str(D(rng.randint(-5, 20)) / 1000),
                   filled_order_delay=rng.randint(0, 90))
        live = [LiveOrder(f"o{i}", rng.choice(["buy", "sell"]), D(rng.randint(9000, 11000)) / 100, D(1), D(1),
                          float(rng.randint(-400, 60)), hanging=rng.random() < 0.3, level=rng.randint(0, 2))
                for i in range(rng.randint(0, 4))]
        ref = D(rng.randint(9900, 10100)) / 100
        proposals = ladder(ref)[: rng.randint(0, 4)]
        last_refresh = rng.choice([None, float(rng.randint(-100, 60))])
        last_fill = rng.choice([None, float(rng.randint(-100, 60))])
        now = float(rng.randint(0, 120))
        kw = dict(proposals=proposals, live=live, last_refresh_at=last_refresh, last_fill_at=last_fill, ref=ref)
        first = plan(p, now=now, **kw)
        if first.cancel or first.place:
            continue
        quiet += 1
        until = quiet_until(params=p, live=live, now=now, last_refresh_at=last_refresh, last_fill_at=last_fill)
        assert until > now
        for later in {now + (until - now) * f for f in (0.01, 0.5, 0.999)} if until != float("inf") else {
                now + 1e6}:
            again = plan(p, now=later, **kw)
            assert (again.cancel, again.place) == ((), ()), (p, live, now, later, until)
        if until != float("inf"):
            at = plan(p, now=until + 1e-6, **kw)
            changed_at_the_moment += bool(at.cancel or at.place)
    assert quiet > 200 and changed_at_the_moment > 20   # the property was exercised both ways
