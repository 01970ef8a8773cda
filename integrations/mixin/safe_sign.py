"""Signing Safe transaction inputs with the spend key, and verifying them (for the fake server).

Pure code, no I/O. Mixin signs each input with a *raw scalar* key, not with
libsodium's seed-based Ed25519 signing:

    y   = clamp(sha512(spend_seed)[:32]) mod L          spend_seed = spend_private_key[:32]
    x_i = views[i]                                       canonical scalar from the verify call
    t   = x_i + y mod L
    msg = blake3(unsigned raw)                           32 bytes
    d1  = sha512(t);  z = sha512(d1[32:] || msg) mod L;  R = z*B
    A   = t*B;        h = sha512(R || A || msg) mod L;   s = h*t + z mod L
    sig = R || s                                         signature map of input i = {0: sig}

The result is an ordinary Ed25519 signature under the ghost public key
``A = t*B = x_i*B + spend_pub``, so a standard verifier checks it.
"""
from __future__ import annotations

import hashlib
import os
from typing import Sequence

import nacl.bindings as nb
import nacl.exceptions

from .safe_tx import SafeTxError, Transaction, payload_hash

__all__ = [
    "sign_inputs",
    "verify_input_signature",
    "verify_transaction_signatures",
    "spend_scalar",
    "spend_public_key",
    "ghost_public_key",
    "random_view_scalar",
    "scalar_sign",
]

# Order of the Ed25519 base point.
_L = 2**252 + 27742317777372353535851937790883648493


def _spend_seed(spend_private_key: bytes | str) -> bytes:
    if isinstance(spend_private_key, str):
        try:
            spend_private_key = bytes.fromhex(spend_private_key)
        except ValueError as exc:
            raise SafeTxError("spend_private_key string is not hex") from exc
    if isinstance(spend_private_key, (bytearray, memoryview)):
        spend_private_key = bytes(spend_private_key)
    if not isinstance(spend_private_key, bytes) or len(spend_private_key) not in (32, 64):
        raise SafeTxError("spend_private_key must be the 32-byte seed (64-byte expanded key accepted)")
    return spend_private_key[:32]


def _scalar(value: bytes | str, what: str) -> bytes:
    if isinstance(value, str):
        try:
            value = bytes.fromhex(value)
        except ValueError as exc:
            raise SafeTxError(f"{what} is not hex") from exc
    if isinstance(value, (bytearray, memoryview)):
        value = bytes(value)
    if not isinstance(value, bytes) or len(value) != 32:
        raise SafeTxError(f"{what} must be a 32-byte scalar")
    if int.from_bytes(value, "little") >= _L:
        raise SafeTxError(f"{what} is not a canonical scalar (>= group order)")
    return value


def spend_scalar(spend_private_key: bytes | str) -> bytes:
    """y = clamp(sha512(seed)[:32]) mod L, 32 bytes little-endian."""
    digest = bytearray(hashlib.sha512(_spend_seed(spend_private_key)).digest()[:32])
    digest[0] &= 248
    digest[31] &= 127
    digest[31] |= 64
    return nb.crypto_core_ed25519_scalar_reduce(bytes(digest) + bytes(32))


def spend_public_key(spend_private_key: bytes | str) -> bytes:
    """y*B: equals the standard Ed25519 public key of the spend seed."""
    return nb.crypto_scalarmult_ed25519_base_noclamp(spend_scalar(spend_private_key))


def ghost_public_key(view: bytes | str, spend_pub: bytes) -> bytes:
    """x*B + spend_pub: the key an input signature must verify against (x = the view scalar)."""
    x = _scalar(view, "view scalar")
    if not isinstance(spend_pub, (bytes, bytearray)) or len(spend_pub) != 32:
        raise SafeTxError("spend public key must be 32 bytes")
    if not nb.crypto_core_ed25519_is_valid_point(bytes(spend_pub)):
        raise SafeTxError("spend public key is not a valid Ed25519 point")
    return nb.crypto_core_ed25519_add(nb.crypto_scalarmult_ed25519_base_noclamp(x), bytes(spend_pub))


