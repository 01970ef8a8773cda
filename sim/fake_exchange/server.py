"""The fake exchange HTTP server: Binance spot ``/api/v3`` + ``/sapi/v1`` over loopback.

A gevent WSGI server (``gevent.pywsgi``) on the caller's hub, like ``sim.fake_mixin``: the
process must be gevent monkey-patched (the test suite's conftest does it) so a blocking
client in the same thread lets the server run.

The unmodified ``ccxt.binance`` class works against it with the dict from
``ccxt_config()`` (every ``urls['api']`` entry rewritten to this server, options that keep
``load_markets`` on the endpoints served here). See ``sim/fake_exchange/__init__.py`` for the
endpoint list.

State lives in pure parts: ``Balances`` (accounts.py), ``MatchingEngine`` (engine.py),
``MarketData`` (market.py), ``Wallet`` (wallet.py); this module adds HTTP, signatures,
weights, faults and the clock.

Time moves the wallet on every request and, between ``start()`` and ``stop()``, from a background
ticker (every ``tick_interval`` seconds, acting only when a deposit or withdrawal is due), so
withdrawal listeners fire on time without traffic. Wallet faults: ``inject_withdrawal_fault(kind,
count, coin)`` with ``reject`` (-4019, nothing debited), ``stuck`` (never completes by itself) and
``fail_later`` (status 5 after ``withdraw_delay``, funds returned); ``withdrawals_of(api_key)``
lists an account's withdrawal records.
"""
from __future__ import annotations

import hmac
import json
import random
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Iterable
from urllib.parse import unquote_plus

import gevent

from ..loopback import LoopbackServer
from .accounts import Account, Balances
from .engine import BUY, LIMIT, MARKET, SELL, EngineError, Fill, MarketSpec, MatchingEngine, Order
from .faults import Fault, RateLimiter, request_weight
from .handler import LeanHandler
from .market import Ladder, MarketData
from .numbers import D, ZERO, floor_to, fmt8, fmt_plain, parse_param_decimal
from .wallet import WITHDRAW_COMPLETED, WITHDRAW_FAILURE, Deposit, Wallet, WalletError, Withdrawal

_CLIENT_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
_NINETY_DAYS_MS = 90 * 86_400_000
_CCXT_TEMPLATE: dict | None = None


class ApiError(Exception):
    def __init__(self, code: int, msg: str, http_status: int = 400, data: dict | None = None) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.http_status = http_status
        self.data = data  # Binance puts a cancel-replace's per-half outcome here


@dataclass
class Request:
    method: str
    path: str
    raw_query: str
    body: str
    headers: dict[str, str]  # lower-case names
    params: dict[str, str] = field(default_factory=dict)
    account: Account | None = None

    def get(self, name: str) -> str | None:
        value = self.params.get(name)
        return value if value not in (None, "") else None

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise ApiError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        return value

    def decimal(self, name: str, *, required: bool = False) -> Decimal | None:
        text = self.require(name) if required else self.get(name)
        if text is None:
            return None
        value = parse_param_decimal(text)
        if value is None:
            raise ApiError(
                -1100, f"Illegal characters found in parameter '{name}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'."
            )
        return value

    def integer(self, name: str, default: int | None = None) -> int | None:
        text = self.get(name)
        if text is None:
            return default
        try:
            return int(text)
        except ValueError:
            raise ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.") from None


@dataclass
class Route:
    handler: Callable[[Request], Any]
    signed: bool


WITHDRAWAL_FAULT_KINDS = ("reject", "stuck", "fail_later")


@dataclass
class WithdrawalFault:
    """The next ``remaining`` withdraw/apply calls (of ``coin``, or any coin) go wrong as ``kind`` says."""

    kind: str
    remaining: int
    coin: str | None = None


