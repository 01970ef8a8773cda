"""Stages 7–9 of an order as the OrderActor runs them: join a campaign, start, and one quoting tick.

A tick is: read the book (shared cache), this order's own ledger and live orders
(from the orders DB, which the gateway's update stream keeps current), run the
pure pipeline (domain.strategy: reference price → ladder → band → skew → budget →
precision → crossing; then plan_cycle), and carry out the plan. Every exchange
order is written with its deterministic client id BEFORE it is sent; an unknown
outcome (timeout, 5xx) is left SUBMITTED / PENDING_CANCEL for the gateway to
resolve by looking the client id up — never assumed failed. Only this order's
orders are ever cancelled, each by its own client id.
"""
from __future__ import annotations

import json
import time
from decimal import Decimal

from domain.exchange_orders import ExOrderState
from domain.strategy.ladder import BookTop, Budget, MarketRules, build_proposals, reference_price
from domain.strategy.params import StrategyParams, StrategyParamsError, parse_params
from domain.strategy.refresh import LiveOrder, orders_to_hang, plan_cycle, quoting_budget
from integrations.crashpoints import crash_point
from integrations.exchange.errors import DefinitiveError, ExchangeError
from storage import exchange_repo, repo

ZERO = Decimal(0)
FRESH_BOOK = 0.05  # seconds: the book a placement decision may rest on


class NotReady(Exception):
    """The exchange side is not available this tick (gateway starting, reconciling, no market data)."""


def effective_params(config, pair, overrides: dict) -> StrategyParams:
    """The pair's defaults from config plus this order's overrides, validated."""
    return parse_params(config.pair_strategy(pair.pair_id), overrides or {})


