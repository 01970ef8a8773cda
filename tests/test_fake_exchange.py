"""The fake exchange driven by the real, unmodified ``ccxt.binance`` (sync) over loopback HTTP.

One server and one loaded ccxt instance are shared by the module (``load_markets`` is the
slow part); every test uses its own account or cleans up after itself, and an autouse
fixture removes faults, cancels open orders and checks that ccxt never asked for an
endpoint the fake does not serve.
"""
from __future__ import annotations

import time
from decimal import Decimal

import ccxt
import gevent
import pytest

from sim.fake_exchange import FakeExchange
from tests.support import reset_fake_venue

D = Decimal
SYM = "BTC/USDT"
TRON_ADDR = "TKRxqtJ6u9zvrAamF4Xq4p9VBhtrGfZv4R"
XRP_ADDR = "rEb8TK3gBgk5auZkwc6sHnwrGVJH8DuaLh"
KEYS = {name: (f"key-{name}", f"secret-{name}") for name in ("main", "maker", "taker", "wallet", "faults", "proc")}


class Clock:
    """Wall time plus an offset the tests move forward (deposit / withdrawal delays, the not-found
    window) instead of sleeping. ccxt signs with wall time, so the total offset of the module must
    stay well inside ccxt's recvWindow (10 s): each test advances at most a second."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        assert 0 < seconds <= 1.0 and self.offset + seconds < 5.0
        self.offset += seconds


CLOCK = Clock()


def new_client(fx: FakeExchange, name: str, template: ccxt.binance | None = None, **config) -> ccxt.binance:
    key, secret = KEYS.get(name, (name, "x"))
    cfg = fx.ccxt_config(key, secret)
    cfg.update(config)
    ex = ccxt.binance(cfg)
    if template is not None:  # reuse loaded markets/currencies: no exchangeInfo round trip
        ex.set_markets(template.markets, template.currencies)
    return ex


@pytest.fixture(scope="module")
def fx():
    with FakeExchange(seed=7, clock=CLOCK) as server:
        server.add_market(SYM, "BTC", "USDT", tick_size="0.01", step_size="0.00001", min_qty="0.00001",
                          min_notional="5", maker_fee="0.001", taker_fee="0.001", mid="60000")
        server.add_market("ETH/USDT", "ETH", "USDT", tick_size="0.1", step_size="0.001", min_qty="0.01",
                          min_notional="10", maker_fee="0.0008", taker_fee="0.0012", mid="3000",
                          notional_filter="MIN_NOTIONAL")
        server.add_currency("USDT", [
            {"network": "ETH", "withdrawFee": "3", "withdrawMin": "20", "isDefault": True},
            {"network": "TRX", "withdrawFee": "1", "withdrawMin": "10", "withdrawIntegerMultiple": "0.000001"},
            {"network": "BSC", "withdrawFee": "0.5", "withdrawMin": "5", "withdrawEnable": False},
        ], name="TetherUS")
        server.add_currency("BTC", [{"network": "BTC", "withdrawFee": "0.0002", "withdrawMin": "0.001"}])
        server.add_currency("XRP", [{"network": "XRP", "withdrawFee": "0.2", "withdrawMin": "1"}])
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
def clean(request, fx):
    yield
    reset_fake_venue(fx, KEYS.values(), {SYM: "60000", "ETH/USDT": "3000"})


def open_ids(fx, name, symbol="BTCUSDT"):
    return [o.order_id for o in fx.engine.open_orders(KEYS[name][0], symbol)]


# ---------------------------------------------------------------------- markets and currencies


def test_load_markets_requests_and_precision(fx):
    fx.requests_log.clear()
    client = new_client(fx, "main")
    client.load_markets()
    assert fx.requests_log == [
        ("GET", "/sapi/v1/capital/config/getall", 200),
        ("GET", "/api/v3/exchangeInfo", 200),
    ]
    m = client.market(SYM)
    assert m["id"] == "BTCUSDT" and m["spot"] and m["active"]
    assert m["precision"]["amount"] == 0.00001 and m["precision"]["price"] == 0.01
    assert m["limits"]["amount"]["min"] == 0.00001 and m["limits"]["cost"]["min"] == 5.0
    assert client.amount_to_precision(SYM, 0.0012345) == "0.00123"  # truncated to the step
    assert client.price_to_precision(SYM, 59999.126) == "59999.13"  # rounded to the tick
    e = client.market("ETH/USDT")  # the older MIN_NOTIONAL filter name is understood too
    assert e["precision"]["amount"] == 0.001 and e["precision"]["price"] == 0.1
    assert e["limits"]["amount"]["min"] == 0.01 and e["limits"]["cost"]["min"] == 10.0
    assert client.price_to_precision("ETH/USDT", 3000.06) == "3000.1"


def test_currencies_networks_as_ccxt_4_5_90_reports_them(ex):
    usdt = ex.currencies["USDT"]
    # binance network ids ETH/TRX/BSC come out as the unified codes ERC20/TRC20/BEP20
    assert set(usdt["networks"]) == {"ERC20", "TRC20", "BEP20"}
    assert {code: n["id"] for code, n in usdt["networks"].items()} == {"ERC20": "ETH", "TRC20": "TRX", "BEP20": "BSC"}
    trc = usdt["networks"]["TRC20"]
    assert trc["fee"] == 1.0 and trc["limits"]["withdraw"]["min"] == 10.0 and trc["precision"] == 0.000001
    assert trc["deposit"] is True and trc["withdraw"] is True
    assert usdt["networks"]["BEP20"]["withdraw"] is False
    assert usdt["name"] == "TetherUS"
    assert list(ex.currencies["BTC"]["networks"]) == ["BTC"]
    assert list(ex.currencies["XRP"]["networks"]) == ["XRP"]
    fees = ex.fetch_deposit_withdraw_fees(["USDT"])["USDT"]
    assert fees["withdraw"]["fee"] == 3.0  # the isDefault network
    assert {k: v["withdraw"]["fee"] for k, v in fees["networks"].items()} == {"ERC20": 3.0, "TRC20": 1.0, "BEP20": 0.5}


def test_order_book_ticker_time_and_balance(fx, ex):
    book = ex.fetch_order_book(SYM, 5)
    assert book["bids"][0][0] == 59994.0 and book["asks"][0][0] == 60006.0  # 2 bps synthetic spread
    assert len(book["bids"]) == len(book["asks"]) == 5 and book["nonce"] > 0
    t = ex.fetch_ticker(SYM)
    assert (t["bid"], t["ask"]) == (59994.0, 60006.0) and t["last"] == 60000.0
    tickers = ex.fetch_tickers([SYM, "ETH/USDT"])
    assert set(tickers) == {SYM, "ETH/USDT"} and tickers["ETH/USDT"]["bid"] < 3000 < tickers["ETH/USDT"]["ask"]
    assert abs(ex.fetch_time() - fx.now_ms()) < 1000
    bal = ex.fetch_balance()
    assert bal["USDT"] == {"free": 10000.0, "used": 0.0, "total": 10000.0}
    assert bal["BTC"]["free"] == 1.0


# ---------------------------------------------------------------------- orders


def test_limit_order_rests_partially_fills_then_fills_with_maker_fees(fx, ex):
    maker = new_client(fx, "maker", ex)
    key = KEYS["maker"][0]
    usdt0, btc0 = fx.balance(key, "USDT")[0], fx.balance(key, "BTC")[0]
    o = maker.create_order(SYM, "limit", "buy", 0.001, 59999)  # inside the spread: rests, top of book
    assert o["status"] == "open" and o["filled"] == 0.0 and o["trades"] == []
    assert fx.balance(key, "USDT") == (usdt0 - D("59.999"), D("59.999"))

    fills = fx.place_taker(SYM, "sell", "0.0004")
    assert [(f.price, f.qty) for f in fills] == [(D("59999"), D("0.0004"))]
    got = maker.fetch_order(o["id"], SYM)
    assert got["status"] == "open" and got["filled"] == 0.0004 and got["remaining"] == 0.0006

    fx.place_taker(SYM, "sell", "0.001")  # only 0.0006 left to fill; no other account bids
    got = maker.fetch_order(o["id"], SYM)
    assert got["status"] == "closed" and got["filled"] == 0.001 and got["average"] == 59999.0

    trades = maker.fetch_my_trades(SYM)
    assert [(t["order"], t["amount"], t["takerOrMaker"], t["side"]) for t in trades] == [
        (o["id"], 0.0004, "maker", "buy"), (o["id"], 0.0006, "maker", "buy")]
    assert [t["fee"] for t in trades] == [{"currency": "BTC", "cost": 4e-07}, {"currency": "BTC", "cost": 6e-07}]
    assert trades[0]["id"] != trades[1]["id"]
    # fee charged in the asset received: 0.001 BTC bought, 0.000001 BTC fee
    assert fx.balance(key, "BTC") == (btc0 + D("0.000999"), D(0))
    assert fx.balance(key, "USDT") == (usdt0 - D("59.999"), D(0))
    since = trades[1]["timestamp"]
    assert [t["id"] for t in maker.fetch_my_trades(SYM, since)] == [t["id"] for t in trades if t["timestamp"] >= since]


def test_crossing_limit_order_is_a_taker_with_taker_fee(fx, ex):
    taker = new_client(fx, "taker", ex)
    o = taker.create_order(SYM, "limit", "sell", 0.002, 59990)  # best synthetic bid is 59994
    assert o["status"] == "closed" and o["filled"] == 0.002 and o["average"] == 59994.0
    (fill,) = o["trades"]
    assert fill["price"] == 59994.0 and fill["fee"] == {"currency": "USDT", "cost": 0.119988}
    (trade,) = [t for t in taker.fetch_my_trades(SYM) if t["order"] == o["id"]]
    assert trade["takerOrMaker"] == "taker" and trade["side"] == "sell"
    assert trade["fee"] == {"currency": "USDT", "cost": 0.119988}


def test_market_buy_by_cost(fx, ex):
    taker = new_client(fx, "taker", ex)
    o = taker.create_order(SYM, "market", "buy", 0.001, 60006)
    # ccxt sends quoteOrderQty = amount * price cut to the price precision: 60.006 -> 60
    assert "quoteOrderQty=60&" in taker.last_request_body and "quantity" not in taker.last_request_body
    assert fx.requests_log[-1] == ("POST", "/api/v3/order", 200)
    assert o["status"] == "closed" and o["filled"] == 0.00099 and o["cost"] == 59.40594  # whole steps at 60006


def test_cancel_open_orders_and_unknown_order(fx, ex):
    maker = new_client(fx, "maker", ex)
    key = KEYS["maker"][0]
    a = maker.create_order(SYM, "limit", "buy", 0.001, 59000)
    b = maker.create_order(SYM, "limit", "sell", 0.002, 61000)
    assert sorted(o["id"] for o in maker.fetch_open_orders(SYM)) == sorted([a["id"], b["id"]])
    assert fx.balance(key, "BTC")[1] == D("0.002")
    c = maker.cancel_order(b["id"], SYM)
    assert c["status"] == "canceled" and c["id"] == b["id"]
    assert fx.balance(key, "BTC")[1] == D(0)
    assert [o["id"] for o in maker.fetch_open_orders(SYM)] == [a["id"]]
    with pytest.raises(ccxt.OrderNotFound):
        maker.cancel_order(b["id"], SYM)  # already canceled: -2011
    with pytest.raises(ccxt.OrderNotFound):
        maker.cancel_order("999999999", SYM)
    with pytest.raises(ccxt.OrderNotFound):
        maker.fetch_order("999999999", SYM)  # -2013
    assert maker.fetch_order(b["id"], SYM)["status"] == "canceled"
    closed = maker.cancel_all_orders(SYM)
    assert [o["id"] for o in closed] == [a["id"]] and open_ids(fx, "maker") == []
    assert fx.balance(key, "USDT")[1] == D(0)


def test_client_order_ids(fx, ex):
    maker = new_client(fx, "maker", ex)
    o = maker.create_order(SYM, "limit", "buy", 0.001, 59000, {"clientOrderId": "mm-q1"})
    assert o["clientOrderId"] == "mm-q1"
    assert "newClientOrderId=mm-q1" in maker.last_request_body
    by_id = maker.fetch_order(o["id"], SYM)
    by_cid = maker.fetch_order(None, SYM, {"clientOrderId": "mm-q1"})
    assert by_id["id"] == by_cid["id"] == o["id"] and by_cid["clientOrderId"] == "mm-q1"
    assert "origClientOrderId=mm-q1" in maker.last_request_url
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        maker.create_order(SYM, "limit", "buy", 0.001, 58000, {"clientOrderId": "mm-q1"})
    c = maker.cancel_order(None, SYM, {"clientOrderId": "mm-q1"})
    assert c["id"] == o["id"] and c["status"] == "canceled"
    assert c["info"]["origClientOrderId"] == "mm-q1"  # Binance: clientOrderId is the cancel's own id
    again = maker.create_order(SYM, "limit", "buy", 0.001, 58000, {"clientOrderId": "mm-q1"})  # free again
    assert maker.fetch_order(None, SYM, {"clientOrderId": "mm-q1"})["id"] == again["id"] != o["id"]


def test_post_only_rejected_if_it_would_cross(fx, ex):
    maker = new_client(fx, "maker", ex)
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        maker.create_order(SYM, "limit", "buy", 0.001, 60010, {"postOnly": True})
    assert "type=LIMIT_MAKER" in maker.last_request_body
    assert open_ids(fx, "maker") == []
    o = maker.create_order(SYM, "limit", "buy", 0.001, 60005, {"postOnly": True})
    assert o["status"] == "open" and o["postOnly"] is True and o["type"] == "limit"


def test_cancel_replace_through_ccxt_edit_order(fx, ex):
    """ccxt.binance edit_order on spot = POST /api/v3/order/cancelReplace (STOP_ON_FAILURE): the old order is
    cancelled and the new one placed in one request; a failed cancel places nothing (400 -2022); a post-only
    placement that would cross after the cancel leaves the old order cancelled (409 -2021); a filter failure
    cancels nothing. Each failure carries Binance's per-half `data`."""
    maker = new_client(fx, "maker", ex)
    old = maker.create_order(SYM, "limit", "buy", 0.001, 59000, {"clientOrderId": "cr-1"})
    new = maker.edit_order(None, SYM, "limit", "buy", 0.002, 59100,
                           {"clientOrderId": "cr-2", "cancelOrigClientOrderId": "cr-1", "postOnly": True})
    body = maker.last_request_body
    assert maker.last_request_url.endswith("/api/v3/order/cancelReplace")
    for part in ("cancelReplaceMode=STOP_ON_FAILURE", "cancelOrigClientOrderId=cr-1", "newClientOrderId=cr-2",
                 "type=LIMIT_MAKER", "quantity=0.002", "price=59100"):
        assert part in body
    assert new["clientOrderId"] == "cr-2" and new["status"] == "open" and new["price"] == 59100
    assert maker.fetch_order(old["id"], SYM)["status"] == "canceled"
    assert open_ids(fx, "maker") == [int(new["id"])]

    with pytest.raises(ccxt.BaseError, match="-2022") as failed:      # the old one is gone: nothing placed
        maker.edit_order(None, SYM, "limit", "buy", 0.001, 59000, {"clientOrderId": "cr-3",
                                                                  "cancelOrigClientOrderId": "cr-1"})
    assert '"cancelResult":"FAILURE"' in str(failed.value).replace(" ", "")
    assert '"newOrderResult":"NOT_ATTEMPTED"' in str(failed.value).replace(" ", "")
    assert open_ids(fx, "maker") == [int(new["id"])]

    with pytest.raises(ccxt.BaseError, match="-2021") as partial:     # cancelled, the crossing bid refused
        maker.edit_order(None, SYM, "limit", "buy", 0.001, 60010, {"clientOrderId": "cr-4",
                                                                  "cancelOrigClientOrderId": "cr-2",
                                                                  "postOnly": True})
    text = str(partial.value).replace(" ", "")
    assert '"cancelResult":"SUCCESS"' in text and '"newOrderResult":"FAILURE"' in text and "-2010" in text
    assert open_ids(fx, "maker") == []

    keep = maker.create_order(SYM, "limit", "buy", 0.001, 59000, {"clientOrderId": "cr-5"})
    with pytest.raises(ccxt.BadRequest, match="-1013"):                # below min notional: nothing cancelled
        maker.edit_order(None, SYM, "limit", "buy", 0.00001, 59000, {"clientOrderId": "cr-6",
                                                                    "cancelOrigClientOrderId": "cr-5"})
    assert open_ids(fx, "maker") == [int(keep["id"])]


