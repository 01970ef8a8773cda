"""The MEXC spot dialect of the fake exchange driven by the real, unmodified ``ccxt.mexc`` (4.5.90) over
loopback HTTP; then mmflow's ExchangeAccount on top of it; then one order through the whole world.

One server per module (``load_markets`` once per client); each test uses its own account or cleans
up after itself, and an autouse fixture removes faults, cancels open orders and checks that ccxt never
asked for an endpoint the fake does not serve.
"""
from __future__ import annotations

import time
from decimal import Decimal

import ccxt
import gevent
import pytest

from domain.exchange_config import ExchangeAccountConfig
from integrations.exchange.account import ExchangeAccount
from integrations.exchange.errors import DefinitiveError, RateLimited, UnknownOutcome
from integrations.exchange.limiter import WeightedLimiter
from integrations.exchange.venues import venue
from sim.fake_exchange.accounts import hmac_sha256_hex
from sim.fake_exchange.mexc import FAKE, FakeMexc
from tests.support import reset_fake_venue

D = Decimal
SYM = "BTC/USDT"
TRON_ADDR = "TKRxqtJ6u9zvrAamF4Xq4p9VBhtrGfZv4R"
XRP_ADDR = "rEb8TK3gBgk5auZkwc6sHnwrGVJH8DuaLh"
KEYS = {name: (f"mx0-{name}", f"secret-{name}") for name in
        ("main", "maker", "wallet", "faults", "acct", "acct-orders", "acct-wallet")}


def new_client(fx: FakeMexc, name: str, template: ccxt.mexc | None = None, **options) -> ccxt.mexc:
    key, secret = KEYS.get(name, (name, "x"))
    cfg = fx.ccxt_config(key, secret)
    cfg["options"].update(options)
    ex = ccxt.mexc(cfg)
    if template is not None:  # reuse loaded markets/currencies: no exchangeInfo round trip
        ex.set_markets(template.markets, template.currencies)
    return ex


@pytest.fixture(scope="module")
def fx():
    with FakeMexc(seed=5) as server:
        server.add_market(SYM, "BTC", "USDT", tick_size="0.01", step_size="0.00001", min_qty="0.00001",
                          min_notional="5", maker_fee="0", taker_fee="0.0005", mid="60000")
        server.add_market("ETH/USDT", "ETH", "USDT", tick_size="0.01", step_size="0.0001", min_qty="0.0001",
                          min_notional="5", mid="3000")
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
    fx.require_address_book = False
    fx.addresses_need_generation = False
    reset_fake_venue(fx, KEYS.values(), {SYM: "60000"})


def client_on(fx, ex, name):
    return new_client(fx, name, template=ex)


# ---------------------------------------------------------------------- the dialect itself


def test_module_exposes_the_dialect_for_the_world():
    assert FAKE is FakeMexc and FakeMexc.venue == "mexc"
    # ccxt 4.5.90's own mapping of MEXC's netWork ids to unified network codes
    ex = ccxt.mexc()
    assert {code: ex.network_id_to_code(nid) for code, nid in FakeMexc.NETWORK_IDS.items()} == {
        "BTC": "BTC", "ERC20": "ERC20", "TRC20": "TRC20", "BEP20": "BEP20"}
    assert {code: ex.network_code_to_id(code) for code in FakeMexc.NETWORK_IDS} == FakeMexc.NETWORK_IDS


