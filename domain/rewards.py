"""HuFi market-making rewards, estimated from our own fills exactly as HuFi's recording oracle scores them.

Pure (reference: mixin-and-hufi.md §6.4, recording-oracle `progress-checking`, `rewards.utils.ts`):

- a participant's score over a period = Σ over its own trades on the campaign's pair, from
  max(campaign start, the time it joined), of trade cost (price × amount) × weight:
  maker 1.0, taker buy 0.42, taker sell 0.10;
- the campaign pays in daily cycles: daily reward = fund / ceil(duration in days);
- each day's pool = daily reward × min(total volume of all participants / daily volume target, 1);
- a participant's share of the day's pool = its score / the sum of every participant's score.

A participant is an EVM wallet with one exchange API key: on HuFi, every order mmflow runs on one
exchange account is the same participant. So mmflow shows, per order, its own weighted volume and its
share of the account's score, and per account the estimated reward of the day — with the formula, since
the other participants' scores and the total volume come from HuFi's public leaderboard (or are unknown).
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

from domain.money import ZERO, fmt

MAKER_WEIGHT = Decimal("1.0")
TAKER_BUY_WEIGHT = Decimal("0.42")
TAKER_SELL_WEIGHT = Decimal("0.10")
DAY = 86400


@dataclass(frozen=True)
class ScoredFill:
    side: str                # buy | sell
    price: Decimal
    amount: Decimal
    liquidity: str | None    # maker | taker | None (the exchange did not say)
    at: float                # unix seconds


def weight(fill: ScoredFill) -> Decimal:
    """HuFi's weight of one trade. A fill whose liquidity the exchange did not report is scored as a taker
    (the lower weight): an estimate never promises more than HuFi would count."""
    if fill.liquidity == "maker":
        return MAKER_WEIGHT
    return TAKER_BUY_WEIGHT if fill.side == "buy" else TAKER_SELL_WEIGHT


@dataclass(frozen=True)
class Score:
    score: Decimal           # Σ cost × weight
    volume: Decimal          # Σ cost
    fills: int
    unknown_liquidity: int   # fills scored as taker because the exchange did not say


def score(fills: Iterable[ScoredFill], *, since: float, until: float | None = None) -> Score:
    total = volume = ZERO
    n = unknown = 0
    for f in fills:
        if f.at < since or (until is not None and f.at >= until):
            continue
        cost = f.price * f.amount
        total += cost * weight(f)
        volume += cost
        n += 1
        unknown += f.liquidity not in ("maker", "taker")
    return Score(total, volume, n, unknown)


def campaign_days(start: datetime, end: datetime) -> int:
    return max(1, math.ceil((end - start).total_seconds() / DAY))


def daily_reward(fund: Decimal, start: datetime, end: datetime) -> Decimal:
    return fund / campaign_days(start, end)


def cycle_of(now: float, start: datetime) -> tuple[float, float]:
    """The daily cycle (from, to) containing `now`; cycles start at the campaign's start time."""
    t0 = start.timestamp()
    k = max(0, int((now - t0) // DAY))
    return t0 + k * DAY, t0 + (k + 1) * DAY


def daily_pool(reward: Decimal, total_volume: Decimal | None, target: Decimal | None) -> Decimal:
    """The day's pool: the daily reward scaled by how much of the volume target all participants met.
    Without a known total volume, the pool is taken as full (an upper bound, said so in the formula)."""
    if target is None or target <= 0 or total_volume is None:
        return reward
    return reward * min(total_volume / target, Decimal(1))


@dataclass(frozen=True)
class Estimate:
    account_score: Decimal
    order_score: Decimal
    order_share_of_account: Decimal | None   # the order's part of the account's score
    others_score: Decimal | None             # the other participants' scores (leaderboard), None: unknown
    total_volume: Decimal | None             # every participant's volume today, None: unknown
    daily_reward: Decimal
    pool: Decimal
    account_reward: Decimal                  # the account's estimated reward for the day
    order_reward: Decimal                    # the order's part of it
    token: str
    decimals: int
    formula: str

    def as_dict(self) -> dict:
        def opt(v):
            return None if v is None else fmt(v)
        return {"account_score": fmt(self.account_score), "order_score": fmt(self.order_score),
                "order_share_of_account": opt(self.order_share_of_account), "others_score": opt(self.others_score),
                "total_volume": opt(self.total_volume), "daily_reward": fmt(self.daily_reward),
                "pool": fmt(self.pool), "account_reward": fmt(self.account_reward),
                "order_reward": fmt(self.order_reward), "token": self.token, "formula": self.formula}


def _floor(value: Decimal, decimals: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_DOWN)


def estimate(*, order_score: Decimal, account_score: Decimal, account_volume: Decimal, fund: Decimal,
             start: datetime, end: datetime, target: Decimal | None, token: str, decimals: int,
             others_score: Decimal | None = None, others_volume: Decimal | None = None) -> Estimate:
    """The day's estimated reward of an account and of one of its orders (see the module docstring)."""
    reward = daily_reward(fund, start, end)
    total_volume = None if others_volume is None else account_volume + others_volume
    pool = daily_pool(reward, total_volume, target)
    all_scores = account_score + (others_score or ZERO)
    account_reward = _floor(pool * account_score / all_scores, decimals) if all_scores > 0 else ZERO
    share = order_score / account_score if account_score > 0 else None
    order_reward = _floor(account_reward * share, decimals) if share is not None else ZERO
    def shown(v: Decimal) -> str:  # amounts shown to the token's decimals (the maths keeps full precision)
        return fmt(_floor(v, decimals))
    pool_text = (f"daily reward {shown(reward)} {token} (fund {fmt(fund)} / {campaign_days(start, end)} days)"
                 + (f" × min(total volume {fmt(total_volume)} / target {fmt(target)}, 1)"
                    if total_volume is not None and target else
                    " (total volume of all participants unknown: pool taken as full, an upper bound)"))
    share_text = (f"account score {fmt(account_score)} / all scores {fmt(all_scores)}" if others_score is not None
                  else f"account score {fmt(account_score)} / all scores (other participants unknown: taken as 0, "
                       f"an upper bound)")
    formula = (f"pool = {pool_text} = {shown(pool)}; account reward = pool × {share_text} = {fmt(account_reward)}; "
               f"order reward = account reward × order score {fmt(order_score)} / account score "
               f"{fmt(account_score)} = {fmt(order_reward)}; score = Σ price×amount × (maker 1.0, taker buy 0.42, "
               f"taker sell 0.10) since max(campaign start, join)")
    return Estimate(account_score, order_score, share, others_score, total_volume, reward, pool, account_reward,
                    order_reward, token, decimals, formula)
