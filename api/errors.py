"""Every 4xx/5xx of the API is JSON ``{"error": "<one line>"}`` — never HTML, never a traceback.

``Problem`` is what handlers raise for a defined outcome (404, 409, ...); ``install_error_handlers``
turns it, ``AuthError``, Flask/werkzeug's HTTP errors, rate-limit breaches, validation failures and
anything unexpected (500, its traceback only in the debug log) into that shape.
"""
from __future__ import annotations

from flask import Flask, jsonify
from loguru import logger
from werkzeug.exceptions import HTTPException

from api.auth import AuthError

__all__ = ["Problem", "error_response", "install_error_handlers", "validation_error_response"]


class Problem(Exception):
    """A defined failure of a request: HTTP ``status`` with ``message`` (and optional extra JSON fields)."""

    def __init__(self, status: int, message: str, **extra) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def error_response(status: int, message: str, headers: dict | None = None, **extra):
    body = {"error": " ".join(str(message).split()) or "error", **extra}
    response = jsonify(body)
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def validation_error_response(exc):
    """flask-openapi3's hook for pydantic errors in a request: 422 with one line naming each bad field."""
    parts = []
    for error in exc.errors(include_url=False)[:10]:
        where = ".".join(str(p) for p in error.get("loc", ())) or "request"
        parts.append(f"{where}: {str(error.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return error_response(422, "invalid request: " + "; ".join(parts))


def install_error_handlers(app: Flask) -> None:
    @app.errorhandler(Problem)
    def _problem(exc: Problem):
        return error_response(exc.status, exc.message, **exc.extra)

    @app.errorhandler(AuthError)
    def _auth(exc: AuthError):
        headers = {"WWW-Authenticate": 'Bearer realm="mmflow"'} if exc.status == 401 else None
        return error_response(exc.status, exc.message, headers)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if exc.response is not None and exc.response.mimetype == "application/json":
            return exc.response  # already ours (a validation error aborted with its response)
        headers = {}
        if exc.code == 429:
            retry = getattr(exc, "retry_after", None)
            headers["Retry-After"] = str(retry) if retry else "60"
        if exc.code == 405 and exc.valid_methods:
            headers["Allow"] = ", ".join(exc.valid_methods)
        message = exc.description if exc.code != 429 else f"too many requests ({exc.description})"
        if exc.code == 404 and message and message.startswith("The requested URL was not found"):
            message = "not found"
        return error_response(exc.code or 500, message or exc.name, headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        # one line on the console; the traceback only in the debug log (see actors.system.setup_logging)
        logger.bind(debug_only=True).opt(exception=exc).error("api: unexpected error (traceback)")
        logger.error("api: unexpected error | {}: {}", type(exc).__name__, exc)
        return error_response(500, "internal error")
