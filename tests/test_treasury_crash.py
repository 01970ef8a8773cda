"""kill -9 at each step of a refund transfer; after restart each refund is on Mixin exactly once."""
from __future__ import annotations

import signal
from decimal import Decimal
from pathlib import Path

import pytest

from domain.ids import refund_request_id
from sim.world import USDT_ERC20, build_world, dump_toml
from tests.databases import database_url, query, query_errors
from tests.support import start_service, wait_until

ROOT = Path(__file__).resolve().parent.parent
STEPS = ["before_prepare", "after_prepare", "after_verify", "after_broadcast", "before_confirm_recorded"]


def movements(db_url: str) -> dict[str, str]:
    try:
        return dict(query(db_url, "SELECT request_id, state FROM money_movement"))
    except query_errors():
        return {}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("step", STEPS)
def test_refund_survives_kill_at_each_step(tmp_path, step):
    world = build_world()
    db_url = database_url(tmp_path / "mmflow.db")
    raw = world.config_dict(db_url, world.write_keystore(tmp_path / "keystore.json"))
    config_path = tmp_path / "mmflow.toml"
    config_path.write_text(dump_toml(raw))
    log_path = tmp_path / "service.log"
    users = [world.new_user() for _ in range(3)]
    paid = [world.pay(user, USDT_ERC20, Decimal(7 + i), "not an mmflow memo") for i, user in enumerate(users)]
    proc = start_service(config_path, log_path, crash_at=step)
    try:
        assert proc.wait(timeout=60) == -signal.SIGKILL, f"the process should have killed itself at {step}"
        proc = start_service(config_path, log_path)
        expected = {refund_request_id(p["snapshot_id"]) for p in paid}
        wait_until(lambda: (m := movements(db_url)) and set(m) == expected
                   and all(state == "confirmed" for state in m.values()),
                   timeout=30, interval=0.1, message=f"refunds confirmed after a kill at {step}")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        world.fake.stop()
    outgoing = [s.data for s in world.fake.snapshots.values()
                if s.data["user_id"] == world.bot_id and s.data["amount"].startswith("-")]
    assert sorted(o["request_id"] for o in outgoing) == sorted(expected)  # each refund sent once
    for p, user in zip(paid, users):
        assert world.fake.balance(user, USDT_ERC20) == 0, "paid once, refunded once"
    assert "killed itself" not in log_path.read_text(errors="replace")
