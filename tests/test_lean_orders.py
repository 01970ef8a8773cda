"""The lean reader of Binance spot order records (integrations/exchange/lean_orders.py) gives what ccxt's parse gives.

Every ``OrderInfo`` field is compared with the ccxt path (``parse_order`` -> ``ExchangeAccount._order``) over
Binance-shaped records (new, partially filled, filled, canceled with a fill, expired, post-only, a market order,
odd decimals) and over the fake exchange's own replies; Decimals compare equal AND print the same (the orders DB
stores their text). ``average`` is the one field ccxt ends as a float: the lean one is ccxt's exact quotient before
that rounding.
"""
from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from domain.exchange_config import ExchangeAccountConfig
from integrations.exchange import lean_orders
from integrations.exchange.account import ExchangeAccount, OrderInfo, to_decimal
from sim.fake_exchange import FakeExchange

SYM = "BTC/USDT"
KEY, SECRET = "lean-key", "lean-secret"
TAKER = "lean-taker"
FIELDS = [f.name for f in dataclasses.fields(OrderInfo) if f.name != "info"]


@pytest.fixture(scope="module")
def fx():
    with FakeExchange(seed=5) as server:
        server.add_market(SYM, "BTC", "USDT", tick_size="0.01", step_size="0.00001", mid="60000")
        for key in (KEY, TAKER):
            server.add_account(key, SECRET if key == KEY else "taker-secret")
            server.credit(key, "USDT", "100000")
            server.credit(key, "BTC", "10")
        yield server


@pytest.fixture(scope="module")
def lean(fx):
    account = ExchangeAccount(ExchangeAccountConfig(account_id="lean", ccxt_id="binance", api_key=KEY, secret=SECRET,
                                                    urls={"api": fx.url}))
    account.load_markets()
    assert account.venue.lean_open_orders
    yield account
    account.close()


@pytest.fixture(scope="module")
def plain(fx):
    """The same account read through ccxt's parse (the venue's lean reader off)."""
    account = ExchangeAccount(ExchangeAccountConfig(account_id="plain", ccxt_id="binance", api_key=KEY, secret=SECRET,
                                                    urls={"api": fx.url}))
    account.venue = dataclasses.replace(account.venue, lean_open_orders=False)
    account.load_markets()
    yield account
    account.close()


def via_ccxt(account: ExchangeAccount, raw: dict) -> OrderInfo:
    market = account.exchange.market(SYM)
    return account._order(account._local_call(account.exchange.parse_order, dict(raw), market), SYM)


def via_lean(account: ExchangeAccount, raw: dict) -> OrderInfo:
    fields = lean_orders.binance_spot_order(raw, account.exchange.market(SYM))
    assert fields is not None, raw
    return OrderInfo(**fields)


def assert_same(lean: OrderInfo, ccxt: OrderInfo) -> None:
    for name in FIELDS:
        mine, theirs = getattr(lean, name), getattr(ccxt, name)
        if name == "average" and theirs is not None:
            # ccxt's average is Precise.string_div(cost, filled) made a float; ours is that quotient, exact
            assert to_decimal(float(mine)) == theirs, (name, mine, theirs)
            continue
        assert mine == theirs, (name, mine, theirs)
        if isinstance(theirs, Decimal):
            assert str(mine) == str(theirs), (name, mine, theirs)   # stored as text: the same text
    assert lean.info == ccxt.info


def record(**over) -> dict:
    raw = {"symbol": "BTCUSDT", "orderId": 28457, "orderListId": -1, "clientOrderId": "mm3f2a-1b",
           "price": "59700.00000000", "origQty": "0.00100000", "executedQty": "0.00000000",
           "cummulativeQuoteQty": "0.00000000", "status": "NEW", "timeInForce": "GTC", "type": "LIMIT",
           "side": "BUY", "stopPrice": "0.00000000", "icebergQty": "0.00000000", "time": 1765000000123,
           "updateTime": 1765000000123, "isWorking": True, "workingTime": 1765000000123,
           "origQuoteOrderQty": "0.00000000", "selfTradePreventionMode": "EXPIRE_MAKER"}
    raw.update(over)
    return {k: v for k, v in raw.items() if v is not None}


