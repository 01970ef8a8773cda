"""Per-order KPIs and the daily SLA row: pure functions, Decimal money, float seconds, no I/O.

What each KPI means (the README says the same for users):

* **running seconds** — time of the interval the order spent in state ``running`` (``paused`` time is not
  running time: an operator's pause is no breach of the quoting service).
* **two-sided seconds / uptime** — running time during which the order had at least one live bid AND one live
  ask of its own on the book. Uptime % = two-sided seconds / running seconds × 100.
* **spread (bps)** — between the order's own best bid and best ask: (ask − bid) / ((ask + bid) / 2) × 10 000,
  averaged over the two-sided time (time-weighted).
* **depth bid / ask** — quote value (price × remaining amount) of the order's live buys priced at or above
  mid × (1 − 2 %), resp. sells at or below mid × (1 + 2 %); time-weighted average over the running time
  (zero while a side has no quote).
* **maker / taker volume** — Σ price × amount of the fills recorded since the previous sample (a fill the
  exchange reports late counts in the next sample, none twice), by the liquidity the exchange reported; a
  fill whose liquidity was not reported counts as taker (as HuFi scores it). **fills** — how many.
* **realised / unrealised PnL** — average-cost method (``domain.strategy.pnl``), in quote: the opening
  inventory is valued at the order's opening price; a sell realises (proceeds − fees) − average cost of the
  base sold; unrealised = base held × mid − its cost. Levels at the sample's end, since the order started.
* **inventory** — the order's own ledger (base, quote) at the sample's end.

A sample's flows (seconds, volume, fills) cover its interval; its levels (PnL, inventory, mid) are at its end.
"""
from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_EVEN, Decimal

from domain.money import fmt
from domain.strategy.pnl import Fill as PnlFill
from domain.strategy.pnl import PnlError, compute_pnl

ZERO = Decimal(0)
DEPTH_BAND = Decimal("0.02")          # depth counts quotes within ±2 % of mid
BPS = Decimal(10000)
SPREAD_STEP = Decimal("0.0001")       # bps are kept to 4 decimals
MONEY_STEP = Decimal("0.00000001")    # quote values to 8 decimals
PCT_STEP = Decimal("0.01")
BUY, SELL = "buy", "sell"


def _q(value: Decimal | None, step: Decimal) -> Decimal | None:
    return None if value is None else value.quantize(step, rounding=ROUND_HALF_EVEN)


def _weight(seconds: float) -> Decimal:
    """A duration as a Decimal weight (microsecond resolution: floats carry no more for epoch times)."""
    return Decimal(repr(round(seconds, 6)))


# ---------------------------------------------------------------- the book over time

@dataclass(frozen=True)
class Quote:
    """One of the order's live exchange orders at some moment: its side, price and remaining amount."""
    side: str
    price: Decimal
    remaining: Decimal


@dataclass(frozen=True)
class Observation:
    """What the order showed from ``at`` until the next observation (or the interval's end)."""
    at: float
    running: bool
    quotes: tuple[Quote, ...] = ()
    mid: Decimal | None = None

    @property
    def best_bid(self) -> Decimal | None:
        return max((q.price for q in self.quotes if q.side == BUY and q.remaining > 0), default=None)

    @property
    def best_ask(self) -> Decimal | None:
        return min((q.price for q in self.quotes if q.side == SELL and q.remaining > 0), default=None)

    @property
    def two_sided(self) -> bool:
        return self.running and self.best_bid is not None and self.best_ask is not None

    def spread_bps(self) -> Decimal | None:
        """(ask − bid) / midpoint of the two × 10 000; None unless two-sided."""
        if not self.two_sided:
            return None
        bid, ask = self.best_bid, self.best_ask
        return (ask - bid) / ((ask + bid) / 2) * BPS

    def depth(self, band: Decimal = DEPTH_BAND) -> tuple[Decimal, Decimal] | None:
        """(bid, ask) quote value within ±band of mid; None without a mid."""
        if self.mid is None:
            return None
        low, high = self.mid * (1 - band), self.mid * (1 + band)
        bid = sum((q.price * q.remaining for q in self.quotes
                   if q.side == BUY and q.remaining > 0 and q.price >= low), ZERO)
        ask = sum((q.price * q.remaining for q in self.quotes
                   if q.side == SELL and q.remaining > 0 and q.price <= high), ZERO)
        return bid, ask


