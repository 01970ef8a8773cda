"""Quiet bands end to end (issue 14): the real service (OrderActor → StrategyRunner → BookWatch) against the
fake exchange (real ccxt.binance). A quiet order sleeps with its band; moves inside it wake nobody, a move out
of one order's band wakes that order (it replaces its ladder) and not the others; the clock's rules (refresh
time, max_order_age, end time) wake it as before, and the drawdown check sees every mark its band spans."""
from __future__ import annotations

import time
from decimal import Decimal
from types import SimpleNamespace

import pytest

from actors.order.quiet import BookWatch
from actors.order.strategy import StrategyStage
from domain.breakers import RiskLimits
from domain.strategy.band import QuietBand
from storage import commands
from tests.support import wait_until
from tests.test_strategy_loop import SYMBOL, hold_for, resting, resting_ids, start, xworld  # noqa: F401 - fixture
from tests.test_flow_strategy import run

BAND = {"order_levels": 1, "order_refresh_tolerance_pct": "0.001", "max_order_age": 60}


@pytest.fixture
def woken_by_moves(monkeypatch):
    """Order ids the book watchers woke (a move out of a band, off a top, or the book unreadable)."""
    woken: list[str] = []
    plain = BookWatch._wake

    def recording(self, order_ids):
        woken.extend(order_ids)
        return plain(self, order_ids)

    monkeypatch.setattr(BookWatch, "_wake", recording)
    return woken


def the_watch(mm) -> BookWatch | None:
    return mm.services.risk_state.get("quiet_watches", {}).get(("binance", SYMBOL))


def band_of_sleeper(mm, order_id) -> QuietBand | None:
    watch = the_watch(mm)
    sleeper = watch.sleepers.get(order_id) if watch is not None else None
    return sleeper.band if sleeper is not None else None


def set_params(order_id, **params):
    command = commands.queue(order_id, "set-params", params)
    wait_until(lambda: commands.get(command).result, timeout=10, message="set-params carried out")
    assert commands.get(command).result.startswith("done"), commands.get(command).result


def looks_past(mm, count=3):
    """Wait until the watcher has looked at the book `count` more times."""
    watch = the_watch(mm)
    target = watch._looks + count
    wait_until(lambda: watch._looks >= target, timeout=5, message=f"{count} looks of the watcher")


def test_moves_inside_the_bands_wake_nobody_and_a_move_out_of_one_wakes_only_that_order(tmp_path, xworld,
                                                                                          woken_by_moves):
    with run(tmp_path, xworld, strategy=BAND) as mm:
        narrow = start(xworld, mm, 2)
        wide = start(xworld, mm, 2)
        set_params(wide, order_refresh_tolerance_pct="0.003")
        bands = wait_until(lambda: (band_of_sleeper(mm, narrow), band_of_sleeper(mm, wide))
                           if band_of_sleeper(mm, narrow) and band_of_sleeper(mm, wide) else None,
                           timeout=20, message="both orders asleep with a band")
        narrow_ids, wide_ids = resting_ids(narrow), resting_ids(wide)
        mid = xworld.exchange.mid(SYMBOL)
        assert bands[0].low <= mid <= bands[0].high and bands[1].low <= mid <= bands[1].high

        # (a) a move inside both bands: the watcher sees it and wakes neither
        woken_by_moves.clear()
        xworld.exchange.set_mid(SYMBOL, mid * Decimal("1.0003"))
        looks_past(mm, 10)
        assert narrow not in woken_by_moves and wide not in woken_by_moves
        assert resting_ids(narrow) == narrow_ids and resting_ids(wide) == wide_ids

        # (b) out of the narrow band (0.1 % tolerance), inside the wide one (0.3 %): the narrow order wakes and
        # replaces its ladder within its refresh; the wide one sleeps on with its ladder
        moved_at = time.monotonic()
        xworld.exchange.set_mid(SYMBOL, mid * Decimal("1.0015"))
        wait_until(lambda: len(now := resting_ids(narrow)) == 2 and not (now & narrow_ids), timeout=5,
                   message="the narrow order's new ladder")
        assert time.monotonic() - moved_at < 3   # refresh 1 s, watcher every 0.1 s
        assert narrow in woken_by_moves and wide not in woken_by_moves
        assert resting_ids(wide) == wide_ids and band_of_sleeper(mm, wide) is not None
        new_band = wait_until(lambda: band_of_sleeper(mm, narrow), timeout=10, message="narrow asleep again")
        assert new_band.low <= mid * Decimal("1.0015") <= new_band.high


