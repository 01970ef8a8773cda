"""HuFi reward estimates from our records (reads only): the order's and its account's weighted volume from
their fills, the campaign from the last listing, the join time from the enrollment. The maths is
domain/rewards.py."""
from __future__ import annotations

import json
import time
from datetime import datetime
from decimal import Decimal

from domain.money import fmt
from domain.rewards import ScoredFill, campaign_days, cycle_of, estimate, score
from storage.campaign_models import CampaignParticipation, HufiCampaign, HufiEnrollment, HufiLeaderboard
from storage.exchange_models import Fill


def _campaign(key: str) -> dict | None:
    row = HufiCampaign.get_or_none(HufiCampaign.key == key)
    if row is None:
        return None
    data = json.loads(row.data)
    data.update({"key": row.key, "type": row.type, "exchange_name": row.exchange_name, "symbol": row.symbol,
                 "status": row.status})
    return data


def _leaderboard(key: str, day_from: float) -> dict | None:
    """The last leaderboard summary of a campaign, if it was read during the current daily cycle (an older
    one describes another day's pool: not used)."""
    row = HufiLeaderboard.get_or_none(HufiLeaderboard.key == key)
    if row is None or row.seen_at < day_from:
        return None
    data = json.loads(row.data)
    data["seen_at"] = row.seen_at
    return data


def _scored(rows) -> list[ScoredFill]:
    return [ScoredFill(f.side, f.price, f.amount, f.liquidity, f.at) for f in rows]


def _target(campaign: dict) -> Decimal | None:
    value = (campaign.get("details") or {}).get("daily_volume_target")
    try:
        return Decimal(str(value)) if value is not None else None
    except ArithmeticError:
        return None


def order_rewards(order_id: str, now: float | None = None) -> dict | None:
    """The order's HuFi campaign, its weighted volume (since it joined, and today), its share of its account's
    score, the day's pool and target, and the estimated reward with its formula; None without a HuFi campaign."""
    now = time.time() if now is None else now
    part = CampaignParticipation.get_or_none(CampaignParticipation.order_id == order_id)
    if part is None or part.hufi_chain_id is None:
        return None
    key = f"{part.hufi_chain_id}-{part.hufi_address}"
    campaign = _campaign(key)
    if campaign is None:
        return {"campaign": key, "note": "campaign details not listed yet"}
    enrollment = HufiEnrollment.get_or_none((HufiEnrollment.exchange_account == part.exchange_account)
                                            & (HufiEnrollment.campaign_key == key))
    start = datetime.fromisoformat(campaign["start_date"])
    end = datetime.fromisoformat(campaign["end_date"])
    joined_at = enrollment.joined_at if enrollment is not None and enrollment.joined_at else None
    since = max(start.timestamp(), joined_at or part.created_at)
    day_from, day_to = cycle_of(now, start)
    order_fills = _scored(Fill.select().where((Fill.order_id == order_id) & (Fill.symbol == part.symbol)))
    account_fills = _scored(Fill.select().where((Fill.exchange_account == part.exchange_account)
                                                & (Fill.symbol == part.symbol)))
    window = max(since, day_from)
    order_today = score(order_fills, since=window, until=day_to)
    account_today = score(account_fills, since=window, until=day_to)
    order_total = score(order_fills, since=since)
    fund = Decimal(campaign["fund_amount"])
    board = _leaderboard(key, day_from)
    est = estimate(order_score=order_today.score, account_score=account_today.score,
                   account_volume=account_today.volume, fund=fund, start=start, end=end, target=_target(campaign),
                   token=campaign.get("fund_token_symbol") or "", decimals=int(campaign.get("fund_token_decimals") or 6),
                   others_score=Decimal(board["others_score"]) if board else None,
                   others_volume=Decimal(board["others_volume"]) if board else None)
    return {
        "campaign": key, "type": campaign["type"], "exchange": campaign["exchange_name"], "pair": campaign["symbol"],
        "joined": bool(part.joined_hufi), "joined_at": joined_at, "scored_since": since,
        "days": campaign_days(start, end), "daily_volume_target": fmt(_target(campaign)) if _target(campaign) else None,
        "fund": fmt(fund), "token": campaign.get("fund_token_symbol"),
        "order_weighted_volume_total": fmt(order_total.score), "order_volume_total": fmt(order_total.volume),
        "today": {"from": day_from, "to": day_to, "order_weighted_volume": fmt(order_today.score),
                  "order_volume": fmt(order_today.volume), "account_weighted_volume": fmt(account_today.score),
                  "account_volume": fmt(account_today.volume),
                  "fills_scored_as_taker_for_lack_of_liquidity": order_today.unknown_liquidity},
        "estimate": est.as_dict(),
        # HuFi's public leaderboard, as last read today: the other participants behind the estimate, and
        # HuFi's own line for our wallet (its score counts every order of the account; compare, not add)
        "leaderboard": None if board is None else {
            "participants": board["participants"], "updated_at": board["updated_at"], "read_at": board["seen_at"],
            "others_score": board["others_score"], "others_volume": board["others_volume"], "ours": board["ours"]},
    }


def listed_campaigns() -> list[dict]:
    return [_campaign(row.key) for row in HufiCampaign.select().order_by(HufiCampaign.exchange_name,
                                                                         HufiCampaign.symbol)]
