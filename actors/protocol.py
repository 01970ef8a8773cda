"""Messages between mmflow's actors. Small, immutable, one purpose each."""
from __future__ import annotations

from dataclasses import dataclass

from domain.order_view import OrderView
from domain.routing import SnapshotFacts
from domain.tally import ApplyOutcome


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
class PaymentsApplied:
    """→ OrderActor: a committed ingest unit applied these payments to the order (one message per order and page)."""
    order_id: str
    pair_id: str
    outcomes: tuple[ApplyOutcome, ...]
    view: OrderView   # the order as that commit left it (its actor's own later commits may be newer)


@dataclass(frozen=True)
class OrdersPaid:
    """Poller → OrderSupervisor: start the actors of these orders if needed and tell each what was applied."""
    applied: tuple[PaymentsApplied, ...]


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
class OperatorCommand:
    """Operator (CLI, via the order_command table) → OrderActor: carry out one command and record its outcome
    ("done: …" / "refused: …") on the command row. Commands: pause, resume, exit, set-params, resolve.
    Delivered again after a crash until an outcome is recorded, so every command is idempotent."""
    command_id: int
    command: str
    args: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class AdvanceExit:
    """OrderActor → itself: take the next step of the way back (stopping, returning funds, settling)."""


@dataclass(frozen=True)
class ReturnArrived:
    """Router → OrderActor (via OrderSupervisor): a Mixin deposit was matched to one of this order's returns."""
    order_id: str
    request_id: str


@dataclass(frozen=True)
class CheckTopUp:
    """OrderActor → itself: evaluate the funds the owner added (debounced after the last one)."""


@dataclass(frozen=True)
class AdvanceTopUp:
    """OrderActor → itself: follow added funds on their way to the exchange."""


@dataclass(frozen=True)
class RecoverOrders:
    """OrderSupervisor → itself: start the next batch of order actors found in the database at start
    (recovery runs after the tree is up, a batch per message, so start time does not grow with the orders)."""


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
