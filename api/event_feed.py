"""EventFeed: one greenlet that tails the database and fans events out to the stream's subscribers.

The feed reads each source (api/stream_sources.py) every ``interval`` seconds from where it left off,
numbers the events (``seq``, 1, 2, … in the order published: sources in list order each round, rows in
id order within a source), encodes each event to JSON once, and offers the text to every subscriber
allowed to see it:

- a subscriber that sees everything (viewer, operator) gets every event, alerts included;
- a user's subscriber gets only the events of orders whose ``orders.user_id`` is that user; no alerts.

Each subscriber has a bounded queue (``queue_size`` messages). The feed never waits for a subscriber:
when a queue is full the subscriber is dropped — its queue emptied, its connection told to close with a
reason (``bye`` + close code 1008) and, if the connection is still stuck in a send ``close_grace``
seconds later, its socket is shut down. The actors never see any of this: they write to the database
as always, and the feed only reads.

The feed starts at the end of every source: a subscriber gets the events published after it subscribed
(its ``hello`` carries the current ``seq``). Nothing is replayed and ``seq`` restarts with the process: a
client that reconnects re-reads the state it shows over REST, then follows the stream.

The owner (the API server actor) calls ``start()`` and ``stop()``; ``running`` says whether the greenlet
is alive (a health check can restart the owner when it is not).
"""
from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import gevent
from gevent.event import Event as Signal
from loguru import logger

from api.stream_sources import Event, EventSource, default_sources

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY_VIOLATION = 1008
ERROR_BACKOFF_MAX = 5.0


def encode(message: dict[str, Any]) -> str:
    """Compact JSON text of one message (values the sources did not convert become strings)."""
    return json.dumps(message, separators=(",", ":"), default=str)


class Subscriber:
    """One connected client: what it may see, its bounded queue of encoded messages, and how it ends.

    The connection greenlet waits on ``ready``, takes messages with ``take()`` and, when ``closing`` is
    set, says goodbye with that code and reason. ``abort`` (set by the connection) ends a connection
    that cannot even do that (stuck sending to a client that does not read)."""

    def __init__(self, user_id: str | None, *, sees_all: bool, limit: int) -> None:
        self.user_id = user_id
        self.sees_all = sees_all
        self.limit = limit
        self.ready = Signal()
        self.closing: tuple[int, str] | None = None
        self.abort: Callable[[], None] | None = None
        self.finished = False
        self._items: deque[str] = deque()

    def offer(self, text: str) -> bool:
        """Queue one message; False (nothing queued) when the queue is full or the subscriber is closing."""
        if self.closing is not None or len(self._items) >= self.limit:
            return False
        self._items.append(text)
        self.ready.set()
        return True

    def take(self) -> str | None:
        """The oldest queued message, or None (and ``ready`` cleared) when there is none."""
        if self._items:
            return self._items.popleft()
        self.ready.clear()
        return None

    @property
    def queued(self) -> int:
        return len(self._items)

    def close(self, code: int, reason: str) -> None:
        """Ask the connection to end with ``code`` and ``reason``; queued messages are discarded."""
        if self.closing is None:
            self.closing = (code, reason)
        self._items.clear()
        self.ready.set()

    def force_close(self) -> None:
        """The connection did not end by itself in time: shut its socket (never blocks)."""
        if not self.finished and self.abort is not None:
            try:
                self.abort()
            except Exception as exc:  # noqa: BLE001 - a socket already gone is the outcome we wanted
                logger.debug("stream: abort of a subscriber failed: {}", exc)


