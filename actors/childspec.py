"""How a supervisor starts and restarts a child (OTP's child spec, restart types and strategies).

Its own module so that the supervision messages (actors/messages.py) and the supervisor
(actors/supervisor.py) both use it without importing each other.
"""
from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka


class Restart(enum.Enum):
    """When a child that exited is restarted (OTP restart types)."""

    PERMANENT = "permanent"  # always
    TRANSIENT = "transient"  # only after reason "failure"
    TEMPORARY = "temporary"  # never, not even as a sibling under ONE_FOR_ALL / REST_FOR_ONE


class Strategy(enum.Enum):
    """Which children are restarted when one of them has to be (OTP strategies)."""

    ONE_FOR_ONE = "one_for_one"  # only that child
    ONE_FOR_ALL = "one_for_all"  # all children: stop the others in reverse order, start all in order
    REST_FOR_ONE = "rest_for_one"  # that child and the children started after it


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to start one child (slots: a supervisor of orders holds one per order).

    `start(supervisor_ref, child_id)` must start the child and return its ref;
    it is called again for every restart, so each call builds fresh state.
    """

    id: str
    start: Callable[[pykka.ActorRef[Any], str], pykka.ActorRef[Any]]
    restart: Restart = Restart.PERMANENT
    shutdown_timeout: float = 5.0
