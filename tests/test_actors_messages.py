"""Actors at message level: out-of-order and repeated delivery, restarts reload state."""
from __future__ import annotations

import random
import uuid
from decimal import Decimal

import pytest

from actors.protocol import DeliverPayments, SnapshotsArrived
from domain.memo import encode_market_making, memo_text_to_hex
from domain.routing import parse_snapshot
from domain.timefmt import format_ns
from sim.world import BTC, BTC_USDT_PAIR, ETH, USDT_ERC20, build_world, new_order_id
from storage import repo
from storage.models import MoneyMovement, Snapshot
from tests.support import running_mmflow, wait_until


@pytest.fixture
def world():
    w = build_world()
    yield w
    w.fake.stop()


def raw_snapshot(bot_id, user, asset_id, amount, memo_text, ns):
    return {"type": "snapshot", "snapshot_id": str(uuid.uuid4()), "user_id": bot_id, "opponent_id": user,
            "asset_id": asset_id, "amount": str(amount), "memo": memo_text_to_hex(memo_text),
            "created_at": format_ns(ns), "transaction_hash": "00" * 32, "request_id": str(uuid.uuid4()),
            "deposit": None, "withdrawal": None}


def test_router_handles_out_of_order_triplicate_delivery(tmp_path, world):
    """Each snapshot delivered 3 times, shuffled, straight to the Router: tallies exact, refunds once."""
    with running_mmflow(tmp_path, world) as mm:
        pair = mm.services.config.pair(BTC_USDT_PAIR)
        rng = random.Random(7)
        ns = 1_700_000_000_000_000_000
        raws, invoices = [], {}
        for i in range(20):
            user, order_id = world.new_user(), new_order_id()
            invoices[order_id] = world.invoice(pair, Decimal("0.01") * (i + 1), Decimal("100"))
            memo = encode_market_making(pair.pair_id, order_id)
            for asset_id, amount in invoices[order_id].items():
                ns += 1
                raws.append(raw_snapshot(world.bot_id, user, asset_id, amount, memo, ns))
        bad = [raw_snapshot(world.bot_id, world.new_user(), USDT_ERC20, "3", "not ours", ns + k) for k in range(1, 6)]
        raws += bad
        items = [(parse_snapshot(r), r) for r in raws]
        mm.services.writer.run(repo.store_snapshot_page, items, "test", None, None)
        facts = [f for f, _ in items] * 3
        rng.shuffle(facts)
        router = mm.services.refs["router"]
        for start in range(0, len(facts), 17):
            router.tell(SnapshotsArrived(tuple(facts[start:start + 17])))
        for order_id, invoice in invoices.items():
            view = mm.wait_state(order_id, "payment_complete")
            assert view.tallies == invoice
        wait_until(lambda: MoneyMovement.select().count() == len(bad))
        assert Snapshot.select().where(Snapshot.applied == False).count() == 0  # noqa: E712


def test_order_supervisor_dedupes_repeated_delivery(tmp_path, world):
    with running_mmflow(tmp_path, world) as mm:
        pair = mm.services.config.pair(BTC_USDT_PAIR)
        user, order_id = world.new_user(), new_order_id()
        memo = encode_market_making(pair.pair_id, order_id)
        raws = [raw_snapshot(world.bot_id, user, BTC, "0.5", memo, 1_700_000_000_000_000_000 + k) for k in range(4)]
        items = [(parse_snapshot(r), r) for r in raws]
        mm.services.writer.run(repo.store_snapshot_page, items, "test", None, None)
        mm.services.writer.run(repo.record_routes, [
            (f, __import__("domain.routing", fromlist=["route_snapshot"]).route_snapshot(
                f, pair_lookup=mm.services.config.pair, operator_ids=frozenset())) for f, _ in items])
        facts = tuple(f for f, _ in items)
        orders = mm.services.refs["orders"]
        for _ in range(3):
            orders.tell(DeliverPayments(order_id, pair.pair_id, facts[::-1]))
            orders.tell(DeliverPayments(order_id, pair.pair_id, facts))
        wait_until(lambda: (v := mm.order(order_id)) is not None and v.tallies.get(BTC) == Decimal("2.0"))
        import gevent
        gevent.sleep(0.2)
        assert mm.order(order_id).tallies == {BTC: Decimal("2.0")}


def test_crashed_order_actor_is_restarted_and_reloads_from_db(tmp_path, world):
    with running_mmflow(tmp_path, world) as mm:
        pair = mm.services.config.pair(BTC_USDT_PAIR)
        user, order_id = world.new_user(), new_order_id()
        memo = encode_market_making(pair.pair_id, order_id)
        invoice = world.invoice(pair, Decimal("0.1"), Decimal("1000"))
        world.pay(user, BTC, invoice[BTC], memo)
        wait_until(lambda: mm.order(order_id) is not None and mm.order(order_id).tallies)
        orders = mm.services.refs["orders"]
        from actors.messages import WhichChildren
        wait_until(lambda: any(c[0] == order_id and c[1] for c in orders.ask(WhichChildren(), timeout=5)))
        # Crash: a tell whose handler raises. DeliverPayments with a snapshot that is not stored makes
        # apply_payment fail inside the actor (LookupError/DoesNotExist) -> the actor dies, is restarted.
        ghost = parse_snapshot(raw_snapshot(world.bot_id, user, BTC, "1", memo, 1))
        orders.tell(DeliverPayments(order_id, pair.pair_id, (ghost,)))
        wait_until(lambda: any(c[0] == order_id and c[2] >= 1 for c in orders.ask(WhichChildren(), timeout=5)),
                   message="order actor restarted")
        # The restarted actor has its state back and keeps working.
        world.pay(user, USDT_ERC20, invoice[USDT_ERC20], memo)
        world.pay(user, ETH, invoice[ETH], memo)
        view = mm.wait_state(order_id, "payment_complete")
        assert view.tallies == invoice
