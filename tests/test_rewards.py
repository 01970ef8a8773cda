"""HuFi reward estimates (domain/rewards.py), against worked examples computed by hand."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal as D

from domain.rewards import (ScoredFill, campaign_days, cycle_of, daily_pool, daily_reward, estimate, score,
                            weight)

START = datetime(2026, 12, 1, tzinfo=timezone.utc)
END = datetime(2026, 12, 11, 12, tzinfo=timezone.utc)   # 10.5 days → 11 daily cycles
T0 = START.timestamp()


def f(side, price, amount, liquidity, at=T0 + 100):
    return ScoredFill(side, D(price), D(amount), liquidity, at)


def test_weights_are_hufis():
    assert weight(f("buy", "1", "1", "maker")) == D("1.0")
    assert weight(f("sell", "1", "1", "maker")) == D("1.0")
    assert weight(f("buy", "1", "1", "taker")) == D("0.42")
    assert weight(f("sell", "1", "1", "taker")) == D("0.10")
    # unknown liquidity: scored as a taker, never more than HuFi would count
    assert weight(f("buy", "1", "1", None)) == D("0.42")


def test_score_worked_example():
    fills = [
        f("buy", "60000", "0.01", "maker"),            # cost 600 × 1.0  = 600
        f("sell", "60100", "0.02", "maker"),           # cost 1202 × 1.0 = 1202
        f("buy", "60050", "0.001", "taker"),           # cost 60.05 × 0.42 = 25.221
        f("sell", "59990", "0.005", "taker"),          # cost 299.95 × 0.10 = 29.995
        f("sell", "60000", "0.01", None),              # cost 600 × 0.10 = 60 (unknown → taker)
        f("buy", "60000", "1", "maker", at=T0 - 1),    # before the window: not counted
    ]
    s = score(fills, since=T0)
    assert s.score == D("600") + D("1202") + D("25.221") + D("29.995") + D("60")   # 1917.216
    assert s.volume == D("600") + D("1202") + D("60.05") + D("299.95") + D("600")  # 2762
    assert (s.fills, s.unknown_liquidity) == (5, 1)
    assert score(fills, since=T0, until=T0 + 50).fills == 0


def test_days_cycles_and_pool():
    assert campaign_days(START, END) == 11
    assert daily_reward(D("1100"), START, END) == D("100")
    assert cycle_of(T0 + 86400 * 2 + 5, START) == (T0 + 86400 * 2, T0 + 86400 * 3)
    assert cycle_of(T0 - 10, START) == (T0, T0 + 86400)
    assert daily_pool(D("100"), D("25000"), D("100000")) == D("25")      # a quarter of the target
    assert daily_pool(D("100"), D("250000"), D("100000")) == D("100")    # capped at the full reward
    assert daily_pool(D("100"), None, D("100000")) == D("100")           # unknown volume: upper bound


def test_estimate_worked_example():
    # Fund 1100 USDT over 11 days → 100/day. All participants traded 40,000 against a 100,000 target → pool 40.
    # Our account scored 3,000 (volume 10,000), the others 9,000 → account reward 40 × 3000/12000 = 10.
    # The order scored 1,200 of the account's 3,000 → 0.4 → order reward 4.
    e = estimate(order_score=D("1200"), account_score=D("3000"), account_volume=D("10000"), fund=D("1100"),
                 start=START, end=END, target=D("100000"), token="USDT", decimals=6, others_score=D("9000"),
                 others_volume=D("30000"))
    assert e.daily_reward == D("100") and e.pool == D("40")
    assert e.account_reward == D("10") and e.order_share_of_account == D("0.4") and e.order_reward == D("4")
    assert "min(total volume 40000 / target 100000, 1)" in e.formula and "= 10" in e.formula


def test_estimate_without_the_leaderboard_is_an_upper_bound_and_says_so():
    e = estimate(order_score=D("1"), account_score=D("3"), account_volume=D("10"), fund=D("10"), start=START,
                 end=END, target=D("100"), token="USDT", decimals=2)
    # 10 / 11 days = 0.909…; unknown total volume → pool taken as full; others unknown → all of it is ours
    assert e.pool == D("10") / 11
    assert e.account_reward == D("0.90")          # rounded down to the token's decimals
    assert e.order_reward == D("0.30")            # 0.90 × 1/3
    assert "upper bound" in e.formula


def test_no_score_no_reward():
    e = estimate(order_score=D(0), account_score=D(0), account_volume=D(0), fund=D("100"), start=START, end=END,
                 target=None, token="USDT", decimals=6)
    assert e.account_reward == 0 and e.order_reward == 0 and e.order_share_of_account is None
