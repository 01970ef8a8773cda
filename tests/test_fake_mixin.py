"""The fake Mixin server itself, driven with raw `requests` over loopback HTTP.

The negative JWT cases build requests by hand so that nothing in the client can hide
a verification bug in the fake.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from decimal import Decimal

import pytest
import requests

from integrations.mixin.auth import sign_authentication_token
from integrations.mixin.keystore import Keystore, generate_keystore, parse_keystore
from sim.fake_mixin import FakeMixin, format_created_at, parse_rfc3339_ns

BTC = "c6d0c728-2624-429b-8e0d-d9d19b6592fa"
ETH = "43d61dcd-e413-450d-80b8-101d5e903357"


@pytest.fixture
def fake():
    with FakeMixin() as server:
        server.add_asset(BTC, "BTC", BTC)
        yield server


@pytest.fixture
def ks(fake) -> Keystore:
    d = generate_keystore()
    assert fake.register_bot(d) == d["app_id"]
    return parse_keystore(d)


@pytest.fixture
def http():
    s = requests.Session()
    s.trust_env = False
    yield s
    s.close()


def send(http, fake, ks, method, uri, body=b"", *, sign_uri=None, sign_body=None, token=None, **sign_kwargs):
    """Send ``method uri body`` with a token signed over ``sign_uri``/``sign_body`` (default: the same)."""
    if token is None:
        token = sign_authentication_token(
            ks, method, sign_uri if sign_uri is not None else uri, sign_body if sign_body is not None else body, **sign_kwargs
        )
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "X-Request-Id": str(uuid.uuid4())}
    return http.request(method, fake.url + uri, data=body or None, headers=headers, timeout=5)


def assert_unauthorized(resp, fake, reason):
    assert resp.status_code == 202
    assert resp.json()["error"]["code"] == 401
    assert fake.auth_failure_reasons[-1] == reason


# --------------------------------------------------------------------------- lifecycle & envelope


def test_start_stop_url():
    fake = FakeMixin().start()
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", fake.url)
        assert fake.port > 0
        assert requests.get(fake.url + f"/network/assets/{uuid.uuid4()}", timeout=5).status_code == 202
    finally:
        fake.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{fake.port}/network/assets/x", timeout=2)
    with pytest.raises(ValueError):
        FakeMixin(host="0.0.0.0")


def test_envelopes_and_request_id_echo(fake, http):
    rid = str(uuid.uuid4())
    ok = http.get(fake.url + f"/network/assets/{BTC}", headers={"X-Request-Id": rid}, timeout=5)
    assert ok.status_code == 200 and ok.headers["X-Request-Id"] == rid
    assert ok.json()["data"]["symbol"] == "BTC"
    missing = http.get(fake.url + f"/network/assets/{uuid.uuid4()}", timeout=5)
    assert missing.status_code == 202
    assert missing.json() == {"error": {"status": 202, "code": 404, "description": "The asset is not found."}}
    nowhere = http.get(fake.url + "/no/such/route", timeout=5)
    assert nowhere.status_code == 202 and nowhere.json()["error"]["code"] == 404
    assert fake.requests_log == [
        ("GET", f"/network/assets/{BTC}", 200),
        ("GET", missing.request.path_url, 202),
        ("GET", "/no/such/route", 202),
    ]


# --------------------------------------------------------------------------- JWT verification


def test_valid_token_accepted(fake, ks, http):
    resp = send(http, fake, ks, "GET", "/safe/snapshots?limit=5&order=ASC")
    assert resp.status_code == 200 and resp.json() == {"data": []}
    assert fake.auth_failures == 0


def test_post_body_is_covered_by_sig(fake, ks, http):
    body = json.dumps([BTC]).encode()
    ok = send(http, fake, ks, "POST", "/safe/assets/fetch", body)
    assert ok.status_code == 200 and ok.json()["data"][0]["asset_id"] == BTC
    tampered = send(http, fake, ks, "POST", "/safe/assets/fetch", json.dumps([ETH]).encode(), sign_body=body)
    assert_unauthorized(tampered, fake, "sig mismatch")
    wrong_method = send(
        http, fake, ks, "POST", "/safe/assets/fetch", body,
        token=sign_authentication_token(ks, "PUT", "/safe/assets/fetch", body),
    )
    assert_unauthorized(wrong_method, fake, "sig mismatch")


def test_wrong_key_rejected(fake, ks, http):
    impostor = Keystore(ks.app_id, ks.session_id, bytes(32), None, None)
    resp = send(http, fake, impostor, "GET", "/safe/snapshots")
    assert_unauthorized(resp, fake, "bad signature")


def test_expired_token_rejected(fake, ks, http):
    resp = send(http, fake, ks, "GET", "/safe/snapshots", now=time.time() - 700, ttl=600)
    assert_unauthorized(resp, fake, "expired")


def test_future_iat_rejected(fake, ks, http):
    resp = send(http, fake, ks, "GET", "/safe/snapshots", now=time.time() + 3600)
    assert_unauthorized(resp, fake, "iat in the future")


def test_fake_clock_drives_expiry(ks, http):
    now = [1_800_000_000.0]
    with FakeMixin(clock=lambda: now[0]) as fake:
        fake.register_bot(ks)
        ok = send(http, fake, ks, "GET", "/safe/snapshots", now=now[0], ttl=60)
        assert ok.status_code == 200
        now[0] += 61
        late = send(http, fake, ks, "GET", "/safe/snapshots", now=now[0] - 61, ttl=60)
        assert_unauthorized(late, fake, "expired")


def test_reused_jti_rejected(fake, ks, http):
    token = sign_authentication_token(ks, "GET", "/safe/snapshots")
    assert send(http, fake, ks, "GET", "/safe/snapshots", token=token).status_code == 200
    replay = send(http, fake, ks, "GET", "/safe/snapshots", token=token)
    assert_unauthorized(replay, fake, "jti reused")


def test_tampered_query_rejected(fake, ks, http):
    resp = send(http, fake, ks, "GET", "/safe/snapshots?limit=500", sign_uri="/safe/snapshots?limit=5")
    assert_unauthorized(resp, fake, "sig mismatch")
    # Same decoded value, different bytes on the wire: the raw query is what counts.
    resp = send(
        http, fake, ks, "GET", "/safe/snapshots?offset=2024-01-01T00%3A00%3A00Z",
        sign_uri="/safe/snapshots?offset=2024-01-01T00:00:00Z",
    )
    assert_unauthorized(resp, fake, "sig mismatch")


def test_raw_path_not_decoded_path_is_verified(fake, ks, http):
    raw = "/safe/snapshots/abc%3Adef"
    ok = send(http, fake, ks, "GET", raw)
    assert ok.request.path_url == raw
    assert ok.json()["error"]["code"] == 404  # authenticated, then simply not found
    decoded = send(http, fake, ks, "GET", raw, sign_uri="/safe/snapshots/abc:def")
    assert_unauthorized(decoded, fake, "sig mismatch")


def test_other_auth_failures(fake, ks, http):
    stranger = parse_keystore(generate_keystore())
    assert_unauthorized(send(http, fake, stranger, "GET", "/safe/snapshots"), fake, "unknown uid")
    wrong_session = Keystore(ks.app_id, str(uuid.uuid4()), ks.session_seed, None, None)
    assert_unauthorized(send(http, fake, wrong_session, "GET", "/safe/snapshots"), fake, "session mismatch")
    no_header = http.get(fake.url + "/safe/snapshots", timeout=5)
    assert_unauthorized(no_header, fake, "missing bearer token")
    garbage = send(http, fake, ks, "GET", "/safe/snapshots", token="a.b")
    assert_unauthorized(garbage, fake, "malformed token")
    assert fake.auth_failures == 4 == len(fake.auth_failure_reasons)


def test_legacy_keystore_bot_can_authenticate(fake, http):
    import base64

    from nacl.signing import SigningKey

    d = generate_keystore()
    seed = bytes.fromhex(d["session_private_key"])
    legacy = {
        "client_id": d["app_id"],
        "session_id": d["session_id"],
        "private_key": base64.urlsafe_b64encode(seed + bytes(SigningKey(seed).verify_key)).decode(),
        "pin_token": "",
        "pin": "",
    }
    fake.register_bot(legacy)
    resp = send(http, fake, parse_keystore(legacy), "GET", "/safe/snapshots")
    assert resp.status_code == 200


# --------------------------------------------------------------------------- snapshots


def test_pay_snapshot_shape_and_balances(fake, ks):
    user = fake.new_user()
    snap = fake.pay(ks.app_id, user, BTC, Decimal("0.10"), "hello ✓")
    assert snap["type"] == "snapshot"
    assert uuid.UUID(snap["snapshot_id"]).version == 4 and uuid.UUID(snap["request_id"]).version == 4
    assert snap["user_id"] == ks.app_id and snap["opponent_id"] == user
    assert snap["asset_id"] == BTC
    assert snap["kernel_asset_id"] == hashlib.sha3_256(BTC.encode()).hexdigest()
    assert snap["amount"] == "0.1"
    assert bytes.fromhex(snap["memo"]).decode("utf-8") == "hello ✓"
    assert re.fullmatch(r"[0-9a-f]{64}", snap["transaction_hash"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", snap["created_at"])
    assert snap["deposit"] is None and snap["withdrawal"] is None

    raw = fake.pay(ks.app_id, user, BTC, "2", b"\x00\xff")
    assert raw["memo"] == "00ff"
    assert raw["created_at"] > snap["created_at"]  # strictly increasing fake clock
    assert fake.balance(user, BTC) == Decimal("-2.1")
    assert fake.balance(ks.app_id, BTC) == Decimal("2.1")

    dep = fake.deposit(ks.app_id, BTC, "5")
    assert dep["opponent_id"] == "" and dep["withdrawal"] is None
    assert set(dep["deposit"]) == {"deposit_hash", "deposit_index", "sender", "destination", "tag"}
    assert fake.balance(ks.app_id, BTC) == Decimal("7.1")

    with pytest.raises(ValueError):
        fake.pay(ks.app_id, user, BTC, "0.000000001")  # more than 8 decimals
    with pytest.raises(ValueError):
        fake.pay(ks.app_id, user, BTC, "1", b"x" * 257)
    with pytest.raises(TypeError):
        fake.pay(ks.app_id, user, BTC, 0.1)


def test_strictly_increasing_clock_under_a_frozen_clock(ks):
    with FakeMixin(clock=lambda: 1_700_000_000.0) as fake:
        fake.register_bot(ks)
        user = fake.new_user()
        stamps = [fake.pay(ks.app_id, user, BTC, "1")["created_at"] for _ in range(5)]
    assert stamps == sorted(set(stamps))
    assert stamps[0] == "2023-11-14T22:13:20.000000000Z"


def test_rfc3339_offsets():
    assert parse_rfc3339_ns("2024-01-01T00:00:00Z") == 1_704_067_200_000_000_000
    assert parse_rfc3339_ns("2024-01-01T00:00:00.5Z") == 1_704_067_200_500_000_000
    assert parse_rfc3339_ns("2024-01-01T00:00:00.123456789Z") == 1_704_067_200_123_456_789
    assert parse_rfc3339_ns("2024-01-01T00:00:00.1234567899Z") == 1_704_067_200_123_456_789
    assert parse_rfc3339_ns("2024-01-01T08:00:00+08:00") == 1_704_067_200_000_000_000
    assert format_created_at(1_704_067_200_000_000_007) == "2024-01-01T00:00:00.000000007Z"
    for bad in ("2024-01-01", "2024-13-01T00:00:00Z", "yesterday", "2024-01-01T00:00:00"):
        with pytest.raises(ValueError):
            parse_rfc3339_ns(bad)


def test_snapshot_query_errors(fake, ks, http):
    for uri in (
        "/safe/snapshots?limit=501",
        "/safe/snapshots?limit=0",
        "/safe/snapshots?limit=ten",
        "/safe/snapshots?order=SIDEWAYS",
        "/safe/snapshots?offset=yesterday",
        f"/safe/snapshots?asset={BTC}&opponent={uuid.uuid4()}",
        f"/safe/snapshots?app={ks.app_id}&asset={BTC}",
        "/safe/snapshots?asset=not-a-uuid",
    ):
        resp = send(http, fake, ks, "GET", uri)
        assert resp.status_code == 202, uri
        assert resp.json()["error"]["code"] == 10002, uri
    forbidden = send(http, fake, ks, "GET", f"/safe/snapshots?app={uuid.uuid4()}")
    assert forbidden.json()["error"]["code"] == 403


def test_default_limit_and_order(fake, ks, http):
    user = fake.new_user()
    snaps = [fake.pay(ks.app_id, user, BTC, "1") for _ in range(120)]
    page = send(http, fake, ks, "GET", "/safe/snapshots").json()["data"]
    assert len(page) == 100
    assert page[0]["snapshot_id"] == snaps[-1]["snapshot_id"]  # DESC by default


def test_offset_fraction_lengths_inclusive(fake, ks, http):
    user = fake.new_user()
    base = 1_704_067_200_000_000_000
    a = fake.pay(ks.app_id, user, BTC, "1", created_at_ns=base + 500_000_000)
    b = fake.pay(ks.app_id, user, BTC, "1", created_at_ns=base + 500_000_001)

    def ids(order, offset):
        uri = f"/safe/snapshots?order={order}&offset=" + offset.replace(":", "%3A")
        return [s["snapshot_id"] for s in send(http, fake, ks, "GET", uri).json()["data"]]

    both = [a["snapshot_id"], b["snapshot_id"]]
    assert ids("ASC", "2024-01-01T00:00:00Z") == both
    assert ids("ASC", "2024-01-01T00:00:00.5Z") == both  # == a's created_at: inclusive
    assert ids("ASC", "2024-01-01T00:00:00.500000000Z") == both
    assert ids("ASC", "2024-01-01T00:00:00.5000000009Z") == both  # digits past 9 are truncated
    assert ids("ASC", "2024-01-01T00:00:00.500000001Z") == [b["snapshot_id"]]
    assert ids("DESC", "2024-01-01T00:00:00.500000000Z") == [a["snapshot_id"]]
    assert ids("DESC", "2024-01-01T00:00:00.499999999Z") == []


def test_duplicate_factor_page_shape(fake, ks, http):
    user = fake.new_user()
    snaps = [fake.pay(ks.app_id, user, BTC, "1") for _ in range(10)]
    fake.duplicate_factor = 2
    page = send(http, fake, ks, "GET", "/safe/snapshots?order=ASC&limit=5").json()["data"]
    assert [s["snapshot_id"] for s in page] == [snaps[i // 2]["snapshot_id"] for i in range(5)]
    tail = send(http, fake, ks, "GET", "/safe/snapshots?order=ASC&limit=500").json()["data"]
    assert len(tail) == 20
    fake.reset_faults()
    assert fake.duplicate_factor == 1


def test_get_snapshot_by_id(fake, ks, http):
    snap = fake.pay(ks.app_id, fake.new_user(), BTC, "1")
    got = send(http, fake, ks, "GET", f"/safe/snapshots/{snap['snapshot_id']}").json()["data"]
    assert got == snap
    missing = send(http, fake, ks, "GET", f"/safe/snapshots/{uuid.uuid4()}")
    assert missing.json()["error"]["code"] == 404


def test_serves_100k_snapshots_in_cursor_pages(ks, http):
    # Every snapshot exactly once, in full pages (its speed is the ingest bench's business, not a timed test).
    with FakeMixin() as fake:
        fake.register_bot(ks)
        user = fake.new_user()
        for _ in range(100_000):
            fake.pay(ks.app_id, user, BTC, "0.5")
        seen: set[str] = set()
        offset = ""
        pages = 0
        while True:
            uri = "/safe/snapshots?limit=500&order=ASC" + (f"&offset={offset}" if offset else "")
            page = send(http, fake, ks, "GET", uri).json()["data"]
            pages += 1
            seen.update(s["snapshot_id"] for s in page)
            if len(page) < 500:
                break
            offset = page[-1]["created_at"]
    assert len(seen) == 100_000
    assert pages == 201


# --------------------------------------------------------------------------- faults


def test_fault_shapes(fake, http):
    url = fake.url + f"/network/assets/{BTC}"
    fake.inject("/network/", status=429, retry_after=1.5)
    r = http.get(url, timeout=5)
    assert r.status_code == 429 and r.headers["Retry-After"] == "1.5" and r.text == "429 Too Many Requests"
    fake.inject("/network/", status=502)
    r = http.get(url, timeout=5)
    assert r.status_code == 502 and r.headers["Content-Type"] == "text/plain"
    fake.inject("/network/", status=500, error_code=500)
    r = http.get(url, timeout=5)
    assert r.status_code == 500 and r.json()["error"]["code"] == 500
    fake.inject("/network/", status=202, error_code=10105)
    r = http.get(url, timeout=5)
    assert r.status_code == 202 and r.json()["error"]["code"] == 10105
    fake.inject("/network/", status=200, body=b"not json")
    r = http.get(url, timeout=5)
    assert r.status_code == 200 and r.content == b"not json"
    assert http.get(url, timeout=5).json()["data"]["asset_id"] == BTC  # faults used up
    assert [s for _, _, s in fake.requests_log] == [429, 502, 500, 202, 200, 200]


def test_fault_prefix_count_and_reset(fake, http):
    url = fake.url + f"/network/assets/{BTC}"
    fake.inject("/safe/", status=503, count=2)
    assert http.get(url, timeout=5).status_code == 200  # prefix does not match
    fake.inject("/network/", status=503, count=2)
    assert [http.get(url, timeout=5).status_code for _ in range(3)] == [503, 503, 200]
    fake.inject("/", status=503, count=5)
    fake.reset_faults()
    assert http.get(url, timeout=5).status_code == 200
    with pytest.raises(ValueError):
        fake.inject(status=202)  # an envelope error needs its code


def test_slow_reply_is_correct_but_late(fake, http):
    fake.inject("/network/", status=200, delay=0.3)
    started = time.monotonic()
    r = http.get(fake.url + f"/network/assets/{BTC}", timeout=5)
    assert time.monotonic() - started >= 0.3
    assert r.status_code == 200 and r.json()["data"]["symbol"] == "BTC"
