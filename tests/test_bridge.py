"""sim.bridge: a Mixin withdrawal (real SafeWallet + MixinClient over HTTP against the fake Mixin)
to a deposit address obtained with ccxt from the fake exchange shows up in ccxt ``fetch_deposits``."""
from __future__ import annotations

from decimal import Decimal

import ccxt
import gevent
import pytest

from domain.ids import unique_object_id
from domain.networks import resolve_network
from integrations.mixin.client import MixinClient
from integrations.mixin.safe_wallet import SafeWallet
from sim.bridge import ExchangeWorld, connect_mixin_to_exchange, world_with_exchange
from sim.world import BTC, ETH, ETH_CHAIN, USDT_ERC20, XIN
from tests.support import wait_until

TRON_CHAIN = "25dabac5-056a-48ff-b9f9-f67395dc407c"
USDT_TRC20 = "b91e18ff-a9ae-3dc7-8679-e935d9a4b34b"
XRP = "23dfb5a5-5d7b-48b6-905f-3970e3176e27"  # native: asset id == chain id


class Env:
    def __init__(self, ew: ExchangeWorld) -> None:
        self.ew = ew
        self.world = ew.world
        self.safe = ew.world.safe
        self.fx = ew.exchange
        self.bridge = ew.bridge
        self.client = MixinClient(self.world.fake.url, self.world.keystore, backoff_base=0.01, timeout=5)
        self.wallet = SafeWallet(self.client, self.world.keystore)
        self.payer = self.world.new_user()
        self._ex: ccxt.binance | None = None
        self.credit_calls: list[dict] = []
        original = self.fx.credit_deposit

        def spy(**kw):  # count what the bridge asks the exchange for (the exchange dedups on its own too)
            self.credit_calls.append(kw)
            return original(**kw)

        self.fx.credit_deposit = spy

    @property
    def ex(self) -> ccxt.binance:
        if self._ex is None:
            self._ex = ccxt.binance(self.ew.ccxt_config())
            self._ex.load_markets()
        return self._ex

    def fund(self, asset_id: str, amount: str) -> None:
        self.world.pay(self.payer, asset_id, amount, b"funding")

    def deposit_address(self, asset_id: str) -> dict:
        asset = self.client.read_asset(asset_id)
        choice = resolve_network(asset_id=asset_id, chain_id=asset["chain_id"], symbol=asset["symbol"],
                                 currency_networks=self.ex.currencies[asset["symbol"]]["networks"], overrides={})
        return self.ex.fetch_deposit_address(asset["symbol"], {"network": choice.network_code_for_ccxt})

    def withdraw(self, label: str, asset_id: str, amount: str, address: str, tag: str | None = "") -> str:
        request_id = unique_object_id("test-bridge:", label)
        prepared = self.wallet.prepare_withdrawal(request_id, asset_id, Decimal(amount), address, tag or "")
        statuses = self.wallet.submit(prepared)
        assert statuses[0].state == "spent"
        return request_id

    def withdrawal_hash(self, request_id: str) -> str:
        return wait_until(lambda: self.wallet.status(request_id).withdrawal_hash, timeout=5,
                          message="withdrawal hash")

    def deposits(self, code: str) -> list[dict]:
        return self.ex.fetch_deposits(code)


@pytest.fixture
def env():
    ew = world_with_exchange(seed=5)
    e = Env(ew)
    try:
        yield e
    finally:
        e.client.close()
        ew.stop()


def test_world_with_exchange_shape(env):
    ew = env.ew
    assert ew.api_key in ew.exchange.accounts and ew.exchange.accounts[ew.api_key].secret == ew.secret
    assert env.safe.on_withdrawal == env.bridge.on_withdrawal
    assert set(env.ex.markets) == {"BTC/USDT", "ETH/USDT"}
    assert sorted(env.ex.currencies["USDT"]["networks"]) == ["BEP20", "ERC20", "TRC20"]
    assert list(env.ex.currencies["BTC"]["networks"]) == ["BTC"]
    assert list(env.ex.currencies["ETH"]["networks"]) == ["ERC20"]
    assert env.ex.fetch_balance()["total"].get("USDT", 0) == 0


