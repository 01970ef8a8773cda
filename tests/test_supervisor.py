"""Message-level tests of actors.supervisor and actors.timers (gevent-patched by conftest).

Children keep their durable state in a plain dict "store" passed to their
factory, standing in for the database: a new incarnation reloads it in setup().
Tests poll with `wait_until` instead of sleeping for fixed times.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import gevent
import pykka
import pytest
from loguru import logger
from pykka.messages import ProxyCall, ProxyGetAttr

from actors.messages import ChildExited, DeliverToChild, StartChild, StopChild, WhichChildren
from actors.supervisor import (
    ChildSpec,
    HandlerTimeout,
    Restart,
    Strategy,
    SupervisedActor,
    Supervisor,
    install_pykka_log_bridge,
)
from actors.timers import send_after, send_every

FAST = {"backoff_min": 0.005, "backoff_max": 0.02, "sweep_interval": None}


# -- helpers -------------------------------------------------------------


def wait_until(predicate, timeout: float = 3.0, interval: float = 0.002) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s: {predicate}")
        gevent.sleep(interval)


def child_ref(sup: pykka.ActorRef, cid: str) -> pykka.ActorRef | None:
    return sup.ask(ProxyCall(("child_ref",), (cid,), {}), timeout=2)


def children(sup: pykka.ActorRef) -> list[tuple[str, bool, int]]:
    return sup.ask(WhichChildren(), timeout=2)


def live_ref(sup: pykka.ActorRef, cid: str, not_urn: str | None = None) -> pykka.ActorRef:
    """Wait for a running incarnation of `cid` (other than `not_urn`) whose setup() is done."""

    def probe() -> pykka.ActorRef | None:
        ref = child_ref(sup, cid)
        if ref is None or ref.actor_urn == not_urn:
            return None
        try:  # answered only after setup() succeeded
            ref.ask(ProxyGetAttr(("actor_urn",)), timeout=2)
        except pykka.ActorDeadError:
            return None
        return ref

    return wait_until(probe)


class Worker(SupervisedActor):
    """Test child: counts "incr" messages into the store, crashes on request."""

    def __init__(self, supervisor, child_id, store: dict) -> None:
        super().__init__(supervisor, child_id)
        self.store = store
        self.count = 0

    def setup(self) -> None:
        s = self.store
        s.setdefault("attempts", []).append((self.child_id, time.monotonic()))
        if s.get("fail_setup", {}).get(self.child_id, 0) > 0:
            s["fail_setup"][self.child_id] -= 1
            msg = f"cannot start {self.child_id}"
            raise RuntimeError(msg)
        s.setdefault("starts", []).append((self.child_id, self.actor_urn))
        self.count = s.get(("count", self.child_id), 0)  # reload durable state

    def teardown(self) -> None:
        self.store.setdefault("stops", []).append(self.child_id)

    def on_receive(self, message: Any) -> Any:
        if message == "incr":
            self.count += 1
            self.store[("count", self.child_id)] = self.count
        elif message == "get":
            return self.count
        elif message == "crash":
            msg = f"{self.child_id} crashed on purpose"
            raise ValueError(msg)
        elif message == "stop":
            self.stop()
        elif message == "timeout":
            with gevent.Timeout(0.001):
                gevent.sleep(1)
        elif message == "vanish":
            self.actor_stopped.set()  # dies bypassing every hook: no exit report
        return None


def worker(cid: str, store: dict, **kw: Any) -> ChildSpec:
    return ChildSpec(cid, lambda sup, c: Worker.start(sup, c, store), **kw)


def urns(store: dict, cid: str) -> list[str]:
    return [urn for c, urn in store.get("starts", []) if c == cid]


@pytest.fixture(autouse=True)
def stop_all_actors():
    yield
    pykka.ActorRegistry.stop_all(timeout=5)
    gevent.sleep(0)
    leftovers = [ref for ref in pykka.ActorRegistry.get_all() if ref.is_alive()]
    for ref in pykka.ActorRegistry.get_all():
        pykka.ActorRegistry.unregister(ref)  # hook-bypassing deaths stay registered
    assert not leftovers, f"actors still alive after the test: {leftovers}"


@pytest.fixture
def logs():
    """Loguru records emitted during the test, as (level name, message, time.monotonic())."""
    records: list[tuple[str, str, float]] = []

    def sink(m: Any) -> None:
        records.append((m.record["level"].name, m.record["message"], time.monotonic()))

    sink_id = logger.add(sink, level="DEBUG")
    yield records
    logger.remove(sink_id)


# -- restarts ------------------------------------------------------------


def test_tell_failure_restarts_child_which_reloads_its_state():
    store: dict = {}
    sup = Supervisor.start("root", [worker("w", store)], **FAST)
    first = live_ref(sup, "w")
    for _ in range(3):
        first.tell("incr")
    assert first.ask("get", timeout=2) == 3

    first.tell("crash")

    second = live_ref(sup, "w", not_urn=first.actor_urn)
    assert not first.is_alive()
    assert second.ask("get", timeout=2) == 3  # state reloaded by setup()
    second.tell("incr")
    assert second.ask("get", timeout=2) == 4
    assert children(sup) == [("w", True, 1)]


def test_ask_failure_does_not_restart_child():
    store: dict = {}
    sup = Supervisor.start("root", [worker("w", store)], **FAST)
    ref = live_ref(sup, "w")
    with pytest.raises(ValueError, match="on purpose"):
        ref.ask("crash", timeout=2)
    assert ref.ask("get", timeout=2) == 0
    assert children(sup) == [("w", True, 0)]


def test_setup_failure_is_reported_and_restarted_with_exponential_backoff(logs):
    store: dict = {"fail_setup": {"w": 6}}
    sup = Supervisor.start(
        "root", [worker("w", store)], intensity=10, backoff_min=0.01, backoff_max=0.08, sweep_interval=None
    )
    ref = live_ref(sup, "w")
    assert ref.ask("get", timeout=2) == 0

    attempts = [t for cid, t in store["attempts"] if cid == "w"]
    assert len(attempts) == 7
    # The supervisor's "child w failed ...; restarting w in <delay>s" lines: one per failure.
    decided = [(float(m.rsplit(" in ", 1)[1].rstrip("s")), t)
               for _lvl, m, t in logs if m.startswith("supervisor root: child w failed: RuntimeError: cannot start w")]
    assert len(decided) == 6
    expected = [0.01, 0.02, 0.04, 0.08, 0.08, 0.08]  # min * 2**n, capped at max
    for (delay, t_decided), t_next, t_prev, exp in zip(decided, attempts[1:], attempts, expected):
        assert exp <= delay <= exp * 1.2 + 0.001, (decided, expected)  # jitter <= 20%
        # Measured: a timer never fires early, so attempt-to-attempt gaps grow
        # exponentially; the next attempt follows the decision by the delay, plus
        # scheduling slack (lenient: CI machines are loaded).
        assert t_next - t_prev >= exp * 0.95
        assert delay * 0.95 <= t_next - t_decided <= delay + 0.05
    assert children(sup) == [("w", True, 6)]


def test_backoff_resets_after_child_was_up_long_enough():
    store: dict = {}
    sup = Supervisor.start(
        "root", [worker("w", store)], intensity=10, backoff_min=0.1, backoff_max=0.8,
        backoff_reset_after=0.02, sweep_interval=None,
    )
    ref = live_ref(sup, "w")
    for _ in range(3):
        gevent.sleep(0.03)  # up longer than backoff_reset_after
        t0 = time.monotonic()
        ref.tell("crash")
        ref = live_ref(sup, "w", not_urn=ref.actor_urn)
        assert time.monotonic() - t0 < 0.19  # always the first step (0.1-0.12 s), never 0.2 / 0.4


def test_intensity_exceeded_stops_all_children_and_escalates_at_root(logs):
    store: dict = {"fail_setup": {"b": 100}}
    reasons: list[str] = []
    sup = Supervisor.start(
        "root", [worker("a", store), worker("b", store), worker("c", store)],
        intensity=2, period=5.0, on_escalate=reasons.append, **FAST,
    )
    wait_until(lambda: reasons)
    wait_until(lambda: not sup.is_alive())
    assert len(reasons) == 1
    assert "gave up: 3 restarts in 5.0s" in reasons[0]
    assert "child b failed: RuntimeError: cannot start b" in reasons[0]
    assert store["stops"] == ["c", "a"]  # reverse start order; b never got up
    assert not any(ref.is_alive() for ref in pykka.ActorRegistry.get_all())
    critical = [m for lvl, m, _t in logs if lvl == "CRITICAL"]
    assert critical == [reasons[0]]
    assert len([n for n, _ in store["attempts"] if n == "b"]) == 3  # no 4th start


def test_nested_supervisor_exceeding_intensity_is_restarted_by_parent(logs):
    store: dict = {"fail_setup": {"leaf": 3}}
    reasons: list[str] = []

    def inner(parent: pykka.ActorRef, cid: str) -> pykka.ActorRef:
        return Supervisor.start(cid, [worker("leaf", store)], intensity=1, supervisor=parent, child_id=cid, **FAST)

    root = Supervisor.start(
        # transient: only an exit with reason "failure" (the escalation) restarts it
        "root", [worker("sibling", store), ChildSpec("inner", inner, restart=Restart.TRANSIENT)],
        intensity=5, on_escalate=reasons.append, **FAST,
    )
    first_inner = child_ref(root, "inner")
    # inner: leaf fails twice -> 2 restarts > intensity 1 -> inner gives up, root restarts
    # inner; the new inner's leaf fails once more, is restarted and then stays up.
    second_inner = live_ref(root, "inner", not_urn=first_inner.actor_urn)
    leaf = live_ref(second_inner, "leaf")
    assert leaf.ask("get", timeout=2) == 0
    assert not first_inner.is_alive()
    assert children(root) == [("sibling", True, 0), ("inner", True, 1)]
    assert children(second_inner) == [("leaf", True, 1)]
    assert len(urns(store, "sibling")) == 1  # one_for_one: sibling untouched
    assert reasons == []
    assert any(m.startswith("supervisor root: child inner failed: supervisor inner gave up: 2 restarts")
               for _, m, _t in logs)


def test_transient_child_stopping_normally_is_not_restarted():
    store: dict = {}
    sup = Supervisor.start("root", [worker("t", store, restart=Restart.TRANSIENT)], **FAST)
    ref = live_ref(sup, "t")
    ref.tell("stop")
    wait_until(lambda: children(sup) == [])
    gevent.sleep(0.05)  # well past any backoff: a restart would have happened by now
    assert len(urns(store, "t")) == 1
    assert store["stops"] == ["t"]


def test_transient_child_that_fails_is_restarted():
    store: dict = {}
    sup = Supervisor.start("root", [worker("t", store, restart=Restart.TRANSIENT)], **FAST)
    ref = live_ref(sup, "t")
    ref.tell("crash")
    live_ref(sup, "t", not_urn=ref.actor_urn)
    assert children(sup) == [("t", True, 1)]


@pytest.mark.parametrize("how", ["crash", "stop"])
def test_temporary_child_is_never_restarted(how):
    store: dict = {}
    sup = Supervisor.start("root", [worker("tmp", store, restart=Restart.TEMPORARY)], **FAST)
    ref = live_ref(sup, "tmp")
    ref.tell(how)
    wait_until(lambda: children(sup) == [])
    gevent.sleep(0.05)
    assert len(urns(store, "tmp")) == 1


def test_permanent_child_stopping_normally_is_restarted():
    store: dict = {}
    sup = Supervisor.start("root", [worker("p", store)], **FAST)
    ref = live_ref(sup, "p")
    ref.tell("stop")
    live_ref(sup, "p", not_urn=ref.actor_urn)


# -- strategies ------------------------------------------------------------


def test_one_for_one_restarts_only_the_failed_child():
    store: dict = {}
    sup = Supervisor.start("root", [worker(c, store) for c in "abc"], **FAST)
    b = live_ref(sup, "b")
    b.tell("crash")
    live_ref(sup, "b", not_urn=b.actor_urn)
    assert [len(urns(store, c)) for c in "abc"] == [1, 2, 1]


def test_one_for_all_restarts_every_child_and_drops_temporary_siblings():
    store: dict = {}
    specs = [worker("a", store), worker("b", store), worker("tmp", store, restart=Restart.TEMPORARY),
             worker("c", store)]
    sup = Supervisor.start("root", specs, strategy=Strategy.ONE_FOR_ALL, **FAST)
    old = {c: live_ref(sup, c) for c in ("a", "b", "tmp", "c")}
    store["starts"].clear()

    old["b"].tell("crash")

    wait_until(lambda: [c for c, _ in store.get("starts", [])] == ["a", "b", "c"])
    # b's teardown ran on its failure; then the others were stopped in reverse order.
    assert store["stops"] == ["b", "c", "tmp", "a"]
    for c in "abc":
        assert live_ref(sup, c).actor_urn != old[c].actor_urn
    assert not old["tmp"].is_alive()
    assert children(sup) == [("a", True, 1), ("b", True, 1), ("c", True, 1)]


def test_rest_for_one_restarts_failed_child_and_later_siblings_only():
    store: dict = {}
    sup = Supervisor.start("root", [worker(c, store) for c in ("poller", "router", "orders")],
                           strategy=Strategy.REST_FOR_ONE, **FAST)
    old = {c: live_ref(sup, c) for c in ("poller", "router", "orders")}
    store["starts"].clear()

    old["router"].tell("crash")

    wait_until(lambda: [c for c, _ in store.get("starts", [])] == ["router", "orders"])
    assert store["stops"] == ["router", "orders"]  # the failed one's teardown, then the rest
    assert live_ref(sup, "poller").actor_urn == old["poller"].actor_urn
    for c in ("router", "orders"):
        assert live_ref(sup, c).actor_urn != old[c].actor_urn
    assert children(sup) == [("poller", True, 0), ("router", True, 1), ("orders", True, 1)]


def test_stale_report_from_previous_incarnation_is_ignored():
    store: dict = {}
    sup = Supervisor.start("root", [worker("w", store)], **FAST)
    ref = live_ref(sup, "w")
    sup.tell(ChildExited("w", "urn:uuid:not-the-current-one", "failure", "old"))
    assert children(sup) == [("w", True, 0)]
    assert child_ref(sup, "w") is ref


def test_supervisor_stop_stops_children_in_reverse_order():
    store: dict = {}
    sup = Supervisor.start("root", [worker(c, store) for c in "abc"], **FAST)
    assert [c for c, _alive, _n in children(sup)] == ["a", "b", "c"]
    assert sup.stop(timeout=5)
    assert store["stops"] == ["c", "b", "a"]


def test_failed_supervisor_setup_stops_children_already_started():
    store: dict = {}

    def broken(sup: pykka.ActorRef, cid: str) -> pykka.ActorRef:
        msg = "no config"
        raise LookupError(msg)

    class Recovering(Supervisor):
        def setup(self) -> None:
            super().setup()
            msg = "recovery query failed"
            raise RuntimeError(msg)

    # A child factory fails halfway through the list: later children never start.
    sup = Supervisor.start("root", [worker("a", store), ChildSpec("x", broken), worker("c", store)], **FAST)
    wait_until(lambda: not sup.is_alive())
    assert store["stops"] == ["a"]
    assert urns(store, "c") == []

    # A subclass fails after super().setup(): its children are stopped too.
    store.clear()
    sub = Recovering.start("orders", [worker("a", store), worker("b", store)], sweep_interval=0.01)
    wait_until(lambda: not sub.is_alive())
    wait_until(lambda: store.get("stops") == ["b", "a"])
    assert not any(ref.is_alive() for ref in pykka.ActorRegistry.get_all())


def test_child_that_does_not_stop_in_time_is_abandoned(logs):
    class Stubborn(SupervisedActor):
        def teardown(self) -> None:
            gevent.sleep(0.3)

    spec = ChildSpec("slow", lambda s, c: Stubborn.start(s, c), shutdown_timeout=0.02)
    sup = Supervisor.start("root", [spec], **FAST)
    t0 = time.monotonic()
    sup.stop(timeout=5)
    assert time.monotonic() - t0 < 0.2
    assert any("child slow did not stop within 0.02s" in m for _, m, _t in logs)


def test_sweep_restarts_child_that_died_without_reporting():
    store: dict = {}
    sup = Supervisor.start("root", [worker("w", store)], backoff_min=0.005, backoff_max=0.02,
                           sweep_interval=0.01)
    ref = live_ref(sup, "w")
    ref.tell("vanish")
    new = live_ref(sup, "w", not_urn=ref.actor_urn)
    assert new.ask("get", timeout=2) == 0


def test_sweep_checks_a_slice_per_interval_and_still_finds_the_dead(monkeypatch):
    """With more children than a sweep checks at once, a child that died without reporting is still found:
    each sweep takes the next slice, a pass spans several sweeps."""
    import actors.supervisor as supervisor_module

    monkeypatch.setattr(supervisor_module, "SWEEP_SLICE", 2)
    store: dict = {}
    sup = Supervisor.start("root", [worker(f"w{i}", store) for i in range(7)], backoff_min=0.005,
                           backoff_max=0.02, sweep_interval=0.01)
    ref = live_ref(sup, "w5")
    ref.tell("vanish")
    new = live_ref(sup, "w5", not_urn=ref.actor_urn)
    assert new.ask("get", timeout=2) == 0
    assert all(alive for _cid, alive, _n in children(sup))
    sup.stop(timeout=5)


# -- dynamic children, stash, StopChild --------------------------------------


def test_2000_dynamic_children_start_and_stop_quickly():
    store: dict = {}
    sup = Supervisor.start("orders", [], **FAST)
    t0 = time.monotonic()
    refs = {f"o{i}": sup.ask(StartChild(worker(f"o{i}", store)), timeout=5) for i in range(2000)}
    started = time.monotonic() - t0
    assert sup.ask(StartChild(worker("o7", store)), timeout=2) is refs["o7"]  # existing id
    assert all(r.ask("get", timeout=2) == 0 for r in list(refs.values())[::100])
    assert [c for c, _a, _n in children(sup)] == list(refs)  # start order

    refs["o42"].tell("crash")
    live_ref(sup, "o42", not_urn=refs["o42"].actor_urn)
    assert len(urns(store, "o41")) == 1

    for i in range(1000):
        assert sup.ask(StopChild(f"o{i}"), timeout=5) is True
    assert len(children(sup)) == 1000
    assert not refs["o0"].is_alive()

    t1 = time.monotonic()
    assert sup.stop(timeout=10)
    stopped = time.monotonic() - t1
    assert not any(r.is_alive() for r in refs.values())
    assert started < 5.0
    assert stopped < 5.0


def test_start_child_factory_error_goes_to_asker_and_supervisor_survives():
    def broken(sup, cid):
        msg = "no such order"
        raise LookupError(msg)

    sup = Supervisor.start("orders", [], **FAST)
    with pytest.raises(LookupError):
        sup.ask(StartChild(ChildSpec("x", broken)), timeout=2)
    assert children(sup) == []
    assert sup.is_alive()


def test_deliver_to_child_stashes_during_backoff_and_delivers_after_restart(logs):
    store: dict = {"fail_setup": {"w": 1}}
    sup = Supervisor.start("root", [worker("w", store)], backoff_min=0.1, backoff_max=0.2,
                           stash_limit=3, sweep_interval=None)
    wait_until(lambda: children(sup) == [("w", False, 0)])  # first setup failed, waiting
    for _ in range(4):
        sup.tell(DeliverToChild("w", "incr"))
    assert children(sup) == [("w", False, 0)]  # still in backoff while we delivered

    ref = live_ref(sup, "w")
    assert ref.ask("get", timeout=2) == 3  # stash_limit=3: the 4th was dropped
    sup.tell(DeliverToChild("w", "incr"))  # running child: forwarded directly
    assert wait_until(lambda: ref.ask("get", timeout=2) == 4)
    assert any("stash of child w is full" in m for _, m, _t in logs)

    sup.tell(DeliverToChild("nobody", "incr"))
    wait_until(lambda: any("unknown child nobody" in m for _, m, _t in logs))


def test_stop_child_stops_and_forgets_child():
    store: dict = {}
    sup = Supervisor.start("root", [worker("a", store), worker("b", store)], **FAST)
    b = live_ref(sup, "b")
    assert sup.ask(StopChild("b"), timeout=2) is True
    assert not b.is_alive()
    assert sup.ask(StopChild("b"), timeout=2) is False
    gevent.sleep(0.05)
    assert children(sup) == [("a", True, 0)]
    assert len(urns(store, "b")) == 1


# -- robustness ----------------------------------------------------------------


def test_gevent_timeout_escaping_a_handler_does_not_stop_other_actors():
    store: dict = {}

    class Bystander(pykka.ThreadingActor):
        use_daemon_thread = True

        def on_receive(self, message: Any) -> Any:
            return "still here"

    bystander = Bystander.start()
    sup = Supervisor.start("root", [worker("w", store), worker("other", store)], **FAST)
    ref = live_ref(sup, "w")
    other = live_ref(sup, "other")

    with pytest.raises(HandlerTimeout):  # ask path: the asker gets it, the actor lives
        ref.ask("timeout", timeout=2)
    assert ref.is_alive()

    ref.tell("timeout")  # tell path: an ordinary failure, restarted
    live_ref(sup, "w", not_urn=ref.actor_urn)
    assert bystander.ask("ping", timeout=2) == "still here"
    assert other.is_alive()
    assert sup.is_alive()


def test_subclass_handles_its_own_messages_with_child_helpers(logs):
    store: dict = {}

    class Orders(Supervisor):
        def handle_message(self, message: Any) -> Any:
            if isinstance(message, tuple) and message[0] == "order":
                oid = message[1]
                if self.child_ref(oid) is None:
                    self.start_child(worker(oid, store, restart=Restart.TRANSIENT))
                self.deliver(oid, "incr")
                return None
            return super().handle_message(message)

    sup = Orders.start("orders", [], **FAST)
    for _ in range(2):
        sup.tell(("order", "o1"))
    sup.tell(("order", "o2"))
    assert live_ref(sup, "o1").ask("get", timeout=2) == 2
    assert live_ref(sup, "o2").ask("get", timeout=2) == 1
    sup.tell("bogus")
    wait_until(lambda: any("unexpected message 'bogus'" in m for _, m, _t in logs))


def test_pykka_log_bridge_forwards_pykka_errors_to_loguru(logs):
    class Plain(pykka.ThreadingActor):
        use_daemon_thread = True

        def on_receive(self, message: Any) -> Any:
            raise KeyError(message)

    handler = install_pykka_log_bridge()
    try:
        assert install_pykka_log_bridge() is handler  # idempotent
        ref = Plain.start()
        ref.tell("boom")
        wait_until(lambda: not ref.is_alive())
    finally:
        logging.getLogger("pykka").removeHandler(handler)
    errors = [m for lvl, m, _t in logs if lvl == "ERROR" and m.startswith("pykka: Unhandled exception")]
    assert len(errors) == 1


# -- timers --------------------------------------------------------------------


class Collector(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self) -> None:
        super().__init__()
        self.got: list[tuple[Any, float]] = []

    def on_receive(self, message: Any) -> Any:
        if message == "dump":
            return list(self.got)
        self.got.append((message, time.monotonic()))
        return None


def test_send_after_delivers_once_after_delay():
    ref = Collector.start()
    t0 = time.monotonic()
    timer = send_after(ref, 0.03, "tick")
    got = wait_until(lambda: ref.ask("dump", timeout=2))
    assert [m for m, _ in got] == ["tick"]
    assert 0.028 <= got[0][1] - t0 < 0.2
    wait_until(lambda: not timer.active)
    soon = send_after(ref, 0, "now")
    wait_until(lambda: len(ref.ask("dump", timeout=2)) == 2)
    assert not soon.active


def test_send_after_cancel_and_dead_actor(monkeypatch):
    errors: list = []
    monkeypatch.setattr(gevent.get_hub(), "handle_error", lambda *args: errors.append(args))
    ref = Collector.start()
    timer = send_after(ref, 0.02, "never")
    timer.cancel()
    timer.cancel()  # idempotent
    ref2 = Collector.start()
    late = send_after(ref2, 0.01, "moot")
    ref2.stop()
    gevent.sleep(0.05)
    assert ref.ask("dump", timeout=2) == []
    assert not late.active
    assert errors == []  # ActorDeadError swallowed, not raised in the timer greenlet


def test_send_every_repeats_until_cancelled_or_actor_dead():
    ref = Collector.start()
    timer = send_every(ref, 0.01, "tick")
    wait_until(lambda: len(ref.ask("dump", timeout=2)) >= 3)
    timer.cancel()
    gevent.sleep(0)
    n = len(ref.ask("dump", timeout=2))
    gevent.sleep(0.04)
    assert len(ref.ask("dump", timeout=2)) == n
    times = [t for _, t in ref.ask("dump", timeout=2)]
    assert all(b - a >= 0.009 for a, b in zip(times, times[1:]))

    ref2 = Collector.start()
    timer2 = send_every(ref2, 0.01, "tick")
    ref2.stop()
    wait_until(lambda: not timer2.active)


def test_a_supervised_actor_is_built_as_pykka_builds_an_actor_but_for_its_urn():
    """SupervisedActor.__init__ repeats pykka's Actor.__init__ (pinned 4.5) with a cheaper URN: it must set what
    pykka's sets, and every URN in the process must stay unique and URN-shaped. A pykka upgrade that adds an
    attribute to Actor.__init__ fails here instead of in production."""
    import uuid

    plain = pykka.ThreadingActor()
    ours = [SupervisedActor(), SupervisedActor()]
    assert set(vars(plain)) <= set(vars(ours[0]))
    assert ours[0].actor_urn != ours[1].actor_urn
    for actor in ours:
        assert uuid.UUID(actor.actor_urn).urn == actor.actor_urn
        assert actor.actor_ref.actor_urn == actor.actor_urn
        assert not actor.actor_stopped.is_set()
