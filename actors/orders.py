"""OrderSupervisor and one OrderActor per order id.

The OrderActor owns its order: the payment tally, the timers, the decision to
complete or refund. Its state lives in the database; memory only mirrors the
last commit, so a restarted actor loads the row and carries on — the same path
as a fresh start.
"""
from __future__ import annotations

from loguru import logger

from actors.funding import FUNDING_STATES, Funding, Stuck, Wait
from integrations.exchange.errors import ExchangeError
from storage import exchange_repo
from actors.protocol import (AdvanceFunding, CheckPayment, DeliverPayments, MovementSettled, MovementsQueued,
                             PaymentDeadline, PaymentsArrived, PollCommands, RetryPending, SetStrategyParams,
                             StopOrder, StrategyTick, AdvanceLifecycle)
from actors.strategy import NotReady, StrategyParamsError, StrategyRunner, effective_params, params_json
from actors.timers import send_every
from actors.supervisor import ChildSpec, Restart, Strategy, SupervisedActor, Supervisor
from actors.timers import send_after
from domain.payment import FeeUnavailable, PaymentStatus, evaluate_payment
from domain.routing import SnapshotFacts, decide_payment
from domain.states import FINAL_STATES, OrderState
from integrations.mixin.errors import MixinError
from storage import repo


