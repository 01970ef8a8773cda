"""Simulation bridge: a fake Mixin withdrawal to a fake exchange deposit address becomes a deposit.

``connect_mixin_to_exchange(safe, exchange)`` installs ``safe.on_withdrawal``. FakeSafe calls it
once per withdrawal output, when the withdrawal hash exists (``withdrawal_delay`` after
finality), with a copy of its record::

    {request_id, transaction_hash, output_index, asset_id, amount (Decimal), address, tag,
     withdrawal_hash, snapshot_id, created_at}

For each record the bridge finds the asset's symbol and chain on the fake Mixin, the exchange
network for that chain (``domain.networks.resolve_network`` over the exchange's own network ids,
``chain_to_network`` overrides first), and the account owning (network, address, tag); then it
calls ``exchange.credit_deposit`` with txid = the withdrawal hash, the full withdrawn amount
(the Mixin fee is a separate output) and the tag. The deposit is pending on the exchange and
turns to success after ``delay`` (default: ``exchange.deposit_delay``).

A withdrawal that would not reach an exchange account (unknown address, right address on the
wrong chain, a coin the exchange does not list, deposits disabled, no tag on a memo network) is
recorded in ``bridge.unmatched``: in the real world those funds are lost or stuck, so tests of
normal flows assert it stays empty. Each withdrawal output is credited at most once, however
often the hook fires. A record that arrives without a hash is watched (gevent) until FakeSafe
fills the hash in.

``world_with_exchange()`` builds ``sim.world.build_world()`` plus a started FakeExchange (markets
BTC/USDT and ETH/USDT; BTC on BTC, ETH on ETH, USDT on ETH/TRX/BSC as Binance names them), an
account for mmflow and the bridge connected, in both directions: the way back
(``sim.return_bridge``, re-exported here) turns a completed exchange withdrawal to one of the bot's
Mixin deposit entries into a deposit snapshot on the fake Mixin (``ExchangeWorld.returns``).
"""
from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Mapping

import gevent
from loguru import logger

from domain.networks import NoUsableNetwork, resolve_network
from sim.fake_exchange import Deposit, FakeExchange, WalletError
from sim.fake_mixin_safe import FakeSafe
from sim.return_bridge import ReturnBridge, ShortArrival, UnmatchedReturn, connect_exchange_to_mixin
from sim.world import World, build_world

__all__ = [
    "ExchangeWorld",
    "MixinExchangeBridge",
    "ReturnBridge",
    "ShortArrival",
    "UnmatchedReturn",
    "UnmatchedWithdrawal",
    "connect_exchange_to_mixin",
    "connect_mixin_to_exchange",
    "world_with_exchange",
]


@dataclass(frozen=True)
class UnmatchedWithdrawal:
    """A withdrawal the exchange would never credit, and why."""

    record: dict
    reason: str


