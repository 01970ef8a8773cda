"""Simulation return bridge: a fake-exchange withdrawal to a Mixin deposit entry becomes a Mixin deposit.

The way back of ``sim.bridge``: ``connect_exchange_to_mixin(exchange, fake)`` registers a withdrawal
listener on the FakeExchange. When a withdrawal COMPLETES there (status 6, txid set; the exchange's
background ticker makes that happen on time without any request), the bridge

1. looks the withdrawal's (address, tag) up among the deposit entries the fake Mixin issued
   (``fake.find_deposit_entry``; EVM hex in any case); none -> ``unmatched`` (in the real world the
   funds went to somebody else's address, or to a shared address without the tag: lost);
2. finds the fake Mixin asset with the withdrawal's coin as symbol on the entry's chain, and checks
   that the exchange network the withdrawal used is the one ``domain.networks.resolve_network``
   picks for that asset/chain among the exchange currency's networks (``network_overrides`` first,
   as ``sim.bridge`` does the other way); a mismatch (USDT over TRX to an Ethereum address) ->
   ``unmatched``;
3. calls ``fake.external_deposit(bot, asset, withdrawal.net_amount, destination, tag,
   deposit_hash=withdrawal.txid, delay=confirm_delay)``: pending on ``/safe/deposits`` for
   ``confirm_delay`` seconds, then the bot's deposit snapshot (and its UTXO).

Each withdrawal is decided once (delivered or unmatched) however often the hook fires
(``duplicates`` counts the repeats); ``delivered[withdrawal_id]`` is what ``external_deposit``
returned (the snapshot, or the pending deposit when ``confirm_delay`` > 0).

Faults for tests and the demo: ``short_next(n, by)`` makes the next ``n`` deliveries arrive ``by``
less than the net amount (recorded in ``shorted``). Exchange-side faults (refused, stuck, failed
withdrawals) are ``FakeExchange.inject_withdrawal_fault``.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Mapping

from loguru import logger

from domain.networks import CHAIN_NAMES, NoUsableNetwork, resolve_network
from sim.fake_exchange import FakeExchange, Withdrawal
from sim.fake_exchange.wallet import WITHDRAW_COMPLETED
from sim.fake_mixin import FakeMixin, deposit_destination

__all__ = [
    "ReturnBridge",
    "ShortArrival",
    "UnmatchedReturn",
    "connect_exchange_to_mixin",
]


@dataclass(frozen=True)
class UnmatchedReturn:
    """A completed exchange withdrawal that never reaches the bot on Mixin, and why."""

    withdrawal_id: str
    record: dict  # id, account, coin, network, address, tag, amount, fee, net_amount, txid, withdraw_order_id
    reason: str


@dataclass(frozen=True)
class ShortArrival:
    """A delivery that arrived ``by`` less than the withdrawal's net amount (injected)."""

    withdrawal_id: str
    expected: Decimal
    arrived: Decimal
    by: Decimal


def _record(wd: Withdrawal) -> dict:
    return {
        "id": wd.id, "account": wd.account, "coin": wd.coin, "network": wd.network, "address": wd.address,
        "tag": wd.tag, "amount": wd.amount, "fee": wd.fee, "net_amount": wd.net_amount, "txid": wd.txid,
        "withdraw_order_id": wd.withdraw_order_id,
    }


def _chain_name(chain_id: str) -> str:
    name = CHAIN_NAMES.get(chain_id)
    return f"{name} ({chain_id})" if name else f"chain {chain_id}"