CASES = {
    "new": record(),
    "partially filled": record(status="PARTIALLY_FILLED", executedQty="0.00040000", cummulativeQuoteQty="23.88000000",
                               updateTime=1765000009999),
    "partial fill, uneven average": record(status="PARTIALLY_FILLED", origQty="0.00300000", executedQty="0.00030000",
                                           cummulativeQuoteQty="17.91100000"),
    "filled": record(status="FILLED", executedQty="0.00100000", cummulativeQuoteQty="59.70000000", side="SELL"),
    "canceled with a fill": record(status="CANCELED", executedQty="0.00025000", cummulativeQuoteQty="14.92500000"),
    "canceled": record(status="CANCELED"),
    "expired": record(status="EXPIRED", timeInForce="IOC"),
    "expired in match": record(status="EXPIRED_IN_MATCH"),
    "post only": record(type="LIMIT_MAKER"),
    "market, filled": record(type="MARKET", price="0.00000000", status="FILLED", executedQty="0.00100000",
                             cummulativeQuoteQty="60.01000000"),
    "small numbers": record(price="0.00001234", origQty="12345.00000000", executedQty="0.00001000",
                            cummulativeQuoteQty="0.00000001", status="PARTIALLY_FILLED"),
    "integer text": record(price="60000", origQty="2", executedQty="1", cummulativeQuoteQty="60000",
                           status="PARTIALLY_FILLED"),
    "no working time": record(workingTime=None, isWorking=None),
    "a cancel reply": record(origClientOrderId="mm3f2a-1b", clientOrderId="cancel000000028457",
                             status="CANCELED", time=None, updateTime=None, workingTime=None,
                             isWorking=None, transactTime=1765000001000),
    "no client id": record(clientOrderId=""),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_binance_record_reads_as_ccxt_reads_it(lean, name):
    raw = CASES[name]
    assert_same(via_lean(lean, raw), via_ccxt(lean, raw))


@pytest.mark.parametrize("over", [{"fills": []}, {"code": -2011, "msg": "Unknown order sent."},
                                  {"strategyId": 7}, {"cumQuote": "1.0"}, {"price": 59700.0},
                                  {"symbol": "ETHUSDT"}, {"status": "TRIGGERING"}, {"executedQty": 0.0}])
def test_a_record_of_another_shape_is_left_to_ccxt(lean, over):
    raw = record(**over)
    assert lean_orders.binance_spot_order(raw, lean.exchange.market(SYM)) is None
    # and the account reads it through ccxt, as it always did
    [info] = lean._open_orders_of([raw], lean.exchange.market(SYM), SYM) if over.get("symbol") is None else [None]
    if info is not None:
        assert info == via_ccxt(lean, raw)


def test_the_venues_replies_read_the_same_both_ways(fx, lean, plain):
    """Open orders on the fake (resting, partially filled, post-only) listed through the lean reader and
    through ccxt: the same records, field by field, in the same order."""
    now = fx.now_ms()
    placed = []
    for i, (side, price, qty) in enumerate([("BUY", "59700.00", "0.00100"), ("BUY", "59650.50", "0.01234"),
                                            ("SELL", "60300.00", "0.00200"), ("SELL", "60299.99", "0.50000")]):
        placed.append(fx.engine.place_order(KEY, "BTCUSDT", side, "LIMIT", now_ms=now, quantity=Decimal(qty),
                                            price=Decimal(price), time_in_force="GTC", client_order_id=f"mm-lean-{i}"))
    placed.append(fx.engine.place_order(KEY, "BTCUSDT", "BUY", "LIMIT_MAKER", now_ms=now, quantity=Decimal("0.003"),
                                        price=Decimal("59000.00"), client_order_id="mm-lean-maker"))
    # a taker fills part of our best bid and part of our best ask (only ours: the fake's own book stays out)
    ours = (lambda o: o.owner == KEY)
    fx.engine.place_order(TAKER, "BTCUSDT", "SELL", "LIMIT", now_ms=now + 5, quantity=Decimal("0.0004"),
                          price=Decimal("59700.00"), time_in_force="IOC", maker_filter=ours)
    fx.engine.place_order(TAKER, "BTCUSDT", "BUY", "LIMIT", now_ms=now + 6, quantity=Decimal("0.12345"),
                          price=Decimal("60299.99"), time_in_force="IOC", maker_filter=ours)
    mine, theirs = lean.fetch_open_orders(SYM), plain.fetch_open_orders(SYM)
    assert [o.client_order_id for o in mine] == [o.client_order_id for o in theirs]
    assert {o.client_order_id for o in mine} >= {"mm-lean-0", "mm-lean-3", "mm-lean-maker"}
    assert any(o.filled and o.filled < o.amount for o in mine)          # a partial fill is among them
    assert any(o.post_only for o in mine)
    for a, b in zip(mine, theirs):
        assert_same(a, b)
    for order in placed:
        if order.is_open:
            fx.engine.cancel_order(KEY, "BTCUSDT", now_ms=fx.now_ms(), order_id=order.order_id)


def test_plain_decimal_is_exact_where_a_float_is_not():
    assert str(lean_orders.plain_decimal("0.00100000")) == "0.001"
    assert str(lean_orders.plain_decimal("60000.00000000")) == "60000.0"
    assert str(lean_orders.plain_decimal("7")) == "7.0"
    assert lean_orders.plain_decimal("1234567890.123456789") == Decimal("1234567890.123456789")  # 19 digits
    assert to_decimal(float("1234567890.123456789")) != Decimal("1234567890.123456789")
    assert lean_orders.plain_decimal("NaN") is None and lean_orders.plain_decimal(1.5) is None
