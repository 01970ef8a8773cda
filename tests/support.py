"""Shared test helpers: a running mmflow against the fake Mixin, and polling with a deadline."""
from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from pathlib import Path

import gevent

from actors.system import Escalation, build_services, start_tree, stop_tree
from domain.config import parse_config
from sim.world import World
from storage import repo
from storage.models import database_proxy
from tests.databases import database_url, query  # noqa: F401 - the database helpers every test imports from here


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        gevent.sleep(interval)


class Running:
    def __init__(self, services, root, escalation):
        self.services = services
        self.root = root
        self.escalation = escalation

    def order(self, order_id):
        return repo.load_order(order_id)

    def state(self, order_id):
        view = repo.load_order(order_id)
        return None if view is None else view.state.value

    def passed(self, order_id, state) -> bool:
        return any(h.to_state == state for h in repo.order_history(order_id))

    def wait_passed(self, order_id, state, timeout=10.0):
        """Wait until the order has been in `state` (it may have moved on since)."""
        wait_until(lambda: self.passed(order_id, state), timeout, message=f"order {order_id} passed {state}")
        return self.order(order_id)

    def wait_state(self, order_id, state, timeout=10.0):
        wait_until(lambda: self.state(order_id) == state, timeout, message=f"order {order_id} -> {state}")
        return self.order(order_id)


@contextlib.contextmanager
def running_mmflow(tmp_path: Path, world: World, *, db_name="mmflow.db", **overrides):
    """mmflow's actor tree in this process against ``world``, on this test's database ``tmp_path / db_name``
    (tests/databases.py: SQLite, or PostgreSQL under MMFLOW_TEST_DATABASE_URL); the same name again is a restart."""
    keystore_path = world.write_keystore(tmp_path / "keystore.json")
    config = parse_config(world.config_dict(database_url(tmp_path / db_name), keystore_path, **overrides))
    services = build_services(config)
    escalation = Escalation(event=threading.Event())
    root = start_tree(services, escalation)
    try:
        yield Running(services, root, escalation)
    finally:
        stop_tree(root, timeout=10)
        services.mixin.close()
        services.db.close()
        database_proxy.initialize(None)


ROOT = Path(__file__).resolve().parent.parent


def start_service(config_path: Path, log_path: Path, env: dict | None = None,
                  crash_at: str | None = None) -> subprocess.Popen:
    """`python run.py serve` in a child process (logs appended to log_path), optionally armed to
    SIGKILL itself at a named crash point (integrations/crashpoints.py)."""
    import os
    import sys

    env = dict(os.environ if env is None else env)
    env.pop("MMFLOW_CRASH_AT", None)
    if crash_at:
        env["MMFLOW_CRASH_AT"] = crash_at
    return subprocess.Popen([sys.executable, "run.py", "serve", "--config", str(config_path)], cwd=ROOT, env=env,
                            stdout=open(log_path, "ab"), stderr=subprocess.STDOUT)


def reset_fake_venue(fx, keys, mids: dict[str, str]) -> None:
    """After each test on a module-wide fake exchange (any dialect): faults off, price process stopped, every
    resting order of the test keys cancelled, mids back; then check ccxt asked only for endpoints the fake
    serves, nothing raised inside the fake, and the matching engine's books and balances are consistent."""
    fx.reset_faults()
    fx.stop_price_process()
    for key, _secret in keys:
        for symbol in fx.engine.markets:
            fx.engine.cancel_all(key, symbol, now_ms=fx.now_ms())
    for symbol, mid in mids.items():
        fx.set_mid(symbol, mid)
    assert fx.unknown_paths == [], "ccxt asked for endpoints the fake does not serve"
    assert fx.price_process_errors == [] and fx.internal_errors == []
    fx.engine.check_invariants()


def bench_result(done: subprocess.CompletedProcess) -> dict:
    """The JSON line a harness in bench/ prints last, asserted free of violations (each one, from stderr, is
    shown when it is not)."""
    import json

    lines = done.stdout.strip().splitlines()
    assert lines, f"no output; stderr:\n{done.stderr[-4000:]}"
    result = json.loads(lines[-1])
    violations = [line for line in done.stderr.splitlines() if "VIOLATION" in line]
    assert result["violations"] == 0, "\n".join(violations) + f"\n{lines[-1]}"
    return result
