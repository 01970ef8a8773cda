"""What a running order's strategy reads when its actor starts, for many orders at once (the recovery's batches).

One order reads its overrides, opening price, last fill, ledger and open exchange orders with five statements;
a restart of 50,000 running orders did that 250,000 times before the first of them quoted. Here it is five
statements per 400 orders; each order's actor takes its ``StrategySeed`` instead of asking (a one-start hint:
every later read is the order's own, see actors/order/strategy.py).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from domain.exchange_orders import OPEN_STATES
from domain.routing import RouteKind
from domain.strategy.refresh import LiveOrder, resting
from storage import exchange_repo
from storage.reports import ledgers_of
from storage import repo
from storage.sql import chunks, marks, run


@dataclass(slots=True)
class StrategySeed:
    """One order's strategy inputs as the database held them when its recovery batch was read."""
    overrides: dict = field(default_factory=dict)
    opening_price: Decimal | None = None
    last_fill: tuple[float, Decimal] | None = None   # (at, price) of its newest fill; None: it has none
    balances: dict[str, Decimal] = field(default_factory=dict)   # ledger_balances
    deposits: dict[str, Decimal] = field(default_factory=dict)   # reports.opening_ledger
    # exchange_repo.open_orders_of as the strategy keeps them (StrategyRunner._live_of of a runner with nothing
    # hanging yet): straight from the rows — a DbOrder each, converted at once, was ~1 % of a restart's CPU
    live_orders: list[LiveOrder] = field(default_factory=list)
    top_up_pool: bool = False        # topup_repo.has_pool: added funds wait in the pool
    top_up_in_flight: bool = False   # topup_repo.has_batch(order, "withdrawing")


def load_seeds(order_ids: Sequence[str]) -> dict[str, StrategySeed]:
    """A seed for each of ``order_ids`` that exists (read in one go, a few statements per storage.repo.CHUNK orders)."""
    seeds: dict[str, StrategySeed] = {}
    opens = sorted(s.value for s in OPEN_STATES)
    # the texts of the ladders' prices and amounts, each made a Decimal once (the orders of a pair quote the same
    # few): fewer conversions, and the orders' equal prices are one object (hashed once by the quiet bands' memo)
    decimals: dict[str, Decimal] = {}

    def decimal(text: str) -> Decimal:
        value = decimals.get(text)
        if value is None:
            value = decimals[text] = Decimal(text)
        return value
    for chunk in chunks(list(order_ids), repo.CHUNK):
        where = f"order_id IN ({marks(len(chunk))})"
        for order_id, opening, overrides in run(f"SELECT order_id, opening_price, strategy_overrides FROM orders "
                                                f"WHERE {where}", chunk).fetchall():
            seeds[order_id] = StrategySeed(overrides=json.loads(overrides) if overrides else {},
                                           opening_price=Decimal(opening) if opening is not None else None)
        for order_id, (balances, deposits) in ledgers_of(chunk).items():
            seed = seeds.get(order_id)
            if seed is not None:
                seed.balances, seed.deposits = balances, deposits
        # the newest fill of each (ties: the first by fill key, as exchange_repo.fills_of's order gives max())
        for order_id, at, price, _key in run(
                f"SELECT f.order_id, f.at, f.price, f.fill_key FROM exchange_fill f JOIN (SELECT order_id, MAX(at) "
                f"AS at FROM exchange_fill WHERE {where} GROUP BY order_id) m ON f.order_id = m.order_id AND "
                f"f.at = m.at ORDER BY f.fill_key DESC", chunk).fetchall():
            seed = seeds.get(order_id)
            if seed is not None:
                seed.last_fill = (at, Decimal(price))
        # what the top-up stage's resume asks (two statements an order, 50,000 times at a restart)
        for (order_id,) in run(f"SELECT DISTINCT order_id FROM snapshot WHERE {where} AND purpose = ? AND "
                               f"outcome = ? AND top_up_batch IS NULL", (*chunk, "top_up", RouteKind.ORDER.value)):
            if order_id in seeds:
                seeds[order_id].top_up_pool = True
        for (order_id,) in run(f"SELECT DISTINCT order_id FROM order_top_up WHERE {where} AND state = ?",
                               (*chunk, "withdrawing")):
            if order_id in seeds:
                seeds[order_id].top_up_in_flight = True
        for order_id, cid, side, price, amount, filled, level, created_at, hanging in run(
                f"SELECT order_id, client_order_id, side, price, amount, filled, level, created_at, hanging FROM "
                f"{exchange_repo._ORDERS} WHERE state IN ({marks(len(opens))}) AND {where} "
                f"ORDER BY created_at, client_order_id", (*opens, *chunk)).fetchall():
            seed = seeds.get(order_id)
            if seed is not None:
                seed.live_orders.append(resting(cid, side, decimal(price), decimal(amount), decimal(filled),
                                                created_at, bool(hanging), level))
    return seeds
