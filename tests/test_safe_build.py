"""Pure Safe transaction builders (integrations/mixin/safe_build.py)."""
from __future__ import annotations

import hashlib
import uuid
from decimal import Decimal

import blake3
import pytest

from domain.ids import unique_object_id
from integrations.mixin.safe_build import (
    MIXIN_CASHIER_ID,
    ChainFeeWithdrawalPlan,
    GhostKey,
    GhostKeyRequest,
    InsufficientBalance,
    Recipient,
    TooManyInputs,
    TransactionPlan,
    Utxo,
    WithdrawalRecipient,
    build_chain_fee_withdrawal,
    build_transaction,
    fee_request_id,
    ghost_key_hint,
    kernel_asset_id,
    members_hash,
    plan_transfer,
    plan_withdrawal_with_asset_fee,
    plan_withdrawal_with_chain_fee,
    select_utxos,
)
from integrations.mixin.safe_sign import ghost_public_key, sign_inputs, spend_public_key, verify_transaction_signatures
from integrations.mixin.safe_tx import (
    OUTPUT_TYPE_SCRIPT,
    OUTPUT_TYPE_WITHDRAWAL_SUBMIT,
    SafeTxError,
    decode,
    encode,
    payload_hash,
    transaction_hash,
)

BOT = "11111111-2222-4333-8444-555555555555"
USER = "5f3d5b3d-383a-482a-80a0-f7c879ed8ced"
USDT = "4d8c508b-91c5-375b-92b0-ee702ed2dac5"  # token on a chain
ETH = "43d61dcd-e413-450d-80b8-101d5e903357"  # its chain asset
TRACE = "0f3a7a3e-9a5c-4a43-9d8a-0d9bd1f0a0b1"


def utxo(i: int, amount: str, asset: str = USDT, state: str = "unspent", sequence: int | None = None) -> Utxo:
    return Utxo(
        output_id=str(uuid.UUID(bytes=hashlib.md5(f"out-{asset}-{i}".encode()).digest())),
        transaction_hash=hashlib.sha256(f"tx-{asset}-{i}".encode()).hexdigest(),
        output_index=i % 3,
        asset_id=asset,
        amount=Decimal(amount),
        sequence=1000 + i if sequence is None else sequence,
        state=state,
    )


def fake_ghost_keys(requests: tuple[GhostKeyRequest, ...]) -> list[GhostKey]:
    """What the fake /safe/keys would answer, but derived from the hint so tests are deterministic."""
    return [
        GhostKey(
            mask=hashlib.sha256(f"mask-{r.hint}".encode()).digest(),
            keys=tuple(hashlib.sha256(f"key-{r.hint}-{m}".encode()).digest() for m in r.receivers),
        )
        for r in requests
    ]


def build(plan: TransactionPlan):
    return build_transaction(plan, fake_ghost_keys(plan.ghost_key_requests()))


# --------------------------------------------------------------------------- hashes and ids


def test_kernel_asset_id_and_members_hash():
    assert kernel_asset_id("965e5c6e-434c-3fa9-b780-c50f43cd955c").hex() == (
        "b9f49cf777dc4d03bc54cd1367eebca319f8603ea1ce18910d09e2c540c630d8"
    )
    assert members_hash(["324a05bf-6b1d-3234-9a7e-283cb025c122"]) == (
        "8481857dd3552fbbb233cadf9e051c2da9a40c164420b759e1606f0f98d68ae5"
    )
    two = members_hash([USER, BOT])
    assert two == members_hash([BOT, USER])
    assert two == hashlib.sha3_256((BOT + USER).encode()).hexdigest()  # BOT sorts first
    assert members_hash(USER) == members_hash([USER])
    with pytest.raises(SafeTxError, match="canonical"):
        kernel_asset_id(USDT.upper())
    with pytest.raises(SafeTxError, match="UUID"):
        members_hash(["not-a-uuid"])


def test_ghost_key_hint_follows_the_go_sdk_scheme():
    trace_hash = blake3.blake3(TRACE.encode()).digest()
    # index 0: big.Int(0).Bytes() is empty, so the seed is blake3(trace_hash) alone
    seed0 = blake3.blake3(trace_hash).hexdigest()
    assert ghost_key_hint(TRACE, 0) == unique_object_id(trace_hash.hex(), seed0)
    seed1 = blake3.blake3(trace_hash + b"\x01").hexdigest()
    assert ghost_key_hint(TRACE, 1) == unique_object_id(trace_hash.hex(), seed1)
    seed256 = blake3.blake3(trace_hash + b"\x01\x00").hexdigest()
    assert ghost_key_hint(TRACE, 256) == unique_object_id(trace_hash.hex(), seed256)
    u = uuid.UUID(ghost_key_hint(TRACE, 0))
    assert u.version == 3 and u.variant == uuid.RFC_4122


