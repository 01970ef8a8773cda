"""Cold storage for real: finished orders move from the hot tables into sha256-checked msgpack segments and
back, through `python run.py archive run|verify|restore` subprocesses (killed with SIGKILL at the crash points
between writing a segment and committing it), on this test's database (SQLite file or PostgreSQL).

Archived orders read exactly as before — `orders show`, `orders statement`, and the HTTP API's order and
statement — while the service keeps running; a late payment into an archived order is refunded like one into
a final order. The bulk test archives 10,000 bulk-inserted orders day after day and checks the hot tables
stay bounded, every order stays readable and each run's statements do not grow with the orders it moves or
the archive's size; bench/archive.py does the same with 100,000 and times it."""
from __future__ import annotations

import contextlib
import json
import random
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from domain.archive_config import parse_archive_settings
from domain.memo import ACTION_EXIT, encode_market_making
from ops import reads
from sim.bridge import world_with_exchange
from sim.world import BTC, BTC_USDT_PAIR, USDT_ERC20, build_world, dump_toml, new_order_id
from storage import archive, exchange_repo
from storage.archive_models import ArchivedOrder, ArchiveSegment, archived_entries
from storage.audit import money_totals
from storage.db import close_database, open_database
from storage.models import MoneyMovement, Order, PaymentTally, database_proxy
from storage.sql import run
from tests.archive_rows import DAY, insert_finished_orders
from tests.databases import database_url
from tests.support import running_mmflow, wait_until
from tests.test_cli_operator import cli_env, pairs
from tests.test_flow_funding import exchange_table

ROOT = Path(__file__).resolve().parent.parent
D = Decimal
FUNDING = {"poll_interval": 0.05, "retry_delay": 0.1, "withdrawal_timeout": 30, "deposit_timeout": 30,
           "return_timeout": 30, "return_retry_delay": 0.1, "return_max_attempts": 3, "lookup_grace": 0.5}
API = {"listen": "127.0.0.1:0", "rate_limit_per_address": "5000/minute", "rate_limit_per_token": "5000/minute"}


