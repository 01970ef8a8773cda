"""ExchangeGateway: the actor that owns one exchange account's client.

One gateway per configured ``[[exchanges]]`` account. setup() builds the ``ExchangeAccount``
(one ccxt instance, its own HTTP pool, its weighted limiter), loads markets once and publishes
the account as ``services.exchanges[account_id]`` — at once if the exchange answers, else in the
background when it does (see "Start-up" below); teardown() withdraws it and closes the pool.
A restart therefore republishes a fresh client (fresh limiter state, fresh connections).

Callers (OrderActors) do NOT send the gateway messages for exchange calls: they call the
published ``ExchangeAccount`` directly from their own greenlets, which is where the
concurrency comes from; the account's limiter keeps the sum of them inside the exchange's
limits. The actor's own inbox carries its housekeeping:

- ``GatewayHealth``: periodic self-check (timer), logs the account's counters when something
  happened (penalties, errors) and answers an ``ask`` with them.

Start-up reconciliation (issue #5): after load_markets and BEFORE the account is published,
``integrations.exchange.updates.reconcile_account`` matches the exchange's open orders with the
orders DB (symbols of every configured pair of this account plus every symbol with open DB
orders): known orders adopted, orders the exchange no longer lists resolved by a targeted
lookup, unknown orders with our prefix cancelled and reported, foreign ones reported. Only then
are ``services.exchanges[account_id]`` and ``services.book_caches[account_id]`` (a ``BookCache``:
one depth request per pair per ``book_ttl``) published, so nothing quotes on an unreconciled
account. Without a writer (``services.writer`` missing) there is no orders DB: reconciliation
and the stream are skipped.

The order-update stream: ``StreamPoll`` messages the gateway sends itself with ``send_after``
(one pending timer at a time, never a sleeping handler). Each runs one round of
``updates.poll_updates`` (open orders, targeted lookups, trades since the last round) and tells
``services.tell("orders", ExchangeOrderEvents(...))`` for every mmflow order whose fills were
recorded or whose exchange orders changed state; the OrderSupervisor forwards it to the order's
actor. The next round comes after ``fast_interval`` (0.3 s) while an order of this account is in
flight (INITIALIZED / SUBMITTED / PENDING_CANCEL, or placed in the last few seconds), else after
``slow_interval`` (2 s). Trades are read every round where the exchange shows fills the DB lacks,
and otherwise at most once per ``slow_interval`` per symbol (a sweep): ``myTrades`` weighs 20 on
Binance, and reading it at the fast interval would take most of a 1,200/min budget. The gap between
rounds is also never shorter than the last round's request weight needs at ``weight_share`` (0.5)
of the account's ``weight_per_minute``: with 1,200/min and one symbol in flight (``openOrders``, 6)
the fast interval is in effect 0.6 s; with Binance's real 6,000/min it is the configured 0.3 s. Nor is it
shorter than 3x the last round's own duration (``STREAM_SHARE``, at most ``COST_GAP_MAX`` 10 s): a round
over tens of thousands of open orders takes seconds, and the order actors need the rest. The start-up
reconciliation is such a round (it lists every open order of the account): the stream's first round keeps the
same distance from it, 3x its duration (at most ``COST_GAP_MAX``), instead of listing the same 100,000 orders again
within a second while a restart recovers its order actors; fills meanwhile are read by that first round (trades
since ``trades_lookback``), no later than the rule lets any round follow another. The trades
cursor (``since_ms`` per symbol) lives in memory and starts at ``now - trades_lookback`` (24 h):
re-reading is safe, fills are deduplicated by key. Intervals come from ``services.config.stream``
(``slow_interval``, ``fast_interval``, ``book_ttl``, ``trades_lookback``) when present; the
constructor's arguments override them. Exchange errors never crash the gateway: transient ones
are logged once per streak and retried next round; refusals are logged and raised as Alerts.

Start-up: setup() never fails or blocks for long on an exchange that cannot be reached. It builds the
account and starts a *connector* greenlet that loads markets and reconciles, and waits up to
``startup_timeout`` (5 s) for it: a reachable exchange is therefore published before setup() returns
(and before the OrderActors start), as it always was. Otherwise setup() returns with the account NOT
published and the connector keeps trying in the background: every ``ExchangeError`` (unreachable, 5xx,
timeouts, rate limits, a refusal) is retried with exponential backoff from ``backoff_min`` to
``backoff_max`` (+ up to 20 % jitter); an ``AuthenticationFailed`` (bad key, IP not whitelisted) is an
operator problem, logged at ERROR and retried every ``backoff_max`` only (an operator may fix the
whitelist without restarting mmflow). Meanwhile the orders of this account wait ("exchange account X is
starting": no funding, no quotes). Reporting goes through ``actors.outage.Outage``: one WARNING per
retry window naming the account and the reason (the exception class and message, URL query strings
cut, secrets masked), an Alert ``exchange_unreachable`` (or ``exchange_auth_failed``) with the account
id as subject, and one INFO line plus the alert resolved when it connects. Once markets are loaded AND
reconciliation succeeded the connector tells the gateway ``_Connected`` and the gateway publishes the
account and starts its loops. Anything that is not an exchange error (a bug) fails the gateway: raised
from setup() if it happens within the wait, else from a ``_ConnectCrashed`` message, and the
supervisor's restart policy takes over. In the service the backoff comes from ``[supervision]``
(``backoff_min`` / ``backoff_max``, see ``actors.system.exchanges_spec``).
"""
from __future__ import annotations

