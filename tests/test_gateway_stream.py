"""ExchangeGateway with the orders DB: reconciles before it publishes, then runs the order-update stream
(timer messages to itself) and tells "orders" what changed. Real ccxt.binance against the real FakeExchange,
real SQLite through the real Writer."""
from __future__ import annotations

import time
from decimal import Decimal as D
from types import SimpleNamespace

import gevent
import pykka
import pytest
from pykka.messages import ProxyGetAttr

from actors.gateway import ExchangeGateway, GatewayHealth
from actors.protocol import ExchangeOrderEvents
from actors.services import Services
from domain.exchange_config import ExchangeAccountConfig
from domain.exchange_orders import ExOrderState as S
from integrations.exchange.account import ExchangeAccount
from integrations.exchange.market_cache import BookCache
from sim.fake_exchange import FakeExchange
from storage import exchange_repo as xr
from storage.db import open_database
from storage.models import database_proxy
from storage.writer import Writer
from tests.databases import database_url

SYM = "BTC/USDT"
ACC = "fake-stream"
KEY, SECRET = "stream-key", "stream-secret"


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.01):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        gevent.sleep(interval)


class Recorder(pykka.ThreadingActor):
    """Stands in for the OrderSupervisor: keeps every message told to "orders"."""

    def __init__(self, box: list) -> None:
        super().__init__()
        self.box = box

    def on_receive(self, message):
        self.box.append(message)


@pytest.fixture
def fx():
    with FakeExchange(seed=9) as server:
        server.add_market(SYM, "BTC", "USDT", tick_size="0.01", step_size="0.00001", mid="60000")
        server.add_account(KEY, SECRET)
        server.credit(KEY, "USDT", "100000")
        server.credit(KEY, "BTC", "10")
        yield server


def make_cfg(fx, **overrides) -> ExchangeAccountConfig:
    fields = {"account_id": ACC, "ccxt_id": "binance", "api_key": KEY, "secret": SECRET, "urls": {"api": fx.url},
              "weight_per_minute": 60_000}   # roomy: these tests are about the intervals, not the budget
    fields.update(overrides)
    return ExchangeAccountConfig(**fields)


@pytest.fixture
def cfg(fx):
    return make_cfg(fx)


@pytest.fixture
def acct(cfg):
    account = ExchangeAccount(cfg)   # the test's own client: places orders as an OrderActor would
    account.load_markets()
    yield account
    account.close()


@pytest.fixture
def env(tmp_path):
    db = open_database(database_url(tmp_path / "stream.db"))
    writer = Writer(db, batch_max=100).start()
    box: list = []
    recorder = Recorder.start(box)
    config = SimpleNamespace(pairs=(SimpleNamespace(symbol=SYM, exchange=ACC),
                                    SimpleNamespace(symbol="ETH/USDT", exchange="another-account")),
                             stream=SimpleNamespace(slow_interval=0.5, fast_interval=0.05, book_ttl=0.2,
                                                    trades_lookback=3600.0))
    services = Services(config=config, db=db, mixin=None, fee_oracle=None, wallet=None, writer=writer)
    services.refs["orders"] = recorder
    started: list[pykka.ActorRef] = []
    yield SimpleNamespace(services=services, writer=writer, box=box, started=started)
    for ref in started:
        if ref.is_alive():
            ref.stop(timeout=5)
    recorder.stop(timeout=5)
    writer.stop()
    db.close()
    database_proxy.initialize(None)


def start_gateway(env, cfg, **kwargs) -> pykka.ActorRef:
    ref = ExchangeGateway.start(env.services, cfg, health_interval=0, **kwargs)
    env.started.append(ref)
    ref.ask(ProxyGetAttr(("child_id",)), timeout=20)   # answered after setup()
    return ref


def place(w, acct, order_id, side, price, amount, now):
    cid = w.run(xr.reserve_client_order, order_id, ACC, SYM, side, D(price), D(amount), 0, now)
    w.run(xr.mark_submitted, cid, now)
    info = acct.create_limit_order(SYM, side, D(amount), D(price), client_order_id=cid)
    w.run(xr.map_exchange_id, cid, info.id, S.ACCEPTED, now)
    return cid


def count(fx, method, path):
    return sum(1 for m, p, _ in fx.requests_log if m == method and p == path)


