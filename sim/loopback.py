"""What every fake server in sim/ shares: a gevent WSGI server bound to loopback only.

Handlers set TCP_NODELAY (pywsgi writes headers and body separately; with Nagle
and delayed ACKs every reply would wait ~40 ms) and expose the raw request
target as RAW_URI / REQUEST_URI (gevent only gives a decoded PATH_INFO, and
signatures cover the bytes actually sent).
"""
from __future__ import annotations

import abc
from typing import Any

from gevent.pywsgi import WSGIServer

from integrations.wsgi import NoDelayHandler

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class LoopbackHandler(NoDelayHandler):
    def get_environ(self):
        env = super().get_environ()
        env["RAW_URI"] = self.path
        env["REQUEST_URI"] = self.path
        return env


class LoopbackServer(abc.ABC):
    """Base of the fakes: `start()`, `stop()`, `url`, context manager, injected faults.

    Subclasses define `_wsgi`; faults they inject are objects with `path_prefix` and
    `remaining`, kept in `self.faults` and consumed by `_take_fault`."""

    handler_class: type = LoopbackHandler

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"{type(self).__name__} binds to loopback only, not {host!r}")
        self.host = host
        self.port = port
        self._server: WSGIServer | None = None
        self.faults: list = []

    @abc.abstractmethod
    def _wsgi(self, environ, start_response):
        """The WSGI application of the fake."""

    def _take_fault(self, path: str):
        """The next injected fault whose prefix matches `path` (consumed), or None."""
        for fault in self.faults:
            if fault.remaining > 0 and path.startswith(fault.path_prefix):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self.faults.remove(fault)
                return fault
        return None

    def start(self):
        if self._server is None:
            server = WSGIServer((self.host, self.port), self._wsgi, handler_class=self.handler_class, log=None,
                                error_log=None)
            server.start()
            self._server = server
            self.port = server.server_port
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(timeout=1)
            self._server = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
