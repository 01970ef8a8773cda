"""SafeWallet against the fake Mixin's Safe endpoints, with the real MixinClient over loopback HTTP."""
from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal

import blake3
import pytest

from integrations.mixin.client import MixinClient
from integrations.mixin.errors import MixinApiError, MixinServerError, MixinTransportError
from integrations.mixin.keystore import Keystore, generate_keystore, parse_keystore
from integrations.mixin.safe_build import MIXIN_CASHIER_ID, fee_request_id
from integrations.mixin.safe_tx import OUTPUT_TYPE_SCRIPT, OUTPUT_TYPE_WITHDRAWAL_SUBMIT, SafeTxError, decode
from integrations.mixin.safe_wallet import (
    InputLocked,
    InsufficientFunds,
    PreparedTransaction,
    SafeWallet,
    TooManyInputs,
    TransactionStatus,
)
from domain.ids import unique_object_id
from sim.fake_mixin import FakeMixin
from sim.fake_mixin_safe import FakeSafe, install_safe
from tests.support import wait_until

BTC = "c6d0c728-2624-429b-8e0d-d9d19b6592fa"
ETH = "43d61dcd-e413-450d-80b8-101d5e903357"
USDT = "4d8c508b-91c5-375b-92b0-ee702ed2dac5"
BTC_FEE = Decimal("0.0001")
USDT_FEE_ETH = Decimal("0.002")


@dataclass
class Env:
    fake: FakeMixin
    safe: FakeSafe
    ks: Keystore
    bot: str
    client: MixinClient
    wallet: SafeWallet
    payer: str

    def new_client(self, **kw) -> MixinClient:
        opts = dict(timeout=5.0, max_attempts=3, backoff_base=0.01, backoff_max=0.05)
        opts.update(kw)
        client = MixinClient(self.fake.url, self.ks, **opts)
        self._clients.append(client)
        return client

    def new_wallet(self, **kw) -> SafeWallet:
        """A fresh wallet on a fresh client: what a restarted process would build."""
        return SafeWallet(self.new_client(**kw), self.ks)

    def fund(self, asset_id: str, *amounts: str) -> None:
        for amount in amounts:
            self.fake.pay(self.bot, self.payer, asset_id, amount, b"funding")

    def posts(self, path: str) -> int:
        return sum(1 for method, uri, _ in self.fake.requests_log if method == "POST" and uri == path)

    def bot_snapshot(self, request_id: str) -> dict:
        [snap] = [
            s.data for s in self.fake.snapshots.values()
            if s.data["request_id"] == request_id and s.data["user_id"] == self.bot
        ]
        return snap


@pytest.fixture
def env():
    fake = FakeMixin().start()
    safe = install_safe(fake)
    ks_dict = generate_keystore()
    bot = fake.register_bot(ks_dict)
    ks = parse_keystore(ks_dict)
    fake.add_asset(BTC, "BTC", BTC)
    fake.add_asset(ETH, "ETH", ETH)
    fake.add_asset(USDT, "USDT", ETH, precision=6)
    fake.set_withdrawal_fees(BTC, [(BTC, BTC_FEE)])
    fake.set_withdrawal_fees(USDT, [(ETH, USDT_FEE_ETH)])
    e = Env(fake, safe, ks, bot, None, None, fake.new_user())  # type: ignore[arg-type]
    e._clients = []  # type: ignore[attr-defined]
    e.client = e.new_client()
    e.wallet = SafeWallet(e.client, ks)
    try:
        yield e
    finally:
        for client in e._clients:  # type: ignore[attr-defined]
            client.close()
        fake.stop()


def rid(label: str) -> str:
    return unique_object_id("test-safe-wallet:", label)


# --------------------------------------------------------------------------- transfers


