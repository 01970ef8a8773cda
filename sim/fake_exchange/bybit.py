"""Bybit dialect of the fake exchange: API v5, spot, unified trading account (UTA), as the unmodified
``ccxt.bybit`` 4.5.90 (sync) uses it.

``FakeBybit`` replaces only the venue's HTTP surface of ``FakeExchange`` (routes, parameter parsing,
the X-BAPI-* signature, Bybit's response envelope and error codes, per-UID rate limits, the
``ccxt_config`` dict, the market id); the matching engine, balances, wallet (coins, networks, deposit
addresses and tags, deposits, withdrawals and their faults), market data, the clock and the test helpers
(``add_market``, ``add_currency``, ``credit``, ``credit_deposit``, ``place_taker``, price process,
``inject``, ``inject_withdrawal_fault``, ``finish_withdrawal``...) are the shared ones.

Every answer is Bybit's envelope ``{"retCode", "retMsg", "result", "retExtInfo", "time"}``; business
errors come with HTTP 200 and a non-zero ``retCode`` (what ccxt's ``bybit.handle_errors`` reads).
Facts, and where they come from (ccxt = ccxt 4.5.90 ``bybit.py``; docs = Bybit's v5 API docs,
bybit-exchange.github.io/docs/v5, repository bybit-exchange/docs):

- signature (docs guide, ccxt ``sign``): headers X-BAPI-API-KEY, X-BAPI-TIMESTAMP, X-BAPI-RECV-WINDOW
  (default 5000), X-BAPI-SIGN = hex HMAC-SHA256 of ``timestamp + apiKey + recvWindow + payload``, the
  payload being the raw query string (GET) or the raw JSON body (POST); timestamp rule
  ``server_time - recv_window <= timestamp < server_time + 1000``. Refusals: unknown key -> HTTP 401
  retCode 10003; missing auth headers -> HTTP 401 retCode 10001 "...openapi sign params error!";
  bad signature -> 10004 "error sign! origin_string[...]"; timestamp -> 10002 (ccxt: InvalidNonce).
- rate limits (docs rate-limit): per UID and endpoint, rolling window; over it -> retCode 10006
  "Too many visits!" (ccxt: RateLimitExceeded) with X-Bapi-Limit / X-Bapi-Limit-Status /
  X-Bapi-Limit-Reset-Timestamp headers (sent on every private answer); the IP limit (600 requests per
  5 s) answers HTTP 403 "access too frequent" (ccxt bybit's httpExceptions: 403 -> RateLimitExceeded).
  Both are only counted until ``rate_limit(...)`` / ``ip_rate_limit(...)`` turn them on. Injected faults
  (``inject``) answer in Bybit's shape: 429 or an ``error_code`` as the envelope (429 -> 10006).
- orders (docs order/create-order, cancel-order, open-order; ccxt ``create_order_request``,
  ``parse_order``): POST /v5/order/create answers only ``{orderId, orderLinkId}``; ``orderLinkId`` is
  ours (max 36 of ``[A-Za-z0-9_-]``, always unique: a reuse is refused with 170141 even after the first
  order closed); ``timeInForce=PostOnly`` that would take is ACCEPTED and then cancelled (orderStatus
  ``Cancelled``, rejectReason ``EC_PostOnlyWillTakeLiquidity``), not refused; GET /v5/order/realtime
  lists open orders by default (limit 1..50, default 20, newest first, cursor), and by ``orderId`` /
  ``orderLinkId`` finds an order whatever its status among the 500 most recent closed ones (openOnly
  is then ignored); a spot order cancelled after part of it filled is ``PartiallyFilledCanceled``.
  Spot order JSON has no ``tpslMode`` / ``createType`` (ccxt reads ``tpslMode`` as "contract").
  Errors: 170131 insufficient balance, 170213 order does not exist (cancel), 170121 invalid symbol,
  170134/170137/170136/170140 price/qty/notional filters, 170141 duplicate orderLinkId.
- executions (docs order/execution): GET /v5/execution/list, newest first, limit 1..100 (default 50),
  without times the last 7 days, ``endTime - startTime <= 7 days``; the fee is charged in the coin
  received (buy: base, sell: quote) as ``execFee`` + ``feeCurrency``.
- wallet balance (docs account/wallet-balance): accountType UNIFIED only; coins with a zero balance are
  left out unless asked for; ``availableToWithdraw`` is deprecated for UNIFIED (``""``), so ccxt takes
  ``locked`` as used and ``walletBalance`` as total.
- coins (docs asset/coin-info): chains with chain (the id ccxt maps: ETH -> ERC20, TRX -> TRC20,
  BSC -> BEP20, BTC -> BTC), withdrawFee, withdrawMin, depositMin, minAccuracy (decimal places),
  chainDeposit / chainWithdraw ("1"/"0").
- deposits (docs asset/deposit/*): address per chain with ``tagDeposit`` on memo chains; records with
  status 1 (to be confirmed) then 3 (success), default window 30 days, limit 1..50.
- withdrawals (docs asset/withdraw/withdraw, withdraw-record): POST /v5/asset/withdraw/create needs
  coin, chain, address, amount, timestamp, accountType (ccxt sends ``UTA`` for a unified account);
  ``feeType`` 0 (default): ``amount`` is what arrives and the fee is debited on top, 1: the fee comes out
  of ``amount``; ``requestId`` (1..32 letters/digits) is an idempotency key — a second use is refused
  with 131082 — and is NOT echoed: the withdrawal records (GET /v5/asset/withdraw/query-record: coin,
  chain, amount, withdrawFee, status, toAddress, tag, createTime, updateTime, withdrawId, txID) have
  no client id field and no filter for one. Statuses: Pending, success, Fail, Reject, CancelByUser.
  An injected ``reject`` fault answers 131097 "Withdrawal of this currency has been closed" (ccxt maps
  it to a plain ExchangeError). The record's ``amount`` is the amount sent on chain (the fake's
  ``net_amount``) — not verifiable from the docs, which do not say.

Not from a source (the fake's own choice, kept conservative): an unknown parameter is ignored, as a
lenient server would (so a ``clientOrderId`` where Bybit expects ``orderLinkId`` finds nothing, and
ccxt's ``orderId=None`` — what ``fetch_order(None, ...)`` sends — finds no order); a ``limit`` outside
the documented range is refused with 10001; HTTP 401 for 10003 but 200 for 10004/10002; 170213 also for
the cancel of an order that is no longer open; 131082 (docs: "Do not repeat the request") for a reused
``requestId``; 131001 when the balance covers ``amount`` but not the fee on top (ccxt's own sample of
131001 reads so), 131212 for less than ``amount``; the pending deposit's ``successAt`` is the time the
deposit was seen; withdrawal ids are the shared wallet's hex ids (Bybit's are digits); one balance per
account serves every ``accountType`` (no separate FUND wallet).
"""
from __future__ import annotations

import base64
import json
import re
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from .accounts import Account
from .engine import (
    BUY,
    CANCELED,
    FILLED,
    LIMIT,
    LIMIT_MAKER,
    MARKET,
    MSG_INSUFFICIENT,
    MSG_WOULD_TAKE,
    NEW,
    PARTIALLY_FILLED,
    SELL,
    EngineError,
    Fill,
    MarketSpec,
    Order,
)
from .faults import Fault
from .numbers import ZERO, fmt_plain, is_multiple
from .server import ApiError, FakeExchange, Request
from .wallet import (
    DEPOSIT_PENDING,
    WITHDRAW_CANCELLED,
    WITHDRAW_COMPLETED,
    WITHDRAW_FAILURE,
    WITHDRAW_PROCESSING,
    WITHDRAW_REJECTED,
    Deposit,
    NetworkConfig,
    WalletError,
    Withdrawal,
)

