"""Prometheus metrics of mmflow (every name ``mmflow_*``), for the ``/metrics`` route.

They live in a registry of their own (``registry()``), not prometheus_client's global default one,
so nothing else registered in the process leaks in and tests can start from zero
(``reset_for_tests()``).

Two kinds:

- **Events**, counted where they happen, with one call from the code that does them: snapshots
  polled (poller), routing outcomes (router), exchange requests and their latency
  (``ExchangeAccount._invoke``), limiter waits (``WeightedLimiter.acquire``, only requests that
  queued) and rate-limit refusals (``ExchangeAccount``), strategy ticks and their latency
  (``StrategyRunner.tick``), writer batch sizes and commit latency (``Writer._commit``). A call costs
  a dict lookup and one or two locked float additions (a few µs), next to requests and commits that
  cost milliseconds.
- **State**, read when scraped by collectors, never kept in step by the code: orders by state and
  money movements by kind and state (one GROUP BY each), KPIs per pair (``_kpi_per_pair``), live
  actors and mailbox depths per actor kind (pykka's registry), and the process (CPU, memory, fds).

Cardinality is bounded by construction: label values come from code (ccxt method names, error kinds,
states, actor classes) or configuration (exchange accounts, symbols), never from an order, a user,
a snapshot or a request id.
"""
from __future__ import annotations

import functools
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import gevent.lock
import pykka
from loguru import logger
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder, generate_latest
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from domain.routing import RouteKind
from domain.states import OrderState

__all__ = [
    "exposition",
    "exchange_request",
    "limiter_wait",
    "rate_limited",
    "registry",
    "reset_for_tests",
    "routing_outcomes",
    "snapshots_polled",
    "timed_strategy_tick",
    "writer_commit",
]

# No `*_created` series: in the text format every labelled counter and histogram would carry a second,
# timestamp-valued gauge that Prometheus stores as one more series. (A process-wide switch of
# prometheus_client; mmflow registers no other metrics.)
disable_created_metrics()

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000)

# What a strategy tick that raised means, by the exception's class name (actors.order.strategy; by name
# so this module needs nothing from actors/). Anything else is "error".
_TICK_EXCEPTIONS = {"PriceBreaker": "price_breaker", "NotReady": "not_ready"}
TICK_OUTCOMES = ("acted", "idle", "not_ready", "price_breaker", "error")


class _Metrics:
    """The registry and every event metric of one process (replaced whole by reset_for_tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.snapshots = Counter(
            "mmflow_snapshots_polled", "Snapshots read from Mixin pages: new (stored now) or seen before "
            "(the inclusive cursor repeats the last instant).", ["result"], registry=r)
        self.routes = Counter(
            "mmflow_routing_outcomes", "Snapshots routed, by outcome (domain.routing.RouteKind).",
            ["outcome"], registry=r)
        self.exchange_requests = Counter(
            "mmflow_exchange_requests", "ccxt calls by venue, endpoint (ccxt method) and result (ok or the "
            "error kind of integrations.exchange.errors); a call repeated after a rate-limit pause counts again.",
            ["venue", "endpoint", "result"], registry=r)
        self.exchange_seconds = Histogram(
            "mmflow_exchange_request_seconds", "Duration of a ccxt call as its caller sees it (limiter wait "
            "included).", ["venue", "endpoint"], buckets=_LATENCY_BUCKETS, registry=r)
        self.limiter_wait = Histogram(
            "mmflow_limiter_wait_seconds", "Time a request queued in its account's rate limiter (requests "
            "admitted at once are not observed).", ["account"], buckets=_WAIT_BUCKETS, registry=r)
        self.rate_limited = Counter(
            "mmflow_exchange_rate_limited", "Answers an exchange refused for rate (429) or with an IP ban (418), "
            "per account: each pauses the whole account.", ["account", "status"], registry=r)
        self.ticks = Counter(
            "mmflow_strategy_ticks", "Strategy cycles run, by outcome: acted (placed or cancelled), idle "
            "(ladder kept), not_ready, price_breaker, error.", ["outcome"], registry=r)
        self.tick_seconds = Histogram(
            "mmflow_strategy_tick_seconds", "Duration of one strategy cycle (DB reads, pipeline, exchange calls).",
            buckets=_FAST_BUCKETS, registry=r)
        self.batch_units = Histogram(
            "mmflow_writer_batch_units", "Units of work per group commit of the writer.",
            buckets=_BATCH_BUCKETS, registry=r)
        self.commit_seconds = Histogram(
            "mmflow_writer_commit_seconds", "Duration of one group commit (all its units and the COMMIT).",
            buckets=_FAST_BUCKETS, registry=r)
        self.scrape_errors = Counter(
            "mmflow_scrape_errors", "Scrape-time collectors that failed (the scrape goes on without them).",
            ["collector"], registry=None)  # registered after the collectors: a scrape shows its own failures
        for kind in RouteKind:
            self.routes.labels(kind.value)
        for result in ("new", "seen"):
            self.snapshots.labels(result)
        for outcome in TICK_OUTCOMES:
            self.ticks.labels(outcome)
        self._children: dict[tuple, Any] = {}
        r.register(_StateCollector(self.scrape_errors))
        r.register(_ActorCollector())
        r.register(self.scrape_errors)
        ProcessCollector(namespace="mmflow", registry=r)

    def child(self, metric, *labels: str):
        """``metric.labels(*labels)``, cached: a dict lookup on hot paths instead of label validation."""
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found


def registry() -> CollectorRegistry:
    """This process's metrics registry."""
    return _metrics.registry


