"""The fake Mixin's Safe endpoints, driven with raw API calls (MixinClient.request) over loopback HTTP.

Transactions are built with the pure safe_build/safe_tx/safe_sign code, not with SafeWallet, so the
fake's checks are exercised independently of the wallet's choices.
"""
from __future__ import annotations

import os
import time
from decimal import Decimal

import nacl.bindings as nb
import pytest

from domain.ids import unique_object_id
from integrations.mixin.client import MixinClient
from integrations.mixin.errors import MixinApiError, MixinNotFound, MixinTransportError
from integrations.mixin.keystore import generate_keystore, parse_keystore
from integrations.mixin.safe_build import (
    MIXIN_CASHIER_ID,
    GhostKey,
    Recipient,
    TransactionPlan,
    Utxo,
    WithdrawalRecipient,
    build_transaction,
    ghost_key_hint,
    members_hash,
    plan_transfer,
)
from integrations.mixin.safe_sign import sign_inputs
from integrations.mixin.safe_tx import Output, decode, encode
from sim.fake_mixin import FakeMixin
from sim.fake_mixin_safe import install_safe
from tests.support import wait_until

BTC = "c6d0c728-2624-429b-8e0d-d9d19b6592fa"
ETH = "43d61dcd-e413-450d-80b8-101d5e903357"


@pytest.fixture
def fake():
    with FakeMixin() as server:
        server.add_asset(BTC, "BTC", BTC)
        server.add_asset(ETH, "ETH", ETH)
        server.set_withdrawal_fees(BTC, [(BTC, "0.0001")])
        yield server


@pytest.fixture
def safe(fake):
    return install_safe(fake)


def _bot(fake):
    d = generate_keystore()
    fake.register_bot(d)
    ks = parse_keystore(d)
    return ks, MixinClient(fake.url, ks, max_attempts=1, timeout=5)


@pytest.fixture
def bot(fake, safe):
    ks, client = _bot(fake)
    yield ks, client
    client.close()


def rid(label: str) -> str:
    return unique_object_id("test-fake-safe:", label)


def outputs(client, owner, **params):
    base = {"members": members_hash([owner]), "threshold": 1}
    base.update(params)
    return client.request("GET", "/safe/outputs", params=base)


def utxos(client, owner, asset):
    return [Utxo.from_json(o) for o in outputs(client, owner, asset=asset, state="unspent")]


def keys_for(client, plan):
    reqs = plan.ghost_key_requests()
    return [GhostKey.from_json(k) for k in client.request("POST", "/safe/keys", body=[r.as_json() for r in reqs])]


def verify(client, *pairs):
    return client.request("POST", "/safe/transaction/requests", body=[{"request_id": r, "raw": raw} for r, raw in pairs])


def broadcast(client, *pairs):
    return client.request("POST", "/safe/transactions", body=[{"request_id": r, "raw": raw} for r, raw in pairs])


def transfer_raw(client, ks, request_id, asset, amount, user, extra=b""):
    plan = plan_transfer(
        asset_id=asset, utxos=utxos(client, ks.app_id, asset), recipients=[Recipient.user(user, Decimal(amount))],
        change_member=ks.app_id, request_id=request_id, extra=extra,
    )
    return plan, encode(build_transaction(plan, keys_for(client, plan)), with_signatures=False).hex()


def sign(ks, raw, views, key=None):
    return encode(sign_inputs(decode(raw), views, key or ks.spend_private_key)).hex()


def assert_api_error(code, fn, *args, **kw):
    with pytest.raises(MixinApiError) as info:
        fn(*args, **kw)
    assert info.value.code == code, info.value
    return info.value


# --------------------------------------------------------------------------- outputs