class StrategyRunner:
    def __init__(self, actor, params: StrategyParams):
        self.actor = actor
        self.services = actor.services
        self.params = params
        self.last_refresh_at: float | None = None
        self.last_fill_at: float | None = None
        self.last_fill_price: Decimal | None = None
        self.hanging: set[str] = set()
        self.last_notes: tuple[str, ...] = ()
        self.cycles = 0
        self._rules_cache = None
        self._opening_recorded = repo.opening_price(actor.order_id) is not None
        self._load_fill_history()

    @property
    def pair(self):
        return self.actor.pair

    def _load_fill_history(self) -> None:
        fills = exchange_repo.fills_of(self.actor.order_id)
        if fills:
            last = max(fills, key=lambda f: f.at)
            self.last_fill_at = last.at  # seconds
            self.last_fill_price = Decimal(last.price)

    def account(self):
        account = self.services.exchanges.get(self.pair.exchange)
        if account is None:
            raise NotReady(f"exchange account {self.pair.exchange} not ready")
        return account

    def _book(self, account, max_age: float | None = None, account_id: str | None = None) -> BookTop:
        caches = getattr(self.services, "book_caches", None) or {}
        cache = caches.get(account_id or self.pair.exchange)
        book = (cache.book(self.pair.symbol, max_age=max_age) if cache is not None
                else account.fetch_order_book(self.pair.symbol, 5))
        best_bid = book.bids[0][0] if book.bids else None
        best_ask = book.asks[0][0] if book.asks else None
        return BookTop(best_bid=best_bid, best_ask=best_ask, last_trade=None)

    def _rules(self, account) -> MarketRules:
        # Markets are loaded once per gateway start; keep the converted rules for that account object.
        if self._rules_cache is None or self._rules_cache[0] is not account:
            r = account.market_rules(self.pair.symbol)
            rules = MarketRules(tick_size=r.price_tick, step_size=r.amount_step, min_amount=r.min_amount or ZERO,
                                min_notional=r.min_cost or ZERO, maker_fee=r.maker_fee or Decimal("0.001"))
            self._rules_cache = (account, rules)
        return self._rules_cache[1]

    def _reference(self, book: BookTop, max_age: float | None = None):
        """The reference price: from this exchange's book, or from another configured exchange's
        (`price_source_exchange`) — e.g. quote a thin venue around a deep one's price."""
        source = self.params.price_source_exchange
        if source and source != self.pair.exchange:
            other = self.services.exchanges.get(source)
            if other is None:
                raise NotReady(f"price source exchange {source} not ready")
            try:
                book = self._book(other, max_age=max_age, account_id=source)
            except ExchangeError as exc:
                raise NotReady(f"price source {source}: {exc}") from None
        return reference_price(self.params, book, self.last_fill_price)

    def live_orders(self) -> list[LiveOrder]:
        return [LiveOrder(client_order_id=o.client_order_id, side=o.side, price=o.price, amount=o.amount,
                          remaining=o.amount - o.filled, created_at=o.created_at,
                          hanging=o.hanging or o.client_order_id in self.hanging, level=o.level)
                for o in exchange_repo.open_orders_of(self.actor.order_id)]

    def ledger(self) -> Budget:
        balances = repo.ledger_balances(self.actor.order_id)
        return Budget(base=max(balances.get(self.pair.base_symbol, ZERO), ZERO),
                      quote=max(balances.get(self.pair.quote_symbol, ZERO), ZERO))

    # ------------------------------------------------------------ one tick

    def tick(self, now: float) -> str:
        account = self.account()
        try:
            rules = self._rules(account)
            book = self._book(account)
        except ExchangeError as exc:
            raise NotReady(f"market data: {exc}") from None
        ref = self._reference(book)
        if ref is not None and not self._opening_recorded:
            self.services.writer.run(repo.set_opening_price, self.actor.order_id, ref)
            self._opening_recorded = True
        live = self.live_orders()
        holdings = self.ledger()
        budget = quoting_budget(holdings, live, self.params, rules)
        proposals, notes = build_proposals(self.params, ref, book, rules, budget, holdings.base, holdings.quote)
        self.last_notes = tuple(notes)
        plan = plan_cycle(params=self.params, proposals=proposals, live=live, now=now,
                          last_refresh_at=self.last_refresh_at, last_fill_at=self.last_fill_at, ref_price=ref)
        if plan.place and self.params.post_only:
            # About to place maker-only orders: decide on a fresh book, not one cached before a move
            # (a stale book lets a bid cross the real best ask and be rejected). Shared for FRESH_BOOK s.
            try:
                fresh = self._book(account, max_age=FRESH_BOOK)
            except ExchangeError as exc:
                raise NotReady(f"market data: {exc}") from None
            if fresh != book:
                book = fresh
                ref = self._reference(book, max_age=FRESH_BOOK)
                budget = quoting_budget(holdings, live, self.params, rules)
                proposals, notes = build_proposals(self.params, ref, book, rules, budget, holdings.base,
                                                   holdings.quote)
                self.last_notes = tuple(notes)
                plan = plan_cycle(params=self.params, proposals=proposals, live=live, now=now,
                                  last_refresh_at=self.last_refresh_at, last_fill_at=self.last_fill_at,
                                  ref_price=ref)
        self.cycles += 1
        for cid in plan.cancel:
            self.cancel(account, cid, now)
        placed = 0
        for proposal in plan.place:
            placed += self.place(account, proposal, now)
        if plan.place:
            self.last_refresh_at = now
        return plan.reason if (plan.cancel or plan.place) else ""

    def place(self, account, proposal, now: float) -> int:
        symbol = self.pair.symbol
        cid = self.services.writer.run(self._reserve_and_submit, self.actor.order_id, self.pair.exchange, symbol,
                                       proposal, now)
        crash_point("order_reserved")  # written (SUBMITTED), not sent: the stream's lookup resolves it
        try:
            info = account.create_limit_order(symbol, proposal.side, proposal.amount, proposal.price,
                                              client_order_id=cid, post_only=self.params.post_only)
        except DefinitiveError as exc:
            self.services.writer.run(exchange_repo.transition, cid, ExOrderState.REJECTED, time.time(),
                                     f"{exc.kind}: {exc}")
            self.actor.log.info("order {}: {} {} @ {} rejected by the exchange: {}", self.actor.order_id,
                                proposal.side, proposal.amount, proposal.price, exc)
            return 0
        except ExchangeError as exc:  # unknown outcome: the gateway looks the client id up
            self.actor.log.warning("order {}: placing {} {} @ {}: outcome unknown ({}); the update stream will "
                                   "resolve {}", self.actor.order_id, proposal.side, proposal.amount,
                                   proposal.price, exc, cid)
            return 0
        crash_point("order_sent")  # on the exchange, acknowledgement not recorded
        self.services.writer.run(self._record_ack, cid, info, time.time())
        return 1

    @staticmethod
    def _reserve_and_submit(order_id: str, account: str, symbol: str, proposal, now: float) -> str:
        """One commit before sending: the row exists with its client id, marked as being sent."""
        cid = exchange_repo.reserve_client_order(order_id, account, symbol, proposal.side, proposal.price,
                                                 proposal.amount, proposal.level, now)
        exchange_repo.mark_submitted(cid, now)
        return cid

    @staticmethod
    def _record_ack(cid: str, info, now: float) -> None:
        exchange_repo.map_exchange_id(cid, info.id, ExOrderState.ACCEPTED, now)
        if info.status and info.status != "open" or (info.filled or ZERO) > 0:
            exchange_repo.apply_status(cid, info.status or "open", info.filled or ZERO, info.amount or ZERO, now)

    def cancel(self, account, cid: str, now: float) -> None:
        order = exchange_repo.get_exchange_order(cid)
        if order is None or order.state not in (ExOrderState.ACCEPTED, ExOrderState.PARTIALLY_FILLED,
                                                ExOrderState.PENDING_CANCEL):
            # INITIALIZED / SUBMITTED: the exchange never acknowledged it (a crash or a lost reply). Cancelling
            # blind would turn "not found" into an unresolvable pending cancel; the update stream looks the
            # client id up and either adopts the order (then it can be cancelled) or declares it absent.
            return
        if order.state is not ExOrderState.PENDING_CANCEL:
            self.services.writer.run(exchange_repo.transition, cid, ExOrderState.PENDING_CANCEL, now)
        try:
            info = account.cancel_order(self.pair.symbol, client_order_id=cid)
            crash_point("cancel_sent")  # cancelled on the exchange, not recorded
        except DefinitiveError as exc:
            if getattr(exc, "not_found", False):
                return  # gone or not yet visible: the update stream resolves it with a targeted lookup
            self.actor.log.warning("order {}: cancel of {} refused: {}", self.actor.order_id, cid, exc)
            return
        except ExchangeError as exc:
            self.actor.log.warning("order {}: cancel of {}: outcome unknown ({})", self.actor.order_id, cid, exc)
            return
        self.services.writer.run(exchange_repo.apply_status, cid, info.status or "canceled", info.filled or ZERO,
                                 info.amount or order.amount, time.time())

    # ------------------------------------------------------------ events and stop

    def on_fills(self, fills) -> None:
        live = self.live_orders()
        for fill in fills:
            at = fill.timestamp_ms / 1000 if getattr(fill, "timestamp_ms", None) else time.time()
            if self.last_fill_at is None or at >= self.last_fill_at:
                self.last_fill_at, self.last_fill_price = at, fill.price
            known = (exchange_repo.get_exchange_order(fill.client_order_id) if fill.client_order_id else
                     exchange_repo.find_by_exchange_id(self.pair.exchange, fill.symbol, fill.exchange_order_id)
                     if fill.exchange_order_id else None)
            if known is None:
                continue
            # The stream records the fill before telling us, so a completely filled order is no longer
            # open: take it from the orders DB in whatever state it is now.
            filled = LiveOrder(client_order_id=known.client_order_id, side=known.side, price=known.price,
                               amount=known.amount, remaining=known.amount - known.filled,
                               created_at=known.created_at, level=known.level)
            if self.params is not None and self.params.hanging_orders_enabled:
                hang = orders_to_hang(self.params, live, filled)
                if hang:
                    self.hanging.update(hang)
                    self.services.writer.run(exchange_repo.mark_hanging, list(hang), time.time())

    def cancel_all(self, now: float) -> int:
        """Cancel every open order of THIS order (by client id). Returns how many are still open."""
        account = self.account()
        for order in exchange_repo.open_orders_of(self.actor.order_id):
            self.cancel(account, order.client_order_id, now)
        return len(exchange_repo.open_orders_of(self.actor.order_id))

    def verify_none_open(self) -> bool:
        """Ask the exchange itself: none of this order's client ids may still rest on the book."""
        account = self.account()
        mine = {o.client_order_id for o in exchange_repo.orders_in_states(
            [s for s in ExOrderState], account=self.pair.exchange, order_id=self.actor.order_id)}
        return not any(o.client_order_id in mine for o in account.fetch_open_orders(self.pair.symbol))


def params_json(params: StrategyParams) -> str:
    return json.dumps(params.as_dict(), sort_keys=True)


__all__ = ["StrategyRunner", "NotReady", "effective_params", "params_json", "StrategyParamsError"]
