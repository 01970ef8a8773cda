"""Per-order KPI samples: the write unit, what the sampler reads, and the reads the CLI and the API show.

JSON-ready reads: Decimals are strings, times ISO-8601 UTC with a ``Z`` (``ts`` = a sample's end, ``start``),
plus ``ts_epoch`` (epoch seconds) on each sample. What each KPI means: domain/kpi.py.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import NamedTuple

import peewee as pw

from domain import kpi
from domain.exchange_orders import ExOrderState
from domain.states import OrderState
from storage import repo
from storage.kpi_models import KpiSample
from storage.models import Order
from storage.reports import ledgers_of, pnl_fills
from storage.sql import chunks, marks, run, run_many

ZERO = Decimal(0)
SAMPLED_STATES = (OrderState.RUNNING.value, OrderState.PAUSED.value)
_RESTING = (ExOrderState.ACCEPTED.value, ExOrderState.PARTIALLY_FILLED.value, ExOrderState.PENDING_CANCEL.value)
CHUNK = 400           # orders (or samples) per statement, as storage/strategy_seed.py
TimeArg = float | int | str | datetime | date | None


# ---------------------------------------------------------------- the write unit

_INSERT = ("INSERT INTO kpi_sample (order_id, ts, interval_seconds, running_seconds, two_sided_seconds, spread_bps, "
           "depth_bid, depth_ask, maker_volume, taker_volume, fills, realised_pnl, unrealised_pnl, base, quote, mid) "
           f"VALUES ({marks(16)})")


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(Decimal(value), "f")   # as DecimalText stores it


def write_samples(samples: Sequence[kpi.Sample]) -> int:
    """Store samples (a unit: run it through the writer); a sample whose order already has one ending at that
    time (a replay) is not written. Returns how many were written. A few statements per CHUNK samples."""
    written = 0
    for chunk in chunks(samples, CHUNK):
        ids = sorted({s.order_id for s in chunk})
        stored = set(run(f"SELECT order_id, ts FROM kpi_sample WHERE ts >= ? AND order_id IN ({marks(len(ids))})",
                         (min(s.ts for s in chunk), *ids)).fetchall())
        rows = []
        for s in chunk:
            if (s.order_id, s.ts) in stored:
                continue
            stored.add((s.order_id, s.ts))
            rows.append((s.order_id, s.ts, s.interval_seconds, s.running_seconds, s.two_sided_seconds,
                         _text(s.spread_bps), _text(s.depth_bid), _text(s.depth_ask), _text(s.maker_volume),
                         _text(s.taker_volume), s.fills, _text(s.realised_pnl), _text(s.unrealised_pnl),
                         _text(s.base), _text(s.quote), _text(s.mid)))
        run_many(_INSERT, rows)
        written += len(rows)
    return written


def write_sample(sample: kpi.Sample) -> bool:
    """Store one sample (a unit). False: that order already has a sample ending at that time (nothing written)."""
    return write_samples([sample]) == 1


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


@dataclass(slots=True)
class Track:
    """What the sampler remembers of an order between rounds (all of it is in its samples)."""
    end: float | None = None                                     # the last sample's end: the next starts there
    counted: kpi.TradeTotals = field(default_factory=kpi.TradeTotals)   # volume and fills already sampled
    mid: Decimal | None = None                                   # the last sample's mid


def tracks_of(order_ids: Sequence[str]) -> dict[str, Track]:
    """Each order's Track from its samples (an order without any: an empty one), a statement per CHUNK orders."""
    tracks = {order_id: Track() for order_id in order_ids}
    ids = list(tracks)
    for chunk in chunks(ids, CHUNK):
        rows = run(f"SELECT order_id, ts, maker_volume, taker_volume, fills, mid FROM kpi_sample "
                   f"WHERE order_id IN ({marks(len(chunk))})", chunk).fetchall()
        for order_id, ts, maker, taker, fills, mid in rows:
            track = tracks[order_id]
            track.counted = track.counted + kpi.TradeTotals(Decimal(maker), Decimal(taker), fills)
            if track.end is None or ts > track.end:
                track.end, track.mid = ts, None if mid is None else Decimal(mid)
    return tracks


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
    return tracks_of([order_id])[order_id].counted


def left_sampling_at(order_id: str) -> float | None:
    """When the order last moved from running/paused to any other state (None: it never did, or is back)."""
    left = None
    for change in repo.order_history(order_id):
        if change.from_state in SAMPLED_STATES and change.to_state not in SAMPLED_STATES:
            left = change.at
        elif change.to_state in SAMPLED_STATES:
            left = None
    return left


@dataclass(slots=True)
class SampleInputs:
    """Everything one order's samples are computed from, as the database held it when read (``load_inputs``)."""
    history: list[tuple[float, str]] = field(default_factory=list)    # (at, state entered), oldest first
    fills: list[FillRow] = field(default_factory=list)                # as exchange_repo.fills_of
    exchange_orders: list[tuple] = field(default_factory=list)        # _SPAN_COLUMNS rows
    opening: dict[str, Decimal] = field(default_factory=dict)         # reports.opening_ledger
    balances: dict[str, Decimal] = field(default_factory=dict)        # repo.ledger_balances
    opening_price: Decimal | None = None


class FillRow(NamedTuple):
    """What a sample reads of one exchange_fill row (exchange_repo.fills_of's Fill, without peewee's model)."""
    fill_key: str
    client_order_id: str
    side: str
    price: Decimal
    amount: Decimal
    fee: Decimal
    fee_currency: str | None
    liquidity: str | None
    at: float