__all__ = ["DOCUMENTED_LIMITS", "FAKE", "ORDER_ID_BASE", "FakeBybit"]

ORDER_ID_BASE = 1_800_000_000_000_000_000  # Bybit spot order ids are 19-digit numbers (as strings)
EXEC_ID_BASE = 2_100_000_000_000_000_000
_DEAD_ID_BASE = 10**15  # post-only orders cancelled at once: never in the engine, ids of their own
_LINK_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
_NUMBER = re.compile(r"^[0-9]{1,20}(\.[0-9]{1,20})?$")
_DAY_MS = 86_400_000
_RECENT_CLOSED = 500  # closed orders /v5/order/realtime still knows (docs open-order)
_ACCOUNT_TYPES = ("UTA", "FUND", "FUND,UTA", "UTA,FUND", "EARN", "FUND,UTA,EARN", "SPOT")

# Documented per-UID limits (docs rate-limit): path -> (requests, window seconds). Spot column.
DOCUMENTED_LIMITS: dict[str, tuple[int, float]] = {
    "/v5/order/create": (20, 1.0),
    "/v5/order/cancel": (20, 1.0),
    "/v5/order/cancel-all": (20, 1.0),
    "/v5/order/realtime": (50, 1.0),
    "/v5/order/history": (50, 1.0),
    "/v5/execution/list": (50, 1.0),
    "/v5/account/wallet-balance": (50, 1.0),
    "/v5/account/info": (50, 1.0),
    "/v5/asset/coin/query-info": (5, 1.0),
    "/v5/asset/deposit/query-record": (100, 60.0),
    "/v5/asset/deposit/query-address": (300, 60.0),
    "/v5/asset/withdraw/query-record": (300, 60.0),
    "/v5/asset/withdraw/create": (5, 1.0),
}

_STATUS = {NEW: "New", PARTIALLY_FILLED: "PartiallyFilled", FILLED: "Filled", CANCELED: "Cancelled",
           "EXPIRED": "Cancelled"}
_TIF_IN = {"GTC": "GTC", "IOC": "IOC", "FOK": "FOK", "POSTONLY": "PostOnly"}
_WITHDRAW_STATUS = {WITHDRAW_PROCESSING: "Pending", WITHDRAW_COMPLETED: "success", WITHDRAW_CANCELLED: "CancelByUser",
                    WITHDRAW_REJECTED: "Reject", WITHDRAW_FAILURE: "Fail"}
# shared wallet refusals (Binance-numbered in wallet.py) -> Bybit's asset error codes (docs error, "Asset")
_WALLET_CODES = {
    -4018: (10001, "Invalid coin or chain."),
    -4019: (131097, "Withdrawal of this currency has been closed"),
    -4007: (131002, "Withdraw address chain or destination tag are not equal"),
    -4008: (131002, "Withdraw address chain or destination tag are not equal"),
    -4022: (131096, "Withdraw amount does not satify the lower limit or upper limit"),
    -4023: (131096, "Withdraw amount does not satify the lower limit or upper limit"),
    -4021: (131210, "Amount accuracy error"),
    -4028: (131096, "Withdraw amount does not satify the lower limit or upper limit"),
    -4026: (131212, "Insufficient balance"),
}


def _s(value: Decimal | None) -> str:
    return "" if value is None else fmt_plain(value)


def _json_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


