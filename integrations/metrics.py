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
- **State**, read when scraped by collectors, never kept in step by the code: orders by state (hot and
  archived, and the archived ones alone) and
  money movements by kind and state (one GROUP BY each), KPIs per pair (``_kpi_per_pair``) — all from
  ``storage.metric_reads``, off the gevent hub on SQLite —, live actors and mailbox depths per actor
  kind (pykka's registry), and the process (CPU, memory, fds).

Cardinality is bounded by construction: label values come from code (ccxt method names, error kinds,
states, actor classes) or configuration (exchange accounts, symbols), never from an order, a user,
a snapshot or a request id.
"""
from __future__ import annotations

import functools
import time
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate
from typing import Any, TypeVar

import gevent.lock
import pykka
from loguru import logger
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder, generate_latest
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

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

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000)

# What a strategy tick that raised means, by the exception's class name (actors.order.strategy; by name
# so this module needs nothing from actors/). Anything else is "error".
_TICK_EXCEPTIONS = {"PriceBreaker": "price_breaker", "NotReady": "not_ready"}
TICK_OUTCOMES = ("acted", "idle", "not_ready", "price_breaker", "error")


class _Counter:
    """A counter family whose children are plain floats, by label values.

    Not prometheus_client's Counter/Histogram: those take a lock on every update (for threads), which
    a single gevent hub does not need and which gevent's patched lock makes slow (measured here: 4.8 µs
    per Counter.inc, 5.5 µs per Histogram.observe; 1.2–1.7 µs for a whole call of this module's event
    functions). Updates happen on the hub only (greenlets never interleave inside one); prometheus_client
    renders the families."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...] = (),
                 initial: Iterable[tuple[str, ...]] = ()) -> None:
        self.name, self.documentation, self.labels = name, documentation, list(labels)
        self.values: dict[tuple[str, ...], float] = {key: 0.0 for key in initial}

    def inc(self, key: tuple[str, ...] = (), amount: float = 1.0) -> None:
        values = self.values
        values[key] = values.get(key, 0.0) + amount

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for key, value in self.values.items():
            family.add_metric(list(key), value)
        return family


