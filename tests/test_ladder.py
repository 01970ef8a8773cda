"""Quoting pipeline: worked examples with exact Decimals, plus a seeded property test of the budget."""
import random
from decimal import Decimal as D

import pytest

from domain.strategy.ladder import (
    BookTop, Budget, MarketRules, Proposal, apply_budget, apply_minimum_spread, apply_price_band, apply_skew,
    base_ladder, build_proposals, drop_below_minimums, drop_crossing, inventory_skew_ratios, quantize,
    reference_price, round_down, round_up,
)
from domain.strategy.params import parse_params

LADDER = {"bid_spread": "0.01", "ask_spread": "0.02", "order_amount": "1", "order_levels": 3,
          "order_level_spread": "0.005", "order_level_amount": "0.5"}
RULES = MarketRules(tick_size=D("0.01"), step_size=D("0.01"), min_amount=D("0.01"), min_notional=D("1"),
                    maker_fee=D("0.001"))
BOOK = BookTop(best_bid=D("99.5"), best_ask=D("100.5"), last_trade=D("100.2"))
RICH = Budget(base=D(1000), quote=D(10 ** 6))


def params(**overrides):
    return parse_params(LADDER, {k: (str(v) if isinstance(v, D) else v) for k, v in overrides.items()})


def quotes(proposals):
    return [(p.side, p.level, p.price, p.amount) for p in proposals]


# --- reference price ------------------------------------------------------------

@pytest.mark.parametrize("source,expected", [
    ("mid", D(100)), ("best_bid", D("99.5")), ("best_ask", D("100.5")), ("last_trade", D("100.2")),
])
def test_reference_price_from_each_source(source, expected):
    assert reference_price(params(price_source=source), BOOK, None) == expected


def test_reference_price_from_our_last_fill_falls_back_to_mid_before_the_first_fill():
    p = params(price_source="last_own_fill")
    assert reference_price(p, BOOK, D("100.37")) == D("100.37")
    assert reference_price(p, BOOK, None) == D(100)            # hummingbot: mid while there is no fill
    assert reference_price(p, BookTop(None, D(101)), None) is None


@pytest.mark.parametrize("source,book", [
    ("mid", BookTop(None, D(101))),                 # a side missing
    ("mid", BookTop(D(99), None)),
    ("mid", BookTop(D(101), D(99))),                # crossed book: not a price to trust
    ("best_bid", BookTop(None, D(101))),
    ("best_bid", BookTop(D(0), D(101))),            # zero counts as missing
    ("best_ask", BookTop(D(99), None)),
    ("last_trade", BookTop(D(99), D(101))),         # no trade seen yet
])
def test_reference_price_missing_data_is_none(source, book):
    assert reference_price(params(price_source=source), book, None) is None


def test_reference_price_of_a_locked_book_is_that_price():
    assert reference_price(params(), BookTop(D(100), D(100)), None) == D(100)


# --- base ladder ------------------------------------------------------------------

def test_three_levels_with_level_spread_and_level_amount():
    assert quotes(base_ladder(params(), D(100))) == [
        ("buy", 0, D("99"), D("1")), ("buy", 1, D("98.5"), D("1.5")), ("buy", 2, D("98"), D("2")),
        ("sell", 0, D("102"), D("1")), ("sell", 1, D("102.5"), D("1.5")), ("sell", 2, D("103"), D("2")),
    ]


def test_whole_pipeline_with_plenty_of_funds_is_the_ladder_on_the_tick():
    proposals, notes = build_proposals(params(), D("100.003"), BOOK, RULES, RICH, D(10), D(1000))
    # 100.003*0.99 = 99.00297 -> bid down to 99.00; 100.003*1.02 = 102.00306 -> ask up to 102.01
    assert quotes(proposals) == [
        ("buy", 0, D("99.00"), D("1")), ("buy", 1, D("98.50"), D("1.5")), ("buy", 2, D("98.00"), D("2")),
        ("sell", 0, D("102.01"), D("1")), ("sell", 1, D("102.51"), D("1.5")), ("sell", 2, D("103.01"), D("2")),
    ]
    assert notes == []


def test_no_reference_price_no_orders():
    assert build_proposals(params(), None, BOOK, RULES, RICH, D(1), D(1)) == ([], ["no reference price: not quoting"])


# --- minimum spread -----------------------------------------------------------------

