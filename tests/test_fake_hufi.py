"""The fake HuFi itself, driven with raw `requests` (and eth-account for signatures).

Raw HTTP on purpose: nothing in our client can hide a verification bug in the fake.
"""
from __future__ import annotations

import json
import re

import pytest
import requests

from sim.fake_hufi import FakeHufi

pytest.importorskip("eth_account")  # guard only: the test extra installs it, so this runs in CI

from eth_account import Account  # noqa: E402
from eth_account.messages import encode_defunct  # noqa: E402

KEY_A = "0x" + "11" * 32
KEY_B = "0x" + "22" * 32
ADDR_A = Account.from_key(KEY_A).address
ADDR_B = Account.from_key(KEY_B).address


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def fake(clock):
    with FakeHufi(clock=clock, access_ttl=60, refresh_ttl=300) as server:
        yield server


@pytest.fixture
def http():
    session = requests.Session()
    session.trust_env = False  # loopback never through an environment proxy
    yield session
    session.close()


def sign(key: str, nonce: str) -> str:
    text = json.dumps({"nonce": nonce}, separators=(",", ":"))
    return "0x" + bytes(Account.sign_message(encode_defunct(text=text), key).signature).hex()


def login(http, fake, key: str, address: str | None = None) -> dict:
    address = address or Account.from_key(key).address
    nonce = http.post(fake.oracle_url + "/auth/nonce", json={"address": address}, timeout=5).json()["nonce"]
    resp = http.post(fake.oracle_url + "/auth", json={"address": address, "signature": sign(key, nonce)}, timeout=5)
    assert resp.status_code == 200, resp.text
    return resp.json()


def bearer(tokens: dict) -> dict:
    return {"Authorization": "Bearer " + tokens["access_token"]}


# ------------------------------------------------------------------ launcher


def test_launcher_lists_newest_first_in_pages_with_base_unit_strings(fake, http):
    made = [fake.add_campaign(fund_amount=f"{i}.5", fund_token_decimals=6) for i in range(1, 8)]
    page = http.get(fake.launcher_url + "/campaigns", params={"chain_id": 137, "limit": 3}, timeout=5).json()
    assert page["has_more"] is True
    assert [c["address"] for c in page["results"]] == [c["address"] for c in made[::-1][:3]]
    assert page["results"][0]["fund_amount"] == "7500000"  # 7.5 with 6 decimals, as a base-unit string
    last = http.get(fake.launcher_url + "/campaigns", params={"chain_id": 137, "limit": 3, "skip": 6},
                    timeout=5).json()
    assert last["has_more"] is False and [c["address"] for c in last["results"]] == [made[0]["address"]]


def test_launcher_filters_and_validates(fake, http):
    fake.add_campaign(exchange="mexc", chain_id=137)
    fake.add_campaign(exchange="gate", chain_id=137)
    fake.add_campaign(exchange="mexc", chain_id=1)
    fake.add_campaign(exchange="mexc", chain_id=137, status="completed")
    url = fake.launcher_url + "/campaigns"
    got = http.get(url, params={"chain_id": 137, "exchange": "mexc", "status": "active"}, timeout=5).json()
    assert [(c["exchange_name"], c["chain_id"], c["status"]) for c in got["results"]] == [("mexc", 137, "active")]
    both = http.get(url, params=[("chain_id", 137), ("status", "active"), ("status", "completed")], timeout=5)
    assert len(both.json()["results"]) == 3
    missing = http.get(url, timeout=5)
    assert missing.status_code == 400 and set(missing.json()) >= {"message", "timestamp", "path"}
    assert http.get(url, params={"chain_id": 137, "limit": 1001}, timeout=5).status_code == 400
    assert http.get(fake.launcher_url + "/campaigns/137-0x" + "ab" * 20, timeout=5).status_code == 404


# ------------------------------------------------------------------ oracle auth


def test_signup_nonce_signature_verified_and_nonce_rotates(fake, http):
    nonce_url = fake.oracle_url + "/auth/nonce"
    assert http.post(nonce_url, json={"address": ADDR_A}, timeout=5).json() == {"nonce": "signup"}
    # Signed by the wrong key: refused, and no user is created.
    bad = http.post(fake.oracle_url + "/auth", json={"address": ADDR_A, "signature": sign(KEY_B, "signup")},
                    timeout=5)
    assert bad.status_code == 401 and fake.user(ADDR_A) is None
    first_sig = sign(KEY_A, "signup")
    ok = http.post(fake.oracle_url + "/auth", json={"address": ADDR_A, "signature": first_sig}, timeout=5)
    assert ok.status_code == 200 and set(ok.json()) == {"access_token", "refresh_token"}
    rotated = http.post(nonce_url, json={"address": ADDR_A}, timeout=5).json()["nonce"]
    assert re.fullmatch(r"[0-9a-f]{32}", rotated)
    # The signup signature can never log in again.
    replay = http.post(fake.oracle_url + "/auth", json={"address": ADDR_A, "signature": first_sig}, timeout=5)
    assert replay.status_code == 401
    login(http, fake, KEY_A)
    assert http.post(nonce_url, json={"address": ADDR_A}, timeout=5).json()["nonce"] != rotated
    assert http.post(nonce_url, json={"address": "0x123"}, timeout=5).status_code == 400


