"""CampaignActor under a real Supervisor, a real writer on SQLite, and the fake HuFi over loopback HTTP."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gevent
import pykka
import pytest
from loguru import logger
from pykka.messages import ProxyGetAttr

from actors.campaigns import CampaignActor, CampaignJoined, JoinForOrder, local_campaign_id
from actors.supervisor import ChildSpec, Restart, Supervisor
from domain.hufi_config import ApiKeyRef, HufiConfig, SecretRef
from sim.fake_hufi import FakeHufi
from storage import campaign_models as cm
from storage.db import open_database
from storage.models import database_proxy
from storage.writer import Writer
from tests.databases import database_url

EVM_KEY = "0x" + "11" * 32


def wait_until(predicate, timeout: float = 8.0, interval: float = 0.02, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        gevent.sleep(interval)


class Inbox(pykka.ThreadingActor):
    """Stands in for an order actor: collects what it is told."""

    use_daemon_thread = True

    def __init__(self, got: list) -> None:
        super().__init__()
        self.got = got

    def on_receive(self, message: Any) -> None:
        self.got.append((time.monotonic(), message))


@dataclass
class Rig:
    fake: FakeHufi
    tmp: Path
    services: Any = None
    supervisor: Any = None
    inbox: Any = None
    got: list = field(default_factory=list)
    logs: list = field(default_factory=list)

    def start(self, *, signer_factory=None, hufi: HufiConfig | None | str = "default", **cfg_overrides) -> None:
        if hufi == "default":
            hufi = self.config(**cfg_overrides)
        self.services.config = SimpleNamespace(hufi=hufi)

        def start_child(sup, child_id):
            ref = CampaignActor.start(self.services, supervisor=sup, child_id=child_id,
                                      signer_factory=signer_factory)
            ref.ask(ProxyGetAttr(("child_id",)), timeout=10)  # setup() has run
            self.services.refs["campaigns"] = ref
            return ref

        self.supervisor = Supervisor.start("test", [ChildSpec("campaigns", start_child, Restart.PERMANENT)],
                                           sweep_interval=None)
        self.supervisor.ask(ProxyGetAttr(("name",)), timeout=10)

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop(timeout=10)
            self.supervisor = None

    def config(self, **overrides) -> HufiConfig:
        key_file = self.tmp / "evm.key"
        key_file.write_text(EVM_KEY)
        (self.tmp / "mexc.key").write_text("mexc-readonly-key")
        (self.tmp / "mexc.secret").write_text("mexc-readonly-secret")
        (self.tmp / "gate.key").write_text("gate-readonly-key")
        values = dict(
            enabled=True, launcher_url=self.fake.launcher_url, oracle_url=self.fake.oracle_url, chain_id=137,
            evm_private_key=SecretRef(file=str(key_file)),
            exchange_api_keys=(
                ApiKeyRef("mexc-main", SecretRef(file=str(self.tmp / "mexc.key")),
                          SecretRef(file=str(self.tmp / "mexc.secret"))),
                ApiKeyRef("gate-main", SecretRef(file=str(self.tmp / "gate.key")),
                          SecretRef(file=str(self.tmp / "mexc.secret"))),
            ),
            refresh_interval=60.0, retry_delay=0.05, retry_max_delay=0.2, request_timeout=0.5, max_attempts=1,
        )
        values.update(overrides)
        return HufiConfig(**values)

    @property
    def actor(self):
        return self.services.refs["campaigns"]

    def order(self, order_id: str, account: str = "mexc-main", ccxt_id: str = "mexc", symbol: str = "HMT/USDT"):
        self.actor.tell(JoinForOrder(order_id, account, ccxt_id, symbol, self.inbox))

    def replies(self) -> dict[str, CampaignJoined]:
        return {m.order_id: m for _, m in self.got if isinstance(m, CampaignJoined)}

    def record(self, order_id: str):
        return cm.get_participation(order_id)

    def wait_cache(self) -> None:
        wait_until(lambda: self.actor.proxy().cache_loaded.get(timeout=5), message="campaign list loaded")

    def oracle_requests(self) -> list:
        return [r for r in self.fake.requests_log if r[1].startswith("/oracle")]


@pytest.fixture
def rig(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    db = open_database(database_url(tmp_path / "campaigns.db"))
    db.create_tables(cm.CAMPAIGN_MODELS)
    writer = Writer(db).start()
    fake = FakeHufi().start()
    sink_id = None
    r = Rig(fake, tmp_path)
    r.services = SimpleNamespace(config=None, writer=writer, clock=time.time, refs={})
    r.inbox = Inbox.start(r.got)
    sink_id = logger.add(lambda m: r.logs.append(str(m)), level="DEBUG")
    try:
        yield r
    finally:
        logger.remove(sink_id)
        r.stop()
        r.inbox.stop()
        fake.stop()
        writer.stop()
        db.close()
        database_proxy.initialize(None)


def test_local_campaign_id_format():
    assert local_campaign_id("binance", "BTC/USDT") == "mm_binance_BTCUSDT"
    assert local_campaign_id("Gate", "eth/usdt:USDT") == "mm_gate_ETHUSDT"


def test_many_orders_join_once_per_account_and_campaign(rig):
    pytest.importorskip("eth_account")  # guard only: the test extra installs it
    mexc = rig.fake.add_campaign(exchange="mexc", symbol="HMT/USDT")
    gate = rig.fake.add_campaign(exchange="gate", symbol="HMT/USDT")
    rig.start()
    rig.wait_cache()
    orders = [f"order-{i}" for i in range(30)]
    for i, order_id in enumerate(orders):
        if i % 3 == 2:
            rig.order(order_id, account="gate-main", ccxt_id="gateio")
        else:
            rig.order(order_id)
    wait_until(lambda: len(rig.replies()) == 30, message="30 replies")
    wait_until(lambda: all(rig.record(o) and rig.record(o).joined_hufi for o in orders), message="all joined")
    mexc_key, gate_key = f"137-{mexc['address']}", f"137-{gate['address']}"
    for i, order_id in enumerate(orders):
        record = rig.record(order_id)
        expected = gate_key if i % 3 == 2 else mexc_key
        assert record.campaign_id == expected and record.hufi_campaign == expected
        assert rig.replies()[order_id].hufi_campaign == expected
    assert rig.fake.count("POST", "/oracle/campaigns/join") == 2  # one per (account, campaign)
    assert rig.fake.count("POST", "/oracle/campaigns/check-join-status") == 2  # not one per order either
    assert sorted(k for _, k in rig.fake.joins) == sorted([mexc_key.lower(), gate_key.lower()])
    # Each account's READ-ONLY key enrolled exactly once, for its own exchange.
    assert sorted((ex, key) for _, ex, key in rig.fake.enrollments) == [("gate", "gate-readonly-key"),
                                                                         ("mexc", "mexc-readonly-key")]
    assert rig.fake.count("POST", "/oracle/auth") == 1
    # More orders later: answered from the joined state, no more HuFi calls. (Counted per kind, each already
    # exact above: a total of the request log could still be missing a request of the joins whose entry is
    # written after its answer.)
    calls = ("/oracle/campaigns/join", "/oracle/campaigns/check-join-status", "/oracle/auth/nonce", "/oracle/auth",
             "/oracle/exchange-api-keys")
    before = {path: rig.fake.count("POST", path) for path in calls}
    rig.order("late-1")
    wait_until(lambda: "late-1" in rig.replies(), message="late reply")
    assert rig.replies()["late-1"].note == f"joined HuFi campaign {mexc_key}" and rig.record("late-1").joined_hufi
    assert {path: rig.fake.count("POST", path) for path in calls} == before
    assert before["/oracle/campaigns/join"] == 2 and before["/oracle/exchange-api-keys"] == 2
    rows = {(r.exchange_account, r.campaign_key): r.state for r in cm.load_enrollments()}
    assert rows == {("mexc-main", mexc_key): "joined", ("gate-main", gate_key): "joined"}


def test_joined_state_survives_a_restart(rig):
    pytest.importorskip("eth_account")
    campaign = rig.fake.add_campaign()
    rig.start()
    rig.wait_cache()
    rig.order("o1")
    wait_until(lambda: rig.record("o1") and rig.record("o1").joined_hufi, message="joined")
    rig.stop()
    rig.start()
    rig.wait_cache()
    rig.order("o2")
    wait_until(lambda: "o2" in rig.replies(), message="reply after restart")
    assert rig.record("o2").joined_hufi and rig.record("o2").campaign_id == f"137-{campaign['address']}"
    assert rig.fake.count("POST", "/oracle/campaigns/join") == 1
    assert rig.fake.count("POST", "/oracle/exchange-api-keys") == 1  # enrollment remembered too


def test_hufi_down_never_blocks_orders_and_the_join_lands_when_it_recovers(rig):
    pytest.importorskip("eth_account")
    campaign = rig.fake.add_campaign()
    rig.fake.inject("/oracle", status=503, count=10**6)
    rig.start()
    rig.wait_cache()
    sent = time.monotonic()
    for i in range(5):
        rig.order(f"down-{i}")
    wait_until(lambda: len(rig.replies()) == 5, message="replies while HuFi is down")
    latest = max(t for t, m in rig.got if isinstance(m, CampaignJoined))
    assert latest - sent < 1.0  # at once, not after the failing join attempts
    key = f"137-{campaign['address']}"
    assert all(rig.replies()[f"down-{i}"].hufi_campaign == key for i in range(5))
    wait_until(lambda: "retrying" in rig.record("down-0").note, message="a failed attempt noted")
    wait_until(lambda: rig.fake.count("POST", "/oracle/auth/nonce") >= 3, message="several retries")
    assert not rig.record("down-0").joined_hufi
    assert any("HuFi join failed" in line for line in rig.logs)
    rig.fake.reset_faults()
    wait_until(lambda: all(rig.record(f"down-{i}").joined_hufi for i in range(5)), message="joined after recovery")
    assert rig.fake.count("POST", "/oracle/campaigns/join") == 1


def test_join_that_timed_out_but_landed_counts_as_joined(rig):
    pytest.importorskip("eth_account")
    campaign = rig.fake.add_campaign()
    rig.start(request_timeout=0.3)
    rig.wait_cache()
    rig.fake.inject("/oracle/campaigns/join", status=200, delay=1.0)  # processed, reply lost to the timeout
    sent = time.monotonic()
    rig.order("slow-1")
    rig.order("slow-2")
    wait_until(lambda: len(rig.replies()) == 2, message="replies")
    assert max(t for t, m in rig.got) - sent < 0.3
    wait_until(lambda: rig.record("slow-1").joined_hufi and rig.record("slow-2").joined_hufi, message="joined")
    assert rig.fake.count("POST", "/oracle/campaigns/join") == 1  # the retry saw already_joined, did not re-join
    assert rig.fake.campaign(137, campaign["address"]).participants
    assert any("read timeout" in line for line in rig.logs)


def test_launcher_down_at_start_then_orders_are_matched_when_it_loads(rig):
    pytest.importorskip("eth_account")
    campaign = rig.fake.add_campaign()
    rig.fake.inject("/launcher", status=503, count=3)
    rig.start()
    rig.order("early")
    wait_until(lambda: "early" in rig.replies(), message="reply")
    early = rig.replies()["early"]
    assert early.campaign_id == "mm_mexc_HMTUSDT" and early.hufi_campaign is None and "not loaded" in early.note
    wait_until(lambda: rig.record("early").joined_hufi, message="matched and joined once the list loads")
    assert rig.record("early").campaign_id == f"137-{campaign['address']}" and not rig.record("early").awaiting_list


def test_no_matching_campaign_gives_the_local_record_and_calls_nothing(rig):
    rig.fake.add_campaign(exchange="mexc", symbol="HMT/USDT")
    rig.start()
    rig.wait_cache()
    launcher_calls = len(rig.fake.requests_log)
    rig.order("b1", account="binance-main", ccxt_id="binance", symbol="BTC/USDT")
    rig.order("m1", account="mexc-main", ccxt_id="mexc", symbol="ETH/USDT")
    reply = rig.actor.ask(JoinForOrder("b2", "binance-main", "binance", "BTC/USDT"), timeout=5)
    assert reply.campaign_id == "mm_binance_BTCUSDT" and reply.hufi_campaign is None
    wait_until(lambda: len(rig.replies()) == 2, message="replies")
    assert rig.replies()["b1"].campaign_id == "mm_binance_BTCUSDT"
    assert rig.replies()["m1"].campaign_id == "mm_mexc_ETHUSDT" and "no active HuFi campaign" in rig.replies()["m1"].note
    record = rig.record("b1")
    assert record.campaign_id == "mm_binance_BTCUSDT" and not record.joined_hufi and record.hufi_address is None
    assert rig.oracle_requests() == [] and len(rig.fake.requests_log) == launcher_calls


def test_without_the_signing_library_joining_is_skipped_with_a_clear_log(rig):
    campaign = rig.fake.add_campaign()
    rig.start(signer_factory=lambda cfg: None)  # what default_signer_factory returns without eth-account
    rig.wait_cache()
    rig.order("s1")
    rig.order("s2")
    wait_until(lambda: len(rig.replies()) == 2, message="replies")
    key = f"137-{campaign['address']}"
    reply = rig.replies()["s1"]
    assert reply.campaign_id == key and reply.hufi_campaign == key
    assert "skipped" in reply.note and "eth-account" in reply.note
    assert not rig.record("s1").joined_hufi and rig.record("s2").campaign_id == key
    assert any("joining HuFi campaigns is SKIPPED" in line and "mmflow[hufi]" in line for line in rig.logs)
    assert rig.oracle_requests() == []
    assert [r.state for r in cm.load_enrollments()] == ["skipped"]


def test_account_without_a_read_only_key_is_skipped(rig):
    pytest.importorskip("eth_account")
    rig.fake.add_campaign(exchange="kucoin", symbol="HMT/USDT")
    rig.start()
    rig.wait_cache()
    reply = rig.actor.ask(JoinForOrder("k1", "kucoin-main", "kucoin", "HMT/USDT"), timeout=5)
    assert reply.hufi_campaign and "no read-only API key for exchange account kucoin-main" in reply.note
    assert rig.oracle_requests() == []


def test_hufi_disabled_records_locally(rig):
    rig.fake.add_campaign()
    rig.start(hufi=None)
    reply = rig.actor.ask(JoinForOrder("d1", "mexc-main", "mexc", "HMT/USDT"), timeout=5)
    assert reply == CampaignJoined("d1", "mm_mexc_HMTUSDT", None, "HuFi disabled: local campaign record only")
    assert rig.record("d1").campaign_id == "mm_mexc_HMTUSDT" and rig.fake.requests_log == []


def test_default_signer_factory(rig, monkeypatch, tmp_path):
    from actors import campaigns
    from domain.hufi_config import SecretUnavailable

    cfg = rig.config()
    with monkeypatch.context() as patch:
        patch.setattr(campaigns, "signing_available", lambda: False)
        assert campaigns.default_signer_factory(cfg) is None  # library missing: no signer, no exception
    pytest.importorskip("eth_account")
    assert campaigns.default_signer_factory(cfg).address.startswith("0x")
    with pytest.raises(SecretUnavailable):
        campaigns.default_signer_factory(rig.config(evm_private_key=SecretRef(file=str(tmp_path / "missing"))))


def test_unfinished_join_resumes_after_a_restart(rig):
    pytest.importorskip("eth_account")
    rig.fake.add_campaign()
    rig.fake.inject("/oracle", status=503, count=10**6)
    rig.start(retry_delay=5.0, retry_max_delay=5.0)  # the next retry would be long after the restart
    rig.wait_cache()
    rig.order("r1")
    wait_until(lambda: [r.state for r in cm.load_enrollments()] == ["retrying"], message="a failed attempt")
    rig.stop()
    rig.start(signer_factory=lambda cfg: None)  # a run that cannot sign says why, instead of "in progress"
    wait_until(lambda: [r.state for r in cm.load_enrollments()] == ["skipped"], message="skipped without a signer")
    rig.stop()
    rig.fake.reset_faults()
    rig.start()  # can sign again: the join is resumed at once, without any new order
    wait_until(lambda: rig.record("r1").joined_hufi, message="resumed join landed")
    assert rig.fake.count("POST", "/oracle/campaigns/join") == 1