class FakeBybit(FakeExchange):
    """Bybit v5 spot (unified account) over the shared fake exchange. See the module docstring."""

    venue = "bybit"
    # canonical network -> Bybit's chain id, as ccxt 4.5.90 bybit maps them (options.networks /
    # networksById: ERC20 <-> ETH, TRC20 <-> TRX, BEP20 <-> BSC, BTC <-> BTC)
    NETWORK_IDS = {"BTC": "BTC", "ERC20": "ETH", "TRC20": "TRX", "BEP20": "BSC"}

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._links: dict[str, dict[str, int]] = defaultdict(dict)  # api key -> orderLinkId -> order id
        self._own_link: set[int] = set()  # order ids whose orderLinkId the client chose
        self._dead: dict[int, Order] = {}  # post-only orders cancelled on arrival (never on the book)
        self._dead_seq = 0
        self._request_ids: dict[tuple[str, str], str] = {}  # (api key, requestId) -> withdrawal id
        self._uid_limits: dict[str, tuple[int, float]] | None = None  # enforced per path; None: count only
        self._uid_default: tuple[int, float] | None = None
        self._uid_hits: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._ip_limit: tuple[int, float, float] | None = None  # (requests, window, ban seconds)
        self._ip_hits: deque[float] = deque()
        self._ip_banned_until = 0.0
        self.count_10006 = 0
        self.count_403 = 0

    # ------------------------------------------------------------------ the venue's HTTP surface

    def _install_routes(self) -> None:
        r = self._route
        r("GET", "/v5/market/time", self._time)
        r("GET", "/v5/market/instruments-info", self._instruments)
        r("GET", "/v5/market/orderbook", self._orderbook)
        r("GET", "/v5/market/tickers", self._tickers)
        r("GET", "/v5/user/query-api", self._query_api, signed=True)
        r("GET", "/v5/account/info", self._account_info, signed=True)
        r("GET", "/v5/account/wallet-balance", self._wallet_balance, signed=True)
        r("POST", "/v5/order/create", self._create_order, signed=True)
        r("POST", "/v5/order/cancel", self._cancel, signed=True)
        r("POST", "/v5/order/cancel-all", self._cancel_all, signed=True)
        r("GET", "/v5/order/realtime", self._realtime, signed=True)
        r("GET", "/v5/order/history", self._history, signed=True)
        r("GET", "/v5/execution/list", self._executions, signed=True)
        r("GET", "/v5/asset/coin/query-info", self._coin_info, signed=True)
        r("GET", "/v5/asset/deposit/query-address", self._deposit_addresses, signed=True)
        r("GET", "/v5/asset/deposit/query-record", self._deposit_records, signed=True)
        r("POST", "/v5/asset/withdraw/create", self._withdraw_create, signed=True)
        r("GET", "/v5/asset/withdraw/query-record", self._withdraw_records, signed=True)

    @staticmethod
    def _market_id(base: str, quote: str) -> str:
        """Bybit's spot symbol: BTCUSDT."""
        return base + quote

    def ccxt_config(
        self, api_key: str, secret: str, *, enable_rate_limit: bool = False, timeout_ms: int = 10_000, **_ignored: Any,
    ) -> dict:
        """Constructor dict for ``ccxt.bybit(...)`` with every ``urls['api']`` entry on this server.

        - ``urls.api``: ccxt's own table (spot/futures/v2/public/private, ``https://api.{hostname}``),
          host replaced by ``self.url``, paths kept;
        - ``fetchMarkets.types=['spot']``: load_markets asks for the spot instruments only (ccxt's
          default also loads linear, inverse and option markets);
        - ``enableUnifiedMargin=False, enableUnifiedAccount=True, unifiedMarginStatus=6``: what
          ``is_unified_enabled`` would otherwise learn from GET /v5/user/query-api and
          /v5/account/info on the first fetch_balance / create_order / fetch_order / withdraw (a UTA
          2.0 account: wallet-balance with accountType UNIFIED, withdraw accountType UTA);
        - ``fetchOrder.acknowledged=True``: ccxt refuses fetch_order on a unified account unless told
          that it only finds the 500 most recent orders;
        - ``defaultType='spot'`` (ccxt's default is swap); ``enableRateLimit`` off: the fake enforces
          Bybit's own limits when asked (``rate_limit``)."""
        api = {k: re.sub(r"^https?://[^/]+", self.url, v) for k, v in _ccxt_bybit_api().items()}
        return {
            "apiKey": api_key,
            "secret": secret,
            "enableRateLimit": enable_rate_limit,
            "timeout": timeout_ms,
            "urls": {"api": api},
            "options": {
                "fetchMarkets": {"types": ["spot"]},
                "defaultType": "spot",
                "enableUnifiedMargin": False,
                "enableUnifiedAccount": True,
                "unifiedMarginStatus": 6,
                "fetchOrder": {"acknowledged": True},
                "adjustForTimeDifference": False,
            },
        }

    # ------------------------------------------------------------------ faults and limits

    def _take_fault(self, method: str, path: str) -> Fault | None:
        """The shared ``inject`` faults, answered the way Bybit would: 429 / an explicit ``error_code`` as
        Bybit's envelope (429 -> retCode 10006), 403 / 418 as a plain-text page; other statuses keep the
        shared HTML gateway page."""
        fault = super()._take_fault(method, path)
        if fault is None or fault.body is not None or fault.status == 200:
            return fault
        if fault.error_code is not None or fault.status == 429:
            code = fault.error_code if fault.error_code is not None else 10006
            msg = fault.msg or ("Too many visits!" if code == 10006 else "Injected error.")
            body = json.dumps(self._envelope(code, msg, {}), separators=(",", ":")).encode()
            return replace(fault, body=body)
        if fault.status in (403, 418):
            return replace(fault, body=b"access too frequent")
        return fault

    def rate_limit(
        self, per_window: int | None = None, *, window: float = 1.0,
        per_endpoint: Mapping[str, tuple[int, float]] | None = None, **_binance_only: Any,
    ) -> None:
        """Enforce Bybit's per-UID, per-endpoint limits (rolling window); None and no ``per_endpoint``
        turns enforcement off (requests are still counted for the headers).

        ``per_window``: the limit of every private endpoint (``window`` seconds); ``per_endpoint``:
        ``{path: (requests, seconds)}`` overrides, e.g. ``DOCUMENTED_LIMITS``. Over the limit: HTTP
        200, retCode 10006 "Too many visits!" and ``X-Bapi-Limit-Reset-Timestamp`` (when the oldest
        counted request leaves the window)."""
        if per_window is None and not per_endpoint:
            self._uid_limits = None
            self._uid_default = None
        else:
            self._uid_limits = dict(per_endpoint or {})
            self._uid_default = (int(per_window), float(window)) if per_window is not None else None
        self._uid_hits.clear()
        self.ip_rate_limit(None)

    def ip_rate_limit(self, requests: int | None = 600, *, window: float = 5.0, ban_seconds: float = 600.0) -> None:
        """Bybit's HTTP IP limit (docs: 600 requests per 5 s; then "403, access too frequent" and a ban
        of at least 10 minutes). None turns it off."""
        self._ip_limit = None if requests is None else (int(requests), float(window), float(ban_seconds))
        self._ip_hits.clear()
        self._ip_banned_until = 0.0

    def _limit_of(self, path: str) -> tuple[tuple[int, float] | None, bool]:
        """(limit, enforced) of a private endpoint."""
        if self._uid_limits is not None:
            limit = self._uid_limits.get(path) or self._uid_default
            if limit is not None:
                return limit, True
        return DOCUMENTED_LIMITS.get(path), False

    def _check_uid_limit(self, account: Account, path: str) -> tuple[list[tuple[str, str]], bool]:
        """Count one request of ``account`` on ``path``; (headers, refused)."""
        limit, enforced = self._limit_of(path)
        now = self.now()
        hits = self._uid_hits[(account.api_key, path)]
        span = limit[1] if limit else 1.0
        while hits and hits[0] <= now - span:
            hits.popleft()
        if limit is None:
            hits.append(now)
            return [], False
        count, _window = limit
        if enforced and len(hits) >= count:
            reset = int((hits[0] + span) * 1000)
            self.count_10006 += 1
            return [("X-Bapi-Limit", str(count)), ("X-Bapi-Limit-Status", "0"),
                    ("X-Bapi-Limit-Reset-Timestamp", str(reset))], True
        hits.append(now)
        return [("X-Bapi-Limit", str(count)), ("X-Bapi-Limit-Status", str(max(0, count - len(hits)))),
                ("X-Bapi-Limit-Reset-Timestamp", str(self.now_ms()))], False

    def _check_ip_limit(self) -> bool:
        """True when the request is refused by the IP limit (403)."""
        if self._ip_limit is None:
            return False
        requests, window, ban = self._ip_limit
        now = self.now()
        if now < self._ip_banned_until:
            return True
        while self._ip_hits and self._ip_hits[0] <= now - window:
            self._ip_hits.popleft()
        if len(self._ip_hits) >= requests:
            self._ip_banned_until = now + ban
            return True
        self._ip_hits.append(now)
        return False

    # ------------------------------------------------------------------ request handling

    def _envelope(self, code: int, msg: str, result: Any) -> dict:
        return {"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {}, "time": self.now_ms()}

    def _handle(self, req: Request) -> tuple[int, list[tuple[str, str]], bytes]:
        json_headers = [("Content-Type", "application/json; charset=utf-8")]
        route = self.routes.get((req.method, req.path))
        if route is None:
            self.unknown_paths.append((req.method, req.path))
            return 404, [("Content-Type", "text/html")], b"<html><body><h1>404 Not Found</h1></body></html>"
        self.weight_by_path[req.path] += 1
        if self._check_ip_limit():
            self.count_403 += 1
            return 403, [("Content-Type", "text/plain")], b"access too frequent"
        extra: list[tuple[str, str]] = []
        try:
            self._parse_params(req)
            if route.signed:
                req.account = self._authenticate_bybit(req)
                extra, refused = self._check_uid_limit(req.account, req.path)
                if refused:
                    return 200, json_headers + extra, _dump(self._envelope(10006, "Too many visits!", {}))
            result = route.handler(req)
            return 200, json_headers + extra, _dump(self._envelope(0, "OK", result))
        except ApiError as exc:
            return exc.http_status, json_headers + extra, _dump(self._envelope(exc.code, exc.msg, {}))
        except EngineError as exc:  # a refusal the handler did not translate itself
            return 200, json_headers, _dump(self._envelope(170130, f"Data sent for paramter is not valid: {exc.msg}", {}))
        except WalletError as exc:
            code, msg = _WALLET_CODES.get(exc.code, (131002, "Parameter error"))
            return 200, json_headers, _dump(self._envelope(code, msg, {}))
        except Exception as exc:  # a bug in the fake: Bybit's "Server error", kept visible
            self.internal_errors.append(f"{req.method} {req.path}: {exc!r}")
            return 200, json_headers, _dump(self._envelope(10016, "Server error.", {}))

    @staticmethod
    def _parse_params(req: Request) -> None:
        """GET: the query string; POST: the JSON body (values as text: numbers, booleans, objects)."""
        from urllib.parse import parse_qs

        for key, values in parse_qs(req.raw_query, keep_blank_values=True).items():
            req.params[key] = values[-1]
        if req.method == "POST" and req.body.strip():
            try:
                body = json.loads(req.body)
            except ValueError:
                raise ApiError(10001, "request body is not valid json", 200) from None
            if not isinstance(body, dict):
                raise ApiError(10001, "request body must be a json object", 200)
            for key, value in body.items():
                text = _json_value(value)
                if text is not None:
                    req.params[key] = text

    def _authenticate_bybit(self, req: Request) -> Account:
        h = req.headers
        api_key, sign, ts = h.get("x-bapi-api-key", ""), h.get("x-bapi-sign", ""), h.get("x-bapi-timestamp", "")
        if not api_key or not sign or not ts:
            self.auth_failures.append("missing auth headers")
            raise ApiError(10001, f"empty value: apiTimestamp[{ts}] apiKey[{api_key}] apiSignature[{sign}]: "
                                  "openapi sign params error!", 401)
        account = self.accounts.get(api_key)
        if account is None:
            self.auth_failures.append("unknown api key")
            raise ApiError(10003, "API key is invalid.", 401)
        recv_window = h.get("x-bapi-recv-window") or str(self.recv_window_default)
        if not ts.isdigit() or not recv_window.isdigit():
            raise ApiError(10001, "params error: X-BAPI-TIMESTAMP / X-BAPI-RECV-WINDOW must be integers", 200)
        payload = req.body if req.method == "POST" else req.raw_query
        origin = ts + api_key + recv_window + payload
        if not _compare(account.signature(origin), sign):
            self.auth_failures.append("bad signature")
            raise ApiError(10004, f"error sign! origin_string[{origin}]", 200)
        if self.check_recv_window:
            now_ms, stamp, window = self.now_ms(), int(ts), int(recv_window)
            if not now_ms - window <= stamp < now_ms + 1000:
                self.auth_failures.append("timestamp outside recv_window")
                raise ApiError(10002, "invalid request, please check your server timestamp or recv_window param. "
                                      f"req_timestamp[{stamp}],server_timestamp[{now_ms}],recv_window[{window}]", 200)
        return account

    # ------------------------------------------------------------------ parameters

    @staticmethod
    def _get(req: Request, name: str) -> str | None:
        return req.get(name)

    def _require(self, req: Request, name: str, code: int = 10001) -> str:
        value = req.get(name)
        if value is None:
            if code == 170105:
                raise ApiError(170105, f"Parameter '{name}' was empty.", 200)
            raise ApiError(code, f"params error: {name} is required", 200)
        return value

    @staticmethod
    def _decimal(req: Request, name: str, *, required: bool = False, code: int = 10001) -> Decimal | None:
        text = req.get(name)
        if text is None:
            if required:
                raise ApiError(code, f"Parameter '{name}' was empty." if code == 170105 else
                               f"params error: {name} is required", 200)
            return None
        if not _NUMBER.match(text):
            raise ApiError(code if code != 170105 else 170130,
                           f"Data sent for paramter '{name}' is not valid." if code in (170105, 170130)
                           else f"params error: {name} invalid", 200)
        return Decimal(text)

    @staticmethod
    def _int(req: Request, name: str, default: int | None = None) -> int | None:
        text = req.get(name)
        if text is None:
            return default
        try:
            return int(text)
        except ValueError:
            raise ApiError(10001, f"params error: {name} invalid", 200) from None

    def _limit(self, req: Request, default: int, maximum: int) -> int:
        limit = self._int(req, "limit", default)
        if not 1 <= limit <= maximum:
            raise ApiError(10001, f"params error: limit must be in [1, {maximum}]", 200)
        return limit

    @staticmethod
    def _page(rows: list, req: Request, limit: int) -> tuple[list, str]:
        """One page of ``rows`` after the request's cursor, and the cursor of the next page ("" at the end)."""
        cursor = req.get("cursor")
        offset = 0
        if cursor:
            try:
                offset = int(base64.urlsafe_b64decode(cursor.encode()).decode())
            except (ValueError, UnicodeDecodeError):
                raise ApiError(10001, "params error: cursor invalid", 200) from None
        page = rows[offset: offset + limit]
        more = offset + limit < len(rows)
        nxt = base64.urlsafe_b64encode(str(offset + limit).encode()).decode() if more else ""
        return page, nxt

    def _category(self, req: Request) -> str:
        category = self._require(req, "category")
        if category not in ("spot", "linear", "inverse", "option"):
            raise ApiError(10001, "params error: category invalid", 200)
        return category

    def _window(self, req: Request, days: int) -> tuple[int, int]:
        """[start, end] in ms as Bybit fills in a missing side (``days`` back / forward), checked."""
        span = days * _DAY_MS
        start, end = self._int(req, "startTime"), self._int(req, "endTime")
        now_ms = self.now_ms()
        if start is None and end is None:
            return now_ms - span, now_ms
        if start is None:
            start = end - span
        if end is None:
            end = start + span
        if end < start:
            raise ApiError(10001, "params error: endTime must be after startTime", 200)
        if end - start > span:
            raise ApiError(10001, f"params error: endTime - startTime should be less than {days} days", 200)
        return start, end

    # ------------------------------------------------------------------ market data (public)

    def _time(self, req: Request) -> dict:
        now = self.now()
        return {"timeSecond": str(int(now)), "timeNano": str(int(now * 1e9))}

    def _spot_spec(self, req: Request, *, required: bool = True, code: int = 10001) -> MarketSpec | None:
        symbol = self._require(req, "symbol") if required else req.get("symbol")
        if symbol is None:
            return None
        spec = self.engine.markets.get(symbol)
        if spec is None:
            if code == 170121:
                raise ApiError(170121, "Invalid symbol.", 200)
            raise ApiError(10001, "Not supported symbols", 200)
        return spec

    def _instruments(self, req: Request) -> dict:
        category = self._category(req)
        if category != "spot":  # the fake lists no derivatives
            return {"category": category, "list": [], "nextPageCursor": ""}
        specs = [self._spot_spec(req)] if req.get("symbol") else list(self.engine.markets.values())
        limit = self._limit(req, 500, 1000)
        page, nxt = self._page(specs, req, limit)
        return {"category": "spot", "list": [_instrument_json(i + 1, s) for i, s in enumerate(page)],
                "nextPageCursor": nxt}

    def _orderbook(self, req: Request) -> dict:
        category = self._category(req)
        if category != "spot":
            raise ApiError(10001, "Not supported symbols", 200)
        spec = self._spot_spec(req)
        limit = self._limit(req, 1, 1000)
        update_id, bids, asks = self.engine.depth(spec.symbol, limit)
        now_ms = self.now_ms()
        return {"s": spec.symbol, "b": [[_s(p), _s(q)] for p, q in bids], "a": [[_s(p), _s(q)] for p, q in asks],
                "ts": now_ms, "u": update_id, "seq": update_id, "cts": now_ms}

    def _tickers(self, req: Request) -> dict:
        category = self._category(req)
        if category != "spot":
            return {"category": category, "list": []}
        specs = [self._spot_spec(req)] if req.get("symbol") else list(self.engine.markets.values())
        now_ms = self.now_ms()
        out = []
        for spec in specs:
            t = self.market_data.ticker(spec.symbol, now_ms)
            change = (t["lastPrice"] - t["openPrice"]) / t["openPrice"] if t["openPrice"] else ZERO
            out.append({
                "symbol": spec.symbol, "bid1Price": _s(t["bidPrice"]), "bid1Size": _s(t["bidQty"]),
                "ask1Price": _s(t["askPrice"]), "ask1Size": _s(t["askQty"]), "lastPrice": _s(t["lastPrice"]),
                "prevPrice24h": _s(t["openPrice"]), "price24hPcnt": _s(change.quantize(Decimal("0.0001"))),
                "highPrice24h": _s(t["highPrice"]), "lowPrice24h": _s(t["lowPrice"]),
                "turnover24h": _s(t["quoteVolume"]), "volume24h": _s(t["volume"]), "usdIndexPrice": "",
            })
        return {"category": "spot", "list": out}

    # ------------------------------------------------------------------ account

    def _query_api(self, req: Request) -> dict:
        a = req.account
        return {
            "id": str(a.uid), "note": "fake", "apiKey": a.api_key, "readOnly": 0, "secret": "",
            "permissions": {"ContractTrade": [], "Spot": ["SpotTrade"] if a.can_trade else [],
                            "Wallet": ["AccountTransfer", "Withdraw"] if a.can_withdraw else ["AccountTransfer"],
                            "Options": [], "Derivatives": [], "CopyTrading": [], "BlockTrade": [], "Exchange": [],
                            "NFT": [], "Affiliate": []},
            "ips": ["*"], "type": 1, "deadlineDay": -1, "expiredAt": "", "createdAt": "",
            "unified": 0, "uta": 1, "userID": a.uid, "inviterID": 0, "vipLevel": "No VIP", "mktMakerLevel": "0",
            "affiliateID": 0, "rsaPublicKey": "", "isMaster": True, "parentUid": "0", "kycLevel": "LEVEL_DEFAULT",
            "kycRegion": "",
        }

    def _account_info(self, req: Request) -> dict:
        return {"marginMode": "REGULAR_MARGIN", "updatedTime": str(self.now_ms()), "unifiedMarginStatus": 6,
                "dcpStatus": "OFF", "timeWindow": 10, "smpGroup": 0, "isMasterTrader": False,
                "spotHedgingStatus": "OFF"}

    def _usd_value(self, coin: str, amount: Decimal) -> Decimal:
        if coin in ("USDT", "USDC", "USD"):
            return amount
        spec = self.engine.markets.get(self._market_id(coin, "USDT"))
        if spec is None or spec.symbol not in self.market_data.ladders:
            return ZERO
        return amount * self.market_data.ladders[spec.symbol].mid

    def _wallet_balance(self, req: Request) -> dict:
        account_type = self._require(req, "accountType")
        if account_type != "UNIFIED":
            raise ApiError(10001, "accountType only support UNIFIED.", 200)
        held = self.balances.assets(req.account.api_key)
        wanted = [c for c in (req.get("coin") or "").split(",") if c]
        coins = wanted or [c for c, (free, locked) in held.items() if free + locked != 0]
        rows, total = [], ZERO
        for coin in coins:
            free, locked = held.get(coin, (ZERO, ZERO))
            wallet = free + locked
            usd = self._usd_value(coin, wallet)
            total += usd
            rows.append({
                "coin": coin, "equity": _s(wallet), "usdValue": _s(usd), "walletBalance": _s(wallet),
                "locked": _s(locked), "spotHedgingQty": "0", "borrowAmount": "0", "accruedInterest": "0",
                "totalOrderIM": "0", "totalPositionIM": "0", "totalPositionMM": "0", "unrealisedPnl": "0",
                "cumRealisedPnl": "0", "bonus": "0", "marginCollateral": True, "collateralSwitch": True,
                "spotBorrow": "0", "free": "", "availableToWithdraw": "", "availableToBorrow": "",
            })
        usd = _s(total)
        return {"list": [{
            "accountType": "UNIFIED", "accountIMRate": "0", "accountMMRate": "0", "totalEquity": usd,
            "totalWalletBalance": usd, "totalMarginBalance": usd, "totalAvailableBalance": usd, "totalPerpUPL": "0",
            "totalInitialMargin": "0", "totalMaintenanceMargin": "0", "accountIMRateByMp": "0",
            "accountMMRateByMp": "0", "totalInitialMarginByMp": "0", "totalMaintenanceMarginByMp": "0",
            "accountLTV": "0", "coin": rows,
        }]}

    # ------------------------------------------------------------------ orders

    def _exchange_id(self, order: Order) -> str:
        return str(ORDER_ID_BASE + order.order_id)

    def _link_of(self, order: Order) -> str:
        return order.client_order_id if order.order_id in self._own_link else ""

    def _order_by_id(self, owner: str, text: str) -> Order | None:
        try:
            n = int(text) - ORDER_ID_BASE
        except ValueError:
            return None
        order = self.engine.orders.get(n) or self._dead.get(n)
        return order if order is not None and order.owner == owner else None

    def _order_by_link(self, owner: str, link: str) -> Order | None:
        n = self._links[owner].get(link)
        if n is None:
            return None
        return self.engine.orders.get(n) or self._dead.get(n)

    def _orders_of(self, owner: str, symbol: str | None) -> list[Order]:
        symbols = [symbol] if symbol else list(self.engine.markets)
        out = [o for s in symbols for o in self.engine.all_orders(owner, s)]
        out += [o for o in self._dead.values() if o.owner == owner and (symbol is None or o.symbol == symbol)]
        return out

    def _recent_closed(self, owner: str) -> list[Order]:
        closed = [o for o in self._orders_of(owner, None) if not o.is_open]
        closed.sort(key=lambda o: (o.update_time, o.order_id), reverse=True)
        return closed[:_RECENT_CLOSED]

    def _visible(self, owner: str, order: Order) -> bool:
        """An order /v5/order/realtime still knows: open, or among the 500 most recent closed ones."""
        if self._hidden(order):
            return False
        return order.is_open or any(o is order for o in self._recent_closed(owner))

    def _create_order(self, req: Request) -> dict:
        account = req.account
        if self._category(req) != "spot":
            raise ApiError(10001, "params error: the fake serves category=spot only", 200)
        spec = self._spot_spec(req, code=170121)
        side = {"Buy": BUY, "Sell": SELL}.get(self._require(req, "side", 170105))
        if side is None:
            raise ApiError(170117, "Invalid side.", 200)
        order_type = self._require(req, "orderType", 170105)
        if order_type not in ("Limit", "Market"):
            raise ApiError(170116, "Invalid orderType.", 200)
        if (req.get("isLeverage") or "0") != "0":
            raise ApiError(170130, "Data sent for paramter 'isLeverage' is not valid.", 200)
        if not account.can_trade:
            raise ApiError(10005, "Permission denied, please check your API key permissions.", 200)
        link = req.get("orderLinkId")
        if link is not None:
            if not _LINK_ID.match(link):
                raise ApiError(170130, "Data sent for paramter 'orderLinkId' is not valid.", 200)
            if link in self._links[account.api_key]:
                raise ApiError(170141, "Duplicate clientOrderId.", 200)
        qty = self._decimal(req, "qty", required=True, code=170105)
        tif_in = (req.get("timeInForce") or "GTC").upper()
        if tif_in not in _TIF_IN:
            raise ApiError(170115, "Invalid timeInForce.", 200)
        tif = _TIF_IN[tif_in]
        now_ms = self.now_ms()
        if order_type == "Limit":
            price = self._decimal(req, "price", required=True, code=170105)
            self._check_limit_filters(spec, price, qty)
            engine_type = LIMIT_MAKER if tif == "PostOnly" else LIMIT
            kwargs = {"quantity": qty, "price": price, "time_in_force": None if tif == "PostOnly" else tif}
        else:
            unit = req.get("marketUnit") or ("quoteCoin" if side == BUY else "baseCoin")
            if unit not in ("baseCoin", "quoteCoin"):
                raise ApiError(170130, "Data sent for paramter 'marketUnit' is not valid.", 200)
            if unit == "quoteCoin" and side == SELL:  # the shared engine sells by base quantity only
                raise ApiError(170130, "Data sent for paramter 'marketUnit' is not valid.", 200)
            if unit == "baseCoin":
                self._check_qty(spec, qty)
                kwargs = {"quantity": qty}
            else:
                if qty < spec.min_notional:
                    raise ApiError(170140, "Order value exceeded lower limit", 200)
                kwargs = {"quote_qty": qty}
            engine_type, price = MARKET, None
        try:
            order = self.engine.place_order(account.api_key, spec.symbol, side, engine_type, now_ms=now_ms,
                                            client_order_id=link, **kwargs)
        except EngineError as exc:
            if exc.msg == MSG_INSUFFICIENT:
                raise ApiError(170131, "Insufficient balance.", 200) from None
            if exc.msg == MSG_WOULD_TAKE:  # accepted, then cancelled (docs create-order: PostOnly)
                order = self._dead_post_only(account.api_key, spec, side, price, qty, link, now_ms)
            elif "NOTIONAL" in exc.msg:
                raise ApiError(170140, "Order value exceeded lower limit", 200) from None
            else:
                raise ApiError(170130, f"Data sent for paramter is not valid: {exc.msg}", 200) from None
        self._placed_at[order.order_id] = self.now()
        if link is not None:
            self._links[account.api_key][link] = order.order_id
            self._own_link.add(order.order_id)
        return {"orderId": self._exchange_id(order), "orderLinkId": link or ""}

    def _check_qty(self, spec: MarketSpec, qty: Decimal) -> None:
        if qty <= 0 or not is_multiple(qty, spec.step_size):
            raise ApiError(170137, "Order volume decimal too long", 200)
        if qty < spec.min_qty:
            raise ApiError(170136, "Order quantity lower than the minimum.", 200)
        if qty > spec.max_qty:
            raise ApiError(170381, "Order quantity too large.", 200)

    def _check_limit_filters(self, spec: MarketSpec, price: Decimal, qty: Decimal) -> None:
        if price <= 0 or not is_multiple(price, spec.tick_size):
            raise ApiError(170134, "Order price decimal too long.", 200)
        if price < spec.min_price:
            raise ApiError(170133, "Order price lower than the minimum.", 200)
        if price > spec.max_price:
            raise ApiError(170132, "Order price too high.", 200)
        self._check_qty(spec, qty)
        if price * qty < spec.min_notional:
            raise ApiError(170140, "Order value exceeded lower limit", 200)

    def _dead_post_only(self, owner: str, spec: MarketSpec, side: str, price: Decimal, qty: Decimal,
                        link: str | None, now_ms: int) -> Order:
        self._dead_seq += 1
        n = _DEAD_ID_BASE + self._dead_seq
        order = Order(order_id=n, symbol=spec.symbol, owner=owner, side=side, type=LIMIT_MAKER, time_in_force="GTC",
                      price=price, orig_qty=qty, client_order_id=link or f"fake{n:016d}", time=now_ms,
                      status=CANCELED, update_time=now_ms)
        self._dead[n] = order
        return order

    def _find_for(self, req: Request, owner: str) -> Order | None:
        if req.get("orderId"):
            return self._order_by_id(owner, req.get("orderId"))
        if req.get("orderLinkId"):
            return self._order_by_link(owner, req.get("orderLinkId"))
        return None

    def _cancel(self, req: Request) -> dict:
        owner = req.account.api_key
        if self._category(req) != "spot":
            raise ApiError(10001, "params error: the fake serves category=spot only", 200)
        spec = self._spot_spec(req, code=170121)
        if not req.get("orderId") and not req.get("orderLinkId"):
            raise ApiError(10001, "params error: orderId or orderLinkId is required", 200)
        order = self._find_for(req, owner)
        if (order is None or order.symbol != spec.symbol or not order.is_open
                or (self._not_found_cancel and self._hidden(order))):
            raise ApiError(170213, "Order does not exist.", 200)
        self.engine.cancel_order(owner, spec.symbol, order_id=order.order_id, now_ms=self.now_ms())
        return {"orderId": self._exchange_id(order), "orderLinkId": self._link_of(order)}

    def _cancel_all(self, req: Request) -> dict:
        owner = req.account.api_key
        if self._category(req) != "spot":
            return {"list": [], "success": "1"}
        spec = self._spot_spec(req, required=False, code=170121)
        symbols = [spec.symbol] if spec else list(self.engine.markets)
        cancelled = [o for s in symbols for o in self.engine.cancel_all(owner, s, now_ms=self.now_ms())]
        return {"list": [{"orderId": self._exchange_id(o), "orderLinkId": self._link_of(o)} for o in cancelled],
                "success": "1"}

    def _realtime(self, req: Request) -> dict:
        owner = req.account.api_key
        category = self._category(req)
        limit = self._limit(req, 20, 50)
        if category != "spot":
            return {"category": category, "list": [], "nextPageCursor": ""}
        if req.get("orderId") or req.get("orderLinkId"):  # openOnly is ignored (docs open-order)
            order = self._find_for(req, owner)
            rows = [order] if order is not None and self._visible(owner, order) else []
        else:
            spec = self._spot_spec(req, required=False)
            open_only = self._int(req, "openOnly", 0)
            if open_only == 0:
                rows = [o for o in self._orders_of(owner, spec.symbol if spec else None) if o.is_open]
            else:
                rows = [o for o in self._recent_closed(owner) if spec is None or o.symbol == spec.symbol]
            rows = [o for o in rows if not self._hidden(o)]
            rows.sort(key=lambda o: (o.time, o.order_id), reverse=True)
        page, nxt = self._page(rows, req, limit)
        return {"category": "spot", "list": [self._order_json(o) for o in page], "nextPageCursor": nxt}

    def _history(self, req: Request) -> dict:
        owner = req.account.api_key
        category = self._category(req)
        limit = self._limit(req, 20, 50)
        if category != "spot":
            return {"category": category, "list": [], "nextPageCursor": ""}
        if req.get("orderId") or req.get("orderLinkId"):
            order = self._find_for(req, owner)
            rows = [order] if order is not None and not self._hidden(order) else []
        else:
            spec = self._spot_spec(req, required=False)
            start, end = self._window(req, 7)
            rows = [o for o in self._orders_of(owner, spec.symbol if spec else None)
                    if start <= o.time <= end and not self._hidden(o)]
            rows.sort(key=lambda o: (o.time, o.order_id), reverse=True)
        page, nxt = self._page(rows, req, limit)
        return {"category": "spot", "list": [self._order_json(o) for o in page], "nextPageCursor": nxt}

    def _order_json(self, o: Order) -> dict:
        spec = self.engine.markets[o.symbol]
        dead = o.order_id in self._dead
        status = _STATUS.get(o.status, "Cancelled")
        if o.status in (CANCELED, "EXPIRED") and o.executed_qty > 0:
            status = "PartiallyFilledCanceled"
        fee_coin = spec.base if o.side == BUY else spec.quote
        fee = sum((f.commission for f in o.fills if f.owner == o.owner), ZERO)
        is_market = o.type == MARKET
        leaves = ZERO if not o.is_open else o.remaining
        if o.type == LIMIT_MAKER:
            tif = "PostOnly"
        elif is_market:
            tif = "IOC"
        else:
            tif = o.time_in_force or "GTC"
        market_unit = ("quoteCoin" if o.quote_mode else "baseCoin") if is_market else ""
        qty = o.orig_quote_qty if o.quote_mode else o.orig_qty
        return {
            "orderId": self._exchange_id(o), "orderLinkId": self._link_of(o), "blockTradeId": "",
            "symbol": o.symbol, "price": _s(o.price) if not is_market else "0", "qty": _s(qty),
            "side": "Buy" if o.side == BUY else "Sell", "isLeverage": "0", "positionIdx": 0,
            "orderStatus": status,
            "cancelType": "CancelByUser" if o.status == CANCELED and not dead else "UNKNOWN",
            "rejectReason": "EC_PostOnlyWillTakeLiquidity" if dead else "EC_NoError",
            "avgPrice": _s(o.cum_quote / o.executed_qty) if o.executed_qty > 0 else "",
            "leavesQty": _s(leaves), "leavesValue": _s(leaves * o.price) if not is_market else "0",
            "cumExecQty": _s(o.executed_qty), "cumExecValue": _s(o.cum_quote), "cumExecFee": _s(fee),
            "cumFeeDetail": {fee_coin: _s(fee)} if fee > 0 else {},
            "timeInForce": tif, "orderType": "Market" if is_market else "Limit", "stopOrderType": "",
            "orderIv": "", "marketUnit": market_unit, "triggerPrice": "0", "takeProfit": "0", "stopLoss": "0",
            "tpLimitPrice": "0", "slLimitPrice": "0", "tpTriggerBy": "", "slTriggerBy": "", "triggerDirection": 0,
            "triggerBy": "", "lastPriceOnCreated": "", "reduceOnly": False, "closeOnTrigger": False,
            "placeType": "", "smpType": "None", "smpGroup": 0, "smpOrderId": "", "ocoTriggerBy": "",
            "createdTime": str(o.time), "updatedTime": str(o.update_time),
        }

    # ------------------------------------------------------------------ executions

    def _executions(self, req: Request) -> dict:
        owner = req.account.api_key
        category = self._category(req)
        limit = self._limit(req, 50, 100)
        if category != "spot":
            return {"category": category, "list": [], "nextPageCursor": ""}
        exec_type = req.get("execType")
        if req.get("orderId") or req.get("orderLinkId"):  # they win over every other filter (docs)
            order = self._find_for(req, owner)
            fills = [f for f in self.engine.fills(owner, order.symbol) if f.order_id == order.order_id] \
                if order is not None and order.order_id in self.engine.orders else []
        else:
            spec = self._spot_spec(req, required=False)
            start, end = self._window(req, 7)
            symbols = [spec.symbol] if spec else list(self.engine.markets)
            fills = [f for s in symbols for f in self.engine.fills(owner, s) if start <= f.time <= end]
        if exec_type is not None and exec_type != "Trade":
            fills = []
        fills.sort(key=lambda f: (f.time, f.trade_id), reverse=True)
        page, nxt = self._page(fills, req, limit)
        return {"category": "spot", "list": [self._execution_json(f) for f in page], "nextPageCursor": nxt}

    def _execution_json(self, f: Fill) -> dict:
        order = self.engine.orders[f.order_id]
        spec = self.engine.markets[f.symbol]
        done = sum((x.qty for x in order.fills if x.owner == f.owner and (x.time, x.trade_id) <= (f.time, f.trade_id)),
                   ZERO)
        leaves = ZERO if order.type == MARKET else max(ZERO, order.orig_qty - done)
        return {
            "symbol": f.symbol, "orderId": self._exchange_id(order), "orderLinkId": self._link_of(order),
            "side": "Buy" if f.side == BUY else "Sell", "orderPrice": _s(order.price), "orderQty": _s(order.orig_qty),
            "leavesQty": _s(leaves), "orderType": "Market" if order.type == MARKET else "Limit",
            "stopOrderType": "", "execFee": _s(f.commission), "execId": str(EXEC_ID_BASE + f.trade_id),
            "execPrice": _s(f.price), "execQty": _s(f.qty), "execType": "Trade", "execValue": _s(f.quote_qty),
            "execTime": str(f.time), "feeCurrency": f.commission_asset, "isMaker": f.is_maker,
            "feeRate": _s(spec.maker_fee if f.is_maker else spec.taker_fee), "tradeIv": "", "markIv": "",
            "markPrice": "", "indexPrice": "", "underlyingPrice": "", "blockTradeId": "", "closedSize": "",
            "seq": f.trade_id, "extraFees": "",
        }

    # ------------------------------------------------------------------ wallet

    def _coin_info(self, req: Request) -> dict:
        wanted = req.get("coin")
        rows = []
        for code, cur in sorted(self.wallet.currencies.items()):
            if wanted is not None and code != wanted:
                continue
            rows.append({"name": cur.name, "coin": code, "remainAmount": "0",
                         "chains": [_chain_json(n) for n in cur.networks.values()]})
        return {"rows": rows}

    def _deposit_addresses(self, req: Request) -> dict:
        coin = self._require(req, "coin")
        cur = self.wallet.currencies.get(coin)
        if cur is None or not cur.networks:
            raise ApiError(10001, "params error: coin not supported", 200)
        chain = req.get("chainType")
        if chain is not None and chain not in cur.networks:
            raise ApiError(10001, "params error: chainType not supported", 200)
        nets = [cur.networks[chain]] if chain else [n for n in cur.networks.values() if n.deposit_enable]
        if chain and not nets[0].deposit_enable:
            raise ApiError(10001, f"params error: deposits on chainType {chain} are suspended", 200)
        chains = []
        for net in nets:
            address, tag, _url = self.wallet.deposit_address(req.account.api_key, coin, net.network)
            chains.append({"chainType": net.name, "addressDeposit": address, "tagDeposit": tag or "",
                           "chain": net.network, "batchReleaseLimit": "-1",
                           "contractAddress": (net.contract_address or "")[-6:]})
        return {"coin": coin, "chains": chains}

    def _deposit_records(self, req: Request) -> dict:
        owner = req.account.api_key
        limit = self._limit(req, 50, 50)
        dep_id, txid, coin = req.get("id"), req.get("txID"), req.get("coin")
        if dep_id is not None:  # the highest priority filter (docs deposit-record)
            rows = [d for d in self.wallet.deposits if d.account == owner and d.id == dep_id]
        else:
            start, end = self._window(req, 30)
            rows = [d for d in self.wallet.deposits
                    if d.account == owner and start <= d.insert_ms <= end and (coin is None or d.coin == coin)
                    and (txid is None or d.txid == txid)]
        rows.sort(key=lambda d: (d.insert_ms, d.id), reverse=True)
        page, nxt = self._page(rows, req, limit)
        return {"rows": [self._deposit_json(d) for d in page], "nextPageCursor": nxt}

    def _deposit_json(self, d: Deposit) -> dict:
        net = self.wallet.network(d.coin, d.network)
        done = d.status != DEPOSIT_PENDING
        return {
            "coin": d.coin, "chain": d.network, "amount": _s(d.amount), "txID": d.txid, "status": 3 if done else 1,
            "toAddress": d.address, "tag": d.tag, "depositFee": "",
            "successAt": str(d.complete_ms if done and d.complete_ms is not None else d.insert_ms),
            "confirmations": str(net.min_confirm if done else 0), "txIndex": "0", "blockHash": "",
            "batchReleaseLimit": "-1", "depositType": "0", "fromAddress": "", "taxDepositRecordsId": "0",
            "taxStatus": 0, "id": d.id,
        }

    def _withdraw_create(self, req: Request) -> dict:
        """POST /v5/asset/withdraw/create through the shared wallet and withdrawal faults (as the
        Binance handler ``_withdraw_apply`` does: ``withdrawal_faults``, ``_use_withdrawal_fault``,
        ``wallet.withdraw``, ``_tick``)."""
        account = req.account
        if not account.can_withdraw:
            raise ApiError(10005, "Permission denied, please check your API key permissions.", 200)
        coin = self._require(req, "coin")
        amount = self._decimal(req, "amount", required=True)
        address = self._require(req, "address")
        self._require(req, "timestamp")
        account_type = self._require(req, "accountType")
        if account_type not in _ACCOUNT_TYPES:
            raise ApiError(10001, "params error: accountType invalid", 200)
        force_chain = self._int(req, "forceChain", 0)
        if force_chain == 2:
            raise ApiError(10001, "params error: the fake does not withdraw to a Bybit UID (forceChain=2)", 200)
        chain = self._require(req, "chain")
        fee_type = self._int(req, "feeType", 0)
        if fee_type not in (0, 1):
            raise ApiError(10001, "params error: feeType invalid", 200)
        request_id = req.get("requestId")
        if request_id is not None:
            if not _REQUEST_ID.match(request_id):
                raise ApiError(10001, "params error: requestId invalid", 200)
            if (account.api_key, request_id) in self._request_ids:
                raise ApiError(131082, "Do not repeat the request", 200)
        net = self.wallet.network(coin, chain)
        # feeType 0: ``amount`` is what arrives, the fee is debited on top; 1: the fee comes out of it
        debit = amount + net.withdraw_fee if fee_type == 0 else amount
        fault = next((f for f in self.withdrawal_faults if f.remaining > 0 and f.coin in (None, coin)), None)
        delay, final_status = self.withdraw_delay, WITHDRAW_COMPLETED
        if fault is not None and fault.kind == "reject":
            self._use_withdrawal_fault(fault, None)
            raise ApiError(131097, "Withdrawal of this currency has been closed", 200)
        if fault is not None and fault.kind == "stuck":
            delay = None
        elif fault is not None and fault.kind == "fail_later":
            final_status = WITHDRAW_FAILURE
        if net.withdraw_enable and amount < net.withdraw_min:  # the minimum applies to the amount asked for
            raise ApiError(131096, "Withdraw amount does not satify the lower limit or upper limit", 200)
        free = self.balances.free(account.api_key, coin)
        if fee_type == 0 and amount <= free < debit:
            raise ApiError(131001, "the available balance is not sufficient to cover the handling fee", 200)
        wd = self.wallet.withdraw(
            account=account.api_key, coin=coin, network=net.network, address=address, tag=req.get("tag") or "",
            amount=debit, now=self.now(), delay=delay, withdraw_order_id=request_id or "", final_status=final_status,
        )
        if fault is not None:
            self._use_withdrawal_fault(fault, wd.id)
        if request_id is not None:
            self._request_ids[(account.api_key, request_id)] = wd.id
        self._tick()  # a zero delay completes at once
        return {"id": wd.id}

    def _withdraw_records(self, req: Request) -> dict:
        owner = req.account.api_key
        limit = self._limit(req, 50, 50)
        wd_id, txid, coin = req.get("withdrawID"), req.get("txID"), req.get("coin")
        withdraw_type = self._int(req, "withdrawType", 0)
        if withdraw_type not in (0, 1, 2):
            raise ApiError(10001, "params error: withdrawType invalid", 200)
        if wd_id is not None:
            rows = [w for w in self.wallet.withdrawals if w.account == owner and w.id == wd_id]
        else:
            start, end = self._window(req, 30)
            rows = [w for w in self.wallet.withdrawals
                    if w.account == owner and start <= w.apply_ms <= end and (coin is None or w.coin == coin)
                    and (txid is None or w.txid == txid)]
        if withdraw_type == 1:  # every withdrawal of the fake goes on chain
            rows = []
        rows.sort(key=lambda w: (w.apply_ms, w.id), reverse=True)
        page, nxt = self._page(rows, req, limit)
        return {"rows": [_withdrawal_json(w) for w in page], "nextPageCursor": nxt}

    # ------------------------------------------------------------------ helpers for tests

    def order_id_of(self, api_key: str, order_link_id: str) -> str | None:
        """Bybit's orderId (text) of the account's order with this orderLinkId, or None."""
        order = self._order_by_link(api_key, order_link_id)
        return None if order is None else self._exchange_id(order)


# ---------------------------------------------------------------------- JSON shapes


def _instrument_json(symbol_id: int, s: MarketSpec) -> dict:
    return {
        "symbolId": symbol_id, "symbol": s.symbol, "baseCoin": s.base, "quoteCoin": s.quote, "innovation": "0",
        "status": "Trading" if s.status == "TRADING" else "Closed", "marginTrading": "none", "stTag": "0",
        "lotSizeFilter": {
            "basePrecision": _s(s.step_size), "quotePrecision": "0.00000001", "minOrderQty": _s(s.min_qty),
            "maxOrderQty": _s(s.max_qty), "minOrderAmt": _s(s.min_notional), "maxOrderAmt": _s(s.max_notional),
            "maxLimitOrderQty": _s(s.max_qty), "maxMarketOrderQty": _s(s.max_qty),
            "postOnlyMaxLimitOrderSize": _s(s.max_qty * 5),
        },
        "priceFilter": {"tickSize": _s(s.tick_size)},
        "riskParameters": {"priceLimitRatioX": "0.05", "priceLimitRatioY": "0.1"},
        "symbolType": "",
    }


def _accuracy(step: Decimal) -> str:
    """Bybit's ``minAccuracy``: the number of decimal places of the withdrawal step."""
    exponent = step.normalize().as_tuple().exponent
    return str(max(0, -exponent))


def _chain_json(n: NetworkConfig) -> dict:
    return {
        "chain": n.network, "chainType": n.name, "confirmation": str(n.min_confirm),
        "withdrawFee": _s(n.withdraw_fee), "depositMin": _s(n.deposit_dust), "withdrawMin": _s(n.withdraw_min),
        "minAccuracy": _accuracy(n.withdraw_multiple), "chainDeposit": "1" if n.deposit_enable else "0",
        "chainWithdraw": "1" if n.withdraw_enable else "0", "withdrawPercentageFee": "0",
        "contractAddress": n.contract_address, "safeConfirmNumber": str(n.min_confirm),
        "withdrawMax": _s(n.withdraw_max),
    }


def _withdrawal_json(w: Withdrawal) -> dict:
    return {
        "coin": w.coin, "chain": w.network, "amount": _s(w.net_amount), "txID": w.txid,
        "status": _WITHDRAW_STATUS.get(w.status, "Unknown"), "toAddress": w.address, "tag": w.tag,
        "withdrawFee": _s(w.fee), "createTime": str(w.apply_ms),
        "updateTime": str(w.complete_ms if w.complete_ms is not None else w.apply_ms), "withdrawId": w.id,
        "withdrawType": 0, "tax": "0", "taxRate": "0", "taxType": "",
    }


def _compare(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


_CCXT_API: dict[str, str] | None = None


def _ccxt_bybit_api() -> dict[str, str]:
    """ccxt's own bybit ``urls['api']`` table (ccxt imported lazily, once)."""
    global _CCXT_API
    if _CCXT_API is None:
        import ccxt  # the project's pinned ccxt

        _CCXT_API = {k: v for k, v in ccxt.bybit().urls["api"].items() if isinstance(v, str)}
    return _CCXT_API


FAKE = FakeBybit
