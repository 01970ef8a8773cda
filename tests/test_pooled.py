"""actors.pooled: an actor runs on a greenlet only while its mailbox has work, with pykka's semantics intact."""
from __future__ import annotations

import gc
import weakref
from typing import Any

import gevent
import greenlet
import pykka
import pytest

from actors.pooled import PooledActor
from actors.supervisor import ChildSpec, Supervisor
from tests.test_supervisor import Worker, live_ref, stop_all_actors, urns, wait_until  # noqa: F401 - the fixture


class Recorder(PooledActor):
    def __init__(self, log: list | None = None) -> None:
        super().__init__()
        self.log = [] if log is None else log
        self.inside = False

    def on_start(self) -> None:
        gevent.sleep(0.01)  # a slow start: messages sent meanwhile wait for it
        self.log.append("started")

    def on_stop(self) -> None:
        self.log.append("stopped")

    def on_receive(self, message: Any) -> Any:
        assert not self.inside, "two messages handled at once"
        self.inside = True
        try:
            if message == "dump":
                return list(self.log)
            if message == "boom":
                raise ValueError("boom")
            gevent.sleep(0)  # a handler that yields: other senders run meanwhile
            self.log.append(message)
            return message
        finally:
            self.inside = False

    def double(self, x: int) -> int:
        return 2 * x


class PooledWorker(PooledActor, Worker):
    """test_supervisor's Worker, pooled."""


def _live_greenlets() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, greenlet.greenlet) and not o.dead)


def test_messages_are_handled_after_on_start_in_order_one_at_a_time():
    ref = Recorder.start()
    senders = [gevent.spawn(lambda k=k: [ref.tell((k, i)) for i in range(50)]) for k in range(4)]
    gevent.joinall(senders)
    log = wait_until(lambda: (lambda got: got if len(got) == 201 else None)(ref.ask("dump")))
    assert log[0] == "started"
    for k in range(4):
        assert [i for kk, i in log[1:] if kk == k] == list(range(50))


def test_ask_proxy_and_an_exception_going_back_to_the_asker():
    ref = Recorder.start()
    assert ref.ask("hello", timeout=2) == "hello"
    assert ref.proxy().double(21).get(timeout=2) == 42
    with pytest.raises(ValueError, match="boom"):
        ref.ask("boom", timeout=2)
    assert ref.is_alive()  # an ask's exception is the asker's, as in pykka
    assert ref.ask("still here", timeout=2) == "still here"


def test_stop_handles_what_came_before_and_refuses_what_comes_after():
    log: list = []
    ref = Recorder.start(log)
    ref.tell("before")
    stopping = ref.stop(block=False)
    behind = ref.ask("behind", block=False)  # queued behind the stop: never handled
    assert stopping.get(timeout=2) is True
    with pytest.raises(pykka.ActorDeadError):
        behind.get(timeout=2)
    assert log == ["started", "before", "stopped"]
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("after")
    assert ref.stop() is False
    assert pykka.ActorRegistry.get_by_urn(ref.actor_urn) is None


def test_an_idle_actor_holds_no_greenlet_and_a_stopped_one_is_released():
    before = _live_greenlets()
    refs = [Recorder.start() for _ in range(200)]
    for ref in refs:
        ref.tell("work")
    wait_until(lambda: all(r.ask("dump", timeout=2) == ["started", "work"] for r in refs))
    gevent.sleep(0)  # the runs that answered the last asks end
    assert _live_greenlets() <= before + 2  # (+2: pykka/gevent helpers that may appear once, never per actor)
    assert all(r.actor_inbox.empty() and r.actor_inbox._queue is None for r in refs)

    actor = weakref.ref(refs[0]._actor_weakref())
    refs[0].stop()
    gc.collect()
    assert actor() is None  # the ref we still hold no longer keeps the stopped actor alive
    assert refs[1]._actor_weakref() is not None  # a live idle actor is kept by its mailbox
    for ref in refs[1:]:
        ref.stop(block=False)


def test_a_failing_pooled_child_is_restarted_by_its_supervisor():
    store: dict = {}
    spec = ChildSpec("w", lambda sup, c: PooledWorker.start(sup, c, store))
    sup = Supervisor.start("pooled", [spec], backoff_min=0.0, backoff_max=0.01, sweep_interval=None)
    first = live_ref(sup, "w")
    first.tell("incr")
    first.tell("crash")  # a tell handler fails: on_failure reports it, the supervisor restarts the child
    wait_until(lambda: not first.is_alive())
    second = live_ref(sup, "w", not_urn=first.actor_urn)
    assert second.ask("get", timeout=2) == 1  # setup() reloaded the durable count
    assert store["stops"] == ["w"]  # teardown() ran on the failure
    assert len(urns(store, "w")) == 2
    sup.stop()


def test_a_failing_setup_ends_the_actor_and_refuses_its_queued_asks():
    store: dict = {"fail_setup": {None: 1}}  # no supervisor: child_id None
    ref = PooledWorker.start(None, None, store)
    pending = ref.ask("get", block=False)
    with pytest.raises(pykka.ActorDeadError):
        pending.get(timeout=2)
    assert not ref.is_alive()
