"""ApiServer: the actor that serves the API (and, later, its WebSocket stream) on ``gevent.pywsgi``.

A child of the root supervisor, last in ``actors.system.start_tree`` when ``config.api.enabled``. Its
setup() builds the ``ApiContext`` from the services and the app (``api.app.create_app``) and binds
``[api] listen``; teardown() stops the server (open connections get ``STOP_TIMEOUT`` seconds).

A port that cannot be bound (in use, no permission) never stops the service — money does not wait for
a dashboard: the actor logs one WARNING, keeps trying in the background with back-off (1 s doubling to
30 s; a WARNING again every ``WARN_EVERY`` attempts) and logs INFO once bound. The bound address (port 0
picks a free one) is logged and queryable: ``ApiServer.address`` (ask ``GetApiAddress``, or
``api_address(services)``).

gevent.pywsgi exposes the raw socket to the app, so flask-sock / simple-websocket WebSockets work on
this server as they are.
"""
from __future__ import annotations

from dataclasses import dataclass

import gevent
from gevent.pywsgi import WSGIServer
from loguru import logger

from actors.supervisor import SupervisedActor
from integrations.wsgi import NoDelayHandler

__all__ = ["ApiServer", "GetApiAddress", "api_address", "api_app"]

STOP_TIMEOUT = 2.0
BIND_BACKOFF_MIN = 1.0
BIND_BACKOFF_MAX = 30.0
WARN_EVERY = 10


@dataclass(frozen=True)
class GetApiAddress:
    """Ask → ApiServer: the bound (host, port), or None while it is not bound."""


class _ErrorLog:
    """pywsgi's error log (an exception escaping the app, a broken client) → the debug log only."""

    def write(self, text: str) -> None:
        text = text.strip()
        if text:
            logger.bind(debug_only=True).debug("api server: {}", text)

    def flush(self) -> None:
        pass


class ApiServer(SupervisedActor):
    def __init__(self, services, *, supervisor=None, child_id=None, app_factory=None):
        super().__init__(supervisor=supervisor, child_id=child_id)
        self.services = services
        self.settings = services.config.api
        self._app_factory = app_factory
        self.address: tuple[str, int] | None = None
        self._server: WSGIServer | None = None
        self._binder = None
        self.app = None

    def setup(self) -> None:
        from api.app import create_app
        from api.context import build_context

        ctx = build_context(self.services.config, self.services)
        self.app = (self._app_factory or create_app)(ctx)
        if not self._bind(first=True):
            self._binder = gevent.spawn(self._keep_binding)

    def _bind(self, *, first: bool = False, attempt: int = 0) -> bool:
        host, port = self.settings.address
        server = WSGIServer((host, port), self.app, handler_class=NoDelayHandler, log=None, error_log=_ErrorLog())
        try:
            server.start()
        except OSError as exc:
            if first or attempt % WARN_EVERY == 0:
                logger.warning("api: cannot listen on {} ({}); retrying in the background — the service runs "
                               "without its API until then", self.settings.listen, exc.strerror or exc)
            return False
        self._server = server
        self.address = (server.server_host, server.server_port)
        logger.info("api: serving on http://{}:{} (openapi at /openapi.json)", *self._display())
        return True

    def _display(self) -> tuple[str, int]:
        host, port = self.address
        return (f"[{host}]" if ":" in host else host), port

    def _keep_binding(self) -> None:
        delay, attempt = BIND_BACKOFF_MIN, 0
        while self._server is None:
            gevent.sleep(delay)
            attempt += 1
            if self._bind(attempt=attempt):
                return
            delay = min(delay * 2, BIND_BACKOFF_MAX)

    def on_receive(self, message):
        if isinstance(message, GetApiAddress):
            return self.address
        logger.warning("api: unexpected message {!r}", message)
        return None

    def teardown(self) -> None:
        if self._binder is not None:
            self._binder.kill(block=False)
        if self._server is not None:
            self._server.stop(timeout=STOP_TIMEOUT)
            self._server = None
            logger.info("api: stopped serving")


def api_address(services, timeout: float = 5.0) -> tuple[str, int] | None:
    """The bound (host, port) of the running ApiServer (None if it is not running or not bound)."""
    ref = getattr(services, "refs", {}).get("api")
    if ref is None:
        return None
    try:
        return ref.ask(GetApiAddress(), timeout=timeout)
    except Exception:  # noqa: BLE001 - stopped or restarting: no address now
        return None


def api_app(services, timeout: float = 5.0):
    """The running ApiServer's Flask app (its ``ApiContext`` is ``app.extensions["mmflow"]``), or None."""
    from pykka.messages import ProxyGetAttr

    ref = getattr(services, "refs", {}).get("api")
    if ref is None:
        return None
    try:
        return ref.ask(ProxyGetAttr(("app",)), timeout=timeout)
    except Exception:  # noqa: BLE001 - stopped or restarting
        return None
