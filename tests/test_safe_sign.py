"""Spend-key signing of Safe transaction inputs (integrations/mixin/safe_sign.py)."""
from __future__ import annotations

import hashlib
from decimal import Decimal

import nacl.bindings as nb
import nacl.exceptions
import nacl.signing
import pytest

from integrations.mixin.safe_sign import (
    ghost_public_key,
    random_view_scalar,
    scalar_sign,
    sign_inputs,
    spend_public_key,
    spend_scalar,
    verify_input_signature,
    verify_transaction_signatures,
)
from integrations.mixin.safe_tx import (
    OUTPUT_TYPE_SCRIPT,
    Input,
    Output,
    SafeTxError,
    Transaction,
    decode,
    encode,
    payload_hash,
    threshold_script,
)

# Golden vector of the reference sheet §3.4 (same as in test_safe_tx.py).
GOLDEN_RAW_HEX = (
    "77770005b9f49cf777dc4d03bc54cd1367eebca319f8603ea1ce18910d09e2c540c630d80001deb61617b968c172fb2df4c05d3ada3e"
    "5786a327c69aefcd891b807b8873ffce000100000000000000020000000405f5e1000001ef49cf0b2480e1fc004cb20a55efc170260a"
    "3b0811d4e5766471b52a7194deecc7b188247103491326c322a994f355944c60759faf41f321651da2f4aa47a8c80003fffe01000000"
    "0000040bebc1fb00019657c4204f7b713dcd0447dd1191a8cda4f1575d46c742f746799cdbe762ba207bc3fb52298f07ae052ba54f49"
    "262a408e628f107a0ab81f1c319e16adec65430003fffe0100000000000000000000"
)

# Fixed keys so a failure is reproducible (a keystore's spend_private_key is this hex).
SPEND_SEED_HEX = hashlib.sha256(b"mmflow test spend key").hexdigest()
SPEND_SEED = bytes.fromhex(SPEND_SEED_HEX)
OTHER_SEED = hashlib.sha256(b"somebody else").digest()
L = 2**252 + 27742317777372353535851937790883648493


def view(label: str) -> bytes:
    return nb.crypto_core_ed25519_scalar_reduce(hashlib.sha512(label.encode()).digest())


def std_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
        return True
    except nacl.exceptions.BadSignatureError:
        return False


def three_input_tx() -> Transaction:
    return Transaction(
        asset=hashlib.sha3_256(b"965e5c6e-434c-3fa9-b780-c50f43cd955c").digest(),
        inputs=[Input(hashlib.sha256(f"in{i}".encode()).digest(), i) for i in range(3)],
        outputs=[
            Output(OUTPUT_TYPE_SCRIPT, Decimal("3.3"), (hashlib.sha256(b"k").digest(),), hashlib.sha256(b"m").digest(),
                   threshold_script(1))
        ],
        extra=b"refund",
    )


def test_scalar_sign_matches_the_kernel_known_answers():
    """Known answers of the Mixin kernel's crypto/signature_test.go (TestSignature):
    key = NewKeyFromSeed(01..40) = seed mod L, signatures of seed[:32] and seed[32:],
    then key2 = NewKeyFromSeed(sig1). Byte-exact: same nonce derivation as crypto.Key.Sign."""
    seed = bytes(range(1, 65))
    key1 = nb.crypto_core_ed25519_scalar_reduce(seed)
    sig1 = scalar_sign(key1, seed[:32])
    assert sig1.hex() == (
        "466c0938b2e3cdc38c357b6aff88a75aa1c2ee987432a7d4703618e1d926ef6f"
        "1726017cfc49fd31344e2f6f8cce3ed7c4c43524e1889e45d842ee7cad0bf700"
    )
    assert scalar_sign(key1, seed[32:]).hex() == (
        "b5a110f7c15cff4599470ef6d9c85cd1236c833493de283e8bbcf8bb4e546833"
        "55a9cbd5cfdb00b84034accd77320403fe9485715e0a99aecf62b01ece9d4c0d"
    )
    key2 = nb.crypto_core_ed25519_scalar_reduce(sig1)
    assert scalar_sign(key2, seed[:32]).hex() == (
        "6876535147490eca84e7c6402de90bb33bc8908431e7d7397bee13c740397c37"
        "26b7e8ae4169ef3459f3ee07e94d2b5324ae27585ff6e64e133cbecf56864c0d"
    )
    assert scalar_sign(key2, seed[32:]).hex() == (
        "6e8012337b7dc9b901b87a8bb777eb2dd0ab95f5db45f5ce195d26622397d1a5"
        "b72416f1c4fcac46cc611001bd3f2e0edad82abb776f2ad0321d4cddf161380c"
    )
    pub1 = nb.crypto_scalarmult_ed25519_base_noclamp(key1)
    assert std_verify(pub1, seed[:32], sig1)
    assert not std_verify(pub1, seed[32:], sig1)


