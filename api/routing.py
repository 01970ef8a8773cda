"""Declaring an operation once: its path, who may call it, its response schema and its error responses.

``Router.route(...)`` wraps flask-openapi3's ``app.get/post``: the operation gets ``security: bearer``
when it needs credentials, the error responses it can give (all ``ErrorBody``), and its access rule
is recorded, so ``check_access`` (a ``before_request`` hook) authenticates and authorises BEFORE the
request body is validated: an anonymous caller learns 401, not what the body should look like.

Access rules:
  public     anyone, credentials ignored
  optional   anyone; credentials, when given, must be valid (``g.principal`` is None without them)
  user       any valid credentials (a Mixin user or an API token); handlers scope users to their orders
  viewer     an API token with role viewer or operator
  operator   an API token with role operator
"""
from __future__ import annotations

from flask import g, request

from api.auth import authenticate, require
from api.schemas import ErrorBody

PUBLIC, OPTIONAL, USER, VIEWER, OPERATOR = "public", "optional", "user", "viewer", "operator"
ACCESS_RULES = (PUBLIC, OPTIONAL, USER, VIEWER, OPERATOR)
BEARER = [{"bearer": []}]


def error_responses(access: str, extra: tuple[int, ...] = ()) -> dict:
    """The error answers an operation with this access rule can give, each an ``ErrorBody``."""
    codes = {400, 404, 422, 429, *extra}
    if access not in (PUBLIC, OPTIONAL):
        codes |= {401, 403}
    elif access == OPTIONAL:
        codes |= {401}
    return {code: ErrorBody for code in sorted(codes)}


class Router:
    def __init__(self, app, ctx) -> None:
        self.app = app
        self.ctx = ctx
        self.access: dict[tuple[str, str], str] = {}

    def route(self, method: str, rule: str, *, access: str, ok, summary: str, tag: str, status: int = 200,
              extra: dict | None = None, errors: tuple[int, ...] = ()):
        """Register the decorated handler as ``METHOD rule`` (Flask rule syntax, ``<order_id>``)."""
        if access not in ACCESS_RULES:
            raise ValueError(f"unknown access rule {access!r}")
        responses = {**error_responses(access, errors), status: ok, **(extra or {})}
        register = getattr(self.app, method.lower())
        decorator = register(rule, responses=responses, summary=summary, tags=[_tag(tag)],
                             security=None if access == PUBLIC else BEARER)
        self.access[(method.upper(), rule)] = access
        return decorator

    def check_access(self) -> None:
        """before_request: authenticate and authorise by the matched operation's access rule."""
        g.principal = None
        rule = request.url_rule
        if rule is None:
            return
        method = "GET" if request.method == "HEAD" else request.method
        access = self.access.get((method, rule.rule), PUBLIC)
        header = request.headers.get("Authorization")
        if access == PUBLIC:
            return
        if access == OPTIONAL:
            if header:
                g.principal = authenticate(self.ctx, header)
            return
        principal = authenticate(self.ctx, header)
        g.principal = principal
        if access in (VIEWER, OPERATOR):
            require(principal, access)


def _tag(name: str):
    from flask_openapi3 import Tag

    return Tag(name=name)


def principal():
    """The authenticated caller of this request (None on public operations)."""
    return g.get("principal")
