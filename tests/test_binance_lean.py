"""Binance's place / cancel / cancel-replace built and read by integrations/exchange/binance_lean.py instead of
ccxt's generic path: the same bytes on the wire as the real, unmodified ccxt.binance sends, the same answers
read, the same errors — each request sent both ways against the fake exchange and compared.

What the transport hands to the wire is recorded by wrapping the account's own ``LeanSession.request`` (the real
one still sends); ccxt's clock is held at one instant for both ways, so the signatures must match too."""
from __future__ import annotations

import time
from decimal import Decimal

import pytest

from domain.exchange_config import ExchangeAccountConfig
from integrations.exchange import binance_lean
from integrations.exchange.account import ExchangeAccount
from integrations.exchange.errors import ExchangeError
from sim.fake_exchange import FakeExchange

D = Decimal
SYM = "BTC/USDT"


@pytest.fixture(scope="module")
def fx():
    with FakeExchange(seed=21) as server:
        server.add_market(SYM, "BTC", "USDT", tick_size="0.01", step_size="0.00001", mid="60000")
        server.add_account("lean-key", "lean-secret")
        server.credit("lean-key", "BTC", "10")
        server.credit("lean-key", "USDT", "1000000")
        yield server


@pytest.fixture
def account(fx):
    acct = ExchangeAccount(ExchangeAccountConfig(account_id="lean", ccxt_id="binance", api_key="lean-key",
                                                 secret="lean-secret", urls={"api": fx.url}))
    acct.load_markets()
    sent = []
    real = acct.transport.request

    def recording(method, url, data=None, headers=None, **kwargs):
        sent.append((method, url, data, dict(headers or {})))
        return real(method, url, data=data, headers=headers, **kwargs)

    acct.transport.request = recording
    acct.sent = sent
    yield acct
    acct.close()


def both_ways(account, call):
    """Send ``call(account, tag)`` the lean way, then ccxt's way, at one ccxt clock instant: (what each sent,
    what each returned or raised)."""
    now = int(time.time() * 1000)
    account.exchange.milliseconds = lambda: now
    out = []
    for lean, tag in ((True, "a"), (False, "b")):
        account.lean_quoting = lean
        del account.sent[:]
        try:
            result = call(account, tag)
        except ExchangeError as exc:
            result = exc
        out.append((list(account.sent), result))
    return out


def test_a_place_is_the_request_ccxt_sends_and_reads_the_same(account):
    for post_only in (True, False):
        price = "59000" if post_only else "58000"
        (lean_sent, lean), (ccxt_sent, ccxt) = both_ways(account, lambda a, tag: a.create_limit_order(
            SYM, "buy", D("0.001"), D(price), client_order_id=f"p-{tag}-{post_only}", post_only=post_only))
        assert len(lean_sent) == len(ccxt_sent) == 1
        assert _same_but_signature(lean_sent, ccxt_sent)
        assert lean.client_order_id.startswith("p-a-") and ccxt.client_order_id.startswith("p-b-")
        assert _fields(lean) == _fields(ccxt)


def _same_but_signature(lean_sent, ccxt_sent):
    """A client id differs between the two ways, so the signature does; everything else must not."""
    (m1, u1, d1, h1), (m2, u2, d2, h2) = lean_sent[0], ccxt_sent[0]

    def unsigned(text):
        text = text.decode() if isinstance(text, bytes) else text
        return None if text is None else text.split("&signature=")[0].replace("-a-", "-x-").replace("-b-", "-x-")
    return (m1, unsigned(u1), unsigned(d1), h1) == (m2, unsigned(u2), unsigned(d2), h2)


def _fields(info):
    return {k: v for k, v in vars(info).items() if k not in ("id", "client_order_id", "info", "timestamp_ms")}


