"""kill -9 at random points while payments stream in; restart; nothing lost, nothing doubled."""
from __future__ import annotations

import random
import signal
from decimal import Decimal
from pathlib import Path

import gevent
import pytest

from domain.ids import refund_request_id
from domain.memo import encode_market_making
from sim.world import BTC, BTC_USDT_PAIR, USDT_ERC20, build_world, dump_toml, new_order_id
from domain.config import parse_config
from tests.databases import database_url, on_postgres, query, query_errors
from tests.support import start_service, wait_until

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(180)
def test_sigkill_during_payments_loses_and_duplicates_nothing(tmp_path):
    world = build_world()
    rng = random.Random(20261121)
    db_url = database_url(tmp_path / "mmflow.db")
    keystore = world.write_keystore(tmp_path / "keystore.json")
    raw = world.config_dict(db_url, keystore)
    raw["payments"].update({"timeout": 25.0, "check_delay": 0.05})  # well above payment spread + 4 restarts
    raw["log"] = {"level": "INFO"}
    config_path = tmp_path / "mmflow.toml"
    config_path.write_text(dump_toml(raw))
    pair = parse_config(raw).pair(BTC_USDT_PAIR)

    full, partial = {}, {}
    schedule = []  # (user, asset, amount, memo, kind, key)
    for _ in range(30):
        user, order_id = world.new_user(), new_order_id()
        invoice = world.invoice(pair, Decimal(rng.randint(1, 90)) / 100, Decimal(rng.randint(20, 900)))
        full[order_id] = (user, invoice)
        memo = encode_market_making(pair.pair_id, order_id)
        schedule += [(user, asset, amount, memo, "full", order_id) for asset, amount in invoice.items()]
    for _ in range(8):
        user, order_id = world.new_user(), new_order_id()
        partial[order_id] = user
        schedule.append((user, BTC, Decimal("0.01"), encode_market_making(pair.pair_id, order_id), "partial",
                         order_id))
    for i in range(12):
        schedule.append((world.new_user(), USDT_ERC20, Decimal(i + 1), f"garbage {i}", "stray", None))
    rng.shuffle(schedule)
    # Legs of one order keep their relative order only by chance: the service must not care.

    paid: list[tuple[dict, str, str | None]] = []

    def payer():
        for user, asset, amount, memo, kind, key in schedule:
            paid.append((world.pay(user, asset, amount, memo), kind, key))
            gevent.sleep(rng.uniform(0.005, 0.04))

    log_path = tmp_path / "service.log"
    proc = start_service(config_path, log_path)
    kills = 0
    try:
        payments = gevent.spawn(payer)
        for delay in (0.6, 0.5, 0.7, 0.4):  # kill -9 at arbitrary points: mid-page, mid-apply, mid-check
            # Time each kill from the moment this incarnation runs, so it lands mid-processing on a slow
            # machine too (start-up alone can take longer than the delay).
            runs = log_path.read_text(errors="replace").count("mmflow running") if log_path.exists() else 0
            wait_until(lambda: log_path.read_text(errors="replace").count("mmflow running") > runs, timeout=60,
                       interval=0.05, message="service running")
            gevent.sleep(delay + rng.uniform(0, 0.3))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            kills += 1
            proc = start_service(config_path, log_path)
        payments.join(timeout=60)
        assert payments.successful()

        def settled():
            try:
                return _settled()
            except query_errors():  # schema not created yet by the fresh incarnation
                return False

        def _settled():
            rows = query(db_url, "SELECT COUNT(*) FROM snapshot WHERE outcome IS NOT NULL AND applied = ? "
                                 "AND amount NOT LIKE ?", (True, "-%"))
            states = dict(query(db_url, "SELECT order_id, state FROM orders"))
            return (rows[0][0] == len(paid)
                    and all(states.get(o) == "payment_complete" for o in full)
                    and all(states.get(o) == "refunded" for o in partial))
        wait_until(settled, timeout=90, interval=0.2, message="all payments settled after restarts")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, "clean shutdown exits 0"
    finally:
        if proc.poll() is None:
            proc.kill()
        world.fake.stop()
    assert kills == 4

    # Every snapshot stored once, consumed once.
    stored = query(db_url, "SELECT snapshot_id, outcome FROM snapshot WHERE amount NOT LIKE ?", ("-%",))
    assert sorted(s for s, _ in stored) == sorted(p["snapshot_id"] for p, _, _ in paid)
    # The bot's own outgoing refunds come back as negative snapshots: stored, and ignored.
    assert {o for (o,) in query(db_url, "SELECT outcome FROM snapshot WHERE amount LIKE ?", ("-%",))} <= {"ignored"}
    # Tallies exact for complete orders.
    for order_id, (user, invoice) in full.items():
        tallies = {a: Decimal(v) for a, v in query(db_url, "SELECT asset_id, amount FROM payment_tally "
                                                  "WHERE order_id = ?", (order_id,))}
        owner = query(db_url, "SELECT user_id FROM orders WHERE order_id = ?", (order_id,))[0][0]
        assert tallies == invoice, order_id
        assert owner == user
    # Refunds: exactly one per refundable payment, none for the rest, each confirmed on Mixin once.
    movements = {r: (state, amount, recipient) for r, state, amount, recipient in
                 query(db_url, "SELECT request_id, state, amount, recipient_id FROM money_movement")}
    expected = {refund_request_id(p["snapshot_id"]): (p["opponent_id"], Decimal(p["amount"]))
                for p, kind, _ in paid if kind in ("partial", "stray")}
    assert set(movements) == set(expected)
    for request_id, (state, amount, recipient) in movements.items():
        assert state == "confirmed"
        assert (recipient, Decimal(amount)) == expected[request_id]
    outgoing = [s.data["request_id"] for s in world.fake.snapshots.values()
                if s.data["user_id"] == world.bot_id and s.data["amount"].startswith("-")]
    assert sorted(outgoing) == sorted(expected)  # each refund reached Mixin exactly once
    for p, kind, _ in paid:
        if kind in ("partial", "stray"):
            assert world.fake.balance(p["opponent_id"], p["asset_id"]) == 0
    log = log_path.read_text(errors="replace")
    # every restart reused the same database (a PostgreSQL test database is a copy of a template with the schema)
    assert log.count("database schema created") == (0 if on_postgres() else 1)
    assert log.count("store: writer started") >= 2
