"""HuFi clients against the fake HuFi: listing and paging, Decimal amounts, oracle auth, keys, joins.

Also the [hufi] config table and the signer (both small and pure).
"""
from __future__ import annotations

import re
import time
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from domain.hufi_config import HufiConfig, SecretRef, SecretUnavailable, parse_hufi
from integrations.hufi.client import (Campaign, HufiAlreadyJoined, HufiAuthError, HufiBadRequest, HufiBadResponse,
                                      HufiJoinRefused, HufiNotFound, HufiServerError, HufiTransportError, LauncherClient,
                                      OracleClient, from_base_units, hufi_exchange_name)
from sim.fake_hufi import FakeHufi

KEY_A = "0x" + "11" * 32
KEY_B = "0x" + "22" * 32


class Clock:
    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def fake(clock):
    with FakeHufi(clock=clock, access_ttl=120, refresh_ttl=600) as server:
        yield server


@pytest.fixture
def session():
    s = requests.Session()
    s.trust_env = False
    yield s
    s.close()


@pytest.fixture
def launcher(fake, session):
    return LauncherClient(fake.launcher_url, session=session, timeout=2, max_attempts=3, backoff_base=0.01)


def signer(key: str = KEY_A):
    pytest.importorskip("eth_account")  # guard only: the test extra installs it
    from integrations.hufi.signer import EvmSigner
    return EvmSigner.from_private_key(key)


def oracle_for(fake, session, clock, key: str = KEY_A, **kw) -> OracleClient:
    kw.setdefault("max_attempts", 1)
    return OracleClient(fake.oracle_url, signer(key), session=session, timeout=2, clock=clock, **kw)


# ------------------------------------------------------------------ amounts


def test_base_units_to_decimal_is_exact():
    assert from_base_units("1500000", 6) == Decimal("1.5")
    assert from_base_units(0, 18) == 0
    big = "123456789012345678901234567890123"  # 33 digits: more than Decimal's default 28-digit context
    assert from_base_units(big, 18) == Decimal("123456789012345.678901234567890123")
    assert str(from_base_units("1", 18)) == "1E-18"
    for bad in ("-1", "1.5", "1e3", "", " ", None, 1.5, True, "١٢"):
        with pytest.raises(HufiBadResponse):
            from_base_units(bad, 6)
    with pytest.raises(HufiBadResponse):
        from_base_units("1", -1)


def test_campaign_from_api_converts_with_the_token_decimals(fake):
    data = fake.add_campaign(fund_amount="250000.123456789012345678", fund_token_decimals=18)
    campaign = Campaign.from_api(data)
    assert data["fund_amount"] == "250000123456789012345678"
    assert campaign.fund_amount == Decimal("250000.123456789012345678")
    assert isinstance(campaign.fund_amount, Decimal) and campaign.balance == campaign.fund_amount
    assert campaign.key == f"137-{data['address']}"
    six = Campaign.from_api(fake.add_campaign(fund_amount="12.34", fund_token_decimals=6))
    assert six.fund_amount == Decimal("12.34") and six.amount_paid == 0
    with pytest.raises(HufiBadResponse):
        Campaign.from_api(dict(data, fund_amount="12.5"))


# ------------------------------------------------------------------ launcher


def test_listing_follows_has_more_in_pages(fake, launcher):
    made = [fake.add_campaign() for _ in range(25)]
    page = launcher.list_campaigns(137, limit=10)
    assert page.has_more is True and len(page.results) == 10
    everything = list(launcher.iter_campaigns(137, page_size=10))
    assert [c.address for c in everything] == [c["address"] for c in reversed(made)]
    pages = [q for m, q, _ in fake.requests_log if q == "/launcher/campaigns"]
    assert len(pages) == 1 + 3  # the single page above, then skip 0, 10, 20


