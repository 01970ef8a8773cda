"""A lean HTTP transport for ccxt: the ``session`` of an ExchangeAccount's ccxt instance.

ccxt's sync ``fetch`` calls ``session.request(method, url, data=, headers=, timeout=, proxies=, verify=,
files=)`` and reads ``status_code``, ``reason``, ``headers``, ``text`` and ``raise_for_status()`` of the
answer. A ``requests.Session`` spends ~40 % of a request's CPU on work an exchange call never needs:
merging session / environment settings, cookies, hooks and adapters on every request (measured: cProfile
of bench/gateway.py's mix, 2026-12-07). ``LeanSession`` sends the same request (same headers: ccxt merges
``session.headers``, which are requests' defaults here) straight through one urllib3 connection pool per
host — connections reused, at most ``maxsize`` per host — and answers with the few fields ccxt reads.
Errors come back as the ``requests`` exceptions ccxt maps (Timeout → RequestTimeout, ConnectionError →
NetworkError, HTTPError → its handle_errors), so classification (errors.py) is unchanged.

Not covered, handed to a plain ``requests.Session`` instead: proxies, multipart bodies and TLS
verification switched off. Redirects are not followed (an exchange API that redirects is misconfigured;
the 3xx reaches ccxt's error handling). No retries, like requests' default adapter. A request with a small
body (a signed POST) is written in one send, headers and body together.

A request with a small body (or none) — every exchange call but an upload — is written and its answer read
here (``_exchange``) on a connection of the host's urllib3 pool: the pool opens connections (TLS, certificate
and host name verification as for its own requests) and checks an idle one is still up before lending it; the
request line, headers and body go out in one send and the answer is read from a buffered reader kept with the
connection (Content-Length, chunked or up to the close; gzip / deflate bodies decoded). http.client's header
parsing (the ``email`` package) and urllib3's per-request machinery cost more CPU than a small signed call itself
(measured with py-spy under bench/mm_loop.py, 2026-12-07). The pool is looked up once per scheme://host:port.
"""
from __future__ import annotations

import http.client
import re
import select
import socket
import zlib
from typing import Any

import requests
import urllib3
from urllib3 import HTTPHeaderDict
from requests.utils import default_headers

try:   # the OS's poll, not gevent's cooperative one: a look that never waits needs no watcher and no hub switch
    from gevent.monkey import get_original
    _poll = get_original("select", "poll")
except (ImportError, AttributeError):   # pragma: no cover - gevent is a dependency; no poll on this OS
    _poll = getattr(select, "poll", None)

__all__ = ["LeanSession", "sent_as_is"]

# a request target urllib3 sends as it is (its parse_url re-encodes anything else)
_PLAIN_TARGET = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*")


def sent_as_is(target: str) -> bool:
    """Whether ``LeanSession`` puts this request target (path and query) on the wire byte for byte: a signed
    request (the Mixin client signs its target) must not be re-encoded after signing."""
    return _PLAIN_TARGET.fullmatch(target) is not None


class _OneSend:
    """A request with a small body goes out in ONE send: urllib3 sends the header block, then the body — two
    segments (two syscalls, two TLS records, two wake-ups of the venue's server) for a signed POST."""

    _hold_headers = False
    _held: bytes | None = None

    def request(self, method, url, body=None, headers=None, **kwargs):  # noqa: ANN001
        self._hold_headers = isinstance(body, bytes) and 0 < len(body) <= 65536 and not kwargs.get("chunked")
        self._held = None
        try:
            return super().request(method, url, body=body, headers=headers, **kwargs)
        finally:
            self._hold_headers = False
            self._held = None

    @property
    def is_connected(self) -> bool:
        """urllib3's check before an idle connection is lent again (``not wait_for_read(sock, timeout=0)``: a
        connection the server closed, or that has bytes nobody asked for, is dropped) — as one poll() of the OS,
        not gevent's poll (a watcher and a hub switch per request, for a look that never waits)."""
        if self.sock is None:
            return False
        if _poll is None:
            return super().is_connected
        try:
            fileno = self.sock.fileno()
        except OSError:
            return False
        if fileno < 0:
            return False
        poller = _poll()
        poller.register(fileno, select.POLLIN)
        return not poller.poll(0)

    def send(self, data):  # noqa: ANN001
        if self._hold_headers:          # the header block (endheaders): sent with the body that follows
            self._hold_headers = False
            self._held = bytes(data)
            return None
        if self._held is not None:
            data, self._held = self._held + bytes(data), None
        return super().send(data)


