"""Erlang/OTP-style supervision for pykka actors running as greenlets (gevent).

Pykka has no supervision, linking or monitoring (jodal/pykka#42), so both halves
are built here on public pykka hooks:

- `SupervisedActor` is the base class of every child. It reports its own exit
  to its supervisor with a `ChildExited` message ("death watch" from the child
  side), and converts a `gevent.Timeout` escaping a handler into an ordinary
  exception (a BaseException in a handler makes pykka stop *every* actor).
- `Supervisor` starts children from `ChildSpec`s, applies the restart strategy,
  restart type, restart intensity and exponential backoff, and escalates when it
  gives up.

Rules that follow from pykka's semantics:

- Only failures in *tell* handlers kill an actor; an exception in an *ask*
  handler goes back to the asker and the actor keeps running.
- There is no brutal kill: a child that does not stop within its
  shutdown_timeout is logged and abandoned.
- A child must not `ask` its supervisor from teardown(): the supervisor waits
  for the child to stop, so that ask would only end with the shutdown timeout.
"""
from __future__ import annotations

import itertools
import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gevent
import pykka
from loguru import logger

from actors.childspec import ChildSpec, Restart, Strategy
from actors.messages import (
    ChildExited,
    DeliverToChild,
    ExitReason,
    StartChild,
    StopChild,
    WhichChildren,
)
from actors.timers import Timer, send_after, send_every
from integrations.redaction import redact

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "ChildSpec",
    "HandlerTimeout",
    "Restart",
    "StartFailed",
    "Strategy",
    "SupervisedActor",
    "Supervisor",
    "describe",
    "install_pykka_log_bridge",
    "start_failure",
]

BACKOFF_JITTER = 0.2
"""Each backoff delay is stretched by a random 0..20% so restarts of many children spread out."""
_URN_PREFIX = uuid.uuid4().urn[:-12]   # "urn:uuid:xxxxxxxx-xxxx-4xxx-yxxx-": an actor's URN ends in its number
_URN_SEQ = itertools.count(1)

SWEEP_SLICE = 2000
"""Children a liveness sweep checks per interval (the rest on the next ones): O(slice), not O(children)."""


class HandlerTimeout(Exception):  # noqa: N818 - it is the gevent.Timeout, renamed
    """A `gevent.Timeout` escaped an actor handler.

    Raised instead of the Timeout so pykka handles it as an ordinary failure
    (tell: the actor dies and is restarted; ask: the asker gets it) rather
    than as a BaseException, which stops every actor in the process.
    """


class StartFailed(RuntimeError):  # noqa: N818 - reads as what happened
    """An actor's start (its setup()) failed; the message says why, down to the innermost cause."""


def describe(exc: BaseException | None) -> str:
    """One-line description of an exception for logs, ChildExited.error and alerts (secrets masked)."""
    if exc is None:
        return "unknown error"
    if isinstance(exc, StartFailed):
        return redact(str(exc))
    return redact(f"{type(exc).__name__}: {exc}")


_START_FAILURES: dict[str, str] = {}
_START_FAILURES_KEPT = 256


def start_failure(actor_urn: str) -> str | None:
    """Why the actor with this urn failed in setup() (taken: asked once), or None.

    pykka answers a waiting ask with a bare ActorDeadError when on_start fails; this is the
    reason that goes with it (see ``actors.system.wait_started``)."""
    return _START_FAILURES.pop(actor_urn, None)


def _note_start_failure(actor_urn: str, reason: str) -> None:
    while len(_START_FAILURES) >= _START_FAILURES_KEPT:
        _START_FAILURES.pop(next(iter(_START_FAILURES)))
    _START_FAILURES[actor_urn] = reason


