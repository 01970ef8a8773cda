"""The Gate (API v4 spot) dialect of the fake exchange, driven by the real, unmodified ``ccxt.gate`` (4.5.90)
over loopback HTTP — then the same through mmflow's ExchangeAccount, then one order end to end through a
world whose venue is Gate.

What differs on Gate lives in its venue profile (integrations/exchange/venues/gate.py): the "t-" prefix of
client ids, cancels by that prefixed id, the withdrawal minimum from the fees endpoint.
"""
from __future__ import annotations

import json
import time
from decimal import Decimal

import ccxt
import gevent
import pytest

from domain.exchange_config import ExchangeAccountConfig
from integrations.exchange.account import ExchangeAccount, Transfer
from integrations.exchange.errors import DefinitiveError, RateLimited
from integrations.exchange.venues import venue
from sim.fake_exchange.gate import FAKE, FakeGate
from sim.fake_exchange.wallet import WITHDRAW_COMPLETED
from tests.support import reset_fake_venue

D = Decimal
SYM = "BTC/USDT"
TRON_ADDR = "TKRxqtJ6u9zvrAamF4Xq4p9VBhtrGfZv4R"
TON_ADDR = "EQ" + "A" * 46
KEYS = {name: (f"gate-{name}", f"secret-{name}")
        for name in ("main", "maker", "wallet", "faults", "acct", "acct_w", "acct_f")}
CID = "mmflow-0123456789abcdef-1"  # mmflow's client order id shape (domain.exchange_orders.client_order_id)


