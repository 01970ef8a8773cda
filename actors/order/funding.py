"""Stages 5–6 of an order: withdraw the principal to the exchange, then see both withdrawals sent by Mixin
and credited by the exchange, then open the order's ledger.

Every step reads what is durable (the order row, its withdrawal movements), does at most one kind of
I/O, and records the result before the next step; a restarted actor re-enters here in whatever state
the order is in. Funds in flight are never refunded blindly: a timeout puts the order in `attention`
with everything known. The same deposit tracking serves funds added later (actors/order/topup.py).
"""
from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from actors.order.base import Stage, Stuck, Wait
from actors.protocol import AdvanceFunding, MovementsQueued
from domain.deposits import DepositRecord, match_deposit
from domain.networks import NoUsableNetwork, resolve_network
from domain.states import OrderState
from integrations.exchange.errors import DefinitiveError, ExchangeError
from integrations.mixin.errors import MixinError
from storage import repo

FUNDING_STATES = (OrderState.PAYMENT_COMPLETE, OrderState.WITHDRAWING, OrderState.WITHDRAWAL_CONFIRMED,
                  OrderState.DEPOSIT_CONFIRMING)


def exchange_account(stage: Stage):
    """The order's exchange account object, or Wait while it starts."""
    account_id = stage.pair.exchange
    if stage.services.config.exchange(account_id) is None:
        disabled = any(e.account_id == account_id for e in getattr(stage.services.config, "disabled_exchanges", ()))
        raise Wait(f"exchange account {account_id!r} is " + ("disabled in the config (enabled = false)" if disabled
                                                              else "not configured"), delay=None)
    account = stage.services.exchanges.get(account_id)
    if account is None:
        raise Wait(f"exchange account {account_id!r} is starting", delay=stage.services.config.funding.retry_delay)
    return account


def network_for(stage: Stage, account, asset_id: str, code: str):
    """The exchange network that carries this Mixin asset's chain (domain.networks), or Stuck."""
    cfg = stage.services.config.funding
    account_cfg = stage.services.config.exchange(stage.pair.exchange)
    try:
        chain_id = stage.services.assets.chain_id(asset_id)
    except MixinError as exc:
        raise Wait(f"cannot read asset {asset_id} from Mixin: {exc}", cfg.retry_delay) from None
    currency = (account.currencies or {}).get(code) or {}
    try:
        return chain_id, resolve_network(asset_id=asset_id, chain_id=chain_id, symbol=code,
                                         currency_networks=currency.get("networks"),
                                         overrides=account_cfg.network_overrides)
    except NoUsableNetwork as exc:
        raise Stuck(f"no usable network to move {code} ({asset_id}) between Mixin and {stage.pair.exchange}: "
                    f"{exc}") from None


def deposit_legs(stage: Stage, amounts: Sequence[tuple[str, str, str, Decimal]]) -> list[dict]:
    """Where each (leg, asset_id, code, amount) goes on the exchange: network and deposit address."""
    account = exchange_account(stage)
    legs = []
    for leg, asset_id, code, amount in amounts:
        if amount <= 0:
            raise Stuck(f"{leg} principal is {amount}: nothing to withdraw")
        _, choice = network_for(stage, account, asset_id, code)
        try:
            address = account.fetch_deposit_address(code, choice.network_code_for_ccxt)
        except DefinitiveError as exc:
            raise Stuck(f"{stage.pair.exchange} refuses a {code} deposit address on "
                        f"{choice.network_code_for_ccxt}: {exc}") from None
        except ExchangeError as exc:
            raise Wait(f"deposit address for {code}: {exc}", stage.services.config.funding.retry_delay) from None
        legs.append({"leg": leg, "asset_id": asset_id, "amount": amount, "destination": address.address,
                     "tag": address.tag or "", "network": choice.network_code_for_ccxt,
                     "exchange_account": stage.pair.exchange, "exchange_code": code})
    return legs


def look_for_credits(stage: Stage, movements) -> None:
    """One look at Mixin (withdrawal hashes) and the exchange (deposits) for these withdrawal movements;
    each deposit matched is recorded (one deposit credits one movement, ever)."""
    account = exchange_account(stage)
    cfg = stage.services.config.funding
    for m in movements:
        if not m.withdrawal_hash and stage.services.wallet is not None:
            try:
                status = stage.services.wallet.status(m.request_id)
            except MixinError:
                status = None
            if status is not None and status.withdrawal_hash:
                stage.write(repo.record_withdrawal_hash, m.request_id, status.withdrawal_hash)
    for m in [repo.get_movement(m.request_id) for m in movements]:
        if m.credited_amount is not None or m.state != "confirmed":
            continue
        since_ms = int((m.created_at - 3600) * 1000)
        try:
            deposits = account.fetch_deposits(m.exchange_code, since_ms)
        except ExchangeError as exc:
            raise Wait(f"fetching {m.exchange_code} deposits: {exc}", cfg.retry_delay) from None
        records = [DepositRecord(str(d.id), d.txid, d.address, d.tag, d.amount, d.status) for d in deposits]
        match = match_deposit(records, withdrawal_hash=m.withdrawal_hash, address=m.destination, tag=m.tag,
                              amount=m.amount, claimed=repo.claimed_deposits(m.exchange_account))
        if match.deposit is not None and match.deposit.status == "ok":
            stage.write(repo.record_credit, m.request_id, match.deposit.deposit_id, match.deposit.amount, stage.now())


