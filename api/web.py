"""The web dashboard's static files (the repository's ``web/`` folder) on the API's own server.

``GET /`` answers ``web/index.html`` (also where Mixin sends the browser back with ``?code=&state=``);
``GET /web/<path>`` the file under ``web/``. No build step: the files are served as they are. Every answer
carries a Content-Security-Policy that allows only this origin (the page has no inline script or style, and
talks to the API and its WebSocket on the same host), and ``no-cache`` so a new release is picked up at once
(the ETag still saves the transfer).
"""
from __future__ import annotations

from pathlib import Path

from flask import send_from_directory

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
CONTENT_SECURITY_POLICY = ("default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
                           "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

__all__ = ["register_web", "WEB_ROOT"]


def _send(path: str):
    response = send_from_directory(WEB_ROOT, path, max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def register_web(app) -> None:
    """Serve the dashboard at ``/`` and its files at ``/web/<path>`` (a missing file is the API's JSON 404).

    Plain Flask routes, not OpenAPI operations: /openapi.json lists the API, not the page's files."""
    app.add_url_rule("/", "dashboard_index", lambda: _send("index.html"), methods=["GET"])
    app.add_url_rule("/web/<path:path>", "dashboard_file", _send, methods=["GET"])
