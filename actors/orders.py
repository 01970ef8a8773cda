"""OrderSupervisor: owns one OrderActor per order id (actors/order/actor.py) and delivers to them.

one_for_one over dynamic children keyed by order id (O(1), no registry scans). It also carries operator
commands from the database to the orders' actors: each pending command is delivered until its actor
records an outcome (a crash in between only delays it; every command is idempotent).
"""
from __future__ import annotations

import dataclasses
import gc
import json
import time

import pykka
from loguru import logger

from actors.order.actor import OrderActor
from actors.protocol import (DeliverPayments, ExchangeOrderEvents, MovementSettled, OperatorCommand, OrdersPaid,
                             PaymentsApplied, PaymentsArrived, PollCommands, RecoverOrders, ReturnArrived)
from actors.supervisor import ChildSpec, Restart, Strategy, Supervisor
from actors.timers import send_every
from domain.states import FINAL_STATES, OrderState
from storage import commands, ingest, repo, strategy_seed

REDELIVER_AFTER = 30.0  # seconds: a command still without an outcome is delivered again (its actor may have died)
RUNNING_STATES = (OrderState.RUNNING, OrderState.PAUSED)  # quoting (or holding funds) on an exchange
RECOVERY_BATCH = 500    # order actors started per message while recovering (other messages interleave)

__all__ = ["OrderActor", "OrderSupervisor"]


class _OrderStart:
    """An order actor's ``ChildSpec.start``: the first start hands the actor what the caller read (``seed``: view,
    recovered, has_pending, strategy_seed); a restart reads the database. (Four slots per order, not a closure
    and its cells.)"""

    __slots__ = ("_order_id", "_pair_id", "_seed", "_services")

    def __init__(self, services, order_id: str, pair_id: str, seed: tuple | None) -> None:
        self._services = services
        self._order_id = order_id
        self._pair_id = pair_id
        self._seed = seed

    def __call__(self, sup, child_id: str):
        seed, self._seed = self._seed, None
        if seed is None:
            return OrderActor.start(self._services, self._order_id, self._pair_id, supervisor=sup, child_id=child_id)
        view, recovered, has_pending, strategy_seed = seed
        return OrderActor.start(self._services, self._order_id, self._pair_id, supervisor=sup, child_id=child_id,
                                view=view, recovered=recovered, has_pending=has_pending, strategy_seed=strategy_seed)