def test_the_same_request_is_the_same_bytes_signature_included(account, fx):
    """One client id for both ways (the venue refuses the second as a duplicate): byte-identical requests."""
    (lean_sent, lean), (ccxt_sent, ccxt) = both_ways(account, lambda a, tag: a.create_limit_order(
        SYM, "sell", D("0.002"), D("61000.004"), client_order_id="same-id-1"))
    assert lean_sent == ccxt_sent
    assert lean.status == "open" and isinstance(ccxt, ExchangeError)
    (lean_sent, lean), (ccxt_sent, ccxt) = both_ways(account, lambda a, tag: a.cancel_order(
        SYM, client_order_id="same-id-1"))
    assert lean_sent == ccxt_sent
    assert lean.status == "canceled" and lean.client_order_id == "same-id-1"
    assert (type(ccxt).__name__, ccxt.kind, ccxt.not_found) == ("DefinitiveError", "not_found", True)
    account.create_limit_order(SYM, "buy", D("0.001"), D("59100"), client_order_id="same-id-2")
    for post_only in (True, False):
        (lean_sent, lean), (ccxt_sent, ccxt) = both_ways(account, lambda a, tag: a.replace_limit_order(
            SYM, "buy", D("0.001"), D("59200.009"), cancel_client_order_id="same-id-2",
            client_order_id=f"same-id-3{post_only}", post_only=post_only))
        assert lean_sent == ccxt_sent
        assert lean.placed is not None and lean.cancelled.status == "canceled"
        assert ccxt.placed is None and ccxt.cancel_error.kind == "not_found"   # the first way cancelled it
        account.cancel_order(SYM, client_order_id=f"same-id-3{post_only}")
        account.create_limit_order(SYM, "buy", D("0.001"), D("59100"), client_order_id="same-id-2")
    method, url, body, headers = lean_sent[0]
    assert (method, url.split("?")[0], headers["Content-Type"]) == (
        "POST", f"{fx.url}/api/v3/order/cancelReplace", "application/x-www-form-urlencoded")


def test_a_cancel_replace_reads_both_halves_as_ccxt_does(account):
    account.create_limit_order(SYM, "buy", D("0.001"), D("59000"), client_order_id="r-a-0")
    account.create_limit_order(SYM, "buy", D("0.001"), D("59000"), client_order_id="r-b-0")
    (_, lean), (_, ccxt) = both_ways(account, lambda a, tag: a.replace_limit_order(
        SYM, "buy", D("0.001"), D("59001"), cancel_client_order_id=f"r-{tag}-0", client_order_id=f"r-{tag}-1"))
    assert _fields(lean.placed) == _fields(ccxt.placed)
    assert _fields(lean.cancelled) == _fields(ccxt.cancelled)
    assert (lean.cancelled.client_order_id, lean.placed.client_order_id) == ("r-a-0", "r-a-1")


def test_refusals_are_the_same_errors_both_ways(account, fx):
    """A cancel-replace of an unknown order (-2022, both halves in ``data``), one that would cross the book
    (post-only -2010 after the cancel: -2021), a cancel of an unknown order (-2011), a stale timestamp (-1021,
    signed afresh once, then ``clock``), a 429 (the account pauses and sends again), a 5xx (unknown outcome)."""
    def replace_unknown(a, tag):
        return a.replace_limit_order(SYM, "buy", D("0.001"), D("59000"), cancel_client_order_id="nobody",
                                     client_order_id=f"u-{tag}")
    (_, lean), (_, ccxt) = both_ways(account, replace_unknown)
    assert (lean.placed, lean.cancelled) == (ccxt.placed, ccxt.cancelled) == (None, None)
    assert (lean.cancel_error.kind, type(lean.cancel_error)) == (ccxt.cancel_error.kind, type(ccxt.cancel_error))
    account.create_limit_order(SYM, "buy", D("0.001"), D("59000"), client_order_id="c-a-0")
    account.create_limit_order(SYM, "buy", D("0.001"), D("59000"), client_order_id="c-b-0")

    def replace_crossing(a, tag):
        return a.replace_limit_order(SYM, "buy", D("0.001"), D("70000"), cancel_client_order_id=f"c-{tag}-0",
                                     client_order_id=f"c-{tag}-1")
    (_, lean), (_, ccxt) = both_ways(account, replace_crossing)
    assert lean.placed is None and lean.cancelled is not None and lean.place_error is not None
    assert (lean.place_error.kind, str(lean.place_error)) == (ccxt.place_error.kind, str(ccxt.place_error))
    assert _fields(lean.cancelled) == _fields(ccxt.cancelled)

    cases = [
        ("cancel unknown", lambda a, tag: a.cancel_order(SYM, client_order_id=f"gone-{tag}"), None),
        ("stale timestamp", None, None),
        ("rate limited", lambda a, tag: a.create_limit_order(SYM, "buy", D("0.001"), D("58000"),
                                                               client_order_id=f"rl-{tag}"), 429),
        ("server error", lambda a, tag: a.create_limit_order(SYM, "buy", D("0.001"), D("58000"),
                                                               client_order_id=f"se-{tag}"), 503),
    ]
    for name, call, status in cases:
        if name == "stale timestamp":
            results = []
            for lean_way in (True, False):
                account.lean_quoting = lean_way
                account.exchange.milliseconds = lambda: int(time.time() * 1000) - 120_000
                try:
                    account.cancel_order(SYM, client_order_id="whatever")
                except ExchangeError as exc:
                    results.append((type(exc), exc.kind, str(exc)))
            assert results[0] == results[1] and results[0][1] == "clock"
            continue
        outcomes = []
        for lean_way, tag in ((True, "a"), (False, "b")):
            if status is not None:
                fx.inject("/api/v3/order", status=status, method="POST", retry_after=0)
            account.lean_quoting = lean_way
            account.exchange.milliseconds = lambda: int(time.time() * 1000)
            try:
                result = call(account, tag)
                outcomes.append(("ok", result.status))
            except ExchangeError as exc:
                outcomes.append((type(exc).__name__, exc.kind, str(exc).replace(f"-{tag}", "-x")))
        assert outcomes[0] == outcomes[1], name
    assert account.stats.retries >= 4   # the 429s, sent again; the stale timestamps, signed afresh


