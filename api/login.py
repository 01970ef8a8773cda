"""Logging in with Mixin, refreshing and ending a session; who am I."""
from __future__ import annotations

from api.auth import AuthError, issue_login, logout, refresh_login
from api.errors import Problem
from api.oauth import OAuthFailed, authorize_url, login_user_id
from api.routing import OPTIONAL, PUBLIC, USER, Router, principal
from api.schemas import (AuthorizeOut, CallbackIn, ErrorBody, LogoutIn, LogoutOut, MeOut, RefreshIn,
                         SessionOut)


def register(router: Router) -> None:
    ctx = router.ctx

    @router.route("GET", "/api/v1/auth/mixin", access=PUBLIC, ok=AuthorizeOut, tag="auth",
                  summary="start a Mixin login: where to send the browser", extra={503: ErrorBody})
    def mixin_authorize():
        try:
            url, state = authorize_url(ctx)
        except OAuthFailed as exc:
            raise Problem(exc.status, exc.message) from None
        return {"authorize_url": url, "state": state}

    @router.route("POST", "/api/v1/auth/mixin/callback", access=PUBLIC, ok=SessionOut, tag="auth",
                  summary="finish a Mixin login with the code Mixin gave: mmflow's access and refresh tokens",
                  errors=(401,), extra={502: ErrorBody, 503: ErrorBody})
    def mixin_callback(body: CallbackIn):
        try:
            user_id = login_user_id(ctx, body.code, body.state)
        except OAuthFailed as exc:
            raise Problem(exc.status, exc.message) from None
        return issue_login(ctx, user_id)

    @router.route("POST", "/api/v1/auth/refresh", access=PUBLIC, ok=SessionOut, tag="auth", errors=(401,),
                  summary="a new access token (and a new refresh token: each one is used once)")
    def refresh(body: RefreshIn):
        return refresh_login(ctx, body.refresh_token)

    @router.route("POST", "/api/v1/auth/logout", access=OPTIONAL, ok=LogoutOut, tag="auth",
                  summary="end a login: its refresh token (or, without one, every login of the caller)")
    def end_session(body: LogoutIn):
        who = principal()
        if not body.refresh_token and (who is None or who.user_id is None):
            raise AuthError(401, "give the refresh_token to revoke, or a user's access token")
        return {"revoked": logout(ctx, who, body.refresh_token)}

    @router.route("GET", "/api/v1/me", access=USER, ok=MeOut, summary="who the credentials belong to", tag="auth")
    def me():
        who = principal()
        return {"role": who.role, "user_id": who.user_id, "subject": who.subject}