import random
import re
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import gevent
import gevent.event
import pykka
from loguru import logger

from actors.outage import Outage
from actors.protocol import ExchangeOrderEvents
from actors.supervisor import SupervisedActor, describe
from actors.timers import Timer, send_after, send_every
from domain.exchange_config import ExchangeAccountConfig
from integrations.exchange import updates
from integrations.exchange.account import ExchangeAccount
from integrations.exchange.errors import AuthenticationFailed, ExchangeError
from integrations.exchange.market_cache import BookCache

__all__ = ["AUTH_ALERT", "UNREACHABLE_ALERT", "ExchangeGateway", "GatewayHealth", "StreamPoll"]

UNREACHABLE_ALERT = "exchange_unreachable"
AUTH_ALERT = "exchange_auth_failed"
BACKOFF_JITTER = 0.2
_URL_QUERY = re.compile(r"(https?://[^\s?]+)\?\S*")

# [stream] defaults (domain.config.StreamConfig has the same ones)
STREAM_DEFAULTS = {"slow_interval": 2.0, "fast_interval": 0.3, "book_ttl": 0.5, "trades_lookback": 86_400.0}
LINGER = 60.0  # seconds a symbol keeps being swept for trades after its last open order (late fills)
WEIGHT_SHARE = 0.5  # the stream spends at most this share of the account's request-weight budget
STREAM_SHARE = 0.25  # ... and at most this share of the process's time (its rounds' own duration)
COST_GAP_MAX = 10.0  # seconds: however long a round took, the next comes no later than this after it


@dataclass(frozen=True)
class GatewayHealth:
    """Timer -> gateway (or an ask from anyone): self-check; the reply is the account's stats as a dict."""


@dataclass(frozen=True)
class StreamPoll:
    """Timer -> gateway: run one round of the order-update stream, then schedule the next."""


@dataclass(frozen=True)
class _Connected:
    """Connector -> gateway: markets loaded and reconciliation done; publish the account."""


@dataclass(frozen=True)
class _ConnectCrashed:
    """Connector -> gateway: connecting failed with something that is not an exchange error (a bug)."""

    error: BaseException


def _reason(exc: BaseException) -> str:
    """The exception class and message for a log line or an alert; URL query strings (timestamps,
    signatures, and on some exchanges the key) cut."""
    return _URL_QUERY.sub(r"\1?...", describe(exc))


