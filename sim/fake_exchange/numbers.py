"""Decimal helpers shared by the fake exchange (no floats anywhere inside the fake)."""
from __future__ import annotations

import re
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal, InvalidOperation

ZERO = Decimal(0)
QUANTUM_8 = Decimal("0.00000001")
_NUMBER = re.compile(r"^-?([0-9]{1,20})(\.[0-9]{1,20})?$")


def D(value: Decimal | str | int) -> Decimal:
    """Exact conversion; floats are refused (they would smuggle binary rounding in)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        raise TypeError("use str or Decimal, not float, for amounts and prices")
    try:
        out = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a decimal: {value!r}") from None
    if not out.is_finite():
        raise ValueError(f"not a finite decimal: {value!r}")
    return out


def parse_param_decimal(text: str) -> Decimal | None:
    """Binance's parameter syntax for numbers: ``^([0-9]{1,20})(\\.[0-9]{1,20})?$``; None if it does not match."""
    if not _NUMBER.match(text or ""):
        return None
    return Decimal(text)


def fmt8(value: Decimal) -> str:
    """Binance style: 8 decimals ("0.00100000"), more only if the value really has more."""
    eight = value.quantize(QUANTUM_8)
    text = format(eight if eight == value else value, "f")
    return "0.00000000" if text.startswith("-0.") and Decimal(text) == 0 else text


def fmt_plain(value: Decimal) -> str:
    """Shortest exact text ("0.5", "60000"), used for config-like values."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def floor_to(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def ceil_to(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


def is_multiple(value: Decimal, step: Decimal, base: Decimal = ZERO) -> bool:
    if step == 0:
        return True
    return ((value - base) % step) == 0


def fee_of(amount: Decimal, rate: Decimal) -> Decimal:
    """Commission on a received amount, cut to 8 decimals (never more than the exact fee)."""
    return (amount * rate).quantize(QUANTUM_8, rounding=ROUND_DOWN)