def test_ghost_key_hints_deterministic_and_distinct():
    hints = [ghost_key_hint(TRACE, i) for i in range(300)]
    assert hints == [ghost_key_hint(TRACE, i) for i in range(300)]
    assert len(set(hints)) == 300
    other = "0f3a7a3e-9a5c-4a43-9d8a-0d9bd1f0a0b2"
    assert ghost_key_hint(other, 0) != hints[0]
    with pytest.raises(SafeTxError):
        ghost_key_hint(TRACE, -1)


def test_fee_request_id():
    assert fee_request_id(TRACE) == unique_object_id(TRACE, "FEE")
    assert fee_request_id(TRACE) == fee_request_id(TRACE)
    assert fee_request_id(TRACE) != TRACE


# --------------------------------------------------------------------------- selection


def test_select_exact_match_has_no_change():
    sel = select_utxos([utxo(0, "1"), utxo(1, "2"), utxo(2, "4")], Decimal("3"))
    assert [u.sequence for u in sel.inputs] == [1000, 1001]
    assert sel.total == Decimal("3")
    assert sel.change == Decimal("0")


def test_select_with_change_in_sequence_order():
    utxos = [utxo(2, "4"), utxo(0, "1"), utxo(1, "2.5")]  # given out of order
    sel = select_utxos(utxos, Decimal("3.50000001"))
    assert [u.sequence for u in sel.inputs] == [1000, 1001, 1002]
    assert sel.total == Decimal("7.5")
    assert sel.change == Decimal("3.99999999")
    assert select_utxos(utxos, Decimal("3.5")).change == Decimal("0")


def test_select_skips_non_unspent():
    utxos = [utxo(0, "5", state="signed"), utxo(1, "1"), utxo(2, "1", state="spent"), utxo(3, "1")]
    sel = select_utxos(utxos, Decimal("2"))
    assert [u.sequence for u in sel.inputs] == [1001, 1003]


def test_select_insufficient():
    with pytest.raises(InsufficientBalance) as err:
        select_utxos([utxo(0, "1"), utxo(1, "0.5"), utxo(2, "9", state="signed")], Decimal("1.50000001"))
    assert err.value.available == Decimal("1.5")
    assert err.value.required == Decimal("1.50000001")
    assert isinstance(err.value, SafeTxError)
    assert "1.50000001" in str(err.value)
    with pytest.raises(InsufficientBalance):
        select_utxos([], Decimal("1"))


def test_select_too_many_inputs():
    dust = [utxo(i, "0.1") for i in range(10)]
    with pytest.raises(TooManyInputs) as err:
        select_utxos(dust, Decimal("0.5"), max_inputs=4)
    assert err.value.max_inputs == 4
    assert err.value.needed_inputs == 5
    assert err.value.reachable == Decimal("0.4")
    assert "consolidate" in str(err.value)
    assert len(select_utxos(dust, Decimal("0.4"), max_inputs=4).inputs) == 4
    # the default is the kernel limit, 256
    many = [utxo(i, "0.00000001") for i in range(300)]
    with pytest.raises(TooManyInputs):
        select_utxos(many, Decimal("0.00000257"))
    assert len(select_utxos(many, Decimal("0.00000256")).inputs) == 256
    # insufficient wins over too-many when the balance is short anyway
    with pytest.raises(InsufficientBalance):
        select_utxos(dust, Decimal("2"), max_inputs=4)


def test_select_rejects_bad_lists_and_amounts():
    with pytest.raises(SafeTxError, match="several assets"):
        select_utxos([utxo(0, "1"), utxo(1, "1", asset=ETH)], Decimal("1"))
    with pytest.raises(SafeTxError, match="duplicate"):
        select_utxos([utxo(0, "1"), utxo(0, "1")], Decimal("1"))
    with pytest.raises(SafeTxError, match="decimals"):
        select_utxos([utxo(0, "1")], Decimal("0.123456789"))
    with pytest.raises(SafeTxError, match="> 0"):
        select_utxos([utxo(0, "1")], Decimal("0"))


