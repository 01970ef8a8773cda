"""Stages 1–4 end to end: fake Mixin over HTTP → poller → router → OrderActor → durable tally."""
from __future__ import annotations

from decimal import Decimal

import pytest

from domain.memo import encode_market_making
from sim.world import BTC, BTC_USDT_PAIR, ETH, USDT_ERC20, build_world, new_order_id
from storage.models import MoneyMovement, Snapshot
from tests.support import running_mmflow, wait_until


@pytest.fixture
def world():
    w = build_world()
    yield w
    w.fake.stop()


def test_full_payment_completes_order(tmp_path, world):
    with running_mmflow(tmp_path, world) as mm:
        pair = mm.services.config.pair(BTC_USDT_PAIR)
        user = world.new_user()
        order_id = new_order_id()
        invoice = world.invoice(pair, Decimal("0.1"), Decimal("5000"))
        world.pay_invoice(user, pair, order_id, invoice)
        view = mm.wait_state(order_id, "payment_complete")
        assert view.user_id == user
        assert view.tallies == invoice
        assert MoneyMovement.select().count() == 0
