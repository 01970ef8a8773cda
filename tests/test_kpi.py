"""Per-order KPI maths (domain/kpi.py) against hand-computed examples; the arithmetic is in the comments.

Times are seconds from 0, prices small round numbers, mid 100 unless said: ±2 % of mid is [98, 102]."""
from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal as D

import pytest

from domain import kpi
from domain.kpi import Observation, Quote, QuoteSpan
from domain.strategy.pnl import Fill

MID = D("100")
ALWAYS = [(0.0, None)]   # running the whole time


def book(start, end, periods, spans, mid=MID):
    return kpi.book_kpis(start, end, kpi.observations(start, end, periods, spans, mid))


def test_two_sided_all_the_time():
    # bid 99 x 1, ask 101 x 1 for the whole minute.
    # spread = (101 - 99) / ((101 + 99) / 2) * 10000 = 2 / 100 * 10000 = 200 bps
    # depth bid = 99 * 1 = 99 (99 >= 98), ask = 101 * 1 = 101 (101 <= 102)
    r = book(0, 60, ALWAYS, [QuoteSpan("buy", D("99"), D("1"), 0, None), QuoteSpan("sell", D("101"), D("1"), 0, None)])
    assert (r.interval_seconds, r.running_seconds, r.two_sided_seconds) == (60, 60, 60)
    assert kpi.uptime_pct(r.two_sided_seconds, r.running_seconds) == D("100.00")
    assert r.spread_bps == D("200.0000")
    assert (r.depth_bid, r.depth_ask) == (D("99"), D("101"))


def test_one_sided_gap_between_two_asks():
    # running 0..100; bid 99 x 1 all along; ask 101 x 1 from 0 to 40, nothing 40..60, ask 102 x 1 from 60 on.
    # two-sided = 40 + 40 = 80 s of 100 → uptime 80 %
    # spread 0..40 = 2 / 100 * 1e4 = 200; 60..100 = 3 / 100.5 * 1e4 = 298.50746...
    #   time-weighted = (200 * 40 + 298.50746 * 40) / 80 = 249.25373 → 249.2537
    # depth ask = (101 * 40 + 0 * 20 + 102 * 40) / 100 = (4040 + 0 + 4080) / 100 = 81.2
    # depth bid = 99 all along
    spans = [QuoteSpan("buy", D("99"), D("1"), 0, None), QuoteSpan("sell", D("101"), D("1"), 0, 40),
             QuoteSpan("sell", D("102"), D("1"), 60, None)]
    r = book(0, 100, ALWAYS, spans)
    assert (r.running_seconds, r.two_sided_seconds) == (100, 80)
    assert kpi.uptime_pct(r.two_sided_seconds, r.running_seconds) == D("80.00")
    assert r.spread_bps == D("249.2537")
    assert r.depth_bid == D("99") and r.depth_ask == D("81.2")


def test_paused_time_is_not_running_time():
    # running 0..30, paused 30..60 (quotes cancelled at 30): uptime over the 30 running seconds only.
    periods = kpi.running_periods([(0, "running"), (30, "paused")])
    assert periods == [(0, 30)]
    spans = [QuoteSpan("buy", D("99"), D("1"), 0, 30), QuoteSpan("sell", D("101"), D("1"), 0, 30)]
    r = book(0, 60, periods, spans)
    assert (r.interval_seconds, r.running_seconds, r.two_sided_seconds) == (60, 30, 30)
    assert kpi.uptime_pct(r.two_sided_seconds, r.running_seconds) == D("100.00")
    # paused the whole interval: nothing is measured, uptime is undefined (not 0 %)
    r = book(30, 60, periods, spans)
    assert (r.running_seconds, r.spread_bps, r.depth_bid) == (0, None, None)
    assert kpi.uptime_pct(r.two_sided_seconds, r.running_seconds) is None