def test_minimum_spread_pushes_inner_bid_out():
    out, notes = apply_minimum_spread(D(100), D("0.012"), base_ladder(params(), D(100)))
    assert [p.price for p in out] == [D("98.8"), D("98.5"), D("98"), D("102"), D("102.5"), D("103")]
    assert notes == ["minimum_spread 0.012: moved buy L0 out to the minimum"]


def test_minimum_spread_pushes_both_sides():
    out, _ = apply_minimum_spread(D(100), D("0.025"), base_ladder(params(), D(100)))
    assert [p.price for p in out] == [D("97.5"), D("97.5"), D("97.5"), D("102.5"), D("102.5"), D("103")]


def test_minimum_spread_survives_rounding_in_the_pipeline():
    proposals, _ = build_proposals(params(minimum_spread="0.012"), D("100.003"), BOOK, RULES, RICH, D(1), D(1))
    bid0 = proposals[0]
    assert bid0.price == D("98.80")             # 100.003 * 0.988 = 98.802964 -> rounded down
    assert (D("100.003") - bid0.price) / D("100.003") >= D("0.012")


def test_minimum_spread_zero_changes_nothing():
    ladder = base_ladder(params(), D(100))
    assert apply_minimum_spread(D(100), D(0), ladder) == (ladder, [])


# --- price band ---------------------------------------------------------------------

def sides(proposals):
    return sorted({p.side for p in proposals})


def test_ceiling_reached_means_no_buys():
    out, notes = apply_price_band(params(price_ceiling="100"), D(100), base_ladder(params(), D(100)))
    assert sides(out) == ["sell"] and len(out) == 3
    assert notes == ["price_ceiling: reference 100 >= ceiling 100, no buys"]


def test_below_ceiling_buys_stay():
    out, notes = apply_price_band(params(price_ceiling="100.01"), D(100), base_ladder(params(), D(100)))
    assert len(out) == 6 and notes == []


def test_floor_reached_means_no_sells():
    out, notes = apply_price_band(params(price_floor="100"), D(100), base_ladder(params(), D(100)))
    assert sides(out) == ["buy"]
    assert notes == ["price_floor: reference 100 <= floor 100, no sells"]


@pytest.mark.parametrize("ceiling,floor", [("0", "0"), ("-1", "-1"), ("0", "-5")])
def test_ceiling_and_floor_off_never_block_either_side(ceiling, floor):
    # Mr.Market's NaN/0 ceiling blocked every buy; here <= 0 is simply "off"
    p = params(price_ceiling=ceiling, price_floor=floor)
    proposals, notes = build_proposals(p, D(100), BOOK, RULES, RICH, D(10), D(1000))
    assert sides(proposals) == ["buy", "sell"] and len(proposals) == 6 and notes == []


# --- inventory skew ------------------------------------------------------------------

SKEW = {"order_levels": 1, "order_level_amount": "0", "inventory_skew_enabled": True}


def skew(base, quote, price=D(100), **kw):
    return inventory_skew_ratios(params(**{**SKEW, **kw}), D(base), D(quote), price)


def test_skew_at_the_target_is_neutral():
    assert skew(10, 1000) == (D(1), D(1))            # 1000 of 2000 in base = 50 %


def test_skew_with_no_base_buys_double_and_sells_nothing():
    assert skew(0, 2000) == (D(2), D(0))


def test_skew_with_all_base_sells_double_and_buys_nothing():
    assert skew(20, 0) == (D(0), D(2))


def test_skew_interpolates_inside_the_range():
    # ladder of 2 base (1 bid + 1 ask) = 200 quote of range around a target of 1000: 800..1200
    assert skew(9, 1100) == (D("1.5"), D("0.5"))     # 900: a quarter of the way from 800 to 1000
    assert skew(11, 900) == (D("0.5"), D("1.5"))


def test_skew_range_multiplier_widens_the_range():
    assert skew(9, 1100, inventory_range_multiplier="2") == (D("1.25"), D("0.75"))   # range 600..1400


def test_skew_hummingbot_docs_example_40_to_60_then_30_to_70():
    # 10 BTC of value, 1 BTC per order set (0.5 bid + 0.5 ask)
    kw = {"order_amount": "0.5"}
    assert skew(4, 600, **kw) == (D(2), D(0))                         # 40 %: lower edge
    assert skew(6, 400, **kw) == (D(0), D(2))                         # 60 %: upper edge
    assert skew("4.5", 550, **kw) == (D("1.5"), D("0.5"))
    kw2 = {**kw, "inventory_range_multiplier": "2"}
    assert skew(3, 700, **kw2) == (D(2), D(0))                        # 30 %
    assert skew(7, 300, **kw2) == (D(0), D(2))                        # 70 %
    assert skew(4, 600, **kw2) == (D("1.5"), D("0.5"))


