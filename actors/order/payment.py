"""Stages 1–4 of an order: take each payment once, decide complete or refund, and see refunds confirmed.

Every snapshot routed to the order is applied by one storage unit that writes the decision and its
effects together (tally, refund movement, exit request, top-up pool), so a replay is a no-op. Usually
that unit is the poller's (storage.ingest: a whole page at once) and the actor hears what it did
(PaymentsApplied); payments left to the actor (fees unreadable for a new order, or stored before) it
applies itself (PaymentsArrived), with the same rule (domain.tally). The memo's action decides what a
payment is: create (the tally), deposit (added funds), exit (a request to leave).
"""
from __future__ import annotations

import time

from actors.order.base import Stage
from actors.protocol import (CheckPayment, MovementsQueued, PaymentDeadline, PaymentsApplied, PaymentsArrived,
                             RetryPending)
from actors.router import INFO, logs_at
from domain.memo import ACTION_EXIT, memo_action
from domain.payment import FeeUnavailable, PaymentStatus, evaluate_payment
from domain.routing import PaymentDecision, SnapshotFacts
from domain.states import FINAL_STATES, OrderState
from domain.tally import ApplyOutcome, ArchivedOrderFacts, decide_for
from integrations.mixin.errors import MixinError
from storage import repo
from storage.archive_models import archived_entries