@dataclass(frozen=True)
class BookKpis:
    interval_seconds: float
    running_seconds: float
    two_sided_seconds: float
    spread_bps: Decimal | None     # time-weighted over the two-sided time
    depth_bid: Decimal | None      # time-weighted over the running time with a known mid
    depth_ask: Decimal | None


def book_kpis(start: float, end: float, observations: Sequence[Observation],
              band: Decimal = DEPTH_BAND) -> BookKpis:
    """Uptime, spread and depth of one interval from the order's observations (a step function: each holds
    until the next). Time before the first observation counts as not running; observations outside
    [start, end] are clipped to it."""
    if end < start:
        raise ValueError(f"interval ends ({end}) before it starts ({start})")
    ordered = sorted(observations, key=lambda o: o.at)
    running = two_sided = 0.0
    spread_sum = depth_bid_sum = depth_ask_sum = ZERO
    spread_weight = depth_weight = ZERO
    for i, obs in enumerate(ordered):
        since = max(obs.at, start)
        until = min(ordered[i + 1].at if i + 1 < len(ordered) else end, end)
        seconds = until - since
        if seconds <= 0 or not obs.running:
            continue
        running += seconds
        weight = _weight(seconds)
        if obs.two_sided:
            two_sided += seconds
            spread_sum += obs.spread_bps() * weight
            spread_weight += weight
        depth = obs.depth(band)
        if depth is not None:
            depth_bid_sum += depth[0] * weight
            depth_ask_sum += depth[1] * weight
            depth_weight += weight
    return BookKpis(
        interval_seconds=round(float(end - start), 3), running_seconds=round(running, 3),
        two_sided_seconds=round(two_sided, 3),
        spread_bps=_q(spread_sum / spread_weight, SPREAD_STEP) if spread_weight else None,
        depth_bid=_q(depth_bid_sum / depth_weight, MONEY_STEP) if depth_weight else None,
        depth_ask=_q(depth_ask_sum / depth_weight, MONEY_STEP) if depth_weight else None,
    )


@dataclass(frozen=True)
class QuoteSpan:
    """One exchange order's life on the book: live from ``live_from`` until ``live_until`` (None: still live),
    with its fills as (exchange time, amount) — the remaining amount drops at each fill's time."""
    side: str
    price: Decimal
    amount: Decimal
    live_from: float
    live_until: float | None = None
    fills: tuple[tuple[float, Decimal], ...] = ()


def running_periods(changes: Iterable[tuple[float, str]],
                    states: frozenset[str] = frozenset({"running"})) -> list[tuple[float, float | None]]:
    """From an order's state history (time, state entered), the periods it spent in ``states``
    (the last one open-ended when it is still there)."""
    periods: list[tuple[float, float | None]] = []
    since: float | None = None
    for at, state in sorted(changes, key=lambda c: c[0]):
        inside = state in states
        if inside and since is None:
            since = at
        elif not inside and since is not None:
            periods.append((since, at))
            since = None
    if since is not None:
        periods.append((since, None))
    return periods


def observations(start: float, end: float, periods: Sequence[tuple[float, float | None]],
                 spans: Sequence[QuoteSpan], mid: Decimal | None) -> list[Observation]:
    """The order's observations over [start, end): one at ``start`` and one at every moment something changed
    (running began or ended, a quote went live or left the book, a fill reduced a quote). Everything before
    ``start`` is applied to the first observation; ``mid`` is the one mid known for the interval."""
    events: list[tuple[float, int, int, Decimal]] = []   # (time, kind, span index or -1, amount)
    for since, until in periods:
        events.append((since, 0, -1, ZERO))
        if until is not None:
            events.append((until, 1, -1, ZERO))
    for i, span in enumerate(spans):
        events.append((span.live_from, 2, i, ZERO))
        if span.live_until is not None:
            events.append((span.live_until, 3, i, ZERO))
        events.extend((at, 4, i, amount) for at, amount in span.fills)
    heapq.heapify(events)
    remaining = [span.amount for span in spans]
    live: set[int] = set()
    running = 0
    out: list[Observation] = []

    def snapshot(at: float) -> Observation:
        quotes = tuple(Quote(spans[i].side, spans[i].price, remaining[i]) for i in sorted(live) if remaining[i] > 0)
        return Observation(at=at, running=running > 0, quotes=quotes, mid=mid)

    def apply(kind: int, index: int, amount: Decimal) -> None:
        nonlocal running
        if kind == 0:
            running += 1
        elif kind == 1:
            running -= 1
        elif kind == 2:
            live.add(index)
        elif kind == 3:
            live.discard(index)
        else:
            remaining[index] -= amount

    while events and events[0][0] <= start:
        _, kind, index, amount = heapq.heappop(events)
        apply(kind, index, amount)
    out.append(snapshot(start))
    while events and events[0][0] < end:
        at = events[0][0]
        while events and events[0][0] == at:
            _, kind, index, amount = heapq.heappop(events)
            apply(kind, index, amount)
        current = snapshot(at)
        if (current.running, current.quotes) != (out[-1].running, out[-1].quotes):
            out.append(current)
    return out


