"""Binance spot's three quoting requests built here instead of by ccxt's generic path: place (POST order),
cancel (DELETE order) and cancel-replace (POST order/cancelReplace), and their small JSON answers read straight
into plain values.

Why: a market maker refreshing 1,000 orders a second sends ~2,000 of these a second, and ccxt's generic path
spends most of a request's CPU on work a limit order never needs (create_order_request's option handling,
sign()'s branches, parse_order + safe_order's string arithmetic: measured with cProfile, 2026-12-07). The
request is the one ccxt 4.5.90 sends, byte for byte (same parameters in the same order, the same timestamp and
recvWindow, the same HMAC-SHA256 signature: tests/test_binance_lean.py sends both and compares), and it still
goes out through ccxt's ``fetch`` — so the limiter, the error mapping (handle_errors: -1021, -2010, -2011, 429 …)
and the answer's parsing to JSON are ccxt's own. Only the plain answers are read here (an order open or
cancelled with nothing filled); any other answer is parsed by ccxt's ``parse_order``.

No I/O here: pure functions over dicts and strings.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from integrations.exchange.lean_orders import plain_decimal

# Binance's order status -> ccxt's unified status (ccxt binance.parse_order_status, the spot ones)
STATUSES = {"NEW": "open", "PARTIALLY_FILLED": "open", "FILLED": "closed", "CANCELED": "canceled",
            "PENDING_CANCEL": "canceling", "REJECTED": "rejected", "EXPIRED": "expired",
            "EXPIRED_IN_MATCH": "expired"}


def order_params(market_id: str, side: str, amount: str, price: str, client_order_id: str, post_only: bool,
                 resp_type: str, time_in_force: str) -> dict[str, str]:
    """POST /api/v3/order of a limit order, as ccxt's create_order_request builds it (spot)."""
    params = {"symbol": market_id, "side": side.upper(), "newClientOrderId": client_order_id,
              "newOrderRespType": resp_type, "type": "LIMIT_MAKER" if post_only else "LIMIT",
              "quantity": amount, "price": price}
    if not post_only:
        params["timeInForce"] = time_in_force
    return params


def replace_params(market_id: str, side: str, amount: str, price: str, client_order_id: str, post_only: bool,
                   resp_type: str, time_in_force: str, cancel_client_order_id: str) -> dict[str, str]:
    """POST /api/v3/order/cancelReplace, as ccxt's edit_spot_order_request builds it (STOP_ON_FAILURE)."""
    params = {"symbol": market_id, "side": side.upper(), "type": "LIMIT_MAKER" if post_only else "LIMIT",
              "newClientOrderId": client_order_id, "newOrderRespType": resp_type, "quantity": amount,
              "price": price}
    if not post_only:
        params["timeInForce"] = time_in_force
    params["cancelReplaceMode"] = "STOP_ON_FAILURE"
    params["cancelOrigClientOrderId"] = cancel_client_order_id
    return params


def cancel_params(market_id: str, client_order_id: str) -> dict[str, str]:
    """DELETE /api/v3/order by our client id, as ccxt's cancel_order builds it (spot)."""
    return {"symbol": market_id, "origClientOrderId": client_order_id}


def signed_request(base_url: str, path: str, method: str, params: Mapping[str, str], api_key: str, secret: str,
                   timestamp: int, recv_window: int | None) -> tuple[str, str | None, dict[str, str]]:
    """(url, body, headers) of one signed private request, as ccxt binance.sign makes them for an HMAC key:
    ``timestamp`` first, then the parameters, then ``recvWindow``; urlencoded; ``&signature=`` the hex HMAC-SHA256
    of that query with the secret. GET / DELETE carry it in the URL, POST as a form body."""
    fields: dict[str, Any] = {"timestamp": timestamp, **params}
    if recv_window is not None:
        fields["recvWindow"] = recv_window
    query = _urlencode(fields)
    mac = _keyed(secret).copy()
    mac.update(query.encode())
    query += "&signature=" + mac.hexdigest()
    url = f"{base_url}/{path}"
    if method in ("GET", "DELETE"):
        return f"{url}?{query}", None, {"X-MBX-APIKEY": api_key}
    return url, query, {"X-MBX-APIKEY": api_key, "Content-Type": "application/x-www-form-urlencoded"}


