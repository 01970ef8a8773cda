"""`python run.py serve --config X` on broken configs, keystores and databases: always exit 2, nothing on
stdout, one `error: <config file>: <key>: <what>` line on stderr per problem (each naming its culprit),
never a traceback, never a secret.

Every case starts from one valid config (``base``: every file it references written, its secrets
recognisable: ``SECRET-...``) and breaks one thing (a few break several, to see every problem reported at
once). All cases run as concurrent subprocesses (a module fixture), then each is asserted on its own.

The databases here are SQLite files on every run (also under MMFLOW_TEST_DATABASE_URL): the cases are about the
config file's own semantics — a path relative to it, a directory that cannot be created, a file that is not a
database, ``:memory:`` — which are SQLite's; PostgreSQL's refusals are in test_keystore_and_database_errors.py.
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from integrations.mixin.keystore import generate_keystore
from sim.world import dump_toml

ROOT = Path(__file__).resolve().parent.parent
PAIR = "0776b00f-95c0-46f9-85e4-7b8e7ca51e94"
BTC = "c6d0c728-2624-429b-8e0d-d9d19b6592fa"
USDT = "4d8c508b-91c5-375b-92b0-ee702ed2dac5"

KEYSTORE = generate_keystore()
EXCHANGE_KEY, EXCHANGE_SECRET = "SECRET-abc123", "SECRET-def456"
ENV_SECRET = "SECRET-env-789"          # always in the environment (MMF_TEST_ENV_SECRET) of every case
HUFI_EVM = "SECRET-hufi-evm-" + "1f" * 24
HUFI_RO_KEY, HUFI_RO_SECRET = "SECRET-ro-key", "SECRET-ro-secret"
PG_PASSWORD = "SECRET-pgpass"
SECRETS = [EXCHANGE_KEY, EXCHANGE_SECRET, ENV_SECRET, HUFI_EVM, HUFI_RO_KEY, HUFI_RO_SECRET, PG_PASSWORD,
           KEYSTORE["session_private_key"], KEYSTORE["spend_private_key"], "SECRET"]


# ------------------------------------------------------------------------------ the valid starting point

def base_raw() -> dict:
    return {
        "database": {"url": "sqlite:///data/mmflow.db"},
        "mixin": {"api_base": "http://127.0.0.1:9", "keystore": "secrets/keystore.json"},
        "payments": {"market_making_fee_percent": "0.1"},
        "exchanges": [{"id": "binance", "ccxt": "binance", "api_key_file": "secrets/exchange.key",
                       "secret_file": "secrets/exchange.secret", "urls": {"api": "http://127.0.0.1:9"}}],
        "hufi": {"evm_private_key_file": "secrets/hufi-evm.key",
                 "exchange_api_keys": {"binance": {"api_key_file": "secrets/ro.key",
                                                   "secret_file": "secrets/ro.secret"}}},
        "pairs": [{"id": PAIR, "symbol": "BTC/USDT", "exchange": "binance", "base_asset_id": BTC,
                   "quote_asset_id": USDT, "min_base_amount": "0.001", "max_base_amount": "10",
                   "min_quote_amount": "10",
                   "strategy": {"bid_spread": "0.0015", "ask_spread": "0.0015", "order_amount": "0.004"}}],
    }


def write_secrets(d: Path) -> None:
    secrets = d / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    (secrets / "keystore.json").write_text(json.dumps(KEYSTORE))
    for name, value in (("exchange.key", EXCHANGE_KEY), ("exchange.secret", EXCHANGE_SECRET),
                        ("hufi-evm.key", HUFI_EVM), ("ro.key", HUFI_RO_KEY), ("ro.secret", HUFI_RO_SECRET)):
        (secrets / name).write_text(value + "\n")


@dataclass
class Setup:
    """What one case runs: the config path given on the command line, environment changes, extra args."""
    d: Path
    config: Path
    env: dict = field(default_factory=dict)
    args: tuple = ()


def with_raw(change: Callable[[dict], None] | None = None, *, files: Callable[[Path], None] | None = None,
             env: dict | None = None) -> Callable[[Path], Setup]:
    """A case: the base config, changed by ``change`` (in place), extra files written by ``files``."""
    def setup(d: Path) -> Setup:
        write_secrets(d)
        raw = base_raw()
        if change:
            change(raw)
        if files:
            files(d)
        path = d / "mmflow.toml"
        path.write_text(dump_toml(raw))
        return Setup(d, path, dict(env or {}))
    return setup


def with_text(text: str | bytes, name: str = "mmflow.toml") -> Callable[[Path], Setup]:
    def setup(d: Path) -> Setup:
        write_secrets(d)
        path = d / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return Setup(d, path)
    return setup


def set_in(section: str, key: str, value) -> Callable[[dict], None]:
    def change(raw: dict) -> None:
        raw.setdefault(section, {})[key] = value
    return change


def set_pair(key: str, value) -> Callable[[dict], None]:
    def change(raw: dict) -> None:
        raw["pairs"][0][key] = value
    return change


def set_exchange(key: str, value) -> Callable[[dict], None]:
    def change(raw: dict) -> None:
        if value is None:
            raw["exchanges"][0].pop(key, None)
        else:
            raw["exchanges"][0][key] = value
    return change


def several(*changes: Callable[[dict], None]) -> Callable[[dict], None]:
    def change(raw: dict) -> None:
        for c in changes:
            c(raw)
    return change


def keystore_text(text: str | bytes) -> Callable[[Path], None]:
    def files(d: Path) -> None:
        target = d / "secrets" / "keystore.json"
        target.write_bytes(text if isinstance(text, bytes) else text.encode())
    return files


def keystore_fields(**fields) -> Callable[[Path], None]:
    data = dict(KEYSTORE)
    for k, v in fields.items():
        if v is None:
            data.pop(k, None)
        else:
            data[k] = v
    return keystore_text(json.dumps(data))


def db_file(content: bytes | None = None, *, schema_version: int | None = None) -> Callable[[Path], None]:
    def files(d: Path) -> None:
        (d / "data").mkdir(exist_ok=True)
        path = d / "data" / "mmflow.db"
        if schema_version is not None:
            conn = sqlite3.connect(path)
            conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at REAL NOT NULL)")
            conn.execute("INSERT INTO schema_version VALUES (?, ?)", (schema_version, time.time()))
            conn.commit()
            conn.close()
        else:
            path.write_bytes(content or b"")
    return files


def a_file_named_data(d: Path) -> None:
    (d / "data").write_text("I am a file where a directory should be\n")


def shadow_psycopg(d: Path) -> None:
    """A directory that, first on PYTHONPATH, makes `import psycopg` fail as if the driver were absent."""
    package = d / "shadow" / "psycopg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('raise ImportError("No module named \'psycopg\' (shadowed by the test)")\n')


def readme_example(d: Path) -> Setup:
    """The README's own TOML block, as an operator would copy it, with none of its secret files present."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```toml\n(.*?)```", text, re.DOTALL).group(1)
    path = d / "mmflow.toml"
    path.write_text(block)
    return Setup(d, path)


