"""The live stream end to end: the real ApiServer (gevent.pywsgi) on 127.0.0.1:0, the real app and
credentials, real WebSocket clients (websocket-client), every event written through the real writer
into a real SQLite file and read back by the EventFeed."""
from __future__ import annotations

import json
import os
import resource
import socket
import struct
import time
from decimal import Decimal as D

import gevent
import pytest
import websocket
from gevent.pool import Pool
from websocket import ABNF

from actors.services import Services
from actors.system import wait_started
from api.auth import access_token
from api.context import build_context
from api.server import ApiServer, GetApiAddress
from api.settings import ApiSettings
from domain.config import Config, DatabaseConfig
from domain.payment import FeeRequirements
from domain.states import OrderState
from storage import repo
from storage.api_auth import create_api_token, revoke_api_token
from storage.db import open_database
from storage.models import Order, database_proxy
from storage.writer import Writer
from tests.databases import database_url
from tests.support import wait_until

PAIR = "0776b00f-95c0-46f9-85e4-7b8e7ca51e94"
FEES = FeeRequirements("asset-b", D("0.0001"), "asset-q", D("1"), D("0.1"))
QUEUE = 64
CLIENTS = 1000
RSS_PER_CLIENT = 256 * 1024   # measured ~60 KB for both ends of a connection in this one process


class Stream:
    """The running server and what the tests need to talk to it."""

    def __init__(self, ref, writer, url, ctx, viewer_token):
        self.ref, self.writer, self.url, self.ctx, self.viewer_token = ref, writer, url, ctx, viewer_token
        self.feed = ref.proxy().feed.get()
        self._orders = 0

    def user_token(self, user_id):
        return access_token(self.ctx, user_id)

    def watch(self):
        """A viewer that reads everything for the whole module: tests wait on what it has seen."""
        self.seen = []
        self._watcher = self.connect(self.viewer_token)

        def read():
            while True:
                self.seen.append(message(self._watcher))

        self._reader = gevent.spawn(read)
        wait_until(lambda: self.seen, message="the watcher's hello")

    def order(self, user_id):
        """A new order owned by ``user_id`` (in payment_pending), once the feed has published its creation:
        a client connected after this call gets only what happens to the order from now on."""
        self._orders += 1
        order_id = f"order-{self._orders}"

        def create():
            repo.create_order(order_id, PAIR, FEES, 1.0, 600)
            Order.update(user_id=user_id).where(Order.order_id == order_id).execute()

        self.writer.run(create)
        wait_until(lambda: any(m.get("order_id") == order_id for m in self.seen),
                   message=f"the creation of {order_id} on the stream")
        return order_id

    def quiet(self):
        """Wait until the only subscriber left is the watcher (closed clients are noticed asynchronously)."""
        wait_until(lambda: self.feed.subscriber_count == 1, timeout=30, message="closed clients to be gone")

    def move(self, order_id, *states, per_unit=1):
        """The transitions through the writer, in order, ``per_unit`` to a unit of work; waits until all
        are committed."""
        def unit(targets):
            for state in targets:
                repo.set_order_state(order_id, OrderState(state), f"to {state}", 2.0)

        results = [self.writer.submit(unit, states[i:i + per_unit]) for i in range(0, len(states), per_unit)]
        for result in results:
            result.get(timeout=30)

    def connect(self, token=None, *, header=None, first_message=None, **options):
        url = self.url + (f"?token={token}" if token else "")
        ws = websocket.create_connection(url, header=[f"Authorization: {header}"] if header else None,
                                         timeout=20, **options)
        if first_message is not None:
            ws.send(first_message)
        return ws


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stream")
    url = database_url(tmp / "stream.db")
    db = open_database(url)
    writer = Writer(db).start()
    secret = tmp / "jwt.secret"
    secret.write_text("s" * 40)
    settings = ApiSettings(enabled=True, listen="127.0.0.1:0", token_secret_file=str(secret),
                           rate_limit_per_address="100000/minute", rate_limit_per_token="100000/minute",
                           stream_queue_size=QUEUE, stream_interval=0.02)
    config = Config(database=DatabaseConfig(url=url), api=settings)
    services = Services(config=config, db=db, mixin=None, fee_oracle=None, wallet=None)
    services.writer = writer
    ref = wait_started(ApiServer.start(services))
    host, port = ref.ask(GetApiAddress())
    ctx = build_context(config)   # same token secret file: its JWTs are the server's
    _, viewer = create_api_token("viewer", "stream tests", time.time(), None)
    running = Stream(ref, writer, f"ws://{host}:{port}/api/v1/stream", ctx, viewer)
    running.watch()
    yield running
    running._reader.kill()
    ref.stop()
    writer.stop()
    db.close()
    database_proxy.initialize(None)


