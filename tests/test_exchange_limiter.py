"""WeightedLimiter: token buckets, weights, concurrency cap, account pause, FIFO, no busy-waiting.

Real time with short windows (gevent-patched by conftest); every timing assertion has a margin
on the side that cannot flake (a limiter never lets a request through *early*).
"""
from __future__ import annotations

import time

import gevent
import pytest

from integrations.exchange.limiter import AcquireTimeout, WeightedLimiter


def _times_of(limiter: WeightedLimiter, n: int, weight: int = 1, bucket: str = "default") -> list[float]:
    """Acquire n times from n concurrent greenlets; monotonic time of each admission, in admission order."""
    out: list[float] = []

    def one() -> None:
        with limiter.acquire(weight, bucket):
            out.append(time.monotonic())

    gevent.joinall([gevent.spawn(one) for _ in range(n)], raise_error=True)
    return out


def test_bucket_starts_with_the_burst_then_refills_continuously():
    lim = WeightedLimiter(100, window=1.0, burst_fraction=0.2, latency_margin=0.0)
    capacity, rate = lim.bucket_rate()
    assert capacity == 20 and rate == pytest.approx(80.0)
    t0 = time.monotonic()
    for _ in range(20):  # the burst: no waiting at all
        lim.acquire(1).release()
    assert lim.stats.waited == 0
    lim.acquire(8).release()  # 8 tokens at 80/s
    elapsed = time.monotonic() - t0
    # it waited for 8 tokens (0.1 s), far less than the window (a loaded machine only adds to the wait)
    assert 0.095 <= elapsed < 0.9
    assert lim.stats.waited == 1


def test_weights_are_charged_and_heavy_requests_take_the_bucket_into_debt():
    lim = WeightedLimiter(100, window=1.0, burst_fraction=0.2, latency_margin=0.0)  # 20 burst, 80/s
    t0 = time.monotonic()
    lim.acquire(10).release()
    lim.acquire(10).release()
    assert time.monotonic() - t0 < 0.01  # 2 x 10 = the burst
    lim.acquire(10).release()  # 10 more tokens: 1/8 s
    assert time.monotonic() - t0 >= 0.12
    # heavier than the whole burst: waits for a full bucket (20 at 80/s) and goes into debt (-30)
    t1 = time.monotonic()
    lim.acquire(50).release()
    assert 0.24 <= time.monotonic() - t1 < 0.4
    t2 = time.monotonic()
    lim.acquire(1).release()  # the debt is paid first: 31 tokens at 80/s
    assert time.monotonic() - t2 >= 0.38


def test_no_fixed_window_ever_sees_more_than_the_limit():
    """The guarantee against an exchange counting in fixed windows: admissions in ANY interval of
    one window length (a fixed window of arrivals is one) weigh at most the limit."""
    limit, window = 40, 0.5
    lim = WeightedLimiter(limit, window=window, latency_margin=0.05)
    times = _times_of(lim, 80)
    assert len(times) == 80
    for i, start in enumerate(times):
        in_window = sum(1 for t in times[i:] if t < start + window)
        assert in_window <= limit, f"{in_window} admissions within {window}s from #{i}"
    assert times[-1] - times[0] >= 0.6  # 80 = 4 burst + 76 at 36/0.55 per s: > 1 s, never bunched


def test_concurrency_cap_with_200_greenlets():
    lim = WeightedLimiter(10**9, window=60.0, max_concurrency=10)
    in_flight, peak, done = 0, 0, []

    def worker(i: int) -> None:
        nonlocal in_flight, peak
        with lim.acquire(1):
            in_flight += 1
            peak = max(peak, in_flight)
            assert lim.stats.in_flight <= 10
            gevent.sleep(0.005)
            in_flight -= 1
        done.append(i)

    gevent.joinall([gevent.spawn(worker, i) for i in range(200)], raise_error=True)
    assert len(done) == 200 and peak == 10
    st = lim.stats
    assert st.in_flight == 0 and st.queued == 0 and st.acquired == 200 and st.max_queued >= 150


def test_penalty_blocks_every_caller_and_bucket_until_it_ends():
    lim = WeightedLimiter(10**6, window=60.0, max_concurrency=100)
    assert lim.penalize(0.3, status=429) is True
    assert lim.penalize(0.1, status=429) is False  # inside the active pause: merged, not a new penalty
    start = time.monotonic()
    admitted: list[float] = []

    def caller(bucket: str) -> None:
        with lim.acquire(1, bucket):
            admitted.append(time.monotonic() - start)

    gevent.joinall([gevent.spawn(caller, "default" if i % 2 else "sapi") for i in range(100)], raise_error=True)
    assert len(admitted) == 100 and min(admitted) >= 0.29
    st = lim.stats
    assert st.penalties == 1 and st.paused_for == 0.0
    # a ban during a 429 pause is an escalation (a new, longer penalty), not a merge
    lim.penalize(0.05, status=429)
    assert lim.penalize(0.2, status=418) is True and lim.stats.penalties == 3
    t = time.monotonic()
    lim.acquire(1).release()
    assert time.monotonic() - t >= 0.19