def _start(config_path: Path, *args: str, crash_at: str | None = None) -> subprocess.Popen:
    env = cli_env()
    env.pop("MMFLOW_CRASH_AT", None)
    if crash_at:
        env["MMFLOW_CRASH_AT"] = crash_at
    return subprocess.Popen([sys.executable, "run.py", *args, "--config", str(config_path)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=180)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_py(config_path: Path, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess:
    """`python run.py ARGS --config FILE` without the exchange keys in its environment."""
    return _finish(_start(config_path, *args, crash_at=crash_at))


def run_py_all(config_path: Path, *calls: tuple[str, ...]) -> list[subprocess.CompletedProcess]:
    """Independent read-only calls at once (each spends most of its time importing)."""
    return [_finish(p) for p in [_start(config_path, *call) for call in calls]]


def without_archived(document: dict) -> dict:
    return {k: v for k, v in document.items() if k != "archived"}


# ---------------------------------------------------------------- real orders, the service running

@contextlib.contextmanager
def flow_service(tmp_path: Path, monkeypatch, **extra):
    """The service against the fake Mixin and the fake Binance (real ccxt), and the same settings as the TOML
    file the CLI reads — with an [archive] table (retention 1 s, directory cold/): (world, running, config path)."""
    ew = world_with_exchange(deposit_delay=0.1)
    ew.exchange.withdraw_delay = 0.1
    monkeypatch.setenv("MMF_BINANCE_KEY", ew.api_key)
    monkeypatch.setenv("MMF_BINANCE_SECRET", ew.secret)
    settings = {"exchanges": [exchange_table(ew)], "funding": dict(FUNDING), "pairs": pairs(), **extra,
                "strategy": {"tick_interval": 0.1}, "stream": {"slow_interval": 0.2, "fast_interval": 0.05}}
    raw = ew.world.config_dict(database_url(tmp_path / "mmflow.db"), tmp_path / "keystore.json", **settings)
    raw["archive"] = {"retention": "1s", "directory": "cold"}
    config_path = tmp_path / "mmflow.toml"
    config_path.write_text(dump_toml(raw))
    try:
        with running_mmflow(tmp_path, ew.world, **settings) as mm:
            yield ew, mm, config_path
    finally:
        ew.stop()
        ew.world.fake.stop()


def settle_and_refund(ew, mm, while_running=None) -> tuple[str, str, str]:
    """A settled order that traded and was left by its owner's exit memo carrying 1 USDT, and an order refunded
    by its owner's exit while its payment was pending: (the first's owner, its id, the refunded id).
    ``while_running(order_id)`` runs while the first order trades."""
    pair = mm.services.config.pair(BTC_USDT_PAIR)
    user, settled = ew.world.new_user(), new_order_id()
    ew.world.pay_invoice(user, pair, settled, ew.world.invoice(pair, D("0.1"), D("5000")))
    mm.wait_state(settled, "running", timeout=30)
    ew.exchange.start_price_process(interval=0.05, vol=0.0005, taker_prob=0.9, taker_size=0.01)
    try:
        if while_running is not None:
            while_running(settled)
        wait_until(lambda: len(exchange_repo.fills_of(settled)) >= 2, timeout=30, message="some fills")
    finally:
        ew.exchange.stop_price_process()
    ew.world.pay(user, USDT_ERC20, "1", encode_market_making(BTC_USDT_PAIR, settled, action=ACTION_EXIT))
    payer, refunded = ew.world.new_user(), new_order_id()
    invoice = ew.world.invoice(pair, D("0.1"), D("5000"))
    ew.world.pay(payer, BTC, invoice[BTC], encode_market_making(BTC_USDT_PAIR, refunded))
    mm.wait_state(refunded, "payment_pending", timeout=10)
    ew.world.pay(payer, USDT_ERC20, "2", encode_market_making(BTC_USDT_PAIR, refunded, action=ACTION_EXIT))
    mm.wait_state(settled, "settled", timeout=60)
    mm.wait_state(refunded, "refunded", timeout=30)
    return user, settled, refunded


@pytest.mark.timeout(300)
def test_real_orders_archive_and_read_the_same_through_cli_and_api_while_the_service_runs(tmp_path, monkeypatch):
    with flow_service(tmp_path, monkeypatch, api=dict(API)) as (ew, mm, config_path):
        from api.server import api_address
        from storage import api_auth

        address = wait_until(lambda: api_address(mm.services), message="the API bound")
        base = f"http://{address[0]}:{address[1]}/api/v1/orders/"
        _, token = api_auth.create_api_token("viewer", "archive test", time.time(), None)
        headers = {"Authorization": f"Bearer {token}"}
        config = mm.services.config
        user, settled, refunded = settle_and_refund(ew, mm)
        orders = (settled, refunded)

        def api(order_id):
            detail = requests.get(base + order_id, headers=headers, timeout=30)
            statement = requests.get(base + order_id + "/statement", headers=headers, timeout=30)
            assert detail.status_code == 200 and statement.status_code == 200, (detail.text, statement.text)
            return without_archived(detail.json()), statement.json()

        def api_list():
            listed = requests.get(base.rstrip("/"), headers=headers, params={"limit": 10}, timeout=30)
            assert listed.status_code == 200, listed.text
            return {row["order_id"]: row for row in listed.json()["orders"]}

        before = {oid: (reads.order_document(config, oid), reads.statement_document(config, oid), api(oid))
                  for oid in orders}
        listed_before = api_list()
        assert {listed_before[oid]["archived"] for oid in orders} == {None}
        assert listed_before[settled]["realized_pnl"]   # it traded: a PnL, to be listed the same from the archive
        hot_rows = {oid: archive.collect([oid])[oid] for oid in orders}
        wait_until(lambda: all(Order.get_by_id(o).closed_at < time.time() - 1.5 for o in orders), timeout=5)

        totals = money_totals(config)
        moved = run_py(config_path, "archive", "run")
        assert moved.returncode == 0, moved
        assert "archived 2 orders into 1 segments" in moved.stdout, moved.stdout
        assert money_totals(config) == totals   # the money is accounted for the same (nothing "stranded")
        assert Order.select().where(Order.order_id.in_(orders)).count() == 0
        assert PaymentTally.select().where(PaymentTally.order_id.in_(orders)).count() == 0
        assert ArchivedOrder.select().count() == 2 and ArchiveSegment.select().count() == 1
        segment = ArchiveSegment.get()
        assert (tmp_path / "cold" / segment.path).is_file() and segment.path.startswith(time.strftime("%Y-%m"))

        # The same documents, from the archive: the read layer, the CLI and the API.
        reading = [("orders", what, oid, *extra) for oid in orders
                   for what, extra in (("show", ()), ("statement", ("--json",)))]
        *printed, paused, kpis, cli_list = run_py_all(config_path, *reading, ("orders", "pause", settled),
                                                      ("orders", "kpi", settled, "--json"), ("orders", "list"))
        # Listed as before, through the same read code, marked archived: the API's list and `orders list`.
        listed_after = api_list()
        for oid in orders:
            assert listed_after[oid]["archived"] == {"at": listed_after[oid]["archived"]["at"],
                                                     "segment": segment.segment_id}
            assert {**listed_after[oid], "archived": None} == listed_before[oid]
        assert cli_list.returncode == 0, cli_list
        cli_rows = {line.split()[0]: line.split() for line in cli_list.stdout.splitlines()[1:]}
        for oid in orders:
            assert cli_rows[oid][1] == listed_after[oid]["state"] and "archived" in cli_rows[oid], cli_list.stdout
        for oid, shown, statement_json in zip(orders, printed[::2], printed[1::2]):
            document, statement, (detail, api_statement) = before[oid]
            after = reads.order_document(config, oid)
            assert after["archived"]["segment"] == segment.segment_id
            assert without_archived(after) == document
            assert reads.statement_document(config, oid) == statement
            assert api(oid) == (detail, api_statement)
            assert api_statement["final"] is True
            assert shown.returncode == 0, shown
            assert without_archived(json.loads(shown.stdout)) == json.loads(json.dumps(document, default=str))
            assert statement_json.returncode == 0 and json.loads(statement_json.stdout)["balanced"], statement_json
        # A command for an archived order is refused here, before anything is queued.
        assert paused.returncode == 2 and "archived" in paused.stderr, paused
        assert kpis.returncode == 0 and json.loads(kpis.stdout)["order_id"] == settled, kpis

        # A late payment into the archived order is refunded like one into a settled order: no order reborn.
        late = ew.world.pay(user, BTC, "0.01", encode_market_making(BTC_USDT_PAIR, settled))
        wait_until(lambda: MoneyMovement.get_or_none(MoneyMovement.snapshot_id == late["snapshot_id"]),
                   timeout=10, message="the late payment's refund")
        refund = MoneyMovement.get(MoneyMovement.snapshot_id == late["snapshot_id"])
        assert refund.memo.endswith(":order_settled") and refund.amount == D("0.01")
        assert not archive.is_hot(settled)

        verified = run_py(config_path, "archive", "verify")
        assert verified.returncode == 0 and "2 archived orders checked" in verified.stdout, verified
        again = run_py(config_path, "archive", "run")
        assert again.returncode == 0 and "archived 0 orders" in again.stdout, again

        restored = run_py(config_path, "archive", "restore", "--order", settled)
        assert restored.returncode == 0 and "restored 1 orders" in restored.stdout, restored
        now_hot = archive.collect([settled])[settled]
        late_rows = []  # the late payment's snapshot and refund name the order: they stayed hot beside it
        for table in now_hot["tables"].values():
            late_rows += [r for r in table["rows"] if late["snapshot_id"] in r]
            table["rows"] = [r for r in table["rows"] if late["snapshot_id"] not in r]
        assert len(late_rows) == 2 and now_hot == hot_rows[settled]
        # Restored, its statement shows the late payment and its refund, and still balances.
        wait_until(lambda: MoneyMovement.get_by_id(refund.request_id).state == "confirmed", timeout=10)
        statement = reads.statement_document(config, settled)
        assert statement["balanced"] is True and refund.order_id == settled
        assert "archived" not in reads.order_document(config, settled)
        assert ArchivedOrder.select().count() == 1 and ArchiveSegment.select().count() == 1
        restored = run_py(config_path, "archive", "restore", "--all")
        assert restored.returncode == 0 and "1 emptied segment files removed" in restored.stdout, restored
        assert archive.collect([refunded])[refunded] == hot_rows[refunded]
        assert not (tmp_path / "cold" / segment.path).exists()


# ---------------------------------------------------------------- bulk-inserted orders, no service

@pytest.fixture
def bulk_db(tmp_path):
    """A database of this test with the schema, open in this process, and a config file for the CLI."""
    world = build_world()
    url = database_url(tmp_path / "bulk.db")
    raw = world.config_dict(url, world.write_keystore(tmp_path / "keystore.json"))
    raw["archive"] = {"retention": "30d", "directory": str(tmp_path / "cold"), "batch_size": 100}
    config_path = tmp_path / "mmflow.toml"
    config_path.write_text(dump_toml(raw))
    db = open_database(url)
    try:
        yield config_path, tmp_path / "cold"
    finally:
        close_database(db)
        database_proxy.initialize(None)
        world.fake.stop()


def where_is(order_ids) -> tuple[int, int]:
    """(hot, archived) counts of these orders."""
    hot = sum(archive.is_hot(o) for o in order_ids)
    return hot, ArchivedOrder.select().where(ArchivedOrder.order_id.in_(list(order_ids))).count()


@pytest.mark.timeout(240)
def test_a_kill_between_segment_and_commit_leaves_every_order_readable_once_and_a_rerun_finishes(bulk_db):
    config_path, cold = bulk_db
    # Closed from 01:00 UTC on, over half a day: one UTC day, so the first run's first segment (a segment holds one
    # day) is a whole batch of 100 whatever the hour the test runs at (from now - 60 days, it split at midnight
    # when run after ~19:10 UTC).
    day_start = (time.time() - 60 * DAY) // DAY * DAY
    old = insert_finished_orders(250, closed_from=day_start + 3600, spread=DAY / 2)
    # Killed after the first segment is on disk, before the index knows it: everything is still hot.
    killed = run_py(config_path, "archive", "run", crash_at="archive_segment_written")
    assert killed.returncode == -9, killed
    assert where_is(old) == (250, 0)
    assert len(list(cold.glob("*/*.mmarc"))) == 1
    verified = run_py(config_path, "archive", "verify")
    assert verified.returncode == 0 and "not in the index" in verified.stdout, verified
    assert reads.order_document(_config(config_path), old[0]).get("archived") is None

    # Killed right after the first commit: 100 archived, the rest hot, none both.
    killed = run_py(config_path, "archive", "run", crash_at="archive_committed")
    assert killed.returncode == -9, killed
    assert where_is(old) == (150, 100)
    assert run_py(config_path, "archive", "verify").returncode == 0

    finished = run_py(config_path, "archive", "run")
    assert finished.returncode == 0 and "archived 150 orders" in finished.stdout, finished
    assert where_is(old) == (0, 250)
    assert run_py(config_path, "archive", "run").stdout.startswith("archived 0 orders")
    config = _config(config_path)
    for oid in (old[0], old[99], old[100], old[-1]):
        document = reads.order_document(config, oid)
        assert document["archived"] and document["state"] in ("settled", "refunded") and len(document["history"]) == 3


def _config(config_path: Path):
    from domain.config import load_config

    return load_config(config_path, read_secrets=False, check_venues=False)


def test_what_changes_after_an_order_was_chosen_is_archived_with_it_or_keeps_it_hot(bulk_db):
    """Between ``due`` choosing orders and their segment's transaction, rows may change: a changed row is read
    in that transaction, so it is in the record (nothing is deleted that the file does not hold); an order no
    longer at rest (a late transfer's refund queued) stays hot and is archived by a later run."""
    _, cold = bulk_db
    ids = insert_finished_orders(20, closed_from=time.time() - 40 * DAY, spread=0)
    touched, moving = ids[7], ids[11]

    def write_after_a_change(unit, *args):
        PaymentTally.update(payments=PaymentTally.payments + 1).where(PaymentTally.order_id == touched).execute()
        MoneyMovement.update(state="queued").where(MoneyMovement.order_id == moving).execute()
        return archive.in_transaction(unit, *args)

    outcome = archive.archive_due(cold, 30 * DAY, 100, write=write_after_a_change)
    assert (outcome.archived, outcome.changed) == (19, [moving])
    assert archive.is_hot(moving) and where_is(ids) == (1, 19)
    record = archive.load_record(archived_entries([touched])[touched])
    tally = record["tables"]["payment_tally"]
    assert [row[tally["columns"].index("payments")] for row in tally["rows"]] == [2, 2]
    MoneyMovement.update(state="confirmed").where(MoneyMovement.order_id == moving).execute()
    assert archive.archive_due(cold, 30 * DAY, 100).archived == 1
    assert where_is(ids) == (0, 20) and archive.verify(cold).problems == []


def test_a_corrupt_segment_is_found_by_verify_and_refused_on_read(bulk_db):
    config_path, cold = bulk_db
    ids = insert_finished_orders(10, closed_from=time.time() - 40 * DAY, spread=0)
    assert run_py(config_path, "archive", "run").returncode == 0
    segment = next(cold.glob("*/*.mmarc"))
    data = bytearray(segment.read_bytes())
    entry = archived_entries([ids[3]])[ids[3]]
    data[entry.offset + entry.length // 2] ^= 0x01
    segment.write_bytes(bytes(data))
    verified = run_py(config_path, "archive", "verify")
    assert verified.returncode == 1, verified
    problems = [line for line in verified.stdout.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 2 and "sha256" in problems[0] and segment.name in problems[0], verified.stdout
    assert problems[1].startswith(f"problem: order {ids[3]}: "), verified.stdout  # the damaged record, no other
    shown = run_py(config_path, "orders", "show", ids[3])
    assert shown.returncode == 1 and shown.stderr.count("\n") == 1, shown
    assert shown.stderr.startswith("error: archive: ") and "sha256" in shown.stderr and "Traceback" not in shown.stderr
    assert reads.order_document(_config(config_path), ids[4])["archived"]  # its neighbours' records still read
    listed = {r["order_id"]: r for r in reads.order_page(_config(config_path), limit=50)["orders"]}
    assert len(listed) == 10 and listed[ids[3]]["reason"].startswith("archive record unreadable: ")
    assert listed[ids[3]]["archived"] and listed[ids[4]]["reason"] == "done"   # listed still, from its index row
    restored = run_py(config_path, "archive", "restore", "--all")
    assert restored.returncode == 1 and "stay archived" in restored.stdout, restored
    assert where_is(ids) == (0, 10)


class _CountingCursor:
    """A driver cursor that counts the statements sent through it (``execute`` and ``executemany`` calls: one
    each, however many rows an executemany carries) and otherwise is the cursor itself."""

    def __init__(self, cursor, counter: list[int]):
        self._cursor, self._counter = cursor, counter

    def execute(self, *args, **kwargs):
        self._counter[0] += 1
        return self._cursor.execute(*args, **kwargs)

    def executemany(self, *args, **kwargs):
        self._counter[0] += 1
        return self._cursor.executemany(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._cursor, name)

    def __iter__(self):
        return iter(self._cursor)


@contextlib.contextmanager
def counting_statements(monkeypatch):
    """[n]: how many statements the open database was sent inside the block (peewee's queries and storage.sql's
    plain SQL alike go through ``Database.cursor()``; nothing else is changed)."""
    db, counter = database_proxy.obj, [0]
    real_cursor = db.cursor
    with monkeypatch.context() as patched:
        patched.setattr(db, "cursor", lambda *a, **k: _CountingCursor(real_cursor(*a, **k), counter))
        yield counter


@pytest.mark.timeout(300)
def test_10000_orders_archived_day_after_day_keep_the_hot_tables_bounded_and_every_order_readable(bulk_db,
                                                                                                 monkeypatch):
    """Issue 13's behaviour at scale: 10,000 finished orders (every row a real one has, bulk-inserted), 1,000
    closing a day for 10 days, archived each day with a 2-day retention: the hot tables never hold more than the
    retention's worth (plus the day being filled), end with only that, and every order is readable exactly
    once — every archived record checked by verify, a sample read whole through the read layer.

    Why 10,000 suffice (the test archived 100,000 on SQLite and 20,000 on PostgreSQL until 2026-12-07, 21 s of
    CPU on SQLite and over a minute on PostgreSQL): what scale could break is work per order — a statement per
    order, or per order archived so far. So the statements each day's run sends are counted: fewer than one per
    5 orders archived (100 for 1,000 orders on 2026-12-07: the run reads, writes and deletes 500 orders per
    statement, storage/archive.CHUNK), and the same number every day while the archive grows. A run that sent
    anything per order would send at least 1,000. bench/archive.py still archives 100,000 (README "Measured")
    and times it."""
    _, cold = bulk_db
    per_day, days, retention = 1_000, 10, 2 * DAY
    start = time.time() - 100 * DAY
    everything: list[str] = []
    hot_orders, hot_rows, statements = [], [], []
    for day in range(days):
        everything += insert_finished_orders(per_day, closed_from=start + day * DAY, spread=DAY - 1,
                                             start=day * per_day)
        with counting_statements(monkeypatch) as sent:
            outcome = archive.archive_due(cold, retention, 5000, now=start + (day + 1) * DAY)
        if outcome.archived:
            statements.append((outcome.archived, sent[0]))
        counts = archive.counts()
        hot_orders.append(counts["orders"])
        hot_rows.append(sum(n for table, n in counts.items() if not table.startswith("archive")))
    # Set-based at any size: each day's run archives that day's 1,000 orders in a bounded number of statements,
    # the same every day however many orders are archived already.
    assert len(statements) == days - 2 and {n for n, _ in statements} == {per_day}, statements
    assert len({sent for _, sent in statements}) == 1 and statements[0][1] < per_day // 5, statements
    # Never more than the retention's worth of days stays hot (plus the day being filled), and the hot rows
    # stop growing once the retention window is full.
    assert max(hot_orders) <= per_day * 3 and hot_orders[-1] <= per_day * 3, hot_orders
    assert max(hot_rows[3:]) <= min(hot_rows[2:]) * 1.01, hot_rows
    counts = archive.counts()
    assert counts["orders"] + counts["archived_order"] == per_day * days == len(set(everything))
    assert counts["archived_order"] >= per_day * (days - 3) and counts["archived_order_listing"] == counts[
        "archived_order"]
    assert counts["payment_tally"] == 2 * counts["orders"] and counts["snapshot"] == 2 * counts["orders"]
    assert counts["archive_segment"] >= days - 3
    # Every order once: hot, or archived with a record that verify re-read and checked (sha256, order id).
    hot = {r[0] for r in run("SELECT order_id FROM orders")}
    cold_ids = {r[0] for r in run("SELECT order_id FROM archived_order")}
    assert not hot & cold_ids and hot | cold_ids == set(everything)
    verified = archive.verify(cold)
    assert verified.problems == [] and verified.orders == counts["archived_order"]
    config = _config_of_nothing()
    sample = random.Random(7).sample(everything, 40) + [everything[0], everything[-1], everything[per_day * 5]]
    for oid in sample:
        document = reads.order_document(config, oid)
        assert document is not None and document["order_id"] == oid and len(document["history"]) == 3
        assert document["paid"] and (("archived" in document) != (oid in hot))
        assert reads.statement_of(config, oid) is not None
    page = reads.order_page(config, limit=50)   # the list pages over both from the keys alone
    assert len(page["orders"]) == 50 and page["next_cursor"]


def test_order_lists_and_the_orders_gauge_include_archived_orders_with_filters_and_paging(bulk_db):
    """Hot and archived orders in one list, newest first, each once, every page chosen from keys only; the
    rows of archived orders equal what they were when hot (PnL included), marked archived; filters by state,
    pair and owner; the CLI's list; `mmflow_orders` counts them and `mmflow_archived_orders` marks them."""
    from integrations import metrics
    from storage.metric_reads import read_state

    config_path, cold = bulk_db
    config = _config(config_path)
    old = insert_finished_orders(60, closed_from=time.time() - 60 * DAY, spread=DAY)
    recent = insert_finished_orders(25, closed_from=time.time() - DAY, spread=DAY / 2, tag=1)

    def every_page(limit, **filters):
        rows, cursor = [], None
        while True:
            page = reads.order_page(config, limit=limit, cursor=cursor, **filters)
            rows += page["orders"]
            if page["next_cursor"] is None:
                return rows
            cursor = page["next_cursor"]

    before = {r["order_id"]: r for r in every_page(200)}
    assert set(before) == set(old + recent) and before[old[1]]["realized_pnl"]   # settled ones traded: a PnL
    assert archive.archive_due(cold, 30 * DAY, 1000).archived == 60
    assert where_is(old) == (0, 60) and where_is(recent) == (25, 0)

    for limit in (1, 7, 85, 200):
        rows = every_page(limit)
        keys = [(r["created_at"], r["order_id"]) for r in rows]
        assert keys == sorted(keys, reverse=True) and len(rows) == 85 and len(set(keys)) == 85, limit
    for row in every_page(7):
        oid = row["order_id"]
        assert (row["archived"] is not None) == (oid in old)
        assert {**row, "archived": None} == before[oid]
    refunded = {oid for oid, r in before.items() if r["state"] == "refunded"}
    assert {r["order_id"] for r in every_page(4, state="refunded")} == refunded and refunded & set(old)
    owner = before[old[40]]["owner"]   # (the recent ones' owners are old[0..24]'s)
    assert [r["order_id"] for r in every_page(3, user_id=owner)] == [old[40]]
    assert len(every_page(50, pair_id=before[old[0]]["pair_id"])) == 85
    assert every_page(50, pair_id=new_order_id()) == []
    with pytest.raises(ValueError):
        reads.order_page(config, cursor="not-a-cursor")

    listed = run_py(config_path, "orders", "list", "--limit", "100")
    assert listed.returncode == 0 and listed.stderr.strip().endswith("85 orders"), listed
    stored = [("archived" in line.split(), "hot" in line.split()) for line in listed.stdout.splitlines()[1:]]
    assert stored.count((True, False)) == 60 and stored.count((False, True)) == 25, listed.stdout

    state = read_state(0)
    assert state.archived == {"settled": 48, "refunded": 12}
    assert state.orders == {"settled": 68, "refunded": 17}
    families = {f.name: {s.labels["state"]: s.value for s in f.samples} for f in metrics._orders_by_state(state)}
    assert families["mmflow_orders"]["settled"] == 68 and families["mmflow_archived_orders"]["settled"] == 48
    assert families["mmflow_archived_orders"]["running"] == 0


def test_orders_archived_before_the_listing_table_existed_are_listed_by_the_next_run(bulk_db):
    _, cold = bulk_db
    ids = insert_finished_orders(30, closed_from=time.time() - 60 * DAY, spread=DAY)
    assert archive.archive_due(cold, 30 * DAY, 1000).archived == 30
    run("DELETE FROM archived_order_listing")   # as a database archived by the previous release has it
    assert archive.listed(limit=100) == [] and "not in order lists yet" in archive.verify(cold).notes[-1]
    assert archive.archive_due(cold, 30 * DAY, 1000).archived == 0
    assert sorted(oid for _, oid in archive.listed(limit=100)) == sorted(ids) and archive.verify(cold).notes == []


def _config_of_nothing():
    """A config without pairs (the bulk orders' pair is not configured: ids are shown as they are)."""
    from types import SimpleNamespace

    return SimpleNamespace(pairs=[], pair=lambda _id: None, archive=None, source="-")


# ---------------------------------------------------------------- the [archive] table

@pytest.mark.parametrize("table,problem", [
    ({"retention": "30x"}, "archive.retention: must be a duration like"),
    ({"retention": 0}, "archive.retention: must be > 0"),
    ({}, "archive.retention: is required"),
    ({"retention": "30d", "interval": "-1h"}, "archive.interval: must be a duration"),
    ({"retention": "30d", "batch_size": 0}, "archive.batch_size: must be a whole number from 1 to 100000"),
    ({"retention": "30d", "retension": "1d"}, "archive.retension: unknown key; did you mean 'retention'?"),
    ({"retention": "30d", "directory": ""}, "archive.directory: must be a directory path"),
])
def test_bad_archive_values_are_one_line_each(table, problem):
    problems: list[str] = []
    assert parse_archive_settings(table, problems, Path("/etc/mmflow"), "sqlite:////var/m.db") is None
    assert problems == [problems[0]] and problems[0].startswith(problem), problems


def test_archive_settings_and_their_directory():
    problems: list[str] = []
    settings = parse_archive_settings({"retention": "12h", "interval": 0}, problems, Path("/etc/mmflow"),
                                      "sqlite:////var/lib/mmflow/m.db")
    assert problems == [] and settings.retention == 43200 and settings.interval == 0
    assert settings.directory == Path("/var/lib/mmflow/archive")
    relative = parse_archive_settings({"retention": 3600, "directory": "cold"}, problems, Path("/etc/mmflow"),
                                      "postgresql://u@h/db")
    assert relative.directory == Path("/etc/mmflow/cold")
    assert parse_archive_settings({"retention": "30d"}, problems, Path("/x"), "postgresql://u@h/db") is None
    assert problems == ["archive.directory: is required with this database (the archive goes next to an SQLite "
                        "file by default)"]


def test_archive_commands_with_a_bad_or_missing_table_exit_2_with_one_line(tmp_path):
    world = build_world()
    try:
        raw = world.config_dict(tmp_path / "m.db", world.write_keystore(tmp_path / "keystore.json"))
        config_path = tmp_path / "mmflow.toml"
        config_path.write_text(dump_toml(raw))
        missing = run_py(config_path, "archive", "run")
        assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing
        assert "no [archive] table" in missing.stderr
        raw["archive"] = {"retention": "soon"}
        config_path.write_text(dump_toml(raw))
        bad = run_py(config_path, "archive", "verify")
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr, bad
        assert bad.stderr.startswith(f"error: {config_path}: archive.retention: ")
    finally:
        world.fake.stop()


# ---------------------------------------------------------------- the service archives by itself

def test_the_service_archives_old_orders_every_interval_and_they_stay_readable(tmp_path):
    url = database_url(tmp_path / "mmflow.db")
    db = open_database(url)
    try:
        old = insert_finished_orders(120, closed_from=time.time() - 50 * DAY, spread=DAY)
        recent = insert_finished_orders(5, closed_from=time.time() - DAY, spread=0, tag=1)
    finally:
        close_database(db)
        database_proxy.initialize(None)
    world = build_world()
    try:
        archive_table = {"retention": "30d", "interval": 0.2, "batch_size": 50, "directory": str(tmp_path / "cold")}
        with running_mmflow(tmp_path, world, archive=archive_table) as mm:
            wait_until(lambda: ArchivedOrder.select().count() == 120, timeout=60, message="the archiver's rounds")
            assert where_is(old) == (0, 120) and where_is(recent) == (5, 0)
            config = mm.services.config
            for oid in (old[0], old[60], old[-1]):
                assert reads.order_document(config, oid)["archived"]
            assert archive.verify(config.archive.directory).problems == []
    finally:
        world.fake.stop()
