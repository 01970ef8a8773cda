"""Payment rules for a market-making order, as pure functions.

Improves on Mr.Market (mrmarket-flow.md §3, §11):
- payments are tallied per asset; a fee asset equal to the base or quote asset
  is accounted as principal + fee, both of which must be covered;
- the market-making fee (a percentage from config) is computed, tracked and
  taken out of the principal, never ignored;
- the pair's minimum and maximum amounts are enforced on the principal.

Everything here is deterministic and free of I/O so every rule is testable
against worked examples.
"""
from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, Field, PlainValidator

from domain.config_schema import REPORTED, Abort, Issue, Load, Section, problem
from domain.config_values import Amount, Flag, Uuid, decimal_value, optional, seconds, show
from domain.money import ZERO, floor8, fmt
from domain.strategy.params import StrategyParams

HUNDRED = Decimal(100)


_PAIR_REQUIRED = ("id", "symbol", "exchange", "base_asset_id", "quote_asset_id")


def _symbol(value: Any) -> str:
    base, _, quote = value.partition("/") if isinstance(value, str) else ("", "", "")
    if not base or not quote:
        raise problem(f"must look like BASE/QUOTE, got {show(value)}")
    return value


def _account(value: Any) -> str:
    if not isinstance(value, str):
        raise problem(f"must be an [[exchanges]] id, got {show(value)}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise problem(f"must be text, got {show(value)}")
    return value


def _at_least_zero(value: Decimal) -> Decimal:
    if value < 0:
        raise problem("must be >= 0")
    return value


def _maximum(value: Decimal | None) -> Decimal | None:
    if value is not None and value <= 0:
        raise problem("must be > 0 (or left out for no maximum)")
    return value


Minimum = Annotated[Amount, AfterValidator(_at_least_zero)]
Maximum = Annotated[Decimal | None, optional(PlainValidator(decimal_value)), AfterValidator(_maximum)]
Text = Annotated[str, PlainValidator(_text)]


class PairRules(Section):
    """What a trading pair requires of a payment, and its strategy defaults: one ``[[pairs]]`` table."""

    pair_id: Uuid = Field(validation_alias="id")
    symbol: Annotated[str, PlainValidator(_symbol)]     # BASE/QUOTE
    exchange: Annotated[str, PlainValidator(_account)]  # the [[exchanges]] id it trades on
    base_asset_id: Uuid
    quote_asset_id: Uuid
    base_symbol: Text    # default: BASE of the symbol
    quote_symbol: Text   # default: QUOTE of the symbol
    enabled: Flag = True
    min_base_amount: Minimum = ZERO
    max_base_amount: Maximum = None
    min_quote_amount: Minimum = ZERO
    max_quote_amount: Maximum = None
    max_duration: Annotated[float | None, optional(seconds(1))] = None  # seconds an order runs before it exits
    strategy: StrategyParams | None = None  # [pairs.strategy]: defaults of its orders' parameters

    @classmethod
    def prepare(cls, data: dict[str, Any], load: Load) -> list[Issue]:
        missing = [key for key in _PAIR_REQUIRED if key not in data]
        if missing:
            raise Abort([Issue((), f"is missing {', '.join(missing)}")])
        if isinstance(data["symbol"], str):
            base, _, quote = data["symbol"].partition("/")
            data.setdefault("base_symbol", base)
            data.setdefault("quote_symbol", quote)
        else:
            data.setdefault("base_symbol", REPORTED)   # the symbol's own problem says it
            data.setdefault("quote_symbol", REPORTED)
        return []

    @classmethod
    def checks(cls, values: dict[str, Any], data: dict[str, Any]) -> list[Issue]:
        issues = []
        if "base_asset_id" in values and values.get("base_asset_id") == values.get("quote_asset_id"):
            issues.append(Issue((), "base and quote asset are the same"))
        for side in ("base", "quote"):
            low, high = values.get(f"min_{side}_amount"), values.get(f"max_{side}_amount")
            if low is not None and high is not None and high < low:
                issues.append(Issue((f"max_{side}_amount",), f"is below min_{side}_amount ({high} < {low})"))
        return issues


@dataclass(frozen=True)
class FeeOption:
    """One withdrawal fee offered by Mixin for an asset."""
    asset_id: str
    amount: Decimal
    priority: int | None = None


@dataclass(frozen=True)
class FeeRequirements:
    """Fees fixed when the order is created: what moving the funds to the exchange costs."""
    base_fee_asset_id: str
    base_fee_amount: Decimal
    quote_fee_asset_id: str
    quote_fee_amount: Decimal
    market_making_fee_percent: Decimal

    @property
    def market_making_fee_rate(self) -> Decimal:
        return self.market_making_fee_percent / HUNDRED


class FeeUnavailable(ValueError):
    pass


def choose_withdrawal_fee(asset_id: str, options: Iterable[FeeOption]) -> FeeOption:
    """Pick the fee the user pays: in the asset itself when Mixin offers it (one asset
    less for the user to hold), else the highest-priority option, else the first."""
    options = list(options)
    if not options:
        raise FeeUnavailable(f"Mixin offers no withdrawal fee for asset {asset_id}")
    for option in options:
        if option.amount < 0:
            raise FeeUnavailable(f"negative withdrawal fee {option.amount} for asset {asset_id}")
    same = [o for o in options if o.asset_id == asset_id]
    if same:
        return same[0]
    with_priority = [o for o in options if o.priority is not None]
    if with_priority:
        return max(with_priority, key=lambda o: o.priority)
    return options[0]


class Leg(str, enum.Enum):
    BASE = "base"
    QUOTE = "quote"
    BASE_FEE = "base_fee"
    QUOTE_FEE = "quote_fee"


def legs_for_asset(asset_id: str, pair: PairRules, fees: FeeRequirements) -> tuple[Leg, ...]:
    """Which legs a payment in `asset_id` pays for; empty means the asset is not part of the order."""
    legs = []
    if asset_id == pair.base_asset_id:
        legs.append(Leg.BASE)
    if asset_id == pair.quote_asset_id:
        legs.append(Leg.QUOTE)
    if asset_id == fees.base_fee_asset_id and fees.base_fee_amount > 0:
        legs.append(Leg.BASE_FEE)
    if asset_id == fees.quote_fee_asset_id and fees.quote_fee_amount > 0:
        legs.append(Leg.QUOTE_FEE)
    return tuple(legs)


class PaymentStatus(str, enum.Enum):
    INCOMPLETE = "incomplete"   # keep waiting (until the timeout)
    COMPLETE = "complete"       # every requirement covered
    REJECTED = "rejected"       # can never become acceptable: refund everything


@dataclass(frozen=True)
class PaymentBreakdown:
    """How the received totals split into principal, fees and surplus."""
    base_principal: Decimal
    quote_principal: Decimal
    base_market_making_fee: Decimal
    quote_market_making_fee: Decimal
    base_withdrawal_fee: Decimal
    quote_withdrawal_fee: Decimal
    surplus: Mapping[str, Decimal] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "base_principal": fmt(self.base_principal),
            "quote_principal": fmt(self.quote_principal),
            "base_market_making_fee": fmt(self.base_market_making_fee),
            "quote_market_making_fee": fmt(self.quote_market_making_fee),
            "base_withdrawal_fee": fmt(self.base_withdrawal_fee),
            "quote_withdrawal_fee": fmt(self.quote_withdrawal_fee),
            "surplus": {k: fmt(v) for k, v in sorted(self.surplus.items())},
        }


