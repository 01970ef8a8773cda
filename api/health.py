"""/readyz: the database answers, the actor tree is up and every exchange account is reconciled.

An exchange gateway publishes its account in ``services.exchanges`` only once its markets are loaded
and its open orders reconciled with the orders DB (actors/gateway.py ``_go_live``), so "reconciled" is
"published there"."""
from __future__ import annotations

from loguru import logger

TREE = ("store", "treasury", "exchanges", "campaigns", "orders", "router", "poller")


def _database_ok() -> str | None:
    from storage.models import SchemaVersion

    try:
        SchemaVersion._meta.database.execute_sql("SELECT 1").fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        logger.debug("readyz: database: {}: {}", type(exc).__name__, exc)
        return f"database unreachable ({type(exc).__name__})"
    return None


def readiness(ctx) -> tuple[bool, list[str], dict]:
    """(ready, reasons it is not, the checks as JSON)."""
    reasons: list[str] = []
    problem = _database_ok()
    if problem:
        reasons.append(problem)
    services = ctx.services
    refs = getattr(services, "refs", {}) or {}
    cluster = getattr(services, "cluster", None)
    # in a cluster ([cluster]) an instance runs only the roles and accounts it holds; the others run elsewhere
    tree = TREE if cluster is None else ("store", "exchanges", "orders", "cluster")
    down = [name for name in tree if name not in refs or not _alive(refs[name])]
    if services is None:
        reasons.append("the actor tree is not running in this process")
    elif down:
        reasons.append(f"actors not running: {', '.join(down)}")
    published = getattr(services, "exchanges", {}) or {}
    accounts = {a.account_id: a.account_id in published for a in ctx.config.exchanges
                if cluster is None or f"account:{a.account_id}" in cluster.held}
    waiting = sorted(a for a, ok in accounts.items() if not ok)
    if waiting:
        reasons.append(f"exchange accounts not reconciled yet: {', '.join(waiting)}")
    checks = {"database": problem is None, "tree": services is not None and not down, "accounts": accounts}
    return not reasons, reasons, checks


def _alive(ref) -> bool:
    try:
        return bool(ref.is_alive())
    except Exception:  # noqa: BLE001 - a ref that cannot say is not up
        return False
