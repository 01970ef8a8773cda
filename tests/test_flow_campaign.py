"""Stage 7 end to end with HuFi: the whole service (fake Mixin → fake exchange driven by the real
ccxt.binance → CampaignActor) and the fake HuFi (launcher + recording oracle over loopback HTTP).

The CampaignActor matches a campaign by the HuFi name of the account's *ccxt id* (``binance`` here,
``integrations.hufi.client.hufi_exchange_name``), not by the account id. The real HuFi lists no Binance
campaigns, and the fake refuses exchanges outside its ``SUPPORTED_EXCHANGES``; since only ccxt "binance"
can drive the fake exchange, these tests add "binance" to the fake HuFi's list (monkeypatch, test only).
"""
from __future__ import annotations

import pytest

import sim.fake_hufi as fake_hufi_module
from sim.bridge import world_with_exchange
from sim.fake_hufi import FakeHufi
from storage.campaign_models import CampaignParticipation, HufiEnrollment
from tests.support import wait_until
from tests.test_flow_funding import pay_order
from tests.test_flow_strategy import run
from tests.test_strategy_loop import resting

EVM_KEY = "0x" + "11" * 32
ACCOUNT = "binance"  # the [[exchanges]] account id the pairs trade on (sim.world.default_pairs)
LOCAL_ID = "mm_binance_BTCUSDT"


@pytest.fixture
def xworld(monkeypatch):
    ew = world_with_exchange(deposit_delay=0.1)
    monkeypatch.setenv("MMF_BINANCE_KEY", ew.api_key)
    monkeypatch.setenv("MMF_BINANCE_SECRET", ew.secret)
    yield ew
    ew.stop()
    ew.world.fake.stop()


@pytest.fixture
def hufi(monkeypatch):
    monkeypatch.setattr(fake_hufi_module, "SUPPORTED_EXCHANGES", fake_hufi_module.SUPPORTED_EXCHANGES + ("binance",))
    fake = FakeHufi().start()
    yield fake
    fake.stop()


def hufi_table(tmp_path, fake):
    evm = tmp_path / "hufi-evm.key"
    evm.write_text(EVM_KEY)
    key, secret = tmp_path / "ro.key", tmp_path / "ro.secret"
    key.write_text("read-only-api-key")
    secret.write_text("read-only-secret")
    return fake.config_table(str(evm), {ACCOUNT: (str(key), str(secret))}, refresh_interval=30.0, retry_delay=0.2,
                             retry_max_delay=0.5, request_timeout=2.0, max_attempts=1)


def add_btc_campaign(fake):
    """A BTC/USDT campaign on binance; its key as mmflow writes it: ``{chain_id}-{address}`` as served."""
    campaign = fake.add_campaign(exchange="binance", symbol="BTC/USDT", chain_id=137, fund_amount="5000")
    return f"137-{campaign['address']}", campaign


def participation(order_id):
    return CampaignParticipation.get_or_none(CampaignParticipation.order_id == order_id)


def joins_of(fake, key):
    """The fake's successful joins of one campaign (it keys campaigns by the lower-cased address)."""
    return [j for j in fake.joins if j[1] == key.lower()]


def test_two_orders_on_a_campaign_pair_join_hufi_once(tmp_path, xworld, hufi):
    key, _ = add_btc_campaign(hufi)
    hufi.add_campaign(exchange="mexc", symbol="BTC/USDT", chain_id=137)  # another exchange: never matched
    with run(tmp_path, xworld, hufi=hufi_table(tmp_path, hufi)) as mm:
        wait_until(lambda: hufi.count("GET", "/launcher/campaigns") >= 1, timeout=5, message="campaign list read")
        first, _ = pay_order(xworld, mm, "0.1", "5000")
        second, _ = pay_order(xworld, mm, "0.05", "3000")
        for order_id in (first, second):
            mm.wait_state(order_id, "running", timeout=30)
        wait_until(lambda: all(participation(o) is not None and participation(o).joined_hufi
                               for o in (first, second)), timeout=10, message="both records joined")
        for order_id in (first, second):
            record = participation(order_id)
            assert record.campaign_id == key
            assert record.hufi_chain_id == 137 and record.exchange_account == ACCOUNT
            assert record.exchange == "binance" and record.symbol == "BTC/USDT"
        [user] = hufi.users.values()                                   # the operator's wallet
        assert joins_of(hufi, key) == [(user.address, key.lower())]   # one join for (account, campaign)
        assert hufi.count("POST", "/oracle/campaigns/join") == 1
        assert [e[1:] for e in hufi.enrollments] == [("binance", "read-only-api-key")]  # the read-only key
        rows = list(HufiEnrollment.select())
        assert [(r.exchange_account, r.campaign_key, r.state) for r in rows] == [(ACCOUNT, key, "joined")]
        # Joining never held the strategy back: both orders quote.
        wait_until(lambda: resting(first) and resting(second), timeout=10, message="both orders quoting")


