"""The one writer: units of work from every actor, group-committed.

Measured on our machines (design.md §6): one writer batching into short
transactions sustains ~63–80k row updates/s, a connection per actor ~11k/s, and a
transaction held across a gevent yield freezes the whole hub. So every write in
mmflow is a *unit*: a plain function that runs DB statements and never yields.
The writer greenlet drains the queue, runs each unit in its own savepoint inside
one transaction, commits once, and only then resolves each caller's result — so
a caller that got its answer knows the write is durable.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import AsyncResult
from gevent.queue import Empty, Queue
from loguru import logger

from integrations import metrics

_STOP = object()

# Units begun by the writers of this process, counted as each starts (failed ones too): a caller whose unit finds it
# one past where its previous unit found it knows no other unit ran in between (storage.ingest.KnownViews).
units_begun = 0


class WriterStopped(RuntimeError):
    pass


class Writer:
    def __init__(self, db, *, batch_max: int = 2000, name: str = "writer", cluster_lock: int | None = None,
                 cluster_idle_ms: int = 5000):
        self.db = db
        # Several instances on one PostgreSQL ([cluster]): each batch first takes this transaction-level advisory
        # lock, so the group commits of all instances run one at a time — the single-writer order every unit was
        # written for (a unit reads, then writes: two writers interleaved could lose an update or deadlock).
        # A process frozen inside its batch (SIGSTOP, a VM paused) must not hold that lock forever: the server ends
        # a transaction idle this long (nothing of it is committed; the process is fenced when it wakes up).
        self.cluster_lock = cluster_lock
        self.cluster_idle_ms = int(cluster_idle_ms)
        self.batch_max = batch_max
        self.name = name
        self._queue: Queue = Queue()
        self._greenlet: gevent.Greenlet | None = None
        self._stopping = False
        self.batches = 0
        self.units = 0

    def start(self) -> Writer:
        self._greenlet = gevent.spawn(self._loop)
        return self

    @property
    def running(self) -> bool:
        return self._greenlet is not None and not self._greenlet.dead and not self._stopping

    def submit(self, unit: Callable[..., Any], *args: Any) -> AsyncResult:
        """Queue a unit; the AsyncResult resolves after the batch holding it commits."""
        result = AsyncResult()
        if not self.running:
            result.set_exception(WriterStopped(f"{self.name} is not running"))
            return result
        self._queue.put((unit, args, result))
        return result

    def run(self, unit: Callable[..., Any], *args: Any, timeout: float | None = 60.0) -> Any:
        """Submit and wait for durability; re-raises the unit's exception."""
        return self.submit(unit, *args).get(timeout=timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Flush what is queued, then stop."""
        if self._greenlet is None:
            return
        self._stopping = True
        self._queue.put(_STOP)
        self._greenlet.join(timeout=timeout)
        if not self._greenlet.dead:
            logger.error("{} did not flush within {}s; killing it", self.name, timeout)
            self._greenlet.kill(block=False)
        self._greenlet = None

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop_after = False
            while len(batch) < self.batch_max:
                try:
                    item = self._queue.get_nowait()
                except Empty:
                    break
                if item is _STOP:
                    stop_after = True
                    break
                batch.append(item)
            self._commit(batch)
            if stop_after:
                return

    def _commit(self, batch: list) -> None:
        global units_begun
        outcomes: list[tuple[bool, Any]] = []
        started = time.perf_counter()
        execute = self.db.execute_sql
        try:
            with self.db.atomic():
                if self.cluster_lock is not None:
                    execute(f"SET LOCAL idle_in_transaction_session_timeout = {self.cluster_idle_ms}")
                    execute("SELECT pg_advisory_xact_lock(%s)", (self.cluster_lock,))
                for unit, args, _ in batch:
                    # A savepoint per unit: one failing unit does not sink the batch. Plain SQL, because
                    # peewee's nested atomic() costs more than the statements of a typical unit.
                    execute("SAVEPOINT unit")
                    units_begun += 1
                    try:
                        value = unit(*args)
                    except Exception as exc:  # the unit's own failure goes back to its caller
                        execute("ROLLBACK TO SAVEPOINT unit")
                        execute("RELEASE SAVEPOINT unit")
                        outcomes.append((False, exc))
                    else:
                        execute("RELEASE SAVEPOINT unit")
                        outcomes.append((True, value))
        except Exception as exc:
            logger.exception("{}: commit of {} units failed: {}", self.name, len(batch), exc)
            for _, _, result in batch:
                result.set_exception(exc)
            return
        self.batches += 1
        self.units += len(batch)
        elapsed = time.perf_counter() - started
        metrics.writer_commit(len(batch), elapsed)
        if elapsed > 0.25:
            logger.warning("{}: slow commit, {} units in {:.0f} ms", self.name, len(batch), elapsed * 1000)
        for (_, _, result), (ok, value) in zip(batch, outcomes):
            if ok:
                result.set(value)
            else:
                result.set_exception(value)