class ExchangeGateway(SupervisedActor):
    def __init__(  # noqa: PLR0913 - the knobs are for tests
        self,
        services: Any,
        account_cfg: ExchangeAccountConfig,
        *,
        supervisor=None,
        child_id=None,
        account_factory: Callable[[ExchangeAccountConfig], ExchangeAccount] = ExchangeAccount,
        health_interval: float = 60.0,
        startup_timeout: float = 5.0,
        backoff_min: float = 0.5,
        backoff_max: float = 60.0,
        warn_interval: float | None = None,
        slow_interval: float | None = None,
        fast_interval: float | None = None,
        book_ttl: float | None = None,
        trades_lookback: float | None = None,
        stream_options: dict[str, Any] | None = None,
        weight_share: float | None = None,
    ) -> None:
        super().__init__(supervisor=supervisor, child_id=child_id)
        self.services = services
        self.cfg = account_cfg
        self.account_id = account_cfg.account_id
        self._account_factory = account_factory
        self._health_interval = health_interval
        self._startup_timeout = startup_timeout
        self._backoff_min = backoff_min
        self._backoff_max = max(backoff_max, backoff_min)
        self._warn_interval = self._backoff_max if warn_interval is None else warn_interval
        stream_cfg = getattr(getattr(services, "config", None), "stream", None)

        def knob(name: str, given: float | None) -> float:
            if given is not None:
                return float(given)
            return float(getattr(stream_cfg, name, STREAM_DEFAULTS[name]))

        self.slow_interval = knob("slow_interval", slow_interval)
        self.fast_interval = knob("fast_interval", fast_interval)
        self.book_ttl = knob("book_ttl", book_ttl)
        self.trades_lookback = knob("trades_lookback", trades_lookback)
        self.weight_share = float(weight_share if weight_share is not None
                                  else getattr(stream_cfg, "weight_share", WEIGHT_SHARE))
        self._stream_options = dict(stream_options or {})  # passed to updates.poll_updates (grace, settle, ...)
        if stream_cfg is not None and "not_found_grace" not in self._stream_options:
            self._stream_options["not_found_grace"] = float(getattr(stream_cfg, "not_found_grace",
                                                                    updates.NOT_FOUND_GRACE))
        self.account: ExchangeAccount | None = None
        self._warned_symbols: set[str] = set()
        self.book_cache: BookCache | None = None
        self.reconciled: updates.ReconcileReport | None = None
        self._timers: list[Timer] = []
        self._stream_timer: Timer | None = None
        self._last_reported: dict[str, Any] = {}
        # the stream's memory (rebuilt on restart: the DB and the exchange are the truth)
        self._since_ms: dict[str, int] = {}
        self._unmatched: dict[str, tuple[float, int, bool]] = {}
        self._looked_up: dict[str, float] = {}
        self._quiet: dict[str, tuple[bytes, tuple, float]] = {}  # symbols whose last status pass found nothing (poll_updates)
        self._round_weight = 0
        self._reconcile_seconds = 0.0   # how long the last start-up reconciliation took (the stream's round 0)
        self._trades_at: dict[str, float] = {}
        self._linger: dict[str, float] = {}
        self._failing: str | None = None
        self.outage = Outage(services, subject=self.account_id, kinds=(UNREACHABLE_ALERT, AUTH_ALERT),
                             what=f"exchange account {self.account_id}", warn_interval=self._warn_interval,
                             consequence="its orders wait (no funding, no quotes) until it is reachable and "
                                         "reconciled")
        self._connector: gevent.Greenlet | None = None
        self._connected = gevent.event.Event()
        self._connect_error: BaseException | None = None
        self.live = False
        self._stream = {"rounds": 0, "failed_rounds": 0, "quiet_listings": 0, "events_told": 0, "fills": 0, "in_flight": False,
                        "last_round_at": None, "last_round_seconds": 0.0}

    # ------------------------------------------------------------------ lifecycle

    def setup(self) -> None:
        self.account = self._account_factory(self.cfg)
        self._connector = gevent.spawn(self._connect_loop)
        if self._startup_timeout > 0:
            self._connected.wait(self._startup_timeout)
        if self._connect_error is not None:
            raise self._connect_error
        if self._connected.is_set():
            self._go_live()
        else:
            logger.info("exchange gateway {} ({}): not connected yet ({}); connecting in the background, the "
                        "account is published once its markets are loaded and it is reconciled", self.account_id,
                        self.cfg.ccxt_id, self.outage.last_reason or "still loading markets")

    def _go_live(self) -> None:
        """Publish the connected, reconciled account and start the loops (in the actor, once)."""
        if self.live:
            return
        self.live = True
        self.book_cache = BookCache(self.account, self.book_ttl)
        # publish only now: whoever waits for the account sees a reconciled orders DB
        exchanges = getattr(self.services, "exchanges", None)
        if exchanges is None:
            exchanges = {}
            self.services.exchanges = exchanges
        caches = getattr(self.services, "book_caches", None)
        if caches is None:
            caches = {}
            self.services.book_caches = caches
        caches[self.account_id] = self.book_cache
        exchanges[self.account_id] = self.account
        if self._health_interval:
            self._timers.append(send_every(self.actor_ref, self._health_interval, GatewayHealth()))
        self._start_loops()
        logger.info("exchange gateway {} ({}) ready: {} weight per {:g}s, {} requests in flight at most",
                    self.account_id, self.cfg.ccxt_id, self.cfg.weight_per_minute, self.cfg.weight_window,
                    self.cfg.max_concurrency)

    # ------------------------------------------------------------------ the connector (own greenlet)

    def _connect_loop(self) -> None:
        """Load markets and reconcile until both succeed, backing off between attempts (see the docstring)."""
        delay = self._backoff_min
        while True:
            try:
                self._connect_once()
            except AuthenticationFailed as exc:
                pause = self._backoff_max
                self.outage.failed(_reason(exc), retry_in=pause, kind=AUTH_ALERT, level="ERROR",
                                   problem="refuses the API key (check the key, secret, IP whitelist and "
                                           "permissions)")
            except ExchangeError as exc:
                pause = min(delay, self._backoff_max) * (1 + random.uniform(0, BACKOFF_JITTER))
                delay = min(delay * 2, self._backoff_max)
                self.outage.failed(_reason(exc), retry_in=pause, kind=UNREACHABLE_ALERT)
            except Exception as exc:  # noqa: BLE001 - a bug: the gateway fails, its supervisor decides
                self._connect_error = exc
                self._connected.set()
                self._tell_self(_ConnectCrashed(exc))
                return
            else:
                self.outage.recovered()
                self._connected.set()
                self._tell_self(_Connected())
                return
            gevent.sleep(pause)

    def _tell_self(self, message: Any) -> None:
        try:
            self.actor_ref.tell(message)
        except pykka.ActorDeadError:
            pass  # stopped meanwhile

    def _connect_once(self) -> None:
        self.account.load_markets()
        self._reconcile()

    def _undo_setup(self) -> None:
        self._release()

    def teardown(self) -> None:
        self._release()
        logger.info("exchange gateway {} stopped", self.account_id)

    def _release(self) -> None:
        connector, self._connector = self._connector, None
        if connector is not None and not connector.dead and connector is not gevent.getcurrent():
            connector.kill(block=True, timeout=5)
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._stream_timer is not None:
            self._stream_timer.cancel()
            self._stream_timer = None
        exchanges = getattr(self.services, "exchanges", None)
        if exchanges is not None and exchanges.get(self.account_id) is self.account:
            del exchanges[self.account_id]  # only our own: a newer incarnation may have published already
        caches = getattr(self.services, "book_caches", None)
        if caches is not None and self.book_cache is not None and caches.get(self.account_id) is self.book_cache:
            del caches[self.account_id]
        if self.account is not None:
            self.account.close()

    # ------------------------------------------------------------------ reconciliation

    @property
    def writer(self) -> Any:
        return getattr(self.services, "writer", None)

    def _now(self) -> float:
        clock = getattr(self.services, "clock", None)
        return clock() if callable(clock) else time.time()

    def _configured_symbols(self) -> set[str]:
        """Symbols of the pairs that trade on this account and that the exchange lists.

        An enabled pair without a market is an operator problem, said once at start; a disabled
        one is simply not looked at (asking the exchange about it would only produce errors)."""
        pairs = getattr(getattr(self.services, "config", None), "pairs", None) or ()
        mine = [p for p in pairs if getattr(p, "exchange", None) == self.account_id]
        markets = getattr(self.account, "markets", None) if self.account is not None else None
        if not markets:
            return {p.symbol for p in mine}
        listed = set()
        for pair in mine:
            if pair.symbol in markets:
                listed.add(pair.symbol)
            elif getattr(pair, "enabled", True) and pair.symbol not in self._warned_symbols:
                self._warned_symbols.add(pair.symbol)
                logger.error("exchange gateway {}: enabled pair {} has no market on this exchange; orders on it "
                             "cannot be funded or quoted", self.account_id, pair.symbol)
        return listed

    def _reconcile(self) -> None:
        """Start-up reconciliation of this account with the orders DB (before the account is published).

        An ``ExchangeError`` propagates: the connector tries again after its backoff."""
        if self.writer is None:
            logger.warning("exchange gateway {}: no orders DB writer; start-up reconciliation and the order-update "
                           "stream are off", self.account_id)
            return
        symbols = self._configured_symbols()
        grace = self._stream_options.get("not_found_grace", updates.NOT_FOUND_GRACE)
        started = time.monotonic()
        report = updates.reconcile_account(self.account, self.writer, symbols=symbols, now=self._now(),
                                           lookback=self.trades_lookback, not_found_grace=grace)
        self._reconcile_seconds = time.monotonic() - started
        self.reconciled = report
        self._quiet = dict(report.quiet)   # a symbol that had nothing to reconcile starts the stream quiet
        level = "WARNING" if (report.unresolved or report.conflicts or report.cancelled_unknown
                              or report.cancel_failed or report.fills_missing or report.failed_symbols) else "INFO"
        logger.log(level, "exchange gateway {}: reconciled: {}", self.account_id, report.summary())
        # after a gateway restart the order actors are running and must hear what changed; at process
        # start they are not started yet and read the DB themselves
        if "orders" in (getattr(self.services, "refs", None) or {}):
            self._tell_events(report.events)

    # ------------------------------------------------------------------ the order-update stream

    def _start_loops(self) -> None:
        """Start the account's background loops: the order-update stream (timer messages to itself)."""
        if self.writer is None:
            return
        # the reconciliation just listed every open order: the first round keeps the cost rule's distance from it
        self._schedule(max(self.fast_interval, self._cost_gap(self._reconcile_seconds)))

    def _schedule(self, delay: float) -> None:
        if self._stream_timer is not None:
            self._stream_timer.cancel()
        self._stream_timer = send_after(self.actor_ref, delay, StreamPoll())

    def _poll(self) -> None:
        started = time.monotonic()
        now = self._now()
        opened = updates.open_state(self.account_id)   # read once: poll_updates takes it too
        active = opened.active
        for symbol in active:
            self._linger[symbol] = now + LINGER
        for symbol in [s for s, until in self._linger.items() if until <= now and s not in active]:
            del self._linger[symbol]
        symbols = active | set(self._linger)
        due = {s for s in symbols if now - self._trades_at.get(s, float("-inf")) >= self.slow_interval}
        options = {k: v for k, v in self._stream_options.items() if k not in ("trades_for", "looked_up", "opened")}
        # exchange errors never escape poll_updates; anything else is a bug: it propagates, the
        # supervisor restarts the gateway (which reconciles again)
        result = updates.poll_updates(self.account, self.writer, symbols=symbols, since_ms=self._since_ms,
                                      now=now, unmatched=self._unmatched, looked_up=self._looked_up,
                                      trades_for=due, lookback=self.trades_lookback, quiet=self._quiet,
                                      opened=opened, **options)
        self._since_ms = dict(result.next_since_ms)
        self._unmatched = dict(result.unmatched)
        self._looked_up = dict(result.looked_up)
        self._quiet = dict(result.quiet)
        self._round_weight = self._weight_of(result)
        for symbol in result.trades_fetched:
            self._trades_at[symbol] = now
        for symbol in list(self._trades_at):
            if symbol not in symbols:
                del self._trades_at[symbol]
                self._since_ms.pop(symbol, None)   # quiet symbol: next time from the lookback again
        self._note_errors(result.errors)
        self._tell_events(result.events)
        stats = self._stream
        stats["rounds"] += 1
        stats["quiet_listings"] += len(result.skipped)
        stats["failed_rounds"] += 1 if result.errors else 0
        stats["fills"] += sum(len(e.fills) for e in result.events.values())
        stats["in_flight"] = result.in_flight
        stats["last_round_at"] = now
        stats["last_round_seconds"] = time.monotonic() - started
        stats["last_round_weight"] = self._round_weight

    def _after_poll(self) -> None:
        interval = self.fast_interval if self._stream["in_flight"] else self.slow_interval
        self._schedule(max(interval, self._budget_gap(), self._cost_gap()))

    def _cost_gap(self, spent: float | None = None) -> float:
        """Seconds the last round's own duration asks for: a round over tens of thousands of open orders (the
        venue's reply decoded, every row of them read) takes seconds, and back to back such rounds left the order actors — a restart's recovery
        among them — a fraction of the process. The stream takes at most STREAM_SHARE of it, and waits no
        longer than COST_GAP_MAX for that. ``spent``: another round's duration (the start-up reconciliation's)
        instead of the last stream round's."""
        if spent is None:
            spent = float(self._stream.get("last_round_seconds") or 0.0)
        return min(spent * (1 / STREAM_SHARE - 1), COST_GAP_MAX)

    def _weight_of(self, result: updates.UpdateRound) -> int:
        """Request weight one round spent (the account's weight table; Binance's paths)."""
        weigh = self.account.weights.weigh
        base = "https://stream.invalid/api/v3"
        return (len(result.listed) * weigh("GET", f"{base}/openOrders?symbol=X")[1]
                + len(result.trades_fetched) * weigh("GET", f"{base}/myTrades?symbol=X")[1]
                + result.lookups * weigh("GET", f"{base}/order?symbol=X")[1])

    def _budget_gap(self) -> float:
        """Seconds the last round's weight needs at ``weight_share`` of the account's budget: the stream
        never takes more than its share, whatever fast_interval says (OrderActors need the rest)."""
        per_second = self.cfg.weight_per_minute / max(self.cfg.weight_window, 1e-9) * self.weight_share
        return self._round_weight / per_second if per_second > 0 else 0.0

    def _note_errors(self, errors: tuple[str, ...]) -> None:
        if errors and self._failing is None:
            self._failing = errors[0]
            logger.warning("exchange gateway {}: order updates failing ({}{}); state kept, retrying every round "
                           "(logged once until it recovers)", self.account_id, errors[0],
                           f" and {len(errors) - 1} more" if len(errors) > 1 else "")
        elif not errors and self._failing is not None:
            logger.info("exchange gateway {}: order updates recovered (were failing: {})", self.account_id,
                        self._failing)
            self._failing = None

    def _tell_events(self, events: dict[str, updates.OrderEvents]) -> None:
        tell = getattr(self.services, "tell", None)
        if tell is None:
            return
        for order_id, ev in events.items():
            tell("orders", ExchangeOrderEvents(order_id, tuple(ev.fills), tuple(ev.changed)))
            self._stream["events_told"] += 1

    # ------------------------------------------------------------------ messages

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, GatewayHealth):
            return self._health()
        if isinstance(message, _Connected):
            self._go_live()
            return None
        if isinstance(message, _ConnectCrashed):
            if self.live:
                return None
            raise message.error
        if isinstance(message, StreamPoll):
            if not self.live or self.writer is None:
                return None
            try:
                self._poll()
            finally:
                self._after_poll()
            return None
        return self.handle(message)

    def handle(self, message: Any) -> Any:
        """Extension point for the gateway's own message types."""
        logger.warning("exchange gateway {}: unexpected message {!r}", self.account_id, message)
        return None

    def _health(self) -> dict[str, Any]:
        stats = asdict(self.account.stats) if self.account is not None else {}
        watched = {k: stats.get(k) for k in ("penalties", "rejected_429", "rejected_418", "errors")}
        if watched != self._last_reported:
            logger.info("exchange gateway {}: {} requests, {} queued now, {} in flight, {} penalties "
                        "({} x 429, {} x 418), {} retries, errors {}", self.account_id, stats.get("requests"),
                        stats.get("queued"), stats.get("in_flight"), stats.get("penalties"),
                        stats.get("rejected_429"), stats.get("rejected_418"), stats.get("retries"),
                        stats.get("errors"))
            self._last_reported = watched
        else:
            logger.debug("exchange gateway {}: {} requests, healthy", self.account_id, stats.get("requests"))
        stats["account_id"] = self.account_id
        stats["markets_loaded"] = bool(self.account and self.account.markets_loaded)
        stats["live"] = self.live
        stats["unreachable"] = self.outage.last_reason if self.outage.down else None
        stats["stream"] = dict(self._stream)
        if self.book_cache is not None:
            stats["book_cache"] = {"requests": self.book_cache.requests, "hits": self.book_cache.hits,
                                   "joined": self.book_cache.joined}
        return stats


# Re-exported for callers that catch gateway errors next to the actor.
__all__ += ["ExchangeError"]