def test_filters_and_insufficient_funds(fx, ex):
    maker = new_client(fx, "maker", ex)
    key = KEYS["maker"][0]
    before = fx.balance(key, "USDT")
    with pytest.raises(ccxt.BadRequest, match="Filter failure: NOTIONAL") as err:  # -1013; 0.00005 * 60000 = 3 < 5
        maker.create_order(SYM, "limit", "buy", 0.00005, 60000)
    assert not isinstance(err.value, ccxt.InvalidOrder)
    with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):  # below ETH/USDT minQty 0.01 (step 0.001)
        maker.create_order("ETH/USDT", "limit", "buy", 0.005, 2900)
    with pytest.raises(ccxt.BadRequest, match="Filter failure: MIN_NOTIONAL"):
        maker.create_order("ETH/USDT", "limit", "buy", 0.01, 900)
    with pytest.raises(ccxt.InsufficientFunds):
        maker.create_order(SYM, "limit", "buy", 1, 59000)  # 59000 USDT > 10000
    with pytest.raises(ccxt.InsufficientFunds):
        maker.create_order(SYM, "limit", "sell", 5, 61000)
    assert fx.balance(key, "USDT") == before and open_ids(fx, "maker") == []
    assert [s for (_m, p, s) in fx.requests_log[-5:]] == [400] * 5