def test_listing_filters_by_chain_exchange_and_pair(fake, launcher, clock):
    want = fake.add_campaign(exchange="gate", symbol="BTC/USDT", chain_id=137)
    fake.add_campaign(exchange="gate", symbol="ETH/USDT", chain_id=137)
    fake.add_campaign(exchange="mexc", symbol="BTC/USDT", chain_id=137)
    fake.add_campaign(exchange="gate", symbol="BTC/USDT", chain_id=1)
    fake.add_campaign(exchange="gate", symbol="BTC/USDT", status="cancelled")
    fake.add_campaign(exchange="gate", symbol="BTC/USDT", start=clock.now + 3600, end=clock.now + 7200)
    fake.add_campaign(exchange="gate", symbol="BTC/USDT", start=clock.now - 7200, end=clock.now - 1)
    fake.add_campaign(exchange="gate", symbol="BTC", type="HOLDING")
    found = launcher.active_campaigns(137, exchange="gateio", symbol="btc/usdt", now=clock.now)
    assert [c.address for c in found] == [want["address"]]
    on_one = launcher.active_campaigns(1, exchange="gate", symbol="BTC/USDT", now=clock.now)
    assert [c.chain_id for c in on_one] == [1]
    assert len(launcher.list_campaigns(137, exchanges=["mexc"]).results) == 1
    assert hufi_exchange_name("huobi") == "htx" and hufi_exchange_name("MEXC") == "mexc"


def test_launcher_errors_are_typed_and_5xx_retried_for_reads(fake, launcher, session):
    fake.add_campaign()
    fake.inject("/launcher/campaigns", status=502, count=2)
    assert len(launcher.list_campaigns(137).results) == 1  # two 502s retried away
    fake.inject("/launcher/campaigns", status=503, count=5)
    with pytest.raises(HufiServerError):
        launcher.list_campaigns(137)
    fake.reset_faults()
    with pytest.raises(HufiBadRequest):
        launcher.list_campaigns(137, statuses=["bogus"])
    slow = LauncherClient(fake.launcher_url, session=session, timeout=0.1, max_attempts=1)
    fake.inject("/launcher", status=200, delay=0.4)
    with pytest.raises(HufiTransportError):
        slow.list_campaigns(137)
    fake.inject("/launcher", status=200, body='{"results": "nope"}')
    with pytest.raises(HufiBadResponse):
        launcher.list_campaigns(137)


# ------------------------------------------------------------------ oracle


def test_login_signup_then_rotating_nonce(fake, session, clock):
    oracle = oracle_for(fake, session, clock)
    assert oracle.get_nonce() == "signup"
    oracle.login()
    first = oracle.get_nonce()
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    oracle.login()  # signs the rotated nonce: the fake verifies it against the stored one
    assert oracle.get_nonce() not in ("signup", first)
    assert fake.user(oracle.address) is not None and oracle.logins == 2


def test_signature_of_another_key_is_rejected(fake, session, clock):
    honest = signer(KEY_A)
    impostor = signer(KEY_B)

    class Lying:
        address = honest.address  # claims A's address, signs with B's key

        def sign_nonce(self, nonce):
            return impostor.sign_nonce(nonce)

    oracle = OracleClient(fake.oracle_url, Lying(), session=session, timeout=2, clock=clock, max_attempts=1)
    with pytest.raises(HufiAuthError):
        oracle.login()
    assert fake.user(honest.address) is None and "invalid web3 signature" in fake.auth_failures


def test_token_refreshed_before_expiry_and_login_again_when_refresh_is_gone(fake, session, clock):
    oracle = oracle_for(fake, session, clock)
    campaign = fake.add_campaign()
    oracle.join_status(137, campaign["address"])
    assert (oracle.logins, oracle.refreshes) == (1, 0)
    clock.now += 100  # access token (120 s) inside the 30 s refresh margin
    oracle.join_status(137, campaign["address"])
    assert (oracle.logins, oracle.refreshes) == (1, 1)
    assert fake.count("POST", "/oracle/auth/refresh") == 1 and fake.count("POST", "/oracle/auth") == 1
    clock.now += 10_000  # both tokens long gone (the client assumes a 1 h refresh token, the fake 10 min)
    fake_refresh_before = fake.count("POST", "/oracle/auth/refresh")
    oracle.join_status(137, campaign["address"])
    assert oracle.logins == 2 and fake.count("POST", "/oracle/auth/refresh") == fake_refresh_before


def test_server_side_expiry_is_recovered_with_one_refresh(fake, session, clock):
    client_clock = Clock(clock.now)  # the client's clock stands still: only the server sees the expiry
    oracle = OracleClient(fake.oracle_url, signer(), session=session, timeout=2, clock=client_clock, max_attempts=1)
    oracle.login()
    clock.now += 500  # server: access token expired, refresh token still valid
    assert oracle.list_api_keys() == []
    assert oracle.refreshes == 1 and "access token expired" in fake.auth_failures
    clock.now += 1000  # server: refresh token expired too
    assert oracle.list_api_keys() == []
    assert oracle.logins == 2