class _HTTPConnection(_OneSend, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_OneSend, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _Answer:
    """What ccxt reads of a response."""

    __slots__ = ("status_code", "reason", "headers", "_data", "encoding", "url")

    def __init__(self, status: int, reason: str | None, headers: Any, data: bytes, url: str) -> None:
        self.status_code = status
        self.reason = reason or ""
        self.headers = headers            # urllib3 HTTPHeaderDict: case-insensitive, like requests'
        self._data = data
        self.encoding = "utf-8"
        self.url = url

    @property
    def text(self) -> str:
        return self._data.decode(self.encoding or "utf-8", errors="replace")

    @property
    def content(self) -> bytes:
        return self._data

    def raise_for_status(self) -> None:
        if 400 <= self.status_code < 600:
            kind = "Client" if self.status_code < 500 else "Server"
            raise requests.HTTPError(f"{self.status_code} {kind} Error: {self.reason} for url: {self.url}",
                                     response=self)


_ONE_SEND_MAX = 65536
_MAX_LINE = 65536
_MAX_HEADERS = 100
_BODY_EXPECTED = frozenset({"POST", "PUT", "PATCH"})


def _exchange(pool, method: str, target: str, body: bytes | None, headers: Any,
              limit: urllib3.Timeout) -> tuple[int, str, HTTPHeaderDict, bytes]:
    """One request and its answer on a pooled connection, read and written here: the request in one send, the
    answer's status line, headers and body (Content-Length, chunked, or up to the close; gzip / deflate
    decoded) read from one buffered reader kept with the connection — urllib3 and http.client spend more CPU on
    a small exchange call than the call itself. The pool still owns the connections: it opens them (TLS and its
    verification included) and checks an idle one is still up before handing it out, as for its own requests."""
    conn = pool._get_conn(timeout=None)   # noqa: SLF001 — the pool's own checkout (a dropped idle one is closed)
    keep = False
    try:
        conn.timeout = limit.connect_timeout
        if conn.sock is None:
            conn.connect()
        sock = conn.sock
        sock.settimeout(limit.read_timeout)
        lines = [f"{method} {target} HTTP/1.1", f"Host: {_host_header(pool)}"]
        lines += [f"{name}: {value}" for name, value in headers.items() if value is not None]
        if body is not None or method in _BODY_EXPECTED:
            lines.append(f"Content-Length: {len(body or b'')}")
        sock.sendall("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + (body or b""))
        reader = getattr(conn, "_lean_reader", None)
        if reader is None or getattr(conn, "_lean_reader_sock", None) is not sock:
            reader = conn._lean_reader = sock.makefile("rb")   # noqa: SLF001 — ours, kept with the connection
            conn._lean_reader_sock = sock   # noqa: SLF001
        status, reason, version = _status_line(reader)
        while 100 <= status < 200:          # interim answers: their headers, then the real one
            _header_block(reader)
            status, reason, version = _status_line(reader)
        answer = _header_block(reader)
        content, until_close = _body(reader, method, status, answer)
        connection = (answer.get("Connection") or "").lower()
        keep = not until_close and ("close" not in connection) and (version == "HTTP/1.1" or "keep-alive" in connection)
        try:
            content = _decoded(content, answer.get("Content-Encoding"))
        except zlib.error as exc:
            raise http.client.HTTPException(f"undecodable answer: {exc}") from exc
        return status, reason, answer, content
    finally:
        if not keep:
            conn.close()
            conn._lean_reader = None   # noqa: SLF001
        pool._put_conn(conn)   # noqa: SLF001


def _host_header(pool) -> str:
    host = f"[{pool.host}]" if ":" in pool.host else pool.host
    return host if pool.port in (None, pool.ConnectionCls.default_port) else f"{host}:{pool.port}"


def _status_line(reader) -> tuple[int, str, str]:
    line = reader.readline(_MAX_LINE + 1)
    if not line:
        raise http.client.RemoteDisconnected("Remote end closed connection without response")
    version, _, rest = line.decode("iso-8859-1").rstrip("\r\n").partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/") or len(code) != 3 or not code.isdigit():
        raise http.client.BadStatusLine(line)
    return int(code), reason.strip(), version


def _header_block(reader) -> HTTPHeaderDict:
    answer = HTTPHeaderDict()
    for _ in range(_MAX_HEADERS + 1):
        line = reader.readline(_MAX_LINE + 1)
        if line in (b"\r\n", b"\n", b""):
            return answer
        name, sep, value = line.decode("iso-8859-1").partition(":")
        if sep:
            answer.add(name.strip(), value.strip())
    raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")


def _body(reader, method: str, status: int, answer: HTTPHeaderDict) -> tuple[bytes, bool]:
    """(the body, whether it ran to the connection's close)."""
    if method == "HEAD" or status in (204, 304):
        return b"", False
    if "chunked" in (answer.get("Transfer-Encoding") or "").lower():
        parts = []
        while True:
            size = _count(reader.readline(_MAX_LINE + 1).split(b";", 1)[0].strip(), 16)
            if size == 0:
                while reader.readline(_MAX_LINE + 1) not in (b"\r\n", b"\n", b""):
                    pass            # trailers
                return b"".join(parts), False
            parts.append(_exactly(reader, size))
            reader.readline(_MAX_LINE + 1)
    length = answer.get("Content-Length")
    if length is not None:
        return _exactly(reader, _count(length, 10)), False
    return reader.read(), True


def _count(text: bytes | str, base: int) -> int:
    try:
        value = int(text, base)
    except ValueError:
        raise http.client.HTTPException(f"bad length in the answer: {text!r}") from None
    if value < 0:
        raise http.client.HTTPException(f"bad length in the answer: {text!r}")
    return value


def _exactly(reader, size: int) -> bytes:
    data = reader.read(size)
    if len(data) < size:
        raise http.client.IncompleteRead(data, size - len(data))
    return data


def _decoded(content: bytes, encoding: str | None) -> bytes:
    encoding = (encoding or "").strip().lower()
    if not content or encoding in ("", "identity"):
        return content
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompress(content, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        try:
            return zlib.decompress(content)
        except zlib.error:
            return zlib.decompress(content, -zlib.MAX_WBITS)
    return content


class _NoCookies:
    """The session's cookie jar as ccxt uses it (``clear()`` before each request): nothing is ever kept or sent."""

    def clear(self) -> None:
        return None

    def __len__(self) -> int:
        return 0


class LeanSession:
    """The subset of ``requests.Session`` ccxt's sync ``fetch`` uses, over urllib3 pools (see module doc)."""

    def __init__(self, *, maxsize: int = 10, fallback: requests.Session | None = None,
                 ca_certs: str | None = None) -> None:
        """``ca_certs``: a CA bundle file to verify TLS with instead of the default trust store (what requests
        does with ``verify=<path>``)."""
        # requests' default headers (ccxt merges them into every request's), as a plain dict: ccxt's merge walked
        # requests' case-insensitive mapping on every request
        self.headers = dict(default_headers())
        self.cookies = _NoCookies()             # ccxt clears it before each request; never sent
        self.trust_env = False
        self.fallback = fallback or requests.Session()
        self.fallback.trust_env = False
        self._pools = urllib3.PoolManager(num_pools=8, maxsize=maxsize, block=False, retries=False,
                                          **({"ca_certs": ca_certs} if ca_certs else {}))
        self._pools.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        self._by_origin: dict[str, urllib3.HTTPConnectionPool] = {}
        self.requests = 0                       # sent through the lean path
        self._limits: dict[Any, urllib3.Timeout] = {}   # urllib3's Timeout of each timeout asked for (read-only here)

    def request(self, method: str, url: str, data: bytes | str | None = None, headers: Any = None,
                timeout: float | tuple[float, float] | None = None, proxies: Any = None, verify: bool = True,
                files: Any = None, **kwargs: Any):
        if proxies or files or not verify or kwargs:
            return self.fallback.request(method, url, data=data, headers=headers, timeout=timeout,
                                         proxies=proxies, verify=verify, files=files, **kwargs)
        limit = self._limits.get(timeout)
        if limit is None:
            if isinstance(timeout, tuple):
                limit = urllib3.Timeout(connect=timeout[0], read=timeout[1])
            else:
                limit = urllib3.Timeout(connect=timeout, read=timeout)
            self._limits[timeout] = limit
        body = data.encode() if isinstance(data, str) else data
        try:
            pool, target = self._pool_of(url)
            if pool is not None and (body is None or len(body) <= _ONE_SEND_MAX):
                status, reason, answer_headers, content = _exchange(pool, method, target, body, headers or {},
                                                                    limit)
                self.requests += 1
                return _Answer(status, reason, answer_headers, content, url)
            if pool is None:
                r = self._pools.urlopen(method, url, body=body, headers=dict(headers or {}), timeout=limit,
                                        redirect=False, retries=False, preload_content=True)
            else:
                r = pool.urlopen(method, target, body=body, headers=dict(headers or {}), timeout=limit,
                                 redirect=False, retries=False, preload_content=True, assert_same_host=False)
        except urllib3.exceptions.NewConnectionError as exc:   # refused / unreachable (a TimeoutError subclass)
            raise requests.exceptions.ConnectionError(f"Connection refused: {exc}") from exc
        except urllib3.exceptions.TimeoutError as exc:
            phase = "Read timed out" if isinstance(exc, urllib3.exceptions.ReadTimeoutError) else "Connect timed out"
            err = requests.exceptions.ReadTimeout if phase.startswith("Read") else requests.exceptions.ConnectTimeout
            raise err(f"{phase}: {exc}") from exc
        except socket.timeout as exc:                          # a read on the lean exchange (_exchange)
            raise requests.exceptions.ReadTimeout(f"Read timed out: {exc}") from exc
        except (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException) as exc:
            raise requests.exceptions.ConnectionError(f"Connection aborted.: {exc}") from exc
        self.requests += 1
        return _Answer(r.status, r.reason, r.headers, r.data, url)

    def _pool_of(self, url: str):
        """(the host's connection pool, the request target) — what PoolManager.urlopen looks up on every request,
        kept per scheme://host:port. (None, None) for a URL whose target urllib3 would re-encode (anything but
        plain ASCII URL characters): PoolManager.urlopen sends those."""
        scheme, sep, rest = url.partition("://")
        host, slash, path = rest.partition("/")
        target = slash + path or "/"
        if not sep or not sent_as_is(target):
            return None, None
        origin = f"{scheme}://{host}"
        pool = self._by_origin.get(origin)
        if pool is None or pool.pool is None:   # new, or closed (the PoolManager let it go)
            pool = self._by_origin[origin] = self._pools.connection_from_url(origin)
        return pool, target

    def close(self) -> None:
        self._by_origin.clear()
        self._pools.clear()
        self.fallback.close()

    @property
    def pools(self) -> int:
        """Connection pools open (one per host used)."""
        return len(self._pools.pools)