# ---------------------------------------------------------------------- authentication


def test_bad_signature_unknown_key_and_stale_timestamp(fx, ex):
    bad = new_client(fx, "main", ex, secret="not-the-secret")
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        bad.fetch_balance()
    assert fx.auth_failures[-1] == "bad signature"
    stranger = new_client(fx, "stranger", ex)
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        stranger.fetch_balance()
    with pytest.raises(ccxt.AuthenticationError):  # a bad signature is refused before the order exists
        bad.create_order(SYM, "limit", "buy", 0.001, 59000)
    assert open_ids(fx, "main") == []
    with pytest.raises(ccxt.InvalidNonce, match="recvWindow"):
        ex.fetch_balance({"timestamp": ex.milliseconds() - 20_000})  # ccxt sends recvWindow=10000
    assert ex.fetch_balance()["USDT"]["total"] > 0


# ---------------------------------------------------------------------- wallet


def test_deposit_address_with_network_and_tag(fx, ex):
    key = KEYS["main"][0]
    trc = ex.fetch_deposit_address("USDT", {"network": "TRC20"})
    assert trc["network"] == "TRC20" and trc["tag"] is None
    assert (trc["address"], None) == fx.deposit_address(key, "USDT", "TRX")
    assert trc["address"].startswith("T") and len(trc["address"]) == 34
    erc = ex.fetch_deposit_address("USDT", {"network": "ETH"})  # the alias is accepted, reported as ERC20
    assert erc["network"] == "ERC20" and erc["address"].startswith("0x") and len(erc["address"]) == 42
    assert "network=ETH" in ex.last_request_url
    default = ex.fetch_deposit_address("USDT")  # no network: the isDefault one (ETH)
    assert default["address"] == erc["address"] and default["network"] == "ERC20"
    xrp = ex.fetch_deposit_address("XRP")
    assert xrp["network"] == "XRP" and xrp["tag"] is not None and xrp["tag"].isdigit()
    assert (xrp["address"], xrp["tag"]) == fx.deposit_address(key, "XRP", "XRP")
    other = fx.deposit_address(KEYS["maker"][0], "XRP", "XRP")
    assert other[0] == xrp["address"] and other[1] != xrp["tag"]  # shared address, own memo
    assert fx.deposit_address(KEYS["maker"][0], "USDT", "TRX")[0] != trc["address"]
    assert ex.fetch_deposit_address("USDT", {"network": "TRC20"})["address"] == trc["address"]  # stable


