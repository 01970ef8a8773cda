"""Membership, leases and fencing in PostgreSQL — the cluster's only coordination engine.

Every lease operation is ONE statement on a connection of its own (autocommit, never the pool: a renewal must
not wait behind the group-commit writer, and LISTEN needs a session that stays). Times are the server's clock
(``clock_timestamp()``), so instances on several machines never compare their own clocks.

Fencing: a lease taken over gets ``epoch + 1``. A fenced writer (``FencedWriter``) runs, inside the unit's own
savepoint of the writer's transaction, ``SELECT … FROM cluster_lease WHERE name AND holder AND epoch FOR KEY
SHARE`` before the unit: a holder that lost the lease (an instance paused past its TTL, then woken) has its write
refused (``Fenced``). (name, epoch) is unique, so epoch is a key column: a takeover (``epoch + 1``) waits for a
write already checked to commit first, while a renewal (``expires_at`` only) never waits for one — the database
never holds writes of two holders of one lease interleaved, and a busy writer never delays a heartbeat.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from loguru import logger

from storage.models import database_proxy

NOW = "extract(epoch from clock_timestamp())"
BUS_CHANNEL = "mmflow_bus"   # NOTIFY channel between the instances of a cluster (actors/cluster.py)
LOCK_TIMEOUT_MS = 300


class Fenced(RuntimeError):  # noqa: N818 - reads as what happened
    """A write of an instance that no longer holds the lease it acts under; nothing was written."""


@dataclass(frozen=True)
class Fence:
    lease: str
    holder: str
    epoch: int


def check_fence(fence: Fence) -> None:
    """Inside a writer unit: refuse the unit unless ``fence`` is still the lease's current holder and epoch."""
    cursor = database_proxy.execute_sql(
        "SELECT 1 FROM cluster_lease WHERE name = %s AND holder = %s AND epoch = %s FOR KEY SHARE",
        (fence.lease, fence.holder, fence.epoch))
    if cursor.fetchone() is None:
        raise Fenced(f"{fence.holder} no longer holds {fence.lease} (epoch {fence.epoch}); write refused")


def _fenced_unit(fence: Fence, unit, args):
    check_fence(fence)
    return unit(*args)


class FencedWriter:
    """The group-commit writer, with every unit checked against one lease (see the module docstring)."""

    def __init__(self, services, fence: Fence) -> None:
        self._services = services   # the shared Services: its writer is replaced when the store restarts
        self.fence = fence

    @property
    def running(self) -> bool:
        return self._services.writer is not None and self._services.writer.running

    def submit(self, unit, *args):
        return self._services.writer.submit(_fenced_unit, self.fence, unit, args)

    def run(self, unit, *args, timeout: float | None = 60.0) -> Any:
        return self.submit(unit, *args).get(timeout=timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._services.writer, name)