def test_pay_and_deposit_create_bot_outputs_and_listing_filters(fake, safe, bot):
    ks, client = bot
    user = fake.new_user()
    snap = fake.pay(ks.app_id, user, BTC, "1.5", b"m")
    fake.deposit(ks.app_id, BTC, "2")
    fake.pay(ks.app_id, user, ETH, "3")
    listed = outputs(client, ks.app_id, asset=BTC, state="unspent")
    assert [o["amount"] for o in listed] == ["1.5", "2"]
    first = listed[0]
    assert first["transaction_hash"] == snap["transaction_hash"] and first["output_index"] == 0
    assert first["receivers"] == [ks.app_id] and first["receivers_threshold"] == 1 and first["senders"] == [user]
    assert first["receivers_hash"] == members_hash([ks.app_id]) and first["extra"] == b"m".hex()
    seqs = [o["sequence"] for o in listed]
    assert seqs == sorted(seqs)
    # offset is an inclusive sequence; limit caps; DESC reverses; other filters
    assert [o["amount"] for o in outputs(client, ks.app_id, asset=BTC, offset=seqs[1])] == ["2"]
    assert len(outputs(client, ks.app_id, limit=1)) == 1
    assert [o["amount"] for o in outputs(client, ks.app_id, order="DESC")] == ["3", "2", "1.5"]
    assert outputs(client, ks.app_id, threshold=2) == []
    assert outputs(client, ks.app_id, state="spent") == []
    assert outputs(client, user) == []  # not the caller's
    other_ks, other = _bot(fake)
    try:
        assert outputs(other, ks.app_id) == []  # another bot sees nothing of ours
    finally:
        other.close()
    assert_api_error(10002, outputs, client, ks.app_id, limit=501)
    assert_api_error(10002, client.request, "GET", "/safe/outputs", params={"members": "zz"})


def test_install_backfills_existing_bot_balances(fake):
    ks, client = _bot(fake)
    try:
        fake.pay(ks.app_id, fake.new_user(), BTC, "0.7")
        safe = install_safe(fake)
        assert install_safe(fake) is safe and fake.safe is safe
        assert [o["amount"] for o in outputs(client, ks.app_id, asset=BTC)] == ["0.7"]
        assert safe.unspent_total(ks.app_id, BTC) == Decimal("0.7")
    finally:
        client.close()


# --------------------------------------------------------------------------- ghost keys


def test_ghost_keys_are_deterministic_points(fake, safe, bot):
    ks, client = bot
    user = fake.new_user()
    req = [{"receivers": [user], "index": 0, "hint": ghost_key_hint(rid("g"), 0)},
           {"receivers": sorted([user, ks.app_id]), "index": 1, "hint": ghost_key_hint(rid("g"), 1)}]
    a = client.request("POST", "/safe/keys", body=req)
    b = client.request("POST", "/safe/keys", body=req)
    assert a == b and len(a[0]["keys"]) == 1 and len(a[1]["keys"]) == 2
    for item in a:
        for k in [item["mask"], *item["keys"]]:
            assert nb.crypto_core_ed25519_is_valid_point(bytes.fromhex(k))
    c = client.request("POST", "/safe/keys", body=[dict(req[0], hint=ghost_key_hint(rid("h"), 0))])
    d = client.request("POST", "/safe/keys", body=[dict(req[0], index=5)])
    assert c[0]["mask"] != a[0]["mask"] and d[0]["mask"] != a[0]["mask"]
    err = assert_api_error(10404, client.request, "POST", "/safe/keys", body=[dict(req[0], receivers=[rid("nobody")])])
    assert "not registered" in err.description
    assert_api_error(10002, client.request, "POST", "/safe/keys", body=[dict(req[0], hint="x")])
    assert_api_error(10002, client.request, "POST", "/safe/keys", body={"receivers": []})


# --------------------------------------------------------------------------- verify


def test_verify_stores_once_and_refuses_another_raw(fake, safe, bot):
    ks, client = bot
    user = fake.new_user()
    fake.pay(ks.app_id, user, BTC, "1")
    plan, raw = transfer_raw(client, ks, rid("v"), BTC, "0.4", user, b"hello")
    [first] = verify(client, (rid("v"), raw))
    assert first["state"] == "unspent" and first["raw_transaction"] == raw and len(first["views"]) == 1
    assert first["amount"] == "0.4" and first["extra"] == b"hello".hex() and first["asset_id"] == BTC
    assert [r["members"] for r in first["receivers"]] == [[user], [ks.app_id]]
    [again] = verify(client, (rid("v"), raw))
    assert again["views"] == first["views"] and again["transaction_hash"] == first["transaction_hash"]
    _, other_raw = transfer_raw(client, ks, rid("v"), BTC, "0.5", user)
    err = assert_api_error(10002, verify, client, (rid("v"), other_raw))
    assert err.extra["field"] == "request_id"
    # a second request may verify over the same unspent inputs; only one broadcast can win
    _, raw2 = transfer_raw(client, ks, rid("v2"), BTC, "0.5", user)
    [second] = verify(client, (rid("v2"), raw2))
    assert second["state"] == "unspent"