def test_transfer_pays_once_with_change_and_memo(env):
    env.fund(BTC, "1", "0.5")
    user = env.fake.new_user()
    request_id = rid("transfer")
    extra = b"refund:abc"

    prepared = env.wallet.prepare_transfer(request_id, BTC, Decimal("1.2"), user, extra)
    assert prepared.kind == "transfer" and prepared.raws[0][0] == request_id and len(prepared.raws) == 1
    assert len(prepared.input_ids) == 2 and prepared.fee_asset_id is None and prepared.fee_amount == 0
    tx = decode(prepared.raws[0][1])
    assert [o.amount for o in tx.outputs] == [Decimal("1.2"), Decimal("0.3")] and tx.extra == extra

    [status] = env.wallet.submit(prepared)
    assert status.state == "spent" and status.request_id == request_id
    assert env.fake.balance(user, BTC) == Decimal("1.2")
    # change: one new unspent output of 0.3 back to the bot, created by this transaction
    [change] = env.wallet.unspent_outputs(BTC)
    assert change.amount == Decimal("0.3")
    assert change.transaction_hash == status.transaction_hash and change.output_index == 1
    snap = env.bot_snapshot(request_id)
    assert snap["amount"] == "-1.2" and snap["opponent_id"] == user and snap["memo"] == extra.hex()
    assert snap["snapshot_id"] == status.snapshot_id and snap["transaction_hash"] == status.transaction_hash
    [incoming] = [s.data for s in env.fake.snapshots.values() if s.data["user_id"] == user]
    assert incoming["amount"] == "1.2" and incoming["request_id"] == request_id and incoming["memo"] == extra.hex()
    assert env.fake.balance(env.bot, BTC) == Decimal("0.3")

    # the same submit again: nothing moves twice
    assert env.wallet.submit(prepared) == [status]
    assert env.fake.balance(user, BTC) == Decimal("1.2")
    assert env.safe.broadcasts == [request_id] and env.posts("/safe/transactions") == 1


def test_status_goes_unspent_signed_spent(env):
    env.fund(BTC, "1")
    user = env.fake.new_user()
    request_id = rid("states")
    prepared = env.wallet.prepare_transfer(request_id, BTC, Decimal("0.25"), user, b"")
    assert env.wallet.status(request_id) is None

    # crash between verify and broadcast: the broadcast fails with a 503 that is not retried
    env.fake.inject("/safe/transactions", status=503)
    with pytest.raises(MixinServerError):
        env.new_wallet(max_attempts=1).submit(prepared)
    assert env.wallet.status(request_id).state == "unspent"
    assert env.safe.broadcasts == []

    env.safe.finality_delay = 0.4
    [status] = env.new_wallet().submit(prepared)
    assert status.state == "signed" and status.snapshot_id is None
    assert env.wallet.status(request_id).state == "signed"
    assert env.fake.balance(user, BTC) == 0  # moves only at finality
    final = wait_until(lambda: (s := env.wallet.status(request_id)).state == "spent" and s, timeout=5)
    assert final.snapshot_id and final.snapshot_hash and final.transaction_hash == status.transaction_hash
    assert env.fake.balance(user, BTC) == Decimal("0.25")


def test_prepare_is_byte_identical_and_second_submit_does_not_sign(env):
    env.fund(BTC, "0.3", "0.3", "0.3")
    user = env.fake.new_user()
    request_id = rid("deterministic")
    first = env.wallet.prepare_transfer(request_id, BTC, Decimal("0.5"), user, b"memo")
    second = env.new_wallet().prepare_transfer(request_id, BTC, Decimal("0.5"), user, b"memo")
    assert first.raws == second.raws and first == second
    other = env.wallet.prepare_transfer(rid("other"), BTC, Decimal("0.5"), user, b"memo")
    assert other.raws[0][1] != first.raws[0][1]  # hints (hence keys) depend on the request id

    [a] = env.wallet.submit(first)
    [b] = env.new_wallet().submit(second)
    assert a == b and a.state == "spent"
    assert env.safe.broadcasts == [request_id] and env.posts("/safe/transactions") == 1
    assert env.fake.balance(user, BTC) == Decimal("0.5")


# --------------------------------------------------------------------------- crash points


def test_crash_after_prepare_resubmits_from_persisted_json(env):
    env.fund(BTC, "1")
    user = env.fake.new_user()
    request_id = rid("crash-prepare")
    persisted = env.wallet.prepare_transfer(request_id, BTC, Decimal("0.4"), user, b"x").to_json()
    # "crash": the wallet, client and prepared object are gone; only the JSON survives
    [status] = env.new_wallet().submit(PreparedTransaction.from_json(persisted))
    assert status.state == "spent"
    assert env.fake.balance(user, BTC) == Decimal("0.4") and env.safe.broadcasts == [request_id]


