"""KPI samples on a real SQLite file: the quote spans the exchange-order state changes record, one sample
computed from a hand-built order (arithmetic in the comments), the reads (series, summary, SLA report), and
`python run.py orders kpi|sla` on that file (in process: the same main() the command line runs)."""
from __future__ import annotations

import csv
import dataclasses
import io
import json
from datetime import date, datetime, timezone
from decimal import Decimal as D
from pathlib import Path

import pytest

import run
from domain import kpi
from domain.exchange_orders import ExOrderState as S
from domain.exchange_orders import TradeFill
from domain.payment import FeeRequirements
from domain.states import OrderState
from storage import exchange_repo as xr
from storage import kpi as kpi_store
from storage import repo
from storage.db import open_database
from storage.kpi_models import KpiQuoteSpan
from storage.models import LedgerEntry, Order, OrderStateChange, database_proxy
from storage.writer import Writer
from tests.databases import database_url

PAIR = "0776b00f-95c0-46f9-85e4-7b8e7ca51e94"
ORDER = "11111111-2222-3333-4444-555555555555"
OTHER = "99999999-2222-3333-4444-555555555555"
ACC, SYM = "binance", "BTC/USDT"
DAY = date(2026, 3, 2)
MIDNIGHT = datetime(2026, 3, 2, tzinfo=timezone.utc).timestamp()
CONFIG = """
[database]
url = "{db}"
[mixin]
keystore = "keystore.json"
[payments]
market_making_fee_percent = "0.1"
[[exchanges]]
id = "binance"
ccxt = "binance"
api_key_env = "KPI_TEST_UNUSED_KEY"
secret_env = "KPI_TEST_UNUSED_SECRET"
[[pairs]]
id = "{pair}"
symbol = "BTC/USDT"
exchange = "binance"
base_asset_id = "c6d0c728-2624-429b-8e0d-d9d19b6592fa"
quote_asset_id = "4d8c508b-91c5-375b-92b0-ee702ed2dac5"
{extra}
"""


@pytest.fixture
def db_path(tmp_path):
    path = tmp_path / "kpi.db"
    database = open_database(database_url(path))
    yield path
    database.close()
    database_proxy.initialize(None)


@pytest.fixture
def w(db_path):
    writer = Writer(database_proxy.obj, batch_max=50).start()
    yield writer
    writer.stop()


def make_order(w, order_id=ORDER, running_at=1000.0):
    """An order that became running at ``running_at``, funded with 1 BTC + 100 USDT, opening price 100."""
    fees = FeeRequirements("a", D("0"), "b", D("0"), D("0.1"))

    def unit():
        repo.create_order(order_id, PAIR, fees, running_at - 100, 600)
        OrderStateChange.create(order_id=order_id, from_state="campaign_joined", to_state="running", at=running_at)
        Order.update(state=OrderState.RUNNING.value, started_at=running_at).where(Order.order_id == order_id).execute()
        for asset, amount in (("BTC", "1"), ("USDT", "100")):
            LedgerEntry.create(order_id=order_id, asset=asset, delta=D(amount), reason="deposit",
                               ref=f"deposit:{order_id}:{asset}", at=running_at - 1)
        repo.set_opening_price(order_id, D("100"))
    w.run(unit)


def place(w, side, price, amount, at, order_id=ORDER):
    """Reserve, send and have the exchange acknowledge an order at ``at``. Returns its client id."""
    cid = w.run(xr.reserve_client_order, order_id, ACC, SYM, side, D(price), D(amount), 0, at)
    w.run(xr.mark_submitted, cid, at)
    w.run(xr.map_exchange_id, cid, f"x-{cid}", S.ACCEPTED, at)
    return cid


def cancel(w, cid, at):
    w.run(xr.transition, cid, S.PENDING_CANCEL, at - 0.5)
    w.run(xr.apply_status, cid, "canceled", D("0"), xr.get_exchange_order(cid).amount, at)


def trade(w, cid, trade_id, side, price, amount, at, liquidity="maker"):
    w.run(xr.apply_fill, ACC, TradeFill(trade_id=trade_id, client_order_id=cid, exchange_order_id=None, symbol=SYM,
                                        side=side, price=D(price), amount=D(amount), fee=D("0"), fee_currency=None,
                                        timestamp_ms=int(at * 1000), liquidity=liquidity), at + 0.2)


