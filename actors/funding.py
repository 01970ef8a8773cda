"""Stages 5–6 of an order, as the OrderActor runs them: withdraw the principal to the exchange, then
see both withdrawals sent by Mixin and credited by the exchange, then open the order's ledger.

Every step reads what is durable (the order row, its withdrawal movements), does at most one kind of
I/O, and records the result before the next step; a restarted actor re-enters here in whatever state
the order is in. Funds in flight are never refunded blindly: a timeout puts the order in `attention`
with everything known.
"""
from __future__ import annotations

from decimal import Decimal

from domain.deposits import DepositRecord, match_deposit
from domain.networks import NoUsableNetwork, resolve_network
from domain.states import OrderState
from integrations.exchange.errors import DefinitiveError, ExchangeError
from integrations.mixin.errors import MixinError
from storage import repo

FUNDING_STATES = (OrderState.PAYMENT_COMPLETE, OrderState.WITHDRAWING, OrderState.WITHDRAWAL_CONFIRMED,
                  OrderState.DEPOSIT_CONFIRMING)


class Wait(Exception):
    """Nothing to do until later (a transient failure or the world has not moved yet)."""

    def __init__(self, reason: str, delay: float | None = None):
        super().__init__(reason)
        self.delay = delay


class Stuck(Exception):
    """Needs an operator: the order goes to `attention` with this reason."""