# ---------------------------------------------------------------- fills and PnL

@dataclass(frozen=True)
class TradeTotals:
    maker_volume: Decimal = ZERO
    taker_volume: Decimal = ZERO
    fills: int = 0

    def __sub__(self, other: TradeTotals) -> TradeTotals:
        return TradeTotals(self.maker_volume - other.maker_volume, self.taker_volume - other.taker_volume,
                           self.fills - other.fills)

    def __add__(self, other: TradeTotals) -> TradeTotals:
        return TradeTotals(self.maker_volume + other.maker_volume, self.taker_volume + other.taker_volume,
                           self.fills + other.fills)


def trade_totals(fills: Iterable[tuple[Decimal, Decimal, str | None]]) -> TradeTotals:
    """Volume in quote (price × amount) by liquidity, and the count, of (price, amount, liquidity) fills.
    Liquidity not reported (None, anything but "maker") counts as taker."""
    maker = taker = ZERO
    count = 0
    for price, amount, liquidity in fills:
        count += 1
        if liquidity == "maker":
            maker += price * amount
        else:
            taker += price * amount
    return TradeTotals(maker, taker, count)


@dataclass(frozen=True)
class PnlLevels:
    realised: Decimal | None
    unrealised: Decimal | None


def pnl_levels(fills: Sequence[PnlFill], *, opening_base: Decimal, opening_quote: Decimal,
               opening_price: Decimal | None, mid: Decimal | None) -> PnlLevels:
    """Realised and unrealised PnL in quote, average-cost method, marked at ``mid`` (see the module docstring).
    Without an opening price the first fill's price, else the mid, values the opening inventory; with none of
    them, or fills the ledger cannot explain (PnlError), nothing is known (None)."""
    price = opening_price or (fills[0].price if fills else None) or mid
    if price is None:
        return PnlLevels(None, None)
    try:
        report = compute_pnl(fills, opening_base=opening_base, opening_quote=opening_quote, opening_price=price,
                             mark_price=mid)
    except PnlError:
        return PnlLevels(None, None)
    return PnlLevels(_q(report.realized, MONEY_STEP), _q(report.unrealized, MONEY_STEP))


# ---------------------------------------------------------------- samples and the SLA

@dataclass(frozen=True)
class Sample:
    """One KpiSample row: flows over (ts − interval_seconds, ts], levels at ts."""
    order_id: str
    ts: float
    interval_seconds: float
    running_seconds: float
    two_sided_seconds: float
    spread_bps: Decimal | None = None
    depth_bid: Decimal | None = None
    depth_ask: Decimal | None = None
    maker_volume: Decimal = ZERO
    taker_volume: Decimal = ZERO
    fills: int = 0
    realised_pnl: Decimal | None = None
    unrealised_pnl: Decimal | None = None
    base: Decimal = ZERO
    quote: Decimal = ZERO
    mid: Decimal | None = None
    id: int | None = None

    @property
    def start(self) -> float:
        return self.ts - self.interval_seconds

    def as_dict(self) -> dict:
        """JSON-ready: times ISO-8601 UTC (``ts`` the end, ``start``) plus ``ts_epoch`` (seconds);
        Decimals as strings; None as null."""
        return {
            "id": self.id, "order_id": self.order_id, "start": iso_utc(self.start), "ts": iso_utc(self.ts),
            "ts_epoch": self.ts, "interval_seconds": self.interval_seconds,
            "running_seconds": self.running_seconds, "two_sided_seconds": self.two_sided_seconds,
            "uptime_pct": _text(uptime_pct(self.two_sided_seconds, self.running_seconds)),
            "spread_bps": _text(self.spread_bps), "depth_bid": _text(self.depth_bid),
            "depth_ask": _text(self.depth_ask), "maker_volume": _text(self.maker_volume),
            "taker_volume": _text(self.taker_volume), "volume": _text(self.maker_volume + self.taker_volume),
            "fills": self.fills, "realised_pnl": _text(self.realised_pnl),
            "unrealised_pnl": _text(self.unrealised_pnl), "base": _text(self.base), "quote": _text(self.quote),
            "mid": _text(self.mid),
        }


