"""Risk breakers, as pure decisions (hummingbot's kill switch, NautilusTrader's trading states, Mr.Market's
reject/PnL breaker). Each trips with a reason; what it stops and who resets it:

- drawdown (per order): the order's PnL against the value it was funded with, in the quote asset, below
  −max_drawdown → the order is paused (an operator resumes it);
- rejections (per exchange account): more than max_rejections refused requests or errors in
  rejection_window seconds → no order quotes on the account until an operator lifts it
  (`halt --lift --account ID`);
- price (per order): no fresh order book for stale_price_after seconds, or the reference price moving more
  than max_price_jump in one tick → the order's quotes are cancelled until the price has been sane (fresh,
  and within the band from one tick to the next) for price_settle seconds.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any

from pydantic import Field, PlainValidator

from domain.config_schema import Section, problem
from domain.config_values import Delay, Interval, count, decimal_value
from domain.money import ZERO, fmt


def _fraction(value: Any) -> Decimal:
    """A fraction given as a quoted decimal: 0 < x <= 1 (0.05 = 5 %)."""
    number = decimal_value(value)
    if not ZERO < number <= 1:
        raise problem(f'must be a fraction > 0 and <= 1 ("0.05" = 5 %), got {number}')
    return number


Fraction = Annotated[Decimal, PlainValidator(_fraction)]


class RiskLimits(Section):
    """The ``[risk]`` table."""
    max_drawdown: Fraction = Field(Decimal("0.2"), validation_alias="max_drawdown_pct")  # of the funded value
    max_rejections: Annotated[int, count(1)] = 20
    rejection_window: Interval = 60.0
    stale_price_after: Interval = 30.0
    max_price_jump: Fraction = Field(Decimal("0.05"), validation_alias="max_price_jump_pct")  # of the last price
    price_settle: Delay = 10.0


def drawdown_trip(pnl: Decimal | None, funded_value: Decimal | None, limits: RiskLimits) -> str | None:
    """A reason when the order lost more than its limit of what it was funded with, else None."""
    if pnl is None or funded_value is None or funded_value <= 0 or pnl >= 0:
        return None
    loss = -pnl / funded_value
    if loss > limits.max_drawdown:
        return (f"drawdown breaker: PnL {fmt(pnl)} is {fmt((loss * 100).quantize(Decimal('0.01')))} % of the "
                f"funded value {fmt(funded_value)}, beyond the {fmt(limits.max_drawdown * 100)} % limit")
    return None


@dataclass
class RejectionCounter:
    """Refused requests and errors of one account in a sliding window."""
    limits: RiskLimits
    times: deque = field(default_factory=deque)

    def note(self, now: float) -> str | None:
        """Count one; a reason when the account must stop quoting."""
        self.times.append(now)
        while self.times and now - self.times[0] > self.limits.rejection_window:
            self.times.popleft()
        if len(self.times) > self.limits.max_rejections:
            return (f"rejection breaker: {len(self.times)} refused requests or errors in "
                    f"{self.limits.rejection_window:g}s (limit {self.limits.max_rejections})")
        return None


def counts_as_rejection(kind: str | None) -> bool:
    """Whether a refused request counts against the rejection breaker. Not ``clock`` (Binance -1021: the
    request reached the venue after its recvWindow): that is our clock or a saturated process, not the venue
    refusing our orders; nothing happened, and the next request is signed afresh."""
    return kind != "clock"


@dataclass
class ClockTrouble:
    """Requests of one account refused for their timestamp: reported at most once per ``every`` seconds."""
    every: float = 10.0
    since_report: int = 0
    reported_at: float | None = None

    def note(self, now: float) -> int | None:
        """Count one; the number to report (this one and those held back since the last report), or None."""
        self.since_report += 1
        if self.reported_at is not None and now - self.reported_at < self.every:
            return None
        count, self.since_report, self.reported_at = self.since_report, 0, now
        return count


@dataclass
class PriceGuard:
    """Per order: quote only on a fresh, sane reference price."""
    limits: RiskLimits
    last_price: Decimal | None = None
    last_fresh_at: float | None = None
    tripped: str | None = None
    sane_since: float | None = None

    def book_missing(self, now: float) -> str | None:
        """No book this tick. A reason to cancel quotes once it has been missing too long."""
        if self.last_fresh_at is not None and now - self.last_fresh_at > self.limits.stale_price_after:
            self.tripped = (f"price breaker: no fresh order book for {now - self.last_fresh_at:.0f}s "
                            f"(limit {self.limits.stale_price_after:g}s)")
            self.sane_since = None
        return self.tripped

    def observe(self, price: Decimal | None, now: float) -> str | None:
        """A fresh reference price this tick. Returns the reason quotes must stay cancelled, or None."""
        if price is None or price <= 0:
            return self.book_missing(now)
        previous, self.last_price, self.last_fresh_at = self.last_price, price, now
        if previous is not None and previous > 0:
            move = abs(price - previous) / previous
            if move > self.limits.max_price_jump:
                self.tripped = (f"price breaker: the reference moved {fmt((move * 100).quantize(Decimal('0.01')))} % "
                                f"in one tick ({fmt(previous)} → {fmt(price)}; limit "
                                f"{fmt(self.limits.max_price_jump * 100)} %)")
                self.sane_since = None
                return self.tripped
        if self.tripped is None:
            return None
        if self.sane_since is None:
            self.sane_since = now
        if now - self.sane_since >= self.limits.price_settle:
            self.tripped = None
            self.sane_since = None
            return None
        return self.tripped


def funded_value(opening_base: Decimal, opening_quote: Decimal, price: Decimal | None) -> Decimal | None:
    if price is None:
        return None
    return opening_base * price + opening_quote if (opening_base or opening_quote) else ZERO
