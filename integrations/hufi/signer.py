"""EVM signing for the HuFi recording oracle (EIP-191 ``personal_sign``), behind an import guard.

The signing library (``eth-account``) is the optional extra ``hufi``: without it
mmflow runs normally and only joining HuFi campaigns is skipped. Nothing here is
imported eagerly: ``eth_account`` costs ~0.5 s to import, so it is loaded the
first time a signer is built or ``signing_available()`` is asked.

The private key never appears in a repr, a log line or an exception message.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

__all__ = ["EvmSigner", "SigningUnavailable", "nonce_message", "recover_signer", "signing_available"]

_HEX_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
INSTALL_HINT = "pip install 'mmflow[hufi]'"


class SigningUnavailable(RuntimeError):
    """The EVM signing library is not installed."""


@lru_cache(maxsize=1)
def _library() -> tuple[Any, Any] | None:
    try:
        from eth_account import Account
        from eth_account.messages import encode_defunct
    except ImportError:
        return None
    return Account, encode_defunct


def signing_available() -> bool:
    """True when eth-account can be imported (the ``hufi`` extra is installed)."""
    return _library() is not None


def _require() -> tuple[Any, Any]:
    lib = _library()
    if lib is None:
        raise SigningUnavailable(f"EVM signing needs eth-account: {INSTALL_HINT}")
    return lib


def nonce_message(nonce: str) -> str:
    """The exact text HuFi's recording oracle verifies: ``JSON.stringify({nonce})``, no spaces."""
    return json.dumps({"nonce": nonce}, separators=(",", ":"), ensure_ascii=False)


def recover_signer(text: str, signature: str) -> str:
    """Checksummed address that signed ``text`` with EIP-191 personal_sign (ValueError if malformed)."""
    account, encode_defunct = _require()
    try:
        return account.recover_message(encode_defunct(text=text), signature=signature)
    except Exception as exc:  # eth-account raises a zoo of types for malformed signatures
        raise ValueError(f"signature cannot be recovered: {type(exc).__name__}") from None


class EvmSigner:
    """An operator's EVM key: its address and EIP-191 text signatures."""

    __slots__ = ("_account", "_encode")

    def __init__(self, account: Any, encode_defunct: Any) -> None:
        self._account = account
        self._encode = encode_defunct

    @classmethod
    def from_private_key(cls, private_key_hex: str) -> "EvmSigner":
        """Build from a 32-byte hex key (``0x`` optional, surrounding whitespace ignored).

        Raises SigningUnavailable without eth-account, ValueError for a malformed key
        (the message never contains the key).
        """
        account_cls, encode_defunct = _require()
        text = (private_key_hex or "").strip()
        if not _HEX_KEY.match(text):
            raise ValueError("EVM private key must be 32 bytes of hex (64 hex digits, 0x optional)")
        if not text.startswith("0x"):
            text = "0x" + text
        try:
            account = account_cls.from_key(text)
        except Exception:  # out-of-range scalar and the like
            raise ValueError("EVM private key is not a valid secp256k1 key") from None
        return cls(account, encode_defunct)

    @property
    def address(self) -> str:
        """Checksummed 0x address."""
        return self._account.address

    def sign_message(self, text: str) -> str:
        """EIP-191 personal_sign of ``text``: ``0x`` + 130 hex digits (r, s, v)."""
        signed = self._account.sign_message(self._encode(text=text))
        raw = bytes(signed.signature)
        return "0x" + raw.hex()

    def sign_nonce(self, nonce: str) -> str:
        """Signature of ``{"nonce":"<nonce>"}``, what ``POST /auth`` expects."""
        return self.sign_message(nonce_message(nonce))

    def __repr__(self) -> str:
        return f"EvmSigner(address={self.address})"

    __str__ = __repr__
