"""The lean transport's own reading of an answer (integrations/exchange/transport.py ``_exchange``), against a plain
loopback server that answers in every framing HTTP/1.1 allows: Content-Length, chunked, up to the close, gzip and
deflate bodies, interim 100 answers; a kept-alive connection the server closed while idle is replaced, not
failed; an answer that stops short is a connection error (ccxt: a network error, an unknown outcome)."""
from __future__ import annotations

import gzip
import socket
import zlib

import gevent
import pytest
import requests
from gevent.server import StreamServer

from integrations.exchange.transport import LeanSession

ANSWERS = {
    "/length": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\": \"b\"}\n",
    "/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Mbx-Used-Weight-1m: 7\r\n\r\n"
                b"4\r\n{\"a\"\r\n7;ext=1\r\n: \"b\"}\n\r\n0\r\nTrailer: x\r\n\r\n",
    "/gzip": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s",
    "/deflate": b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n%s",
    "/interim": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\n"
                b"Content-Length: 2\r\n\r\n{}",
    "/close": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"a\": \"b\"}\n",
    "/short": b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"a\"",
}
BODY = b'{"a": "b"}\n'


@pytest.fixture
def server():
    seen = []

    def handle(sock, address):
        reader = sock.makefile("rb")
        while True:
            line = reader.readline()
            if not line:
                return
            method, path, _ = line.decode().split(" ")
            headers = {}
            while (header := reader.readline()) not in (b"\r\n", b""):
                name, _, value = header.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = reader.read(int(headers.get("content-length", 0)))
            seen.append((method, path, headers, body, address[1]))
            path = path.split("?")[0]
            answer = ANSWERS[path]
            if path == "/gzip":
                answer = answer % (len(gzip.compress(BODY)), gzip.compress(BODY))
            elif path == "/deflate":
                answer = answer % (len(zlib.compress(BODY)), zlib.compress(BODY))
            sock.sendall(answer)
            if path in ("/close", "/short"):
                sock.close()
                return

    stream = StreamServer(("127.0.0.1", 0), handle)
    stream.start()
    yield f"http://127.0.0.1:{stream.server_port}", seen
    stream.stop(timeout=1)


def test_every_framing_of_an_answer_is_read_whole(server):
    url, seen = server
    session = LeanSession()
    for path in ("/length", "/chunked", "/gzip", "/deflate", "/close", "/length"):
        answer = session.request("GET", url + path + "?symbol=BTCUSDT", timeout=5,
                                 headers={"Accept-Encoding": "gzip, deflate", "X-MBX-APIKEY": "k"})
        assert (answer.status_code, answer.content) == (200, BODY), path
    assert answer.headers["content-type"] == "application/json"      # any case, like requests'
    chunked = session.request("GET", url + "/chunked", timeout=5)
    assert chunked.headers["X-MBX-USED-WEIGHT-1M"] == "7"
    interim = session.request("POST", url + "/interim", data=b"a=1", timeout=5)
    assert (interim.status_code, interim.headers["retry-after"], interim.text) == (429, "3", "{}")
    with pytest.raises(requests.HTTPError):
        interim.raise_for_status()
    first_port = seen[0][4]
    assert [s[4] == first_port for s in seen[:5]] == [True] * 5   # kept alive up to the server's close
    assert seen[5][4] != first_port                                  # then a new connection
    post = [s for s in seen if s[0] == "POST"][0]
    assert (post[2]["content-length"], post[3], post[2]["host"]) == ("3", b"a=1", url.split("//")[1])
    assert session.requests == 8 and session.pools == 1
    session.close()


def test_a_connection_the_server_dropped_while_idle_is_replaced(server):
    url, seen = server
    session = LeanSession()
    assert session.request("GET", url + "/length", timeout=5).status_code == 200
    pool = next(iter(session._by_origin.values()))
    idle = pool.pool.queue[-1]
    idle.sock.shutdown(socket.SHUT_RDWR)     # as a server's idle timeout leaves it: readable, at its end
    gevent.sleep(0.05)
    assert session.request("GET", url + "/length", timeout=5).content == BODY
    assert len({s[4] for s in seen}) == 2


def test_an_answer_that_stops_short_is_a_connection_error(server):
    url, _ = server
    session = LeanSession()
    with pytest.raises(requests.exceptions.ConnectionError):
        session.request("POST", url + "/short", data=b"a=1", timeout=5)
    assert session.request("GET", url + "/length", timeout=5).content == BODY   # the pool goes on


def test_a_silent_server_is_a_read_timeout():
    quiet = socket.socket()
    quiet.bind(("127.0.0.1", 0))
    quiet.listen(1)
    try:
        with pytest.raises(requests.exceptions.ReadTimeout):
            LeanSession().request("GET", f"http://127.0.0.1:{quiet.getsockname()[1]}/x", timeout=0.3)
    finally:
        quiet.close()
