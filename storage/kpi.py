"""Per-order KPI samples: the write unit, what the sampler reads, and the reads the CLI and the API show.

JSON-ready reads: Decimals are strings, times ISO-8601 UTC with a ``Z`` (``ts`` = a sample's end, ``start``),
plus ``ts_epoch`` (epoch seconds) on each sample. What each KPI means: domain/kpi.py.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal

import peewee as pw

from domain import kpi
from domain.exchange_orders import ExOrderState
from domain.states import OrderState
from storage import exchange_repo, repo
from storage.exchange_models import ExchangeOrder
from storage.kpi_models import KpiQuoteSpan, KpiSample
from storage.models import Order
from storage.reports import opening_ledger, pnl_fills

ZERO = Decimal(0)
SAMPLED_STATES = (OrderState.RUNNING.value, OrderState.PAUSED.value)
_RESTING = (ExOrderState.ACCEPTED.value, ExOrderState.PARTIALLY_FILLED.value, ExOrderState.PENDING_CANCEL.value)
TimeArg = float | int | str | datetime | date | None


# ---------------------------------------------------------------- the write unit

def write_sample(sample: kpi.Sample) -> bool:
    """Store one sample (a unit: run it through the writer). False: that order already has a sample ending
    at that time (a replay) and nothing is written."""
    if KpiSample.select().where((KpiSample.order_id == sample.order_id) & (KpiSample.ts == sample.ts)).exists():
        return False
    KpiSample.create(order_id=sample.order_id, ts=sample.ts, interval_seconds=sample.interval_seconds,
                     running_seconds=sample.running_seconds, two_sided_seconds=sample.two_sided_seconds,
                     spread_bps=sample.spread_bps, depth_bid=sample.depth_bid, depth_ask=sample.depth_ask,
                     maker_volume=sample.maker_volume, taker_volume=sample.taker_volume, fills=sample.fills,
                     realised_pnl=sample.realised_pnl, unrealised_pnl=sample.unrealised_pnl, base=sample.base,
                     quote=sample.quote, mid=sample.mid)
    return True


def _sample(row: KpiSample) -> kpi.Sample:
    return kpi.Sample(order_id=row.order_id, ts=row.ts, interval_seconds=row.interval_seconds,
                      running_seconds=row.running_seconds, two_sided_seconds=row.two_sided_seconds,
                      spread_bps=row.spread_bps, depth_bid=row.depth_bid, depth_ask=row.depth_ask,
                      maker_volume=row.maker_volume, taker_volume=row.taker_volume, fills=row.fills,
                      realised_pnl=row.realised_pnl, unrealised_pnl=row.unrealised_pnl, base=row.base,
                      quote=row.quote, mid=row.mid, id=row.id)


# ---------------------------------------------------------------- what the sampler reads

def sampled_orders() -> list[Order]:
    """Orders the sampler samples now: running or paused."""
    return list(Order.select(Order.order_id, Order.pair_id, Order.state, Order.started_at)
                .where(Order.state.in_(SAMPLED_STATES)).order_by(Order.order_id))


def last_sample(order_id: str) -> kpi.Sample | None:
    row = KpiSample.select().where(KpiSample.order_id == order_id).order_by(KpiSample.ts.desc()).first()
    return None if row is None else _sample(row)


def last_sample_ends(since: float) -> dict[str, float]:
    """Each order's latest sample end among the samples ending at or after ``since``."""
    rows = (KpiSample.select(KpiSample.order_id, pw.fn.MAX(KpiSample.ts).alias("end"))
            .where(KpiSample.ts >= since).group_by(KpiSample.order_id).tuples())
    return {order_id: end for order_id, end in rows}


def latest_ts() -> float | None:
    return KpiSample.select(pw.fn.MAX(KpiSample.ts)).scalar()


def counted_trades(order_id: str) -> kpi.TradeTotals:
    """Volume and fills already counted in this order's samples (the next sample counts the rest)."""
    totals = kpi.TradeTotals()
    for maker, taker, fills in (KpiSample.select(KpiSample.maker_volume, KpiSample.taker_volume, KpiSample.fills)
                                .where(KpiSample.order_id == order_id).tuples()):
        totals = totals + kpi.TradeTotals(Decimal(maker), Decimal(taker), fills)
    return totals


def left_sampling_at(order_id: str) -> float | None:
    """When the order last moved from running/paused to any other state (None: it never did, or is back)."""
    left = None
    for change in repo.order_history(order_id):
        if change.from_state in SAMPLED_STATES and change.to_state not in SAMPLED_STATES:
            left = change.at
        elif change.to_state in SAMPLED_STATES:
            left = None
    return left