def reset_for_tests() -> None:
    """Start over with a fresh registry and every event metric at zero (tests only)."""
    global _metrics
    _metrics = _Metrics()


def exposition(accept_header: str = "") -> tuple[bytes, str]:
    """The scrape: (body, content type) for ``GET /metrics``.

    Without an Accept header (or one asking for text): the Prometheus text format 0.0.4, which every
    Prometheus reads; an Accept asking for OpenMetrics gets that (prometheus_client's negotiation)."""
    if not accept_header:
        return generate_latest(_metrics.registry), CONTENT_TYPE_PLAIN_0_0_4
    encoder, content_type = choose_encoder(accept_header)
    return encoder(_metrics.registry), content_type


# ---------------------------------------------------------------- events (one call where each happens)

def snapshots_polled(seen: int, new: int) -> None:
    """A page of ``seen`` snapshots was stored; ``new`` of them were not in the database before."""
    m = _metrics
    if new:
        m.child(m.snapshots, "new").inc(new)
    if seen > new:
        m.child(m.snapshots, "seen").inc(seen - new)


def routing_outcomes(outcomes: Iterable[str]) -> None:
    """Routing outcomes written in one commit (RouteKind values), one per snapshot."""
    m = _metrics
    for outcome, count in Tally(outcomes).items():
        m.child(m.routes, outcome).inc(count)


def exchange_request(venue: str, endpoint: str, result: str, seconds: float) -> None:
    """One ccxt call ended: ``result`` is "ok" or the error kind; ``seconds`` as the caller waited."""
    m = _metrics
    m.child(m.exchange_requests, venue, endpoint, result).inc()
    m.child(m.exchange_seconds, venue, endpoint).observe(seconds)


def limiter_wait(account: str, seconds: float) -> None:
    """A request of ``account`` queued this long in its limiter before it was admitted."""
    m = _metrics
    m.child(m.limiter_wait, account).observe(seconds)


def rate_limited(account: str, status: int) -> None:
    """The exchange refused a request of ``account`` with 429 (rate) or 418 (IP ban)."""
    m = _metrics
    m.child(m.rate_limited, account, str(status)).inc()


def writer_commit(units: int, seconds: float) -> None:
    """The writer committed a batch of ``units`` units in ``seconds``."""
    m = _metrics
    m.batch_units.observe(units)
    m.commit_seconds.observe(seconds)


F = TypeVar("F", bound=Callable[..., Any])


def timed_strategy_tick(tick: F) -> F:
    """Decorator of ``StrategyRunner.tick``: counts each cycle by outcome and observes its duration.

    A cycle that returns a reason acted (placed or cancelled), an empty one kept its ladder; one that
    raised is counted by the exception (NotReady, PriceBreaker, else error) and the exception goes on."""
    @functools.wraps(tick)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        outcome = "error"
        try:
            did = tick(*args, **kwargs)
            outcome = "acted" if did else "idle"
            return did
        except Exception as exc:
            outcome = _tick_exception(exc)
            raise
        finally:
            m = _metrics
            m.child(m.ticks, outcome).inc()
            m.tick_seconds.observe(time.perf_counter() - started)
    return timed  # type: ignore[return-value]


def _tick_exception(exc: BaseException) -> str:
    for cls in type(exc).__mro__:
        outcome = _TICK_EXCEPTIONS.get(cls.__name__)
        if outcome is not None:
            return outcome
    return "error"


# ---------------------------------------------------------------- state (read at scrape time)

class _KeepSeen:
    """Label sets seen once are reported at 0 when they vanish from the database, so a series drops to 0
    instead of going stale (bounded: the label values are states, kinds, accounts and symbols)."""

    def __init__(self) -> None:
        self._seen: dict[str, set[tuple]] = {}

    def fill(self, name: str, values: dict[tuple, Any], zero: Any) -> dict[tuple, Any]:
        seen = self._seen.setdefault(name, set())
        seen.update(values)
        return {key: values.get(key, zero) for key in sorted(seen)}