def test_crash_after_verify_signs_and_broadcasts_once(env):
    env.fund(BTC, "1")
    user = env.fake.new_user()
    prepared = env.wallet.prepare_transfer(rid("crash-verify"), BTC, Decimal("0.4"), user, b"x")
    persisted = prepared.to_json()
    # the verify call went through (Mixin stored the request), then the process died
    answer = env.client.request(
        "POST", "/safe/transaction/requests", body=[{"request_id": prepared.request_id, "raw": prepared.raws[0][1]}]
    )
    assert answer[0]["state"] == "unspent"
    [status] = env.new_wallet().submit(PreparedTransaction.from_json(persisted))
    assert status.state == "spent"
    assert env.safe.broadcasts == [prepared.request_id] and env.posts("/safe/transactions") == 1
    assert env.fake.balance(user, BTC) == Decimal("0.4")


def test_crash_after_broadcast_does_not_sign_again(env):
    env.fund(BTC, "1")
    user = env.fake.new_user()
    env.safe.finality_delay = 30  # stays "signed" until finalize_pending()
    prepared = env.wallet.prepare_transfer(rid("crash-broadcast"), BTC, Decimal("0.4"), user, b"x")
    [status] = env.wallet.submit(prepared)
    assert status.state == "signed"
    # restart: verify answers "signed", so no signature and no broadcast call
    [again] = env.new_wallet().submit(PreparedTransaction.from_json(prepared.to_json()))
    assert again.state == "signed" and again.transaction_hash == status.transaction_hash
    assert env.posts("/safe/transactions") == 1 and env.safe.broadcast_calls == 1
    env.safe.finalize_pending()
    [final] = env.new_wallet().submit(prepared)
    assert final.state == "spent" and env.posts("/safe/transactions") == 1
    assert env.fake.balance(user, BTC) == Decimal("0.4")


def test_broadcast_reply_lost_after_the_server_applied_it(env):
    env.fund(BTC, "1")
    user = env.fake.new_user()
    prepared = env.wallet.prepare_transfer(rid("timeout"), BTC, Decimal("0.4"), user, b"x")
    env.fake.inject("/safe/transactions", status=200, delay=1.0)
    with pytest.raises(MixinTransportError):
        env.new_wallet(timeout=0.3, max_attempts=1).submit(prepared)
    # the fake applied the broadcast before holding the reply back
    assert env.safe.broadcasts == [prepared.request_id]
    assert env.fake.balance(user, BTC) == Decimal("0.4")
    [status] = env.new_wallet().submit(PreparedTransaction.from_json(prepared.to_json()))
    assert status.state == "spent"
    assert env.safe.broadcasts == [prepared.request_id] and env.safe.broadcast_calls == 1
    assert env.fake.balance(user, BTC) == Decimal("0.4")


def test_lost_broadcast_reply_retried_by_the_client_is_not_applied_twice(env):
    env.fund(BTC, "1")
    user = env.fake.new_user()
    prepared = env.wallet.prepare_transfer(rid("timeout-retry"), BTC, Decimal("0.4"), user, b"x")
    env.fake.inject("/safe/transactions", status=200, delay=1.0)
    [status] = env.new_wallet(timeout=0.3, max_attempts=3).submit(prepared)  # broadcast is idempotent
    assert status.state == "spent"
    assert env.safe.broadcast_calls == 2 and env.safe.broadcasts == [prepared.request_id]
    assert env.fake.balance(user, BTC) == Decimal("0.4")


def test_throttling_and_server_errors_are_retried(env):
    env.fund(BTC, "1")
    user = env.fake.new_user()
    env.fake.inject("/safe/outputs", status=429)
    env.fake.inject("/safe/keys", status=502)
    prepared = env.wallet.prepare_transfer(rid("faults"), BTC, Decimal("0.1"), user, b"")
    env.fake.inject("/safe/transaction/requests", status=503)
    env.fake.inject("/safe/transactions", status=500, error_code=500)
    [status] = env.wallet.submit(prepared)
    assert status.state == "spent" and env.fake.balance(user, BTC) == Decimal("0.1")
    assert env.safe.broadcasts == [prepared.request_id]


# --------------------------------------------------------------------------- refusals


def test_same_request_id_with_another_raw_is_refused(env):
    env.fund(BTC, "1")
    user = env.fake.new_user()
    request_id = rid("conflict")
    env.wallet.submit(env.wallet.prepare_transfer(request_id, BTC, Decimal("0.1"), user, b""))
    different = env.wallet.prepare_transfer(request_id, BTC, Decimal("0.2"), user, b"")
    with pytest.raises(MixinApiError) as info:
        env.wallet.submit(different)
    assert info.value.code == 10002
    assert env.fake.balance(user, BTC) == Decimal("0.1") and env.safe.broadcasts == [request_id]