def test_deposits_pending_then_ok_after_delay_and_credited_once(fx, ex):
    key = KEYS["main"][0]
    address, tag = fx.deposit_address(key, "USDT", "TRX")
    before = fx.balance(key, "USDT")[0]
    since = ex.milliseconds() - 1
    dep = fx.credit_deposit(address=address, tag=tag, coin="USDT", network="TRX", amount="100.5", txid="0xfeed01",
                            delay=0.5)
    again = fx.credit_deposit(address=address, tag=tag, coin="USDT", network="TRX", amount="100.5", txid="0xfeed01")
    assert again is dep
    (d,) = [x for x in ex.fetch_deposits("USDT", since) if x["txid"] == "0xfeed01"]
    assert (d["status"], d["network"], d["amount"], d["address"], d["type"]) == ("pending", "TRC20", 100.5, address, "deposit")
    assert fx.balance(key, "USDT")[0] == before
    CLOCK.advance(0.3)
    assert ex.fetch_deposits("USDT", since)[0]["status"] == "pending" and fx.balance(key, "USDT")[0] == before
    CLOCK.advance(0.2)
    (d,) = [x for x in ex.fetch_deposits("USDT", since) if x["txid"] == "0xfeed01"]
    assert d["status"] == "ok" and d["id"] == dep.id
    assert fx.balance(key, "USDT")[0] == before + D("100.5")
    fx.credit_deposit(address=address, tag=tag, coin="USDT", network="TRX", amount="100.5", txid="0xfeed01", delay=0)
    assert fx.balance(key, "USDT")[0] == before + D("100.5")  # same txid: credited once
    xrp_addr, xrp_tag = fx.deposit_address(key, "XRP", "XRP")
    fx.credit_deposit(address=xrp_addr, tag=xrp_tag, coin="XRP", network="XRP", amount="25", txid="XRPTX1", delay=0)
    (x,) = ex.fetch_deposits("XRP", since)
    assert x["status"] == "ok" and x["tag"] == xrp_tag and fx.balance(key, "XRP")[0] == D("25")
    with pytest.raises(ValueError, match="not a deposit address"):
        fx.credit_deposit(address=TRON_ADDR, tag=None, coin="USDT", network="TRX", amount="1", txid="0xnope")
    with pytest.raises(ValueError):
        fx.credit_deposit(address=xrp_addr, tag="1", coin="XRP", network="XRP", amount="1", txid="0xnope")