def _tamper(raw, **changes):
    tx = decode(raw)
    return encode(tx.__class__(**{**tx.__dict__, **changes}), with_signatures=False).hex()


def test_verify_checks(fake, safe, bot):
    ks, client = bot
    user = fake.new_user()
    fake.pay(ks.app_id, user, BTC, "1")
    plan, raw = transfer_raw(client, ks, rid("c"), BTC, "0.4", user)
    tx = decode(raw)
    out0, out1 = tx.outputs

    unbalanced = _tamper(raw, outputs=(out0, Output(out1.type, Decimal("0.5"), out1.keys, out1.mask, out1.script)))
    assert "!=" in assert_api_error(10002, verify, client, (rid("c1"), unbalanced)).extra["reason"]
    forged = _tamper(raw, outputs=(Output(0, out0.amount, (os.urandom(32),), out0.mask, out0.script), out1))
    assert "not issued" in assert_api_error(10002, verify, client, (rid("c2"), forged)).extra["reason"]
    swapped = _tamper(raw, outputs=(Output(0, out0.amount, out1.keys, out1.mask, out1.script),
                                    Output(0, out1.amount, out0.keys, out0.mask, out0.script)))
    assert_api_error(10002, verify, client, (rid("c3"), swapped))  # ghost keys bound to their output index
    missing = _tamper(raw, inputs=(tx.inputs[0].__class__(os.urandom(32), 0),))
    assert "does not exist" in assert_api_error(10002, verify, client, (rid("c4"), missing)).extra["reason"]
    wrong_asset = _tamper(raw, asset=bytes(32))
    assert_api_error(10002, verify, client, (rid("c5"), wrong_asset))
    assert_api_error(10002, verify, client, (rid("c6"), raw + "00"))  # trailing bytes
    assert_api_error(10002, verify, client, (rid("c7"), "zz"))
    too_long = raw[:-12] + "00000101" + "00" * 257 + "0000"  # extra of 257 bytes
    assert_api_error(10002, verify, client, (rid("c8"), too_long))
    assert_api_error(10002, verify, client, ("not-a-uuid", raw))

    # another bot's output is not ours to spend
    other_ks, other = _bot(fake)
    try:
        fake.pay(other_ks.app_id, user, BTC, "1")
        _, theirs = transfer_raw(other, other_ks, rid("c9"), BTC, "0.1", user)
        assert "caller" in assert_api_error(10002, verify, client, (rid("c9"), theirs)).extra["reason"]
    finally:
        other.close()
    assert safe.requests == {}


def test_withdrawal_needs_its_fee(fake, safe, bot):
    ks, client = bot
    fake.pay(ks.app_id, fake.new_user(), BTC, "1")
    [u] = utxos(client, ks.app_id, BTC)

    def raw_of(recipients, request_id):
        plan = TransactionPlan(request_id=request_id, asset_id=BTC, inputs=(u,), recipients=tuple(recipients))
        return encode(build_transaction(plan, keys_for(client, plan)), with_signatures=False).hex()

    no_fee = raw_of([WithdrawalRecipient("bc1q", Decimal("0.5"), "t"), Recipient.user(ks.app_id, Decimal("0.5"))], rid("w1"))
    assert_api_error(20124, verify, client, (rid("w1"), no_fee))
    small = raw_of([WithdrawalRecipient("bc1q", Decimal("0.5")), Recipient.user(MIXIN_CASHIER_ID, Decimal("0.00009")),
                    Recipient.user(ks.app_id, Decimal("0.49991"))], rid("w2"))
    assert_api_error(20124, verify, client, (rid("w2"), small))
    ok = raw_of([WithdrawalRecipient("bc1q", Decimal("0.5")), Recipient.user(MIXIN_CASHIER_ID, Decimal("0.0001")),
                 Recipient.user(ks.app_id, Decimal("0.4999"))], rid("w3"))
    assert verify(client, (rid("w3"), ok))[0]["receivers"][0]["destination"] == "bc1q"
    fake.pay(ks.app_id, fake.new_user(), ETH, "1")
    [e] = utxos(client, ks.app_id, ETH)
    plan = TransactionPlan(request_id=rid("w4"), asset_id=ETH, inputs=(e,), recipients=(WithdrawalRecipient("0x1", Decimal("1")),))
    assert "no fee quote" in assert_api_error(10002, verify, client, (rid("w4"), encode(build_transaction(plan, []), with_signatures=False).hex())).extra["reason"]