def test_insufficient_funds_has_a_reason(env):
    env.fund(BTC, "1")
    user = env.fake.new_user()
    with pytest.raises(InsufficientFunds) as info:
        env.wallet.prepare_transfer(rid("short"), BTC, Decimal("2"), user, b"")
    assert (info.value.asset_id, info.value.available, info.value.required) == (BTC, Decimal("1"), Decimal("2"))
    assert "available 1" in str(info.value)
    [utxo] = env.wallet.unspent_outputs(BTC)
    with pytest.raises(InsufficientFunds) as info:
        env.wallet.prepare_transfer(rid("short2"), BTC, Decimal("0.5"), user, b"", exclude_inputs=frozenset({utxo.output_id}))
    assert info.value.available == 0
    with pytest.raises(InsufficientFunds) as info:  # the fee counts
        env.wallet.prepare_withdrawal(rid("short3"), BTC, Decimal("1"), "bc1qaddress")
    assert info.value.required == Decimal("1.0001")
    env.fund(USDT, "50")
    with pytest.raises(InsufficientFunds) as info:  # chain-asset fee, and no ETH at all
        env.wallet.prepare_withdrawal(rid("short4"), USDT, Decimal("10"), "0xabc")
    assert (info.value.asset_id, info.value.available, info.value.required) == (ETH, 0, USDT_FEE_ETH)
    with pytest.raises(InsufficientFunds):
        env.wallet.prepare_transfer(rid("nothing"), ETH, Decimal("1"), user, b"")
    with pytest.raises(SafeTxError):
        env.wallet.prepare_transfer(rid("float"), BTC, 0.5, user, b"")  # type: ignore[arg-type]


def test_too_many_inputs(env):
    env.fund(BTC, *["0.001"] * 257)
    user = env.fake.new_user()
    with pytest.raises(TooManyInputs) as info:
        env.wallet.prepare_transfer(rid("dust"), BTC, Decimal("0.257"), user, b"")
    assert info.value.needed_inputs == 257 and info.value.max_inputs == 256
    assert info.value.reachable == Decimal("0.256")
    prepared = env.wallet.prepare_transfer(rid("dust-ok"), BTC, Decimal("0.256"), user, b"")
    assert len(prepared.input_ids) == 256 and len(decode(prepared.raws[0][1]).inputs) == 256


def test_input_locked(env):
    env.fund(BTC, "1")
    user = env.fake.new_user()
    prepared = env.wallet.prepare_transfer(rid("locked"), BTC, Decimal("0.1"), user, b"")
    env.safe.lock_inputs_next(3)  # the client tries 3 times, then gives up
    with pytest.raises(InputLocked):
        env.wallet.submit(prepared)
    assert env.wallet.status(prepared.request_id) is None  # nothing stored
    env.safe.lock_inputs_next(1)  # a transient lock is absorbed by the client's retry
    [status] = env.wallet.submit(prepared)
    assert status.state == "spent"


def test_a_utxo_already_taken_by_another_broadcast_is_input_locked(env):
    env.fund(BTC, "1")
    user = env.fake.new_user()
    env.safe.finality_delay = 30
    first = env.wallet.prepare_transfer(rid("first"), BTC, Decimal("0.1"), user, b"")
    second = env.wallet.prepare_transfer(rid("second"), BTC, Decimal("0.2"), user, b"")  # same input
    assert first.input_ids == second.input_ids
    env.wallet.submit(first)
    with pytest.raises(InputLocked):
        env.new_wallet(max_attempts=2).submit(second)
    env.safe.finalize_pending()
    with pytest.raises(InputLocked):  # now spent: still refused
        env.new_wallet(max_attempts=1).submit(second)
    assert env.wallet.status(second.request_id) is None
    assert env.fake.balance(user, BTC) == Decimal("0.1")


def test_exclude_inputs_gives_disjoint_transactions(env):
    env.fund(BTC, "1", "1", "1")
    user = env.fake.new_user()
    first = env.wallet.prepare_transfer(rid("a"), BTC, Decimal("0.6"), user, b"a")
    second = env.wallet.prepare_transfer(rid("b"), BTC, Decimal("0.6"), user, b"b", exclude_inputs=frozenset(first.input_ids))
    assert first.input_ids and second.input_ids and not set(first.input_ids) & set(second.input_ids)
    assert env.wallet.submit(second)[0].state == "spent"
    assert env.wallet.submit(first)[0].state == "spent"
    assert env.fake.balance(user, BTC) == Decimal("1.2")
    assert sorted(u.amount for u in env.wallet.unspent_outputs(BTC)) == [Decimal("0.4"), Decimal("0.4"), Decimal("1")]


