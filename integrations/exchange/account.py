"""ExchangeAccount: the greenlet-safe client of ONE exchange account over ONE sync ccxt instance.

Many greenlets (OrderActors, the gateway) call it at once. Every HTTP request ccxt makes goes
through two hooks installed on the instance (ccxt calls ``self.fetch`` / ``self.handle_errors``,
so instance attributes win):

- ``fetch``: weighs the request (``weights.py``: method + URL path + params -> bucket, weight),
  waits for the account's ``WeightedLimiter`` (account pause, token bucket, concurrency cap),
  sends it with the original ``fetch`` and releases the slot. A 429/418 answer pauses the whole
  account (Retry-After, or a default backoff) before the error propagates.
- ``handle_errors``: records the HTTP status and headers of the answer in a greenlet-local, the
  only concurrency-safe place (``last_response_headers`` is shared by all callers), so the fetch
  hook can read Retry-After and the used-weight headers of *its own* answer.

Each public method then converts ccxt's floats to ``Decimal`` (``to_decimal``: the one place,
``Decimal(str(x))``) and raises only ``errors.ExchangeError`` subclasses. A call refused with
429/418 is repeated after the pause (up to ``rate_limit_retries`` times) whatever it is: those
are refused before execution. Nothing else is repeated here: an ``UnknownOutcome`` of a create or
a withdrawal is resolved by the caller through its client id (``fetch_order(client_order_id=)``,
``find_withdrawal(client_id)``); reads are safe for the caller to repeat.

ccxt's own throttle is off (``enableRateLimit=False``), the instance gets its own lean transport
(``transport.LeanSession``: urllib3 pools of ``max_concurrency`` reused connections, none of requests'
per-request work), and markets are loaded once
(behind a lock: ccxt's ``load_markets`` has none, so concurrent first calls would each load).

On Binance (an HMAC key) the three quoting calls — ``create_limit_order``, ``cancel_order`` by client id and
``replace_limit_order`` — build their signed request with ``binance_lean`` (the bytes ccxt would send) and read a
plain answer there too; the request still goes through ``exchange.fetch`` (the hooks above, ccxt's error mapping)
and ``_invoke`` (retries, classification, metrics under ccxt's method names). ``lean_quoting = False`` sends them
through ccxt's generic path instead.
"""
from __future__ import annotations

import dataclasses
import decimal
import hashlib

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import ccxt
import gevent.local
import gevent.lock
import requests
from ccxt.base.decimal_to_precision import TICK_SIZE
from loguru import logger
from requests.adapters import HTTPAdapter

from domain.exchange_config import ExchangeAccountConfig
from integrations import metrics
from integrations.exchange import binance_lean
from integrations.exchange import lean_orders
from integrations.exchange.errors import (
    DefinitiveError,
    ExchangeError,
    RateLimited,
    classify,
)
from integrations.exchange.limiter import WeightedLimiter
from integrations.exchange.transport import LeanSession
from integrations.exchange.venues import venue
from integrations.exchange.weights import WeightTable, table_for

__all__ = [
    "AccountStats",
    "Balance",
    "DepositAddress",
    "ExchangeAccount",
    "MarketRules",
    "OrderBook",
    "OrderInfo",
    "ReplaceOutcome",
    "Ticker",
    "TradeInfo",
    "Transfer",
    "to_decimal",
]

# What differs per venue (ccxt options that keep load_markets on spot, the withdrawal client id and
# where the venue echoes it, the used-weight headers) lives in integrations/exchange/venues/.
TRANSFER_STATUSES = frozenset({"pending", "ok", "failed", "canceled"})
PRECISION_MEMO_MAX = 20_000   # remembered amount / price texts of an account (ExchangeAccount._precision)


def to_decimal(value: Any) -> Decimal | None:
    """THE conversion of a ccxt number (float, int, str, Decimal, None) to Decimal: ``Decimal(str(x))``.

    ``str()`` of a float is its shortest round-trip text (``0.1`` -> ``"0.1"``), never the binary
    expansion. None, empty strings and non-finite values become None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    text = str(value).strip()
    if not text:
        return None
    try:
        result = Decimal(text)
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def _money(value: Any, name: str) -> Decimal:
    """An amount or price handed IN by mmflow: Decimal, int or decimal text; a float is a bug."""
    if isinstance(value, float) or isinstance(value, bool):
        raise TypeError(f"{name} must be a Decimal, not {type(value).__name__} {value!r}")
    result = value if isinstance(value, Decimal) else Decimal(str(value))
    if not result.is_finite():
        raise ValueError(f"{name} must be finite, got {value!r}")
    return result


def _ms(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


# ---------------------------------------------------------------------- results


class Balance(NamedTuple):
    free: Decimal
    used: Decimal
    total: Decimal


@dataclass(frozen=True)
class DepositAddress:
    address: str
    tag: str | None
    network: str | None
    code: str = ""


@dataclass(frozen=True)
class Transfer:
    """A deposit or a withdrawal. ``status``: pending | ok | failed | canceled, or ``unknown``
    when the exchange reported something else (kept in ``raw_status``): needs attention."""

    id: str
    txid: str | None
    code: str
    network: str | None
    address: str | None
    tag: str | None
    amount: Decimal | None
    fee: Decimal | None
    status: str
    timestamp_ms: int | None
    type: str = ""  # "deposit" | "withdrawal"
    client_id: str | None = None
    raw_status: str | None = None
    info: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class OrderInfo:
    id: str
    client_order_id: str | None
    symbol: str
    side: str | None
    type: str | None
    status: str | None  # open | closed | canceled | expired | rejected (ccxt's unified statuses)
    price: Decimal | None
    amount: Decimal | None
    filled: Decimal | None
    remaining: Decimal | None
    cost: Decimal | None
    average: Decimal | None
    fee: Decimal | None
    fee_currency: str | None
    timestamp_ms: int | None
    post_only: bool | None
    info: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class ReplaceOutcome:
    """What one cancel-replace request did, half by half (the request itself was answered).

    ``cancelled``: the old order as the cancel left it, or None when the cancel failed (``cancel_error``:
    gone already, filled, unknown — its fate is for the update stream to look up). ``placed``: the new
    order, or None — ``place_error`` when the venue refused it, None when it was not attempted (the
    cancel failed first). Either way a new order that is not ``placed`` is not on the exchange."""

    cancelled: OrderInfo | None
    placed: OrderInfo | None
    cancel_error: DefinitiveError | None = None
    place_error: DefinitiveError | None = None


@dataclass(frozen=True)
class TradeInfo:
    id: str
    order_id: str | None
    symbol: str
    side: str | None
    price: Decimal | None
    amount: Decimal | None
    cost: Decimal | None
    fee: Decimal | None
    fee_currency: str | None
    taker_or_maker: str | None
    timestamp_ms: int | None
    info: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class OrderBook:
    symbol: str
    bids: tuple[tuple[Decimal, Decimal], ...]
    asks: tuple[tuple[Decimal, Decimal], ...]
    nonce: int | None
    timestamp_ms: int | None


@dataclass(frozen=True)
class Ticker:
    symbol: str
    bid: Decimal | None
    ask: Decimal | None
    last: Decimal | None
    bid_volume: Decimal | None
    ask_volume: Decimal | None
    high: Decimal | None
    low: Decimal | None
    base_volume: Decimal | None
    quote_volume: Decimal | None
    timestamp_ms: int | None


@dataclass(frozen=True)
class MarketRules:
    """Trading rules of a symbol as Decimals (TICK_SIZE exchanges: steps, not digit counts)."""

    symbol: str
    price_tick: Decimal | None
    amount_step: Decimal | None
    min_amount: Decimal | None
    min_cost: Decimal | None
    maker_fee: Decimal | None
    taker_fee: Decimal | None


@dataclass(frozen=True)
class AccountStats:
    requests: int  # HTTP requests sent
    waits: int  # requests that queued in the limiter
    wait_seconds: float
    penalties: int  # account pauses (429/418), merged refusals counted once
    rejected_429: int  # answers refused with 429 (or a rate-limit code)
    rejected_418: int  # answers refused with 418 (IP ban)
    retries: int  # calls repeated after a rate-limit pause
    in_flight: int
    queued: int
    paused_for: float
    http_seconds: float  # total time inside HTTP requests
    used_weight: Mapping[str, int]  # last used-weight header seen per header name
    errors: Mapping[str, int]  # raised errors by kind


# ---------------------------------------------------------------------- the account


def _plain(value: Any) -> Any:
    """Mappings (MappingProxyType from the frozen config) to fresh dicts, lists copied."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = _plain(value)
    return out