class _Histogram:
    """A histogram family (see _Counter): per label values, the count of each bucket and the sum."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...],
                 labels: tuple[str, ...] = ()) -> None:
        self.name, self.documentation, self.labels = name, documentation, list(labels)
        self.bounds = tuple(sorted(buckets))
        self._le = [floatToGoString(b) for b in self.bounds] + ["+Inf"]
        self.children: dict[tuple[str, ...], list] = {}  # key -> [counts per bucket (not cumulative), sum]

    def observe(self, value: float, key: tuple[str, ...] = ()) -> None:
        child = self.children.get(key)
        if child is None:
            child = self.children[key] = [[0] * (len(self.bounds) + 1), 0.0]
        child[0][bisect_left(self.bounds, value)] += 1  # the first bucket whose bound is >= value
        child[1] += value

    def family(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for key, (counts, total) in self.children.items():
            family.add_metric(list(key), list(zip(self._le, accumulate(counts))), total)
        return family


class _Metrics:
    """Every event metric of one process and the registry that renders them (replaced by reset_for_tests)."""

    def __init__(self) -> None:
        self.snapshots = _Counter(
            "mmflow_snapshots_polled", "Snapshots read from Mixin pages: new (stored now) or seen before "
            "(the inclusive cursor repeats the last instant).", ("result",), initial=[("new",), ("seen",)])
        self.routes = _Counter(
            "mmflow_routing_outcomes", "Snapshots routed, by outcome (domain.routing.RouteKind).",
            ("outcome",), initial=[(kind.value,) for kind in RouteKind])
        self.exchange_requests = _Counter(
            "mmflow_exchange_requests", "ccxt calls by venue, endpoint (ccxt method) and result (ok or the "
            "error kind of integrations.exchange.errors); a call repeated after a rate-limit pause counts again.",
            ("venue", "endpoint", "result"))
        self.exchange_seconds = _Histogram(
            "mmflow_exchange_request_seconds", "Duration of a ccxt call as its caller sees it (limiter wait "
            "included).", _LATENCY_BUCKETS, ("venue", "endpoint"))
        self.limiter_wait = _Histogram(
            "mmflow_limiter_wait_seconds", "Time a request queued in its account's rate limiter (requests "
            "admitted at once are not observed).", _WAIT_BUCKETS, ("account",))
        self.rate_limited = _Counter(
            "mmflow_exchange_rate_limited", "Answers an exchange refused for rate (429) or with an IP ban (418), "
            "per account: each pauses the whole account.", ("account", "status"))
        self.ticks = _Counter(
            "mmflow_strategy_ticks", "Strategy cycles run, by outcome: acted (placed or cancelled), idle "
            "(ladder kept), not_ready, price_breaker, error.", ("outcome",),
            initial=[(outcome,) for outcome in TICK_OUTCOMES])
        self.tick_seconds = _Histogram(
            "mmflow_strategy_tick_seconds", "Duration of one strategy cycle (DB reads, pipeline, exchange calls).",
            _FAST_BUCKETS)
        self.batch_units = _Histogram(
            "mmflow_writer_batch_units", "Units of work per group commit of the writer.", _BATCH_BUCKETS)
        self.commit_seconds = _Histogram(
            "mmflow_writer_commit_seconds", "Duration of one group commit (all its units and the COMMIT).",
            _FAST_BUCKETS)
        self.scrape_errors = _Counter(
            "mmflow_scrape_errors", "Scrape-time database reads that failed (the scrape goes on without them).",
            ("collector",))
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_EventCollector(self))
        self.registry.register(_StateCollector(self.scrape_errors))
        self.registry.register(_ActorCollector())
        ProcessCollector(namespace="mmflow", registry=self.registry)


class _EventCollector(Collector):
    """Renders the event metrics at scrape time."""

    def __init__(self, metrics: _Metrics) -> None:
        self._m = metrics

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        m = self._m
        for metric in (m.snapshots, m.routes, m.exchange_requests, m.exchange_seconds, m.limiter_wait,
                       m.rate_limited, m.ticks, m.tick_seconds, m.batch_units, m.commit_seconds):
            yield metric.family()


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
        m.snapshots.inc(("new",), new)
    if seen > new:
        m.snapshots.inc(("seen",), seen - new)


def routing_outcomes(outcomes: Iterable[str]) -> None:
    """Routing outcomes written in one commit (RouteKind values), one per snapshot."""
    routes = _metrics.routes
    for outcome, count in Tally(outcomes).items():
        routes.inc((outcome,), count)


def exchange_request(venue: str, endpoint: str, result: str, seconds: float) -> None:
    """One ccxt call ended: ``result`` is "ok" or the error kind; ``seconds`` as the caller waited."""
    m = _metrics
    m.exchange_requests.inc((venue, endpoint, result))
    m.exchange_seconds.observe(seconds, (venue, endpoint))


def limiter_wait(account: str, seconds: float) -> None:
    """A request of ``account`` queued this long in its limiter before it was admitted."""
    _metrics.limiter_wait.observe(seconds, (account,))


def rate_limited(account: str, status: int) -> None:
    """The exchange refused a request of ``account`` with 429 (rate) or 418 (IP ban)."""
    _metrics.rate_limited.inc((account, str(status)))


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
            m.ticks.inc((outcome,))
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

    def __init__(self, errors: _Counter) -> None:
        self._errors = errors
        self._lock = gevent.lock.Semaphore()  # one scrape at a time adds fills to the running totals
        self._database: tuple | None = None
        self._seen = _KeepSeen()
        self._fills: dict[tuple, Any] = {}
        self._fills_through = 0

    def describe(self) -> list[Metric]:
        return []  # the families depend on the database: no checks against them at registration

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            families = self._read()
        yield from families
        yield self._errors.family()  # last: a scrape shows its own failure

    def _read(self) -> list[Metric]:
        from storage import metric_reads

        database = metric_reads.database_key()
        if database is None:
            return []
        if database != self._database:  # another database: its own totals
            self._database, self._seen, self._fills, self._fills_through = database, _KeepSeen(), {}, 0
        try:
            state = metric_reads.read_state(self._fills_through)
        except Exception as exc:  # a scrape never fails because the database did  # noqa: BLE001
            logger.warning("metrics: reading the database failed: {}: {}", type(exc).__name__, exc)
            self._errors.inc(("database",))
            return []
        self._add_fills(state)
        return [*_orders_by_state(state), *self._movements(state), *_kpi_per_pair(state, self._fills, self._seen)]

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
    """Every order, hot or in cold storage, by state; and, of those, the archived ones (settled and refunded
    orders moved out by storage/archive.py, counted from its index)."""
    family = GaugeMetricFamily("mmflow_orders", "mmflow orders by state (domain/states.py), hot and archived.",
                               labels=["state"])
    names = sorted({s.value for s in OrderState} | set(state.orders))
    for name in names:
        family.add_metric([name], state.orders.get(name, 0))
    yield family
    archived = GaugeMetricFamily("mmflow_archived_orders", "Of mmflow_orders, those in cold storage (archive), "
                                 "by state.", labels=["state"])
    for name in names:
        archived.add_metric([name], state.archived.get(name, 0))
    yield archived


def _kpi_per_pair(state, fills: dict[tuple, Any], seen: _KeepSeen) -> Iterator[Metric]:
    """KPIs aggregated per pair (exchange account + symbol), never per order.

    From what the database holds today (``state``: storage.metric_reads.StateCounts; ``fills``: running
    totals per account, symbol, side and liquidity): live quotes per side, orders quoting both sides, and
    fills and their volume; and the running orders' latest KPI samples averaged per pair (two-sided uptime,
    spread, depth per side)."""
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
    yield from _sampled_kpis(state.kpi)


def _sampled_kpis(kpi: dict[tuple[str, str], tuple]) -> Iterator[Metric]:
    """The running and paused orders' latest KPI samples (storage/kpi.py), averaged per pair."""
    pair = ["exchange", "symbol"]
    orders = GaugeMetricFamily("mmflow_pair_sampled_orders", "Running or paused orders with a KPI sample, per "
                               "pair.", labels=pair)
    uptime = GaugeMetricFamily("mmflow_pair_two_sided_uptime_ratio", "Share of running time with a live bid "
                               "and a live ask, averaged over the pair's orders (latest sample each).", labels=pair)
    spread = GaugeMetricFamily("mmflow_pair_spread_bps", "Time-weighted quoted spread (bps), averaged over the "
                               "pair's orders (latest sample each).", labels=pair)
    depth = GaugeMetricFamily("mmflow_pair_depth_quote", "Quote value within ±2 % of mid per side, averaged over "
                              "the pair's orders (latest sample each).", labels=[*pair, "side"])
    for key in sorted(kpi):
        count, ratio, bps, bid, ask = kpi[key]
        orders.add_metric(list(key), count)
        for family, value, labels in ((uptime, ratio, list(key)), (spread, bps, list(key)),
                                      (depth, bid, [*key, "buy"]), (depth, ask, [*key, "sell"])):
            if value is not None:
                family.add_metric(labels, value)
    yield from (orders, uptime, spread, depth)


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
