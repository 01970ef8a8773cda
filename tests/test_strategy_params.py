"""Strategy parameters: pair defaults + per-order overrides, validated with every problem named."""
from decimal import Decimal as D

import pytest

from domain.strategy.params import PRICE_SOURCES, StrategyParams, StrategyParamsError, parse_params

PAIR_DEFAULTS = {
    "bid_spread": "0.002",
    "ask_spread": "0.003",
    "order_amount": "0.5",
    "order_levels": 3,
    "order_level_spread": "0.001",
    "order_level_amount": "0.1",
    "order_refresh_time": 15,
}


def problems_of(defaults, overrides) -> list[str]:
    with pytest.raises(StrategyParamsError) as info:
        parse_params(defaults, overrides)
    return info.value.problems


def test_defaults_alone_and_documented_fallbacks():
    p = parse_params(PAIR_DEFAULTS, {})
    assert (p.bid_spread, p.ask_spread, p.order_amount) == (D("0.002"), D("0.003"), D("0.5"))
    assert (p.order_levels, p.order_level_spread, p.order_level_amount) == (3, D("0.001"), D("0.1"))
    assert p.order_refresh_time == 15.0
    # fallbacks for everything the pair does not set
    assert p.minimum_spread == D(0)
    assert p.price_ceiling == D(0) and p.price_floor == D(0)      # off
    assert p.inventory_skew_enabled is False
    assert p.inventory_target_base_pct == D("0.5")
    assert p.inventory_range_multiplier == D(1)
    assert p.order_refresh_tolerance_pct == D(0)
    assert p.max_order_age == 1800.0 and p.filled_order_delay == 60.0
    assert p.hanging_orders_enabled is False and p.hanging_orders_cancel_pct == D("0.1")
    assert p.price_source == "mid" and p.price_source_exchange is None
    assert p.post_only is True


def test_overrides_win_over_pair_defaults():
    p = parse_params(PAIR_DEFAULTS, {"bid_spread": "0.0015", "order_levels": 5, "inventory_skew_enabled": True,
                                     "inventory_target_base_pct": "0.3", "price_source": "last_trade",
                                     "price_source_exchange": "okx", "post_only": False})
    assert p.bid_spread == D("0.0015")
    assert p.ask_spread == D("0.003")                # still the pair's
    assert p.order_levels == 5
    assert p.inventory_skew_enabled is True and p.inventory_target_base_pct == D("0.3")
    assert p.price_source == "last_trade" and p.price_source_exchange == "okx"
    assert p.post_only is False


def test_every_invalid_value_is_reported_with_its_field_name():
    bad = {
        "bid_spread": "0",                    # spreads > 0
        "ask_spread": "-0.01",
        "order_amount": "0",
        "order_levels": 0,                    # levels >= 1
        "order_level_spread": "-0.001",
        "minimum_spread": "1",
        "inventory_target_base_pct": "1.5",
        "inventory_range_multiplier": "0",
        "order_refresh_time": "0.5",          # refresh >= 1 s
        "max_order_age": 0,
        "filled_order_delay": -1,
        "order_refresh_tolerance_pct": "2",
        "hanging_orders_cancel_pct": "0",
        "price_source": "vwap",
        "post_only": "yes",
        "hanging_orders_enabled": 1,
        "price_source_exchange": 42,
    }
    problems = problems_of({}, bad)
    for name in bad:
        assert any(p.startswith(name + ":") for p in problems), (name, problems)
    assert len(problems) == len(bad)
    text = str(StrategyParamsError(problems))
    assert "order_refresh_time: 0.5 must be >= 1 second" in text
    assert f"price_source: 'vwap' is not one of {', '.join(PRICE_SOURCES)}" in problems


def test_floats_are_refused_for_decimal_and_integer_fields():
    problems = problems_of(PAIR_DEFAULTS, {"bid_spread": 0.001, "order_amount": 0.1, "order_levels": 2.0})
    assert len(problems) == 3
    assert problems[0].startswith("bid_spread: 0.001 is a float")
    assert 'decimal string, e.g. "0.001"' in problems[0]
    assert problems[1].startswith("order_amount: 0.1 is a float")
    assert problems[2] == "order_levels: 2.0 is not a whole number"


def test_durations_may_be_floats_or_strings_and_integers_may_be_strings():
    p = parse_params(PAIR_DEFAULTS, {"order_refresh_time": 2.5, "max_order_age": "600", "order_levels": "4"})
    assert p.order_refresh_time == 2.5 and p.max_order_age == 600.0 and p.order_levels == 4
    assert parse_params(PAIR_DEFAULTS, {"order_refresh_time": 1}).order_refresh_time == 1.0   # the minimum


