"""The Bybit dialect of the fake exchange (sim/fake_exchange/bybit.py) driven by the real, unmodified
``ccxt.bybit`` 4.5.90 over loopback HTTP, then through mmflow's ExchangeAccount, then end to end.

One server and one loaded ccxt instance are shared by the module; every test uses its own account or
cleans up after itself, and an autouse fixture removes faults, cancels open orders and checks that ccxt
never asked for an endpoint the fake does not serve.

Bybit differs where mmflow had to learn it (venue fields in integrations/exchange/venues/bybit.py): the
client order id travels as ``orderLinkId``, a lookup by it goes through the open-orders endpoint, trade
pages hold the newest trades, and a withdrawal names its destination in ``addressTo``.
"""
from __future__ import annotations

import time
from decimal import Decimal

import ccxt
import gevent
import pytest

from domain.exchange_config import ExchangeAccountConfig
from integrations.exchange.account import ExchangeAccount
from integrations.exchange.errors import (
    AuthenticationFailed,
    DefinitiveError,
    RateLimited,
)
from integrations.exchange.limiter import WeightedLimiter
from integrations.exchange.venues import venue
from sim.bridge import world_with_exchange
from sim.fake_exchange.bybit import FAKE, ORDER_ID_BASE, FakeBybit
from tests.support import reset_fake_venue

D = Decimal
SYM = "BTC/USDT"
TRON_ADDR = "TKRxqtJ6u9zvrAamF4Xq4p9VBhtrGfZv4R"
XRP_ADDR = "rEb8TK3gBgk5auZkwc6sHnwrGVJH8DuaLh"
KEYS = {name: (f"bkey-{name}", f"bsecret-{name}") for name in
        ("main", "maker", "wallet", "faults", "acct", "acct-wallet", "acct-limits")}
KEYS["acct-pages"] = ("acct-pages", "bsecret-acct-pages")

def new_client(fx: FakeBybit, name: str, template: ccxt.bybit | None = None, **config) -> ccxt.bybit:
    key, secret = KEYS.get(name, (name, "x"))
    cfg = fx.ccxt_config(key, secret)
    cfg.update(config)
    ex = ccxt.bybit(cfg)
    if template is not None:  # reuse loaded markets/currencies: no round trips
        ex.set_markets(template.markets, template.currencies)
    return ex


@pytest.fixture(scope="module")
def fx():
    with FakeBybit(seed=5) as server:
        server.add_market(SYM, "BTC", "USDT", tick_size="0.01", step_size="0.00001", min_qty="0.00001",
                          min_notional="5", maker_fee="0.001", taker_fee="0.002", mid="60000")
        server.add_market("ETH/USDT", "ETH", "USDT", tick_size="0.1", step_size="0.001", min_qty="0.01",
                          min_notional="10", mid="3000")
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
def clean(fx):
    yield
    reset_fake_venue(fx, KEYS.values(), {SYM: "60000"})


def count(fx, method: str, path: str) -> int:
    return sum(1 for m, p, _s in fx.requests_log if m == method and p == path)


# ---------------------------------------------------------------------- markets and currencies


def test_module_exports_the_fake_and_bybit_network_ids():
    assert FAKE is FakeBybit and FakeBybit.venue == "bybit"
    # ccxt 4.5.90 bybit: options.networks ERC20->ETH, TRC20->TRX, BEP20->BSC, BTC->BTC
    ex = ccxt.bybit()
    assert {code: ex.network_code_to_id(code) for code in FakeBybit.NETWORK_IDS} == FakeBybit.NETWORK_IDS


def test_load_markets_asks_only_spot_instruments_and_coin_info(fx):
    fx.requests_log.clear()
    client = new_client(fx, "main")
    client.load_markets()
    client.fetch_balance()  # no /v5/user/query-api, /v5/account/info: the UTA options answer for them
    assert fx.requests_log == [
        ("GET", "/v5/asset/coin/query-info", 200),
        ("GET", "/v5/market/instruments-info", 200),
        ("GET", "/v5/account/wallet-balance", 200),
    ]
    m = client.market(SYM)
    assert m["id"] == "BTCUSDT" and m["spot"] and m["active"] and m["type"] == "spot"
    assert (m["precision"]["amount"], m["precision"]["price"]) == (0.00001, 0.01)
    assert m["limits"]["amount"]["min"] == 0.00001 and m["limits"]["cost"]["min"] == 5.0
    assert client.amount_to_precision(SYM, 0.0012345) == "0.00123"
    assert client.price_to_precision(SYM, 59999.126) == "59999.13"
    assert set(client.markets) == {"BTC/USDT", "ETH/USDT"}


