"""The operator's command line for real: `python run.py orders …` / `alerts …` subprocesses against the real
SQLite database while the real service runs (in this process), with the config file the CLI reads written
from the same settings. The CLI runs WITHOUT the exchange keys in its environment: reading and commanding need
only the database."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from domain.memo import encode_market_making
from sim.bridge import world_with_exchange
from sim.world import BTC, BTC_USDT_PAIR, ETH, build_world, default_pairs, dump_toml, new_order_id
from storage import exit_repo, repo
from storage.models import Alert, MoneyMovement, Order, OrderCommand
from storage.statements import order_statement
from tests.databases import database_url, query
from tests.support import running_mmflow, wait_until
from tests.test_flow_funding import exchange_table

ROOT = Path(__file__).resolve().parent.parent
D = Decimal
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
FUNDING = {"poll_interval": 0.05, "retry_delay": 0.1, "withdrawal_timeout": 30, "deposit_timeout": 30,
           "return_timeout": 30, "return_retry_delay": 0.05, "return_max_attempts": 2, "lookup_grace": 0.5}
STRATEGY = {"bid_spread": "0.002", "ask_spread": "0.002", "order_amount": "0.01", "order_levels": 1,
            "order_refresh_time": 1, "order_refresh_tolerance_pct": "0.0005", "filled_order_delay": 1}


# ---------------------------------------------------------------- the CLI as a subprocess

def cli_env() -> dict:
    """The test process's environment without the exchange keys (the service has them, the CLI must not need them)."""
    return {k: v for k, v in os.environ.items() if k not in ("MMF_BINANCE_KEY", "MMF_BINANCE_SECRET")}


@dataclass
class Out:
    code: int
    out: str
    err: str

    def __repr__(self) -> str:  # shown by a failing assert
        return f"Out(code={self.code}, out={self.out!r}, err={self.err!r})"


def cli_start(config_path: Path, *args: str) -> subprocess.Popen:
    group, command = args[0], args[1]
    argv = [sys.executable, "run.py", group, command, *args[2:], "--config", str(config_path)]
    return subprocess.Popen(argv, cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 60) -> Out:
    out, err = proc.communicate(timeout=timeout)
    return Out(proc.returncode, out, err)


def cli(config_path: Path, *args: str) -> Out:
    return finish(cli_start(config_path, *args))


def cli_all(config_path: Path, *calls: tuple[str, ...]) -> list[Out]:
    """Independent calls at once (each spends most of its second importing)."""
    procs = [cli_start(config_path, *call) for call in calls]
    return [finish(p) for p in procs]


def one_error_line(result: Out) -> str:
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result
    return lines[0]


def commands_of(order_id: str) -> list[OrderCommand]:
    return list(OrderCommand.select().where(OrderCommand.order_id == order_id).order_by(OrderCommand.id))


# ---------------------------------------------------------------- one service for the checks that can share it

def pairs() -> list[dict]:
    out = default_pairs()
    for pair in out:
        if pair["id"] == BTC_USDT_PAIR:
            pair["strategy"] = dict(STRATEGY)
    return out


@dataclass
class Service:
    ew: object
    mm: object
    config_path: Path

    def pay(self, base="0.1", quote="5000"):
        pair = self.mm.services.config.pair(BTC_USDT_PAIR)
        user, order_id = self.ew.world.new_user(), new_order_id()
        self.ew.world.pay_invoice(user, pair, order_id, self.ew.world.invoice(pair, D(base), D(quote)))
        return user, order_id

    def running_order(self):
        user, order_id = self.pay()
        self.mm.wait_state(order_id, "running", timeout=30)
        wait_until(lambda: repo.ledger_balances(order_id), timeout=10, message="the order's ledger")
        return user, order_id

    def cli(self, *args: str) -> Out:
        return cli(self.config_path, *args)

    def cli_all(self, *calls: tuple[str, ...]) -> list[Out]:
        return cli_all(self.config_path, *calls)