def span(cid):
    row = KpiQuoteSpan.get_or_none(KpiQuoteSpan.client_order_id == cid)
    return None if row is None else (row.acked_at, row.closed_at)


def test_state_changes_record_when_each_order_rested_on_the_book(w):
    cid = place(w, "buy", "99", "1", 10.0)
    assert span(cid) == (10.0, None)
    w.run(xr.transition, cid, S.PENDING_CANCEL, 15.0)           # still on the book while the cancel is in flight
    assert span(cid) == (10.0, None)
    w.run(xr.apply_status, cid, "canceled", D("0"), D("1"), 16.0)
    assert span(cid) == (10.0, 16.0)
    trade(w, cid, "t1", "buy", "99", "1", 15.5)                 # a fill racing the cancel: closed stays 16
    assert xr.get_exchange_order(cid).state is S.FILLED and span(cid) == (10.0, 16.0)
    # refused by the exchange: it never rested
    refused = w.run(xr.reserve_client_order, ORDER, ACC, SYM, "sell", D("101"), D("1"), 0, 20.0)
    w.run(xr.mark_submitted, refused, 20.0)
    w.run(xr.transition, refused, S.REJECTED, 20.1, "insufficient balance")
    assert span(refused) is None


def build_history(w):
    """[1000, 1100] of ORDER, mid 100 (±2 % = [98, 102]):
    bid 99 x 1 live from 1000 on; ask 101 x 1 from 1000 to 1040 (cancelled); nothing on the ask side 1040..1060;
    ask 102 x 1 from 1060, 0.5 of it filled at 1070 (maker)."""
    make_order(w)
    place(w, "buy", "99", "1", 1000.0)
    cancel(w, place(w, "sell", "101", "1", 1000.0), 1040.0)
    ask = place(w, "sell", "102", "1", 1060.0)
    trade(w, ask, "t7", "sell", "102", "0.5", 1070.0)


def test_a_sample_computed_from_the_database(w):
    build_history(w)
    s = kpi_store.compute_sample(ORDER, "BTC", "USDT", 1000.0, 1100.0, D("100"), kpi.TradeTotals())
    # two-sided 1000..1040 and 1060..1100 = 80 of 100 running seconds
    assert (s.interval_seconds, s.running_seconds, s.two_sided_seconds) == (100, 100, 80)
    # spread 2/100*1e4 = 200 for 40 s, 3/100.5*1e4 = 298.50746 for 40 s → 249.2537
    assert s.spread_bps == D("249.2537")
    # depth ask = (101*40 + 0*20 + 102*10 + 51*30) / 100 = (4040 + 1020 + 1530) / 100 = 65.9; bid 99 throughout
    assert (s.depth_bid, s.depth_ask) == (D("99"), D("65.9"))
    # volume: 102 * 0.5 = 51 maker, 1 fill
    assert (s.maker_volume, s.taker_volume, s.fills) == (D("51"), D("0"), 1)
    # PnL: opening 1 BTC at 100; sold 0.5 at 102 → realised 51 - 50 = 1; 0.5 left costing 50, at mid 100 → 0
    assert (s.realised_pnl, s.unrealised_pnl) == (D("1"), D("0"))
    # inventory: the ledger, 1 - 0.5 BTC and 100 + 51 USDT
    assert (s.base, s.quote, s.mid) == (D("0.5"), D("151"), D("100"))
    # the next sample counts only what was not counted yet
    again = kpi_store.compute_sample(ORDER, "BTC", "USDT", 1100.0, 1160.0, D("100"),
                                     kpi.TradeTotals(s.maker_volume, s.taker_volume, s.fills))
    assert (again.fills, again.maker_volume, again.two_sided_seconds) == (0, D("0"), 60)
    assert w.run(kpi_store.write_sample, s) is True
    assert w.run(kpi_store.write_sample, s) is False             # a replay writes nothing
    assert kpi_store.counted_trades(ORDER) == kpi.TradeTotals(D("51"), D("0"), 1)
    assert kpi_store.last_sample(ORDER).ts == 1100.0


def test_left_sampling_at_reads_the_history(w):
    make_order(w)
    assert kpi_store.left_sampling_at(ORDER) is None
    w.run(lambda: OrderStateChange.create(order_id=ORDER, from_state="running", to_state="paused", at=1200.0))
    assert kpi_store.left_sampling_at(ORDER) is None                 # paused is still sampled
    w.run(lambda: OrderStateChange.create(order_id=ORDER, from_state="paused", to_state="stopping", at=1300.0))
    assert kpi_store.left_sampling_at(ORDER) == 1300.0