def test_utxo_from_json():
    item = {
        "type": "safe_output",
        "output_id": "0b3e8b3a-5c2c-3b1e-9a3e-1e2f3a4b5c6d",
        "transaction_hash": "AB" * 32,
        "output_index": 1,
        "asset_id": USDT,
        "kernel_asset_id": kernel_asset_id(USDT).hex(),
        "amount": "12.34567891",
        "sequence": 42,
        "state": "unspent",
        "receivers": [BOT],
    }
    u = Utxo.from_json(item)
    assert u.amount == Decimal("12.34567891")
    assert u.transaction_hash == "ab" * 32
    assert u.to_input().hash == bytes.fromhex("ab" * 32) and u.to_input().index == 1
    with pytest.raises(SafeTxError, match="float"):
        Utxo.from_json({**item, "amount": 12.5})


# --------------------------------------------------------------------------- transfers


def transfer_plan(utxos=None, amount="1.5", extra=b"refund:abc") -> TransactionPlan:
    return plan_transfer(
        asset_id=USDT,
        utxos=utxos if utxos is not None else [utxo(0, "1"), utxo(1, "2"), utxo(2, "5")],
        recipients=[Recipient.user(USER, Decimal(amount))],
        change_member=BOT,
        request_id=TRACE,
        extra=extra,
    )


def test_transfer_with_change():
    plan = transfer_plan()
    assert [r.amount for r in plan.recipients] == [Decimal("1.5"), Decimal("1.5")]
    assert plan.recipients[1].members == (BOT,)
    reqs = plan.ghost_key_requests()
    assert [r.index for r in reqs] == [0, 1]
    assert reqs[0].as_json() == {"receivers": [USER], "index": 0, "hint": ghost_key_hint(TRACE, 0)}
    assert reqs[1].as_json() == {"receivers": [BOT], "index": 1, "hint": ghost_key_hint(TRACE, 1)}

    tx = build(plan)
    assert tx.asset == kernel_asset_id(USDT)
    assert [i.hash.hex() for i in tx.inputs] == [u.transaction_hash for u in plan.inputs]
    assert [i.index for i in tx.inputs] == [0, 1]
    gks = fake_ghost_keys(reqs)
    for o, gk in zip(tx.outputs, gks):
        assert o.type == OUTPUT_TYPE_SCRIPT
        assert o.script == b"\xff\xfe\x01"
        assert o.keys == gk.keys and o.mask == gk.mask
        assert o.withdrawal is None
    assert tx.extra == b"refund:abc"
    assert tx.signatures is None
    assert tx.total_output_amount() == Decimal("3") == plan.total
    assert decode(encode(tx)) == tx


def test_transfer_exact_has_single_output():
    plan = transfer_plan(amount="3")
    assert len(plan.recipients) == 1
    tx = build(plan)
    assert len(tx.outputs) == 1 and tx.outputs[0].amount == Decimal("3")
    assert len(tx.inputs) == 2


def test_same_transfer_twice_is_byte_identical():
    first = encode(build(transfer_plan()))
    # a crash-retry rebuilds everything from scratch: new objects, UTXO list in another order
    retry_utxos = [utxo(2, "5"), utxo(1, "2"), utxo(0, "1")]
    second = encode(build(transfer_plan(utxos=retry_utxos)))
    assert first == second
    # different memo -> different bytes (the test can fail)
    assert encode(build(transfer_plan(extra=b"other"))) != first


def test_ghost_keys_as_mapping_and_mismatches():
    plan = transfer_plan()
    reqs = plan.ghost_key_requests()
    gks = fake_ghost_keys(reqs)
    assert build_transaction(plan, {1: gks[1], 0: gks[0]}) == build_transaction(plan, gks)
    with pytest.raises(SafeTxError, match="ghost keys"):
        build_transaction(plan, gks[:1])
    with pytest.raises(SafeTxError, match="indexes"):
        build_transaction(plan, {0: gks[0], 2: gks[1]})
    two_keys = GhostKey(gks[0].mask, gks[0].keys * 2)
    with pytest.raises(SafeTxError, match="members"):
        build_transaction(plan, [two_keys, gks[1]])
    assert GhostKey.from_json({"type": "ghost_key", "mask": gks[0].mask.hex(), "keys": [gks[0].keys[0].hex()]}) == gks[0]