def test_withdrawal_becomes_a_pending_then_ok_deposit(env):
    env.safe.withdrawal_delay = 0.3
    env.bridge.delay = 0.8
    env.fund(USDT_ERC20, "100")
    env.fund(ETH, "1")
    address = env.deposit_address(USDT_ERC20)
    assert address["network"] == "ERC20" and address["tag"] is None

    request_id = env.withdraw("usdt-1", USDT_ERC20, "25.5", address["address"])
    assert env.deposits("USDT") == []  # no withdrawal hash yet: nothing on chain
    whash = env.withdrawal_hash(request_id)

    [pending] = wait_until(lambda: env.deposits("USDT"), timeout=5, message="deposit listed")
    assert pending["status"] == "pending"
    assert pending["txid"] == whash
    assert Decimal(pending["info"]["amount"]) == Decimal("25.5")  # the Mixin fee (in ETH) is separate
    assert (pending["address"], pending["network"], pending["currency"]) == (address["address"], "ERC20", "USDT")
    assert env.ex.fetch_balance()["total"].get("USDT", 0) == 0

    [done] = wait_until(lambda: [d for d in env.deposits("USDT") if d["status"] == "ok"], timeout=5,
                        message="deposit ok")
    assert done["id"] == pending["id"] and done["txid"] == whash
    assert env.fx.balance(env.ew.api_key, "USDT") == (Decimal("25.5"), Decimal(0))
    assert env.bridge.unmatched == [] and len(env.credit_calls) == 1
    assert env.world.fake.balance(env.world.bot_id, ETH) == Decimal("1") - Decimal("0.002")


def test_tag_is_preserved_and_a_missing_tag_is_unmatched(env):
    env.world.fake.add_asset(XRP, "XRP", XRP, price_usd="0.5")
    env.world.fake.set_withdrawal_fees(XRP, [(XRP, "0.1")])
    env.fx.add_currency("XRP", [{"network": "XRP", "withdrawFee": "0.2", "withdrawMin": "1"}], name="Ripple")
    env.bridge.delay = 0
    env.fund(XRP, "100")
    address = env.deposit_address(XRP)
    assert address["network"] == "XRP" and address["tag"]

    whash = env.withdrawal_hash(env.withdraw("xrp-1", XRP, "15", address["address"], address["tag"]))
    [dep] = wait_until(lambda: env.deposits("XRP"), timeout=5, message="XRP deposit")
    assert (dep["tag"], dep["txid"], dep["status"]) == (address["tag"], whash, "ok")
    assert Decimal(dep["info"]["amount"]) == Decimal("15")

    env.withdraw("xrp-no-tag", XRP, "5", address["address"], "")
    [miss] = env.bridge.unmatched
    assert "tag" in miss.reason and miss.record["amount"] == Decimal("5")
    assert len(env.deposits("XRP")) == 1


def test_credited_once_even_if_the_hook_fires_twice(env):
    env.bridge.delay = 0
    env.fund(BTC, "1")
    address = env.deposit_address(BTC)
    request_id = env.withdraw("btc-1", BTC, "0.3", address["address"])
    whash = env.withdrawal_hash(request_id)
    [record] = env.safe.withdrawals
    env.safe.on_withdrawal(dict(record))  # the hook again, e.g. a redelivery
    env.bridge.on_withdrawal(dict(record))
    assert env.bridge.sweep() == 0  # sweeping sees it once more
    assert env.bridge.duplicates == 3 and len(env.credit_calls) == 1
    [dep] = env.deposits("BTC")
    assert dep["txid"] == whash and dep["status"] == "ok"
    assert env.fx.balance(env.ew.api_key, "BTC")[0] == Decimal("0.3")


def test_a_record_seen_before_its_hash_is_credited_when_the_hash_exists(env):
    env.safe.withdrawal_delay = 0.4
    env.bridge.delay = 0
    env.fund(BTC, "1")
    address = env.deposit_address(BTC)
    request_id = env.withdraw("btc-early", BTC, "0.2", address["address"])
    [record] = env.safe.withdrawals
    assert record["withdrawal_hash"] is None
    # as if the hook fired at creation only: FakeSafe will not call the bridge again
    env.bridge.disconnect()
    env.bridge.on_withdrawal(dict(record))  # early: nothing to credit yet, the bridge watches
    assert env.credit_calls == [] and env.deposits("BTC") == []
    whash = env.withdrawal_hash(request_id)
    wait_until(lambda: env.credit_calls, timeout=5, message="credit")
    assert len(env.credit_calls) == 1 and env.credit_calls[0]["txid"] == whash
    env.bridge.on_withdrawal(dict(env.safe.withdrawals[0]))  # a late hook: a duplicate
    gevent.sleep(0.05)
    assert len(env.credit_calls) == 1 and env.bridge.duplicates == 1
    assert [d["txid"] for d in env.deposits("BTC")] == [whash]