class PaymentStage(Stage):
    HANDLES = {PaymentsApplied: "on_applied", PaymentsArrived: "on_payments", RetryPending: "on_retry",
               CheckPayment: "on_check", PaymentDeadline: "on_deadline"}
    __slots__ = ("_consumed", "_check_due", "_check_fires_at", "_deadline_fires_at", "_deadline_armed_for")

    def __init__(self, actor):
        super().__init__(actor)
        # snapshot ids applied or refunded: skip repeats without a DB unit (None until the first: an idle order
        # waiting for its payment holds no empty set)
        self._consumed: set[str] | None = None
        # The payment check is debounced (check_delay after the last payment) with one timer, not one per payment:
        # when it wakes before the latest due time it sleeps again for the rest (time.monotonic, like the timers).
        self._check_due = 0.0
        self._check_fires_at = 0.0
        self._deadline_fires_at = 0.0
        self._deadline_armed_for: float | None = None  # the deadline_at the pending deadline timer was armed for

    def _consume(self, outcomes) -> None:
        if self._consumed is None:
            self._consumed = set()
        self._consumed.update(o.snapshot_id for o in outcomes)

    # ------------------------------------------------------------ start and recovery

    def resume(self) -> None:
        # Started by a poller's commit (its view): that unit applied every payment routed to this order (an order
        # with routed payments left is not applied but delivered), and whatever is routed to it later comes in its
        # own DeliverPayments. Only a start from the database (recovery, a restart) looks for payments left over,
        # and not even then when the recovery's bulk read saw none waiting (has_pending False, a one-start hint).
        waiting = not self.actor.view_from_ingest and self.actor.has_pending is not False
        self.actor.has_pending = None
        pending = repo.pending_snapshots_of(self.order_id) if waiting else ()
        if pending:
            self.log.info("order {}: {} routed payments not applied yet; applying them", self.order_id, len(pending))
            self.actor.actor_ref.tell(PaymentsArrived(tuple(pending)))
        view = self.view
        if view is None:
            return
        if view.state is OrderState.PAYMENT_PENDING:
            self.arm_deadline()
            if view.user_id and not self.actor.view_from_ingest:  # the PaymentsApplied to come arms the check
                self.schedule_check(0)
        elif view.state is OrderState.REFUNDING:
            self.refunds_settled()  # refunds may have been confirmed while this actor was down

    def apply_pending_of_final_order(self) -> None:
        """A final order still gets payments (a late transfer, a memo naming it): each is refunded with the
        order's state as the reason — never kept, also across restarts."""
        pending = repo.pending_snapshots_of(self.order_id)
        if pending:
            self.apply(tuple(pending))

    # ------------------------------------------------------------ handlers

    def on_applied(self, message: PaymentsApplied) -> None:
        """The poller's commit applied payments to this order. Its view is the newest when this actor's own view
        came from the poller's commits too (they arrive in commit order); after a commit of its own the actor
        cannot tell which is newer and reads the order."""
        if self.actor.view_from_ingest:
            self.actor.adopt_ingest_view(message.view)
        else:
            self.actor.view = repo.load_order(self.order_id)
        # Not remembered as consumed: what the ingest applied never comes to this actor as PaymentsArrived (it
        # delivers only payments it did not apply, and a delivered payment keeps its order out of the ingest's
        # applying until the actor applied it); a replay would be a no-op unit anyway (the applied flag).
        self.applied(message.outcomes, refunds_told=True)

    def on_payments(self, message: PaymentsArrived) -> None:
        self.apply(message.snapshots)

    def on_retry(self, message: RetryPending) -> None:
        pending = repo.pending_snapshots_of(self.order_id)
        if pending:
            self.apply(tuple(pending))

    def on_check(self, message: CheckPayment) -> None:
        remaining = self._check_due - time.monotonic()
        if remaining > 0.001:  # a payment came after this timer was armed: the check is due later
            self._check_fires_at = self._check_due
            self.actor.timers.after("payment_check", remaining, CheckPayment())
            return
        self.check(deadline=False)

    def schedule_check(self, delay: float) -> None:
        """Evaluate the tally `delay` seconds from now (a later call moves it later)."""
        due = time.monotonic() + delay
        self._check_due = due
        if self.actor.timers.active("payment_check") and self._check_fires_at <= due:
            return  # the pending timer wakes first and sleeps again for the rest
        self._check_fires_at = due
        self.actor.timers.after("payment_check", delay, CheckPayment())

    def on_deadline(self, message: PaymentDeadline) -> None:
        self.check(deadline=True)

    # ------------------------------------------------------------ applying payments

    def decide(self, view: repo.OrderView | None, facts: SnapshotFacts) -> PaymentDecision:
        archived = None
        if view is None:
            entry = archived_entries([self.order_id]).get(self.order_id)
            if entry is not None:  # a late transfer to an order in cold storage: refused like a final one
                archived = ArchivedOrderFacts(OrderState(entry.state), entry.user_id)
        return decide_for(view, facts, self.pair, memo_action(facts.memo_hex), archived)

    def apply(self, snapshots: tuple[SnapshotFacts, ...]) -> None:
        if self.pair is None:
            return
        consumed = self._consumed or ()
        snapshots = tuple(f for f in snapshots if f.snapshot_id not in consumed)
        if not snapshots:
            return
        fees = None
        if self.view is None and any(memo_action(f.memo_hex) != ACTION_EXIT for f in snapshots):
            try:
                fees = self.services.fee_oracle.requirements(self.pair)
            except MixinError as exc:
                delay = self.services.config.payments.fee_retry_delay
                self.log.warning("order {}: cannot read withdrawal fees from Mixin ({}); payments kept, "
                                 "retrying in {}s", self.order_id, exc, delay)
                self.actor.timers.after("payment_retry", delay, RetryPending(), replace=False)
                return
            except FeeUnavailable as exc:
                self._refund_unapplied(snapshots, "fee_unavailable", str(exc))
                return
        now = self.now()
        timeout = self.services.config.payments.timeout
        ordered = sorted(snapshots, key=lambda f: (f.created_ns, f.snapshot_id))
        applied = self.write(repo.apply_payments, self.order_id, self.actor.pair_id, fees, ordered, self.decide,
                             timeout, now)
        self._consume(applied.outcomes)
        if applied.view is not None:
            self.actor.view = applied.view
        elif self.actor.view is None:
            self.actor.view = repo.load_order(self.order_id)
        self.applied(applied.outcomes, refunds_told=False)

    def applied(self, outcomes: tuple[ApplyOutcome, ...] | list[ApplyOutcome], *, refunds_told: bool) -> None:
        """After a commit applied payments to this order (self.view is the order after it): log each, arm the
        payment check and deadline, carry out an exit request, pool added funds, stop once final."""
        refunds, accepted, exit_asked, top_up = [], False, False, False
        for outcome in outcomes:
            if outcome.result == "duplicate":
                continue
            if outcome.result == "accepted":
                accepted = True
                if logs_at(INFO):  # the order's bound logger costs more than the rest of hearing about it
                    self.log.opt(lazy=True).info(
                        "order {}: payment {} accepted; tally now {}", lambda: self.order_id,
                        lambda: outcome.snapshot_id, lambda: {k: str(v) for k, v in self.view.tallies.items()})
            elif outcome.result == "refunded":
                refunds.append(outcome.refund_request_id)
                self.log.info("order {}: payment {} will be refunded: {}", self.order_id, outcome.snapshot_id,
                              outcome.reason)
            elif outcome.result == "exit":
                exit_asked = True
                self.log.warning("order {}: the owner asked for an exit (snapshot {}); the amount comes back "
                                 "with the settlement", self.order_id, outcome.snapshot_id)
            elif outcome.result == "top_up":
                top_up = True
                self.log.info("order {}: the owner added funds (snapshot {})", self.order_id, outcome.snapshot_id)
            elif outcome.result == "attention":
                self.log.error("order {}: needs an operator: {}", self.order_id, outcome.reason)
        if refunds and not refunds_told:
            self.services.tell("treasury", MovementsQueued(tuple(refunds)))
        if self.actor.view is None:
            return
        if self.state is OrderState.PAYMENT_PENDING:
            self.arm_deadline()
        if accepted:
            self.schedule_check(self.services.config.payments.check_delay)
        if exit_asked:
            self.actor.exit.carry_out()
        if top_up:
            self.actor.topup.payment_added()
        if self.state in FINAL_STATES:
            self.actor.stop()

    def _refund_unapplied(self, snapshots, code: str, reason: str) -> None:
        ids = self.write(repo.refund_unapplied, list(snapshots), code, reason, self.order_id, self.now())
        self.log.error("order {}: {} payments refunded: {}", self.order_id, len(ids), reason)
        if ids:
            self.services.tell("treasury", MovementsQueued(tuple(ids)))

    # ------------------------------------------------------------ complete or refund

    def arm_deadline(self) -> None:
        view = self.view
        if view is None or view.deadline_at is None or view.state is not OrderState.PAYMENT_PENDING:
            return
        if view.deadline_at == self._deadline_armed_for and self.actor.timers.active("payment_deadline"):
            return  # armed for this deadline already (every payment would re-arm it otherwise)
        delay = max(0.0, view.deadline_at - self.now())
        fires_at = time.monotonic() + delay
        if abs(fires_at - self._deadline_fires_at) < 0.05 and self.actor.timers.active("payment_deadline"):
            return  # already armed for this moment: every payment would re-arm it otherwise
        self._deadline_fires_at = fires_at
        self._deadline_armed_for = view.deadline_at
        self.actor.timers.after("payment_deadline", delay, PaymentDeadline())

    def check(self, *, deadline: bool) -> None:
        view = self.view
        if view is None or view.state is not OrderState.PAYMENT_PENDING:
            return
        now = self.now()
        overdue = view.deadline_at is not None and now >= view.deadline_at
        if view.user_id is None:
            # Every payment so far was refused (an asset not in the pair, say): nothing is owned, but the order
            # still ends — at its deadline, as refunded.
            if overdue:
                self.refund_all("no payment was accepted before the deadline", "timeout", only_from=view.state)
            elif deadline:
                self.arm_deadline()
            return
        evaluation = evaluate_payment(view.tallies, self.pair, view.fees)
        if evaluation.status is PaymentStatus.COMPLETE:
            b = evaluation.breakdown
            reason = (f"paid: {b.base_principal} {self.pair.base_symbol} + {b.quote_principal} "
                      f"{self.pair.quote_symbol} to market-make; next: move them to {self.pair.exchange}")
            completed = self.write(repo.complete_order, self.order_id, b, reason, now, dict(view.tallies))
            if completed is None:  # payments were applied since this view: look again with the order as it is
                self.actor.view = repo.load_order(self.order_id)
                self.schedule_check(0)
                return
            self.actor.view = completed
            self.log.success("order {}: payment_complete — principal {} {} / {} {}, market-making fee {} {} / "
                             "{} {}", self.order_id, b.base_principal, self.pair.base_symbol, b.quote_principal,
                             self.pair.quote_symbol, b.base_market_making_fee, self.pair.base_symbol,
                             b.quote_market_making_fee, self.pair.quote_symbol)
            self.actor.timers.cancel("payment_deadline")
            self.actor.funding.advance()
            return
        if evaluation.status is PaymentStatus.REJECTED:
            self.refund_all("; ".join(evaluation.reasons), "rejected", only_from=view.state)
            return
        if overdue:
            timeout = self.services.config.payments.timeout
            self.refund_all(f"payment incomplete after {timeout:g}s: " + "; ".join(evaluation.reasons), "timeout",
                            only_from=view.state)
            return
        if deadline:  # woke early (clock skew): look again at the deadline
            self.arm_deadline()
        self.log.info("order {}: waiting for payment: {}", self.order_id, "; ".join(evaluation.reasons))

    def refund_all(self, reason: str, code: str, *, only_from: OrderState | None = None) -> None:
        """→ refunding, every payment the order took goes back to its payer (one refund per snapshot).
        `only_from`: the state this decision was taken in; if the order has left it since, nothing happens."""
        view, request_ids = self.write(repo.refund_order, self.order_id, reason, code, self.now(), only_from)
        if view is None:
            self.actor.view = repo.load_order(self.order_id)
            return
        self.actor.view = view
        self.log.warning("order {}: refunding {} payments: {}", self.order_id, len(request_ids), reason)
        self.actor.timers.cancel("payment_deadline")
        self.actor.timers.cancel("payment_check")
        if request_ids:
            self.services.tell("treasury", MovementsQueued(tuple(request_ids)))
        self.refunds_settled()

    def refunds_settled(self) -> None:
        """refunding → refunded once every refund of the order is confirmed by Mixin."""
        if self.state is not OrderState.REFUNDING:
            return
        refunds = [m for m in repo.order_movements(self.order_id) if m.kind == "refund"]
        if any(m.state != "confirmed" for m in refunds):
            return
        self.actor.exit.close(OrderState.REFUNDED, f"{len(refunds)} refunds confirmed by Mixin" if refunds else
                              "nothing to refund: every payment had already been refused and returned")
