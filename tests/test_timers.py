"""actors.timers: one scheduler (a heap and one greenlet) serves every timer of the process.

Delivery, cancel and dead actors are covered in test_supervisor.py; these tests cover what the heap adds:
order, being woken by an earlier deadline, no greenlet per timer, dropping cancelled entries, and a
scheduler that can no longer run (its greenlet ended, a forked child) being replaced with the timers kept.
"""
from __future__ import annotations

import gc
import os
from typing import Any

import gevent
import pykka

from actors import timers
from actors.timers import send_after, send_every
from tests.support import wait_until


class Collector(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self) -> None:
        super().__init__()
        self.got: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if message == "dump":
            return list(self.got)
        self.got.append(message)
        return None


def _greenlets() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, gevent.Greenlet) and not o.dead)


def test_same_deadline_fires_in_arming_order_and_an_earlier_timer_wakes_the_scheduler():
    ref = Collector.start()
    late = send_after(ref, 3600, "late")
    gevent.sleep(0)  # the scheduler now sleeps towards an hour from now
    for i in range(20):
        send_after(ref, 0, i)
    wait_until(lambda: len(ref.ask("dump")) == 20)
    assert ref.ask("dump") == list(range(20))
    assert late.active
    late.cancel()
    assert not late.active
    ref.stop()


def test_pending_timers_hold_no_greenlet_of_their_own():
    ref = Collector.start()
    send_after(ref, 0, "warm up")  # the scheduler exists
    wait_until(lambda: ref.ask("dump") == ["warm up"])
    before = _greenlets()
    pending = [send_after(ref, 3600, i) for i in range(500)] + [send_every(ref, 3600, "tick") for _ in range(500)]
    gevent.sleep(0)
    assert _greenlets() <= before
    for timer in pending:
        timer.cancel()
    ref.stop()


def test_cancelled_entries_are_dropped_and_hold_no_message():
    ref = Collector.start()
    message = object()
    pending = [send_after(ref, 3600, message) for _ in range(3 * timers._COMPACT_MIN)]
    for timer in pending:
        timer.cancel()
        timer.cancel()  # idempotent: counted once
    assert all(t._message is None and t._ref is None for t in pending)
    send_after(ref, 0, "after")  # the scheduler runs once more and compacts the heap
    wait_until(lambda: ref.ask("dump") == ["after"])
    wait_until(lambda: len(timers._current.heap) < timers._COMPACT_MIN)
    ref.stop()


def test_a_scheduler_that_cannot_run_is_replaced_and_keeps_its_timers():
    ref = Collector.start()
    kept = send_after(ref, 0.05, "kept")
    old = timers._current
    old.greenlet.kill()
    again = send_after(ref, 0, "again")
    assert timers._current is not old
    wait_until(lambda: sorted(ref.ask("dump")) == ["again", "kept"])
    assert not kept.active and not again.active
    ref.stop()


def test_a_forked_child_gets_a_scheduler_of_its_own():
    ref = Collector.start()
    send_after(ref, 0, "parent")
    wait_until(lambda: ref.ask("dump") == ["parent"])
    pid = os.fork()
    if pid == 0:  # the child: the parent's serving greenlet is a copy that never runs
        code = 1
        try:
            child = Collector.start()
            send_after(child, 0, "child")
            wait_until(lambda: child.ask("dump") == ["child"])
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    ref.stop()
