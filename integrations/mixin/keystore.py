"""Bot keystore: parse, validate and hold the bot's session (and optional spend) keys.

Two JSON shapes are accepted:

current (dashboard "Session Secret" download, plus the hand-added spend key)::

    {"app_id": UUID, "session_id": UUID,
     "session_private_key": hex(32-byte Ed25519 seed),
     "server_public_key": hex(32 bytes),
     "spend_private_key": hex(32-byte seed)}        # optional

legacy::

    {"client_id": UUID, "session_id": UUID,
     "private_key": base64url(64-byte Ed25519 key = seed || public), padded or not,
     "pin_token": base64url, "pin": "123456"}       # pin_token/pin are not used

A legacy keystore has no spend key (``can_spend`` is False) and its server key
is only known in X25519 form, so ``server_public_key`` is None.

Error messages name the offending field and never its value. ``load_bot_keystore`` reads the
keystore a config names (a file path, or ``env:VARIABLE``); its KeystoreError says which file or
variable, then what is wrong — never the content.
"""
from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey


class KeystoreError(ValueError):
    """The keystore cannot be read, is not JSON, or is missing a field or has a malformed one.

    ``source``: the file path or ``environment variable NAME`` it came from, when known."""

    def __init__(self, message: str, source: str = ""):
        super().__init__(message)
        self.source = source


_KEY_LEN = 32


@dataclass(frozen=True)
class Keystore:
    app_id: str
    session_id: str
    session_seed: bytes
    server_public_key: bytes | None = None
    spend_private_key: bytes | None = None

    def __post_init__(self) -> None:
        for name in ("app_id", "session_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _is_uuid(value):
                raise KeystoreError(f"{name}: must be a UUID string")
        if not isinstance(self.session_seed, bytes) or len(self.session_seed) != _KEY_LEN:
            raise KeystoreError("session_seed: must be 32 bytes")
        for name in ("server_public_key", "spend_private_key"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, bytes) or len(value) != _KEY_LEN):
                raise KeystoreError(f"{name}: must be 32 bytes or None")

    def __repr__(self) -> str:
        return (
            f"Keystore(app_id={self.app_id!r}, session_id={self.session_id!r}, "
            f"session_seed=<hidden>, server_public_key="
            f"{'<set>' if self.server_public_key is not None else None}, "
            f"spend_private_key={'<hidden>' if self.spend_private_key is not None else None})"
        )

    __str__ = __repr__

    @property
    def session_public_key(self) -> bytes:
        """Ed25519 public key of the session (what Mixin verifies our JWTs with)."""
        return bytes(SigningKey(self.session_seed).verify_key)

    @property
    def can_spend(self) -> bool:
        return self.spend_private_key is not None

    def signing_key(self) -> SigningKey:
        """The session's Ed25519 signing key (do not log it)."""
        return _signing_key(self.session_seed)


@functools.lru_cache(maxsize=8)
def _signing_key(seed: bytes) -> SigningKey:
    """Deriving the key pair from the seed costs more than signing: once per seed (every request signs)."""
    return SigningKey(seed)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return len(value) == 36


def _require_str(obj: dict, field: str) -> str:
    if field not in obj or obj[field] is None:
        raise KeystoreError(f"{field}: missing")
    value = obj[field]
    if not isinstance(value, str):
        raise KeystoreError(f"{field}: must be a string")
    value = value.strip()
    if not value:
        raise KeystoreError(f"{field}: empty")
    return value


def _uuid_field(obj: dict, field: str) -> str:
    value = _require_str(obj, field)
    if not _is_uuid(value):
        raise KeystoreError(f"{field}: not a UUID")
    return value.lower()


