"""The way back: stopping → stopped → returning_funds → settling → settled.

An exit is asked by the owner's memo (action 3), by an operator (`orders exit`) or by the end time. What
it does depends on where the money is (domain.states.exit_plan): on Mixin → every payment is refunded;
in flight to the exchange → remembered, carried out once it is credited; on the exchange → now.

- stopping: cancel this order's exchange orders (by client id, never "all on the pair"); `stopped` only
  when every one is final in the orders DB, every fill the exchange reported for them is recorded (the
  update stream brings them), and the exchange lists none of them open.
- returning_funds: for each currency of the order's ledger, a return movement (written before anything is
  sent) withdraws what the exchange allows to the bot's own Mixin deposit address for the asset's chain;
  what is below the exchange's minimum or precision stays as recorded dust. Each attempt's withdrawal
  client id is written before the request: an unknown outcome is looked up in the exchange's history,
  never sent blind again. The Mixin deposit that arrives is matched to the movement (hash, else address +
  tag + exact amount) by the router.
- settling: one Safe transfer per asset to the owner (request id from order + asset) of what arrived,
  the amounts sent with exit requests, and any overpaid third-asset fee; `settled` when Mixin confirmed
  them all, with the statement frozen — and only if it balances to the last unit; otherwise attention.
"""
from __future__ import annotations

from actors.order.base import Stage, Stuck, Wait
from actors.order.funding import exchange_account, network_for
from actors.order.strategy import NotReady
from actors.protocol import AdvanceExit, MovementsQueued, ReturnArrived
from domain.money import ZERO, fmt
from domain.states import (EXITING_STATES, FINAL_STATES, FUNDS_ON_EXCHANGE, ExitPlan, OrderState, exit_plan,
                           remembered_exit_reason)
from domain.statement import format_statement
from domain.way_back import plan_payouts, plan_return
from integrations.crashpoints import crash_point
from integrations.exchange.errors import DefinitiveError, ExchangeError
from integrations.mixin.errors import MixinError
from storage import exchange_repo, exit_repo, repo
from storage.statements import order_statement, surplus_of

WAY_BACK = (OrderState.STOPPING, OrderState.RETURNING_FUNDS, OrderState.SETTLING)


