"""Commands to the running service, shared by the operator CLI and the HTTP API.

An order command (pause, resume, stop, exit, set-params, resolve) is a row in ``order_command``
(storage.commands.queue); the service's OrderSupervisor hands it to the order's actor, which carries it
out and writes the outcome ("done: …" / "refused: …"). ``submit`` queues and waits (bounded) for that
outcome. It works whether the service runs or not: a command not carried out within the wait stays
queued and is carried out when the service runs (status "pending").

Halts (storage.risk) and alert acknowledgements are written directly: the service reads them.

Outcome statuses: done, refused (by the service), pending (queued, no outcome yet), unknown_order,
bad_input (refused here, before anything was queued).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

__all__ = ["CommandOutcome", "HaltOutcome", "ResolvePlan", "account_problem", "ack_alert", "check_set_params",
           "halt", "lift_halt", "parse_params", "plan_resolve", "resolve", "set_params", "submit", "wait_for_outcome"]

POLL_INTERVAL = 0.2


@dataclass(frozen=True)
class CommandOutcome:
    status: str                 # done | refused | pending | unknown_order | bad_input
    message: str                # the service's outcome ("done: …", "refused: …") or what is wrong
    command_id: int | None = None
    order_id: str | None = None
    command: str | None = None
    state: str | None = None    # the order's state when the command was queued
    waited: float = 0.0         # how long the outcome was waited for (0: only queued)

    def as_dict(self) -> dict:
        return asdict(self)


def wait_for_outcome(command_id: int, timeout: float) -> str | None:
    """The command's recorded outcome, polling the database until ``timeout`` seconds have passed."""
    from storage import commands

    deadline = time.monotonic() + timeout
    while True:
        row = commands.get(command_id)
        if row is not None and row.result:
            return row.result
        if time.monotonic() >= deadline:
            return None
        time.sleep(POLL_INTERVAL)


def submit(order_id: str, command: str, args: dict | None, *, wait: float) -> CommandOutcome:
    """Queue ``command`` for the order and wait up to ``wait`` seconds (0: do not wait) for its outcome."""
    from storage import commands, repo

    view = repo.load_order(order_id)
    if view is None:
        from storage.archive_models import archived_entries

        entry = archived_entries([order_id]).get(order_id)
        if entry is not None:
            return CommandOutcome("bad_input", f"order {order_id} is {entry.state} and archived: nothing to "
                                  "command (`archive restore --order` brings it back)", order_id=order_id,
                                  command=command, state=entry.state)
        return CommandOutcome("unknown_order", f"no order {order_id}", order_id=order_id, command=command)
    command_id = commands.queue(order_id, command, args or {})
    base = {"command_id": command_id, "order_id": order_id, "command": command, "state": view.state.value}
    if wait <= 0:
        return CommandOutcome("pending", "queued", **base)
    outcome = wait_for_outcome(command_id, wait)
    if outcome is None:
        return CommandOutcome("pending", f"not carried out within {wait:g}s", waited=wait, **base)
    return CommandOutcome("done" if outcome.startswith("done") else "refused", outcome, waited=wait, **base)


# ---------------------------------------------------------------- set-params

def parse_params(items: list[str]) -> dict | str:
    """``key=value`` items as a dict, or what is wrong with them."""
    overrides: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            return f"{item!r} is not key=value"
        if not value:
            return f"{key}= has no value"
        if key in overrides:
            return f"{key} is given twice"
        overrides[key] = value
    return overrides


def check_set_params(config, order_id: str, overrides: dict) -> CommandOutcome | None:
    """Why these overrides cannot be set on the order (a bad_input / unknown_order outcome), or None."""
    from actors.order.strategy import effective_params, parse_end_at
    from domain.strategy.params import StrategyParamsError
    from storage import repo

    view = repo.load_order(order_id)
    if view is None:
        return CommandOutcome("unknown_order", f"no order {order_id}", order_id=order_id, command="set-params")
    checked = dict(overrides)
    if "end_at" in checked:
        try:
            parse_end_at(checked.pop("end_at"))
        except ValueError as exc:
            return CommandOutcome("bad_input", str(exc), order_id=order_id, command="set-params")
    if checked:
        pair = config.pair(view.pair_id)
        if pair is None:
            return CommandOutcome("bad_input", f"the order's pair {view.pair_id} is not configured",
                                  order_id=order_id, command="set-params")
        try:
            effective_params(config, pair, {**repo.strategy_overrides(order_id), **checked})
        except StrategyParamsError as exc:
            return CommandOutcome("bad_input", "; ".join(exc.problems), order_id=order_id, command="set-params")
    return None