@dataclass(eq=False)  # identity: the hook is compared with safe.on_withdrawal
class MixinExchangeBridge:
    safe: FakeSafe
    exchange: FakeExchange
    chain_to_network: Mapping[str, str] = field(default_factory=dict)
    delay: float | None = None
    hash_poll_interval: float = 0.02
    hash_timeout: float = 60.0

    credited: dict[tuple[str, int], Deposit] = field(default_factory=dict)  # (tx hash, output index) -> deposit
    unmatched: list[UnmatchedWithdrawal] = field(default_factory=list)
    duplicates: int = 0  # hook calls for an output already handled
    hook_calls: int = 0
    errors: list[str] = field(default_factory=list)
    previous_hook: Callable[[dict], None] | None = None

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._handled: set[tuple[str, int]] = set()  # credited or unmatched: decided once
        self._watching: set[tuple[str, int]] = set()

    # ------------------------------------------------------------------ hook

    def on_withdrawal(self, record: dict) -> None:
        """The ``safe.on_withdrawal`` hook (also safe to call by hand, any number of times)."""
        self.hook_calls += 1
        try:
            self._deliver(dict(record))
        finally:
            if self.previous_hook is not None:
                self.previous_hook(record)

    def sweep(self) -> int:
        """Deliver every withdrawal of the safe not handled yet (e.g. made before connecting);
        returns how many were delivered now."""
        before = len(self._handled)
        for record in list(self.safe.withdrawals):
            self._deliver(dict(record))
        return len(self._handled) - before

    def disconnect(self) -> None:
        if self.safe.on_withdrawal == self.on_withdrawal:
            self.safe.on_withdrawal = self.previous_hook

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _key(record: Mapping[str, Any]) -> tuple[str, int]:
        return str(record["transaction_hash"]), int(record["output_index"])

    def _deliver(self, record: dict) -> None:
        key = self._key(record)
        with self._lock:
            if key in self._handled:
                self.duplicates += 1
                return
            if not record.get("withdrawal_hash"):
                known = self._safe_record(key)
                if known is not None and known.get("withdrawal_hash"):
                    record = dict(known)
                else:
                    self._watch(key, record)
                    return
            self._handled.add(key)
            self._watching.discard(key)
        self._credit(key, record)

    def _safe_record(self, key: tuple[str, int]) -> dict | None:
        for rec in self.safe.withdrawals:
            if self._key(rec) == key:
                return rec
        return None

    def _watch(self, key: tuple[str, int], record: dict) -> None:
        if key in self._watching:
            return
        self._watching.add(key)

        def wait_for_hash() -> None:
            deadline = self.exchange.now() + self.hash_timeout
            while key in self._watching:
                known = self._safe_record(key)
                if known is not None and known.get("withdrawal_hash"):
                    self._deliver(dict(known))
                    return
                if self.exchange.now() > deadline:
                    self._watching.discard(key)
                    self.errors.append(f"withdrawal {key}: no withdrawal hash after {self.hash_timeout}s")
                    return
                gevent.sleep(self.hash_poll_interval)

        gevent.spawn(wait_for_hash)

    def _unmatched(self, record: dict, reason: str) -> None:
        logger.warning("bridge: withdrawal {} of {} {} to {!r} (tag {!r}) not credited: {}",
                       record.get("withdrawal_hash"), record.get("amount"), record.get("asset_id"),
                       record.get("address"), record.get("tag"), reason)
        self.unmatched.append(UnmatchedWithdrawal(record, reason))

    def _credit(self, key: tuple[str, int], record: dict) -> None:
        asset = self.safe.fake.assets.get(record["asset_id"])
        if asset is None:
            self._unmatched(record, f"asset {record['asset_id']} is unknown to the fake Mixin")
            return
        symbol, chain_id = asset["symbol"], asset["chain_id"]
        wallet = self.exchange.wallet
        currency = wallet.currencies.get(symbol)
        if currency is None or not currency.networks:
            self._unmatched(record, f"the exchange does not list {symbol}")
            return
        networks = {
            net_id: {"id": net_id, "network": net_id, "deposit": net.deposit_enable, "withdraw": net.withdraw_enable}
            for net_id, net in currency.networks.items()
        }
        try:
            choice = resolve_network(
                asset_id=record["asset_id"], chain_id=chain_id, symbol=symbol, currency_networks=networks,
                overrides=self.chain_to_network,
            )
        except NoUsableNetwork as exc:
            self._unmatched(record, str(exc))
            return
        network = choice.network_code_for_ccxt  # here: the fake's own (binance) network id
        address, tag = str(record["address"]), str(record.get("tag") or "")
        accounts = list(self.exchange.accounts)
        if wallet.find_account(network, address, tag, accounts) is None:
            self._unmatched(record, self._why_not_ours(network, address, tag, accounts))
            return
        amount = record["amount"]
        if not isinstance(amount, Decimal):
            amount = Decimal(str(amount))
        try:
            deposit = self.exchange.credit_deposit(
                address=address, tag=tag or None, coin=symbol, network=network, amount=amount,
                txid=str(record["withdrawal_hash"]), delay=self.delay,
            )
        except (ValueError, KeyError, WalletError) as exc:
            self._unmatched(record, f"the exchange refused the deposit: {exc}")
            return
        self.credited[key] = deposit
        logger.debug("bridge: {} {} on {} -> exchange deposit {} (txid {})", amount, symbol, network, deposit.id,
                     deposit.txid)

    def _why_not_ours(self, network: str, address: str, tag: str, accounts: list[str]) -> str:
        wallet = self.exchange.wallet
        others = sorted({
            net_id for cur in wallet.currencies.values() for net_id in cur.networks
            if net_id != network and wallet.find_account(net_id, address, tag, accounts) is not None
        })
        if others:
            return (f"{address!r} is the exchange's deposit address on {others}, but the withdrawal went over "
                    f"the chain of network {network}")
        if tag:
            if wallet.find_account(network, address, "", accounts) is not None:
                return f"{address!r} on {network} is an exchange address without a tag, the withdrawal had tag {tag!r}"
        else:
            for cur in wallet.currencies.values():
                net = cur.networks.get(network)
                if net is not None and net.needs_memo:
                    return f"{address!r} on {network} needs a tag/memo and the withdrawal had none"
        return f"{address!r} (tag {tag!r}) is not a deposit address of the exchange on {network}"