def test_spend_scalar_matches_the_standard_ed25519_public_key():
    standard = bytes(nacl.signing.SigningKey(SPEND_SEED).verify_key)
    assert spend_public_key(SPEND_SEED) == standard
    assert spend_public_key(SPEND_SEED_HEX) == standard
    y = spend_scalar(SPEND_SEED)
    assert int.from_bytes(y, "little") < L
    # a 64-byte expanded key (seed || public) gives the same scalar
    assert spend_scalar(SPEND_SEED + standard) == y


def test_ghost_public_key_is_x_plus_y_times_base():
    x = view("v0")
    y = spend_scalar(SPEND_SEED)
    t = nb.crypto_core_ed25519_scalar_add(x, y)
    assert ghost_public_key(x, spend_public_key(SPEND_SEED)) == nb.crypto_scalarmult_ed25519_base_noclamp(t)
    assert ghost_public_key(x.hex(), spend_public_key(SPEND_SEED)) == ghost_public_key(x, spend_public_key(SPEND_SEED))


def test_golden_tx_signature_verifies_with_standard_ed25519():
    tx = decode(bytes.fromhex(GOLDEN_RAW_HEX))
    x = view("golden")
    signed = sign_inputs(tx, [x.hex()], SPEND_SEED)
    assert signed.signatures is not None and len(signed.signatures) == 1
    assert set(signed.signatures[0]) == {0}
    sig = signed.signatures[0][0]
    assert len(sig) == 64
    ghost = ghost_public_key(x, spend_public_key(SPEND_SEED))
    message = payload_hash(tx)
    assert message.hex() == "4a81d69b6e8e095e5a1671771c314d803b9810d3c5dddaeaab2bf6a80455dfe5"
    # standard verifiers: PyNaCl VerifyKey and the raw libsodium crypto_sign_open
    assert std_verify(ghost, message, sig)
    assert nb.crypto_sign_open(sig + message, ghost) == message
    assert verify_input_signature(signed, 0, ghost, sig)
    # the signed message is blake3(unsigned raw), not the raw bytes themselves
    assert not std_verify(ghost, bytes.fromhex(GOLDEN_RAW_HEX), sig)


def test_every_input_signed_with_its_own_view():
    tx = three_input_tx()
    views = [view(f"in{i}") for i in range(3)]
    signed = sign_inputs(tx, [v.hex() for v in views], SPEND_SEED)
    spend_pub = spend_public_key(SPEND_SEED)
    ghosts = [ghost_public_key(v, spend_pub) for v in views]
    assert len(set(ghosts)) == 3
    for i in range(3):
        sig = signed.signatures[i][0]
        assert std_verify(ghosts[i], payload_hash(tx), sig)
        assert verify_input_signature(signed, i, ghosts[i], sig)
        # another input's ghost key does not verify this input's signature
        assert not verify_input_signature(signed, i, ghosts[(i + 1) % 3], sig)
    assert verify_transaction_signatures(signed, views, spend_pub)
    assert verify_transaction_signatures(signed, [v.hex() for v in views], spend_pub)
    assert not verify_transaction_signatures(signed, list(reversed(views)), spend_pub)
    assert not verify_transaction_signatures(tx, views, spend_pub)  # unsigned


