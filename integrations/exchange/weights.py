"""Request weights: what one HTTP request costs against an exchange's rate limit, and in which budget.

A ``WeightTable`` maps ``(HTTP method, URL path)`` to a weight (an int, or a function of the
request's query/form parameters) and a path prefix to a *bucket*: a separately limited budget
(Binance: ``/api/...`` counts against REQUEST_WEIGHT, ``/sapi/...`` against the SAPI IP weight).
The limiter keeps one token bucket per bucket name; ``DEFAULT_BUCKET`` is the account's main
budget (``weight_per_minute``).

``BINANCE`` is Binance spot's published weight table (the same numbers the fake exchange in
``sim/fake_exchange/faults.py`` enforces); every other exchange gets ``GENERIC`` (weight 1 per
request, one bucket) unless a table is registered for it. Config can override single
endpoints: ``{"GET /api/v3/depth": 10}``.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import parse_qsl, urlsplit

__all__ = ["BINANCE", "DEFAULT_BUCKET", "GENERIC", "WeightTable", "parse_override_key", "table_for"]

DEFAULT_BUCKET = "default"

Rule = int | Callable[[Mapping[str, str]], int]


@dataclass(frozen=True)
class WeightTable:
    name: str
    rules: Mapping[tuple[str, str], Rule] = field(default_factory=dict)
    buckets: tuple[tuple[str, str], ...] = ()  # (path prefix, bucket name), first match wins
    default_weight: int = 1

    def weigh(self, method: str, url: str, body: object = None) -> tuple[str, int]:
        """(bucket, weight) of one request as ccxt is about to send it."""
        parts = urlsplit(url)
        return self._weigh(method, parts.path or "/", lambda: _params(parts.query, body))

    def weigh_params(self, method: str, path: str, params: Mapping[str, object]) -> tuple[str, int]:
        """(bucket, weight) of a request by its URL path and its parameters before signing (ccxt's request
        dict): the same figure as ``weigh`` of the signed request."""
        return self._weigh(method, path, lambda: {k: str(v) for k, v in (params or {}).items()})

    def _weigh(self, method: str, path: str, params: Callable[[], Mapping[str, str]]) -> tuple[str, int]:
        bucket = DEFAULT_BUCKET
        for prefix, name in self.buckets:
            if path.startswith(prefix):
                bucket = name
                break
        rule = self.rules.get((method.upper(), path))
        if rule is None:
            return bucket, self.default_weight
        if isinstance(rule, int):
            return bucket, rule
        return bucket, max(0, int(rule(params())))

    def with_overrides(self, overrides: Mapping[str, int]) -> WeightTable:
        """A copy with single endpoints re-weighted; keys are ``"METHOD /path"``."""
        if not overrides:
            return self
        rules = dict(self.rules)
        for key, weight in overrides.items():
            rules[parse_override_key(key)] = int(weight)
        return WeightTable(self.name, MappingProxyType(rules), self.buckets, self.default_weight)


def parse_override_key(key: str) -> tuple[str, str]:
    """``"GET /api/v3/depth"`` -> ``("GET", "/api/v3/depth")``; ValueError if malformed."""
    method, _, path = key.strip().partition(" ")
    method, path = method.strip().upper(), path.strip()
    if method not in {"GET", "POST", "PUT", "DELETE", "PATCH"} or not path.startswith("/"):
        raise ValueError(f"weight override key must look like 'GET /api/v3/depth', got {key!r}")
    return method, path


def _params(query: str, body: object) -> dict[str, str]:
    params = dict(parse_qsl(query, keep_blank_values=True))
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body and body.lstrip()[:1] not in ("{", "["):
        params.update(parse_qsl(body, keep_blank_values=True))
    return params


# ---------------------------------------------------------------------- Binance spot


def _depth(params: Mapping[str, str]) -> int:
    try:
        limit = int(params.get("limit", "100"))
    except ValueError:
        limit = 100
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


def _ticker_24hr(params: Mapping[str, str]) -> int:
    if "symbol" in params:
        return 2
    if "symbols" in params:
        try:
            n = len(json.loads(params["symbols"]))
        except ValueError:
            n = 1
        return 2 if n <= 20 else 40 if n <= 100 else 80
    return 80


def _price_or_book_ticker(params: Mapping[str, str]) -> int:
    return 2 if "symbol" in params else 4


def _open_orders(params: Mapping[str, str]) -> int:
    return 6 if "symbol" in params else 80


def _my_trades(params: Mapping[str, str]) -> int:
    return 5 if "orderId" in params else 20


BINANCE = WeightTable(
    name="binance",
    rules=MappingProxyType({
        ("GET", "/api/v3/ping"): 1,
        ("GET", "/api/v3/time"): 1,
        ("GET", "/api/v3/exchangeInfo"): 20,
        ("GET", "/api/v3/depth"): _depth,
        ("GET", "/api/v3/ticker/24hr"): _ticker_24hr,
        ("GET", "/api/v3/ticker/price"): _price_or_book_ticker,
        ("GET", "/api/v3/ticker/bookTicker"): _price_or_book_ticker,
        ("GET", "/api/v3/account"): 20,
        ("POST", "/api/v3/order"): 1,
        ("POST", "/api/v3/order/cancelReplace"): 1,
        ("GET", "/api/v3/order"): 4,
        ("DELETE", "/api/v3/order"): 1,
        ("GET", "/api/v3/openOrders"): _open_orders,
        ("DELETE", "/api/v3/openOrders"): 1,
        ("GET", "/api/v3/allOrders"): 20,
        ("GET", "/api/v3/myTrades"): _my_trades,
        ("GET", "/sapi/v1/capital/config/getall"): 10,
        ("GET", "/sapi/v1/capital/deposit/address"): 10,
        ("GET", "/sapi/v1/capital/deposit/hisrec"): 1,
        ("POST", "/sapi/v1/capital/withdraw/apply"): 1,
        ("GET", "/sapi/v1/capital/withdraw/history"): 1,
        ("GET", "/sapi/v1/system/status"): 1,
        ("GET", "/sapi/v1/asset/tradeFee"): 1,
    }),
    buckets=(("/sapi/", "sapi"),),
)

GENERIC = WeightTable(name="generic")

_TABLES: dict[str, WeightTable] = {"binance": BINANCE}


def table_for(ccxt_id: str, overrides: Mapping[str, int] | None = None) -> WeightTable:
    """The weight table of an exchange (GENERIC if none is registered), with overrides applied."""
    return _TABLES.get(ccxt_id, GENERIC).with_overrides(overrides or {})
