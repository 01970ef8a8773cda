"""What every stage of an order shares: the outcome signals and the base class.

A stage is one part of an order's life (payment, funding, campaign, strategy, top-up, exit). It owns
its handlers, declared in `HANDLES` (message type → method name); the OrderActor builds one dispatch
table from all of its stages. A stage reads what is durable, does at most one kind of I/O per step and
records the result before the next one, so a restarted actor resumes it from whatever state the order
is in (`resume`) — the same path as a fresh start.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from domain.states import OrderState

if TYPE_CHECKING:
    from actors.order.actor import OrderActor


class Wait(Exception):
    """Nothing to do until later (a transient failure, or the world has not moved yet)."""

    def __init__(self, reason: str, delay: float | None = None):
        super().__init__(reason)
        self.delay = delay


class Stuck(Exception):
    """Needs an operator: the order goes to `attention` with this reason (everything known about the money)."""


class Stage:
    """Base of the order stages. `HANDLES` maps the message types this stage answers to method names."""

    HANDLES: ClassVar[dict[type, str]] = {}
    # Slots, in every stage class too: a running order holds most of its stages for its whole life.
    __slots__ = ("actor", "services")

    def __init__(self, actor: OrderActor):
        self.actor = actor
        self.services = actor.services

    # Convenience views of the actor's state.
    @property
    def order_id(self) -> str:
        return self.actor.order_id

    @property
    def view(self):
        return self.actor.view

    @property
    def state(self) -> OrderState | None:
        return self.actor.view.state if self.actor.view is not None else None

    @property
    def pair(self):
        return self.actor.pair

    @property
    def log(self):
        return self.actor.log

    def now(self) -> float:
        return self.services.clock()

    def write(self, unit, *args: Any):
        """Run a storage unit through the one writer and wait until it is durable."""
        return self.services.writer.run(unit, *args)

    @staticmethod
    def resumes(view) -> bool:
        """Whether resume() may have work for an order in this view (None: no row). The OrderActor builds a stage
        when it is first used: one not built yet is built for its resume only when this says so, so it must be
        True whenever resume() would do anything."""
        return True

    def resume(self) -> None:
        """Called once when the actor starts (fresh or after a crash): pick up this stage's work, if any."""
