"""Several `serve` instances on one PostgreSQL ([cluster]): the config table, the account hashing, the leases and
the fencing in the database, and failover of three real `serve` subprocesses (bench/clusterfail.py) killed with
SIGKILL, or frozen with SIGSTOP past their lease and woken up.

These tests need PostgreSQL by nature: they run in the suite's PostgreSQL pass (MMFLOW_TEST_DATABASE_URL, the
second pass of .ci/run), each on a database of its own, like tests/test_postgres.py — and are skipped, saying
why, on the SQLite pass (they ran the very same on both passes until 2026-12-07: ~30 s of CPU and a minute of a
worker spent twice) or when the server does not answer."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pytest

from domain.cluster import assign_accounts
from domain.config import ConfigError, parse_config
from tests.support import bench_result
from tests.test_config_schema import minimal

ROOT = Path(__file__).resolve().parent.parent
_counter = itertools.count(1)
SKIP_WHY = ("the cluster needs PostgreSQL: it runs in the PostgreSQL pass (MMFLOW_TEST_DATABASE_URL=postgresql://…, "
            "README \"Running on PostgreSQL\")")


def _server() -> str | None:
    """The PostgreSQL server of the suite's PostgreSQL pass, if it answers; None on the SQLite pass."""
    import psycopg

    url = os.environ.get("MMFLOW_TEST_DATABASE_URL", "").strip()
    if not url.startswith(("postgresql://", "postgres://")):
        return None
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=3):
            return url
    except psycopg.Error:
        return None


@pytest.fixture
def pg_url():
    """A PostgreSQL database of this test's own (empty: the service creates the schema), dropped after it."""
    import psycopg

    server = _server()
    if server is None:
        pytest.skip(SKIP_WHY)
    name = f"mmt_{os.getpid()}_cluster_{next(_counter)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield urlunparse(urlparse(server)._replace(path="/" + name))
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ------------------------------------------------------------------ config and hashing (no database)


def test_cluster_table_is_parsed_and_checked():
    raw = minimal()
    raw["database"] = {"url": "postgresql://mm@db/mm"}
    raw["cluster"] = {"lease_ttl": 6}
    config = parse_config(raw, read_secrets=False, check_venues=False, base_dir=Path('/etc/mmflow'))
    assert config.cluster.lease_ttl == 6 and config.cluster.heartbeat_interval == 2
    assert parse_config(minimal(), read_secrets=False, check_venues=False, base_dir=Path('/etc/mmflow')).cluster is None
    raw["cluster"] = {"lease_ttl": 2, "heartbeat": 3, "lease_tl": 1}
    with pytest.raises(ConfigError) as err:
        parse_config(raw, read_secrets=False, check_venues=False, base_dir=Path('/etc/mmflow'))
    text = "\n".join(err.value.problems)
    assert "cluster.lease_tl: unknown key; did you mean 'lease_ttl'?" in text
    raw["cluster"] = {"heartbeat": 30}
    with pytest.raises(ConfigError) as err:
        parse_config(raw, read_secrets=False, check_venues=False, base_dir=Path('/etc/mmflow'))
    assert err.value.problems == ["cluster: heartbeat (30) must be shorter than lease_ttl (10)"]
    on_sqlite = minimal()
    on_sqlite["cluster"] = {}
    with pytest.raises(ConfigError) as err:
        parse_config(on_sqlite, read_secrets=False, check_venues=False, base_dir=Path('/etc/mmflow'))
    assert any(p.startswith("cluster: needs a postgresql:// database") for p in err.value.problems)


def test_accounts_move_only_from_the_instance_that_left():
    accounts = [f"acct{i}" for i in range(40)]
    three = assign_accounts(accounts, ["a", "b", "c"])
    assert set(three.values()) == {"a", "b", "c"}
    two = assign_accounts(accounts, ["a", "c"])
    assert all(two[x] == owner for x, owner in three.items() if owner != "b")
    assert assign_accounts(accounts, []) == {}


# ------------------------------------------------------------------ leases and fencing (one database)


def test_a_lease_taken_over_fences_the_old_holder(pg_url):
    from gevent.event import AsyncResult  # noqa: F401 - the writer's results

    from storage.cluster import Fence, Fenced, LeaseStore, check_fence
    from storage.db import close_database, open_database
    from storage.models import Alert, database_proxy
    from storage.writer import Writer

    db = open_database(pg_url)
    try:
        old, new = LeaseStore(pg_url, "old", 0.5), LeaseStore(pg_url, "new", 0.5)
        epoch = old.acquire("account:x")
        assert epoch == 1 and new.acquire("account:x") is None      # held and not expired
        assert old.renew({"account:x": epoch}) == {"account:x": 1}
        writer = Writer(db).start()

        def unit(fence):
            check_fence(fence)
            Alert.insert(kind="test", subject=fence.holder, message="m", created_at=0).execute()

        writer.run(unit, Fence("account:x", "old", epoch))
        import time
        deadline = time.monotonic() + 10
        while (taken := new.acquire("account:x")) is None:   # after the TTL
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert taken == 2
        with pytest.raises(Fenced):
            writer.run(unit, Fence("account:x", "old", epoch))   # the zombie's write: refused, nothing written
        writer.run(unit, Fence("account:x", "new", taken))
        assert [a.subject for a in Alert.select().order_by(Alert.id)] == ["old", "new"]
        assert old.renew({"account:x": epoch}) == {}                 # the old holder learns it lost the lease
        writer.stop()
        old.close_quietly()
        new.close_quietly()
    finally:
        close_database(db)
        database_proxy.initialize(None)


