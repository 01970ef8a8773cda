"""ExchangeGateway: the actor that owns one exchange account's client.

One gateway per configured ``[[exchanges]]`` account. setup() builds the ``ExchangeAccount``
(one ccxt instance, its own HTTP pool, its weighted limiter), loads markets once and publishes
the account as ``services.exchanges[account_id]``; teardown() withdraws it and closes the pool.
A restart therefore republishes a fresh client (fresh limiter state, fresh connections).

Callers (OrderActors) do NOT send the gateway messages for exchange calls: they call the
published ``ExchangeAccount`` directly from their own greenlets, which is where the
concurrency comes from; the account's limiter keeps the sum of them inside the exchange's
limits. The actor's own inbox carries its housekeeping:

- ``GatewayHealth``: periodic self-check (timer), logs the account's counters when something
  happened (penalties, errors) and answers an ``ask`` with them.

Extension point: the order-update polling loop (open orders / trades -> the owning
OrderActor) is a later issue. It goes in ``_start_loops()`` (timers or greenlets started after
the account is published, cancelled in teardown via ``self._timers``) and its messages are
dispatched by ``handle()``.

Start-up failures: a load_markets that ends in ``UnknownOutcome``/``RateLimited`` (exchange
unreachable, 5xx, paused) is retried with exponential backoff for up to ``startup_timeout``
seconds (kept below ``wait_started``'s 60 s), then setup fails and the supervisor's restart
policy takes over. An ``AuthenticationFailed`` (bad key, IP not whitelisted) is logged as an
operator problem and fails setup at once: retrying cannot fix it.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import gevent
from loguru import logger

from actors.supervisor import SupervisedActor
from actors.timers import Timer, send_every
from domain.exchange_config import ExchangeAccountConfig
from integrations.exchange.account import ExchangeAccount
from integrations.exchange.errors import AuthenticationFailed, ExchangeError, RateLimited, UnknownOutcome

__all__ = ["ExchangeGateway", "GatewayHealth"]


@dataclass(frozen=True)
class GatewayHealth:
    """Timer -> gateway (or an ask from anyone): self-check; the reply is the account's stats as a dict."""


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
        startup_timeout: float = 30.0,
        backoff_min: float = 0.5,
        backoff_max: float = 10.0,
    ) -> None:
        super().__init__(supervisor=supervisor, child_id=child_id)
        self.services = services
        self.cfg = account_cfg
        self.account_id = account_cfg.account_id
        self._account_factory = account_factory
        self._health_interval = health_interval
        self._startup_timeout = startup_timeout
        self._backoff_min = backoff_min
        self._backoff_max = backoff_max
        self.account: ExchangeAccount | None = None
        self._timers: list[Timer] = []
        self._last_reported: dict[str, Any] = {}

    # ------------------------------------------------------------------ lifecycle

    def setup(self) -> None:
        self.account = self._account_factory(self.cfg)
        self._load_markets()
        exchanges = getattr(self.services, "exchanges", None)
        if exchanges is None:
            exchanges = {}
            self.services.exchanges = exchanges
        exchanges[self.account_id] = self.account
        if self._health_interval:
            self._timers.append(send_every(self.actor_ref, self._health_interval, GatewayHealth()))
        self._start_loops()
        logger.info("exchange gateway {} ({}) ready: {} weight per {:g}s, {} requests in flight at most",
                    self.account_id, self.cfg.ccxt_id, self.cfg.weight_per_minute, self.cfg.weight_window,
                    self.cfg.max_concurrency)

    def _undo_setup(self) -> None:
        self._release()

    def teardown(self) -> None:
        self._release()
        logger.info("exchange gateway {} stopped", self.account_id)

    def _release(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        exchanges = getattr(self.services, "exchanges", None)
        if exchanges is not None and exchanges.get(self.account_id) is self.account:
            del exchanges[self.account_id]  # only our own: a newer incarnation may have published already
        if self.account is not None:
            self.account.close()

    def _load_markets(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        delay = self._backoff_min
        attempt = 0
        while True:
            attempt += 1
            try:
                self.account.load_markets()
                return
            except AuthenticationFailed as exc:
                logger.error("exchange gateway {} ({}): the exchange refuses the API key ({}: {}). Check the "
                             "key, secret, IP whitelist and permissions; retrying will not help.",
                             self.account_id, self.cfg.ccxt_id, exc.kind, exc)
                raise
            except (UnknownOutcome, RateLimited) as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    logger.error("exchange gateway {}: markets still not loaded after {} attempts: {}",
                                 self.account_id, attempt, exc)
                    raise
                pause = min(delay, left)
                logger.warning("exchange gateway {}: loading markets failed ({}); retry in {:.1f}s",
                               self.account_id, exc, pause)
                gevent.sleep(pause)
                delay = min(delay * 2, self._backoff_max)

    def _start_loops(self) -> None:
        """Extension point: start the account's background loops (order-update polling: later issue)."""

    # ------------------------------------------------------------------ messages

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, GatewayHealth):
            return self._health()
        return self.handle(message)

    def handle(self, message: Any) -> Any:
        """Extension point for the gateway's own message types (order-update polling, later)."""
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
        return stats


# Re-exported for callers that catch gateway errors next to the actor.
__all__ += ["ExchangeError"]