def keystore_env(value: str | None) -> Callable[[Path], Setup]:
    """mixin.keystore = "env:MMF_TEST_KEYSTORE", the variable set to ``value`` (None: unset)."""
    def setup(d: Path) -> Setup:
        result = with_raw(set_in("mixin", "keystore", "env:MMF_TEST_KEYSTORE"))(d)
        if value is not None:
            result.env["MMF_TEST_KEYSTORE"] = value
        return result
    return setup


def config_is_a_directory(d: Path) -> Setup:
    (d / "conf.toml").mkdir()
    return Setup(d, d / "conf.toml")


def config_below_a_file(d: Path) -> Setup:
    (d / "f").write_text("x")
    return Setup(d, d / "f" / "mmflow.toml")


def postgres_without_driver(d: Path) -> Setup:
    shadow_psycopg(d)
    result = with_raw(set_in("database", "url", f"postgresql://mm:{PG_PASSWORD}@127.0.0.1:1/mmflow"))(d)
    result.env["PYTHONPATH"] = str(d / "shadow")
    return result


BINARY = bytes(range(256)) * 4 + b"\xff\xfe\x00garbage"

# name, setup, the expected stderr lines: one entry per line, each a substring (or a tuple of substrings) that
# names the culprit; each entry must match exactly one line, and there must be no other line.
Line = str | tuple[str, ...]
CASES: list[tuple[str, Callable[[Path], Setup], list[Line]]] = [
    # ---- the config file itself
    ("missing config file", lambda d: Setup(d, d / "absent.toml"), ["absent.toml: cannot read the config file"]),
    ("config is a directory", config_is_a_directory, ["conf.toml: cannot read the config file: Is a directory"]),
    ("config below a regular file", config_below_a_file,
     ["mmflow.toml: cannot read the config file: Not a directory"]),
    ("binary file as config", with_text(BINARY), ["mmflow.toml: is not a text (UTF-8) file"]),
    ("TOML syntax error names the line", with_text('[mixin]\nkeystore = "k.json"\n[payments\n'),
     [("is not valid TOML: ", "line 3")]),
    ("NUL bytes in the config", with_text(b"\x00\x00\x00\x00"), ["is not valid TOML"]),
    ("empty config: every required key at once", with_text(""),
     ["mixin.keystore: is required", "payments.market_making_fee_percent: is required"]),
    # ---- [mixin]
    ('api_base = "http://"', with_raw(set_in("mixin", "api_base", "http://")), ["mixin.api_base: must name a host"]),
    ("api_base with a bad port", with_raw(set_in("mixin", "api_base", "http://127.0.0.1:99999")),
     ["mixin.api_base: is not a valid URL"]),
    ("api_base not a URL", with_raw(set_in("mixin", "api_base", "api.mixin.one")),
     ["mixin.api_base: must be an http(s) URL"]),
    ("nan poll interval", with_raw(set_in("mixin", "poll_interval", float("nan"))),
     ["mixin.poll_interval: must be a finite number, got nan"]),
    ("unknown key with a typo", with_raw(set_in("mixin", "poll_intervall", 1.0)),
     ["mixin.poll_intervall: unknown key; did you mean 'poll_interval'?"]),
    ("keystore = env: without a name", with_raw(set_in("mixin", "keystore", "env:")), ["mixin.keystore: env: must"]),
    # ---- numbers everywhere
    ("inf payment timeout", with_raw(set_in("payments", "timeout", float("inf"))),
     ["payments.timeout: must be a finite number, got inf"]),
    ("negative funding interval", with_raw(set_in("funding", "poll_interval", -1)),
     ["funding.poll_interval: must be >= 0.01, got -1"]),
    ("negative check_delay", with_raw(set_in("payments", "check_delay", -0.5)),
     ["payments.check_delay: must be >= 0, got -0.5"]),
    ("a boolean is not a number", with_raw(set_in("strategy", "tick_interval", True)),
     ["strategy.tick_interval: must be a number, got True"]),
    ("absurd stream interval", with_raw(set_in("stream", "slow_interval", 1e300)),
     ["stream.slow_interval: must be at most 315360000 seconds"]),
    ("negative database busy_timeout", with_raw(set_in("database", "busy_timeout", -1)),
     ["database.busy_timeout: must be >= 0"]),
    ("backoff_max below backoff_min", with_raw(several(set_in("supervision", "backoff_min", 5.0),
                                                        set_in("supervision", "backoff_max", 1.0))),
     ["supervision.backoff_max: must be >= supervision.backoff_min"]),
    ("exchange request_timeout nan", with_raw(set_exchange("request_timeout", float("nan"))),
     ["exchanges[0] (binance).request_timeout: must be a finite number"]),
    ("hufi retry_delay inf", with_raw(lambda raw: raw["hufi"].update(retry_delay=float("inf"))),
     ["hufi.retry_delay: must be a finite number"]),
    ("log level bogus", with_raw(set_in("log", "level", "loud")), ["log.level: 'LOUD' is not a log level"]),
    # ---- amounts
    ("absurd amount 1e999999999", with_raw(set_pair("max_base_amount", "1e999999999")),
     ["pairs[0].max_base_amount: '1e999999999' is too large"]),
    ("amount beyond 1e15", with_raw(set_pair("max_quote_amount", "2000000000000000")),
     ["pairs[0].max_quote_amount: '2000000000000000' is too large"]),
    ("amount with 20 significant digits", with_raw(set_pair("min_quote_amount", "10.000000000000000001")),
     ["pairs[0].min_quote_amount: '10.000000000000000001' has 20 significant digits"]),
    ("min above max", with_raw(set_pair("min_base_amount", "20")),
     ["pairs[0].max_base_amount: is below min_base_amount (10 < 20)"]),
    ("fee percent 1e999999999", with_raw(set_in("payments", "market_making_fee_percent", "1e999999999")),
     ["payments.market_making_fee_percent: '1e999999999' is too large"]),
    ("strategy amount 1e999999999", with_raw(lambda raw: raw["pairs"][0]["strategy"].update(order_amount="1e999999999")),
     ["pairs[0].strategy.order_amount: '1e999999999' is too large"]),
    ("max_duration 0", with_raw(set_pair("max_duration", 0)), ["pairs[0].max_duration: must be >= 1, got 0"]),
    # ---- pairs and exchanges
    ("pair on an account that is not configured", with_raw(set_pair("exchange", "binanse")),
     ["pairs[0].exchange: 'binanse' is not a configured [[exchanges]] id (configured: binance)"]),
    ("pairs with no [[exchanges]] at all", with_raw(lambda raw: raw.pop("exchanges")),
     ["exchanges: no [[exchanges]] account is configured, but 1 enabled pair trades on one"]),
    ("unknown ccxt class", with_raw(set_exchange("ccxt", "binanse")),
     ["exchanges[0] (binance).ccxt: 'binanse' is not an exchange of the installed ccxt"]),
    ("exchange secret file missing", with_raw(set_exchange("secret_file", "secrets/nope.secret")),
     [("exchanges[0] (binance).secret_file: cannot read", "nope.secret: No such file or directory")]),
    ("exchange key variable unset", with_raw(several(set_exchange("api_key_file", None),
                                                      set_exchange("api_key_env", "MMF_TEST_UNSET_KEY"))),
     ["exchanges[0] (binance).api_key_env: environment variable MMF_TEST_UNSET_KEY is not set"]),
    ("secret pasted where a variable name goes", with_raw(several(set_exchange("api_key_file", None),
                                                                   set_exchange("api_key_env", EXCHANGE_KEY + " x"))),
     ["exchanges[0] (binance).api_key_env: must be the name of an environment variable"]),
    ("inline secret refused without echo", with_raw(set_exchange("secret", EXCHANGE_SECRET)),
     ["exchanges[0] (binance).secret: secrets are never written in the config"]),
    ('exchange url "http://"', with_raw(set_exchange("urls", {"api": "http://"})),
     ["exchanges[0] (binance).urls.api: must name a host"]),
    ("exchange enabled as text", with_raw(set_exchange("enabled", "no")),
     ["exchanges[0] (binance).enabled: must be true or false"]),
    # ---- [hufi]
    ("hufi key file missing", with_raw(lambda raw: raw["hufi"].update(evm_private_key_file="secrets/gone.key")),
     [("hufi.evm_private_key_file: cannot read file:", "gone.key")]),
    ("hufi read-only secret missing",
     with_raw(lambda raw: raw["hufi"]["exchange_api_keys"]["binance"].update(secret_file="secrets/gone.secret")),
     ["hufi.exchange_api_keys.binance.secret_file: cannot read file:"]),
    ('hufi url "http://"', with_raw(lambda raw: raw["hufi"].update(oracle_url="http://")),
     ["hufi.oracle_url: must name a host"]),
    # ---- keystore
    ("keystore file missing", with_raw(files=lambda d: (d / "secrets" / "keystore.json").unlink()),
     [("mixin.keystore: keystore file", "keystore.json: cannot read (No such file or directory)")]),
    ("keystore is a directory", with_raw(files=lambda d: ((d / "secrets" / "keystore.json").unlink(),
                                                           (d / "secrets" / "keystore.json").mkdir())),
     [("mixin.keystore: keystore file", "cannot read (Is a directory)")]),
    ("keystore not JSON", with_raw(files=keystore_text("session_private_key=" + KEYSTORE["session_private_key"])),
     [("mixin.keystore: keystore file", "not valid JSON")]),
    ("keystore binary", with_raw(files=keystore_text(BINARY)), [("mixin.keystore: keystore file", "not a text")]),
    ("keystore JSON of the wrong shape", with_raw(files=keystore_text('["app_id"]')),
     [("mixin.keystore: keystore file", "must be a JSON object")]),
    ("keystore missing a field", with_raw(files=keystore_fields(session_private_key=None)),
     [("mixin.keystore: keystore file", "session_private_key: missing")]),
    ("keystore field malformed", with_raw(files=keystore_fields(session_private_key="SECRET-not-hex")),
     [("mixin.keystore: keystore file", "session_private_key: not valid hex")]),
    ("keystore env variable unset", keystore_env(None),
     ["mixin.keystore: environment variable MMF_TEST_KEYSTORE is not set"]),
    ("keystore env variable empty", keystore_env("  "),
     ["mixin.keystore: environment variable MMF_TEST_KEYSTORE is empty"]),
    ("keystore env variable not JSON", keystore_env(ENV_SECRET),
     ["mixin.keystore: environment variable MMF_TEST_KEYSTORE: not valid JSON"]),
    ("keystore env variable of the wrong shape", keystore_env(json.dumps({"client_id": "x", "pin": ENV_SECRET})),
     ["mixin.keystore: environment variable MMF_TEST_KEYSTORE: client_id: not a UUID"]),
    # ---- database
    ("sqlite:///:memory: for serve", with_raw(set_in("database", "url", "sqlite:///:memory:")),
     ["database.url: sqlite:///:memory: is not allowed for serve"]),
    ("not a database URL", with_raw(set_in("database", "url", "mysql://root:" + PG_PASSWORD + "@db/x")),
     ["database.url: must be sqlite:///PATH or postgresql://..., got 'mysql://root:***@db/x'"]),
    ("sqlite directory below a regular file", with_raw(files=a_file_named_data),
     [("database.url: cannot create the directory", "data is a file, not a directory")]),
    ("sqlite directory in /proc", with_raw(set_in("database", "url", "sqlite:////proc/nope/x.db")),
     ["database.url: cannot create the directory /proc/nope for the SQLite database"]),
    ("database file is a text file", with_raw(files=db_file(b"hello, I am not a database\n" * 50)),
     [("database.url: SQLite database", "the file is not an SQLite database")]),
    ("database path is a directory", with_raw(files=lambda d: (d / "data" / "mmflow.db").mkdir(parents=True)),
     [("database.url: SQLite database", "is a directory, not a file")]),
    ("database schema newer than this mmflow", with_raw(files=db_file(schema_version=99)),
     [("database.url: SQLite database", "schema version 99 is newer than this mmflow")]),
    ("postgresql driver missing", postgres_without_driver,
     ["database.url: PostgreSQL needs the psycopg driver, which is not installed"]),
    ("postgresql server refuses", with_raw(set_in("database", "url", "postgresql://nobody@127.0.0.1:1/x")),
     [("database.url: PostgreSQL database postgresql://nobody@127.0.0.1:1/x: cannot be opened", "refused")]),
    ("postgresql server refuses, password masked",
     with_raw(set_in("database", "url", f"postgresql://nobody:{PG_PASSWORD}@127.0.0.1:1/x")),
     ["database.url: PostgreSQL database postgresql://nobody:***@127.0.0.1:1/x: cannot be opened"]),
    ("postgresql URL with a bad port", with_raw(set_in("database", "url", "postgresql://nobody@127.0.0.1:99999/x")),
     ["database.url: 'postgresql://nobody@127.0.0.1:99999/x' is not a valid URL"]),
    # ---- several problems in one file: every one, one line each
    ("several problems at once", with_raw(several(set_in("mixin", "api_base", "http://"),
                                                  set_in("payments", "timeout", float("nan")),
                                                  set_pair("exchange", "kraken-main"),
                                                  set_exchange("ccxt", "nope"))),
     ["mixin.api_base:", "payments.timeout:", "exchanges[0] (binance).ccxt:", "pairs[0].exchange:"]),
    ("README example without its secret files", readme_example,
     ["exchanges[0] (binance).api_key_env: environment variable BINANCE_KEY is not set",
      "exchanges[0] (binance).secret_file: cannot read", "hufi.exchange_api_keys.binance.api_key_file: cannot read",
      "hufi.exchange_api_keys.binance.secret_file: cannot read", "hufi.evm_private_key_file: cannot read"]),
]