LIFECYCLE_STATES = (OrderState.DEPOSIT_CONFIRMED, OrderState.JOINING_CAMPAIGN, OrderState.CAMPAIGN_JOINED,
                    OrderState.RUNNING, OrderState.STOPPING)


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
        self._commands_timer = send_every(self.actor_ref, 1.0, PollCommands())
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

    def teardown(self) -> None:
        timer = getattr(self, "_commands_timer", None)
        if timer:
            timer.cancel()
        super().teardown()

    def handle_message(self, message):
        if isinstance(message, DeliverPayments):
            self._ensure(message.order_id, message.pair_id)
            self.deliver(message.order_id, PaymentsArrived(message.snapshots))
        elif isinstance(message, PollCommands):
            self._run_commands()
        elif isinstance(message, MovementSettled) or type(message).__name__ == "ExchangeOrderEvents":
            if self.child_ref(message.order_id) is not None:
                self.deliver(message.order_id, message)
        else:
            return super().handle_message(message)
        return None

    def _run_commands(self) -> None:
        import json as _json
        for command in repo.pending_commands():
            view = repo.load_order(command.order_id)
            now = self.services.clock()
            if view is None or view.state in FINAL_STATES:
                self.services.writer.run(repo.finish_command, command.id,
                                         "refused: " + ("no such order" if view is None else f"order is {view.state}"),
                                         now)
                continue
            self._ensure(command.order_id, view.pair_id)
            args = _json.loads(command.args or "{}")
            if command.command == "stop":
                message = StopOrder(args.get("reason", "operator stop"), command.id)
            elif command.command == "set-params":
                message = SetStrategyParams(tuple(sorted(args.items())), command.id)
            else:
                self.services.writer.run(repo.finish_command, command.id, f"refused: unknown command "
                                         f"{command.command!r}", now)
                continue
            # Marked taken now; the actor records the outcome in its state history / reason.
            self.services.writer.run(repo.finish_command, command.id, "delivered", now)
            self.deliver(command.order_id, message)


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
        self.runner: StrategyRunner | None = None
        self._tick_timer = None
        self._stop_started: float | None = None
        self._tick_note = ""
        self._next_tick_due: float | None = None

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
        if self.view is not None and self.view.state in LIFECYCLE_STATES:
            self.actor_ref.tell(AdvanceLifecycle())
        if self.view is not None and self.view.state is OrderState.REFUNDING:
            # Refunds may have been confirmed while this actor was down: look once at start.
            self.actor_ref.tell(MovementSettled(self.order_id, "", "recheck"))

    def teardown(self) -> None:
        for timer in (self._check_timer, self._deadline_timer, self._retry_timer, self._funding_timer,
                      self._tick_timer):
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
        elif isinstance(message, AdvanceLifecycle):
            self._advance_lifecycle()
        elif type(message).__name__ == "CampaignJoined":
            self._campaign_joined(message)
        elif isinstance(message, StrategyTick):
            self._tick_timer = None
            self._tick()
        elif type(message).__name__ == "ExchangeOrderEvents":
            if self.runner is not None and message.fills:
                self.runner.on_fills(message.fills)
        elif isinstance(message, StopOrder):
            self._handle_stop(message)
        elif isinstance(message, SetStrategyParams):
            self._set_params(message)
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
                self.actor_ref.tell(AdvanceLifecycle())
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

    # ------------------------------------------------------------ stages 7–9 and stop

    def _advance_lifecycle(self) -> None:
        """deposit_confirmed → joining_campaign → campaign_joined → running (and resume after a restart)."""
        state = self.view.state if self.view else None
        now = self.services.clock()
        if state is OrderState.DEPOSIT_CONFIRMED:
            self.view = self.services.writer.run(repo.set_order_state, self.order_id, OrderState.JOINING_CAMPAIGN,
                                                 "joining the campaign for " + self.pair.symbol, now)
            state = self.view.state
        if state is OrderState.JOINING_CAMPAIGN:
            from actors.campaigns import JoinForOrder
            account_cfg = self.services.config.exchange(self.pair.exchange)
            if not self.services.tell("campaigns", JoinForOrder(self.order_id, self.pair.exchange,
                                                                account_cfg.ccxt_id if account_cfg else
                                                                self.pair.exchange, self.pair.symbol,
                                                                reply_to=self.actor_ref)):
                self._arm_lifecycle_retry()
            return
        if state is OrderState.CAMPAIGN_JOINED:
            self._start_strategy(now)
        elif state is OrderState.RUNNING:
            self._resume_strategy()
        elif state is OrderState.STOPPING:
            self._resume_strategy(stopping=True)

    def _arm_lifecycle_retry(self) -> None:
        send_after(self.actor_ref, self.services.config.funding.retry_delay, AdvanceLifecycle())

    def _campaign_joined(self, message) -> None:
        if self.view is None or self.view.state is not OrderState.JOINING_CAMPAIGN:
            return
        note = f"campaign {message.campaign_id}" + (f" (HuFi {message.hufi_campaign})" if message.hufi_campaign
                                                     else "") + (f": {message.note}" if message.note else "")
        self.view = self.services.writer.run(repo.set_order_state, self.order_id, OrderState.CAMPAIGN_JOINED, note,
                                             self.services.clock())
        self.log.info("order {}: {}", self.order_id, note)
        self._start_strategy(self.services.clock())

    def _params(self):
        return effective_params(self.services.config, self.pair, repo.strategy_overrides(self.order_id))

    def _start_strategy(self, now: float) -> None:
        try:
            params = self._params()
        except StrategyParamsError as exc:
            reason = "strategy parameters invalid: " + "; ".join(exc.problems)
            self.view = self.services.writer.run(repo.set_order_state, self.order_id, OrderState.ATTENTION, reason,
                                                 now)
            self.log.error("order {}: needs an operator: {}", self.order_id, reason)
            return
        ledger = repo.ledger_balances(self.order_id)
        reason = (f"market making {self.pair.symbol} on {self.pair.exchange} with "
                  f"{', '.join(f'{v} {k}' for k, v in sorted(ledger.items()))}: spreads {params.bid_spread}/"
                  f"{params.ask_spread}, {params.order_levels} levels, refresh {params.order_refresh_time:g}s")
        self.view = self.services.writer.run(repo.start_running, self.order_id, params_json(params), reason, now)
        self.log.success("order {}: running — {}", self.order_id, reason)
        self.runner = StrategyRunner(self, params)
        self._arm_tick(0)

    def _resume_strategy(self, *, stopping: bool = False) -> None:
        try:
            params = self._params()
        except StrategyParamsError as exc:
            if not stopping:
                self.view = self.services.writer.run(repo.set_order_state, self.order_id, OrderState.ATTENTION,
                                                     "strategy parameters invalid: " + "; ".join(exc.problems),
                                                     self.services.clock())
                return
            params = None
        self.runner = StrategyRunner(self, params) if params is not None else None
        if stopping:
            self._stop_started = self.services.clock()
        self._arm_tick(0)

    def _arm_tick(self, delay: float) -> None:
        if self._tick_timer:
            self._tick_timer.cancel()
        self._next_tick_due = self.services.clock() + delay
        self._tick_timer = send_after(self.actor_ref, delay, StrategyTick())

    def _arm_next_tick(self, interval: float) -> None:
        """Keep a fixed cadence: the next tick is due one interval after this one was due, not after it
        finished (a slow tick must not stretch every period); a tick that fell far behind skips ahead."""
        now = self.services.clock()
        due = (self._next_tick_due or now) + interval
        if due < now:
            due = now
        if self._tick_timer:
            self._tick_timer.cancel()
        self._next_tick_due = due
        self._tick_timer = send_after(self.actor_ref, max(0.0, due - now), StrategyTick())

    def _tick(self) -> None:
        state = self.view.state if self.view else None
        interval = self.services.config.strategy.tick_interval
        if state is OrderState.STOPPING:
            self._stop_step()
            return
        if state is not OrderState.RUNNING or self.runner is None:
            return
        try:
            did = self.runner.tick(self.services.clock())
            if did:
                self.log.info("order {}: {}", self.order_id, did)
            self._tick_note = ""
        except NotReady as exc:
            if str(exc) != self._tick_note:
                self._tick_note = str(exc)
                self.log.info("order {}: not quoting this tick: {}", self.order_id, exc)
        self._arm_next_tick(interval)

    def _handle_stop(self, message: StopOrder) -> None:
        state = self.view.state if self.view else None
        if state in (OrderState.STOPPING, OrderState.STOPPED):
            return
        if state not in (OrderState.RUNNING, OrderState.PAUSED, OrderState.CAMPAIGN_JOINED,
                         OrderState.DEPOSIT_CONFIRMED):
            self.log.warning("order {}: stop refused: order is {}", self.order_id, state)
            return
        self.view = self.services.writer.run(repo.set_order_state, self.order_id, OrderState.STOPPING,
                                             f"{message.reason}: cancelling this order's exchange orders",
                                             self.services.clock())
        self._stop_started = self.services.clock()
        if self.runner is None:
            self.runner = StrategyRunner(self, None)  # stopping needs no parameters
        self.log.warning("order {}: stopping ({})", self.order_id, message.reason)
        self._arm_tick(0)

    def _stop_step(self) -> None:
        now = self.services.clock()
        runner = self.runner or StrategyRunner(self, None)
        self.runner = runner
        try:
            still_open = runner.cancel_all(now)
            if still_open == 0 and runner.verify_none_open():
                ledger = repo.ledger_balances(self.order_id)
                reason = "stopped; ledger " + ", ".join(f"{v} {k}" for k, v in sorted(ledger.items()))
                self.view = self.services.writer.run(repo.set_order_state, self.order_id, OrderState.STOPPED,
                                                     reason, now)
                self.log.success("order {}: {}", self.order_id, reason)
                return
        except NotReady as exc:
            self.log.info("order {}: stopping waits: {}", self.order_id, exc)
        except ExchangeError as exc:  # an exchange hiccup must not abandon a stop half-way
            self.log.warning("order {}: stopping: {}", self.order_id, exc)
        if self._stop_started and now - self._stop_started > self.services.config.strategy.stop_timeout:
            open_ids = [o.client_order_id for o in exchange_repo.open_orders_of(self.order_id)]
            reason = (f"stop not confirmed after {self.services.config.strategy.stop_timeout:g}s: orders still "
                      f"open or unresolved: {open_ids}")
            self.view = self.services.writer.run(repo.set_order_state, self.order_id, OrderState.ATTENTION, reason,
                                                 now)
            self.log.error("order {}: needs an operator: {}", self.order_id, reason)
            return
        self._arm_tick(min(1.0, self.services.config.strategy.tick_interval))

    def _set_params(self, message: SetStrategyParams) -> None:
        overrides = dict(repo.strategy_overrides(self.order_id))
        overrides.update(dict(message.overrides))
        try:
            params = effective_params(self.services.config, self.pair, overrides)
        except StrategyParamsError as exc:
            self.log.error("order {}: parameters refused: {}", self.order_id, "; ".join(exc.problems))
            return
        self.services.writer.run(repo.set_strategy_overrides, self.order_id, overrides, self.services.clock())
        self.log.info("order {}: parameters updated: {}", self.order_id, dict(message.overrides))
        if self.runner is not None and self.view is not None and self.view.state is OrderState.RUNNING:
            self.runner.params = params
