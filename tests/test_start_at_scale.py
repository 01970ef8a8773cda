"""Start does not depend on how many orders exist: the tree is up at once and recovery continues after it,
in batches, with one summary line (not one per order)."""
from __future__ import annotations

import subprocess
import time
from decimal import Decimal

import pytest

from domain.payment import FeeRequirements
from sim.world import BTC, BTC_USDT_PAIR, ETH, build_world
from storage import repo
from storage.db import open_database
from storage.models import database_proxy
from tests.databases import database_url
from tests.support import running_mmflow, wait_until

ORDERS = 3000


@pytest.fixture
def world():
    w = build_world()
    yield w
    w.fake.stop()


def seed(db_path, n):
    db = open_database(database_url(db_path))
    fees = FeeRequirements(BTC, Decimal("0.0001"), ETH, Decimal("0.002"), Decimal("0.1"))
    now = time.time()
    with db.atomic():
        for i in range(n):
            repo.create_order(f"{i:08x}-0000-4000-8000-000000000000", BTC_USDT_PAIR, fees, now, 600.0)
    db.close()
    database_proxy.initialize(None)


@pytest.mark.timeout(180)
def test_the_tree_is_up_before_a_large_recovery_ends(tmp_path, world):
    seed(tmp_path / "mmflow.db", ORDERS)
    from loguru import logger
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="INFO")
    try:
        with running_mmflow(tmp_path, world) as mm:
            orders = mm.services.refs["orders"]
            from actors.messages import WhichChildren
            # The tree answers at once; the orders are still being recovered batch by batch.
            first = len(orders.ask(WhichChildren(), timeout=30))
            wait_until(lambda: len(orders.ask(WhichChildren(), timeout=30)) == ORDERS, timeout=120,
                       interval=0.2, message="every order recovered")
            assert first <= ORDERS
            done = [line for line in lines if line.startswith("orders: recovery done")]
            assert len(done) == 1
            assert sum("recovered" in line or "recovering" in line for line in lines) <= 2
    finally:
        logger.remove(sink)


def _start_serve(tmp_path, world):
    """`run.py serve` on the world's config and the database in tmp_path: (process, its log file)."""
    from sim.world import dump_toml
    from tests.support import start_service

    raw = world.config_dict(database_url(tmp_path / "mmflow.db"), world.write_keystore(tmp_path / "keystore.json"))
    config_path = tmp_path / "mmflow.toml"
    config_path.write_text(dump_toml(raw))
    log_path = tmp_path / "service.log"
    return start_service(config_path, log_path), log_path


@pytest.mark.timeout(120)
def test_sigterm_while_still_starting_is_a_clean_stop(tmp_path, world):
    """An operator's SIGTERM during start (the tree is not up yet) is honoured once it is: exit 0, never -15."""
    import signal

    seed(tmp_path / "mmflow.db", 2000)   # a recovery that takes a moment
    proc, log_path = _start_serve(tmp_path, world)
    try:
        wait_until(lambda: log_path.exists() and log_path.read_text().strip(), timeout=60, interval=0.05,
                   message="the service has started logging")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log_path.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()


def _catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler for SIGTERM (the SigCgt mask in /proc/PID/status)."""
    import signal

    try:
        status = open(f"/proc/{pid}/status").read()
    except FileNotFoundError:
        return False
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught >> (signal.SIGTERM - 1) & 1)


@pytest.mark.timeout(120)
def test_sigterm_while_python_is_still_importing_is_a_clean_stop(tmp_path, world):
    """The earliest SIGTERM run.py can see — right after its first lines, long before the config is read, the
    tree exists or anything is logged — is remembered and honoured: exit 0, never -15."""
    import signal

    proc, log_path = _start_serve(tmp_path, world)
    try:
        wait_until(lambda: _catches_sigterm(proc.pid), timeout=60, interval=0.001,
                   message="run.py has installed its first SIGTERM handler")
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            code = "still running after 60 s"
        assert code == 0, log_path.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