def test_withdraw_and_fetch_withdrawals(fx, ex):
    wallet = new_client(fx, "wallet", ex)
    key = KEYS["wallet"][0]
    fx.withdraw_delay = 0.5
    seen = []
    fx.add_withdrawal_listener(seen.append)
    before = fx.balance(key, "USDT")[0]
    w = wallet.withdraw("USDT", 50, TRON_ADDR, {"network": "TRC20"})
    assert w["id"] and w["status"] is None  # binance's withdraw reply carries only the id
    assert "network=TRX" in wallet.last_request_body and "amount=50" in wallet.last_request_body
    assert fx.balance(key, "USDT")[0] == before - 50
    (p,) = [x for x in wallet.fetch_withdrawals("USDT") if x["id"] == w["id"]]
    assert (p["status"], p["network"], p["amount"], p["fee"]["cost"], p["address"]) == ("pending", "TRC20", 49.0, 1.0, TRON_ADDR)
    assert seen == []
    CLOCK.advance(0.5)
    (done,) = [x for x in wallet.fetch_withdrawals("USDT") if x["id"] == w["id"]]
    assert done["status"] == "ok" and done["txid"]
    assert [(s.id, s.address, s.net_amount) for s in seen] == [(w["id"], TRON_ADDR, D("49"))]

    with pytest.raises(ccxt.InsufficientFunds):  # no XRP yet
        wallet.withdraw("XRP", 5, XRP_ADDR, {"tag": "12345", "network": "XRP"})
    fx.credit(key, "XRP", "100")
    m = wallet.withdraw("XRP", 5, XRP_ADDR, {"tag": "12345", "network": "XRP"})
    assert "addressTag=12345" in wallet.last_request_body
    (x,) = [x for x in wallet.fetch_withdrawals("XRP") if x["id"] == m["id"]]
    assert x["tag"] == "12345" and x["amount"] == 4.8

    with pytest.raises(ccxt.InsufficientFunds):  # -4026, mapped through the spot error table
        wallet.withdraw("USDT", 1_000_000, TRON_ADDR, {"network": "TRC20"})
    with pytest.raises(ccxt.BadRequest, match="-4022"):  # below withdrawMin 10
        wallet.withdraw("USDT", 5, TRON_ADDR, {"network": "TRC20"})
    with pytest.raises(ccxt.BadRequest, match="-4019"):  # BSC withdrawals disabled
        wallet.withdraw("USDT", 50, "0x" + "ab" * 20, {"network": "BEP20"})
    with pytest.raises(ccxt.PermissionDenied, match="-4007"):  # not a Tron address
        wallet.withdraw("USDT", 50, "0x" + "ab" * 20, {"network": "TRC20"})
    # without the spot error table (ccxt picks it by hostname) the same -4026 is only a BadRequest
    plain_cfg = fx.ccxt_config(*KEYS["wallet"], spot_error_tables=False)
    plain = ccxt.binance(plain_cfg)
    plain.set_markets(ex.markets, ex.currencies)
    with pytest.raises(ccxt.BadRequest) as err:
        plain.withdraw("USDT", 1_000_000, TRON_ADDR, {"network": "TRC20"})
    assert not isinstance(err.value, ccxt.InsufficientFunds)
    assert fx.balance(key, "USDT")[0] == before - 50