def test_multisig_recipient_threshold_and_sorted_receivers():
    plan = plan_transfer(
        asset_id=USDT,
        utxos=[utxo(0, "10")],
        recipients=[Recipient((USER, BOT), Decimal("4"), threshold=2)],
        change_member=BOT,
        request_id=TRACE,
    )
    reqs = plan.ghost_key_requests()
    assert reqs[0].receivers == tuple(sorted((USER, BOT)))
    tx = build(plan)
    assert tx.outputs[0].script == b"\xff\xfe\x02"
    assert len(tx.outputs[0].keys) == 2
    with pytest.raises(SafeTxError, match="threshold"):
        Recipient((USER,), Decimal("1"), threshold=2)


def test_plan_validation():
    with pytest.raises(SafeTxError, match="extra"):
        transfer_plan(extra=b"x" * 257)
    assert build(transfer_plan(extra=b"x" * 256)).extra == b"x" * 256
    with pytest.raises(SafeTxError, match="unbalanced"):
        TransactionPlan(TRACE, USDT, (utxo(0, "1"),), (Recipient.user(USER, Decimal("2")),))
    with pytest.raises(SafeTxError, match="asset"):
        TransactionPlan(TRACE, USDT, (utxo(0, "1", asset=ETH),), (Recipient.user(USER, Decimal("1")),))
    with pytest.raises(SafeTxError, match="request id"):
        TransactionPlan("trace-1", USDT, (utxo(0, "1"),), (Recipient.user(USER, Decimal("1")),))
    with pytest.raises(InsufficientBalance):
        transfer_plan(amount="9")


def test_built_transfer_signs_and_verifies():
    seed = hashlib.sha256(b"bot spend").digest()
    tx = build(transfer_plan())
    views = [hashlib.sha512(f"v{i}".encode()).digest() for i in range(len(tx.inputs))]
    import nacl.bindings as nb

    views = [nb.crypto_core_ed25519_scalar_reduce(v) for v in views]
    signed = sign_inputs(tx, [v.hex() for v in views], seed)
    back = decode(encode(signed))
    assert verify_transaction_signatures(back, views, spend_public_key(seed))
    assert transaction_hash(back) == transaction_hash(tx)
    assert ghost_public_key(views[0], spend_public_key(seed)) != ghost_public_key(views[1], spend_public_key(seed))


# --------------------------------------------------------------------------- withdrawals


ADDRESS = "0x" + "aB" * 20
XRP_ADDRESS = "rEb8TK3gBgk5auZkwc6sHnwrGVJH8DuaLh"


def test_same_asset_fee_withdrawal_layout():
    plan = plan_withdrawal_with_asset_fee(
        asset_id=USDT,
        utxos=[utxo(0, "3"), utxo(1, "3")],
        address=XRP_ADDRESS,
        tag="998877",
        amount=Decimal("4"),
        fee_amount=Decimal("0.2"),
        change_member=BOT,
        request_id=TRACE,
        extra=b"mmflow:withdraw",
    )
    assert isinstance(plan.recipients[0], WithdrawalRecipient)
    reqs = plan.ghost_key_requests()
    assert [r.index for r in reqs] == [1, 2]  # no ghost key for the withdrawal output
    assert [r.receivers for r in reqs] == [(MIXIN_CASHIER_ID,), (BOT,)]
    assert [r.hint for r in reqs] == [ghost_key_hint(TRACE, 1), ghost_key_hint(TRACE, 2)]

    tx = build(plan)
    raw = encode(tx)
    back = decode(raw)
    assert back == tx
    w, fee, change = back.outputs
    assert w.type == OUTPUT_TYPE_WITHDRAWAL_SUBMIT
    assert w.amount == Decimal("4")
    assert w.withdrawal.address == XRP_ADDRESS
    assert w.withdrawal.tag == "998877"  # the tag travels in the output ...
    assert w.keys == () and w.mask == bytes(32) and w.script == b""
    assert back.extra == b"mmflow:withdraw"  # ... and NOT in extra (Mr.Market's bug)
    assert b"998877" not in back.extra
    assert fee.type == OUTPUT_TYPE_SCRIPT and fee.amount == Decimal("0.2") and fee.script == b"\xff\xfe\x01"
    assert change.amount == Decimal("1.8")
    assert back.total_output_amount() == Decimal("6")
    assert back.references == ()
    # the raw bytes carry address and tag inside the 0xa1 output
    assert b"\x77\x77\x00\x22" + XRP_ADDRESS.encode() + b"\x00\x06998877" in raw