_FILL_COLUMNS = "fill_key, client_order_id, side, price, amount, fee, fee_currency, liquidity, at"


def _fill(row) -> FillRow:
    key, cid, side, price, amount, fee, fee_currency, liquidity, at = row
    return FillRow(key, cid, side, Decimal(price), Decimal(amount), Decimal(fee), fee_currency, liquidity, at)


_SPAN_COLUMNS = ("e.client_order_id, e.side, e.price, e.amount, e.state, e.submitted_at, e.created_at, "
                 "e.updated_at, s.acked_at, s.closed_at, e.order_id")


def load_inputs(order_ids: Sequence[str], start: float, end: float) -> dict[str, SampleInputs]:
    """The inputs of samples within [start, end] of each of ``order_ids`` (every id gets one, empty for an
    unknown order): five statements per CHUNK orders instead of six to eight per order."""
    inputs = {order_id: SampleInputs() for order_id in order_ids}
    ids = list(inputs)
    resting = list(_RESTING)
    for chunk in chunks(ids, CHUNK):
        where = f"order_id IN ({marks(len(chunk))})"
        for order_id, opening_price in run(f"SELECT order_id, opening_price FROM orders WHERE {where}",
                                           chunk).fetchall():
            inputs[order_id].opening_price = Decimal(opening_price) if opening_price is not None else None
        for order_id, at, to_state in run(f"SELECT order_id, at, to_state FROM order_state_change WHERE {where} "
                                          f"ORDER BY at, id", chunk).fetchall():
            inputs[order_id].history.append((at, to_state))
        for order_id, *row in run(f"SELECT order_id, {_FILL_COLUMNS} FROM exchange_fill WHERE {where} "
                                  f"ORDER BY at, fill_key", chunk).fetchall():
            inputs[order_id].fills.append(_fill(row))
        for row in run(f"SELECT {_SPAN_COLUMNS} FROM exchange_order e LEFT OUTER JOIN kpi_quote_span s "
                       f"ON s.client_order_id = e.client_order_id WHERE e.{where} AND e.created_at < ? AND "
                       f"(e.state IN ({marks(len(resting))}) OR e.updated_at >= ?) "
                       f"ORDER BY e.created_at, e.client_order_id", (*chunk, end, *resting, start)).fetchall():
            inputs[row[-1]].exchange_orders.append(row)
        for order_id, (balances, deposits) in ledgers_of(chunk).items():
            inputs[order_id].balances, inputs[order_id].opening = balances, deposits
    return inputs


def _quote_spans(exchange_orders: Sequence[tuple], start: float, end: float, fills) -> list[kpi.QuoteSpan]:
    """The exchange orders that may have rested on the book during [start, end): live from their first
    acknowledgement to their first final state (kpi_quote_span). A resting order without a span row
    (acknowledged before that table existed) counts as live since it was submitted."""
    by_order: dict[str, list[tuple[float, Decimal]]] = defaultdict(list)
    for f in fills:
        by_order[f.client_order_id].append((f.at, f.amount))
    spans = []
    for cid, side, price, amount, state, submitted_at, created_at, updated_at, acked_at, closed_at, _ in \
            exchange_orders:
        if not (created_at < end and (state in _RESTING or updated_at >= start)):
            continue               # load_inputs read for a wider interval: this one's rows only
        if acked_at is None:
            if state not in _RESTING:
                continue           # never acknowledged: it never rested on the book
            acked_at = submitted_at or created_at
        if closed_at is not None and closed_at <= start:
            continue
        spans.append(kpi.QuoteSpan(side=side, price=Decimal(price), amount=Decimal(amount), live_from=acked_at,
                                   live_until=closed_at, fills=tuple(sorted(by_order.get(cid, ())))))
    return spans


def sample_of(order_id: str, inputs: SampleInputs, base: str, quote: str, start: float, end: float,
              mid: Decimal | None, counted: kpi.TradeTotals) -> kpi.Sample:
    """One sample of [start, end] from the order's inputs (``load_inputs`` over an interval holding this one):
    uptime, spread and depth from the history of the order's states and of its exchange orders; volume and
    fills recorded since ``counted``; PnL and the ledger as read. ``base``/``quote``: the pair's exchange
    currency codes."""
    fills = inputs.fills
    periods = kpi.running_periods(inputs.history)
    spans = _quote_spans(inputs.exchange_orders, start, end, fills)
    book = kpi.book_kpis(start, end, kpi.observations(start, end, periods, spans, mid))
    trades = kpi.trade_totals((f.price, f.amount, f.liquidity) for f in fills) - counted
    opening = inputs.opening
    pnl = kpi.pnl_levels(pnl_fills(fills, base), opening_base=opening.get(base, ZERO),
                         opening_quote=opening.get(quote, ZERO), opening_price=inputs.opening_price, mid=mid)
    ledger = inputs.balances
    return kpi.build_sample(order_id, start, end, book, trades, pnl, ledger.get(base, ZERO), ledger.get(quote, ZERO),
                            mid)


def compute_sample(order_id: str, base: str, quote: str, start: float, end: float, mid: Decimal | None,
                   counted: kpi.TradeTotals) -> kpi.Sample:
    """One sample of [start, end] from the database (``sample_of`` on this order's ``load_inputs``)."""
    return sample_of(order_id, load_inputs([order_id], start, end)[order_id], base, quote, start, end, mid, counted)


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