def test_default_backoff_doubles_while_penalties_repeat_and_resets_after_success():
    # A clock the test moves: the pause lengths are exact, whatever the machine's load does to real time.
    now = [1000.0]
    lim = WeightedLimiter(10**6, default_backoff=0.02, max_backoff=0.05, ban_backoff=0.07, clock=lambda: now[0])

    def later(seconds):
        now[0] += seconds

    lim.penalize(None)
    assert lim.paused_for == pytest.approx(0.02)
    later(0.03)
    lim.penalize(None)
    assert lim.paused_for == pytest.approx(0.04)  # doubled
    later(0.05)
    lim.penalize(None)
    assert lim.paused_for == pytest.approx(0.05)  # capped by max_backoff
    later(0.06)
    lim.note_success()
    lim.penalize(None)
    assert lim.paused_for == pytest.approx(0.02)  # back to the base after a success
    later(0.03)
    lim.penalize(None, status=418)
    assert lim.paused_for == pytest.approx(0.07)


def test_after_a_pause_traffic_resumes_at_the_refill_rate_not_with_a_burst():
    lim = WeightedLimiter(100, window=1.0, burst_fraction=0.5, latency_margin=0.0)  # 50 burst, 50/s
    lim.penalize(0.05)
    pause_ends = time.monotonic() + 0.05
    times = _times_of(lim, 10)
    # with a full bucket all 10 would pass at once when the pause ends; restarting empty, the i-th has to wait
    # for i tokens at 50/s (20 ms each). A stalled machine only makes each later, so only lower bounds are sure.
    for i, admitted in enumerate(times):
        assert admitted >= pause_ends + (i - 0.5) * 0.02, (i, admitted - pause_ends)


def test_fifo_order_among_waiters():
    lim = WeightedLimiter(400, window=1.0, burst_fraction=0.1, latency_margin=0.0)  # 40 burst, 360/s
    lim.acquire(40).release()  # bucket empty: everyone below has to queue
    order: list[int] = []

    def caller(i: int) -> None:
        with lim.acquire(1 + i % 3):  # mixed weights: still first come, first served
            order.append(i)

    greenlets = []
    for i in range(40):
        greenlets.append(gevent.spawn(caller, i))
        gevent.sleep(0)  # each one queues before the next is spawned
    gevent.joinall(greenlets, raise_error=True)
    assert order == list(range(40))
    assert lim.stats.waited == 40


def test_waiting_is_not_busy():
    lim = WeightedLimiter(10**6, max_concurrency=50)
    lim.penalize(0.5)
    greenlets = [gevent.spawn(lambda: lim.acquire(1).release()) for _ in range(200)]
    gevent.sleep(0.05)
    assert lim.stats.queued == 200
    before, cpu0 = lim.stats.wakeups, time.process_time()
    gevent.sleep(0.35)  # still inside the pause: only the head sleeps, on a timer
    assert lim.stats.wakeups - before == 0
    assert time.process_time() - cpu0 < 0.05
    gevent.joinall(greenlets, raise_error=True)
    assert lim.stats.wakeups <= 2 * 200  # about one wake-up per waiter (when it becomes head), not a poll loop


def test_a_killed_or_timed_out_waiter_leaves_the_queue():
    lim = WeightedLimiter(10**6, max_concurrency=1)
    held = lim.acquire(1)
    with pytest.raises(AcquireTimeout):
        lim.acquire(1, timeout=0.05)
    order: list[str] = []

    def caller(name: str) -> None:
        with lim.acquire(1):
            order.append(name)

    a, b, c = (gevent.spawn(caller, n) for n in "abc")
    gevent.sleep(0.01)
    assert lim.stats.queued == 3
    a.kill()  # the head goes away: b becomes head
    gevent.sleep(0)
    assert lim.stats.queued == 2
    held.release()
    held.release()  # idempotent
    gevent.joinall([b, c], raise_error=True)
    assert order == ["b", "c"] and lim.stats.in_flight == 0 and lim.stats.queued == 0


def test_buckets_are_independent_budgets():
    lim = WeightedLimiter(100, window=1.0, burst_fraction=0.1, latency_margin=0.0, bucket_limits={"sapi": 1000})
    assert lim.bucket_rate("sapi")[0] == 100 and lim.bucket_rate("default")[0] == 10
    for _ in range(10):
        lim.acquire(1).release()  # default bucket empty
    waited = lim.stats.waited
    for _ in range(50):
        lim.acquire(1, "sapi").release()  # sapi unaffected
    assert lim.stats.waited == waited
    with pytest.raises(ValueError):
        WeightedLimiter(0)
