"""v5 raw transaction encoding/decoding and hashes (integrations/mixin/safe_tx.py)."""
from __future__ import annotations

import hashlib
import struct
from decimal import Decimal

import blake3
import pytest

from integrations.mixin.safe_build import kernel_asset_id, members_hash
from integrations.mixin.safe_tx import (
    OUTPUT_TYPE_SCRIPT,
    OUTPUT_TYPE_WITHDRAWAL_SUBMIT,
    Input,
    Output,
    SafeTxError,
    Transaction,
    Withdrawal,
    amount_to_kernel,
    decode,
    encode,
    kernel_to_amount,
    payload_hash,
    threshold_script,
    transaction_hash,
)

# Golden vector of the reference sheet §3.4 (public "cowallet-rpc" API doc).
GOLDEN_RAW_HEX = (
    "77770005b9f49cf777dc4d03bc54cd1367eebca319f8603ea1ce18910d09e2c540c630d80001deb61617b968c172fb2df4c05d3ada3e"
    "5786a327c69aefcd891b807b8873ffce000100000000000000020000000405f5e1000001ef49cf0b2480e1fc004cb20a55efc170260a"
    "3b0811d4e5766471b52a7194deecc7b188247103491326c322a994f355944c60759faf41f321651da2f4aa47a8c80003fffe01000000"
    "0000040bebc1fb00019657c4204f7b713dcd0447dd1191a8cda4f1575d46c742f746799cdbe762ba207bc3fb52298f07ae052ba54f49"
    "262a408e628f107a0ab81f1c319e16adec65430003fffe0100000000000000000000"
)
GOLDEN_HASH = "4a81d69b6e8e095e5a1671771c314d803b9810d3c5dddaeaab2bf6a80455dfe5"
GOLDEN_ASSET_ID = "965e5c6e-434c-3fa9-b780-c50f43cd955c"
GOLDEN_KERNEL_ASSET = "b9f49cf777dc4d03bc54cd1367eebca319f8603ea1ce18910d09e2c540c630d8"
GOLDEN_SENDER = "324a05bf-6b1d-3234-9a7e-283cb025c122"
GOLDEN_SENDERS_HASH = "8481857dd3552fbbb233cadf9e051c2da9a40c164420b759e1606f0f98d68ae5"
GOLDEN_RECEIVER = "5f3d5b3d-383a-482a-80a0-f7c879ed8ced"
GOLDEN_RECEIVER_HASH = "582428e7ba1132da60f1932db8f71050632c0d32d538332bc1e7823fab9591e0"


