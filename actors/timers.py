"""Timers that tell an actor a message later: pykka has no scheduler of its own.

Every timer of the process sits in ONE heap served by ONE greenlet (the scheduler), so a pending
timer costs a small object and its heap entry, not a greenlet: 100,000 idle orders each waiting for a
deadline hold 100,000 heap entries and one greenlet. The scheduler sleeps until the earliest deadline and is woken
early when a timer with an earlier one is armed. A timer never sleeps inside a handler, so the actor
keeps processing its inbox while the timer waits. A timer whose actor is gone is moot:
`ActorDeadError` ends it quietly.

Cancelled timers stay in the heap until their deadline comes up (cancel is O(1)); when they make up
most of a large heap it is rebuilt without them, so re-arming long timers cannot grow it without bound.
The scheduler is created on first use and again whenever the gevent hub it ran on is gone (tests that
replace the hub) or the process forked (the child's copy of the serving greenlet never runs); pending
timers move over to the new one.
"""
from __future__ import annotations

import heapq
import itertools
import os
import time
from typing import Any

import gevent
import pykka
from gevent.event import Event
from loguru import logger

__all__ = ["Timer", "send_after", "send_every"]

_BURST = 1000
"""Timers fired between two yields to the hub, so a burst of due timers does not stall the hub."""
_COMPACT_MIN = 1024
"""A heap this large or larger is rebuilt once more than half its entries are cancelled."""


class Timer:
    """Handle of a pending `send_after` / `send_every`; `cancel()` stops it.

    Its heap entry is ``(deadline, seq, timer)``: ordered by deadline, then by arming order, compared by the
    tuples' own C comparison (a heap of 100,000 orders' timers compares ~17 times per push or pop; a Python
    ``__lt__`` on the timer took twice as long)."""

    __slots__ = ("_interval", "_message", "_ref", "active")

    def __init__(self, ref: pykka.ActorRef[Any], interval: float | None, message: Any) -> None:
        self._ref = ref
        self._interval = interval
        self._message = message
        self.active = True
        """True until the timer has fired (one-shot), been cancelled, or seen its actor die."""

    def cancel(self) -> None:
        """Stop the timer; a message not yet sent is never sent. Idempotent, never blocks."""
        if self.active:
            self.active = False
            self._ref = self._message = None  # a cancelled entry waiting in the heap holds no actor
            _scheduler().cancelled += 1


class _Scheduler:
    """The heap of pending timers and the greenlet that fires them."""

    def __init__(self, heap: list[tuple[float, int, Timer]], seq: itertools.count, cancelled: int) -> None:
        self.heap = heap
        self.seq = seq
        self.cancelled = cancelled  # cancelled entries still in the heap (an estimate: compaction recounts)
        self.hub = gevent.get_hub()
        self.pid = os.getpid()
        self.wake = Event()
        self.greenlet = gevent.spawn(self._serve)

    def usable(self) -> bool:
        """False once this scheduler can never run again: forked away, its hub destroyed, its greenlet ended.
        (Forked away: the fork hook below marks it, so arming a timer asks no getpid() of the kernel.)"""
        return self.pid != -1 and self.hub.loop is not None and not self.greenlet.dead

    def arm(self, ref: pykka.ActorRef[Any], delay: float, interval: float | None, message: Any) -> Timer:
        timer = Timer(ref, interval, message)
        entry = (time.monotonic() + max(delay, 0.0), next(self.seq), timer)
        if gevent.get_hub() is self.hub:
            self._push(entry)
        else:  # armed from another OS thread (its own hub): the heap belongs to the scheduler's thread
            self.hub.loop.run_callback_threadsafe(self._push, entry)
        return timer

    def _push(self, entry: tuple[float, int, Timer]) -> None:
        heapq.heappush(self.heap, entry)
        if self.heap[0] is entry:
            self.wake.set()  # earlier than what the scheduler sleeps towards

    def _serve(self) -> None:
        heap = self.heap
        while True:
            self.wake.clear()
            fired = 0
            now = time.monotonic()
            while heap and heap[0][0] <= now:
                timer = heapq.heappop(heap)[2]
                if not timer.active:
                    self.cancelled = max(0, self.cancelled - 1)
                    continue
                self._fire(timer)
                fired += 1
                if fired >= _BURST:
                    gevent.sleep(0)
                    fired = 0
                    now = time.monotonic()
            if self.cancelled * 2 > len(heap) >= _COMPACT_MIN:
                heap[:] = [entry for entry in heap if entry[2].active]
                heapq.heapify(heap)
                self.cancelled = 0
            self.wake.wait(heap[0][0] - now if heap else None)

    def _fire(self, timer: Timer) -> None:
        try:
            timer._ref.tell(timer._message)
        except pykka.ActorDeadError:
            timer._interval = None  # popped already: ends without counting as a cancelled heap entry
        except Exception:  # noqa: BLE001 - one broken timer must not end every other one
            logger.exception("timer to {} failed; dropped", timer._ref)
            timer._interval = None
        if timer._interval is None or not timer.active:  # one-shot, dead actor, or cancelled by the tell
            timer.active = False
            timer._ref = timer._message = None
        else:  # fixed delay: the next tick is an interval after this send
            heapq.heappush(self.heap, (time.monotonic() + timer._interval, next(self.seq), timer))


_current: _Scheduler | None = None


def _scheduler() -> _Scheduler:
    """The process's scheduler; a new one (taking over the pending timers) if the old one cannot run any more."""
    global _current  # noqa: PLW0603 - one scheduler per process, created on first use
    current = _current
    if current is not None and current.usable():
        return current
    if current is None:
        _current = _Scheduler([], itertools.count(), 0)
    else:
        _current = _Scheduler(current.heap, current.seq, current.cancelled)
        _current.wake.set()
    return _current


def _forget_after_fork() -> None:
    """In a forked child the parent's serving greenlet is a copy that never runs: the next use makes a new one."""
    if _current is not None:
        _current.pid = -1


os.register_at_fork(after_in_child=_forget_after_fork)


def send_after(ref: pykka.ActorRef[Any], delay: float, message: Any) -> Timer:
    """Tell `message` to `ref` once, after `delay` seconds (delay <= 0: next loop turn)."""
    return _scheduler().arm(ref, delay, None, message)


def send_every(ref: pykka.ActorRef[Any], interval: float, message: Any) -> Timer:
    """Tell `message` to `ref` every `interval` seconds until cancelled or the actor dies.

    The first message goes out after one interval. Ticks are spaced from the
    previous send (fixed delay), so a stalled hub does not make them bunch up.
    """
    if interval <= 0:
        msg = f"send_every interval must be > 0, got {interval!r}"
        raise ValueError(msg)
    return _scheduler().arm(ref, interval, interval, message)