def test_signature_is_the_documented_hmac_of_query_then_body(fx):
    # MEXC spot v3 docs, "SIGNED Endpoint Examples for POST /api/v3/order": examples 2 and 3 (example 1
    # prints another digest for the same input as example 2: a copy error of the docs)
    secret = "45d0b3c26f2644f19bfb98b07741b2f5"
    payload = "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=11&recvWindow=5000&timestamp=1644489390087"
    assert hmac_sha256_hex(secret, payload) == "fd3e4e8543c5188531eb7279d68ae7d26a573d0fc5ab0d18eb692451654d837a"
    mixed = "symbol=BTCUSDT&side=BUY&type=LIMITquantity=1&price=11&recvWindow=5000&timestamp=1644489390087"
    assert hmac_sha256_hex(secret, mixed) == "d1a676610ceb39174c8039b3f548357994b2a34139a8addd33baadba65684592"
    # and the fake accepts a request signed that way (parameters split between query and form body)
    import requests

    key, own_secret = KEYS["maker"]
    query = "symbol=BTCUSDT&side=BUY&type=LIMIT"
    body = f"quantity=0.001&price=50000&newClientOrderId=mx-raw-1&recvWindow=5000&timestamp={fx.now_ms()}"
    body += "&signature=" + hmac_sha256_hex(own_secret, query + body)
    r = requests.post(f"{fx.url}/api/v3/order?{query}", data=body, timeout=5,
                      headers={"X-MEXC-APIKEY": key, "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.json()["orderId"].startswith("C02__"), r.text
    r = requests.post(f"{fx.url}/api/v3/order?{query}", data=body.replace("0.001", "0.002"), timeout=5,
                      headers={"X-MEXC-APIKEY": key, "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and r.json() == {"code": 700002, "msg": "Signature for this request is not valid."}


def test_ticks_must_be_powers_of_ten():
    with FakeMexc(seed=1) as other, pytest.raises(ValueError, match="power of ten"):
        other.add_market("ETH/USDT", "ETH", "USDT", tick_size="0.05")


# ---------------------------------------------------------------------- markets and currencies


def test_load_markets_requests_markets_and_currencies(fx):
    fx.requests_log.clear()
    client = new_client(fx, "main")
    client.load_markets()
    # ccxt 4.5.90 always asks for the swap markets too (options.fetchMarkets is not read by mexc)
    assert fx.requests_log == [
        ("GET", "/api/v3/capital/config/getall", 200),
        ("GET", "/api/v3/exchangeInfo", 200),
        ("GET", "/api/v1/contract/detail", 200),
    ]
    m = client.market(SYM)
    assert m["id"] == "BTCUSDT" and m["spot"] and m["active"] and not m["swap"]
    assert (m["precision"]["amount"], m["precision"]["price"]) == (0.00001, 0.01)
    assert m["limits"]["amount"]["min"] == 0.00001 and m["limits"]["cost"]["min"] == 5.0
    assert (m["maker"], m["taker"]) == (0.0, 0.0005)
    assert client.amount_to_precision(SYM, 0.0012345) == "0.00123"
    assert all(market["spot"] for market in client.markets.values())
    usdt = client.currencies["USDT"]
    assert set(usdt["networks"]) == {"ERC20", "TRC20", "BEP20"}
    trc = usdt["networks"]["TRC20"]
    assert trc["id"] == "TRX" and trc["fee"] == 1.0 and trc["deposit"] and trc["withdraw"]
    assert D(trc["limits"]["withdraw"]["min"]) == 10 and trc["info"]["network"] == "TRC20"
    bsc = usdt["networks"]["BEP20"]
    assert bsc["id"] == "BSC" and bsc["withdraw"] is False and bsc["deposit"] is True
    assert client.currencies["XRP"]["networks"]["XRP"]["info"]["withdrawTips"] == "Both a MEMO and an Address are required."


def test_order_book_and_balance(fx, ex):
    book = ex.fetch_order_book(SYM, 5)
    assert len(book["bids"]) == len(book["asks"]) == 5
    assert book["bids"][0][0] < 60000 < book["asks"][0][0] and book["nonce"]
    t = ex.fetch_ticker(SYM)
    assert t["bid"] == book["bids"][0][0] and t["ask"] == book["asks"][0][0] and t["close"] == 60000
    bal = ex.fetch_balance()
    assert bal["USDT"] == {"free": 10000.0, "used": 0.0, "total": 10000.0} and bal["BTC"]["free"] == 1.0


# ---------------------------------------------------------------------- orders


def test_post_only_order_rests_then_fills_partly_then_fully(fx, ex):
    maker = client_on(fx, ex, "maker")
    key = KEYS["maker"][0]
    o = maker.create_order(SYM, "limit", "buy", 0.01, 59000, {"postOnly": True, "clientOrderId": "mx-po-1"})
    assert o["id"].startswith("C02__") and o["side"] == "buy" and o["amount"] == 0.01
    (rested,) = fx.engine.open_orders(key, "BTCUSDT")
    assert rested.type == "LIMIT_MAKER" and rested.client_order_id == "mx-po-1"  # ccxt sent LIMIT_MAKER
    assert fx.balance(key, "USDT") == (D("9410"), D("590"))

    fills = fx.place_taker(SYM, "sell", "0.004")
    assert [(f.price, f.qty) for f in fills] == [(D("59000"), D("0.004"))]
    f = maker.fetch_order(None, SYM, {"clientOrderId": "mx-po-1"})
    assert (f["id"], f["status"], f["filled"], f["remaining"]) == (o["id"], "open", 0.004, 0.006)
    assert f["info"]["status"] == "PARTIALLY_FILLED" and f["info"]["type"] == "LIMIT_MAKER"
    assert [x["clientOrderId"] for x in maker.fetch_open_orders(SYM)] == ["mx-po-1"]
    (trade,) = maker.fetch_my_trades(SYM)
    assert (trade["order"], trade["side"], trade["amount"], trade["price"], trade["takerOrMaker"]) == \
        (o["id"], "buy", 0.004, 59000.0, "maker")
    assert trade["fee"] == {"cost": 0.0, "currency": "BTC"}  # maker fee 0 on this market

    fx.place_taker(SYM, "sell", "0.01")
    f = maker.fetch_order(o["id"], SYM)
    assert (f["status"], f["filled"], f["remaining"], f["cost"]) == ("closed", 0.01, 0.0, 590.0)
    assert maker.fetch_open_orders(SYM) == []
    trades = maker.fetch_my_trades(SYM, since=f["timestamp"])
    assert sum(t["amount"] for t in trades) == pytest.approx(0.01) and len({t["id"] for t in trades}) == 2
    assert fx.balance(key, "BTC") == (D("1.01"), D("0"))


def test_post_only_that_would_take_is_refused_and_nothing_rests(fx, ex):
    maker = client_on(fx, ex, "maker")
    with pytest.raises(ccxt.InvalidOrder):
        maker.create_order(SYM, "limit", "buy", 0.001, 60100, {"postOnly": True, "clientOrderId": "mx-cross"})
    assert fx.engine.open_orders(KEYS["maker"][0], "BTCUSDT") == []


def test_cancel_by_client_order_id_after_a_partial_fill(fx, ex):
    maker = client_on(fx, ex, "maker")
    maker.create_order(SYM, "limit", "sell", 0.02, 61000, {"postOnly": True, "clientOrderId": "mx-cancel-1"})
    fx.place_taker(SYM, "buy", "0.005")
    c = maker.cancel_order(None, SYM, {"clientOrderId": "mx-cancel-1"})
    assert (c["status"], c["filled"], c["info"]["origClientOrderId"]) == ("canceled", 0.005, "mx-cancel-1")
    assert c["info"]["status"] == "PARTIALLY_CANCELED"
    f = maker.fetch_order(None, SYM, {"clientOrderId": "mx-cancel-1"})
    assert (f["status"], f["filled"]) == ("canceled", 0.005)
    assert fx.balance(KEYS["maker"][0], "BTC")[1] == 0  # nothing locked any more


def test_order_errors_raise_what_ccxt_mexc_raises(fx, ex):
    maker = client_on(fx, ex, "maker")
    # unknown order: MEXC -2013 "Order does not exist." — ccxt 4.5.90's mexc has no entry for it
    with pytest.raises(ccxt.ExchangeError) as err:
        maker.fetch_order(None, SYM, {"clientOrderId": "never-placed"})
    assert type(err.value) is ccxt.ExchangeError and '"code":-2013' in str(err.value)
    with pytest.raises(ccxt.ExchangeError):
        maker.fetch_order("C02__600000000000000999999", SYM)
    # cancel of an unknown (or already final) order: -2011 -> BadRequest in ccxt's table
    with pytest.raises(ccxt.BadRequest, match="-2011"):
        maker.cancel_order(None, SYM, {"clientOrderId": "never-placed"})
    # no funds: 30004 "Insufficient position" -> InsufficientFunds
    with pytest.raises(ccxt.InsufficientFunds, match="30004"):
        maker.create_order(SYM, "limit", "buy", 1, 59000, {"postOnly": True})
    # below the minimum order value (quoteAmountPrecision): 30002 -> InvalidOrder
    with pytest.raises(ccxt.InvalidOrder, match="30002"):
        maker.create_order(SYM, "limit", "buy", 0.00001, 59000)
    # an unknown symbol on the wire: -1121 -> BadSymbol
    with pytest.raises(ccxt.BadSymbol):
        maker.spotPublicGetDepth({"symbol": "NOPEUSDT"})


def test_authentication_and_timestamp_errors(fx, ex):
    wrong_secret = ccxt.mexc(dict(fx.ccxt_config(KEYS["main"][0], "not-the-secret")))
    wrong_secret.set_markets(ex.markets, ex.currencies)
    with pytest.raises(ccxt.AuthenticationError, match="700002"):
        wrong_secret.fetch_balance()
    unknown_key = new_client(fx, "nobody", template=ex)
    with pytest.raises(ccxt.AuthenticationError, match="700001"):
        unknown_key.fetch_balance()
    late = new_client(fx, "main", template=ex, timeDifference=8000)  # signs 8 s in the past: recvWindow is 5 s
    with pytest.raises(ccxt.InvalidNonce, match="700003"):
        late.fetch_balance()
    early = new_client(fx, "main", template=ex, timeDifference=-3000)  # 3 s ahead: refused too
    with pytest.raises(ccxt.InvalidNonce, match="700003"):
        early.fetch_balance()
    too_wide = new_client(fx, "main", template=ex, recvWindow=70000)
    with pytest.raises(ccxt.InvalidNonce, match="700005"):
        too_wide.fetch_balance()


def test_a_429_raises_rate_limit_exceeded_and_a_418_ddos_protection(fx, ex):
    fx.inject("/api/v3/account", status=429, retry_after=2)
    with pytest.raises(ccxt.RateLimitExceeded, match='"code":429'):
        ex.fetch_balance()
    fx.inject("/api/v3/depth", status=418, retry_after=120)
    with pytest.raises(ccxt.DDoSProtection):
        ex.fetch_order_book(SYM)
    assert ex.fetch_balance()["USDT"]["free"] == 10000.0  # one-shot faults


def test_per_endpoint_limits_answer_429_with_retry_after(fx, ex):
    fx.rate_limit(3, window=10)  # each endpoint has its own budget
    for _ in range(3):
        ex.fetch_order_book(SYM)
    with pytest.raises(ccxt.RateLimitExceeded):
        ex.fetch_order_book(SYM)
    assert ex.fetch_ticker(SYM)["close"] > 0  # another endpoint is not limited by it
    assert ("GET", "/api/v3/depth", 429) in fx.requests_log


# ---------------------------------------------------------------------- wallet


def test_deposit_address_with_network_and_memo(fx, ex):
    wallet = client_on(fx, ex, "wallet")
    trc = wallet.fetch_deposit_address("USDT", {"network": "TRC20"})
    assert trc["network"] == "TRC20" and trc["tag"] is None and trc["address"].startswith("T")
    assert (trc["address"], None) == fx.deposit_address(KEYS["wallet"][0], "USDT", "TRX")
    default = wallet.fetch_deposit_address("USDT")  # ccxt's defaultNetworks: USDT -> ERC20
    assert default["network"] == "ERC20" and default["address"].startswith("0x")
    xrp = wallet.fetch_deposit_address("XRP")
    assert xrp["network"] == "XRP" and xrp["tag"] and xrp["tag"].isdigit()
    assert (xrp["address"], xrp["tag"]) == fx.deposit_address(KEYS["wallet"][0], "XRP", "XRP")


def test_deposit_addresses_that_must_be_generated_first(fx, ex):
    fx.addresses_need_generation = True
    wallet = client_on(fx, ex, "wallet")
    with pytest.raises(ccxt.InvalidAddress):
        wallet.fetch_deposit_address("BTC", {"network": "BTC"})
    made = wallet.create_deposit_address("BTC", {"network": "BTC"})
    assert made["network"] == "BTC" and made["address"].startswith("bc1q")
    assert wallet.fetch_deposit_address("BTC", {"network": "BTC"})["address"] == made["address"]


def test_deposit_is_pending_then_ok(fx, ex):
    wallet = client_on(fx, ex, "wallet")
    address, tag = fx.deposit_address(KEYS["wallet"][0], "USDT", "TRX")
    since = fx.now_ms() - 1
    fx.credit_deposit(address=address, tag=tag, coin="USDT", network="TRX", amount="100.5", txid="mx-dep-1",
                      delay=0.3)
    (d,) = [x for x in wallet.fetch_deposits("USDT", since) if x["txid"] == "mx-dep-1"]
    assert (d["type"], d["status"], d["network"], d["amount"], d["address"]) == \
        ("deposit", "pending", "TRC20", 100.5, address)
    assert "id" not in d["info"] and d["info"]["status"] == 4  # MEXC's deposit records have no id
    gevent.sleep(0.35)
    (d,) = [x for x in wallet.fetch_deposits("USDT", since) if x["txid"] == "mx-dep-1"]
    assert d["status"] == "ok" and d["info"]["status"] == 5
    xaddr, xtag = fx.deposit_address(KEYS["wallet"][0], "XRP", "XRP")
    fx.credit_deposit(address=xaddr, tag=xtag, coin="XRP", network="XRP", amount="25", txid="mx-dep-2", delay=0)
    (x,) = [x for x in wallet.fetch_deposits("XRP", since) if x["txid"] == "mx-dep-2"]
    assert (x["status"], x["tag"], x["address"]) == ("ok", xtag, xaddr)


def test_withdraw_echoes_the_client_id_and_completes(fx, ex):
    wallet = client_on(fx, ex, "wallet")
    key = KEYS["wallet"][0]
    fx.withdraw_delay = 0.2
    since = fx.now_ms() - 1
    before = fx.balance(key, "USDT")[0]
    w = wallet.withdraw("USDT", 50, TRON_ADDR, {"network": "TRC20", "withdrawOrderId": "mmr-mx-1"})
    assert w["type"] == "withdrawal" and len(w["id"]) == 32
    assert fx.balance(key, "USDT")[0] == before - 50
    (rec,) = [r for r in fx.withdrawals_of(key) if r.id == w["id"]]
    assert (rec.network, rec.withdraw_order_id, rec.amount, rec.fee) == ("TRX", "mmr-mx-1", D("50"), D("1"))
    (h,) = [x for x in wallet.fetch_withdrawals("USDT", since) if x["id"] == w["id"]]
    assert (h["status"], h["network"], h["amount"], h["fee"]["cost"], h["address"]) == \
        ("pending", "TRC20", 49.0, 1.0, TRON_ADDR)  # MEXC's amount includes the fee: ccxt subtracts it
    assert h["info"]["withdrawOrderId"] == "mmr-mx-1" and h["info"]["amount"] == "50"
    gevent.sleep(0.3)
    (h,) = [x for x in wallet.fetch_withdrawals("USDT", since) if x["id"] == w["id"]]
    assert h["status"] == "ok" and h["txid"] and h["info"]["status"] == 7
    # without a client id the record has no withdrawOrderId field at all (docs)
    fx.credit(key, "XRP", "10")
    x = wallet.withdraw("XRP", 2, XRP_ADDR, {"tag": "12345"})
    (hx,) = [r for r in wallet.fetch_withdrawals("XRP", since) if r["id"] == x["id"]]
    assert "withdrawOrderId" not in hx["info"] and hx["tag"] == "12345" and hx["network"] == "XRP"


def test_rejected_and_refused_withdrawals_raise(fx, ex):
    wallet = client_on(fx, ex, "faults")
    key = KEYS["faults"][0]
    before = fx.balance(key, "USDT")[0]
    fx.inject_withdrawal_fault("reject", 1, "USDT")
    with pytest.raises(ccxt.BadRequest, match="10206"):
        wallet.withdraw("USDT", 30, TRON_ADDR, {"network": "TRC20", "withdrawOrderId": "mmr-rej-1"})
    assert fx.withdrawal_faults_applied[-1] == ("reject", None) and fx.balance(key, "USDT")[0] == before
    with pytest.raises(ccxt.InsufficientFunds, match="10101"):
        wallet.withdraw("USDT", 20000, TRON_ADDR, {"network": "TRC20"})
    with pytest.raises(ccxt.BadRequest, match="10232"):  # a chain the coin does not have
        wallet.withdraw("USDT", 30, TRON_ADDR, {"network": "SOL"})
    with pytest.raises(ccxt.BadRequest, match="10206"):  # withdrawals of USDT on BEP20 are disabled
        wallet.withdraw("USDT", 30, "0x" + "ab" * 20, {"network": "BEP20"})
    fx.require_address_book = True
    with pytest.raises(ccxt.BadRequest, match="10212"):
        wallet.withdraw("USDT", 30, TRON_ADDR, {"network": "TRC20"})
    fx.add_withdraw_address(key, "USDT", "TRX", TRON_ADDR)
    assert wallet.withdraw("USDT", 30, TRON_ADDR, {"network": "TRC20"})["id"]
    assert fx.balance(key, "USDT")[0] == before - 30


def test_fail_later_fault_ends_failed_and_returns_the_funds(fx, ex):
    wallet = client_on(fx, ex, "faults")
    key = KEYS["faults"][0]
    fx.withdraw_delay = 0.1
    since = fx.now_ms() - 1
    before = fx.balance(key, "BTC")[0]
    fx.inject_withdrawal_fault("fail_later", 1, "BTC")
    w = wallet.withdraw("BTC", 0.01, "bc1q" + "q" * 38, {"network": "BTC", "withdrawOrderId": "mmr-fl-1"})
    gevent.sleep(0.2)
    (h,) = [x for x in wallet.fetch_withdrawals("BTC", since) if x["id"] == w["id"]]
    assert h["status"] == "failed" and h["info"]["status"] == 8
    assert fx.balance(key, "BTC")[0] == before


# ---------------------------------------------------------------------- mmflow's ExchangeAccount


def make_cfg(fx: FakeMexc, name: str, **overrides) -> ExchangeAccountConfig:
    key, secret = KEYS[name]
    fields = {"account_id": f"mexc-{name}", "ccxt_id": "mexc", "api_key": key, "secret": secret,
              "urls": {"api": fx.url}}
    fields.update(overrides)
    return ExchangeAccountConfig(**fields)


@pytest.fixture(scope="module")
def acct(fx):
    account = ExchangeAccount(make_cfg(fx, "acct"))
    account.load_markets()
    yield account
    account.close()


def test_venue_profile_is_used():
    v = venue("mexc")
    assert v.hufi_name == "mexc" and v.has_withdraw_client_id
    assert (v.withdraw_client_id_param, v.withdraw_client_id_field) == ("withdrawOrderId", "withdrawOrderId")
    assert v.used_weight_headers == () and v.source


def test_account_markets_balances_and_terms_are_decimal(fx, acct):
    rules = acct.market_rules(SYM)
    assert (rules.price_tick, rules.amount_step, rules.min_amount, rules.min_cost) == \
        (D("0.01"), D("0.00001"), D("0.00001"), D("5"))
    assert (rules.maker_fee, rules.taker_fee) == (D("0"), D("0.0005"))
    bal = acct.fetch_balance()
    assert bal["USDT"] == (D("10000"), D("0"), D("10000")) and isinstance(bal["BTC"].free, Decimal)
    book = acct.fetch_order_book(SYM, 5)
    assert book.bids[0][0] == D("59994") and all(isinstance(v, Decimal) for lvl in book.asks for v in lvl)
    terms = acct.withdrawal_terms("USDT", "TRC20")
    assert (terms.fee, terms.minimum, terms.enabled) == (D("1"), D("10"), True)
    assert acct.withdrawal_terms("USDT", "BEP20").enabled is False
    assert acct.withdrawal_terms("BTC", "BTC").fee == D("0.0002")
    assert acct.fetch_deposit_address("USDT", "TRC20").network == "TRC20"
    xrp = acct.fetch_deposit_address("XRP")
    assert xrp.tag and xrp.network == "XRP"


def test_account_orders_fills_and_cancel_by_client_id(fx):
    account = ExchangeAccount(make_cfg(fx, "acct-orders"))
    key = KEYS["acct-orders"][0]
    placed = account.create_limit_order(SYM, "buy", D("0.01"), D("59000.009"), client_order_id="mmflow-mx-1")
    assert placed.price == D("59000") and placed.id.startswith("C02__")  # rounded away from the other side
    fx.place_taker(SYM, "sell", "0.003")
    o = account.fetch_order(SYM, client_order_id="mmflow-mx-1")
    assert (o.status, o.filled, o.remaining, o.client_order_id) == ("open", D("0.003"), D("0.007"), "mmflow-mx-1")
    assert [x.client_order_id for x in account.fetch_open_orders(SYM)] == ["mmflow-mx-1"]
    (t,) = account.fetch_my_trades(SYM)
    assert (t.order_id, t.amount, t.price, t.taker_or_maker) == (placed.id, D("0.003"), D("59000"), "maker")
    c = account.cancel_order(SYM, client_order_id="mmflow-mx-1")
    assert (c.status, c.filled, c.client_order_id) == ("canceled", D("0.003"), "mmflow-mx-1")
    assert account.fetch_open_orders(SYM) == [] and fx.balance(key, "USDT")[1] == 0
    account.close()


def test_account_error_classes(fx, acct):
    # MEXC's -2013 / -2011 are not mapped by ccxt 4.5.90; the venue table maps both to OrderNotFound
    with pytest.raises(DefinitiveError) as err:
        acct.fetch_order(SYM, client_order_id="never-placed")
    assert err.value.not_found
    with pytest.raises(DefinitiveError) as err:
        acct.cancel_order(SYM, client_order_id="never-placed")
    assert err.value.not_found
    with pytest.raises(DefinitiveError) as err:
        acct.create_limit_order(SYM, "buy", D("1"), D("59000"), client_order_id="mmflow-mx-big")
    assert err.value.kind == "insufficient_funds"
    with pytest.raises(DefinitiveError) as err:
        acct.create_limit_order(SYM, "buy", D("0.01"), D("60100"), client_order_id="mmflow-mx-cross")
    assert err.value.kind == "invalid_order"


def test_account_lost_reply_of_a_create_is_resolved_by_client_id(fx):
    account = ExchangeAccount(make_cfg(fx, "acct-orders"))
    fx.inject("/api/v3/order", method="POST", status=504, after_apply=True)  # placed, the reply is a gateway page
    with pytest.raises(UnknownOutcome):
        account.create_limit_order(SYM, "sell", D("0.002"), D("61000"), client_order_id="mmflow-mx-lost")
    assert account.fetch_order(SYM, client_order_id="mmflow-mx-lost").status == "open"
    fx.order_not_found_window(5)  # the shared "query service lags the matching engine" fault
    account.create_limit_order(SYM, "sell", D("0.002"), D("61001"), client_order_id="mmflow-mx-lag")
    with pytest.raises(DefinitiveError, match="-2013") as err:   # "not found" while the query service lags
        account.fetch_order(SYM, client_order_id="mmflow-mx-lag")
    assert err.value.not_found
    fx.order_not_found_window(0)
    assert account.fetch_order(SYM, client_order_id="mmflow-mx-lag").status == "open"
    account.close()


def test_account_retries_a_429_and_gives_up_as_rate_limited(fx):
    lim = WeightedLimiter(10**6, max_concurrency=10, default_backoff=0.05, name="mx-retry")
    account = ExchangeAccount(make_cfg(fx, "acct-orders"), limiter=lim)
    account.load_markets()
    fx.inject("/api/v3/order", method="POST", status=429, retry_after=None)
    o = account.create_limit_order(SYM, "buy", D("0.001"), D("59000"), client_order_id="mmflow-mx-429")
    assert o.id and [x.client_order_id for x in fx.engine.open_orders(KEYS["acct-orders"][0], "BTCUSDT")] == \
        ["mmflow-mx-429"]
    assert (account.stats.rejected_429, account.stats.retries) == (1, 1)
    stingy = ExchangeAccount(make_cfg(fx, "acct-orders", rate_limit_retries=1),
                             limiter=WeightedLimiter(10**6, default_backoff=0.02, max_backoff=0.05))
    stingy.load_markets()
    fx.inject("/api/v3/depth", status=429, count=3)
    with pytest.raises(RateLimited) as err:
        stingy.fetch_order_book(SYM)
    assert err.value.executed is False and err.value.http_status == 429
    account.close()
    stingy.close()


def test_account_withdraw_find_by_client_id_and_by_address(fx):
    account = ExchangeAccount(make_cfg(fx, "acct-wallet"))
    key = KEYS["acct-wallet"][0]
    fx.withdraw_delay = 0.1
    since = fx.now_ms() - 1
    # ccxt.mexc does not read withdrawIntegerMultiple: no precision step, nothing truncated before sending
    assert account.withdrawal_terms("USDT", "TRC20").step is None
    with pytest.raises(DefinitiveError) as err:
        account.withdraw("USDT", D("25.1234567"), TRON_ADDR, None, "TRC20", client_id="mmrmx0000n1")
    assert err.value.kind == "invalid_order" and "10096" in str(err.value) and fx.withdrawals_of(key) == []
    t = account.withdraw("USDT", D("25.123456"), TRON_ADDR, None, "TRC20", client_id="mmrmx0001n1")
    assert (t.amount, t.client_id, t.status, t.network) == (D("25.123456"), "mmrmx0001n1", "pending", "TRC20")
    (rec,) = fx.withdrawals_of(key)
    assert rec.withdraw_order_id == "mmrmx0001n1" and rec.network == "TRX"
    found = account.find_withdrawal("mmrmx0001n1", "USDT", since)
    assert found is not None and found.id == t.id and found.client_id == "mmrmx0001n1"
    assert (found.amount, found.fee) == (D("24.123456"), D("1"))
    assert account.find_withdrawal("mmrmx0002n1", "USDT", since) is None
    assert account.withdrawal_by_id(t.id, "USDT", since).client_id == "mmrmx0001n1"
    like = account.withdrawals_like("USDT", address=TRON_ADDR, tag=None, amount=D("25.123456"), since_ms=since)
    assert [x.id for x in like] == [t.id]
    gevent.sleep(0.2)
    done = account.find_withdrawal("mmrmx0001n1", "USDT", since)
    assert done.status == "ok" and done.txid
    fx.inject_withdrawal_fault("reject", 1)
    with pytest.raises(DefinitiveError) as err:
        account.withdraw("USDT", D("30"), TRON_ADDR, None, "TRC20", client_id="mmrmx0003n1")
    assert err.value.kind == "bad_request" and "10206" in str(err.value)
    deposits = account.fetch_deposits("USDT", since)
    assert deposits == []
    account.close()


def test_account_creates_a_deposit_address_that_does_not_exist_yet(fx, acct):
    """On MEXC a coin/network has no deposit address until one is made: funding must not stall on that."""
    fx.addresses_need_generation = True
    key = KEYS["acct"][0]
    def creations() -> int:
        return sum(1 for m, p, _ in fx.requests_log if (m, p) == ("POST", "/api/v3/capital/deposit/address"))
    before = creations()
    got = acct.fetch_deposit_address("USDT", "TRC20")
    assert (got.address, got.tag) == fx.deposit_address(key, "USDT", "TRX") and got.network == "TRC20"
    again = acct.fetch_deposit_address("USDT", "TRC20")   # exists now: read, not made again
    assert again.address == got.address
    assert creations() == before + 1


def test_account_deposits_are_read_with_their_hash(fx, acct):
    address = acct.fetch_deposit_address("BTC", "BTC").address
    since = fx.now_ms() - 1
    fx.credit_deposit(address=address, tag=None, coin="BTC", network="BTC", amount="0.25", txid="mx-acct-dep",
                      delay=0)
    (d,) = [x for x in acct.fetch_deposits("BTC", since) if x.txid == "mx-acct-dep"]
    assert (d.status, d.amount, d.network, d.type, d.address) == ("ok", D("0.25"), "BTC", "deposit", address)
    assert "id" not in d.info  # see test_end_to_end_* below: mmflow keys deposits by this id


# ---------------------------------------------------------------------- one order through the world


def _mexc_world(monkeypatch):
    from sim.bridge import world_with_exchange

    ew = world_with_exchange(deposit_delay=0.1, venue="mexc")
    ew.exchange.withdraw_delay = 0.1
    monkeypatch.setenv("MMF_BINANCE_KEY", ew.api_key)  # tests.test_flow_funding.exchange_table's names
    monkeypatch.setenv("MMF_BINANCE_SECRET", ew.secret)
    return ew


def _run_order_to_settlement(tmp_path, ew):
    from sim.world import USDT_ERC20
    from storage import repo
    from tests.support import wait_until
    from tests.test_flow_exit import assert_settled_and_balanced, exit_memo, pay, run

    assert isinstance(ew.exchange, FakeMexc)
    with run(tmp_path, ew) as mm:
        user, order_id = pay(ew, mm)
        mm.wait_passed(order_id, "deposit_confirming", timeout=20)
        mm.wait_state(order_id, "running", timeout=8)
        quotes = wait_until(lambda: (q := ew.exchange.engine.open_orders(ew.api_key, "BTCUSDT"))
                            and {o.side for o in q} == {"BUY", "SELL"} and q, timeout=10,
                            message="quotes on both sides on the MEXC fake")
        assert {o.type for o in quotes} == {"LIMIT_MAKER"} and {o.side for o in quotes} == {"BUY", "SELL"}
        ew.world.pay(user, USDT_ERC20, "1", exit_memo(order_id))
        _view, statement = assert_settled_and_balanced(mm, order_id)
        history = [h.to_state for h in repo.order_history(order_id)]
        assert history[-5:] == ["stopping", "stopped", "returning_funds", "settling", "settled"]
        returns = [w for w in ew.exchange.withdrawals_of(ew.api_key)]
        assert len(returns) == 2 and all(w.withdraw_order_id.startswith("mmr") for w in returns)
        assert ew.exchange.unknown_paths == [] and ew.exchange.internal_errors == []
        return statement


def test_end_to_end_through_the_world_settles(tmp_path, monkeypatch):
    """A deposit record without an id (MEXC's deposit history) gets one from its hash, address and tag, so
    each leg's deposit is claimed once; the order funds, trades and settles."""
    ew = _mexc_world(monkeypatch)
    try:
        statement = _run_order_to_settlement(tmp_path, ew)
        assert statement.balanced and statement.final
    finally:
        ew.stop()
        ew.world.fake.stop()


def test_time_window_of_histories(fx, ex):
    wallet = client_on(fx, ex, "wallet")
    with pytest.raises(ccxt.BadRequest, match="90 days"):
        wallet.fetch_withdrawals("USDT", int((time.time() - 91 * 86400) * 1000))
