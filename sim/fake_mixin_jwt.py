"""JWT verification for the fake Mixin server.

Written independently of ``integrations.mixin.auth`` on purpose: the fake must catch a
client that signs the wrong thing, so it must not share the signer's code.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from typing import Mapping

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

MAX_CLOCK_SKEW = 60  # seconds an iat may lie in the future
MAX_TOKEN_LIFETIME = 90 * 24 * 3600  # the Go SDK's tokens live 90 days; refuse anything longer


class AuthFailure(Exception):
    """The request's token was refused; ``reason`` is a short machine-friendly text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class FakeBot:
    app_id: str
    session_id: str
    session_public_key: bytes
    verify_key: VerifyKey = field(repr=False)
    spend_private_key: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_seed(
        cls, app_id: str, session_id: str, seed: bytes, spend_private_key: bytes | None = None
    ) -> "FakeBot":
        verify_key = SigningKey(seed).verify_key
        return cls(app_id, session_id, bytes(verify_key), verify_key, spend_private_key)


def _b64url_decode(part: str) -> bytes:
    if not part or any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" for c in part):
        raise AuthFailure("malformed token")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise AuthFailure("malformed token") from None


def _json_part(part: str) -> dict:
    try:
        value = json.loads(_b64url_decode(part))
    except ValueError:
        raise AuthFailure("malformed token") from None
    if not isinstance(value, dict):
        raise AuthFailure("malformed token")
    return value


def verify_bot_request(
    authorization: str | None,
    *,
    method: str,
    raw_uri: bytes,
    body: bytes,
    bots: Mapping[str, FakeBot],
    seen_jti: set[str],
    now: float,
) -> FakeBot:
    """Check one request's bearer token; return the bot or raise AuthFailure.

    On success the token's ``jti`` is added to ``seen_jti`` (a replay is refused).
    """
    if not authorization or not authorization.startswith("Bearer "):
        raise AuthFailure("missing bearer token")
    token = authorization[len("Bearer ") :].strip()
    parts = token.split(".")
    if len(parts) != 3:
        raise AuthFailure("malformed token")
    header = _json_part(parts[0])
    claims = _json_part(parts[1])
    signature = _b64url_decode(parts[2])
    if header.get("alg") != "EdDSA":
        raise AuthFailure("unsupported alg")

    uid = claims.get("uid")
    bot = bots.get(uid) if isinstance(uid, str) else None
    if bot is None:
        raise AuthFailure("unknown uid")
    if claims.get("sid") != bot.session_id:
        raise AuthFailure("session mismatch")
    try:
        bot.verify_key.verify((parts[0] + "." + parts[1]).encode("ascii"), signature)
    except (BadSignatureError, ValueError):
        raise AuthFailure("bad signature") from None

    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or isinstance(iat, bool) or not isinstance(exp, int) or isinstance(exp, bool):
        raise AuthFailure("iat/exp missing")
    if exp <= now:
        raise AuthFailure("expired")
    if iat > now + MAX_CLOCK_SKEW:
        raise AuthFailure("iat in the future")
    if exp <= iat or exp - iat > MAX_TOKEN_LIFETIME:
        raise AuthFailure("bad lifetime")
    if claims.get("scp") != "FULL":
        raise AuthFailure("bad scope")

    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise AuthFailure("missing jti")
    if jti in seen_jti:
        raise AuthFailure("jti reused")

    expected = hashlib.sha256(method.upper().encode("ascii") + raw_uri + body).hexdigest()
    if claims.get("sig") != expected:
        raise AuthFailure("sig mismatch")

    seen_jti.add(jti)
    return bot