# --------------------------------------------------------------------------- broadcast


def test_broadcast_checks_signatures_all_or_nothing(fake, safe, bot):
    ks, client = bot
    user = fake.new_user()
    fake.pay(ks.app_id, user, BTC, "1")
    fake.pay(ks.app_id, user, BTC, "1")
    [u1, u2] = utxos(client, ks.app_id, BTC)
    raws = []
    for n, u in enumerate((u1, u2)):
        plan = plan_transfer(asset_id=BTC, utxos=[u], recipients=[Recipient.user(user, Decimal("0.1"))],
                             change_member=ks.app_id, request_id=rid(f"b{n}"))
        raws.append(encode(build_transaction(plan, keys_for(client, plan)), with_signatures=False).hex())
    views = [v["views"] for v in verify(client, (rid("b0"), raws[0]), (rid("b1"), raws[1]))]
    good = sign(ks, raws[0], views[0])
    bad = sign(ks, raws[1], views[1], key=os.urandom(32))
    assert_api_error(2000003, broadcast, client, (rid("b0"), good), (rid("b1"), bad))
    swapped_views = sign(ks, raws[1], views[0])
    assert_api_error(2000003, broadcast, client, (rid("b1"), swapped_views))
    assert safe.broadcasts == [] and fake.balance(user, BTC) == Decimal("-2")
    assert all(o["state"] == "unspent" for o in outputs(client, ks.app_id))
    with pytest.raises(MixinNotFound):
        broadcast(client, (rid("never-verified"), good))
    other = sign(ks, raws[1], views[1])
    assert_api_error(10002, broadcast, client, (rid("b0"), other))  # not what was verified under b0

    answer = broadcast(client, (rid("b0"), good), (rid("b1"), other))
    assert [a["state"] for a in answer] == ["spent", "spent"] and answer[0]["raw_transaction"] == good
    assert broadcast(client, (rid("b0"), good))[0]["snapshot_id"] == answer[0]["snapshot_id"]
    assert safe.broadcasts == [rid("b0"), rid("b1")] and fake.balance(user, BTC) == Decimal("-1.8")
    assert sorted(o["state"] for o in outputs(client, ks.app_id)) == ["spent", "spent", "unspent", "unspent"]
    # the spent inputs are locked for everyone else
    again = plan_transfer(asset_id=BTC, utxos=[u1], recipients=[Recipient.user(user, Decimal("0.2"))],
                          change_member=ks.app_id, request_id=rid("b2"))
    raw2 = encode(build_transaction(again, keys_for(client, again)), with_signatures=False).hex()
    assert_api_error(10105, verify, client, (rid("b2"), raw2))


