"""Logging in: Mixin OAuth, refresh, logout; who am I."""
from __future__ import annotations

from api.routing import USER, Router, principal
from api.schemas import MeOut


def register(router: Router) -> None:
    @router.route("GET", "/api/v1/me", access=USER, ok=MeOut, summary="who the credentials belong to", tag="auth")
    def me():
        who = principal()
        return {"role": who.role, "user_id": who.user_id, "subject": who.subject}
