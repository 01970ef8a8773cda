"""sim.return_bridge: a withdrawal from the fake exchange (the real ccxt.binance through ExchangeAccount)
to the bot's Mixin deposit entry (MixinClient against the fake Mixin) arrives as a deposit snapshot;
wrong chains and tags are unmatched; exchange-side faults (reject, stuck, fail_later) and short
arrivals behave as specified."""
from __future__ import annotations

import contextlib
from decimal import Decimal

import pytest

from domain.exchange_config import ExchangeAccountConfig
from integrations.exchange.account import ExchangeAccount
from integrations.exchange.errors import DefinitiveError
from integrations.mixin.client import DepositEntry, MixinClient
from sim.bridge import ExchangeWorld, ShortArrival, world_with_exchange
from sim.fake_exchange.wallet import WITHDRAW_COMPLETED
from sim.world import ETH_CHAIN, USDT_ERC20
from tests.support import wait_until

D = Decimal
TRON_CHAIN = "25dabac5-056a-48ff-b9f9-f67395dc407c"
USDT_TRC20 = "b91e18ff-a9ae-3dc7-8679-e935d9a4b34b"
XRP = "23dfb5a5-5d7b-48b6-905f-3970e3176e27"  # native: asset id == chain id
USDT_ETH_FEE = D("3")  # the exchange's USDT withdrawal fee on ETH (sim.bridge.world_with_exchange)


class Env:
    def __init__(self, ew: ExchangeWorld) -> None:
        self.ew = ew
        self.fx = ew.exchange
        self.fake = ew.world.fake
        self.safe = ew.world.safe
        self.bot = ew.world.bot_id
        self.returns = ew.returns
        self.client = MixinClient(self.fake.url, ew.world.keystore, max_attempts=1, timeout=5)
        self.account = ExchangeAccount(ExchangeAccountConfig(
            account_id="fake-binance", ccxt_id="binance", api_key=ew.api_key, secret=ew.secret,
            urls={"api": self.fx.url}))
        self.fx.withdraw_delay = 0.2
        self.fx.credit(ew.api_key, "USDT", "1000")

    def close(self) -> None:
        self.account.close()
        self.client.close()

    def entry(self, chain_id: str = ETH_CHAIN) -> DepositEntry:
        return self.client.primary_deposit_entry(chain_id)

    def withdraw(self, client_id: str, amount: str, entry_or_address, network: str = "ERC20", code: str = "USDT",
                 tag: str | None = None):
        if isinstance(entry_or_address, DepositEntry):
            address, tag = entry_or_address.destination, (entry_or_address.tag or None)
        else:
            address = entry_or_address
        return self.account.withdraw(code, D(amount), address, tag, network, client_id=client_id)

    def deposit_snapshots(self, asset_id: str = USDT_ERC20) -> list[dict]:
        return [s for s in self.client.safe_snapshots(asset=asset_id, order="ASC") if s.get("deposit")]

    def wait_snapshots(self, n: int, asset_id: str = USDT_ERC20) -> list[dict]:
        return wait_until(lambda: len(self.deposit_snapshots(asset_id)) >= n and self.deposit_snapshots(asset_id),
                          timeout=5, message=f"{n} deposit snapshot(s)")

    def exchange_usdt(self) -> Decimal:
        return self.fx.balance(self.ew.api_key, "USDT")[0]

    def withdrawal(self, withdrawal_id: str):
        return next(w for w in self.fx.withdrawals_of(self.ew.api_key) if w.id == withdrawal_id)


@contextlib.contextmanager
def make_env(**kw):
    ew = world_with_exchange(seed=9, **kw)
    env = Env(ew)
    try:
        yield env
    finally:
        env.close()
        ew.stop()


@pytest.fixture
def env():
    with make_env() as e:
        yield e


# --------------------------------------------------------------------------- the way back


def test_exchange_withdrawal_arrives_as_a_mixin_deposit(env):
    assert env.returns is not None and env.returns.connected
    entry = env.entry()
    w = env.withdraw("ret-usdt-1", "50", entry)
    assert env.exchange_usdt() == D("950")
    [snap] = env.wait_snapshots(1)  # the exchange's ticker completes it: no request needed on its side

    done = env.account.find_withdrawal("ret-usdt-1", "USDT")
    assert done is not None and done.id == w.id and done.status == "ok" and done.txid
    assert done.amount == D("47") and done.fee == USDT_ETH_FEE  # binance reports the net amount
    assert D(snap["amount"]) == D("50") - USDT_ETH_FEE
    assert snap["opponent_id"] == "" and snap["withdrawal"] is None
    assert snap["deposit"]["deposit_hash"] == done.txid
    assert (snap["deposit"]["destination"], snap["deposit"]["tag"]) == (entry.destination, "")
    assert env.returns.delivered[w.id]["snapshot_id"] == snap["snapshot_id"]
    assert env.returns.unmatched == [] and env.returns.shorted == []
    assert env.fake.balance(env.bot, USDT_ERC20) == D("47")
    assert env.safe.unspent_total(env.bot, USDT_ERC20) == D("47")  # spendable by the bot
    assert [x.id for x in env.fx.withdrawals_of(env.ew.api_key)] == [w.id]


