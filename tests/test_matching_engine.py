"""The fake exchange's matching engine, balances and price ladder, without HTTP."""
from __future__ import annotations

import random
from decimal import Decimal

import pytest

from sim.fake_exchange.accounts import Balances
from sim.fake_exchange.engine import (
    BUY,
    CANCELED,
    EXPIRED,
    FILLED,
    LIMIT,
    LIMIT_MAKER,
    MARKET,
    NEW,
    PARTIALLY_FILLED,
    SELL,
    SYNTHETIC,
    EngineError,
    MarketSpec,
    MatchingEngine,
)
from sim.fake_exchange.market import Ladder, MarketData

D = Decimal
SYM = "BTCUSDT"
T0 = 1_700_000_000_000


def spec(**kw) -> MarketSpec:
    args = dict(
        symbol=SYM, base="BTC", quote="USDT", tick_size=D("0.01"), step_size=D("0.001"), min_qty=D("0.001"),
        min_notional=D("5"), maker_fee=D("0.001"), taker_fee=D("0.002"),
    )
    args.update(kw)
    return MarketSpec(**args)


@pytest.fixture
def eng() -> MatchingEngine:
    e = MatchingEngine(Balances())
    e.add_market(spec())
    for owner in ("A", "B", "C"):
        e.balances.credit(owner, "USDT", D("100000"))
        e.balances.credit(owner, "BTC", D("10"))
    return e


def limit(e, owner, side, qty, price, **kw):
    return e.place_order(owner, SYM, side, kw.pop("type", LIMIT), quantity=D(qty), price=D(price), now_ms=T0, **kw)


def assert_conserved(e: MatchingEngine, initial: dict[str, Decimal]) -> None:
    totals = e.balances.totals()
    for asset, start in initial.items():
        now = totals.get(asset, D(0)) + e.fees_collected.get(asset, D(0)) + e.synthetic_net.get(asset, D(0))
        assert now == start, (asset, now, start)
    e.check_invariants()


# ---------------------------------------------------------------------- priority and fills


def test_price_time_priority(eng):
    a = limit(eng, "A", BUY, "1", "100")
    b = limit(eng, "B", BUY, "1", "100")  # same price, later: behind A
    c = limit(eng, "C", BUY, "1", "99.99")  # worse price
    fills = eng.take(SYM, SELL, D("1.5"), now_ms=T0 + 1)
    assert [(f.counter_order_id, f.qty, f.price) for f in fills] == [(a.order_id, D("1"), D("100")), (b.order_id, D("0.5"), D("100"))]
    assert (a.status, b.status, c.status) == (FILLED, PARTIALLY_FILLED, NEW)
    better = limit(eng, "C", BUY, "1", "100.01")  # placed last but better price: first in line
    fills = eng.take(SYM, SELL, D("1.2"), now_ms=T0 + 2)
    assert [f.counter_order_id for f in fills] == [better.order_id, b.order_id]
    assert b.remaining == D("0.3") and better.status == FILLED


def test_partial_fills_and_taker_walks_levels_then_rests(eng):
    m1 = limit(eng, "A", SELL, "0.5", "101")
    m2 = limit(eng, "A", SELL, "0.5", "102")
    limit(eng, "A", SELL, "1", "103")
    t = limit(eng, "B", BUY, "1.5", "102")  # takes 101 and 102, rests 0.5 at 102
    assert [(f.price, f.qty, f.is_maker) for f in t.fills] == [(D("101"), D("0.5"), False), (D("102"), D("0.5"), False)]
    assert t.status == PARTIALLY_FILLED and t.remaining == D("0.5")
    assert m1.status == FILLED and m2.status == FILLED
    assert eng.best_bid(SYM) == D("102") and eng.best_ask(SYM) == D("103")
    assert t.cum_quote == D("101.5")


