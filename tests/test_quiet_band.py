"""domain/strategy/band.py: over every mid of a quiet order's band the real pipeline (build_proposals →
plan_cycle, refresh due) keeps its ladder; where a band cannot be shown, there is none."""
from __future__ import annotations

import random
from decimal import Decimal

import pytest

from domain.strategy.band import QuietBand, quiet_band
from domain.strategy.ladder import BookTop, Budget, MarketRules, build_proposals
from domain.strategy.params import parse_params
from domain.strategy.refresh import LiveOrder, plan_cycle

D = Decimal
RULES = MarketRules(tick_size=D("0.01"), step_size=D("0.00001"), min_amount=D("0.00001"), min_notional=D("5"),
                    maker_fee=D("0.001"))
PLENTY = Budget(base=D("1"), quote=D("100000"))


def params_of(**over):
    base = {"bid_spread": "0.002", "ask_spread": "0.003", "order_amount": "0.01", "order_levels": 3,
            "order_level_spread": "0.001", "order_refresh_time": 1, "order_refresh_tolerance_pct": "0.001",
            "filled_order_delay": 1, "max_order_age": 1800}
    base.update(over)
    return parse_params(base, {})


def book_at(mid: Decimal, half: Decimal = D("0.005")) -> BookTop:
    return BookTop(best_bid=mid - half, best_ask=mid + half)


def ladder_at(params, mid, holdings=PLENTY):
    proposals, _ = build_proposals(params, mid, book_at(mid), RULES, holdings, holdings.base, holdings.quote)
    return [LiveOrder(client_order_id=f"c{i}", side=p.side, price=p.price, amount=p.amount, remaining=p.amount,
                      created_at=0.0, level=p.level) for i, p in enumerate(proposals)]


def band_of(params, live, mid, holdings=PLENTY, book=None):
    return quiet_band(params=params, book=book or book_at(mid), ref=mid, rules=RULES, holdings=holdings,
                      live=live, now=10.0, last_refresh_at=0.0, last_fill_at=None, last_fill_price=None)


def plan_does_nothing(params, live, mid, holdings=PLENTY) -> bool:
    book = book_at(mid)
    proposals, _ = build_proposals(params, mid, book, RULES, holdings, holdings.base, holdings.quote)
    plan = plan_cycle(params=params, proposals=proposals, live=live, now=10.0, last_refresh_at=0.0,
                      last_fill_at=None, ref_price=mid)
    return not (plan.cancel or plan.place)


@pytest.mark.parametrize("over", [{}, {"order_levels": 1}, {"minimum_spread": "0.0025"},
                                  {"order_refresh_tolerance_pct": "0.002", "order_levels": 2},
                                  {"order_refresh_tolerance_pct": "0"}, {"post_only": False}])
def test_every_mid_inside_the_band_keeps_the_ladder_and_the_band_is_nearly_the_whole_tolerance(over):
    params = params_of(**over)
    rng = random.Random(14)
    for _ in range(20):
        placed_at = D(str(rng.randint(5_000_000, 7_000_000))) / 100
        live = ladder_at(params, placed_at)
        band = band_of(params, live, placed_at)
        tol = params.order_refresh_tolerance_pct
        if tol == 0:
            # quantized prices: the mids that round to the same ticks are a band of their own (or none)
            if band is not None:
                assert band.low <= placed_at <= band.high
            continue
        assert band is not None and band.low <= placed_at <= band.high
        # the exact range is about ±tol around the mid, less a tick or two of rounding at each end (with a
        # minimum_spread its own rule cuts it: the band stops where an order comes closer than it)
        if params.minimum_spread == 0:
            assert band.high - band.low >= placed_at * 2 * (tol - D("0.0002")) - 4 * RULES.tick_size
        probes = [band.low, band.high] + [band.low + (band.high - band.low) * D(rng.random()) for _ in range(30)]
        for mid in probes:
            mid = mid.quantize(D("0.00001"))
            if band.low <= mid <= band.high:
                assert plan_does_nothing(params, live, mid), (over, placed_at, mid, band)
        # far enough outside, the plan does change (the band is not the whole line)
        assert not plan_does_nothing(params, live, band.high + placed_at * 2 * tol)
        assert not plan_does_nothing(params, live, band.low - placed_at * 2 * tol)


def test_the_band_holds_on_the_mid_of_an_uncrossed_book_only():
    band = QuietBand(low=D("99"), high=D("101"))
    assert band.holds(BookTop(D("99.5"), D("100.5")))
    assert not band.holds(BookTop(D("101"), D("102")))             # mid 101.5
    assert not band.holds(BookTop(None, D("100")))                  # a side missing
    assert not band.holds(BookTop(D("100.5"), D("99.5")))           # crossed


