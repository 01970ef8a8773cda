"""Mixin OAuth on the fake Mixin: how a user logs in to a bot's web page (reference §8), for tests and the demo.

``install_oauth(fake)`` adds three routes (no bot JWT on any of them):

- ``GET /oauth/authorize?client_id=&scope=PROFILE:READ&state=&return_to=&code_challenge=&code_challenge_method=SHA256``
  plus the fake's own ``user_id=<Mixin user id>``: the user who approves (a real Mixin shows the user a page;
  the fake has no browser, so the caller names the user). With ``return_to`` it redirects (302) to
  ``return_to?code=…&state=…``; without, it answers ``{"data": {"code", "state"}}``.
- ``POST /oauth/token`` JSON ``{client_id, code, client_secret}`` or ``{client_id, code, code_verifier}`` →
  ``{"data": {"access_token", "scope"}}``. A code is single use and lives ``CODE_TTL`` seconds; the client
  secret must be the registered one, or the verifier must hash (SHA-256, base64url) to the challenge.
- ``GET /me`` with ``Authorization: Bearer <an access token it issued>`` →
  ``{"data": {"user_id", "identity_number", "full_name", "type": "user"}}``.

Errors use the fake's envelope (HTTP 202 + ``{"error": …}``): 10002 for a bad field, 401 for a code or token
it does not know. ``oauth.approve(user_id, client_id)`` is the demo-only login: a code without HTTP.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlencode

from sim.fake_mixin import ApiError, FakeMixin, FakeRequest, Redirect, invalid_field

CODE_TTL = 600.0
SCOPES = ("PROFILE:READ", "ASSETS:READ", "PHONE:READ", "CONTACTS:READ", "MESSAGES:REPRESENT", "SNAPSHOTS:READ")


def pkce_challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).decode().rstrip("=")


@dataclass
class _Code:
    client_id: str
    user_id: str
    scope: str
    challenge: str | None
    expires_at: float


@dataclass
class FakeOAuth:
    fake: FakeMixin
    clients: dict[str, str] = field(default_factory=dict)       # client id → client secret
    codes: dict[str, _Code] = field(default_factory=dict)
    tokens: dict[str, tuple[str, str]] = field(default_factory=dict)  # access token → (user id, scope)
    names: dict[str, str] = field(default_factory=dict)         # user id → full name

    def register_client(self, client_id: str, secret: str | None = None) -> str:
        """Make ``client_id`` (the bot's app id) an OAuth client; returns its client secret."""
        secret = secret or secrets.token_hex(32)
        self.clients[client_id] = secret
        return secret

    def approve(self, user_id: str, client_id: str, *, scope: str = "PROFILE:READ",
                code_challenge: str | None = None) -> str:
        """The user approves the client: a fresh code (what the authorize page would hand out)."""
        if client_id not in self.clients:
            raise invalid_field("client_id", "unknown client")
        if user_id not in self.fake.users or user_id in self.fake.bots:
            raise invalid_field("user_id", "unknown user")
        code = secrets.token_urlsafe(24)
        self.codes[code] = _Code(client_id, user_id, scope, code_challenge, self.fake.clock() + CODE_TTL)
        return code

    # ------------------------------------------------------------------ routes

    def _authorize(self, req: FakeRequest):
        scope = req.arg("scope") or "PROFILE:READ"
        if "PROFILE:READ" not in scope.split() or any(s not in SCOPES for s in scope.split()):
            raise invalid_field("scope", "PROFILE:READ required")
        method = req.arg("code_challenge_method")
        challenge = req.arg("code_challenge")
        if challenge is not None and method not in (None, "SHA256", "S256"):
            raise invalid_field("code_challenge_method")
        user_id = req.arg("user_id")
        if not user_id:
            raise invalid_field("user_id", "the fake needs the approving user's id (it has no login page)")
        code = self.approve(user_id, req.arg("client_id") or "", scope=scope, code_challenge=challenge)
        state = req.arg("state") or ""
        return_to = req.arg("return_to")
        if return_to:
            joiner = "&" if "?" in return_to else "?"
            return Redirect(return_to + joiner + urlencode({"code": code, "state": state}))
        return {"code": code, "state": state}

    def _token(self, req: FakeRequest):
        body = req.json()
        if not isinstance(body, dict):
            raise invalid_field("body")
        client_id, code = body.get("client_id"), body.get("code")
        if not isinstance(client_id, str) or client_id not in self.clients:
            raise invalid_field("client_id", "unknown client")
        grant = self.codes.pop(code, None) if isinstance(code, str) else None  # single use, even when refused
        if grant is None or grant.client_id != client_id or grant.expires_at <= self.fake.clock():
            raise ApiError(401, "Unauthorized, maybe invalid token.")
        secret, verifier = body.get("client_secret"), body.get("code_verifier")
        if isinstance(secret, str) and secret:
            if not hmac.compare_digest(secret, self.clients[client_id]):
                raise ApiError(401, "Unauthorized, maybe invalid token.")
        elif isinstance(verifier, str) and verifier and grant.challenge:
            if not hmac.compare_digest(pkce_challenge(verifier), grant.challenge):
                raise ApiError(401, "Unauthorized, maybe invalid token.")
        else:
            raise invalid_field("client_secret", "client_secret or code_verifier required")
        token = secrets.token_urlsafe(32)
        self.tokens[token] = (grant.user_id, grant.scope)
        return {"access_token": token, "scope": grant.scope}

    def _me(self, req: FakeRequest):
        header = req.headers.get("Authorization") or ""
        token = header[len("Bearer "):].strip() if header.startswith("Bearer ") else ""
        owner = self.tokens.get(token)
        if owner is None:
            raise ApiError(401, "Unauthorized, maybe invalid token.")
        user_id = owner[0]
        return {"type": "user", "user_id": user_id, "identity_number": str(int(user_id[:8], 16) % 10**8),
                "full_name": self.names.get(user_id, f"user {user_id[:8]}")}


def install_oauth(fake: FakeMixin) -> FakeOAuth:
    """Add Mixin OAuth (authorize, token, /me) to the fake; returns its handle (also ``fake.oauth``)."""
    oauth = FakeOAuth(fake)
    fake.add_route("GET", "/oauth/authorize", oauth._authorize, auth=False)
    fake.add_route("POST", "/oauth/token", oauth._token, auth=False)
    fake.add_route("GET", "/me", oauth._me, auth=False)
    fake.oauth = oauth
    return oauth
