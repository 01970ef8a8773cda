"""Outage: how an actor tells the operator that something it depends on cannot be reached.

Used by the ExchangeGateway (one per account: ``exchange_unreachable`` / ``exchange_auth_failed``,
subject = the account id) and the SnapshotPoller (``mixin_unreachable`` / ``mixin_auth_failed``,
subject = the Mixin API base URL). The actor keeps retrying with its own backoff and reports each
failed attempt here; the Outage turns that into what an operator can live with:

- one WARNING per retry window, not one per attempt: the first failure, then at most one line
  per ``warn_interval`` seconds (the actor's backoff cap, so at steady state one per attempt),
  each naming the subject, the reason (exception class and message, redacted), how long it has
  been failing and when the next attempt is; the other attempts are logged at DEBUG;
- one Alert row per kind and subject (unique index): inserted, or opened again if an earlier
  outage had been resolved or acknowledged; its message says what failed and since when;
- when it works again: one INFO line and every alert kind of this subject resolved (also alerts
  left open by a previous run that was stopped during an outage).

An alert that cannot be written (the store is restarting) is logged and tried again at the next
failure: reachability reporting never crashes the actor.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from loguru import logger

from integrations.redaction import redact
from storage.models import Alert

__all__ = ["Outage", "open_alert", "resolve_alerts"]


def open_alert(kind: str, subject: str, message: str, now: float) -> None:
    """Unit: the (kind, subject) alert is open with this message (inserted, or reopened if it was closed)."""
    Alert.insert(kind=kind, subject=subject, message=message, created_at=now).on_conflict_ignore().execute()
    Alert.update(resolved=False, acked_at=None, message=message, created_at=now).where(
        (Alert.kind == kind) & (Alert.subject == subject)
        & ((Alert.resolved == True) | Alert.acked_at.is_null(False))).execute()


def resolve_alerts(kinds: Sequence[str], subject: str) -> int:
    """Unit: the open alerts of these kinds for ``subject`` are resolved; how many were open."""
    return Alert.update(resolved=True).where(
        Alert.kind.in_(list(kinds)) & (Alert.subject == subject) & (Alert.resolved == False)).execute()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


class Outage:
    """Reachability of one dependency as seen by one actor (see the module docstring)."""

    def __init__(self, services: Any, *, subject: str, kinds: Sequence[str], what: str,
                 warn_interval: float, consequence: str = "", monotonic: Callable[[], float] = time.monotonic
                 ) -> None:
        self.services = services
        self.subject = subject
        self.kinds = tuple(kinds)
        self.what = what  # "exchange account binance", "Mixin API https://..."
        self.warn_interval = max(0.0, float(warn_interval))
        self.consequence = consequence  # "orders on it wait", appended to the first warning
        self._monotonic = monotonic
        self.since: float | None = None  # wall clock of the first failure of this outage
        self._since_mono = 0.0
        self.attempts = 0
        self.last_reason = ""
        self._warned_at: float | None = None
        self._seen: set[str] = set()  # kinds of this outage already said at WARNING/ERROR
        self._alerted: set[str] = set()  # kinds whose alert row is written
        self._checked_stale = False

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, reason: str, *, retry_in: float, kind: str | None = None, level: str = "WARNING",
               problem: str = "unreachable") -> None:
        """One more failed attempt: ``reason`` is what failed (class: message); next attempt in ``retry_in`` s."""
        kind = kind or self.kinds[0]
        reason = redact(reason)
        now_mono = self._monotonic()
        if self.since is None:
            self.since = self._wall()
            self._since_mono = now_mono
            self.attempts = 0
        self.attempts += 1
        self.last_reason = reason
        elapsed = now_mono - self._since_mono
        first = self._warned_at is None
        if first or now_mono - self._warned_at >= self.warn_interval or kind not in self._seen:
            self._warned_at = now_mono
            self._seen.add(kind)
            tail = f"; {self.consequence}" if first and self.consequence else ""
            logger.log(level, "{} {}: {}; {} failed attempt(s) in {:.0f}s, next in {:.1f}s{}", self.what, problem,
                       reason, self.attempts, elapsed, retry_in, tail)
        else:
            logger.debug("{} still {}: {} (attempt {}, next in {:.1f}s)", self.what, problem, reason, self.attempts,
                         retry_in)
        if kind not in self._alerted:
            message = f"{self.what} {problem} since {_iso(self.since)}: {reason}"
            if self._write(open_alert, kind, self.subject, message, self._wall()):
                self._alerted.add(kind)

    def recovered(self) -> bool:
        """It works (again). True if this ended an outage (logged at INFO, alerts resolved)."""
        if self.since is None:
            if not self._checked_stale:  # alerts a previous run left open
                self._checked_stale = bool(self._write(resolve_alerts, self.kinds, self.subject))
            return False
        logger.info("{} reachable again after {:.0f}s and {} failed attempt(s) (last: {})", self.what,
                    self._monotonic() - self._since_mono, self.attempts, self.last_reason)
        self._write(resolve_alerts, self.kinds, self.subject)
        self.since = None
        self.attempts = 0
        self._warned_at = None
        self._seen.clear()
        self._alerted.clear()
        self._checked_stale = True
        return True

    def _wall(self) -> float:
        clock = getattr(self.services, "clock", None)
        return clock() if callable(clock) else time.time()

    def _write(self, unit: Callable[..., Any], *args: Any) -> bool:
        writer = getattr(self.services, "writer", None)
        if writer is None:
            return False
        try:
            writer.run(unit, *args)
        except Exception as exc:  # noqa: BLE001 - never crash the actor over an alert row
            logger.warning("{}: could not write the {} alert ({}: {}); will try again", self.what,
                           ", ".join(self.kinds), type(exc).__name__, redact(str(exc)))
            return False
        return True
