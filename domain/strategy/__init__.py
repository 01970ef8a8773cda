"""Pure quoting math of the market-making loop (issue #5, stages 8–9).

No I/O anywhere in this package: parameters (``params``), the proposal pipeline
(``ladder``), the refresh decision (``refresh``) and profit/inventory (``pnl``).
Spreads and ``*_pct`` values are fractions (0.001 = 0.1 %). Money is Decimal.
"""
from domain.strategy.ladder import (
    BookTop, Budget, MarketRules, Proposal, apply_budget, apply_minimum_spread, apply_price_band,
    apply_skew, base_ladder, build_proposals, drop_below_minimums, drop_crossing, inventory_skew_ratios,
    quantize, reference_price,
)
from domain.strategy.params import PRICE_SOURCES, StrategyParams, StrategyParamsError, parse_params
from domain.strategy.pnl import Fill, PnlError, PnlReport, compute_pnl, inventory_base_share
from domain.strategy.refresh import CyclePlan, LiveOrder, orders_to_hang, plan_cycle, quoting_budget

__all__ = [
    "BookTop", "Budget", "MarketRules", "Proposal", "apply_budget", "apply_minimum_spread", "apply_price_band",
    "apply_skew", "base_ladder", "build_proposals", "drop_below_minimums", "drop_crossing",
    "inventory_skew_ratios", "quantize", "reference_price",
    "PRICE_SOURCES", "StrategyParams", "StrategyParamsError", "parse_params",
    "Fill", "PnlError", "PnlReport", "compute_pnl", "inventory_base_share",
    "CyclePlan", "LiveOrder", "orders_to_hang", "plan_cycle", "quoting_budget",
]