def test_confirm_delay_shows_a_pending_deposit_first():
    with make_env(return_confirm_delay=0.6) as env:
        entry = env.entry()
        w = env.withdraw("ret-pending", "20", entry)
        [pending] = wait_until(env.client.pending_deposits, timeout=5, message="pending deposit")
        txid = env.withdrawal(w.id).txid
        assert pending.transaction_hash == txid and pending.amount == D("17")
        assert pending.destination == entry.destination and pending.asset_id == USDT_ERC20
        assert env.deposit_snapshots() == [] and env.fake.balance(env.bot, USDT_ERC20) == 0
        assert env.returns.delivered[w.id]["state"] == "pending"
        [snap] = env.wait_snapshots(1)
        assert snap["deposit"]["deposit_hash"] == txid and D(snap["amount"]) == D("17")
        assert env.client.pending_deposits() == []


def test_a_hook_firing_twice_delivers_once(env):
    w = env.withdraw("ret-twice", "30", env.entry())
    env.wait_snapshots(1)
    record = env.withdrawal(w.id)
    assert record.status == WITHDRAW_COMPLETED
    env.returns.on_withdrawal(record)
    env.returns.on_withdrawal(record)
    assert env.returns.sweep() == 0
    assert env.returns.duplicates == 2 and list(env.returns.delivered) == [w.id]
    assert len(env.deposit_snapshots()) == 1 and len(env.fake.external_deposits) == 1
    assert env.fake.balance(env.bot, USDT_ERC20) == D("27")


def test_chain_not_symbol_picks_the_mixin_asset(env):
    env.fake.add_asset(USDT_TRC20, "USDT", TRON_CHAIN, precision=6, price_usd="1")
    tron = env.entry(TRON_CHAIN)
    assert tron.destination.startswith("T")
    env.withdraw("ret-trc", "20", tron, network="TRC20")  # TRX fee 1
    env.withdraw("ret-erc", "20", env.entry())  # ETH fee 3
    [trc] = env.wait_snapshots(1, USDT_TRC20)
    [erc] = env.wait_snapshots(1, USDT_ERC20)
    assert (D(trc["amount"]), D(erc["amount"])) == (D("19"), D("17"))
    assert trc["deposit"]["destination"] == tron.destination
    assert env.returns.unmatched == []


def test_wrong_chain_and_unknown_address_are_unmatched(env):
    entry = env.entry()
    wrong = env.withdraw("ret-bsc", "20", entry, network="BEP20")  # an EVM address, but BSC is not Ethereum
    nowhere = env.withdraw("ret-nowhere", "15", "0x" + "77" * 20)
    wait_until(lambda: len(env.returns.unmatched) == 2, timeout=5, message="2 unmatched")
    by_id = {u.withdrawal_id: u for u in env.returns.unmatched}
    assert "BSC" in by_id[wrong.id].reason and "Ethereum" in by_id[wrong.id].reason
    assert by_id[wrong.id].record["txid"] == env.withdrawal(wrong.id).txid
    assert "not a deposit address" in by_id[nowhere.id].reason
    assert env.returns.delivered == {} and env.deposit_snapshots() == []
    assert env.fake.balance(env.bot, USDT_ERC20) == 0
    assert env.exchange_usdt() == D("965")  # the exchange sent it: in the real world it is lost
    env.returns.on_withdrawal(env.withdrawal(wrong.id))  # decided once
    assert len(env.returns.unmatched) == 2 and env.returns.duplicates == 1


def test_tag_chain_needs_the_right_tag(env):
    env.fake.add_asset(XRP, "XRP", XRP, price_usd="0.5")
    env.fake.set_chain_tag_required(XRP)
    env.fx.add_currency("XRP", [{"network": "XRP", "withdrawFee": "0.2", "withdrawMin": "1"}], name="Ripple")
    env.fx.credit(env.ew.api_key, "XRP", "100")  # before the account loads its markets (first withdraw)
    entry = env.entry(XRP)
    assert entry.tag
    ok = env.withdraw("ret-xrp", "10", entry, network="XRP", code="XRP")
    [snap] = env.wait_snapshots(1, XRP)
    assert (snap["deposit"]["tag"], D(snap["amount"])) == (entry.tag, D("9.8"))
    assert list(env.returns.delivered) == [ok.id]
    # ccxt itself refuses an XRP withdrawal without a tag; a wrong tag goes out and is lost
    wrong_tag = "12345" if entry.tag != "12345" else "54321"
    mistagged = env.withdraw("ret-xrp-badtag", "5", entry.destination, network="XRP", code="XRP", tag=wrong_tag)
    wait_until(lambda: env.returns.unmatched, timeout=5, message="unmatched")
    [miss] = env.returns.unmatched
    assert miss.withdrawal_id == mistagged.id and "shared" in miss.reason and wrong_tag in miss.reason
    assert env.fake.balance(env.bot, XRP) == D("9.8")


