"""Secrets never leave the process in a log line, a traceback or an error message.

One process-wide ``Redactor`` holds every secret value mmflow knows (exchange API keys, secrets and
passphrases, the bot keystore's private fields, HuFi keys, a database password) in the forms they
can take in text: the value itself, URL-quoted, JSON-escaped, and for key bytes hex and base64.
``redact(text)`` replaces each occurrence with ``***``; bearer tokens and JWTs (the Mixin
``Authorization`` header) are masked by pattern, whatever their value.

Where it applies (``actors.system.setup_logging`` installs it):

- a loguru *patcher*: every record's message, its string ``extra`` fields and the exception's
  message are redacted before any sink sees them (sinks added later, by tests too, included);
- ``RedactingStream`` around each sink of mmflow's own (stderr, the debug log file) and around
  ``sys.stdout`` / ``sys.stderr``: the final text — formatted traceback, serialized JSON, a
  library's ``print`` — is redacted again right before it is written;
- ``actors.supervisor.describe`` (the one-line description of an exception used in exit reports,
  escalation reasons and alert messages).

Values shorter than ``MIN_SECRET_LENGTH`` characters are not registered: masking every "1234" in
every log line would garble amounts and times, and such a value is not a credential anyway (a
Mixin PIN has 6 digits and is masked).
"""
from __future__ import annotations

import base64
import json
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "REDACTOR",
    "RedactingStream",
    "Redactor",
    "add_secrets",
    "patch_record",
    "redact",
    "secrets_of",
]

MASK = "***"
MIN_SECRET_LENGTH = 6

# Mixin's Authorization header and any JWT-looking token: masked whatever the value is.
_TOKEN_PATTERNS = (
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]+=*"), r"\1" + MASK),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), MASK),
)


def _text_forms(value: str) -> set[str]:
    forms = {value, quote(value, safe=""), quote(value, safe="/:"), json.dumps(value)[1:-1]}
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


def _bytes_forms(value: bytes) -> set[str]:
    hexed = value.hex()
    forms = {hexed, hexed.upper(), base64.b64encode(value).decode(), base64.urlsafe_b64encode(value).decode()}
    forms |= {f.rstrip("=") for f in forms}
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


class Redactor:
    """A set of secret values and the one regular expression that finds any of them."""

    def __init__(self, secrets: Iterable[str | bytes] = ()) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def __repr__(self) -> str:  # never the values
        return f"Redactor({len(self._values)} values)"

    def __len__(self) -> int:
        return len(self._values)

    def add(self, secrets: Iterable[str | bytes | None]) -> None:
        forms: set[str] = set()
        for value in secrets:
            if isinstance(value, (bytes, bytearray)):
                forms |= _bytes_forms(bytes(value))
            elif isinstance(value, str):
                value = value.strip()
                if len(value) >= MIN_SECRET_LENGTH:
                    forms |= _text_forms(value)
        with self._lock:
            if forms <= self._values:
                return
            self._values |= forms
            # longest first: a value that contains another is masked whole
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._pattern = None

    def redact(self, text: Any) -> Any:
        """``text`` with every secret value and token masked; anything not a str comes back unchanged."""
        if not isinstance(text, str) or not text:
            return text
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(MASK, text)
        for token, replacement in _TOKEN_PATTERNS:
            text = token.sub(replacement, text)
        return text

    def contains_secret(self, text: str) -> bool:
        return self.redact(text) != text


REDACTOR = Redactor()


def redact(text: Any) -> Any:
    """Mask every registered secret (and any bearer token / JWT) in ``text``."""
    return REDACTOR.redact(text)


def add_secrets(values: Iterable[str | bytes | None]) -> None:
    REDACTOR.add(values)


# --------------------------------------------------------------------------- loguru


class _RedactedError(Exception):
    """Stands in for an exception whose message held a secret: same class name, masked message."""


def _redacted_exception(value: BaseException) -> BaseException | None:
    try:
        text = str(value)
    except Exception:  # noqa: BLE001 - a broken __str__ must not break logging
        return None
    masked = REDACTOR.redact(text)
    if masked == text:
        return None
    stand_in = type(f"{type(value).__name__}", (_RedactedError,), {"__module__": type(value).__module__})(masked)
    stand_in.__traceback__ = value.__traceback__
    stand_in.__cause__ = value.__cause__
    stand_in.__context__ = value.__context__
    stand_in.__suppress_context__ = value.__suppress_context__
    return stand_in


def _redact_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return REDACTOR.redact(value)
    if depth < 3 and isinstance(value, dict):
        return {k: _redact_value(v, depth + 1) for k, v in value.items()}
    if depth < 3 and isinstance(value, (list, tuple)):
        return type(value)(_redact_value(v, depth + 1) for v in value)
    return value


