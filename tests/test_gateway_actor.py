"""ExchangeGateway under a Supervisor, against the fake exchange: publishes its account, a restart
republishes a fresh one, a stop withdraws it; start-up retries unknown outcomes and refuses bad keys."""
from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import gevent
import pykka
import pytest
from pykka.messages import ProxyCall, ProxyGetAttr

from actors.gateway import ExchangeGateway, GatewayHealth
from actors.supervisor import ChildSpec, Restart, Strategy, Supervisor
from domain.exchange_config import ExchangeAccountConfig
from integrations.exchange.account import ExchangeAccount
from sim.fake_exchange import FakeExchange

SYM = "BTC/USDT"


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        gevent.sleep(interval)


def started(ref: pykka.ActorRef) -> pykka.ActorRef:
    ref.ask(ProxyGetAttr(("child_id",)), timeout=20)  # answered after setup(); raises if setup failed
    return ref


class Crash:
    """Tell -> CrashableGateway: fail in a tell handler (the supervisor restarts the gateway)."""


class CrashableGateway(ExchangeGateway):
    health_checks = 0

    def handle(self, message: Any) -> Any:
        if isinstance(message, Crash):
            raise RuntimeError("crash requested by the test")
        return super().handle(message)

    def _health(self) -> dict[str, Any]:
        CrashableGateway.health_checks += 1
        return super()._health()


@pytest.fixture(scope="module")
def fx():
    with FakeExchange(seed=5) as server:
        server.add_market(SYM, "BTC", "USDT", mid="60000")
        server.add_currency("USDT", [{"network": "TRX", "withdrawFee": "1", "withdrawMin": "10"}])
        server.add_account("gw-key", "gw-secret")
        yield server


STARTED: list[pykka.ActorRef] = []


@pytest.fixture(autouse=True)
def clean(fx):
    yield
    fx.reset_faults()
    while STARTED:  # only the actors this module started
        ref = STARTED.pop()
        if ref.is_alive():
            ref.stop(timeout=5)


def cfg_for(fx, **overrides) -> ExchangeAccountConfig:
    fields = {"account_id": "fake-gw", "ccxt_id": "binance", "api_key": "gw-key", "secret": "gw-secret",
              "urls": {"api": fx.url}}
    fields.update(overrides)
    return ExchangeAccountConfig(**fields)


def supervised(services, cfg, **gateway_kwargs) -> pykka.ActorRef:
    def start(supervisor, child_id):
        return started(CrashableGateway.start(services, cfg, supervisor=supervisor, child_id=child_id, **gateway_kwargs))

    spec = ChildSpec(id=cfg.account_id, start=start, restart=Restart.PERMANENT)
    sup = Supervisor.start("exchanges", [spec], strategy=Strategy.ONE_FOR_ONE, backoff_min=0.01, backoff_max=0.05,
                           sweep_interval=None)
    STARTED.append(sup)
    return started(sup)


def child(sup: pykka.ActorRef, cid: str) -> pykka.ActorRef | None:
    return sup.ask(ProxyCall(("child_ref",), (cid,), {}), timeout=2)


def exchange_info_count(fx) -> int:
    return sum(1 for m, p, s in fx.requests_log if p == "/api/v3/exchangeInfo" and s == 200)


def test_publishes_the_account_restart_republishes_stop_withdraws(fx):
    services = SimpleNamespace()  # no `exchanges` yet: the gateway creates the dict
    loads = exchange_info_count(fx)
    CrashableGateway.health_checks = 0
    sup = supervised(services, cfg_for(fx), health_interval=0.05)
    first = services.exchanges["fake-gw"]
    assert isinstance(first, ExchangeAccount) and first.markets_loaded
    assert exchange_info_count(fx) == loads + 1
    assert first.fetch_ticker(SYM).last is not None  # callers use it directly from their own greenlet
    ref = child(sup, "fake-gw")
    health = ref.ask(GatewayHealth(), timeout=2)
    assert health["account_id"] == "fake-gw" and health["markets_loaded"] and health["requests"] >= 3
    wait_until(lambda: CrashableGateway.health_checks >= 3)  # the periodic self-check runs

    ref.tell(Crash())
    second = wait_until(lambda: (a := services.exchanges.get("fake-gw")) is not None and a is not first and a)
    assert second.markets_loaded and exchange_info_count(fx) == loads + 2
    assert child(sup, "fake-gw").actor_urn != ref.actor_urn
    assert first.transport.pools == 0  # old pool closed
    assert second.fetch_order_book(SYM).bids

    sup.stop(timeout=5)
    assert "fake-gw" not in services.exchanges


def test_startup_retries_unknown_outcomes_then_publishes(fx):
    services = SimpleNamespace(exchanges={})
    fx.inject("/api/v3/exchangeInfo", status=503, count=2)
    started_at = time.monotonic()
    supervised(services, cfg_for(fx), backoff_min=0.05)
    assert services.exchanges["fake-gw"].markets_loaded
    statuses = [s for m, p, s in fx.requests_log if p == "/api/v3/exchangeInfo"][-3:]
    assert statuses == [503, 503, 200]
    assert time.monotonic() - started_at >= 0.05 + 0.1  # backed off between attempts


def test_an_unreachable_exchange_neither_fails_nor_blocks_the_start_and_is_published_once_reachable(fx):
    services = SimpleNamespace(exchanges={})
    fx.inject("/api/v3/exchangeInfo", status=503, count=1000)
    started_at = time.monotonic()
    ref = started(ExchangeGateway.start(services, cfg_for(fx), startup_timeout=0.3, backoff_min=0.05,
                                        backoff_max=0.1))
    STARTED.append(ref)
    assert time.monotonic() - started_at < 2.0  # setup() waited startup_timeout, not for the exchange
    assert services.exchanges == {}  # nothing funds or quotes on it yet
    health = ref.ask(GatewayHealth(), timeout=2)
    assert health["live"] is False and "ExchangeNotAvailable" in health["unreachable"]
    attempts = [s for m, p, s in fx.requests_log if p == "/api/v3/exchangeInfo"]
    gevent.sleep(0.3)
    assert len([s for m, p, s in fx.requests_log if p == "/api/v3/exchangeInfo"]) > len(attempts)  # still trying
    fx.reset_faults()
    account = wait_until(lambda: services.exchanges.get("fake-gw"))
    assert account.markets_loaded
    assert ref.ask(GatewayHealth(), timeout=2)["live"] is True


def test_a_bad_key_is_an_operator_problem_retried_slowly_and_never_published(fx):
    services = SimpleNamespace(exchanges={})
    before = sum(1 for m, p, s in fx.requests_log if p == "/sapi/v1/capital/config/getall")
    ref = started(ExchangeGateway.start(services, cfg_for(fx, secret="wrong-secret"), startup_timeout=0.2,
                                        backoff_min=0.01, backoff_max=5.0))
    STARTED.append(ref)
    gevent.sleep(0.3)
    assert services.exchanges == {}
    after = sum(1 for m, p, s in fx.requests_log if p == "/sapi/v1/capital/config/getall")
    assert after - before == 1  # refused once, retried only after backoff_max: not hammered
    assert "AuthenticationFailed" in ref.ask(GatewayHealth(), timeout=2)["unreachable"]