@dataclass(eq=False)  # identity: the hook is found again by remove_withdrawal_listener
class ReturnBridge:
    exchange: FakeExchange
    fake: FakeMixin
    confirm_delay: float = 0.0
    network_overrides: Mapping[str, str] = field(default_factory=dict)

    delivered: dict[str, dict] = field(default_factory=dict)  # withdrawal id -> snapshot or pending deposit
    unmatched: list[UnmatchedReturn] = field(default_factory=list)
    shorted: list[ShortArrival] = field(default_factory=list)
    duplicates: int = 0  # hook calls for a withdrawal already decided
    hook_calls: int = 0
    ignored: int = 0  # hook calls for a withdrawal that is not completed (nothing went on chain)
    connected: bool = False

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._handled: set[str] = set()
        self._shorts: list[Decimal] = []

    # ------------------------------------------------------------------ hook & controls

    def on_withdrawal(self, wd: Withdrawal) -> None:
        """The exchange's withdrawal listener (also safe to call by hand, any number of times)."""
        self.hook_calls += 1
        self._deliver(wd)

    def sweep(self) -> int:
        """Decide every completed withdrawal of the exchange not decided yet (e.g. completed while
        disconnected); returns how many were decided now."""
        before = len(self._handled)
        for wd in list(self.exchange.wallet.withdrawals):
            if wd.status == WITHDRAW_COMPLETED and wd.id not in self._handled:
                self._deliver(wd)
        return len(self._handled) - before

    def short_next(self, n: int = 1, by: Decimal | str = Decimal("1")) -> None:
        """The next ``n`` deliveries arrive ``by`` less than the withdrawal's net amount."""
        if isinstance(by, float):
            raise TypeError("by must be Decimal or str, not float")
        amount = Decimal(str(by))
        if n < 1 or not amount.is_finite() or amount <= 0:
            raise ValueError("n must be >= 1 and by > 0")
        with self._lock:
            self._shorts.extend([amount] * n)

    def disconnect(self) -> None:
        self.exchange.remove_withdrawal_listener(self.on_withdrawal)
        self.connected = False

    # ------------------------------------------------------------------ internals

    def _deliver(self, wd: Withdrawal) -> None:
        if wd.status != WITHDRAW_COMPLETED or not wd.txid:
            self.ignored += 1
            return
        with self._lock:
            if wd.id in self._handled:
                self.duplicates += 1
                return
            self._handled.add(wd.id)
            self._decide(wd)

    def _unmatched(self, wd: Withdrawal, reason: str) -> None:
        logger.warning("return bridge: exchange withdrawal {} of {} {} over {} to {!r} (tag {!r}, txid {}) "
                       "does not reach Mixin: {}", wd.id, wd.net_amount, wd.coin, wd.network, wd.address, wd.tag,
                       wd.txid, reason)
        self.unmatched.append(UnmatchedReturn(wd.id, _record(wd), reason))

    def _decide(self, wd: Withdrawal) -> None:
        fake = self.fake
        found = fake.find_deposit_entry(wd.address, wd.tag)
        if found is None:
            self._unmatched(wd, self._why_no_entry(wd))
            return
        destination, tag, entry = found
        chain_id = entry["chain_id"]
        asset = next((a for a in fake.assets.values() if a["symbol"] == wd.coin and a["chain_id"] == chain_id), None)
        if asset is None:
            self._unmatched(wd, f"the fake Mixin has no {wd.coin} asset on {_chain_name(chain_id)}, the chain of "
                                f"the deposit entry {destination!r}")
            return
        currency = self.exchange.wallet.currencies.get(wd.coin)
        networks = {
            net_id: {"id": net_id, "network": net_id, "withdraw": net.withdraw_enable}
            for net_id, net in (currency.networks.items() if currency is not None else ())
        }
        try:
            choice = resolve_network(asset_id=asset["asset_id"], chain_id=chain_id, symbol=wd.coin,
                                     currency_networks=networks, overrides=self.network_overrides)
        except NoUsableNetwork as exc:
            self._unmatched(wd, f"no exchange network reaches {_chain_name(chain_id)}: {exc}")
            return
        if choice.network_code_for_ccxt != wd.network:
            self._unmatched(wd, f"{wd.coin} was sent over the exchange's {wd.network} network to {destination!r}, a "
                                f"deposit address on {_chain_name(chain_id)} (reached over "
                                f"{choice.network_code_for_ccxt}): lost")
            return
        bot_id = next((m for m in entry["members"] if m in fake.bots), None)
        if bot_id is None:
            self._unmatched(wd, f"the deposit entry {destination!r} (tag {tag!r}) belongs to no bot of the fake")
            return
        expected = wd.net_amount
        short = self._shorts[0] if self._shorts else None
        amount = expected if short is None else expected - short
        if amount <= 0:
            self._shorts.pop(0)
            self.shorted.append(ShortArrival(wd.id, expected, Decimal(0), short))
            self._unmatched(wd, f"short arrival: {short} short of {expected}, nothing arrives")
            return
        sender = deposit_destination(chain_id, f"exchange-hot-wallet|{self.exchange.seed}|{wd.network}".encode())
        try:
            result = fake.external_deposit(bot_id, asset["asset_id"], amount, destination=destination, tag=tag,
                                           deposit_hash=wd.txid, delay=self.confirm_delay, sender=sender)
        except (KeyError, ValueError) as exc:
            self._unmatched(wd, f"the fake Mixin refused the deposit: {exc}")
            return
        if short is not None:
            self._shorts.pop(0)
            self.shorted.append(ShortArrival(wd.id, expected, amount, short))
            logger.info("return bridge: withdrawal {} arrives short: {} of {}", wd.id, amount, expected)
        self.delivered[wd.id] = result
        logger.debug("return bridge: exchange withdrawal {} ({} {} over {}) -> Mixin deposit {} to {!r} (tag {!r})",
                     wd.id, amount, wd.coin, wd.network, wd.txid, destination, tag)

    def _why_no_entry(self, wd: Withdrawal) -> str:
        address, tag = wd.address, wd.tag or ""
        same = [(d, t) for (d, t) in self.fake.deposit_entries
                if d == address or (address.lower().startswith("0x") and d == address.lower())]
        if same:
            tags = sorted(t for _d, t in same)
            if tags == [""]:
                return f"{address!r} is a Mixin deposit address without a tag, the withdrawal had tag {tag!r}"
            if not tag:
                return f"{address!r} is a shared Mixin deposit address that needs a tag, the withdrawal had none"
            return f"{address!r} is a shared Mixin deposit address; tag {tag!r} is none of its entries"
        return f"{address!r} (tag {tag!r}) is not a deposit address the fake Mixin issued"


def connect_exchange_to_mixin(
    exchange: FakeExchange,
    fake: FakeMixin,
    *,
    confirm_delay: float = 0.0,
    network_overrides: Mapping[str, str] | None = None,
) -> ReturnBridge:
    """Register the return bridge as a withdrawal listener of ``exchange``.

    ``confirm_delay``: seconds (of the fake Mixin's clock) a delivered deposit stays pending on
    ``/safe/deposits`` before it becomes the bot's snapshot. ``network_overrides``: Mixin chain_id
    (or asset_id) -> exchange network, as in ``sim.bridge.connect_mixin_to_exchange``."""
    if confirm_delay < 0:
        raise ValueError("confirm_delay must be >= 0")
    bridge = ReturnBridge(exchange, fake, float(confirm_delay), dict(network_overrides or {}))
    exchange.add_withdrawal_listener(bridge.on_withdrawal)
    bridge.connected = True
    return bridge