def build_sample(order_id: str, start: float, end: float, book: BookKpis, trades: TradeTotals, pnl: PnlLevels,
                 base: Decimal, quote: Decimal, mid: Decimal | None) -> Sample:
    return Sample(order_id=order_id, ts=end, interval_seconds=round(float(end - start), 3),
                  running_seconds=book.running_seconds, two_sided_seconds=book.two_sided_seconds,
                  spread_bps=book.spread_bps, depth_bid=book.depth_bid, depth_ask=book.depth_ask,
                  maker_volume=trades.maker_volume, taker_volume=trades.taker_volume, fills=trades.fills,
                  realised_pnl=pnl.realised, unrealised_pnl=pnl.unrealised, base=base, quote=quote, mid=mid)


def uptime_pct(two_sided_seconds: float, running_seconds: float) -> Decimal | None:
    """Two-sided share of the running time in %, 2 decimals; None without running time."""
    if running_seconds <= 0:
        return None
    return _q(_weight(two_sided_seconds) / _weight(running_seconds) * 100, PCT_STEP)


@dataclass(frozen=True)
class Aggregate:
    """Several samples as one row (a day of the SLA report, or an order's whole life)."""
    samples: int
    first_ts: float | None
    last_ts: float | None
    sampled_seconds: float
    running_seconds: float
    two_sided_seconds: float
    uptime_pct: Decimal | None
    avg_spread_bps: Decimal | None
    avg_depth_bid: Decimal | None
    avg_depth_ask: Decimal | None
    maker_volume: Decimal
    taker_volume: Decimal
    fills: int
    last: Sample | None = field(default=None, repr=False)

    @property
    def volume(self) -> Decimal:
        return self.maker_volume + self.taker_volume

    def as_dict(self) -> dict:
        last = self.last
        return {
            "samples": self.samples, "first_start": iso_utc(self.first_ts),
            "last_ts": iso_utc(self.last_ts), "sampled_seconds": self.sampled_seconds,
            "running_seconds": self.running_seconds, "two_sided_seconds": self.two_sided_seconds,
            "uptime_pct": _text(self.uptime_pct), "avg_spread_bps": _text(self.avg_spread_bps),
            "avg_depth_bid": _text(self.avg_depth_bid), "avg_depth_ask": _text(self.avg_depth_ask),
            "maker_volume": _text(self.maker_volume), "taker_volume": _text(self.taker_volume),
            "volume": _text(self.volume), "fills": self.fills,
            "realised_pnl": _text(last.realised_pnl if last else None),
            "unrealised_pnl": _text(last.unrealised_pnl if last else None),
            "base": _text(last.base if last else None), "quote": _text(last.quote if last else None),
            "mid": _text(last.mid if last else None),
        }