@pytest.fixture(scope="class")
def svc(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("operator-cli")
    ew = world_with_exchange(deposit_delay=0.1)
    ew.exchange.withdraw_delay = 0.1
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MMF_BINANCE_KEY", ew.api_key)
            mp.setenv("MMF_BINANCE_SECRET", ew.secret)
            settings = {"exchanges": [exchange_table(ew)], "funding": dict(FUNDING), "pairs": pairs(),
                        "strategy": {"tick_interval": 0.1}, "stream": {"slow_interval": 0.2, "fast_interval": 0.05}}
            # The very settings running_mmflow gives the service, as the TOML file the CLI reads.
            raw = ew.world.config_dict(database_url(tmp / "mmflow.db"), tmp / "keystore.json", **settings)
            config_path = tmp / "mmflow.toml"
            config_path.write_text(dump_toml(raw))
            with running_mmflow(tmp, ew.world, **settings) as mm:
                yield Service(ew, mm, config_path)
    finally:
        ew.stop()
        ew.world.fake.stop()


class TestWithTheServiceRunning:

    def test_reads_and_bad_input_need_no_keys_and_queue_nothing(self, svc):
        _, order_id = svc.running_order()
        ghost = new_order_id()
        bad_params = [["k"], ["order_levels="], ["order_levels=2", "order_levels=3"], ["bid_sprad=0.001"],
                      ["order_levels=0"], ["end_at=tomorrow"], ["inventory_skew_enabled=maybe"]]
        results = svc.cli_all(
            ("orders", "list"), ("orders", "show", order_id), ("orders", "show", ghost),
            ("orders", "statement", order_id), ("orders", "statement", ghost),
            ("orders", "resolve", order_id, "--to", "running", "--reason", "why not", "--yes"),
            ("orders", "commands", order_id), ("orders", "pause", ghost), ("orders", "list", "--state", "runing"),
            *[("orders", "set-params", order_id, *p) for p in bad_params])
        listing, show, show_ghost, statement, statement_ghost, resolve, cmds, pause_ghost, typo = results[:9]
        params_results = results[9:]

        # list: a header and one row per order, newest first; the count on stderr.
        assert listing.code == 0, listing
        lines = listing.out.splitlines()
        assert lines[0].split()[:4] == ["ORDER", "STATE", "PAIR", "CREATED"]
        rows = lines[1:]
        assert len(rows) == Order.select().count() and all(len(r.split()) >= 4 for r in rows)
        mine = [r for r in rows if r.startswith(order_id)]
        assert len(mine) == 1 and mine[0].split()[1:3] == ["running", "BTC/USDT"]
        assert ISO_Z.match(mine[0].split()[3]), mine[0]
        assert listing.err.strip() == f"{len(rows)} orders"
        # A misspelt state is bad input, not "0 orders" (which would read as: nothing in that state).
        assert typo.code == 2 and typo.out == "", typo
        assert one_error_line(typo).startswith("error: unknown state 'runing'; one of: payment_pending, ")

        # show: JSON with ISO-8601 UTC times, asset symbols, history, movements, ledger, statement.
        assert show.code == 0, show
        doc = json.loads(show.out)
        assert doc["order_id"] == order_id and doc["state"] == "running" and doc["pair"] == "BTC/USDT"
        assert ISO_Z.match(doc["created_at"]) and doc["payment_deadline"] is None and doc["exit"] is None
        assert {"BTC", "USDT"} <= set(doc["paid"]) and BTC not in doc["paid"]
        assert doc["fees"]["withdrawal_fee_base"].endswith(" BTC")
        assert [h["to"] for h in doc["history"]][-1] == "running"
        assert all(ISO_Z.match(h["at"]) for h in doc["history"])
        withdrawals = [m for m in doc["movements"] if m["kind"] == "withdrawal"]
        assert sorted(m["asset"] for m in withdrawals) == ["BTC", "USDT"]
        assert D(doc["ledger"]["BTC"]) == D("0.1") and D(doc["ledger"]["USDT"]) == D("5000")
        assert doc["statement"]["order_id"] == order_id and doc["statement"]["final"] is False
        assert {a["symbol"] for a in doc["statement"]["assets"]} >= {"BTC", "USDT"}
        assert "holdings" in doc["strategy"]

        # An unknown order: exit 2, one line on stderr, nothing on stdout — for reads and commands alike.
        for result in (show_ghost, statement_ghost, pause_ghost):
            assert result.code == 2 and result.out == "", result
            assert one_error_line(result) == f"error: no order {ghost}"

        # The statement of a running order: what is still held for the owner, per asset.
        assert statement.code == 0, statement
        assert statement.out.startswith(f"Statement of order {order_id} (BTC/USDT) — running")
        assert "still held for the owner" in statement.out and "check (must be 0)" not in statement.out

        # resolve on an order that is not in attention: exit 2 and why, nothing else said.
        assert resolve.code == 2 and resolve.out == "", resolve
        assert one_error_line(resolve) == "error: order is running, not in attention: nothing to resolve"

        # No command for this order yet: the header only.
        assert cmds.code == 0 and cmds.out.splitlines()[0].split() == ["ID", "QUEUED", "(UTC)", "ORDER", "COMMAND",
                                                                       "OUTCOME"]
        assert len(cmds.out.splitlines()) == 1, cmds

        # set-params: every bad input is one clear line, exit 2.
        expected = ["'k' is not key=value", "order_levels= has no value", "order_levels is given twice",
                    "bid_sprad: unknown parameter", "order_levels: 0 must be between 1 and 50", "end_at 'tomorrow' is not an ISO",
                    "inventory_skew_enabled: 'maybe' must be true or false"]
        for result, text, given in zip(params_results, expected, bad_params):
            assert result.code == 2 and result.out == "", (given, result)
            assert text in one_error_line(result), (given, result)
        assert "did you mean 'bid_spread'" in params_results[3].err

        # Nothing of all that reached the command channel.
        assert commands_of(order_id) == [] and commands_of(ghost) == []
        assert repo.strategy_overrides(order_id) == {}
        assert svc.mm.state(order_id) == "running"

    def test_pause_resume_set_params_exit_and_the_settled_statement(self, svc):
        _, order_id = svc.running_order()

        paused = svc.cli("orders", "pause", order_id, "--reason", "a look at the book")
        assert paused.code == 0 and re.search(r": done: paused\b", paused.out), paused
        assert svc.mm.state(order_id) == "paused"
        assert "a look at the book" in svc.mm.order(order_id).state_reason
        again = svc.cli("orders", "pause", order_id)
        assert again.code == 0 and again.out.rstrip().endswith("done: already paused"), again

        resumed = svc.cli("orders", "resume", order_id)
        assert resumed.code == 0 and resumed.out.rstrip().endswith("done: running again"), resumed
        assert svc.mm.state(order_id) == "running"
        still = svc.cli("orders", "resume", order_id)
        assert still.code == 0 and still.out.rstrip().endswith("done: already running"), still

        levels = svc.cli("orders", "set-params", order_id, "order_levels=2")
        assert levels.code == 0 and levels.out.rstrip().endswith("done: order_levels=2"), levels
        assert repo.strategy_overrides(order_id) == {"order_levels": 2}
        # end_at, and a boolean parameter as the command line spells it (true/false).
        end_at = svc.cli("orders", "set-params", order_id, "end_at=2099-01-01T00:00:00Z",
                         "inventory_skew_enabled=false")
        assert end_at.code == 0, end_at
        assert end_at.out.rstrip().endswith("done: end_at 2099-01-01T00:00:00+00:00; inventory_skew_enabled=false")
        assert svc.mm.order(order_id).end_at == 4070908800.0
        assert repo.strategy_overrides(order_id) == {"order_levels": 2, "inventory_skew_enabled": False}

        exited = svc.cli("orders", "exit", order_id, "--reason", "x")
        assert exited.code == 0 and ": done: exiting" in exited.out, exited
        svc.mm.wait_state(order_id, "settled", timeout=60)
        assert order_statement(order_id, svc.mm.services.config).balanced

        # A command the service refuses: exit 1 with its reason.
        refused = svc.cli("orders", "pause", order_id)
        assert refused.code == 1 and refused.out.rstrip().endswith("refused: order is settled"), refused

        text, as_json, cmds, show, listing = svc.cli_all(
            ("orders", "statement", order_id), ("orders", "statement", order_id, "--json"),
            ("orders", "commands", order_id), ("orders", "show", order_id),
            ("orders", "list", "--state", "settled"))
        assert text.code == 0, text
        checks = [line for line in text.out.splitlines() if "check (must be 0)" in line]
        assets = [line.split()[0] for line in text.out.splitlines() if re.match(r"^  \S+ \(", line)]
        assert {"BTC", "USDT"} <= set(assets) and len(checks) == len(assets), text.out
        assert all(line.split()[-1] == "0" for line in checks), checks
        assert as_json.code == 0, as_json
        statement = json.loads(as_json.out)
        assert statement["balanced"] is True and statement["final"] is True and statement["state"] == "settled"
        assert all(D(a["check"]) == 0 for a in statement["assets"])

        assert cmds.code == 0, cmds
        rows = cmds.out.splitlines()[1:]
        assert [r.split()[3] for r in rows] == ["pause", "exit", "set-params", "set-params", "resume", "resume",
                                                "pause", "pause"]  # newest first
        outcomes = [r.split(None, 4)[4] for r in rows]
        assert outcomes[0] == "refused: order is settled"
        assert outcomes[1].startswith("done: exiting")
        assert outcomes[2].startswith("done: end_at 2099-01-01") and outcomes[3] == "done: order_levels=2"
        assert outcomes[4:6] == ["done: already running", "done: running again"]
        assert outcomes[6] == "done: already paused" and outcomes[7].startswith("done: paused")
        assert all(ISO_Z.match(r.split()[1]) for r in rows)

        doc = json.loads(show.out)
        assert doc["state"] == "settled" and doc["statement"]["balanced"] is True
        assert doc["exit"]["by"] == "operator" and doc["exit"]["reason"] == "x" and ISO_Z.match(doc["exit"]["asked_at"])
        assert ISO_Z.match(doc["end_at"]) and doc["end_at"] == "2099-01-01T00:00:00Z"
        assert sorted(m["asset"] for m in doc["movements"] if m["kind"] == "payout") == ["BTC", "USDT"]
        assert listing.code == 0 and any(r.startswith(order_id) for r in listing.out.splitlines()[1:]), listing

    def test_resolve_explains_then_carries_out_with_yes(self, svc):
        _, order_id = svc.running_order()
        svc.ew.exchange.inject_withdrawal_fault("reject", 10, "BTC")
        exited = svc.cli("orders", "exit", order_id, "--reason", "owner asked")
        assert exited.code == 0 and ": done: exiting" in exited.out, exited
        view = svc.mm.wait_state(order_id, "attention", timeout=30)
        assert "refused or failed the withdrawal 2 times" in view.state_reason

        explain, illegal, no_such_state = svc.cli_all(
            ("orders", "resolve", order_id, "--to", "returning_funds", "--reason", "venue fixed"),
            ("orders", "resolve", order_id, "--to", "running", "--reason", "venue fixed", "--yes"),
            ("orders", "resolve", order_id, "--to", "somewhere", "--reason", "venue fixed", "--yes"))
        # Without --yes: the money effect, exit 0, nothing queued.
        assert explain.code == 0, explain
        assert f"order {order_id} is in attention: " in explain.out
        assert "--to returning_funds: mmflow follows the withdrawals from binance again" in explain.out
        assert explain.out.rstrip().endswith("nothing done: add --yes to carry it out")
        # An illegal target: exit 2, the legal ones listed on stderr.
        for result in (illegal, no_such_state):
            assert result.code == 2 and result.out == "", result
            lines = result.err.splitlines()
            assert lines[0].startswith("error: "), result
            legal = [line.split()[1] for line in lines[1:]]
            assert all(line.startswith("  --to ") for line in lines[1:]), result
            assert legal == ["returning_funds", "settled"], result
        assert "running is not a legal target for this order now; legal: returning_funds, settled" in illegal.err
        assert "'somewhere' is not an order state" in no_such_state.err
        assert [c.command for c in commands_of(order_id)] == ["exit"]
        assert svc.mm.state(order_id) == "attention"

        # The venue works again; the refused leg gets a fresh retry budget; the operator confirms.
        svc.ew.exchange.withdrawal_faults.clear()
        btc = next(m for m in exit_repo.returns_of(order_id) if m.exchange_code == "BTC")
        MoneyMovement.update(rejections=0).where(MoneyMovement.request_id == btc.request_id).execute()
        done = svc.cli("orders", "resolve", order_id, "--to", "returning_funds", "--reason", "venue fixed", "--yes")
        assert done.code == 0, done
        assert "--to returning_funds: mmflow follows" in done.out
        assert ": done: returning_funds — mmflow follows the withdrawals from binance again" in done.out
        svc.mm.wait_state(order_id, "settled", timeout=60)
        assert order_statement(order_id, svc.mm.services.config).balanced
        history = repo.order_history(order_id)
        assert any(h.to_state == "returning_funds" and "resolved by an operator: venue fixed" in h.reason
                   for h in history)

    def test_alerts_list_and_ack(self, svc):
        snap = svc.ew.world.fake.deposit(svc.ew.world.bot_id, ETH, "0.5")
        alert = wait_until(lambda: Alert.get_or_none(Alert.subject == snap["snapshot_id"]), timeout=10,
                           message="an alert for the deposit without a memo")
        listing, open_only, ghost = svc.cli_all(("alerts", "list"), ("alerts", "list", "--open"),
                                                ("alerts", "ack", "999999"))
        for result in (listing, open_only):
            assert result.code == 0, result
            lines = result.out.splitlines()
            assert lines[0].split()[:5] == ["ID", "RAISED", "(UTC)", "STATE", "KIND"]
            row = next(line for line in lines[1:] if line.split()[0] == str(alert.id))
            assert row.split()[2:4] == ["OPEN", alert.kind] and snap["snapshot_id"] in row
            assert ISO_Z.match(row.split()[1])
            assert result.err.strip() == f"{len(lines) - 1} alerts"
        assert ghost.code == 2 and ghost.out == "" and one_error_line(ghost) == "error: no alert 999999", ghost

        acked = svc.cli("alerts", "ack", str(alert.id))
        assert acked.code == 0 and acked.out.startswith(f"alert {alert.id} acknowledged"), acked
        assert Alert.get_by_id(alert.id).acked_at is not None
        listing, open_only = svc.cli_all(("alerts", "list"), ("alerts", "list", "--open"))
        assert str(alert.id) not in [line.split()[0] for line in open_only.out.splitlines()[1:]], open_only
        row = next(line for line in listing.out.splitlines()[1:] if line.split()[0] == str(alert.id))
        assert row.split()[2] == "acked"


# ---------------------------------------------------------------- no service running

def test_commands_wait_for_the_service_and_are_carried_out_when_it_runs(tmp_path):
    world = build_world()
    try:
        config_path = tmp_path / "mmflow.toml"
        raw = world.config_dict(database_url(tmp_path / "mmflow.db"), tmp_path / "keystore.json")
        config_path.write_text(dump_toml(raw))
        order_id = new_order_id()
        with running_mmflow(tmp_path, world) as mm:
            pair = mm.services.config.pair(BTC_USDT_PAIR)
            user = world.new_user()
            invoice = world.invoice(pair, D("0.1"), D("5000"))
            world.pay(user, BTC, invoice[BTC], encode_market_making(BTC_USDT_PAIR, order_id))  # half paid
            wait_until(lambda: mm.order(order_id) is not None and mm.order(order_id).user_id == user, timeout=10,
                       message="the order's first payment")
        # The service is stopped: a command is queued and waits for it.
        waited, queued = cli_all(config_path, ("orders", "exit", order_id, "--wait", "1", "--reason", "no service"),
                                 ("orders", "exit", order_id, "--wait", "0"))
        assert waited.code == 75, waited
        assert "queued: exit order" in waited.out and "not carried out within 1s" in waited.out
        assert "is the service running? It will be carried out when it runs" in waited.out
        assert queued.code == 0, queued
        assert re.fullmatch(rf"command \d+ queued: exit order {order_id} \(state payment_pending\)\n", queued.out)
        rows = query(database_url(tmp_path / "mmflow.db"),
                     "SELECT command, processed_at, result FROM order_command WHERE order_id = ?", (order_id,))
        assert rows == [("exit", None, None), ("exit", None, None)]
        pending = cli(config_path, "orders", "commands", order_id)
        assert pending.out.count("pending (not carried out yet)") == 2, pending

        # The service starts again and carries them out.
        with running_mmflow(tmp_path, world) as mm:
            wait_until(lambda: all(c.result for c in commands_of(order_id)), timeout=15,
                       message="the queued commands carried out")
            results = [c.result for c in commands_of(order_id)]
            assert results[0] == "done: the funds never left Mixin; every payment is being refunded", results
            assert results[1].startswith(("done: already exiting", "refused: order is")), results
            mm.wait_state(order_id, "refunded", timeout=20)
            assert world.fake.balance(user, BTC) == 0
    finally:
        world.fake.stop()


def test_reading_commands_need_neither_the_exchange_library_nor_a_known_ccxt_class(tmp_path):
    """`orders …` only uses the database: it starts without importing ccxt (or the API's flask), and a
    config whose account names a ccxt class this ccxt does not have still serves it (`serve` refuses it)."""
    world = build_world()
    try:
        raw = world.config_dict(tmp_path / "mmflow.db", tmp_path / "keystore.json")
        raw["exchanges"] = [{"id": "binance", "ccxt": "no-such-venue", "api_key_env": "MMF_UNSET_KEY",
                             "secret_env": "MMF_UNSET_SECRET"}]
        config_path = tmp_path / "mmflow.toml"
        config_path.write_text(dump_toml(raw))
        probe = ("import runpy, sys\n"
                 "try:\n"
                 "    runpy.run_path('run.py', run_name='__main__')\n"
                 "finally:\n"
                 "    print(sorted(m for m in ('ccxt', 'flask', 'prometheus_client') if m in sys.modules),"
                 " file=sys.stderr)\n")
        listed = subprocess.run([sys.executable, "-c", probe, "orders", "list", "--config", str(config_path)],
                                cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.splitlines()[0].split()[:4] == ["ORDER", "STATE", "PAIR", "CREATED"]
        assert listed.stderr.splitlines()[-2:] == ["0 orders", "[]"], listed.stderr
    finally:
        world.fake.stop()
