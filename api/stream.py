"""The live stream: ``/api/v1/stream``, a WebSocket (flask-sock) fed by the EventFeed.

Connecting — the same credentials as the REST API, given one of three ways:

- an ``Authorization: Bearer <token>`` header (programs);
- ``?token=<token>`` in the URL (browsers cannot set headers on a WebSocket; note the URL may be logged
  by proxies — prefer the next way);
- the first message ``{"token": "<token>"}``, within ``auth_timeout`` seconds.

Bad or missing credentials: the socket is closed with code 1008 (policy violation) and a one-line reason.
The credential is checked again every ``recheck`` seconds (60): an expired user token or a revoked API
token ends the stream the same way. A client keeps a long stream open by sending its refreshed token on
it, ``{"token": "<new token>"}`` (the same caller's; anything else the client sends is ignored).

Messages (JSON text, one object each, in ``seq`` order):

- ``{"type": "hello", "seq": N, "role": ..., "user_id": ..., "queue_size": ...}`` first: the stream
  continues with the events after ``seq`` N. Nothing older is replayed, and ``seq`` restarts with the
  server: after a (re)connect a client reads the state it shows over REST, then applies events;
- ``{"type": "order_state", "seq", "order_id", "user_id", "id", "from_state", "to_state", "reason", "at"}``
  (``id`` is the history row; one order's changes arrive in history order);
- ``{"type": "fill", "seq", "order_id", "user_id", "fill_key", "trade_id", "exchange_account",
  "client_order_id", "symbol", "side", "price", "amount", "fee", "fee_currency", "liquidity", "at",
  "recorded_at"}`` (amounts as decimal strings);
- ``{"type": "alert", "seq", "order_id": null, "user_id": null, "id", "kind", "subject", "message",
  "created_at", "resolved", "acked_at", "reopened"}`` (viewers and operators only);
- ``{"type": "kpi", ...}`` one KPI sample of an order;
- ``{"type": "bye", "seq": N, "reason": ...}`` last, before the server closes the socket: 1001 when it
  stops, 1008 when the client was too slow (its queue of ``queue_size`` messages was full). A client
  that stopped reading altogether may not get it: its socket is shut after a short grace.

Within one kind, events come in the order they were committed; the kinds found in the same read come
source by source (order states, fills, alerts, then any added source such as KPIs).

A user sees the events of the orders they own (``orders.user_id``); a viewer or operator sees every
event and the alerts. An unexpected server error closes with 1011.
"""
from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import gevent
from flask import request
from flask_sock import Sock
from gevent.event import Event as Signal
from loguru import logger
from simple_websocket import ConnectionClosed

from api.auth import AuthError, Principal
from api.event_feed import CLOSE_POLICY_VIOLATION, EventFeed, Subscriber, encode
from api.stream_sources import Event

__all__ = ["STREAM_PATH", "EventFeed", "Event", "register_stream"]

STREAM_PATH = "/api/v1/stream"
MAX_CLIENT_MESSAGE = 4096       # the only message a client needs to send is its token
CLOSE_REASON_MAX = 120          # a close frame carries at most 123 bytes of reason
SEND_BUFFER = 64 * 1024         # a few hundred events in flight per client: plenty for a stream this size
CLOSE_INTERNAL_ERROR = 1011


def register_stream(app, feed: EventFeed, authenticate: Callable[[str | None], Principal], *,
                    path: str = STREAM_PATH, auth_timeout: float = 10.0, idle_check: float = 15.0,
                    recheck: float = 60.0, send_buffer: int | None = SEND_BUFFER) -> None:
    """Add the WebSocket route ``path`` to ``app``, streaming ``feed``'s events.

    ``authenticate(header_or_token)`` gives the caller's Principal or raises AuthError (bind the API's
    context first: ``functools.partial(api.auth.authenticate, ctx)``). The feed's owner starts and stops
    it. ``idle_check``: how often an idle connection looks whether its client went away silently.
    ``recheck``: how often a connection's credential is checked again (an expired or revoked one ends it
    with 1008; a client keeps a long stream by sending ``{"token": <refreshed token>}`` on it).
    ``send_buffer``: the kernel send buffer of each stream connection (None: the system's autotuning,
    up to megabytes per connection) — a small one bounds what a client that stopped reading holds in
    the kernel and lets the feed see sooner that it is behind."""
    options = app.config.setdefault("SOCK_SERVER_OPTIONS", {})
    options.setdefault("max_message_size", MAX_CLIENT_MESSAGE)
    options.setdefault("event_class", Signal)   # waited on together with the subscriber's queue

    @app.before_request
    def _no_compression():
        # permessage-deflate keeps a zlib compressor per connection (~300 KB with context takeover):
        # a thousand clients would hold hundreds of MB for a few small messages. Refusing the offer
        # (by not passing it on to simple-websocket's handshake) keeps a connection's memory small.
        if request.path == path:
            request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)

    sock = Sock(app)

    @sock.route(path)
    def stream(ws):
        _serve(ws, feed, authenticate, auth_timeout=auth_timeout, idle_check=idle_check, recheck=recheck,
               send_buffer=send_buffer)


class _WholeFrames:
    """The connection's socket with ``send`` writing everything.

    simple-websocket writes each frame with ``socket.send``, which writes only part of it when the
    socket's buffer is nearly full (a slow client) and the rest would be lost — a corrupt stream.
    ``sendall`` writes the whole frame or fails."""

    def __init__(self, sock) -> None:
        self._sock = sock

    def send(self, data: bytes) -> int:
        self._sock.sendall(data)
        return len(data)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