def test_same_asset_fee_withdrawal_without_tag_and_exact():
    plan = plan_withdrawal_with_asset_fee(
        asset_id=ETH,
        utxos=[utxo(0, "1.01", asset=ETH)],
        address=ADDRESS,
        tag="",
        amount=Decimal("1"),
        fee_amount=Decimal("0.01"),
        change_member=BOT,
        request_id=TRACE,
    )
    tx = build(plan)
    assert len(tx.outputs) == 2  # exact: no change output
    assert tx.outputs[0].withdrawal.tag == ""
    assert tx.outputs[1].amount == Decimal("0.01")
    assert tx.extra == b""
    assert decode(encode(tx)) == tx


def chain_fee_plan(**overrides) -> ChainFeeWithdrawalPlan:
    kwargs = dict(
        asset_id=USDT,
        utxos=[utxo(0, "50"), utxo(1, "70")],
        fee_asset_id=ETH,
        fee_utxos=[utxo(0, "0.001", asset=ETH), utxo(1, "0.5", asset=ETH)],
        address=ADDRESS,
        tag="",
        amount=Decimal("100"),
        fee_amount=Decimal("0.0015"),
        change_member=BOT,
        request_id=TRACE,
        extra=b"memo",
    )
    kwargs.update(overrides)
    return plan_withdrawal_with_chain_fee(**kwargs)


def build_chain(plan: ChainFeeWithdrawalPlan):
    return build_chain_fee_withdrawal(
        plan,
        fake_ghost_keys(plan.withdrawal.ghost_key_requests()),
        fake_ghost_keys(plan.fee.ghost_key_requests()),
    )


def test_chain_fee_withdrawal_two_linked_transactions():
    plan = chain_fee_plan()
    assert plan.withdrawal.request_id == TRACE
    assert plan.fee.request_id == unique_object_id(TRACE, "FEE")
    assert [r.index for r in plan.withdrawal.ghost_key_requests()] == [1]
    fee_reqs = plan.fee.ghost_key_requests()
    assert [r.index for r in fee_reqs] == [0, 1]
    assert [r.receivers for r in fee_reqs] == [(MIXIN_CASHIER_ID,), (BOT,)]
    assert [r.hint for r in fee_reqs] == [ghost_key_hint(fee_request_id(TRACE), i) for i in (0, 1)]

    tx_a, tx_b = build_chain(plan)
    assert tx_a.asset == kernel_asset_id(USDT)
    assert tx_b.asset == kernel_asset_id(ETH)
    assert tx_a.references == ()
    assert tx_b.references == (payload_hash(tx_a),)
    assert tx_b.references[0].hex() == transaction_hash(tx_a)
    assert tx_b.references[0] == blake3.blake3(encode(tx_a, with_signatures=False)).digest()

    w, change = tx_a.outputs
    assert w.type == OUTPUT_TYPE_WITHDRAWAL_SUBMIT and w.amount == Decimal("100")
    assert w.withdrawal.address == ADDRESS
    assert change.amount == Decimal("20")
    fee, fee_change = tx_b.outputs
    assert fee.amount == Decimal("0.0015") and fee_change.amount == Decimal("0.4995")
    assert tx_a.extra == tx_b.extra == b"memo"
    for tx in (tx_a, tx_b):
        assert decode(encode(tx)) == tx


def test_chain_fee_withdrawal_is_deterministic_and_reference_tracks_tx_a():
    a1, b1 = build_chain(chain_fee_plan())
    a2, b2 = build_chain(chain_fee_plan())
    assert encode(a1) == encode(a2) and encode(b1) == encode(b2)
    # a different withdrawal amount changes tx A, hence B's reference
    a3, b3 = build_chain(chain_fee_plan(amount=Decimal("99")))
    assert b3.references == (payload_hash(a3),) != b1.references
    # signing A does not change what B references
    seed = hashlib.sha256(b"k").digest()
    import nacl.bindings as nb

    views = [nb.crypto_core_ed25519_scalar_reduce(hashlib.sha512(f"{i}".encode()).digest()).hex() for i in range(2)]
    assert b1.references == (payload_hash(sign_inputs(a1, views, seed)),)


def test_chain_fee_withdrawal_rejects_same_asset_and_short_fee():
    with pytest.raises(SafeTxError, match="plan_withdrawal_with_asset_fee"):
        chain_fee_plan(fee_asset_id=USDT, fee_utxos=[utxo(5, "1")])
    with pytest.raises(InsufficientBalance):
        chain_fee_plan(fee_amount=Decimal("1"))
    with pytest.raises(SafeTxError, match="canonical"):
        chain_fee_plan(change_member=USER.upper())