def test_the_clock_still_wakes_a_banded_order(tmp_path, xworld, woken_by_moves):
    """max_order_age and the refresh time wake it by its timer; its end time ends it; none needs a move."""
    with run(tmp_path, xworld, strategy=dict(BAND, max_order_age=3)) as mm:
        order_id = start(xworld, mm, 2)
        wait_until(lambda: band_of_sleeper(mm, order_id), timeout=10, message="asleep with a band")
        first = resting(order_id)
        born, ids = max(o.created_at for o in first), {o.client_order_id for o in first}
        woken_by_moves.clear()
        wait_until(lambda: len(now := resting_ids(order_id)) == 2 and not (now & ids), timeout=6,
                   message="the ladder replaced by age")
        assert 3.0 <= min(o.created_at for o in resting(order_id)) - born <= 4.0
        assert order_id not in woken_by_moves                    # the market never moved: its timer did it

        # the refresh time: a move out of the band before the refresh is due wakes it, but the ladder is kept
        # until the refresh comes due (then replaced)
        set_params(order_id, max_order_age=60, order_refresh_time=4)
        ids = wait_until(lambda: resting_ids(order_id) if band_of_sleeper(mm, order_id) else None, timeout=10,
                         message="asleep with a band")
        placed = max(o.created_at for o in resting(order_id))
        if time.time() - placed > 2:   # the kept ladder may be old: make a young one first
            xworld.exchange.set_mid(SYMBOL, xworld.exchange.mid(SYMBOL) * Decimal("1.002"))
            ids = wait_until(lambda: (now := resting_ids(order_id)) if len(now) == 2 and not (now & ids)
                             and band_of_sleeper(mm, order_id) else None, timeout=10, message="a young ladder")
            placed = max(o.created_at for o in resting(order_id))
        xworld.exchange.set_mid(SYMBOL, xworld.exchange.mid(SYMBOL) * Decimal("1.0015"))
        hold_for(max(0.0, placed + 3.8 - time.time()), lambda: resting_ids(order_id) == ids)
        wait_until(lambda: len(now := resting_ids(order_id)) == 2 and not (now & ids), timeout=3,
                   message="the ladder replaced when the refresh came due")

        # the end time, set while it sleeps in its band
        wait_until(lambda: band_of_sleeper(mm, order_id), timeout=10, message="asleep with a band again")
        end_at = time.time() + 2
        set_params(order_id, end_at=f"{end_at:.3f}")
        wait_until(lambda: mm.state(order_id) != "running", timeout=8, message="the order ended at its end time")
        assert time.time() >= end_at


def test_a_band_is_kept_only_where_no_mark_in_it_trips_the_drawdown_breaker():
    """The drawdown check reads the mark of the order's last tick: a banded order sleeps through the marks
    inside its band, so the band is dropped (any move wakes it) when one of them would trip the breaker."""
    class Basis:
        def __init__(self, lost_below):
            self.lost_below = lost_below

        def pnl_at(self, mark):   # affine in the mark: long base, losing under `lost_below`
            return (mark - self.lost_below) * Decimal("0.1")

        def funded_at(self, mark):
            return Decimal("100")

    limits = RiskLimits()   # max_drawdown 20 %: a loss of more than 20 trips
    stage = SimpleNamespace(services=SimpleNamespace(config=SimpleNamespace(risk=limits)),
                            _drawdown_inputs=lambda: ("runner", 1, True, Decimal("60000")))
    band = QuietBand(low=Decimal("59900"), high=Decimal("60100"))
    stage._basis = ("runner", 1, True, Basis(lost_below=Decimal("60000")))      # loses 10 at the low end
    assert StrategyStage._no_drawdown_within(stage, band)
    stage._basis = ("runner", 1, True, Basis(lost_below=Decimal("60150")))      # loses 25 at the low end
    assert not StrategyStage._no_drawdown_within(stage, band)
    stage._basis = ("runner", 1, True, None)                                    # no drawdown checked at all
    assert StrategyStage._no_drawdown_within(stage, band)
    stage._basis = ("runner", 0, True, Basis(lost_below=Decimal("0")))          # read for an older ledger
    assert not StrategyStage._no_drawdown_within(stage, band)