def test_unknown_keys_are_refused_in_defaults_and_overrides():
    problems = problems_of({**PAIR_DEFAULTS, "max_spread": "0.1"}, {"bid_sprad": "0.01"})
    assert problems[0].startswith("max_spread: unknown parameter (in defaults)")
    assert problems[1] == "bid_sprad: unknown parameter (in overrides); did you mean 'bid_spread'?"


def test_required_fields_missing():
    assert problems_of({}, {}) == ["bid_spread: required", "ask_spread: required", "order_amount: required"]


def test_not_a_number_and_nan_are_refused():
    problems = problems_of(PAIR_DEFAULTS, {"bid_spread": "abc", "ask_spread": "NaN", "order_amount": None})
    assert [p.split(":")[0] for p in problems] == ["bid_spread", "ask_spread", "order_amount"]
    assert "not finite" in problems[1]


def test_percent_typed_where_a_fraction_is_expected_is_caught():
    problems = problems_of(PAIR_DEFAULTS, {"bid_spread": "1", "inventory_target_base_pct": "50"})
    assert problems[0] == ("bid_spread: 1 must be > 0 and at most 0.1 (10 %) (bid_spread is a fraction: "
                           "0.01 = 1 %)")
    assert "0.5 = 50 %" in problems[1]


def test_ceiling_and_floor_off_when_zero_or_negative_and_must_not_cross():
    assert parse_params(PAIR_DEFAULTS, {"price_ceiling": "-1", "price_floor": "0"}).price_ceiling == D(-1)
    assert parse_params(PAIR_DEFAULTS, {"price_ceiling": "110", "price_floor": "90"}).price_floor == D(90)
    assert parse_params(PAIR_DEFAULTS, {"price_ceiling": "0", "price_floor": "90"}).price_floor == D(90)
    assert problems_of(PAIR_DEFAULTS, {"price_ceiling": "90", "price_floor": "90"}) == [
        "price_ceiling: 90 must be above price_floor 90 (or <= 0 to turn it off)"]


def test_ladder_must_stay_priceable_and_sized():
    problems = problems_of(PAIR_DEFAULTS, {"bid_spread": "0.1", "order_levels": 10, "order_level_spread": "0.1",
                                           "order_level_amount": "-0.0556"})
    assert problems == [
        "order_level_spread: bid_spread + (order_levels-1)*order_level_spread = 1 must be < 1 "
        "(the outermost bid would be priced at or below zero)",
        "order_level_amount: level 9 amount would be -0.0004; every level's amount must be > 0",
    ]
    # a negative level amount that keeps every level positive is fine (hummingbot allows it)
    assert parse_params(PAIR_DEFAULTS, {"order_level_amount": "-0.2"}).level_amount(2) == D("0.1")


def test_empty_price_source_exchange_means_this_exchange():
    assert parse_params(PAIR_DEFAULTS, {"price_source_exchange": "  "}).price_source_exchange is None


def test_negative_tolerance_is_allowed_and_means_always_refresh():
    assert parse_params(PAIR_DEFAULTS, {"order_refresh_tolerance_pct": "-1"}).order_refresh_tolerance_pct == D(-1)


def test_as_dict_round_trips():
    p = parse_params(PAIR_DEFAULTS, {"price_ceiling": "123.45", "hanging_orders_enabled": True})
    raw = p.as_dict()
    assert raw["price_ceiling"] == "123.45" and raw["bid_spread"] == "0.002"
    assert parse_params(raw, {}) == p


def test_direct_construction_is_validated_too():
    with pytest.raises(StrategyParamsError) as info:
        StrategyParams(bid_spread=0.01, ask_spread=D("0.01"), order_amount=D(1))   # float
    assert info.value.problems[0].startswith("bid_spread:")
    with pytest.raises(StrategyParamsError) as info:
        StrategyParams(bid_spread=D("0.01"), ask_spread=D("0.01"), order_amount=D(1), order_levels=0)
    assert info.value.problems == ["order_levels: 0 must be between 1 and 50"]


@pytest.mark.parametrize("overrides,bound", [
    ({"ask_spread": "0.11"}, "at most 0.1 (10 %)"), ({"order_levels": "51"}, "between 1 and 50"),
    ({"order_level_spread": "0.2"}, "at most 0.1 (10 %)"), ({"order_refresh_time": "604801"}, "one week"),
])
def test_values_beyond_sane_bounds_are_refused_with_the_bound(overrides, bound):
    problems = problems_of(PAIR_DEFAULTS, overrides)
    assert len(problems) == 1 and bound in problems[0], problems


@pytest.mark.parametrize("text,value", [("true", True), ("TRUE", True), ("false", False), ("False", False)])
def test_booleans_may_be_given_as_text_like_the_command_line_does(text, value):
    assert parse_params(PAIR_DEFAULTS, {"post_only": text}).post_only is value


def test_other_text_is_not_a_boolean():
    assert problems_of(PAIR_DEFAULTS, {"post_only": "yes"}) == ["post_only: 'yes' must be true or false"]
