"""ExchangeAccount against the fake exchange: the real ccxt.binance (sync) over loopback HTTP.

One FakeExchange per module; tests that change limiter state (429/418) build their own account.
"""
from __future__ import annotations

import time
from decimal import Decimal

import gevent
import pytest

from domain.exchange_config import ExchangeAccountConfig
from integrations.exchange.account import ExchangeAccount, Transfer, to_decimal
from integrations.exchange.errors import (
    AuthenticationFailed,
    DefinitiveError,
    ExchangeError,
    RateLimited,
    UnknownOutcome,
)
from integrations.exchange.limiter import WeightedLimiter
from sim.fake_exchange import FakeExchange

D = Decimal
SYM = "BTC/USDT"
TRON_ADDR = "TKRxqtJ6u9zvrAamF4Xq4p9VBhtrGfZv4R"
XRP_ADDR = "rEb8TK3gBgk5auZkwc6sHnwrGVJH8DuaLh"
KEYS = {name: (f"key-{name}", f"secret-{name}") for name in ("main", "orders", "wallet", "faults", "load")}


def make_cfg(fx: FakeExchange, name: str = "main", **overrides) -> ExchangeAccountConfig:
    key, secret = KEYS.get(name, (name, "x"))
    fields = {"account_id": f"fake-{name}", "ccxt_id": "binance", "api_key": key, "secret": secret,
              "urls": {"api": fx.url}}
    fields.update(overrides)
    return ExchangeAccountConfig(**fields)


def count(fx: FakeExchange, method: str, path: str, status: int | None = None) -> int:
    return sum(1 for m, p, s in fx.requests_log if m == method and p == path and (status is None or s == status))


