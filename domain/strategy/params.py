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

Nothing here does I/O.
"""
from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from domain.money import BadAmount, fmt, to_decimal

PRICE_SOURCES = ("mid", "best_bid", "best_ask", "last_trade", "last_own_fill")

ZERO = Decimal(0)
ONE = Decimal(1)


class StrategyParamsError(ValueError):
    """Invalid strategy parameters; ``problems`` names the field in every entry."""

    def __init__(self, problems: list[str]):
        super().__init__("invalid strategy parameters:\n  - " + "\n  - ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class StrategyParams:
    """One order's quoting parameters. Construct with :func:`parse_params`
    (or directly: ``__post_init__`` runs the same validation)."""

    # ladder (fractions of the reference price; base-asset amounts)
    bid_spread: Decimal                         # level-0 bid = ref * (1 - bid_spread); 0 < x < 1
    ask_spread: Decimal                         # level-0 ask = ref * (1 + ask_spread); 0 < x < 1
    order_amount: Decimal                       # base amount of level 0; > 0
    order_levels: int = 1                       # orders per side; >= 1
    order_level_spread: Decimal = Decimal("0.01")   # extra spread per level; >= 0
    order_level_amount: Decimal = ZERO          # base amount added per level (may be negative)
    minimum_spread: Decimal = ZERO              # no order closer than this to ref; live orders closer are cancelled
    price_ceiling: Decimal = ZERO               # ref >= ceiling -> no buys; <= 0 = off
    price_floor: Decimal = ZERO                 # ref <= floor -> no sells; <= 0 = off
    # inventory skew (hummingbot formula, ladder.inventory_skew_ratios)
    inventory_skew_enabled: bool = False
    inventory_target_base_pct: Decimal = Decimal("0.5")   # target base share of the order's value; 0..1
    inventory_range_multiplier: Decimal = ONE   # width of the skew range in "ladders"; > 0
    # refresh cycle (seconds)
    order_refresh_time: float = 30.0            # minimum life of a ladder; >= 1
    order_refresh_tolerance_pct: Decimal = ZERO  # keep orders whose price moved <= this; < 0 = always replace
    max_order_age: float = 1800.0               # any older non-hanging order forces a refresh; >= 1
    filled_order_delay: float = 60.0            # after a fill, wait this long before quoting again; >= 0
    # hanging orders
    hanging_orders_enabled: bool = False
    hanging_orders_cancel_pct: Decimal = Decimal("0.1")   # cancel a hanging order this far from ref; 0 < x <= 1
    # price source
    price_source: str = "mid"                   # one of PRICE_SOURCES
    price_source_exchange: str | None = None    # None = the exchange the order trades on
    # order type
    post_only: bool = True                      # maker-only orders; crossing proposals are dropped

    def __post_init__(self) -> None:
        problems = _type_problems(self) or _cross_problems({f.name: getattr(self, f.name) for f in fields(self)})
        if problems:
            raise StrategyParamsError(problems)

    def level_amount(self, level: int) -> Decimal:
        return self.order_amount + level * self.order_level_amount

    def as_dict(self) -> dict[str, Any]:
        """JSON/TOML-safe form (decimals as strings); ``parse_params(p.as_dict(), {}) == p``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = fmt(value) if isinstance(value, Decimal) else value
        return out


# --- field kinds --------------------------------------------------------------

_DECIMAL = "decimal"
_INT = "int"
_SECONDS = "seconds"
_BOOL = "bool"
_CHOICE = "choice"
_OPT_STR = "optional_str"

_KIND: dict[str, str] = {
    "bid_spread": _DECIMAL, "ask_spread": _DECIMAL, "order_amount": _DECIMAL,
    "order_levels": _INT, "order_level_spread": _DECIMAL, "order_level_amount": _DECIMAL,
    "minimum_spread": _DECIMAL, "price_ceiling": _DECIMAL, "price_floor": _DECIMAL,
    "inventory_skew_enabled": _BOOL, "inventory_target_base_pct": _DECIMAL,
    "inventory_range_multiplier": _DECIMAL,
    "order_refresh_time": _SECONDS, "order_refresh_tolerance_pct": _DECIMAL,
    "max_order_age": _SECONDS, "filled_order_delay": _SECONDS,
    "hanging_orders_enabled": _BOOL, "hanging_orders_cancel_pct": _DECIMAL,
    "price_source": _CHOICE, "price_source_exchange": _OPT_STR, "post_only": _BOOL,
}
_REQUIRED = ("bid_spread", "ask_spread", "order_amount")
# Sane bounds: a value beyond them is far more likely a typo (1 for 1 %) than a strategy.
MAX_SPREAD = Decimal("0.1")
MAX_LEVELS = 50
MAX_SECONDS = 7 * 86400
_PYTYPE = {_DECIMAL: Decimal, _INT: int, _SECONDS: float, _BOOL: bool, _CHOICE: str}


