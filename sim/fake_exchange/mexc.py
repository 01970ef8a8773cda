"""MEXC spot dialect of the fake exchange: the unmodified ``ccxt.mexc`` (4.5.90) works against it.

Only the venue's HTTP surface differs from the Binance fake (``server.FakeExchange``): routes,
parameter names, signatures, weights, error shapes, ids and JSON field names. The matching
engine, balances, wallet (deposits, withdrawals, withdrawal faults), market data, clock, fault
injection and the test helpers are the shared ones.

Where each behaviour comes from (MEXC spot v3 docs: www.mexc.com/api-docs/spot-v3, mirrored in
github.com/mexcdevelop/apidocs; ccxt 4.5.90 ``ccxt/mexc.py``: request building, response parsing and
its sample responses; JKorf/Mexc.Net ``MexcErrors.cs``: MEXC's spot error codes by meaning):

- signature: HMAC-SHA256 (hex, lowercase) of the query string concatenated with the request body,
  key in header ``X-MEXC-APIKEY``; ``timestamp`` accepted if ``timestamp < server + 1000`` and
  ``server - timestamp <= recvWindow`` (default 5000, max 60000) — docs "General Info"/"SIGNED"/
  "Timing security"; ccxt ``sign()`` puts every parameter in the query, also for POST/DELETE.
- errors: HTTP 400 + ``{"code": ..., "msg": ...}``; ccxt's ``handle_errors`` maps the body's code
  (exact table) or message (broad table) and raises ``ExchangeError`` for any other code:
  ``-2013 "Order does not exist."`` (unknown order on GET /order: ccxt issue #21614 — NOT in ccxt's
  table, so ccxt raises a plain ExchangeError), ``-2011 "Unknown order sent."`` (cancel; BadRequest),
  ``30004 "Insufficient position"`` (order without funds; InsufficientFunds), ``10101 "Insufficient
  balance"`` (withdrawal without funds; InsufficientFunds), ``-1121 "Invalid symbol."`` (BadSymbol),
  ``700001`` API key (AuthenticationError), ``700002`` bad signature (AuthenticationError), ``700003``
  timestamp outside recvWindow (InvalidNonce), ``700005`` recvWindow > 60000 (InvalidNonce), ``10232``
  unknown coin/chain on withdraw (BadRequest, ccxt issue #19924).
- rate limit: HTTP 429 with ``{"code":429,"msg":"Too Many Requests"}`` and ``Retry-After`` (docs
  "LIMITS": 429 "Too Many Requests", Retry-After on 418/429; ccxt exact '429' -> RateLimitExceeded);
  a banned client gets HTTP 418 (docs) whose body carries no code, so ccxt raises DDoSProtection from
  the HTTP status. Limits are per endpoint ("Each endpoint with IP limits has an independent 500
  every 10 second limit"); ``rate_limit(n, window=10)`` turns them on, ``inject(path, status=429)``
  answers MEXC's 429 shape.
- markets: ``GET /api/v3/exchangeInfo`` with digit precisions (``baseAssetPrecision`` /
  ``quoteAssetPrecision``: ccxt reads them as 10^-n, so ticks and steps must be powers of ten),
  ``baseSizePrecision`` = minimum quantity, ``quoteAmountPrecision`` = minimum order value, status
  ``"1"`` = online (ccxt: active only if status == '1'). ccxt 4.5.90's ``fetch_markets`` ALWAYS also
  fetches swap markets (``GET /api/v1/contract/detail``, it ignores ``options.fetchMarkets``): served
  here with no contracts.
- currencies: ``GET /api/v3/capital/config/getall``: ``networkList[].netWork`` is the network id
  ccxt uses (TRX, ETH, BSC, BTC -> TRC20, ERC20, BEP20, BTC through ccxt's network aliases),
  ``network`` the older name that ccxt sends back as ``network`` when asking for a deposit address.
- orders: ``POST /api/v3/order`` (``LIMIT``, ``LIMIT_MAKER`` = ccxt's postOnly, ``MARKET``,
  ``IMMEDIATE_OR_CANCEL``, ``FILL_OR_KILL``; ``newClientOrderId``), answer ``{symbol, orderId,
  orderListId, price, origQty, type, side, transactTime}``; ids are strings like ``C02__...``
  (ccxt's sample); statuses NEW, PARTIALLY_FILLED, FILLED, CANCELED, PARTIALLY_CANCELED.
  ``GET``/``DELETE /api/v3/order`` by ``orderId`` or ``origClientOrderId``; ``GET /api/v3/openOrders``;
  ``GET /api/v3/myTrades`` (limit default 100, max 100).
- wallet: ``GET /api/v3/capital/deposit/address`` (list of ``{coin, network, address, memo,
  netWork}``), ``GET /api/v3/capital/deposit/hisrec`` (no ``id`` field: ccxt tells a deposit from a
  withdrawal by the absence of ``id``), ``POST /api/v3/capital/withdraw`` (``coin, address, amount,
  netWork, memo, withdrawOrderId, remark`` -> ``{"id"}``), ``GET /api/v3/capital/withdraw/history``
  (``amount`` includes the fee, ``withdrawOrderId`` echoed when one was given; status 1-6 pending,
  7 success, 8 failed, 9 cancelled). Deposit status 4 pending, 5 success.

Not established from any source, modelled and marked as such: MEXC's answer to a LIMIT_MAKER that
would cross (here: refused, 30041, nothing placed), to a duplicate ``newClientOrderId`` (here: the
engine's ``-2010 "Duplicate order sent."``, which ccxt.mexc does not map), to a withdrawal of a
suspended coin/network (here: 10206 "transfer is disabled"), the 418 body, the used-weight headers
(none documented: none sent).

Options of the real venue, off by default: ``require_address_book`` (MEXC refuses API withdrawals
to addresses outside the account's withdrawal address book, error 10212; ``add_withdraw_address``),
``addresses_need_generation`` (a deposit address exists only once created with
``POST /api/v3/capital/deposit/address``; before that GET lists none and ccxt raises InvalidAddress).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import parse_qs

from .engine import (
    BUY,
    CANCELED,
    EXPIRED,
    FILLED,
    LIMIT,
    LIMIT_MAKER,
    MARKET,
    NEW,
    PARTIALLY_FILLED,
    SELL,
    EngineError,
    Fill,
    MarketSpec,
    Order,
)
from .faults import Fault, RateLimiter
from .numbers import ZERO, D, fmt_plain
from .server import ApiError, FakeExchange, Request, _dumps, _without_signature
from .wallet import (
    DEPOSIT_SUCCESS,
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

_CCXT_TEMPLATE: dict | None = None
_DAY_MS = 86_400_000
_ORDER_ID = re.compile(r"^C02__(\d{21})$")
_ORDER_ID_BASE = 600_000_000_000_000_000_000  # order ids look like ccxt's sample "C02__342252993005723644225"
_JSON = [("Content-Type", "application/json")]

# The older network names MEXC lists as `network` next to the `netWork` id (docs: config/getall,
# deposit/address samples: "TRC20", "ERC20", "BEP20(BSC)", "BTC"); other ids are shown as they are.
LEGACY_NETWORK_NAMES = {"TRX": "TRC20", "ETH": "ERC20", "BSC": "BEP20(BSC)", "BTC": "BTC", "SOL": "Solana(SOL)",
                        "XRP": "Ripple(XRP)", "TONCOIN": "Toncoin(TON)", "XLM": "Stellar(XLM)", "EOS": "EOS"}

# IP weights of the docs ("Weight(IP)" of each endpoint); anything else weighs 1.
_WEIGHTS = {
    ("GET", "/api/v3/exchangeInfo"): 10,
    ("GET", "/api/v3/ticker/24hr"): 1,
    ("GET", "/api/v3/account"): 10,
    ("GET", "/api/v3/order"): 2,
    ("GET", "/api/v3/openOrders"): 3,
    ("GET", "/api/v3/allOrders"): 10,
    ("GET", "/api/v3/myTrades"): 10,
    ("GET", "/api/v3/capital/config/getall"): 10,
    ("GET", "/api/v3/capital/deposit/address"): 10,
    ("GET", "/api/v3/capital/withdraw/address"): 10,
}

# MEXC status codes of a withdrawal / deposit record for the wallet's (Binance-numbered) statuses.
_WITHDRAW_STATUS = {WITHDRAW_PROCESSING: 4, WITHDRAW_COMPLETED: 7, WITHDRAW_CANCELLED: 9, WITHDRAW_REJECTED: 8,
                    WITHDRAW_FAILURE: 8}
_DEPOSIT_STATUS = {0: 4, DEPOSIT_SUCCESS: 5}

# ApiErrors raised by the shared helpers (Binance numbering) -> MEXC (code, msg or None = keep).
_API_CODES: dict[int, tuple[int, str | None]] = {
    -1100: (700008, None),                                   # illegal characters in a parameter
    -1102: (44444, None),                                    # mandatory parameter missing
    -1002: (700007, "No permission to access the endpoint"),
    -4019: (10206, "transfer is disabled"),                  # the "reject" withdrawal fault (not established)
}
_WALLET_CODES: dict[int, tuple[int, str]] = {
    -4018: (10232, "The currency not exist. Please check coin name and chain is correct."),
    -4019: (10206, "transfer is disabled"),
    -4007: (730002, "Your input param is invalid"),
    -4008: (730002, "Your input param is invalid"),
    -4021: (10096, "amount decimal places is too long"),
    -4022: (10097, "amount is error"),
    -4023: (10097, "amount is error"),
    -4028: (10097, "amount is error"),
    -4026: (10101, "Insufficient balance"),
}


class FakeMexc(FakeExchange):
    """MEXC spot (``/api/v3``) fake; see the module docstring for the surface and its sources."""

    venue = "mexc"
    # canonical network -> MEXC's netWork id, as ccxt 4.5.90 maps them (options.networks and its
    # network aliases: TRC20 <-> TRX, ERC20 <-> ETH, BEP20 <-> BSC; BTC is BTC)
    NETWORK_IDS: ClassVar[dict[str, str]] = {"BTC": "BTC", "ERC20": "ETH", "TRC20": "TRX", "BEP20": "BSC"}

    def __init__(self, **kwargs: Any) -> None:
        self.require_address_book = False
        self.address_book: set[tuple[str, str, str, str, str]] = set()  # (api key, coin, network, address, tag)
        self.addresses_need_generation = False
        self._generated: set[tuple[str, str, str]] = set()  # (api key, coin, network)
        self._endpoint_limiters: dict[str, RateLimiter] = {}
        self._limiter_source: RateLimiter | None = None
        self._remarks: dict[str, str] = {}  # withdrawal id -> remark
        super().__init__(**kwargs)

    # ------------------------------------------------------------------ the venue's HTTP surface

    def _install_routes(self) -> None:
        r = self._route
        r("GET", "/api/v3/ping", lambda req: {})
        r("GET", "/api/v3/time", lambda req: {"serverTime": self.now_ms()})
        r("GET", "/api/v3/exchangeInfo", self._m_exchange_info)
        r("GET", "/api/v3/depth", self._m_depth)
        r("GET", "/api/v3/ticker/24hr", self._m_ticker_24hr)
        r("GET", "/api/v3/ticker/bookTicker", self._m_book_ticker)
        r("GET", "/api/v3/ticker/price", self._m_ticker_price)
        # ccxt 4.5.90 mexc.fetch_markets always asks for the swap markets too: this venue lists none
        r("GET", "/api/v1/contract/detail", lambda req: {"success": True, "code": 0, "data": []})
        r("GET", "/api/v3/account", self._m_account, signed=True)
        r("POST", "/api/v3/order", self._m_new_order, signed=True)
        r("GET", "/api/v3/order", self._m_query_order, signed=True)
        r("DELETE", "/api/v3/order", self._m_cancel_order, signed=True)
        r("GET", "/api/v3/openOrders", self._m_open_orders, signed=True)
        r("DELETE", "/api/v3/openOrders", self._m_cancel_open_orders, signed=True)
        r("GET", "/api/v3/allOrders", self._m_all_orders, signed=True)
        r("GET", "/api/v3/myTrades", self._m_my_trades, signed=True)
        r("GET", "/api/v3/capital/config/getall", self._m_config_getall, signed=True)
        r("GET", "/api/v3/capital/deposit/address", self._m_deposit_address, signed=True)
        r("POST", "/api/v3/capital/deposit/address", self._m_create_deposit_address, signed=True)
        r("GET", "/api/v3/capital/deposit/hisrec", self._m_deposit_history, signed=True)
        r("POST", "/api/v3/capital/withdraw", self._m_withdraw, signed=True)
        r("GET", "/api/v3/capital/withdraw/history", self._m_withdraw_history, signed=True)
        r("GET", "/api/v3/capital/withdraw/address", self._m_withdraw_addresses, signed=True)

    def ccxt_config(
        self, api_key: str, secret: str, *, enable_rate_limit: bool = False, timeout_ms: int = 10_000, **_: Any,
    ) -> dict:
        """Constructor dict for ``ccxt.mexc(...)``: every URL of ccxt's ``urls['api']`` (spot, spot2,
        contract, broker) on this server, paths kept; ccxt's throttle off; ``adjustForTimeDifference``
        off. ``fetchMarkets.types`` asks for spot only, but ccxt 4.5.90's mexc ignores it (this server
        answers the contract call with no markets). ccxt.mexc has one error table (no per-hostname
        tables as binance has): nothing to merge."""
        template = _ccxt_mexc_template()
        api = _rehost(template["api"], self.url)
        return {
            "apiKey": api_key,
            "secret": secret,
            "enableRateLimit": enable_rate_limit,
            "timeout": timeout_ms,
            "urls": {"api": api},
            "options": {
                "defaultType": "spot",
                "adjustForTimeDifference": False,
                "fetchMarkets": {"types": {"spot": True, "swap": {"linear": False, "inverse": False}}},
            },
        }

    @staticmethod
    def _market_id(base: str, quote: str) -> str:
        """MEXC's spot market id: BTCUSDT (exchangeInfo ``symbol``; ccxt's samples)."""
        return base + quote

    def add_market(self, symbol: str = "BTC/USDT", base: str = "BTC", quote: str = "USDT", **kwargs: Any) -> MarketSpec:
        """As the shared ``add_market``; MEXC states precisions as digit counts, so the tick and the
        step must be powers of ten."""
        for name, default in (("tick_size", "0.01"), ("step_size", "0.00001")):
            _digits(D(kwargs.get(name, default)), name)
        return super().add_market(symbol, base, quote, **kwargs)

    def add_withdraw_address(self, api_key: str, coin: str, network: str, address: str, tag: str | None = None) -> None:
        """Put an address in the account's withdrawal address book (see ``require_address_book``)."""
        self._account_of(api_key)
        self.address_book.add((api_key, coin, network, address, tag or ""))

    def inject(self, path_prefix: str = "/", *, status: int = 429, error_code: int | None = None,
               msg: str | None = None, body: bytes | str | None = None, **kwargs: Any) -> Fault:
        """The shared ``inject``; a 429 / 418 without an explicit body answers as MEXC does."""
        if body is None and error_code is None and status in (418, 429):
            body = _limit_body(status, msg)
        return super().inject(path_prefix, status=status, error_code=error_code, msg=msg, body=body, **kwargs)

    # ------------------------------------------------------------------ request handling

    def _handle(self, req: Request) -> tuple[int, list[tuple[str, str]], bytes]:
        route = self.routes.get((req.method, req.path))
        if route is None:
            self.unknown_paths.append((req.method, req.path))
            return 404, [("Content-Type", "text/html")], b"<html><body><h1>404 Not Found</h1></body></html>"
        content_type = req.headers.get("content-type", "")
        if "json" in content_type and req.body.strip().startswith("{"):
            try:
                for key, value in json.loads(req.body).items():
                    req.params[key] = value if isinstance(value, str) else json.dumps(value)
            except ValueError:
                return self._error(ApiError(700008, "Illegal characters found in parameter"))
        elif req.body:
            for key, values in parse_qs(req.body, keep_blank_values=True).items():
                req.params[key] = values[-1]
        for key, values in parse_qs(req.raw_query, keep_blank_values=True).items():
            req.params[key] = values[-1]  # "If a parameter is sent in both, the query string one is used."

        weight = _WEIGHTS.get((req.method, req.path), 1)
        self.weight_total["api"] += weight
        self.weight_by_path[req.path] += weight
        refused = self._endpoint_limiter(req.path).check(self.now(), weight)
        if refused is not None:
            status, headers, _binance_body = refused
            return status, [h for h in headers if h[0] != "Content-Type"] + _JSON, _limit_body(status)
        try:
            if route.signed:
                req.account = self._m_authenticate(req)
            payload = _dumps(route.handler(req))
        except ApiError as exc:
            return self._error(exc)
        except EngineError as exc:
            return self._error(_engine_error(exc))
        except WalletError as exc:
            code, msg = _WALLET_CODES.get(exc.code, (exc.code, exc.msg))
            return self._error(ApiError(code, msg))
        except Exception as exc:  # noqa: BLE001  (a bug in the fake: MEXC's internal error, kept visible)
            self.internal_errors.append(f"{req.method} {req.path}: {exc!r}")
            return 500, list(_JSON), _dumps({"code": 500, "msg": "Internal error"})
        return 200, list(_JSON), payload

    def _error(self, exc: ApiError) -> tuple[int, list[tuple[str, str]], bytes]:
        code, msg = exc.code, exc.msg
        if code in _API_CODES:
            code, new_msg = _API_CODES[code]
            msg = new_msg or msg
        return exc.http_status, list(_JSON), _dumps({"code": code, "msg": msg})

    def _endpoint_limiter(self, path: str) -> RateLimiter:
        """Each endpoint has its own budget (docs); the limits follow the shared ``rate_limit()``."""
        source = self.rate_limiter
        if self._limiter_source is not source:
            self._limiter_source, self._endpoint_limiters = source, {}
        limiter = self._endpoint_limiters.get(path)
        if limiter is None:
            limiter = RateLimiter(source.limit, window=source.window, ban_after=source.ban_after,
                                  ban_seconds=source.ban_seconds, name=path, origin=source.origin)
            self._endpoint_limiters[path] = limiter
        return limiter

    def _m_authenticate(self, req: Request):
        api_key = req.headers.get("x-mexc-apikey")
        account = self.accounts.get(api_key) if api_key else None
        if account is None:
            self.auth_failures.append("no api key" if not api_key else "unknown api key")
            raise ApiError(700001, "API-key format invalid.")
        signature = req.get("signature")
        payload = _without_signature(req.raw_query) + _without_signature(req.body)
        if signature is None or not hmac.compare_digest(account.signature(payload), signature):
            self.auth_failures.append("bad signature")
            raise ApiError(700002, "Signature for this request is not valid.")
        timestamp = _int(req, "timestamp")
        if timestamp is None:
            raise ApiError(44444, "param cannot be null: timestamp")
        recv_window = _int(req, "recvWindow", self.recv_window_default)
        if recv_window > 60000:
            raise ApiError(700005, "recvWindow must less than 60000")
        if self.check_recv_window:
            now_ms = self.now_ms()
            if not (timestamp < now_ms + 1000 and now_ms - timestamp <= recv_window):
                self.auth_failures.append("timestamp outside recvWindow")
                raise ApiError(700003, "Timestamp for this request is outside of the recvWindow.")
        return account

    # ------------------------------------------------------------------ market data

    def _m_spec(self, req: Request, *, required: bool = True) -> MarketSpec | None:
        symbol = req.get("symbol")
        if symbol is None:
            if required:
                raise ApiError(44444, "param cannot be null: symbol")
            return None
        spec = self.engine.markets.get(symbol)
        if spec is None:
            raise ApiError(-1121, "Invalid symbol.")
        return spec

    def _m_exchange_info(self, req: Request) -> dict:
        names = req.get("symbols") or req.get("symbol")
        if names:
            specs = []
            for name in names.split(","):
                if name not in self.engine.markets:
                    raise ApiError(-1121, "Invalid symbol.")
                specs.append(self.engine.markets[name])
        else:
            specs = list(self.engine.markets.values())
        return {"timezone": "CST", "serverTime": self.now_ms(), "rateLimits": [], "exchangeFilters": [],
                "symbols": [_symbol_info(s) for s in specs]}

    def _m_depth(self, req: Request) -> dict:
        spec = self._m_spec(req)
        limit = _int(req, "limit", 100)
        if not 1 <= limit <= 5000:
            raise ApiError(700008, "Illegal characters found in parameter 'limit'")
        update_id, bids, asks = self.engine.depth(spec.symbol, limit)
        return {"lastUpdateId": update_id, "bids": [[fmt_plain(p), fmt_plain(q)] for p, q in bids],
                "asks": [[fmt_plain(p), fmt_plain(q)] for p, q in asks], "timestamp": self.now_ms()}

    def _m_ticker_24hr(self, req: Request) -> Any:
        spec = self._m_spec(req, required=False)
        now_ms = self.now_ms()

        def one(s: MarketSpec) -> dict:
            t = self.market_data.ticker(s.symbol, now_ms)
            out = {k: t[k] for k in ("symbol", "priceChange", "prevClosePrice", "lastPrice", "bidPrice", "bidQty",
                                     "askPrice", "askQty", "openPrice", "highPrice", "lowPrice", "volume",
                                     "quoteVolume", "openTime", "closeTime", "count")}
            out["priceChangePercent"] = t["priceChangePercent"] / 100  # MEXC: a fraction (ccxt multiplies by 100)
            return {k: fmt_plain(v) if isinstance(v, Decimal) else v for k, v in out.items()}

        return one(spec) if spec is not None else [one(s) for s in self.engine.markets.values()]

    def _m_book_ticker(self, req: Request) -> Any:
        spec = self._m_spec(req, required=False)

        def one(s: MarketSpec) -> dict:
            _uid, bids, asks = self.engine.depth(s.symbol, 1)
            return {"symbol": s.symbol, "bidPrice": fmt_plain(bids[0][0]) if bids else None,
                    "bidQty": fmt_plain(bids[0][1]) if bids else None,
                    "askPrice": fmt_plain(asks[0][0]) if asks else None,
                    "askQty": fmt_plain(asks[0][1]) if asks else None}

        return one(spec) if spec is not None else [one(s) for s in self.engine.markets.values()]

    def _m_ticker_price(self, req: Request) -> Any:
        spec = self._m_spec(req, required=False)
        now_ms = self.now_ms()

        def one(s: MarketSpec) -> dict:
            return {"symbol": s.symbol, "price": fmt_plain(self.market_data.ticker(s.symbol, now_ms)["lastPrice"])}

        return one(spec) if spec is not None else [one(s) for s in self.engine.markets.values()]

    # ------------------------------------------------------------------ account and orders

    def _m_account(self, req: Request) -> dict:
        account = req.account
        held = self.balances.assets(account.api_key)
        spec = next(iter(self.engine.markets.values()), None)
        return {
            "makerCommission": int((spec.maker_fee if spec else ZERO) * 10000),
            "takerCommission": int((spec.taker_fee if spec else ZERO) * 10000),
            "buyerCommission": 0,
            "sellerCommission": 0,
            "canTrade": account.can_trade,
            "canWithdraw": account.can_withdraw,
            "canDeposit": account.can_deposit,
            "updateTime": None,
            "accountType": "SPOT",
            "balances": [{"asset": asset, "free": fmt_plain(free), "locked": fmt_plain(locked)}
                         for asset, (free, locked) in sorted(held.items())],
            "permissions": ["SPOT"],
        }

    def _m_new_order(self, req: Request) -> dict:
        account = req.account
        spec = self._m_spec(req)
        side = req.get("side")
        mexc_type = req.get("type")
        if side not in (BUY, SELL):
            raise ApiError(700008, "Illegal characters found in parameter 'side'")
        types = {"LIMIT": (LIMIT, "GTC"), "LIMIT_MAKER": (LIMIT_MAKER, None), "MARKET": (MARKET, None),
                 "IMMEDIATE_OR_CANCEL": (LIMIT, "IOC"), "FILL_OR_KILL": (LIMIT, "FOK")}
        if mexc_type not in types:
            raise ApiError(700008, "Illegal characters found in parameter 'type'")
        if not account.can_trade:
            raise ApiError(700007, "No permission to access the endpoint")
        order_type, tif = types[mexc_type]
        try:
            order = self.engine.place_order(
                account.api_key, spec.symbol, side, order_type, now_ms=self.now_ms(),
                quantity=req.decimal("quantity"), price=req.decimal("price"), quote_qty=req.decimal("quoteOrderQty"),
                time_in_force=tif, client_order_id=req.get("newClientOrderId"),
            )
        except EngineError as exc:
            raise _engine_error(exc, spec) from None
        self._placed_at[order.order_id] = self.now()
        return {"symbol": order.symbol, "orderId": _oid(order.order_id), "orderListId": -1,
                "price": fmt_plain(order.price), "origQty": fmt_plain(order.orig_qty), "type": mexc_type,
                "side": order.side, "transactTime": order.time}

    def _m_order(self, req: Request, spec: MarketSpec, *, not_found: tuple[int, str]) -> Order:
        raw_id, client_id = req.get("orderId"), req.get("origClientOrderId")
        if raw_id is None and client_id is None:
            raise ApiError(700004, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null")
        order_id = _parse_oid(raw_id) if raw_id is not None else None
        if raw_id is not None and order_id is None:
            raise ApiError(*not_found)
        try:
            order = self.engine.get_order(req.account.api_key, spec.symbol, order_id=order_id, client_order_id=client_id)
        except EngineError:
            raise ApiError(*not_found) from None
        if self._hidden(order) and (not_found[0] == -2013 or self._not_found_cancel):
            raise ApiError(*not_found)
        return order

    def _m_query_order(self, req: Request) -> dict:
        spec = self._m_spec(req)
        return _order_json(self._m_order(req, spec, not_found=(-2013, "Order does not exist.")))

    def _m_cancel_order(self, req: Request) -> dict:
        spec = self._m_spec(req)
        order = self._m_order(req, spec, not_found=(-2011, "Unknown order sent."))
        if not order.is_open:
            raise ApiError(-2011, "Unknown order sent.")
        self.engine.cancel_order(req.account.api_key, spec.symbol, order_id=order.order_id, now_ms=self.now_ms())
        return _cancel_json(order, req.get("newClientOrderId"))

    def _m_symbols(self, req: Request) -> list[MarketSpec] | None:
        names = req.get("symbol")
        if names is None:
            return None
        specs = []
        for name in names.split(",")[:5]:  # "maximum input 5 symbols, separated by ','"
            spec = self.engine.markets.get(name)
            if spec is None:
                raise ApiError(-1121, "Invalid symbol.")
            specs.append(spec)
        return specs

    def _m_open_orders(self, req: Request) -> list:
        specs = self._m_symbols(req)
        key = req.account.api_key
        orders = ([o for s in specs for o in self.engine.open_orders(key, s.symbol)] if specs is not None
                  else self.engine.open_orders(key))
        return [_order_json(o) for o in orders]

    def _m_cancel_open_orders(self, req: Request) -> list:
        specs = self._m_symbols(req)
        if specs is None:
            raise ApiError(44444, "param cannot be null: symbol")
        out = []
        for spec in specs:
            out += [_cancel_json(o, None) for o in self.engine.cancel_all(req.account.api_key, spec.symbol,
                                                                           now_ms=self.now_ms())]
        return out

    def _m_all_orders(self, req: Request) -> list:
        spec = self._m_spec(req)
        now_ms = self.now_ms()
        end = _int(req, "endTime", now_ms)
        start = _int(req, "startTime", end - _DAY_MS)  # "the latest 24 hours by default"
        if end - start > 7 * _DAY_MS:
            raise ApiError(700008, "Illegal characters found in parameter 'startTime'")
        limit = min(max(_int(req, "limit", 500), 1), 1000)
        orders = [o for o in self.engine.all_orders(req.account.api_key, spec.symbol) if start <= o.time <= end]
        return [_order_json(o) for o in orders[-limit:]]

    def _m_my_trades(self, req: Request) -> list:
        spec = self._m_spec(req)
        fills = self.engine.fills(req.account.api_key, spec.symbol)
        raw_id = req.get("orderId")
        if raw_id is not None:
            order_id = _parse_oid(raw_id)
            fills = [f for f in fills if f.order_id == order_id]
        start, end = _int(req, "startTime"), _int(req, "endTime")
        limit = min(max(_int(req, "limit", 100), 1), 100)  # "Default 100; max 100"
        if start is not None or end is not None:
            fills = [f for f in fills if (start is None or f.time >= start) and (end is None or f.time <= end)][:limit]
        else:
            fills = fills[-limit:]
        market_index = list(self.engine.markets).index(spec.symbol)
        return [self._trade_json(f, market_index) for f in fills]

    def _trade_json(self, f: Fill, market_index: int) -> dict:
        order = self.engine.orders.get(f.order_id)
        return {
            "symbol": f.symbol,
            "id": str((market_index + 1) * 10 ** 15 + f.trade_id),  # MEXC trade ids are unique across symbols
            "orderId": _oid(f.order_id),
            "orderListId": -1,
            "price": fmt_plain(f.price),
            "qty": fmt_plain(f.qty),
            "quoteQty": fmt_plain(f.quote_qty),
            "commission": fmt_plain(f.commission),
            "commissionAsset": f.commission_asset,
            "time": f.time,
            "isBuyer": f.is_buyer,
            "isMaker": f.is_maker,
            "isBestMatch": True,
            "isSelfTrade": False,
            "clientOrderId": _client_id(order) if order is not None else None,
        }

    # ------------------------------------------------------------------ wallet

    def _net(self, coin: str, given: str | None) -> NetworkConfig:
        """A network of ``coin`` named by its netWork id or its older ``network`` name (None: the default)."""
        cur = self.wallet.currencies.get(coin)
        if cur is not None and given:
            for net in cur.networks.values():
                if given in (net.network, _legacy_name(net)):
                    return net
        return self.wallet.network(coin, given)

    def _m_config_getall(self, req: Request) -> list:
        out = []
        for code, cur in sorted(self.wallet.currencies.items()):
            out.append({"coin": code, "name": cur.name,
                        "networkList": [_network_json(n, cur.name) for n in cur.networks.values()]})
        return out

    def _address_json(self, api_key: str, coin: str, net: NetworkConfig) -> dict:
        address, tag, _url = self.wallet.deposit_address(api_key, coin, net.network)
        return {"coin": coin, "network": _legacy_name(net), "address": address, "memo": tag or None,
                "netWork": net.network}

    def _m_deposit_address(self, req: Request) -> list:
        coin = _require(req, "coin")
        key = req.account.api_key
        if req.get("network"):
            nets = [self._net(coin, req.get("network"))]
        else:
            cur = self.wallet.currencies.get(coin)
            if cur is None:
                raise WalletError(-4018, "We don't have this asset.")
            nets = list(cur.networks.values())
        out = []
        for net in nets:
            if not net.deposit_enable:
                if len(nets) == 1:
                    raise ApiError(10216, "No available deposit address")
                continue
            if self.addresses_need_generation and (key, coin, net.network) not in self._generated:
                continue
            out.append(self._address_json(key, coin, net))
        return out

    def _m_create_deposit_address(self, req: Request) -> dict:
        coin, given = _require(req, "coin"), _require(req, "network")
        net = self._net(coin, given)
        if not net.deposit_enable:
            raise ApiError(10216, "No available deposit address")
        self._generated.add((req.account.api_key, coin, net.network))
        return self._address_json(req.account.api_key, coin, net)

    def _window(self, req: Request) -> tuple[int, int]:
        """startTime/endTime: default the last 7 days; nothing older than 90 days (docs; ccxt's 400 sample)."""
        now_ms = self.now_ms()
        end = _int(req, "endTime", now_ms)
        start = _int(req, "startTime", end - 7 * _DAY_MS)
        if start < now_ms - 90 * _DAY_MS:
            raise ApiError(400, "The start time cannot be earlier than 90 days")
        return start, end

    def _coin_filter(self, req: Request) -> Callable[[str, str], bool]:
        raw = req.get("coin")
        if raw is None:
            return lambda coin, network: True
        coin, _, network = raw.partition("-")  # ccxt sends "USDT-TRX" for one network
        return lambda c, n: c == coin and (not network or n == network)

    def _coin_label(self, coin: str, network: str) -> str:
        cur = self.wallet.currencies.get(coin)
        return f"{coin}-{network}" if cur is not None and len(cur.networks) > 1 else coin

    def _m_deposit_history(self, req: Request) -> list:
        start, end = self._window(req)
        wanted, status = self._coin_filter(req), _int(req, "status")
        limit = min(max(_int(req, "limit", 1000), 1), 1000)
        rows = [d for d in self.wallet.deposits
                if d.account == req.account.api_key and start <= d.insert_ms <= end and wanted(d.coin, d.network)
                and (status is None or _DEPOSIT_STATUS[d.status] == status)]
        rows.sort(key=lambda d: d.insert_ms, reverse=True)
        return [self._deposit_json(d) for d in rows[:limit]]

    def _deposit_json(self, d: Deposit) -> dict:
        net = self.wallet.network(d.coin, d.network)
        done = d.status == DEPOSIT_SUCCESS
        return {  # no "id": MEXC's deposit records have none (ccxt reads a record with an id as a withdrawal)
            "amount": fmt_plain(d.amount),
            "coin": self._coin_label(d.coin, d.network),
            "network": d.network,
            "status": _DEPOSIT_STATUS[d.status],
            "address": d.address,
            "txId": f"{d.txid}:0",
            "insertTime": d.insert_ms,
            "unlockConfirm": str(net.min_confirm),
            "confirmTimes": str(net.min_confirm if done else 0),
            "memo": d.tag or None,
            "transHash": d.txid,
            "updateTime": d.complete_ms if d.complete_ms is not None else d.insert_ms,
            "netWork": d.network,
        }

    def _m_withdraw(self, req: Request) -> dict:
        """POST /api/v3/capital/withdraw, through the shared withdraw path (wallet + withdrawal faults)."""
        account = req.account
        coin, address = _require(req, "coin"), _require(req, "address")
        given = req.get("netWork") or req.get("network")
        net = self._net(coin, given)
        tag = req.get("memo") or ""
        if self.require_address_book and (account.api_key, coin, net.network, address, tag) not in self.address_book:
            raise ApiError(10212, "This withdrawal address is not on the commonly used address list or has been "
                                  "invalidated")
        shared = Request(req.method, req.path, req.raw_query, req.body, req.headers, account=account, params={
            "coin": coin, "address": address, "amount": req.get("amount") or "", "network": net.network,
            "addressTag": tag, "withdrawOrderId": req.get("withdrawOrderId") or "",
        })
        answer = self._withdraw_apply(shared)
        wd = next(w for w in self.wallet.withdrawals if w.id == answer["id"])
        self._remarks[wd.id] = req.get("remark") or ""
        return {"id": wd.id}

    def _m_withdraw_history(self, req: Request) -> list:
        start, end = self._window(req)
        wanted, status = self._coin_filter(req), _int(req, "status")
        limit = min(max(_int(req, "limit", 1000), 1), 1000)
        # withdrawOrderId is not a documented filter of this endpoint: ignored (ccxt passes params through)
        rows = [w for w in self.wallet.withdrawals
                if w.account == req.account.api_key and start <= w.apply_ms <= end and wanted(w.coin, w.network)
                and (status is None or _WITHDRAW_STATUS[w.status] == status)]
        rows.sort(key=lambda w: w.apply_ms, reverse=True)
        return [self._withdrawal_json(w) for w in rows[:limit]]

    def _withdrawal_json(self, w: Withdrawal) -> dict:
        net = self.wallet.network(w.coin, w.network)
        out = {
            "id": w.id,
            "txId": f"{w.txid}:0" if w.txid else None,
            "coin": self._coin_label(w.coin, w.network),
            "network": w.network,
            "address": w.address,
            "amount": fmt_plain(w.amount),  # MEXC: the amount taken from the account, fee included
            "transferType": 0,
            "status": _WITHDRAW_STATUS[w.status],
            "transactionFee": fmt_plain(w.fee),
            "confirmNo": net.min_confirm if w.status == WITHDRAW_COMPLETED else None,
            "applyTime": w.apply_ms,
            "remark": self._remarks.get(w.id, ""),
            "memo": w.tag or None,
            "explorerUrl": "",
            "transHash": w.txid or None,
            "updateTime": w.complete_ms if w.complete_ms is not None else w.apply_ms,
            "coinId": _hex_id("coin", w.coin),
            "vcoinId": _hex_id("vcoin", w.coin, w.network),
            "netWork": w.network,
        }
        if w.withdraw_order_id:  # "withdrawOrderId: custom id, not returned if there is none" (docs, zh)
            out["withdrawOrderId"] = w.withdraw_order_id
        return out

    def _m_withdraw_addresses(self, req: Request) -> dict:
        key = req.account.api_key
        coin = req.get("coin")
        rows = [{"coin": c, "network": n, "address": a, "addressTag": "", "memo": t or None}
                for (k, c, n, a, t) in sorted(self.address_book) if k == key and (coin is None or c == coin)]
        return {"data": rows, "totalRecords": len(rows), "page": 1, "totalPageNum": 1}


# ---------------------------------------------------------------------- helpers and JSON shapes


def _int(req: Request, name: str, default: int | None = None) -> int | None:
    text = req.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise ApiError(700008, f"Illegal characters found in parameter '{name}'") from None


def _require(req: Request, name: str) -> str:
    value = req.get(name)
    if value is None:
        raise ApiError(44444, f"param cannot be null: {name}")
    return value


def _engine_error(exc: EngineError, spec: MarketSpec | None = None) -> ApiError:
    """The shared engine's (Binance-numbered) refusals in MEXC's words."""
    msg = exc.msg
    if exc.code == -2010 and "insufficient balance" in msg:
        return ApiError(30004, "Insufficient position")
    if exc.code == -2010 and "immediately match" in msg:
        return ApiError(30041, "current order type can not place order")  # not established: see module doc
    if exc.code == -1013 and "NOTIONAL" in msg:
        minimum = f"{fmt_plain(spec.min_notional)}{spec.quote}" if spec else ""
        return ApiError(30002, f"The minimum transaction volume cannot be less than:{minimum}")
    if exc.code == -1013 and "LOT_SIZE" in msg:
        return ApiError(30002, "The minimum transaction volume cannot be less than:")
    if exc.code == -1013:
        return ApiError(30010, "no valid trade price")
    if exc.code == -1121:
        return ApiError(-1121, "Invalid symbol.")
    return ApiError(exc.code, msg)  # e.g. -2010 "Duplicate order sent.": MEXC's answer not established


def _limit_body(status: int, msg: str | None = None) -> bytes:
    if status == 429:
        return _dumps({"code": 429, "msg": msg or "Too Many Requests"})
    return _dumps({"msg": msg or "IP banned for repeated violations of the rate limit"})


def _digits(step: Decimal, name: str) -> int:
    exponent = step.normalize().as_tuple().exponent
    if step <= 0 or step.normalize() != Decimal(1).scaleb(exponent):
        raise ValueError(f"MEXC states precisions in digits: {name} must be a power of ten, got {step}")
    return max(0, -exponent)


def _oid(order_id: int) -> str:
    return f"C02__{_ORDER_ID_BASE + order_id}"


def _parse_oid(text: str) -> int | None:
    m = _ORDER_ID.match(text)
    return int(m.group(1)) - _ORDER_ID_BASE if m else None


def _client_id(o: Order) -> str | None:
    return None if o.client_order_id == f"fake{o.order_id:016d}" else o.client_order_id


def _status(o: Order) -> str:
    if o.status in (CANCELED, EXPIRED):
        return "PARTIALLY_CANCELED" if o.executed_qty > 0 else "CANCELED"
    return {NEW: "NEW", PARTIALLY_FILLED: "PARTIALLY_FILLED", FILLED: "FILLED"}.get(o.status, o.status)


def _type(o: Order) -> str:
    if o.type == LIMIT and o.time_in_force == "IOC":
        return "IMMEDIATE_OR_CANCEL"
    if o.type == LIMIT and o.time_in_force == "FOK":
        return "FILL_OR_KILL"
    return o.type


def _order_json(o: Order) -> dict:
    return {
        "symbol": o.symbol,
        "orderId": _oid(o.order_id),
        "orderListId": -1,
        "clientOrderId": _client_id(o),
        "price": fmt_plain(o.price),
        "origQty": fmt_plain(o.orig_qty),
        "executedQty": fmt_plain(o.executed_qty),
        "cummulativeQuoteQty": fmt_plain(o.cum_quote),
        "status": _status(o),
        "timeInForce": None,
        "type": _type(o),
        "side": o.side,
        "stopPrice": None,
        "icebergQty": None,
        "time": o.time,
        "updateTime": o.update_time,
        "isWorking": True,
        "origQuoteOrderQty": fmt_plain(o.orig_quote_qty),
    }


def _cancel_json(o: Order, cancel_client_id: str | None) -> dict:
    return {
        "symbol": o.symbol,
        "origClientOrderId": _client_id(o),
        "orderId": _oid(o.order_id),
        "clientOrderId": cancel_client_id,
        "price": fmt_plain(o.price),
        "origQty": fmt_plain(o.orig_qty),
        "executedQty": fmt_plain(o.executed_qty),
        "cummulativeQuoteQty": fmt_plain(o.cum_quote),
        "status": _status(o),
        "timeInForce": None,
        "type": _type(o),
        "side": o.side,
    }


def _symbol_info(s: MarketSpec) -> dict:
    base_digits, quote_digits = _digits(s.step_size, "step_size"), _digits(s.tick_size, "tick_size")
    return {
        "symbol": s.symbol,
        "status": "1" if s.status == "TRADING" else "2",  # 1 online, 2 pause, 3 offline
        "baseAsset": s.base,
        "baseAssetPrecision": base_digits,
        "quoteAsset": s.quote,
        "quotePrecision": quote_digits,
        "quoteAssetPrecision": quote_digits,
        "baseCommissionPrecision": base_digits,
        "quoteCommissionPrecision": quote_digits,
        "orderTypes": ["LIMIT", "MARKET", "LIMIT_MAKER"],
        "quoteOrderQtyMarketAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "quoteAmountPrecision": fmt_plain(s.min_notional),
        "baseSizePrecision": fmt_plain(s.min_qty),
        "permissions": ["SPOT"],
        "filters": [],
        "maxQuoteAmount": fmt_plain(s.max_notional),
        "makerCommission": fmt_plain(s.maker_fee),
        "takerCommission": fmt_plain(s.taker_fee),
        "quoteAmountPrecisionMarket": fmt_plain(s.min_notional),
        "maxQuoteAmountMarket": fmt_plain(s.max_notional),
        "tradeSideType": "1",
    }


def _legacy_name(net: NetworkConfig) -> str:
    return LEGACY_NETWORK_NAMES.get(net.network, net.network)


def _network_json(n: NetworkConfig, coin_name: str) -> dict:
    tips = "Both a MEMO and an Address are required." if n.needs_memo else None
    return {
        "coin": n.coin,
        "depositDesc": None if n.deposit_enable else "Wallet is under maintenance. Deposit has been suspended.",
        "depositEnable": n.deposit_enable,
        "minConfirm": n.min_confirm,
        "name": coin_name,
        "network": _legacy_name(n),
        "withdrawEnable": n.withdraw_enable,
        "withdrawFee": fmt_plain(n.withdraw_fee),
        "withdrawIntegerMultiple": fmt_plain(n.withdraw_multiple),
        "withdrawMax": fmt_plain(n.withdraw_max),
        "withdrawMin": fmt_plain(n.withdraw_min),
        "sameAddress": n.needs_memo,
        "contract": n.contract_address or None,
        "withdrawTips": tips,
        "depositTips": tips,
        "netWork": n.network,
    }


def _hex_id(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:31]


def _rehost(value: Any, base: str) -> Any:
    if isinstance(value, dict):
        return {k: _rehost(v, base) for k, v in value.items()}
    if isinstance(value, str):
        return re.sub(r"^https?://[^/]+", base, value)
    return value


def _ccxt_mexc_template() -> dict:
    """ccxt's own mexc URL table (ccxt imported lazily, once)."""
    global _CCXT_TEMPLATE
    if _CCXT_TEMPLATE is None:
        import ccxt

        _CCXT_TEMPLATE = {"api": json.loads(json.dumps(ccxt.mexc().urls["api"]))}
    return _CCXT_TEMPLATE


FAKE = FakeMexc

__all__ = ["FAKE", "LEGACY_NETWORK_NAMES", "FakeMexc"]