def test_fees_in_received_asset_maker_and_taker(eng):
    maker = limit(eng, "A", SELL, "1", "100")  # A sells: receives USDT, maker fee 0.1%
    taker = limit(eng, "B", BUY, "1", "100")  # B buys: receives BTC, taker fee 0.2%
    (mf,) = [f for f in maker.fills]
    (tf,) = taker.fills
    assert mf.trade_id == tf.trade_id and mf.is_maker and not tf.is_maker
    assert (mf.commission, mf.commission_asset) == (D("0.1"), "USDT")
    assert (tf.commission, tf.commission_asset) == (D("0.002"), "BTC")
    assert eng.balances.get("A", "USDT") == (D("100099.9"), D(0))
    assert eng.balances.get("A", "BTC") == (D("9"), D(0))
    assert eng.balances.get("B", "BTC") == (D("10.998"), D(0))
    assert eng.balances.get("B", "USDT") == (D("99900"), D(0))
    assert dict(eng.fees_collected) == {"USDT": D("0.1"), "BTC": D("0.002")}


def test_commission_is_cut_to_8_decimals():
    e = MatchingEngine(Balances())
    e.add_market(spec(maker_fee=D("0.00075")))
    e.balances.credit("A", "BTC", D("1"))
    e.balances.credit("B", "USDT", D("1000"))
    e.place_order("A", SYM, SELL, LIMIT, quantity=D("0.001"), price=D("33333.37"), now_ms=T0)
    e.place_order("B", SYM, BUY, LIMIT, quantity=D("0.001"), price=D("33333.37"), now_ms=T0)
    maker_fill = e.fills("A", SYM)[0]
    assert maker_fill.quote_qty == D("33.33337")
    assert maker_fill.commission == D("0.02500002")  # exact 0.0250000275: cut, not rounded
    assert e.balances.get("A", "USDT") == (D("33.33337") - D("0.02500002"), D(0))
    assert e.fills("B", SYM)[0].commission == D("0.000002")


def test_locking_cancel_and_price_improvement(eng):
    bid = limit(eng, "A", BUY, "2", "100")
    assert eng.balances.get("A", "USDT") == (D("99800"), D("200"))
    eng.cancel_order("A", SYM, order_id=bid.order_id, now_ms=T0)
    assert bid.status == CANCELED and eng.balances.get("A", "USDT") == (D("100000"), D(0))
    limit(eng, "C", SELL, "1", "90")
    t = limit(eng, "A", BUY, "2", "100")  # fills 1 at 90: 10 of the lock comes back, 1 @ 100 stays locked
    assert t.status == PARTIALLY_FILLED
    assert eng.balances.get("A", "USDT") == (D("100000") - D("90") - D("100"), D("100"))
    eng.cancel_order("A", SYM, order_id=t.order_id, now_ms=T0)
    assert eng.balances.get("A", "USDT") == (D("99910"), D(0))
    eng.check_invariants()


def test_insufficient_balance_and_filters(eng):
    with pytest.raises(EngineError) as e:
        limit(eng, "A", BUY, "2000", "100")
    assert (e.value.code, e.value.msg) == (-2010, "Account has insufficient balance for requested action.")
    with pytest.raises(EngineError, match="PRICE_FILTER"):
        limit(eng, "A", BUY, "1", "100.001")
    with pytest.raises(EngineError, match="LOT_SIZE"):
        limit(eng, "A", BUY, "1.0005", "100")
    with pytest.raises(EngineError, match="NOTIONAL") as e:
        limit(eng, "A", BUY, "0.001", "100")  # 0.1 USDT < 5
    assert e.value.code == -1013
    with pytest.raises(EngineError) as e:
        eng.place_order("A", "NOPE", BUY, LIMIT, quantity=D(1), price=D(1), now_ms=T0)
    assert e.value.code == -1121
    assert eng.balances.get("A", "USDT") == (D("100000"), D(0))
    assert eng.open_orders("A") == []


def test_post_only_rejected_when_crossing(eng):
    limit(eng, "B", SELL, "1", "101")
    with pytest.raises(EngineError) as e:
        limit(eng, "A", BUY, "1", "101", type=LIMIT_MAKER)
    assert (e.value.code, e.value.msg) == (-2010, "Order would immediately match and take.")
    ok = limit(eng, "A", BUY, "1", "100.99", type=LIMIT_MAKER)
    assert ok.status == NEW and ok.fills == []
    assert eng.balances.get("A", "USDT")[1] == D("100.99")