# ------------------------------------------------------------------------------ running them all at once

@dataclass
class Result:
    setup: Setup
    code: int | None
    out: str
    err: str


def _env(extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MMF", "MMFLOW_", "BINANCE_")) and k != "PYTHONPATH"}
    env["MMF_TEST_ENV_SECRET"] = ENV_SECRET
    env.update(extra)
    return env


def _command(s: Setup, check: bool) -> list[str]:
    return ["serve", "--config", str(s.config), *s.args] + (["--check"] if check else [])


def run_all(cases, tmp_root: Path, *, check: bool = False, in_process: frozenset[str] = frozenset(),
            parallel: int = 8, timeout: float = 90.0):
    """Every case's `run.py serve`: a subprocess each (at most ``parallel`` at a time), except the cases named
    in ``in_process``, which run_in_process runs here meanwhile; collect exit code and output."""
    setups = {}
    for index, (name, setup, _) in enumerate(cases):
        d = tmp_root / f"case{index:02d}"
        d.mkdir()
        setups[name] = setup(d)
    pending = [(name, s) for name, s in setups.items() if name not in in_process]
    here = [(name, s) for name, s in setups.items() if name in in_process]
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    results: dict[str, Result] = {}
    while pending or running or here:
        while pending and len(running) < parallel:
            name, s = pending.pop(0)
            args = [sys.executable, "run.py", *_command(s, check)]
            with open(s.d / "stdout", "wb") as out, open(s.d / "stderr", "wb") as err:
                running[name] = (subprocess.Popen(args, cwd=ROOT, env=_env(s.env), stdout=out, stderr=err,
                                                  stdin=subprocess.DEVNULL), time.monotonic())
        if here:  # one at a time, while the subprocesses run
            name, s = here.pop(0)
            results[name] = run_in_process(s, check)
            continue
        for name, (proc, started) in list(running.items()):
            code = proc.poll()
            if code is None and time.monotonic() - started > timeout:
                proc.kill()
                proc.wait()
                code = None
            elif code is None:
                continue
            s = setups[name]
            results[name] = Result(s, code, (s.d / "stdout").read_text(errors="replace"),
                                   (s.d / "stderr").read_text(errors="replace"))
            del running[name]
        time.sleep(0.02)
    return results


def run_in_process(s: Setup, check: bool, timeout: float = 60.0) -> Result:
    """What `python run.py serve --config ...` does, run in this process: ``run.main`` — the very function the
    command's process runs after patching gevent (done here by conftest) — with the case's environment (the
    whole of os.environ replaced, as _env gives a subprocess) and working directory, stdin at /dev/null,
    stdout and stderr captured at the file-descriptor level (Python's sys.stdout/sys.stderr, loguru, logging
    and warnings all write there, as in a fresh process), the exit status as ``sys.exit(main())`` would make
    it, an escaping exception printed as the interpreter would (its traceback on stderr, status 1). Signal
    handlers, environment, directory and descriptors are put back afterwards. A case that unexpectedly starts
    the service gets a SIGTERM (its clean stop) after ``timeout`` seconds, and then fails on its exit 0.
    Only cases that need what a fresh process has (an import that fails, PYTHONPATH) must be subprocesses."""
    import logging
    import signal
    import traceback
    import warnings

    import gevent
    from loguru import logger

    import run

    if "PYTHONPATH" in s.env:
        raise ValueError("a case that changes PYTHONPATH needs a fresh process")
    env, cwd = dict(os.environ), os.getcwd()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    sys.stdout.flush()
    sys.stderr.flush()
    saved_fds = {fd: os.dup(fd) for fd in (0, 1, 2)}
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    logging_sink = loguru_sink = guard = None
    try:
        with open(os.devnull, "rb") as null, open(s.d / "stdout", "wb") as out, open(s.d / "stderr", "wb") as err:
            for fd, target in ((0, null), (1, out), (2, err)):
                os.dup2(target.fileno(), fd)
        sys.stdin = open(0, "r", closefd=False)
        sys.stdout = open(1, "w", buffering=1, closefd=False, encoding="utf-8")
        sys.stderr = open(2, "w", buffering=1, closefd=False, encoding="utf-8", errors="backslashreplace")
        loguru_sink = logger.add(sys.stderr, level="DEBUG")      # loguru's default handler in a fresh process
        logging_sink = logging.StreamHandler(sys.stderr)          # logging's last resort in a fresh process
        logging_sink.setLevel(logging.WARNING)
        logging.getLogger().addHandler(logging_sink)
        os.environ.clear()
        os.environ.update(_env(s.env))
        os.chdir(ROOT)
        guard = gevent.spawn_later(timeout, os.kill, os.getpid(), signal.SIGTERM)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            try:
                status = run.main(_command(s, check))
            except SystemExit as exc:
                status = exc.code
            except BaseException:  # noqa: BLE001 - what the interpreter does with an escaping exception
                traceback.print_exc()
                status = 1
            if not (status is None or isinstance(status, int)):
                print(status, file=sys.stderr)
                status = 1
        for warning in caught:
            sys.stderr.write(warnings.formatwarning(warning.message, warning.category, warning.filename,
                                                    warning.lineno, warning.line))
    finally:
        if guard is not None:
            guard.kill()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        if logging_sink is not None:
            logging.getLogger().removeHandler(logging_sink)
        if loguru_sink is not None:
            logger.remove(loguru_sink)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        for stream in (sys.stdin, sys.stdout, sys.stderr):
            if stream not in saved_streams:
                stream.close()
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        for fd, saved in saved_fds.items():
            os.dup2(saved, fd)
            os.close(saved)
    return Result(s, status or 0, (s.d / "stdout").read_text(errors="replace"),
                  (s.d / "stderr").read_text(errors="replace"))


# Real `run.py serve` subprocesses: one case per way serve refuses — the config (every problem at once; the
# README's example, its secret files and variable missing), the keystore, the database — and the case only a
# fresh process can show (a driver that cannot be imported). The others run through run_in_process, the same
# function without paying Python's, gevent's and ccxt's start-up 60 more times;
# test_in_process_cases_say_what_their_subprocess_says shows that the two say the same, byte for byte.
SUBPROCESS_CASES = frozenset({"several problems at once", "README example without its secret files",
                              "keystore env variable unset", "database schema newer than this mmflow",
                              "postgresql driver missing"})
IN_PROCESS_CASES = frozenset(name for name, _, _ in CASES) - SUBPROCESS_CASES


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return run_all(CASES, tmp_path_factory.mktemp("bad-config"), in_process=IN_PROCESS_CASES)


def assert_refused(result: Result, expected: list[Line]) -> None:
    """Exit 2, stdout empty, stderr = exactly the expected lines (any order), each `error: <config>: ...`
    naming its culprit; no traceback, no secret anywhere."""
    lines = result.err.splitlines()
    context = f"exit {result.code}\nstdout: {result.out!r}\nstderr:\n{result.err}"
    assert result.code == 2, context
    assert result.out == "", context
    assert "Traceback" not in result.err and "Traceback" not in result.out, context
    for secret in SECRETS:
        assert secret not in result.err and secret not in result.out, f"secret {secret[:10]}... leaked\n{context}"
    config = str(result.setup.config)
    assert all(line.startswith(f"error: {config}: ") for line in lines), context
    assert len(lines) == len(expected), context
    unmatched = list(lines)
    for entry in expected:
        parts = (entry,) if isinstance(entry, str) else entry
        matching = [line for line in unmatched if all(part in line for part in parts)]
        assert len(matching) == 1, f"{parts!r} should be on exactly one line\n{context}"
        unmatched.remove(matching[0])


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name,culprits", [(name, culprits) for name, _, culprits in CASES],
                         ids=[name for name, _, _ in CASES])
