"""Gate (gate.io API v4) spot dialect of the fake exchange: the unmodified ``ccxt.gate`` (4.5.90) works
against it over loopback HTTP.

Only the venue's HTTP surface is Gate's (routes, JSON shapes, the signature, error bodies, rate-limit
answers); the matching engine, balances, wallet, clock, faults and test helpers are the base class's
(``sim.fake_exchange.server.FakeExchange``).

Facts, and where they come from (ccxt = ccxt 4.5.90 ``ccxt/gate.py``; SDK = Gate's own generated SDK
``gate/gateapi-python`` docs, i.e. the API v4 OpenAPI spec):

- every URL is ``<host>/api/v4/<path>``; ccxt signs ``METHOD\\n/api/v4/<path>\\n<query, not URL-encoded>\\n
  hex(SHA512(body))\\n<unix seconds>`` with HMAC-SHA512 of the secret, sent as headers ``KEY``,
  ``Timestamp``, ``SIGN`` (ccxt ``sign()``); private GET/DELETE carry their parameters in the query,
  POST a JSON body;
- errors are ``{"label": ..., "message": ...}``; ccxt maps the label (``exceptions['exact']``, copied from
  Gate's label list) before it looks at the HTTP status;
- market ids ``BTC_USDT``; ``/spot/currency_pairs`` gives ``precision``/``amount_precision`` as digit
  counts (so tick and step must be powers of ten here), ``min_base_amount``, ``min_quote_amount`` and
  ``fee`` in percent (ccxt ``fetch_spot_markets``, which also always asks ``/margin/currency_pairs``);
- ``/spot/currencies`` lists chains (``name``, ``deposit_disabled``, ``withdraw_disabled``); ccxt 4.5.90
  reads NO withdrawal fee, minimum or precision from it (network fee None, precision a fixed 0.0001):
  fees and the minimum are only in ``/wallet/withdraw_status`` (``withdraw_fix_on_chains``,
  ``withdraw_amount_mini``; ccxt ``fetch_deposit_withdraw_fees``), the precision only in
  ``/wallet/currency_chains`` (``decimal``, SDK CurrencyChain) which ccxt never asks;
- orders: ``POST /spot/orders`` JSON ``currency_pair, type, account, side, amount, price,
  time_in_force (gtc|ioc|poc|fok), text``; post-only is ``poc`` (ccxt ``create_order_request``); the client
  id travels in ``text``, prefixed ``t-`` by ccxt, at most 28 characters after the prefix, only
  ``0-9A-Za-z_-.`` (SDK Order.text; ccxt refuses longer ones itself); order JSON as in ccxt's samples
  (``finish_as``, ``left``, ``filled_total``, ``avg_deal_price``, fees);
- ``GET``/``DELETE /spot/orders/{order_id}`` take the order id or the ``t-`` text; "operations based on
  custom IDs can only be checked in pending orders. Only order ID can be used after the order is
  finished" (SDK SpotApi get_order/cancel_order) — ``text_lookup_open_only`` (default True) does that;
- open orders come grouped per pair from ``GET /spot/open_orders`` (ccxt flattens ``orders``);
- my trades ``GET /spot/my_trades`` (``create_time_ms``, ``role``, ``fee``, ``fee_currency``, ``order_id``);
- balances ``GET /spot/accounts`` (``available``, ``locked``); ``GET /account/detail`` says the key is a
  classic (non-unified) account (``key.mode`` 1), which keeps ccxt on the spot endpoints;
- deposit address ``GET /wallet/deposit_address`` with ``multichain_addresses`` (``chain``, ``address``,
  ``payment_id`` = memo/tag, ``payment_name``, ``obtain_failed``);
- deposits ``GET /wallet/deposits`` (ids ``d...``, statuses ``PEND``/``DONE``); withdrawals
  ``POST /withdrawals`` (JSON ``currency, amount, address, memo, chain`` — chain is required —, and
  ``withdraw_order_id``, the client's own id: SDK LedgerRecord), answered 202; ``GET /wallet/withdrawals``
  (ids ``w...``; ``amount`` is the gross amount, ``fee`` apart — ccxt subtracts it; ``withdraw_order_id``
  echoed, "client order id, up to 32 length ... 0-9, A-Z, a-z, _, - or ."; filters ``withdraw_id`` and
  ``withdraw_order_id``: SDK WalletApi list_withdrawals / WithdrawalRecord); statuses ``REQUEST``,
  ``DONE``, ``CANCEL``, ``FAIL`` (ccxt ``parse_transaction_status``);
- rate limits: HTTP 429 ``TOO_MANY_REQUESTS`` (ccxt -> RateLimitExceeded), headers
  ``X-Gate-RateLimit-Requests-Remain`` / ``-Limit`` / ``-Reset-Timestamp`` (seen in a real response
  quoted in ccxt issue #24257) — Gate reports requests *remaining* per endpoint and window, not a used
  weight.

Modelling choices (not established from a source): the label for each engine / wallet refusal (picked
from Gate's label list by meaning, see ``_ENGINE_LABELS`` and ``_WALLET_LABELS``; a withdrawal on a
suspended chain and the ``reject`` withdrawal fault answer ``API_WITHDRAW_DISABLED``, which ccxt maps to
ExchangeNotAvailable), HTTP 400 for business errors, the order of history lists, the per-endpoint 10 s
windows of ``rate_limit``.

Endpoints (method path -> ccxt 4.5.90 calls):

- GET  /api/v4/spot/currency_pairs       load_markets            GET /api/v4/margin/currency_pairs (load_markets: [])
- GET  /api/v4/spot/currencies           fetch_currencies        GET /api/v4/account/detail (load_unified_status)
- GET  /api/v4/spot/order_book           fetch_order_book        GET /api/v4/spot/tickers   fetch_ticker(s)
- GET  /api/v4/spot/time                 fetch_time              GET /api/v4/spot/accounts  fetch_balance
- POST /api/v4/spot/orders               create_order            GET /api/v4/spot/orders/{id}    fetch_order
- DELETE /api/v4/spot/orders/{id}        cancel_order            GET /api/v4/spot/open_orders    fetch_open_orders
- GET  /api/v4/spot/orders               fetch_closed_orders     DELETE /api/v4/spot/orders      cancel_all_orders
- GET  /api/v4/spot/my_trades            fetch_my_trades         GET /api/v4/wallet/fee          fetch_trading_fee(s)
- GET  /api/v4/wallet/withdraw_status    fetch_deposit_withdraw_fees
- GET  /api/v4/wallet/currency_chains    (Gate's chain list with withdrawal precision; not used by ccxt)
- GET  /api/v4/wallet/deposit_address    fetch_deposit_address   GET /api/v4/wallet/deposits     fetch_deposits
- POST /api/v4/withdrawals               withdraw                GET /api/v4/wallet/withdrawals  fetch_withdrawals
- DELETE /api/v4/withdrawals/{id}        (cancel a withdrawal still in REQUEST)
"""
from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs, unquote

