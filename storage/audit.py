"""Where all the money is: totals across every order's statement, and what the bot holds that no record
accounts for ("stranded").

Reads only. The actual balances (the bot's Mixin wallet, the exchange accounts) are the caller's: the
demo reads its fakes; an operator's tooling would read the real wallet and exchanges.

Accounted for, per asset symbol:
- what open orders still hold for their owners (their statement's `held`: on the exchange, in flight,
  or arrived and not yet paid out);
- dust left on the exchange accounts (shown in the owners' statements);
- market-making fees (the operator's revenue) and the difference between the Mixin withdrawal fees users
  were charged and what Mixin actually took;
- operator top-ups of the treasury, and deposits waiting for an operator (attention);
- refunds queued and not yet confirmed (the money is still in the wallet, owed back).
Anything else — or any shortfall (negative) — is stranded.
"""
from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from domain.money import ZERO, fmt
from domain.routing import RouteKind
from domain.states import FINAL_STATES, OrderState
from storage.archive_models import ArchivedOrder
from storage.archive_view import order_source
from storage.models import MoneyMovement, Order, Snapshot
from storage.statements import order_statement


def _add(into: dict[str, Decimal], key: str, amount: Decimal) -> None:
    if amount:
        into[key] = into.get(key, ZERO) + amount


def _mixin_fees_paid(accounted: dict[str, Decimal], sym, where=None) -> None:
    """Mixin's actual withdrawal fees (paid by the bot) against what users were charged (counted with the
    statements), for the withdrawals ``where`` selects (None: every one in the hot table)."""
    query = MoneyMovement.select().where((MoneyMovement.kind == "withdrawal")
                                         & MoneyMovement.fee_asset_id.is_null(False))
    if where is not None:
        query = query.where(where)
    for m in query:
        if m.state in ("prepared", "sent", "confirmed") and m.fee_amount:
            _add(accounted, sym(m.fee_asset_id), -m.fee_amount)


def money_totals(config) -> dict:
    """Totals per asset symbol: paid in, paid back (payouts + refunds), fees, trading, dust, and the rest;
    plus what is accounted for (see the module docstring)."""
    symbols: dict[str, str] = {}
    for pair in config.pairs:
        symbols.setdefault(pair.base_asset_id, pair.base_symbol)
        symbols.setdefault(pair.quote_asset_id, pair.quote_symbol)

    def sym(asset_id: str) -> str:
        return symbols.get(asset_id, asset_id)

    paid_in: dict[str, Decimal] = {}
    paid_out: dict[str, Decimal] = {}
    fees: dict[str, Decimal] = {}
    trading: dict[str, Decimal] = {}
    dust: dict[str, Decimal] = {}
    other: dict[str, Decimal] = {}
    accounted: dict[str, Decimal] = {}
    by_state: dict[str, int] = {}
    # Archived orders count like hot ones (read from their records): their fees and dust are still accounted.
    orders = (list(Order.select(Order.order_id, Order.state).tuples())
              + list(ArchivedOrder.select(ArchivedOrder.order_id, ArchivedOrder.state).tuples()))
    for (order_id, state) in orders:
        by_state[state] = by_state.get(state, 0) + 1
        with order_source(order_id) as archived:
            statement = order_statement(order_id, config)
            if archived is not None:  # its withdrawals left the hot table with it
                _mixin_fees_paid(accounted, sym, MoneyMovement.order_id == order_id)
        if statement is None:
            continue
        for line in statement.assets:
            s, t = sym(line.asset_id), line.terms
            _add(paid_in, s, t["paid_in"])
            _add(paid_out, s, t["paid_out"] + t["refunded"])
            _add(fees, s, t["mixin_withdrawal_fees"] + t["market_making_fee"] + t["exchange_withdrawal_fees"])
            _add(trading, s, t["trading"])
            _add(dust, s, t["dust"])
            _add(other, s, t["deposit_difference"] + t["transit_difference"])
            _add(accounted, s, t["dust"] + t["market_making_fee"] + t["mixin_withdrawal_fees"])
            if OrderState(state) not in FINAL_STATES:
                _add(accounted, s, line.held)
    _mixin_fees_paid(accounted, sym)
    # Money not tied to any order: refused at routing (refunded), operator top-ups, deposits for an operator.
    orphan = Snapshot.order_id.is_null() | (Snapshot.order_id.not_in(Order.select(Order.order_id))
                                            & Snapshot.order_id.not_in(ArchivedOrder.select(ArchivedOrder.order_id)))
    for snap in Snapshot.select().where(orphan):
        if snap.amount <= 0:
            continue
        if snap.outcome == RouteKind.REFUND.value:
            _add(paid_in, sym(snap.asset_id), snap.amount)
        elif snap.outcome in (RouteKind.TOPUP.value, RouteKind.ATTENTION.value, RouteKind.AWAITING.value):
            _add(accounted, sym(snap.asset_id), snap.amount)
    for m in MoneyMovement.select().where((MoneyMovement.kind == "refund") & MoneyMovement.order_id.is_null()):
        _add(paid_out, sym(m.asset_id), m.amount)
        if m.state != "confirmed":
            _add(accounted, sym(m.asset_id), m.amount)
    # Order refunds queued but not confirmed are still in the wallet (the statements count them as paid back).
    for m in MoneyMovement.select().where(MoneyMovement.kind.in_(["refund", "payout"])
                                          & MoneyMovement.order_id.is_null(False)):
        if m.state != "confirmed":
            _add(accounted, sym(m.asset_id), m.amount)
    return {"orders_by_state": dict(sorted(by_state.items())), "paid_in": paid_in, "paid_out": paid_out,
            "fees": fees, "trading": trading, "dust": dust, "other": other, "accounted": accounted}


def stranded(actual: Mapping[str, Decimal], accounted: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """What the bot holds (Mixin wallet + exchange accounts, per symbol) minus what records account for.
    Empty when every unit is accounted for; a negative amount is a shortfall."""
    out = {}
    for symbol in sorted(set(actual) | set(accounted)):
        diff = actual.get(symbol, ZERO) - accounted.get(symbol, ZERO)
        if diff != 0:
            out[symbol] = diff
    return out


def as_strings(values: Mapping[str, Decimal]) -> dict[str, str]:
    return {k: fmt(v) for k, v in sorted(values.items()) if v != 0}