class SupervisedActor(pykka.ThreadingActor):
    """Base class for every supervised actor.

    Subclasses override `setup()` (instead of `on_start`) and `teardown()`
    (instead of `on_stop`); they must not override `on_start`, `on_stop` or
    `on_failure`, which carry the exit report. The actor reports
    `ChildExited` to its supervisor exactly once:

    - "failure": an exception in a tell handler, or setup() raised;
    - "normal": the actor stopped (self.stop() or ref.stop()). A stop the
      supervisor initiated is a "shutdown": the supervisor knows it asked
      for it and never restarts it.

    teardown() runs on every exit after a successful setup(), including
    failures (like Akka's PostStop), so resources are released either way.
    """

    # Daemon threads: on Python 3.11/3.12 starting a non-daemon thread costs
    # O(live threads), which makes 50k actors take a minute to start.
    use_daemon_thread = True

    def __init__(
        self,
        supervisor: pykka.ActorRef[Any] | None = None,
        child_id: str | None = None,
    ) -> None:
        # pykka 4.5's Actor.__init__, but for the URN: uuid4() is an os.urandom() call and a UUID object per actor,
        # the largest single item of starting 100,000 order actors. A per-process random prefix and a counter are
        # as unique within the process (ActorRegistry's scope) and keep the URN's form.
        self.actor_urn = f"{_URN_PREFIX}{next(_URN_SEQ):012x}"
        self.actor_inbox = self._create_actor_inbox()
        self.actor_stopped = threading.Event()
        self._actor_ref = pykka.ActorRef(self)
        if (supervisor is None) != (child_id is None):
            msg = "supervisor and child_id go together: pass both or neither"
            raise ValueError(msg)
        # Underscore: pykka's proxy introspection must not walk into other actors (pykka#48).
        self._supervisor = supervisor
        self.child_id = child_id
        self._exit_reported = False

    def setup(self) -> None:
        """Override: runs in the actor before the first message; raise to fail the start."""

    def teardown(self) -> None:
        """Override: runs in the actor after the last message (also after a failure)."""

    def on_start(self) -> None:
        try:
            self.setup()
        except (Exception, gevent.Timeout) as exc:
            logger.opt(exception=exc).error("{} setup failed: {}", self._label(), describe(exc))
            _note_start_failure(self.actor_urn, describe(exc))
            self._undo_setup()
            self._report_exit("failure", describe(exc))
            # pykka calls no hook when on_start fails, so end the actor the way pykka
            # does: queued messages are never handled by a half-built actor, and
            # pending asks get ActorDeadError.
            pykka.ActorRegistry.unregister(self.actor_ref)
            self.actor_stopped.set()

    def on_stop(self) -> None:
        self._teardown_safely()
        self._report_exit("normal", None)

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # pykka has already logged the traceback on logger "pykka" (see install_pykka_log_bridge).
        self._teardown_safely()
        self._report_exit("failure", describe(exception_value))

    def _handle_receive(self, message: Any) -> Any:
        # Overrides pykka's (private) dispatcher, the one place that sees every
        # handler: plain messages, proxy calls and the stop pill alike.
        try:
            return super()._handle_receive(message)
        except gevent.Timeout as exc:
            msg = f"gevent.Timeout escaped a handler of {self._label()}: {exc}"
            raise HandlerTimeout(msg) from exc

    def _undo_setup(self) -> None:
        """Release what a failed setup() had acquired (teardown() is not run then)."""

    def _teardown_safely(self) -> None:
        try:
            self.teardown()
        except (Exception, gevent.Timeout) as exc:
            logger.opt(exception=exc).error("{} teardown failed: {}", self._label(), describe(exc))

    def _report_exit(self, reason: ExitReason, error: str | None) -> None:
        if self._supervisor is None or self._exit_reported:
            return
        self._exit_reported = True
        try:
            self._supervisor.tell(ChildExited(self.child_id, self.actor_urn, reason, error))
        except pykka.ActorDeadError:
            pass  # the supervisor is gone: nobody is left to restart this child

    def _label(self) -> str:
        return f"{type(self).__name__} {self.child_id or self.actor_urn}"


@dataclass(frozen=True)
class _RestartChild:
    """Tell, timer -> supervisor: the backoff is over; restart `child_ids` in this order.

    Only children still waiting for this `token` are started, so a timer that
    was superseded by a later failure does nothing.
    """

    child_ids: tuple[str, ...]
    token: int


@dataclass(frozen=True)
class _Sweep:
    """Tell, timer -> supervisor: check is_alive() of the next slice of children (safety net)."""


@dataclass(eq=False, slots=True)
class _Child:
    """Supervisor-side state of one child id (slots, and no stash until a message waits: one per order)."""

    spec: ChildSpec
    dynamic: bool  # added by StartChild: stopped in parallel, like OTP's simple_one_for_one
    ref: pykka.ActorRef[Any] | None = None  # None: stopped, waiting for a restart
    restart_count: int = 0
    backoff_n: int = 0  # consecutive restarts, the exponent of the next backoff delay
    started_at: float = 0.0
    pending: int | None = None  # token of the _RestartChild this child waits for
    stash: deque[Any] | None = None  # messages waiting for its next incarnation (None: none ever waited)
    stash_dropped: int = 0
    suspect: bool = False  # a sweep saw it dead without a report