def test_a_short_quote_budget_caps_the_band_where_the_bids_stop_fitting():
    params = params_of(order_levels=2)
    mid = D("60000")
    live = ladder_at(params, mid)
    wide = band_of(params, live, mid)
    # just enough quote for both bids at a mid ~0.05 % higher
    bids = [o for o in live if o.side == "buy"]
    need = sum(o.amount * o.price for o in bids) * (1 + RULES.maker_fee)
    tight_funds = Budget(base=D("1"), quote=(need * D("1.0005")).quantize(D("0.01")))
    tight = band_of(params, live, mid, holdings=tight_funds)
    assert tight is not None and tight.high < wide.high and tight.low == wide.low
    assert plan_does_nothing(params, live, tight.high, tight_funds)
    _, notes = build_proposals(params, tight.high * D("1.0003"), book_at(tight.high * D("1.0003")), RULES,
                               tight_funds, tight_funds.base, tight_funds.quote)
    assert any(note.startswith("budget:") for note in notes)   # beyond it the budget cuts a bid (here: shrinks)


@pytest.mark.parametrize("over", [{"inventory_skew_enabled": True}, {"hanging_orders_enabled": True},
                                  {"price_ceiling": "70000"}, {"price_floor": "1000"},
                                  {"order_refresh_tolerance_pct": "-1"}, {"price_source": "best_bid"},
                                  {"price_source_exchange": "elsewhere"}])
def test_no_band_where_the_plan_reads_more_than_the_mid(over):
    params = params_of(**over)
    mid = D("60000")
    assert band_of(params, ladder_at(params_of(), mid), mid) is None


def test_no_band_without_a_full_ladder_a_mid_or_the_base_to_sell():
    params = params_of()
    mid = D("60000")
    live = ladder_at(params, mid)
    assert band_of(params, live[:-1], mid) is None                          # a side short of its levels
    assert band_of(params, [], mid) is None                                 # nothing placed yet
    assert band_of(params, live, mid, book=BookTop(D("60000"), None)) is None
    assert band_of(params, live, mid, holdings=Budget(base=D("0.001"), quote=D("100000"))) is None
    # the refresh not due and the ladder already beyond tolerance: kept for now, no band
    assert band_of(params, live, mid * D("1.01")) is None


def test_orders_with_the_same_parameters_and_rules_share_their_part_of_the_band_and_get_the_same_bands():
    """The (parameters, rules) part is worked out once per pair of objects; a band from it equals one worked out
    afresh, and other parameters or rules get their own."""
    from domain.strategy import band as band_module
    rng = random.Random(7)
    for over in ({}, {"minimum_spread": "0.0025"}, {"order_levels": 2, "order_amount": "0.02"}):
        params = params_of(**over)
        for _ in range(10):
            mid = D(str(rng.randint(5_000_000, 7_000_000))) / 100
            live = ladder_at(params, mid)
            band_module._LADDERS.clear()
            band_module._SHARED.clear()
            band_module._BANDS.clear()   # and the bands from it: worked out afresh
            fresh = band_of(params, live, mid)
            assert fresh is not None and band_of(params, live, mid) == fresh
            other_rules = MarketRules(tick_size=D("0.01"), step_size=D("0.00001"), min_amount=D("0.00001"),
                                      min_notional=D("5"), maker_fee=D("0.0025"))
            bids = sum(o.price * o.amount for o in live if o.side == "buy")
            short = Budget(base=D("1"), quote=bids * D("1.003"))   # the bids stop fitting ~0.05 % above the mid

            def other():
                return quiet_band(params=params, book=book_at(mid), ref=mid, rules=other_rules, holdings=short,
                                  live=live, now=10.0, last_refresh_at=0.0, last_fill_at=None, last_fill_price=None)
            warm = other()
            band_module._LADDERS.clear()
            band_module._SHARED.clear()
            band_module._BANDS.clear()   # and the bands from it: worked out afresh
            assert warm is not None and warm == other() and warm.high < fresh.high