class LeaseStore:
    """The membership and lease statements, on a dedicated autocommit connection (reopened when it breaks)."""

    def __init__(self, url: str, instance_id: str, ttl: float) -> None:
        self.url, self.instance_id, self.ttl = url, instance_id, ttl
        self._conn = None
        self._lock = threading.Lock()   # one statement at a time on the connection (greenlets share it)

    def _execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        import psycopg

        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    # a lease row locked by a batch of a frozen process must not stall the heartbeat: give up fast
                    self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5,
                                                 options=f"-c lock_timeout={LOCK_TIMEOUT_MS}")
                cursor = self._conn.execute(sql, params)
                return cursor.fetchall() if cursor.description else []
            except psycopg.errors.LockNotAvailable:
                raise   # the connection is fine; the row is busy
            except psycopg.Error:
                self.close_quietly()
                raise

    def close_quietly(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001, S110 - already broken
                pass

    # -- membership --------------------------------------------------------------------------------------

    def heartbeat(self, host: str, pid: int) -> float:
        """Join or renew; returns the server's time."""
        rows = self._execute(
            f"INSERT INTO cluster_member (instance_id, host, pid, started_at, heartbeat_at, expires_at) "
            f"VALUES (%s, %s, %s, {NOW}, {NOW}, {NOW} + %s) ON CONFLICT (instance_id) DO UPDATE SET "
            f"heartbeat_at = EXCLUDED.heartbeat_at, expires_at = EXCLUDED.expires_at, host = EXCLUDED.host, "
            f"pid = EXCLUDED.pid RETURNING heartbeat_at", (self.instance_id, host, pid, self.ttl))
        return rows[0][0]

    def live_members(self) -> list[str]:
        return [r[0] for r in self._execute(
            f"SELECT instance_id FROM cluster_member WHERE expires_at > {NOW} ORDER BY instance_id")]

    def leave(self) -> None:
        self._execute("DELETE FROM cluster_member WHERE instance_id = %s", (self.instance_id,))

    # -- leases ------------------------------------------------------------------------------------------

    def acquire(self, name: str) -> int | None:
        """Take the lease if it is free, expired or already ours (a new incarnation of us); the new epoch."""
        self._execute("INSERT INTO cluster_lease (name, holder, epoch, expires_at, acquired_at) "
                      "VALUES (%s, NULL, 0, 0, 0) ON CONFLICT (name) DO NOTHING", (name,))
        import psycopg

        try:
            rows = self._execute(
                f"UPDATE cluster_lease SET holder = %s, epoch = epoch + 1, expires_at = {NOW} + %s, "
                f"acquired_at = {NOW} WHERE name = %s AND (holder IS NULL OR holder = %s OR expires_at < {NOW}) "
                f"RETURNING epoch", (self.instance_id, self.ttl, name, self.instance_id))
        except psycopg.errors.LockNotAvailable:
            # a write of the old holder is still in flight — or frozen with the process (SIGSTOP, a paused VM)
            # in a state the server does not time out: if that holder's membership has expired, end its sessions
            # (nothing of theirs is committed then) and take the lease at the next heartbeat
            ended = self.end_sessions_of_expired_holder(name)
            if ended:
                logger.warning("cluster: ended {} database session(s) of the expired holder of {}", ended, name)
            return None
        return rows[0][0] if rows else None

    def end_sessions_of_expired_holder(self, name: str) -> int:
        rows = self._execute(
            f"SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a JOIN cluster_lease l ON l.name = %s "
            f"JOIN cluster_member m ON m.instance_id = l.holder "
            f"WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND l.holder <> %s "
            f"AND l.expires_at < {NOW} AND m.expires_at < {NOW} "
            f"AND a.application_name = left('mmflow:' || m.instance_id || ':' || m.pid, 63)",
            (name, self.instance_id))
        return sum(1 for (ok,) in rows if ok)

    def renew(self, leases: dict[str, int]) -> dict[str, int]:
        """Extend each of these leases while this instance holds it; lease name → epoch of those it still holds.

        One row per statement, so a row that is busy (a takeover in progress) delays only itself."""
        import psycopg

        held = {}
        for name, epoch in dict(leases).items():
            try:
                rows = self._execute(f"UPDATE cluster_lease SET expires_at = {NOW} + %s WHERE name = %s "
                                     f"AND holder = %s RETURNING epoch", (self.ttl, name, self.instance_id))
            except psycopg.errors.LockNotAvailable:
                held[name] = epoch   # a write under it holds the row: still ours, renewed next heartbeat
                continue
            if rows:
                held[name] = rows[0][0]
        return held

    def release(self, name: str, epoch: int) -> None:
        """Give the lease up (its next holder need not wait for the TTL); only the epoch we hold."""
        self._execute("UPDATE cluster_lease SET holder = NULL, expires_at = 0 WHERE name = %s AND holder = %s "
                      "AND epoch = %s", (name, self.instance_id, epoch))

    def holders(self) -> dict[str, tuple[str | None, int, float]]:
        """lease name → (holder, epoch, seconds left) — for narration and tests."""
        return {r[0]: (r[1], r[2], r[3]) for r in self._execute(
            f"SELECT name, holder, epoch, expires_at - {NOW} FROM cluster_lease ORDER BY name")}

    # -- the bus (LISTEN/NOTIFY) -------------------------------------------------------------------------

    def notify(self, channel: str, payload: str) -> None:
        self._execute("SELECT pg_notify(%s, %s)", (channel, payload))