def _convert(name: str, value: Any) -> Any:
    """Convert one raw value to its field type; raise ValueError with a message naming the field."""
    kind = _KIND[name]
    if kind == _DECIMAL:
        if isinstance(value, float):
            raise ValueError(f"{name}: {value!r} is a float; write it as a decimal string, e.g. \"{value}\"")
        try:
            return to_decimal(value, field=name)
        except BadAmount as exc:
            raise ValueError(str(exc)) from None
    if kind == _INT:
        if isinstance(value, bool) or isinstance(value, float):
            raise ValueError(f"{name}: {value!r} is not a whole number")
        if isinstance(value, int):
            return value
        try:
            number = to_decimal(value, field=name)
        except BadAmount as exc:
            raise ValueError(str(exc)) from None
        if number != number.to_integral_value():
            raise ValueError(f"{name}: {value!r} is not a whole number")
        return int(number)
    if kind == _SECONDS:
        if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
            raise ValueError(f"{name}: {value!r} is not a number of seconds")
        try:
            seconds = float(value)
        except ValueError:
            raise ValueError(f"{name}: {value!r} is not a number of seconds") from None
        if not math.isfinite(seconds):
            raise ValueError(f"{name}: {value!r} is not finite")
        return seconds
    if kind == _BOOL:
        # The command line gives text: "true"/"false" (any case) is the same as TOML's unquoted booleans.
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if not isinstance(value, bool):
            raise ValueError(f"{name}: {value!r} must be true or false")
        return value
    if kind == _CHOICE:
        if value not in PRICE_SOURCES:
            raise ValueError(f"{name}: {value!r} is not one of {', '.join(PRICE_SOURCES)}")
        return value
    # optional string
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name}: {value!r} must be an exchange name or null")
    return value.strip() or None


def _type_problems(params: StrategyParams) -> list[str]:
    """Direct construction: every field must already have its Python type (no floats for decimals)."""
    problems = []
    for name, kind in _KIND.items():
        value = getattr(params, name)
        if kind == _OPT_STR:
            ok = value is None or (isinstance(value, str) and value.strip() != "")
        elif kind == _SECONDS:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        elif kind == _INT:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind == _DECIMAL:
            ok = isinstance(value, Decimal) and value.is_finite()
        else:
            ok = isinstance(value, _PYTYPE[kind])
        if kind == _CHOICE and ok and value not in PRICE_SOURCES:
            ok = False
        if not ok:
            problems.append(f"{name}: {value!r} is not a valid {kind} value")
    return problems