# ---------------------------------------------------------------------- faults


def test_rate_limit_429_then_418_ban(fx, ex):
    fx.rate_limit(30, ban_after=2, ban_seconds=60)  # depth without limit weighs 5: 6 calls fit
    for _ in range(6):
        ex.fetch_order_book(SYM)
    assert fx.weight_stats["api_used_1m"] == 30
    assert ex.last_response_headers["X-MBX-USED-WEIGHT-1M"] == "30"
    with pytest.raises(ccxt.DDoSProtection) as first:
        ex.fetch_order_book(SYM)
    assert "429" in str(first.value) and "-1003" in str(first.value)
    assert int(ex.last_response_headers["Retry-After"]) >= 1
    with pytest.raises(ccxt.DDoSProtection):
        ex.fetch_order_book(SYM)  # still inside Retry-After: hammering, 429 again
    with pytest.raises(ccxt.DDoSProtection) as ban:
        ex.fetch_order_book(SYM)  # hammering again: banned
    assert "418" in str(ban.value) and "banned" in str(ban.value)
    with pytest.raises(ccxt.DDoSProtection):
        ex.fetch_ticker(SYM)  # the ban covers every /api request
    assert [s for (_m, _p, s) in fx.requests_log[-4:]] == [429, 429, 418, 418]
    assert isinstance(first.value, ccxt.NetworkError) and not isinstance(first.value, ccxt.RateLimitExceeded)
    assert fx.weight_stats["count_429"] == 2 and fx.weight_stats["count_418"] == 2
    ex.fetch_deposit_address("USDT", {"network": "TRC20"})  # /sapi has its own budget
    fx.rate_limit(None)
    ex.fetch_order_book(SYM)
    # binance maps 418/429 to DDoSProtection before reading the body; RateLimitExceeded only comes
    # from a -1003 code under another status
    fx.inject("/api/v3/depth", status=400, error_code=-1003, msg="Too many requests.")
    with pytest.raises(ccxt.RateLimitExceeded):
        ex.fetch_order_book(SYM)