def test_bearer_token_expiry_and_refresh_rotation(fake, http, clock):
    tokens = login(http, fake, KEY_A)
    keys_url = fake.oracle_url + "/exchange-api-keys"
    assert http.get(keys_url, headers=bearer(tokens), timeout=5).status_code == 200
    assert http.get(keys_url, timeout=5).status_code == 401
    forged = tokens["access_token"][:-4] + ("AAAA" if not tokens["access_token"].endswith("AAAA") else "BBBB")
    assert http.get(keys_url, headers={"Authorization": "Bearer " + forged}, timeout=5).status_code == 401
    clock.now += 61
    assert http.get(keys_url, headers=bearer(tokens), timeout=5).status_code == 401
    fresh = http.post(fake.oracle_url + "/auth/refresh", json={"refresh_token": tokens["refresh_token"]}, timeout=5)
    assert fresh.status_code == 200
    assert http.get(keys_url, headers=bearer(fresh.json()), timeout=5).status_code == 200
    # The old refresh token died with the rotation; the new one expires too.
    assert http.post(fake.oracle_url + "/auth/refresh", json={"refresh_token": tokens["refresh_token"]},
                     timeout=5).status_code == 401
    clock.now += 301
    assert http.post(fake.oracle_url + "/auth/refresh", json={"refresh_token": fresh.json()["refresh_token"]},
                     timeout=5).status_code == 401


# ------------------------------------------------------------------ API keys and joins


def test_api_key_enrollment_rules(fake, http):
    tokens = login(http, fake, KEY_A)
    url = fake.oracle_url + "/exchange-api-keys"
    first = http.post(url, json={"exchange_name": "mexc", "api_key": "ro-1", "secret_key": "s"}, headers=bearer(tokens),
                      timeout=5)
    again = http.post(url, json={"exchange_name": "mexc", "api_key": "ro-2", "secret_key": "s"}, headers=bearer(tokens),
                      timeout=5)
    assert first.status_code == again.status_code == 200 and first.json()["id"] == again.json()["id"]  # upsert
    listed = http.get(url, headers=bearer(tokens), timeout=5).json()
    assert [(k["exchange_name"], k["api_key"], k["is_valid"]) for k in listed] == [("mexc", "ro-2", True)]
    kucoin = http.post(url, json={"exchange_name": "kucoin", "api_key": "k", "secret_key": "s"},
                       headers=bearer(tokens), timeout=5)
    assert kucoin.status_code == 422
    fake.key_missing_permissions["weak"] = ["VIEW_DEPOSIT_ADDRESS"]
    weak = http.post(url, json={"exchange_name": "gate", "api_key": "weak", "secret_key": "s"},
                     headers=bearer(tokens), timeout=5)
    assert weak.status_code == 422 and weak.json()["details"] == {"missing_permissions": ["VIEW_DEPOSIT_ADDRESS"]}
    assert http.post(url, json={"exchange_name": "binance", "api_key": "k", "secret_key": "s"},
                     headers=bearer(tokens), timeout=5).status_code == 400


def test_join_rules_and_join_status(fake, http, clock):
    live = fake.add_campaign(exchange="mexc")
    cancelled = fake.add_campaign(exchange="mexc", status="cancelled")
    ended = fake.add_campaign(exchange="mexc", start=clock.now - 7200, end=clock.now - 10)
    tokens = login(http, fake, KEY_A)
    join_url, status_url = fake.oracle_url + "/campaigns/join", fake.oracle_url + "/campaigns/check-join-status"

    def post(url, campaign):
        return http.post(url, json={"chain_id": 137, "address": campaign["address"]}, headers=bearer(tokens),
                         timeout=5)

    assert post(status_url, live).json() == {"status": "can_join"}
    no_key = post(join_url, live)
    assert no_key.status_code == 422 and "API key" in no_key.json()["message"]
    http.post(fake.oracle_url + "/exchange-api-keys", json={"exchange_name": "mexc", "api_key": "ro", "secret_key": "s"},
              headers=bearer(tokens), timeout=5)
    joined = post(join_url, live)
    assert joined.status_code == 200 and joined.json()["id"]
    twice = post(join_url, live)
    assert twice.status_code == 422 and "already joined" in twice.json()["message"]
    assert post(status_url, live).json()["status"] == "already_joined"
    assert post(status_url, cancelled).json() == {"status": "join_closed", "reason": "Campaign cancelled"}
    assert post(join_url, cancelled).status_code == 422
    assert post(status_url, ended).json()["status"] == "join_closed"
    unknown = {"address": "0x" + "cd" * 20}
    assert post(status_url, unknown).json()["status"] == "not_available"
    assert fake.joins == [(ADDR_A, f"137-{live['address'].lower()}")]
    mine = http.get(fake.oracle_url + "/campaigns", headers=bearer(tokens), timeout=5).json()
    assert mine["has_more"] is False and [c["address"] for c in mine["results"]] == [live["address"]]
    assert mine["results"][0]["fund_amount"] == 1000  # token units, as the real oracle sends them


def test_faults_and_requests_log(fake, http):
    fake.inject("/launcher/campaigns", status=503, count=2)
    url = fake.launcher_url + "/campaigns"
    codes = [http.get(url, params={"chain_id": 137}, timeout=5).status_code for _ in range(3)]
    assert codes == [503, 503, 200]
    assert fake.requests_log[-3:] == [("GET", "/launcher/campaigns", 503)] * 2 + [("GET", "/launcher/campaigns", 200)]
    fake.inject("/oracle", status=200, delay=0.5)
    with pytest.raises(requests.exceptions.ReadTimeout):
        http.post(fake.oracle_url + "/auth/nonce", json={"address": ADDR_A}, timeout=0.1)