class FakeExchange(LoopbackServer):
    """Binance-spot-compatible fake exchange. See the package docstring for the full API."""

    handler_class = LeanHandler

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, clock: Callable[[], float] = time.time, seed: int = 1
    ) -> None:
        super().__init__(host=host, port=port)
        self.clock = clock
        self.seed = seed
        self.rng = random.Random(seed)

        self.balances = Balances()
        self.engine = MatchingEngine(self.balances)
        self.market_data = MarketData(self.engine, self.rng)
        self.wallet = Wallet(self.balances, seed=seed)
        self.accounts: dict[str, Account] = {}
        self.symbols: dict[str, str] = {}  # unified "BTC/USDT" -> id "BTCUSDT"

        self.deposit_delay = 1.0  # seconds from credit_deposit() to success (default for delay=None)
        self.withdraw_delay: float | None = 1.0  # seconds from withdraw to completed; None = by hand
        self.recv_window_default = 5000
        self.check_recv_window = True  # turn off when ``clock`` is not wall time (ccxt signs with wall time)
        self._withdrawal_listeners: list[Callable[[Withdrawal], None]] = []
        self.tick_interval = 0.05  # background ticker: due deposits/withdrawals advance without requests
        self._ticker: gevent.Greenlet | None = None
        self.withdrawal_faults: list[WithdrawalFault] = []
        self.withdrawal_faults_applied: list[tuple[str, str | None]] = []  # (kind, withdrawal id or None)

        # observability / faults
        self.requests_log: list[tuple[str, str, int]] = []
        self.unknown_paths: list[tuple[str, str]] = []
        self.auth_failures: list[str] = []
        self.internal_errors: list[str] = []  # handler / listener exceptions (answered as HTTP 500 -1000)
        self.faults: list[Fault] = []
        self.rate_limiter = RateLimiter(None)  # /api REQUEST_WEIGHT: counts always, refuses once limited
        self.sapi_rate_limiter = RateLimiter(None, name="SAPI_IP_WEIGHT")
        self.weight_total = {"api": 0, "sapi": 0}
        self.weight_by_path: dict[str, int] = defaultdict(int)
        self._not_found_window = 0.0
        self._not_found_cancel = False
        self._placed_at: dict[int, float] = {}
        self._price_greenlet: gevent.Greenlet | None = None
        self.price_process_errors: list[str] = []

        self.routes: dict[tuple[str, str], Route] = {}
        self._install_routes()

    # ------------------------------------------------------------------ the venue's HTTP surface
    # A dialect of another venue (sim/fake_exchange/<venue>.py) subclasses this class and replaces only
    # the surface: _install_routes, _handle (parameters, signatures, weights, error shapes), ccxt_config
    # and _market_id. The matching engine, balances, wallet, clock, faults and the test helpers
    # (add_market, add_currency, credit, credit_deposit, withdrawals, price process) are shared.
    venue = "binance"
    # Canonical network name (domain.networks) → this venue's own network id, for test worlds.
    NETWORK_IDS = {"BTC": "BTC", "ERC20": "ETH", "TRC20": "TRX", "BEP20": "BSC"}

    def _install_routes(self) -> None:
        """Binance spot /api/v3 and /sapi/v1."""
        r = self._route
        r("GET", "/api/v3/ping", lambda req: {})
        r("GET", "/api/v3/time", lambda req: {"serverTime": self.now_ms()})
        r("GET", "/api/v3/exchangeInfo", self._exchange_info)
        r("GET", "/api/v3/depth", self._depth)
        r("GET", "/api/v3/ticker/24hr", self._ticker_24hr)
        r("GET", "/api/v3/ticker/bookTicker", self._book_ticker)
        r("GET", "/api/v3/ticker/price", self._ticker_price)
        r("GET", "/api/v3/account", self._account, signed=True)
        r("POST", "/api/v3/order", self._new_order, signed=True)
        r("GET", "/api/v3/order", self._query_order, signed=True)
        r("DELETE", "/api/v3/order", self._cancel_order, signed=True)
        r("POST", "/api/v3/order/cancelReplace", self._cancel_replace, signed=True)
        r("GET", "/api/v3/openOrders", self._open_orders, signed=True)
        r("DELETE", "/api/v3/openOrders", self._cancel_open_orders, signed=True)
        r("GET", "/api/v3/allOrders", self._all_orders, signed=True)
        r("GET", "/api/v3/myTrades", self._my_trades, signed=True)
        r("GET", "/sapi/v1/system/status", lambda req: {"status": 0, "msg": "normal"})
        r("GET", "/sapi/v1/capital/config/getall", self._config_getall, signed=True)
        r("GET", "/sapi/v1/capital/deposit/address", self._deposit_address, signed=True)
        r("GET", "/sapi/v1/capital/deposit/hisrec", self._deposit_history, signed=True)
        r("POST", "/sapi/v1/capital/withdraw/apply", self._withdraw_apply, signed=True)
        r("GET", "/sapi/v1/capital/withdraw/history", self._withdraw_history, signed=True)
        r("GET", "/sapi/v1/asset/tradeFee", self._trade_fee, signed=True)

    def _route(self, method: str, path: str, handler: Callable[[Request], Any], *, signed: bool = False) -> None:
        self.routes[(method, path)] = Route(handler, signed)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "FakeExchange":
        super().start()
        if self._ticker is None:
            self._ticker = gevent.spawn(self._run_ticker)
        return self

    def stop(self) -> None:
        self.stop_price_process()
        if self._ticker is not None:
            self._ticker.kill(block=False)
            self._ticker = None
        super().stop()

    def _run_ticker(self) -> None:
        """Every ``tick_interval``: if a deposit or withdrawal is due, advance the wallet (listeners
        hear of completed withdrawals on time even when nobody sends a request)."""
        while True:
            gevent.sleep(self.tick_interval)
            try:
                due = self.wallet.next_due()
                if due is not None and self.now() >= due:
                    self._tick()
            except Exception as exc:  # keep ticking; visible like any other internal error
                self.internal_errors.append(f"ticker: {exc!r}")

    def now(self) -> float:
        return float(self.clock())

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    # ------------------------------------------------------------------ ccxt

    def ccxt_config(
        self, api_key: str, secret: str, *, enable_rate_limit: bool = False, timeout_ms: int = 10_000,
        spot_error_tables: bool = True,
    ) -> dict:
        """Constructor dict for ``ccxt.binance(...)`` pointing every API URL at this server.

        - ``urls.api``: every entry of ccxt's own table, host replaced by ``self.url`` (paths kept);
        - options: ``fetchMarkets.types=['spot']`` and ``fetchMargins=False`` (no fapi/dapi/margin
          calls), ``fetchCurrencies=True`` (capital/config/getall is served: networks and fees);
        - ``enableRateLimit`` off by default: the fake enforces Binance weights itself and ccxt's
          sleep-based limiter only slows tests down (turn it on to test the client's pacing);
        - ``spot_error_tables``: binance picks its per-market error tables by hostname
          (``https://api.binance.com``), which a loopback URL never matches; merging the spot
          table into ``exceptions.exact`` makes errors map as they do against the real host
          (e.g. withdraw ``-4026`` -> InsufficientFunds instead of BadRequest).
        """
        template = _ccxt_binance_template()
        api = {k: re.sub(r"^https?://[^/]+", self.url, v) for k, v in template["api"].items() if isinstance(v, str)}
        config: dict[str, Any] = {
            "apiKey": api_key,
            "secret": secret,
            "enableRateLimit": enable_rate_limit,
            "timeout": timeout_ms,
            "urls": {"api": api},
            "options": {
                "fetchMarkets": {"types": ["spot"]},
                "fetchMargins": False,
                "fetchCurrencies": True,
                "adjustForTimeDifference": False,
                "defaultType": "spot",
            },
        }
        if spot_error_tables:
            config["exceptions"] = {"exact": dict(template["spot_exact"])}
        return config

    # ------------------------------------------------------------------ setup API

    def add_account(self, api_key: str, secret: str, *, can_trade: bool = True, can_withdraw: bool = True) -> Account:
        if api_key in self.accounts:
            raise ValueError("account exists")
        account = Account(api_key, secret, uid=10_000_000 + len(self.accounts) + 1, can_trade=can_trade,
                          can_withdraw=can_withdraw)
        self.accounts[api_key] = account
        return account

    def add_market(
        self,
        symbol: str = "BTC/USDT",
        base: str = "BTC",
        quote: str = "USDT",
        *,
        tick_size: str = "0.01",
        step_size: str = "0.00001",
        min_qty: str = "0.00001",
        min_notional: str = "5",
        maker_fee: str = "0.001",
        taker_fee: str = "0.001",
        mid: str = "60000",
        max_qty: str = "9000",
        notional_filter: str = "NOTIONAL",
        levels: int = 10,
        spread_bps: str = "2",
        step_bps: str = "1",
        level_qty: str | None = None,
    ) -> MarketSpec:
        """Add a spot market with a synthetic ladder of ``levels`` per side around ``mid``.

        ``level_qty`` defaults to about 5000 quote per level; ``levels=0`` gives an empty book.
        """
        if symbol != f"{base}/{quote}":
            raise ValueError("symbol must be BASE/QUOTE")
        market_id = self._market_id(base, quote)
        spec = MarketSpec(
            symbol=market_id, base=base, quote=quote, tick_size=D(tick_size), step_size=D(step_size),
            min_qty=D(min_qty), min_notional=D(min_notional), maker_fee=D(maker_fee), taker_fee=D(taker_fee),
            max_qty=D(max_qty), notional_filter=notional_filter,
        )
        self.engine.add_market(spec)
        self.symbols[symbol] = market_id
        self.wallet.ensure_currency(base)
        self.wallet.ensure_currency(quote)
        mid_d = floor_to(D(mid), spec.tick_size)
        qty = D(level_qty) if level_qty is not None else max(spec.min_qty, floor_to(Decimal(5000) / mid_d, spec.step_size))
        now_ms = self.now_ms()
        self.market_data.add(
            Ladder(market_id, mid_d, mid_d, now_ms, levels=levels, spread_bps=D(spread_bps), step_bps=D(step_bps), qty=qty),
            now_ms,
        )
        return spec

    @staticmethod
    def _market_id(base: str, quote: str) -> str:
        """The venue's own market id (Binance: BTCUSDT)."""
        return base + quote

    def add_currency(self, code: str, networks: list[dict], *, name: str | None = None) -> None:
        """Coin with its networks (Binance ``networkList`` field names, e.g. ``network``, ``withdrawFee``,
        ``withdrawMin``, ``depositEnable``, ``withdrawEnable``, ``addressRegex``, ``memoRegex``, ``isDefault``)."""
        self.wallet.add_currency(code, networks, name=name)

    def credit(self, api_key: str, asset: str, amount: Decimal | str | int) -> None:
        """Test helper: set the account's FREE balance of ``asset`` to ``amount`` (locked is untouched)."""
        self._account_of(api_key)
        self.wallet.ensure_currency(asset)
        self.balances.set_free(api_key, asset, D(amount))

    def balance(self, api_key: str, asset: str) -> tuple[Decimal, Decimal]:
        self._tick()
        return self.balances.get(api_key, asset)

    def deposit_address(self, api_key: str, coin: str, network: str | None = None) -> tuple[str, str | None]:
        self._account_of(api_key)
        address, tag, _url = self.wallet.deposit_address(api_key, coin, network)
        return address, (tag or None)

    def credit_deposit(
        self, *, address: str, tag: str | None, coin: str, network: str, amount: Decimal | str, txid: str,
        delay: float | None = None,
    ) -> Deposit:
        """Record an on-chain deposit to one of this exchange's deposit addresses.

        The hook a fake Mixin withdrawal calls. The deposit shows as pending (status 0) and turns
        to success (1) ``delay`` seconds later (default ``self.deposit_delay``), when the balance
        is credited. The same (network, txid, address, tag) again returns the first record and
        credits nothing. Raises ValueError for an address that is not one of ours.
        """
        self._tick()
        account = self.wallet.find_account(network, address, tag or "", list(self.accounts))
        if account is None:
            raise ValueError(f"{address!r} (tag {tag!r}) on {network} is not a deposit address of this exchange")
        return self.wallet.credit_deposit(
            account=account, coin=coin, network=network, address=address, tag=tag or "", amount=D(amount), txid=txid,
            now=self.now(), delay=self.deposit_delay if delay is None else delay,
        )

    def add_withdrawal_listener(self, callback: Callable[[Withdrawal], None]) -> None:
        """``callback(withdrawal)`` runs when a withdrawal completes (status 6, txId set)."""
        self._withdrawal_listeners.append(callback)

    def remove_withdrawal_listener(self, callback: Callable[[Withdrawal], None]) -> bool:
        """Stop calling ``callback``; False if it was not registered."""
        for i, cb in enumerate(self._withdrawal_listeners):
            if cb == callback:
                del self._withdrawal_listeners[i]
                return True
        return False

    def withdrawals_of(self, api_key: str) -> list[Withdrawal]:
        """The account's withdrawal records (oldest first), whatever their status."""
        self._account_of(api_key)
        return [w for w in self.wallet.withdrawals if w.account == api_key]

    def inject_withdrawal_fault(self, kind: str, count: int = 1, coin: str | None = None) -> WithdrawalFault:
        """The next ``count`` ``POST /sapi/v1/capital/withdraw/apply`` calls (of ``coin``, or any coin):

        - ``"reject"``: refused with -4019 "Current asset is not open for withdrawal." (the network is
          suspended); nothing is debited;
        - ``"stuck"``: accepted (debited, status 4 processing) but never completed by the clock; only
          ``finish_withdrawal(id, status)`` ends it;
        - ``"fail_later"``: accepted, then after ``withdraw_delay`` it ends with status 5 (failure) and
          the funds are returned to the account (listeners are not called: nothing was sent).

        A withdrawal the wallet refuses anyway (balance, minimum, address...) does not use up a
        stuck/fail_later fault. ``withdrawal_faults_applied`` records each use."""
        if kind not in WITHDRAWAL_FAULT_KINDS:
            raise ValueError(f"kind must be one of {WITHDRAWAL_FAULT_KINDS}")
        if count < 1:
            raise ValueError("count must be >= 1")
        fault = WithdrawalFault(kind, count, coin)
        self.withdrawal_faults.append(fault)
        return fault

    def finish_withdrawal(self, withdrawal_id: str, status: int = WITHDRAW_COMPLETED) -> Withdrawal:
        """Complete (6) or fail (1 cancelled, 3 rejected, 5 failure: funds returned) a withdrawal by hand."""
        wd = next((w for w in self.wallet.withdrawals if w.id == withdrawal_id), None)
        if wd is None:
            raise KeyError(withdrawal_id)
        self.wallet.finish_withdrawal(wd, status, self.now())
        if status == WITHDRAW_COMPLETED:
            self._notify([wd])
        return wd

    # ------------------------------------------------------------------ market API

    def market_id(self, symbol: str) -> str:
        if symbol in self.symbols:
            return self.symbols[symbol]
        if symbol in self.engine.markets:
            return symbol
        raise KeyError(f"unknown market {symbol}")

    def mid(self, symbol: str) -> Decimal:
        return self.market_data.ladders[self.market_id(symbol)].mid

    def set_mid(self, symbol: str, price: Decimal | str) -> None:
        """Move the mid; the synthetic ladder is re-placed and fills any account order it crosses."""
        self.market_data.set_mid(self.market_id(symbol), D(price), self.now_ms())

    def place_taker(
        self, symbol: str, side: str, amount: Decimal | str, *, price: Decimal | str | None = None,
        include_synthetic: bool = False,
    ) -> list[Fill]:
        """A synthetic taker trade against accounts' resting orders (best price first, FIFO).

        ``side`` is the taker's side: ``"sell"`` hits resting bids, ``"buy"`` lifts resting asks.
        ``price`` bounds the prices taken; ``include_synthetic=True`` also takes the synthetic ladder.
        """
        side_u = side.upper()
        if side_u not in (BUY, SELL):
            raise ValueError("side must be buy or sell")
        return self.engine.take(
            self.market_id(symbol), side_u, D(amount), now_ms=self.now_ms(),
            price=None if price is None else D(price), include_synthetic=include_synthetic,
        )

    def step_price_process(self, *, vol: float = 0.0005, taker_prob: float = 0.5, taker_size: float = 0.5) -> list[Fill]:
        """One tick of the price process (a random-walk move of every mid, ladder refresh, maybe a taker)."""
        return self.market_data.step(self.now_ms(), vol=vol, taker_prob=taker_prob, taker_size=taker_size)

    def start_price_process(
        self, interval: float = 0.2, vol: float = 0.0005, *, taker_prob: float = 0.5, taker_size: float = 0.5
    ) -> None:
        self.stop_price_process()

        def loop() -> None:
            while True:
                gevent.sleep(interval)
                try:
                    self.step_price_process(vol=vol, taker_prob=taker_prob, taker_size=taker_size)
                except Exception as exc:  # keep ticking; a test can inspect the errors
                    self.price_process_errors.append(repr(exc))

        self._price_greenlet = gevent.spawn(loop)

    def stop_price_process(self) -> None:
        if self._price_greenlet is not None:
            self._price_greenlet.kill()
            self._price_greenlet = None

    # ------------------------------------------------------------------ faults

    def inject(
        self,
        path_prefix: str = "/",
        *,
        status: int = 429,
        count: int = 1,
        delay: float = 0.0,
        retry_after: float | None = None,
        after_apply: bool = False,
        method: str | None = None,
        error_code: int | None = None,
        msg: str | None = None,
        body: bytes | str | None = None,
    ) -> Fault:
        """Make the next ``count`` requests whose path starts with ``path_prefix`` (and ``method``) fail.

        - ``after_apply=False``: wait ``delay`` then answer ``status`` without doing anything
          (``status=200``: wait, then process normally: a late request);
        - ``after_apply=True``: process the request (e.g. place the order), wait ``delay``, then
          answer ``status`` instead of the real reply (``status=200``: the real reply, late).
          With a client timeout below ``delay`` the client sees a timeout while the effect exists.
        - 429/418 bodies are Binance's ``{"code":-1003,...}``; other statuses get an HTML page
          (a proxy / gateway answer) unless ``error_code`` (+``msg``) or ``body`` is given.
        """
        if count < 1:
            raise ValueError("count must be >= 1")
        if not 200 <= status <= 599:
            raise ValueError("status must be an HTTP status")
        if isinstance(body, str):
            body = body.encode()
        fault = Fault(path_prefix, status, count, float(delay), retry_after, after_apply,
                      method.upper() if method else None, error_code, msg, body)
        self.faults.append(fault)
        return fault

    def reset_faults(self) -> None:
        """Drop injected faults, the not-found window and any rate limit."""
        self.faults.clear()
        self.withdrawal_faults.clear()
        self._not_found_window = 0.0
        self._not_found_cancel = False
        self.rate_limit(None)

    def order_not_found_window(self, seconds: float, *, include_cancel: bool = False) -> None:
        """For ``seconds`` after placement an order is invisible to GET /api/v3/order (-2013);
        with ``include_cancel`` also to DELETE /api/v3/order (-2011). 0 turns it off."""
        self._not_found_window = float(seconds)
        self._not_found_cancel = include_cancel

    def rate_limit(
        self, weight_per_minute: int | None, *, window: float = 60.0, ban_after: int = 2, ban_seconds: float = 120.0,
        sapi_weight_per_minute: int | None = None,
    ) -> None:
        """Enforce Binance request weights on /api (and optionally /sapi); None turns it off.

        Over the limit: 429 ``-1003`` with ``Retry-After`` (to the end of the window); then
        ``ban_after`` more requests before that time get the IP banned: 418 for ``ban_seconds``.
        Windows start at this call (Binance's are clock-aligned minutes), so a test that sets a
        limit and runs for less than ``window`` seconds never sees the budget reset under it.
        """
        origin = self.now()
        self.rate_limiter = RateLimiter(
            weight_per_minute, window=window, ban_after=ban_after, ban_seconds=ban_seconds, origin=origin
        )
        self.sapi_rate_limiter = RateLimiter(
            sapi_weight_per_minute, window=window, ban_after=ban_after, ban_seconds=ban_seconds, name="SAPI_IP_WEIGHT",
            origin=origin,
        )

    @property
    def weight_stats(self) -> dict:
        now = self.now()
        return {
            "api_total": self.weight_total["api"],
            "sapi_total": self.weight_total["sapi"],
            "api_used_1m": self.rate_limiter.used_weight(now),
            "sapi_used_1m": self.sapi_rate_limiter.used_weight(now),
            "by_path": dict(self.weight_by_path),
            "count_429": self.rate_limiter.count_429 + self.sapi_rate_limiter.count_429,
            "count_418": self.rate_limiter.count_418 + self.sapi_rate_limiter.count_418,
        }

    # ------------------------------------------------------------------ internals

    def _account_of(self, api_key: str) -> Account:
        account = self.accounts.get(api_key)
        if account is None:
            raise KeyError(f"no account {api_key!r}")
        return account

    def _tick(self) -> None:
        self._notify(self.wallet.advance(self.now()))

    def _notify(self, done: list[Withdrawal]) -> None:
        for wd in done:
            for callback in list(self._withdrawal_listeners):
                try:
                    callback(wd)
                except Exception as exc:  # a listener's bug must not break the request that advanced time
                    self.internal_errors.append(f"withdrawal listener: {exc!r}")

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, path):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self.faults.remove(fault)
                return fault
        return None

    # ------------------------------------------------------------------ WSGI

    def _wsgi(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"].upper()
        path = environ.get("PATH_INFO", "/")
        raw_query = environ.get("QUERY_STRING", "")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length).decode("utf-8", "replace") if length > 0 else ""
        headers = environ.get("fake.headers")    # handler.LeanHandler reads them once
        if headers is None:
            headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        else:
            headers = dict(headers)
        headers["content-type"] = environ.get("CONTENT_TYPE", "")

        self._tick()
        fault = self._take_fault(method, path)
        if fault is not None and not fault.after_apply:
            if fault.delay > 0:
                gevent.sleep(fault.delay)
            if fault.status != 200:
                status, extra, payload = fault.response()
                return self._reply(start_response, method, path, status, extra, payload)
        status, extra, payload = self._handle(Request(method, path, raw_query, body, headers))
        if fault is not None and fault.after_apply:
            if fault.status != 200:
                status, extra, payload = fault.response()
            self.requests_log.append((method, path, status))
            if fault.delay > 0:
                gevent.sleep(fault.delay)
            return self._reply(start_response, method, path, status, extra, payload, logged=True)
        return self._reply(start_response, method, path, status, extra, payload)

    def _reply(
        self, start_response: Callable, method: str, path: str, status: int, extra: list, payload: bytes,
        *, logged: bool = False,
    ) -> list[bytes]:
        if not logged:
            self.requests_log.append((method, path, status))
        start_response(_status_line(status), list(extra) + [("Content-Length", str(len(payload)))])
        return [payload]

    def _handle(self, req: Request) -> tuple[int, list[tuple[str, str]], bytes]:
        json_headers = [("Content-Type", "application/json;charset=UTF-8")]
        route = self.routes.get((req.method, req.path))
        if route is None:
            self.unknown_paths.append((req.method, req.path))
            return 404, [("Content-Type", "text/html")], b"<html><body><h1>404 Not Found</h1></body></html>"
        form_body = req.body if "json" not in req.headers.get("content-type", "") else ""
        for source in (req.raw_query, form_body):
            _parse_form(source, req.params)

        bucket = "sapi" if req.path.startswith("/sapi/") else "api"
        weight = request_weight(req.method, req.path, req.params)
        self.weight_total[bucket] += weight
        self.weight_by_path[req.path] += weight
        limiter = self.sapi_rate_limiter if bucket == "sapi" else self.rate_limiter
        now = self.now()
        refused = limiter.check(now, weight)
        if refused is not None:
            return refused
        header = "X-SAPI-USED-IP-WEIGHT-1M" if bucket == "sapi" else "X-MBX-USED-WEIGHT-1M"
        json_headers.append((header, str(limiter.used_weight(now))))
        try:
            if route.signed:
                req.account = self._authenticate(req)
            result = route.handler(req)
            payload = _dumps(result)
        except ApiError as exc:
            body = {"code": exc.code, "msg": exc.msg}
            if exc.data is not None:
                body["data"] = exc.data
            return exc.http_status, json_headers, _dumps(body)
        except (EngineError, WalletError) as exc:
            return 400, json_headers, _dumps({"code": exc.code, "msg": exc.msg})
        except Exception as exc:  # a bug in the fake: answer like Binance's internal error, keep it visible
            self.internal_errors.append(f"{req.method} {req.path}: {exc!r}")
            return 500, json_headers, _dumps({"code": -1000, "msg": "An unknown error occured while processing the request."})
        return 200, json_headers, payload

    def _authenticate(self, req: Request) -> Account:
        api_key = req.headers.get("x-mbx-apikey")
        if not api_key:
            self.auth_failures.append("no api key")
            raise ApiError(-2014, "API-key format invalid.", 401)
        account = self.accounts.get(api_key)
        if account is None:
            self.auth_failures.append("unknown api key")
            raise ApiError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        signature = req.get("signature")
        if signature is None:
            raise ApiError(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        timestamp = req.integer("timestamp")
        if timestamp is None:
            raise ApiError(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
        recv_window = req.integer("recvWindow", self.recv_window_default)
        if recv_window > 60000:
            raise ApiError(-1131, "recvWindow must be less than 60000")
        payload = _without_signature(req.raw_query) + _without_signature(req.body)
        if not hmac.compare_digest(account.signature(payload), signature):
            self.auth_failures.append("bad signature")
            raise ApiError(-1022, "Signature for this request is not valid.")
        now_ms = self.now_ms()
        if not self.check_recv_window:
            return account
        if timestamp > now_ms + 1000:
            self.auth_failures.append("timestamp ahead")
            raise ApiError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if now_ms - timestamp > recv_window:
            self.auth_failures.append("timestamp outside recvWindow")
            raise ApiError(-1021, "Timestamp for this request is outside of the recvWindow.")
        return account

    # ------------------------------------------------------------------ handlers: market data

    def _spec(self, req: Request, *, required: bool = True) -> MarketSpec | None:
        symbol = req.require("symbol") if required else req.get("symbol")
        if symbol is None:
            return None
        spec = self.engine.markets.get(symbol)
        if spec is None:
            raise ApiError(-1121, "Invalid symbol.")
        return spec

    def _symbols_param(self, req: Request) -> list[MarketSpec] | None:
        if req.get("symbol"):
            return [self._spec(req)]
        if req.get("symbols"):
            try:
                ids = json.loads(req.get("symbols"))
            except ValueError:
                raise ApiError(-1100, "Illegal characters found in parameter 'symbols'.") from None
            out = []
            for sid in ids:
                if sid not in self.engine.markets:
                    raise ApiError(-1121, "Invalid symbol.")
                out.append(self.engine.markets[sid])
            return out
        return None

    def _exchange_info(self, req: Request) -> dict:
        specs = self._symbols_param(req) or list(self.engine.markets.values())
        limit = self.rate_limiter.limit or 6000
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": limit},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
            ],
            "exchangeFilters": [],
            "symbols": [_symbol_info(s) for s in specs],
        }

    def _depth(self, req: Request) -> dict:
        spec = self._spec(req)
        limit = req.integer("limit", 100)
        if limit < 1 or limit > 5000:
            raise ApiError(-1100, "Illegal characters found in parameter 'limit'; legal range is '1-5000'.")
        update_id, bids, asks = self.engine.depth(spec.symbol, limit)
        return {
            "lastUpdateId": update_id,
            "bids": [[fmt8(p), fmt8(q)] for p, q in bids],
            "asks": [[fmt8(p), fmt8(q)] for p, q in asks],
        }

    def _ticker_24hr(self, req: Request) -> Any:
        specs = self._symbols_param(req)
        now_ms = self.now_ms()
        if specs is not None and req.get("symbol"):
            return _ticker_json(self.market_data.ticker(specs[0].symbol, now_ms))
        specs = specs if specs is not None else list(self.engine.markets.values())
        return [_ticker_json(self.market_data.ticker(s.symbol, now_ms)) for s in specs]

    def _book_ticker(self, req: Request) -> Any:
        def one(spec: MarketSpec) -> dict:
            _uid, bids, asks = self.engine.depth(spec.symbol, 1)
            return {
                "symbol": spec.symbol,
                "bidPrice": fmt8(bids[0][0]) if bids else "0.00000000",
                "bidQty": fmt8(bids[0][1]) if bids else "0.00000000",
                "askPrice": fmt8(asks[0][0]) if asks else "0.00000000",
                "askQty": fmt8(asks[0][1]) if asks else "0.00000000",
            }

        specs = self._symbols_param(req)
        if specs is not None and req.get("symbol"):
            return one(specs[0])
        return [one(s) for s in (specs if specs is not None else self.engine.markets.values())]

    def _ticker_price(self, req: Request) -> Any:
        now_ms = self.now_ms()

        def one(spec: MarketSpec) -> dict:
            return {"symbol": spec.symbol, "price": fmt8(self.market_data.ticker(spec.symbol, now_ms)["lastPrice"])}

        specs = self._symbols_param(req)
        if specs is not None and req.get("symbol"):
            return one(specs[0])
        return [one(s) for s in (specs if specs is not None else self.engine.markets.values())]

    # ------------------------------------------------------------------ handlers: account / orders

    def _account(self, req: Request) -> dict:
        account = req.account
        assets = dict.fromkeys(sorted(self.wallet.currencies))
        held = self.balances.assets(account.api_key)
        omit_zero = (req.get("omitZeroBalances") or "").lower() == "true"
        balances = []
        for asset in sorted(set(assets) | set(held)):
            free, locked = held.get(asset, (ZERO, ZERO))
            if omit_zero and free == 0 and locked == 0:
                continue
            balances.append({"asset": asset, "free": fmt8(free), "locked": fmt8(locked)})
        spec = next(iter(self.engine.markets.values()), None)
        maker = spec.maker_fee if spec else Decimal("0.001")
        taker = spec.taker_fee if spec else Decimal("0.001")
        return {
            "makerCommission": int(maker * 10000),
            "takerCommission": int(taker * 10000),
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {"maker": fmt8(maker), "taker": fmt8(taker), "buyer": "0.00000000", "seller": "0.00000000"},
            "canTrade": account.can_trade,
            "canWithdraw": account.can_withdraw,
            "canDeposit": account.can_deposit,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": self.now_ms(),
            "accountType": "SPOT",
            "balances": balances,
            "permissions": ["SPOT"],
            "uid": account.uid,
        }

    def _new_order(self, req: Request) -> dict:
        account = req.account
        spec = self._spec(req)
        side = req.require("side")
        order_type = req.require("type")
        if side not in (BUY, SELL):
            raise ApiError(-1117, "Invalid side.")
        if order_type not in ("LIMIT", "LIMIT_MAKER", "MARKET"):
            raise ApiError(-1116, "Invalid orderType.")
        if not account.can_trade:
            raise ApiError(-2010, "This account may not place or cancel orders.")
        client_id = req.get("newClientOrderId")
        if client_id is not None and not _CLIENT_ID.match(client_id):
            raise ApiError(
                -1100, "Illegal characters found in parameter 'newClientOrderId'; legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'."
            )
        tif = req.get("timeInForce")
        if order_type == LIMIT and tif is None:
            raise ApiError(-1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed.")
        resp_type = req.get("newOrderRespType") or ("FULL" if order_type in (LIMIT, MARKET) else "ACK")
        if resp_type not in ("ACK", "RESULT", "FULL"):
            raise ApiError(-1100, "Illegal characters found in parameter 'newOrderRespType'.")
        order = self.engine.place_order(
            account.api_key, spec.symbol, side, order_type, now_ms=self.now_ms(),
            quantity=req.decimal("quantity"), price=req.decimal("price"), quote_qty=req.decimal("quoteOrderQty"),
            time_in_force=tif, client_order_id=client_id,
        )
        self._placed_at[order.order_id] = self.now()
        out = {
            "symbol": order.symbol,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": order.client_order_id,
            "transactTime": order.time,
        }
        if resp_type == "ACK":
            return out
        out.update(_order_core(order))
        out["workingTime"] = order.time
        out["selfTradePreventionMode"] = "NONE"
        if resp_type == "FULL":
            out["fills"] = [
                {"price": fmt8(f.price), "qty": fmt8(f.qty), "commission": fmt8(f.commission),
                 "commissionAsset": f.commission_asset, "tradeId": f.trade_id}
                for f in order.fills if not f.is_maker
            ]
        return out

    def _order_ref(self, req: Request) -> tuple[int | None, str | None]:
        order_id = req.integer("orderId")
        client_id = req.get("origClientOrderId")
        if order_id is None and client_id is None:
            raise ApiError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        return order_id, client_id

    def _hidden(self, order: Order) -> bool:
        placed = self._placed_at.get(order.order_id)
        return self._not_found_window > 0 and placed is not None and self.now() - placed < self._not_found_window

    def _query_order(self, req: Request) -> dict:
        spec = self._spec(req)
        order_id, client_id = self._order_ref(req)
        order = self.engine.get_order(req.account.api_key, spec.symbol, order_id=order_id, client_order_id=client_id)
        if self._hidden(order):
            raise ApiError(-2013, "Order does not exist.")
        return _order_json(order)

    def _cancel_order(self, req: Request) -> dict:
        spec = self._spec(req)
        order_id, client_id = self._order_ref(req)
        if self._not_found_cancel:
            try:
                order = self.engine.get_order(req.account.api_key, spec.symbol, order_id=order_id, client_order_id=client_id)
            except EngineError:
                order = None
            if order is not None and self._hidden(order):
                raise ApiError(-2011, "Unknown order sent.")
        order = self.engine.cancel_order(
            req.account.api_key, spec.symbol, order_id=order_id, client_order_id=client_id, now_ms=self.now_ms()
        )
        return _cancel_json(order, req.get("newClientOrderId"), self.now_ms())

    def _cancel_replace(self, req: Request) -> dict:
        """POST /api/v3/order/cancelReplace (Binance spot): cancel one order and place a new one on the same
        symbol in one request. The new order's parameters and filters are checked before anything happens
        (a plain error, nothing cancelled). ``cancelReplaceMode`` STOP_ON_FAILURE: a failed cancel stops
        there — 400 ``-2022`` with ``data`` {cancelResult FAILURE, newOrderResult NOT_ATTEMPTED}; a placement
        that fails after the cancel — 409 ``-2021`` {SUCCESS, FAILURE}, the old order is gone. ALLOW_FAILURE
        attempts the placement whatever the cancel did. Success: 200 {cancelResult, newOrderResult,
        cancelResponse, newOrderResponse}. Weight 1."""
        spec = self._spec(req)
        mode = req.require("cancelReplaceMode")
        if mode not in ("STOP_ON_FAILURE", "ALLOW_FAILURE"):
            raise ApiError(-1100, "Illegal characters found in parameter 'cancelReplaceMode'.")
        side, order_type = req.require("side"), req.require("type")
        if side not in (BUY, SELL):
            raise ApiError(-1117, "Invalid side.")
        if order_type not in ("LIMIT", "LIMIT_MAKER", "MARKET"):
            raise ApiError(-1116, "Invalid orderType.")
        cancel_id = req.integer("cancelOrderId")
        cancel_client_id = req.get("cancelOrigClientOrderId")
        if cancel_id is None and cancel_client_id is None:
            raise ApiError(-1102, "Param 'cancelOrigClientOrderId' or 'cancelOrderId' must be sent, but both were "
                                  "empty/null!")
        client_id = req.get("newClientOrderId")
        if client_id is not None and not _CLIENT_ID.match(client_id):
            raise ApiError(-1100, "Illegal characters found in parameter 'newClientOrderId'; legal range is "
                                  "'^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.")
        price, quantity = req.decimal("price"), req.decimal("quantity")
        if order_type != MARKET:      # filters first: a new order that cannot pass them cancels nothing
            if price is None or quantity is None:
                raise ApiError(-1102, "Mandatory parameter 'price' or 'quantity' was not sent, was empty/null, or "
                                      "malformed.")
            if order_type == LIMIT and req.get("timeInForce") is None:
                raise ApiError(-1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed.")
            try:
                spec.check_price(price)
                spec.check_qty(quantity)
                spec.check_notional(price * quantity)
            except EngineError as exc:
                raise ApiError(exc.code, exc.msg) from None
        if not req.account.can_trade:
            raise ApiError(-2010, "This account may not place or cancel orders.")
        cancel_req = Request(req.method, req.path, "", "", req.headers, {
            "symbol": spec.symbol, **({"orderId": str(cancel_id)} if cancel_id is not None else {}),
            **({"origClientOrderId": cancel_client_id} if cancel_client_id is not None else {}),
            **({"newClientOrderId": req.get("cancelNewClientOrderId")} if req.get("cancelNewClientOrderId") else {}),
        })
        cancel_req.account = req.account
        try:
            cancelled, cancel_error = self._cancel_order(cancel_req), None
        except (ApiError, EngineError) as exc:
            cancelled, cancel_error = None, {"code": exc.code, "msg": exc.msg}
        if cancel_error is not None and mode == "STOP_ON_FAILURE":
            raise ApiError(-2022, "Order cancel-replace failed.", 400, {
                "cancelResult": "FAILURE", "newOrderResult": "NOT_ATTEMPTED",
                "cancelResponse": cancel_error, "newOrderResponse": None})
        new_req = Request(req.method, req.path, "", "", req.headers, {
            k: v for k, v in req.params.items()
            if k in ("symbol", "side", "type", "timeInForce", "quantity", "price", "newClientOrderId",
                     "newOrderRespType", "quoteOrderQty")})
        new_req.account = req.account
        try:
            placed, new_error = self._new_order(new_req), None
        except (ApiError, EngineError) as exc:
            placed, new_error = None, {"code": exc.code, "msg": exc.msg}
        data = {"cancelResult": "FAILURE" if cancel_error else "SUCCESS",
                "newOrderResult": "FAILURE" if new_error else "SUCCESS",
                "cancelResponse": cancel_error or cancelled, "newOrderResponse": new_error or placed}
        if cancel_error and new_error:
            raise ApiError(-2022, "Order cancel-replace failed.", 400, data)
        if cancel_error or new_error:
            raise ApiError(-2021, "Order cancel-replace partially failed.", 409, data)
        return data

    def _open_orders(self, req: Request) -> list:
        spec = self._spec(req, required=False)
        orders = self.engine.open_orders(req.account.api_key, spec.symbol if spec else None)
        return [_order_json(o) for o in orders]

    def _cancel_open_orders(self, req: Request) -> list:
        spec = self._spec(req)
        orders = self.engine.cancel_all(req.account.api_key, spec.symbol, now_ms=self.now_ms())
        if not orders:
            raise ApiError(-2011, "Unknown order sent.")
        now_ms = self.now_ms()
        return [_cancel_json(o, None, now_ms) for o in orders]

    def _all_orders(self, req: Request) -> list:
        spec = self._spec(req)
        orders = self.engine.all_orders(req.account.api_key, spec.symbol)
        from_id = req.integer("orderId")
        start, end = req.integer("startTime"), req.integer("endTime")
        limit = min(max(req.integer("limit", 500), 1), 1000)
        if from_id is not None:
            orders = [o for o in orders if o.order_id >= from_id][:limit]
        elif start is not None or end is not None:
            orders = [o for o in orders if (start is None or o.time >= start) and (end is None or o.time <= end)][:limit]
        else:
            orders = orders[-limit:]
        return [_order_json(o) for o in orders]

    def _my_trades(self, req: Request) -> list:
        spec = self._spec(req)
        fills = self.engine.fills(req.account.api_key, spec.symbol)
        order_id = req.integer("orderId")
        from_id = req.integer("fromId")
        start, end = req.integer("startTime"), req.integer("endTime")
        limit = min(max(req.integer("limit", 500), 1), 1000)
        if start is not None and end is not None and end - start > 86_400_000:
            raise ApiError(-1127, "More than 24 hours between startTime and endTime.")
        if order_id is not None:
            fills = [f for f in fills if f.order_id == order_id]
        if from_id is not None:
            fills = [f for f in fills if f.trade_id >= from_id][:limit]
        elif start is not None or end is not None:
            fills = [f for f in fills if (start is None or f.time >= start) and (end is None or f.time <= end)][:limit]
        else:
            fills = fills[-limit:]
        return [_trade_json(f) for f in fills]

    def _trade_fee(self, req: Request) -> list:
        specs = [self._spec(req)] if req.get("symbol") else list(self.engine.markets.values())
        return [
            {"symbol": s.symbol, "makerCommission": fmt_plain(s.maker_fee), "takerCommission": fmt_plain(s.taker_fee)}
            for s in specs
        ]

    # ------------------------------------------------------------------ handlers: wallet

    def _config_getall(self, req: Request) -> list:
        held = self.balances.assets(req.account.api_key)
        out = []
        for code, cur in sorted(self.wallet.currencies.items()):
            free, locked = held.get(code, (ZERO, ZERO))
            withdrawing = sum(
                (w.amount for w in self.wallet.withdrawals
                 if w.account == req.account.api_key and w.coin == code and w.status == 4), ZERO
            )
            out.append({
                "coin": code,
                "depositAllEnable": any(n.deposit_enable for n in cur.networks.values()),
                "withdrawAllEnable": any(n.withdraw_enable for n in cur.networks.values()),
                "name": cur.name,
                "free": fmt_plain(free),
                "locked": fmt_plain(locked),
                "freeze": "0",
                "withdrawing": fmt_plain(withdrawing),
                "ipoing": "0",
                "ipoable": "0",
                "storage": "0",
                "isLegalMoney": cur.is_legal_money,
                "trading": cur.trading,
                "networkList": [n.to_binance() for n in cur.networks.values()],
            })
        return out

    def _deposit_address(self, req: Request) -> dict:
        coin = req.require("coin")
        address, tag, url = self.wallet.deposit_address(req.account.api_key, coin, req.get("network"))
        return {"address": address, "coin": coin, "tag": tag, "url": url}

    def _time_window(self, req: Request, default_days: int = 90) -> tuple[int, int]:
        now_ms = self.now_ms()
        start, end = req.integer("startTime"), req.integer("endTime")
        if start is None and end is None:
            return now_ms - default_days * 86_400_000, now_ms
        if start is None:
            start = end - _NINETY_DAYS_MS
        if end is None:
            end = start + _NINETY_DAYS_MS
        if end - start > _NINETY_DAYS_MS:
            raise ApiError(-4047, "Time interval must be within 0-90 days")
        return start, end

    def _deposit_history(self, req: Request) -> list:
        start, end = self._time_window(req)
        coin, status, txid = req.get("coin"), req.integer("status"), req.get("txId")
        offset, limit = req.integer("offset", 0), min(max(req.integer("limit", 1000), 1), 1000)
        rows = [
            d for d in self.wallet.deposits
            if d.account == req.account.api_key and start <= d.insert_ms <= end
            and (coin is None or d.coin == coin) and (status is None or d.status == status)
            and (txid is None or d.txid == txid)
        ]
        rows.sort(key=lambda d: d.insert_ms, reverse=True)
        rows = rows[offset: offset + limit]
        return [Wallet.deposit_json(d, self.wallet.network(d.coin, d.network)) for d in rows]

    def _withdraw_apply(self, req: Request) -> dict:
        account = req.account
        if not account.can_withdraw:
            raise ApiError(-1002, "You are not authorized to execute this request.", 401)
        coin = req.require("coin")
        address = req.require("address")
        amount = req.decimal("amount", required=True)
        fault = next((f for f in self.withdrawal_faults if f.remaining > 0 and f.coin in (None, coin)), None)
        delay, final_status = self.withdraw_delay, WITHDRAW_COMPLETED
        if fault is not None and fault.kind == "reject":
            self._use_withdrawal_fault(fault, None)
            raise ApiError(-4019, "Current asset is not open for withdrawal.")
        if fault is not None and fault.kind == "stuck":
            delay = None
        elif fault is not None and fault.kind == "fail_later":
            final_status = WITHDRAW_FAILURE
        wd = self.wallet.withdraw(
            account=account.api_key, coin=coin, network=req.get("network"), address=address,
            tag=req.get("addressTag") or "", amount=amount, now=self.now(), delay=delay,
            withdraw_order_id=req.get("withdrawOrderId") or "", final_status=final_status,
        )
        if fault is not None:
            self._use_withdrawal_fault(fault, wd.id)
        self._tick()  # a zero delay completes at once
        return {"id": wd.id}

    def _use_withdrawal_fault(self, fault: WithdrawalFault, withdrawal_id: str | None) -> None:
        fault.remaining -= 1
        if fault.remaining <= 0 and fault in self.withdrawal_faults:
            self.withdrawal_faults.remove(fault)
        self.withdrawal_faults_applied.append((fault.kind, withdrawal_id))

    def _withdraw_history(self, req: Request) -> list:
        start, end = self._time_window(req)
        coin, status = req.get("coin"), req.integer("status")
        wo_id = req.get("withdrawOrderId")
        ids = set((req.get("idList") or "").split(",")) - {""}
        offset, limit = req.integer("offset", 0), min(max(req.integer("limit", 1000), 1), 1000)
        rows = [
            w for w in self.wallet.withdrawals
            if w.account == req.account.api_key and start <= w.apply_ms <= end
            and (coin is None or w.coin == coin) and (status is None or w.status == status)
            and (wo_id is None or w.withdraw_order_id == wo_id) and (not ids or w.id in ids)
        ]
        rows.sort(key=lambda w: w.apply_ms, reverse=True)
        rows = rows[offset: offset + limit]
        return [Wallet.withdrawal_json(w) for w in rows]


# ---------------------------------------------------------------------- JSON shapes


def _symbol_info(s: MarketSpec) -> dict:
    notional = (
        {"filterType": "NOTIONAL", "minNotional": fmt8(s.min_notional), "applyMinToMarket": True,
         "maxNotional": fmt8(s.max_notional), "applyMaxToMarket": False, "avgPriceMins": 5}
        if s.notional_filter == "NOTIONAL"
        else {"filterType": "MIN_NOTIONAL", "minNotional": fmt8(s.min_notional), "applyToMarket": True, "avgPriceMins": 5}
    )
    return {
        "symbol": s.symbol,
        "status": s.status,
        "baseAsset": s.base,
        "baseAssetPrecision": 8,
        "quoteAsset": s.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
        "icebergAllowed": False,
        "ocoAllowed": False,
        "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": fmt8(s.min_price), "maxPrice": fmt8(s.max_price),
             "tickSize": fmt8(s.tick_size)},
            {"filterType": "LOT_SIZE", "minQty": fmt8(s.min_qty), "maxQty": fmt8(s.max_qty), "stepSize": fmt8(s.step_size)},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": fmt8(s.max_qty), "stepSize": "0.00000000"},
            notional,
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "NONE",
        "allowedSelfTradePreventionModes": ["NONE"],
    }


def _ticker_json(t: dict) -> dict:
    return {k: (fmt8(v) if isinstance(v, Decimal) and k != "priceChangePercent" else
                (fmt_plain(v) if isinstance(v, Decimal) else v)) for k, v in t.items()}


def _order_core(o: Order) -> dict:
    return {
        "price": fmt8(o.price),
        "origQty": fmt8(o.orig_qty),
        "executedQty": fmt8(o.executed_qty),
        "origQuoteOrderQty": fmt8(o.orig_quote_qty),
        "cummulativeQuoteQty": fmt8(o.cum_quote),
        "status": o.status,
        "timeInForce": o.time_in_force or "GTC",
        "type": o.type,
        "side": o.side,
    }


def _order_json(o: Order) -> dict:
    out = {"symbol": o.symbol, "orderId": o.order_id, "orderListId": -1, "clientOrderId": o.client_order_id}
    out.update(_order_core(o))
    out.update({
        "stopPrice": "0.00000000",
        "icebergQty": "0.00000000",
        "time": o.time,
        "updateTime": o.update_time,
        "isWorking": True,
        "workingTime": o.time,
        "selfTradePreventionMode": "NONE",
    })
    return out


def _cancel_json(o: Order, cancel_client_id: str | None, now_ms: int) -> dict:
    out = {
        "symbol": o.symbol,
        "origClientOrderId": o.client_order_id,
        "orderId": o.order_id,
        "orderListId": -1,
        "clientOrderId": cancel_client_id or f"cancel{o.order_id:012d}",
        "transactTime": now_ms,
    }
    out.update(_order_core(o))
    out["selfTradePreventionMode"] = "NONE"
    return out


def _trade_json(f: Fill) -> dict:
    return {
        "symbol": f.symbol,
        "id": f.trade_id,
        "orderId": f.order_id,
        "orderListId": -1,
        "price": fmt8(f.price),
        "qty": fmt8(f.qty),
        "quoteQty": fmt8(f.quote_qty),
        "commission": fmt8(f.commission),
        "commissionAsset": f.commission_asset,
        "time": f.time,
        "isBuyer": f.is_buyer,
        "isMaker": f.is_maker,
        "isBestMatch": True,
    }


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return fmt8(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=_json_default).encode("utf-8")


def _parse_form(source: str, into: dict[str, str]) -> None:
    """``parse_qs(source, keep_blank_values=True)``'s last value of each name, into ``into``: the plain fields
    (no ``%`` or ``+``: nearly all a client signs) without parse_qs's per-field work."""
    if not source:
        return
    for field in source.split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        if "%" in field or "+" in field:
            name, value = unquote_plus(name), unquote_plus(value)
        into[name] = value


def _without_signature(raw: str) -> str:
    if "signature=" not in raw:
        return raw
    return "&".join(p for p in raw.split("&") if not p.startswith("signature="))


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            418: "I'm a teapot", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout"}


def _status_line(status: int) -> str:
    return f"{status} {_REASONS.get(status, 'Status')}"


def _ccxt_binance_template() -> dict:
    """ccxt's own binance URL table and spot error table (ccxt imported lazily, once)."""
    global _CCXT_TEMPLATE
    if _CCXT_TEMPLATE is None:
        import ccxt  # the project's pinned ccxt; imported here so `sim` does not need it otherwise

        ex = ccxt.binance()
        _CCXT_TEMPLATE = {
            "api": dict(ex.urls["api"]),
            "spot_exact": dict(ex.exceptions.get("spot", {}).get("exact", {})),
        }
    return _CCXT_TEMPLATE


__all__ = ["ApiError", "FakeExchange", "WithdrawalFault", "WITHDRAWAL_FAULT_KINDS"]