class ExitStage(Stage):
    HANDLES = {AdvanceExit: "on_advance", ReturnArrived: "on_arrival"}
    __slots__ = ("cfg", "_note")

    def __init__(self, actor):
        super().__init__(actor)
        self.cfg = actor.services.config.funding
        self._note = ""

    @staticmethod
    def resumes(view) -> bool:
        if view is None:
            return False
        asked = view.exit_requested and exit_plan(view.state) in (ExitPlan.STOP_NOW, ExitPlan.REFUND_ALL)
        return view.state in WAY_BACK or asked

    def resume(self) -> None:
        if self.resumes(self.view):
            self.actor.actor_ref.tell(AdvanceExit())

    # ------------------------------------------------------------ asking for an exit

    def request(self, source: str, reason: str) -> str:
        """An exit asked by an operator or the end time (a memo's request is written with its payment).
        Returns the command outcome."""
        view = self.view
        if view is None:
            return "refused: no such order"
        if view.state in FINAL_STATES:
            return f"refused: order is already {view.state}"
        if view.exit_requested or view.state in EXITING_STATES:
            return f"done: already exiting ({view.state})"
        self.actor.view = self.write(exit_repo.request_exit, self.order_id, source, reason, self.now())
        self.log.warning("order {}: exit asked ({}): {}", self.order_id, source, reason)
        return self.carry_out()

    def carry_out(self) -> str:
        """Act on a recorded exit request according to where the order's money is."""
        view = self.view
        plan = exit_plan(view.state)
        reason = view.exit_reason or "exit"
        if plan is ExitPlan.REFUND_ALL:
            self.actor.payment.refund_all(f"exit before the funds left Mixin: {reason}", "exit")
            return "done: the funds never left Mixin; every payment is being refunded"
        if plan is ExitPlan.STOP_NOW:
            self.actor.timers.cancel("tick")
            self.advance()
            return f"done: exiting; now {self.state}"
        if plan is ExitPlan.REMEMBER:
            note, where = remembered_exit_reason(view.state, view.state_reason, view.exit_source)
            if note != view.state_reason:  # an exit memo's payment unit notes it already
                self.write(repo.note_order, self.order_id, note, self.now())
                self.actor.view = repo.load_order(self.order_id)
            self.log.warning("order {}: exit remembered ({}): {}", self.order_id, view.state, where)
            return f"done: exit remembered; {where}"
        return f"done: already exiting ({view.state})"

    # ------------------------------------------------------------ the way back, step by step

    def on_advance(self, message: AdvanceExit) -> None:
        self.advance()

    def on_arrival(self, message: ReturnArrived) -> None:
        self.log.info("order {}: return {} arrived on Mixin", self.order_id, message.request_id)
        self.advance()

    def on_movement_settled(self) -> None:
        self.advance()

    def advance(self) -> None:
        if self.view is None:
            return
        try:
            self._advance()
        except Wait as wait:
            if str(wait) != self._note:
                self._note = str(wait)
                self.log.info("order {}: {}", self.order_id, wait)
            self.actor.timers.after("exit", wait.delay or self.cfg.poll_interval, AdvanceExit())
        except Stuck as stuck:
            self.actor.attention(str(stuck))

    def _advance(self) -> None:
        if self.view.exit_requested and exit_plan(self.state) is ExitPlan.REFUND_ALL:
            # asked, then a crash before the refunds were queued: the same decision again
            self.actor.payment.refund_all(f"exit before the funds left Mixin: {self.view.exit_reason}", "exit")
            return
        if self.state in FUNDS_ON_EXCHANGE and self.state is not OrderState.STOPPED and self.view.exit_requested:
            self._begin_stopping()
        if self.state is OrderState.STOPPING:
            self._stop_step()
        if self.state is OrderState.STOPPED and self.view.exit_requested:
            self._start_return()
        if self.state is OrderState.RETURNING_FUNDS:
            self._return_step()
        if self.state is OrderState.SETTLING:
            self._settle_step()

    # ------------------------------------------------------------ stopping

    def _begin_stopping(self) -> None:
        self.actor.timers.cancel("tick")
        reason = f"exit ({self.view.exit_source}): cancelling this order's quotes"
        self.actor.view = self.write(exit_repo.transition, self.order_id, OrderState.STOPPING, reason, self.now())
        self.log.warning("order {}: stopping — {}", self.order_id, self.view.exit_reason)

    def _stop_step(self) -> None:
        now = self.now()
        runner = self.actor.strategy.stopping_runner()
        tick = min(1.0, self.services.config.strategy.tick_interval)
        try:
            still_open = runner.cancel_all(now)
            owed = exchange_repo.fills_owed(self.order_id)
            if still_open == 0 and not owed and runner.verify_none_open():
                ledger = repo.ledger_balances(self.order_id)
                reason = ("stopped: every exchange order of this order is final and its fills are recorded; ledger "
                          + (", ".join(f"{v} {k}" for k, v in sorted(ledger.items())) or "empty"))
                self.actor.view = self.write(exit_repo.transition, self.order_id, OrderState.STOPPED, reason, now)
                self.log.success("order {}: {}", self.order_id, reason)
                return
            waiting = (f"{still_open} exchange orders not yet final" if still_open else
                       f"fills of {[c for c, _, _ in owed]} not yet recorded" if owed else
                       "the exchange still lists one of this order's orders")
        except (NotReady, ExchangeError) as exc:
            waiting = f"stopping waits: {exc}"
        started = self._entered(OrderState.STOPPING) or now
        limit = self.services.config.strategy.stop_timeout
        if now - started > limit:
            open_ids = [o.client_order_id for o in exchange_repo.open_orders_of(self.order_id)]
            raise Stuck(f"stop not confirmed after {limit:g}s: orders still open or unresolved: {open_ids}; "
                        f"fills owed: {exchange_repo.fills_owed(self.order_id)}; the funds are on "
                        f"{self.pair.exchange}")
        raise Wait(waiting, tick)

    def _entered(self, state: OrderState) -> float | None:
        times = [h.at for h in repo.order_history(self.order_id) if h.to_state == state.value]
        return times[-1] if times else None

    # ------------------------------------------------------------ returning funds

    def _start_return(self) -> None:
        if self.actor.topup.in_flight():
            raise Wait("waiting for funds added earlier to reach the exchange before bringing everything back")
        self.actor.topup.refund_pool("the order is exiting")
        account = exchange_account(self)
        ledger = repo.ledger_balances(self.order_id)
        assets = {self.pair.base_symbol: self.pair.base_asset_id, self.pair.quote_symbol: self.pair.quote_asset_id}
        plans = []
        for code, balance in sorted(ledger.items()):
            if balance == 0:
                continue
            if balance < 0:
                raise Stuck(f"the order's {code} ledger is negative ({balance}) on {self.pair.exchange}: nothing "
                            f"is withdrawn until an operator looks")
            asset_id = assets.get(code)
            if asset_id is None:
                plans.append({"code": code, "asset_id": "", "withdraw": ZERO, "fee": ZERO, "dust": balance,
                              "network": "", "destination": "", "tag": "", "exchange_account": self.pair.exchange,
                              "note": f"{balance} {code}: no Mixin asset for this currency, kept as dust"})
                continue
            chain_id, choice = network_for(self, account, asset_id, code)
            try:
                terms = account.withdrawal_terms(code, choice.network_code_for_ccxt)
            except ExchangeError as exc:
                raise Wait(f"withdrawal terms of {code}: {exc}", self.cfg.retry_delay) from None
            plan = plan_return(code, balance, terms)
            destination = tag = ""
            if plan.withdraw > 0:
                try:
                    entry = self.services.mixin.primary_deposit_entry(chain_id)
                except MixinError as exc:
                    raise Wait(f"the bot's Mixin deposit address for {code}: {exc}", self.cfg.retry_delay) from None
                destination, tag = entry.destination, entry.tag or ""
            plans.append({"code": code, "asset_id": asset_id, "withdraw": plan.withdraw, "fee": plan.fee,
                          "dust": plan.dust, "network": choice.network_code_for_ccxt, "destination": destination,
                          "tag": tag, "exchange_account": self.pair.exchange, "note": plan.note})
        exit_price = None
        try:
            book = account.fetch_order_book(self.pair.symbol, 5)
            if book.bids and book.asks:
                exit_price = (book.bids[0][0] + book.asks[0][0]) / 2
        except ExchangeError:
            pass
        parts = [f"{fmt(p['withdraw'])} {p['code']} via {p['network']}" for p in plans if p["withdraw"] > 0]
        dust = [f"{fmt(p['dust'])} {p['code']}" for p in plans if p["dust"] > 0]
        reason = ("bringing the funds back from " + self.pair.exchange + ": " + (", ".join(parts) or "nothing to "
                  "withdraw") + (f"; dust left on the exchange: {', '.join(dust)}" if dust else ""))
        self.actor.view = self.write(exit_repo.start_return, self.order_id, plans, exit_price, reason, self.now())
        self.log.info("order {}: returning_funds — {}", self.order_id, reason)

    def _return_step(self) -> None:
        account = exchange_account(self)
        for m in exit_repo.returns_of(self.order_id):
            self._advance_return(account, m)
        rows = exit_repo.returns_of(self.order_id)
        if all(m.state == "arrived" for m in rows):
            self._start_settlement(rows)
            return
        waiting = ", ".join(f"{m.exchange_code} {m.state}" for m in rows if m.state != "arrived")
        raise Wait(f"funds on their way back to Mixin: {waiting}", self.cfg.poll_interval)

    def _backoff(self, n: int) -> float:
        return min(self.cfg.return_retry_delay * 2 ** max(0, n - 1), 3600.0)

    def _advance_return(self, account, m) -> None:
        now = self.now()
        if m.state == "queued":
            if m.next_try_at and now < m.next_try_at:
                return
            if m.rejections >= self.cfg.return_max_attempts:
                raise Stuck(describe_return(f"the exchange refused or failed the withdrawal {m.rejections} times",
                                            m))
            client_id = self.write(exit_repo.begin_return_attempt, m.request_id, now)
            if client_id is None:
                return
            crash_point("before_exchange_withdraw")  # the attempt is written, nothing sent
            try:
                sent = account.withdraw(m.exchange_code, m.amount, m.destination, m.tag or None, m.network,
                                        client_id=client_id)
            except DefinitiveError as exc:
                n = self.write(exit_repo.record_return_rejected, m.request_id, f"{exc.kind}: {exc}",
                               now + self._backoff(m.rejections + 1), now)
                self.log.warning("order {}: {} withdrawal refused by {} ({}); attempt {} of {}, retrying in {:g}s",
                                 self.order_id, m.exchange_code, self.pair.exchange, exc, n,
                                 self.cfg.return_max_attempts, self._backoff(n))
                return
            except ExchangeError as exc:
                self.log.warning("order {}: {} withdrawal {}: outcome unknown ({}); it is looked up in the "
                                 "exchange's history before anything is sent again", self.order_id, m.exchange_code,
                                 client_id, exc)
                return
            crash_point("after_exchange_withdraw")  # on the exchange, not recorded
            self.write(exit_repo.record_return_accepted, m.request_id, sent.id, None, sent.txid, now)
            self.log.info("order {}: withdrawing {} {} from {} to the bot's Mixin address ({}; exchange id {})",
                          self.order_id, fmt(m.amount), m.exchange_code, self.pair.exchange, client_id, sent.id)
            return
        if m.state not in ("sending", "sent", "completed"):
            return
        try:
            found = self._look_up(account, m)
        except ExchangeError as exc:
            raise Wait(f"looking up withdrawal {m.client_id}: {exc}", self.cfg.retry_delay) from None
        if m.state == "sending":
            if found is not None:
                self.write(exit_repo.record_return_accepted, m.request_id, found.id, found.fee, found.txid, now)
                self.log.info("order {}: withdrawal {} found on {} after an unknown outcome", self.order_id,
                              m.client_id, self.pair.exchange)
            elif now - (m.requested_at or now) > self.cfg.lookup_grace:
                self.write(exit_repo.record_return_absent, m.request_id,
                           f"withdrawal {m.client_id} not in the exchange's history {self.cfg.lookup_grace:g}s "
                           f"after it was sent: it was never made; sending it again", now)
                self.log.warning("order {}: withdrawal {} never reached {}; it will be sent again", self.order_id,
                                 m.client_id, self.pair.exchange)
            return
        if found is not None and found.status in ("failed", "canceled"):
            self.write(exit_repo.record_return_failed, m.request_id,
                       f"exchange withdrawal {found.id} {found.status} ({found.raw_status}); funds back on the "
                       f"account", now + self._backoff(m.rejections + 1), now)
            self.log.warning("order {}: {} withdrawal {} {} on {}; the funds are back and it will be tried again",
                             self.order_id, m.exchange_code, found.id, found.status, self.pair.exchange)
            return
        if found is not None:
            self.write(exit_repo.record_return_progress, m.request_id, found.status, found.txid, found.fee, now)
            if found.txid:
                arrived = self.write(exit_repo.claim_awaiting, [m.asset_id], now)
                for order_id, request_id in arrived:
                    if order_id != self.order_id:
                        self.services.tell("orders", ReturnArrived(order_id, request_id))
        m = repo.get_movement(m.request_id)
        if m.state != "arrived" and now - (m.sent_at or now) > self.cfg.return_timeout:
            raise Stuck(describe_return(f"nothing arrived on Mixin {self.cfg.return_timeout:g}s after the exchange "
                                        f"accepted the withdrawal", m))

    def _look_up(self, account, m):
        """The venue's record of this return's current attempt, or None (not visible yet).

        By the venue's own id once it accepted the withdrawal; before that, by our client id where the
        venue echoes one, else by what the withdrawal looks like (currency, address, tag, amount, since it
        was sent) among withdrawals no other return has claimed — two that fit is ambiguous: an operator
        decides, never a second withdrawal."""
        since = int(((m.requested_at or m.created_at) - 3600) * 1000)
        if m.exchange_withdrawal_id:
            return account.withdrawal_by_id(m.exchange_withdrawal_id, m.exchange_code, since)
        if account.venue.has_withdraw_client_id:
            return account.find_withdrawal(m.client_id, m.exchange_code, since)
        claimed = exit_repo.claimed_withdrawal_ids(m.exchange_account)
        window = int(((m.requested_at or m.created_at) - 60) * 1000)
        fits = [t for t in account.withdrawals_like(m.exchange_code, address=m.destination, tag=m.tag or None,
                                                    amount=m.amount, since_ms=window) if t.id not in claimed]
        if len(fits) > 1:
            raise Stuck(describe_return(f"{len(fits)} withdrawals in {self.pair.exchange}'s history look like this "
                                        f"one ({', '.join(t.id for t in fits)}) and the venue keeps no client id: "
                                        f"which is ours is not guessed", m))
        return fits[0] if fits else None

    # ------------------------------------------------------------ settling

    def _start_settlement(self, returns) -> None:
        arrived: dict[str, object] = {}
        for m in returns:
            arrived[m.asset_id] = arrived.get(m.asset_id, ZERO) + (m.arrived_amount or ZERO)
        held = exit_repo.held_for_owner(self.order_id)
        surplus = surplus_of(self.order_id)
        payouts = plan_payouts(arrived=arrived, held=held, surplus=surplus)
        reason = ("paying the owner: " + ", ".join(f"{fmt(v)} {self._symbol(a)}" for a, v in payouts.items())
                  if payouts else "nothing arrived to pay out (everything stayed as dust)")
        different = [f"{m.exchange_code} arrived {fmt(m.arrived_amount)} where {fmt(m.amount - (m.fee_amount or ZERO))} "
                     f"was sent" for m in returns if m.arrived_amount != m.amount - (m.fee_amount or ZERO)]
        if different:
            reason += "; " + "; ".join(different) + " (the statement shows the difference)"
            self.log.warning("order {}: {}", self.order_id, "; ".join(different))
        view, request_ids = self.write(exit_repo.start_settlement, self.order_id, payouts, reason, self.now())
        self.actor.view = view
        self.log.info("order {}: settling — {}", self.order_id, reason)
        if request_ids:
            self.services.tell("treasury", MovementsQueued(tuple(request_ids)))

    def _symbol(self, asset_id: str) -> str:
        if asset_id == self.pair.base_asset_id:
            return self.pair.base_symbol
        if asset_id == self.pair.quote_asset_id:
            return self.pair.quote_symbol
        return asset_id

    def _settle_step(self) -> None:
        outgoing = [m for m in repo.order_movements(self.order_id) if m.kind in ("payout", "refund")]
        pending = [m for m in outgoing if m.state != "confirmed"]
        if pending:
            raise Wait(f"waiting for Mixin to confirm {len(pending)} transfers to the owner", self.cfg.poll_interval)
        payouts = [m for m in outgoing if m.kind == "payout"]
        self.close(OrderState.SETTLED, f"{len(payouts)} payouts confirmed by Mixin: "
                   + (", ".join(f"{fmt(m.amount)} {self._symbol(m.asset_id)}" for m in payouts) or "nothing to pay"))

    # ------------------------------------------------------------ the end

    def close(self, target: OrderState, reason: str) -> None:
        """→ settled / refunded, with the statement frozen — only if it balances exactly; otherwise the
        order needs an operator (nothing is ever kept silently)."""
        statement = order_statement(self.order_id, self.services.config, final=True)
        if statement is not None and not statement.balanced:
            off = {a.symbol: str(a.held) for a in statement.assets if a.held != 0}
            self.actor.attention(f"the statement does not balance before {target}: {off} unaccounted; "
                                 f"an operator must look")
            return
        body = statement.as_dict() if statement is not None else {}
        self.actor.view = self.write(exit_repo.close_order, self.order_id, target, reason, body, self.now())
        self.log.success("order {}: {} — {}", self.order_id, target, reason)
        if statement is not None:
            self.log.opt(lazy=True).debug("{}", lambda: format_statement(statement))
        self.actor.stop()


def describe_return(head: str, m) -> str:
    return (f"{head}: {fmt(m.amount)} {m.exchange_code} from {m.exchange_account} via {m.network} to the bot's Mixin "
            f"address {m.destination}" + (f" tag {m.tag}" if m.tag else "")
            + f"; request {m.request_id}, attempt {m.attempt}, client id {m.client_id or '-'}, exchange withdrawal "
            f"{m.exchange_withdrawal_id or '-'}, txid {m.exchange_txid or '-'}, state {m.state}, last error "
            f"{m.last_error or '-'}")


