"""Adding funds to a running order (memo action 2), as a pure decision.

The owner's add-funds transfers collect in a pool. Like the first payment, each leg that goes to the
exchange must cover its Mixin withdrawal fee (in the asset Mixin charges it in) and the market-making
fee (a percentage, taken out of what is sent). A leg is base or quote; either may be absent. Whatever
the pool holds beyond that in a third asset (an overpaid fee) goes back to the owner with the
settlement. A pool that cannot pay for any leg waits for more, and is refunded at the payment timeout.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from domain.money import ZERO, floor8, fmt
from domain.payment import FeeRequirements, PairRules


@dataclass(frozen=True)
class TopUpLeg:
    leg: str                    # "base" | "quote"
    asset_id: str
    principal: Decimal          # sent to the exchange
    market_making_fee: Decimal
    fee_asset_id: str
    withdrawal_fee: Decimal


@dataclass(frozen=True)
class TopUpEvaluation:
    ready: bool
    legs: tuple[TopUpLeg, ...] = ()
    surplus: Mapping[str, Decimal] = field(default_factory=dict)  # goes back to the owner at settlement
    reason: str = ""

    def as_dict(self) -> dict:
        return {"legs": [{"leg": leg.leg, "asset_id": leg.asset_id, "principal": fmt(leg.principal),
                          "market_making_fee": fmt(leg.market_making_fee), "fee_asset_id": leg.fee_asset_id,
                          "withdrawal_fee": fmt(leg.withdrawal_fee)} for leg in self.legs],
                "surplus": {k: fmt(v) for k, v in sorted(self.surplus.items())}}


def evaluate_top_up(pool: Mapping[str, Decimal], pair: PairRules, fees: FeeRequirements) -> TopUpEvaluation:
    """Which legs the pool pays for, with their principals and fees (see the module docstring).

    Both legs if the pool pays for both. A leg too small to carry its fees is left out and the other goes
    alone — the quote leg first: a chain's own asset (ETH) is often both the base and the fee of a token
    quote (USDT-ERC20), so a little of it next to the quote is the quote's fee, not a leg of its own. What
    a batch does not use goes back with the settlement. A leg only waiting for its fee asset keeps the
    whole pool waiting (the fee is probably on its way: transfers are split)."""
    spec = {"base": (pair.base_asset_id, fees.base_fee_asset_id, fees.base_fee_amount),
            "quote": (pair.quote_asset_id, fees.quote_fee_asset_id, fees.quote_fee_amount)}
    present = tuple(name for name, (asset, _, _) in spec.items() if pool.get(asset, ZERO) > 0)
    evaluation = _evaluate_legs(present, spec, pool, fees)
    if evaluation.ready or len(present) < 2 or evaluation.reason.startswith("added funds miss"):
        return evaluation
    for name in ("quote", "base"):
        alone = _evaluate_legs((name,), spec, pool, fees)
        if alone.ready:
            return alone
    return evaluation


def _evaluate_legs(legs: tuple[str, ...], spec: dict, pool: Mapping[str, Decimal],
                   fees: FeeRequirements) -> TopUpEvaluation:
    rate = fees.market_making_fee_rate
    held = ", ".join(f"{fmt(v)} {k}" for k, v in sorted(pool.items()) if v > 0) or "nothing"
    too_small = TopUpEvaluation(False, reason=f"added funds ({held}) do not pay for a transfer to the exchange "
                                              f"after its withdrawal and market-making fees")
    if not legs:
        return too_small
    need: dict[str, Decimal] = {}
    for name in legs:
        _, fee_asset, fee = spec[name]
        need[fee_asset] = need.get(fee_asset, ZERO) + fee
    out = []
    for name in legs:
        asset, fee_asset, fee = spec[name]
        available = pool.get(asset, ZERO) - need.get(asset, ZERO)
        principal = floor8(available / (1 + rate)) if available > 0 else ZERO
        if principal <= 0:
            return too_small
        out.append(TopUpLeg(name, asset, principal, available - principal, fee_asset, fee))
    short = [f"{fmt(amount)} of {asset} for the withdrawal fee, have {fmt(pool.get(asset, ZERO))}"
             for asset, amount in need.items() if pool.get(asset, ZERO) < amount]
    if short:
        return TopUpEvaluation(False, reason="added funds miss " + "; ".join(short))
    used: dict[str, Decimal] = dict(need)
    for leg in out:
        used[leg.asset_id] = used.get(leg.asset_id, ZERO) + leg.principal + leg.market_making_fee
    surplus = {asset: amount - used.get(asset, ZERO) for asset, amount in pool.items()
               if amount - used.get(asset, ZERO) > 0}
    return TopUpEvaluation(True, tuple(out), surplus)