class EventFeed:
    """Tails the database and fans events out; see the module docstring.

    ``sources``: default_sources() unless given.
    ``interval``: seconds between rounds when the last one found nothing more. ``queue_size``: messages a
    subscriber may have waiting before it is dropped. ``batch``: rows read per source per query.
    ``close_grace``: seconds a dropped subscriber has to close before its socket is shut."""

    def __init__(self, *, sources: Sequence[EventSource] | None = None, interval: float = 0.25,
                 queue_size: int = 256, batch: int = 500, close_grace: float = 2.0) -> None:
        if interval <= 0 or queue_size < 1 or batch < 1 or close_grace < 0:
            raise ValueError("EventFeed: interval and close_grace must be positive, queue_size and batch >= 1")
        self.sources = list(default_sources() if sources is None else sources)
        self.interval = interval
        self.queue_size = queue_size
        self.batch = batch
        self.close_grace = close_grace
        self.seq = 0
        self.dropped = 0
        self._cursors: list[Any] = []      # per source; None until it could be positioned
        self._failing: dict[str, int] = {}  # kind → reads failed in a row
        self._everything: set[Subscriber] = set()
        self._by_user: dict[str, set[Subscriber]] = {}
        self._greenlet: gevent.Greenlet | None = None
        self._stopping = Signal()
        # a subscriber that keeps up empties its queue each time the feed yields (publish: gevent.idle);
        # publishing at most half a queue between yields means only one that is really behind overflows
        self._chunk = max(1, queue_size // 2)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> EventFeed:
        """Position every source at its current end and start the greenlet. Never raises for the
        database: a source that cannot be read now is positioned by the greenlet once it can."""
        if self.running:
            return self
        self._cursors = [self._attempt(i, source.latest) for i, source in enumerate(self.sources)]
        self._stopping.clear()
        self._greenlet = gevent.spawn(self._loop)
        logger.info("stream: event feed started ({} sources, every {}s, queue {})", len(self.sources),
                    self.interval, self.queue_size)
        return self

    @property
    def running(self) -> bool:
        return self._greenlet is not None and not self._greenlet.dead

    def stop(self, timeout: float = 5.0) -> None:
        """Stop tailing and close every subscriber with ``bye`` (going away)."""
        self._stopping.set()
        if self._greenlet is not None:
            self._greenlet.join(timeout=timeout)
            if not self._greenlet.dead:
                self._greenlet.kill(block=False)
            self._greenlet = None
        for subscriber in list(self._everything) + [s for group in self._by_user.values() for s in group]:
            self._end(subscriber, CLOSE_GOING_AWAY, "server stopping")

    # ------------------------------------------------------------ subscribers

    def subscribe(self, user_id: str | None, *, sees_all: bool) -> Subscriber:
        """A new subscriber; it gets every event published from now on that it may see (a stopped feed's
        subscriber is closing from the start)."""
        if not sees_all and not user_id:
            raise ValueError("a subscriber that does not see everything needs a user id")
        subscriber = Subscriber(user_id, sees_all=sees_all, limit=self.queue_size)
        if self._stopping.is_set():   # between the feed's stop and the server's: goodbye at once
            subscriber.close(CLOSE_GOING_AWAY, "server stopping")
            return subscriber
        if sees_all:
            self._everything.add(subscriber)
        else:
            self._by_user.setdefault(user_id, set()).add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget a subscriber (its connection ended). Idempotent."""
        self._everything.discard(subscriber)
        group = self._by_user.get(subscriber.user_id)
        if group is not None:
            group.discard(subscriber)
            if not group:
                del self._by_user[subscriber.user_id]

    @property
    def unreadable(self) -> list[str]:
        """The kinds whose source failed its last read (for a health check)."""
        return sorted(self._failing)

    @property
    def subscriber_count(self) -> int:
        return len(self._everything) + sum(len(group) for group in self._by_user.values())

    def _end(self, subscriber: Subscriber, code: int, reason: str) -> None:
        self.unsubscribe(subscriber)
        subscriber.close(code, reason)
        gevent.spawn_later(self.close_grace, subscriber.force_close)

    # ------------------------------------------------------------ publishing

    def publish(self, events: Iterable[Event]) -> None:
        """Number, encode and offer events to the subscribers allowed to see them; drop full ones."""
        for n, event in enumerate(events, 1):
            self.seq += 1
            text = encode(Event(event.kind, self.seq, event.order_id, event.user_id, event.data).message())
            self._offer(text, self._everything)
            if event.kind != "alert" and event.user_id is not None:
                owners = self._by_user.get(event.user_id)
                if owners:
                    self._offer(text, owners)
            if n % self._chunk == 0:
                # Let every connection send what it has before offering more. Not sleep(0): that only
                # runs the greenlets already woken, in a pass that can go on for the hub's whole switch
                # interval without polling a socket — a connection waiting for its socket to drain (and a
                # client reading in this process) would not run, and the feed would overrun it.
                gevent.idle()

    def _offer(self, text: str, subscribers: set[Subscriber]) -> None:
        full = [s for s in subscribers if not s.offer(text)]
        for subscriber in full:
            self.dropped += 1
            reason = f"too slow: {subscriber.limit} events waiting"
            logger.info("stream: dropping a subscriber ({}) - {}", subscriber.user_id or "all orders", reason)
            self._end(subscriber, CLOSE_POLICY_VIOLATION, reason)

    def poll_once(self) -> bool:
        """Read each source once from its cursor and publish what was new; True if a source has more.

        A source that cannot be read (its table missing, the database away) is skipped this round —
        logged once until it works again — and the others go on."""
        more = False
        for i, source in enumerate(self.sources):
            if self._cursors[i] is None:
                self._cursors[i] = self._attempt(i, source.latest)
                continue
            read = self._attempt(i, source.read_after, self._cursors[i], self.batch)
            if read is None:
                continue
            events, self._cursors[i] = read
            if events:
                self.publish(events)
            more = more or len(events) >= self.batch
        return more

    def _attempt(self, i: int, read, *args):
        """``read(*args)``, or None when it fails (the source's failure streak counted and logged once)."""
        kind = self.sources[i].kind
        try:
            value = read(*args)
        except Exception as exc:  # noqa: BLE001 - the feed outlives a bad read (logged, retried)
            self._failing[kind] = self._failing.get(kind, 0) + 1
            if self._failing[kind] == 1:
                logger.warning("stream: {} events cannot be read, retrying: {}: {}", kind, type(exc).__name__, exc)
            return None
        if self._failing.pop(kind, 0):
            logger.info("stream: {} events can be read again", kind)
        return value

    def _loop(self) -> None:
        while not self._stopping.is_set():
            more = self.poll_once()
            if self.sources and len(self._failing) == len(self.sources):   # nothing readable: back off
                streak = min(self._failing.values())
                self._stopping.wait(min(self.interval * 2 ** streak, ERROR_BACKOFF_MAX))
            elif more:
                gevent.idle()
            else:
                self._stopping.wait(self.interval)