@pytest.mark.parametrize("down", ["/", "/oracle"], ids=["launcher_and_oracle", "oracle_only"])
def test_order_runs_while_hufi_is_down_and_joins_when_it_recovers(tmp_path, xworld, hufi, down):
    """All of HuFi down: the order runs on its local record, which names the campaign once the list loads.
    Only the recording oracle down: the record names the campaign at once, not joined yet. Either way the
    join happens (once) when HuFi is back, and the order never stops quoting."""
    key, _ = add_btc_campaign(hufi)
    hufi.inject(down, status=503, count=1_000_000)
    with run(tmp_path, xworld, hufi=hufi_table(tmp_path, hufi)) as mm:
        if down == "/oracle":
            wait_until(lambda: hufi.count("GET", "/launcher/campaigns") >= 1, timeout=5, message="list read")
        order_id, _ = pay_order(xworld, mm, "0.1", "5000")
        mm.wait_state(order_id, "running", timeout=30)
        record = participation(order_id)
        assert not record.joined_hufi
        if down == "/":
            assert record.campaign_id == LOCAL_ID and record.hufi_address is None and record.awaiting_list
        wait_until(lambda: resting(order_id), timeout=10, message="quoting without HuFi")
        if down == "/oracle":
            wait_until(lambda: participation(order_id).campaign_id == key, timeout=5, message="campaign named")
            wait_until(lambda: hufi.count("POST", "/oracle/auth/nonce") >= 2, timeout=5, message="join retried")
        assert hufi.joins == [] and not participation(order_id).joined_hufi
        hufi.reset_faults()                              # HuFi is back
        wait_until(lambda: participation(order_id).joined_hufi, timeout=10, message="joined after recovery")
        record = participation(order_id)
        assert record.campaign_id == key and record.hufi_chain_id == 137 and not record.awaiting_list
        assert len(joins_of(hufi, key)) == 1
        assert mm.state(order_id) == "running"
        assert resting(order_id)


def test_a_read_only_key_missing_permissions_is_named_in_an_alert(tmp_path, xworld, hufi):
    from storage.models import Alert
    add_btc_campaign(hufi)
    hufi.key_missing_permissions["read-only-api-key"] = ["VIEW_SPOT_TRADING_HISTORY"]
    with run(tmp_path, xworld, hufi=hufi_table(tmp_path, hufi)) as mm:
        order_id, _ = pay_order(xworld, mm, "0.1", "5000")
        mm.wait_state(order_id, "running", timeout=30)   # never blocked by HuFi
        alert = wait_until(lambda: Alert.get_or_none((Alert.kind == "hufi_key_permissions")
                                                     & (Alert.subject == ACCOUNT)), timeout=15)
        assert "VIEW_SPOT_TRADING_HISTORY" in alert.message
        assert not participation(order_id).joined_hufi


def test_holding_campaigns_are_listed_never_joined(tmp_path, xworld, hufi):
    from storage.campaign_models import HufiCampaign
    key, _ = add_btc_campaign(hufi)
    holding = hufi.add_campaign(exchange="binance", symbol="BTC", chain_id=137, type="HOLDING",
                                details={"daily_balance_target": 1})
    with run(tmp_path, xworld, hufi=hufi_table(tmp_path, hufi)) as mm:
        order_id, _ = pay_order(xworld, mm, "0.1", "5000")
        mm.wait_state(order_id, "running", timeout=30)
        wait_until(lambda: HufiCampaign.select().count() == 2, timeout=15, message="both campaigns listed")
        assert participation(order_id).campaign_id == key
        wait_until(lambda: joins_of(hufi, key), timeout=15, message="the market-making campaign joined")
        assert not joins_of(hufi, f"137-{holding['address']}")
