"""Funds the owner adds to a running or paused order (memo action 2): pooled, sent to the exchange like
stage 5 (same deposit addresses, same outbox, same crediting rules), credited to the order's ledger on
arrival — the strategy's budget grows by itself, since it quotes with the ledger.

A pool that does not pay for a transfer (its withdrawal and market-making fees) waits for more, and is
refunded at the payment timeout or when the order exits. Funds in flight are never refunded blindly:
a transfer that does not arrive in time puts the order in `attention` with everything known.
"""
from __future__ import annotations

from actors.order.base import Stage, Stuck, Wait
from actors.order.funding import deposit_legs, describe_legs, look_for_credits
from actors.protocol import AdvanceTopUp, CheckTopUp, MovementsQueued
from domain.states import ACCEPTS_TOP_UP, OrderState
from domain.topup import evaluate_top_up
from storage import topup_repo


class TopUpStage(Stage):
    HANDLES = {CheckTopUp: "on_check", AdvanceTopUp: "on_advance"}
    __slots__ = ("cfg", "_note", "_seed")

    def __init__(self, actor, seed=None):
        """``seed``: the order's StrategySeed from its recovery batch (it read what resume asks), used once."""
        super().__init__(actor)
        self.cfg = actor.services.config.funding
        self._note = ""
        self._seed = seed

    @staticmethod
    def resumes(view) -> bool:
        # funds are added only to a running or paused order: none before it ever ran
        return view is not None and view.state is not OrderState.PAYMENT_PENDING

    def resume(self) -> None:
        seed, self._seed = self._seed, None
        if not self.resumes(self.view):
            return
        if seed.top_up_pool if seed is not None else topup_repo.has_pool(self.order_id):
            self.actor.timers.after("topup_check", 0, CheckTopUp())
        if seed.top_up_in_flight if seed is not None else self.in_flight():
            self.actor.actor_ref.tell(AdvanceTopUp())

    def payment_added(self) -> None:
        self.actor.timers.after("topup_check", self.services.config.payments.check_delay, CheckTopUp())

    def in_flight(self) -> bool:
        return topup_repo.has_batch(self.order_id, "withdrawing")

    def refund_pool(self, reason: str) -> None:
        ids = self.write(topup_repo.refund_pool, self.order_id, f"added funds refunded: {reason}", "topup_refund",
                         self.now())
        if ids:
            self.log.warning("order {}: {} added-funds payments refunded: {}", self.order_id, len(ids), reason)
            self.services.tell("treasury", MovementsQueued(tuple(ids)))

    # ------------------------------------------------------------ the pool

    def on_check(self, message: CheckTopUp) -> None:
        rows = topup_repo.pool(self.order_id)
        if not rows or self.view is None:
            return
        if self.view.exit_requested:
            return  # the exit refunds the pool when it starts bringing the funds back
        if self.state not in ACCEPTS_TOP_UP:
            return  # e.g. in attention: an operator decides first
        evaluation = evaluate_top_up(topup_repo.pool_totals(rows), self.pair, self.view.fees)
        now = self.now()
        if not evaluation.ready:
            first = min(r.applied_at or r.inserted_at for r in rows)
            timeout = self.services.config.payments.timeout
            if now - first >= timeout:
                self.refund_pool(f"{evaluation.reason} within {timeout:g}s")
                return
            if evaluation.reason != self._note:
                self._note = evaluation.reason
                self.log.info("order {}: {}; waiting (refunded after {:g}s)", self.order_id, evaluation.reason,
                              timeout)
            self.actor.timers.after("topup_check", max(0.1, first + timeout - now), CheckTopUp())
            return
        try:
            legs = deposit_legs(self, [(leg.leg, leg.asset_id, getattr(self.pair, f"{leg.leg}_symbol"),
                                        leg.principal) for leg in evaluation.legs])
        except Wait as wait:
            self.actor.timers.after("topup_check", wait.delay or self.cfg.retry_delay, CheckTopUp())
            return
        except Stuck as stuck:
            self.refund_pool(str(stuck))
            return
        batch, ids = self.write(topup_repo.start_batch, self.order_id, [r.snapshot_id for r in rows], legs,
                                evaluation.as_dict(), now)
        self.log.info("order {}: added funds, batch {}: sending {} to {}", self.order_id, batch,
                      ", ".join(f"{leg['amount']} {leg['exchange_code']}" for leg in legs), self.pair.exchange)
        self.services.tell("treasury", MovementsQueued(tuple(ids)))
        self.actor.timers.after("topup", self.cfg.poll_interval, AdvanceTopUp())

    # ------------------------------------------------------------ batches in flight

    def on_advance(self, message: AdvanceTopUp) -> None:
        self.advance()

    def on_movement_settled(self) -> None:
        self.advance()

    def advance(self) -> None:
        try:
            for batch in topup_repo.batches(self.order_id, "withdrawing"):
                self._track(batch)
        except Wait as wait:
            self.actor.timers.after("topup", wait.delay or self.cfg.poll_interval, AdvanceTopUp())
            return
        except Stuck as stuck:
            self.actor.attention(str(stuck))
            return
        if self.in_flight():
            self.actor.timers.after("topup", self.cfg.poll_interval, AdvanceTopUp())
        elif self.view is not None and self.view.exit_requested:
            self.actor.exit.advance()

    def _track(self, batch) -> None:
        legs = topup_repo.batch_movements(self.order_id, batch.batch)
        now = self.now()
        if not all(m.state == "confirmed" for m in legs):
            if now - batch.created_at > self.cfg.withdrawal_timeout:
                raise Stuck(describe_legs(f"added funds (batch {batch.batch}): Mixin has not sent them after "
                                          f"{self.cfg.withdrawal_timeout:g}s", legs))
            return
        look_for_credits(self, legs)
        legs = topup_repo.batch_movements(self.order_id, batch.batch)
        if all(m.credited_amount is not None for m in legs):
            self.write(topup_repo.credit_batch, self.order_id, batch.batch, now)
            self.log.success("order {}: added funds credited on {}: {}", self.order_id, self.pair.exchange,
                             ", ".join(f"{m.credited_amount} {m.exchange_code}" for m in legs))
            return
        sent_at = max((m.confirmed_at or now) for m in legs)
        if now - sent_at > self.cfg.deposit_timeout:
            raise Stuck(describe_legs(f"added funds (batch {batch.batch}): the exchange has not credited them after "
                                      f"{self.cfg.deposit_timeout:g}s (funds are in flight: do not refund)", legs))