def test_a_frozen_holders_session_is_ended_by_the_taker(pg_url):
    """A process frozen in the middle of a fenced write keeps its row lock; once its membership has expired the
    instance taking its lease ends that session (its transaction is rolled back) and takes the lease."""
    import time

    import psycopg

    from storage.cluster import LeaseStore
    from storage.db import close_database, open_database
    from storage.models import database_proxy

    close_database(open_database(pg_url))   # the schema
    database_proxy.initialize(None)
    old, new = LeaseStore(pg_url, "old", 0.5), LeaseStore(pg_url, "new", 0.5)
    old.heartbeat("host", 4242)
    epoch = old.acquire("role:treasury")
    frozen = psycopg.connect(pg_url, application_name="mmflow:old:4242")
    frozen.execute("SELECT 1 FROM cluster_lease WHERE name = 'role:treasury' AND holder = 'old' AND epoch = %s "
                   "FOR KEY SHARE", (epoch,))
    deadline = time.monotonic() + 20
    while (taken := new.acquire("role:treasury")) is None:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert taken == epoch + 1
    with pytest.raises(psycopg.OperationalError):
        frozen.execute("SELECT 1")   # its session was ended: nothing it had not committed counts
    for store in (old, new):
        store.close_quietly()


# ------------------------------------------------------------------ three serve subprocesses


def _failover(pg_url: str, mode: str, tmp_path: Path) -> dict:
    done = subprocess.run([sys.executable, "bench/clusterfail.py", "--database", pg_url, "--mode", mode,
                           "--workdir", str(tmp_path / "work"), "--verbose"],
                          cwd=ROOT, capture_output=True, text=True, timeout=560, check=False)
    result = bench_result(done)
    assert done.returncode == 0
    assert result["took_over"] is True
    victim_held = result["narration"][0]
    assert "role:treasury" in victim_held and "role:ingest" in victim_held and "account:binance" in victim_held
    assert result["orders_by_state"] == {"settled": 5, "refunded": 1}, result
    assert result["stranded"] == {}
    return result


@pytest.mark.timeout(600)
def test_kill_9_of_the_instance_holding_the_poller_treasury_and_account(pg_url, tmp_path):
    _failover(pg_url, "kill", tmp_path)


@pytest.mark.timeout(600)
def test_a_frozen_instance_woken_past_its_lease_is_fenced(pg_url, tmp_path):
    result = _failover(pg_url, "stop", tmp_path)
    assert result["fenced_writes"] >= 0   # how many the zombie attempted depends on where SIGSTOP caught it


@pytest.mark.timeout(600)
def test_kill_9_moves_its_exchange_accounts_to_the_survivors_by_the_hash_ring_and_their_orders_go_on(pg_url,
                                                                                                     tmp_path):
    """Four exchange accounts (an order funded and quoting on each) over three instances; the one holding every
    role and two accounts is SIGKILLed: its two accounts go to the two survivors the ring names, the others'
    accounts stay where they were, each moved account's order is reconciled and quotes again, and everything
    then exits with 0 violations (no duplicate exchange order, withdrawal or payout; nothing stranded)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from clusterfail import ACCOUNTS, account_instance_names

    from domain.cluster import account_lease

    done = subprocess.run([sys.executable, "bench/clusterfail.py", "--database", pg_url, "--mode", "accounts",
                           "--workdir", str(tmp_path / "work"), "--verbose"],
                          cwd=ROOT, capture_output=True, text=True, timeout=560, check=False)
    result = bench_result(done)
    assert done.returncode == 0 and result["violations"] == 0 and result["took_over"] is True, result
    names = account_instance_names()
    victim, survivors = names[0], names[1:]
    assert result["victim"] == victim
    ring_of_three = {account_lease(a): o for a, o in assign_accounts(ACCOUNTS, names).items()}
    ring_of_two = {account_lease(a): o for a, o in assign_accounts(ACCOUNTS, survivors).items()}
    moves = result["accounts"]
    assert moves["owners_before"] == ring_of_three and set(ring_of_three.values()) == set(names)
    assert moves["owners_after"] == ring_of_two and victim not in ring_of_two.values()
    moved = sorted(a for a in ACCOUNTS if ring_of_three[account_lease(a)] == victim)
    assert moves["moved"] == moved and len(moved) == 2
    assert {ring_of_two[account_lease(a)] for a in moved} == set(survivors)   # spread over both survivors
    assert all(ring_of_two[lease] == owner for lease, owner in ring_of_three.items() if owner != victim)
    assert set(moved) <= set(moves["quoting_again"])   # reconciled by the new owner, then quoting again
    assert result["orders_by_state"] == {"settled": len(ACCOUNTS)} and result["stranded"] == {}, result
    log = (tmp_path / "work" / f"{ring_of_two[account_lease(moved[0])]}.log").read_text(errors="replace")
    assert f"took exchange account {moved[0]} (epoch" in log and "reconciled" in log


# ------------------------------------------------------------------ the demo on three instances


# test_demo_on_three_instances_with_one_killed is in tests/test_demo.py: started beside the other demos, its
# minute of waiting on the users' script overlaps theirs.


def test_demo_cluster_options_are_checked(capsys):
    """Refused before anything starts: ``run.main``, the function `python run.py demo …` runs, called here (a fresh
    interpreter per case would only add its start; tests/test_bad_config.py runs the process itself)."""
    import run

    for args, problem in ((["--instances", "3"], "--instances: several instances share one PostgreSQL database"),
                          (["--kill-one"], "--kill-one: needs --instances 2 or more"),
                          (["--database", "sqlite:///x.db"], "--database: must be a postgresql:// URL")):
        with pytest.raises(SystemExit) as exited:
            run.main(["demo", *args])
        out, err = capsys.readouterr()
        assert exited.value.code == 2 and out == "", (out, err)
        (line,) = err.strip().splitlines()
        assert line.startswith("error: ") and problem in line, err