from .engine import (
    BUY,
    CANCELED,
    EXPIRED,
    FILLED,
    LIMIT,
    LIMIT_MAKER,
    MARKET,
    MSG_DUPLICATE,
    MSG_INSUFFICIENT,
    MSG_WOULD_TAKE,
    SELL,
    EngineError,
    MarketSpec,
    Order,
)
from .numbers import ZERO, D, fmt_plain
from .server import ApiError, FakeExchange, Request, Route
from .wallet import (
    DEPOSIT_SUCCESS,
    WITHDRAW_CANCELLED,
    WITHDRAW_COMPLETED,
    WITHDRAW_FAILURE,
    WITHDRAW_PROCESSING,
    WITHDRAW_REJECTED,
    Deposit,
    WalletError,
    Withdrawal,
)

API = "/api/v4"
_TEXT = re.compile(r"^t-[0-9A-Za-z_.\-]{1,28}$")
_WITHDRAW_ORDER_ID = re.compile(r"^[0-9A-Za-z_.\-]{1,32}$")
_EMPTY_SHA512 = hashlib.sha512(b"").hexdigest()
_TIMESTAMP_TOLERANCE = 60.0  # seconds between the Timestamp header and the server clock
_CCXT_GATE_URLS: dict | None = None


class GateError(Exception):
    """An answer in Gate's error shape: ``{"label": ..., "message": ...}`` with an HTTP status."""

    def __init__(self, label: str, message: str, status: int = 400) -> None:
        super().__init__(f"{label} {message}")
        self.label = label
        self.message = message
        self.status = status


class _Window:
    """Requests of one endpoint in the current window (Gate limits per endpoint, e.g. 200 r / 10 s)."""

    def __init__(self) -> None:
        self.window_id: int | None = None
        self.used = 0


