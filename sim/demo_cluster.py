"""`python run.py demo --database postgresql://… --instances 3 [--kill-one]`: the demo world served by several
`serve` instances sharing one PostgreSQL database (a ``[cluster]`` table), one of them killed with SIGKILL in the
middle — and the narration says who took over what.

The demo gets a fresh database of its own on that server (``mmflow_demo_<random>``, dropped at the end unless
``--workdir`` keeps the run): its fake Mixin and fake exchange are new, so an older database would not add up.
Each instance logs to ``instance-N.log`` in the work directory; the narration follows the lease table.
"""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import gevent
from loguru import logger

ROOT = Path(__file__).resolve().parent.parent
READY_MARK = "mmflow running"
LEASE_TTL = 3.0
HEARTBEAT = 0.75


def fresh_database(server_url: str) -> str:
    """A new, empty database on the server of ``server_url`` (the demo's own)."""
    import psycopg

    name = f"mmflow_demo_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunparse(urlparse(server_url)._replace(path="/" + name))


def drop_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    admin = urlunparse(parsed._replace(path="/postgres"))
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{parsed.path.lstrip("/")}" WITH (FORCE)')
    except psycopg.Error as exc:
        logger.warning("demo: could not drop the demo database: {}", exc)


def cluster_table() -> dict:
    return {"lease_ttl": LEASE_TTL, "heartbeat": HEARTBEAT}


class DemoInstances:
    """N `serve` subprocesses on one config; narrates the leases as they move."""

    def __init__(self, work: Path, config_path: Path, count: int) -> None:
        self.work, self.config_path, self.count = work, config_path, count
        self.names = [f"demo-{i}" for i in range(1, count + 1)]
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs = {name: work / f"instance-{name}.log" for name in self.names}
        self.killed: str | None = None
        self._seen: dict[str, tuple[str | None, int]] = {}
        self._narrator = None

    def start(self, timeout: float = 90.0) -> None:
        for name in self.names:
            env = dict(os.environ, MMFLOW_CLUSTER_INSTANCE=name, MMFLOW_DEBUG_LOG="off")
            with open(self.logs[name], "ab") as log:
                self.procs[name] = subprocess.Popen(
                    [sys.executable, str(ROOT / "run.py"), "serve", "--config", str(self.config_path)],
                    cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        for name in self.names:
            while READY_MARK not in self.logs[name].read_text(errors="replace"):
                if self.procs[name].poll() is not None or time.monotonic() > deadline:
                    tail = self.logs[name].read_text(errors="replace")[-1500:]
                    raise RuntimeError(f"instance {name} did not start:\n{tail}")
                gevent.sleep(0.1)
        logger.info("demo: {} instances running on one PostgreSQL database (lease TTL {:g}s): {}", self.count,
                    LEASE_TTL, ", ".join(f"{n} (pid {self.procs[n].pid})" for n in self.names))
        self._narrator = gevent.spawn(self._narrate)

    def leases(self) -> dict[str, tuple[str | None, int]]:
        from storage.models import ClusterLease
        return {row.name: (row.holder, row.epoch) for row in ClusterLease.select()}

    def _narrate(self) -> None:
        while True:
            try:
                now = self.leases()
            except Exception:  # noqa: BLE001 - a read between two writes may fail; the next one tells
                now = self._seen
            for name, (holder, epoch) in sorted(now.items()):
                if self._seen.get(name) != (holder, epoch) and holder is not None:
                    before = self._seen.get(name, (None, 0))[0]
                    how = "took" if before is None or before == holder else f"took over from {before}"
                    logger.info("demo: cluster: {} {} {} (epoch {})", holder, how, name, epoch)
            self._seen = now
            gevent.sleep(0.25)

    def alive(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is None]

    def kill_one(self) -> str:
        """SIGKILL the instance holding the treasury (else the first alive one); say what it held."""
        leases = self.leases()
        victim = leases.get("role:treasury", (None, 0))[0]
        if victim not in self.alive():
            victim = self.alive()[0]
        held = sorted(name for name, (holder, _) in leases.items() if holder == victim)
        os.kill(self.procs[victim].pid, signal.SIGKILL)
        self.procs[victim].wait()
        self.killed = victim
        logger.warning("demo: kill -9 {} (pid {}), which held {}; the others take its leases once they expire "
                       "(TTL {:g}s), reconcile its exchange account and go on", victim, self.procs[victim].pid,
                       ", ".join(held) or "nothing", LEASE_TTL)
        return victim

    def stop(self) -> None:
        if self._narrator is not None:
            self._narrator.kill(block=False)
        for name in self.alive():
            self.procs[name].send_signal(signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                logger.error("demo: instance {} did not stop within 60 s; killed", name)
                proc.kill()
                proc.wait()