def aggregate(samples: Iterable[Sample]) -> Aggregate:
    """Sum the flows; spread weighted by each sample's two-sided seconds, depth by its running seconds (a
    sample without a depth is left out of the depth average); levels (PnL, inventory) from the latest sample."""
    rows = sorted(samples, key=lambda s: s.ts)
    sampled = running = two_sided = 0.0
    spread_sum = spread_weight = bid_sum = ask_sum = depth_weight = ZERO
    totals = TradeTotals()
    for s in rows:
        sampled += s.interval_seconds
        running += s.running_seconds
        two_sided += s.two_sided_seconds
        if s.spread_bps is not None and s.two_sided_seconds > 0:
            spread_sum += s.spread_bps * _weight(s.two_sided_seconds)
            spread_weight += _weight(s.two_sided_seconds)
        if s.depth_bid is not None and s.depth_ask is not None and s.running_seconds > 0:
            bid_sum += s.depth_bid * _weight(s.running_seconds)
            ask_sum += s.depth_ask * _weight(s.running_seconds)
            depth_weight += _weight(s.running_seconds)
        totals = totals + TradeTotals(s.maker_volume, s.taker_volume, s.fills)
    return Aggregate(
        samples=len(rows), first_ts=rows[0].start if rows else None, last_ts=rows[-1].ts if rows else None,
        sampled_seconds=round(sampled, 3), running_seconds=round(running, 3), two_sided_seconds=round(two_sided, 3),
        uptime_pct=uptime_pct(two_sided, running),
        avg_spread_bps=_q(spread_sum / spread_weight, SPREAD_STEP) if spread_weight else None,
        avg_depth_bid=_q(bid_sum / depth_weight, MONEY_STEP) if depth_weight else None,
        avg_depth_ask=_q(ask_sum / depth_weight, MONEY_STEP) if depth_weight else None,
        maker_volume=totals.maker_volume, taker_volume=totals.taker_volume, fills=totals.fills,
        last=rows[-1] if rows else None)


SLA_COLUMNS = ("day", "order_id", "pair_id", "samples", "sampled_seconds", "running_seconds", "two_sided_seconds",
               "uptime_pct", "avg_spread_bps", "avg_depth_bid", "avg_depth_ask", "maker_volume", "taker_volume",
               "volume", "fills")


def sla_row(day: date, order_id: str, pair_id: str | None, samples: Iterable[Sample]) -> dict:
    """One order's SLA line of one UTC day (columns ``SLA_COLUMNS``), JSON-ready."""
    row = {"day": day.isoformat(), "order_id": order_id, "pair_id": pair_id, **aggregate(samples).as_dict()}
    return {k: row[k] for k in SLA_COLUMNS}


# ---------------------------------------------------------------- time

def day_bounds(day: date) -> tuple[float, float]:
    """[start, end) of a UTC day in epoch seconds."""
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()
    return start, start + 86400.0


def day_of(ts: float) -> date:
    return datetime.fromtimestamp(ts, timezone.utc).date()


def day_pieces(start: float, end: float) -> list[tuple[float, float]]:
    """[start, end] cut at every UTC midnight inside it, so each piece (each sample) belongs to one day."""
    pieces = []
    while True:
        midnight = day_bounds(day_of(start))[1]
        if midnight >= end:
            pieces.append((start, end))
            return pieces
        pieces.append((start, midnight))
        start = midnight


def iso_utc(ts: float | None) -> str | None:
    """Epoch seconds as ISO-8601 UTC with a Z (milliseconds when not whole)."""
    if ts is None:
        return None
    moment = datetime.fromtimestamp(ts, timezone.utc)
    spec = "seconds" if moment.microsecond == 0 else "milliseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def parse_time(value: float | int | str | datetime | date | None) -> float | None:
    """A time given as epoch seconds, an ISO-8601 text (UTC unless it says otherwise; a bare date is its
    midnight), a datetime or a date → epoch seconds. ValueError with a readable message otherwise."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(value, date):
        return day_bounds(value)[0]
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time (ISO-8601 like 2026-01-31T12:00:00Z, a date like 2026-01-31, "
                         f"or epoch seconds)") from None
    return parse_time(moment)


def parse_day(text: str) -> date:
    """YYYY-MM-DD → date; ValueError with a readable message otherwise."""
    try:
        return date.fromisoformat(str(text).strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a day (YYYY-MM-DD)") from None


def _text(value: Decimal | None) -> str | None:
    return None if value is None else fmt(value)


__all__ = ["DEPTH_BAND", "Quote", "Observation", "BookKpis", "book_kpis", "QuoteSpan", "running_periods",
           "observations", "TradeTotals", "trade_totals", "PnlLevels", "pnl_levels", "Sample", "build_sample",
           "uptime_pct", "Aggregate", "aggregate", "SLA_COLUMNS", "sla_row", "day_bounds", "day_of", "day_pieces",
           "iso_utc", "parse_time", "parse_day"]