def test_client_order_ids(eng):
    o = limit(eng, "A", BUY, "1", "100", client_order_id="mm-1")
    with pytest.raises(EngineError) as e:
        limit(eng, "A", BUY, "1", "99", client_order_id="mm-1")
    assert (e.value.code, e.value.msg) == (-2010, "Duplicate order sent.")
    limit(eng, "B", BUY, "1", "99", client_order_id="mm-1")  # another account may use it
    assert eng.get_order("A", SYM, client_order_id="mm-1") is o
    eng.cancel_order("A", SYM, client_order_id="mm-1", now_ms=T0)
    again = limit(eng, "A", BUY, "1", "98", client_order_id="mm-1")  # free again once closed
    assert eng.get_order("A", SYM, client_order_id="mm-1") is again
    with pytest.raises(EngineError) as e:
        eng.cancel_order("A", SYM, order_id=o.order_id, now_ms=T0)
    assert e.value.code == -2011
    with pytest.raises(EngineError) as e:
        eng.get_order("A", SYM, order_id=999_999)
    assert e.value.code == -2013
    with pytest.raises(EngineError):
        eng.get_order("B", SYM, order_id=o.order_id)  # not B's


def test_ioc_fok_and_market_orders(eng):
    limit(eng, "B", SELL, "1", "100")
    limit(eng, "B", SELL, "1", "101")
    fok = limit(eng, "A", BUY, "3", "101", time_in_force="FOK")
    assert fok.status == EXPIRED and fok.fills == [] and eng.balances.get("A", "USDT")[1] == 0
    ioc = limit(eng, "A", BUY, "1.5", "100", time_in_force="IOC")
    assert ioc.status == EXPIRED and ioc.executed_qty == D("1")
    mkt = eng.place_order("A", SYM, BUY, MARKET, quote_qty=D("50.5"), now_ms=T0)
    assert mkt.status == FILLED and mkt.executed_qty == D("0.5") and mkt.cum_quote == D("50.5")
    sell = eng.place_order("A", SYM, SELL, MARKET, quantity=D("1"), now_ms=T0)  # no bids at all
    assert sell.status == EXPIRED and eng.balances.get("A", "BTC")[1] == 0
    buy = eng.place_order("A", SYM, BUY, MARKET, quantity=D("0.5"), now_ms=T0)
    assert buy.status == FILLED and buy.cum_quote == D("50.5")
    eng.check_invariants()


def test_take_skips_synthetic_unless_asked(eng):
    synth = eng.place_order(SYNTHETIC, SYM, BUY, LIMIT, quantity=D(1), price=D("100"), now_ms=T0)
    mine = limit(eng, "A", BUY, "1", "99")
    fills = eng.take(SYM, SELL, D("0.4"), now_ms=T0)
    assert [f.counter_order_id for f in fills] == [mine.order_id]
    fills = eng.take(SYM, SELL, D("0.4"), now_ms=T0, include_synthetic=True)
    assert [f.counter_order_id for f in fills] == [synth.order_id]
    assert eng.take(SYM, SELL, D("0.0004"), now_ms=T0) == []  # below one step
    assert eng.take(SYM, SELL, D("5"), price=D("99.5"), now_ms=T0) == []  # price bound


# ---------------------------------------------------------------------- conservation