def _cross_problems(v: Mapping[str, Any]) -> list[str]:
    """Range and cross-field checks on converted values; fields missing from ``v`` are skipped."""
    problems: list[str] = []

    def has(*names: str) -> bool:
        return all(n in v for n in names)

    def frac_hint(name: str) -> str:
        return f" ({name} is a fraction: 0.01 = 1 %)"

    for name in ("bid_spread", "ask_spread"):
        if has(name) and not (ZERO < v[name] <= MAX_SPREAD):
            problems.append(f"{name}: {fmt(v[name])} must be > 0 and at most {fmt(MAX_SPREAD)} (10 %)"
                            + frac_hint(name))
    if has("order_amount") and v["order_amount"] <= 0:
        problems.append(f"order_amount: {fmt(v['order_amount'])} must be > 0")
    if has("order_levels") and not (1 <= v["order_levels"] <= MAX_LEVELS):
        problems.append(f"order_levels: {v['order_levels']} must be between 1 and {MAX_LEVELS}")
    if has("order_level_spread") and not (ZERO <= v["order_level_spread"] <= MAX_SPREAD):
        problems.append(f"order_level_spread: {fmt(v['order_level_spread'])} must be >= 0 and at most "
                        f"{fmt(MAX_SPREAD)} (10 %)" + frac_hint("order_level_spread"))
    if has("minimum_spread") and not (ZERO <= v["minimum_spread"] <= MAX_SPREAD):
        problems.append(f"minimum_spread: {fmt(v['minimum_spread'])} must be >= 0 and at most {fmt(MAX_SPREAD)} "
                        f"(10 %)" + frac_hint("minimum_spread"))
    for name in ("order_refresh_time", "max_order_age", "filled_order_delay"):
        if has(name) and v[name] > MAX_SECONDS:
            problems.append(f"{name}: {v[name]:g} must be at most {MAX_SECONDS} seconds (one week)")
    if has("inventory_target_base_pct") and not (ZERO <= v["inventory_target_base_pct"] <= ONE):
        problems.append(f"inventory_target_base_pct: {fmt(v['inventory_target_base_pct'])} must be between 0 and 1"
                        + frac_hint("inventory_target_base_pct").replace("0.01 = 1 %", "0.5 = 50 %"))
    if has("inventory_range_multiplier") and v["inventory_range_multiplier"] <= 0:
        problems.append(f"inventory_range_multiplier: {fmt(v['inventory_range_multiplier'])} must be > 0")
    if has("order_refresh_time") and v["order_refresh_time"] < 1:
        problems.append(f"order_refresh_time: {v['order_refresh_time']} must be >= 1 second")
    if has("max_order_age") and v["max_order_age"] < 1:
        problems.append(f"max_order_age: {v['max_order_age']} must be >= 1 second")
    if has("filled_order_delay") and v["filled_order_delay"] < 0:
        problems.append(f"filled_order_delay: {v['filled_order_delay']} must be >= 0 seconds")
    if has("order_refresh_tolerance_pct") and v["order_refresh_tolerance_pct"] > ONE:
        problems.append(f"order_refresh_tolerance_pct: {fmt(v['order_refresh_tolerance_pct'])} must be <= 1"
                        + frac_hint("order_refresh_tolerance_pct") + "; a negative value means always replace")
    if has("hanging_orders_cancel_pct") and not (ZERO < v["hanging_orders_cancel_pct"] <= ONE):
        problems.append(f"hanging_orders_cancel_pct: {fmt(v['hanging_orders_cancel_pct'])} must be > 0 and <= 1"
                        + frac_hint("hanging_orders_cancel_pct"))
    # the whole ladder must be priceable and sized
    if has("bid_spread", "order_levels", "order_level_spread") and v["order_levels"] >= 1 and ZERO < v["bid_spread"]:
        outer = v["bid_spread"] + (v["order_levels"] - 1) * v["order_level_spread"]
        if outer >= ONE and v["bid_spread"] < ONE:
            problems.append(f"order_level_spread: bid_spread + (order_levels-1)*order_level_spread = {fmt(outer)} "
                            "must be < 1 (the outermost bid would be priced at or below zero)")
    if has("order_amount", "order_levels", "order_level_amount") and v["order_levels"] >= 1 and v["order_amount"] > 0:
        last = v["order_amount"] + (v["order_levels"] - 1) * v["order_level_amount"]
        if last <= 0:
            problems.append(f"order_level_amount: level {v['order_levels'] - 1} amount would be {fmt(last)}; "
                            "every level's amount must be > 0")
    if has("price_ceiling", "price_floor") and v["price_ceiling"] > 0 and v["price_floor"] > 0 \
            and v["price_ceiling"] <= v["price_floor"]:
        problems.append(f"price_ceiling: {fmt(v['price_ceiling'])} must be above price_floor "
                        f"{fmt(v['price_floor'])} (or <= 0 to turn it off)")
    return problems


def parse_params(defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> StrategyParams:
    """Merge the pair's ``defaults`` with the order's ``overrides`` (overrides win),
    convert and validate. Raises :class:`StrategyParamsError` listing every
    problem, each starting with the field name: unknown keys (in either
    mapping), missing required fields (bid_spread, ask_spread, order_amount),
    floats given for decimal fields, out-of-range values and inconsistent
    combinations."""
    problems: list[str] = []
    merged: dict[str, Any] = {}
    for origin, mapping in (("defaults", defaults), ("overrides", overrides)):
        for key, value in mapping.items():
            if key not in _KIND:
                hint = difflib.get_close_matches(str(key), list(_KIND), n=1)
                problems.append(f"{key}: unknown parameter (in {origin})"
                                + (f"; did you mean {hint[0]!r}?" if hint else ""))
                continue
            merged[key] = value
    converted: dict[str, Any] = {}
    for name in _KIND:
        if name not in merged:
            if name in _REQUIRED:
                problems.append(f"{name}: required")
            continue
        try:
            converted[name] = _convert(name, merged[name])
        except ValueError as exc:
            problems.append(str(exc))
    problems.extend(_cross_problems(converted))
    if problems:
        raise StrategyParamsError(problems)
    return StrategyParams(**converted)