def test_partial_fills_shrink_the_quote_then_empty_the_side():
    # bid 99 x 2: 1.5 filled at 20, the last 0.5 at 50 → no bid from 50; ask 101 x 1 all along, 0..60.
    # two-sided 0..50 = 50 s → 50 / 60 = 83.33 %
    # depth bid = (99 * 2 * 20 + 99 * 0.5 * 30 + 0 * 10) / 60 = (3960 + 1485) / 60 = 90.75
    spans = [QuoteSpan("buy", D("99"), D("2"), 0, None, fills=((20.0, D("1.5")), (50.0, D("0.5")))),
             QuoteSpan("sell", D("101"), D("1"), 0, None)]
    r = book(0, 60, ALWAYS, spans)
    assert r.two_sided_seconds == 50
    assert kpi.uptime_pct(r.two_sided_seconds, r.running_seconds) == D("83.33")
    assert r.depth_bid == D("90.75") and r.depth_ask == D("101")
    assert r.spread_bps == D("200.0000")


def test_depth_counts_only_quotes_within_two_percent_of_mid():
    # mid 100 → band [98, 102]. bids 99 x 1 (in), 97 x 5 (out); asks 102 x 1 (in, on the edge), 103 x 5 (out).
    # depth bid = 99, ask = 102. The spread is between the BEST quotes: (102 - 99) / 100.5 * 1e4 = 298.5075
    spans = [QuoteSpan("buy", D("99"), D("1"), 0, None), QuoteSpan("buy", D("97"), D("5"), 0, None),
             QuoteSpan("sell", D("102"), D("1"), 0, None), QuoteSpan("sell", D("103"), D("5"), 0, None)]
    r = book(0, 10, ALWAYS, spans)
    assert (r.depth_bid, r.depth_ask) == (D("99"), D("102"))
    assert r.spread_bps == D("298.5075")
    # without a mid there is no depth (but uptime and spread stand)
    r = book(0, 10, ALWAYS, spans, mid=None)
    assert (r.depth_bid, r.depth_ask, r.two_sided_seconds) == (None, None, 10)


def test_quotes_from_before_the_interval_and_late_starts():
    # A bid live since -50 (before the interval), an ask acknowledged at 15; running only from 5.
    # 0..5 not running; 5..15 one-sided; 15..20 two-sided → running 15, two-sided 5, uptime 33.33 %
    spans = [QuoteSpan("buy", D("99"), D("1"), -50, None), QuoteSpan("sell", D("101"), D("1"), 15, None)]
    r = book(0, 20, [(5.0, None)], spans)
    assert (r.running_seconds, r.two_sided_seconds) == (15, 5)
    assert kpi.uptime_pct(r.two_sided_seconds, r.running_seconds) == D("33.33")
    # depth bid over the 15 running seconds = 99; depth ask = 101 * 5 / 15 = 33.66666667
    assert r.depth_bid == D("99") and r.depth_ask == D("33.66666667")


def test_observations_one_per_change():
    # Two quotes opening at the same instant give one observation; a fill of a quote already gone changes nothing.
    spans = [QuoteSpan("buy", D("99"), D("1"), 10, 30, fills=((40.0, D("1")),)),
             QuoteSpan("sell", D("101"), D("1"), 10, None)]
    obs = kpi.observations(0, 60, ALWAYS, spans, MID)
    assert [o.at for o in obs] == [0, 10, 30]
    assert obs[0].quotes == () and obs[1].best_bid == D("99") and obs[1].best_ask == D("101")
    assert obs[2].quotes == (Quote("sell", D("101"), D("1")),)
    assert not obs[2].two_sided and obs[1].two_sided