def connect_mixin_to_exchange(
    safe: FakeSafe,
    exchange: FakeExchange,
    *,
    chain_to_network: Mapping[str, str] | None = None,
    delay: float | None = None,
) -> MixinExchangeBridge:
    """Install the bridge as ``safe.on_withdrawal`` (a hook already there is still called after it).

    ``chain_to_network``: Mixin chain_id (or asset_id) -> exchange network, any spelling
    (``ETH`` or ``ERC20``); the default is ``domain.networks``' table. ``delay``: seconds from the
    Mixin withdrawal hash to the deposit's success on the exchange (None: ``exchange.deposit_delay``)."""
    previous = safe.on_withdrawal
    bridge = MixinExchangeBridge(safe, exchange, dict(chain_to_network or {}), delay, previous_hook=previous)
    safe.on_withdrawal = bridge.on_withdrawal
    return bridge


# --------------------------------------------------------------------------- a world with an exchange


@dataclass
class ExchangeWorld:
    world: World
    exchange: FakeExchange
    api_key: str
    secret: str
    bridge: MixinExchangeBridge
    returns: ReturnBridge | None = None  # the way back: exchange withdrawals -> Mixin deposits

    def ccxt_config(self, **kw: Any) -> dict:
        return self.exchange.ccxt_config(self.api_key, self.secret, **kw)

    def stop(self) -> None:
        self.bridge.disconnect()
        if self.returns is not None:
            self.returns.disconnect()
        self.exchange.stop()
        self.world.fake.stop()

    def __enter__(self) -> "ExchangeWorld":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def fake_exchange_class(venue: str) -> type[FakeExchange]:
    """The fake exchange class of a venue: sim/fake_exchange/<venue>.py defines ``FAKE`` (binance: the base)."""
    if venue == "binance":
        return FakeExchange
    import importlib
    try:
        module = importlib.import_module(f"sim.fake_exchange.{venue}")
    except ImportError as exc:
        raise ValueError(f"no fake exchange for venue {venue!r}") from exc
    return module.FAKE


def world_with_exchange(
    *,
    seed: int = 1,
    deposit_delay: float | None = None,
    chain_to_network: Mapping[str, str] | None = None,
    api_key: str = "mmflow-binance-key",
    secret: str | None = None,
    world: World | None = None,
    return_confirm_delay: float = 0.0,
    venue: str = "binance",
) -> ExchangeWorld:
    """``build_world()`` + a started fake exchange speaking ``venue``'s dialect (binance, mexc, gate, bybit),
    one account, the bridges.

    ``deposit_delay``: seconds from the Mixin withdrawal hash to the exchange deposit's success
    (None: the exchange's default, 1 s). ``return_confirm_delay``: seconds a completed exchange
    withdrawal to the bot's deposit entry stays a pending Mixin deposit before its snapshot.
    The caller stops it with ``ExchangeWorld.stop()``."""
    if return_confirm_delay < 0:
        raise ValueError("return_confirm_delay must be >= 0")
    world = world or build_world()
    if world.safe is None:
        raise ValueError("the world has no FakeSafe (build it with sim.world.build_world)")
    cls = fake_exchange_class(venue)
    net = cls.NETWORK_IDS  # canonical network → the venue's own network id
    exchange = cls(seed=seed).start()
    try:
        exchange.add_market("BTC/USDT", "BTC", "USDT", tick_size="0.01", step_size="0.00001", min_qty="0.00001",
                            min_notional="5", mid="60000")
        exchange.add_market("ETH/USDT", "ETH", "USDT", tick_size="0.01", step_size="0.0001", min_qty="0.0001",
                            min_notional="5", mid="3000")
        exchange.add_currency("BTC", [{"network": net["BTC"], "withdrawFee": "0.0002", "withdrawMin": "0.001",
                                       "isDefault": True}], name="Bitcoin")
        exchange.add_currency("ETH", [{"network": net["ERC20"], "withdrawFee": "0.0008", "withdrawMin": "0.0016",
                                       "isDefault": True}], name="Ethereum")
        exchange.add_currency("USDT", [
            {"network": net["ERC20"], "withdrawFee": "3", "withdrawMin": "10", "isDefault": True},
            {"network": net["TRC20"], "withdrawFee": "1", "withdrawMin": "10", "withdrawIntegerMultiple": "0.000001"},
            {"network": net["BEP20"], "withdrawFee": "0.5", "withdrawMin": "10"},
        ], name="TetherUS")
        if deposit_delay is not None:
            exchange.deposit_delay = deposit_delay
        secret = secret or secrets.token_hex(32)
        exchange.add_account(api_key, secret)
        bridge = connect_mixin_to_exchange(world.safe, exchange, chain_to_network=chain_to_network)
        returns = connect_exchange_to_mixin(exchange, world.fake, confirm_delay=return_confirm_delay,
                                            network_overrides=chain_to_network)
    except BaseException:
        exchange.stop()
        raise
    return ExchangeWorld(world=world, exchange=exchange, api_key=api_key, secret=secret, bridge=bridge,
                         returns=returns)
