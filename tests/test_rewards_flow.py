"""Reward transparency end to end: an order matched to a HuFi campaign trades on the fake venue; its weighted
volume, share of the account and estimated reward are computed from its own fills exactly as HuFi scores them,
and shown by `orders show`, the statement and `campaigns`."""
from __future__ import annotations

import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

from domain.rewards import MAKER_WEIGHT, TAKER_BUY_WEIGHT, TAKER_SELL_WEIGHT
from storage import exchange_repo
from storage.rewards import order_rewards
from tests.databases import database_url
from tests.support import wait_until
from tests.test_flow_campaign import add_btc_campaign, hufi, hufi_table, participation, xworld  # noqa: F401
from tests.test_flow_funding import pay_order
from tests.test_flow_strategy import run

ROOT = Path(__file__).resolve().parent.parent


def test_estimated_reward_comes_from_the_orders_own_fills(tmp_path, xworld, hufi):  # noqa: F811
    key, campaign = add_btc_campaign(hufi)
    other = "0x" + "ab" * 20   # another market maker on the same campaign, as HuFi's leaderboard shows it
    hufi.set_leaderboard(137, campaign["address"], other, "4000", "9000", "12.5")
    with run(tmp_path, xworld, hufi=hufi_table(tmp_path, hufi)) as mm:
        first, _ = pay_order(xworld, mm, "0.1", "5000")
        second, _ = pay_order(xworld, mm, "0.05", "3000")
        for order_id in (first, second):
            mm.wait_state(order_id, "running", timeout=30)
        wait_until(lambda: participation(first) and participation(first).hufi_chain_id, timeout=15)
        xworld.exchange.start_price_process(interval=0.05, vol=0.0005, taker_prob=0.9, taker_size=0.01)
        try:
            wait_until(lambda: len(exchange_repo.fills_of(first)) >= 2 and exchange_repo.fills_of(second),
                       timeout=40, message="fills on both orders")
        finally:
            xworld.exchange.stop_price_process()
        wait_until(lambda: exchange_repo.orders_in_states(["submitted", "pending_cancel"]) == [], timeout=10)
        r = order_rewards(first)
        assert r is not None and r["campaign"] == key and "estimate" in r
        # By hand, from the fills table: cost × weight, maker 1.0 / taker buy 0.42 / taker sell 0.10.
        def weighted(order_id):
            total = D(0)
            for f in exchange_repo.fills_of(order_id):
                w = MAKER_WEIGHT if f.liquidity == "maker" else (TAKER_BUY_WEIGHT if f.side == "buy"
                                                                  else TAKER_SELL_WEIGHT)
                total += f.price * f.amount * w
            return total
        assert all(f.liquidity in ("maker", "taker") for f in exchange_repo.fills_of(first))
        assert D(r["order_weighted_volume_total"]) == weighted(first)
        today = r["today"]
        assert D(today["account_weighted_volume"]) == weighted(first) + weighted(second)
        share = D(r["estimate"]["order_share_of_account"])
        assert share == weighted(first) / (weighted(first) + weighted(second))
        assert "maker 1.0, taker buy 0.42, taker sell 0.10" in r["estimate"]["formula"]
        # HuFi's public leaderboard (read right after the join) supplies the other participants: the estimate
        # is the account's share of all scores, not an upper bound.
        board = wait_until(lambda: (order_rewards(first) or {}).get("leaderboard"), timeout=15,
                           message="the leaderboard read after the join")
        assert (board["others_score"], board["others_volume"], board["participants"]) == ("4000", "9000", 2)
        assert board["ours"] is not None and board["ours"]["score"] == "0"  # the fake has no progress of ours
        e = order_rewards(first)["estimate"]
        assert D(e["others_score"]) == D(4000)
        assert D(e["total_volume"]) == D(order_rewards(first)["today"]["account_volume"]) + D(9000)
        assert "upper bound" not in e["formula"] and "all scores" in e["formula"]
        account_score = D(order_rewards(first)["today"]["account_weighted_volume"])
        assert D(e["account_reward"]) <= D(e["pool"]) * account_score / (account_score + 4000)
        cfg = tmp_path / "mmflow.toml"
        from sim.world import dump_toml
        raw = xworld.world.config_dict(database_url(tmp_path / "mmflow.db"), tmp_path / "keystore.json")
        raw["hufi"] = hufi_table(tmp_path, hufi)
        cfg.write_text(dump_toml(raw))
        out = subprocess.run([sys.executable, "run.py", "campaigns", "--config", str(cfg)], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert key in out.stdout and first in out.stdout and "formula:" in out.stdout
        assert f"leaderboard {key}" in out.stdout and "the others' score 4000" in out.stdout
        statement = subprocess.run([sys.executable, "run.py", "orders", "statement", first, "--config", str(cfg)],
                                   cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert statement.returncode == 0, statement.stderr
        assert f"HuFi campaign {key}" in statement.stdout and "estimated reward today" in statement.stdout
