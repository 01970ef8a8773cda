"""Payment instructions a user can follow without encoding anything (pure functions).

- ``order_intent``: a new order id, and per asset to send: the amount (principal + market-making fee +
  whatever withdrawal fees Mixin charges in that asset, exactly what ``domain.payment.required_payment``
  says completes the order), the memo (action create) and a Mixin pay link with a deterministic trace id.
- ``add_funds_legs``: the same for funds added to a running order (memo action deposit), one leg per asset
  carrying only the withdrawal fees of the legs it pays for (``domain.topup``'s rule).
- ``exit_leg``: the exit request (memo action exit) — any small transfer; it comes back with the settlement.

Pay link: ``https://mixin.one/pay/{bot}?asset=…&amount=…&memo=…&trace=…``. A trace id makes a payment
idempotent on Mixin (a link paid twice is one transfer): ``unique_object_id`` over the order, asset, action
and amount, so the same instruction always gives the same link.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from urllib.parse import urlencode

from domain.ids import unique_object_id
from domain.memo import ACTION_CREATE, ACTION_DEPOSIT, ACTION_EXIT, ACTION_NAMES, encode_market_making
from domain.money import MIXIN_STEP, ZERO, fmt
from domain.payment import (FeeRequirements, PairRules, PaymentStatus, evaluate_payment, gross_of,
                            required_payment)

PAY_BASE = "https://mixin.one/pay"
EXIT_REQUEST_AMOUNT = MIXIN_STEP  # any transfer carries an exit request; the smallest one costs nothing
MAX_PRINCIPAL = Decimal(10) ** 15


class IntentRefused(ValueError):
    """The amounts cannot make an order on this pair (the reasons say why)."""


@dataclass(frozen=True)
class PayLeg:
    asset_id: str
    symbol: str
    amount: Decimal
    memo: str
    trace_id: str
    pay_url: str
    purpose: str

    def as_dict(self) -> dict:
        return {"asset_id": self.asset_id, "symbol": self.symbol, "amount": fmt(self.amount), "memo": self.memo,
                "trace_id": self.trace_id, "pay_url": self.pay_url, "purpose": self.purpose}


def parse_principal(text: str, what: str) -> Decimal:
    """A principal from a request: a decimal >= 0 with at most 8 decimals (Mixin's precision)."""
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise IntentRefused(f"{what} is not a decimal number") from None
    if not value.is_finite() or value < 0 or value > MAX_PRINCIPAL:
        raise IntentRefused(f"{what} must be a decimal between 0 and 1e15")
    if value != value.quantize(MIXIN_STEP):
        raise IntentRefused(f"{what} has more than 8 decimal places (Mixin's precision)")
    return value


def trace_id(order_id: str, asset_id: str, action: int, amount: Decimal, nonce: str = "") -> str:
    return unique_object_id("mmflow:pay:", order_id, ":", asset_id, ":", str(action), ":", fmt(amount), ":", nonce)


def pay_url(bot_user_id: str, asset_id: str, amount: Decimal, memo: str, trace: str) -> str:
    query = urlencode({"asset": asset_id, "amount": fmt(amount), "memo": memo, "trace": trace})
    return f"{PAY_BASE}/{bot_user_id}?{query}"


def _purposes(pair: PairRules, fees: FeeRequirements, base: Decimal, quote: Decimal) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if base > 0:
        out.setdefault(pair.base_asset_id, []).append(f"{pair.base_symbol} principal + market-making fee")
        if fees.base_fee_amount > 0:
            out.setdefault(fees.base_fee_asset_id, []).append(f"withdrawal fee of the {pair.base_symbol} leg")
    if quote > 0:
        out.setdefault(pair.quote_asset_id, []).append(f"{pair.quote_symbol} principal + market-making fee")
        if fees.quote_fee_amount > 0:
            out.setdefault(fees.quote_fee_asset_id, []).append(f"withdrawal fee of the {pair.quote_symbol} leg")
    return out


def _legs(need: dict[str, Decimal], purposes: dict[str, list[str]], pair_id: str, order_id: str, action: int,
          bot_user_id: str, symbols, nonce: str = "") -> list[PayLeg]:
    memo = encode_market_making(pair_id, order_id, action=action)
    legs = []
    for asset_id, amount in need.items():
        trace = trace_id(order_id, asset_id, action, amount, nonce)
        legs.append(PayLeg(asset_id, symbols(asset_id), amount, memo, trace,
                           pay_url(bot_user_id, asset_id, amount, memo, trace),
                           "; ".join(purposes.get(asset_id, [])) or ACTION_NAMES[action]))
    return legs


def order_intent(pair: PairRules, fees: FeeRequirements, base: Decimal, quote: Decimal, *, order_id: str,
                 bot_user_id: str, symbols) -> list[PayLeg]:
    """The legs that pay for a new order with these principals; IntentRefused if paying them all would not
    complete it (pair disabled, a principal out of the pair's bounds)."""
    if not pair.enabled:
        raise IntentRefused(f"pair {pair.symbol} is not open for new orders")
    need = required_payment(pair, fees, base, quote)
    evaluation = evaluate_payment(need, pair, fees)
    if evaluation.status is not PaymentStatus.COMPLETE:
        raise IntentRefused("; ".join(evaluation.reasons) or "these amounts cannot complete an order")
    return _legs(need, _purposes(pair, fees, base, quote), pair.pair_id, order_id, ACTION_CREATE, bot_user_id,
                 symbols)


def add_funds_payment(pair: PairRules, fees: FeeRequirements, base: Decimal, quote: Decimal) -> dict[str, Decimal]:
    """Per asset, what to send so the order's ledger grows by these principals: each leg with a principal
    carries its own withdrawal fee and its market-making fee (``domain.topup.evaluate_top_up``)."""
    need: dict[str, Decimal] = {}
    rate = fees.market_making_fee_rate
    for asset_id, principal, fee_asset, fee in ((pair.base_asset_id, base, fees.base_fee_asset_id,
                                                 fees.base_fee_amount),
                                                (pair.quote_asset_id, quote, fees.quote_fee_asset_id,
                                                 fees.quote_fee_amount)):
        if principal > 0:
            need[asset_id] = need.get(asset_id, ZERO) + gross_of(principal, rate)
            need[fee_asset] = need.get(fee_asset, ZERO) + fee
    return {k: v for k, v in need.items() if v > 0}


def add_funds_legs(pair: PairRules, fees: FeeRequirements, base: Decimal, quote: Decimal, *, order_id: str,
                   bot_user_id: str, symbols, nonce: str = "") -> list[PayLeg]:
    if base <= 0 and quote <= 0:
        raise IntentRefused("give base_amount and/or quote_amount (> 0) to add")
    need = add_funds_payment(pair, fees, base, quote)
    return _legs(need, _purposes(pair, fees, base, quote), pair.pair_id, order_id, ACTION_DEPOSIT, bot_user_id,
                 symbols, nonce)


def exit_leg(pair: PairRules, *, order_id: str, bot_user_id: str, symbols) -> PayLeg:
    """The exit request: the smallest transfer of the quote asset with the exit memo (it comes back with the
    settlement). Its trace id is fixed per order: the link asks for the exit once."""
    amount = EXIT_REQUEST_AMOUNT
    return _legs({pair.quote_asset_id: amount}, {pair.quote_asset_id: ["exit request (comes back with the "
                                                                       "settlement)"]},
                 pair.pair_id, order_id, ACTION_EXIT, bot_user_id, symbols)[0]