class Clock:
    """Wall time plus an offset the tests move forward instead of sleeping (ccxt signs with wall time;
    the fake accepts a Timestamp within 60 s, so the module's total offset stays far below that)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        assert 0 < seconds <= 2.0 and self.offset + seconds < 30.0
        self.offset += seconds


CLOCK = Clock()


def new_client(fx: FakeGate, name: str, template: ccxt.gate | None = None, **config) -> ccxt.gate:
    key, secret = KEYS.get(name, (name, "x"))
    cfg = fx.ccxt_config(key, secret)
    cfg.update(config)
    ex = ccxt.gate(cfg)
    if template is not None:  # reuse loaded markets/currencies
        ex.set_markets(template.markets, template.currencies)
        ex.options["unifiedAccount"] = False
    return ex


@pytest.fixture(scope="module")
def fx():
    with FakeGate(seed=17, clock=CLOCK) as server:
        server.add_market(SYM, "BTC", "USDT", tick_size="0.01", step_size="0.00001", min_qty="0.00001",
                          min_notional="5", maker_fee="0.001", taker_fee="0.002", mid="60000")
        server.add_market("ETH/USDT", "ETH", "USDT", tick_size="0.1", step_size="0.001", min_qty="0.01",
                          min_notional="10", mid="3000")
        server.add_currency("USDT", [
            {"network": "ETH", "withdrawFee": "3", "withdrawMin": "20", "isDefault": True},
            {"network": "TRX", "withdrawFee": "1", "withdrawMin": "10", "withdrawIntegerMultiple": "0.000001"},
            {"network": "BSC", "withdrawFee": "0.5", "withdrawMin": "5", "withdrawEnable": False},
        ], name="Tether")
        server.add_currency("BTC", [{"network": "BTC", "withdrawFee": "0.0002", "withdrawMin": "0.001"}],
                            name="Bitcoin")
        server.add_currency("TON", [{"network": "TON", "withdrawFee": "0.1", "withdrawMin": "1"}], name="Toncoin")
        for key, secret in KEYS.values():
            server.add_account(key, secret)
            server.credit(key, "USDT", "10000")
            server.credit(key, "BTC", "1")
        yield server


@pytest.fixture(scope="module")
def ex(fx):
    client = new_client(fx, "main")
    client.load_markets()
    return client


@pytest.fixture(autouse=True)
def clean(fx):
    yield
    reset_fake_venue(fx, KEYS.values(), {SYM: "60000", "ETH/USDT": "3000"})


def last_body(client: ccxt.gate) -> dict:
    return json.loads(client.last_request_body)


# ---------------------------------------------------------------------- the dialect


def test_the_dialect_is_what_world_with_exchange_loads():
    assert FAKE is FakeGate and FakeGate.venue == "gate"
    g = ccxt.gate()
    for canonical, chain in FakeGate.NETWORK_IDS.items():  # ccxt 4.5.90 gate's own mapping, both ways
        assert g.network_code_to_id(canonical, "USDT") == chain
        assert g.network_id_to_code(chain, "USDT") == canonical
    assert FakeGate._market_id("BTC", "USDT") == "BTC_USDT"
    with pytest.raises(ValueError, match="power of ten"):
        FakeGate().add_market("ETH/BTC", "ETH", "BTC", tick_size="0.05")


def test_ccxt_config_points_every_gate_url_here(fx):
    cfg = fx.ccxt_config("k", "s")
    template = ccxt.gate().urls["api"]
    assert set(cfg["urls"]["api"]) == {"public", "private"}
    for scope, table in template.items():
        assert set(cfg["urls"]["api"][scope]) == set(table)
        assert all(url == fx.url + "/api/v4" for url in cfg["urls"]["api"][scope].values())
    assert cfg["options"]["fetchMarkets"] == {"types": ["spot"]} and cfg["enableRateLimit"] is False


# ---------------------------------------------------------------------- markets and currencies


def test_load_markets_asks_only_spot_endpoints(fx):
    fx.requests_log.clear()
    client = new_client(fx, "main")
    client.load_markets()
    assert sorted(fx.requests_log) == sorted([
        ("GET", "/api/v4/spot/currencies", 200),
        ("GET", "/api/v4/account/detail", 200),  # is the key a unified account? (key.mode 1: no)
        ("GET", "/api/v4/margin/currency_pairs", 200),
        ("GET", "/api/v4/spot/currency_pairs", 200),
    ])
    assert client.options["unifiedAccount"] is False
    m = client.market(SYM)
    assert m["id"] == "BTC_USDT" and m["spot"] and m["active"] and not m["margin"]
    assert m["precision"] == {"amount": 0.00001, "price": 0.01}
    assert m["limits"]["amount"]["min"] == 0.00001 and m["limits"]["cost"]["min"] == 5.0
    assert m["taker"] == 0.002  # Gate's `fee` (percent); ccxt uses it for the maker rate too
    assert client.amount_to_precision(SYM, 0.0012345) == "0.00123"
    assert client.market("ETH/USDT")["precision"] == {"amount": 0.001, "price": 0.1}


def test_currencies_networks_as_ccxt_4_5_90_reads_them(ex):
    usdt = ex.currencies["USDT"]
    assert {code: n["id"] for code, n in usdt["networks"].items()} == {"ERC20": "ETH", "TRC20": "TRX", "BEP20": "BSC"}
    assert usdt["networks"]["BEP20"]["withdraw"] is False and usdt["networks"]["BEP20"]["deposit"] is True
    assert usdt["name"] == "Tether" and usdt["withdraw"] is True
    trc = usdt["networks"]["TRC20"]
    # ccxt 4.5.90 gate.parse_currency reads no fee, no minimum and no precision from /spot/currencies
    assert trc["fee"] is None and trc["limits"]["withdraw"]["min"] is None and trc["precision"] == 0.0001
    assert list(ex.currencies["TON"]["networks"]) == ["TON"]
    # the fees are in /wallet/withdraw_status, per chain (withdraw_fix_on_chains); the minimum only in info
    fees = ex.fetch_deposit_withdraw_fees(["USDT"])["USDT"]
    assert {k: v["withdraw"]["fee"] for k, v in fees["networks"].items()} == {"ERC20": 3.0, "TRC20": 1.0, "BEP20": 0.5}
    assert fees["withdraw"]["fee"] == 3.0 and fees["info"]["withdraw_amount_mini"] == "20"
    # the withdrawal precision per chain only in /wallet/currency_chains (`decimal`), which ccxt never asks
    chains = {c["chain"]: c for c in ex.publicWalletGetCurrencyChains({"currency": "USDT"})}
    assert chains["TRX"]["decimal"] == "6" and chains["ETH"]["decimal"] == "8"
    assert chains["BSC"]["is_withdraw_disabled"] == 1
    assert ex.publicWalletGetCurrencyChains({"currency": "TON"})[0]["is_tag"] == 1


def test_order_book_ticker_time_balance(fx, ex):
    book = ex.fetch_order_book(SYM, 5)
    assert book["bids"][0][0] == 59994.0 and book["asks"][0][0] == 60006.0
    assert len(book["bids"]) == len(book["asks"]) == 5 and book["nonce"] > 0
    assert "with_id=true" in ex.last_request_url and "currency_pair=BTC_USDT" in ex.last_request_url
    t = ex.fetch_ticker(SYM)
    assert (t["bid"], t["ask"], t["last"]) == (59994.0, 60006.0, 60000.0)
    assert abs(ex.fetch_time() - fx.now_ms()) < 1000
    bal = ex.fetch_balance()
    assert bal["USDT"] == {"free": 10000.0, "used": 0.0, "total": 10000.0} and bal["BTC"]["free"] == 1.0
    assert fx.requests_log[-1][1] == "/api/v4/spot/accounts"


def test_signature_key_and_timestamp(fx, ex):
    bad = new_client(fx, "main", ex, secret="not-the-secret")
    with pytest.raises(ccxt.AuthenticationError, match="INVALID_SIGNATURE"):
        bad.fetch_balance()
    assert fx.auth_failures[-1] == "bad signature"
    with pytest.raises(ccxt.AuthenticationError, match="INVALID_KEY"):
        new_client(fx, "stranger", ex).fetch_balance()
    with pytest.raises(ccxt.AuthenticationError):  # refused before the order exists
        bad.create_order(SYM, "limit", "buy", 0.001, 59000)
    assert fx.engine.open_orders(KEYS["main"][0], "BTC_USDT") == []
    late = new_client(fx, "main", ex)
    late.options["timeDifference"] = 120_000  # signs a Timestamp two minutes old
    with pytest.raises(ccxt.AuthenticationError, match="REQUEST_EXPIRED"):
        late.fetch_balance()
    assert ex.fetch_balance()["USDT"]["total"] > 0


# ---------------------------------------------------------------------- orders


def test_post_only_quote_rests_then_partial_then_full_fills(fx, ex):
    maker = new_client(fx, "maker", ex)
    key = KEYS["maker"][0]
    o = maker.create_order(SYM, "limit", "buy", 0.01, 59000, {"postOnly": True, "clientOrderId": CID})
    body = last_body(maker)
    assert body["time_in_force"] == "poc" and body["text"] == "t-" + CID and body["account"] == "spot"
    assert (o["status"], o["postOnly"], o["clientOrderId"], o["filled"]) == ("open", True, "t-" + CID, 0.0)
    assert fx.balance(key, "USDT") == (D("9410"), D("590"))
    fx.place_taker(SYM, "sell", "0.004")
    by_text = maker.fetch_order(None, SYM, {"clientOrderId": CID})  # ccxt asks /spot/orders/t-<cid>
    assert fx.requests_log[-1][1] == "/api/v4/spot/orders/t-" + CID
    assert (by_text["id"], by_text["status"], by_text["filled"], by_text["remaining"]) == (o["id"], "open", 0.004, 0.006)
    (listed,) = maker.fetch_open_orders(SYM)
    assert listed["id"] == o["id"] and listed["filled"] == 0.004
    fx.place_taker(SYM, "sell", "0.01")  # takes the remaining 0.006 only
    done = maker.fetch_order(o["id"], SYM)
    assert (done["status"], done["filled"], done["remaining"], done["average"]) == ("closed", 0.01, 0.0, 59000.0)
    assert done["info"]["finish_as"] == "filled"
    # Gate: "Only order ID can be used after the order is finished" — the text no longer finds it
    with pytest.raises(ccxt.OrderNotFound):
        maker.fetch_order(None, SYM, {"clientOrderId": CID})
    assert maker.fetch_open_orders(SYM) == []
    trades = [t for t in maker.fetch_my_trades(SYM) if t["order"] == o["id"]]
    assert [(t["amount"], t["price"], t["takerOrMaker"], t["side"]) for t in trades] == [
        (0.004, 59000.0, "maker", "buy"), (0.006, 59000.0, "maker", "buy")]
    assert [t["fee"] for t in trades] == [{"currency": "BTC", "cost": 0.000004}, {"currency": "BTC", "cost": 0.000006}]
    assert fx.balance(key, "BTC") == (D("1.00999"), D("0")) and fx.balance(key, "USDT") == (D("9410"), D("0"))
    assert [t["id"] for t in maker.fetch_order_trades(o["id"], SYM)] == [t["id"] for t in trades]


def test_post_only_that_would_cross_is_refused_and_a_crossing_limit_is_a_taker(fx, ex):
    client = new_client(fx, "main", ex)
    with pytest.raises(ccxt.OrderImmediatelyFillable, match="POC_FILL_IMMEDIATELY"):
        client.create_order(SYM, "limit", "buy", 0.001, 60010, {"postOnly": True})
    assert fx.engine.open_orders(KEYS["main"][0], "BTC_USDT") == []
    taker = client.create_order(SYM, "limit", "buy", 0.001, 60010)  # gtc, crosses the ask at 60006
    assert taker["status"] == "closed" and taker["average"] == 60006.0 and taker["timeInForce"] == "GTC"
    (t,) = client.fetch_my_trades(SYM, None, None, {"order_id": taker["id"]})
    assert t["takerOrMaker"] == "taker" and t["fee"]["cost"] == 0.000002  # 0.2 % taker, in BTC


def test_market_buy_by_cost(fx, ex):
    client = new_client(fx, "main", ex)
    o = client.create_market_buy_order_with_cost(SYM, 60.0)
    assert last_body(client)["type"] == "market" and last_body(client)["time_in_force"] == "ioc"
    assert o["status"] == "closed" and o["cost"] == 60.0 and o["filled"] == pytest.approx(0.001, rel=1e-3)


def test_cancel_by_client_id_by_id_and_unknown_orders(fx, ex):
    client = new_client(fx, "main", ex)
    a = client.create_order(SYM, "limit", "buy", 0.001, 59000, {"postOnly": True, "clientOrderId": "mmflow-aa-1"})
    b = client.create_order(SYM, "limit", "sell", 0.001, 61000, {"postOnly": True, "clientOrderId": "mmflow-aa-2"})
    # ccxt 4.5.90 gate.cancel_order ignores params['clientOrderId']: it asks DELETE /spot/orders/None
    with pytest.raises(ccxt.OrderNotFound):
        client.cancel_order(None, SYM, {"clientOrderId": "mmflow-aa-1"})
    assert fx.requests_log[-1] == ("DELETE", "/api/v4/spot/orders/None", 400)
    # the way ccxt can cancel by client id: the text (t-...) in place of the order id (pending orders only)
    c = client.cancel_order("t-mmflow-aa-1", SYM)
    assert (c["id"], c["status"], c["clientOrderId"]) == (a["id"], "canceled", "t-mmflow-aa-1")
    assert client.cancel_order(b["id"], SYM)["status"] == "canceled"
    with pytest.raises(ccxt.InvalidOrder, match="ORDER_CANCELLED"):
        client.cancel_order(b["id"], SYM)
    with pytest.raises(ccxt.OrderNotFound):
        client.cancel_order("t-mmflow-aa-2", SYM)  # finished: the text is gone
    with pytest.raises(ccxt.OrderNotFound, match="ORDER_NOT_FOUND"):
        client.fetch_order("987654321", SYM)
    assert client.fetch_order(a["id"], SYM)["status"] == "canceled"
    assert client.fetch_open_orders(SYM) == []
    with pytest.raises(ccxt.BadRequest, match="28"):  # ccxt's own check: text is t- + at most 28
        client.create_order(SYM, "limit", "buy", 0.001, 59000, {"clientOrderId": "x" * 29})


def test_closed_orders_cancel_all_and_trading_fee(fx, ex):
    client = new_client(fx, "faults", ex)
    a = client.create_order(SYM, "limit", "buy", 0.001, 59000, {"postOnly": True})
    b = client.create_order(SYM, "limit", "sell", 0.001, 61000, {"postOnly": True})
    assert {o["id"] for o in client.cancel_all_orders(SYM)} == {a["id"], b["id"]}
    assert client.fetch_open_orders(SYM) == []
    closed = client.fetch_closed_orders(SYM)  # status=finished
    assert {a["id"], b["id"]} <= {o["id"] for o in closed} and {o["status"] for o in closed} == {"canceled"}
    fee = client.fetch_trading_fee(SYM)
    assert (fee["maker"], fee["taker"]) == (0.001, 0.002)


def test_refusals_map_to_ccxt_errors(fx, ex):
    client = new_client(fx, "faults", ex)
    with pytest.raises(ccxt.InsufficientFunds, match="BALANCE_NOT_ENOUGH"):
        client.create_order(SYM, "limit", "buy", 1, 59000)  # 59000 USDT > 10000
    with pytest.raises(ccxt.InsufficientFunds):
        client.create_order(SYM, "limit", "sell", 2, 61000)
    with pytest.raises(ccxt.BadRequest, match="INVALID_PARAM_VALUE"):
        client.create_order(SYM, "limit", "buy", 0.00005, 59000)  # 2.95 USDT < min_quote_amount 5
    with pytest.raises(ccxt.BadSymbol, match="INVALID_CURRENCY_PAIR"):
        client.privateSpotGetOrdersOrderId({"order_id": "1", "currency_pair": "NOPE_USDT"})
    assert fx.balance(KEYS["faults"][0], "USDT") == (D("10000"), D("0"))


def test_rate_limit_answers_429_too_many_requests(fx, ex):
    fx.inject("/api/v4/spot/order_book", status=429)
    with pytest.raises(ccxt.RateLimitExceeded, match="TOO_MANY_REQUESTS"):
        ex.fetch_order_book(SYM)
    assert fx.requests_log[-1] == ("GET", "/api/v4/spot/order_book", 429)
    fx.rate_limit(3, window=10)
    for _ in range(3):
        ex.fetch_order_book(SYM)
    assert ex.last_response_headers["X-Gate-RateLimit-Limit"] == "3"
    assert ex.last_response_headers["X-Gate-RateLimit-Requests-Remain"] == "0"
    with pytest.raises(ccxt.RateLimitExceeded):
        ex.fetch_order_book(SYM)
    assert int(ex.last_response_headers["X-Gate-RateLimit-Reset-Timestamp"]) >= int(fx.now())
    ex.fetch_ticker(SYM)  # per endpoint: another endpoint has its own budget
    fx.rate_limit(None)
    ex.fetch_order_book(SYM)
    fx.inject("/api/v4/spot/tickers", status=503)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        ex.fetch_ticker(SYM)
    fx.inject("/api/v4/spot/tickers", status=500, label="INTERNAL", message="Internal server error")
    with pytest.raises(ccxt.ExchangeNotAvailable, match="INTERNAL"):
        ex.fetch_ticker(SYM)


def test_timeout_after_apply_and_the_not_found_window(fx, ex):
    client = new_client(fx, "faults", ex)
    fx.inject("/api/v4/spot/orders", method="POST", status=200, delay=1.0, after_apply=True)
    client.timeout = 300
    with pytest.raises(ccxt.RequestTimeout):
        client.create_order(SYM, "limit", "buy", 0.001, 59000, {"clientOrderId": "lost-1"})
    client.timeout = 10_000
    found = client.fetch_order(None, SYM, {"clientOrderId": "lost-1"})  # still pending: the text finds it
    assert found["status"] == "open"
    fx.order_not_found_window(0.5, include_cancel=True)
    o = client.create_order(SYM, "limit", "buy", 0.001, 59000)
    with pytest.raises(ccxt.OrderNotFound):
        client.fetch_order(o["id"], SYM)
    with pytest.raises(ccxt.OrderNotFound):
        client.cancel_order(o["id"], SYM)
    CLOCK.advance(0.5)
    assert client.cancel_order(o["id"], SYM)["status"] == "canceled"


def test_moving_the_mid_fills_resting_quotes(fx, ex):
    maker = new_client(fx, "maker", ex)
    bid = maker.create_order(SYM, "limit", "buy", 0.001, 59990, {"postOnly": True})
    fx.set_mid(SYM, "59900")
    got = maker.fetch_order(bid["id"], SYM)
    assert got["status"] == "closed" and got["average"] == 59990.0


# ---------------------------------------------------------------------- wallet


def test_deposit_address_per_chain_and_memo(fx, ex):
    key = KEYS["main"][0]
    trc = ex.fetch_deposit_address("USDT", {"network": "TRC20"})
    assert trc["network"] == "TRC20" and trc["tag"] is None
    assert (trc["address"], None) == fx.deposit_address(key, "USDT", "TRX")
    assert "currency=USDT" in ex.last_request_url and "network" not in ex.last_request_url  # ccxt picks the chain
    erc = ex.fetch_deposit_address("USDT", {"network": "ERC20"})
    assert erc["address"].startswith("0x") and erc["network"] == "ERC20"
    ton = ex.fetch_deposit_address("TON", {"network": "TON"})
    assert ton["network"] == "TON" and ton["tag"] and ton["tag"].isdigit()
    assert (ton["address"], ton["tag"]) == fx.deposit_address(key, "TON", "TON")
    assert ton["info"]["payment_name"] == "Memo"


def test_deposit_pending_then_credited(fx, ex):
    key = KEYS["main"][0]
    address, tag = fx.deposit_address(key, "USDT", "TRX")
    before = fx.balance(key, "USDT")[0]
    since = ex.milliseconds() - 1000
    dep = fx.credit_deposit(address=address, tag=tag, coin="USDT", network="TRX", amount="100.5", txid="0xfeed01",
                            delay=0.5)
    (d,) = [x for x in ex.fetch_deposits("USDT", since) if x["txid"] == "0xfeed01"]
    assert (d["status"], d["network"], d["amount"], d["address"], d["type"]) == (
        "pending", "TRC20", 100.5, address, "deposit")
    assert d["id"] == "d" + dep.id and fx.balance(key, "USDT")[0] == before
    CLOCK.advance(0.5)
    (d,) = [x for x in ex.fetch_deposits("USDT", since) if x["txid"] == "0xfeed01"]
    assert d["status"] == "ok" and fx.balance(key, "USDT")[0] == before + D("100.5")
    ton_addr, ton_tag = fx.deposit_address(key, "TON", "TON")
    fx.credit_deposit(address=ton_addr, tag=ton_tag, coin="TON", network="TON", amount="25", txid="TONTX1", delay=0)
    (x,) = ex.fetch_deposits("TON", since)
    assert x["status"] == "ok" and x["tag"] == ton_tag and x["network"] == "TON"


def test_withdraw_with_client_id_and_withdrawal_history(fx, ex):
    wallet = new_client(fx, "wallet", ex)
    key = KEYS["wallet"][0]
    fx.withdraw_delay = 0.5
    seen = []
    fx.add_withdrawal_listener(seen.append)
    try:
        before = fx.balance(key, "USDT")[0]
        w = wallet.withdraw("USDT", 50, TRON_ADDR, {"network": "TRC20", "withdraw_order_id": "mmr0123abcdn1"})
        assert last_body(wallet) == {"currency": "USDT", "address": TRON_ADDR, "amount": "50", "chain": "TRX",
                                     "withdraw_order_id": "mmr0123abcdn1"}
        assert fx.requests_log[-1] == ("POST", "/api/v4/withdrawals", 202)
        assert w["id"].startswith("w") and w["type"] == "withdrawal" and w["status"] == "pending"
        assert (w["amount"], w["fee"]["cost"]) == (49.0, 1.0)  # Gate's amount is gross; ccxt subtracts the fee
        assert fx.balance(key, "USDT")[0] == before - 50
        (p,) = [x for x in wallet.fetch_withdrawals("USDT") if x["id"] == w["id"]]
        assert (p["status"], p["network"], p["amount"], p["fee"]["cost"], p["address"]) == (
            "pending", "TRC20", 49.0, 1.0, TRON_ADDR)
        assert p["info"]["withdraw_order_id"] == "mmr0123abcdn1"  # the client id echoed
        only = wallet.fetch_withdrawals("USDT", None, None, {"withdraw_order_id": "mmr0123abcdn1"})
        assert [x["id"] for x in only] == [w["id"]]
        assert wallet.fetch_withdrawals("USDT", None, None, {"withdraw_order_id": "other"}) == []
        by_id = wallet.fetch_withdrawals(None, None, None, {"withdraw_id": w["id"]})
        assert [x["id"] for x in by_id] == [w["id"]]
        assert seen == []
        CLOCK.advance(0.5)
        (done,) = [x for x in wallet.fetch_withdrawals("USDT") if x["id"] == w["id"]]
        assert done["status"] == "ok" and done["txid"] and int(done["info"]["block_number"]) > 0
        assert [(s.address, s.net_amount, s.withdraw_order_id) for s in seen] == [(TRON_ADDR, D("49"), "mmr0123abcdn1")]
        fx.credit(key, "TON", "10")
        m = wallet.withdraw("TON", 5, TON_ADDR, {"network": "TON", "tag": "12345"})
        assert last_body(wallet)["memo"] == "12345"
        (x,) = [x for x in wallet.fetch_withdrawals("TON") if x["id"] == m["id"]]
        assert x["tag"] == "12345" and x["amount"] == 4.9
    finally:
        fx.remove_withdrawal_listener(seen.append)


def test_withdrawal_refusals_and_faults(fx, ex):
    wallet = new_client(fx, "wallet", ex)
    key = KEYS["wallet"][0]
    before = fx.balance(key, "USDT")[0]
    with pytest.raises(ccxt.InsufficientFunds, match="BALANCE_NOT_ENOUGH"):
        wallet.withdraw("USDT", 1_000_000, TRON_ADDR, {"network": "TRC20"})
    with pytest.raises(ccxt.BadRequest, match="minimum"):  # below 10 on TRX
        wallet.withdraw("USDT", 5, TRON_ADDR, {"network": "TRC20"})
    with pytest.raises(ccxt.BadRequest, match="address"):
        wallet.withdraw("USDT", 50, "0x" + "ab" * 20, {"network": "TRC20"})
    with pytest.raises(ccxt.ArgumentsRequired, match="chain"):  # Gate requires the chain
        wallet.withdraw("USDT", 50, TRON_ADDR)
    with pytest.raises(ccxt.ExchangeNotAvailable, match="API_WITHDRAW_DISABLED"):  # BSC withdrawals off
        wallet.withdraw("USDT", 50, "0x" + "ab" * 20, {"network": "BEP20"})
    fx.inject_withdrawal_fault("reject")
    with pytest.raises(ccxt.ExchangeNotAvailable, match="API_WITHDRAW_DISABLED"):
        wallet.withdraw("USDT", 50, TRON_ADDR, {"network": "TRC20"})
    assert fx.withdrawal_faults_applied[-1] == ("reject", None)
    assert fx.balance(key, "USDT")[0] == before  # nothing debited by any refusal
    fx.withdraw_delay = 0.2
    fx.inject_withdrawal_fault("fail_later")
    w = wallet.withdraw("USDT", 50, TRON_ADDR, {"network": "TRC20", "withdraw_order_id": "fail-1"})
    assert fx.balance(key, "USDT")[0] == before - 50
    CLOCK.advance(0.2)
    (x,) = wallet.fetch_withdrawals(None, None, None, {"withdraw_order_id": "fail-1"})
    assert (x["id"], x["status"], x["info"]["status"]) == (w["id"], "failed", "FAIL")
    assert fx.balance(key, "USDT")[0] == before  # the funds came back
    fx.inject_withdrawal_fault("stuck")
    s = wallet.withdraw("USDT", 50, TRON_ADDR, {"network": "TRC20"})
    CLOCK.advance(0.3)
    assert [x["status"] for x in wallet.fetch_withdrawals("USDT") if x["id"] == s["id"]] == ["pending"]
    fx.finish_withdrawal(s["id"], WITHDRAW_COMPLETED)  # Gate's "w..." id is accepted
    assert [x["status"] for x in wallet.fetch_withdrawals("USDT") if x["id"] == s["id"]] == ["ok"]


# ---------------------------------------------------------------------- through mmflow's ExchangeAccount


def make_cfg(fx: FakeGate, name: str = "acct", **overrides) -> ExchangeAccountConfig:
    key, secret = KEYS[name]
    fields = {"account_id": f"gate-{name}", "ccxt_id": "gate", "api_key": key, "secret": secret,
              "urls": {"api": fx.url}}
    fields.update(overrides)
    return ExchangeAccountConfig(**fields)


@pytest.fixture(scope="module")
def acct(fx):
    account = ExchangeAccount(make_cfg(fx))
    account.load_markets()
    yield account
    account.close()


def test_venue_facts():
    v = venue("gate")
    assert (v.ccxt_id, v.hufi_name) == ("gate", "gate")
    assert v.withdraw_client_id_param == v.withdraw_client_id_field == "withdraw_order_id" and v.has_withdraw_client_id
    assert v.client_id_max_length == 28 and v.used_weight_headers == () and v.trades_page == 1000
    assert v.options["fetchMarkets"] == {"types": ["spot"]}
    assert "LedgerRecord" in v.source and "ccxt 4.5.90" in v.source


def test_account_markets_book_balance_as_decimals(fx, acct):
    fx.requests_log.clear()
    ExchangeAccount(make_cfg(fx)).load_markets()
    assert all(not p.startswith(("/api/v4/futures", "/api/v4/delivery", "/api/v4/options"))
               for _m, p, _s in fx.requests_log)
    rules = acct.market_rules(SYM)
    assert (rules.price_tick, rules.amount_step, rules.min_amount, rules.min_cost) == (
        D("0.01"), D("0.00001"), D("0.00001"), D("5"))
    assert rules.taker_fee == D("0.002")
    assert set(acct.currencies["USDT"]["networks"]) == {"ERC20", "TRC20", "BEP20"}
    book = acct.fetch_order_book(SYM, 5)
    assert book.bids[0] == (D("59994"), book.bids[0][1]) and isinstance(book.bids[0][1], Decimal)
    bal = acct.fetch_balance()
    assert bal["USDT"].free == D("10000") and bal["BTC"].total == D("1")


def test_account_post_only_order_fills_and_trades(fx, acct):
    o = acct.create_limit_order(SYM, "buy", D("0.01"), D("59000.004"), client_order_id=CID)
    assert o.price == D("59000") and o.status == "open" and o.post_only is True and o.amount == D("0.01")
    fx.place_taker(SYM, "sell", "0.004")
    got = acct.fetch_order(SYM, order_id=o.id)
    assert (got.status, got.filled, got.remaining) == ("open", D("0.004"), D("0.006"))
    assert [x.id for x in acct.fetch_open_orders(SYM)] == [o.id]
    fx.place_taker(SYM, "sell", "0.006")
    done = acct.fetch_order(SYM, order_id=o.id)
    assert (done.status, done.filled, done.average) == ("closed", D("0.01"), D("59000"))
    trades = [t for t in acct.fetch_my_trades(SYM) if t.order_id == o.id]
    assert [(t.amount, t.fee, t.fee_currency, t.taker_or_maker) for t in trades] == [
        (D("0.004"), D("0.000004"), "BTC", "maker"), (D("0.006"), D("0.000006"), "BTC", "maker")]
    with pytest.raises(DefinitiveError) as err:  # post-only that would take
        acct.create_limit_order(SYM, "buy", D("0.001"), D("60010"), client_order_id="mmflow-0123456789abcdef-2")
    assert err.value.kind == "invalid_order"
    with pytest.raises(DefinitiveError) as err:
        acct.create_limit_order(SYM, "buy", D("1"), D("59000"), client_order_id="mmflow-0123456789abcdef-3")
    assert err.value.kind == "insufficient_funds"
    with pytest.raises(DefinitiveError) as err:
        acct.fetch_order(SYM, order_id="987654321")
    assert err.value.not_found
    o2 = acct.create_limit_order(SYM, "sell", D("0.001"), D("61000"), client_order_id="mmflow-0123456789abcdef-4")
    assert acct.cancel_order(SYM, order_id=o2.id).status == "canceled"
    # by client id while pending: ccxt's fetch_order sends the text (t-...) as the order id
    o3 = acct.create_limit_order(SYM, "sell", D("0.001"), D("61000"), client_order_id="mmflow-0123456789abcdef-5")
    assert acct.fetch_order(SYM, client_order_id="mmflow-0123456789abcdef-5").id == o3.id


def test_account_client_order_ids_round_trip(fx, acct):
    cid = "mmflow-0123456789abcdef-6"
    o = acct.create_limit_order(SYM, "buy", D("0.001"), D("59000"), client_order_id=cid)
    assert o.client_order_id == cid
    assert [x.client_order_id for x in acct.fetch_open_orders(SYM)] == [cid]
    assert acct.cancel_order(SYM, client_order_id=cid).status == "canceled"


def test_the_longest_mmflow_client_id_fits_gate(acct):
    """Gate's text allows 28 characters after "t-": the first id format outgrew it at the 10000th order of
    an mmflow order; the current one holds up to its last sequence number."""
    from domain.exchange_orders import MAX_SEQ, client_order_id
    with pytest.raises(DefinitiveError):
        acct.create_limit_order(SYM, "buy", D("0.001"), D("59000"), client_order_id="mmflow-0123456789abcdef-10000")
    for cid in (client_order_id("an order", 10000), client_order_id("an order", MAX_SEQ)):
        o = acct.create_limit_order(SYM, "buy", D("0.001"), D("59000"), client_order_id=cid)
        assert o.client_order_id == cid
        assert acct.cancel_order(SYM, client_order_id=cid).status == "canceled"


def test_account_withdrawal_terms(acct):
    terms = acct.withdrawal_terms("USDT", "TRC20")
    assert (terms.fee, terms.minimum, terms.enabled) == (D("1"), D("20"), True)
    assert acct.withdrawal_terms("USDT", "BEP20").enabled is False


def test_account_deposit_address_deposits_withdrawals(fx, acct):
    key = KEYS["acct"][0]
    addr = acct.fetch_deposit_address("TON", "TON")
    assert (addr.address, addr.tag) == fx.deposit_address(key, "TON", "TON") and addr.network == "TON"
    trc = acct.fetch_deposit_address("USDT", "TRC20")
    assert trc.tag is None and trc.network == "TRC20"
    since = int(fx.now() * 1000) - 5000
    fx.credit_deposit(address=trc.address, tag=None, coin="USDT", network="TRX", amount="12.5", txid="0xacc01",
                      delay=0)
    (d,) = [t for t in acct.fetch_deposits("USDT", since) if t.txid == "0xacc01"]
    assert (d.status, d.amount, d.type, d.network) == ("ok", D("12.5"), "deposit", "TRC20")
    fx.withdraw_delay = 0.2
    sent = acct.withdraw("USDT", D("50.1234567"), TRON_ADDR, None, "TRC20", client_id="mmr0123456789abcdefn1")
    assert isinstance(sent, Transfer) and sent.id.startswith("w") and sent.client_id == "mmr0123456789abcdefn1"
    assert sent.amount == D("50.1234")  # ccxt's fixed 0.0001 currency precision (gate 4.5.90)
    assert sent.fee == D("1")
    found = acct.find_withdrawal("mmr0123456789abcdefn1", "USDT", since)
    assert found is not None and (found.id, found.client_id, found.status) == (sent.id, "mmr0123456789abcdefn1", "pending")
    assert (found.amount, found.fee) == (D("49.1234"), D("1"))  # net, as ccxt reports it
    assert fx.withdrawals_of(key)[-1].withdraw_order_id == "mmr0123456789abcdefn1"
    like = acct.withdrawals_like("USDT", address=TRON_ADDR, tag=None, amount=D("50.1234"), since_ms=since)
    assert [t.id for t in like] == [sent.id]
    CLOCK.advance(0.2)
    done = acct.withdrawal_by_id(sent.id, "USDT", since)
    assert done.status == "ok" and done.txid
    fx.inject_withdrawal_fault("reject")
    # API_WITHDRAW_DISABLED: ccxt says ExchangeNotAvailable, the venue table makes it a definitive refusal
    with pytest.raises(DefinitiveError) as err:
        acct.withdraw("USDT", D("50"), TRON_ADDR, None, "TRC20", client_id="mmr0123456789abcdefn2")
    assert err.value.kind == "rejected"
    assert acct.find_withdrawal("mmr0123456789abcdefn2", "USDT", since) is None  # never made: safe to send again
    with pytest.raises(DefinitiveError) as err:
        acct.withdraw("USDT", D("1000000"), TRON_ADDR, None, "TRC20", client_id="mmr0123456789abcdefn3")
    assert err.value.kind == "insufficient_funds"


def test_account_rate_limited(fx):
    account = ExchangeAccount(make_cfg(fx, "acct_f", rate_limit_retries=0))
    account.load_markets()
    fx.inject("/api/v4/spot/order_book", status=429)
    with pytest.raises(RateLimited):
        account.fetch_order_book(SYM)
    assert account.stats.rejected_429 == 1 and account.stats.penalties == 1
    account.close()


# ---------------------------------------------------------------------- end to end through a Gate world


@pytest.fixture
def gworld(monkeypatch):
    from sim.bridge import world_with_exchange

    ew = world_with_exchange(deposit_delay=0.1, venue="gate", api_key="mmflow-gate-key")
    ew.exchange.withdraw_delay = 0.1
    monkeypatch.setenv("MMF_BINANCE_KEY", ew.api_key)  # tests.test_flow_funding.exchange_table reads these
    monkeypatch.setenv("MMF_BINANCE_SECRET", ew.secret)
    yield ew
    ew.stop()
    ew.world.fake.stop()


def test_world_with_exchange_speaks_gate(gworld):
    fx = gworld.exchange
    assert isinstance(fx, FakeGate) and set(fx.engine.markets) == {"BTC_USDT", "ETH_USDT"}
    assert set(fx.wallet.currencies["USDT"].networks) == {"ETH", "TRX", "BSC"}
    client = ccxt.gate(gworld.ccxt_config())
    client.load_markets()
    assert set(client.currencies["USDT"]["networks"]) == {"ERC20", "TRC20", "BEP20"}
    assert gworld.bridge.unmatched == []


def test_an_order_runs_quotes_fills_and_exits_to_settled_on_gate(tmp_path, gworld):
    from sim.world import USDT_ERC20
    from storage import exchange_repo
    from tests.support import wait_until
    from tests.test_flow_exit import assert_settled_and_balanced, exit_memo, pay, run

    fx = gworld.exchange
    # a not-found answer is a verdict 0.5 s after an order's last event (30 s by default): quotes that rest
    # longer than that and are then filled exercise how a finished order is looked up
    with run(tmp_path, gworld, stream={"slow_interval": 0.2, "fast_interval": 0.05, "not_found_grace": 0.5}) as mm:
        user, order_id = pay(gworld, mm)
        mm.wait_state(order_id, "running", timeout=30)
        def both_sides():
            orders = fx.engine.open_orders(gworld.api_key, "BTC_USDT")
            return orders if {o.side for o in orders} == {"BUY", "SELL"} else None

        quotes = wait_until(both_sides, timeout=15, message="a bid and an ask on the fake Gate")
        assert {o.client_order_id[:4] for o in quotes} == {"t-mm"}  # ccxt sent our id as Gate's text
        assert {o.type for o in quotes} == {"LIMIT_MAKER"}  # post-only: time_in_force poc
        gevent.sleep(1.0)  # the quotes rest longer than not_found_grace
        quotes = both_sides()
        bid = max((o for o in quotes if o.side == "BUY"), key=lambda o: o.price)
        ask = min((o for o in quotes if o.side == "SELL"), key=lambda o: o.price)
        fx.place_taker("BTC/USDT", "sell", str(bid.remaining), price=str(bid.price))  # our bid: filled
        fx.place_taker("BTC/USDT", "buy", "0.002", price=str(ask.price))  # our ask: partially filled
        wait_until(lambda: len(exchange_repo.fills_of(order_id)) >= 2, timeout=15, message="both fills recorded")
        filled_cid = bid.client_order_id[len("t-"):]
        wait_until(lambda: exchange_repo.get_exchange_order(filled_cid).state.value == "filled", timeout=15,
                   message=f"{filled_cid} filled in mmflow's orders")
        gworld.world.pay(user, USDT_ERC20, "1", exit_memo(order_id))
        mm.wait_passed(order_id, "stopped", timeout=20)
        _view, statement = assert_settled_and_balanced(mm, order_id)
        assert statement.trading["fills"] >= 1
        assert fx.engine.open_orders(gworld.api_key, "BTC_USDT") == []
        wds = fx.withdrawals_of(gworld.api_key)
        assert {w.coin for w in wds} == {"BTC", "USDT"} and all(w.withdraw_order_id.startswith("mmr") for w in wds)
        assert fx.unknown_paths == [] and fx.internal_errors == [] and gworld.bridge.unmatched == []
        from storage.models import Alert
        assert [(a.kind, a.message) for a in Alert.select()] == []  # no foreign / unresolved orders, no anomalies