# --------------------------------------------------------------------------- withdrawals


def test_withdrawal_with_same_asset_fee_is_one_transaction(env):
    env.fund(BTC, "1")
    address, tag, extra = "bc1qexampleaddress", "778899", b"withdraw:order-1"
    seen: list[dict] = []
    env.safe.on_withdrawal = seen.append
    prepared = env.wallet.prepare_withdrawal(rid("w-btc"), BTC, Decimal("0.3"), address, tag, extra=extra)
    assert prepared.kind == "withdrawal" and len(prepared.raws) == 1
    assert (prepared.fee_asset_id, prepared.fee_amount) == (BTC, BTC_FEE)
    tx = decode(prepared.raws[0][1])
    assert [o.type for o in tx.outputs] == [OUTPUT_TYPE_WITHDRAWAL_SUBMIT, OUTPUT_TYPE_SCRIPT, OUTPUT_TYPE_SCRIPT]
    assert (tx.outputs[0].withdrawal.address, tx.outputs[0].withdrawal.tag) == (address, tag)
    assert tx.extra == extra and tag.encode() not in tx.extra
    assert [o.amount for o in tx.outputs] == [Decimal("0.3"), BTC_FEE, Decimal("0.6999")]

    [status] = env.wallet.submit(prepared)
    assert status.state == "spent" and status.withdrawal_hash  # withdrawal_delay 0: at once
    [w] = env.safe.withdrawals
    assert (w["address"], w["tag"], w["amount"], w["asset_id"]) == (address, tag, Decimal("0.3"), BTC)
    assert w["withdrawal_hash"] == status.withdrawal_hash and w["request_id"] == prepared.request_id
    assert env.fake.balance(MIXIN_CASHIER_ID, BTC) == BTC_FEE
    assert env.fake.balance(env.bot, BTC) == Decimal("0.6999")
    assert [u.amount for u in env.wallet.unspent_outputs(BTC)] == [Decimal("0.6999")]
    snap = env.bot_snapshot(prepared.request_id)
    assert snap["amount"] == "-0.3001" and snap["opponent_id"] == "" and snap["memo"] == extra.hex()
    assert snap["withdrawal"] == {"withdrawal_hash": status.withdrawal_hash, "receiver": address}
    env.wallet.submit(prepared)
    assert len(seen) == 1 and seen[0]["withdrawal_hash"] == status.withdrawal_hash


def test_withdrawal_with_chain_asset_fee_is_two_linked_transactions(env):
    env.fund(USDT, "100")
    env.fund(ETH, "0.5")
    env.safe.withdrawal_delay = 2.0  # long enough that the checks below see no hash yet, even on a slow machine
    seen: list[dict] = []
    env.safe.on_withdrawal = seen.append
    request_id = rid("w-usdt")
    prepared = env.wallet.prepare_withdrawal(request_id, USDT, Decimal("10"), "0xdeadbeef")
    assert (prepared.fee_asset_id, prepared.fee_amount) == (ETH, USDT_FEE_ETH)
    (rid_a, raw_a), (rid_b, raw_b) = prepared.raws
    assert rid_a == request_id and rid_b == fee_request_id(request_id)
    tx_a, tx_b = decode(raw_a), decode(raw_b)
    assert tx_b.references == (blake3.blake3(bytes.fromhex(raw_a)).digest(),)
    assert tx_a.outputs[0].type == OUTPUT_TYPE_WITHDRAWAL_SUBMIT and tx_a.outputs[1].amount == Decimal("90")
    assert [o.amount for o in tx_b.outputs] == [USDT_FEE_ETH, Decimal("0.498")]
    assert len(prepared.input_ids) == 2

    statuses = env.wallet.submit(prepared)
    assert [s.request_id for s in statuses] == [rid_a, rid_b] and all(s.state == "spent" for s in statuses)
    assert env.posts("/safe/transaction/requests") == 1 and env.posts("/safe/transactions") == 1
    assert env.fake.balance(MIXIN_CASHIER_ID, ETH) == USDT_FEE_ETH
    assert env.fake.balance(env.bot, ETH) == Decimal("0.498") and env.fake.balance(env.bot, USDT) == Decimal("90")
    assert statuses[0].withdrawal_hash is None and env.wallet.status(request_id).withdrawal_hash is None
    assert env.bot_snapshot(request_id)["withdrawal"] == {"withdrawal_hash": None, "receiver": "0xdeadbeef"}
    done = wait_until(lambda: env.wallet.status(request_id).withdrawal_hash, timeout=15)
    assert env.bot_snapshot(request_id)["withdrawal"]["withdrawal_hash"] == done
    assert env.bot_snapshot(rid_b)["amount"] == "-0.002" and env.bot_snapshot(rid_b)["opponent_id"] == MIXIN_CASHIER_ID
    env.wallet.submit(prepared)
    time.sleep(0.05)
    assert len(seen) == 1 and seen[0]["withdrawal_hash"] == done and seen[0]["amount"] == Decimal("10")
    assert env.safe.broadcasts == [rid_a, rid_b]


