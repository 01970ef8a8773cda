"""A lean reader of Binance spot's order records (``GET /api/v3/openOrders``), straight from the venue's JSON.

ccxt's ``parse_order`` + ``safe_order`` cost ~0.1 ms an order (string arithmetic through ``Precise``, an ISO
date, trade and fee merging, floats at the end); one account holding 100,000 open orders spent 10 s of CPU
per listing in them — at start (reconciliation) and in each round of the order-update stream. The record the
venue sends already carries everything ``ExchangeAccount._order`` keeps, as decimal text, so this reads it
directly: the same fields ccxt gives for the same record (``tests/test_lean_orders.py`` compares every field
over the fake's replies and Binance-shaped ones: new, partially filled, filled, canceled, expired, post-only),
as exact Decimals — never through a float.

Only the plain spot shape is read here; a record with anything else (an error half ``code``, ``fills`` or
``trades``, a fee, futures/option fields, another market's symbol, a missing or non-decimal number) returns
None and its caller parses it through ccxt as before.
"""
from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from ccxt.base.precise import Precise

from domain.exchange_orders import held_key, plain_text

__all__ = ["SPOT_STATUSES", "binance_held_key", "binance_spot_order", "plain_decimal"]

# ccxt binance.parse_order_status (4.5.90) for the statuses a spot order can have
SPOT_STATUSES = {"NEW": "open", "PARTIALLY_FILLED": "open", "ACCEPTED": "open", "FILLED": "closed",
                 "CANCELED": "canceled", "CANCELLED": "canceled", "PENDING_CANCEL": "canceling",
                 "REJECTED": "rejected", "EXPIRED": "expired", "EXPIRED_IN_MATCH": "expired"}
# ccxt binance.parse_order_type_by_market(type, "spot")
_SPOT_TYPES = {"limit_maker": "limit", "stop_loss_limit": "limit", "stop_loss": "market",
               "take_profit_limit": "limit", "take_profit": "market"}
# the keys of a plain spot order record (openOrders, order, cancel); anything else goes to ccxt
_KNOWN = frozenset({"symbol", "orderId", "orderListId", "clientOrderId", "origClientOrderId", "price", "origQty",
                    "executedQty", "origQuoteOrderQty", "cummulativeQuoteQty", "status", "timeInForce", "type",
                    "side", "stopPrice", "icebergQty", "time", "updateTime", "isWorking", "workingTime",
                    "selfTradePreventionMode", "preventedMatchId", "preventedQuantity", "usedSor",
                    "workingFloor", "trailingDelta", "trailingTime",
                    "pegPriceType", "pegOffsetType", "pegOffsetValue", "peggedPrice", "transactTime"})
_CACHE_LIMIT = 4096
_plain_cache: dict[str, Decimal] = {}   # the same few price/quantity texts recur across thousands of orders


def plain_decimal(text: Any) -> Decimal | None:
    """Decimal text as the ccxt path leaves it (``Decimal(str(float(text)))``: ``"0.00100000"`` -> ``0.001``,
    ``"60000.00"`` -> ``60000.0``), but exact: the digits are the venue's, trailing zeros dropped, one kept
    after the point. None for anything that is not finite decimal text."""
    if type(text) is not str:
        return None
    cached = _plain_cache.get(text)
    if cached is not None:
        return cached
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    if "." in text and "e" not in text and "E" not in text:
        stripped = text.rstrip("0")
        value = Decimal(stripped + "0" if stripped.endswith(".") else stripped)
    elif "e" not in text and "E" not in text:
        value = Decimal(text + ".0")
    if len(_plain_cache) < _CACHE_LIMIT:
        _plain_cache[text] = value
    return value


def binance_spot_order(raw: Mapping[str, Any], market: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``OrderInfo`` fields of one Binance spot order record of ``market``, or None when the record is not the
    plain shape read here (the caller asks ccxt). ``client_order_id`` is the venue's (origClientOrderId first,
    as ``ExchangeAccount._order`` takes it)."""
    if type(raw) is not dict or not _KNOWN.issuperset(raw) or raw.get("symbol") != market.get("id"):
        return None
    order_id, status_text = raw.get("orderId"), raw.get("status")
    type_text, side_text = raw.get("type"), raw.get("side")
    price_text, amount_text, filled_text, cost_text = (raw.get("price"), raw.get("origQty"), raw.get("executedQty"),
                                                       raw.get("cummulativeQuoteQty"))
    status = SPOT_STATUSES.get(status_text) if type(status_text) is str else None
    if (order_id is None or status is None or type(type_text) is not str or type(side_text) is not str
            or type(price_text) is not str or type(amount_text) is not str or type(filled_text) is not str
            or type(cost_text) is not str):
        return None
    price, amount, filled, cost = (plain_decimal(price_text), plain_decimal(amount_text), plain_decimal(filled_text),
                                   plain_decimal(cost_text))
    if price is None or amount is None or filled is None or cost is None:
        return None
    timestamp = next((raw[k] for k in ("time", "workingTime", "transactTime", "updateTime") if raw.get(k) is not None),
                     None)
    try:
        timestamp = None if timestamp is None else int(timestamp)
    except (TypeError, ValueError):
        return None
    kind = type_text.lower()
    price = price or None            # ccxt omits a zero price and amount
    amount = amount or None
    if amount is None and status == "closed":
        amount = filled
    if amount is not None:
        remaining = plain_decimal(format(amount - filled, "f"))
    else:
        remaining = plain_decimal("0") if status == "closed" else None
    # ccxt: Precise.string_div(cost, filled), 18 decimals truncated (then a float, which this is not)
    average = plain_decimal(Precise.string_div(cost_text, filled_text)) if filled > 0 else None
    if price is None and kind == "market":
        price = average
    client_id = raw.get("origClientOrderId") or raw.get("clientOrderId")
    return {
        "id": str(order_id), "client_order_id": None if client_id in (None, "") else str(client_id),
        "symbol": market["symbol"], "side": side_text.lower(), "type": _SPOT_TYPES.get(kind, kind),
        "status": status, "price": price, "amount": amount, "filled": filled, "remaining": remaining, "cost": cost,
        "average": average, "fee": None, "fee_currency": None, "timestamp_ms": timestamp,
        "post_only": kind == "limit_maker" or raw.get("timeInForce") in ("PO", "GTX"), "info": raw,
    }


def binance_held_key(raw: Mapping[str, Any], market_id: str) -> tuple[str, ...] | None:
    """``domain.exchange_orders.held_key`` of a plain spot record of ``market_id`` with nothing filled (read as
    ``binance_spot_order`` reads it: the same client id, exchange id, side, price and amount), or None for any
    other record: it is then read in full."""
    if type(raw) is not dict or raw.get("symbol") != market_id or not _KNOWN.issuperset(raw):
        return None
    order_id, side, price, amount, filled = (raw.get("orderId"), raw.get("side"), raw.get("price"), raw.get("origQty"),
                                             raw.get("executedQty"))
    client_id = raw.get("origClientOrderId") or raw.get("clientOrderId")
    if (order_id is None or type(client_id) is not str or type(side) is not str or type(price) is not str
            or type(amount) is not str or type(filled) is not str or raw.get("status") not in SPOT_STATUSES
            or plain_text(filled) != "0"):
        return None
    return held_key(client_id, str(order_id), side.lower(), price, amount)