@dataclass(frozen=True)
class PaymentEvaluation:
    status: PaymentStatus
    reasons: tuple[str, ...]
    breakdown: PaymentBreakdown


def _principal_and_fee(available: Decimal, rate: Decimal) -> tuple[Decimal, Decimal]:
    """Split what is left after withdrawal fees into principal and market-making fee.

    principal = floor8(available / (1 + rate)); the fee takes the remainder so
    principal + fee == available exactly and fee >= rate * principal."""
    if available <= 0:
        return ZERO, ZERO
    principal = floor8(available / (1 + rate))
    return principal, available - principal


def evaluate_payment(totals: Mapping[str, Decimal], pair: PairRules,
                     fees: FeeRequirements) -> PaymentEvaluation:
    """Decide whether the per-asset `totals` received pay for the order."""
    fee_need: dict[str, Decimal] = {}
    fee_need[fees.base_fee_asset_id] = fee_need.get(fees.base_fee_asset_id, ZERO) + fees.base_fee_amount
    fee_need[fees.quote_fee_asset_id] = fee_need.get(fees.quote_fee_asset_id, ZERO) + fees.quote_fee_amount
    rate = fees.market_making_fee_rate

    def got(asset_id: str) -> Decimal:
        return totals.get(asset_id, ZERO)

    missing: list[str] = []
    rejected: list[str] = []
    principals: dict[str, tuple[Decimal, Decimal]] = {}
    for role, asset_id, symbol, low, high in (
        ("base", pair.base_asset_id, pair.base_symbol, pair.min_base_amount, pair.max_base_amount),
        ("quote", pair.quote_asset_id, pair.quote_symbol, pair.min_quote_amount, pair.max_quote_amount),
    ):
        fee_here = fee_need.get(asset_id, ZERO)
        principal, mm_fee = _principal_and_fee(got(asset_id) - fee_here, rate)
        principals[role] = (principal, mm_fee)
        if got(asset_id) < fee_here:
            missing.append(f"{role} {symbol}: withdrawal fee {fmt(fee_here)} not covered "
                           f"(received {fmt(got(asset_id))})")
        elif principal <= 0 or principal < low:
            floor = f"minimum {fmt(low)}" if low > 0 else "more than zero"
            missing.append(f"{role} {symbol}: principal {fmt(principal)} below {floor}")
        if high is not None and principal > high:
            rejected.append(f"{role} {symbol}: principal {fmt(principal)} above the pair maximum {fmt(high)}")

    surplus: dict[str, Decimal] = {}
    principal_assets = {pair.base_asset_id, pair.quote_asset_id}
    for asset_id, need in fee_need.items():
        if asset_id in principal_assets:
            continue
        if got(asset_id) < need:
            missing.append(f"withdrawal fee asset {asset_id}: need {fmt(need)}, received {fmt(got(asset_id))}")
        elif got(asset_id) > need:
            surplus[asset_id] = got(asset_id) - need

    breakdown = PaymentBreakdown(
        base_principal=principals["base"][0],
        quote_principal=principals["quote"][0],
        base_market_making_fee=principals["base"][1],
        quote_market_making_fee=principals["quote"][1],
        base_withdrawal_fee=fees.base_fee_amount,
        quote_withdrawal_fee=fees.quote_fee_amount,
        surplus=surplus,
    )
    if rejected:
        return PaymentEvaluation(PaymentStatus.REJECTED, tuple(rejected), breakdown)
    if missing:
        return PaymentEvaluation(PaymentStatus.INCOMPLETE, tuple(missing), breakdown)
    return PaymentEvaluation(PaymentStatus.COMPLETE, (), breakdown)