def test_currencies_networks_fees_minimums_precision(ex):
    usdt = ex.currencies["USDT"]
    assert set(usdt["networks"]) == {"ERC20", "TRC20", "BEP20"}
    assert {code: n["id"] for code, n in usdt["networks"].items()} == {"ERC20": "ETH", "TRC20": "TRX", "BEP20": "BSC"}
    trc = usdt["networks"]["TRC20"]
    assert (trc["fee"], trc["limits"]["withdraw"]["min"], trc["precision"]) == (1.0, 10.0, 0.000001)
    assert trc["deposit"] is True and trc["withdraw"] is True
    assert usdt["networks"]["BEP20"]["withdraw"] is False  # chainWithdraw "0"
    assert usdt["name"] == "TetherUS"
    assert list(ex.currencies["BTC"]["networks"]) == ["BTC"]
    assert ex.currencies["BTC"]["networks"]["BTC"]["fee"] == 0.0002


# ---------------------------------------------------------------------- market data, balance


def test_order_book_ticker_time_and_balance(fx, ex):
    book = ex.fetch_order_book(SYM, 5)
    assert len(book["bids"]) == len(book["asks"]) == 5
    assert book["bids"][0][0] == 59994.0 and book["asks"][0][0] == 60006.0 and book["nonce"] is None
    assert ex.fetch_order_book(SYM)["asks"][0][0] == 60006.0  # ccxt's default limit (50) is in range
    t = ex.fetch_ticker(SYM)
    assert (t["bid"], t["ask"], t["last"]) == (59994.0, 60006.0, 60000.0)
    assert abs(ex.fetch_time() - time.time() * 1000) < 5000
    b = ex.fetch_balance()
    assert b["USDT"] == {"free": 10000.0, "used": 0.0, "total": 10000.0, "debt": 0.0}
    assert b["BTC"]["total"] == 1.0
    assert "XRP" not in b  # zero balances are not listed
    with pytest.raises(ccxt.BadSymbol):  # Bybit's 10001 "Not supported symbols"
        ex.publicGetV5MarketOrderbook({"category": "spot", "symbol": "NOPEUSDT"})


# ---------------------------------------------------------------------- orders


def test_post_only_order_rests_then_fills_partially_and_fully(fx, ex):
    maker = new_client(fx, "maker", ex)
    key = KEYS["maker"][0]
    o = maker.create_order(SYM, "limit", "buy", 0.002, 59000, {"postOnly": True, "clientOrderId": "bb-po-1"})
    assert o["id"] == fx.order_id_of(key, "bb-po-1") and o["clientOrderId"] == "bb-po-1"
    (engine_order,) = fx.engine.open_orders(key, "BTCUSDT")
    assert engine_order.type == "LIMIT_MAKER" and engine_order.price == D("59000")
    assert maker.fetch_balance()["USDT"] == {"free": 9882.0, "used": 118.0, "total": 10000.0, "debt": 0.0}
    got = maker.fetch_order(o["id"], SYM)
    assert (got["status"], got["timeInForce"], got["postOnly"], got["filled"], got["remaining"]) == (
        "open", "PO", True, 0.0, 0.002)

    fx.place_taker(SYM, "sell", "0.0005")  # a partial fill of our bid, we are the maker
    got = maker.fetch_order(o["id"], SYM)
    assert (got["status"], got["filled"], got["remaining"], got["info"]["orderStatus"]) == (
        "open", 0.0005, 0.0015, "PartiallyFilled")
    assert [x["id"] for x in maker.fetch_open_orders(SYM)] == [o["id"]]
    (trade,) = maker.fetch_my_trades(SYM)
    assert (trade["order"], trade["side"], trade["takerOrMaker"], trade["price"], trade["amount"]) == (
        o["id"], "buy", "maker", 59000.0, 0.0005)
    assert trade["fee"]["currency"] == "BTC" and trade["fee"]["cost"] == 0.0000005  # maker 0.1 % of the BTC bought
    assert trade["info"]["orderLinkId"] == "bb-po-1" and trade["info"]["leavesQty"] == "0.0015"

    fx.place_taker(SYM, "sell", "0.0015")  # the rest
    got = maker.fetch_order(o["id"], SYM)
    assert (got["status"], got["filled"], got["remaining"], got["average"]) == ("closed", 0.002, 0.0, 59000.0)
    assert got["fee"] == {"cost": 0.000002, "currency": "BTC"}
    assert maker.fetch_open_orders(SYM) == []
    trades = maker.fetch_my_trades(SYM)
    assert sorted(t["amount"] for t in trades) == [0.0005, 0.0015]
    assert maker.fetch_balance()["BTC"]["total"] == 1.002 - 0.000002
    # the same order found by its orderLinkId (GET /v5/order/realtime finds closed orders by id too)
    (by_link,) = maker.fetch_open_orders(SYM, None, None, {"orderLinkId": "bb-po-1"})
    assert by_link["id"] == o["id"] and by_link["status"] == "closed"


