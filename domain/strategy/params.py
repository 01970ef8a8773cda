"""Strategy parameters (issue #5, stage 8): the pair's defaults from config plus
per-order overrides, converted and validated, with every problem listed at once.

Units — read this before writing a config:

* Every spread, percentage and share below is a **fraction**, not a percent:
  ``bid_spread = "0.001"`` is 0.1 %, ``inventory_target_base_pct = "0.5"`` is
  50 %, ``hanging_orders_cancel_pct = "0.1"`` is 10 %. (Hummingbot types
  percents and divides by 100; mmflow does not. The names ending in ``_pct`` are
  kept from hummingbot so operators recognise them; their values are fractions.)
  Ranges are checked, so the common mistake of typing ``50`` for 50 % is refused.
* Amounts, spreads and prices are decimal strings (``"0.01"``) or integers;
  a float is refused because it has already lost precision.
* Durations are seconds and may be integers, decimal strings or floats.
* ``price_ceiling`` / ``price_floor`` of 0 or less mean "off" (never NaN, never
  "block everything" as in Mr.Market, mrmarket-flow.md §11.7).

Each field is declared once below with its conversion and its bounds (pydantic v2, see
domain/config_schema.py); the checks between fields are ``StrategyParams.checks``.
Nothing here does I/O.
"""
from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, PlainValidator, ValidationError, ValidationInfo

from domain.config_schema import Issue, Section, problem, problems_of
from domain.config_values import amount_problem
from domain.money import BadAmount, fmt, to_decimal

PRICE_SOURCES = ("mid", "best_bid", "best_ask", "last_trade", "last_own_fill")

ZERO = Decimal(0)
ONE = Decimal(1)
# Sane bounds: a value beyond them is far more likely a typo (1 for 1 %) than a strategy.
MAX_SPREAD = Decimal("0.1")
MAX_LEVELS = 50
MAX_SECONDS = 7 * 86400


class StrategyParamsError(ValueError):
    """Invalid strategy parameters; ``problems`` names the field in every entry."""

    def __init__(self, problems: list[str]):
        super().__init__("invalid strategy parameters:\n  - " + "\n  - ".join(problems))
        self.problems = list(problems)


# --- conversions: config text, TOML values and command-line text to the field's type ----------------------

def _sane(value: Any) -> None:
    """Numeric text or integers beyond the config's amount bounds (1e999999999 would overflow the checks)."""
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        try:
            number = Decimal(str(value).strip())
        except ArithmeticError:
            return
        if number.is_finite() and (text := amount_problem(number, value)):
            raise problem(text)


def _decimal(value: Any) -> Decimal:
    if isinstance(value, float):
        raise problem(f"{value!r} is a float; write it as a decimal string, e.g. \"{value}\"")
    try:
        number = to_decimal(value, field="")
    except BadAmount as exc:
        raise problem(str(exc).removeprefix(": ")) from None
    _sane(value if not isinstance(value, Decimal) else str(value))
    return number


def _whole(value: Any) -> int:
    if isinstance(value, (bool, float)):
        raise problem(f"{value!r} is not a whole number")
    _sane(value)
    if isinstance(value, int):
        return value
    number = _decimal(value)
    if number != number.to_integral_value():
        raise problem(f"{value!r} is not a whole number")
    return int(number)


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise problem(f"{value!r} is not a number of seconds")
    _sane(value)
    try:
        number = float(value)
    except ValueError:
        raise problem(f"{value!r} is not a number of seconds") from None
    if not math.isfinite(number):
        raise problem(f"{value!r} is not finite")
    return number


def _switch(value: Any) -> bool:
    # The command line gives text: "true"/"false" (any case) is the same as TOML's unquoted booleans.
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if not isinstance(value, bool):
        raise problem(f"{value!r} must be true or false")
    return value


def _price_source(value: Any) -> str:
    if value not in PRICE_SOURCES:
        raise problem(f"{value!r} is not one of {', '.join(PRICE_SOURCES)}")
    return value


