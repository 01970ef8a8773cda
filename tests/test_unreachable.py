"""An unreachable exchange or Mixin at start is not a crash, and no secret is ever printed.

`python run.py serve` subprocesses against closed loopback ports and the fakes: the service stays up,
says so once per retry window, raises an alert, funds and quotes nothing on an account it has not
reconciled, recovers by itself when the exchange comes back; SIGTERM ends it with 0. Every byte it
wrote (stdout, stderr, the debug log, the database) is searched for every secret value. The exit 70
paths (the root supervisor giving up, a start failure) print one CRITICAL line and no traceback.
"""
from __future__ import annotations

import base64
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from loguru import logger
from nacl.signing import SigningKey

from actors.outage import Outage
from actors.supervisor import ChildSpec, StartFailed, SupervisedActor, Supervisor
from domain.config import parse_config
from integrations.mixin.keystore import parse_keystore
from integrations.redaction import (
    MASK,
    RedactingStream,
    Redactor,
    patch_record,
    secrets_of,
)
from sim.bridge import world_with_exchange
from sim.world import (
    BTC,
    BTC_USDT_PAIR,
    build_world,
    default_pairs,
    dump_toml,
    new_order_id,
)
from tests.databases import database_text, database_url, hold_write_locks, on_postgres, query, query_errors
from tests.support import start_service, wait_until

ROOT = Path(__file__).resolve().parent.parent
FAST_FUNDING = {"poll_interval": 0.05, "retry_delay": 0.1, "withdrawal_timeout": 60, "deposit_timeout": 60}


# ---------------------------------------------------------------------------- helpers