def test_post_only_that_would_take_is_accepted_then_cancelled(fx, ex):
    o = ex.create_order(SYM, "limit", "buy", 0.001, 60010, {"postOnly": True, "clientOrderId": "bb-po-x"})
    assert o["id"] and o["status"] is None  # the acknowledgement carries ids only
    got = ex.fetch_order(o["id"], SYM)
    assert got["status"] == "canceled" and got["filled"] == 0.0
    assert got["info"]["rejectReason"] == "EC_PostOnlyWillTakeLiquidity"
    assert fx.engine.open_orders(KEYS["main"][0], "BTCUSDT") == []
    assert ex.fetch_balance()["USDT"]["used"] == 0.0  # nothing locked, nothing traded
    assert ex.fetch_open_orders(SYM) == []


def test_cancel_by_client_order_id_and_partial_cancel_is_closed(fx, ex):
    a = ex.create_order(SYM, "limit", "buy", 0.001, 59500, {"postOnly": True, "clientOrderId": "bb-c-1"})
    b = ex.create_order(SYM, "limit", "sell", 0.002, 60500, {"clientOrderId": "bb-c-2"})
    assert {x["clientOrderId"] for x in ex.fetch_open_orders(SYM)} == {"bb-c-1", "bb-c-2"}
    c = ex.cancel_order(None, SYM, {"orderLinkId": "bb-c-1"})
    assert c["id"] == a["id"] and c["clientOrderId"] == "bb-c-1"
    assert ex.fetch_order(a["id"], SYM)["status"] == "canceled"
    fx.place_taker(SYM, "buy", "0.0005")
    ex.cancel_order(b["id"], SYM)
    got = ex.fetch_order(b["id"], SYM)
    # spot's PartiallyFilledCanceled is "closed" in ccxt 4.5.90 (ccxt issue 18685)
    assert (got["info"]["orderStatus"], got["status"], got["filled"]) == ("PartiallyFilledCanceled", "closed", 0.0005)
    assert ex.fetch_open_orders(SYM) == []
    with pytest.raises(ccxt.OrderNotFound):  # 170213, also for an order that is no longer open
        ex.cancel_order(None, SYM, {"orderLinkId": "bb-c-1"})