def test_only_plain_answers_are_read_here():
    base = {"symbol": "BTCUSDT", "orderId": 7, "orderListId": -1, "clientOrderId": "c", "transactTime": 1,
            "price": "60000.00000000", "origQty": "0.00100000", "executedQty": "0.00000000",
            "cummulativeQuoteQty": "0.00000000", "status": "NEW", "timeInForce": "GTC", "type": "LIMIT_MAKER",
            "side": "BUY", "fills": []}
    plain = binance_lean.plain_order(base, "BTCUSDT")
    assert (plain["id"], plain["status"], plain["type"], plain["postOnly"]) == ("7", "open", "limit", True)
    for other in ({"executedQty": "0.00050000", "cummulativeQuoteQty": "30.00000000"},   # filled: ccxt averages
                  {"fills": [{"price": "60000", "qty": "0.001"}]}, {"symbol": "ETHUSDT"}, {"status": "WEIRD"},
                  {"code": -2011}, {"price": "0.00000000"}):
        assert binance_lean.plain_order({**base, **other}, "BTCUSDT") is None


def test_the_query_is_encoded_as_urlencode_does():
    from urllib.parse import quote, urlencode
    fields = {"timestamp": 1, "symbol": "BTCUSDT", "newClientOrderId": "a b/c+d~e_f.g-h", "price": "1.5"}
    assert binance_lean._urlencode(fields) == urlencode(fields, quote_via=quote)
    plain = {"timestamp": 1765000000000, "symbol": "BTCUSDT", "newClientOrderId": "mm-1_a.b~c", "recvWindow": 5000}
    assert binance_lean._urlencode(plain) == urlencode(plain, quote_via=quote)
    for odd in ("a=b", "a&b", "a=b&c=d", "=", "&", "é", "", "a%20b"):   # a separator inside a text: escaped
        for fields in ({"timestamp": 1, "newClientOrderId": odd}, {odd: "x", "price": "1.5"}, {"only": odd}):
            assert binance_lean._urlencode(fields) == urlencode(fields, quote_via=quote), fields
    assert binance_lean._urlencode({}) == urlencode({}, quote_via=quote)


def test_the_signature_is_hmac_sha256_of_the_query_for_each_secret():
    """Signed with a pre-keyed HMAC copied per request: each secret its own signature, as hmac.new gives it."""
    import hashlib
    import hmac
    for secret in ("s1", "s2", "s1", "a-much-longer-secret-" * 5):
        url, body, _ = binance_lean.signed_request("http://h/api/v3", "order", "POST", {"symbol": "BTCUSDT"}, "k",
                                                   secret, 7, 5000)
        query, _, signature = body.partition("&signature=")
        assert query == "timestamp=7&symbol=BTCUSDT&recvWindow=5000"
        assert signature == hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