def patch_record(record: dict) -> None:
    """loguru patcher: redact the message, the string extras and the exception's message in place.

    Also notes ``extra["exc_note"]`` (``" | ValueError: ..."``) when the record carries an exception
    its message does not already describe, so a one-line sink can still say what failed."""
    record["message"] = REDACTOR.redact(record["message"])
    extra = record["extra"]
    for key, value in list(extra.items()):
        if key != "exc_note":
            extra[key] = _redact_value(value)
    note = ""
    exception = record.get("exception")
    if exception is not None and exception.value is not None:
        stand_in = _redacted_exception(exception.value)
        if stand_in is not None:
            record["exception"] = type(exception)(type(stand_in), stand_in, exception.traceback)
            exception = record["exception"]
        name = getattr(exception.type, "__name__", "Exception")
        try:
            text = REDACTOR.redact(str(exception.value))
        except Exception:  # noqa: BLE001 - a broken __str__ must not break logging
            text = "?"
        message = record["message"]
        if name not in message and not (text and text in message):
            note = f" | {name}: {text}" if text else f" | {name}"
    extra["exc_note"] = note


class RedactingStream:
    """A text stream that masks secrets in everything written through it (then writes it on)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    @property
    def wrapped(self) -> Any:
        return self._stream

    def write(self, text: str) -> int:
        self._stream.write(REDACTOR.redact(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        flush = getattr(self._stream, "flush", None)
        if flush is not None:
            flush()

    def isatty(self) -> bool:
        isatty = getattr(self._stream, "isatty", None)
        try:
            return bool(isatty()) if isatty is not None else False
        except ValueError:  # closed
            return False

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, closed, ...
        return getattr(self._stream, name)


# --------------------------------------------------------------------------- what is secret

_KEYSTORE_PUBLIC = {"app_id", "client_id", "session_id", "server_public_key", "user_id"}
_KEYSTORE_SECRET_HINTS = ("private", "secret", "pin", "token", "seed", "password", "key")


def _raw_keystore(path: str) -> dict | None:
    """The keystore document as written (file or ``env:VARIABLE``), or None; never raises."""
    if not path:
        return None
    try:
        if path.startswith("env:"):
            text = os.environ.get(path[4:], "")
        else:
            text = Path(path).read_text(encoding="utf-8")
        obj = json.loads(text) if text else None
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _keystore_values(keystore: Any, raw: dict | None) -> list[str | bytes]:
    values: list[str | bytes] = []
    if keystore is not None:
        seed = getattr(keystore, "session_seed", None)
        if isinstance(seed, bytes):
            values.append(seed)
            try:
                values.append(seed + keystore.session_public_key)  # legacy form: seed || public
            except Exception:  # noqa: BLE001 - best effort
                pass
        spend = getattr(keystore, "spend_private_key", None)
        if isinstance(spend, bytes):
            values.append(spend)
            try:
                from nacl.signing import SigningKey

                values.append(spend + bytes(SigningKey(spend).verify_key))
            except Exception:  # noqa: BLE001 - best effort
                pass
    for key, value in (raw or {}).items():
        name = str(key).lower()
        if name in _KEYSTORE_PUBLIC or "public" in name or name.endswith("_id"):
            continue
        if isinstance(value, str) and any(h in name for h in _KEYSTORE_SECRET_HINTS):
            values.append(value)
    return values


def _api_values(api: Any) -> list[str]:
    """The API's token secret and Mixin OAuth client secret (read from their files now)."""
    values: list[str] = []
    for name in ("token_secret", "oauth_client_secret"):
        ref = getattr(api, name, None)
        if ref is None:
            continue
        try:
            values.append(ref.read())
        except Exception:  # noqa: BLE001, S112 - unreadable now: nothing to mask (the config check said why)
            continue
    return values


def _hufi_values(hufi: Any) -> list[str]:
    if hufi is None:
        return []
    refs = [getattr(hufi, "evm_private_key", None)]
    for api_key in getattr(hufi, "exchange_api_keys", ()) or ():
        refs += [getattr(api_key, "api_key", None), getattr(api_key, "secret", None),
                 getattr(api_key, "passphrase", None)]
    values: list[str] = []
    for ref in refs:
        if ref is None:
            continue
        try:
            value = ref.read()
        except Exception:  # noqa: BLE001 - unreadable now: nothing to mask (the campaign actor says why)
            continue
        values.append(value)
        low = value.lower()
        if low.startswith("0x"):
            values.append(value[2:])
        else:
            values.append("0x" + value)
    return values


def secrets_of(config: Any, keystore: Any = None, raw_keystore: dict | None = None) -> list[str | bytes]:
    """Every secret value of a Config (and the bot keystore, parsed and as written).

    Exchange ``api_key`` / ``secret`` / ``password``; HuFi's EVM key and read-only exchange keys
    (read from their files/variables now); the API's token and OAuth client secrets; the keystore's
    private fields (session and spend keys as bytes, and every private/secret/pin/token field of the
    document as written: ``private_key``, ``session_private_key``, ``spend_private_key``, ``pin``,
    ``pin_token``); a password in the database URL. The raw keystore is read from ``config.mixin.keystore_path`` unless given."""
    values: list[str | bytes] = []
    for account in getattr(config, "exchanges", ()) or ():
        values += [getattr(account, name, "") for name in ("api_key", "secret", "password")]
    values += _hufi_values(getattr(config, "hufi", None))
    values += _api_values(getattr(config, "api", None))
    mixin = getattr(config, "mixin", None)
    if raw_keystore is None and mixin is not None:
        raw_keystore = _raw_keystore(getattr(mixin, "keystore_path", ""))
    values += _keystore_values(keystore, raw_keystore)
    database = getattr(config, "database", None)
    url = getattr(database, "url", "") or ""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        values += [password, unquote(password)]
    return [v for v in values if v]