class Supervisor(SupervisedActor):
    """Starts, watches and restarts children; see the module docstring.

    Children start in list order in setup() and stop in reverse order in
    teardown(), each bounded by its shutdown_timeout; dynamic children
    (StartChild) are appended to the start order and stopped in parallel.

    More than `intensity` restarts within `period` seconds: all children are
    stopped and the supervisor exits. With a parent it reports "failure" to
    it; as the root it logs one CRITICAL line and calls `on_escalate(reason)`.

    Subclasses handle their own message types in `handle_message()` and may
    use `child_ref()`, `start_child()`, `stop_child()` and `deliver()`; a
    subclass overriding setup()/teardown() must call super().
    """

    def __init__(  # noqa: PLR0913 - the OTP flags plus the backoff knobs
        self,
        name: str,
        children: Sequence[ChildSpec] = (),
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        intensity: int = 3,
        period: float = 5.0,
        backoff_min: float = 0.05,
        backoff_max: float = 5.0,
        backoff_reset_after: float | None = None,
        on_escalate: Callable[[str], None] | None = None,
        supervisor: pykka.ActorRef[Any] | None = None,
        child_id: str | None = None,
        sweep_interval: float | None = 1.0,
        stash_limit: int = 1000,
    ) -> None:
        super().__init__(supervisor, child_id)
        # Validated here, in the caller of start(), so a bad tree fails synchronously.
        ids = [spec.id for spec in children]
        if len(set(ids)) != len(ids):
            msg = f"supervisor {name}: duplicate child ids in {ids}"
            raise ValueError(msg)
        if intensity < 0 or period <= 0 or backoff_min < 0 or backoff_max < backoff_min:
            msg = f"supervisor {name}: invalid intensity/period/backoff settings"
            raise ValueError(msg)
        self.name = name
        self._specs = tuple(children)
        self._strategy = strategy
        self._intensity = intensity
        self._period = period
        self._backoff_min = backoff_min
        self._backoff_max = backoff_max
        self._backoff_reset_after = (
            (backoff_min + backoff_max) / 2 if backoff_reset_after is None else backoff_reset_after
        )
        self._on_escalate = on_escalate
        self._sweep_interval = sweep_interval
        self._stash_limit = stash_limit
        self._children: dict[str, _Child] = {}  # insertion order is the start order
        self._restarts: deque[float] = deque()  # monotonic times of recent restarts
        self._timers: dict[int, Timer] = {}  # pending restarts by token
        self._tokens = itertools.count(1)
        self._sweep_timer: Timer | None = None
        self._sweep_queue: deque[str] = deque()  # child ids the current sweep pass has still to check
        self._gave_up = False

    # -- lifecycle -------------------------------------------------------

    def setup(self) -> None:
        # A child that cannot start fails the whole supervisor, like OTP's
        # start_link; _undo_setup() then stops the ones already started.
        for spec in self._specs:
            try:
                self._start_new(spec, dynamic=False)
            except Exception as exc:  # noqa: BLE001 - said again with the child's id, and raised
                msg = f"child {spec.id} did not start: {describe(exc)}"
                raise StartFailed(msg) from exc
        if self._sweep_interval:
            self._sweep_timer = send_every(self.actor_ref, self._sweep_interval, _Sweep())
        logger.info("supervisor {}: started {} children", self.name, len(self._children))

    def _undo_setup(self) -> None:
        # Also covers a subclass whose setup() fails after super().setup().
        self._cancel_timers()
        self._stop_all_children()

    def teardown(self) -> None:
        self._cancel_timers()
        self._stop_all_children()
        logger.info("supervisor {}: stopped", self.name)

    # -- messages --------------------------------------------------------

    def on_receive(self, message: Any) -> Any:  # noqa: PLR0911 - one return per message type
        """Dispatch the supervision protocol; anything else goes to handle_message()."""
        if isinstance(message, ChildExited):
            return self._on_child_exited(message)
        if isinstance(message, DeliverToChild):
            return self.deliver(message.child_id, message.message)
        if isinstance(message, StartChild):
            return self.start_child(message.spec)
        if isinstance(message, StopChild):
            return self.stop_child(message.child_id)
        if isinstance(message, WhichChildren):
            return self.which_children()
        if isinstance(message, _RestartChild):
            return self._on_restart_due(message)
        if isinstance(message, _Sweep):
            return self._sweep()
        return self.handle_message(message)

    def _label(self) -> str:
        return f"supervisor {self.name}"

    def handle_message(self, message: Any) -> Any:
        """Override to handle more message types; the reply goes to the asker."""
        logger.warning("supervisor {}: unexpected message {!r}", self.name, message)

    # -- API for subclasses (call from inside the actor) ------------------

    def child_ref(self, child_id: str) -> pykka.ActorRef[Any] | None:
        """The running incarnation of `child_id`, or None (unknown or waiting for a restart)."""
        child = self._children.get(child_id)
        return None if child is None else child.ref

    def start_child(self, spec: ChildSpec) -> pykka.ActorRef[Any] | None:
        """Start a dynamic child; if `spec.id` exists, return its current ref instead."""
        if self._gave_up:
            msg = f"supervisor {self.name} is shutting down"
            raise RuntimeError(msg)
        existing = self._children.get(spec.id)
        if existing is not None:
            return existing.ref
        return self._start_new(spec, dynamic=True)  # no line per child: 100,000 orders start at once

    def stop_child(self, child_id: str) -> bool:
        """Stop and forget `child_id` (no restart); False if unknown."""
        child = self._children.pop(child_id, None)
        if child is None:
            return False
        self._stop_children([child])
        self._drop_stash(child)
        logger.info("supervisor {}: child {} stopped on request", self.name, child_id)
        return True

    def deliver(self, child_id: str, message: Any) -> bool:
        """Tell `message` to the child now, or stash it until its restart; False if dropped."""
        child = self._children.get(child_id)
        if child is None:
            logger.warning(
                "supervisor {}: message for unknown child {} dropped: {!r}", self.name, child_id, message
            )
            return False
        if child.ref is not None and not child.stash:
            try:
                child.ref.tell(message)
            except pykka.ActorDeadError:
                pass  # died, report not processed yet: stash for the next incarnation
            else:
                return True
        return self._stash(child, message)

    def which_children(self) -> list[tuple[str, bool, int]]:
        """[(child_id, alive, restart_count), ...] in start order."""
        return [
            (cid, child.ref is not None and child.ref.is_alive(), child.restart_count)
            for cid, child in self._children.items()
        ]

    # -- starting and stopping -------------------------------------------

    def _start_new(self, spec: ChildSpec, *, dynamic: bool) -> pykka.ActorRef[Any]:
        child = _Child(spec, dynamic)
        self._spawn(child)  # raises: then the child is never added
        self._children[spec.id] = child
        return child.ref  # type: ignore[return-value]

    def _spawn(self, child: _Child) -> None:
        ref = child.spec.start(self.actor_ref, child.spec.id)
        if not isinstance(ref, pykka.ActorRef):
            msg = f"start() of child {child.spec.id} returned {ref!r}, not an ActorRef"
            raise TypeError(msg)
        child.ref = ref
        child.started_at = time.monotonic()
        child.pending = None
        child.suspect = False
        self._flush_stash(child)

    def _stop_children(self, children: Sequence[_Child]) -> None:
        """Stop in the given order: static children one by one, runs of dynamic ones in parallel."""
        batch: list[tuple[_Child, pykka.ActorRef[Any]]] = []
        for child in children:
            ref, child.ref = child.ref, None  # cleared first: its exit report is now stale
            if ref is None:
                continue
            if child.dynamic:
                batch.append((child, ref))
                continue
            self._stop_in_parallel(batch)
            batch = []
            self._stop_in_parallel([(child, ref)])
        self._stop_in_parallel(batch)

    def _stop_in_parallel(self, batch: Sequence[tuple[_Child, pykka.ActorRef[Any]]]) -> None:
        # Stop pills go out in start order although the batch is in stop order:
        # ActorRegistry.unregister is a list.remove, so unregistering the oldest
        # actors first is O(1) each (10k dynamic children: 0.75 s instead of 2.2 s).
        stops = [
            (child, ref.stop(block=False), time.monotonic() + child.spec.shutdown_timeout)
            for child, ref in reversed(batch)
        ]
        for child, future, deadline in stops:
            try:
                future.get(timeout=max(0.0, deadline - time.monotonic()))
            except pykka.Timeout:
                # No brutal kill in pykka (killing a greenlet stops every actor).
                logger.error(
                    "supervisor {}: child {} did not stop within {}s; abandoned",
                    self.name,
                    child.spec.id,
                    child.spec.shutdown_timeout,
                )

    def _stop_all_children(self) -> None:
        children = list(self._children.values())
        self._stop_children(children[::-1])
        for child in children:
            self._drop_stash(child)
        self._children.clear()

    def _cancel_timers(self) -> None:
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
            self._sweep_timer = None
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    # -- exits and restarts ----------------------------------------------

    def _on_child_exited(self, report: ChildExited) -> None:
        child = self._children.get(report.child_id)
        if child is None or child.ref is None or child.ref.actor_urn != report.actor_urn:
            # A previous incarnation, or a stop this supervisor initiated ("shutdown").
            logger.debug("supervisor {}: ignored stale exit report {}", self.name, report)
            return
        self._child_down(child, report.reason, report.error)

    def _child_down(self, child: _Child, reason: ExitReason, error: str | None) -> None:
        """Apply restart type, intensity, strategy and backoff to a child that has exited."""
        child.ref = None
        cid = child.spec.id
        what = f"failed: {error}" if reason == "failure" else f"exited ({reason})"
        if not _should_restart(child.spec.restart, reason):
            del self._children[cid]
            self._drop_stash(child)
            logger.info(
                "supervisor {}: child {} {}; not restarted ({})", self.name, cid, what, child.spec.restart.value
            )
            return
        if self._intensity_exceeded():
            self._give_up(cid, what)
            return

        now = time.monotonic()
        if now - child.started_at >= self._backoff_reset_after:
            child.backoff_n = 0  # it had been up long enough: start the backoff over
        delay = min(self._backoff_min * 2**child.backoff_n, self._backoff_max)
        delay *= 1 + random.uniform(0, BACKOFF_JITTER)  # noqa: S311 - jitter, not crypto
        child.backoff_n += 1

        group = self._restart_group(child)
        self._stop_children([c for c in reversed(group) if c is not child])
        for sibling in group:
            if sibling.spec.restart is Restart.TEMPORARY and sibling is not child:
                del self._children[sibling.spec.id]  # OTP: temporary siblings are dropped
                self._drop_stash(sibling)
        group = [c for c in group if c.spec.id in self._children]
        token = next(self._tokens)
        for member in group:
            member.pending = token  # supersedes any older timer this member waited for
        ids = tuple(c.spec.id for c in group)
        logger.warning(
            "supervisor {}: child {} {}; restarting {} in {:.3f}s",
            self.name,
            cid,
            what,
            ", ".join(ids) if len(ids) <= 5 else f"{ids[0]} and {len(ids) - 1} more",  # noqa: PLR2004
            delay,
        )
        self._timers[token] = send_after(self.actor_ref, delay, _RestartChild(ids, token))

    def _restart_group(self, child: _Child) -> list[_Child]:
        """The children the strategy restarts for `child`, in start order."""
        if self._strategy is Strategy.ONE_FOR_ONE:
            return [child]
        children = list(self._children.values())
        if self._strategy is Strategy.ONE_FOR_ALL:
            return children
        return children[children.index(child) :]

    def _intensity_exceeded(self) -> bool:
        now = time.monotonic()
        self._restarts.append(now)
        while now - self._restarts[0] > self._period:
            self._restarts.popleft()
        return len(self._restarts) > self._intensity

    def _on_restart_due(self, message: _RestartChild) -> None:
        self._timers.pop(message.token, None)
        for cid in message.child_ids:
            child = self._children.get(cid)
            if child is None or child.pending != message.token:
                continue  # stopped meanwhile, or waiting for a newer restart
            child.restart_count += 1
            try:
                self._spawn(child)
            except Exception as exc:  # noqa: BLE001 - a failed restart is a child failure
                logger.opt(exception=exc).error(
                    "supervisor {}: restart of child {} failed: {}", self.name, cid, describe(exc)
                )
                # The rest of this group still waits: the strategy regroups it.
                self._child_down(child, "failure", describe(exc))
                return
            logger.info(
                "supervisor {}: child {} restarted (restart #{})", self.name, cid, child.restart_count
            )

    def _sweep(self) -> None:
        """Check the next slice of children (SWEEP_SLICE): a full pass over 100,000 children every second
        stalled the hub; exits are reported by the children themselves, this is only the safety net, so a
        pass may span several intervals."""
        checked = 0
        while checked < SWEEP_SLICE:
            if not self._sweep_queue:
                if checked or not self._children:
                    return  # one pass ends here; the next sweep starts the next
                self._sweep_queue = deque(self._children)
            cid = self._sweep_queue.popleft()
            child = self._children.get(cid)
            if child is None:
                continue  # stopped or dropped since the pass began
            checked += 1
            if child.ref is None or child.ref.is_alive():
                child.suspect = False
                continue
            if not child.suspect:
                # Its exit report may still be on the way (teardown can yield):
                # give it until the next pass reaches it.
                child.suspect = True
                continue
            logger.error(
                "supervisor {}: child {} is dead but never reported its exit", self.name, child.spec.id
            )
            self._child_down(child, "failure", "died without reporting its exit")
            if self._gave_up:
                return

    def _give_up(self, cid: str, what: str) -> None:
        self._gave_up = True
        reason = (
            f"supervisor {self.name} gave up: {len(self._restarts)} restarts in {self._period}s "
            f"(last: child {cid} {what}); escalating"
        )
        if self._supervisor is None:
            logger.critical(reason)
        else:
            logger.error(reason)  # the parent decides; its own policy may recover
        self._cancel_timers()
        self._stop_all_children()
        if self._supervisor is not None:
            self._report_exit("failure", reason)
        elif self._on_escalate is not None:
            try:
                self._on_escalate(reason)
            except Exception as exc:  # noqa: BLE001 - the supervisor must still stop
                logger.opt(exception=exc).error("supervisor {}: on_escalate failed", self.name)
        self.stop()

    # -- stash -----------------------------------------------------------

    def _stash(self, child: _Child, message: Any) -> bool:
        if child.stash is None:
            child.stash = deque()
        if len(child.stash) >= self._stash_limit:
            child.stash_dropped += 1
            if child.stash_dropped == 1:  # one line per backoff, not one per message
                logger.warning(
                    "supervisor {}: stash of child {} is full ({}); dropping messages",
                    self.name,
                    child.spec.id,
                    self._stash_limit,
                )
            return False
        child.stash.append(message)
        return True

    def _flush_stash(self, child: _Child) -> None:
        if child.stash is None and not child.stash_dropped:
            return  # nothing ever waited (every order actor's start)
        delivered = 0
        while child.stash and child.ref is not None:
            try:
                child.ref.tell(child.stash[0])
            except pykka.ActorDeadError:
                break  # died already: keep the rest for the next incarnation
            child.stash.popleft()
            delivered += 1
        if not child.stash:
            child.stash = None
        if delivered or child.stash_dropped:
            logger.info(
                "supervisor {}: child {} got {} stashed messages ({} dropped)",
                self.name,
                child.spec.id,
                delivered,
                child.stash_dropped,
            )
        child.stash_dropped = 0

    def _drop_stash(self, child: _Child) -> None:
        if child.stash:
            logger.warning(
                "supervisor {}: {} stashed messages for child {} dropped (child gone)",
                self.name,
                len(child.stash),
                child.spec.id,
            )
            child.stash.clear()


def _should_restart(restart: Restart, reason: ExitReason) -> bool:
    if restart is Restart.PERMANENT:
        return True
    if restart is Restart.TRANSIENT:
        return reason == "failure"
    return False


class _PykkaToLoguru(logging.Handler):
    """Forwards stdlib records (of logger "pykka") to loguru, traceback included."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        exc_info = record.exc_info if record.exc_info and record.exc_info[0] else None
        logger.opt(exception=exc_info).log(level, "pykka: {}", record.getMessage())


def install_pykka_log_bridge(level: int = logging.WARNING) -> logging.Handler:
    """Make pykka's own log lines (actor crashes!) visible through loguru. Idempotent.

    pykka logs to stdlib logger "pykka", which has only a NullHandler, so an
    actor dying in a tell handler is otherwise silent (pykka#41, #187).
    """
    pykka_logger = logging.getLogger("pykka")
    for handler in pykka_logger.handlers:
        if isinstance(handler, _PykkaToLoguru):
            return handler
    handler = _PykkaToLoguru(level)
    pykka_logger.addHandler(handler)
    if pykka_logger.getEffectiveLevel() > level:
        pykka_logger.setLevel(level)
    return handler
