"""The KPI sampler in a small world: a paid order quotes on the fake exchange (real ccxt.binance), the sampler
(every second here) writes samples that show its two-sided ladder; a restarted sampler resumes where the last
sample ended (no gap, no overlap); a paused order is still sampled, with no running time."""
from __future__ import annotations

from decimal import Decimal as D

from storage import commands, repo
from storage import kpi as kpi_store
from tests.support import running_mmflow, wait_until
from tests.test_flow_funding import FAST_FUNDING, exchange_table, pay_order
from tests.test_flow_strategy import pairs_with_strategy, xworld  # noqa: F401 - xworld: the fake venue fixture


def contiguous(samples) -> bool:
    """Each sample starts where the one before ended (interval_seconds is kept to the millisecond)."""
    return all(abs(b["ts_epoch"] - b["interval_seconds"] - a["ts_epoch"]) < 0.002
               for a, b in zip(samples, samples[1:]))


def test_sampler_measures_a_quoting_order_and_resumes_after_a_restart(tmp_path, xworld):
    with running_mmflow(tmp_path, xworld.world, exchanges=[exchange_table(xworld)], funding=FAST_FUNDING,
                        pairs=pairs_with_strategy(), strategy={"tick_interval": 0.1},
                        stream={"slow_interval": 0.2, "fast_interval": 0.05}, kpi={"sample_interval": 1}) as mm:
        order_id, _ = pay_order(xworld, mm, "0.1", "5000")
        mm.wait_state(order_id, "running", timeout=30)
        # A whole sample with the ladder on both sides: it started after the first quotes were acknowledged.
        quoted = wait_until(lambda: [s for s in kpi_store.kpi_series(order_id) if s["two_sided_seconds"] > 0.5],
                            timeout=20, message="a sample of a two-sided order")
        s = quoted[-1]
        mid = xworld.exchange.mid("BTC/USDT")
        assert abs(D(s["mid"]) - mid) / mid < D("0.01")
        # bid_spread/ask_spread 0.2 %: the order's own spread is about 40 bps, and both levels are within 2 %
        assert D("30") < D(s["spread_bps"]) < D("80")
        assert D(s["depth_bid"]) > 0 and D(s["depth_ask"]) > 0
        ledger = repo.ledger_balances(order_id)
        assert (D(s["base"]), D(s["quote"])) == (ledger["BTC"], ledger["USDT"])
        assert s["realised_pnl"] is not None and s["unrealised_pnl"] is not None

        # Crash-only: the sampler stops, the supervisor starts a new one, which resumes from the last sample's end.
        old = mm.services.refs["kpi"]
        before = len(kpi_store.kpi_series(order_id))
        old.stop()
        wait_until(lambda: mm.services.refs["kpi"] is not old and mm.services.refs["kpi"].is_alive(), timeout=10,
                   message="the sampler restarted")
        wait_until(lambda: len(kpi_store.kpi_series(order_id)) >= before + 2, timeout=15, message="samples again")
        series = kpi_store.kpi_series(order_id)
        assert contiguous(series), [(x["start"], x["ts"]) for x in series]

        # Paused: still sampled, with no running time (uptime undefined rather than 0 %).
        commands.queue(order_id, "pause", {"reason": "kpi test"})
        mm.wait_state(order_id, "paused", timeout=20)
        idle = wait_until(lambda: [x for x in kpi_store.kpi_series(order_id) if x["running_seconds"] == 0],
                          timeout=15, message="a sample of the paused order")
        assert idle[-1]["uptime_pct"] is None and idle[-1]["spread_bps"] is None
        series = kpi_store.kpi_series(order_id)
        assert contiguous(series)
        summary = kpi_store.kpi_summary(order_id)
        assert summary["samples"] == len(series) and D(summary["uptime_pct"]) > 0