def gross_of(principal: Decimal, rate: Decimal) -> Decimal:
    """What to send so that ``principal`` remains after the market-making fee: principal × (1 + rate), the
    fee rounded up to the 8th decimal so floor8(gross / (1 + rate)) gives back the principal."""
    gross = principal * (1 + rate)
    gross_8 = floor8(gross)
    if gross_8 < gross:
        gross_8 += Decimal("0.00000001")
    return gross_8


def required_payment(pair: PairRules, fees: FeeRequirements, base_principal: Decimal,
                     quote_principal: Decimal) -> dict[str, Decimal]:
    """Per-asset amounts a user must send for the given principals (what an invoice shows).

    The inverse of evaluate_payment: paying exactly this is COMPLETE with these principals."""
    rate = fees.market_making_fee_rate
    need: dict[str, Decimal] = {}

    def add(asset_id: str, amount: Decimal) -> None:
        need[asset_id] = need.get(asset_id, ZERO) + amount

    for asset_id, principal in ((pair.base_asset_id, base_principal), (pair.quote_asset_id, quote_principal)):
        add(asset_id, gross_of(principal, rate))
    add(fees.base_fee_asset_id, fees.base_fee_amount)
    add(fees.quote_fee_asset_id, fees.quote_fee_amount)
    return {k: v for k, v in need.items() if v > 0}
