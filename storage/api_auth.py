"""Reads and writes of the API's credentials: operator API tokens and users' refresh tokens.

Only sha256 hashes are stored. Plain functions over the database (the CLI and the API call them
directly, like ``storage.commands``): each is one short statement or transaction, no I/O besides it.
"""
from __future__ import annotations

import hashlib
import secrets

from storage.api_models import ApiToken, RefreshToken

API_TOKEN_PREFIX = "mmf_"
ROLES = ("viewer", "operator")
LAST_USED_PRECISION = 60.0  # seconds: last_used_at is written at most this often per token (not once per call)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_secret_token(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


# ---------------------------------------------------------------- API tokens

def create_api_token(role: str, name: str, now: float, expires_at: float | None) -> tuple[ApiToken, str]:
    """A new API token: the row and the plain token (shown once, never stored)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    plain = new_secret_token(API_TOKEN_PREFIX)
    row = ApiToken.create(name=name, role=role, token_hash=token_hash(plain), created_at=now, expires_at=expires_at)
    return row, plain


def api_tokens() -> list[ApiToken]:
    return list(ApiToken.select().order_by(ApiToken.id))


def revoke_api_token(token_id: int, now: float) -> ApiToken | None:
    """Revoke (idempotent: a revoked token keeps its first revocation time); None if there is no such token."""
    row = ApiToken.get_or_none(ApiToken.id == token_id)
    if row is None:
        return None
    ApiToken.update(revoked_at=now).where((ApiToken.id == token_id) & ApiToken.revoked_at.is_null()).execute()
    return ApiToken.get_by_id(token_id)


def find_api_token(plain: str) -> ApiToken | None:
    return ApiToken.get_or_none(ApiToken.token_hash == token_hash(plain))


def touch_api_token(row: ApiToken, now: float) -> None:
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_PRECISION:
        ApiToken.update(last_used_at=now).where(ApiToken.id == row.id).execute()


# ---------------------------------------------------------------- refresh tokens

def create_refresh_token(user_id: str, family: str | None, now: float, ttl: float) -> str:
    plain = new_secret_token()
    RefreshToken.create(token_hash=token_hash(plain), family=family or secrets.token_hex(16), user_id=user_id,
                        created_at=now, expires_at=now + ttl)
    return plain


def rotate_refresh_token(plain: str, now: float, ttl: float) -> tuple[str, str] | str:
    """Use a refresh token once: (user id, the new refresh token), or why it cannot be used (a string).

    A token already rotated is a copy being replayed: its whole family (the login) is revoked."""
    db = RefreshToken._meta.database
    with db.atomic():
        row = RefreshToken.get_or_none(RefreshToken.token_hash == token_hash(plain))
        if row is None:
            return "unknown refresh token"
        if row.revoked_at is not None:
            return "refresh token revoked"
        if row.rotated_at is not None:
            revoke_family(row.family, now)
            return "refresh token already used (the login is revoked)"
        if row.expires_at <= now:
            return "refresh token expired"
        claimed = (RefreshToken.update(rotated_at=now)
                   .where((RefreshToken.token_hash == row.token_hash) & RefreshToken.rotated_at.is_null()).execute())
        if not claimed:
            return "refresh token already used"
        return row.user_id, create_refresh_token(row.user_id, row.family, now, ttl)


def revoke_family(family: str, now: float) -> int:
    return (RefreshToken.update(revoked_at=now)
            .where((RefreshToken.family == family) & RefreshToken.revoked_at.is_null()).execute())


def revoke_refresh_token(plain: str, now: float) -> bool:
    """Logout: revoke the login this refresh token belongs to (every token of its family)."""
    row = RefreshToken.get_or_none(RefreshToken.token_hash == token_hash(plain))
    if row is None:
        return False
    revoke_family(row.family, now)
    return True


def revoke_user_logins(user_id: str, now: float) -> int:
    return (RefreshToken.update(revoked_at=now)
            .where((RefreshToken.user_id == user_id) & RefreshToken.revoked_at.is_null()).execute())