def _hex_bytes(value: str, field: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise KeystoreError(f"{field}: not valid hex") from None


def _seed_from_key_bytes(raw: bytes, field: str) -> bytes:
    """Accept a 32-byte seed or a 64-byte ``seed || public`` key; return the seed."""
    if len(raw) == _KEY_LEN:
        return raw
    if len(raw) == 2 * _KEY_LEN:
        seed, pub = raw[:_KEY_LEN], raw[_KEY_LEN:]
        if bytes(SigningKey(seed).verify_key) != pub:
            raise KeystoreError(f"{field}: public half does not match the seed")
        return seed
    raise KeystoreError(f"{field}: must be 32 bytes (seed) or 64 bytes (seed||public), got {len(raw)}")


def _b64url_decode(value: str, field: str) -> bytes:
    text = value.strip()
    if any(c.isspace() for c in text):
        raise KeystoreError(f"{field}: not valid base64url")
    text = text.rstrip("=")
    text += "=" * (-len(text) % 4)
    try:
        return base64.urlsafe_b64decode(text.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise KeystoreError(f"{field}: not valid base64url") from None


def _parse_current(obj: dict) -> Keystore:
    app_id = _uuid_field(obj, "app_id")
    session_id = _uuid_field(obj, "session_id")
    seed = _seed_from_key_bytes(
        _hex_bytes(_require_str(obj, "session_private_key"), "session_private_key"), "session_private_key"
    )
    server_pub = _hex_bytes(_require_str(obj, "server_public_key"), "server_public_key")
    if len(server_pub) != _KEY_LEN:
        raise KeystoreError(f"server_public_key: must be 32 bytes, got {len(server_pub)}")
    spend: bytes | None = None
    raw_spend = obj.get("spend_private_key")
    if raw_spend not in (None, ""):
        if not isinstance(raw_spend, str):
            raise KeystoreError("spend_private_key: must be a string")
        spend = _seed_from_key_bytes(_hex_bytes(raw_spend.strip(), "spend_private_key"), "spend_private_key")
    return Keystore(app_id, session_id, seed, server_pub, spend)


def _parse_legacy(obj: dict) -> Keystore:
    app_id = _uuid_field(obj, "client_id")
    session_id = _uuid_field(obj, "session_id")
    private_key = _require_str(obj, "private_key")
    if private_key.startswith("-----BEGIN"):
        raise KeystoreError("private_key: RSA (PEM) session keys are not supported; generate an Ed25519 session")
    raw = _b64url_decode(private_key, "private_key")
    if len(raw) != 2 * _KEY_LEN:
        raise KeystoreError(f"private_key: must decode to 64 bytes (seed||public), got {len(raw)}")
    seed = _seed_from_key_bytes(raw, "private_key")
    pin_token = obj.get("pin_token")
    if pin_token not in (None, ""):
        if not isinstance(pin_token, str):
            raise KeystoreError("pin_token: must be a string")
        _b64url_decode(pin_token, "pin_token")  # validated only; the X25519 key is not used
    return Keystore(app_id, session_id, seed, None, None)


def parse_keystore(obj: dict) -> Keystore:
    """Parse a keystore dict in the current or the legacy format."""
    if not isinstance(obj, dict):
        raise KeystoreError("keystore: must be a JSON object")
    if "app_id" in obj:
        return _parse_current(obj)
    if "client_id" in obj:
        return _parse_legacy(obj)
    raise KeystoreError("app_id: missing (neither app_id nor legacy client_id present)")


_MAX_NESTING = 32  # a keystore is one flat object; deeper input is refused before the C decoder sees it


def _too_deep(text: str) -> bool:
    """Whether brackets outside strings nest deeper than _MAX_NESTING (json's C decoder can overflow the
    stack on such input when a library has raised the recursion limit, as py_ecc does)."""
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > _MAX_NESTING:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _parse_text(text: str, source: str) -> Keystore:
    """JSON text → Keystore; every error starts with ``source`` and never echoes the document."""
    if _too_deep(text):
        raise KeystoreError(f"{source}: not valid JSON (nested too deeply)", source)
    try:
        obj: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        # exc.msg/lineno only: never echo the document (it holds secrets).
        raise KeystoreError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})", source) from None
    except RecursionError:
        raise KeystoreError(f"{source}: not valid JSON (nested too deeply)", source) from None
    if not isinstance(obj, dict):
        kind = {list: "an array", str: "a string", type(None): "null", bool: "a boolean"}.get(type(obj), "a number")
        raise KeystoreError(f"{source}: must be a JSON object {{...}}, not {kind}", source)
    try:
        return parse_keystore(obj)
    except KeystoreError as exc:
        raise KeystoreError(f"{source}: {exc}", source) from None


def load_keystore(path: str | os.PathLike[str]) -> Keystore:
    """Read and parse a keystore JSON file."""
    p = Path(path)
    source = f"keystore file {p}"
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise KeystoreError(f"{source}: cannot read ({exc.strerror or type(exc).__name__})", str(p)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeystoreError(f"{source}: not a text (UTF-8) file; a keystore is JSON", str(p)) from None
    try:
        return _parse_text(text, source)
    except KeystoreError as exc:
        raise KeystoreError(str(exc), str(p)) from None


def load_bot_keystore(reference: str) -> Keystore:
    """The bot's keystore as a config names it (``mixin.keystore``): a file path, or ``env:VARIABLE`` holding
    the JSON. KeystoreError names the file or the variable and what is wrong, never the content."""
    if reference.startswith("env:"):
        variable = reference[4:]
        source = f"environment variable {variable}"
        text = os.environ.get(variable)
        if text is None:
            raise KeystoreError(f"{source} is not set", source)
        if not text.strip():
            raise KeystoreError(f"{source} is empty", source)
        return _parse_text(text, source)
    if not reference:
        raise KeystoreError("no keystore configured (mixin.keystore)")
    return load_keystore(reference)


def generate_keystore(app_id: str | None = None) -> dict:
    """A fresh keystore dict in the current format (random keys, spend key included).

    For the simulator and tests: the "server" key is just a random Ed25519 public key.
    """
    return {
        "app_id": str(app_id) if app_id is not None else str(uuid.uuid4()),
        "session_id": str(uuid.uuid4()),
        "session_private_key": os.urandom(_KEY_LEN).hex(),
        "server_public_key": bytes(SigningKey.generate().verify_key).hex(),
        "spend_private_key": os.urandom(_KEY_LEN).hex(),
    }


__all__ = ["Keystore", "KeystoreError", "generate_keystore", "load_bot_keystore", "load_keystore", "parse_keystore"]
