"""Mixin OAuth for users (reference §8): authorize URL → code → Mixin access token → ``/me`` → user id.

The Mixin access token is the user's credential toward Mixin: it is used for the one ``/me`` call and
dropped (never stored, never logged); mmflow then issues its own session (api/auth.py ``issue_login``).

The bot is a confidential client when ``[api] mixin_oauth_client_secret_file`` is set (the code is
exchanged with the client secret); otherwise the login uses PKCE: the verifier stays in this process
(``ctx.logins``, keyed by the login's ``state``) and the challenge goes in the authorize URL.
"""
from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from urllib.parse import urlencode

import requests

__all__ = ["OAuthFailed", "authorize_url", "login_user_id"]


class OAuthFailed(Exception):
    """status 400: our side (no client id, unknown state); 401: Mixin refused the code; 502: Mixin unreachable
    or answered nonsense."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).decode().rstrip("=")


def authorize_url(ctx) -> tuple[str, str]:
    """(the URL to send the user's browser to, the login's state)."""
    client_id = ctx.oauth_client_id
    if not client_id:
        raise OAuthFailed(503, "Mixin login is not available: no OAuth client id (the bot's keystore is unreadable)")
    state = secrets.token_urlsafe(24)
    params = {"client_id": client_id, "scope": "PROFILE:READ", "response_type": "code", "state": state}
    verifier = None
    if not ctx.oauth_client_secret:
        verifier = secrets.token_urlsafe(48)
        params.update({"code_challenge": _challenge(verifier), "code_challenge_method": "SHA256"})
    return_to = ctx.settings.mixin_oauth_return_to or ctx.settings.public_base_url
    if return_to:
        params["return_to"] = return_to
    ctx.logins.add(state, verifier, ctx.clock())
    return f"{ctx.settings.mixin_oauth_authorize_url}?{urlencode(params)}", state


def _mixin(method: str, ctx, path: str, **kwargs) -> dict:
    url = ctx.config.mixin.api_base.rstrip("/") + path
    try:
        response = requests.request(method, url, timeout=ctx.config.mixin.request_timeout, **kwargs)
    except requests.RequestException as exc:
        raise OAuthFailed(502, f"Mixin is unreachable ({type(exc).__name__})") from None
    try:
        body = response.json()
    except ValueError:
        raise OAuthFailed(502, f"Mixin answered HTTP {response.status_code} without JSON") from None
    if not isinstance(body, dict):
        raise OAuthFailed(502, "Mixin answered an unexpected document")
    error = body.get("error")
    if error:
        code = error.get("code") if isinstance(error, dict) else None
        if code in (401, 403, 10002) or response.status_code in (401, 403):
            raise OAuthFailed(401, "Mixin refused the login (code unknown, used, expired or not ours)")
        raise OAuthFailed(502, f"Mixin answered an error (code {code})")
    data = body.get("data")
    if not isinstance(data, dict):
        raise OAuthFailed(502, "Mixin answered without data")
    return data


def login_user_id(ctx, code: str, state: str | None) -> str:
    """Exchange the code (with the client secret, or the PKCE verifier of ``state``), ask Mixin who it is,
    return the user's Mixin id."""
    client_id = ctx.oauth_client_id
    if not client_id:
        raise OAuthFailed(503, "Mixin login is not available: no OAuth client id")
    verifier = None
    if state is not None:
        known, verifier = ctx.logins.take(state, ctx.clock())
        if not known:
            raise OAuthFailed(400, "unknown or expired login state: start again at GET /api/v1/auth/mixin")
    body = {"client_id": client_id, "code": code}
    if ctx.oauth_client_secret:
        body["client_secret"] = ctx.oauth_client_secret
    elif verifier:
        body["code_verifier"] = verifier
    else:
        raise OAuthFailed(400, "state is required (this login uses PKCE: the state names its verifier)")
    token = _mixin("POST", ctx, "/oauth/token", json=body).get("access_token")
    if not isinstance(token, str) or not token:
        raise OAuthFailed(502, "Mixin gave no access token")
    me = _mixin("GET", ctx, "/me", headers={"Authorization": f"Bearer {token}"})
    user_id = me.get("user_id")
    try:
        return str(uuid.UUID(str(user_id)))
    except ValueError:
        raise OAuthFailed(502, "Mixin's /me gave no user id") from None