def _one_line(text: str) -> str:
    line = " ".join(str(text).split())
    encoded = line.encode()
    return line if len(encoded) <= CLOSE_REASON_MAX else encoded[:CLOSE_REASON_MAX].decode(errors="ignore")


def _shutdown(ws, how: int = socket.SHUT_RDWR) -> None:
    """Shut the connection itself (every descriptor of it), waking whoever is blocked on it."""
    try:
        ws.sock.shutdown(how)
    except OSError:
        pass


def _close(ws, code: int, reason: str) -> None:
    """Close frame with ``code`` and ``reason``, then end our side of the TCP connection."""
    try:
        ws.close(reason=code, message=_one_line(reason))
    except (ConnectionClosed, OSError):
        pass
    _shutdown(ws, socket.SHUT_WR)


def _token_of(text) -> str | None:
    """The ``token`` of a ``{"token": ...}`` message, else None."""
    try:
        message = json.loads(text)
    except (TypeError, ValueError):
        return None
    token = message.get("token") if isinstance(message, dict) else None
    return token if isinstance(token, str) and token else None


def _credential(ws, auth_timeout: float) -> str | None:
    """The header, ``?token=``, or the first message's ``token``; None if none came in time."""
    header = request.headers.get("Authorization")
    if header:
        return header
    token = request.args.get("token")
    if token:
        return token
    text = ws.receive(timeout=auth_timeout)
    return None if text is None else _token_of(text)


class _Refused(Exception):
    """The connection must end with 1008 and this reason."""


class _Connection:
    """One client of the stream: its credential (checked again every ``recheck`` seconds and whenever
    it sends a new one), its subscriber, and the loop that sends its messages."""

    def __init__(self, ws, feed: EventFeed, authenticate, *, recheck: float, idle_check: float) -> None:
        self.ws, self.feed, self.authenticate = ws, feed, authenticate
        self.recheck, self.idle_check = recheck, idle_check
        self.credential: str | None = None
        self.principal: Principal | None = None
        self.next_check = 0.0

    def authorise(self, credential: str | None) -> Principal:
        """The caller behind ``credential``; _Refused when there is none, it is bad, or it is another
        caller than the one this connection started with."""
        if credential is None:
            raise _Refused('credentials required: Authorization: Bearer, ?token= or a first message '
                           '{"token": ...}')
        try:
            principal = self.authenticate(credential)
        except AuthError as exc:
            raise _Refused(exc.message) from None
        if not principal.reads_all and not principal.user_id:
            raise _Refused(f"role {principal.role} cannot follow the stream")
        if self.principal is not None and (principal.role, principal.user_id) != (self.principal.role,
                                                                                  self.principal.user_id):
            raise _Refused("the new token is not the same caller's")
        self.credential, self.principal = credential, principal
        self.next_check = time.monotonic() + self.recheck
        return principal

    def pump(self, subscriber: Subscriber) -> None:
        """Send queued messages as they come; say goodbye when the feed closes the subscriber."""
        ws = self.ws
        while True:
            if subscriber.closing is not None:
                code, reason = subscriber.closing
                ws.send(encode({"type": "bye", "seq": self.feed.seq, "reason": reason}))
                _close(ws, code, reason)
                return
            text = subscriber.take()
            if text is not None:
                ws.send(text)
                continue
            if not ws.connected:
                return
            self._read_client()
            if time.monotonic() >= self.next_check:
                self.authorise(self.credential)
            wait = max(0.0, min(self.idle_check, self.next_check - time.monotonic()))
            gevent.wait([subscriber.ready, ws.event], count=1, timeout=wait)

    def _read_client(self) -> None:
        """Take what the client sent: a ``{"token": ...}`` replaces the credential (a refreshed login),
        anything else is ignored. Not with ws.receive(timeout=0), which yields to the hub even when
        nothing is waiting: a connection that yields between two sends lets the feed fill its queue."""
        ws = self.ws
        if not ws.event.is_set():
            return
        ws.event.clear()
        incoming = list(ws.input_buffer)
        ws.input_buffer.clear()
        for text in incoming:
            token = _token_of(text)
            if token is not None:
                self.authorise(token)


def _serve(ws, feed: EventFeed, authenticate, *, auth_timeout: float, idle_check: float, recheck: float,
           send_buffer: int | None) -> None:
    """One connection: credentials, hello, then the subscriber's messages until one side ends it."""
    ws.sock = _WholeFrames(ws.sock)
    if send_buffer:
        try:
            ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        except OSError:
            pass   # the system's default then; the queue bound still holds
    connection = _Connection(ws, feed, authenticate, recheck=recheck, idle_check=idle_check)
    subscriber = None
    try:
        principal = connection.authorise(_credential(ws, auth_timeout))
        subscriber = feed.subscribe(principal.user_id, sees_all=principal.reads_all)
        subscriber.abort = lambda: _shutdown(ws)
        ws.send(encode({"type": "hello", "seq": feed.seq, "role": principal.role, "user_id": principal.user_id,
                        "queue_size": subscriber.limit}))
        connection.pump(subscriber)
    except _Refused as exc:
        _close(ws, CLOSE_POLICY_VIOLATION, str(exc))
    except (ConnectionClosed, OSError):
        pass   # the client went away (or was shut out after a drop): nothing to tell it
    except Exception as exc:  # noqa: BLE001 - one line and a close code, never a traceback to the client
        logger.error("stream: a connection failed: {}: {}", type(exc).__name__, exc)
        _close(ws, CLOSE_INTERNAL_ERROR, "internal error")
    finally:
        if subscriber is not None:
            subscriber.finished = True
            feed.unsubscribe(subscriber)