def test_finality_delay_and_transaction_lookup(fake, safe, bot):
    ks, client = bot
    user = fake.new_user()
    fake.pay(ks.app_id, user, BTC, "1")
    safe.finality_delay = 0.3
    _, raw = transfer_raw(client, ks, rid("f"), BTC, "0.4", user, b"memo")
    [v] = verify(client, (rid("f"), raw))
    [b] = broadcast(client, (rid("f"), sign(ks, raw, v["views"])))
    assert b["state"] == "signed" and b["snapshot_id"] is None
    assert [o["state"] for o in outputs(client, ks.app_id)] == ["signed"]
    assert fake.balance(user, BTC) == Decimal("-1")
    by_hash = client.request("GET", f"/safe/transactions/{b['transaction_hash']}")
    assert by_hash["request_id"] == rid("f")
    wait_until(lambda: client.request("GET", f"/safe/transactions/{rid('f')}")["state"] == "spent", timeout=5)
    final = client.request("GET", f"/safe/transactions/{rid('f')}")
    assert final["snapshot_id"] and final["snapshot_hash"] and final["snapshot_at"]
    assert fake.balance(user, BTC) == Decimal("-0.6")
    assert [(o["state"], o["amount"]) for o in outputs(client, ks.app_id)] == [("spent", "1"), ("unspent", "0.6")]
    with pytest.raises(MixinNotFound):
        client.request("GET", f"/safe/transactions/{rid('unknown')}")
    other_ks, other = _bot(fake)
    try:
        with pytest.raises(MixinNotFound):
            other.request("GET", f"/safe/transactions/{rid('f')}")
    finally:
        other.close()


def test_faults_on_safe_paths(fake, safe, bot):
    ks, client = bot
    user = fake.new_user()
    fake.pay(ks.app_id, user, BTC, "1")
    _, raw = transfer_raw(client, ks, rid("x"), BTC, "0.4", user)
    safe.lock_inputs_next(2)
    assert_api_error(10105, verify, client, (rid("x"), raw))
    assert_api_error(10105, verify, client, (rid("x"), raw))
    [v] = verify(client, (rid("x"), raw))
    fake.inject("/safe/transactions", status=200, delay=0.8)
    slow = MixinClient(fake.url, ks, max_attempts=1, timeout=0.2)
    try:
        started = time.monotonic()
        with pytest.raises(MixinTransportError):
            broadcast(slow, (rid("x"), sign(ks, raw, v["views"])))
        assert time.monotonic() - started < 0.7
    finally:
        slow.close()
    assert safe.broadcasts == [rid("x")] and fake.balance(user, BTC) == Decimal("-0.6")  # applied before the delay


def test_on_withdrawal_hook_failure_does_not_break_bookkeeping(fake, safe, bot):
    ks, client = bot
    fake.pay(ks.app_id, fake.new_user(), BTC, "1")
    [u] = utxos(client, ks.app_id, BTC)
    calls = []

    def hook(record):
        calls.append(record)
        raise RuntimeError("exchange down")

    safe.on_withdrawal = hook
    plan = TransactionPlan(request_id=rid("h"), asset_id=BTC, inputs=(u,), recipients=(
        WithdrawalRecipient("bc1q", Decimal("0.9999"), "7"), Recipient.user(MIXIN_CASHIER_ID, Decimal("0.0001"))))
    raw = encode(build_transaction(plan, keys_for(client, plan)), with_signatures=False).hex()
    [v] = verify(client, (rid("h"), raw))
    [b] = broadcast(client, (rid("h"), sign(ks, raw, v["views"])))
    assert b["state"] == "spent" and b["receivers"][0]["withdrawal_hash"]
    assert len(calls) == 1 and len(safe.hook_errors) == 1
    assert calls[0]["tag"] == "7" and calls[0]["address"] == "bc1q" and calls[0]["amount"] == Decimal("0.9999")
    assert fake.balance(MIXIN_CASHIER_ID, BTC) == Decimal("0.0001") and safe.unspent(ks.app_id, BTC) == []


def test_finality_applies_once(fake, safe, bot):
    ks, client = bot
    user = fake.new_user()
    fake.pay(ks.app_id, user, BTC, "1")
    safe.finality_delay = 0.2
    _, raw = transfer_raw(client, ks, rid("once"), BTC, "0.4", user)
    [v] = verify(client, (rid("once"), raw))
    broadcast(client, (rid("once"), sign(ks, raw, v["views"])))
    safe.finalize_pending()  # early, by hand; the scheduled finality must then do nothing
    assert fake.balance(user, BTC) == Decimal("-0.6")
    time.sleep(0.4)
    assert fake.balance(user, BTC) == Decimal("-0.6") and safe.unspent_total(ks.app_id, BTC) == Decimal("0.6")
    assert len([s for s in fake.snapshots.values() if s.data["request_id"] == rid("once")]) == 2
