"""Mixin bot access token: a compact EdDSA JWT signed with the session seed.

Claims (see the reference notes, section 1.2): ``uid`` (app id), ``sid`` (session id),
``iat``/``exp`` (unix seconds), ``jti`` (fresh UUID per request, never reused; we use it
as the ``X-Request-Id`` too), ``sig`` = hex(sha256(METHOD + URI + BODY)) where URI is the
path plus query string exactly as sent, and ``scp`` = ``"FULL"``.
"""
from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid

from .keystore import Keystore

_HEADER = {"alg": "EdDSA", "typ": "JWT"}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _compact_json(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def request_signature(method: str, uri: str, body: bytes | str = b"") -> str:
    """hex(sha256(METHOD + URI + BODY)) — the ``sig`` claim."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    return hashlib.sha256(method.upper().encode("ascii") + uri.encode("utf-8") + (body or b"")).hexdigest()


def sign_authentication_token(
    keystore: Keystore,
    method: str,
    uri: str,
    body: bytes = b"",
    *,
    now: float | None = None,
    ttl: int = 600,
    request_id: str | None = None,
) -> str:
    """Return the JWT for one request. ``uri`` is path + query exactly as sent (no host)."""
    if not uri.startswith("/"):
        raise ValueError("uri must be the path (plus query) as sent, starting with '/'")
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    iat = int(time.time() if now is None else now)
    claims = {
        "uid": keystore.app_id,
        "sid": keystore.session_id,
        "iat": iat,
        "exp": iat + int(ttl),
        "jti": request_id if request_id is not None else str(uuid.uuid4()),
        "sig": request_signature(method, uri, body),
        "scp": "FULL",
    }
    signing_input = _b64url(_compact_json(_HEADER)) + "." + _b64url(_compact_json(claims))
    signature = keystore.signing_key().sign(signing_input.encode("ascii")).signature
    return signing_input + "." + _b64url(signature)


__all__ = ["sign_authentication_token", "request_signature"]