def closed_port() -> int:
    """A loopback port nobody listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_env(tmp_path: Path | None = None, **extra: str) -> dict:
    """The service's environment: debug log where the config puts it. That is beside an SQLite database; on
    PostgreSQL (no file to be beside) a test that reads it gives ``tmp_path`` to have it in the same place."""
    env = dict(os.environ)
    for name in ("MMFLOW_DEBUG", "MMFLOW_DEBUG_LOG", "MMFLOW_CRASH_AT"):
        env.pop(name, None)
    if tmp_path is not None and on_postgres():
        env["MMFLOW_DEBUG_LOG"] = str(tmp_path / "mmflow-debug.log")
    env.update(extra)
    return env


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def rows(db_url: str, sql: str, args: tuple = ()) -> list[tuple]:
    try:
        return query(db_url, sql, args)
    except query_errors():
        return []


def alerts(db_url: str, kind: str) -> list[tuple]:
    return rows(db_url, "SELECT subject, resolved, message FROM alert WHERE kind = ?", (kind,))


def write_secret(tmp_path: Path, name: str, value: str) -> str:
    path = tmp_path / name
    path.write_text(value + "\n")
    path.chmod(0o600)
    return str(path)


def legacy_keystore() -> tuple[dict, list[str]]:
    """A legacy-format keystore (private_key, pin_token, pin) and its secret fields as written."""
    seed = os.urandom(32)
    private_key = base64.urlsafe_b64encode(seed + bytes(SigningKey(seed).verify_key)).decode().rstrip("=")
    pin_token = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    pin = f"{secrets.randbelow(900000) + 100000}"
    doc = {"client_id": "2f2b7d1c-7e8e-4d6b-9d3c-0b7f1e0c9a11", "session_id": "7a3c9e52-1f0b-4c1a-8f6e-2d4b8c0e5a77",
           "private_key": private_key, "pin_token": pin_token, "pin": pin}
    return doc, [private_key, pin_token, pin, seed.hex()]


def assert_no_secret(tmp_path: Path, values: dict[str, str]) -> None:
    """No secret value in anything the service wrote: its output, the debug log, the database."""
    written = [p for p in tmp_path.iterdir()
               if p.name.startswith(("service", "mmflow-debug", "mmflow.db")) and p.is_file()]
    assert any(p.name == "service.log" for p in written)
    contents = {path.name: path.read_bytes() for path in written}
    db_url = database_url(tmp_path / "mmflow.db")
    if not db_url.startswith("sqlite:///"):  # a PostgreSQL database: every row of every table
        contents["the database"] = database_text(db_url).encode()
    for where, data in contents.items():
        for name, value in values.items():
            assert value.encode() not in data, f"the {name} appears in {where}"


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=30)


def warnings_about(log: str, what: str) -> list[str]:
    return [line for line in log.splitlines() if " WARNING " in line and what in line]


# ---------------------------------------------------------------------------- (a) exchange unreachable


@pytest.mark.timeout(150)
def test_unreachable_exchange_keeps_the_service_up_orders_wait_and_no_secret_is_printed(tmp_path):
    world = build_world()
    proc = None
    try:
        key, secret = f"SECRET-KEY-123-{secrets.token_hex(8)}", f"SECRET-SECRET-456-{secrets.token_hex(16)}"
        db_url = database_url(tmp_path / "mmflow.db")
        raw = world.config_dict(db_url, world.write_keystore(tmp_path / "keystore.json"))
        raw["funding"] = FAST_FUNDING
        raw["exchanges"] = [{"id": "binance", "ccxt": "binance",
                             "api_key_file": write_secret(tmp_path, "binance.key", key),
                             "secret_file": write_secret(tmp_path, "binance.secret", secret),
                             "urls": {"api": f"http://127.0.0.1:{closed_port()}"}}]
        config_path = tmp_path / "mmflow.toml"
        config_path.write_text(dump_toml(raw))
        log_path = tmp_path / "service.log"
        proc = start_service(config_path, log_path, service_env())

        pair = parse_config(raw).pair(BTC_USDT_PAIR)
        order_id = new_order_id()
        world.pay_invoice(world.new_user(), pair, order_id, world.invoice(pair, Decimal("0.1"), Decimal(5000)))

        def windows_since_running() -> int:
            log = text(log_path)
            _, running, after = log.partition("mmflow running")
            return len(warnings_about(after, "exchange account binance unreachable")) if running else 0

        wait_until(lambda: windows_since_running() >= 3, timeout=60, interval=0.1,
                   message="warnings over a few retry windows after the start")
        wait_until(lambda: alerts(db_url, "exchange_unreachable"), timeout=30, interval=0.1,
                   message="the exchange_unreachable alert")
        wait_until(lambda: any("is starting" in r[1] for r in rows(
            db_url, "SELECT state, state_reason FROM orders WHERE order_id = ?", (order_id,))),
            timeout=30, interval=0.1, message="the paid order waiting for its account")
        assert proc.poll() is None, "the service must stay up"

        (subject, resolved, message), = alerts(db_url, "exchange_unreachable")
        assert subject == "binance" and resolved == 0 and "NetworkError" in message
        state, reason = rows(db_url, "SELECT state, state_reason FROM orders WHERE order_id = ?", (order_id,))[0]
        assert state == "payment_complete", reason  # nothing withdrawn to an unreconciled account
        assert rows(db_url, "SELECT count(*) FROM exchange_order") == [(0,)]  # nothing quoted
        assert rows(db_url, "SELECT count(*) FROM money_movement WHERE kind = 'withdrawal'") == [(0,)]

        log = text(log_path)
        warnings = warnings_about(log, "exchange account binance unreachable")
        attempts = int(re.search(r"; (\d+) failed attempt", warnings[-1]).group(1))
        assert attempts > len(warnings)  # one line per retry window, not one per attempt
        assert all("UnknownOutcome: NetworkError" in line for line in warnings)  # the reason, class and message
        assert proc.poll() is None
        assert stop(proc) == 0
        log = text(log_path)
        assert "Traceback" not in log and "ActorDeadError" not in log
        assert "CRITICAL" not in log
        assert_no_secret(tmp_path, {
            "exchange API key": key, "exchange secret": secret,
            "session private key": world.keystore_dict["session_private_key"],
            "spend private key": world.keystore_dict["spend_private_key"],
        })
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        world.fake.stop()


# ---------------------------------------------------------------------------- (b) Mixin unreachable too


@pytest.mark.timeout(150)
def test_unreachable_mixin_and_exchange_keep_the_service_up_and_no_secret_is_printed(tmp_path):
    key, secret = f"SECRET-KEY-789-{secrets.token_hex(8)}", f"SECRET-SECRET-012-{secrets.token_hex(16)}"
    evm_key = "0x" + secrets.token_hex(32)
    ro_key, ro_secret = f"SECRET-ROKEY-{secrets.token_hex(8)}", f"SECRET-ROSECRET-{secrets.token_hex(12)}"
    keystore, keystore_secrets = legacy_keystore()
    keystore_path = tmp_path / "keystore.json"
    keystore_path.write_text(json.dumps(keystore))
    db_url = database_url(tmp_path / "mmflow.db")
    raw = {"database": {"url": db_url},
           "mixin": {"api_base": f"http://127.0.0.1:{closed_port()}", "keystore": str(keystore_path),
                     "poll_interval": 0.05, "backoff_base": 0.01, "backoff_max": 0.2, "request_timeout": 2.0},
           "payments": {"market_making_fee_percent": "0.1"},
           "supervision": {"backoff_min": 0.02, "backoff_max": 0.5},
           "pairs": default_pairs()}
    raw["exchanges"] = [{"id": "binance", "ccxt": "binance",
                         "api_key_file": write_secret(tmp_path, "binance.key", key),
                         "secret_file": write_secret(tmp_path, "binance.secret", secret),
                         "urls": {"api": f"http://127.0.0.1:{closed_port()}"}}]
    hufi_down = f"http://127.0.0.1:{closed_port()}"
    raw["hufi"] = {"enabled": True, "launcher_url": hufi_down, "oracle_url": hufi_down, "retry_delay": 0.2,
                   "retry_max_delay": 1.0, "refresh_interval": 1.0, "request_timeout": 1.0, "max_attempts": 1,
                   "evm_private_key_file": write_secret(tmp_path, "hufi-evm.key", evm_key),
                   "exchange_api_keys": {"binance": {"api_key_file": write_secret(tmp_path, "ro.key", ro_key),
                                                     "secret_file": write_secret(tmp_path, "ro.secret", ro_secret)}}}
    config_path = tmp_path / "mmflow.toml"
    config_path.write_text(dump_toml(raw))
    log_path = tmp_path / "service.log"
    proc = start_service(config_path, log_path, service_env(tmp_path))
    try:
        wait_until(lambda: len(warnings_about(text(log_path), "Mixin API http://127.0.0.1")) >= 3, timeout=60,
                   interval=0.1, message="Mixin warnings over a few retry windows")
        wait_until(lambda: len(warnings_about(text(log_path), "exchange account binance unreachable")) >= 3,
                   timeout=60, interval=0.1, message="exchange warnings")
        wait_until(lambda: alerts(db_url, "mixin_unreachable") and alerts(db_url, "exchange_unreachable"),
                   timeout=30, interval=0.1, message="both alerts")
        assert proc.poll() is None, "the service must stay up"
        (subject, resolved, message), = alerts(db_url, "mixin_unreachable")
        assert subject == raw["mixin"]["api_base"] and resolved == 0 and "MixinTransportError" in message
        log = text(log_path)
        assert "attempt 1/5 failed" not in log  # the client's per-attempt lines stay in the debug log
        assert "attempt 1/5 failed" in text(tmp_path / "mmflow-debug.log")
        mixin_warnings = warnings_about(log, "Mixin API http://127.0.0.1")
        attempts = int(re.search(r"; (\d+) failed attempt", mixin_warnings[-1]).group(1))
        assert attempts >= len(mixin_warnings)
        assert stop(proc) == 0
        log = text(log_path)
        assert "Traceback" not in log and "CRITICAL" not in log
        values = {"exchange API key": key, "exchange secret": secret, "HuFi EVM key": evm_key,
                  "HuFi EVM key without 0x": evm_key[2:], "HuFi read-only key": ro_key,
                  "HuFi read-only secret": ro_secret}
        values.update({f"keystore field {i}": v for i, v in enumerate(keystore_secrets)})
        assert_no_secret(tmp_path, values)
    finally:
        if proc.poll() is None:
            proc.kill()


# ---------------------------------------------------------------------------- (c) the exchange comes back


@pytest.mark.timeout(180)
def test_an_exchange_reachable_later_is_published_then_orders_fund_and_quote(tmp_path):
    from tests.test_flow_strategy import pairs_with_strategy

    ew = world_with_exchange(deposit_delay=0.1)
    proc = None
    try:
        url, options = ew.exchange.url, ew.ccxt_config()["options"]
        ew.exchange.stop()  # down at start: connection refused on its port
        db_url = database_url(tmp_path / "mmflow.db")
        raw = ew.world.config_dict(db_url, ew.world.write_keystore(tmp_path / "keystore.json"))
        raw["funding"] = FAST_FUNDING
        raw["pairs"] = pairs_with_strategy()
        raw["strategy"] = {"tick_interval": 0.1}
        raw["stream"] = {"slow_interval": 0.2, "fast_interval": 0.05}
        raw["exchanges"] = [{"id": "binance", "ccxt": "binance",
                             "api_key_file": write_secret(tmp_path, "binance.key", ew.api_key),
                             "secret_file": write_secret(tmp_path, "binance.secret", ew.secret),
                             "urls": {"api": url}, "options": options}]
        config_path = tmp_path / "mmflow.toml"
        config_path.write_text(dump_toml(raw))
        log_path = tmp_path / "service.log"
        proc = start_service(config_path, log_path, service_env())
        pair = parse_config(raw).pair(BTC_USDT_PAIR)
        order_id = new_order_id()
        ew.world.pay_invoice(ew.world.new_user(), pair, order_id,
                             ew.world.invoice(pair, Decimal("0.1"), Decimal(5000)))
        wait_until(lambda: alerts(db_url, "exchange_unreachable"), timeout=60, interval=0.1,
                   message="the exchange_unreachable alert")
        wait_until(lambda: any("is starting" in r[0] for r in rows(
            db_url, "SELECT state_reason FROM orders WHERE order_id = ?", (order_id,))),
            timeout=30, interval=0.1, message="the order waiting for its account")

        ew.exchange.start()  # back, on the same port
        wait_until(lambda: "exchange account binance reachable again" in text(log_path), timeout=30,
                   interval=0.1, message="recovery logged")
        wait_until(lambda: ("running",) in rows(db_url, "SELECT state FROM orders WHERE order_id = ?",
                                                (order_id,)),
                   timeout=60, interval=0.1, message="the order funded and running")
        wait_until(lambda: rows(db_url, "SELECT count(*) FROM exchange_order WHERE order_id = ? AND state IN "
                                         "('accepted', 'partially_filled')", (order_id,))[0][0] > 0,
                   timeout=30, interval=0.1, message="the order quoting")
        (subject, resolved, _message), = alerts(db_url, "exchange_unreachable")
        assert subject == "binance" and resolved == 1
        log = text(log_path)
        assert "exchange gateway binance (binance) ready" in log
        assert proc.poll() is None
        assert stop(proc) == 0
        assert "Traceback" not in text(log_path)
        assert_no_secret(tmp_path, {"exchange API key": ew.api_key, "exchange secret": ew.secret})
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        ew.stop()


# ---------------------------------------------------------------------------- (d) redaction


def test_redactor_masks_every_form_of_a_secret():
    seed = bytes(range(32))
    r = Redactor(["SECRET-KEY-123456", seed, "abc", "pa ss/wörd!"])
    assert len(r) > 0 and "SECRET" not in repr(r)
    assert r.redact("key=SECRET-KEY-123456&x=1") == f"key={MASK}&x=1"
    assert r.redact(f"seed {seed.hex()} / {seed.hex().upper()}") == f"seed {MASK} / {MASK}"
    assert r.redact(base64.urlsafe_b64encode(seed).decode().rstrip("=")) == MASK
    assert r.redact("password pa%20ss%2Fw%C3%B6rd%21 in a URL") == f"password {MASK} in a URL"
    assert r.redact(json.dumps({"k": "pa ss/wörd!"})) == '{"k": "' + MASK + '"}'
    assert r.redact("abc is too short to be a secret") == "abc is too short to be a secret"
    assert r.redact("Authorization: Bearer eyJhbGciOiJFZERTQSJ9.eyJ1aWQiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl") \
        == f"Authorization: Bearer {MASK}"
    assert r.redact(None) is None and r.redact(12) == 12


def test_the_log_patcher_masks_secrets_in_message_exception_and_extra():
    from integrations import redaction

    secret = f"SECRET-KEY-{secrets.token_hex(6)}"
    redaction.add_secrets([secret])
    out: list[str] = []
    records: list[dict] = []
    stream = RedactingStream(type("Sink", (), {"write": lambda self, s: out.append(s), "flush": lambda self: None})())
    sink_id = logger.add(stream, format="{message} {extra} {exception}", level="DEBUG", diagnose=True,
                         backtrace=True)
    record_sink = logger.add(lambda m: records.append(m.record), level="DEBUG")
    log = logger.patch(patch_record)
    try:
        log.bind(api_key=secret, nested={"headers": {"X-MBX-APIKEY": secret}}).warning("using {}", secret)
        try:
            headers = {"X-MBX-APIKEY": secret}  # noqa: F841 - a local that diagnose would print
            raise RuntimeError(f"binance GET https://x/api?apiKey={secret} failed")
        except RuntimeError:
            log.exception("request failed")
    finally:
        logger.remove(sink_id)
        logger.remove(record_sink)
    written = "".join(out)
    assert secret not in written and written.count(MASK) >= 4
    assert "Traceback" in written and "RuntimeError" in written  # the traceback itself is kept, masked
    for record in records:
        assert secret not in record["message"] and secret not in str(record["extra"])
        if record["exception"] is not None:
            assert secret not in str(record["exception"].value)
            assert type(record["exception"].value).__name__ == "RuntimeError"
            assert record["extra"]["exc_note"] == f" | RuntimeError: binance GET https://x/api?apiKey={MASK} failed"


def test_secrets_of_collects_exchange_keystore_hufi_and_database_secrets(tmp_path):
    world = build_world()
    try:
        raw = world.config_dict(tmp_path / "x.db", world.write_keystore(tmp_path / "keystore.json"))  # not opened
        raw["exchanges"] = [{"id": "binance", "ccxt": "binance",
                             "api_key_file": write_secret(tmp_path, "k", "SECRET-KEY-abcdef"),
                             "secret_file": write_secret(tmp_path, "s", "SECRET-SECRET-abcdef")}]
        raw["hufi"] = {"enabled": True, "evm_private_key_file": write_secret(tmp_path, "evm", "0x" + "ab" * 32)}
        config = parse_config(raw)
        found = secrets_of(config, world.keystore)
        r = Redactor(found)
        for value in ("SECRET-KEY-abcdef", "SECRET-SECRET-abcdef", "ab" * 32, "0x" + "ab" * 32,
                      world.keystore_dict["session_private_key"], world.keystore_dict["spend_private_key"]):
            assert r.redact(f"[{value}]") == f"[{MASK}]", value
        assert r.redact(world.keystore_dict["app_id"]) == world.keystore_dict["app_id"]  # not a secret
        doc, legacy = legacy_keystore()
        r = Redactor(secrets_of(config, parse_keystore(doc), raw_keystore=doc))
        assert all(r.redact(v) == MASK for v in legacy)
    finally:
        world.fake.stop()


# ---------------------------------------------------------------------------- outage reporting, start failures


def test_outage_warns_once_per_window_opens_reopens_and_resolves_its_alert(tmp_path):
    from types import SimpleNamespace

    from storage.db import open_database
    from storage.models import Alert, database_proxy
    from storage.writer import Writer

    db = open_database(database_url(tmp_path / "o.db"))
    writer = Writer(db).start()
    lines: list[tuple[str, str]] = []
    sink = logger.add(lambda m: lines.append((m.record["level"].name, m.record["message"])), level="DEBUG")
    now = [100.0]
    try:
        outage = Outage(SimpleNamespace(writer=writer, clock=time.time), subject="acct", kinds=("x_down", "x_auth"),
                        what="thing acct", warn_interval=10.0, monotonic=lambda: now[0])
        for _ in range(5):  # five attempts within one window: one warning
            outage.failed("OSError: refused", retry_in=1.0)
            now[0] += 1.0
        now[0] += 10.0
        outage.failed("OSError: refused", retry_in=1.0)  # the next window
        warned = [m for lvl, m in lines if lvl == "WARNING" and m.startswith("thing acct unreachable")]
        assert len(warned) == 2 and "6 failed attempt(s)" in warned[1]
        row = Alert.get((Alert.kind == "x_down") & (Alert.subject == "acct"))
        assert not row.resolved and "OSError: refused" in row.message
        assert outage.recovered() is True and not outage.down
        assert Alert.get_by_id(row.id).resolved
        assert any(lvl == "INFO" and "reachable again" in m for lvl, m in lines)
        writer.run(lambda: Alert.update(acked_at=1.0).where(Alert.id == row.id).execute())
        outage.failed("OSError: refused again", retry_in=1.0)  # a new outage reopens the same row
        again = Alert.get_by_id(row.id)
        assert not again.resolved and again.acked_at is None and "again" in again.message
        assert Alert.select().count() == 1
    finally:
        logger.remove(sink)
        writer.stop()
        db.close()
        database_proxy.initialize(None)


class _Fails(SupervisedActor):
    def setup(self) -> None:
        raise RuntimeError("cannot open SECRET-nothing")


def test_wait_started_says_why_a_nested_start_failed():
    from actors.system import wait_started

    def inner(sup, cid):
        return wait_started(Supervisor.start(cid, [ChildSpec("leaf", lambda s, c: wait_started(
            _Fails.start(supervisor=s, child_id=c)))], supervisor=sup, child_id=cid, sweep_interval=None))

    with pytest.raises(StartFailed) as caught:
        wait_started(Supervisor.start("root", [ChildSpec("inner", inner)], sweep_interval=None))
    assert str(caught.value) == ("child inner did not start: child leaf did not start: RuntimeError: cannot open "
                                 "SECRET-nothing")


# ---------------------------------------------------------------------------- (e) exit 70


def critical_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if " CRITICAL " in line]


@pytest.mark.timeout(120)
def test_root_supervisor_giving_up_exits_70_with_one_critical_line_and_no_traceback(tmp_path):
    world = build_world()
    proc = None
    holder = None
    try:
        db_url = database_url(tmp_path / "mmflow.db")
        raw = world.config_dict(db_url, world.write_keystore(tmp_path / "keystore.json"),
                                supervision={"intensity": 0}, database={"busy_timeout": 0.2})
        config_path = tmp_path / "mmflow.toml"
        config_path.write_text(dump_toml(raw))
        log_path = tmp_path / "service.log"
        proc = start_service(config_path, log_path, service_env(tmp_path))
        wait_until(lambda: "mmflow running" in text(log_path), timeout=60, interval=0.1, message="started")
        # The database refuses every write from now on: the poller's next page cannot be stored, the poller
        # dies, and with intensity 0 the root supervisor gives up at once.
        holder = hold_write_locks(db_url)
        world.pay(world.new_user(), BTC, "0.001", "hello")
        assert proc.wait(timeout=60) == 70
    finally:
        if holder is not None:
            holder.close()  # rolls back: the locks go
        if proc is not None and proc.poll() is None:
            proc.kill()
        world.fake.stop()
    log = text(log_path)
    critical = critical_lines(log)
    assert len(critical) == 1, critical
    assert "supervisor root gave up" in critical[0]
    assert "Traceback" not in log
    assert "Traceback" in text(tmp_path / "mmflow-debug.log")  # where the tracebacks went


START_FAILURE = """
import sys
import run  # patches gevent first, as `python run.py` does
import actors.treasury