def set_params(config, order_id: str, overrides: dict, *, wait: float) -> CommandOutcome:
    """Check the overrides against the pair's defaults, then queue set-params and wait."""
    problem = check_set_params(config, order_id, overrides)
    if problem is not None:
        return problem
    return submit(order_id, "set-params", overrides, wait=wait)


# ---------------------------------------------------------------- resolve

@dataclass(frozen=True)
class ResolvePlan:
    """What resolving an order in attention to ``to`` would do with the money (``effect``), or why it cannot
    (``problem``, with the legal targets in ``options`` when the order is in attention)."""
    order_id: str
    to: str
    found: bool
    state: str | None = None
    state_reason: str = ""
    effect: str | None = None
    problem: str | None = None
    options: dict = field(default_factory=dict)


def plan_resolve(config, order_id: str, to: str) -> ResolvePlan:
    from domain.resolve import ResolveRefused, check_resolve, resolve_options
    from storage import commands, repo

    view = repo.load_order(order_id)
    if view is None:
        return ResolvePlan(order_id, to, found=False, problem=f"no order {order_id}")
    pair = config.pair(view.pair_id)
    facts = commands.resolve_facts(order_id, pair.exchange if pair else "the exchange")
    base = {"order_id": order_id, "to": to, "found": True, "state": view.state.value,
            "state_reason": view.state_reason}
    try:
        effect = check_resolve(facts, to)
    except ResolveRefused as exc:
        options = ({s.value: what for s, what in resolve_options(facts).items()}
                   if view.state.value == "attention" else {})
        return ResolvePlan(**base, problem=str(exc), options=options)
    return ResolvePlan(**base, effect=effect)


def resolve(config, order_id: str, to: str, reason: str, *, wait: float) -> tuple[ResolvePlan, CommandOutcome]:
    """Check the target, then queue the resolve (with its reason, recorded in the order's history) and wait."""
    plan = plan_resolve(config, order_id, to)
    if not plan.found:
        return plan, CommandOutcome("unknown_order", plan.problem or "", order_id=order_id, command="resolve")
    if plan.problem:
        return plan, CommandOutcome("bad_input", plan.problem, order_id=order_id, command="resolve")
    if not reason or not reason.strip():
        return plan, CommandOutcome("bad_input", "--reason is required: say why (it is recorded in the order's "
                                    "history)", order_id=order_id, command="resolve")
    return plan, submit(order_id, "resolve", {"to": to, "reason": reason.strip()}, wait=wait)


# ---------------------------------------------------------------- alerts and halts

def ack_alert(alert_id: int, now: float | None = None):
    """Acknowledge an alert; the row after it, or None if there is no such alert."""
    from storage import commands

    return commands.ack_alert(alert_id, time.time() if now is None else now)


@dataclass(frozen=True)
class HaltOutcome:
    status: str                 # done | bad_input
    scope: str                  # "all" or an account id
    changed: int = 0            # halts put in force (0 or 1) or lifted
    message: str = ""


def account_problem(config, account: str | None) -> str | None:
    """Why ``account`` names no configured exchange account (None when it does, or is not given: all)."""
    if account and config.exchange(account) is None:
        known = ", ".join(e.account_id for e in config.exchanges) or "none"
        return f"no exchange account {account!r} in the config (configured: {known})"
    return None


def _scope(config, account: str | None) -> HaltOutcome | str:
    from storage import risk

    problem = account_problem(config, account)
    if problem:
        return HaltOutcome("bad_input", account or "", message=problem)
    return account or risk.ALL


def halt(config, account: str | None, reason: str, now: float | None = None) -> HaltOutcome:
    """Stop quoting on every account (or one) until lifted; idempotent (changed 0 if already in force)."""
    from storage import risk

    scope = _scope(config, account)
    if isinstance(scope, HaltOutcome):
        return scope
    new = risk.halt(scope, "operator", reason or "halted by an operator", time.time() if now is None else now)
    return HaltOutcome("done", scope, int(new), "halted" if new else "already halted")


def lift_halt(config, account: str | None, reason: str, now: float | None = None) -> HaltOutcome:
    """Lift the halts of a scope (an account's include its rejection breaker)."""
    from storage import risk

    scope = _scope(config, account)
    if isinstance(scope, HaltOutcome):
        return scope
    n = risk.lift(scope, reason or "lifted by an operator", time.time() if now is None else now)
    return HaltOutcome("done", scope, n, f"{n} halt(s) lifted" if n else "no halt was in force")