def test_enroll_join_and_join_status(fake, session, clock):
    oracle = oracle_for(fake, session, clock)
    live = fake.add_campaign(exchange="kucoin", symbol="HMT/USDT")
    cancelled = fake.add_campaign(exchange="kucoin", status="cancelled")
    with pytest.raises(HufiJoinRefused) as no_key:
        oracle.join_campaign(137, live["address"])
    assert not no_key.value.closed  # a missing key can be fixed: not a closed campaign
    key_id = oracle.enroll_api_key("kucoin", "ro-key", "ro-secret", {"passphrase": "pp"})
    assert oracle.enroll_api_key("kucoin", "ro-key", "ro-secret", {"passphrase": "pp"}) == key_id
    assert [(k.exchange_name, k.api_key, k.is_valid) for k in oracle.list_api_keys()] == [("kucoin", "ro-key", True)]
    assert oracle.join_status(137, live["address"]).status == "can_join"
    assert oracle.join_campaign(137, live["address"]) == fake.campaign(137, live["address"]).internal_id
    status = oracle.join_status(137, live["address"])
    assert status.status == "already_joined" and status.joined_at
    with pytest.raises(HufiAlreadyJoined):
        oracle.join_campaign(137, live["address"])
    with pytest.raises(HufiJoinRefused) as closed:
        oracle.join_campaign(137, cancelled["address"])
    assert closed.value.closed and closed.value.status == 422
    assert oracle.join_status(137, cancelled["address"]).status == "join_closed"
    fake.key_missing_permissions["weak"] = ["VIEW_SPOT_TRADING_HISTORY"]
    with pytest.raises(HufiJoinRefused) as weak:
        oracle.enroll_api_key("mexc", "weak", "s")
    assert weak.value.details == {"missing_permissions": ["VIEW_SPOT_TRADING_HISTORY"]}


def test_join_is_not_blindly_retried_but_status_is(fake, session, clock):
    oracle = oracle_for(fake, session, clock, max_attempts=3, backoff_base=0.01)
    live = fake.add_campaign()
    oracle.enroll_api_key("mexc", "ro", "s")
    fake.inject("/oracle/campaigns/join", status=503, count=1)
    with pytest.raises(HufiServerError):
        oracle.join_campaign(137, live["address"])  # outcome unknown: the caller decides, not the client
    fake.inject("/oracle/campaigns/check-join-status", status=503, count=2)
    assert oracle.join_status(137, live["address"]).status == "can_join"


# ------------------------------------------------------------------ signer


def test_signer_signs_eip191_and_hides_the_key():
    s = signer(KEY_A)
    sig = s.sign_message('{"nonce":"signup"}')
    assert re.fullmatch(r"0x[0-9a-f]{130}", sig)
    from integrations.hufi.signer import nonce_message, recover_signer
    assert nonce_message("abc") == '{"nonce":"abc"}'
    assert recover_signer('{"nonce":"signup"}', sig) == s.address == s.address  # checksummed
    assert recover_signer('{"nonce":"other"}', sig) != s.address
    assert "11" * 8 not in repr(s)
    from integrations.hufi.signer import EvmSigner
    for bad in ("", "0x1234", "zz" * 32, "0x" + "00" * 32):
        with pytest.raises(ValueError) as err:
            EvmSigner.from_private_key(bad)
        assert "00" * 32 not in str(err.value)


# ------------------------------------------------------------------ [hufi] config


def test_parse_hufi_full_table(tmp_path: Path, monkeypatch):
    (tmp_path / "evm.key").write_text(KEY_A + "\n")
    monkeypatch.setenv("MEXC_RO_SECRET", "very-secret")
    problems: list[str] = []
    cfg = parse_hufi({
        "enabled": True, "chain_id": 137, "launcher_url": "http://127.0.0.1:1/launcher/",
        "evm_private_key_file": "evm.key", "refresh_interval": 60, "retry_delay": 1.5, "retry_max_delay": 30,
        "exchange_api_keys": {"mexc-main": {"api_key_file": "evm.key", "secret_env": "MEXC_RO_SECRET"},
                              "kucoin-1": {"api_key_env": "K", "secret_env": "S", "passphrase_env": "P"}},
    }, problems, tmp_path)
    assert problems == []
    assert isinstance(cfg, HufiConfig) and cfg.enabled and cfg.chain_id == 137
    assert cfg.launcher_url == "http://127.0.0.1:1/launcher" and cfg.oracle_url == "https://ro.hu.finance"
    assert cfg.evm_private_key == SecretRef(file=str(tmp_path / "evm.key"))
    assert cfg.evm_private_key.read() == KEY_A
    ref = cfg.api_key_for("mexc-main")
    assert ref.read().secret_key == "very-secret" and cfg.api_key_for("nope") is None
    text = repr(cfg) + repr(ref.read())
    assert "very-secret" not in text and KEY_A not in text and "MEXC_RO_SECRET" in text
    with pytest.raises(SecretUnavailable) as err:
        cfg.api_key_for("kucoin-1").read()
    assert "env:" in str(err.value)


