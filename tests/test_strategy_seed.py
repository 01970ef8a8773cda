"""storage/strategy_seed.py: the recovery's bulk read of running orders' strategy inputs says, for every order,
what the order's own reads say (the reads a StrategyRunner makes when it starts without a seed)."""
from __future__ import annotations

import importlib.util
import time
from decimal import Decimal as D
from pathlib import Path
from types import SimpleNamespace

import pytest

from domain.exchange_orders import TradeFill
from domain.payment import FeeRequirements
from domain.strategy.refresh import LiveOrder
from sim.world import BTC, BTC_USDT_PAIR, ETH, default_pairs
from storage import exchange_repo as xr
from storage import repo
from storage.db import open_database
from storage.models import database_proxy
from storage.reports import opening_ledger
from storage.strategy_seed import load_seeds
from storage.writer import Writer
from tests.databases import database_url

_spec = importlib.util.spec_from_file_location("bench_seeding", Path(__file__).parent.parent / "bench" / "seeding.py")
seeding = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(seeding)


@pytest.fixture
def w(tmp_path):
    db = open_database(database_url(tmp_path / "t.db"))
    writer = Writer(db, batch_max=50).start()
    yield db, writer
    writer.stop()
    db.close()
    database_proxy.initialize(None)


def test_bulk_seeds_equal_each_orders_own_reads(w):
    db, writer = w
    row = next(p for p in default_pairs() if p["id"] == BTC_USDT_PAIR)
    pair = SimpleNamespace(pair_id=row["id"], exchange=row["exchange"], symbol=row["symbol"], base_symbol="BTC",
                           quote_symbol="USDT", base_asset_id=row["base_asset_id"],
                           quote_asset_id=row["quote_asset_id"])
    ids = [seeding.order_id_of(i, salt=7) for i in range(5)]
    now = time.time()
    with db.atomic():
        seeding.seed_orders(db, ids, pair, FeeRequirements(BTC, D("0.0001"), ETH, D("0.002"), D("0.1")), now,
                            state="running", base=D("0.01"), quote=D("1000"), overrides={"order_levels": 2})
    acc, sym = pair.exchange, pair.symbol
    # order 0: a ladder, one of it filled twice (same second: the tie goes to the first fill key); order 1: one
    # order cancelled; order 2: an opening price; orders 3, 4: nothing but their deposits
    cids = [writer.run(xr.reserve_client_order, ids[0], acc, sym, side, D(price), D("0.002"), 0, now)
            for side, price in (("buy", "59000"), ("sell", "61000"))]
    for n, cid in enumerate(cids):
        writer.run(xr.map_exchange_id, cid, f"x{n}", "accepted", now)
    for trade_id in ("t2", "t1"):
        writer.run(xr.apply_fill, acc, TradeFill(trade_id=trade_id, client_order_id=cids[0], exchange_order_id="x0",
                                                 symbol=sym, side="buy", price=D("59000") + int(trade_id[1]),
                                                 amount=D("0.0005"), fee=D(0), fee_currency=None,
                                                 timestamp_ms=int(now * 1000)), now)
    gone = writer.run(xr.reserve_client_order, ids[1], acc, sym, "buy", D("58000"), D("0.001"), 0, now)
    writer.run(xr.transition, gone, "canceled", now)
    writer.run(repo.set_opening_price, ids[2], D("60000"))

    seeds = load_seeds(ids + ["00000000-0000-4000-8000-00000000dead"])
    assert set(seeds) == set(ids)
    for order_id in ids:
        seed = seeds[order_id]
        assert seed.overrides == repo.strategy_overrides(order_id) == {"order_levels": 2}
        assert seed.opening_price == repo.opening_price(order_id)
        assert seed.balances == repo.ledger_balances(order_id)
        assert seed.deposits == opening_ledger(order_id)
        assert seed.live_orders == [LiveOrder(client_order_id=o.client_order_id, side=o.side, price=o.price,
                                              amount=o.amount, remaining=o.amount - o.filled,
                                              created_at=o.created_at, hanging=o.hanging, level=o.level)
                                    for o in xr.open_orders_of(order_id)]
        fills = xr.fills_of(order_id)
        last = max(fills, key=lambda f: f.at) if fills else None
        assert seed.last_fill == ((last.at, D(last.price)) if last else None)
    assert len(seeds[ids[0]].live_orders) == 2 and seeds[ids[0]].last_fill is not None
    assert seeds[ids[1]].live_orders == [] and seeds[ids[2]].opening_price == D("60000")