def message(ws):
    return json.loads(ws.recv())


def messages_until(ws, predicate, limit=5000):
    """Messages read until one satisfies ``predicate`` (included)."""
    seen = []
    while len(seen) < limit:
        seen.append(message(ws))
        if predicate(seen[-1]):
            return seen
    raise AssertionError(f"no matching message in {limit}")


def close_of(ws, timeout=10.0):
    """The server's close frame (code, reason), skipping any messages before it."""
    ws.settimeout(timeout)
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == ABNF.OPCODE_CLOSE:
            return struct.unpack("!H", data[:2])[0], data[2:].decode()


def test_bad_or_missing_credentials_close_with_a_policy_violation(stream):
    assert close_of(stream.connect("mmf_not-a-token")) == (1008, "unknown API token")
    assert close_of(stream.connect(header="Bearer not.a.jwt")) == (1008, "invalid access token")
    assert close_of(stream.connect(first_message='{"token": "mmf_nope"}')) == (1008, "unknown API token")
    code, reason = close_of(stream.connect(first_message="hello?"))
    assert code == 1008 and reason.startswith("credentials required")


def test_per_message_compression_is_declined(stream):
    # zlib state per connection would cost ~300 KB a client; the stream's messages are small
    ws = websocket.create_connection(stream.url + f"?token={stream.viewer_token}", timeout=20,
                                     header=["Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"])
    assert "sec-websocket-extensions" not in {k.lower() for k in ws.getheaders()}
    assert message(ws)["type"] == "hello"
    ws.close()


def test_one_orders_state_changes_arrive_in_history_order(stream):
    order_id = stream.order("user-order")
    ws = stream.connect(first_message=json.dumps({"token": stream.user_token("user-order")}))
    hello = message(ws)
    assert hello["type"] == "hello" and hello["role"] == "user" and hello["user_id"] == "user-order"
    path = ["attention", "running"] + ["paused", "running"] * 10 + ["stopping", "stopped"]
    stream.move(order_id, *path)
    got = messages_until(ws, lambda m: m.get("to_state") == "stopped")
    assert [m["to_state"] for m in got] == path
    assert [m["from_state"] for m in got] == ["payment_pending"] + path[:-1]
    assert {(m["type"], m["order_id"], m["user_id"]) for m in got} == {("order_state", order_id, "user-order")}
    seqs = [m["seq"] for m in got]
    assert seqs == sorted(seqs) and seqs[0] > hello["seq"]
    ws.close()


def test_a_user_sees_only_their_own_orders_and_no_alerts(stream):
    mine, theirs = stream.order("user-a"), stream.order("user-b")
    ws = stream.connect(header=f"Bearer {stream.user_token('user-a')}")
    assert message(ws)["type"] == "hello"
    stream.move(theirs, "attention")
    stream.writer.run(repo.raise_alert, "treasury_shortfall", "asset-q", "short by 5")
    stream.move(theirs, "running")
    stream.move(mine, "attention")
    [only] = messages_until(ws, lambda m: True)
    assert (only["type"], only["order_id"], only["to_state"]) == ("order_state", mine, "attention")
    ws.close()


def test_a_viewer_sees_every_order_and_the_alerts(stream):
    a, b = stream.order("user-c"), stream.order("user-d")
    ws = stream.connect(stream.viewer_token)
    assert message(ws)["role"] == "viewer"
    stream.move(a, "attention")
    stream.writer.run(repo.raise_alert, "exchange_unreachable", "binance", "binance: timed out")
    stream.move(b, "attention")
    got = [message(ws) for _ in range(3)]
    # one kind's events are in commit order; kinds read in the same round come source by source
    assert [(m["type"], m["order_id"]) for m in got if m["type"] == "order_state"] == [("order_state", a),
                                                                                        ("order_state", b)]
    [alert] = [m for m in got if m["type"] == "alert"]
    assert (alert["kind"], alert["subject"], alert["resolved"]) == ("exchange_unreachable", "binance", False)
    ws.close()