class Funding:
    def __init__(self, actor):
        self.actor = actor
        self.services = actor.services
        self.cfg = actor.services.config.funding

    @property
    def pair(self):
        return self.actor.pair

    def account(self):
        account_id = self.pair.exchange
        if self.services.config.exchange(account_id) is None:
            raise Wait(f"exchange account {account_id!r} is not configured: the order waits at payment_complete",
                       delay=None)
        account = self.services.exchanges.get(account_id)
        if account is None:
            raise Wait(f"exchange account {account_id!r} is starting", delay=self.cfg.retry_delay)
        return account

    # ------------------------------------------------------------ stage 5

    def start_withdrawals(self) -> list[str]:
        account = self.account()
        account_cfg = self.services.config.exchange(self.pair.exchange)
        breakdown = repo.order_breakdown(self.actor.order_id) or {}
        legs = []
        for leg, asset_id, code in (("base", self.pair.base_asset_id, self.pair.base_symbol),
                                    ("quote", self.pair.quote_asset_id, self.pair.quote_symbol)):
            amount = Decimal(breakdown.get(f"{leg}_principal", "0"))
            if amount <= 0:
                raise Stuck(f"{leg} principal is {amount}: nothing to withdraw")
            try:
                chain_id = self.services.assets.chain_id(asset_id)
            except MixinError as exc:
                raise Wait(f"cannot read asset {asset_id} from Mixin: {exc}", self.cfg.retry_delay) from None
            currency = (account.currencies or {}).get(code) or {}
            try:
                choice = resolve_network(asset_id=asset_id, chain_id=chain_id, symbol=code,
                                         currency_networks=currency.get("networks"),
                                         overrides=account_cfg.network_overrides)
            except NoUsableNetwork as exc:
                raise Stuck(f"no usable network to move {code} ({asset_id}) to {self.pair.exchange}: {exc}") from None
            try:
                address = account.fetch_deposit_address(code, choice.network_code_for_ccxt)
            except DefinitiveError as exc:
                raise Stuck(f"{self.pair.exchange} refuses a {code} deposit address on "
                            f"{choice.network_code_for_ccxt}: {exc}") from None
            except ExchangeError as exc:
                raise Wait(f"deposit address for {code}: {exc}", self.cfg.retry_delay) from None
            legs.append({"leg": leg, "asset_id": asset_id, "amount": amount, "destination": address.address,
                         "tag": address.tag or "", "network": choice.network_code_for_ccxt,
                         "exchange_account": self.pair.exchange, "exchange_code": code})
        reason = ("withdrawing the principal to " + self.pair.exchange + ": "
                  + ", ".join(f"{leg['amount']} {leg['exchange_code']} via {leg['network']}" for leg in legs))
        return self.services.writer.run(repo.start_withdrawals, self.actor.order_id, legs, reason,
                                        self.services.clock())

    # ------------------------------------------------------------ stage 6

    def track(self) -> str | None:
        """One look at Mixin and the exchange. Returns a success line when the ledger opened."""
        order_id = self.actor.order_id
        now = self.services.clock()
        legs = {m.leg: m for m in repo.order_movements(order_id) if m.kind == "withdrawal"}
        if set(legs) != {"base", "quote"}:
            raise Stuck(f"expected a base and a quote withdrawal, found {sorted(legs)}")
        state = self.actor.view.state
        if state is OrderState.WITHDRAWING:
            if all(m.state == "confirmed" for m in legs.values()):
                hashes = ", ".join(f"{m.leg} tx {m.transaction_hash}" for m in legs.values())
                self.actor.view = self.services.writer.run(repo.withdrawals_confirmed, order_id,
                                                           f"Mixin sent both withdrawals ({hashes})", now)
                state = self.actor.view.state
            else:
                started = min(m.created_at for m in legs.values())
                if now - started > self.cfg.withdrawal_timeout:
                    raise Stuck(self._describe("Mixin has not sent both withdrawals after "
                                               f"{self.cfg.withdrawal_timeout:g}s", legs))
                raise Wait("waiting for Mixin to send the withdrawals", self.cfg.poll_interval)
        if state is not OrderState.DEPOSIT_CONFIRMING:
            return None
        account = self.account()
        for m in legs.values():
            if not m.withdrawal_hash and self.services.wallet is not None:
                try:
                    status = self.services.wallet.status(m.request_id)
                except MixinError:
                    status = None
                if status is not None and status.withdrawal_hash:
                    self.services.writer.run(repo.record_withdrawal_hash, m.request_id, status.withdrawal_hash)
        legs = {m.leg: m for m in repo.order_movements(order_id) if m.kind == "withdrawal"}
        for m in legs.values():
            if m.credited_amount is not None:
                continue
            since_ms = int((m.created_at - 3600) * 1000)
            try:
                deposits = account.fetch_deposits(m.exchange_code, since_ms)
            except ExchangeError as exc:
                raise Wait(f"fetching {m.exchange_code} deposits: {exc}", self.cfg.retry_delay) from None
            records = [DepositRecord(str(d.id), d.txid, d.address, d.tag, d.amount, d.status) for d in deposits]
            match = match_deposit(records, withdrawal_hash=m.withdrawal_hash, address=m.destination, tag=m.tag,
                                  amount=m.amount, claimed=repo.claimed_deposits(m.exchange_account))
            if match.deposit is not None and match.deposit.status == "ok":
                self.services.writer.run(repo.record_credit, m.request_id, match.deposit.deposit_id,
                                         match.deposit.amount, now)
        legs = {m.leg: m for m in repo.order_movements(order_id) if m.kind == "withdrawal"}
        if all(m.credited_amount is not None for m in legs.values()):
            credited = ", ".join(f"{m.credited_amount} {m.exchange_code}" for m in legs.values())
            self.actor.view = self.services.writer.run(repo.open_ledger, order_id,
                                                       f"credited on {self.pair.exchange}: {credited}", now)
            return f"deposit_confirmed — {credited} on {self.pair.exchange} belong to this order"
        sent_at = max((m.confirmed_at or now) for m in legs.values())
        if now - sent_at > self.cfg.deposit_timeout:
            raise Stuck(self._describe(f"the exchange has not credited both deposits after "
                                       f"{self.cfg.deposit_timeout:g}s (funds are in flight: do not refund)", legs))
        raise Wait("waiting for the exchange to credit the deposits", self.cfg.poll_interval)

    @staticmethod
    def _describe(head: str, legs) -> str:
        parts = [f"{m.leg}: {m.amount} {m.exchange_code} to {m.destination}"
                 + (f" tag {m.tag}" if m.tag else "") + f" via {m.network}, request {m.request_id}, "
                 f"state {m.state}, tx {m.transaction_hash or '-'}, withdrawal hash {m.withdrawal_hash or '-'}, "
                 f"deposit {m.deposit_id or 'not seen'}" for m in legs.values()]
        return head + "; " + "; ".join(parts)