def describe_legs(head: str, legs) -> str:
    parts = [f"{m.leg}: {m.amount} {m.exchange_code} to {m.destination}"
             + (f" tag {m.tag}" if m.tag else "") + f" via {m.network}, request {m.request_id}, "
             f"state {m.state}, tx {m.transaction_hash or '-'}, withdrawal hash {m.withdrawal_hash or '-'}, "
             f"deposit {m.deposit_id or 'not seen'}" for m in legs]
    return head + "; " + "; ".join(parts)


class FundingStage(Stage):
    HANDLES = {AdvanceFunding: "on_advance"}
    __slots__ = ("cfg", "_note")

    def __init__(self, actor):
        super().__init__(actor)
        self.cfg = actor.services.config.funding
        self._note = ""

    @staticmethod
    def resumes(view) -> bool:
        return view is not None and view.state in FUNDING_STATES

    def resume(self) -> None:
        if self.resumes(self.view):
            self.actor.actor_ref.tell(AdvanceFunding())

    def on_advance(self, message: AdvanceFunding) -> None:
        self.advance()

    def on_movement_settled(self) -> None:
        self.advance()

    def advance(self) -> None:
        if self.view is None or self.state not in FUNDING_STATES:
            return
        try:
            if self.state is OrderState.PAYMENT_COMPLETE:
                request_ids = self.start_withdrawals()
                self.actor.view = repo.load_order(self.order_id)
                self.log.info("order {}: {}", self.order_id, self.view.state_reason)
                self.services.tell("treasury", MovementsQueued(tuple(request_ids)))
            done = self.track()
            if done:
                self.log.success("order {}: {}", self.order_id, done)
                self.actor.campaign.advance()
        except Wait as wait:
            if str(wait) != self._note:
                self._note = str(wait)
                self.log.info("order {}: {}", self.order_id, wait)
                if self.state is OrderState.PAYMENT_COMPLETE:
                    self.write(repo.note_order, self.order_id, f"{self.view.state_reason} — {wait}", self.now())
            if wait.delay:
                self.actor.timers.after("funding", wait.delay, AdvanceFunding())
        except Stuck as stuck:
            self.actor.attention(str(stuck))

    # ------------------------------------------------------------ stage 5

    def start_withdrawals(self) -> list[str]:
        breakdown = repo.order_breakdown(self.order_id) or {}
        legs = deposit_legs(self, [
            ("base", self.pair.base_asset_id, self.pair.base_symbol, Decimal(breakdown.get("base_principal", "0"))),
            ("quote", self.pair.quote_asset_id, self.pair.quote_symbol,
             Decimal(breakdown.get("quote_principal", "0")))])
        reason = ("withdrawing the principal to " + self.pair.exchange + ": "
                  + ", ".join(f"{leg['amount']} {leg['exchange_code']} via {leg['network']}" for leg in legs))
        return self.write(repo.start_withdrawals, self.order_id, legs, reason, self.now())

    # ------------------------------------------------------------ stage 6

    def _legs(self) -> dict:
        return {m.leg: m for m in repo.order_movements(self.order_id)
                if m.kind == "withdrawal" and m.top_up_batch is None}

    def track(self) -> str | None:
        """One look at Mixin and the exchange. Returns a success line when the ledger opened."""
        now = self.now()
        legs = self._legs()
        if set(legs) != {"base", "quote"}:
            raise Stuck(f"expected a base and a quote withdrawal, found {sorted(legs)}")
        if self.state is OrderState.WITHDRAWING:
            if all(m.state == "confirmed" for m in legs.values()):
                hashes = ", ".join(f"{m.leg} tx {m.transaction_hash}" for m in legs.values())
                self.actor.view = self.write(repo.withdrawals_confirmed, self.order_id,
                                             f"Mixin sent both withdrawals ({hashes})", now)
            else:
                started = min(m.created_at for m in legs.values())
                if now - started > self.cfg.withdrawal_timeout:
                    raise Stuck(describe_legs("Mixin has not sent both withdrawals after "
                                              f"{self.cfg.withdrawal_timeout:g}s", legs.values()))
                raise Wait("waiting for Mixin to send the withdrawals", self.cfg.poll_interval)
        if self.state is not OrderState.DEPOSIT_CONFIRMING:
            return None
        look_for_credits(self, list(legs.values()))
        legs = self._legs()
        if all(m.credited_amount is not None for m in legs.values()):
            credited = ", ".join(f"{m.credited_amount} {m.exchange_code}" for m in legs.values())
            self.actor.view = self.write(repo.open_ledger, self.order_id,
                                         f"credited on {self.pair.exchange}: {credited}", now)
            return f"deposit_confirmed — {credited} on {self.pair.exchange} belong to this order"
        sent_at = max((m.confirmed_at or now) for m in legs.values())
        if now - sent_at > self.cfg.deposit_timeout:
            raise Stuck(describe_legs(f"the exchange has not credited both deposits after "
                                      f"{self.cfg.deposit_timeout:g}s (funds are in flight: do not refund)",
                                      legs.values()))
        raise Wait("waiting for the exchange to credit the deposits", self.cfg.poll_interval)