def test_skew_range_is_capped_at_half_the_value():
    # a huge multiplier: the range is capped at 0.5*V = 1000, so 0..2000 around 1000
    assert skew(5, 1500, inventory_range_multiplier="100") == (D("1.5"), D("0.5"))


def test_skew_toward_a_non_even_target():
    assert skew(10, 1000, inventory_target_base_pct="0.3") == (D(0), D(2))   # 50 % > 30 % + range
    assert skew(6, 1400, inventory_target_base_pct="0.3") == (D(1), D(1))    # exactly 30 %


def test_skew_with_nothing_to_quote_is_zero_zero():
    assert skew(0, 0) == (D(0), D(0))


def test_skew_disabled_is_one_one_whatever_the_inventory():
    assert skew(20, 0, inventory_skew_enabled=False) == (D(1), D(1))


def test_skew_ratios_stay_in_0_2_and_sum_to_2():
    rng = random.Random(5)
    for _ in range(300):
        kw = {"order_levels": rng.randint(1, 4), "order_level_amount": str(D(rng.randint(0, 9)) / 10),
              "inventory_target_base_pct": str(D(rng.randint(0, 100)) / 100),
              "inventory_range_multiplier": str(D(rng.randint(1, 500)) / 100)}
        bid, ask = skew(D(rng.randint(0, 10 ** 4)) / 100, D(rng.randint(0, 10 ** 6)) / 100,
                        D(rng.randint(1, 10 ** 5)) / 100, **kw)
        assert D(0) <= bid <= D(2) and D(0) <= ask <= D(2)
        assert bid + ask in (D(2), D(0))


def test_apply_skew_scales_sizes_and_drops_a_zeroed_side():
    ladder = base_ladder(params(), D(100))
    out, _ = apply_skew(ladder, D("1.5"), D("0.5"))
    assert [p.amount for p in out] == [D("1.5"), D("2.25"), D("3"), D("0.5"), D("0.75"), D("1")]
    out, notes = apply_skew(ladder, D(2), D(0))
    assert sides(out) == ["buy"]
    assert notes[-1] == "inventory skew: no sells (inventory at the edge of the range)"
    assert apply_skew(ladder, D(1), D(1)) == (ladder, [])


# --- budget ---------------------------------------------------------------------

def test_quote_budget_cuts_bids_from_the_outermost_level():
    out, notes = apply_budget(base_ladder(params(), D(100)), Budget(base=D(100), quote=D(200)), RULES)
    # L0 costs 99*1*1.001 = 99.099, leaving 100.901; L1 would cost 147.89625 -> shrunk to
    # floor(100.901 / (98.5*1.001), 0.01) = 1.02; L2 gets nothing
    assert quotes([p for p in out if p.side == "buy"]) == [("buy", 0, D("99"), D("1")),
                                                           ("buy", 1, D("98.5"), D("1.02"))]
    assert len([p for p in out if p.side == "sell"]) == 3
    assert notes == ["budget: quote left 100.901 shrinks buy L1 from 1.5 to 1.02",
                     "budget: not enough quote for buy level(s) 2"]


def test_base_budget_cuts_asks():
    out, notes = apply_budget(base_ladder(params(), D(100)), Budget(base=D(2), quote=D(10 ** 6)), RULES)
    assert [(p.level, p.amount) for p in out if p.side == "sell"] == [(0, D(1)), (1, D(1))]
    assert notes == ["budget: base left 1 shrinks sell L1 from 1.5 to 1",
                     "budget: not enough base for sell level(s) 2"]


def test_the_fee_is_reserved_on_buys():
    # 99 quote is the bare notional of 1 @ 99, but 1.001 * 99 = 99.099 does not fit
    out, _ = apply_budget(base_ladder(params(order_levels=1), D(100)), Budget(base=D(0), quote=D(99)), RULES)
    assert quotes(out) == [("buy", 0, D("99"), D("0.99"))]


def test_a_budget_spent_exactly_leaves_the_next_levels_out():
    out, notes = apply_budget(base_ladder(params(), D(100)), Budget(base=D(0), quote=D("99.099")), RULES)
    assert quotes(out) == [("buy", 0, D("99"), D("1"))]
    assert notes == ["budget: not enough quote for buy level(s) 1, 2", "budget: base budget is 0, no sells"]