def test_order_errors_map_to_ccxt_exceptions(fx, ex):
    with pytest.raises(ccxt.OrderNotFound):  # cancel of an unknown order: 170213
        ex.cancel_order(None, SYM, {"orderLinkId": "bb-nobody"})
    with pytest.raises(ccxt.OrderNotFound):  # realtime lists nothing: ccxt raises it itself
        ex.fetch_order(str(ORDER_ID_BASE + 987654), SYM)
    with pytest.raises(ccxt.InsufficientFunds) as err:  # 59000 USDT > 10000
        ex.create_order(SYM, "limit", "buy", 1, 59000, {"clientOrderId": "bb-e-1"})
    assert "170131" in str(err.value)
    ex.create_order(SYM, "limit", "buy", 0.001, 59000, {"clientOrderId": "bb-e-2"})
    ex.cancel_order(None, SYM, {"orderLinkId": "bb-e-2"})
    with pytest.raises(ccxt.InvalidOrder) as err:  # an orderLinkId is never reused, open or not
        ex.create_order(SYM, "limit", "buy", 0.001, 58000, {"clientOrderId": "bb-e-2"})
    assert "170141" in str(err.value)
    base = {"category": "spot", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": "0.001"}
    with pytest.raises(ccxt.InvalidOrder) as err:
        ex.privatePostV5OrderCreate(dict(base, price="59000.001"))
    assert "170134" in str(err.value)
    with pytest.raises(ccxt.InvalidOrder) as err:
        ex.privatePostV5OrderCreate(dict(base, price="59000", qty="0.0000011"))
    assert "170137" in str(err.value)
    with pytest.raises(ccxt.InvalidOrder) as err:
        ex.privatePostV5OrderCreate(dict(base, price="100", qty="0.001"))  # 0.1 USDT < minOrderAmt 5
    assert "170140" in str(err.value)
    with pytest.raises(ccxt.InvalidOrder):
        ex.privatePostV5OrderCreate(dict(base, symbol="NOPEUSDT", price="1"))  # 170121
    assert fx.engine.open_orders(KEYS["main"][0], "BTCUSDT") == []


def test_signature_unknown_key_and_timestamp(fx, ex):
    bad = new_client(fx, "main", ex, secret="not-the-secret")
    with pytest.raises(ccxt.AuthenticationError) as err:
        bad.fetch_balance()
    assert "10004" in str(err.value) and "error sign" in str(err.value)
    stranger = new_client(fx, "stranger", ex)
    with pytest.raises(ccxt.AuthenticationError) as err:
        stranger.fetch_balance()
    assert "10003" in str(err.value)
    clock = fx.clock
    fx.clock = lambda: time.time() + 30  # the server is 30 s ahead: our timestamp left the recv window
    try:
        with pytest.raises(ccxt.InvalidNonce) as err:
            ex.fetch_balance()
        assert "10002" in str(err.value)
    finally:
        fx.clock = clock
    assert ex.fetch_balance()["USDT"]["total"] > 0
    assert fx.auth_failures[-3:] == ["bad signature", "unknown api key", "timestamp outside recv_window"]


# ---------------------------------------------------------------------- rate limits and faults


def test_rate_limit_answers_10006_with_bybit_limit_headers(fx, ex):
    client = new_client(fx, "faults", ex)
    client.fetch_open_orders(SYM)
    assert client.last_response_headers["X-Bapi-Limit"] == "50"  # documented for /v5/order/realtime
    fx.rate_limit(per_endpoint={"/v5/order/realtime": (2, 5.0)})
    client.fetch_open_orders(SYM)
    assert client.last_response_headers["X-Bapi-Limit-Status"] == "1"
    client.fetch_open_orders(SYM)
    with pytest.raises(ccxt.RateLimitExceeded) as err:
        client.fetch_open_orders(SYM)
    assert "10006" in str(err.value) and fx.count_10006 == 1
    assert int(client.last_response_headers["X-Bapi-Limit-Reset-Timestamp"]) > fx.now_ms()
    client.fetch_balance()  # another endpoint has its own budget
    fx.inject("/v5/order/create", status=429, method="POST")
    with pytest.raises(ccxt.RateLimitExceeded):
        client.create_order(SYM, "limit", "buy", 0.001, 59000, {"clientOrderId": "bb-429"})
    assert fx.engine.open_orders(KEYS["faults"][0], "BTCUSDT") == []  # refused before execution
    fx.reset_faults()
    fx.ip_rate_limit(3, window=5.0, ban_seconds=60.0)
    for _ in range(3):
        client.fetch_order_book(SYM)
    with pytest.raises(ccxt.RateLimitExceeded):  # 403 "access too frequent": ccxt bybit maps 403 to it
        client.fetch_order_book(SYM)
    assert fx.count_403 == 1


def test_injected_gateway_errors(fx, ex):
    fx.inject("/v5/market/orderbook", status=503)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        ex.fetch_order_book(SYM)
    fx.inject("/v5/account/wallet-balance", status=500, error_code=10016, msg="Server error.")
    with pytest.raises(ccxt.ExchangeError) as err:
        ex.fetch_balance()
    assert "10016" in str(err.value)


# ---------------------------------------------------------------------- wallet


def test_deposit_address_with_and_without_tag(fx, ex):
    trc = ex.fetch_deposit_address("USDT", {"network": "TRC20"})
    assert trc["network"] == "TRC20" and trc["tag"] is None
    assert (trc["address"], None) == fx.deposit_address(KEYS["main"][0], "USDT", "TRX")
    default = ex.fetch_deposit_address("USDT")  # ccxt's default network for USDT is TRC20
    assert default["network"] == "TRC20"
    erc = ex.fetch_deposit_address("USDT", {"network": "ERC20"})
    assert erc["address"].startswith("0x") and erc["info"]["chain"] == "ETH"
    xrp = ex.fetch_deposit_address("XRP", {"network": "XRP"})
    assert xrp["network"] == "XRP" and xrp["tag"] and xrp["tag"].isdigit()
    assert (xrp["address"], xrp["tag"]) == fx.deposit_address(KEYS["main"][0], "XRP", "XRP")


def test_credited_deposit_is_pending_then_ok(fx, ex):
    wallet = new_client(fx, "wallet", ex)
    key = KEYS["wallet"][0]
    address, tag = fx.deposit_address(key, "XRP", "XRP")
    since = int(time.time() * 1000) - 1
    fx.credit_deposit(address=address, tag=tag, coin="XRP", network="XRP", amount="25.5", txid="BYBITDEP1", delay=0.3)
    (d,) = [x for x in wallet.fetch_deposits("XRP", since) if x["txid"] == "BYBITDEP1"]
    assert (d["status"], d["type"], d["network"], d["amount"], d["addressTo"], d["tag"]) == (
        "pending", "deposit", "XRP", 25.5, address, tag)
    gevent.sleep(0.35)
    (d,) = [x for x in wallet.fetch_deposits("XRP", since) if x["txid"] == "BYBITDEP1"]
    assert d["status"] == "ok" and d["id"]
    assert wallet.fetch_balance()["XRP"]["total"] == 25.5


def test_withdraw_fee_types_request_id_and_history(fx, ex):
    wallet = new_client(fx, "wallet", ex)
    key = KEYS["wallet"][0]
    fx.withdraw_delay = None  # completed by hand
    try:
        w = wallet.withdraw("USDT", 50, TRON_ADDR, {"network": "TRC20", "requestId": "mmflowbybit1"})
        (record,) = [x for x in fx.withdrawals_of(key) if x.id == w["id"]]
        # feeType 0 (ccxt's default): 50 arrives, the fee is debited on top
        assert (record.amount, record.fee, record.net_amount, record.network) == (D("51"), D("1"), D("50"), "TRX")
        assert fx.balance(key, "USDT") == (D("9949"), D("0"))
        with pytest.raises(ccxt.ExchangeError) as err:  # requestId is an idempotency key: 131082
            wallet.withdraw("USDT", 50, TRON_ADDR, {"network": "TRC20", "requestId": "mmflowbybit1"})
        assert "131082" in str(err.value) and fx.balance(key, "USDT")[0] == D("9949")
        w2 = wallet.withdraw("USDT", 30, TRON_ADDR, {"network": "TRC20", "feeType": 1})
        (record2,) = [x for x in fx.withdrawals_of(key) if x.id == w2["id"]]
        assert (record2.amount, record2.net_amount) == (D("30"), D("29"))  # feeType 1: the fee comes out of it
        rows = {x["id"]: x for x in wallet.fetch_withdrawals("USDT")}
        first = rows[w["id"]]
        assert (first["status"], first["amount"], first["fee"]["cost"], first["network"], first["addressTo"]) == (
            "pending", 50.0, 1.0, "TRC20", TRON_ADDR)
        assert "requestId" not in first["info"]  # Bybit does not echo it: no client id in the record
        assert rows[w2["id"]]["amount"] == 29.0
        fx.finish_withdrawal(w["id"])
        done = {x["id"]: x for x in wallet.fetch_withdrawals("USDT")}[w["id"]]
        assert done["status"] == "ok" and done["txid"]
        m = wallet.withdraw("XRP", 5, XRP_ADDR, {"network": "XRP", "tag": "4242"})
        (rec,) = [x for x in fx.withdrawals_of(key) if x.id == m["id"]]
        assert rec.tag == "4242" and wallet.fetch_withdrawals("XRP")[0]["tag"] == "4242"
        with pytest.raises(ccxt.BadRequest):  # 131096: below the chain's minimum
            wallet.withdraw("USDT", 5, TRON_ADDR, {"network": "TRC20"})
        with pytest.raises(ccxt.InsufficientFunds):
            wallet.withdraw("USDT", 1000000, TRON_ADDR, {"network": "TRC20"})
        fx.credit(key, "BTC", "0.0011")  # covers 0.001 but not 0.001 + the 0.0002 fee
        with pytest.raises(ccxt.InsufficientFunds) as err:
            wallet.withdraw("BTC", 0.001, "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", {"network": "BTC"})
        assert "131001" in str(err.value)
        fx.credit(key, "BTC", "1")
    finally:
        fx.withdraw_delay = 1.0


def test_rejected_and_failed_withdrawals(fx, ex):
    wallet = new_client(fx, "wallet", ex)
    key = KEYS["wallet"][0]
    before = fx.balance(key, "USDT")
    fx.inject_withdrawal_fault("reject", coin="USDT")
    with pytest.raises(ccxt.ExchangeError) as err:
        wallet.withdraw("USDT", 20, TRON_ADDR, {"network": "TRC20"})
    assert "131097" in str(err.value)  # "Withdrawal of this currency has been closed"
    assert fx.balance(key, "USDT") == before and fx.withdrawal_faults_applied[-1] == ("reject", None)
    fx.inject_withdrawal_fault("fail_later", coin="USDT")
    fx.withdraw_delay = 0.1
    try:
        w = wallet.withdraw("USDT", 20, TRON_ADDR, {"network": "TRC20", "feeType": 1})
        gevent.sleep(0.2)
        got = {x["id"]: x for x in wallet.fetch_withdrawals("USDT")}[w["id"]]
        assert got["status"] == "failed" and got["info"]["status"] == "Fail"
        assert fx.balance(key, "USDT") == before  # the funds came back
    finally:
        fx.withdraw_delay = 1.0


# ---------------------------------------------------------------------- through mmflow's ExchangeAccount


def make_cfg(fx: FakeBybit, name: str, **overrides) -> ExchangeAccountConfig:
    key, secret = KEYS.get(name, (name, "x"))
    # no ccxt options here: the venue profile (integrations/exchange/venues/bybit.py) must be enough
    fields = {"account_id": f"bybit-{name}", "ccxt_id": "bybit", "api_key": key, "secret": secret,
              "urls": {"api": fx.url}}
    fields.update(overrides)
    return ExchangeAccountConfig(**fields)


@pytest.fixture(scope="module")
def acct(fx):
    account = ExchangeAccount(make_cfg(fx, "acct"))
    account.load_markets()
    yield account
    account.close()


def test_venue_profile_matches_what_the_fake_needs(fx):
    v = venue("bybit")
    assert v.ccxt_id == "bybit" and v.hufi_name == "bybit"
    assert v.withdraw_client_id_param is None and v.withdraw_client_id_field is None and not v.has_withdraw_client_id
    assert v.client_id_max_length == 36 and v.used_weight_headers == () and v.trades_page == 100
    fake_options = fx.ccxt_config("k", "s")["options"]
    for key, value in v.options.items():
        assert fake_options[key] == value, key


def test_account_markets_balance_book_and_withdrawal_terms(fx, acct):
    rules = acct.market_rules(SYM)
    assert (rules.price_tick, rules.amount_step, rules.min_amount, rules.min_cost) == (
        D("0.01"), D("0.00001"), D("0.00001"), D("5"))
    bal = acct.fetch_balance()
    assert bal["USDT"] == (D("10000"), D("0"), D("10000")) and isinstance(bal["BTC"].free, Decimal)
    book = acct.fetch_order_book(SYM, 5)
    assert book.bids[0] == (D("59994"), book.bids[0][1]) and book.asks[0][0] == D("60006")
    assert all(isinstance(v, Decimal) for level in book.bids + book.asks for v in level)
    terms = acct.withdrawal_terms("USDT", "TRC20")
    assert (terms.fee, terms.minimum, terms.step, terms.enabled) == (D("1"), D("10"), D("0.000001"), True)
    assert acct.withdrawal_terms("USDT", "BEP20").enabled is False
    assert acct.withdrawal_terms("BTC", "BTC").fee == D("0.0002")
    address = acct.fetch_deposit_address("XRP", "XRP")
    assert address.tag and (address.address, address.tag) == fx.deposit_address(KEYS["acct"][0], "XRP", "XRP")


def test_account_orders_fills_and_refusals(fx, acct):
    key = KEYS["acct"][0]
    o = acct.create_limit_order(SYM, "buy", D("0.0012345"), D("59999.129"), client_order_id="mm-b-1")
    assert (o.client_order_id, o.status) == ("mm-b-1", None)  # Bybit acknowledges with ids only
    (engine_order,) = fx.engine.open_orders(key, "BTCUSDT")
    assert engine_order.type == "LIMIT_MAKER" and engine_order.price == D("59999.12")  # moved DOWN to the tick
    assert engine_order.orig_qty == D("0.00123")
    got = acct.fetch_order(SYM, order_id=o.id)
    assert (got.status, got.post_only, got.amount, got.filled, got.client_order_id) == (
        "open", True, D("0.00123"), D("0"), "mm-b-1")
    assert [x.client_order_id for x in acct.fetch_open_orders(SYM)] == ["mm-b-1"]
    fx.place_taker(SYM, "sell", "0.0005")
    got = acct.fetch_order(SYM, order_id=o.id)
    assert (got.filled, got.remaining, got.status) == (D("0.0005"), D("0.00073"), "open")
    (trade,) = acct.fetch_my_trades(SYM)
    assert (trade.order_id, trade.price, trade.amount, trade.fee, trade.fee_currency, trade.taker_or_maker) == (
        o.id, D("59999.12"), D("0.0005"), D("0.0000005"), "BTC", "maker")
    c = acct.cancel_order(SYM, order_id=o.id)
    assert c.id == o.id and c.client_order_id == "mm-b-1"
    assert acct.fetch_order(SYM, order_id=o.id).status == "closed"  # PartiallyFilledCanceled
    assert acct.fetch_open_orders(SYM) == []
    with pytest.raises(DefinitiveError) as err:
        acct.create_limit_order(SYM, "buy", D("1"), D("59000"), client_order_id="mm-b-2")
    assert err.value.kind == "insufficient_funds" and err.value.executed is False
    with pytest.raises(DefinitiveError) as err:  # 170141, refined to DuplicateOrderId by the venue's exact_errors
        acct.create_limit_order(SYM, "buy", D("0.001"), D("58000"), client_order_id="mm-b-1")
    assert err.value.kind == "duplicate"
    assert [t.order_id for t in acct.fetch_my_trades(SYM, None, venue("bybit").trades_page)] == [o.id]
    with pytest.raises(DefinitiveError) as err:  # more than GET /v5/execution/list takes
        acct.fetch_my_trades(SYM, None, 1000)
    assert err.value.kind == "bad_request"
    with pytest.raises(DefinitiveError) as err:
        acct.fetch_order(SYM, order_id=str(ORDER_ID_BASE + 424242))
    assert err.value.not_found
    with pytest.raises(DefinitiveError) as err:
        acct.cancel_order(SYM, order_id=str(ORDER_ID_BASE + 424242))
    assert err.value.not_found


def test_account_fetch_and_cancel_by_client_order_id(fx, acct):
    acct.create_limit_order(SYM, "sell", D("0.001"), D("60500"), client_order_id="mm-b-cid")
    got = acct.fetch_order(SYM, client_order_id="mm-b-cid")
    assert got.client_order_id == "mm-b-cid" and got.status == "open"
    c = acct.cancel_order(SYM, client_order_id="mm-b-cid")
    assert c.client_order_id == "mm-b-cid"
    assert acct.fetch_order(SYM, client_order_id="mm-b-cid").status == "canceled"
    with pytest.raises(DefinitiveError) as err:
        acct.fetch_order(SYM, client_order_id="mm-b-nobody")
    assert err.value.not_found


def test_account_withdraw_and_lookup_by_id(fx):
    account = ExchangeAccount(make_cfg(fx, "acct-wallet"))
    key = KEYS["acct-wallet"][0]
    fx.withdraw_delay = None
    try:
        since = int(time.time() * 1000) - 1000
        w = account.withdraw("USDT", D("50.1234567"), TRON_ADDR, None, "TRC20", client_id="mmw1")
        assert (w.amount, w.status, w.network, w.client_id) == (D("50.123456"), "pending", "TRC20", "mmw1")
        (record,) = [x for x in fx.withdrawals_of(key) if x.id == w.id]
        assert record.network == "TRX" and record.withdraw_order_id == ""  # mmflow sends no requestId
        found = account.withdrawal_by_id(w.id, "USDT", since)
        assert found is not None and found.status == "pending" and found.fee == D("1")
        assert found.client_id is None  # nothing in Bybit's record echoes a client id
        fx.finish_withdrawal(w.id)
        assert account.withdrawal_by_id(w.id, "USDT", since).status == "ok"
        with pytest.raises(DefinitiveError) as err:
            account.withdraw("USDT", D("5"), TRON_ADDR, None, "TRC20", client_id="mmw2")  # below the minimum
        assert err.value.kind == "bad_request"
        fx.inject_withdrawal_fault("reject")
        with pytest.raises(DefinitiveError) as err:  # 131097: OperationRejected through the venue's exact_errors
            account.withdraw("USDT", D("20"), TRON_ADDR, None, "TRC20", client_id="mmw3")
        assert err.value.kind == "rejected" and err.value.executed is False
    finally:
        fx.withdraw_delay = 1.0
        account.close()


def test_account_withdrawals_like_finds_a_withdrawal_without_client_id(fx):
    account = ExchangeAccount(make_cfg(fx, "acct-wallet"))
    fx.withdraw_delay = None
    try:
        since = int(time.time() * 1000) - 1000
        w = account.withdraw("USDT", D("40"), TRON_ADDR, None, "TRC20", client_id="mmw-like")
        like = account.withdrawals_like("USDT", address=TRON_ADDR, tag=None, amount=D("40"), since_ms=since)
        assert [t.id for t in like] == [w.id]
    finally:
        fx.withdraw_delay = 1.0
        account.close()


def test_more_fills_than_a_trades_page_are_all_read_by_the_update_stream(fx):
    from integrations.exchange.updates import _Work

    account = ExchangeAccount(make_cfg(fx, "acct-pages"))
    account.load_markets()
    fx.credit("acct-pages", "USDT", "20000")
    since = int(time.time() * 1000) - 1000
    account.create_limit_order("ETH/USDT", "buy", D("1.5"), D("2990"), client_order_id="mm-b-many")
    for _ in range(150):  # 150 fills > the page of 100
        fx.place_taker("ETH/USDT", "sell", "0.01")
    trades = _Work(account, None, time.time(), 1.0).fetch_trades("ETH/USDT", since, all_pages=True)
    assert len(fx.engine.fills("acct-pages", "ETHUSDT")) == 150
    assert len(trades) == 150
    account.close()


def test_account_rate_limit_is_paused_and_retried(fx):
    lim = WeightedLimiter(10**6, max_concurrency=10, default_backoff=0.2, name="bybit-retry")
    account = ExchangeAccount(make_cfg(fx, "acct-limits"), limiter=lim)
    account.load_markets()
    fx.inject("/v5/order/create", method="POST", status=429)
    started = time.monotonic()
    o = account.create_limit_order(SYM, "buy", D("0.001"), D("59000"), client_order_id="mm-b-429")
    assert time.monotonic() - started >= 0.2 and o.id
    assert account.stats.rejected_429 == 1 and account.stats.retries == 1
    fx.rate_limit(per_endpoint={"/v5/account/wallet-balance": (1, 60.0)})
    account.fetch_balance()
    with pytest.raises(RateLimited):  # retcode 10006 on every retry of this one-minute budget
        ExchangeAccount(make_cfg(fx, "acct-limits", rate_limit_retries=1),
                        limiter=WeightedLimiter(10**6, default_backoff=0.05, name="r2")).fetch_balance()
    bad = ExchangeAccount(make_cfg(fx, "acct-limits", account_id="bad", secret="nope"))
    with pytest.raises(AuthenticationFailed):
        bad.load_markets()  # coin/query-info is signed
    account.close()
    bad.close()


# ---------------------------------------------------------------------- end to end


def test_paid_order_quotes_fills_and_exits_settled_on_bybit(tmp_path, monkeypatch):
    from sim.world import USDT_ERC20
    from storage import exchange_repo, exit_repo, repo
    from tests.support import running_mmflow, wait_until
    from tests.test_flow_exit import (
        FUNDING,
        assert_settled_and_balanced,
        exit_memo,
        pairs,
        pay,
    )
    from tests.test_flow_funding import exchange_table

    ew = world_with_exchange(deposit_delay=0.1, venue="bybit")
    ew.exchange.withdraw_delay = 0.1
    monkeypatch.setenv("MMF_BINANCE_KEY", ew.api_key)
    monkeypatch.setenv("MMF_BINANCE_SECRET", ew.secret)
    try:
        assert isinstance(ew.exchange, FakeBybit)
        settings = {"exchanges": [exchange_table(ew)], "funding": dict(FUNDING), "pairs": pairs(),
                    "strategy": {"tick_interval": 0.1}, "stream": {"slow_interval": 0.2, "fast_interval": 0.05}}
        with running_mmflow(tmp_path, ew.world, **settings) as mm:
            user, order_id = pay(ew, mm)
            mm.wait_state(order_id, "running", timeout=30)
            wait_until(lambda: ew.exchange.engine.open_orders(ew.api_key, "BTCUSDT"), timeout=10, message="quotes")
            ew.exchange.start_price_process(interval=0.05, vol=0.0005, taker_prob=0.9, taker_size=0.01)
            try:
                wait_until(lambda: len(exchange_repo.fills_of(order_id)) >= 2, timeout=20, message="some fills")
            finally:
                ew.exchange.stop_price_process()
            ew.world.pay(user, USDT_ERC20, "1", exit_memo(order_id))
            _view, statement = assert_settled_and_balanced(mm, order_id)
            assert statement.trading["fills"] >= 2
            history = [h.to_state for h in repo.order_history(order_id)]
            assert history[-5:] == ["stopping", "stopped", "returning_funds", "settling", "settled"]
            returns = exit_repo.returns_of(order_id)
            assert {m.exchange_code for m in returns} == {"BTC", "USDT"}
            assert all(m.state == "arrived" and m.exchange_withdrawal_id for m in returns)
            assert len(ew.exchange.withdrawals_of(ew.api_key)) == 2
            assert ew.exchange.unknown_paths == [] and ew.exchange.internal_errors == []
            assert ew.bridge.unmatched == [] and ew.returns.unmatched == []
    finally:
        ew.stop()