class OrderSupervisor(Supervisor):
    def __init__(self, services, *, supervisor=None, child_id=None):
        sv = services.config.supervision
        super().__init__("orders", (), strategy=Strategy.ONE_FOR_ONE, intensity=sv.order_intensity,
                         period=sv.order_period, backoff_min=sv.backoff_min, backoff_max=sv.backoff_max,
                         supervisor=supervisor, child_id=child_id)
        self.services = services
        self._delivered: dict[int, float] = {}  # command id → when it was last delivered
        self._handlers = {
            DeliverPayments: self._deliver_payments,
            OrdersPaid: self._orders_paid,
            PollCommands: lambda message: self._run_commands(),
            MovementSettled: self._to_running_child,
            ExchangeOrderEvents: self._to_running_child,
            ReturnArrived: self._to_order,
            RecoverOrders: lambda message: self._recover_batch(),
        }
        self._cluster = services.cluster   # None: one instance, every order is ours
        if self._cluster is not None:
            from actors.cluster import AccountAcquired, AccountReleased, RemoteOrderEvent
            self._handlers.update({AccountAcquired: self._account_acquired, AccountReleased: self._account_released,
                                   RemoteOrderEvent: self._remote_event})
        self._lease_of: dict[str, str] = {}  # order id → the lease its actor was started under (cluster only)
        self._to_recover: list[tuple[str, str]] = []
        self._recovery_started = 0.0
        self._recovered = self._recovered_running = 0  # counted for the summary line
        self._froze = False  # the recovery froze its batches (gc.freeze) and has not thawed them yet

    def setup(self) -> None:
        """Start quickly whatever the number of orders: recovery continues after the tree is up."""
        super().setup()
        self._commands_timer = send_every(self.actor_ref, self.services.config.commands.poll_interval,
                                          PollCommands())
        commands.wake_on_queue(self._poll_commands_now)
        self._to_recover = [(order_id, pair_id) for order_id, pair_id
                            in repo.orders_to_recover([s.value for s in FINAL_STATES]) if self._owns(pair_id)]
        self._to_recover.reverse()  # popped from the end: oldest ids first
        self._recovery_started = time.monotonic()
        if self._to_recover:
            logger.info("orders: recovering {} orders from the database", len(self._to_recover))
            self.actor_ref.tell(RecoverOrders())

    def _recover_batch(self) -> None:
        """Start the next RECOVERY_BATCH order actors, each with its view from one bulk read (a few queries per
        batch, not one per order); one summary line when the last batch is done."""
        batch = [self._to_recover.pop() for _ in range(min(RECOVERY_BATCH, len(self._to_recover)))]
        batch = [(order_id, pair_id) for order_id, pair_id in batch if self.child_ref(order_id) is None]
        ids = [order_id for order_id, _ in batch]
        views = ingest.load_views(ids)
        pending = ingest.orders_waiting(ids)
        # the running orders' strategy inputs, for the batch at once (each would read its own: five statements)
        seeds = strategy_seed.load_seeds([order_id for order_id, view in views.items()
                                          if view.state is OrderState.RUNNING and not view.exit_requested])
        for order_id, pair_id in batch:
            view = views.get(order_id)
            if view is not None and view.state in RUNNING_STATES:
                self._recovered_running += 1
            # No row (snapshots routed to an order not created yet): the actor reads what there is.
            self._ensure(order_id, pair_id, view, recovered=True, has_pending=order_id in pending,
                         strategy_seed=seeds.get(order_id))
        self._recovered += len(batch)
        if self._to_recover:
            # What the batch built (100,000 actors, their views and seeds, live as long as their orders) is frozen
            # out of the collector's passes until the recovery is done: each young pass would walk it again on its
            # way to the old generation. Thawed at the end (a frozen cycle is never collected: an order that
            # finishes must be).
            gc.freeze()
            self._froze = True
            self.actor_ref.tell(RecoverOrders())
        else:
            if self._froze:   # (what system.tune_gc froze at the tree's start thaws with it: one more pass's worth)
                gc.unfreeze()
                self._froze = False
            logger.info("orders: recovery done, {} orders, {} running, in {:.1f} s", self._recovered,
                        self._recovered_running, time.monotonic() - self._recovery_started)
            self._recovered = self._recovered_running = 0

    def _owns(self, pair_id: str | None) -> bool:
        return self._cluster is None or self._cluster.owns_pair(pair_id)

    def _ensure(self, order_id: str, pair_id: str, view=None, *, recovered: bool = False,
                has_pending: bool | None = None, strategy_seed=None) -> None:
        """Start the order's actor unless it runs. `view`: the order as a commit just left it (or, `recovered`,
        as the recovery's bulk read found it), so the new actor need not read it back; `has_pending`: whether
        routed snapshots wait for it (None: it asks). Its first start only; a restart reads the database."""
        if self.child_ref(order_id) is not None:
            return
        services = self.services
        if self._cluster is not None:
            lease = self._cluster.lease_of_pair(pair_id)
            services = services.fenced(lease)
            self._lease_of[order_id] = lease
        seed = (view, recovered, has_pending, strategy_seed) if view is not None else None
        self.start_child(ChildSpec(order_id, _OrderStart(services, order_id, pair_id, seed), Restart.TRANSIENT))

    def _poll_commands_now(self) -> None:
        """A command was queued in this process (the HTTP API): carry it out without waiting for the poll."""
        try:
            self.actor_ref.tell(PollCommands())
        except pykka.ActorDeadError:
            commands.stop_waking(self._poll_commands_now)

    def teardown(self) -> None:
        commands.stop_waking(self._poll_commands_now)
        timer = getattr(self, "_commands_timer", None)
        if timer:
            timer.cancel()
        if self._froze:   # stopped mid-recovery: its actors stop too, and must be collectable
            gc.unfreeze()
            self._froze = False
        super().teardown()

    def handle_message(self, message):
        handler = self._handlers.get(type(message))
        if handler is None:
            return super().handle_message(message)
        handler(message)
        return None

    def _deliver_payments(self, message: DeliverPayments, *, remote: bool = False) -> None:
        if not self._owns(message.pair_id):
            if not remote:
                self._cluster.publish_to_order(message)
            return
        self._ensure(message.order_id, message.pair_id)
        snapshots = message.snapshots or tuple(repo.pending_snapshots_of(message.order_id))
        if snapshots:
            self.deliver(message.order_id, PaymentsArrived(snapshots))

    def _orders_paid(self, message: OrdersPaid) -> None:
        for applied in message.applied:
            if applied.view.state in FINAL_STATES:
                continue  # late payments to a final order were refunded by the same commit: nothing to act on
            if not self._owns(applied.pair_id):
                self._cluster.publish_to_order(applied)  # its actor runs on the instance owning its account
                continue
            self._ensure(applied.order_id, applied.pair_id, applied.view)
            self.deliver(applied.order_id, applied)

    def _to_running_child(self, message, *, remote: bool = False) -> None:
        """Events for orders whose actor runs; a stopped actor finds them in the database when it starts."""
        if self.child_ref(message.order_id) is not None:
            self.deliver(message.order_id, message)
        elif self._cluster is not None and not remote:
            self._cluster.publish_to_order(message)   # its actor may run on another instance

    def _to_order(self, message, *, remote: bool = False) -> None:
        view = repo.load_order(message.order_id)
        if view is not None and view.state not in FINAL_STATES:
            if not self._owns(view.pair_id):
                if not remote:
                    self._cluster.publish_to_order(message)
                return
            self._ensure(message.order_id, view.pair_id)
            self.deliver(message.order_id, message)

    # ------------------------------------------------------------ a cluster ([cluster]): accounts come and go

    def _account_acquired(self, message) -> None:
        """This instance owns the account now: its orders start and resume from the database (the gateway has
        reconciled the account before it was published)."""
        found = [(order_id, pair_id) for order_id, pair_id in repo.orders_to_recover([s.value for s in FINAL_STATES])
                 if self._cluster.lease_of_pair(pair_id) == message.lease and self.child_ref(order_id) is None]
        if found:
            logger.warning("orders: {} orders of {} resume on this instance", len(found), message.lease)
        if found and not self._to_recover:
            self._recovery_started = time.monotonic()
            self.actor_ref.tell(RecoverOrders())
        self._to_recover[:0] = reversed(found)

    def _account_released(self, message) -> int:
        """Stop (now, before the lease is given up) every order actor started under this lease."""
        gone = [order_id for order_id, lease in self._lease_of.items() if lease == message.lease]
        for order_id in gone:
            self.stop_child(order_id)
            self._lease_of.pop(order_id, None)
        self._to_recover = [(o, p) for o, p in self._to_recover if self._cluster.lease_of_pair(p) != message.lease]
        if gone:
            logger.warning("orders: {} orders of {} stopped on this instance", len(gone), message.lease)
        return len(gone)

    def _remote_event(self, event) -> None:
        """Something for an order from another instance: delivered only if its actor is ours."""
        from actors.campaigns import CampaignJoined
        message = event.message
        if isinstance(message, DeliverPayments):
            view = None if message.pair_id else repo.load_order(message.order_id)
            pair_id = message.pair_id or (view.pair_id if view is not None else "")
            self._deliver_payments(DeliverPayments(message.order_id, pair_id, ()), remote=True)
        elif isinstance(message, (MovementSettled, CampaignJoined)):
            view = repo.load_order(message.order_id)
            if view is not None and self._owns(view.pair_id) and view.state not in FINAL_STATES:
                self._ensure(message.order_id, view.pair_id)
                self.deliver(message.order_id, message)
        elif isinstance(message, ReturnArrived):
            self._to_order(message, remote=True)
        elif isinstance(message, PaymentsApplied):
            view = repo.load_order(message.order_id)  # committed before it was published: as new as it gets
            if view is not None and self._owns(view.pair_id) and view.state not in FINAL_STATES:
                self._ensure(message.order_id, view.pair_id)
                self.deliver(message.order_id, dataclasses.replace(message, view=view))

    def _run_commands(self) -> None:
        now = time.time()
        for command in commands.pending():
            last = self._delivered.get(command.id)
            if last is not None and now - last < REDELIVER_AFTER:
                continue
            view = repo.load_order(command.order_id)
            if view is not None and not self._owns(view.pair_id):
                continue  # its owner's instance carries it out
            if (view is None or view.state in FINAL_STATES) and not self._owns(None):
                continue  # refused by the instance holding the ingest role
            if view is None or view.state in FINAL_STATES:
                result = "refused: " + ("no such order" if view is None else f"order is {view.state}")
                self.services.writer.run(commands.finish, command.id, result, self.services.clock())
                continue
            self._ensure(command.order_id, view.pair_id)
            try:
                args = json.loads(command.args or "{}")
            except ValueError:
                args = None
            if not isinstance(args, dict):
                self.services.writer.run(commands.finish, command.id, "refused: arguments are not a JSON object",
                                         self.services.clock())
                continue
            self._delivered[command.id] = now
            self.deliver(command.order_id, OperatorCommand(command.id, command.command, tuple(sorted(args.items()))))
        if len(self._delivered) > 10_000:
            self._delivered = {k: v for k, v in self._delivered.items() if now - v < REDELIVER_AFTER}