def h32(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def script_output(amount: str, label: str = "k", n_keys: int = 1, threshold: int = 1) -> Output:
    return Output(
        type=OUTPUT_TYPE_SCRIPT,
        amount=Decimal(amount),
        keys=tuple(h32(f"{label}-key-{i}") for i in range(n_keys)),
        mask=h32(f"{label}-mask"),
        script=threshold_script(threshold),
    )


def withdrawal_output(amount: str, address: str, tag: str = "") -> Output:
    return Output(type=OUTPUT_TYPE_WITHDRAWAL_SUBMIT, amount=Decimal(amount), withdrawal=Withdrawal(address, tag))


def make_tx(**overrides) -> Transaction:
    fields = dict(
        asset=kernel_asset_id(GOLDEN_ASSET_ID),
        inputs=[Input(h32("in-0"), 0), Input(h32("in-1"), 3)],
        outputs=[script_output("1.5", "a"), script_output("0.00000001", "b", n_keys=2, threshold=2)],
    )
    fields.update(overrides)
    return Transaction(**fields)


def roundtrip(tx: Transaction) -> bytes:
    raw = encode(tx)
    back = decode(raw)
    assert back == tx
    assert encode(back) == raw
    return raw


# --------------------------------------------------------------------------- golden vector


def test_golden_vector_decodes_to_the_published_fields():
    raw = bytes.fromhex(GOLDEN_RAW_HEX)
    assert len(raw) == 250
    tx = decode(raw)
    assert tx.version == 5
    assert tx.asset.hex() == GOLDEN_KERNEL_ASSET
    assert tx.inputs == (
        Input(bytes.fromhex("deb61617b968c172fb2df4c05d3ada3e5786a327c69aefcd891b807b8873ffce"), 1),
    )
    assert [o.amount for o in tx.outputs] == [Decimal("1"), Decimal("1.99999995")]
    assert str(tx.outputs[1].amount) == "1.99999995"
    for o in tx.outputs:
        assert o.type == OUTPUT_TYPE_SCRIPT
        assert len(o.keys) == 1
        assert o.script == bytes.fromhex("fffe01")
        assert o.withdrawal is None
    assert tx.outputs[0].keys[0].hex() == "ef49cf0b2480e1fc004cb20a55efc170260a3b0811d4e5766471b52a7194deec"
    assert tx.outputs[0].mask.hex() == "c7b188247103491326c322a994f355944c60759faf41f321651da2f4aa47a8c8"
    assert tx.outputs[1].keys[0].hex() == "9657c4204f7b713dcd0447dd1191a8cda4f1575d46c742f746799cdbe762ba20"
    assert tx.outputs[1].mask.hex() == "7bc3fb52298f07ae052ba54f49262a408e628f107a0ab81f1c319e16adec6543"
    assert tx.references == ()
    assert tx.extra == b""
    assert tx.signatures is None


def test_golden_vector_reencodes_byte_identical_and_hashes():
    raw = bytes.fromhex(GOLDEN_RAW_HEX)
    tx = decode(raw)
    assert encode(tx) == raw
    assert encode(tx, with_signatures=False) == raw
    assert transaction_hash(tx) == GOLDEN_HASH
    assert blake3.blake3(raw).hexdigest() == GOLDEN_HASH
    assert payload_hash(tx) == bytes.fromhex(GOLDEN_HASH)
    # the hex-string entry point gives the same transaction
    assert decode(GOLDEN_RAW_HEX) == tx


def test_golden_vector_rebuilt_from_fields():
    """Build the golden transaction from its parts: the encoder alone must reproduce the 250 bytes."""
    golden = decode(bytes.fromhex(GOLDEN_RAW_HEX))
    tx = Transaction(
        asset=kernel_asset_id(GOLDEN_ASSET_ID),
        inputs=[Input(golden.inputs[0].hash, 1)],
        outputs=[
            Output(OUTPUT_TYPE_SCRIPT, Decimal("1"), golden.outputs[0].keys, golden.outputs[0].mask, threshold_script(1)),
            Output(
                OUTPUT_TYPE_SCRIPT,
                Decimal("1.99999995"),
                golden.outputs[1].keys,
                golden.outputs[1].mask,
                threshold_script(1),
            ),
        ],
    )
    assert encode(tx).hex() == GOLDEN_RAW_HEX
    assert transaction_hash(tx) == GOLDEN_HASH


def test_golden_kernel_asset_id_and_members_hashes():
    assert kernel_asset_id(GOLDEN_ASSET_ID).hex() == GOLDEN_KERNEL_ASSET
    assert members_hash([GOLDEN_SENDER]) == GOLDEN_SENDERS_HASH
    assert members_hash([GOLDEN_RECEIVER]) == GOLDEN_RECEIVER_HASH
    assert members_hash([GOLDEN_RECEIVER]).startswith("582428e7")


# --------------------------------------------------------------------------- amounts


@pytest.mark.parametrize(
    "amount, units, encoded",
    [
        ("1", 100_000_000, "05f5e100"),
        ("1.99999995", 199_999_995, "0bebc1fb"),
        ("0.00000001", 1, "01"),
        ("2.56", 256_000_000, "0f424000"),
        ("123456789012345678901234567890.12345678", 12345678901234567890123456789012345678, None),
    ],
)
def test_amount_kernel_integer(amount, units, encoded):
    assert amount_to_kernel(Decimal(amount)) == units
    assert kernel_to_amount(units) == Decimal(amount)
    if encoded is not None:
        tx = make_tx(outputs=[script_output(amount)])
        assert ("00" + "00" + f"{len(encoded) // 2:04x}" + encoded) in encode(tx).hex()
    roundtrip(make_tx(outputs=[script_output(amount)]))


def test_amount_trailing_zeros_are_fine_and_normalised():
    assert amount_to_kernel(Decimal("1.000000000000")) == 100_000_000
    assert str(kernel_to_amount(150_000_000)) == "1.5"
    assert kernel_to_amount(1) == Decimal("0.00000001")
    assert format(kernel_to_amount(1), "f") == "0.00000001"
    assert kernel_to_amount(100_000_000).as_tuple() == Decimal("1").as_tuple()


@pytest.mark.parametrize("bad", [Decimal("0.000000001"), Decimal("1.123456789"), Decimal("0"), Decimal("-1"),
                                 Decimal("-0"), Decimal("NaN"), Decimal("Infinity")])
def test_bad_amounts_rejected(bad):
    with pytest.raises(SafeTxError):
        amount_to_kernel(bad)
    with pytest.raises(SafeTxError):
        script_output(str(bad))


def test_float_amount_rejected():
    with pytest.raises(SafeTxError, match="float"):
        amount_to_kernel(1.5)  # type: ignore[arg-type]
    with pytest.raises(SafeTxError):
        Output(OUTPUT_TYPE_SCRIPT, 0.1, (h32("k"),), h32("m"), threshold_script(1))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- round-trips


def test_roundtrip_script_outputs_multi_keys():
    tx = make_tx(outputs=[script_output("3", "x", n_keys=3, threshold=2), script_output("0.1", "y")])
    raw = roundtrip(tx)
    assert decode(raw).outputs[0].script == b"\xff\xfe\x02"
    assert len(decode(raw).outputs[0].keys) == 3


def test_roundtrip_withdrawal_with_tag():
    tx = make_tx(outputs=[withdrawal_output("0.5", "rEb8TK3gBgk5auZkwc6sHnwrGVJH8DuaLh", "123456"), script_output("1")])
    raw = roundtrip(tx)
    o = decode(raw).outputs[0]
    assert o.type == OUTPUT_TYPE_WITHDRAWAL_SUBMIT
    assert o.withdrawal == Withdrawal("rEb8TK3gBgk5auZkwc6sHnwrGVJH8DuaLh", "123456")
    assert o.keys == () and o.mask == bytes(32) and o.script == b""
    addr = b"rEb8TK3gBgk5auZkwc6sHnwrGVJH8DuaLh"
    # type 00a1 | amount 0.5 = 50_000_000 = 02faf080 | no keys | zero mask | empty script | 7777 addr tag
    expected = b"\x00\xa1" + b"\x00\x04" + bytes.fromhex("02faf080") + b"\x00\x00" + bytes(32) + b"\x00\x00"
    expected += b"\x77\x77" + struct.pack(">H", len(addr)) + addr
    expected += b"\x00\x06123456"
    assert expected in raw


def test_roundtrip_withdrawal_without_tag():
    tx = make_tx(outputs=[withdrawal_output("0.5", "0x" + "ab" * 20)])
    raw = roundtrip(tx)
    assert decode(raw).outputs[0].withdrawal == Withdrawal("0x" + "ab" * 20, "")
    assert raw.endswith(b"\x00\x00" + b"\x00\x00\x00\x00" + b"\x00\x00")  # empty tag, 0 refs, no extra, unsigned
    assert (b"0x" + b"ab" * 20 + b"\x00\x00") in raw


def test_roundtrip_references():
    refs = [h32("ref-a"), h32("ref-b")]
    tx = make_tx(references=refs)
    raw = roundtrip(tx)
    assert decode(raw).references == tuple(refs)
    assert b"\x00\x02" + refs[0] + refs[1] + b"\x00\x00\x00\x00" in raw
    with pytest.raises(SafeTxError, match="references"):
        make_tx(references=[h32("1"), h32("2"), h32("3")])
    with pytest.raises(SafeTxError, match="32 bytes"):
        make_tx(references=[b"short"])


@pytest.mark.parametrize("size", [0, 1, 255, 256])
def test_roundtrip_extra_sizes(size):
    extra = bytes(range(256))[:size]
    tx = make_tx(extra=extra)
    raw = roundtrip(tx)
    assert decode(raw).extra == extra
    assert raw.endswith(struct.pack(">I", size) + extra + b"\x00\x00")


def test_extra_over_256_rejected_on_build_and_decode():
    with pytest.raises(SafeTxError, match="extra"):
        make_tx(extra=b"x" * 257)
    ok = encode(make_tx(extra=b""))
    assert ok.endswith(b"\x00\x00\x00\x00" + b"\x00\x00")
    forged = ok[:-6] + struct.pack(">I", 257) + b"x" * 257 + b"\x00\x00"
    with pytest.raises(SafeTxError, match="extra"):
        decode(forged)


def test_roundtrip_signature_maps():
    sig = lambda label: hashlib.sha512(label.encode()).digest()  # noqa: E731
    tx = make_tx(signatures=[{0: sig("a")}, {2: sig("c"), 0: sig("b"), 1: sig("d")}])
    raw = roundtrip(tx)
    back = decode(raw)
    assert back.signatures[0] == {0: sig("a")}
    assert list(back.signatures[1]) == [0, 1, 2]
    assert back.signatures[1][2] == sig("c")
    # signer indexes are written in ascending order whatever the dict order
    tail = b"\x00\x02" + b"\x00\x01" + b"\x00\x00" + sig("a") + b"\x00\x03"
    tail += b"\x00\x00" + sig("b") + b"\x00\x01" + sig("d") + b"\x00\x02" + sig("c")
    assert raw.endswith(tail)
    # the hash ignores signatures
    assert transaction_hash(back) == transaction_hash(tx.unsigned())
    assert encode(tx, with_signatures=False) == encode(tx.unsigned())
    assert encode(tx.unsigned()).endswith(b"\x00\x00")


def test_signature_maps_must_match_inputs_and_be_64_bytes():
    with pytest.raises(SafeTxError, match="one per input"):
        make_tx(signatures=[{0: bytes(64)}])
    with pytest.raises(SafeTxError, match="64 bytes"):
        make_tx(signatures=[{0: bytes(63)}, {0: bytes(64)}])
    assert make_tx(signatures=[]).signatures is None


def test_transaction_is_immutable():
    tx = make_tx(signatures=[{0: bytes(64)}, {0: bytes(64)}])
    with pytest.raises(AttributeError):
        tx.extra = b"x"  # type: ignore[misc]
    assert isinstance(tx.inputs, tuple) and isinstance(tx.outputs, tuple)
    with pytest.raises(TypeError):
        tx.signatures[0][1] = bytes(64)  # type: ignore[index]


# --------------------------------------------------------------------------- limits & malformed raw


def test_input_and_output_count_limits():
    many_inputs = [Input(h32(f"in-{i}"), i % 4) for i in range(257)]
    with pytest.raises(SafeTxError, match="too many inputs"):
        make_tx(inputs=many_inputs)
    roundtrip(make_tx(inputs=many_inputs[:256]))
    with pytest.raises(SafeTxError, match="too many outputs"):
        make_tx(outputs=[script_output("1", f"o{i}") for i in range(257)])
    roundtrip(make_tx(outputs=[script_output("1", f"o{i}") for i in range(256)]))
    with pytest.raises(SafeTxError, match="at least one input"):
        make_tx(inputs=[])
    with pytest.raises(SafeTxError, match="at least one output"):
        make_tx(outputs=[])
    with pytest.raises(SafeTxError, match="duplicate input"):
        make_tx(inputs=[Input(h32("x"), 1), Input(h32("x"), 1)])


def test_decode_rejects_more_than_256_outputs():
    one = encode(make_tx(outputs=[script_output("1")]))
    tx = make_tx(outputs=[script_output("1")])
    prefix = 2 + 2 + 32 + 2 + len(tx.inputs) * (32 + 2 + 2 + 2 + 2)
    out_start = prefix + 2
    output_bytes = one[out_start:-8]  # one output, then refs(2) extra(4) sigs(2)
    forged = one[:prefix] + struct.pack(">H", 257) + output_bytes * 257 + one[-8:]
    with pytest.raises(SafeTxError, match="too many outputs"):
        decode(forged)


def test_output_shape_rules():
    with pytest.raises(SafeTxError, match="withdrawal data"):
        Output(OUTPUT_TYPE_WITHDRAWAL_SUBMIT, Decimal("1"))
    with pytest.raises(SafeTxError, match="no keys"):
        Output(OUTPUT_TYPE_WITHDRAWAL_SUBMIT, Decimal("1"), keys=(h32("k"),), withdrawal=Withdrawal("addr"))
    with pytest.raises(SafeTxError, match="only a 0xa1"):
        Output(OUTPUT_TYPE_SCRIPT, Decimal("1"), withdrawal=Withdrawal("addr"))
    with pytest.raises(SafeTxError, match="non-empty"):
        Withdrawal("")
    with pytest.raises(SafeTxError, match="32 bytes"):
        Output(OUTPUT_TYPE_SCRIPT, Decimal("1"), keys=(b"short",))
    with pytest.raises(SafeTxError):
        threshold_script(0)


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda raw: raw[:-1], "truncated"),
        (lambda raw: raw[:100], "truncated"),
        (lambda raw: b"", "truncated"),
        (lambda raw: raw + b"\x00", "trailing"),
        (lambda raw: b"\x77\x78" + raw[2:], "magic"),
        (lambda raw: raw[:2] + b"\x00\x04" + raw[4:], "version"),
    ],
)
def test_decode_rejects_malformed(mutate, reason):
    raw = bytes.fromhex(GOLDEN_RAW_HEX)
    with pytest.raises(SafeTxError, match=reason):
        decode(mutate(raw))