def test_parse_hufi_refuses_inline_secrets_and_bad_values(tmp_path: Path):
    assert parse_hufi(None, [], tmp_path) is None
    problems: list[str] = []
    parse_hufi({"enabled": True, "evm_private_key": KEY_A, "chain_id": "137", "retry_delay": -1, "bogus": 1,
                "exchange_api_keys": {"a": {"api_key": "k", "secret_env": "S"}}}, problems, tmp_path)
    text = "\n".join(problems)
    assert "never written inline" in text and KEY_A not in text
    assert "chain_id" in text and "retry_delay" in text and "bogus" in text
    assert "evm_private_key_file or evm_private_key_env is required" in text
    assert "exchange_api_keys.a.api_key" in text
    both: list[str] = []
    parse_hufi({"evm_private_key_file": "x", "evm_private_key_env": "X"}, both, tmp_path)
    assert any("not both" in p for p in both)
    off: list[str] = []
    disabled = parse_hufi({"enabled": False}, off, tmp_path)
    assert off == [] and disabled is not None and not disabled.enabled


def test_fake_config_table_is_a_valid_hufi_table(fake, tmp_path: Path):
    problems: list[str] = []
    cfg = parse_hufi(fake.config_table("evm.key", {"mexc-main": ("ro.key", "ro.secret")}), problems, tmp_path)
    assert problems == [] and cfg.launcher_url == fake.launcher_url and cfg.oracle_url == fake.oracle_url
    assert cfg.api_key_for("mexc-main").api_key == SecretRef(file=str(tmp_path / "ro.key"))
    big = fake.add_campaign(fund_amount="123456789012345.678901234567890123", fund_token_decimals=18)
    assert big["fund_amount"] == "123456789012345678901234567890123"
    assert Campaign.from_api(big).fund_amount == Decimal("123456789012345.678901234567890123")


# ------------------------------------------------------------------ leaderboard


def test_leaderboard_is_public_and_exact(fake, session, clock):
    oracle = oracle_for(fake, session, clock)
    c = fake.add_campaign(exchange="gate", symbol="BTC/USDT")
    fake.set_leaderboard(137, c["address"], "0x" + "aa" * 20, "1234.5678", "2000", "3.25")
    fake.set_leaderboard(137, c["address"], "0x" + "bb" * 20, "10", "70")
    board = oracle.leaderboard(137, c["address"])
    assert oracle.tokens is None   # no login: the leaderboard is public
    assert [(e.score, e.result, e.estimated_reward) for e in board.entries] == [
        (Decimal("1234.5678"), Decimal("2000"), Decimal("3.25")), (Decimal("10"), Decimal("70"), None)]
    assert board.updated_at and len(board.others("0x" + "AA" * 20)) == 1
    assert board.entry_of("0x" + "BB" * 20).score == Decimal("10")


@pytest.mark.parametrize("body", ['{"data": "x"}', '[]', '{"data": [{"address": "0x1", "score": "x", "result": 1}]}',
                                  '{"data": [{"address": "0x1", "score": -1, "result": 1}]}',
                                  '{"data": [{"score": 1, "result": 1}]}',
                                  '{"data": [{"address": "0x1", "score": true, "result": 1}]}',
                                  '{"data": [{"address": "0x1", "score": "NaN", "result": 1}]}'])
def test_leaderboard_bad_replies_are_one_clear_error(fake, session, clock, body):
    oracle = oracle_for(fake, session, clock)
    c = fake.add_campaign(exchange="gate", symbol="BTC/USDT")
    fake.inject("/oracle/campaigns", status=200, body=body)
    with pytest.raises(HufiBadResponse, match="leaderboard"):
        oracle.leaderboard(137, c["address"])


def test_leaderboard_of_an_unknown_campaign_is_not_found(fake, session, clock):
    with pytest.raises(HufiNotFound):
        oracle_for(fake, session, clock).leaderboard(137, "0x" + "cd" * 20)
