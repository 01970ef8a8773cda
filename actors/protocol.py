"""Messages between mmflow's actors. Small, immutable, one purpose each."""
from __future__ import annotations

from dataclasses import dataclass

from domain.routing import SnapshotFacts


@dataclass(frozen=True)
class PollNow:
    """Poller: fetch the next page of snapshots now."""


@dataclass(frozen=True)
class SnapshotsArrived:
    """Poller → Router: these snapshots were stored for the first time and need routing."""
    snapshots: tuple[SnapshotFacts, ...]


@dataclass(frozen=True)
class RouteUnrouted:
    """Router → itself: route snapshots stored but never routed (after a crash)."""


@dataclass(frozen=True)
class DeliverPayments:
    """Router → OrderSupervisor: start the order's actor if needed and hand it these payments."""
    order_id: str
    pair_id: str
    snapshots: tuple[SnapshotFacts, ...]


@dataclass(frozen=True)
class PaymentsArrived:
    """→ OrderActor: apply these payments (duplicates are no-ops)."""
    snapshots: tuple[SnapshotFacts, ...]


@dataclass(frozen=True)
class RetryPending:
    """OrderActor → itself: retry payments that could not be applied yet (e.g. fees unreadable)."""


@dataclass(frozen=True)
class CheckPayment:
    """OrderActor → itself: evaluate the tally (debounced after the last payment)."""


@dataclass(frozen=True)
class PaymentDeadline:
    """OrderActor → itself: the payment window is over; complete or refund."""


@dataclass(frozen=True)
class MovementsQueued:
    """→ Treasury: these outbox rows were written; send them."""
    request_ids: tuple[str, ...]


@dataclass(frozen=True)
class RetryMovement:
    """Treasury → itself: try an outbox row again after a transient failure."""
    request_id: str


@dataclass(frozen=True)
class MovementSettled:
    """Treasury → OrderActor (via OrderSupervisor): an outbox row of this order reached a final state."""
    order_id: str
    request_id: str
    state: str


@dataclass(frozen=True)
class HealthCheck:
    """Periodic self-check of an actor's invariants (e.g. the writer greenlet is alive)."""


@dataclass(frozen=True)
class AdvanceFunding:
    """OrderActor → itself: take the next step of moving the order's funds to the exchange (stages 5–6)."""


@dataclass(frozen=True)
class StrategyTick:
    """OrderActor → itself: one quoting cycle (stage 9), or one step of stopping."""


@dataclass(frozen=True)
class StopOrder:
    """Operator → OrderActor: cancel all of this order's exchange orders, verify, state `stopped`."""
    reason: str = "operator stop"
    command_id: int | None = None


@dataclass(frozen=True)
class SetStrategyParams:
    """Operator → OrderActor: validate and store per-order parameter overrides; a running order uses them."""
    overrides: tuple[tuple[str, str], ...]
    command_id: int | None = None


@dataclass(frozen=True)
class PollCommands:
    """OrderSupervisor → itself: pick up operator commands written to the database."""


@dataclass(frozen=True)
class AdvanceLifecycle:
    """OrderActor → itself: take the next step of stages 7–8 (campaign, start) or resume after a restart."""


@dataclass(frozen=True)
class ExchangeOrderEvents:
    """Gateway → OrderActor (via OrderSupervisor): these fills were recorded in the DB and these client orders
    changed state."""
    order_id: str
    fills: tuple
    changed: tuple[str, ...]