def test_random_operations_conserve_every_asset():
    rng = random.Random(7)
    e = MatchingEngine(Balances())
    e.add_market(spec(min_notional=D("1")))
    e.add_market(spec(symbol="ETHUSDT", base="ETH", tick_size=D("0.1"), step_size=D("0.01"), min_qty=D("0.01")))
    owners = ["A", "B", "C", "D"]
    initial = {"USDT": D(0), "BTC": D(0), "ETH": D(0)}
    for o in owners:
        for asset, amount in (("USDT", D("50000")), ("BTC", D("2")), ("ETH", D("30"))):
            e.balances.credit(o, asset, amount)
            initial[asset] += amount
    mids = {"BTCUSDT": D("100"), "ETHUSDT": D("20")}
    errors = 0
    for i in range(1500):
        sym = rng.choice(list(mids))
        m = e.markets[sym]
        owner = rng.choice(owners)
        side = rng.choice([BUY, SELL])
        price = (mids[sym] * D(str(round(rng.uniform(0.97, 1.03), 4)))).quantize(m.tick_size)
        qty = (D(str(round(rng.uniform(0.01, 1.5), 3)))).quantize(m.step_size)
        op = rng.random()
        try:
            if op < 0.55:
                kind = rng.choice([LIMIT, LIMIT, LIMIT_MAKER])
                tif = rng.choice(["GTC", "GTC", "IOC", "FOK"]) if kind == LIMIT else None
                e.place_order(owner, sym, side, kind, quantity=qty, price=price, time_in_force=tif, now_ms=T0 + i)
            elif op < 0.65:
                if side == BUY and rng.random() < 0.5:
                    e.place_order(owner, sym, BUY, MARKET, quote_qty=(qty * mids[sym]).quantize(D("0.01")), now_ms=T0 + i)
                else:
                    e.place_order(owner, sym, side, MARKET, quantity=qty, now_ms=T0 + i)
            elif op < 0.85:
                opens = e.open_orders(owner, sym)
                if opens:
                    e.cancel_order(owner, sym, order_id=rng.choice(opens).order_id, now_ms=T0 + i)
            elif op < 0.93:
                e.place_order(SYNTHETIC, sym, side, LIMIT, quantity=qty, price=price, now_ms=T0 + i)
            else:
                e.take(sym, side, qty, now_ms=T0 + i, include_synthetic=rng.random() < 0.3)
        except EngineError as exc:
            assert exc.code in (-2010, -1013), exc
            errors += 1
        assert_conserved(e, initial)
        for asset in initial:
            for o in owners:
                free, locked = e.balances.get(o, asset)
                assert free >= 0 and locked >= 0
    trades = sum(len(e.fills(o, s)) for o in owners for s in mids)
    assert trades > 300 and errors < 900  # the walk really traded
    assert sum(e.fees_collected.values()) > 0


# ---------------------------------------------------------------------- ladder / price process


def make_market(seed: int = 3):
    e = MatchingEngine(Balances())
    e.add_market(spec(step_size=D("0.00001"), min_qty=D("0.00001")))
    md = MarketData(e, random.Random(seed))
    md.add(Ladder(SYM, D("60000"), D("60000"), T0, levels=5, qty=D("0.1")), T0)
    return e, md


def test_ladder_around_mid_and_moving_mid_fills_resting_orders():
    e, md = make_market()
    assert e.best_bid(SYM) == D("59994") and e.best_ask(SYM) == D("60006")
    _uid, bids, asks = e.depth(SYM, 10)
    assert len(bids) == len(asks) == 5 and all(q > 0 for _p, q in bids + asks)
    e.balances.credit("A", "USDT", D("1000"))
    e.balances.credit("A", "BTC", D("1"))
    bid = e.place_order("A", SYM, BUY, LIMIT, quantity=D("0.001"), price=D("59990"), now_ms=T0)
    ask = e.place_order("A", SYM, SELL, LIMIT, quantity=D("0.001"), price=D("60100"), now_ms=T0)
    md.set_mid(SYM, D("59900"), T0 + 1)  # the new synthetic asks cross the account's bid
    assert bid.status == FILLED and bid.fills[0].is_maker and bid.fills[0].price == D("59990")
    assert ask.status == NEW
    md.set_mid(SYM, D("60200"), T0 + 2)
    assert ask.status == FILLED and ask.fills[0].price == D("60100")
    assert e.best_bid(SYM) < md.ladders[SYM].mid < e.best_ask(SYM)
    e.check_invariants()


def test_price_process_is_reproducible_per_seed():
    def run(seed):
        e, md = make_market(seed)
        mids = []
        for i in range(50):
            md.step(T0 + i, vol=0.001, taker_prob=0.7)
            mids.append(md.ladders[SYM].mid)
        return mids, len(e.tape[SYM])

    a, b, c = run(1), run(1), run(2)
    assert a == b and a != c
    assert len(set(a[0])) > 10  # the mid really moves
    assert a[1] > 0  # synthetic takers traded