def test_chain_fee_withdrawal_prefers_the_chain_asset_quote(env):
    env.fake.set_withdrawal_fees(USDT, [(BTC, "0.00001"), (ETH, USDT_FEE_ETH)])
    env.fund(USDT, "20")
    env.fund(ETH, "1")
    prepared = env.wallet.prepare_withdrawal(rid("w-pref"), USDT, Decimal("5"), "0xabc")
    assert prepared.fee_asset_id == ETH


# --------------------------------------------------------------------------- value types & world


def test_prepared_transaction_json_round_trip():
    p = PreparedTransaction(
        request_id=rid("json"),
        kind="withdrawal",
        raws=((rid("json"), "7777"), (rid("fee"), "0005")),
        input_ids=("a", "b"),
        asset_id=USDT,
        amount=Decimal("10.5"),
        fee_asset_id=ETH,
        fee_amount=Decimal("0.002"),
    )
    again = PreparedTransaction.from_json(p.to_json())
    assert again == p and isinstance(again.amount, Decimal) and again.request_ids == (rid("json"), rid("fee"))
    for bad in ("", "[]", '{"version": 2}', p.to_json().replace('"transfer"', "x").replace('"withdrawal"', '"swap"')):
        with pytest.raises(SafeTxError):
            PreparedTransaction.from_json(bad)
    with pytest.raises(SafeTxError):
        PreparedTransaction(rid("x"), "transfer", ((rid("y"), "77"),), (), BTC, Decimal(1))


def test_transaction_status_from_json():
    s = TransactionStatus.from_json(
        {"request_id": "r", "state": "signed", "transaction_hash": "ab", "receivers": [{"withdrawal_hash": ""},
                                                                                       {"withdrawal_hash": "cd"}]}
    )
    assert (s.state, s.transaction_hash, s.snapshot_id, s.withdrawal_hash, s.is_final) == ("signed", "ab", None, "cd", False)


def test_world_has_safe_support():
    from sim.world import BTC as WBTC, build_world

    world = build_world()
    try:
        assert world.safe is world.fake.safe and isinstance(world.safe, FakeSafe)
        user = world.new_user()
        world.pay(user, WBTC, "0.5", "memo")
        with MixinClient(world.fake.url, world.keystore, backoff_base=0.01) as client:
            wallet = SafeWallet(client, world.keystore)
            assert [u.amount for u in wallet.unspent_outputs(WBTC)] == [Decimal("0.5")]
            [status] = wallet.submit(wallet.prepare_transfer(rid("world"), WBTC, Decimal("0.5"), user, b"back"))
            assert status.state == "spent" and world.fake.balance(user, WBTC) == 0
    finally:
        world.fake.stop()


def test_unspent_outputs_pages_past_500_and_exclusions_reach_page_two(env):
    for _ in range(510):
        env.safe.add_output(env.bot, BTC, "0.01")
    listed = env.wallet.unspent_outputs(BTC)
    assert len(listed) == 510 and len({u.output_id for u in listed}) == 510
    assert [u.sequence for u in listed] == sorted(u.sequence for u in listed)
    excluded = frozenset(u.output_id for u in listed[:505])
    user = env.fake.new_user()
    prepared = env.wallet.prepare_transfer(rid("page2"), BTC, Decimal("0.05"), user, b"", exclude_inputs=excluded)
    assert prepared.input_ids == tuple(u.output_id for u in listed[505:])
    with pytest.raises(InsufficientFunds) as info:
        env.wallet.prepare_transfer(rid("page2x"), BTC, Decimal("0.06"), user, b"", exclude_inputs=excluded)
    assert info.value.available == Decimal("0.05")
    assert env.wallet.submit(prepared)[0].state == "spent" and env.fake.balance(user, BTC) == Decimal("0.05")
