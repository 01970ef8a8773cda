"""Message types of the supervision protocol (see `actors.supervisor`).

Messages are frozen dataclasses: pykka passes them by reference between actors,
so they must not be mutated after sending.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from actors.childspec import ChildSpec

__all__ = ["ChildExited", "DeliverToChild", "ExitReason", "StartChild", "StopChild", "WhichChildren"]

ExitReason = Literal["failure", "normal", "shutdown"]


@dataclass(frozen=True)
class ChildExited:
    """Tell, child -> supervisor: the child incarnation `actor_urn` has exited.

    `reason` is "failure" (exception in a tell handler or in setup()), "normal"
    (it stopped itself) or "shutdown" (it was stopped by its supervisor).
    `error` is a one-line description of the exception, None for clean exits.
    A report whose `actor_urn` is not the current incarnation is ignored.
    """

    child_id: str
    actor_urn: str
    reason: ExitReason
    error: str | None = None


@dataclass(frozen=True)
class StartChild:
    """Ask: start a dynamic child from `spec`, appended to the start order.

    Replies with the child's ActorRef. If a child with that id already exists,
    replies with its current ref (None while it waits for a backoff restart)
    and starts nothing. An exception from the factory is raised to the asker.
    """

    spec: ChildSpec


@dataclass(frozen=True)
class StopChild:
    """Ask: stop child `child_id` (bounded by its shutdown_timeout) and forget it; no restart.

    Replies True if the child was known, False otherwise.
    """

    child_id: str


@dataclass(frozen=True)
class WhichChildren:
    """Ask: reply with [(child_id, alive, restart_count), ...] in start order."""


@dataclass(frozen=True)
class DeliverToChild:
    """Tell: forward `message` to child `child_id` (a tell).

    While the child waits for a backoff restart the message is stashed (up to
    the supervisor's stash_limit per child; overflow is logged and dropped) and
    delivered to the new incarnation, in order. Unknown ids are logged.
    """

    child_id: str
    message: Any