def random_view_scalar() -> bytes:
    """A fresh random canonical scalar, as the Sequencer hands out in ``views`` (fake server)."""
    return nb.crypto_core_ed25519_scalar_reduce(os.urandom(64))


def scalar_sign(t: bytes, message: bytes) -> bytes:
    """Mixin's ``crypto.Key.Sign``: Ed25519 signature with the raw scalar ``t`` as private key."""
    t = _scalar(t, "private scalar")
    d1 = hashlib.sha512(t).digest()
    z = nb.crypto_core_ed25519_scalar_reduce(hashlib.sha512(d1[32:] + message).digest())
    r_point = nb.crypto_scalarmult_ed25519_base_noclamp(z)
    a_point = nb.crypto_scalarmult_ed25519_base_noclamp(t)
    h = nb.crypto_core_ed25519_scalar_reduce(hashlib.sha512(r_point + a_point + message).digest())
    s = nb.crypto_core_ed25519_scalar_add(nb.crypto_core_ed25519_scalar_mul(h, t), z)
    return r_point + s


def sign_inputs(
    unsigned: Transaction,
    views: Sequence[str],
    spend_private_key: bytes | str,
) -> Transaction:
    """Sign every input; returns the transaction with signature maps ``[{0: sig_i}, ...]``.

    ``views`` are the hex scalars from ``POST /safe/transaction/requests``, one per input.
    The message is blake3 of the unsigned encoding, whatever signatures ``unsigned`` carries.
    Deterministic: the same transaction, views and key always give the same signatures.
    """
    if not isinstance(unsigned, Transaction):
        raise SafeTxError(f"expected a Transaction, got {type(unsigned).__name__}")
    if isinstance(views, (str, bytes)):
        raise SafeTxError("views must be a list of hex scalars, one per input")
    views = list(views)
    if len(views) != len(unsigned.inputs):
        raise SafeTxError(f"got {len(views)} views for {len(unsigned.inputs)} inputs; need one per input")
    y = spend_scalar(spend_private_key)
    message = payload_hash(unsigned)
    signature_maps = []
    for i, view in enumerate(views):
        x = _scalar(view, f"view {i}")
        t = nb.crypto_core_ed25519_scalar_add(x, y)
        signature_maps.append({0: scalar_sign(t, message)})
    return unsigned.with_signatures(signature_maps)


def verify_input_signature(
    tx: Transaction,
    input_index: int,
    ghost_public_key: bytes,
    signature: bytes,
) -> bool:
    """Standard Ed25519 verification of one input's signature over blake3(unsigned raw).

    Returns False for a wrong signature, key, or malformed signature/key bytes.
    """
    if not isinstance(tx, Transaction):
        raise SafeTxError(f"expected a Transaction, got {type(tx).__name__}")
    if isinstance(input_index, bool) or not isinstance(input_index, int) or not 0 <= input_index < len(tx.inputs):
        raise SafeTxError(f"input index {input_index!r} out of range (transaction has {len(tx.inputs)} inputs)")
    if not isinstance(ghost_public_key, (bytes, bytearray)) or len(ghost_public_key) != 32:
        return False
    if not isinstance(signature, (bytes, bytearray)) or len(signature) != 64:
        return False
    message = payload_hash(tx)
    try:
        return nb.crypto_sign_open(bytes(signature) + message, bytes(ghost_public_key)) == message
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        return False


def verify_transaction_signatures(tx: Transaction, views: Sequence[str | bytes], spend_pub: bytes) -> bool:
    """Fake-server check of a 1-of-1 signed transaction: every input has signer 0, verified
    against ``views[i]*B + spend_pub``. False if unsigned, incomplete or any signature fails."""
    if not isinstance(tx, Transaction) or tx.signatures is None:
        return False
    views = list(views)
    if len(views) != len(tx.inputs):
        return False
    for i, (view, sm) in enumerate(zip(views, tx.signatures)):
        if set(sm) != {0}:
            return False
        if not verify_input_signature(tx, i, ghost_public_key(view, spend_pub), sm[0]):
            return False
    return True