def _exchange_name(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise problem(f"{value!r} must be an exchange name or null")
    return value.strip() or None


def _bound(ok: Callable[[Any], bool], says: Callable[[Any, str], str]) -> AfterValidator:
    """Refuse a converted value ``ok`` rejects; ``says(value, field name)`` is the problem."""
    def check(value: Any, info: ValidationInfo) -> Any:
        if not ok(value):
            raise problem(says(value, info.field_name))
        return value
    return AfterValidator(check)


def _fraction(name: str, example: str = "0.01 = 1 %") -> str:
    return f" ({name} is a fraction: {example})"


Dec = Annotated[Decimal, PlainValidator(_decimal)]
Positive = Annotated[Dec, _bound(lambda v: v > 0, lambda v, n: f"{fmt(v)} must be > 0")]
Spread = Annotated[Dec, _bound(lambda v: ZERO < v <= MAX_SPREAD, lambda v, n: (
    f"{fmt(v)} must be > 0 and at most {fmt(MAX_SPREAD)} (10 %)" + _fraction(n)))]
ExtraSpread = Annotated[Dec, _bound(lambda v: ZERO <= v <= MAX_SPREAD, lambda v, n: (
    f"{fmt(v)} must be >= 0 and at most {fmt(MAX_SPREAD)} (10 %)" + _fraction(n)))]
Share = Annotated[Dec, _bound(lambda v: ZERO < v <= ONE, lambda v, n: f"{fmt(v)} must be > 0 and <= 1" + _fraction(n))]
Seconds = Annotated[float, PlainValidator(_seconds), _bound(lambda v: v <= MAX_SECONDS, lambda v, n: (
    f"{v:g} must be at most {MAX_SECONDS} seconds (one week)"))]
Refresh = Annotated[Seconds, _bound(lambda v: v >= 1, lambda v, n: f"{v} must be >= 1 second")]
Switch = Annotated[bool, PlainValidator(_switch)]


class StrategyParams(Section):
    """One order's quoting parameters. Build with :func:`parse_params`, or directly (the same checks run;
    StrategyParamsError lists the problems)."""

    @classmethod
    def missing_text(cls, name: str) -> str:
        return "required"

    # ladder (fractions of the reference price; base-asset amounts)
    bid_spread: Spread                          # level-0 bid = ref * (1 - bid_spread); 0 < x <= 0.1
    ask_spread: Spread                          # level-0 ask = ref * (1 + ask_spread); 0 < x <= 0.1
    order_amount: Positive                      # base amount of level 0; > 0
    order_levels: Annotated[int, PlainValidator(_whole), _bound(lambda v: 1 <= v <= MAX_LEVELS, lambda v, n: (
        f"{v} must be between 1 and {MAX_LEVELS}"))] = 1                          # orders per side
    order_level_spread: ExtraSpread = Decimal("0.01")   # extra spread per level
    order_level_amount: Dec = ZERO              # base amount added per level (may be negative)
    minimum_spread: ExtraSpread = ZERO          # no order closer than this to ref; live orders closer are cancelled
    price_ceiling: Dec = ZERO                   # ref >= ceiling -> no buys; <= 0 = off
    price_floor: Dec = ZERO                     # ref <= floor -> no sells; <= 0 = off
    # inventory skew (hummingbot formula, ladder.inventory_skew_ratios)
    inventory_skew_enabled: Switch = False
    inventory_target_base_pct: Annotated[Dec, _bound(lambda v: ZERO <= v <= ONE, lambda v, n: (
        f"{fmt(v)} must be between 0 and 1" + _fraction(n, "0.5 = 50 %")))] = Decimal("0.5")  # base share target
    inventory_range_multiplier: Positive = ONE  # width of the skew range in "ladders"
    # refresh cycle (seconds)
    order_refresh_time: Refresh = 30.0          # minimum life of a ladder
    order_refresh_tolerance_pct: Annotated[Dec, _bound(lambda v: v <= ONE, lambda v, n: (
        f"{fmt(v)} must be <= 1" + _fraction(n) + "; a negative value means always replace"))] = ZERO
    #                                             keep orders whose price moved <= this; < 0 = always replace
    max_order_age: Refresh = 1800.0             # any older non-hanging order forces a refresh
    filled_order_delay: Annotated[Seconds, _bound(lambda v: v >= 0, lambda v, n: f"{v} must be >= 0 seconds")] = 60.0
    #                                             after a fill, wait this long before quoting again
    # hanging orders
    hanging_orders_enabled: Switch = False
    hanging_orders_cancel_pct: Share = Decimal("0.1")   # cancel a hanging order this far from ref
    # price source
    price_source: Annotated[str, PlainValidator(_price_source)] = "mid"   # one of PRICE_SOURCES
    price_source_exchange: Annotated[str | None, PlainValidator(_exchange_name)] = None  # None: the order's own
    # order type
    post_only: Switch = True                    # maker-only orders; crossing proposals are dropped

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise StrategyParamsError(problems_of(exc)) from None

    # Only direct construction comes here: marked like pydantic's own __init__ (and RootModel's), validation
    # from data (model_validate, a [pairs.strategy] table) does not call it and keeps its ValidationError.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def checks(cls, v: dict[str, Any], data: dict[str, Any]) -> list[Issue]:
        """The whole ladder must be priceable and sized; ceiling above floor."""
        issues = []
        if {"bid_spread", "order_levels", "order_level_spread"} <= v.keys():
            outer = v["bid_spread"] + (v["order_levels"] - 1) * v["order_level_spread"]
            if outer >= ONE:
                issues.append(Issue(("order_level_spread",), f"bid_spread + (order_levels-1)*order_level_spread = "
                                    f"{fmt(outer)} must be < 1 (the outermost bid would be priced at or below zero)"))
        if {"order_amount", "order_levels", "order_level_amount"} <= v.keys():
            last = v["order_amount"] + (v["order_levels"] - 1) * v["order_level_amount"]
            if last <= 0:
                issues.append(Issue(("order_level_amount",), f"level {v['order_levels'] - 1} amount would be "
                                    f"{fmt(last)}; every level's amount must be > 0"))
        if {"price_ceiling", "price_floor"} <= v.keys() and v["price_ceiling"] > 0 and v["price_floor"] > 0 \
                and v["price_ceiling"] <= v["price_floor"]:
            issues.append(Issue(("price_ceiling",), f"{fmt(v['price_ceiling'])} must be above price_floor "
                                f"{fmt(v['price_floor'])} (or <= 0 to turn it off)"))
        return issues

    def level_amount(self, level: int) -> Decimal:
        return self.order_amount + level * self.order_level_amount

    def as_dict(self) -> dict[str, Any]:
        """JSON/TOML-safe form (decimals as strings); ``parse_params(p.as_dict(), {}) == p``."""
        return {name: fmt(value) if isinstance(value, Decimal) else value for name, value in self}

    def given(self) -> dict[str, Any]:
        """``as_dict()`` of the parameters that were given (not defaulted)."""
        return {name: value for name, value in self.as_dict().items() if name in self.model_fields_set}


def parse_params(defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> StrategyParams:
    """Merge the pair's ``defaults`` with the order's ``overrides`` (overrides win),
    convert and validate. Raises :class:`StrategyParamsError` listing every
    problem, each starting with the field name: unknown keys (in either
    mapping), missing required fields (bid_spread, ask_spread, order_amount),
    floats given for decimal fields, out-of-range values and inconsistent
    combinations."""
    problems: list[str] = []
    merged: dict[str, Any] = {}
    known = StrategyParams.model_fields
    for origin, mapping in (("defaults", defaults), ("overrides", overrides)):
        for key, value in mapping.items():
            if key not in known:
                hint = difflib.get_close_matches(str(key), list(known), n=1)
                problems.append(f"{key}: unknown parameter (in {origin})"
                                + (f"; did you mean {hint[0]!r}?" if hint else ""))
                continue
            merged[key] = value
    try:
        params = StrategyParams.model_validate(merged)
    except ValidationError as exc:
        problems.extend(problems_of(exc))
    if problems:
        raise StrategyParamsError(problems)
    return params
