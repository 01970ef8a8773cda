"""OrderSupervisor and one OrderActor per order id.

The OrderActor owns its order: the payment tally, the timers, the decision to
complete or refund. Its state lives in the database; memory only mirrors the
last commit, so a restarted actor loads the row and carries on — the same path
as a fresh start.
"""
from __future__ import annotations

from loguru import logger

from actors.funding import FUNDING_STATES, Funding, Stuck, Wait
from actors.protocol import (AdvanceFunding, CheckPayment, DeliverPayments, MovementSettled, MovementsQueued,
                             PaymentDeadline, PaymentsArrived, RetryPending)
from actors.supervisor import ChildSpec, Restart, Strategy, SupervisedActor, Supervisor
from actors.timers import send_after
from domain.payment import FeeUnavailable, PaymentStatus, evaluate_payment
from domain.routing import PaymentDecisionKind, SnapshotFacts, decide_payment
from domain.states import FINAL_STATES, OrderState
from integrations.mixin.errors import MixinError
from storage import repo


class OrderSupervisor(Supervisor):
    """one_for_one over dynamic OrderActors, keyed by order id (O(1), no registry scans)."""

    def __init__(self, services, *, supervisor=None, child_id=None):
        sv = services.config.supervision
        super().__init__("orders", (), strategy=Strategy.ONE_FOR_ONE, intensity=sv.order_intensity,
                         period=sv.order_period, backoff_min=sv.backoff_min, backoff_max=sv.backoff_max,
                         supervisor=supervisor, child_id=child_id)
        self.services = services

    def setup(self) -> None:
        super().setup()
        recovered = repo.orders_to_recover([s.value for s in FINAL_STATES])
        for order_id, pair_id in recovered:
            self._ensure(order_id, pair_id)
        if recovered:
            logger.info("orders: {} order actors recovered from the database", len(recovered))

    def _ensure(self, order_id: str, pair_id: str) -> None:
        if self.child_ref(order_id) is not None:
            return
        services = self.services
        spec = ChildSpec(
            id=order_id,
            start=lambda sup, cid: OrderActor.start(services, order_id, pair_id, supervisor=sup, child_id=cid),
            restart=Restart.TRANSIENT,
        )
        self.start_child(spec)

    def handle_message(self, message):
        if isinstance(message, DeliverPayments):
            self._ensure(message.order_id, message.pair_id)
            self.deliver(message.order_id, PaymentsArrived(message.snapshots))
        elif isinstance(message, MovementSettled):
            if self.child_ref(message.order_id) is not None:
                self.deliver(message.order_id, message)
        else:
            return super().handle_message(message)
        return None