def test_publishes_the_account_and_book_cache_only_after_reconciliation(fx, cfg, acct, env):
    t0 = time.time() - 30
    gone = place(env.writer, acct, "order-p", "buy", "59000", "0.01", t0)
    acct.cancel_order(SYM, client_order_id=gone)              # cancelled while mmflow was down
    fx.inject("/api/v3/order", method="GET", status=200, delay=0.3)   # a slow targeted lookup
    seen = []

    def caller():  # an OrderActor waiting for the account to quote
        while ACC not in env.services.exchanges:
            gevent.sleep(0.001)
        caches = getattr(env.services, "book_caches", {})
        seen.append((xr.get_exchange_order(gone).state, caches.get(ACC)))

    waiter = gevent.spawn(caller)
    ref = start_gateway(env, cfg)
    waiter.join(timeout=5)
    assert seen and seen[0][0] is S.CANCELED                  # the DB it sees is already reconciled
    assert isinstance(seen[0][1], BookCache)                  # published together with the account
    assert env.services.exchanges[ACC].markets_loaded
    depth = count(fx, "GET", "/api/v3/depth")
    books = gevent.joinall([gevent.spawn(env.services.book_caches[ACC].book, SYM) for _ in range(50)])
    assert all(g.value.bids for g in books) and count(fx, "GET", "/api/v3/depth") == depth + 1
    health = ref.ask(GatewayHealth(), timeout=2)
    assert health["stream"]["rounds"] >= 0 and health["book_cache"]["requests"] == 1
    ref.stop(timeout=5)
    assert ACC not in env.services.exchanges and ACC not in env.services.book_caches


def test_the_stream_records_a_fill_once_and_tells_the_order_once(fx, cfg, acct, env):
    ref = start_gateway(env, cfg)
    cid = place(env.writer, acct, "order-q", "buy", "59000", "0.01", time.time() - 30)
    fx.place_taker(SYM, "sell", "0.004", price="59000")
    events = wait_until(lambda: [m for m in env.box if isinstance(m, ExchangeOrderEvents)
                                 and m.order_id == "order-q" and m.fills])
    rounds = ref.ask(GatewayHealth(), timeout=2)["stream"]["rounds"]
    wait_until(lambda: ref.ask(GatewayHealth(), timeout=2)["stream"]["rounds"] >= rounds + 3)
    told = [m for m in env.box if isinstance(m, ExchangeOrderEvents) and m.order_id == "order-q"]
    assert told == events and len(told) == 1
    [message] = told
    assert [(f.client_order_id, f.amount) for f in message.fills] == [(cid, D("0.004"))]
    assert message.changed == (cid,)
    assert [f.amount for f in xr.fills_of("order-q")] == [D("0.004")]
    assert xr.get_exchange_order(cid).state is S.PARTIALLY_FILLED

    # the order's actor cancels it; the answer is lost: the stream resolves the pending cancel
    env.writer.run(xr.transition, cid, S.PENDING_CANCEL, time.time())
    acct.cancel_order(SYM, client_order_id=cid)
    wait_until(lambda: xr.get_exchange_order(cid).state is S.CANCELED, timeout=5)
    wait_until(lambda: any(isinstance(m, ExchangeOrderEvents) and m.changed == (cid,) and not m.fills
                           for m in env.box))


def test_polls_fast_while_in_flight_and_slow_otherwise(fx, cfg, acct, env):
    cid = place(env.writer, acct, "order-r", "sell", "61000", "0.01", time.time() - 30)
    env.writer.run(xr.transition, cid, S.PENDING_CANCEL, time.time())   # a cancel in flight (not sent yet)
    ref = start_gateway(env, cfg)                                          # fast 0.05 s, slow 0.5 s

    def open_orders_over(seconds):
        before = count(fx, "GET", "/api/v3/openOrders")
        gevent.sleep(seconds)
        return count(fx, "GET", "/api/v3/openOrders") - before

    wait_until(lambda: ref.ask(GatewayHealth(), timeout=2)["stream"]["rounds"] >= 1)
    fast = open_orders_over(1.0)
    assert xr.get_exchange_order(cid).state is S.PENDING_CANCEL        # still listed open: nothing to resolve
    env.writer.run(xr.transition, cid, S.ACCEPTED, time.time())         # the cancel was refused after all
    gevent.sleep(0.1)                                                   # the round under way ends
    slow = open_orders_over(1.0)
    # ~1 / 0.05 s minus the rounds' own time vs ~1 / 0.5 s; compared relatively so a loaded machine
    # (slower rounds) cannot make the test fail while the stream still polls several times faster.
    assert fast >= max(4, 2 * slow + 1), (fast, slow)
    assert 1 <= slow <= 3, (fast, slow)
    assert ref.ask(GatewayHealth(), timeout=2)["stream"]["in_flight"] is False


def test_the_stream_keeps_to_its_share_of_the_weight_budget(fx, acct, env):
    cid = place(env.writer, acct, "order-s", "sell", "61000", "0.01", time.time() - 30)
    env.writer.run(xr.transition, cid, S.PENDING_CANCEL, time.time())   # in flight: fast_interval 0.05 s wanted
    # 720 weight per minute, half of it for the stream: 6 per s; an open-orders round weighs 6 (+20 with trades)
    ref = start_gateway(env, make_cfg(fx, weight_per_minute=720))
    wait_until(lambda: ref.ask(GatewayHealth(), timeout=2)["stream"]["rounds"] >= 1)
    before = count(fx, "GET", "/api/v3/openOrders")
    gevent.sleep(2.0)
    stats = ref.ask(GatewayHealth(), timeout=2)
    assert count(fx, "GET", "/api/v3/openOrders") - before <= 3      # not the ~40 of the fast interval
    assert stats["stream"]["in_flight"] is True and stats["rejected_429"] == 0