def test_chain_not_symbol_picks_the_network(env):
    """USDT-TRC20 and USDT-ERC20 share the symbol; each is credited on its own chain's network."""
    env.world.fake.add_asset(USDT_TRC20, "USDT", TRON_CHAIN, precision=6, price_usd="1")
    env.world.fake.set_withdrawal_fees(USDT_TRC20, [(USDT_TRC20, "1")])
    env.bridge.delay = 0
    env.fund(USDT_TRC20, "50")
    env.fund(USDT_ERC20, "50")
    env.fund(ETH, "1")
    trc, erc = env.deposit_address(USDT_TRC20), env.deposit_address(USDT_ERC20)
    assert (trc["network"], erc["network"]) == ("TRC20", "ERC20") and trc["address"].startswith("T")
    env.withdrawal_hash(env.withdraw("trc", USDT_TRC20, "20", trc["address"]))
    env.withdrawal_hash(env.withdraw("erc", USDT_ERC20, "30", erc["address"]))
    got = wait_until(lambda: len(env.deposits("USDT")) == 2 and env.deposits("USDT"), timeout=5, message="2 deposits")
    assert sorted((d["network"], d["address"], Decimal(d["info"]["amount"])) for d in got) == [
        ("ERC20", erc["address"], Decimal("30")), ("TRC20", trc["address"], Decimal("20"))]
    assert env.bridge.unmatched == []


def test_unknown_address_wrong_chain_and_unlisted_coin_are_unmatched(env):
    env.bridge.delay = 0
    env.fund(BTC, "1")
    env.fund(USDT_ERC20, "100")
    env.fund(XIN, "5")
    env.fund(ETH, "1")
    trc = env.ex.fetch_deposit_address("USDT", {"network": "TRC20"})
    erc = env.ex.fetch_deposit_address("USDT", {"network": "ERC20"})

    env.withdrawal_hash(env.withdraw("nowhere", BTC, "0.1", "bc1qnotanexchangeaddress000000000000000000"))
    env.withdrawal_hash(env.withdraw("wrong-chain", USDT_ERC20, "10", trc["address"]))
    env.withdrawal_hash(env.withdraw("unlisted", XIN, "1", erc["address"]))

    reasons = [u.reason for u in env.bridge.unmatched]
    assert len(reasons) == 3, reasons
    assert "not a deposit address" in reasons[0]
    assert "TRX" in reasons[1] and "ETH" in reasons[1]
    assert "XIN" in reasons[2]
    assert [u.record["withdrawal_hash"] for u in env.bridge.unmatched] == [
        w["withdrawal_hash"] for w in env.safe.withdrawals]
    assert env.credit_calls == [] and env.deposits("USDT") == [] and env.deposits("BTC") == []
    env.safe.on_withdrawal(dict(env.safe.withdrawals[0]))  # decided once: not recorded twice
    assert len(env.bridge.unmatched) == 3


def test_chain_override_and_sweep_of_earlier_withdrawals():
    with world_with_exchange(seed=6, chain_to_network={ETH_CHAIN: "BSC"}, deposit_delay=0) as ew:
        env = Env(ew)
        try:
            env.fund(USDT_ERC20, "100")
            env.fund(ETH, "1")
            bsc = env.ex.fetch_deposit_address("USDT", {"network": "BEP20"})
            env.withdrawal_hash(env.withdraw("override", USDT_ERC20, "10", bsc["address"]))
            [dep] = wait_until(lambda: env.deposits("USDT"), timeout=5, message="deposit")
            assert dep["network"] == "BEP20" and dep["status"] == "ok"

            env.bridge.disconnect()
            assert env.safe.on_withdrawal is None
            whash = env.withdrawal_hash(env.withdraw("before", USDT_ERC20, "7", bsc["address"]))
            assert len(env.deposits("USDT")) == 1
            assert env.bridge.sweep() == 1 and env.bridge.sweep() == 0
            assert whash in [d["txid"] for d in env.deposits("USDT")]
            again = connect_mixin_to_exchange(env.safe, env.fx)  # default table: ERC20 to a BSC address
            assert env.safe.on_withdrawal == again.on_withdrawal
            env.withdrawal_hash(env.withdraw("default", USDT_ERC20, "5", bsc["address"]))
            assert len(again.unmatched) == 1 and "BSC" in again.unmatched[0].reason
        finally:
            env.client.close()