def test_injected_5xx_and_429(fx, ex):
    fx.inject("/api/v3/depth", status=503, count=2)
    for _ in range(2):
        with pytest.raises(ccxt.ExchangeNotAvailable):
            ex.fetch_order_book(SYM)
    fx.inject("/api/v3/ticker", status=500)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        ex.fetch_ticker(SYM)
    fx.inject("/api/v3/ticker", status=500, error_code=-1000, msg="An unknown error occured while processing the request.")
    with pytest.raises(ccxt.OperationFailed) as err:  # Binance's JSON 500: OperationFailed, not ExchangeNotAvailable
        ex.fetch_ticker(SYM)
    assert not isinstance(err.value, ccxt.ExchangeNotAvailable)
    fx.inject("/api/v3/account", status=429, retry_after=7)
    with pytest.raises(ccxt.DDoSProtection):
        ex.fetch_balance()
    assert ex.last_response_headers["Retry-After"] == "7"
    assert ex.fetch_order_book(SYM)["bids"] and ex.fetch_balance()["USDT"]["total"] > 0
    assert [s for (_m, _p, s) in fx.requests_log[-7:]] == [503, 503, 500, 500, 429, 200, 200]


def test_timeout_after_apply_leaves_the_order_on_the_exchange(fx, ex):
    client = new_client(fx, "faults", ex)
    fx.inject("/api/v3/order", method="POST", status=200, delay=1.0, after_apply=True)
    client.timeout = 300  # ms, only for the call that is lost
    with pytest.raises(ccxt.RequestTimeout):
        client.create_order(SYM, "limit", "buy", 0.001, 59000, {"clientOrderId": "lost-1"})
    client.timeout = 10_000
    (o,) = fx.engine.open_orders(KEYS["faults"][0], "BTCUSDT")
    assert o.client_order_id == "lost-1"
    found = client.fetch_order(None, SYM, {"clientOrderId": "lost-1"})  # the outcome is recoverable
    assert found["status"] == "open" and found["id"] == str(o.order_id)
    fx.inject("/api/v3/order", method="DELETE", status=503, after_apply=True)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.cancel_order(found["id"], SYM)
    assert client.fetch_order(found["id"], SYM)["status"] == "canceled"  # the cancel did happen
    fx.inject("/api/v3/order", method="POST", status=503)  # before apply: nothing happens
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.create_order(SYM, "limit", "buy", 0.001, 59000, {"clientOrderId": "lost-2"})
    with pytest.raises(ccxt.OrderNotFound):
        client.fetch_order(None, SYM, {"clientOrderId": "lost-2"})