def test_budget_cut_never_rounds_up_past_the_funds():
    # 0.999...9 (30 nines) / 1 rounds to 1 at Decimal's 28 digits; the cut must still fit: 0.9, not 1.0
    budget = Budget(base=D("0." + "9" * 30), quote=D(0))
    rules = MarketRules(tick_size=D("0.01"), step_size=D("0.1"), min_amount=D(0), min_notional=D(0))
    out, _ = apply_budget([Proposal("sell", D(101), D(2), 0)], budget, rules)
    assert [p.amount for p in out] == [D("0.9")]


@pytest.mark.parametrize("budget,side_left", [(Budget(base=D(0), quote=D(500)), "buy"),
                                              (Budget(base=D(5), quote=D(0)), "sell"),
                                              (Budget(base=D(5), quote=D(-3)), "sell")])
def test_a_zero_budget_means_no_orders_on_that_side(budget, side_left):
    proposals, notes = build_proposals(params(), D(100), BOOK, RULES, budget, D(5), D(500))
    assert sides(proposals) == [side_left]
    assert any("budget is 0" in n for n in notes)


def test_skew_runs_before_the_budget_so_a_doubled_side_is_still_cut():
    p = params(order_levels=1, inventory_skew_enabled=True)          # ladder of 2 base
    # 0 base: bids x2 = 2 @ 99 would cost 198.198, only 150 available
    proposals, _ = build_proposals(p, D(100), BOOK, RULES, Budget(base=D(0), quote=D(150)), D(0), D(150))
    assert quotes(proposals) == [("buy", 0, D("99.00"), D("1.51"))]   # floor(150/99.099, 0.01)


def random_case(rng: random.Random):
    levels = rng.randint(1, 5)
    amount = D(rng.randint(1, 10 ** 5)) / D(10) ** rng.randint(0, 5)
    overrides = {
        "bid_spread": str(D(rng.randint(1, 300)) / 10000),
        "ask_spread": str(D(rng.randint(1, 300)) / 10000),
        "order_amount": str(amount),
        "order_levels": levels,
        "order_level_spread": str(D(rng.randint(0, 100)) / 10000),
        "order_level_amount": str(amount * D(rng.randint(0, 10)) / 10),
        "minimum_spread": str(D(rng.choice([0, 0, rng.randint(1, 400)])) / 10000),
        "inventory_skew_enabled": rng.random() < 0.5,
        "inventory_target_base_pct": str(D(rng.randint(0, 100)) / 100),
        "inventory_range_multiplier": str(D(rng.randint(1, 300)) / 100),
        "post_only": rng.random() < 0.8,
    }
    p = parse_params(LADDER, overrides)
    ref = D(rng.randint(1, 10 ** 7)) / D(10) ** rng.randint(0, 6)
    tick = D(rng.choice([1, 5, 25])) / D(10) ** rng.randint(0, 6)
    step = D(rng.choice([1, 5])) / D(10) ** rng.randint(0, 6)
    rules = MarketRules(tick_size=tick, step_size=step,
                        min_amount=D(rng.randint(0, 100)) / D(10) ** rng.randint(0, 6),
                        min_notional=D(rng.randint(0, 100)) / D(10) ** rng.randint(0, 3),
                        maker_fee=D(rng.randint(0, 30)) / 10000)
    wiggle = ref * D(rng.randint(-300, 300)) / 10000
    book = BookTop(best_bid=ref - abs(wiggle) if rng.random() < 0.9 else None,
                   best_ask=ref + wiggle if rng.random() < 0.9 else None)
    inv_base = amount * levels * D(rng.randint(0, 400)) / 100
    inv_quote = amount * ref * levels * D(rng.randint(0, 400)) / 100
    budget = Budget(base=inv_base * D(rng.randint(0, 100)) / 100, quote=inv_quote * D(rng.randint(0, 100)) / 100)
    return p, ref, book, rules, budget, inv_base, inv_quote


