"""Fault injection and Binance-like request-weight limiting for the fake exchange.

Weights follow Binance spot's published REQUEST_WEIGHT table (``/api/...`` shares one
per-minute budget) and the SAPI IP weights (``/sapi/...`` has its own budget).

Rate limiting as Binance does it: when a request takes the minute's used weight over the
limit the answer is HTTP 429 ``{"code":-1003,...}`` with ``Retry-After`` (seconds to the end of
the window). A client that keeps sending before that time is "hammering": after
``ban_after`` such requests it gets HTTP 418 (IP banned, ``Retry-After`` = ban length) until
the ban ends.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Mapping


@dataclass
class Fault:
    path_prefix: str
    status: int
    remaining: int
    delay: float = 0.0
    retry_after: float | None = None
    after_apply: bool = False
    method: str | None = None
    error_code: int | None = None
    msg: str | None = None
    body: bytes | None = None

    def matches(self, method: str, path: str) -> bool:
        return self.remaining > 0 and path.startswith(self.path_prefix) and (self.method is None or self.method == method)

    def response(self) -> tuple[int, list[tuple[str, str]], bytes]:
        headers: list[tuple[str, str]] = []
        if self.retry_after is not None:
            headers.append(("Retry-After", str(int(math.ceil(self.retry_after)))))
        if self.body is not None:
            return self.status, headers + [("Content-Type", "application/json;charset=UTF-8")], self.body
        code, msg = self.error_code, self.msg
        if code is None and self.status in (418, 429):
            code = -1003
            msg = msg or (
                "Way too much request weight used; IP banned. Please use WebSocket Streams for live updates to avoid bans."
                if self.status == 418
                else "Too much request weight used; please use WebSocket Streams for live updates to avoid polling the API."
            )
        if code is not None:
            payload = json.dumps({"code": code, "msg": msg or "Injected error."}).encode()
            return self.status, headers + [("Content-Type", "application/json;charset=UTF-8")], payload
        reason = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
        text = f"<html><body><h1>{self.status} {reason.get(self.status, 'Error')}</h1></body></html>"
        return self.status, headers + [("Content-Type", "text/html")], text.encode()


class RateLimiter:
    """Per-window weight meter; with a ``limit`` (not None) it also refuses (429) and bans (418)."""

    def __init__(
        self, limit: int | None, *, window: float = 60.0, ban_after: int = 2, ban_seconds: float = 120.0,
        name: str = "REQUEST_WEIGHT", origin: float = 0.0,
    ) -> None:
        if limit is not None and limit < 1:
            raise ValueError("limit must be >= 1")
        if ban_after < 1:
            raise ValueError("ban_after must be >= 1")
        self.limit = limit
        self.window = window
        self.ban_after = ban_after
        self.ban_seconds = ban_seconds
        self.name = name
        self.origin = origin  # windows are [origin + k*window, origin + (k+1)*window)
        self._window_id: int | None = None
        self.used = 0
        self._retry_until = 0.0
        self._hammering = 0
        self.banned_until = 0.0
        self.count_429 = 0
        self.count_418 = 0

    def _roll(self, now: float) -> None:
        wid = int((now - self.origin) // self.window)
        if wid != self._window_id:
            self._window_id = wid
            self.used = 0

    def used_weight(self, now: float) -> int:
        self._roll(now)
        return self.used

    def check(self, now: float, weight: int) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """Count ``weight``; return an error response (429 / 418) or None."""
        self._roll(now)
        if self.limit is None:
            self.used += weight
            return None
        if now < self.banned_until:
            return self._banned(now)
        if now < self._retry_until:
            self._hammering += 1
            if self._hammering >= self.ban_after:
                self.banned_until = now + self.ban_seconds
                self._retry_until = 0.0
                self._hammering = 0
                return self._banned(now)
        self.used += weight
        if self.used > self.limit:
            window_end = self.origin + (self._window_id + 1) * self.window
            self._retry_until = window_end
            self.count_429 += 1
            retry = max(1, int(math.ceil(window_end - now)))
            msg = (
                f"Too much request weight used; current limit is {self.limit} request weight per 1 MINUTE. "
                "Please use WebSocket Streams for live updates to avoid polling the API."
            )
            body = json.dumps({"code": -1003, "msg": msg}).encode()
            return 429, [("Retry-After", str(retry)), ("Content-Type", "application/json;charset=UTF-8")], body
        return None

    def _banned(self, now: float) -> tuple[int, list[tuple[str, str]], bytes]:
        self.count_418 += 1
        retry = max(1, int(math.ceil(self.banned_until - now)))
        msg = (
            f"Way too much request weight used; IP banned until {int(self.banned_until * 1000)}. "
            "Please use WebSocket Streams for live updates to avoid bans."
        )
        body = json.dumps({"code": -1003, "msg": msg}).encode()
        return 418, [("Retry-After", str(retry)), ("Content-Type", "application/json;charset=UTF-8")], body


def _depth_weight(params: Mapping[str, str]) -> int:
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


def _ticker_weight(params: Mapping[str, str]) -> int:
    if "symbol" in params:
        return 2
    if "symbols" in params:
        try:
            n = len(json.loads(params["symbols"]))
        except ValueError:
            n = 1
        return 2 if n <= 20 else 40 if n <= 100 else 80
    return 80


def request_weight(method: str, path: str, params: Mapping[str, str]) -> int:
    """Binance spot request weight (``/api``) or SAPI IP weight (``/sapi``) of one request."""
    key = (method, path)
    if path == "/api/v3/depth":
        return _depth_weight(params)
    if path == "/api/v3/ticker/24hr":
        return _ticker_weight(params)
    if path in ("/api/v3/ticker/price", "/api/v3/ticker/bookTicker"):
        return 2 if "symbol" in params else 4
    if key == ("GET", "/api/v3/openOrders"):
        return 6 if "symbol" in params else 80
    if key == ("GET", "/api/v3/myTrades"):
        return 5 if "orderId" in params else 20
    return _FIXED.get(key, 1)


_FIXED = {
    ("GET", "/api/v3/ping"): 1,
    ("GET", "/api/v3/time"): 1,
    ("GET", "/api/v3/exchangeInfo"): 20,
    ("GET", "/api/v3/account"): 20,
    ("POST", "/api/v3/order"): 1,
    ("GET", "/api/v3/order"): 4,
    ("DELETE", "/api/v3/order"): 1,
    ("DELETE", "/api/v3/openOrders"): 1,
    ("GET", "/api/v3/allOrders"): 20,
    ("GET", "/sapi/v1/capital/config/getall"): 10,
    ("GET", "/sapi/v1/capital/deposit/address"): 10,
    ("GET", "/sapi/v1/capital/deposit/hisrec"): 1,
    ("POST", "/sapi/v1/capital/withdraw/apply"): 1,
    ("GET", "/sapi/v1/capital/withdraw/history"): 1,
    ("GET", "/sapi/v1/system/status"): 1,
    ("GET", "/sapi/v1/asset/tradeFee"): 1,
}