def test_signed_tx_survives_encode_decode_and_hash_is_unchanged():
    tx = three_input_tx()
    views = [random_view_scalar() for _ in range(3)]
    signed = sign_inputs(tx, [v.hex() for v in views], SPEND_SEED_HEX)
    raw = encode(signed)
    back = decode(raw)
    assert back == signed
    assert encode(back) == raw
    assert payload_hash(back) == payload_hash(tx)
    assert verify_transaction_signatures(back, views, spend_public_key(SPEND_SEED))
    # 3 inputs -> 3 maps of one (index 0, 64-byte) signature each: 2 + 3 * (2 + 2 + 64)
    assert raw[len(encode(tx)) - 2 :][:2] == b"\x00\x03"
    assert len(raw) == len(encode(tx)) + 3 * 68


def test_signing_is_deterministic():
    tx = three_input_tx()
    views = [view(f"d{i}").hex() for i in range(3)]
    assert encode(sign_inputs(tx, views, SPEND_SEED)) == encode(sign_inputs(tx, views, SPEND_SEED))
    # re-signing an already signed transaction signs the same payload
    once = sign_inputs(tx, views, SPEND_SEED)
    assert sign_inputs(once, views, SPEND_SEED) == once


def test_tampered_transaction_fails_verification():
    tx = three_input_tx()
    x = view("t")
    views = [x.hex(), view("t1").hex(), view("t2").hex()]
    signed = sign_inputs(tx, views, SPEND_SEED)
    sig = signed.signatures[0][0]
    ghost = ghost_public_key(x, spend_public_key(SPEND_SEED))
    other_amount = Transaction(
        asset=tx.asset,
        inputs=tx.inputs,
        outputs=[Output(OUTPUT_TYPE_SCRIPT, Decimal("3.30000001"), tx.outputs[0].keys, tx.outputs[0].mask,
                        tx.outputs[0].script)],
        extra=tx.extra,
        signatures=signed.signatures,
    )
    assert not verify_input_signature(other_amount, 0, ghost, sig)
    other_extra = Transaction(asset=tx.asset, inputs=tx.inputs, outputs=tx.outputs, extra=b"refunD",
                              signatures=signed.signatures)
    assert not verify_input_signature(other_extra, 0, ghost, sig)
    flipped = bytes([sig[0] ^ 1]) + sig[1:]
    assert not verify_input_signature(signed, 0, ghost, flipped)
    assert not verify_input_signature(signed, 0, ghost, sig[:63])
    assert not verify_transaction_signatures(other_extra, [bytes.fromhex(v) for v in views],
                                             spend_public_key(SPEND_SEED))


def test_wrong_key_fails_verification():
    tx = three_input_tx()
    views = [view(f"w{i}") for i in range(3)]
    signed = sign_inputs(tx, [v.hex() for v in views], OTHER_SEED)
    right_ghost = ghost_public_key(views[0], spend_public_key(SPEND_SEED))
    assert not verify_input_signature(signed, 0, right_ghost, signed.signatures[0][0])
    assert not verify_transaction_signatures(signed, views, spend_public_key(SPEND_SEED))
    assert verify_transaction_signatures(signed, views, spend_public_key(OTHER_SEED))
    # the plain Ed25519 key of the spend seed (no view added) is not the ghost key either
    assert not verify_input_signature(signed, 0, spend_public_key(OTHER_SEED), signed.signatures[0][0])


def test_sign_inputs_argument_errors():
    tx = three_input_tx()
    with pytest.raises(SafeTxError, match="one per input"):
        sign_inputs(tx, [view("a").hex()], SPEND_SEED)
    non_canonical = (L + 1).to_bytes(32, "little").hex()
    with pytest.raises(SafeTxError, match="canonical"):
        sign_inputs(tx, [non_canonical, view("b").hex(), view("c").hex()], SPEND_SEED)
    with pytest.raises(SafeTxError, match="spend_private_key"):
        sign_inputs(tx, [view(f"{i}").hex() for i in range(3)], b"short")
    with pytest.raises(SafeTxError, match="out of range"):
        verify_input_signature(tx, 3, bytes(32), bytes(64))


def test_random_view_scalars_are_canonical_and_fresh():
    scalars = {random_view_scalar() for _ in range(20)}
    assert len(scalars) == 20
    assert all(len(s) == 32 and int.from_bytes(s, "little") < L for s in scalars)