def _rehost(value: Any, base: str) -> Any:
    """Every http(s) URL in ``value`` moved to ``base`` (scheme://host[:port]), paths kept."""
    if isinstance(value, dict):
        return {k: _rehost(v, base) for k, v in value.items()}
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        parts = urlsplit(value)
        rest = value[len(f"{parts.scheme}://{parts.netloc}"):]
        return base.rstrip("/") + rest
    return value


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    if not headers:
        return None
    raw = headers.get("Retry-After") or headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _digest(body: bytes) -> bytes:
    # SHA-256 (cut to 16 bytes): with the SHA extensions of today's x86 and ARM CPUs it hashes ~1.4 GB/s, twice
    # blake2b (a 100,000-order reply is ~40 MB); the digest is only ever compared in this process
    return hashlib.sha256(body).digest()[:16]


class _Unchanged:
    """What ccxt reads of an open-orders answer whose bytes are the ones the caller knows (their digest): ``[]``, not
    ~40 MB decoded to text and parsed for nothing (``fetch_open_orders_unless`` reads no record of it)."""

    __slots__ = ("encoding", "headers", "reason", "status_code", "url")
    text = "[]"
    content = b"[]"

    def __init__(self, answer: Any) -> None:
        self.status_code = answer.status_code
        self.reason = answer.reason
        self.headers = answer.headers
        self.encoding = "utf-8"
        self.url = getattr(answer, "url", "")

    def raise_for_status(self) -> None:
        """Only a 200 answer stands in here."""


