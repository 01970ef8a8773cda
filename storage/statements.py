"""An order's statement from its records (reads only): gathers domain.statement's input and builds it."""
from __future__ import annotations

import json
from decimal import Decimal

from domain.money import ZERO
from domain.statement import (Charge, Dust, Outgoing, PaidIn, Return, Statement, StatementInput, TradeFill,
                              build_statement)
from domain.states import FINAL_STATES, OrderState
from storage import exchange_repo, exit_repo, repo
from storage.models import Order


def _charges_and_surplus(row: Order, movements) -> tuple[list[Charge], dict[str, Decimal]]:
    """What the user was charged when funds left Mixin for the exchange (creation and each top-up), and the
    third-asset fee overpayments that go back with the settlement. Nothing is charged for funds that never
    left Mixin (a refunded order)."""
    charges: list[Charge] = []
    surplus: dict[str, Decimal] = {}
    funded = any(m.kind == "withdrawal" and m.top_up_batch is None for m in movements)
    breakdown = json.loads(row.breakdown) if row.breakdown else None
    pair_assets = None
    if funded and breakdown:
        charges += [Charge(row.base_fee_asset_id, "mixin_withdrawal_fee", Decimal(breakdown["base_withdrawal_fee"])),
                    Charge(row.quote_fee_asset_id, "mixin_withdrawal_fee",
                           Decimal(breakdown["quote_withdrawal_fee"]))]
        pair_assets = _pair_assets(movements)
        for leg in ("base", "quote"):
            asset = pair_assets.get(leg)
            if asset:
                charges.append(Charge(asset, "market_making_fee", Decimal(breakdown[f"{leg}_market_making_fee"])))
        for asset, amount in (breakdown.get("surplus") or {}).items():
            surplus[asset] = surplus.get(asset, ZERO) + Decimal(amount)
    for batch in exit_repo.top_ups_of(row.order_id):
        data = json.loads(batch.breakdown)
        for leg in data["legs"]:
            charges.append(Charge(leg["fee_asset_id"], "mixin_withdrawal_fee", Decimal(leg["withdrawal_fee"])))
            charges.append(Charge(leg["asset_id"], "market_making_fee", Decimal(leg["market_making_fee"])))
        for asset, amount in data.get("surplus", {}).items():
            surplus[asset] = surplus.get(asset, ZERO) + Decimal(amount)
    return [c for c in charges if c.amount != 0], surplus


def _pair_assets(movements) -> dict[str, str]:
    return {m.leg: m.asset_id for m in movements if m.kind == "withdrawal" and m.top_up_batch is None}


def surplus_of(order_id: str) -> dict[str, Decimal]:
    row = Order.get_by_id(order_id)
    return _charges_and_surplus(row, repo.order_movements(order_id))[1]


def statement_input(order_id: str, config, *, final: bool | None = None) -> StatementInput | None:
    row = Order.get_or_none(Order.order_id == order_id)
    if row is None:
        return None
    pair = config.pair(row.pair_id) if config is not None else None
    movements = repo.order_movements(order_id)
    charges, _ = _charges_and_surplus(row, movements)
    symbols: dict[str, str] = {}
    if config is not None:
        for p in config.pairs:
            symbols.setdefault(p.base_asset_id, p.base_symbol)
            symbols.setdefault(p.quote_asset_id, p.quote_symbol)
    purposes = {}
    paid = []
    for snap in exit_repo.routed_snapshots(order_id):
        purpose = snap.purpose or ("refused" if snap.outcome == "refund" else "payment")
        purposes[snap.snapshot_id] = purpose
        paid.append(PaidIn(snap.snapshot_id, snap.asset_id, snap.amount, purpose, snap.created_at))
    by_kind: dict[str, list] = {}
    for m in movements:
        by_kind.setdefault(m.kind, []).append(m)
    fills = [TradeFill(f.side, f.price, f.amount, f.fee, f.fee_currency) for f in exchange_repo.fills_of(order_id)]
    base_code = pair.base_symbol if pair else None
    quote_code = pair.quote_symbol if pair else None
    return StatementInput(
        order_id=order_id, state=row.state, symbol=pair.symbol if pair else row.pair_id,
        base_asset_id=pair.base_asset_id if pair else "", quote_asset_id=pair.quote_asset_id if pair else "",
        base_code=base_code or "", quote_code=quote_code or "", symbols=symbols, paid_in=tuple(paid),
        refunds=tuple(Outgoing(m.request_id, m.asset_id, m.amount, m.state, m.mixin_snapshot_id)
                      for m in by_kind.get("refund", [])),
        to_exchange=tuple(Outgoing(m.request_id, m.asset_id, m.amount, m.state, m.mixin_snapshot_id,
                                   m.credited_amount) for m in by_kind.get("withdrawal", [])),
        charges=tuple(charges), fills=tuple(fills),
        returns=tuple(Return(m.request_id, m.asset_id, m.exchange_code, m.amount, m.fee_amount or ZERO, m.state,
                             m.arrived_amount, m.arrival_snapshot_id, m.exchange_withdrawal_id, m.exchange_txid)
                      for m in by_kind.get("return", [])),
        dust=tuple(Dust(m.asset_id, m.exchange_code, m.amount) for m in by_kind.get("dust", [])),
        payouts=tuple(Outgoing(m.request_id, m.asset_id, m.amount, m.state, m.mixin_snapshot_id)
                      for m in by_kind.get("payout", [])),
        opening_price=row.opening_price, exit_price=row.exit_price,
        final=(OrderState(row.state) in FINAL_STATES) if final is None else final,
    )


def order_statement(order_id: str, config, *, final: bool | None = None) -> Statement | None:
    data = statement_input(order_id, config, final=final)
    return None if data is None else build_statement(data)