def test_order_not_found_window(fx, ex):
    client = new_client(fx, "faults", ex)
    fx.order_not_found_window(0.5, include_cancel=True)
    o = client.create_order(SYM, "limit", "buy", 0.001, 59000)
    with pytest.raises(ccxt.OrderNotFound):
        client.fetch_order(o["id"], SYM)
    with pytest.raises(ccxt.OrderNotFound):
        client.cancel_order(o["id"], SYM)
    assert [x["id"] for x in client.fetch_open_orders(SYM)] == [o["id"]]  # listed, yet not found
    CLOCK.advance(0.5)
    assert client.fetch_order(o["id"], SYM)["status"] == "open"
    assert client.cancel_order(o["id"], SYM)["status"] == "canceled"


# ---------------------------------------------------------------------- price process


def test_moving_the_mid_fills_resting_quotes(fx, ex):
    maker = new_client(fx, "proc", ex)
    bid = maker.create_order(SYM, "limit", "buy", 0.001, 59990)  # behind the synthetic best bid 59994
    fx.set_mid(SYM, "59900")  # the ladder's new asks cross it: filled as maker at 59990
    got = maker.fetch_order(bid["id"], SYM)
    assert got["status"] == "closed" and got["average"] == 59990.0
    (t,) = [t for t in maker.fetch_my_trades(SYM) if t["order"] == bid["id"]]
    assert t["takerOrMaker"] == "maker"
    book = maker.fetch_order_book(SYM, 1)
    assert book["bids"][0][0] < 59900 < book["asks"][0][0]


def test_price_process_moves_mid_and_synthetic_takers_fill_quotes(fx, ex):
    maker = new_client(fx, "proc", ex)
    start_mid = fx.mid(SYM)
    bid = maker.create_order(SYM, "limit", "buy", 0.001, 59999)  # top of book on both sides
    ask = maker.create_order(SYM, "limit", "sell", 0.001, 60001)
    fx.start_price_process(interval=0.02, vol=0.0003, taker_prob=1.0)
    deadline = time.time() + 5
    statuses = ("open", "open")
    while time.time() < deadline and statuses == ("open", "open"):
        gevent.sleep(0.05)
        statuses = (maker.fetch_order(bid["id"], SYM)["status"], maker.fetch_order(ask["id"], SYM)["status"])
    fx.stop_price_process()
    assert "closed" in statuses
    assert fx.mid(SYM) != start_mid
    assert maker.fetch_ticker(SYM)["baseVolume"] > 0
