"""What every gevent.pywsgi server of mmflow shares (the API's and the fakes')."""
from __future__ import annotations

import socket

from gevent.pywsgi import WSGIHandler


class NoDelayHandler(WSGIHandler):
    """TCP_NODELAY on each connection: pywsgi writes headers and body separately, and with Nagle plus
    delayed ACKs every small reply would wait ~40 ms."""

    def __init__(self, sock, address, server, rfile=None):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        super().__init__(sock, address, server, rfile)