def test_book_kpis_takes_observations_directly():
    # The step function itself: [0,10) bid+ask (spread 200), [10,30) none, [30,40) bid 98 / ask 102 (400 bps).
    # two-sided 20 of 40 s = 50 %; spread = (200 * 10 + 400 * 10) / 20 = 300
    both = (Quote("buy", D("99"), D("1")), Quote("sell", D("101"), D("1")))
    wide = (Quote("buy", D("98"), D("1")), Quote("sell", D("102"), D("1")))
    obs = [Observation(0, True, both, MID), Observation(10, True, (), MID), Observation(30, True, wide, MID)]
    r = kpi.book_kpis(0, 40, obs)
    assert (r.two_sided_seconds, r.spread_bps) == (20, D("300.0000"))
    # depth bid = (99 * 10 + 0 * 20 + 98 * 10) / 40 = 1970 / 40 = 49.25
    assert r.depth_bid == D("49.25")


def test_running_periods_from_history():
    history = [(0, "payment_pending"), (5, "campaign_joined"), (10, "running"), (50, "paused"), (70, "running"),
               (100, "stopping"), (120, "stopped")]
    assert kpi.running_periods(history) == [(10, 50), (70, 100)]
    assert kpi.running_periods(history[:4]) == [(10, 50)]
    assert kpi.running_periods(history[:3]) == [(10, None)]


def test_trade_totals_by_liquidity():
    # maker 100 x 1 = 100; taker 101 x 0.5 = 50.5; liquidity not reported 99 x 2 = 198 → counted as taker
    totals = kpi.trade_totals([(D("100"), D("1"), "maker"), (D("101"), D("0.5"), "taker"), (D("99"), D("2"), None)])
    assert totals == kpi.TradeTotals(D("100"), D("248.5"), 3)
    # per interval: what is new since what was counted
    assert totals - kpi.TradeTotals(D("100"), D("50.5"), 2) == kpi.TradeTotals(D("0"), D("198"), 1)


def test_pnl_round_trip_average_cost_marked_at_mid():
    # Opening: 1 base + 100 quote, opening price 100 → cost of the base 100.
    # Buy 1 @ 99, fee 0.099 quote: base 2, cost 100 + 99 + 0.099 = 199.099 (average 99.5495)
    # Sell 1 @ 101, fee 0.101 quote: proceeds 101 - 0.101 = 100.899; cost removed 199.099 / 2 = 99.5495
    #   realised = 100.899 - 99.5495 = 1.3495; left: 1 base costing 99.5495
    # Mid 102: unrealised = 1 * 102 - 99.5495 = 2.4505
    # Check: equity 102 + (100 - 99.099 + 100.899) = 203.8 vs opening 200 → +3.8 = 1.3495 + 2.4505
    fills = [Fill("buy", D("99"), D("1"), D("0.099")), Fill("sell", D("101"), D("1"), D("0.101"))]
    levels = kpi.pnl_levels(fills, opening_base=D("1"), opening_quote=D("100"), opening_price=D("100"), mid=D("102"))
    assert levels == kpi.PnlLevels(D("1.3495"), D("2.4505"))
    # No mid: realised only. No opening price: the first fill's price values the opening base (99):
    #   cost 99 + 99.099 = 198.099, sell removes 99.0495 → realised 100.899 - 99.0495 = 1.8495
    assert kpi.pnl_levels(fills, opening_base=D("1"), opening_quote=D("100"), opening_price=None,
                          mid=None) == kpi.PnlLevels(D("1.8495"), None)
    # Nothing to value anything with
    assert kpi.pnl_levels([], opening_base=D("1"), opening_quote=D("0"), opening_price=None,
                          mid=None) == kpi.PnlLevels(None, None)


def sample(ts, running, two_sided, spread, bid, ask, maker="0", taker="0", fills=0, interval=60.0, **levels):
    return kpi.Sample("o1", ts, interval, running, two_sided, None if spread is None else D(spread),
                      None if bid is None else D(bid), None if ask is None else D(ask), D(maker), D(taker), fills,
                      **levels)