def test_a_band_known_for_orders_alike_means_the_plan_does_nothing_at_any_clock():
    """known_band (what a tick may skip its pipeline on): nothing before quiet_band worked a band out; after, the
    same band for another order alike (other client ids and ages, the same prices and holdings), and for that
    order the plan does nothing whatever its clock; an order not alike (holdings, an aged order) gets none."""
    from domain.strategy import band as band_module
    from domain.strategy.band import known_band
    rng = random.Random(21)
    for over in ({}, {"order_levels": 1}, {"minimum_spread": "0.0025"}, {"post_only": False}):
        params = params_of(**over)
        for _ in range(10):
            band_module._SHARED.clear()
            band_module._BANDS.clear()
            mid = D(str(rng.randint(5_000_000, 7_000_000))) / 100
            live = ladder_at(params, mid)

            def known(orders, holdings=PLENTY, now=10.0):
                return known_band(params=params, book=book_at(mid), ref=mid, rules=RULES, holdings=holdings,
                                  live=orders, now=now, last_fill_price=None)
            assert known(live) is None
            band = band_of(params, live, mid)
            assert band is not None and known(live) == band
            alike = [LiveOrder(client_order_id=f"other-{i}", side=o.side, price=o.price, amount=o.amount,
                               remaining=o.remaining, created_at=rng.uniform(0, 9), level=o.level)
                     for i, o in enumerate(live)]
            assert known(alike) is band
            proposals, _ = build_proposals(params, mid, book_at(mid), RULES, PLENTY, PLENTY.base, PLENTY.quote)
            for last_refresh_at in (None, -1e9, 0.0, 9.5):
                for last_fill_at in (None, 5.0, 9.9):
                    for replace in (False, True):
                        plan = plan_cycle(params=params, proposals=proposals, live=alike, now=10.0,
                                          last_refresh_at=last_refresh_at, last_fill_at=last_fill_at,
                                          ref_price=mid, replace=replace)
                        assert not (plan.cancel or plan.place), (over, mid, last_refresh_at, last_fill_at, plan)
            # other funds that cover the ladder over the band: the same band (funds enter it only through bounds
            # they do not reach); funds that bind inside it, or short of the asks' base: none known
            assert known(alike, holdings=Budget(base=D("2"), quote=D("100000"))) is band
            bid_cost = band_module._ladder(params, RULES).bid_cost   # quote the bids cost per unit of mid
            assert known(alike, holdings=Budget(base=D("1"), quote=(mid + band.high) / 2 * bid_cost)) is None
            assert known(alike, holdings=Budget(base=D("0.000001"), quote=D("100000"))) is None
            assert known(alike, now=params.max_order_age + 10.0) is None   # its orders aged: not alike


def test_the_band_of_a_ladder_is_each_orders_own_band_whatever_its_funds():
    """quiet_band works a band out once per ladder (funds that cover it) and hands it to every order whose funds
    cover the ladder all over it; the band equals the one worked out from that order's own funds alone
    (``_band``, the per-order computation), for funds that cover, bind inside the band or fall short."""
    from domain.strategy import band as band_module
    rng = random.Random(33)
    for over in ({}, {"order_levels": 1}, {"minimum_spread": "0.0025"}, {"order_refresh_tolerance_pct": "0.002"}):
        params = params_of(**over)
        for _ in range(15):
            mid = D(str(rng.randint(5_000_000, 7_000_000))) / 100
            live = ladder_at(params, mid)
            bids = sum(o.price * o.amount for o in live if o.side == "buy") * (1 + RULES.maker_fee)
            asks = sum(o.amount for o in live if o.side == "sell")
            covering = band_module._band(params, book_at(mid), mid, RULES, PLENTY, live, 10.0)
            bid_cost = band_module._ladder(params, RULES).bid_cost   # quote the bids cost per unit of mid
            funds = [PLENTY, Budget(base=asks, quote=bids * D("1.5")), Budget(base=asks * 3, quote=bids * D("1.01")),
                     Budget(base=asks, quote=bids * D("0.999")), Budget(base=asks * D("0.999"), quote=bids * 2)]
            if covering is not None:   # the bids' budget bound just at, inside and beyond the band's ends
                for at in (covering.low, (mid + covering.high) / 2, covering.high, covering.high * D("1.00001")):
                    funds += [Budget(base=asks, quote=at * bid_cost), Budget(base=asks, quote=at * bid_cost * 2)]
            funds += [Budget(base=asks * D(str(rng.uniform(0.99, 3))), quote=bids * D(str(rng.uniform(0.999, 1.003))))
                      for _ in range(10)]
            rng.shuffle(funds)
            for holdings in funds:
                own = band_module._band(params, book_at(mid), mid, RULES, holdings, live, 10.0)
                assert band_of(params, live, mid, holdings) == own, (over, mid, holdings)
                if own is not None:   # (and the pipeline agrees over it, at its ends)
                    assert plan_does_nothing(params, live, own.low, holdings)
                    assert plan_does_nothing(params, live, own.high, holdings)
