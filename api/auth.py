"""Who is calling: user JWTs (after Mixin login), refresh tokens, operator API tokens.

- A **user** logs in with Mixin OAuth (api/oauth.py); mmflow then issues its own access token — a
  PyJWT HS256 JWT signed with the ``[api] token_secret_file`` key, ``access_token_ttl`` (900 s) — and a
  refresh token (random, stored hashed, rotated on each use, revoked at logout).
- An **operator** or **viewer** uses an API token ``mmf_…`` made by ``python run.py tokens create``
  (stored as its sha256; optional expiry; revocable).

``authenticate(ctx, "Bearer …")`` (or the bare token) gives the ``Principal`` or raises
``AuthError(401, …)``. What each role may do is the app's business (``require``).
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass

import jwt

from storage import api_auth

__all__ = ["AuthError", "Principal", "authenticate", "issue_login", "refresh_login", "logout", "require",
           "ROLE_RANK"]

ALGORITHM = "HS256"
ISSUER = "mmflow"
ROLE_RANK = {"user": 0, "viewer": 1, "operator": 2}


@dataclass(frozen=True)
class Principal:
    """role: "user" (a Mixin user, sees their own orders) | "viewer" (reads everything) | "operator" (also
    acts). user_id: the Mixin user id of a user, None for API tokens. subject: "user:<id>" or "token:<id>"."""
    role: str
    user_id: str | None
    subject: str

    @property
    def reads_all(self) -> bool:
        return self.role in ("viewer", "operator")

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"


class AuthError(Exception):
    """401: no or bad credentials; 403: good credentials, not allowed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bearer(header_or_token: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, or a bare token; None if empty."""
    text = (header_or_token or "").strip()
    if not text:
        return None
    scheme, _, rest = text.partition(" ")
    if rest and scheme.lower() == "bearer":
        text = rest.strip()
    elif rest:
        return None
    return text or None


def authenticate(ctx, authorization_header_or_token: str | None) -> Principal:
    """The caller behind an Authorization header (``Bearer <token>``) or a bare token; AuthError(401) if none."""
    token = bearer(authorization_header_or_token)
    if token is None:
        raise AuthError(401, "credentials required (Authorization: Bearer <token>)")
    if token.startswith(api_auth.API_TOKEN_PREFIX):
        return _api_token_principal(ctx, token)
    return _user_principal(ctx, token)


def _api_token_principal(ctx, token: str) -> Principal:
    row = api_auth.find_api_token(token)
    now = ctx.clock()
    if row is None:
        raise AuthError(401, "unknown API token")
    if row.revoked_at is not None:
        raise AuthError(401, "API token revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise AuthError(401, "API token expired")
    api_auth.touch_api_token(row, now)
    return Principal(role=row.role, user_id=None, subject=f"token:{row.id}")


def _user_principal(ctx, token: str) -> Principal:
    try:
        claims = jwt.decode(token, ctx.secret, algorithms=[ALGORITHM], issuer=ISSUER,
                            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                                     "require": ["exp", "sub", "typ", "iss"]})
    except jwt.InvalidTokenError:
        raise AuthError(401, "invalid access token") from None
    if claims.get("typ") != "access" or not isinstance(claims.get("sub"), str):
        raise AuthError(401, "invalid access token")
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or exp <= ctx.clock():
        raise AuthError(401, "access token expired (refresh it: POST /api/v1/auth/refresh)")
    return Principal(role="user", user_id=claims["sub"], subject=f"user:{claims['sub']}")


def access_token(ctx, user_id: str) -> str:
    now = ctx.clock()
    claims = {"iss": ISSUER, "sub": user_id, "typ": "access", "iat": int(now),
              "exp": now + ctx.settings.access_token_ttl, "jti": secrets.token_hex(8)}
    return jwt.encode(claims, ctx.secret, algorithm=ALGORITHM)


def _session(ctx, user_id: str, refresh_token: str) -> dict:
    return {"access_token": access_token(ctx, user_id), "refresh_token": refresh_token, "token_type": "Bearer",
            "expires_in": int(ctx.settings.access_token_ttl), "user_id": user_id}


def issue_login(ctx, user_id: str) -> dict:
    """A new login of a Mixin user: access token + a refresh token of a new family."""
    refresh = api_auth.create_refresh_token(user_id, None, ctx.clock(), ctx.settings.refresh_token_ttl)
    return _session(ctx, user_id, refresh)


def refresh_login(ctx, refresh_token: str) -> dict:
    """Rotate a refresh token into a new access + refresh token; AuthError(401) if it cannot be used."""
    outcome = api_auth.rotate_refresh_token(refresh_token, ctx.clock(), ctx.settings.refresh_token_ttl)
    if isinstance(outcome, str):
        raise AuthError(401, outcome)
    user_id, new_refresh = outcome
    return _session(ctx, user_id, new_refresh)


def logout(ctx, principal: Principal | None, refresh_token: str | None) -> int:
    """End a login: its refresh token's family, or (no token given) every login of the user. Returns how
    many refresh tokens were revoked. Access tokens already issued live out their short lifetime."""
    now = ctx.clock()
    if refresh_token:
        return 1 if api_auth.revoke_refresh_token(refresh_token, now) else 0
    if principal is not None and principal.user_id:
        return api_auth.revoke_user_logins(principal.user_id, now)
    return 0


def require(principal: Principal, role: str) -> None:
    """403 unless the principal's role is at least ``role`` (user < viewer < operator)."""
    if ROLE_RANK.get(principal.role, -1) < ROLE_RANK[role]:
        raise AuthError(403, f"{role} role required (you are {principal.role})")