def test_aggregate_weights_spread_by_two_sided_and_depth_by_running_time():
    a = sample(60, 60, 60, "200", "100", "50", maker="10", fills=1)
    b = sample(120, 60, 30, "300", "40", "80", taker="5", fills=2, realised_pnl=D("1.5"), base=D("2"), quote=D("7"))
    paused = sample(180, 0, 0, None, None, None)
    agg = kpi.aggregate([paused, b, a])
    # uptime = (60 + 30) / (60 + 60) = 75 %
    # spread = (200 * 60 + 300 * 30) / 90 = 21000 / 90 = 233.3333
    # depth bid = (100 * 60 + 40 * 60) / 120 = 70; ask = (50 * 60 + 80 * 60) / 120 = 65 (paused sample: no weight)
    assert (agg.samples, agg.sampled_seconds, agg.running_seconds, agg.two_sided_seconds) == (3, 180, 120, 90)
    assert agg.uptime_pct == D("75.00") and agg.avg_spread_bps == D("233.3333")
    assert (agg.avg_depth_bid, agg.avg_depth_ask) == (D("70"), D("65"))
    assert (agg.maker_volume, agg.taker_volume, agg.volume, agg.fills) == (D("10"), D("5"), D("15"), 3)
    # levels come from the latest sample (the paused one, ts 180)
    assert agg.last.ts == 180
    assert kpi.aggregate([]).as_dict()["uptime_pct"] is None


def test_sla_row_is_json_ready():
    day = date(2026, 3, 1)
    row = kpi.sla_row(day, "o1", "p1", [sample(60, 60, 45, "12.5", "1000", "900", maker="250.5", taker="0.5",
                                               fills=4)])
    assert list(row) == list(kpi.SLA_COLUMNS)
    assert row == {"day": "2026-03-01", "order_id": "o1", "pair_id": "p1", "samples": 1, "sampled_seconds": 60.0,
                   "running_seconds": 60, "two_sided_seconds": 45, "uptime_pct": "75", "avg_spread_bps": "12.5",
                   "avg_depth_bid": "1000", "avg_depth_ask": "900", "maker_volume": "250.5", "taker_volume": "0.5",
                   "volume": "251", "fills": 4}


def test_sample_as_dict_times_and_strings():
    ts = datetime(2026, 3, 1, 0, 1, tzinfo=timezone.utc).timestamp()
    d = sample(ts, 60, 30, "10", "1", "2", mid=D("100.50")).as_dict()
    assert d["ts"] == "2026-03-01T00:01:00Z" and d["start"] == "2026-03-01T00:00:00Z" and d["ts_epoch"] == ts
    assert d["uptime_pct"] == "50" and d["spread_bps"] == "10" and d["mid"] == "100.5" and d["realised_pnl"] is None


def test_day_pieces_cut_at_utc_midnight():
    midnight = datetime(2026, 3, 2, tzinfo=timezone.utc).timestamp()
    assert kpi.day_pieces(midnight - 60, midnight + 30) == [(midnight - 60, midnight), (midnight, midnight + 30)]
    assert kpi.day_pieces(midnight + 1, midnight + 2) == [(midnight + 1, midnight + 2)]
    assert len(kpi.day_pieces(midnight - 1, midnight + 2 * 86400)) == 3
    assert kpi.day_bounds(date(2026, 3, 2)) == (midnight, midnight + 86400)


@pytest.mark.parametrize("text, expected", [
    ("2026-03-02T00:00:00Z", 1772409600.0), ("2026-03-02", 1772409600.0), ("1772409600", 1772409600.0),
    ("2026-03-02T01:00:00+01:00", 1772409600.0), (None, None), (12.5, 12.5)])
def test_parse_time(text, expected):
    assert kpi.parse_time(text) == expected


def test_parse_time_and_day_refuse_nonsense():
    with pytest.raises(ValueError, match="is not a time"):
        kpi.parse_time("yesterday")
    with pytest.raises(ValueError, match="is not a day"):
        kpi.parse_day("2026-02-30")