def test_a_refreshed_token_keeps_the_stream_and_a_revoked_one_ends_it(stream):
    order_id = stream.order("user-f")
    ws = stream.connect(stream.user_token("user-f"))
    assert message(ws)["type"] == "hello"
    ws.send(json.dumps({"token": stream.user_token("user-f")}))   # what a client does after a refresh
    stream.move(order_id, "attention")
    assert message(ws)["to_state"] == "attention"
    ws.send(json.dumps({"token": stream.user_token("user-g")}))
    assert close_of(ws) == (1008, "the new token is not the same caller's")

    row, token = create_api_token("viewer", "revoked soon", time.time(), None)
    ws = stream.connect(token)
    assert message(ws)["type"] == "hello"
    revoke_api_token(row.id, time.time())
    ws.send(json.dumps({"token": token}))
    assert close_of(ws) == (1008, "API token revoked")


def test_a_client_that_never_reads_is_dropped_and_the_others_keep_up(stream):
    # a tiny receive buffer, set before connecting: the server's sends back up after a few KB
    slow = stream.connect(stream.viewer_token, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
    fast = stream.connect(stream.viewer_token)
    assert message(fast)["type"] == "hello"
    dropped_before = stream.feed.dropped
    received = []

    def read_fast():
        while True:
            received.append(message(fast))

    reader = gevent.spawn(read_fast)
    # ~1 KB events, each its own unit of work: far more than the slow client's socket buffers and queue hold
    subjects = [f"account-{n}" for n in range(400)]
    results = [stream.writer.submit(repo.raise_alert, "stream_test", subject, "x" * 1000) for subject in subjects]
    for result in results:
        result.get(timeout=30)   # the writer commits all of it while the slow client reads nothing
    wait_until(lambda: len(received) >= len(subjects), timeout=60, message="the fast client to get every event")
    reader.kill()
    assert [m["subject"] for m in received] == subjects
    assert stream.feed.dropped == dropped_before + 1
    # the slow client gets what the kernel buffered, then the end (bye + 1008, or the socket shut)
    slow.settimeout(10)
    frames = 0
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError, OSError)):
        while frames <= len(subjects):
            opcode, data = slow.recv_data(control_frame=True)
            frames += 1
            if opcode == ABNF.OPCODE_CLOSE:
                assert struct.unpack("!H", data[:2])[0] == 1008
                raise websocket.WebSocketConnectionClosedException("closed by the server")
    assert frames < len(subjects)
    fast.close()


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_a_thousand_clients_all_receive_an_event_with_bounded_memory(stream):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = CLIENTS * 4 + 256   # client socket, server socket and its dup, per connection
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
    if min(needed, hard) < needed:
        pytest.skip(f"{CLIENTS} connections need {needed} file descriptors; the hard limit is {hard}")
    order_id = stream.order("user-many")
    user_token = stream.user_token("user-many")
    clients = []
    stream.quiet()
    base_subscribers = stream.feed.subscriber_count
    base, cpu = _rss(), time.process_time()

    def connect(n):
        ws = stream.connect(user_token if n % 2 else stream.viewer_token)
        assert message(ws)["type"] == "hello"
        clients.append(ws)

    pool = Pool(100)
    for n in range(CLIENTS):
        pool.spawn(connect, n)
    pool.join(raise_error=True)
    assert stream.feed.subscriber_count == base_subscribers + CLIENTS
    stream.move(order_id, "attention")
    got = []

    def receive(ws):
        m = message(ws)
        got.append((m["order_id"], m["to_state"]))

    gevent.joinall([gevent.spawn(receive, ws) for ws in clients], raise_error=True)
    grown, cpu = _rss() - base, time.process_time() - cpu
    assert got == [(order_id, "attention")] * CLIENTS
    assert grown / CLIENTS < RSS_PER_CLIENT, f"{grown / CLIENTS / 1024:.0f} KB per client"
    # CPU, not wall time (the machine may be shared): both ends of every connection, ~6 s measured
    assert cpu < 25, f"{CLIENTS} clients cost {cpu:.1f}s of CPU"
    for ws in clients:
        ws.close()
    stream.quiet()


def test_stopping_the_server_says_goodbye(stream, tmp_path):
    settings = stream.ctx.settings.model_copy(update={"listen": "127.0.0.1:0"})
    services = Services(config=Config(database=DatabaseConfig(url="sqlite:///unused"), api=settings),
                        db=None, mixin=None, fee_oracle=None, wallet=None)
    ref = wait_started(ApiServer.start(services))
    host, port = ref.ask(GetApiAddress())
    ws = websocket.create_connection(f"ws://{host}:{port}/api/v1/stream?token={stream.viewer_token}", timeout=10)
    hello = message(ws)
    ref.stop()
    bye = message(ws)
    assert bye == {"type": "bye", "seq": hello["seq"], "reason": "server stopping"}
    assert close_of(ws) == (1001, "server stopping")