key = open(sys.argv[2]).read().strip()

def setup(self):
    raise RuntimeError(f"cannot use the key {key}")

actors.treasury.Treasury.setup = setup
sys.exit(run.main(["serve", "--config", sys.argv[1]]))
"""


@pytest.mark.timeout(120)
def test_a_start_failure_exits_70_with_one_critical_line_and_no_traceback(tmp_path):
    world = build_world()
    try:
        key = f"SECRET-KEY-{secrets.token_hex(8)}"
        raw = world.config_dict(database_url(tmp_path / "mmflow.db"),
                                world.write_keystore(tmp_path / "keystore.json"))
        raw["exchanges"] = [{"id": "binance", "ccxt": "binance",
                             "api_key_file": write_secret(tmp_path, "binance.key", key),
                             "secret_file": write_secret(tmp_path, "binance.secret", "SECRET-SECRET-0000"),
                             "urls": {"api": f"http://127.0.0.1:{closed_port()}"}}]
        config_path = tmp_path / "mmflow.toml"
        config_path.write_text(dump_toml(raw))
        proc = subprocess.run([sys.executable, "-c", START_FAILURE, str(config_path), str(tmp_path / "binance.key")],
                              cwd=ROOT, env=service_env(tmp_path), capture_output=True, text=True, timeout=90)
    finally:
        world.fake.stop()
    (tmp_path / "service.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 70, proc.stderr[-3000:]
    critical = critical_lines(proc.stderr)
    assert len(critical) == 1, critical
    assert critical[0].endswith("mmflow cannot start: child treasury did not start: RuntimeError: cannot use the "
                                f"key {MASK}")
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "Traceback" in text(tmp_path / "mmflow-debug.log")
    assert_no_secret(tmp_path, {"exchange API key": key})