class RecordingLimiter(WeightedLimiter):
    """Records (bucket, weight) of every acquire."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.charged: list[tuple[str, int]] = []

    def acquire(self, weight=1, bucket="default", *, timeout=None):
        self.charged.append((bucket, weight))
        return super().acquire(weight, bucket, timeout=timeout)


@pytest.fixture(scope="module")
def fx():
    with FakeExchange(seed=11) as server:
        server.add_market(SYM, "BTC", "USDT", tick_size="0.01", step_size="0.00001", mid="60000")
        server.add_currency("USDT", [
            {"network": "ETH", "withdrawFee": "3", "withdrawMin": "20", "isDefault": True},
            {"network": "TRX", "withdrawFee": "1", "withdrawMin": "10", "withdrawIntegerMultiple": "0.000001"},
        ], name="TetherUS")
        server.add_currency("BTC", [{"network": "BTC", "withdrawFee": "0.0002", "withdrawMin": "0.001"}])
        server.add_currency("XRP", [{"network": "XRP", "withdrawFee": "0.2", "withdrawMin": "1"}])
        for key, secret in KEYS.values():
            server.add_account(key, secret)
            server.credit(key, "USDT", "10000")
            server.credit(key, "BTC", "1")
        yield server


@pytest.fixture(scope="module")
def acct(fx):
    account = ExchangeAccount(make_cfg(fx))
    account.load_markets()
    yield account
    account.close()


@pytest.fixture(autouse=True)
def clean(fx):
    yield
    fx.reset_faults()
    for key, _secret in KEYS.values():
        fx.engine.cancel_all(key, "BTCUSDT", now_ms=fx.now_ms())
    fx.set_mid(SYM, "60000")
    assert fx.unknown_paths == [] and fx.internal_errors == []


# ---------------------------------------------------------------------- markets, Decimal


def test_load_markets_once_even_with_concurrent_first_callers(fx):
    fx.requests_log.clear()
    account = ExchangeAccount(make_cfg(fx, "load"))
    greenlets = [gevent.spawn(account.fetch_ticker, SYM) for _ in range(20)]
    gevent.joinall(greenlets, raise_error=True)
    account.load_markets()
    account.fetch_order_book(SYM)
    assert count(fx, "GET", "/api/v3/exchangeInfo") == 1
    assert count(fx, "GET", "/sapi/v1/capital/config/getall") == 1
    assert count(fx, "GET", "/api/v3/ticker/24hr") == 20
    assert account.markets_loaded and SYM in account.markets
    assert set(account.currencies["USDT"]["networks"]) == {"ERC20", "TRC20"}
    assert account.stats.requests == 2 + 20 + 1
    account.close()


def test_decimal_at_the_boundary(acct):
    assert to_decimal(0.1) == D("0.1") and to_decimal(1e-05) == D("0.00001") and to_decimal(59999.13) == D("59999.13")
    assert to_decimal(None) is None and to_decimal(float("nan")) is None and to_decimal("") is None
    assert to_decimal(7) == D(7) and to_decimal("0.30000000") == D("0.3")
    t = acct.fetch_ticker(SYM)
    assert (t.bid, t.ask, t.last) == (D("59994"), D("60006"), D("60000"))
    assert all(isinstance(x, Decimal) for x in (t.bid, t.ask, t.last, t.bid_volume))
    book = acct.fetch_order_book(SYM, 5)
    assert len(book.bids) == len(book.asks) == 5 and book.bids[0][0] == D("59994") and book.asks[0][0] == D("60006")
    assert all(isinstance(v, Decimal) for level in book.bids + book.asks for v in level)
    bal = acct.fetch_balance()
    assert bal["USDT"] == (D("10000"), D("0"), D("10000")) and bal["USDT"].free == D("10000")
    assert isinstance(bal["BTC"].total, Decimal)
    rules = acct.market_rules(SYM)
    assert (rules.price_tick, rules.amount_step, rules.min_cost) == (D("0.01"), D("0.00001"), D("5"))


# ---------------------------------------------------------------------- wallet


def test_deposit_address_with_network_and_tag(fx, acct):
    trc = acct.fetch_deposit_address("USDT", "TRC20")
    assert trc.network == "TRC20" and trc.tag is None and trc.code == "USDT"
    assert (trc.address, None) == fx.deposit_address(KEYS["main"][0], "USDT", "TRX")
    default = acct.fetch_deposit_address("USDT", None)  # the isDefault network
    assert default.network == "ERC20" and default.address.startswith("0x")
    xrp = acct.fetch_deposit_address("XRP")
    assert xrp.network == "XRP" and xrp.tag and xrp.tag.isdigit()
    assert (xrp.address, xrp.tag) == fx.deposit_address(KEYS["main"][0], "XRP", "XRP")


def test_deposits_pending_then_ok(fx, acct):
    address, tag = fx.deposit_address(KEYS["main"][0], "USDT", "TRX")
    since = int(time.time() * 1000) - 1
    fx.credit_deposit(address=address, tag=tag, coin="USDT", network="TRX", amount="100.5", txid="0xacc01", delay=0.3)
    (d,) = [x for x in acct.fetch_deposits("USDT", since) if x.txid == "0xacc01"]
    assert isinstance(d, Transfer) and d.type == "deposit"
    assert (d.status, d.network, d.amount, d.address, d.code) == ("pending", "TRC20", D("100.5"), address, "USDT")
    gevent.sleep(0.35)
    (d,) = [x for x in acct.fetch_deposits("USDT", since) if x.txid == "0xacc01"]
    assert d.status == "ok" and d.id


def test_withdraw_with_client_id_and_lookup(fx):
    account = ExchangeAccount(make_cfg(fx, "wallet"))
    fx.withdraw_delay = None  # completed by hand below
    w = account.withdraw("USDT", D("50.1234567"), TRON_ADDR, None, "TRC20", client_id="mm-wd-1")
    # truncated to the network's step (0.000001), never rounded up
    assert (w.amount, w.status, w.client_id, w.network, w.type) == (D("50.123456"), "pending", "mm-wd-1", "TRC20",
                                                                     "withdrawal")
    (record,) = [x for x in fx.wallet.withdrawals if x.id == w.id]
    assert record.withdraw_order_id == "mm-wd-1" and record.amount == D("50.123456") and record.network == "TRX"
    found = account.find_withdrawal("mm-wd-1", "USDT")
    assert found is not None and found.id == w.id and found.status == "pending"
    assert found.fee == D("1") and found.amount == D("49.123456")  # binance reports the net amount
    fx.finish_withdrawal(w.id)
    assert account.find_withdrawal("mm-wd-1").status == "ok"
    assert account.find_withdrawal("mm-wd-unknown") is None
    fx.credit(KEYS["wallet"][0], "XRP", "100")
    m = account.withdraw("XRP", D("5"), XRP_ADDR, "12345", "XRP", client_id="mm-wd-2")
    (rec,) = [x for x in fx.wallet.withdrawals if x.id == m.id]
    assert rec.tag == "12345" and m.tag == "12345"
    with pytest.raises(DefinitiveError) as err:  # -4026 through the spot error table
        account.withdraw("USDT", D("1000000"), TRON_ADDR, None, "TRC20", client_id="mm-wd-3")
    assert err.value.kind == "insufficient_funds" and err.value.executed is False
    fx.withdraw_delay = 1.0
    account.close()


# ---------------------------------------------------------------------- orders


def test_limit_order_create_fetch_cancel_by_client_order_id(fx, acct):
    o = acct.create_limit_order(SYM, "buy", D("0.0012345"), D("59999.129"), client_order_id="mm-o-1")
    # amount truncated to the step; a buy's price moved DOWN to the tick (ccxt alone would round up)
    assert (o.amount, o.price, o.status, o.client_order_id, o.post_only) == (D("0.00123"), D("59999.12"), "open",
                                                                              "mm-o-1", True)
    ask = acct.create_limit_order(SYM, "sell", D("0.001"), D("60100.121"), client_order_id="mm-o-2")
    assert ask.price == D("60100.13")  # a sell's price moved UP
    (engine_order,) = [x for x in fx.engine.open_orders(KEYS["main"][0], "BTCUSDT") if x.client_order_id == "mm-o-1"]
    assert engine_order.type == "LIMIT_MAKER" and engine_order.price == D("59999.12")
    got = acct.fetch_order(SYM, client_order_id="mm-o-1")
    assert got.id == o.id and got.filled == D("0") and got.remaining == D("0.00123")
    assert {x.client_order_id for x in acct.fetch_open_orders(SYM)} == {"mm-o-1", "mm-o-2"}
    fx.place_taker(SYM, "sell", "0.0005")  # fills part of our bid as maker
    got = acct.fetch_order(SYM, order_id=o.id)
    assert got.filled == D("0.0005") and got.remaining == D("0.00073")
    (trade,) = [t for t in acct.fetch_my_trades(SYM) if t.order_id == o.id]
    assert (trade.price, trade.amount, trade.taker_or_maker, trade.side) == (D("59999.12"), D("0.0005"), "maker", "buy")
    assert trade.fee == D("0.0000005") and trade.fee_currency == "BTC"
    c = acct.cancel_order(SYM, client_order_id="mm-o-1")
    assert c.status == "canceled" and c.id == o.id and c.client_order_id == "mm-o-1"
    assert acct.cancel_order(SYM, order_id=ask.id).status == "canceled"
    assert acct.fetch_open_orders(SYM) == []
    with pytest.raises(DefinitiveError):
        acct.fetch_order(SYM)  # neither id


def test_replace_limit_order_is_one_cancel_replace_request_with_both_halves(fx, acct):
    """Binance: the old order cancelled and its replacement placed in ONE request, each half reported; a
    refused half comes back as an outcome (not an exception), and the whole request refused before either
    half raises."""
    assert acct.can_cancel_replace
    acct.create_limit_order(SYM, "buy", D("0.001"), D("59000"), client_order_id="mm-r-1")
    sent = count(fx, "POST", "/api/v3/order/cancelReplace")
    out = acct.replace_limit_order(SYM, "buy", D("0.0012345"), D("59100.129"), cancel_client_order_id="mm-r-1",
                                   client_order_id="mm-r-2")
    assert count(fx, "POST", "/api/v3/order/cancelReplace") == sent + 1
    assert (out.cancelled.client_order_id, out.cancelled.status, out.cancelled.filled) == ("mm-r-1", "canceled", 0)
    assert (out.placed.client_order_id, out.placed.status, out.placed.amount, out.placed.price) == (
        "mm-r-2", "open", D("0.00123"), D("59100.12"))                       # rounded as a create is
    assert {o.client_order_id for o in acct.fetch_open_orders(SYM)} == {"mm-r-2"}
    # the old one is gone: STOP_ON_FAILURE places nothing
    out = acct.replace_limit_order(SYM, "buy", D("0.001"), D("59000"), cancel_client_order_id="mm-r-1",
                                   client_order_id="mm-r-3")
    assert out.cancelled is None and out.placed is None and out.place_error is None
    assert out.cancel_error is not None
    # cancelled, but the post-only replacement would cross: the old order is gone, the new one refused
    out = acct.replace_limit_order(SYM, "buy", D("0.001"), D("60010"), cancel_client_order_id="mm-r-2",
                                   client_order_id="mm-r-4")
    assert out.cancelled.status == "canceled" and out.placed is None
    assert out.place_error.kind == "invalid_order" and out.cancel_error is None
    assert acct.fetch_open_orders(SYM) == []
    acct.create_limit_order(SYM, "buy", D("0.001"), D("59000"), client_order_id="mm-r-5")
    with pytest.raises(DefinitiveError):                                      # filters: nothing cancelled
        acct.replace_limit_order(SYM, "buy", D("0.00001"), D("59000"), cancel_client_order_id="mm-r-5",
                                 client_order_id="mm-r-6")
    assert {o.client_order_id for o in acct.fetch_open_orders(SYM)} == {"mm-r-5"}
    acct.cancel_order(SYM, client_order_id="mm-r-5")


# ---------------------------------------------------------------------- classification


def test_definitive_refusals(fx, acct):
    with pytest.raises(DefinitiveError) as err:
        acct.create_limit_order(SYM, "buy", D("1"), D("59000"), client_order_id="mm-c-1")  # 59000 USDT > 10000
    assert err.value.kind == "insufficient_funds" and err.value.executed is False and not err.value.retryable
    with pytest.raises(DefinitiveError) as err:  # post-only that would cross
        acct.create_limit_order(SYM, "buy", D("0.001"), D("60010"), client_order_id="mm-c-2")
    assert err.value.kind == "invalid_order"
    acct.create_limit_order(SYM, "buy", D("0.001"), D("59000"), client_order_id="mm-c-3")
    with pytest.raises(DefinitiveError) as err:
        acct.create_limit_order(SYM, "buy", D("0.001"), D("58000"), client_order_id="mm-c-3")
    assert err.value.kind == "duplicate"  # proves the first one exists
    with pytest.raises(DefinitiveError) as err:
        acct.fetch_order(SYM, order_id="999999999")
    assert err.value.not_found and err.value.kind == "not_found"
    before = len(fx.requests_log)
    with pytest.raises(DefinitiveError) as err:
        acct.fetch_ticker("NOPE/USDT")
    assert err.value.kind == "bad_symbol" and len(fx.requests_log) == before  # refused locally
    with pytest.raises(DefinitiveError) as err:
        acct.create_limit_order(SYM, "buy", D("0.000001"), D("59000"), client_order_id="mm-c-4")  # below the step
    assert err.value.kind == "invalid_order"
    assert acct.stats.errors["insufficient_funds"] >= 1
    with pytest.raises(TypeError):  # money is never a float in mmflow, not even on the way in
        acct.create_limit_order(SYM, "buy", 0.001, D("59000"), client_order_id="mm-c-5")


def test_timeout_after_apply_on_create_is_unknown_and_resolved_by_client_id(fx):
    account = ExchangeAccount(make_cfg(fx, "faults", request_timeout=0.3))
    account.load_markets()
    fx.requests_log.clear()
    fx.inject("/api/v3/order", method="POST", status=200, delay=1.0, after_apply=True)
    with pytest.raises(UnknownOutcome) as err:
        account.create_limit_order(SYM, "buy", D("0.001"), D("59000"), client_order_id="mm-lost-1")
    assert err.value.kind == "timeout" and err.value.executed is None
    assert count(fx, "POST", "/api/v3/order") == 1  # not repeated blindly
    (o,) = fx.engine.open_orders(KEYS["faults"][0], "BTCUSDT")
    assert o.client_order_id == "mm-lost-1"  # it exists although the call "failed"
    found = account.fetch_order(SYM, client_order_id="mm-lost-1")
    assert found.id == str(o.order_id) and found.status == "open"
    # the not-found race: right after placement the lookup can say "does not exist"
    fx.order_not_found_window(0.3)
    placed = account.create_limit_order(SYM, "buy", D("0.001"), D("58000"), client_order_id="mm-race-1")
    with pytest.raises(DefinitiveError) as nf:
        account.fetch_order(SYM, client_order_id="mm-race-1")
    assert nf.value.not_found
    gevent.sleep(0.3)
    assert account.fetch_order(SYM, client_order_id="mm-race-1").id == placed.id
    account.close()


def test_5xx_and_server_errors_are_unknown_outcomes_and_not_repeated(fx, acct):
    fx.requests_log.clear()
    fx.inject("/api/v3/order", method="POST", status=503)
    with pytest.raises(UnknownOutcome) as err:
        acct.create_limit_order(SYM, "buy", D("0.001"), D("59000"), client_order_id="mm-5xx-1")
    assert err.value.kind == "unavailable" and err.value.http_status == 503
    fx.inject("/api/v3/ticker", status=500, error_code=-1000, msg="An unknown error occured while processing the request.")
    with pytest.raises(UnknownOutcome) as err:
        acct.fetch_ticker(SYM)
    assert err.value.kind == "server_error"
    fx.inject("/sapi/v1/capital/deposit/hisrec", status=502)
    with pytest.raises(UnknownOutcome):
        acct.fetch_deposits("USDT")
    assert [s for _m, _p, s in fx.requests_log] == [503, 500, 502]


def test_bad_key_is_an_authentication_failure(fx, acct):
    bad = ExchangeAccount(make_cfg(fx, "main", account_id="bad", secret="not-the-secret"))
    with pytest.raises(AuthenticationFailed) as err:
        bad.load_markets()  # capital/config/getall is signed
    assert isinstance(err.value, DefinitiveError) and err.value.kind == "auth" and err.value.http_status == 400
    assert "-1022" in str(err.value)
    stranger = ExchangeAccount(make_cfg(fx, "stranger"))
    with pytest.raises(AuthenticationFailed) as err:
        stranger.fetch_balance()
    assert err.value.http_status == 401 and "-2015" in str(err.value)
    bad.close()
    stranger.close()


# ---------------------------------------------------------------------- 429 / 418


def test_a_429_on_create_is_retried_after_the_pause_and_the_order_placed_once(fx):
    lim = WeightedLimiter(10**6, max_concurrency=10, default_backoff=0.2, name="retry")
    account = ExchangeAccount(make_cfg(fx, "orders"), limiter=lim)
    account.load_markets()
    fx.inject("/api/v3/order", method="POST", status=429)  # no Retry-After: the default backoff
    started = time.monotonic()
    o = account.create_limit_order(SYM, "buy", D("0.001"), D("59000"), client_order_id="mm-429-1")
    assert time.monotonic() - started >= 0.19
    assert [x.client_order_id for x in fx.engine.open_orders(KEYS["orders"][0], "BTCUSDT")] == ["mm-429-1"]
    assert o.client_order_id == "mm-429-1"
    st = account.stats
    assert (st.rejected_429, st.retries, st.penalties) == (1, 1, 1)
    # a budget of retries that runs out surfaces as RateLimited (refused before execution)
    stingy = ExchangeAccount(make_cfg(fx, "orders", rate_limit_retries=1),
                             limiter=WeightedLimiter(10**6, default_backoff=0.02, max_backoff=0.05))
    stingy.load_markets()
    fx.inject("/api/v3/ticker", status=429, retry_after=None, count=3)
    with pytest.raises(RateLimited) as err:
        stingy.fetch_ticker(SYM)
    assert err.value.executed is False and err.value.http_status == 429 and isinstance(err.value, ExchangeError)
    account.close()
    stingy.close()


def test_a_request_that_waited_in_the_limiter_is_signed_after_the_wait(fx):
    """The timestamp is taken after the limiter's wait, right before sending: a request queued longer than its
    recvWindow still reaches the venue inside it (signed before the wait, Binance would refuse it: -1021)."""
    lim = WeightedLimiter(10**6, max_concurrency=10, name="sign-late")
    account = ExchangeAccount(make_cfg(fx, "orders", options={"recvWindow": 200}), limiter=lim)
    account.load_markets()
    refused_before = count(fx, "POST", "/api/v3/order", 400)
    lim.penalize(0.6)   # the account pauses: the next request waits ~0.6 s in the limiter, 3 recvWindows
    o = account.create_limit_order(SYM, "buy", D("0.001"), D("58000"), client_order_id="mm-late-sign-1")
    assert o.status == "open" and lim.stats.waited >= 1
    assert count(fx, "POST", "/api/v3/order", 400) == refused_before
    assert account.cancel_order(SYM, client_order_id="mm-late-sign-1").status == "canceled"
    account.close()


def test_a_request_refused_for_its_timestamp_is_sent_once_more_signed_afresh(fx):
    account = ExchangeAccount(make_cfg(fx, "orders"), limiter=WeightedLimiter(10**6, name="clock"))
    account.load_markets()
    posts = count(fx, "POST", "/api/v3/order")
    fx.inject("/api/v3/order", method="POST", status=400, error_code=-1021,
              msg="Timestamp for this request is outside of the recvWindow.")
    o = account.create_limit_order(SYM, "buy", D("0.001"), D("58000"), client_order_id="mm-clock-1")
    assert o.status == "open" and count(fx, "POST", "/api/v3/order") == posts + 2
    fx.inject("/api/v3/order", method="POST", status=400, error_code=-1021, count=2,
              msg="Timestamp for this request is outside of the recvWindow.")
    with pytest.raises(DefinitiveError) as err:   # refused again: the caller decides (not a rejection)
        account.create_limit_order(SYM, "buy", D("0.001"), D("58000"), client_order_id="mm-clock-2")
    assert err.value.kind == "clock" and err.value.retryable and err.value.executed is False
    assert account.cancel_order(SYM, client_order_id="mm-clock-1").status == "canceled"
    account.close()


def test_429_then_418_pause_the_whole_account_and_no_request_is_lost(fx):
    account = ExchangeAccount(make_cfg(fx, "load", weight_per_minute=10**6, max_concurrency=50))
    account.load_markets()
    # ticker weighs 2: 50 per window — low enough that even a client slowed by a busy machine runs into it
    fx.rate_limit(100, window=1.0, ban_after=2, ban_seconds=1.0)
    during_pause: list[tuple[int, int]] = []

    def watch_a_pause() -> None:
        while account.limiter.paused_for < 0.5:
            gevent.sleep(0.005)
        gevent.sleep(0.2)  # requests in flight when the pause began have landed by now
        first = len(fx.requests_log)
        while account.limiter.paused_for > 0.1:
            gevent.sleep(0.005)
        during_pause.append((first, len(fx.requests_log)))

    watcher = gevent.spawn(watch_a_pause)
    calls = [gevent.spawn(account.fetch_ticker, SYM) for _ in range(150)]
    gevent.joinall(calls, timeout=60)
    watcher.join(timeout=5)
    assert all(g.successful() for g in calls), [g.exception for g in calls if not g.successful()][:3]
    assert all(g.value.bid == D("59994") for g in calls)
    st = account.stats
    assert st.penalties >= 1 and st.rejected_429 >= 1 and st.retries >= 1
    ws = fx.weight_stats
    assert ws["count_429"] >= 1
    assert st.rejected_429 + st.rejected_418 == ws["count_429"] + ws["count_418"]
    # refusals came only from requests already in flight, not from a stream of new ones
    assert ws["count_429"] + ws["count_418"] <= 2 * 50 * st.penalties
    (first, last), = during_pause
    assert first == last, "requests were sent while the account was paused"
    account.close()


def test_limiter_at_the_exchange_limit_means_zero_rejections(fx):
    account = ExchangeAccount(make_cfg(fx, "load", account_id="at-limit", weight_per_minute=300, weight_window=1.0))
    account.load_markets()
    fx.rate_limit(300, window=1.0, ban_after=1)  # windows start now
    started = time.monotonic()
    calls = [gevent.spawn(account.fetch_ticker, SYM) for _ in range(240)]  # 480 weight: spans 3 windows
    gevent.joinall(calls, timeout=10, raise_error=True)
    elapsed = time.monotonic() - started
    ws = fx.weight_stats
    assert (ws["count_429"], ws["count_418"]) == (0, 0)
    st = account.stats
    assert st.penalties == 0 and st.rejected_429 == 0 and st.waits > 0
    assert elapsed >= 1.8  # paced: (480 - the burst of 30) at 270/1.25 per s
    account.close()


def test_weights_and_buckets_charged_per_request_and_call_escape_hatch(fx):
    lim = RecordingLimiter(10**6, bucket_limits={"sapi": 10**6})
    account = ExchangeAccount(make_cfg(fx, "main", account_id="weights"), limiter=lim)
    account.load_markets()
    assert lim.charged == [("sapi", 10), ("default", 20)]  # capital/config/getall, exchangeInfo
    lim.charged.clear()
    account.fetch_order_book(SYM, 20)
    account.fetch_order_book(SYM, 500)
    account.fetch_ticker(SYM)
    account.fetch_open_orders(SYM)
    account.fetch_deposit_address("USDT", "TRC20")
    assert lim.charged == [("default", 5), ("default", 25), ("default", 2), ("default", 6), ("sapi", 10)]
    lim.charged.clear()
    server_ms = account.call("fetch_time", weight=7)
    assert abs(server_ms - fx.now_ms()) < 5000 and lim.charged == [("default", 7)]
    with pytest.raises(AttributeError):
        account.call("no_such_method")
    account.close()


def test_ccxt_calls_leave_the_callers_decimal_context_alone(acct):
    """ccxt's precision helpers rewrite the Decimal context; the account keeps that inside each call."""
    import decimal as _decimal

    before = _decimal.getcontext()
    rounding, underflow = before.rounding, before.traps[_decimal.Underflow]
    acct.create_limit_order(SYM, "buy", D("0.001234567"), D("50000.005"), client_order_id="ctx-1", post_only=True)
    acct.fetch_ticker(SYM)
    after = _decimal.getcontext()
    assert (after.rounding, after.traps[_decimal.Underflow]) == (rounding, underflow)