def test_property_never_more_than_the_orders_own_funds_and_always_sendable():
    rng = random.Random(20240905)
    placed = 0
    for _ in range(400):
        p, ref, book, rules, budget, inv_base, inv_quote = random_case(rng)
        proposals, _ = build_proposals(p, ref, book, rules, budget, inv_base, inv_quote)
        bids = [x for x in proposals if x.side == "buy"]
        asks = [x for x in proposals if x.side == "sell"]
        assert sum((x.price * x.amount * (1 + rules.maker_fee) for x in bids), D(0)) <= budget.quote
        assert sum((x.amount for x in asks), D(0)) <= budget.base
        for x in proposals:
            assert x.price > 0 and x.amount > 0
            assert x.price % rules.tick_size == 0 and x.amount % rules.step_size == 0
            assert x.amount >= rules.min_amount and x.notional >= rules.min_notional
            if x.side == "buy":
                assert (ref - x.price) / ref >= p.minimum_spread
                if p.post_only and book.best_ask is not None:
                    assert x.price < book.best_ask
            else:
                assert (x.price - ref) / ref >= p.minimum_spread
                if p.post_only and book.best_bid is not None:
                    assert x.price > book.best_bid
        for group in (bids, asks):
            assert len({x.level for x in group}) == len(group) <= p.order_levels
        placed += len(proposals)
    assert placed > 300      # the random cases do produce orders, not only empty ladders


# --- precision ---------------------------------------------------------------------

def test_rounding_helpers():
    assert round_down(D("98.769"), D("0.01")) == D("98.76")
    assert round_up(D("98.761"), D("0.01")) == D("98.77")
    assert round_up(D("98.75"), D("0.05")) == D("98.75")          # already on the tick: unchanged


def test_bids_round_down_asks_round_up_amounts_round_down():
    rules = MarketRules(tick_size=D("0.05"), step_size=D("0.001"), min_amount=D(0), min_notional=D(0))
    out, notes = quantize([Proposal("buy", D("98.79"), D("1.23456"), 0),
                           Proposal("sell", D("98.76"), D("0.9999"), 0),
                           Proposal("sell", D("98.75"), D("2"), 1)], rules)
    assert quotes(out) == [("buy", 0, D("98.75"), D("1.234")), ("sell", 0, D("98.80"), D("0.999")),
                           ("sell", 1, D("98.75"), D("2"))]
    assert notes == []


def test_rounding_to_zero_drops_with_a_note():
    rules = MarketRules(tick_size=D(1), step_size=D("0.1"), min_amount=D(0), min_notional=D(0))
    out, notes = quantize([Proposal("buy", D("0.4"), D(1), 0), Proposal("sell", D(5), D("0.09"), 0)], rules)
    assert out == []
    assert notes == ["precision: buy L0 1 @ 0.4 rounds to 1 @ 0, dropped",
                     "precision: sell L0 0.09 @ 5 rounds to 0 @ 5, dropped"]


def test_below_min_amount_or_min_notional_dropped_with_a_note():
    rules = MarketRules(tick_size=D("0.01"), step_size=D("0.001"), min_amount=D("0.01"), min_notional=D(5))
    out, notes = drop_below_minimums([Proposal("buy", D(1000), D("0.009"), 0),
                                      Proposal("buy", D(100), D("0.04"), 1),
                                      Proposal("sell", D(100), D("0.05"), 0)], rules)
    assert quotes(out) == [("sell", 0, D(100), D("0.05"))]               # exactly the minimum is fine
    assert notes == ["min amount: buy L0 0.009 @ 1000 is below 0.01, dropped",
                     "min notional: buy L1 0.04 @ 100 = 4 is below 5, dropped"]


def test_budget_cut_to_dust_is_not_sent():
    # 0.5 quote left for level 1 buys floor(0.5/98.5985, 0.001) = 0.005 < min amount 0.01:
    # dropped locally with a note, never sent to be rejected (hummingbot #5091)
    rules = MarketRules(tick_size=D("0.01"), step_size=D("0.001"), min_amount=D("0.01"), min_notional=D(0))
    proposals, notes = build_proposals(params(), D(100), BOOK, rules, Budget(base=D(0), quote=D("99.599")),
                                       D(0), D(100))
    assert quotes(proposals) == [("buy", 0, D("99.00"), D("1"))]
    assert notes == ["budget: quote left 0.5 shrinks buy L1 from 1.5 to 0.005",
                     "budget: not enough quote for buy level(s) 2",
                     "budget: base budget is 0, no sells",
                     "min amount: buy L1 0.005 @ 98.5 is below 0.01, dropped"]


# --- crossing ------------------------------------------------------------------------

CROSS = [Proposal("buy", D(100), D(1), 0), Proposal("buy", D("99.99"), D(1), 1),
         Proposal("sell", D(99), D(1), 0), Proposal("sell", D("99.01"), D(1), 1)]


