"""Actors that hold no greenlet while idle: the first message to an idle actor queues a run that drains its
inbox and ends.

A pykka `ThreadingActor` (a greenlet under gevent's patching) keeps its thread blocked on its inbox for
its whole life: its stack, the greenlet and the queue's waiters cost kilobytes per actor even when nothing
happens, and 100,000 orders that wait for a payment would hold 100,000 greenlets. A `PooledActor` keeps
only a `_Mailbox` (a deque, itself dropped while empty). The first message to an idle actor queues one
run that handles messages one at a time, in order, until the mailbox is empty, then ends; messages that
arrive meanwhile join the same run. Runs (and actors' on_start) are drained by one greenlet (`_Runs`) until
a run blocks: the queue then passes to a new greenlet, so the greenlets are still on demand, never a bounded
set of workers — a handler may block on an ask to another actor or on the writer's future, and a bounded
pool whose workers all wait on actors queued behind them would deadlock.

Everything else is pykka's: `ActorRef` tell/ask/stop/proxies, `ActorRegistry`, futures, the `_ActorStop`
message, on_start before the first message, on_stop / on_failure, `ActorDeadError` for what was queued
when the actor stopped and for everything sent after. The message loop below mirrors pykka 4's
`Actor._actor_loop_running` (the same branches, in the same order), run in bursts instead of forever.

Like every gevent object, a mailbox belongs to its hub's thread: tell a PooledActor from greenlets of
that thread (every actor and the service's own code), not from a native OS thread.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import gevent
import pykka
from pykka import ActorRegistry

__all__ = ["PooledActor"]

_pykka_log = logging.getLogger("pykka")  # pykka's own logger, so its bridge to loguru sees these lines too

START_YIELD_EVERY = 32  # actor starts between two yields of the starting greenlet (see _start_actor_loop)
_starts_unyielded = 0  # actor starts since the last such yield


class _Runs:
    """Runs pooled actors' work — an on_start, or a run over the messages of an idle actor's mailbox — oldest first, on
    one greenlet for many of them: a greenlet per actor start and per wake-up (spawned, switched to, ended) — its
    spawn alone ~3 % of a restart's samples at 100,000 order actors, most of whose setups and first ticks never
    yield. A run that does
    yield (it waits for the writer, an ask, a request) must not hold back the ones queued behind it — one of them may
    be what it waits for — so whenever another greenlet runs while the draining greenlet is inside a run, that
    greenlet is blocked there: the queue passes to a new greenlet (an enqueue that finds it so hands it over at once;
    otherwise ``_check``, a loop callback armed while runs wait, does at the hub's next turn). The blocked greenlet
    finishes its one run and ends. The drainer yields to the hub every ``SLICE`` seconds, as gevent's own loop
    does between callbacks, so I/O is not held back by a long queue."""

    __slots__ = ("_check_armed", "_current", "_hub", "_in_run", "_queue")

    SLICE = 0.005   # gevent's switch interval

    def __init__(self) -> None:
        self._queue: deque[Callable[[], None]] = deque()
        self._current: Any = None     # the greenlet draining the queue (None: none)
        self._in_run = False          # ... and whether it is inside a run now
        self._check_armed = False
        self._hub: Any = None         # the hub it was spawned on (one that is gone never runs it: tests, a fork)

    def add(self, run: Callable[[], None]) -> None:
        self._queue.append(run)
        current = self._current
        if current is None or self._hub is not gevent.get_hub():   # none, or on a hub that no longer runs
            self._hand_over()
        elif self._in_run:
            if gevent.getcurrent() is current:
                self._arm_check()   # queued by the run under way: should it block later, the check hands over
            else:
                self._hand_over()   # it is blocked in a run (it is not running: we are)

    def _hand_over(self) -> None:
        self._in_run = False
        self._hub = gevent.get_hub()
        self._current = gevent.spawn_raw(self._drain)
        self._check_armed = False   # (one armed on a hub that is gone never comes)
        self._arm_check()

    def forget(self) -> None:
        """In a forked child the parent's draining greenlet is a copy that never runs."""
        self._current = self._hub = None
        self._in_run = self._check_armed = False

    def _arm_check(self) -> None:
        if not self._check_armed:
            self._check_armed = True
            gevent.get_hub().loop.run_callback(self._check)

    def _check(self) -> None:
        """The hub runs: a draining greenlet inside a run is blocked there."""
        self._check_armed = False
        if self._queue and self._current is not None and self._in_run:
            self._hand_over()

    def _drain(self) -> None:
        me = gevent.getcurrent()
        queue = self._queue
        clock = time.perf_counter
        yield_at = clock() + self.SLICE
        try:
            while queue and self._current is me:
                run = queue.popleft()
                self._in_run = True
                run()
                if self._current is not me:
                    break   # it blocked: handed over meanwhile
                self._in_run = False
                if queue:
                    if clock() >= yield_at:
                        gevent.sleep(0)   # the hub's turn (I/O, timers); a run queued meanwhile waits for us
                        yield_at = clock() + self.SLICE
                    self._arm_check()   # (armed already unless the hub ran meanwhile)
        finally:
            if self._current is me:
                self._current = None
                self._in_run = False
                if queue:   # a BaseException escaped a run: the ones behind it still run
                    self._hand_over()


_runs = _Runs()
os.register_at_fork(after_in_child=_runs.forget)


class _Mailbox:
    """A PooledActor's inbox (pykka's `ActorInbox` protocol, plus `qsize` for the metrics).

    `running` is True while a run of the actor is queued or handling messages; a message put into a mailbox
    that is not running queues one. The mailbox holds its actor: an idle actor has no greenlet,
    and pykka's registry and refs hold it only weakly, so this is what keeps a live idle actor alive
    (until it stops: the link is cut then)."""

    __slots__ = ("_actor", "_queue", "running")

    def __init__(self, actor: PooledActor) -> None:
        self._actor: PooledActor | None = actor
        self._queue: deque[Any] | None = None  # no deque while empty: an idle actor holds none
        self.running = True  # until on_start has run (start() queues it): nothing runs before on_start

    def put(self, envelope: Any, /) -> None:
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        queue.append(envelope)
        if not self.running and self._actor is not None:
            self.running = True
            _runs.add(self._actor._pooled_run)  # noqa: SLF001 - the mailbox and its actor are one

    def get(self) -> Any:
        if not self._queue:
            raise IndexError("mailbox is empty")
        return self._queue.popleft()

    def empty(self) -> bool:
        return not self._queue

    def qsize(self) -> int:
        return len(self._queue) if self._queue else 0


class PooledActor(pykka.ThreadingActor):
    """A pykka actor that runs on a greenlet only while it has messages; see the module docstring.

    Futures are pykka's ThreadingFuture (gevent-aware once threading is patched), so an ask from or to
    a ThreadingActor works as before. `use_daemon_thread` has no meaning here."""

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> pykka.ActorRef[Any]:
        """pykka 4.5's ``Actor.start`` (construct, register, start the loop), without its two DEBUG lines unless
        pykka's logger shows them: each formats the actor's name before the level is checked (two strings per
        order actor at a start of 100,000; ~0.5 % of a restart's samples).

        The registration is register()'s append without its lock: one ``list.append`` is atomic under the GIL, as
        are the registry's own reads and removals of that list, and the lock — threading's RLock, a Python-level
        lock once gevent patched it — was ~1 % of a restart's CPU at one acquire and release per order actor."""
        obj = cls(*args, **kwargs)
        ref = obj.actor_ref
        if _pykka_log.isEnabledFor(logging.DEBUG):
            ActorRegistry.register(ref)
            _pykka_log.debug("Starting %s", obj)
        else:
            ActorRegistry._actor_refs.append(ref)  # noqa: SLF001 - register() is this append plus its line
        obj._start_actor_loop()
        return ref

    def _create_actor_inbox(self) -> _Mailbox:  # type: ignore[override] - pykka calls it as self._create_actor_inbox()
        return _Mailbox(self)

    def _start_actor_loop(self) -> None:
        _runs.add(self._pooled_first_run)  # on_start runs on a shared greenlet (_Runs), not one of its own
        # Yield now and then, as a ThreadingActor's start does under gevent (Thread.start waits for the thread): a
        # supervisor starting thousands of actors in one handler then lets them and everyone else run in between,
        # instead of queueing every setup ahead of the rest of the process. Every START_YIELD_EVERY starts, not
        # each: a switch through the hub per actor was ~3 % of a restart's CPU, and a few dozen setups queued
        # together hold the rest back for milliseconds.
        global _starts_unyielded  # noqa: PLW0603 - one count for the hub's thread, like the hub itself
        _starts_unyielded += 1
        if _starts_unyielded >= START_YIELD_EVERY:
            _starts_unyielded = 0
            gevent.sleep(0)

    def _pooled_first_run(self) -> None:
        self._actor_loop_setup()  # on_start (a failure there stops the actor: the run below then tears down)
        self._pooled_run()

    def _pooled_run(self) -> None:
        """Handle messages until the mailbox is empty (the run then ends) or the actor stopped."""
        mailbox: _Mailbox = self.actor_inbox  # type: ignore[assignment]
        stopped = self.actor_stopped
        while not stopped.is_set():
            queue = mailbox._queue  # noqa: SLF001
            if not queue:
                mailbox._queue = None  # noqa: SLF001 - idle: drop the deque too
                mailbox.running = False
                return
            self._pooled_handle(queue.popleft())
        self._actor_loop_teardown()  # pykka's: ActorDeadError to asks still queued, None to queued stops
        mailbox._actor = None  # noqa: SLF001 - a stopped actor is no longer kept alive by refs to it

    def _pooled_handle(self, envelope: Any) -> None:
        """One message, as pykka 4's `_actor_loop_running` handles it."""
        try:
            response = self._handle_receive(envelope.message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:
            if envelope.reply_to is not None:
                _pykka_log.info(f"Exception returned from {self} to caller:", exc_info=sys.exc_info())
                envelope.reply_to.set_exception()
            else:
                self._handle_failure(*sys.exc_info())
                try:
                    self.on_failure(*sys.exc_info())
                except Exception:  # noqa: BLE001
                    self._handle_failure(*sys.exc_info())
        except BaseException:  # noqa: BLE001 - pykka's rule: a BaseException in a handler stops every actor
            _pykka_log.debug(f"{sys.exc_info()[1]!r} in {self}. Stopping all actors.")
            self._stop()
            ActorRegistry.stop_all()
