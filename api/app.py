"""The HTTP API as a flask-openapi3 app: ``create_app(ctx)``.

Every operation is declared once with its pydantic schemas (api/schemas.py) and its access rule
(api/routing.py); /openapi.json is generated from them. Errors are JSON (api/errors.py). Rate limits
(Flask-Limiter, in memory): every request per client address, every request per credential, order
intents per address more tightly; 429 with Retry-After. Handlers read through ``ops.reads`` and act
through ``ops.commands`` — the API never writes money state itself.

Operations live in small modules, each with ``register(router)``: api/public.py (health, pairs,
order intents), api/login.py (Mixin OAuth, refresh, logout, me), api/orders.py (orders, statement,
instructions, commands on one order), api/operator.py (attention, alerts, commands, halt, accounts,
campaigns).
"""
from __future__ import annotations

import hashlib
from decimal import Decimal

from flask import Response, jsonify, request
from flask.json.provider import DefaultJSONProvider
from flask_limiter import ApplicationLimit, Limit, Limiter
from flask_openapi3 import Info, OpenAPI, SecurityScheme

from api.context import ApiContext
from api.errors import install_error_handlers, validation_error_response
from api.routing import Router
from api.schemas import ErrorBody
from api.web import register_web

__all__ = ["create_app", "API_VERSION"]

API_VERSION = "1.0.0"
UNLIMITED_PATHS = ("/healthz", "/readyz", "/metrics")


class _DecimalJSON(DefaultJSONProvider):
    """Money never becomes a float: a Decimal that reaches jsonify is written as its string."""

    @staticmethod
    def default(o):
        if isinstance(o, Decimal):
            return format(o.normalize(), "f")
        return DefaultJSONProvider.default(o)


def _address() -> str:
    return request.remote_addr or "unknown"


def _credential() -> str:
    header = request.headers.get("Authorization", "")
    return "cred:" + hashlib.sha256(header.encode("utf-8", "replace")).hexdigest()[:32]


def _no_credential() -> bool:
    return not request.headers.get("Authorization")


def _limiter(app, ctx: ApiContext) -> Limiter:
    s = ctx.settings
    limiter = Limiter(
        key_func=_address, app=app, storage_uri="memory://", headers_enabled=True, strategy="fixed-window",
        application_limits=[
            ApplicationLimit(s.rate_limit_per_address, key_function=_address, scope="address"),
            ApplicationLimit(s.rate_limit_per_token, key_function=_credential, scope="credential",
                             exempt_when=_no_credential),
        ],
        default_limits=[Limit(s.rate_limit_intents, key_function=_address,
                              exempt_when=lambda: request.endpoint != "create_order_intent")],
    )
    limiter.request_filter(lambda: request.path in UNLIMITED_PATHS)
    return limiter


def _metrics():
    """Prometheus scrape (integrations/metrics.py): public like /healthz — the API listens on loopback by
    default, and no metric is labelled by user or order (per pair at most)."""
    from integrations.metrics import exposition

    body, content_type = exposition(request.headers.get("Accept", ""))
    return Response(body, content_type=content_type)


def create_app(ctx: ApiContext) -> OpenAPI:
    """The WSGI app of the API for this context (serve it with api/server.py's ApiServer)."""
    from api import login, operator, orders, public

    app = OpenAPI(
        __name__,
        info=Info(title="mmflow", version=API_VERSION,
                  description="Market making as a service on Mixin: pairs, order intents, orders, statements, "
                              "operator commands."),
        security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer",
                                                   bearerFormat="JWT (Mixin login) or mmf_... (API token)")},
        doc_ui=False,
        validation_error_status=422,
        validation_error_model=ErrorBody,
        validation_error_callback=validation_error_response,
    )
    app.json = _DecimalJSON(app)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    app.config["MMFLOW_CONTEXT"] = ctx
    app.extensions["mmflow"] = ctx
    install_error_handlers(app)
    _limiter(app, ctx)
    router = Router(app, ctx)
    app.before_request(router.check_access)
    for module in (public, login, orders, operator):
        module.register(router)
    register_web(app)  # the dashboard (web/) at /
    app.add_url_rule("/metrics", "metrics", _metrics, methods=["GET"])

    @app.get("/openapi.json", doc_ui=False)
    def openapi_json():
        return jsonify(app.api_doc)

    app.extensions["mmflow_router"] = router
    return app