def quote_spans(order_id: str, start: float, end: float, fills) -> list[kpi.QuoteSpan]:
    """The order's exchange orders that may have rested on the book during [start, end): live from their
    first acknowledgement to their first final state (kpi_quote_span). A resting order without a span row
    (acknowledged before that table existed) counts as live since it was submitted."""
    by_order: dict[str, list[tuple[float, Decimal]]] = defaultdict(list)
    for f in fills:
        by_order[f.client_order_id].append((f.at, f.amount))
    query = (ExchangeOrder
             .select(ExchangeOrder.client_order_id, ExchangeOrder.side, ExchangeOrder.price, ExchangeOrder.amount,
                     ExchangeOrder.state, ExchangeOrder.submitted_at, ExchangeOrder.created_at,
                     KpiQuoteSpan.acked_at, KpiQuoteSpan.closed_at)
             .join(KpiQuoteSpan, pw.JOIN.LEFT_OUTER,
                   on=(KpiQuoteSpan.client_order_id == ExchangeOrder.client_order_id))
             .where((ExchangeOrder.order_id == order_id) & (ExchangeOrder.created_at < end)
                    & (ExchangeOrder.state.in_(_RESTING) | (ExchangeOrder.updated_at >= start)))
             .tuples())
    spans = []
    for cid, side, price, amount, state, submitted_at, created_at, acked_at, closed_at in query:
        if acked_at is None:
            if state not in _RESTING:
                continue           # never acknowledged: it never rested on the book
            acked_at = submitted_at or created_at
        if closed_at is not None and closed_at <= start:
            continue
        spans.append(kpi.QuoteSpan(side=side, price=Decimal(price), amount=Decimal(amount), live_from=acked_at,
                                   live_until=closed_at, fills=tuple(sorted(by_order.get(cid, ())))))
    return spans


def compute_sample(order_id: str, base: str, quote: str, start: float, end: float, mid: Decimal | None,
                   counted: kpi.TradeTotals) -> kpi.Sample:
    """One sample of [start, end] from the database: uptime, spread and depth from the history of the
    order's states and of its exchange orders; volume and fills recorded since ``counted``; PnL and the
    ledger now. ``base``/``quote`` are the pair's exchange currency codes."""
    history = [(h.at, h.to_state) for h in repo.order_history(order_id)]
    fills = exchange_repo.fills_of(order_id)
    periods = kpi.running_periods(history)
    spans = quote_spans(order_id, start, end, fills)
    book = kpi.book_kpis(start, end, kpi.observations(start, end, periods, spans, mid))
    trades = kpi.trade_totals((f.price, f.amount, f.liquidity) for f in fills) - counted
    opening = opening_ledger(order_id)
    pnl = kpi.pnl_levels(pnl_fills(fills, base), opening_base=opening.get(base, ZERO),
                         opening_quote=opening.get(quote, ZERO), opening_price=repo.opening_price(order_id), mid=mid)
    ledger = repo.ledger_balances(order_id)
    return kpi.build_sample(order_id, start, end, book, trades, pnl, ledger.get(base, ZERO), ledger.get(quote, ZERO),
                            mid)


# ---------------------------------------------------------------- reads for people (CLI, API)

def _samples_query(order_id: str, since: TimeArg, until: TimeArg):
    low, high = kpi.parse_time(since), kpi.parse_time(until)
    query = KpiSample.select().where(KpiSample.order_id == order_id)
    if low is not None:
        query = query.where(KpiSample.ts >= low)
    if high is not None:
        query = query.where(KpiSample.ts <= high)
    return query


def kpi_series(order_id: str, since: TimeArg = None, until: TimeArg = None, limit: int | None = None) -> list[dict]:
    """The order's samples whose end (``ts``) is within [since, until], oldest first, as JSON-ready dicts
    (``domain.kpi.Sample.as_dict``). since/until: epoch seconds, ISO-8601 text, datetime or date (ValueError
    when unreadable). ``limit``: only the newest ``limit`` of them (still oldest first)."""
    query = _samples_query(order_id, since, until)
    if limit is not None:
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        rows = list(query.order_by(KpiSample.ts.desc()).limit(limit))[::-1]
    else:
        rows = list(query.order_by(KpiSample.ts))
    return [_sample(r).as_dict() for r in rows]


def kpi_summary(order_id: str, since: TimeArg = None, until: TimeArg = None) -> dict:
    """The order's sampled life (or the samples ending within [since, until]) as one row
    (``domain.kpi.Aggregate.as_dict``: uptime %, average spread and depth, volume, fills; PnL, inventory and
    mid of the latest sample), plus the latest sample itself."""
    samples = [_sample(r) for r in _samples_query(order_id, since, until).order_by(KpiSample.ts)]
    summary = kpi.aggregate(samples)
    return {"order_id": order_id, **summary.as_dict(),
            "latest": summary.last.as_dict() if summary.last is not None else None}


def sla_report(day: date, order_id: str | None = None) -> list[dict]:
    """One row per order sampled during the UTC ``day`` (columns ``domain.kpi.SLA_COLUMNS``), by order id."""
    start, end = kpi.day_bounds(day)
    query = KpiSample.select().where((KpiSample.ts > start) & (KpiSample.ts <= end))
    if order_id is not None:
        query = query.where(KpiSample.order_id == order_id)
    by_order: dict[str, list[kpi.Sample]] = defaultdict(list)
    for row in query.order_by(KpiSample.order_id, KpiSample.ts):
        by_order[row.order_id].append(_sample(row))
    pairs = dict(Order.select(Order.order_id, Order.pair_id).where(Order.order_id.in_(list(by_order))).tuples()) \
        if by_order else {}
    return [kpi.sla_row(day, oid, pairs.get(oid), samples) for oid, samples in sorted(by_order.items())]