class _StateCollector(Collector):
    """Orders by state, money movements by kind and state, and the per-pair KPIs, from the database
    (storage.metric_reads: one read transaction, off the gevent hub on SQLite)."""

    def __init__(self, errors: Counter) -> None:
        self._errors = errors
        self._lock = gevent.lock.Semaphore()  # one scrape at a time adds fills to the running totals
        self._database: tuple | None = None
        self._seen = _KeepSeen()
        self._fills: dict[tuple, Any] = {}
        self._fills_through = 0

    def describe(self) -> list[Metric]:
        return []  # the families depend on the database: no checks against them at registration

    def collect(self) -> Iterator[Metric]:
        from storage import metric_reads

        with self._lock:
            database = metric_reads.database_key()
            if database is None:
                return
            if database != self._database:  # another database: its own totals
                self._database, self._seen, self._fills, self._fills_through = database, _KeepSeen(), {}, 0
            try:
                state = metric_reads.read_state(self._fills_through)
            except Exception as exc:  # a scrape never fails because the database did  # noqa: BLE001
                logger.warning("metrics: reading the database failed: {}: {}", type(exc).__name__, exc)
                self._errors.labels("database").inc()
                return
            self._add_fills(state)
            families = [*_orders_by_state(state), *self._movements(state), *_kpi_per_pair(state, self._fills,
                                                                                           self._seen)]
        yield from families

    def _add_fills(self, state) -> None:
        if state.fills_through is None:  # the whole table was summed
            self._fills = dict(state.fills)
            return
        for key, totals in state.fills.items():
            self._fills[key] = self._fills[key] + totals if key in self._fills else totals
        self._fills_through = state.fills_through

    def _movements(self, state) -> Iterator[Metric]:
        family = GaugeMetricFamily("mmflow_money_movements", "Money movements (refund, withdrawal, payout, "
                                   "return, dust) by kind and state.", labels=["kind", "state"])
        for (kind, st), count in self._seen.fill("movements", state.movements, 0).items():
            family.add_metric([kind, st], count)
        yield family


def _orders_by_state(state) -> Iterator[Metric]:
    family = GaugeMetricFamily("mmflow_orders", "mmflow orders by state (domain/states.py).", labels=["state"])
    for name in sorted({s.value for s in OrderState} | set(state.orders)):
        family.add_metric([name], state.orders.get(name, 0))
    yield family


def _kpi_per_pair(state, fills: dict[tuple, Any], seen: _KeepSeen) -> Iterator[Metric]:
    """KPIs aggregated per pair (exchange account + symbol), never per order.

    From what the database holds today (``state``: storage.metric_reads.StateCounts; ``fills``: running
    totals per account, symbol, side and liquidity): live quotes per side, orders quoting both sides, and
    fills and their volume. The integrator extends this with the KpiSample aggregates (branch kpi: uptime,
    spread, depth per pair) — add the query to metric_reads and keep the labels to exchange/symbol(/side)."""
    quotes = GaugeMetricFamily("mmflow_pair_live_quotes", "Exchange orders on the book (or on their way to it) "
                               "per pair and side.", labels=["exchange", "symbol", "side"])
    for key, count in seen.fill("quotes", state.live_quotes, 0).items():
        quotes.add_metric(list(key), count)
    yield quotes
    two_sided = GaugeMetricFamily("mmflow_pair_two_sided_orders", "mmflow orders with at least one live bid "
                                  "and one live ask, per pair.", labels=["exchange", "symbol"])
    for key, count in seen.fill("two_sided", state.two_sided, 0).items():
        two_sided.add_metric(list(key), count)
    yield two_sided
    labels = ["exchange", "symbol", "side", "liquidity"]
    count = CounterMetricFamily("mmflow_pair_fills", "Fills recorded per pair, side and liquidity "
                                "(maker, taker, unknown).", labels=labels)
    base = CounterMetricFamily("mmflow_pair_fill_base_volume", "Σ filled amount (base currency) per pair, side "
                               "and liquidity.", labels=labels)
    quote = CounterMetricFamily("mmflow_pair_fill_quote_volume", "Σ price × amount (quote currency) per pair, "
                                "side and liquidity.", labels=labels)
    for key in sorted(fills):
        totals = fills[key]
        count.add_metric(list(key), totals.count)
        base.add_metric(list(key), totals.base_volume)
        quote.add_metric(list(key), totals.quote_volume)
    yield from (count, base, quote)


class _ActorCollector(Collector):
    """Live actors and mailbox depths per actor kind (class), from pykka's registry at scrape time."""

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        live: Tally[str] = Tally()
        queued: Tally[str] = Tally()
        deepest: dict[str, int] = {}
        for ref in pykka.ActorRegistry.get_all():
            kind = ref.actor_class.__name__
            depth = ref.actor_inbox.qsize()
            live[kind] += 1
            queued[kind] += depth
            if depth > deepest.get(kind, -1):
                deepest[kind] = depth
        actors = GaugeMetricFamily("mmflow_actors", "Live actors per kind (actor class).", labels=["kind"])
        total = GaugeMetricFamily("mmflow_actor_mailbox_depth", "Messages waiting in the mailboxes of all actors "
                                  "of a kind.", labels=["kind"])
        worst = GaugeMetricFamily("mmflow_actor_mailbox_max_depth", "Messages waiting in the fullest mailbox of "
                                  "a kind.", labels=["kind"])
        for kind in sorted(live):
            actors.add_metric([kind], live[kind])
            total.add_metric([kind], queued[kind])
            worst.add_metric([kind], deepest[kind])
        yield from (actors, total, worst)


_metrics = _Metrics()  # at the end: it registers the collectors defined above
