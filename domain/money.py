"""Decimal helpers for amounts. Money is never a float in mmflow."""
from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, InvalidOperation

MIXIN_STEP = Decimal("0.00000001")  # kernel amounts carry at most 8 decimals
ZERO = Decimal(0)


class BadAmount(ValueError):
    pass


def to_decimal(value: object, *, field: str = "amount") -> Decimal:
    """Parse an amount from an API reply or config; floats are refused (they already lost precision)."""
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool) or isinstance(value, float):
        raise BadAmount(f"{field}: {value!r} is a {type(value).__name__}, expected a decimal string")
    elif isinstance(value, (int, str)):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise BadAmount(f"{field}: {value!r} is not a decimal number") from None
    else:
        raise BadAmount(f"{field}: {value!r} is not a decimal number")
    if not result.is_finite():
        raise BadAmount(f"{field}: {value!r} is not finite")
    return result


def floor8(value: Decimal) -> Decimal:
    """Round down to Mixin's 8 decimals (never round money up in the user's favour by accident)."""
    return value.quantize(MIXIN_STEP, rounding=ROUND_DOWN)


def fmt(value: Decimal) -> str:
    """Canonical text of an amount: no exponent, no trailing zeros."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text
