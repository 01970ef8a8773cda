"""Halts and account breakers (units and reads; domain/breakers.py decides when they trip)."""
from __future__ import annotations

import time

from storage.models import Alert, TradingHalt, database_proxy

ALL = "all"
HALTS_FRESH = 0.5  # seconds `halted` reuses what it read: every running order asks it every tick
_halts: list = [-HALTS_FRESH, [], None]  # [monotonic time read, [(scope, kind, reason)] in force, database]


def halt(scope: str, kind: str, reason: str, now: float) -> bool:
    """Put a halt in force (idempotent per scope and kind). True if it is new."""
    exists = TradingHalt.select().where((TradingHalt.scope == scope) & (TradingHalt.kind == kind)
                                        & TradingHalt.lifted_at.is_null()).exists()
    if exists:
        return False
    TradingHalt.create(scope=scope, kind=kind, reason=reason, created_at=now)
    _forget()
    subject = scope if kind == "operator" else f"{scope}:{kind}"
    Alert.insert(kind=f"halt_{kind}", subject=subject, message=reason, created_at=now).on_conflict(
        conflict_target=[Alert.kind, Alert.subject],
        update={Alert.message: reason, Alert.created_at: now, Alert.resolved: False, Alert.acked_at: None}).execute()
    return True


def lift(scope: str, reason: str, now: float) -> int:
    """Lift every halt of this scope (an account's halts include its breaker). Returns how many."""
    n = (TradingHalt.update(lifted_at=now, lifted_reason=reason)
         .where((TradingHalt.scope == scope) & TradingHalt.lifted_at.is_null()).execute())
    _forget()
    Alert.update(resolved=True).where(Alert.kind.startswith("halt_") & ((Alert.subject == scope)
                                                                       | Alert.subject.startswith(f"{scope}:"))).execute()
    return n


def in_force() -> list[TradingHalt]:
    return list(TradingHalt.select().where(TradingHalt.lifted_at.is_null()).order_by(TradingHalt.created_at))


def _forget() -> None:
    _halts[0] = -HALTS_FRESH


def halted(account: str) -> str | None:
    """Why quoting on this account is halted, or None. Read at most every HALTS_FRESH seconds per process (a
    halt this process writes is seen at once; one written elsewhere — the CLI, another instance — within that):
    50,000 running orders each asked the database every tick."""
    now, db = time.monotonic(), database_proxy.obj
    if now - _halts[0] >= HALTS_FRESH or _halts[2] is not db:
        rows = [(h.scope, h.kind, h.reason) for h in in_force()]
        _halts[0], _halts[1], _halts[2] = now, rows, db
    for scope, kind, reason in _halts[1]:
        if scope in (ALL, account):
            return f"{'all accounts' if scope == ALL else 'account ' + account} halted ({kind}): {reason}"
    return None