class OrderActor(SupervisedActor):
    def __init__(self, services, order_id: str, pair_id: str, *, supervisor=None, child_id=None):
        super().__init__(supervisor=supervisor, child_id=child_id)
        self.services = services
        self.order_id = order_id
        self.pair_id = pair_id
        self.view: repo.OrderView | None = None
        self.pair = None
        self.log = logger.bind(order_id=order_id)
        self._check_timer = None
        self._deadline_timer = None
        self._retry_timer = None
        self._consumed: set[str] = set()  # snapshot ids applied or refunded: skip repeats without a DB unit
        self._funding_timer = None
        self._funding_note = ""
        self.funding = Funding(self)

    # ------------------------------------------------------------ lifecycle

    def setup(self) -> None:
        self.view = repo.load_order(self.order_id)
        if self.view is not None:
            self.pair_id = self.view.pair_id
        self.pair = self.services.config.pair(self.pair_id) if self.pair_id else None
        if self.view is not None and self.view.state in FINAL_STATES:
            self.stop()
            return
        if self.pair is None:
            self._pair_missing()
            return
        pending = repo.pending_snapshots_of(self.order_id)
        if pending:
            self.log.info("order {}: {} routed payments not applied yet; applying them", self.order_id, len(pending))
            self.actor_ref.tell(PaymentsArrived(tuple(pending)))
        self._arm_deadline()
        if self.view is not None and self.view.state is OrderState.PAYMENT_PENDING and self.view.user_id:
            self._arm_check(0)
        if self.view is not None and self.view.state in FUNDING_STATES:
            self.actor_ref.tell(AdvanceFunding())
        if self.view is not None and self.view.state is OrderState.REFUNDING:
            # Refunds may have been confirmed while this actor was down: look once at start.
            self.actor_ref.tell(MovementSettled(self.order_id, "", "recheck"))

    def teardown(self) -> None:
        for timer in (self._check_timer, self._deadline_timer, self._retry_timer, self._funding_timer):
            if timer:
                timer.cancel()

    def on_receive(self, message):
        if isinstance(message, PaymentsArrived):
            self._apply(message.snapshots)
        elif isinstance(message, RetryPending):
            self._retry_timer = None
            pending = repo.pending_snapshots_of(self.order_id)
            if pending:
                self._apply(tuple(pending))
        elif isinstance(message, CheckPayment):
            self._check(deadline=False)
        elif isinstance(message, PaymentDeadline):
            self._check(deadline=True)
        elif isinstance(message, MovementSettled):
            self._movement_settled(message)
        elif isinstance(message, AdvanceFunding):
            self._funding_timer = None
            self._advance_funding()
        else:
            self.log.warning("order {}: unexpected message {!r}", self.order_id, message)

    # ------------------------------------------------------------ payments

    def _pair_missing(self) -> None:
        reason = f"pair {self.pair_id or '?'} is not configured (removed from config?)"
        if self.view is not None and self.view.state is not OrderState.ATTENTION:
            self.view = self.services.writer.run(repo.set_order_state, self.order_id, OrderState.ATTENTION,
                                                 reason, self.services.clock())
        self.log.error("order {}: needs an operator: {}", self.order_id, reason)

    def _decide(self, view: repo.OrderView, facts: SnapshotFacts):
        return decide_payment(state=view.state, owner_id=view.user_id, facts=facts, pair=self.pair,
                              fees=view.fees)

    def _apply(self, snapshots: tuple[SnapshotFacts, ...]) -> None:
        if self.pair is None:
            return
        snapshots = tuple(f for f in snapshots if f.snapshot_id not in self._consumed)
        if not snapshots:
            return
        fees = None
        if self.view is None:
            try:
                fees = self.services.fee_oracle.requirements(self.pair)
            except MixinError as exc:
                delay = self.services.config.payments.fee_retry_delay
                self.log.warning("order {}: cannot read withdrawal fees from Mixin ({}); payments kept, "
                                 "retrying in {}s", self.order_id, exc, delay)
                if self._retry_timer is None:
                    self._retry_timer = send_after(self.actor_ref, delay, RetryPending())
                return
            except FeeUnavailable as exc:
                self._refund_unapplied(snapshots, "fee_unavailable", str(exc))
                return
        now = self.services.clock()
        timeout = self.services.config.payments.timeout
        ordered = sorted(snapshots, key=lambda f: (f.created_ns, f.snapshot_id))
        outcomes = self.services.writer.run(self._apply_unit, ordered, fees, timeout, now)
        refunds = []
        accepted = False
        for outcome in outcomes:
            self._consumed.add(outcome.snapshot_id)
            if outcome.result == "duplicate":
                continue
            if outcome.result == "accepted":
                accepted = True
                self.log.opt(lazy=True).info(
                    "order {}: payment {} accepted; tally now {}", lambda: self.order_id,
                    lambda: outcome.snapshot_id, lambda: {k: str(v) for k, v in outcome.order.tallies.items()})
            elif outcome.result == "refunded":
                refunds.append(outcome.refund_request_id)
                self.log.info("order {}: payment {} will be refunded: {}", self.order_id, outcome.snapshot_id,
                              outcome.reason)
            elif outcome.result == "attention":
                self.log.error("order {}: needs an operator: {}", self.order_id, outcome.reason)
        if outcomes:
            self.view = outcomes[-1].order
        if refunds:
            self.services.tell("treasury", MovementsQueued(tuple(refunds)))
        if accepted:
            self._arm_deadline()
            self._arm_check(self.services.config.payments.check_delay)

    def _apply_unit(self, ordered, fees, timeout, now):
        return repo.apply_payments(self.order_id, self.pair_id, fees, ordered, self._decide, timeout, now)

    def _refund_unapplied(self, snapshots, code: str, reason: str) -> None:
        ids = self.services.writer.run(repo.refund_unapplied, list(snapshots), code, reason, self.order_id,
                                       self.services.clock())
        self.log.error("order {}: {} payments refunded: {}", self.order_id, len(ids), reason)
        if ids:
            self.services.tell("treasury", MovementsQueued(tuple(ids)))

    def _arm_check(self, delay: float) -> None:
        if self._check_timer:
            self._check_timer.cancel()
        self._check_timer = send_after(self.actor_ref, delay, CheckPayment())

    def _arm_deadline(self) -> None:
        if self.view is None or self.view.deadline_at is None or self.view.state is not OrderState.PAYMENT_PENDING:
            return
        if self._deadline_timer:
            self._deadline_timer.cancel()
        delay = max(0.0, self.view.deadline_at - self.services.clock())
        self._deadline_timer = send_after(self.actor_ref, delay, PaymentDeadline())

    def _check(self, *, deadline: bool) -> None:
        view = self.view
        if view is None or view.state is not OrderState.PAYMENT_PENDING or view.user_id is None:
            return
        now = self.services.clock()
        evaluation = evaluate_payment(view.tallies, self.pair, view.fees)
        if evaluation.status is PaymentStatus.COMPLETE:
            b = evaluation.breakdown
            reason = (f"paid: {b.base_principal} {self.pair.base_symbol} + {b.quote_principal} "
                      f"{self.pair.quote_symbol} to market-make; next: move them to {self.pair.exchange}")
            self.view = self.services.writer.run(repo.complete_order, self.order_id, b, reason, now)
            self.log.success("order {}: payment_complete — principal {} {} / {} {}, market-making fee {} {} / "
                             "{} {}", self.order_id, b.base_principal, self.pair.base_symbol, b.quote_principal,
                             self.pair.quote_symbol, b.base_market_making_fee, self.pair.base_symbol,
                             b.quote_market_making_fee, self.pair.quote_symbol)
            self.actor_ref.tell(AdvanceFunding())
            return
        if evaluation.status is PaymentStatus.REJECTED:
            self._refund_all("; ".join(evaluation.reasons), "rejected")
            return
        overdue = view.deadline_at is not None and now >= view.deadline_at
        if overdue:
            timeout = self.services.config.payments.timeout
            self._refund_all(f"payment incomplete after {timeout:g}s: " + "; ".join(evaluation.reasons), "timeout")
            return
        if deadline:  # woke early (clock skew): look again at the deadline
            self._arm_deadline()
        self.log.info("order {}: waiting for payment: {}", self.order_id, "; ".join(evaluation.reasons))

    def _refund_all(self, reason: str, code: str) -> None:
        now = self.services.clock()
        self.view, request_ids = self.services.writer.run(repo.refund_order, self.order_id, reason, code, now)
        self.log.warning("order {}: refunding {} payments: {}", self.order_id, len(request_ids), reason)
        if self._deadline_timer:
            self._deadline_timer.cancel()
        if request_ids:
            self.services.tell("treasury", MovementsQueued(tuple(request_ids)))

    def _advance_funding(self) -> None:
        if self.view is None or self.view.state not in FUNDING_STATES:
            return
        try:
            if self.view.state is OrderState.PAYMENT_COMPLETE:
                request_ids = self.funding.start_withdrawals()
                self.view = repo.load_order(self.order_id)
                self.log.info("order {}: {}", self.order_id, self.view.state_reason)
                self.services.tell("treasury", MovementsQueued(tuple(request_ids)))
            done = self.funding.track()
            if done:
                self.log.success("order {}: {}", self.order_id, done)
        except Wait as wait:
            if str(wait) != self._funding_note:
                self._funding_note = str(wait)
                self.log.info("order {}: {}", self.order_id, wait)
                if self.view.state is OrderState.PAYMENT_COMPLETE:
                    self.services.writer.run(repo.note_order, self.order_id, f"{self.view.state_reason} — {wait}",
                                             self.services.clock())
            if wait.delay:
                self._arm_funding(wait.delay)
        except Stuck as stuck:
            self.view = self.services.writer.run(repo.set_order_state, self.order_id, OrderState.ATTENTION,
                                                 str(stuck), self.services.clock())
            self.log.error("order {}: needs an operator: {}", self.order_id, stuck)

    def _arm_funding(self, delay: float) -> None:
        if self._funding_timer:
            self._funding_timer.cancel()
        self._funding_timer = send_after(self.actor_ref, delay, AdvanceFunding())

    def _movement_settled(self, message: MovementSettled) -> None:
        if self.view is not None and self.view.state in FUNDING_STATES:
            self._advance_funding()
            return
        if self.view is None or self.view.state is not OrderState.REFUNDING:
            return
        movements = repo.order_movements(self.order_id)
        refunds = [m for m in movements if m.kind == "refund"]
        if refunds and all(m.state == "confirmed" for m in refunds):
            self.view = self.services.writer.run(repo.set_order_state, self.order_id, OrderState.REFUNDED,
                                                 f"{len(refunds)} refunds confirmed by Mixin",
                                                 self.services.clock())
            self.log.success("order {}: refunded", self.order_id)
            self.stop()