class FakeGate(FakeExchange):
    """Gate spot API v4 over loopback. See the module docstring."""

    venue = "gate"
    # canonical network (domain.networks) -> Gate's chain id, as ccxt 4.5.90 gate maps them
    # (options['networks']: BTC->BTC, ERC20->ETH, TRC20->TRX, BEP20->BSC; networksById back).
    NETWORK_IDS = {"BTC": "BTC", "ERC20": "ETH", "TRC20": "TRX", "BEP20": "BSC"}
    DEFAULT_LIMIT = 200  # requests per endpoint per window reported when no limit is enforced

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.text_lookup_open_only = True
        self.withdraw_reject_label = "API_WITHDRAW_DISABLED"
        self._meta: dict[int, dict] = {}  # order id -> {"text", "tif", "type", "amount"}
        self._gate_wd_ids: dict[str, str] = {}  # wallet withdrawal id -> Gate's "w..." id
        self._wd_by_gate_id: dict[str, Withdrawal] = {}
        self._update_id = 0
        self._limit: int | None = None
        self._limit_window = 10.0
        self._limit_origin = 0.0
        self._windows: dict[str, _Window] = {}
        self.count_429 = 0

    # ------------------------------------------------------------------ the venue's HTTP surface

    def _install_routes(self) -> None:
        self._patterns: list[tuple[str, re.Pattern, str, Route]] = []
        r = self._route
        r("GET", "/spot/currency_pairs", self._currency_pairs)
        r("GET", "/margin/currency_pairs", lambda req: [])
        r("GET", "/spot/currencies", self._currencies)
        r("GET", "/spot/order_book", self._order_book)
        r("GET", "/spot/tickers", self._tickers)
        r("GET", "/spot/time", lambda req: {"server_time": self.now_ms()})
        r("GET", "/wallet/currency_chains", self._currency_chains)
        r("GET", "/account/detail", self._account_detail, signed=True)
        r("GET", "/spot/accounts", self._spot_accounts, signed=True)
        r("POST", "/spot/orders", self._create_order, signed=True)
        r("GET", "/spot/orders", self._list_orders, signed=True)
        r("DELETE", "/spot/orders", self._cancel_all, signed=True)
        r("GET", "/spot/orders/{order_id}", self._get_order, signed=True)
        r("DELETE", "/spot/orders/{order_id}", self._cancel_order, signed=True)
        r("GET", "/spot/open_orders", self._open_orders, signed=True)
        r("GET", "/spot/my_trades", self._my_trades, signed=True)
        r("GET", "/wallet/fee", self._wallet_fee, signed=True)
        r("GET", "/wallet/withdraw_status", self._withdraw_status, signed=True)
        r("GET", "/wallet/deposit_address", self._deposit_address, signed=True)
        r("GET", "/wallet/deposits", self._deposits, signed=True)
        r("GET", "/wallet/withdrawals", self._withdrawals, signed=True)
        r("POST", "/withdrawals", self._withdraw, signed=True)
        r("DELETE", "/withdrawals/{withdrawal_id}", self._cancel_withdrawal, signed=True)

    def _route(self, method: str, path: str, handler: Callable[..., Any], *, signed: bool = False) -> None:
        full = API + path
        route = Route(handler, signed)
        if "{" in full:
            regex = re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(full)) + "$")
            self._patterns.append((method, regex, full, route))
        else:
            self.routes[(method, full)] = route

    def _match(self, method: str, path: str) -> tuple[Route, str, dict[str, str]] | None:
        route = self.routes.get((method, path))
        if route is not None:
            return route, path, {}
        for m, regex, template, route in self._patterns:
            if m == method:
                found = regex.match(path)
                if found:
                    return route, template, {k: unquote(v) for k, v in found.groupdict().items()}
        return None

    def _handle(self, req: Request) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = [("Content-Type", "application/json")]
        matched = self._match(req.method, req.path)
        if matched is None:
            self.unknown_paths.append((req.method, req.path))
            return 404, [("Content-Type", "text/html")], b"<html><body><h1>404 Not Found</h1></body></html>"
        route, template, path_params = matched
        for key, values in parse_qs(req.raw_query, keep_blank_values=True).items():
            req.params[key] = values[-1]
        req.json = {}
        req.status = 200
        try:
            if req.body and req.method in ("POST", "PUT", "PATCH"):
                try:
                    body = json.loads(req.body)
                except ValueError:
                    raise GateError("INVALID_REQUEST_BODY", "invalid request body") from None
                if not isinstance(body, dict):
                    raise GateError("INVALID_REQUEST_BODY", "request body must be a JSON object")
                req.json = body
            refused = self._count(req.method + " " + template)
            headers += refused[1]
            if refused[0]:
                self.count_429 += 1
                return 429, headers, _dumps({"label": "TOO_MANY_REQUESTS", "message": "Request Rate limit Exceeded"})
            if route.signed:
                req.account = self._authenticate(req)
            payload = _dumps(route.handler(req, **path_params))
        except GateError as exc:
            return exc.status, headers, _dumps({"label": exc.label, "message": exc.message})
        except EngineError as exc:
            label, message = self._engine_label(exc)
            return 400, headers, _dumps({"label": label, "message": message})
        except WalletError as exc:
            label, message = _WALLET_LABELS.get(exc.code, ("INVALID_PARAM_VALUE", exc.msg))
            return 400, headers, _dumps({"label": label, "message": message})
        except ApiError as exc:
            return 400, headers, _dumps({"label": "INVALID_PARAM_VALUE", "message": exc.msg})
        except Exception as exc:  # a bug in the fake: Gate's internal error, kept visible
            self.internal_errors.append(f"{req.method} {req.path}: {exc!r}")
            return 500, headers, _dumps({"label": "INTERNAL", "message": "Internal server error"})
        return req.status, headers, payload

    # ------------------------------------------------------------------ signature

    def _authenticate(self, req: Request):
        key, sign, ts = req.headers.get("key"), req.headers.get("sign"), req.headers.get("timestamp")
        if not key or not sign or not ts:
            self.auth_failures.append("missing header")
            raise GateError("MISSING_REQUIRED_HEADER", "Missing required authentication header: KEY, SIGN or Timestamp",
                            401)
        account = self.accounts.get(key)
        if account is None:
            self.auth_failures.append("unknown api key")
            raise GateError("INVALID_KEY", "Invalid key provided", 401)
        body_hash = hashlib.sha512(req.body.encode("utf-8")).hexdigest() if req.body else _EMPTY_SHA512
        payload = "\n".join([req.method.upper(), req.path, unquote(req.raw_query), body_hash, ts])
        expected = hmac.new(account.secret.encode("utf-8"), payload.encode("utf-8"), hashlib.sha512).hexdigest()
        if not hmac.compare_digest(expected, sign):
            self.auth_failures.append("bad signature")
            raise GateError("INVALID_SIGNATURE", "Signature mismatch", 401)
        try:
            when = float(ts)
        except ValueError:
            raise GateError("INVALID_PARAM_VALUE", "invalid argument: Timestamp", 400) from None
        if self.check_recv_window and abs(self.now() - when) > _TIMESTAMP_TOLERANCE:
            self.auth_failures.append("timestamp outside tolerance")
            raise GateError("REQUEST_EXPIRED", "Request timestamp is far from the server time", 401)
        return account

    # ------------------------------------------------------------------ rate limits

    def rate_limit(self, requests_per_window: int | None, *, window: float = 10.0, **_binance_only: Any) -> None:
        """Enforce at most ``requests_per_window`` requests per endpoint (method + route) in each
        ``window`` seconds (Gate limits per endpoint, e.g. 200 r/10 s); over it: HTTP 429
        ``TOO_MANY_REQUESTS``. None turns it off (requests are still counted for the headers)."""
        if requests_per_window is not None and requests_per_window < 1:
            raise ValueError("requests_per_window must be >= 1")
        if window <= 0:
            raise ValueError("window must be > 0")
        self._limit = requests_per_window
        self._limit_window = float(window)
        self._limit_origin = self.now()
        self._windows = {}
        super().rate_limit(None)  # the base Binance weight limiters stay off

    def _count(self, bucket: str) -> tuple[bool, list[tuple[str, str]]]:
        now = self.now()
        window_id = int((now - self._limit_origin) // self._limit_window)
        w = self._windows.setdefault(bucket, _Window())
        if w.window_id != window_id:
            w.window_id, w.used = window_id, 0
        limit = self._limit or self.DEFAULT_LIMIT
        reset = math.ceil(self._limit_origin + (window_id + 1) * self._limit_window)
        refused = self._limit is not None and w.used >= self._limit
        if not refused:
            w.used += 1
        return refused, [("X-Gate-RateLimit-Requests-Remain", str(max(0, limit - w.used))),
                         ("X-Gate-RateLimit-Limit", str(limit)), ("X-Gate-RateLimit-Reset-Timestamp", str(reset))]

    def inject(self, path_prefix: str = "/", *, status: int = 429, label: str | None = None,
               message: str | None = None, body: bytes | str | None = None, **kwargs: Any):
        """The base ``inject`` with Gate's error body: a 429 answers ``TOO_MANY_REQUESTS`` unless ``label``
        (+ ``message``) or ``body`` says otherwise; other statuses without a label get the base HTML page."""
        if body is None and kwargs.get("error_code") is None:
            if label is None and status == 429:
                label = "TOO_MANY_REQUESTS"
            if label is not None:
                body = json.dumps({"label": label, "message": message or "Injected error"})
        return super().inject(path_prefix, status=status, body=body, **kwargs)

    # ------------------------------------------------------------------ ccxt

    def ccxt_config(self, api_key: str, secret: str, *, enable_rate_limit: bool = False, timeout_ms: int = 10_000,
                    **_binance_only: Any) -> dict:
        """Constructor dict for ``ccxt.gate(...)``: every entry of ccxt's own ``urls['api']`` (public and
        private) on this server (paths kept: ``/api/v4``), load_markets on spot only (no futures, delivery,
        options: ``fetchMarkets.types = ['spot']``), ccxt's own throttle off."""
        template = _ccxt_gate_urls()
        api = {scope: {k: re.sub(r"^https?://[^/]+", self.url, v) for k, v in table.items()}
               for scope, table in template.items()}
        return {
            "apiKey": api_key,
            "secret": secret,
            "enableRateLimit": enable_rate_limit,
            "timeout": timeout_ms,
            "urls": {"api": api},
            "options": {"fetchMarkets": {"types": ["spot"]}, "defaultType": "spot",
                        "adjustForTimeDifference": False},
        }

    @staticmethod
    def _market_id(base: str, quote: str) -> str:
        """Gate's market id: BTC_USDT."""
        return f"{base}_{quote}"

    def add_market(self, symbol: str = "BTC/USDT", base: str = "BTC", quote: str = "USDT", **kwargs: Any) -> MarketSpec:
        """The base ``add_market``; Gate states price and amount precision as digit counts, so the tick
        and the step must be powers of ten (0.01, 0.00001, 1...)."""
        for name in ("tick_size", "step_size"):
            if name in kwargs:
                _digits(D(kwargs[name]), name)
        return super().add_market(symbol, base, quote, **kwargs)

    # ------------------------------------------------------------------ request helpers

    @staticmethod
    def _arg(req: Request, name: str, *, required: bool = False) -> str | None:
        value = req.json.get(name) if name in req.json else req.params.get(name)
        if value in (None, ""):
            if required:
                raise GateError("MISSING_REQUIRED_PARAM", f"Missing required parameter: {name}")
            return None
        return str(value)

    def _dec(self, req: Request, name: str, *, required: bool = False) -> Decimal | None:
        text = self._arg(req, name, required=required)
        if text is None:
            return None
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise GateError("INVALID_PARAM_VALUE", f"invalid argument: {name}") from None
        if not value.is_finite() or value < 0:
            raise GateError("INVALID_PARAM_VALUE", f"invalid argument: {name}")
        return value

    def _int(self, req: Request, name: str, default: int | None = None) -> int | None:
        text = self._arg(req, name)
        if text is None:
            return default
        try:
            return int(text)
        except ValueError:
            raise GateError("INVALID_PARAM_VALUE", f"invalid argument: {name}") from None

    def _pair(self, req: Request, *, required: bool = True) -> MarketSpec | None:
        pair = self._arg(req, "currency_pair", required=required)
        if pair is None:
            return None
        spec = self.engine.markets.get(pair)
        if spec is None:
            raise GateError("INVALID_CURRENCY_PAIR", f"Invalid currency pair: {pair}")
        return spec

    def _account_param(self, req: Request) -> None:
        account = self._arg(req, "account")
        if account not in (None, "spot"):
            raise GateError("INVALID_PARAM_VALUE", f"invalid argument: account {account} (this fake serves spot only)")

    @staticmethod
    def _page(items: list, req_limit: int | None, page: int | None, *, default: int = 100, maximum: int = 1000) -> list:
        limit = min(max(req_limit or default, 1), maximum)
        start = (max(page or 1, 1) - 1) * limit
        return items[start: start + limit]

    # ------------------------------------------------------------------ handlers: public

    def _currency_pairs(self, req: Request) -> list:
        return [self._pair_json(s) for s in self.engine.markets.values()]

    def _pair_json(self, s: MarketSpec) -> dict:
        names = self.wallet.currencies
        return {
            "id": s.symbol,
            "base": s.base,
            "base_name": names[s.base].name if s.base in names else s.base,
            "quote": s.quote,
            "quote_name": names[s.quote].name if s.quote in names else s.quote,
            "fee": fmt_plain(s.taker_fee * 100),
            "min_base_amount": fmt_plain(s.min_qty),
            "min_quote_amount": fmt_plain(s.min_notional),
            "max_base_amount": fmt_plain(s.max_qty),
            "max_quote_amount": fmt_plain(s.max_notional),
            "amount_precision": _digits(s.step_size, "step_size"),
            "precision": _digits(s.tick_size, "tick_size"),
            "trade_status": "tradable" if s.status == "TRADING" else "untradable",
            "sell_start": 0,
            "buy_start": 0,
            "delisting_time": 0,
            "type": "normal",
            "trade_url": f"https://www.gate.com/trade/{s.symbol}",
            "st_tag": False,
        }

    def _currencies(self, req: Request) -> list:
        out = []
        for code, cur in sorted(self.wallet.currencies.items()):
            nets = list(cur.networks.values())
            default = cur.default_network()
            out.append({
                "currency": code,
                "name": cur.name,
                "delisted": False,
                "withdraw_disabled": not any(n.withdraw_enable for n in nets),
                "withdraw_delayed": False,
                "deposit_disabled": not any(n.deposit_enable for n in nets),
                "trade_disabled": not cur.trading,
                "fixed_rate": "",
                "chain": default.network if default else "",
                "chains": [{"name": n.network, "addr": n.contract_address, "withdraw_disabled": not n.withdraw_enable,
                            "withdraw_delayed": False, "deposit_disabled": not n.deposit_enable} for n in nets],
            })
        return out

    def _currency_chains(self, req: Request) -> list:
        code = self._arg(req, "currency", required=True)
        cur = self.wallet.currencies.get(code)
        if cur is None:
            raise GateError("INVALID_CURRENCY", f"Invalid currency: {code}")
        return [{"chain": n.network, "name_cn": n.name, "name_en": n.name, "contract_address": n.contract_address,
                 "is_disabled": 0 if (n.deposit_enable or n.withdraw_enable) else 1,
                 "is_deposit_disabled": 0 if n.deposit_enable else 1,
                 "is_withdraw_disabled": 0 if n.withdraw_enable else 1,
                 "decimal": str(_digits(n.withdraw_multiple, "withdrawIntegerMultiple")),
                 "is_tag": 1 if n.needs_memo else 0} for n in cur.networks.values()]

    def _order_book(self, req: Request) -> dict:
        spec = self._pair(req)
        limit = self._int(req, "limit", 10)
        if limit < 1 or limit > 1000:
            raise GateError("INVALID_PARAM_VALUE", "invalid argument: limit")
        update_id, bids, asks = self.engine.depth(spec.symbol, limit)
        now = self.now_ms()
        out = {"current": now, "update": now,
               "asks": [[fmt_plain(p), fmt_plain(q)] for p, q in asks],
               "bids": [[fmt_plain(p), fmt_plain(q)] for p, q in bids]}
        if (self._arg(req, "with_id") or "").lower() == "true":
            out = {"id": update_id, **out}
        return out

    def _tickers(self, req: Request) -> list:
        spec = self._pair(req, required=False)
        specs = [spec] if spec else list(self.engine.markets.values())
        now = self.now_ms()
        out = []
        for s in specs:
            t = self.market_data.ticker(s.symbol, now)
            out.append({
                "currency_pair": s.symbol, "last": fmt_plain(t["lastPrice"]),
                "lowest_ask": fmt_plain(t["askPrice"]) if t["askPrice"] else "",
                "lowest_size": fmt_plain(t["askQty"]) if t["askPrice"] else "",
                "highest_bid": fmt_plain(t["bidPrice"]) if t["bidPrice"] else "",
                "highest_size": fmt_plain(t["bidQty"]) if t["bidPrice"] else "",
                "change_percentage": fmt_plain(t["priceChangePercent"]),
                "base_volume": fmt_plain(t["volume"]), "quote_volume": fmt_plain(t["quoteVolume"]),
                "high_24h": fmt_plain(t["highPrice"]), "low_24h": fmt_plain(t["lowPrice"]),
            })
        return out

    # ------------------------------------------------------------------ handlers: account

    def _account_detail(self, req: Request) -> dict:
        return {"user_id": req.account.uid, "ip_whitelist": [], "currency_pairs": [], "key": {"mode": 1},
                "tier": 0, "tier_expire_time": "0001-01-01T00:00:00Z", "copy_trading_role": 0}

    def _spot_accounts(self, req: Request) -> list:
        only = self._arg(req, "currency")
        held = self.balances.assets(req.account.api_key)
        self._update_id += 1
        out = []
        for code in sorted(set(self.wallet.currencies) | set(held)):
            if only is not None and code != only:
                continue
            free, locked = held.get(code, (ZERO, ZERO))
            out.append({"currency": code, "available": fmt_plain(free), "locked": fmt_plain(locked),
                        "update_id": self._update_id})
        return out

    def _wallet_fee(self, req: Request) -> dict:
        spec = self._pair(req, required=False) or next(iter(self.engine.markets.values()), None)
        maker = spec.maker_fee if spec else Decimal("0.002")
        taker = spec.taker_fee if spec else Decimal("0.002")
        return {"user_id": req.account.uid, "taker_fee": fmt_plain(taker), "maker_fee": fmt_plain(maker),
                "gt_discount": False, "gt_taker_fee": "0", "gt_maker_fee": "0", "loan_fee": "0.18",
                "point_type": "0", "futures_taker_fee": "0.0005", "futures_maker_fee": "0",
                "delivery_taker_fee": "0.0005", "delivery_maker_fee": "0", "debit_fee": 3}

    # ------------------------------------------------------------------ handlers: orders

    def _create_order(self, req: Request) -> dict:
        account = req.account
        spec = self._pair(req)
        self._account_param(req)
        side = (self._arg(req, "side", required=True) or "").lower()
        if side not in ("buy", "sell"):
            raise GateError("INVALID_PARAM_VALUE", "invalid argument: side")
        gtype = (self._arg(req, "type") or "limit").lower()
        if gtype not in ("limit", "market"):
            raise GateError("INVALID_PARAM_VALUE", "invalid argument: type")
        tif = (self._arg(req, "time_in_force") or ("gtc" if gtype == "limit" else "ioc")).lower()
        if tif not in ("gtc", "ioc", "poc", "fok") or (gtype == "market" and tif not in ("ioc", "fok")):
            raise GateError("INVALID_PARAM_VALUE", "invalid argument: time_in_force")
        if not account.can_trade:
            raise GateError("FORBIDDEN", "No permission to trade", 403)
        text = self._arg(req, "text")
        if text is not None and not _TEXT.match(text):
            raise GateError("INVALID_PARAM_VALUE", "invalid argument: text must start with t-, at most 28 characters "
                                                   "after it, only 0-9 A-Z a-z _ - .")
        amount = self._dec(req, "amount", required=True)
        side_u = BUY if side == "buy" else SELL
        kwargs: dict[str, Any] = {}
        if gtype == "market":
            order_type = MARKET
            if side_u == BUY:
                kwargs["quote_qty"] = amount  # a market buy's amount is in the quote currency
            else:
                kwargs["quantity"] = amount
        else:
            price = self._dec(req, "price", required=True)
            order_type = LIMIT_MAKER if tif == "poc" else LIMIT
            kwargs.update(quantity=amount, price=price)
            if order_type == LIMIT:
                kwargs["time_in_force"] = tif.upper()
        order = self.engine.place_order(account.api_key, spec.symbol, side_u, order_type, now_ms=self.now_ms(),
                                        client_order_id=text, **kwargs)
        self._placed_at[order.order_id] = self.now()
        self._meta[order.order_id] = {"text": text or "apiv4", "tif": tif, "type": gtype, "amount": amount}
        req.status = 201
        return self._order_json(order)

    def _find_order(self, req: Request, order_id: str) -> Order:
        spec = self._pair(req, required=order_id.startswith("t-"))
        owner = req.account.api_key
        order: Order | None = None
        if order_id.startswith("t-"):
            try:
                order = self.engine.get_order(owner, spec.symbol, client_order_id=order_id)
            except EngineError:
                order = None
            if order is not None and self.text_lookup_open_only and not order.is_open:
                order = None  # "custom IDs can only be checked in pending orders"
        elif order_id.isdigit():
            found = self.engine.orders.get(int(order_id))
            if found is not None and found.owner == owner and (spec is None or found.symbol == spec.symbol):
                order = found
        if order is None or self._hidden(order):
            raise GateError("ORDER_NOT_FOUND", "Order not found")
        return order

    def _get_order(self, req: Request, order_id: str) -> dict:
        self._account_param(req)
        return self._order_json(self._find_order(req, order_id))

    def _cancel_order(self, req: Request, order_id: str) -> dict:
        self._account_param(req)
        order = self._find_order(req, order_id)
        if self._not_found_cancel and self._hidden(order):
            raise GateError("ORDER_NOT_FOUND", "Order not found")
        if not order.is_open:
            if order.status == FILLED:
                raise GateError("ORDER_CLOSED", "Order already closed")
            raise GateError("ORDER_CANCELLED", "Order already cancelled")
        self.engine.cancel_order(order.owner, order.symbol, order_id=order.order_id, now_ms=self.now_ms())
        return self._order_json(order)

    def _cancel_all(self, req: Request) -> list:
        spec = self._pair(req)
        self._account_param(req)
        side = (self._arg(req, "side") or "").upper() or None
        now = self.now_ms()
        out = []
        for order in list(self.engine.open_orders(req.account.api_key, spec.symbol)):
            if side is None or order.side == side:
                self.engine.cancel_order(order.owner, order.symbol, order_id=order.order_id, now_ms=now)
                out.append(self._order_json(order))
        return out

    def _open_orders(self, req: Request) -> list:
        """All pairs' open orders, grouped per pair (params page, limit, account; ccxt filters the symbol)."""
        self._account_param(req)
        groups: dict[str, list[Order]] = {}
        for order in self.engine.open_orders(req.account.api_key):
            groups.setdefault(order.symbol, []).append(order)
        limit = self._int(req, "limit", 100)
        page = self._int(req, "page", 1)
        return [{"currency_pair": pair, "total": len(orders),
                 "orders": [self._order_json(o) for o in self._page(orders, limit, page, maximum=100)]}
                for pair, orders in sorted(groups.items())]

    def _list_orders(self, req: Request) -> list:
        status = self._arg(req, "status", required=True)
        if status not in ("open", "finished"):
            raise GateError("INVALID_PARAM_VALUE", "invalid argument: status")
        spec = self._pair(req, required=status == "open")
        self._account_param(req)
        specs = [spec] if spec else list(self.engine.markets.values())
        orders = [o for s in specs for o in self.engine.all_orders(req.account.api_key, s.symbol)
                  if o.is_open == (status == "open")]
        start, end = self._int(req, "from"), self._int(req, "to")
        side = (self._arg(req, "side") or "").upper() or None
        orders = [o for o in orders if (start is None or o.time >= start * 1000)
                  and (end is None or o.time <= end * 1000 + 999) and (side is None or o.side == side)]
        orders.sort(key=lambda o: o.order_id, reverse=True)  # newest first
        return [self._order_json(o) for o in self._page(orders, self._int(req, "limit"), self._int(req, "page"),
                                                          maximum=100 if status == "open" else 1000)]

    def _my_trades(self, req: Request) -> list:
        spec = self._pair(req, required=False)
        order_id = self._arg(req, "order_id")
        if order_id is not None and spec is None:
            raise GateError("MISSING_REQUIRED_PARAM", "currency_pair is required with order_id")
        specs = [spec] if spec else list(self.engine.markets.values())
        fills = [f for s in specs for f in self.engine.fills(req.account.api_key, s.symbol)]
        if order_id is not None:
            fills = [f for f in fills if str(f.order_id) == order_id]
        start, end = self._int(req, "from"), self._int(req, "to")
        limit = min(max(self._int(req, "limit", 100), 1), 1000)
        page = max(self._int(req, "page", 1), 1)
        fills.sort(key=lambda f: (f.time, f.trade_id))
        if start is not None or end is not None:
            fills = [f for f in fills if (start is None or f.time >= start * 1000)
                     and (end is None or f.time <= end * 1000 + 999)]
            fills = fills[(page - 1) * limit: page * limit]  # oldest first from `from`
        else:
            fills = fills[-limit:]
        return [self._trade_json(f) for f in fills]

    # ------------------------------------------------------------------ handlers: wallet

    def _withdraw_status(self, req: Request) -> list:
        only = self._arg(req, "currency")
        out = []
        for code, cur in sorted(self.wallet.currencies.items()):
            if only is not None and code != only:
                continue
            default = cur.default_network()
            out.append({
                "currency": code, "name": cur.name, "name_cn": cur.name, "deposit": "0",
                "withdraw_percent": "0%",
                "withdraw_fix": fmt_plain(default.withdraw_fee) if default else "0",
                "withdraw_day_limit": "500000", "withdraw_day_limit_remain": "500000",
                "withdraw_amount_mini": fmt_plain(default.withdraw_min) if default else "0",
                "withdraw_eachtime_limit": fmt_plain(default.withdraw_max) if default else "0",
                "withdraw_fix_on_chains": {n.network: fmt_plain(n.withdraw_fee) for n in cur.networks.values()},
                "withdraw_percent_on_chains": {n.network: "0%" for n in cur.networks.values()},
            })
        return out

    def _deposit_address(self, req: Request) -> dict:
        code = self._arg(req, "currency", required=True)
        cur = self.wallet.currencies.get(code)
        if cur is None:
            raise GateError("INVALID_CURRENCY", f"Invalid currency: {code}")
        items = []
        for net in cur.networks.values():
            if not net.deposit_enable:
                items.append({"chain": net.network, "address": "", "payment_id": "", "payment_name": "",
                              "obtain_failed": 1, "min_confirms": net.min_confirm})
                continue
            address, tag, _url = self.wallet.deposit_address(req.account.api_key, code, net.network)
            items.append({"chain": net.network, "address": address, "payment_id": tag,
                          "payment_name": ("Memo" if net.kind in ("ton", "eos", "xlm") else "Tag") if tag else "",
                          "obtain_failed": 0, "min_confirms": net.min_confirm})
        first = next((i for i in items if not i["obtain_failed"]), None)
        return {"currency": code, "address": first["address"] if first else "", "min_deposit_amount": "0",
                "multichain_addresses": items}

    def _time_range(self, req: Request) -> tuple[int, int]:
        now = int(self.now())
        start, end = self._int(req, "from"), self._int(req, "to")
        end = now if end is None else end
        start = end - 7 * 86_400 if start is None else start
        return start * 1000, end * 1000 + 999

    def _deposits(self, req: Request) -> list:
        code = self._arg(req, "currency")
        start, end = self._time_range(req)
        rows = [d for d in self.wallet.deposits if d.account == req.account.api_key and start <= d.insert_ms <= end
                and (code is None or d.coin == code)]
        rows.sort(key=lambda d: d.insert_ms, reverse=True)
        offset, limit = self._int(req, "offset", 0), min(max(self._int(req, "limit", 100), 1), 500)
        return [_deposit_json(d) for d in rows[offset: offset + limit]]

    def _withdrawals(self, req: Request) -> list:
        code = self._arg(req, "currency")
        wid, client_id = self._arg(req, "withdraw_id"), self._arg(req, "withdraw_order_id")
        rows = [w for w in self.wallet.withdrawals if w.account == req.account.api_key
                and (code is None or w.coin == code)]
        if wid is not None:  # "time-based querying will be disabled"
            rows = [w for w in rows if self._gate_wd_ids.get(w.id) == wid]
        else:
            start, end = self._time_range(req)
            rows = [w for w in rows if start <= w.apply_ms <= end]
        if client_id is not None:
            rows = [w for w in rows if w.withdraw_order_id == client_id]
        rows.sort(key=lambda w: w.apply_ms, reverse=True)
        offset, limit = self._int(req, "offset", 0), min(max(self._int(req, "limit", 100), 1), 500)
        return [self._withdrawal_json(w) for w in rows[offset: offset + limit]]

    def _withdraw(self, req: Request) -> dict:
        """POST /withdrawals, through the same wallet and withdrawal-fault path as the base class's
        withdraw/apply (reject: nothing debited; stuck: never completes; fail_later: FAIL, funds back)."""
        account = req.account
        if not account.can_withdraw:
            raise GateError("FORBIDDEN", "No permission to withdraw", 403)
        coin = self._arg(req, "currency", required=True)
        amount = self._dec(req, "amount", required=True)
        chain = self._arg(req, "chain", required=True)
        address = self._arg(req, "address", required=True)
        memo = self._arg(req, "memo") or ""
        client_id = self._arg(req, "withdraw_order_id") or ""
        if client_id and not _WITHDRAW_ORDER_ID.match(client_id):
            raise GateError("INVALID_PARAM_VALUE", "invalid argument: withdraw_order_id (up to 32 of 0-9 A-Z a-z _ - .)")
        if coin not in self.wallet.currencies:
            raise GateError("INVALID_CURRENCY", f"Invalid currency: {coin}")
        if chain not in self.wallet.currencies[coin].networks:
            raise GateError("INVALID_PARAM_VALUE", f"invalid argument: chain {chain}")
        fault = next((f for f in self.withdrawal_faults if f.remaining > 0 and f.coin in (None, coin)), None)
        delay, final_status = self.withdraw_delay, WITHDRAW_COMPLETED
        if fault is not None and fault.kind == "reject":
            self._use_withdrawal_fault(fault, None)
            raise GateError(self.withdraw_reject_label, "Withdrawal of this currency on this chain is suspended")
        if fault is not None and fault.kind == "stuck":
            delay = None
        elif fault is not None and fault.kind == "fail_later":
            final_status = WITHDRAW_FAILURE
        wd = self.wallet.withdraw(account=account.api_key, coin=coin, network=chain, address=address, tag=memo,
                                  amount=amount, now=self.now(), delay=delay, withdraw_order_id=client_id,
                                  final_status=final_status)
        if fault is not None:
            self._use_withdrawal_fault(fault, wd.id)
        gid = self.gate_withdrawal_id(wd)
        self._tick()  # a zero delay completes at once
        req.status = 202
        return {"id": gid, "currency": coin, "amount": fmt_plain(amount), "address": address, "memo": memo or None,
                "status": "REQUEST", "chain": chain, "withdraw_order_id": client_id,
                "fee_amount": fmt_plain(wd.fee)}

    def _cancel_withdrawal(self, req: Request, withdrawal_id: str) -> dict:
        wd = self._wd_by_gate_id.get(withdrawal_id)
        if wd is None or wd.account != req.account.api_key:
            raise GateError("INVALID_WITHDRAW_ID", "Invalid withdrawal id")
        if wd.status != WITHDRAW_PROCESSING:
            raise GateError("INVALID_WITHDRAW_CANCEL_STATUS", "Withdrawal can no longer be cancelled")
        self.wallet.finish_withdrawal(wd, WITHDRAW_CANCELLED, self.now())
        req.status = 202
        return self._withdrawal_json(wd)

    def gate_withdrawal_id(self, wd: Withdrawal) -> str:
        """Gate's id of a withdrawal record ("w" + digits; ccxt reads the type from the first letter)."""
        gid = self._gate_wd_ids.get(wd.id)
        if gid is None:
            gid = f"w{1_000_000_000 + len(self._gate_wd_ids) + 1}"
            self._gate_wd_ids[wd.id] = gid
            self._wd_by_gate_id[gid] = wd
        return gid

    def finish_withdrawal(self, withdrawal_id: str, status: int = WITHDRAW_COMPLETED) -> Withdrawal:
        """The base ``finish_withdrawal``; also takes Gate's "w..." id."""
        wd = self._wd_by_gate_id.get(withdrawal_id)
        return super().finish_withdrawal(wd.id if wd is not None else withdrawal_id, status)

    # ------------------------------------------------------------------ JSON

    def _order_json(self, o: Order) -> dict:
        meta = self._meta.get(o.order_id, {})
        spec = self.engine.markets[o.symbol]
        side = o.side.lower()
        gtype = meta.get("type") or ("market" if o.type == MARKET else "limit")
        tif = meta.get("tif") or ("poc" if o.type == LIMIT_MAKER else (o.time_in_force or "gtc").lower())
        amount = meta.get("amount") or o.orig_qty
        if gtype == "market" and side == "buy":  # amount and left in the quote currency
            left = ZERO if o.status == FILLED else amount - o.cum_quote
        else:
            left = o.orig_qty - o.executed_qty
        if o.is_open:
            status, finish_as = "open", "open"
        elif o.status == FILLED:
            status, finish_as = "closed", "filled"
        elif o.status == EXPIRED:
            status, finish_as = "cancelled", ("fok" if tif == "fok" else "ioc")
        elif o.status == CANCELED:
            status, finish_as = "cancelled", "cancelled"
        else:
            status, finish_as = "cancelled", "unknown"
        fee = sum((f.commission for f in o.fills if f.order_id == o.order_id and f.owner == o.owner), ZERO)
        fee_currency = spec.base if o.side == BUY else spec.quote
        avg = (o.cum_quote / o.executed_qty) if o.executed_qty else ZERO
        price = ZERO if gtype == "market" else o.price
        return {
            "id": str(o.order_id),
            "text": meta.get("text") or (o.client_order_id if o.client_order_id.startswith("t-") else "apiv4"),
            "amend_text": "-",
            "create_time": str(o.time // 1000),
            "update_time": str(o.update_time // 1000),
            "create_time_ms": o.time,
            "update_time_ms": o.update_time,
            "status": status,
            "currency_pair": o.symbol,
            "type": gtype,
            "account": "spot",
            "side": side,
            "amount": fmt_plain(amount),
            "price": fmt_plain(price),
            "time_in_force": tif,
            "iceberg": "0",
            "left": fmt_plain(max(left, ZERO)),
            "filled_amount": fmt_plain(o.executed_qty),
            "fill_price": fmt_plain(o.cum_quote),
            "filled_total": fmt_plain(o.cum_quote),
            "avg_deal_price": fmt_plain(avg.quantize(Decimal("1e-12")).normalize()) if avg else "0",
            "fee": fmt_plain(fee),
            "fee_currency": fee_currency,
            "point_fee": "0",
            "gt_fee": "0",
            "gt_maker_fee": "0",
            "gt_taker_fee": "0",
            "gt_discount": False,
            "rebated_fee": "0",
            "rebated_fee_currency": spec.quote,
            "stp_id": 0,
            "stp_act": "-",
            "finish_as": finish_as,
        }

    def _trade_json(self, f) -> dict:
        meta = self._meta.get(f.order_id, {})
        return {
            "id": str(f.trade_id),
            "create_time": str(f.time // 1000),
            "create_time_ms": f"{f.time}.000000",
            "currency_pair": f.symbol,
            "side": f.side.lower(),
            "role": "maker" if f.is_maker else "taker",
            "amount": fmt_plain(f.qty),
            "price": fmt_plain(f.price),
            "order_id": str(f.order_id),
            "fee": fmt_plain(f.commission),
            "fee_currency": f.commission_asset,
            "point_fee": "0",
            "gt_fee": "0",
            "amend_text": "-",
            "sequence_id": str(f.trade_id),
            "text": meta.get("text", "apiv4"),
            "deal": fmt_plain(f.quote_qty),
        }

    def _withdrawal_json(self, w: Withdrawal) -> dict:
        status = {WITHDRAW_PROCESSING: "REQUEST", WITHDRAW_COMPLETED: "DONE", WITHDRAW_CANCELLED: "CANCEL",
                  WITHDRAW_REJECTED: "CANCEL", WITHDRAW_FAILURE: "FAIL"}.get(w.status, "REQUEST")
        return {
            "id": self.gate_withdrawal_id(w),
            "txid": w.txid,
            "block_number": str(10_000_000 + int(w.apply_ms // 1000) % 1_000_000) if w.status == WITHDRAW_COMPLETED else "0",
            "withdraw_order_id": w.withdraw_order_id,
            "timestamp": str(w.apply_ms // 1000),
            "amount": fmt_plain(w.amount),
            "fee": fmt_plain(w.fee),
            "currency": w.coin,
            "address": w.address,
            "type": "withdraw",
            "fail_reason": "rejected" if w.status == WITHDRAW_REJECTED else "",
            "timestamp2": str(w.complete_ms // 1000) if w.complete_ms is not None else "",
            "memo": w.tag,
            "status": status,
            "chain": w.network,
        }

    # ------------------------------------------------------------------ errors

    def _engine_label(self, exc: EngineError) -> tuple[str, str]:
        msg = exc.msg
        if msg == MSG_INSUFFICIENT:
            return "BALANCE_NOT_ENOUGH", "Not enough balance"
        if msg == MSG_WOULD_TAKE:
            return "POC_FILL_IMMEDIATELY", "Order would match and take immediately so its cancelled"
        if msg == MSG_DUPLICATE:
            return "REPEATED_CREATION", "Repeated creation: an open order already has this text"
        if exc.code in (-2011, -2013):
            return "ORDER_NOT_FOUND", "Order not found"
        if exc.code == -1121:
            return "INVALID_CURRENCY_PAIR", "Invalid currency pair"
        if "PRICE_FILTER" in msg:
            return "INVALID_PRECISION", "Invalid price precision or price out of range"
        if "LOT_SIZE" in msg:
            return "INVALID_PRECISION", "Invalid amount: precision, minimum or maximum"
        if "NOTIONAL" in msg:
            return "INVALID_PARAM_VALUE", "Your order size is too small or too large"
        return "INVALID_PARAM_VALUE", msg


_WALLET_LABELS = {
    -4018: ("INVALID_CURRENCY", "Invalid currency or chain"),
    -4019: ("API_WITHDRAW_DISABLED", "Withdrawal of this currency on this chain is suspended"),
    -4007: ("INVALID_PARAM_VALUE", "invalid argument: address"),
    -4008: ("INVALID_PARAM_VALUE", "invalid argument: memo"),
    -4021: ("INVALID_PARAM_VALUE", "invalid argument: amount precision"),
    -4022: ("INVALID_PARAM_VALUE", "invalid argument: amount below the minimum withdrawal amount"),
    -4023: ("WITHDRAWAL_OVER_LIMIT", "Withdrawal limit exceeded"),
    -4026: ("BALANCE_NOT_ENOUGH", "Not enough balance"),
    -4028: ("INVALID_PARAM_VALUE", "invalid argument: amount must be greater than the fee"),
}


def _digits(step: Decimal, name: str) -> int:
    """A power-of-ten step as a digit count (0.01 -> 2, 1 -> 0)."""
    n = step.normalize()
    if n <= 0 or n.as_tuple().digits != (1,):
        raise ValueError(f"{name} {step} is not a power of ten: Gate states precision as a digit count")
    return max(0, -n.as_tuple().exponent)


def _deposit_json(d: Deposit) -> dict:
    return {"id": f"d{d.id}", "currency": d.coin, "address": d.address, "memo": d.tag, "amount": fmt_plain(d.amount),
            "txid": d.txid, "timestamp": str(d.insert_ms // 1000),
            "status": "DONE" if d.status == DEPOSIT_SUCCESS else "PEND", "chain": d.network}


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return fmt_plain(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=_json_default).encode("utf-8")


def _ccxt_gate_urls() -> dict:
    """ccxt's own gate ``urls['api']`` ({'public': {...}, 'private': {...}}), read once."""
    global _CCXT_GATE_URLS
    if _CCXT_GATE_URLS is None:
        import ccxt

        _CCXT_GATE_URLS = {scope: dict(table) for scope, table in ccxt.gate().urls["api"].items()}
    return _CCXT_GATE_URLS


FAKE = FakeGate

__all__ = ["FAKE", "FakeGate", "GateError"]