def test_broken_config_is_refused_with_one_line_per_problem(results, name, culprits):
    assert_refused(results[name], culprits)


def test_there_are_enough_cases():
    assert len(CASES) >= 35
    assert len({name for name, _, _ in CASES}) == len(CASES)
    assert SUBPROCESS_CASES <= {name for name, _, _ in CASES}


def assert_same_in_process(result: Result, check: bool) -> None:
    """The case run again by run_in_process says exactly what its `run.py serve` subprocess said."""
    here = run_in_process(result.setup, check)
    assert (here.code, here.out, here.err) == (result.code, result.out, result.err)


@pytest.mark.timeout(300)
def test_in_process_cases_say_what_their_subprocess_says(results):
    """run_in_process is `run.py serve` without a new process: each subprocess case that can run in this process
    (all but the one that shadows an import with PYTHONPATH) gives the same exit status, stdout and stderr."""
    for name in sorted(SUBPROCESS_CASES - {"postgresql driver missing"}):
        assert_same_in_process(results[name], check=False)


@pytest.mark.timeout(300)
def test_the_base_config_and_the_readme_example_pass_the_check(tmp_path):
    """The starting point of every case is valid (so each case breaks only what it says), and so is the
    README's example once its secret files and variable exist: `serve --check` exits 0 with one ok line."""
    def readme_with_secrets(d: Path) -> Setup:
        setup = readme_example(d)
        (d / "secrets").mkdir()
        (d / "secrets" / "keystore.json").write_text(json.dumps(KEYSTORE))
        for name in ("binance.secret", "hufi-evm.key", "binance-ro.key", "binance-ro.secret"):
            (d / "secrets" / name).write_text(f"{EXCHANGE_SECRET}-{name}\n")
        setup.env = {"BINANCE_KEY": EXCHANGE_KEY}
        return setup

    cases = [("base", with_raw(), []), ("readme", readme_with_secrets, [])]
    results = run_all(cases, tmp_path, check=True)
    for name, _, _ in cases:
        result = results[name]
        context = f"{name}: exit {result.code}\nstdout: {result.out!r}\nstderr:\n{result.err}"
        assert result.code == 0, context
        assert result.err == "", context
        assert result.out.startswith(f"ok: {result.setup.config}: configuration valid"), context
        assert "database new (will be created)" in result.out, context
        assert not any(secret in result.out for secret in SECRETS), context
    # the check created nothing: no database, no directory for it
    assert not (tmp_path / "case00" / "data").exists()
    assert not (tmp_path / "case01" / "var").exists()


@pytest.mark.timeout(300)
def test_check_refuses_what_serve_refuses(tmp_path):
    """`serve --check` says the same lines as `serve` (exit 2), for the config, the keystore and the database."""
    picked = [case for case in CASES if case[0] in (
        'api_base = "http://"', "keystore env variable unset", "database schema newer than this mmflow",
        "several problems at once")]
    results = run_all(picked, tmp_path, check=True, in_process=IN_PROCESS_CASES)
    for name, _, culprits in picked:
        assert_refused(results[name], culprits)
        if name in SUBPROCESS_CASES:
            assert_same_in_process(results[name], check=True)
