"""MixinClient, keystore and JWT signer against the fake Mixin server over real loopback HTTP."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import time
import uuid
from decimal import Decimal

import pytest
import requests
from loguru import logger
from nacl.signing import SigningKey, VerifyKey

from integrations.mixin.auth import sign_authentication_token
from integrations.mixin.client import MixinClient, WithdrawalFee, encode_body, encode_query
from integrations.mixin.errors import (
    MixinApiError,
    MixinAuthError,
    MixinBadResponse,
    MixinError,
    MixinNotFound,
    MixinRateLimited,
    MixinServerError,
    MixinTransportError,
)
from integrations.mixin.keystore import Keystore, KeystoreError, generate_keystore, load_keystore, parse_keystore
from sim.fake_mixin import FakeMixin

BTC = "c6d0c728-2624-429b-8e0d-d9d19b6592fa"
ETH = "43d61dcd-e413-450d-80b8-101d5e903357"
USDT_ERC20 = "4d8c508b-91c5-375b-92b0-ee702ed2dac5"


# --------------------------------------------------------------------------- fixtures


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture
def fake():
    with FakeMixin() as server:
        server.add_asset(BTC, "BTC", BTC, name="Bitcoin", price_usd="65000.12")
        server.add_asset(ETH, "ETH", ETH, precision=18, name="Ether")
        server.add_asset(USDT_ERC20, "USDT", ETH, precision=6, name="Tether USD")
        yield server


@pytest.fixture
def ks_dict():
    return generate_keystore()


@pytest.fixture
def ks(fake, ks_dict) -> Keystore:
    fake.register_bot(ks_dict)
    return parse_keystore(ks_dict)


def make_client(fake: FakeMixin, keystore: Keystore | None, *, transport: str = "requests", **kwargs) -> MixinClient:
    """A client over ``requests`` (a session given: loopback never through an environment proxy) or over the lean
    urllib3 transport the client picks for its own session."""
    kwargs.setdefault("timeout", 5.0)
    kwargs.setdefault("backoff_base", 0.01)
    kwargs.setdefault("backoff_max", 0.05)
    if transport == "lean":
        return MixinClient(fake.url, keystore, **kwargs)
    session = requests.Session()
    session.trust_env = False
    return MixinClient(fake.url, keystore, session=session, **kwargs)


@pytest.fixture(params=["requests", "lean"])
def client(request, fake, ks):
    c = make_client(fake, ks, transport=request.param)
    yield c
    if request.param == "lean":  # every call of the test went through it
        assert c._lean is not None and c._lean.requests > 0 or not fake.requests_log
    c.close()
    c._session.close()


def statuses(fake: FakeMixin) -> list[int]:
    return [status for _, _, status in fake.requests_log]


# --------------------------------------------------------------------------- keystore


def test_parse_current_keystore(ks_dict):
    ks = parse_keystore(ks_dict)
    assert ks.app_id == ks_dict["app_id"] and ks.session_id == ks_dict["session_id"]
    assert ks.session_seed == bytes.fromhex(ks_dict["session_private_key"])
    assert ks.server_public_key == bytes.fromhex(ks_dict["server_public_key"])
    assert ks.spend_private_key == bytes.fromhex(ks_dict["spend_private_key"])
    assert ks.session_public_key == bytes(SigningKey(ks.session_seed).verify_key)
    assert ks.can_spend is True

    no_spend = dict(ks_dict)
    del no_spend["spend_private_key"]
    assert parse_keystore(no_spend).can_spend is False

    shouting = dict(ks_dict, app_id=ks_dict["app_id"].upper(), session_private_key=ks_dict["session_private_key"].upper())
    assert parse_keystore(shouting) == ks


def test_parse_legacy_keystore(ks_dict):
    seed = bytes.fromhex(ks_dict["session_private_key"])
    pub = bytes(SigningKey(seed).verify_key)
    padded = base64.urlsafe_b64encode(seed + pub).decode()
    assert padded.endswith("=")  # 64 bytes → padding present, so both forms are really exercised
    for private_key in (padded, padded.rstrip("=")):
        legacy = {
            "client_id": ks_dict["app_id"],
            "session_id": ks_dict["session_id"],
            "private_key": private_key,
            "pin_token": _b64url(os.urandom(32)),
            "pin": "123456",
        }
        ks = parse_keystore(legacy)
        assert ks.app_id == ks_dict["app_id"]
        assert ks.session_id == ks_dict["session_id"]
        assert ks.session_seed == seed
        assert ks.session_public_key == pub
        assert ks.server_public_key is None
        assert ks.can_spend is False


def test_legacy_private_key_with_wrong_public_half(ks_dict):
    seed = bytes.fromhex(ks_dict["session_private_key"])
    other_pub = bytes(SigningKey.generate().verify_key)
    legacy = {"client_id": ks_dict["app_id"], "session_id": ks_dict["session_id"], "private_key": _b64url(seed + other_pub)}
    with pytest.raises(KeystoreError, match="private_key"):
        parse_keystore(legacy)


@pytest.mark.parametrize("field", ["app_id", "session_id", "session_private_key", "server_public_key"])
def test_missing_field_is_named(ks_dict, field):
    broken = dict(ks_dict)
    del broken[field]
    with pytest.raises(KeystoreError) as info:
        parse_keystore(broken)
    message = str(info.value)
    assert field in message
    assert ks_dict["session_private_key"] not in message and ks_dict["spend_private_key"] not in message


def test_legacy_missing_private_key_is_named(ks_dict):
    with pytest.raises(KeystoreError, match="private_key"):
        parse_keystore({"client_id": ks_dict["app_id"], "session_id": ks_dict["session_id"]})


@pytest.mark.parametrize(
    "field,value",
    [
        ("session_private_key", "zz" * 32),
        ("session_private_key", "ab" * 31),
        ("spend_private_key", "not-hex-at-all-secret-ish"),
        ("server_public_key", "ab" * 33),
        ("app_id", "not-a-uuid"),
    ],
)
def test_malformed_field_is_named_without_value(ks_dict, field, value):
    with pytest.raises(KeystoreError) as info:
        parse_keystore(dict(ks_dict, **{field: value}))
    assert field in str(info.value)
    assert value not in str(info.value)


def test_repr_hides_secrets(ks_dict):
    ks = parse_keystore(ks_dict)
    for text in (repr(ks), str(ks), f"{ks}", repr([ks])):
        assert ks_dict["session_private_key"] not in text
        assert ks_dict["spend_private_key"] not in text
        assert repr(ks.session_seed) not in text
        assert repr(ks.spend_private_key) not in text
        assert ks.app_id in text


def test_load_keystore(tmp_path, ks_dict):
    path = tmp_path / "keystore.json"
    path.write_text(json.dumps(ks_dict))
    assert load_keystore(path) == parse_keystore(ks_dict)
    bad = tmp_path / "bad.json"
    bad.write_text('{"session_private_key": "' + ks_dict["session_private_key"] + '", oops')
    with pytest.raises(KeystoreError) as info:
        load_keystore(bad)
    assert ks_dict["session_private_key"] not in str(info.value)
    with pytest.raises(KeystoreError):
        load_keystore(tmp_path / "missing.json")


# --------------------------------------------------------------------------- JWT


def test_token_header_claims_and_signature(ks):
    body = b'{"receivers":["a"],"index":0}'
    uri = "/safe/keys?x=1"
    token = sign_authentication_token(ks, "post", uri, body, now=1_700_000_000.9, ttl=600, request_id="rid-1")
    h, p, s = token.split(".")
    assert json.loads(_b64url_decode(h)) == {"alg": "EdDSA", "typ": "JWT"}
    claims = json.loads(_b64url_decode(p))
    assert claims == {
        "uid": ks.app_id,
        "sid": ks.session_id,
        "iat": 1_700_000_000,
        "exp": 1_700_000_600,
        "jti": "rid-1",
        "sig": hashlib.sha256(b"POST" + uri.encode() + body).hexdigest(),
        "scp": "FULL",
    }
    VerifyKey(ks.session_public_key).verify(f"{h}.{p}".encode(), _b64url_decode(s))  # raises if bad
    # base64url without padding, as JWT requires
    assert "=" not in token and "+" not in token and "/" not in token


def test_token_jti_fresh_per_call(ks):
    jtis = {json.loads(_b64url_decode(sign_authentication_token(ks, "GET", "/me").split(".")[1]))["jti"] for _ in range(5)}
    assert len(jtis) == 5
    assert all(uuid.UUID(j).version == 4 for j in jtis)


def test_client_signs_exact_post_body(fake, client):
    # Mixed-order keys and non-ASCII: the fake recomputes sha256 over the raw bytes it received.
    data = client.request("POST", "/safe/assets/fetch", body=[BTC, USDT_ERC20, "ünknown"], idempotent=True)
    assert [a["asset_id"] for a in data] == [BTC, USDT_ERC20]
    assert fake.auth_failures == 0
    assert encode_body({"b": Decimal("1.50"), "a": [1]}) == b'{"b":"1.50","a":[1]}'


def test_client_signs_exact_query(fake, client):
    client.request(
        "GET",
        "/safe/snapshots",
        params={"order": "ASC", "offset": "2024-01-01T00:00:00+00:00", "limit": 10, "asset": None},
    )
    assert fake.auth_failures == 0
    method, raw_uri, status = fake.requests_log[-1]
    assert status == 200
    assert raw_uri == "/safe/snapshots?limit=10&offset=2024-01-01T00%3A00%3A00%2B00%3A00&order=ASC"
    assert encode_query({"b": "x y", "a": Decimal("0.10"), "c": True}) == "?a=0.10&b=x%20y&c=true"


def test_each_attempt_gets_a_fresh_token(fake, client):
    fake.inject("/safe/snapshots", status=429, count=2)
    assert client.safe_snapshots() == []
    assert statuses(fake) == [429, 429, 200]
    assert fake.auth_failures == 0  # a reused jti would have been refused


# --------------------------------------------------------------------------- envelope


def test_envelope_data(client):
    asset = client.read_asset(BTC)
    assert asset["asset_id"] == BTC and asset["symbol"] == "BTC"


def test_envelope_api_error_202(fake, client):
    with pytest.raises(MixinApiError) as info:
        client.request("GET", "/safe/snapshots", params={"limit": 501})
    err = info.value
    assert type(err) is MixinApiError
    assert err.status == 202 and err.code == 10002
    assert err.extra and err.extra["field"] == "limit"
    assert len(fake.requests_log) == 1  # a validation error is never retried


def test_envelope_not_found(fake, client):
    with pytest.raises(MixinNotFound) as info:
        client.read_asset(str(uuid.uuid4()))
    assert info.value.code == 404 and info.value.status == 202
    fake.inject("/network/assets/", status=404)  # plain-text 404 from a proxy
    with pytest.raises(MixinNotFound) as info:
        client.read_asset(BTC)
    assert info.value.status == 404 and info.value.code is None


def test_envelope_auth_error(fake):
    stranger = parse_keystore(generate_keystore())  # never registered with the fake
    c = make_client(fake, stranger)
    with pytest.raises(MixinAuthError) as info:
        c.safe_snapshots()
    assert info.value.code == 401 and info.value.status == 202
    assert fake.auth_failure_reasons == ["unknown uid"]
    assert len(fake.requests_log) == 1  # auth errors are not retried


@pytest.mark.parametrize("status", [401, 403])
def test_plain_http_401_403_map_to_auth_error(fake, client, status):
    fake.inject("/", status=status)
    with pytest.raises(MixinAuthError) as info:
        client.safe_snapshots()
    assert info.value.status == status
    assert len(fake.requests_log) == 1


@pytest.mark.parametrize("body", ["<html>oops</html>", '{"nothing": 1}', ""])
def test_bad_response(fake, client, body):
    fake.inject("/network/assets/", status=200, body=body)
    with pytest.raises(MixinBadResponse):
        client.read_asset(BTC)
    assert len(fake.requests_log) == 1


def test_mismatched_request_id_echo_is_rejected(fake, client, monkeypatch):
    # A response echoing another X-Request-Id is not ours (e.g. a mixed-up proxy).
    original = fake._wsgi

    def lying(environ, start_response):
        environ["HTTP_X_REQUEST_ID"] = str(uuid.uuid4())
        return original(environ, start_response)

    monkeypatch.setattr(fake._server, "application", lying)
    with pytest.raises(MixinBadResponse, match="X-Request-Id"):
        client.read_asset(BTC)


# --------------------------------------------------------------------------- retries


def test_429_retry_after_is_honoured(fake, ks):
    c = make_client(fake, ks, backoff_base=0.01, backoff_max=2.0)
    fake.inject("/safe/snapshots", status=429, retry_after=0.3)
    started = time.monotonic()
    assert c.safe_snapshots() == []
    assert time.monotonic() - started >= 0.3
    assert statuses(fake) == [429, 200]


def test_retry_after_capped_by_backoff_max(fake, ks):
    c = make_client(fake, ks, backoff_max=0.05)
    fake.inject("/safe/snapshots", status=429, retry_after=30)
    started = time.monotonic()
    assert c.safe_snapshots() == []
    assert time.monotonic() - started < 2


def test_429_without_header_backs_off_exponentially(fake, ks):
    c = make_client(fake, ks, backoff_base=0.05, backoff_max=1.0)
    fake.inject("/safe/snapshots", status=429, count=3)
    started = time.monotonic()
    assert c.safe_snapshots() == []
    # waits ≈ 0.05 + 0.1 + 0.2 (each with ≤10 % jitter below)
    assert time.monotonic() - started >= 0.9 * 0.35
    assert statuses(fake) == [429, 429, 429, 200]


def test_error_code_429_in_envelope_is_retried(fake, client):
    fake.inject("/safe/snapshots", status=202, error_code=429)
    assert client.safe_snapshots() == []
    assert statuses(fake) == [202, 200]


def test_5xx_then_success(fake, client):
    fake.inject("/network/assets/", status=500)  # plain body
    fake.inject("/network/assets/", status=503, error_code=503)  # JSON body
    fake.inject("/network/assets/", status=502)
    assert client.read_asset(BTC)["symbol"] == "BTC"
    assert statuses(fake) == [500, 503, 502, 200]


def test_max_attempts_rate_limited(fake, ks):
    c = make_client(fake, ks, max_attempts=3)
    fake.inject("/", status=429, count=10)
    with pytest.raises(MixinRateLimited) as info:
        c.safe_snapshots()
    assert info.value.status == 429
    assert statuses(fake) == [429, 429, 429]


def test_max_attempts_server_error(fake, ks):
    c = make_client(fake, ks, max_attempts=3)
    fake.inject("/", status=503, count=10)
    with pytest.raises(MixinServerError) as info:
        c.read_asset(BTC)
    assert info.value.status == 503
    assert statuses(fake) == [503, 503, 503]


@pytest.mark.parametrize("code", [10104, 10105])
def test_transient_codes_are_retried(fake, client, code):
    fake.inject("/safe/snapshots", status=202, error_code=code, count=2)
    assert client.safe_snapshots() == []
    assert statuses(fake) == [202, 202, 200]


def test_transient_code_after_max_attempts_raises_api_error(fake, ks):
    c = make_client(fake, ks, max_attempts=2)
    fake.inject("/safe/snapshots", status=202, error_code=10105, count=5)
    with pytest.raises(MixinApiError) as info:
        c.safe_snapshots()
    assert info.value.code == 10105
    assert len(fake.requests_log) == 2


def test_validation_error_is_not_retried(fake, client):
    fault = fake.inject("/safe/snapshots", status=202, error_code=10002, count=3)
    with pytest.raises(MixinApiError) as info:
        client.safe_snapshots()
    assert info.value.code == 10002
    assert len(fake.requests_log) == 1 and fault.remaining == 2


@pytest.mark.parametrize("transport", ["requests", "lean"])
def test_slow_reply_beyond_timeout_get_retried_then_fails(fake, ks, transport):
    c = make_client(fake, ks, transport=transport, timeout=0.2, max_attempts=2)
    fake.inject("/network/assets/", status=200, delay=0.6, count=5)
    with pytest.raises(MixinTransportError) as info:
        c.read_asset(BTC)
    assert info.value.request_sent is None  # the server may have acted on it
    assert [m for m, _, _ in fake.requests_log] == ["GET", "GET"]


def test_slow_reply_within_timeout_succeeds(fake, client):
    fake.inject("/network/assets/", status=200, delay=0.2)
    started = time.monotonic()
    assert client.read_asset(BTC)["symbol"] == "BTC"
    assert time.monotonic() - started >= 0.2


@pytest.mark.parametrize("transport", ["requests", "lean"])
def test_post_outcome_unknown_is_retried_only_when_idempotent(fake, ks, transport):
    c = make_client(fake, ks, transport=transport, timeout=0.2, max_attempts=3)
    fake.inject("/safe/assets/fetch", status=200, delay=0.6, count=1)
    with pytest.raises(MixinTransportError):
        c.request("POST", "/safe/assets/fetch", body=[BTC])
    assert len(fake.requests_log) == 1

    fake.inject("/safe/assets/fetch", status=200, delay=0.6, count=1)
    assert c.request("POST", "/safe/assets/fetch", body=[BTC], idempotent=True)[0]["asset_id"] == BTC
    assert len(fake.requests_log) == 3

    fake.inject("/safe/assets/fetch", status=500, count=1)
    with pytest.raises(MixinServerError):
        c.request("POST", "/safe/assets/fetch", body=[BTC])
    assert len(fake.requests_log) == 4

    fake.inject("/safe/assets/fetch", status=500, count=1)
    assert c.request("POST", "/safe/assets/fetch", body=[BTC], idempotent=True)
    assert statuses(fake)[-2:] == [500, 200]


def test_post_rate_limited_is_retried_even_if_not_idempotent(fake, client):
    fake.inject("/safe/assets/fetch", status=429)
    assert client.request("POST", "/safe/assets/fetch", body=[BTC])
    assert statuses(fake) == [429, 200]


@pytest.mark.parametrize("transport", ["requests", "lean"])
def test_connection_refused_is_a_transport_error(ks, transport):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    if transport == "lean":
        c = MixinClient(f"http://127.0.0.1:{port}", ks, max_attempts=3, backoff_base=0.01)
    else:
        session = requests.Session()
        session.trust_env = False
        c = MixinClient(f"http://127.0.0.1:{port}", ks, session=session, max_attempts=3, backoff_base=0.01)
    lines: list[str] = []
    sink = logger.add(lines.append, format="{message}", level="DEBUG")
    try:
        with pytest.raises(MixinTransportError) as info:
            c.request("POST", "/safe/keys", body=[])  # not idempotent, but it never left: retried
    finally:
        logger.remove(sink)
    assert info.value.request_sent is False
    assert sum("retrying" in line for line in lines) == 2


def test_retry_logs_carry_no_secrets(fake, client, ks_dict):
    lines: list[str] = []
    sink = logger.add(lines.append, format="{message}", level="DEBUG")
    try:
        fake.inject("/safe/snapshots", status=429, count=2)
        fake.inject("/safe/snapshots", status=202, error_code=10002)
        with pytest.raises(MixinApiError):
            client.safe_snapshots(offset="2024-01-01T00:00:00Z")
    finally:
        logger.remove(sink)
    text = "".join(lines)
    assert text.count("retrying") == 2
    assert "Bearer" not in text and "eyJ" not in text
    assert ks_dict["session_private_key"] not in text and ks_dict["spend_private_key"] not in text


def test_error_hierarchy():
    assert issubclass(MixinAuthError, MixinApiError) and issubclass(MixinNotFound, MixinApiError)
    for cls in (MixinApiError, MixinRateLimited, MixinServerError, MixinTransportError, MixinBadResponse):
        assert issubclass(cls, MixinError)
    assert not issubclass(MixinRateLimited, MixinApiError)
    err = MixinRateLimited("slow down", status=429, code=429, retry_after=1.5)
    assert (err.status, err.code, err.description, err.retry_after) == (429, 429, "slow down", 1.5)


# --------------------------------------------------------------------------- snapshots


def _collect_asc(client: MixinClient, *, limit: int, **filters) -> tuple[dict[str, dict], int, int]:
    """Follow the created_at cursor; return (unique snapshots, pages, items seen incl. repeats)."""
    seen: dict[str, dict] = {}
    offset, pages, items = None, 0, 0
    while True:
        page = client.safe_snapshots(offset=offset, limit=limit, order="ASC", **filters)
        pages += 1
        items += len(page)
        fresh = [s for s in page if s["snapshot_id"] not in seen]
        for s in page:
            seen.setdefault(s["snapshot_id"], s)
        if len(page) < limit or not fresh:
            return seen, pages, items
        offset = page[-1]["created_at"]


def test_paging_asc_inclusive_offset_1200(fake, client, ks):
    user = fake.new_user()
    created = [fake.pay(ks.app_id, user, BTC, "0.001", f"order-{i}")["snapshot_id"] for i in range(1200)]
    seen, pages, items = _collect_asc(client, limit=500)
    assert len(seen) == 1200 and set(seen) == set(created)
    assert pages == 3
    assert items == 1200 + 2  # the offset is inclusive: each page repeats the previous page's last item
    ordered = list(seen.values())
    assert [s["snapshot_id"] for s in ordered] == created
    assert [s["created_at"] for s in ordered] == sorted(s["created_at"] for s in ordered)


def test_paging_desc(fake, client, ks):
    user = fake.new_user()
    snaps = [fake.pay(ks.app_id, user, BTC, "1") for _ in range(30)]
    newest_first = client.safe_snapshots(order="DESC", limit=10)
    assert [s["snapshot_id"] for s in newest_first] == [s["snapshot_id"] for s in snaps[::-1][:10]]
    pivot = snaps[12]["created_at"]
    page = client.safe_snapshots(order="DESC", offset=pivot, limit=5)
    assert [s["snapshot_id"] for s in page] == [s["snapshot_id"] for s in snaps[12:7:-1]]  # inclusive, descending
    # no order parameter at all: Mixin's default is DESC
    raw = client.request("GET", "/safe/snapshots", params={"limit": 3})
    assert [s["snapshot_id"] for s in raw] == [s["snapshot_id"] for s in snaps[::-1][:3]]


def test_limit_validation(fake, client):
    with pytest.raises(MixinApiError) as info:
        client.request("GET", "/safe/snapshots", params={"limit": 501, "order": "ASC"})
    assert info.value.code == 10002
    assert client.request("GET", "/safe/snapshots", params={"limit": 500}) == []
    with pytest.raises(ValueError):
        client.safe_snapshots(limit=501)
    with pytest.raises(ValueError):
        client.safe_snapshots(limit=0)


def test_filters(fake, client, ks):
    alice, bob = fake.new_user(), fake.new_user()
    a1 = fake.pay(ks.app_id, alice, BTC, "1")
    b1 = fake.pay(ks.app_id, bob, ETH, "2")
    a2 = fake.pay(ks.app_id, alice, ETH, "3")
    d1 = fake.deposit(ks.app_id, BTC, "4")

    def ids(page):
        return [s["snapshot_id"] for s in page]

    assert ids(client.safe_snapshots(asset=BTC)) == [a1["snapshot_id"], d1["snapshot_id"]]
    assert ids(client.safe_snapshots(asset=ETH)) == [b1["snapshot_id"], a2["snapshot_id"]]
    assert ids(client.safe_snapshots(opponent=alice)) == [a1["snapshot_id"], a2["snapshot_id"]]
    assert len(client.safe_snapshots(app=ks.app_id)) == 4
    with pytest.raises(ValueError):
        client.safe_snapshots(asset=BTC, opponent=alice)
    with pytest.raises(MixinApiError) as info:
        client.request("GET", "/safe/snapshots", params={"asset": BTC, "opponent": alice})
    assert info.value.code == 10002


def test_only_own_snapshots(fake, client, ks):
    other_ks = generate_keystore()
    other = fake.register_bot(other_ks)
    user = fake.new_user()
    mine = fake.pay(ks.app_id, user, BTC, "1")
    theirs = fake.pay(other, user, BTC, "1")
    assert [s["snapshot_id"] for s in client.safe_snapshots()] == [mine["snapshot_id"]]
    assert client.read_snapshot(mine["snapshot_id"]) == mine
    with pytest.raises(MixinNotFound):
        client.read_snapshot(theirs["snapshot_id"])


def test_duplicate_factor_client_dedupes(fake, client, ks):
    user = fake.new_user()
    created = {fake.pay(ks.app_id, user, BTC, "1")["snapshot_id"] for _ in range(250)}
    fake.duplicate_factor = 3
    first = client.safe_snapshots(limit=100)
    assert len(first) == 100
    assert len({s["snapshot_id"] for s in first}) == 34  # ceil(100 / 3) distinct, each repeated
    seen, _, items = _collect_asc(client, limit=100)
    assert set(seen) == created
    assert items > 250


def test_equal_created_at(fake, client, ks):
    user = fake.new_user()
    ns = 1_750_000_000_123_456_789
    before = fake.pay(ks.app_id, user, BTC, "1", created_at_ns=ns - 1)
    same = [fake.pay(ks.app_id, user, BTC, "1", created_at_ns=ns) for _ in range(7)]
    after = fake.pay(ks.app_id, user, BTC, "1", created_at_ns=ns + 1)
    stamp = same[0]["created_at"]
    assert stamp == "2025-06-15T15:06:40.123456789Z" and all(s["created_at"] == stamp for s in same)

    page = client.safe_snapshots(offset=stamp, limit=500)
    assert [s["snapshot_id"] for s in page] == [s["snapshot_id"] for s in same + [after]]  # insertion order
    # a page smaller than the tie group: the timestamp cursor cannot move past it (clients must detect this)
    first = client.safe_snapshots(offset=stamp, limit=5)
    again = client.safe_snapshots(offset=first[-1]["created_at"], limit=5)
    assert first == again
    assert before["snapshot_id"] not in {s["snapshot_id"] for s in page}


def test_snapshots_bad_response_shape(fake, client):
    fake.inject("/safe/snapshots", status=200, body='{"data":[{"amount":"1"}]}')
    with pytest.raises(MixinBadResponse):
        client.safe_snapshots()


# --------------------------------------------------------------------------- assets and fees


def test_read_asset_public(fake):
    c = make_client(fake, None)  # no keystore at all: the endpoint needs no token
    asset = c.read_asset(USDT_ERC20)
    assert asset["chain_id"] == ETH and asset["precision"] == 6 and asset["symbol"] == "USDT"
    assert asset["kernel_asset_id"] == hashlib.sha3_256(USDT_ERC20.encode()).hexdigest()
    assert c.read_asset(BTC)["price_usd"] == "65000.12"
    with pytest.raises(ValueError):
        c.safe_snapshots()  # auth endpoint without a keystore is a programming error


def test_withdrawal_fees(fake, client):
    fake.set_withdrawal_fees(USDT_ERC20, [(ETH, "0.0021"), (USDT_ERC20, Decimal("1.5"), 1)])
    fees = client.withdrawal_fees(USDT_ERC20, destination="0xAbC:1")
    assert fees == [
        WithdrawalFee(ETH, Decimal("0.0021"), None),
        WithdrawalFee(USDT_ERC20, Decimal("1.5"), 1),
    ]
    assert all(isinstance(f.amount, Decimal) for f in fees)
    assert fake.requests_log[-1][1] == f"/safe/assets/{USDT_ERC20}/fees?destination=0xAbC%3A1"
    client.withdrawal_fees(USDT_ERC20)
    assert fake.requests_log[-1][1] == f"/safe/assets/{USDT_ERC20}/fees"
    assert fake.auth_failures == 0
    with pytest.raises(MixinNotFound):
        client.withdrawal_fees(str(uuid.uuid4()))


@pytest.mark.parametrize(
    "body",
    [
        '{"data":{"asset_id":"x"}}',
        '{"data":[{"asset_id":"x","amount":"abc"}]}',
        '{"data":[{"asset_id":"x","amount":null}]}',
        '{"data":[{"asset_id":"x","amount":true}]}',
        '{"data":[{"asset_id":"x","amount":"1e400000000"}]}',
        '{"data":[{"amount":"1"}]}',
        '{"data":[{"asset_id":"x","amount":"-1"}]}',
        '{"data":[{"asset_id":"x","amount":"NaN"}]}',
        '{"data":[{"asset_id":"x","amount":"0.000000001"}]}',
    ],
)
def test_withdrawal_fees_malformed(fake, client, body):
    fake.inject("/safe/assets/", status=200, body=body)
    with pytest.raises(MixinBadResponse):
        client.withdrawal_fees(BTC)


def test_withdrawal_fee_json_number_is_exact(fake, client):
    # JSON numbers are parsed as Decimal by the client, never through float.
    fake.inject("/safe/assets/", status=200, body='{"data":[{"asset_id":"x","amount":0.1,"priority":"2"}]}')
    assert client.withdrawal_fees(BTC) == [WithdrawalFee("x", Decimal("0.1"), 2)]


# --------------------------------------------------------------------------- decoding (orjson, floats exact)


def test_snapshot_amounts_stay_exact_strings(fake, client, ks):
    # amounts come as strings and stay strings (to_decimal makes them exact Decimals); never a float
    fake.pay(ks.app_id, fake.new_user(), BTC, "0.00000001", "m")
    fake.pay(ks.app_id, fake.new_user(), BTC, "12345678901.12345678", "m")
    page = client.safe_snapshots()
    assert [s["amount"] for s in page] == ["0.00000001", "12345678901.12345678"]
    assert not any(isinstance(v, float) for s in page for v in s.values())


@pytest.mark.parametrize("body, amount", [
    ('{"data":[{"snapshot_id":"s","created_at":"t","amount":0.30000000000000000001}]}',
     Decimal("0.30000000000000000001")),
    ('{"data":[{"snapshot_id":"s","created_at":"t","deposit":{"amount":[1, 2.5e-3]}, "amount":"1"}]}', "1"),
])
def test_a_json_float_in_a_page_becomes_an_exact_decimal(fake, client, body, amount):
    fake.inject("/safe/snapshots", status=200, body=body)
    page = client.safe_snapshots()
    assert page[0]["amount"] == amount
    assert not any(isinstance(v, float) for v in page[0].values())
    if "deposit" in page[0]:
        assert page[0]["deposit"]["amount"] == [1, Decimal("0.0025")]


@pytest.mark.parametrize("body, data", [
    ('{"data":[NaN]}', "nan"),                                  # orjson refuses NaN: the std decoder's float
    ('{"data":[123456789012345678901234567890]}', [123456789012345678901234567890]),  # beyond 64 bits
    ('{"data":{"a":1,"a":2}}', {"a": 2}),                        # duplicate keys: the last, like the std decoder
])
def test_texts_orjson_refuses_decode_as_the_std_decoder_does(fake, client, body, data):
    fake.inject("/safe/snapshots/x", status=200, body=body)
    got = client.request("GET", "/safe/snapshots/x")
    if data == "nan":
        assert got[0] != got[0]
    else:
        assert got == data


def test_a_truncated_page_is_one_bad_response(fake, client):
    fake.inject("/safe/snapshots", status=200, body='{"data":[{"snapshot_id":"s","created_at":"t"')
    with pytest.raises(MixinBadResponse, match="non-JSON response"):
        client.safe_snapshots()