def test_decode_rejects_non_canonical_encodings():
    raw = bytes.fromhex(GOLDEN_RAW_HEX)
    # first output amount 05f5e100 re-encoded with a leading zero byte
    i = raw.index(bytes.fromhex("000405f5e100"))
    padded = raw[:i] + bytes.fromhex("00050005f5e100") + raw[i + 6 :]
    with pytest.raises(SafeTxError, match="minimally"):
        decode(padded)
    # withdrawal marker neither 0000 nor 7777
    j = raw.index(bytes.fromhex("0003fffe01")) + 5
    bad_marker = raw[:j] + b"\x12\x34" + raw[j + 2 :]
    with pytest.raises(SafeTxError, match="withdrawal marker"):
        decode(bad_marker)
    # aggregated signature prefix
    with pytest.raises(SafeTxError, match="aggregated"):
        decode(raw[:-2] + b"\xff\xff\xff\x01")
    # unsorted signer indexes
    sig = bytes(range(64))
    unsorted = raw[:-2] + b"\x00\x01" + b"\x00\x02" + b"\x00\x01" + sig + b"\x00\x00" + sig
    with pytest.raises(SafeTxError, match="ascending"):
        decode(unsorted)
    # deposit input
    k = 2 + 2 + 32 + 2 + 32 + 2 + 2
    with pytest.raises(SafeTxError, match="deposit"):
        decode(raw[:k] + b"\x77\x77" + raw[k + 2 :])
    with pytest.raises(SafeTxError, match="hex"):
        decode("zz")
