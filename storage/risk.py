"""Halts and account breakers (units and reads; domain/breakers.py decides when they trip)."""
from __future__ import annotations

from storage.models import Alert, TradingHalt

ALL = "all"


def halt(scope: str, kind: str, reason: str, now: float) -> bool:
    """Put a halt in force (idempotent per scope and kind). True if it is new."""
    exists = TradingHalt.select().where((TradingHalt.scope == scope) & (TradingHalt.kind == kind)
                                        & TradingHalt.lifted_at.is_null()).exists()
    if exists:
        return False
    TradingHalt.create(scope=scope, kind=kind, reason=reason, created_at=now)
    subject = scope if kind == "operator" else f"{scope}:{kind}"
    Alert.insert(kind=f"halt_{kind}", subject=subject, message=reason, created_at=now).on_conflict(
        conflict_target=[Alert.kind, Alert.subject],
        update={Alert.message: reason, Alert.created_at: now, Alert.resolved: False, Alert.acked_at: None}).execute()
    return True


def lift(scope: str, reason: str, now: float) -> int:
    """Lift every halt of this scope (an account's halts include its breaker). Returns how many."""
    n = (TradingHalt.update(lifted_at=now, lifted_reason=reason)
         .where((TradingHalt.scope == scope) & TradingHalt.lifted_at.is_null()).execute())
    Alert.update(resolved=True).where(Alert.kind.startswith("halt_") & ((Alert.subject == scope)
                                                                       | Alert.subject.startswith(f"{scope}:"))).execute()
    return n


def in_force() -> list[TradingHalt]:
    return list(TradingHalt.select().where(TradingHalt.lifted_at.is_null()).order_by(TradingHalt.created_at))


def halted(account: str) -> str | None:
    """Why quoting on this account is halted, or None."""
    for h in in_force():
        if h.scope in (ALL, account):
            return f"{'all accounts' if h.scope == ALL else 'account ' + account} halted ({h.kind}): {h.reason}"
    return None