def put(w, order_id, ts, interval=60.0, running=60.0, two_sided=60.0, spread="10", bid="1000", ask="900",
        maker="5", taker="1", fills=1, **levels):
    w.run(kpi_store.write_sample, kpi.Sample(order_id, ts, interval, running, two_sided, D(spread), D(bid), D(ask),
                                             D(maker), D(taker), fills, **levels))


def samples_around_midnight(w):
    """ORDER: two samples before midnight (day 1), two after (DAY); OTHER: one on DAY."""
    make_order(w)
    make_order(w, OTHER)
    put(w, ORDER, MIDNIGHT - 60, two_sided=30, spread="20")
    put(w, ORDER, MIDNIGHT, two_sided=60, spread="10")              # ends at midnight: the day before
    put(w, ORDER, MIDNIGHT + 60, two_sided=45, spread="12", bid="800", ask="700", maker="10", taker="0", fills=3)
    put(w, ORDER, MIDNIGHT + 120, two_sided=15, spread="20", bid="400", ask="300", maker="0", taker="2", fills=1,
        realised_pnl=D("1.25"), unrealised_pnl=D("-0.5"), base=D("0.9"), quote=D("110"), mid=D("100"))
    put(w, OTHER, MIDNIGHT + 60, running=30, two_sided=30, spread="50", bid="10", ask="10", maker="1", taker="1")


def test_series_summary_and_sla_report(w):
    samples_around_midnight(w)
    series = kpi_store.kpi_series(ORDER)
    assert [s["ts"] for s in series] == ["2026-03-01T23:59:00Z", "2026-03-02T00:00:00Z", "2026-03-02T00:01:00Z",
                                         "2026-03-02T00:02:00Z"]
    assert series[2]["uptime_pct"] == "75" and series[2]["maker_volume"] == "10" and series[2]["volume"] == "10"
    assert series[3]["realised_pnl"] == "1.25" and series[3]["base"] == "0.9" and series[3]["mid"] == "100"
    assert [s["ts"] for s in kpi_store.kpi_series(ORDER, since="2026-03-02T00:00:00Z", until=MIDNIGHT + 60)] == \
        ["2026-03-02T00:00:00Z", "2026-03-02T00:01:00Z"]
    assert [s["ts_epoch"] for s in kpi_store.kpi_series(ORDER, limit=2)] == [MIDNIGHT + 60, MIDNIGHT + 120]
    assert kpi_store.kpi_series("nobody") == []
    summary = kpi_store.kpi_summary(ORDER)
    # uptime (30 + 60 + 45 + 15) / 240 = 62.5 %; spread (20*30 + 10*60 + 12*45 + 20*15) / 150 = 2040 / 150 = 13.6
    assert summary["samples"] == 4 and summary["uptime_pct"] == "62.5" and summary["avg_spread_bps"] == "13.6"
    assert summary["latest"]["ts"] == "2026-03-02T00:02:00Z" and summary["realised_pnl"] == "1.25"
    assert kpi_store.kpi_summary("nobody")["samples"] == 0
    rows = kpi_store.sla_report(DAY)
    assert [r["order_id"] for r in rows] == sorted([ORDER, OTHER])
    mine = next(r for r in rows if r["order_id"] == ORDER)
    # DAY holds the samples ending 00:01 and 00:02: uptime (45 + 15) / 120 = 50 %;
    # spread (12*45 + 20*15) / 60 = 840 / 60 = 14; depth bid (800 + 400) / 2 = 600, ask (700 + 300) / 2 = 500;
    # volume 10 maker + 2 taker = 12, 4 fills
    assert mine == {"day": "2026-03-02", "order_id": ORDER, "pair_id": PAIR, "samples": 2, "sampled_seconds": 120,
                    "running_seconds": 120, "two_sided_seconds": 60, "uptime_pct": "50", "avg_spread_bps": "14",
                    "avg_depth_bid": "600", "avg_depth_ask": "500", "maker_volume": "10", "taker_volume": "2",
                    "volume": "12", "fills": 4}
    assert [r["samples"] for r in kpi_store.sla_report(date(2026, 3, 1), ORDER)] == [2]
    assert kpi_store.sla_report(date(2026, 3, 3)) == []


