"""Greenlet-safe weighted rate limiter for one exchange account.

ccxt's own sync throttle only sleeps ``rateLimit * cost - elapsed`` against one shared
timestamp, so concurrent greenlets all sleep the same amount and then fire together
(the ccxt 4.5 fact sheet, §3). This limiter replaces it (ccxt's ``enableRateLimit`` is off).

Three gates, passed in this order by every request:

1. **Account pause** (``penalize``): after a 429 the whole account waits until Retry-After
   (or a default backoff, doubling while penalties repeat); after a 418 (IP ban) for the ban's
   Retry-After. Every caller waits, not just the one that was refused. A penalty that arrives
   while a pause is active extends it and is merged into it (one WARNING per penalty, not one
   per refused request); a 418 during a 429 pause is an escalation and is logged.
   After a pause every bucket restarts empty, so traffic resumes at the refill rate, not
   with a burst.
2. **Token bucket per budget** (``bucket``): refilled continuously. To guarantee that an
   exchange counting weight in *fixed* windows (Binance: clock-aligned minutes) never sees more
   than ``limit`` in one window, the bucket holds a burst of ``burst_fraction * limit`` and
   refills at ``(limit - burst) / (window + latency_margin)`` per second: any interval of
   ``window + latency_margin`` seconds of sends carries at most ``limit`` weight, so any window
   of arrivals does too (a request arrives at most ``latency_margin`` after it was admitted).
   A request heavier than the burst waits for a full bucket and then takes it into debt.
3. **Concurrency cap**: at most ``max_concurrency`` requests in flight (``Permit`` held).

Waiting is FIFO per bucket and never busy: only the head of a bucket's queue looks at the
clock; it sleeps on its own event for exactly the time it needs (pause end, token deficit /
rate) or until a slot is released; the others sleep until they become head. A waiter that is
killed or times out leaves the queue and hands the head position on.

Single-hub gevent code: nothing here yields between a check and the update that follows it,
so no lock is needed. Do not share a limiter between OS threads.
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gevent.event import Event
from loguru import logger

from integrations import metrics

__all__ = ["AcquireTimeout", "LimiterStats", "Permit", "WeightedLimiter"]

DEFAULT_BUCKET = "default"


class AcquireTimeout(Exception):  # noqa: N818 - reads as what happened
    """``acquire(timeout=...)`` waited that long without getting through."""


@dataclass(frozen=True)
class LimiterStats:
    acquired: int
    waited: int  # acquisitions that had to queue
    wait_seconds: float  # total time spent queued
    max_wait_seconds: float
    penalties: int  # distinct account pauses (merged refusals are not counted again)
    penalty_seconds: float
    wakeups: int  # times a head woke up to re-check (measures busy-waiting)
    in_flight: int
    queued: int
    max_queued: int
    paused_for: float  # seconds left of the current pause


class Permit:
    """One admitted request; ``release()`` (or leaving the ``with`` block) frees its slot."""

    __slots__ = ("_limiter", "_released", "bucket", "weight", "waited")

    def __init__(self, limiter: WeightedLimiter, bucket: str, weight: int, waited: float) -> None:
        self._limiter = limiter
        self._released = False
        self.bucket = bucket
        self.weight = weight
        self.waited = waited

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._limiter._release()

    def __enter__(self) -> Permit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class _Bucket:
    __slots__ = ("capacity", "head_wants_slot", "limit", "name", "rate", "tokens", "updated", "waiters")

    def __init__(self, name: str, limit: int, window: float, burst_fraction: float, latency_margin: float,
                 now: float) -> None:
        self.name = name
        self.limit = limit
        burst = max(1.0, limit * burst_fraction)
        if burst >= limit:
            burst = max(1.0, limit / 2)
        self.capacity = burst
        self.rate = (limit - burst) / (window + latency_margin)
        if self.rate <= 0:  # limit of 1: one request per window (+margin)
            self.rate = limit / (window + latency_margin)
        self.tokens = burst  # starts full
        self.updated = now
        self.waiters: deque[Event] = deque()
        self.head_wants_slot = False  # the head waits for a released slot (not for time)

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def token_delay(self, need: float, now: float) -> float:
        """Seconds until ``need`` tokens are available (0: now). Call after refill(now)."""
        if self.tokens >= need and now >= self.updated:
            return 0.0
        return max(0.0, self.updated - now) + max(0.0, need - self.tokens) / self.rate


class WeightedLimiter:
    """See the module docstring. ``limit`` is the weight per ``window`` seconds of the default
    bucket; ``bucket_limits`` gives other buckets their own budget (missing: ``limit``)."""

    def __init__(  # noqa: PLR0913 - every knob has a sane default
        self,
        limit: int,
        *,
        window: float = 60.0,
        max_concurrency: int = 50,
        bucket_limits: Mapping[str, int] | None = None,
        burst_fraction: float = 0.1,
        latency_margin: float = 0.25,
        default_backoff: float = 1.0,
        max_backoff: float | None = None,
        ban_backoff: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
        name: str = "exchange",
    ) -> None:
        if limit < 1 or window <= 0 or max_concurrency < 1:
            raise ValueError("limit >= 1, window > 0 and max_concurrency >= 1 are required")
        if not 0 <= burst_fraction < 1:
            raise ValueError("burst_fraction must be in [0, 1)")
        self.limit = limit
        self.window = window
        self.max_concurrency = max_concurrency
        self.burst_fraction = burst_fraction
        self.latency_margin = latency_margin
        self.default_backoff = default_backoff
        self.max_backoff = window if max_backoff is None else max_backoff
        self.ban_backoff = ban_backoff
        self.name = name
        self._clock = clock
        self._bucket_limits = dict(bucket_limits or {})
        self._buckets: dict[str, _Bucket] = {}
        self._in_flight = 0
        self._paused_until = 0.0
        self._pause_status: int | None = None
        self._consecutive_penalties = 0
        # counters
        self._acquired = 0
        self._waited = 0
        self._wait_seconds = 0.0
        self._max_wait = 0.0
        self._penalties = 0
        self._penalty_seconds = 0.0
        self._wakeups = 0
        self._max_queued = 0
        self._bucket(DEFAULT_BUCKET)

    # ------------------------------------------------------------------ public API

    def acquire(self, weight: int = 1, bucket: str = DEFAULT_BUCKET, *, timeout: float | None = None) -> Permit:
        """Wait (FIFO) until the request may be sent; returns a Permit to release when it is done."""
        b = self._bucket(bucket)
        need = min(float(weight), b.capacity)
        now = self._clock()
        if not b.waiters and self._ready(b, need, now) == 0.0:
            return self._take(b, weight, 0.0)
        deadline = None if timeout is None else now + timeout
        me = Event()
        b.waiters.append(me)
        queued = sum(len(x.waiters) for x in self._buckets.values())
        self._max_queued = max(self._max_queued, queued)
        started = now
        try:
            while True:
                me.clear()
                if b.waiters[0] is me:
                    now = self._clock()
                    delay = self._ready(b, need, now)
                    if delay == 0.0:
                        break
                    # delay None: only a slot is missing; _release() sets our event
                    b.head_wants_slot = delay is None
                else:
                    delay = None  # not head yet: the previous head wakes us when it leaves
                if deadline is not None:
                    left = deadline - self._clock()
                    if left <= 0:
                        raise AcquireTimeout(f"{self.name}: no slot within {timeout}s (bucket {bucket})")
                    delay = left if delay is None else min(delay, left)
                me.wait(delay)
                self._wakeups += 1
        finally:
            self._leave(b, me)
        waited = self._clock() - started
        self._waited += 1
        self._wait_seconds += waited
        self._max_wait = max(self._max_wait, waited)
        metrics.limiter_wait(self.name, waited)
        return self._take(b, weight, waited)

    def penalize(self, seconds: float | None = None, *, status: int = 429, reason: str = "") -> bool:
        """Pause the whole account for ``seconds`` (None: default backoff for ``status``).

        Returns True for a new penalty (logged once), False when merged into the active pause."""
        now = self._clock()
        if seconds is None or seconds <= 0:
            if status == 418:
                seconds = self.ban_backoff
            else:
                seconds = min(self.max_backoff, self.default_backoff * 2 ** self._consecutive_penalties)
        until = now + seconds
        active = now < self._paused_until
        new = not active or (status == 418 and self._pause_status != 418)
        if until > self._paused_until:
            self._penalty_seconds += until - max(now, self._paused_until)
            self._paused_until = until
        for b in self._buckets.values():  # resume at the refill rate, not with a burst
            b.tokens = min(b.tokens, 0.0)
            b.updated = max(b.updated, self._paused_until)
        if new:
            self._penalties += 1
            self._consecutive_penalties += 1
            self._pause_status = status
            what = "IP banned (418)" if status == 418 else f"rate limited ({status})"
            logger.warning("exchange {}: {}; pausing every request of the account for {:.1f}s{}",
                           self.name, what, self._paused_until - now, f" ({reason})" if reason else "")
        else:
            logger.debug("exchange {}: another {} while paused; pause now ends in {:.1f}s",
                         self.name, status, self._paused_until - now)
        return new

    def note_success(self) -> None:
        """A request succeeded: the next penalty without Retry-After starts from the base backoff."""
        if self._consecutive_penalties and self._clock() >= self._paused_until:
            self._consecutive_penalties = 0

    @property
    def paused_for(self) -> float:
        return max(0.0, self._paused_until - self._clock())

    @property
    def stats(self) -> LimiterStats:
        return LimiterStats(
            acquired=self._acquired, waited=self._waited, wait_seconds=self._wait_seconds,
            max_wait_seconds=self._max_wait, penalties=self._penalties, penalty_seconds=self._penalty_seconds,
            wakeups=self._wakeups, in_flight=self._in_flight,
            queued=sum(len(b.waiters) for b in self._buckets.values()), max_queued=self._max_queued,
            paused_for=self.paused_for,
        )

    def bucket_rate(self, bucket: str = DEFAULT_BUCKET) -> tuple[float, float]:
        """(burst capacity, refill per second) of a bucket."""
        b = self._bucket(bucket)
        return b.capacity, b.rate

    # ------------------------------------------------------------------ internals

    def _bucket(self, name: str) -> _Bucket:
        b = self._buckets.get(name)
        if b is None:
            limit = self._bucket_limits.get(name, self.limit)
            now = self._clock()
            b = _Bucket(name, limit, self.window, self.burst_fraction, self.latency_margin, now)
            if now < self._paused_until:  # born during a pause: starts empty, like the others
                b.tokens = 0.0
                b.updated = self._paused_until
            self._buckets[name] = b
        return b

    def _ready(self, b: _Bucket, need: float, now: float) -> float | None:
        """0.0: may go now; >0: seconds to sleep; None: wait for a released slot."""
        pause = self._paused_until - now
        if pause > 0:
            return pause
        b.refill(now)
        delay = b.token_delay(need, now)
        if delay > 0:
            return delay
        if self._in_flight >= self.max_concurrency:
            return None
        return 0.0

    def _take(self, b: _Bucket, weight: int, waited: float) -> Permit:
        b.tokens -= weight
        self._in_flight += 1
        self._acquired += 1
        return Permit(self, b.name, weight, waited)

    def _leave(self, b: _Bucket, me: Event) -> None:
        if b.waiters and b.waiters[0] is me:
            b.waiters.popleft()
            b.head_wants_slot = False
            if b.waiters:
                b.waiters[0].set()  # the next head evaluates at once
        else:
            try:
                b.waiters.remove(me)
            except ValueError:
                pass

    def _release(self) -> None:
        self._in_flight -= 1
        for b in self._buckets.values():
            if b.waiters and b.head_wants_slot:
                b.waiters[0].set()  # that head waits for this slot; it re-checks (others sleep on)