@functools.lru_cache(maxsize=64)
def _keyed(secret: str) -> Any:
    """HMAC-SHA256 keyed with ``secret``, to be ``copy()``-ed: keying (two padded SHA-256 states) is half the cost
    of signing a small request."""
    return hmac.new(secret.encode(), digestmod=hashlib.sha256)


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")
_UNRESERVED_QUERY = re.compile(r"[A-Za-z0-9_.~=&-]*")


def _urlencode(fields: Mapping[str, Any]) -> str:
    """``urllib.parse.urlencode(fields, quote_via=quote)`` (what ccxt's urlencode does), with the texts that need
    no escaping (ids, symbols, numbers: nearly all) taken as they are."""
    query = "&".join([f"{k}={v}" for k, v in fields.items()])
    # all unreserved (nearly always), checked on the whole query at once: only the separators may be '=' and '&'
    if query.count("=") == len(fields) and query.count("&") == len(fields) - 1 and _UNRESERVED_QUERY.fullmatch(query):
        return query
    return "&".join([f"{_quoted(str(k))}={_quoted(str(v))}" for k, v in fields.items()])


def _quoted(text: str) -> str:
    return text if _UNRESERVED.fullmatch(text) else quote(text, safe="")


_OTHER_FIELDS = frozenset(("fee", "avgPrice", "avgFilledPrice", "positionSide", "cumQuote", "strategyId", "algoId",
                           "stopPrice", "triggerPrice", "code"))
_TIME_FIELDS = ("time", "createTime", "workingTime", "transactTime", "updateTime", "createdAt")


def plain_order(raw: Any, market_id: str) -> dict[str, Any] | None:
    """The fields ccxt's parse_order gives a plain spot order answer — one of ``market_id``, with an order id,
    a known status, a price and an amount, nothing filled, no trades — its numbers as exact Decimals
    (``lean_orders.plain_decimal``, as the open-orders reader reads them), the rest as texts; None for anything else
    (ccxt parses those)."""
    if not isinstance(raw, dict) or raw.get("symbol") != market_id or raw.get("fills") or raw.get("trades"):
        return None
    if not _OTHER_FIELDS.isdisjoint(raw):
        return None
    status = STATUSES.get(raw.get("status"))
    filled, price, amount = raw.get("executedQty"), raw.get("price"), raw.get("origQty")
    cost = raw.get("cummulativeQuoteQty")
    # read as the exact decimals they are (None: not finite decimal text — then ccxt parses the answer)
    numbers = [plain_decimal(text) for text in (filled, price, amount, cost)]
    if status is None or raw.get("orderId") is None or None in numbers:
        return None
    filled_n, price_n, amount_n, cost_n = numbers
    if filled_n != 0 or cost_n != 0 or not price_n > 0 or not amount_n > 0:
        return None
    timestamp = None
    for name in _TIME_FIELDS:
        timestamp = raw.get(name)
        if timestamp is not None:
            break
    kind = str(raw.get("type") or "").lower()
    time_in_force = raw.get("timeInForce")
    return {"id": str(raw["orderId"]), "clientOrderId": raw.get("clientOrderId"),
            "origClientOrderId": raw.get("origClientOrderId"), "side": str(raw.get("side") or "").lower() or None,
            "type": "limit" if kind == "limit_maker" else (kind or None), "status": status, "price": price_n,
            "amount": amount_n, "filled": filled_n, "cost": cost_n, "timestamp": timestamp,
            "postOnly": kind == "limit_maker" or time_in_force in ("GTX", "PO")}