# --------------------------------------------------------------------------- faults


def test_reject_fault_refuses_and_moves_nothing(env):
    env.fx.inject_withdrawal_fault("reject")
    with pytest.raises(DefinitiveError) as err:
        env.withdraw("ret-rejected", "50", env.entry())
    assert err.value.executed is False and "4019" in str(err.value.cause)
    assert env.exchange_usdt() == D("1000") and env.fx.withdrawals_of(env.ew.api_key) == []
    assert env.fx.withdrawal_faults_applied == [("reject", None)]
    assert env.account.find_withdrawal("ret-rejected", "USDT") is None
    env.withdraw("ret-after-reject", "50", env.entry())  # the fault is used up
    assert env.exchange_usdt() == D("950")
    env.wait_snapshots(1)


def test_reject_fault_only_for_its_coin(env):
    env.fx.inject_withdrawal_fault("reject", count=2, coin="BTC")
    env.withdraw("ret-usdt-not-btc", "20", env.entry())
    assert env.fx.withdrawal_faults_applied == [] and env.fx.withdrawal_faults[0].remaining == 2
    env.wait_snapshots(1)


def test_stuck_fault_stays_pending_until_finished_by_hand(env):
    entry = env.entry()
    env.fx.inject_withdrawal_fault("stuck")
    stuck = env.withdraw("ret-stuck", "40", entry)
    normal = env.withdraw("ret-normal", "20", entry)
    [snap] = env.wait_snapshots(1)  # the later, normal withdrawal completed and arrived...
    assert D(snap["amount"]) == D("17")
    # ...while the earlier, stuck one is still processing, debited, and nothing of it reached Mixin
    assert env.account.find_withdrawal("ret-stuck", "USDT").status == "pending"
    assert env.account.find_withdrawal("ret-normal", "USDT").status == "ok"
    assert env.exchange_usdt() == D("940") and list(env.returns.delivered) == [normal.id]
    assert env.fx.withdrawal_faults_applied == [("stuck", stuck.id)]

    env.fx.finish_withdrawal(stuck.id)
    snaps = env.wait_snapshots(2)
    assert sorted(D(s["amount"]) for s in snaps) == [D("17"), D("37")]
    assert env.account.find_withdrawal("ret-stuck", "USDT").status == "ok"
    assert set(env.returns.delivered) == {stuck.id, normal.id}


def test_fail_later_fault_ends_failed_and_returns_the_funds(env):
    env.fx.inject_withdrawal_fault("fail_later")
    w = env.withdraw("ret-fail", "50", env.entry())
    assert env.exchange_usdt() == D("950")
    failed = wait_until(lambda: (t := env.account.find_withdrawal("ret-fail", "USDT")) and t.status == "failed" and t,
                        timeout=5, message="withdrawal failed")
    assert failed.id == w.id and failed.raw_status == "failed" and not failed.txid
    assert env.exchange_usdt() == D("1000")
    assert env.returns.delivered == {} and env.returns.hook_calls == 0
    assert env.deposit_snapshots() == [] and env.fake.balance(env.bot, USDT_ERC20) == 0
    assert env.fx.withdrawal_faults_applied == [("fail_later", w.id)]


def test_short_arrival(env):
    entry = env.entry()
    env.returns.short_next(1, by=D("0.5"))
    short = env.withdraw("ret-short", "50", entry)
    [snap] = env.wait_snapshots(1)
    assert D(snap["amount"]) == D("46.5")
    assert env.returns.shorted == [ShortArrival(short.id, D("47"), D("46.5"), D("0.5"))]
    full = env.withdraw("ret-full", "50", entry)  # only the next one was short
    snaps = env.wait_snapshots(2)
    assert sorted(D(s["amount"]) for s in snaps) == [D("46.5"), D("47")]
    assert len(env.returns.shorted) == 1 and set(env.returns.delivered) == {short.id, full.id}


def test_disconnect_and_sweep(env):
    entry = env.entry()
    env.returns.disconnect()
    assert not env.returns.connected
    w = env.withdraw("ret-while-off", "25", entry)
    wait_until(lambda: env.withdrawal(w.id).status == WITHDRAW_COMPLETED, timeout=5, message="completed")
    assert env.deposit_snapshots() == [] and env.returns.hook_calls == 0
    assert env.returns.sweep() == 1 and env.returns.sweep() == 0
    [snap] = env.deposit_snapshots()
    assert D(snap["amount"]) == D("22") and snap["deposit"]["deposit_hash"] == env.withdrawal(w.id).txid


def test_world_stop_disconnects_the_way_back():
    with make_env() as env:
        returns = env.returns
    assert not returns.connected
    assert env.fx.remove_withdrawal_listener(returns.on_withdrawal) is False
