"""The operator's channel to the running service (the database) and the alert list.

A command is a row written by the CLI; the service's OrderSupervisor delivers it to the order's actor,
which carries it out and writes the outcome ("done: …" / "refused: …"). The CLI waits (bounded) for
that outcome, so every command tells what happened. Reads and units only, no I/O.
"""
from __future__ import annotations

import json
import time

from domain.resolve import ResolveFacts
from domain.states import OrderState
from storage import exit_repo, repo
from storage.models import Alert, LedgerEntry, OrderCommand

COMMANDS = ("pause", "resume", "exit", "set-params", "resolve", "stop")

# Called after a command is queued in this process: the OrderSupervisor's "look now" (the HTTP API and the
# service share a process; without this a command waited for the next poll, [commands] poll_interval).
_in_process_wakes: list = []


def wake_on_queue(wake) -> None:
    """Call ``wake()`` (no arguments, must not block) whenever this process queues a command."""
    _in_process_wakes.append(wake)


def stop_waking(wake) -> None:
    if wake in _in_process_wakes:
        _in_process_wakes.remove(wake)


def queue(order_id: str, command: str, args: dict | None = None) -> int:
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}")
    command_id = OrderCommand.create(order_id=order_id, command=command, args=json.dumps(args or {}, sort_keys=True),
                                     created_at=time.time()).id
    _wake_the_owner()
    return command_id


def _wake_the_owner() -> None:
    """Tell this process's OrderSupervisor, and on PostgreSQL the instances of a cluster, at once (they also read
    pending commands every [commands] poll_interval)."""
    import peewee as pw

    for wake in tuple(_in_process_wakes):
        wake()

    from storage.cluster import BUS_CHANNEL
    from storage.models import database_proxy

    if isinstance(database_proxy.obj, pw.PostgresqlDatabase):
        database_proxy.execute_sql("SELECT pg_notify(%s, %s)", (BUS_CHANNEL, '{"type":"command"}'))


def pending(limit: int = 100) -> list[OrderCommand]:
    return list(OrderCommand.select().where(OrderCommand.processed_at.is_null())
                .order_by(OrderCommand.id).limit(limit))


def finish(command_id: int, result: str, now: float) -> bool:
    """Record the outcome once (a re-delivered command that already has one keeps it)."""
    return bool(OrderCommand.update(processed_at=now, result=result).where(
        (OrderCommand.id == command_id) & OrderCommand.processed_at.is_null()).execute())


def get(command_id: int) -> OrderCommand | None:
    return OrderCommand.get_or_none(OrderCommand.id == command_id)


def recent(order_id: str | None = None, limit: int = 50) -> list[OrderCommand]:
    query = OrderCommand.select().order_by(OrderCommand.id.desc()).limit(limit)
    if order_id:
        query = query.where(OrderCommand.order_id == order_id)
    return list(query)


def resolve_facts(order_id: str, exchange: str) -> ResolveFacts | None:
    view = repo.load_order(order_id)
    if view is None:
        return None
    movements = repo.order_movements(order_id)
    funded = any(m.kind == "withdrawal" and m.top_up_batch is None for m in movements)
    ledger_open = LedgerEntry.select().where((LedgerEntry.order_id == order_id)
                                             & LedgerEntry.ref.startswith("deposit:")).exists()
    returns = [m for m in movements if m.kind == "return"]
    holdings = ", ".join(f"{v} {k}" for k, v in sorted(repo.ledger_balances(order_id).items()) if v)
    return ResolveFacts(state=OrderState(view.state), exchange=exchange, funded=funded, ledger_open=ledger_open,
                        returns=bool(returns) or bool(exit_repo.dust_of(order_id)),
                        returns_arrived=all(m.state == "arrived" for m in returns), holdings=holdings)


# ---------------------------------------------------------------- alerts

def alerts(open_only: bool = False, limit: int = 200) -> list[Alert]:
    query = Alert.select().order_by(Alert.id.desc()).limit(limit)
    if open_only:
        query = query.where(Alert.resolved == False)  # noqa: E712
    return list(query)


def ack_alert(alert_id: int, now: float) -> Alert | None:
    row = Alert.get_or_none(Alert.id == alert_id)
    if row is None:
        return None
    Alert.update(resolved=True, acked_at=now).where(Alert.id == alert_id).execute()
    return Alert.get_by_id(alert_id)