def test_post_only_drops_bids_at_or_above_the_best_ask_and_asks_at_or_below_the_best_bid():
    out, notes = drop_crossing(CROSS, BookTop(best_bid=D(99), best_ask=D(100)), post_only=True)
    assert quotes(out) == [("buy", 1, D("99.99"), D(1)), ("sell", 1, D("99.01"), D(1))]
    assert notes == ["crossing: buy L0 1 @ 100 >= best ask 100, dropped (post-only)",
                     "crossing: sell L0 1 @ 99 <= best bid 99, dropped (post-only)"]


def test_crossing_kept_when_not_post_only_or_book_side_empty():
    assert drop_crossing(CROSS, BookTop(D(99), D(100)), post_only=False) == (CROSS, [])
    assert drop_crossing(CROSS, BookTop(None, None), post_only=True) == (CROSS, [])


def test_worked_example_external_reference_every_stage_leaves_a_note():
    # reference 100 from another exchange; the trading book's best ask has dropped to 98.6
    p = params(minimum_spread="0.012")
    book = BookTop(best_bid=D("98.2"), best_ask=D("98.6"))
    rules = MarketRules(tick_size=D("0.01"), step_size=D("0.01"), min_amount=D("0.01"), min_notional=D(10))
    proposals, notes = build_proposals(p, D(100), book, rules, Budget(base=D("1.05"), quote=D(200)),
                                       D("1.05"), D(200))
    # bid L0 98.8 (minimum spread) costs 98.8988; L1 shrinks to floor(101.1012/98.5985) = 1.02; L2 unfunded.
    # ask L1 shrinks to 0.05 (5.125 notional < 10). Bid L0 98.80 >= best ask 98.6: dropped.
    assert quotes(proposals) == [("buy", 1, D("98.50"), D("1.02")), ("sell", 0, D("102.00"), D("1"))]
    assert notes == [
        "minimum_spread 0.012: moved buy L0 out to the minimum",
        "budget: quote left 101.1012 shrinks buy L1 from 1.5 to 1.02",
        "budget: not enough quote for buy level(s) 2",
        "budget: base left 0.05 shrinks sell L1 from 1.5 to 0.05",
        "budget: not enough base for sell level(s) 2",
        "min notional: sell L1 0.05 @ 102.5 = 5.125 is below 10, dropped",
        "crossing: buy L0 1 @ 98.8 >= best ask 98.6, dropped (post-only)",
    ]


def test_types_are_checked():
    with pytest.raises(TypeError):
        MarketRules(tick_size=0.01, step_size=D("0.01"), min_amount=D(0), min_notional=D(0))
    with pytest.raises(ValueError):
        MarketRules(tick_size=D(0), step_size=D("0.01"), min_amount=D(0), min_notional=D(0))
    with pytest.raises(ValueError):
        Proposal("bid", D(1), D(1), 0)
    with pytest.raises(TypeError):
        Budget(base=1.0, quote=D(1))


def test_the_shared_pipeline_gives_what_every_stage_gives_for_any_budget():
    """build_proposals shares its unbudgeted pipeline across orders with the same parameters and rules on the same
    book, used only where the order's budget fits the whole ladder; whatever the budget (rich, exactly the ladder's
    cost, a hair short of it, nothing), its answer is every_stage's, proposals and notes alike."""
    from domain.strategy.ladder import every_stage
    rng = random.Random(11)
    for over in ({}, {"minimum_spread": "0.015"}, {"order_levels": 1}, {"post_only": False}):
        p = params(**over)
        for _ in range(40):
            ref = D(rng.randint(9_000, 11_000)) / 100
            book = BookTop(best_bid=ref - D("0.5"), best_ask=ref + D("0.5"), last_trade=ref)
            full, _ = every_stage(p, ref, book, RULES, RICH, D(10), D(1000))
            bid_cost = sum(q.amount * (q.price * (1 + RULES.maker_fee)) for q in full if q.side == "buy")
            ask_cost = sum(q.amount for q in full if q.side == "sell")
            hair = D("0.0001")
            for budget in (RICH, Budget(base=ask_cost, quote=bid_cost), Budget(base=ask_cost - hair, quote=bid_cost),
                           Budget(base=ask_cost, quote=bid_cost - hair), Budget(base=D(0), quote=D(0)),
                           Budget(base=D(rng.randint(0, 400)) / 100, quote=D(rng.randint(0, 40_000)) / 100)):
                assert build_proposals(p, ref, book, RULES, budget, D(10), D(1000)) == \
                    every_stage(p, ref, book, RULES, budget, D(10), D(1000)), (over, ref, budget)