class _DigestingSession:
    """The session ccxt sends through (the account's ``LeanSession``, everything else delegated to it): inside
    ``fetch_open_orders_unless`` (greenlet-local ``raw_orders``) a 200 answer's digest is taken of its bytes, and one
    whose digest is the known one reaches ccxt as ``_Unchanged``. Every request of ccxt's goes through its session
    (``Exchange.fetch``): this is the one place a reply's digest is taken."""

    __slots__ = ("_inner", "_local")

    def __init__(self, inner: Any, local: Any) -> None:
        self._inner = inner
        self._local = local

    def request(self, *args: Any, **kwargs: Any) -> Any:
        answer = self._inner.request(*args, **kwargs)
        local = self._local
        if getattr(local, "raw_orders", False) and answer.status_code == 200:
            digest = _digest(answer.content)
            local.open_digest = digest
            if digest == local.open_known:
                return _Unchanged(answer)
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class ExchangeAccount:
    """Greenlet-safe facade over ONE sync ccxt instance for one account (see the module docstring)."""

    def __init__(
        self,
        cfg: ExchangeAccountConfig,
        *,
        exchange_factory: Callable[[dict[str, Any]], Any] | None = None,
        limiter: WeightedLimiter | None = None,
        weights: WeightTable | None = None,
    ) -> None:
        self.cfg = cfg
        self.account_id = cfg.account_id
        self.session = requests.Session()
        # like ccxt's own sessions (requests_trust_env = False): no proxy / netrc from the environment
        # (and no os.environ scan per request, ~15% of a request's CPU); ccxt's proxy settings still apply
        self.session.trust_env = False
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(10, cfg.max_concurrency))
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        # what ccxt sends through: reused urllib3 connections without requests' per-request work (transport.py);
        # the requests session above carries what the lean path does not (proxies, multipart)
        self.transport = LeanSession(maxsize=max(10, cfg.max_concurrency), fallback=self.session)
        self._local = gevent.local.local()
        factory = exchange_factory or getattr(ccxt, cfg.ccxt_id)
        self._ex = factory(self._ccxt_params())
        self._apply_url_overrides()
        self.limiter = limiter or WeightedLimiter(
            cfg.weight_per_minute, window=cfg.weight_window, max_concurrency=cfg.max_concurrency,
            bucket_limits=cfg.bucket_limits, name=cfg.account_id,
        )
        self.weights = weights or table_for(cfg.ccxt_id, cfg.weights)
        self.venue = venue(cfg.ccxt_id)
        if self.venue.exact_errors:  # codes ccxt's table lacks (e.g. an order the venue does not know)
            exact = dict(self._ex.exceptions.get("exact") or {})
            exact.update({code: getattr(ccxt, name) for code, name in self.venue.exact_errors.items()})
            self._ex.exceptions["exact"] = exact
        if not cfg.withdraw_client_id:  # the operator does not rely on the venue's client id
            self.venue = dataclasses.replace(self.venue, withdraw_client_id_param=None, withdraw_client_id_field=None)
        self._markets_lock = gevent.lock.Semaphore()
        self._markets_loaded = False
        self._requests = 0
        self._rejected_429 = 0
        self._rejected_418 = 0
        self._retries = 0
        self._http_seconds = 0.0
        self._used_weight: dict[str, int] = {}
        self._errors: Counter[str] = Counter()
        self._orig_fetch = self._ex.fetch
        self._orig_fetch2 = self._ex.fetch2
        self._orig_sign = self._ex.sign
        self._orig_handle_errors = self._ex.handle_errors
        self._ex.fetch = self._fetch
        self._ex.fetch2 = self._fetch2
        self._ex.sign = self._sign
        self._ex.handle_errors = self._handle_errors
        self._api_paths: dict[Any, str | None] = {}
        # (symbol, "amount" | "price", decimal text) -> ccxt's amount_to_precision / price_to_precision of it: the
        # same few amounts and prices are sent again and again (every order of a pair at a mid), and ccxt's
        # decimal_to_precision costs a tenth of a quoting request's CPU
        self._precise: dict[tuple[str, str, str], str] = {}
        # place / cancel / cancel-replace built and read here, not by ccxt's generic path (binance_lean.py); off
        # for keys ccxt signs otherwise (RSA / Ed25519) — and for tests that send both ways and compare
        self.lean_quoting = cfg.ccxt_id == "binance" and bool(cfg.api_key) and bool(cfg.secret) \
            and "PRIVATE KEY" not in (cfg.secret or "")
        self._orig_parse_orders = self._ex.parse_orders
        self._ex.parse_orders = self._parse_orders

    # ------------------------------------------------------------------ construction

    def _ccxt_params(self) -> dict[str, Any]:
        cfg = self.cfg
        params: dict[str, Any] = _plain(cfg.config)
        params["options"] = _deep_merge(_plain(venue(cfg.ccxt_id).options), cfg.options)
        params["session"] = _DigestingSession(self.transport, self._local)
        params["enableRateLimit"] = False  # our limiter; ccxt's does not serialize concurrent callers
        params["timeout"] = int(cfg.request_timeout * 1000)
        # shared per-instance "last response" state is racy under concurrency and unused here
        params["enableLastHttpResponse"] = False
        params["enableLastJsonResponse"] = False
        params["enableLastResponseHeaders"] = False
        if cfg.api_key:
            params["apiKey"] = cfg.api_key
        if cfg.secret:
            params["secret"] = cfg.secret
        if cfg.password:
            params["password"] = cfg.password
        urls = _plain(cfg.urls)
        if urls and not isinstance(urls.get("api"), str):
            params["urls"] = urls  # ccxt deep-merges it into its own table
        return params

    def _apply_url_overrides(self) -> None:
        urls = self.cfg.urls
        if not urls:
            return
        api = urls.get("api")
        if isinstance(api, str):  # shorthand: every API URL to this host, paths kept
            self._ex.urls["api"] = _rehost(self._ex.urls["api"], api)
            for key, value in urls.items():
                if key != "api":
                    self._ex.urls[key] = _plain(value)
        if self.cfg.ccxt_id == "binance":
            # binance picks its spot error table by hostname (api.binance.com); a testnet or local
            # venue never matches, so merge it into the exact table (e.g. -4026 -> InsufficientFunds).
            spot = self._ex.exceptions.get("spot", {}).get("exact", {})
            self._ex.exceptions.setdefault("exact", {}).update(spot)

    def close(self) -> None:
        self.transport.close()   # and the requests session it falls back on

    # ------------------------------------------------------------------ hooks (every HTTP request)

    def _handle_errors(self, code, reason, url, method, headers, body, response, request_headers, request_body):
        self._local.response = (code, headers)
        if getattr(self._local, "keep_body", False):
            self._local.body = response  # a cancel-replace's answer: both halves, even on a 4xx
        return self._orig_handle_errors(code, reason, url, method, headers, body, response, request_headers,
                                        request_body)

    def _admit(self, method: str, url: str, body: Any):
        """Wait for the limiter's permit for one request (its weight from the table, or the caller's)."""
        bucket, weight = self.weights.weigh(method, url, body)
        override = getattr(self._local, "weight", None)
        if override is not None:
            weight = override
        return self.limiter.acquire(weight, bucket)

    def _api_path(self, api: Any) -> str | None:
        """The URL path ccxt puts before an endpoint of ``api`` (Binance: ``urls['api'][api[0]]`` + ``/`` +
        path), or None where it is not that simple (other venues: weighed from the signed request)."""
        key = api if isinstance(api, str) else tuple(api or ())
        if key not in self._api_paths:
            node: Any = self._ex.urls.get("api")
            for part in (key,) if isinstance(key, str) else key[:1]:
                node = node.get(part) if isinstance(node, Mapping) else None
            simple = self.cfg.ccxt_id == "binance" and isinstance(node, str) and "{" not in node
            self._api_paths[key] = urlsplit(node).path.rstrip("/") if simple else None
        return self._api_paths[key]

    def _fetch2(self, path: str, api: Any = ("public",), method: str = "GET", params: Any = None,
                config: Any = None) -> Any:
        """ccxt's ``fetch2`` (sign, then fetch), admitted by the limiter BEFORE signing: the timestamp is taken
        after any wait, right before the bytes go out (Binance refuses a request that reaches it after its
        recvWindow, -1021: one signed, then queued behind the limiter or a saturated hub would)."""
        params = {} if params is None else params
        config = {} if config is None else config
        prefix = self._api_path(api) if isinstance(params, Mapping) and "{" not in path else None
        if prefix is not None:   # else _sign weighs the signed request, and signs it again if it had to wait
            bucket, weight = self.weights.weigh_params(method, f"{prefix}/{path}", params)
            override = getattr(self._local, "weight", None)
            self._local.permit = self.limiter.acquire(weight if override is None else override, bucket)
        try:
            return self._orig_fetch2(path, api, method, params, config)
        finally:
            left = getattr(self._local, "permit", None)
            if left is not None:   # admitted, but fetch never ran (ccxt raised in between): free the slot
                self._local.permit = None
                left.release()

    def _sign(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """ccxt's ``sign``. Admitted already (``_fetch2``): sign. Else weigh the signed request, wait for the
        limiter, and sign again after a wait (a fresh timestamp); the permit is handed to ``_fetch``."""
        request = self._orig_sign(*args, **kwargs)
        if getattr(self._local, "permit", None) is not None:
            return request
        permit = self._admit(request["method"], request["url"], request["body"])
        if permit.waited > 0:
            try:
                request = self._orig_sign(*args, **kwargs)
            except BaseException:
                permit.release()
                raise
        self._local.permit = permit
        return request

    def _fetch(self, url, method="GET", headers=None, body=None):
        permit = getattr(self._local, "permit", None)
        if permit is None:   # a fetch ccxt made without sign(): admitted here
            permit = self._admit(method, url, body)
        else:
            self._local.permit = None
        self._local.response = None
        started = time.perf_counter()
        try:
            result = self._orig_fetch(url, method, headers, body)
        except ccxt.BaseError as exc:
            self._after_error(exc, method, url)
            raise
        finally:
            permit.release()
            self._requests += 1
            self._http_seconds += time.perf_counter() - started
        self._after_success()
        if getattr(self._local, "keep_body", False):
            self._local.body = result
        return result

    def _after_error(self, exc: ccxt.BaseError, method: str, url: str) -> None:
        status, headers = getattr(self._local, "response", None) or (None, None)
        self._local.response = None
        exc.mmflow_http_status = status  # read by errors.classify
        if not (isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection)) or status in (418, 429)):
            return
        banned = status == 418
        retry_after = _retry_after(headers)
        exc.mmflow_retry_after = retry_after
        if banned:
            self._rejected_418 += 1
        else:
            self._rejected_429 += 1
        metrics.rate_limited(self.account_id, 418 if banned else 429)
        self.limiter.penalize(retry_after, status=418 if banned else 429,
                              reason=f"{method} {urlsplit(url).path}")

    def _after_success(self) -> None:
        status, headers = getattr(self._local, "response", None) or (None, None)
        self._local.response = None
        if headers:
            for name in self.venue.used_weight_headers:
                value = headers.get(name)
                if value is not None:
                    try:
                        self._used_weight[name] = int(value)
                    except ValueError:
                        pass
        self.limiter.note_success()

    # ------------------------------------------------------------------ calling ccxt

    def _invoke(self, name: str, *args: Any, weight: int | None = None, call: Callable[..., Any] | None = None,
                **kwargs: Any) -> Any:
        """Call ``exchange.<name>`` (or ``call``, counted as ``name``); 429/418 are retried after the account pause,
        a request refused for its timestamp (kind ``clock``) once at once; errors classified."""
        if name != "load_markets":
            self.load_markets()
        fn = call or getattr(self._ex, name)
        attempt = 0
        clock_retried = False
        while True:
            self._local.weight = weight
            started = time.perf_counter()
            try:
                # ccxt's decimal_to_precision rewrites the current Decimal context (ROUND_HALF_UP,
                # Underflow trapped); keep that inside the call, away from our own arithmetic.
                with decimal.localcontext():
                    result = fn(*args, **kwargs)
            except ccxt.BaseError as exc:
                err = classify(exc)
            else:
                metrics.exchange_request(self.cfg.ccxt_id, name, "ok", time.perf_counter() - started)
                return result
            finally:
                self._local.weight = None
            metrics.exchange_request(self.cfg.ccxt_id, name, err.kind, time.perf_counter() - started)
            if isinstance(err, RateLimited) and attempt < self.cfg.rate_limit_retries:
                attempt += 1
                self._retries += 1
                continue  # the next acquire() waits until the account pause is over
            if err.kind == "clock" and not clock_retried:
                # refused for its timestamp before anything happened (-1021): once more, signed afresh
                clock_retried = True
                self._retries += 1
                continue
            self._errors[err.kind] += 1
            raise err from err.cause

    def _local_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A ccxt helper that raises without a request (precision, unknown symbol): classified too."""
        try:
            with decimal.localcontext():  # see _invoke: ccxt mutates the Decimal context
                return fn(*args)
        except ccxt.BaseError as exc:
            err = classify(exc)
            self._errors[err.kind] += 1
            raise err from exc

    def _market(self, symbol: str) -> Mapping[str, Any]:
        """ccxt's market of a unified symbol (looked up in the loaded markets first: ccxt's market() costs a
        request's worth of CPU on the quoting path)."""
        market = (self._ex.markets or {}).get(symbol)
        return market if market is not None else self._local_call(self._ex.market, symbol)

    def _lean_market(self, symbol: str, post_only: bool) -> Mapping[str, Any] | None:
        """The market, when this request may take the lean path (binance_lean.py): a spot market that takes
        the order type; else None (ccxt's own path, which also raises what ccxt raises)."""
        if not self.lean_quoting:
            return None
        market = self._market(symbol)
        kind = "LIMIT_MAKER" if post_only else "LIMIT"
        if market.get("spot") is not True or kind not in ((market.get("info") or {}).get("orderTypes") or ()):
            return None
        return market

    def _lean_send(self, path: str, method: str, params: dict[str, str]) -> Any:
        """One signed private request built by binance_lean, admitted by the limiter BEFORE it is signed (as
        ``_fetch2``), sent through ccxt's ``fetch`` (our hooks, ccxt's error mapping and JSON)."""
        ex = self._ex
        bucket, weight = self.weights.weigh_params(method, f"{self._api_path(('private',))}/{path}", params)
        override = getattr(self._local, "weight", None)
        self._local.permit = self.limiter.acquire(weight if override is None else override, bucket)
        try:
            url, body, headers = binance_lean.signed_request(
                ex.urls["api"]["private"], path, method, params, ex.apiKey, ex.secret, ex.nonce(),
                ex.safe_integer(ex.options, "recvWindow"))
            answer = ex.fetch(url, method, headers, body)
        finally:
            left = getattr(self._local, "permit", None)
            if left is not None:   # admitted, but fetch never ran: free the slot
                self._local.permit = None
                left.release()
        ex.options["hasAlreadyAuthenticatedSuccessfully"] = True   # what ccxt's request() notes (-2015 after it)
        return answer

    def _lean_params(self, market: Mapping[str, Any], side: str, amount_s: str, price_s: str, client_order_id: str,
                     post_only: bool) -> tuple[str, str, str, str, str, bool, str, str]:
        ex = self._ex
        return (market["id"], side, amount_s, price_s, client_order_id, post_only,
                ex.safe_string(ex.options["newOrderRespType"], "limit", "FULL"),
                ex.handle_option("createOrder", "timeInForce"))

    def _lean_order(self, raw: Any, symbol: str) -> OrderInfo:
        """A plain answer read here (binance_lean.plain_order) into what ccxt's parse_order + ``_order`` give;
        any other answer parsed by ccxt."""
        market = self._market(symbol)
        plain = binance_lean.plain_order(raw, market["id"])
        if plain is None:
            return self._parsed(raw, symbol)
        amount = plain["amount"]
        client_id = _str(plain["origClientOrderId"]) or _str(plain["clientOrderId"])
        return OrderInfo(
            id=plain["id"], client_order_id=client_id, symbol=market["symbol"], side=plain["side"],
            type=plain["type"], status=plain["status"], price=plain["price"], amount=amount, filled=plain["filled"],
            remaining=amount, cost=plain["cost"], average=None, fee=None,
            fee_currency=None, timestamp_ms=_ms(plain["timestamp"]), post_only=plain["postOnly"], info=raw)

    def call(self, method: str, *args: Any, weight: int | None = None, **kwargs: Any) -> Any:
        """Any ccxt method (``ex.<method>(*args, **kwargs)``) through the same limiter and error
        classification; ``weight`` overrides the table for each request it makes. The result is
        ccxt's own (floats NOT converted)."""
        if method.startswith("_") or not callable(getattr(self._ex, method, None)):
            raise AttributeError(f"{self.cfg.ccxt_id} has no method {method!r}")
        return self._invoke(method, *args, weight=weight, **kwargs)

    # ------------------------------------------------------------------ markets

    def load_markets(self) -> None:
        """Load markets and currencies once; later calls return at once (concurrent first calls wait)."""
        if self._markets_loaded:
            return
        with self._markets_lock:
            if self._markets_loaded:
                return
            self._invoke("load_markets")
            self._markets_loaded = True
            logger.info("exchange {}: {} markets, {} currencies loaded", self.account_id,
                        len(self._ex.markets or {}), len(self._ex.currencies or {}))

    @property
    def markets_loaded(self) -> bool:
        return self._markets_loaded

    @property
    def markets(self) -> dict[str, Any]:
        """ccxt's unified markets (floats as ccxt has them); {} before load_markets."""
        return self._ex.markets or {}

    @property
    def currencies(self) -> dict[str, Any]:
        """ccxt's unified currencies with their ``networks``; {} before load_markets."""
        return self._ex.currencies or {}

    @property
    def exchange(self) -> Any:
        """The ccxt instance (read-only use: calling it directly bypasses the limiter)."""
        return self._ex

    def market_rules(self, symbol: str) -> MarketRules:
        self.load_markets()
        m = self._local_call(self._ex.market, symbol)
        tick_mode = self._ex.precisionMode == TICK_SIZE
        precision = m.get("precision") or {}
        limits = m.get("limits") or {}
        return MarketRules(
            symbol=m["symbol"],
            price_tick=to_decimal(precision.get("price")) if tick_mode else None,
            amount_step=to_decimal(precision.get("amount")) if tick_mode else None,
            min_amount=to_decimal((limits.get("amount") or {}).get("min")),
            min_cost=to_decimal((limits.get("cost") or {}).get("min")),
            maker_fee=to_decimal(m.get("maker")),
            taker_fee=to_decimal(m.get("taker")),
        )

    # ------------------------------------------------------------------ wallet

    def fetch_deposit_address(self, code: str, network: str | None = None) -> DepositAddress:
        """The account's deposit address for ``code`` on ``network``. Where an address exists only once made
        (mexc, kucoin, kraken: the listing is empty and ccxt raises InvalidAddress) and the ccxt class can
        make one, it is created and read again — creating the same coin/network twice is harmless."""
        params = {"network": network} if network else {}
        try:
            r = self._invoke("fetch_deposit_address", code, params)
        except DefinitiveError as exc:
            if exc.kind not in ("invalid_address", "not_found") or not self._ex.has.get("createDepositAddress"):
                raise
            logger.info("exchange {}: no {} deposit address on {} yet ({}); creating one", self.account_id, code,
                        network or "the default network", exc)
            made = self._invoke("create_deposit_address", code, dict(params))
            r = made if made and made.get("address") else self._invoke("fetch_deposit_address", code, params)
        # binance derives the reply's network from the explorer URL; without currencies it is None
        return DepositAddress(address=str(r["address"]), tag=_str(r.get("tag")),
                              network=_str(r.get("network")) or network, code=code)

    def fetch_deposits(self, code: str | None = None, since_ms: int | None = None,
                       limit: int | None = None) -> list[Transfer]:
        rows = self._invoke("fetch_deposits", code, since_ms, limit, {})
        return [self._transfer(t, "deposit") for t in rows]

    def fetch_withdrawals(self, code: str | None = None, since_ms: int | None = None, limit: int | None = None,
                          *, client_id: str | None = None) -> list[Transfer]:
        params: dict[str, Any] = {}
        param = self.venue.withdraw_client_id_param
        if client_id and param:
            params[param] = client_id
        rows = self._invoke("fetch_withdrawals", code, since_ms, limit, params)
        out = [self._transfer(t, "withdrawal") for t in rows]
        if client_id:
            out = [t for t in out if t.client_id == client_id]
        return out

    def find_withdrawal(self, client_id: str, code: str | None = None,
                        since_ms: int | None = None) -> Transfer | None:
        """The withdrawal made with ``client_id`` (resolves an UnknownOutcome of withdraw()), or None.
        Only on a venue that echoes our client id (``venue.has_withdraw_client_id``).

        None right after the call is not proof of absence: repeat the lookup later."""
        found = self.fetch_withdrawals(code, since_ms, client_id=client_id)
        return found[0] if found else None

    def withdrawal_by_id(self, withdrawal_id: str, code: str | None = None,
                         since_ms: int | None = None) -> Transfer | None:
        """The withdrawal the venue gave this id (any venue: the id came back when it accepted it)."""
        return next((t for t in self.fetch_withdrawals(code, since_ms) if t.id == withdrawal_id), None)

    def withdrawals_like(self, code: str, *, address: str, tag: str | None, amount: Decimal,
                         since_ms: int) -> list[Transfer]:
        """Withdrawals in the venue's history that could be ours: same currency, address and tag, made since
        ``since_ms``, for ``amount`` as requested or as it arrives (minus the venue's fee). On a venue
        without a withdrawal client id this is how a withdrawal whose reply was lost is found again;
        more than one is ambiguous (never resolved by guessing)."""
        out = []
        for t in self.fetch_withdrawals(code, since_ms):
            if (t.address or "") != address or (t.tag or "") != (tag or ""):
                continue
            if t.timestamp_ms is not None and t.timestamp_ms < since_ms:
                continue
            gross = (t.amount or Decimal(0)) + (t.fee or Decimal(0))
            if amount in (t.amount, gross):
                out.append(t)
        return out

    def withdraw(self, code: str, amount: Decimal, address: str, tag: str | None = None,
                 network: str | None = None, *, client_id: str) -> Transfer:
        """Withdraw ``amount`` (truncated to the network's precision; the Transfer says what was
        sent). ``client_id`` goes out as the exchange's withdrawal client id so a withdrawal whose
        reply was lost is found again with ``find_withdrawal(client_id)``. Not repeated on
        UnknownOutcome; repeated on 429/418 (refused before execution)."""
        if not client_id:
            raise DefinitiveError("withdraw needs a client_id", kind="bad_request")
        self.load_markets()
        sent = self._withdraw_amount(code, _money(amount, "amount"), network)
        params: dict[str, Any] = dict(self.venue.withdraw_params)
        if self.venue.withdraw_client_id_param:
            params[self.venue.withdraw_client_id_param] = client_id
        if network:
            params["network"] = network
        if tag:
            params["tag"] = tag  # ccxt >= 4.5.87 takes the memo only in params (never a None value)
        r = self._invoke("withdraw", code, format(sent, "f"), address, params)
        fee = r.get("fee") or {}
        return Transfer(
            id=str(r.get("id")), txid=_str(r.get("txid")), code=code, network=_str(r.get("network")) or network,
            address=address, tag=tag or None, amount=sent, fee=to_decimal(fee.get("cost")),
            status="pending", timestamp_ms=_ms(r.get("timestamp")) or int(time.time() * 1000), type="withdrawal",
            client_id=client_id, raw_status=_str(r.get("status")), info=r.get("info") or {},
        )

    def withdrawal_terms(self, code: str, network: str | None):
        """What a withdrawal of ``code`` over ``network`` costs and requires, from the exchange's currencies:
        fee (taken out of the amount), minimum, precision step, and whether withdrawals are enabled."""
        from domain.way_back import WithdrawalTerms

        self.load_markets()
        currency = self.currencies.get(code) or {}
        net = self._network_of(currency, network)
        source = net or currency
        fee = to_decimal(source.get("fee"))
        limits = (source.get("limits") or {}).get("withdraw") or {}
        minimum = to_decimal(limits.get("min")) or Decimal(0)
        precision = (net or {}).get("precision") if net and net.get("precision") is not None \
            else currency.get("precision")
        step = to_decimal(precision) if self._ex.precisionMode == TICK_SIZE else None
        enabled = source.get("withdraw")
        if fee is None or (not minimum and self.venue.withdraw_min_info_field):
            # some ccxt classes (gate 4.5.90) put no withdrawal fee / minimum in currencies: ask the fees endpoint
            fee, minimum = self._withdraw_fee_and_min(code, network, fee, minimum)
        if fee is None:
            raise DefinitiveError(f"{self.account_id}: no withdrawal fee known for {code} on {network}",
                                  kind="not_supported")
        return WithdrawalTerms(fee=fee, minimum=minimum, step=step if step and step > 0 else None,
                               enabled=enabled is not False)

    def _withdraw_fee_and_min(self, code: str, network: str | None, fee: Decimal | None,
                              minimum: Decimal) -> tuple[Decimal | None, Decimal]:
        """Fee and minimum from ``fetch_deposit_withdraw_fees`` (per network; the minimum from the venue's
        ``withdraw_min_info_field`` of the raw entry), where currencies lack them."""
        if not self._ex.has.get("fetchDepositWithdrawFees"):
            return fee, minimum
        entry = (self._invoke("fetch_deposit_withdraw_fees", [code]) or {}).get(code) or {}
        networks = entry.get("networks") or {}
        net = networks.get(network) if network else None
        if net is None and network:  # given as the venue's own id: find its unified code
            ids = {k: n.get("id") for k, n in ((self.currencies.get(code) or {}).get("networks") or {}).items()}
            net = next((v for k, v in networks.items() if ids.get(k) == network), None)
        if fee is None:
            fee = to_decimal(((net or {}).get("withdraw") or {}).get("fee"))
            if fee is None and not network:
                fee = to_decimal((entry.get("withdraw") or {}).get("fee"))
        field = self.venue.withdraw_min_info_field
        if field and not minimum:
            minimum = to_decimal((entry.get("info") or {}).get(field)) or minimum
        return fee, minimum

    @staticmethod
    def _network_of(currency: Mapping[str, Any], network: str | None) -> Mapping[str, Any] | None:
        networks = currency.get("networks") or {}
        if not network:
            return None
        net = networks.get(network)
        if net is None:
            net = next((n for n in networks.values() if n.get("id") == network), None)
        return net

    def _withdraw_amount(self, code: str, amount: Decimal, network: str | None) -> Decimal:
        if amount <= 0:
            raise DefinitiveError(f"withdraw amount must be > 0, got {amount}", kind="bad_request")
        currency = self.currencies.get(code) or {}
        precision = currency.get("precision")
        networks = currency.get("networks") or {}
        net = networks.get(network) if network else None
        if net is None and network:
            net = next((n for n in networks.values() if n.get("id") == network), None)
        if net and net.get("precision") is not None:
            precision = net["precision"]
        step = to_decimal(precision) if self._ex.precisionMode == TICK_SIZE else None
        if step is None or step <= 0:
            return amount
        sent = (amount / step).to_integral_value(rounding=ROUND_DOWN) * step
        if sent <= 0:
            raise DefinitiveError(f"withdraw amount {amount} {code} is below the precision step {step}",
                                  kind="bad_request")
        return sent

    def fetch_balance(self) -> dict[str, Balance]:
        b = self._invoke("fetch_balance")
        free, used, total = b.get("free") or {}, b.get("used") or {}, b.get("total") or {}
        zero = Decimal(0)
        return {code: Balance(to_decimal(free.get(code)) or zero, to_decimal(used.get(code)) or zero,
                              to_decimal(total.get(code)) or zero)
                for code in sorted(set(free) | set(used) | set(total))}

    # ------------------------------------------------------------------ market data

    def fetch_order_book(self, symbol: str, limit: int | None = 20) -> OrderBook:
        ob = self._invoke("fetch_order_book", symbol, limit)

        def side(levels: Any) -> tuple[tuple[Decimal, Decimal], ...]:
            return tuple((to_decimal(level[0]), to_decimal(level[1])) for level in levels or ())

        return OrderBook(symbol=ob.get("symbol") or symbol, bids=side(ob.get("bids")), asks=side(ob.get("asks")),
                         nonce=_ms(ob.get("nonce")), timestamp_ms=_ms(ob.get("timestamp")))

    def fetch_ticker(self, symbol: str) -> Ticker:
        t = self._invoke("fetch_ticker", symbol)
        return Ticker(symbol=t.get("symbol") or symbol, bid=to_decimal(t.get("bid")), ask=to_decimal(t.get("ask")),
                      last=to_decimal(t.get("last")), bid_volume=to_decimal(t.get("bidVolume")),
                      ask_volume=to_decimal(t.get("askVolume")), high=to_decimal(t.get("high")),
                      low=to_decimal(t.get("low")), base_volume=to_decimal(t.get("baseVolume")),
                      quote_volume=to_decimal(t.get("quoteVolume")), timestamp_ms=_ms(t.get("timestamp")))

    # ------------------------------------------------------------------ orders

    def create_limit_order(self, symbol: str, side: str, amount: Decimal, price: Decimal, *,
                           client_order_id: str, post_only: bool = True) -> OrderInfo:
        """Place a limit order. The amount is truncated to the step (``amount_to_precision``); the
        price is moved to the tick AWAY from the other side (buy: down, sell: up) before
        ``price_to_precision``, so rounding never makes a quote more aggressive than asked.
        Not repeated on UnknownOutcome: resolve with ``fetch_order(client_order_id=...)``."""
        if not client_order_id:
            raise DefinitiveError("create_limit_order needs a client_order_id", kind="bad_request")
        amount_s, price_s, params = self._limit_order_request(symbol, side, amount, price, client_order_id,
                                                              post_only)
        market = self._lean_market(symbol, post_only)
        if market is not None:
            request = binance_lean.order_params(*self._lean_params(market, side, amount_s, price_s, client_order_id,
                                                                   post_only))
            return self._lean_order(self._invoke("create_order", call=self._lean_send, path="order", method="POST",
                                                 params=request), symbol)
        o = self._invoke("create_order", symbol, "limit", side, amount_s, price_s, params)
        return self._order(o, symbol)

    def _limit_order_request(self, symbol: str, side: str, amount: Decimal, price: Decimal, client_order_id: str,
                             post_only: bool) -> tuple[str, str, dict[str, Any]]:
        """A limit order's amount and price texts, rounded as ``create_limit_order`` says, and its params."""
        if side not in ("buy", "sell"):
            raise DefinitiveError(f"side must be 'buy' or 'sell', got {side!r}", kind="bad_request")
        self.load_markets()
        amount_s = self._precision("amount", self._ex.amount_to_precision, symbol, _money(amount, "amount"))
        price_s = self._price_text(symbol, side, _money(price, "price"))
        params: dict[str, Any] = {"clientOrderId": client_order_id}
        if post_only:
            params["postOnly"] = True
        return amount_s, price_s, params

    @property
    def can_cancel_replace(self) -> bool:
        """The venue cancels and places in one request (``replace_limit_order``); else cancel, then place."""
        return self.cfg.cancel_replace and self.venue.cancel_replace and bool(self._ex.has.get("editOrder"))

    def replace_limit_order(self, symbol: str, side: str, amount: Decimal, price: Decimal, *,
                            cancel_client_order_id: str, client_order_id: str,
                            post_only: bool = True) -> ReplaceOutcome:
        """Cancel the order ``cancel_client_order_id`` and place a limit order ``client_order_id`` in ONE
        request (ccxt ``edit_order``: Binance spot ``POST /api/v3/order/cancelReplace``, STOP_ON_FAILURE —
        a failed cancel places nothing). Amount and price are rounded as in ``create_limit_order``.

        Returns what each half did (``ReplaceOutcome``), also when the venue refused one half (Binance:
        400 -2022 / 409 -2021 with the halves in ``data``). Raises ``DefinitiveError`` when the whole
        request was refused before either half (bad parameters, filters: nothing cancelled), and
        ``UnknownOutcome`` when the answer was lost: then both client ids are for the caller to look up."""
        if not self.can_cancel_replace:
            raise DefinitiveError(f"{self.cfg.ccxt_id}: no cancel-replace", kind="not_supported")
        if not client_order_id or not cancel_client_order_id:
            raise DefinitiveError("replace_limit_order needs both client order ids", kind="bad_request")
        amount_s, price_s, params = self._limit_order_request(symbol, side, amount, price, client_order_id,
                                                              post_only)
        params["cancelOrigClientOrderId"] = cancel_client_order_id
        market = self._lean_market(symbol, post_only)
        self._local.keep_body = True
        self._local.body = None
        try:
            try:
                if market is not None:
                    request = binance_lean.replace_params(*self._lean_params(
                        market, side, amount_s, price_s, client_order_id, post_only), cancel_client_order_id)
                    answer = self._invoke("edit_order", call=self._lean_send, path="order/cancelReplace",
                                          method="POST", params=request)
                    placed = answer.get("newOrderResponse") if isinstance(answer, Mapping) else None
                else:
                    placed = self._invoke("edit_order", None, symbol, "limit", side, amount_s, price_s, params)
                    answer = getattr(self._local, "body", None)
            except ExchangeError:
                halves = self._replace_halves(getattr(self._local, "body", None))
                if halves is None:
                    raise
                return self._replace_outcome(halves, symbol)
        finally:
            self._local.keep_body = False
            self._local.body = None
        cancelled = answer.get("cancelResponse") if isinstance(answer, Mapping) else None
        if market is None:
            return ReplaceOutcome(cancelled=self._parsed(cancelled, symbol) if isinstance(cancelled, Mapping)
                                  else None, placed=self._order(placed, symbol))
        return ReplaceOutcome(cancelled=self._lean_order(cancelled, symbol) if isinstance(cancelled, Mapping)
                              else None, placed=self._lean_order(placed, symbol))

    @staticmethod
    def _replace_halves(body: Any) -> Mapping[str, Any] | None:
        """Binance's ``data`` of a refused cancel-replace (-2021 partial, -2022 failed), or None."""
        if not isinstance(body, Mapping):
            return None
        data = body.get("data")
        if str(body.get("code")) not in ("-2021", "-2022") or not isinstance(data, Mapping):
            return None
        return data

    def _replace_outcome(self, data: Mapping[str, Any], symbol: str) -> ReplaceOutcome:
        cancel_ok = data.get("cancelResult") == "SUCCESS"
        place_ok = data.get("newOrderResult") == "SUCCESS"
        cancel, new = data.get("cancelResponse") or {}, data.get("newOrderResponse") or {}
        return ReplaceOutcome(
            cancelled=self._parsed(cancel, symbol) if cancel_ok else None,
            placed=self._parsed(new, symbol) if place_ok else None,
            cancel_error=None if cancel_ok else self._half_error(cancel),
            place_error=None if place_ok or data.get("newOrderResult") == "NOT_ATTEMPTED" else self._half_error(new))

    def _parsed(self, raw: Mapping[str, Any], symbol: str) -> OrderInfo:
        market = self._market(symbol)
        return self._order(self._local_call(self._ex.parse_order, dict(raw), market), symbol)

    def _half_error(self, raw: Mapping[str, Any]) -> DefinitiveError:
        """One refused half ({"code", "msg"}) as the error its code means alone (the venue did refuse it)."""
        code = str(raw.get("code"))
        cls = (self._ex.exceptions.get("exact") or {}).get(code, ccxt.ExchangeError)
        err = classify(cls(f"{self.cfg.ccxt_id} {{\"code\":{code},\"msg\":\"{raw.get('msg')}\"}}"))
        return err if isinstance(err, DefinitiveError) else DefinitiveError(str(err), kind=err.kind, cause=err.cause)

    def _price_text(self, symbol: str, side: str, price: Decimal) -> str:
        market = self._market(symbol)
        tick = to_decimal((market.get("precision") or {}).get("price"))
        if self._ex.precisionMode == TICK_SIZE and tick and tick > 0:
            rounding = ROUND_FLOOR if side == "buy" else ROUND_CEILING
            price = (price / tick).to_integral_value(rounding=rounding) * tick
        return self._precision("price", self._ex.price_to_precision, symbol, price)

    def _precision(self, kind: str, fn: Callable[[str, str], str], symbol: str, value: Decimal) -> str:
        """ccxt's ``fn(symbol, text)`` of ``value``'s text, remembered (markets are loaded once per account)."""
        text = format(value, "f")
        key = (symbol, kind, text)
        known = self._precise.get(key)
        if known is None:
            known = self._local_call(fn, symbol, text)
            if len(self._precise) >= PRECISION_MEMO_MAX:
                self._precise.clear()
            self._precise[key] = known
        return known

    def cancel_order(self, symbol: str, *, order_id: str | None = None,
                     client_order_id: str | None = None) -> OrderInfo:
        order_id, params = self._order_ref(order_id, client_order_id)
        if client_order_id is not None and self.venue.cancel_client_id_as_order_id:
            # ccxt's cancel_order of this venue ignores params['clientOrderId'] (gate 4.5.90); the venue takes
            # its own form of the client id (prefix + ours) in place of the order id
            order_id, params = self.venue.client_id_prefix + client_order_id, {}
        if client_order_id is not None and self.lean_quoting:
            market = self._market(symbol)
            if market.get("spot") is True:
                request = binance_lean.cancel_params(market["id"], client_order_id)
                return self._lean_order(self._invoke("cancel_order", call=self._lean_send, path="order",
                                                     method="DELETE", params=request), symbol)
        return self._order(self._invoke("cancel_order", order_id, symbol, params), symbol)

    def fetch_order(self, symbol: str, *, order_id: str | None = None,
                    client_order_id: str | None = None) -> OrderInfo:
        """One order by exchange id or client id. ``DefinitiveError`` with ``not_found`` if the
        exchange does not know it NOW (see errors.py: not proof of absence right after a create)."""
        order_id, params = self._order_ref(order_id, client_order_id)
        if order_id is None and self.venue.order_by_client_id_via == "fetch_open_orders":
            found = self._invoke("fetch_open_orders", symbol, None, None, params)
            if not found:
                raise classify(ccxt.OrderNotFound(f"{self.cfg.ccxt_id}: no order with client id {client_order_id}"))
            return self._order(found[0], symbol)
        return self._order(self._invoke("fetch_order", order_id, symbol, params), symbol)

    def fetch_open_orders(self, symbol: str) -> list[OrderInfo]:
        listed = self.fetch_open_orders_unless(symbol, None)[1]
        assert listed is not None  # noqa: S101 - nothing to compare with: always read
        return listed

    def fetch_open_orders_unless(self, symbol: str, known: bytes | None,
                                 claim: Callable[[tuple[str, ...], Any], bool] | None = None
                                 ) -> tuple[bytes | None, list[OrderInfo] | None]:
        """The symbol's open orders and a digest of the venue's reply: ``(digest, orders)``, or ``(digest, None)``
        when the reply is byte for byte the one whose digest is ``known`` (then it is not decoded at all: one
        account may list 100,000 orders, ~40 MB of JSON). ``digest`` is None where there is none (a venue read
        by ccxt's own parser): the orders are then always read. ``claim(key, record)``: asked for every record
        with nothing filled that the lean reader reads, with its ``lean_orders.binance_held_key``; a record it
        claims (True) is left out of the orders, unread (``open_orders_from`` reads it later if need be)."""
        if not self.venue.lean_open_orders:
            return None, [self._order(o, symbol) for o in self._invoke("fetch_open_orders", symbol)]
        # ccxt's own request (whatever its options make of it), its records read by lean_orders: one account may
        # list 100,000 of them, ~0.1 ms each through ccxt's parse_order
        self._local.raw_orders = True
        self._local.open_known = known
        self._local.open_digest = None
        try:
            records = self._invoke("fetch_open_orders", symbol)
            digest = self._local.open_digest
        finally:
            self._local.raw_orders = False
            self._local.open_known = self._local.open_digest = None
        if digest is not None and digest == known:
            return digest, None
        return digest, self._open_orders_of(records, self._local_call(self._ex.market, symbol), symbol, claim)

    def open_orders_from(self, records: list[Any], symbol: str) -> list[OrderInfo]:
        """Venue records of the symbol's open orders (those ``fetch_open_orders_unless`` let a claim keep) read."""
        return self._open_orders_of(records, self._local_call(self._ex.market, symbol), symbol)

    def _parse_orders(self, orders: Any, market: Any = None, since: Any = None, limit: Any = None,
                      params: Any = None) -> Any:
        """ccxt's ``parse_orders``; inside ``fetch_open_orders`` of a lean venue (greenlet-local) the venue's records
        themselves, for ``_open_orders_of``."""
        if getattr(self._local, "raw_orders", False):
            return orders
        return self._orig_parse_orders(orders, market, since, limit, {} if params is None else params)

    def _open_orders_of(self, records: Any, market: Mapping[str, Any], symbol: str,
                        claim: Callable[[tuple[str, ...], Any], bool] | None = None) -> list[OrderInfo]:
        """The venue's open-order records as ccxt's ``parse_orders`` leaves them (sorted by time, only this
        symbol's), each read by ``lean_orders`` or, in a shape it does not read, by ccxt's ``parse_order``; those
        ``claim`` takes (see ``fetch_open_orders_unless``) left out."""
        out = []
        market_id = market.get("id")
        for raw in records if isinstance(records, list) else ():
            if claim is not None:
                key = lean_orders.binance_held_key(raw, market_id)
                if key is not None and claim(key, raw):
                    continue
            fields = lean_orders.binance_spot_order(raw, market)
            if fields is None:
                out.append(self._order(self._local_call(self._ex.parse_order, raw, market), symbol))
            else:
                out.append(OrderInfo(**fields))
        out.sort(key=lambda o: o.timestamp_ms or 0)
        return [o for o in out if o.symbol == symbol]

    def fetch_my_trades(self, symbol: str, since_ms: int | None = None, limit: int | None = None,
                        until_ms: int | None = None) -> list[TradeInfo]:
        params = {"until": until_ms} if until_ms is not None else {}
        return [self._trade(t, symbol) for t in self._invoke("fetch_my_trades", symbol, since_ms, limit, params)]

    def _order_ref(self, order_id: str | None, client_order_id: str | None) -> tuple[str | None, dict[str, Any]]:
        if (order_id is None) == (client_order_id is None):
            raise DefinitiveError("give exactly one of order_id and client_order_id", kind="bad_request")
        return (str(order_id) if order_id is not None else None,
                {self.venue.order_client_id_param: client_order_id} if client_order_id is not None else {})

    # ------------------------------------------------------------------ conversions

    def _order(self, o: Mapping[str, Any], symbol: str) -> OrderInfo:
        info = o.get("info") or {}
        fee = o.get("fee") or {}
        client_id = info.get("origClientOrderId") if isinstance(info, Mapping) else None
        client_id = _str(client_id) or _str(o.get("clientOrderId"))
        prefix = self.venue.client_id_prefix
        if client_id and prefix and client_id.startswith(prefix):
            client_id = client_id[len(prefix):]  # gate: text "t-<ours>"
        return OrderInfo(
            id=str(o.get("id")), client_order_id=client_id,
            symbol=o.get("symbol") or symbol, side=o.get("side"), type=o.get("type"), status=o.get("status"),
            price=to_decimal(o.get("price")), amount=to_decimal(o.get("amount")), filled=to_decimal(o.get("filled")),
            remaining=to_decimal(o.get("remaining")), cost=to_decimal(o.get("cost")),
            average=to_decimal(o.get("average")), fee=to_decimal(fee.get("cost")), fee_currency=fee.get("currency"),
            timestamp_ms=_ms(o.get("timestamp")), post_only=o.get("postOnly"), info=info,
        )

    @staticmethod
    def _trade(t: Mapping[str, Any], symbol: str) -> TradeInfo:
        fee = t.get("fee") or {}
        return TradeInfo(
            id=str(t.get("id")), order_id=_str(t.get("order")), symbol=t.get("symbol") or symbol, side=t.get("side"),
            price=to_decimal(t.get("price")), amount=to_decimal(t.get("amount")), cost=to_decimal(t.get("cost")),
            fee=to_decimal(fee.get("cost")), fee_currency=fee.get("currency"), taker_or_maker=t.get("takerOrMaker"),
            timestamp_ms=_ms(t.get("timestamp")), info=t.get("info") or {},
        )

    def _transfer(self, t: Mapping[str, Any], kind: str) -> Transfer:
        raw = _str(t.get("status"))
        status = raw if raw in TRANSFER_STATUSES else ("failed" if raw == "rejected" else "unknown")
        fee = t.get("fee") or {}
        info = t.get("info") or {}
        field = self.venue.withdraw_client_id_field
        client_id = info.get(field) if field and isinstance(info, Mapping) else None
        ident = t.get("id")
        if ident in (None, ""):  # a venue whose history has no record id (MEXC deposits): the tx identifies it
            ident = f"{t.get('txid') or ''}|{t.get('address') or ''}|{t.get('tag') or ''}"
        return Transfer(
            id=str(ident), txid=_str(t.get("txid")), code=str(t.get("currency") or ""),
            network=_str(t.get("network")), address=_str(t.get("address")) or _str(t.get("addressTo")),
            tag=_str(t.get("tag")) or _str(t.get("tagTo")),
            amount=to_decimal(t.get("amount")), fee=to_decimal(fee.get("cost")), status=status,
            timestamp_ms=_ms(t.get("timestamp")), type=_str(t.get("type")) or kind, client_id=_str(client_id),
            raw_status=raw, info=info,
        )

    # ------------------------------------------------------------------ observability

    @property
    def stats(self) -> AccountStats:
        ls = self.limiter.stats
        return AccountStats(
            requests=self._requests, waits=ls.waited, wait_seconds=ls.wait_seconds, penalties=ls.penalties,
            rejected_429=self._rejected_429, rejected_418=self._rejected_418, retries=self._retries,
            in_flight=ls.in_flight, queued=ls.queued, paused_for=ls.paused_for, http_seconds=self._http_seconds,
            used_weight=dict(self._used_weight), errors=dict(self._errors),
        )

    def __repr__(self) -> str:
        return f"ExchangeAccount({self.account_id!r}, ccxt={self.cfg.ccxt_id!r})"


__all__ += ["ExchangeError"]