def write_config(tmp_path: Path, db_path: Path, extra: str = "") -> str:
    path = tmp_path / "mmflow.toml"
    path.write_text(CONFIG.format(db=database_url(db_path), pair=PAIR, extra=extra))
    return str(path)


def cli(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = run.main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_sla_json_and_csv(tmp_path, db_path, w, capsys):
    samples_around_midnight(w)
    config = write_config(tmp_path, db_path)
    code, out, _ = cli(capsys, "orders", "sla", "--config", config, "--day", "2026-03-02", "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert [r["order_id"] for r in rows] == sorted([ORDER, OTHER]) and rows[0]["day"] == "2026-03-02"
    code, out, err = cli(capsys, "orders", "sla", "--config", config, "--day", "2026-03-02", "--order", ORDER,
                         "--format", "csv")
    assert code == 0 and "1 orders sampled on 2026-03-02" in err
    table = list(csv.reader(io.StringIO(out)))
    assert table[0] == list(kpi.SLA_COLUMNS)
    assert table[1] == ["2026-03-02", ORDER, PAIR, "2", "120.0", "120.0", "60.0", "50", "14", "600", "500", "10", "2",
                        "12", "4"]
    code, out, _ = cli(capsys, "orders", "sla", "--config", config, "--day", "2026-03-05", "--format", "csv")
    assert code == 0 and out.splitlines() == [",".join(kpi.SLA_COLUMNS)]   # the header even with no rows


def test_cli_kpi_table_and_json(tmp_path, db_path, w, capsys):
    samples_around_midnight(w)
    config = write_config(tmp_path, db_path)
    code, out, _ = cli(capsys, "orders", "kpi", ORDER, "--config", config, "--json", "--since", "2026-03-02")
    assert code == 0
    doc = json.loads(out)
    assert [s["ts"] for s in doc["samples"]] == ["2026-03-02T00:00:00Z", "2026-03-02T00:01:00Z",
                                                 "2026-03-02T00:02:00Z"]
    assert doc["summary"]["samples"] == 3 and doc["summary"]["maker_volume"] == "15"
    code, out, _ = cli(capsys, "orders", "kpi", ORDER, "--config", config)
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["END", "(UTC)", "RUN"] and len(lines) == 1 + 4 + 1
    assert "2026-03-02T00:02:00Z" in lines[4] and "1.25" in lines[4]
    assert lines[-1].startswith("4 samples") and "uptime 62.5 %" in lines[-1]


@pytest.mark.parametrize("argv, message", [
    (("orders", "sla", "--day", "2026-02-30"), "error: --day: '2026-02-30' is not a day (YYYY-MM-DD)"),
    (("orders", "sla", "--format", "xml"), "error: --format must be json or csv, got 'xml'"),
    (("orders", "sla", "--order", "nobody"), "error: no order nobody"),
    (("orders", "kpi", "nobody"), "error: no order nobody"),
    (("orders", "kpi", ORDER, "--since", "last week"), "error: --since/--until: 'last week' is not a time"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, db_path, w, capsys, argv, message):
    make_order(w)
    code, out, err = cli(capsys, *argv, "--config", write_config(tmp_path, db_path))
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [err.strip()] and err.strip().startswith(message)


def test_bad_kpi_config_is_one_line_per_problem(tmp_path, db_path, capsys):
    config = write_config(tmp_path, db_path, '[kpi]\nsample_interval = "60"\nenable = false\n')
    code, out, err = cli(capsys, "orders", "sla", "--config", config)
    assert code == 2 and out == ""
    assert err.splitlines() == [f"error: {config}: kpi.sample_interval: must be a number, got '60'",
                                f"error: {config}: kpi.enable: unknown key; did you mean 'enabled'?"]
    config = write_config(tmp_path, db_path, "[kpi]\nsample_interval = 0.5\nenabled = 1\n")
    code, _, err = cli(capsys, "orders", "sla", "--config", config)
    assert code == 2 and err.splitlines() == [f"error: {config}: kpi.enabled: must be true or false (unquoted), got 1",
                                              f"error: {config}: kpi.sample_interval: must be >= 1, got 0.5"]


def sampler(w, tmp_path, db_path):
    """The sampler actor's object itself (not started: its rounds are called directly, with chosen times)."""
    import tomllib

    from actors.kpi import KpiSampler
    from actors.services import Services
    from domain.config import parse_config

    text = CONFIG.format(db=database_url(db_path), pair=PAIR, extra="")
    config = parse_config(tomllib.loads(text), read_secrets=False)
    services = Services(config=config, db=database_proxy.obj, mixin=None, fee_oracle=None, wallet=None, writer=w)
    return KpiSampler(services)


def test_sampler_rounds_resume_and_close_an_order_that_left(tmp_path, db_path, w):
    build_history(w)
    first = sampler(w, tmp_path, db_path)
    # First round at 1060: the order has no sample, so it starts when it began running (1000) — not earlier
    # than one interval back. No book cache: the opening price (100) is the mid.
    assert first.sample_round(1060.0) == 1
    s = kpi_store.last_sample(ORDER)
    assert (s.ts, s.interval_seconds, s.running_seconds, s.two_sided_seconds, s.mid) == (1060, 60, 60, 40, D("100"))
    assert (s.fills, s.maker_volume) == (1, D("51"))      # the fill at 1070 was recorded before this round
    # Paused at 1080, stopping at 1100: the next round closes the order's samples at 1100.
    def leave():
        OrderStateChange.create(order_id=ORDER, from_state="running", to_state="paused", at=1080.0)
        OrderStateChange.create(order_id=ORDER, from_state="paused", to_state="stopping", at=1100.0)
        Order.update(state="stopping").where(Order.order_id == ORDER).execute()
    w.run(leave)
    # A new sampler (a restart) finds the order among the last round's and owes it its final sample.
    second = sampler(w, tmp_path, db_path)
    second.setup()
    second.teardown()                      # only its timer: the rounds are called here
    assert second.sample_round(1120.0) == 1
    s = kpi_store.last_sample(ORDER)
    # [1060, 1100]: running 1060..1080 only; two-sided all of it (the bid and the ask 102 rest); the fill is
    # not counted twice
    assert (s.ts, s.interval_seconds, s.running_seconds, s.two_sided_seconds) == (1100, 40, 20, 20)
    assert (s.fills, s.maker_volume) == (0, D("0"))
    assert second.sample_round(1180.0) == 0 and second.tracks == {}
    assert [x["ts_epoch"] for x in kpi_store.kpi_series(ORDER)] == [1060, 1100]


def per_order_sample(order_id, base, quote, start, end, mid, counted):
    """The sample as the sampler computed it one order at a time before its rounds became set-based (its reads
    verbatim): the oracle the bulk rounds must equal."""
    import peewee as pw

    from storage.exchange_models import ExchangeOrder
    from storage.reports import opening_ledger, pnl_fills

    resting = (S.ACCEPTED.value, S.PARTIALLY_FILLED.value, S.PENDING_CANCEL.value)
    history = [(h.at, h.to_state) for h in repo.order_history(order_id)]
    fills = xr.fills_of(order_id)
    by_order = {}
    for f in fills:
        by_order.setdefault(f.client_order_id, []).append((f.at, f.amount))
    spans = []
    for cid, side, price, amount, state, submitted_at, created_at, acked_at, closed_at in (
            ExchangeOrder.select(ExchangeOrder.client_order_id, ExchangeOrder.side, ExchangeOrder.price,
                                 ExchangeOrder.amount, ExchangeOrder.state, ExchangeOrder.submitted_at,
                                 ExchangeOrder.created_at, KpiQuoteSpan.acked_at, KpiQuoteSpan.closed_at)
            .join(KpiQuoteSpan, pw.JOIN.LEFT_OUTER, on=(KpiQuoteSpan.client_order_id == ExchangeOrder.client_order_id))
            .where((ExchangeOrder.order_id == order_id) & (ExchangeOrder.created_at < end)
                   & (ExchangeOrder.state.in_(resting) | (ExchangeOrder.updated_at >= start))).tuples()):
        if acked_at is None:
            if state not in resting:
                continue
            acked_at = submitted_at or created_at
        if closed_at is not None and closed_at <= start:
            continue
        spans.append(kpi.QuoteSpan(side=side, price=D(price), amount=D(amount), live_from=acked_at,
                                   live_until=closed_at, fills=tuple(sorted(by_order.get(cid, ())))))
    book = kpi.book_kpis(start, end, kpi.observations(start, end, kpi.running_periods(history), spans, mid))
    trades = kpi.trade_totals((f.price, f.amount, f.liquidity) for f in fills) - counted
    opening = opening_ledger(order_id)
    pnl = kpi.pnl_levels(pnl_fills(fills, base), opening_base=opening.get(base, D(0)),
                         opening_quote=opening.get(quote, D(0)), opening_price=repo.opening_price(order_id), mid=mid)
    ledger = repo.ledger_balances(order_id)
    return kpi.build_sample(order_id, start, end, book, trades, pnl, ledger.get(base, D(0)), ledger.get(quote, D(0)),
                            mid)


ORDERS = [f"{i:08x}-2222-3333-4444-555555555555" for i in range(1, 6)]


def build_orders(w):
    """Five orders with different lives: ORDERS[0] is build_history's; [1] quotes and trades both sides (a taker
    fill, one without liquidity) and has an old cancelled quote; [2] is paused at 1090; [3] has no quotes;
    [4] starts running at 1080."""
    build_history(w)                                   # ORDER
    a, b, c, d, e = ORDERS
    make_order(w, a, running_at=900.0)
    old = place(w, "sell", "105", "1", 900.0, order_id=a)
    cancel(w, old, 950.0)                              # left the book long before the rounds: not in them
    bid = place(w, "buy", "98", "2", 1010.0, order_id=a)
    ask = place(w, "sell", "101.5", "1", 1020.0, order_id=a)
    trade(w, bid, "z1", "buy", "98", "0.5", 1030.0)     # trade ids not in time order: the PnL replays by time
    trade(w, ask, "a2", "sell", "101.5", "0.25", 1050.0, liquidity="taker")
    trade(w, bid, "a3", "buy", "98", "0.1", 1120.0, liquidity=None)
    make_order(w, b, running_at=1000.0)
    place(w, "buy", "99.5", "1", 1000.0, order_id=b)
    cancel(w, place(w, "sell", "100.5", "1", 1000.0, order_id=b), 1130.0)   # one-sided from 1130
    w.run(lambda: OrderStateChange.create(order_id=b, from_state="running", to_state="paused", at=1090.0))
    w.run(lambda: Order.update(state="paused").where(Order.order_id == b).execute())
    make_order(w, c, running_at=1000.0)
    make_order(w, d, running_at=1080.0)
    place(w, "buy", "97", "3", 1085.0, order_id=d)
    return [ORDER, a, b, c, d]


def test_a_bulk_round_equals_the_per_order_samples(tmp_path, db_path, w, monkeypatch):
    orders = build_orders(w)
    put(w, ORDER, 1040.0, interval=40, maker="0", taker="0", fills=0, mid=D("101"))   # ORDER resumes from 1040
    monkeypatch.setattr(kpi_store, "CHUNK", 2)         # several chunks in one round
    s = sampler(w, tmp_path, db_path)
    seen = []
    for now in (1100.0, 1160.0, 1220.0):
        before = {o: (kpi_store.last_sample(o), kpi_store.counted_trades(o)) for o in orders}
        assert s.sample_round(now) == len(orders)
        for o in orders:
            last, counted = before[o]
            sample = kpi_store.last_sample(o)
            # the start: the last sample's end, else when it began running (not earlier than one interval back);
            # the mid: no book cache, so the last sample's, else the opening price
            start = last.ts if last else max(Order.get_by_id(o).started_at, now - 60)
            expected = per_order_sample(o, "BTC", "USDT", start, now, last.mid if last else D("100"), counted)
            assert dataclasses.replace(sample, id=None) == expected
            seen.append(expected)
            assert kpi_store.compute_sample(o, "BTC", "USDT", start, now, expected.mid, counted) == expected
    # not a vacuous equality: the rounds saw spreads, depth, PnL and partly two-sided time
    assert {x.spread_bps is not None for x in seen} == {True, False}
    assert any(x.realised_pnl not in (None, D(0)) for x in seen) and any(x.depth_bid for x in seen)
    assert any(0 < x.two_sided_seconds < x.running_seconds for x in seen)
    totals = {o: kpi_store.counted_trades(o) for o in orders}
    # ORDERS[0]: 98 * 0.5 = 49 maker; 101.5 * 0.25 = 25.375 taker + 98 * 0.1 = 9.8 not reported (taker)
    assert totals[ORDERS[0]] == kpi.TradeTotals(D("49"), D("35.175"), 3)
    assert totals[ORDER] == kpi.TradeTotals(D("51"), D("0"), 1)
