"""mmflow command line: `python run.py demo | serve | memo | orders | alerts | halt | campaigns | tokens | archive |
audit`."""
import signal as _signal

# SIGTERM/SIGINT at any time — even while Python is still importing, right after a supervisor's spawn — is a
# clean stop for `serve` (exit 0): the signal is only remembered here (nothing else is safe inside a signal
# handler before gevent's own handlers exist) and serve() honours it once its handlers are in place; every other
# command gets the default action back (see _hand_back_early_stops). Set before the gevent patch and the imports,
# which take the longest.
_STOPS_BEFORE_START: list[int] = []
for _sig in (_signal.SIGTERM, _signal.SIGINT):
    _signal.signal(_sig, lambda signum, _frame: _STOPS_BEFORE_START.append(signum))

from integrations.gevent_patch import patch_all  # noqa: E402

patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402


def _cmd_memo(args) -> int:
    from domain.memo import MemoError, decode_any, encode_market_making, memo_text_to_hex, parse_action

    if args.memo_command == "encode":
        try:
            text = encode_market_making(args.pair, args.order, action=parse_action(args.action))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(text)
        print(memo_text_to_hex(text))
        return 0
    try:
        memo = decode_any(args.text)
    except MemoError as exc:
        print(f"error: cannot decode memo ({exc.code}): {exc}", file=sys.stderr)
        return 2
    print(json.dumps(memo.as_dict()))
    return 0


def _fail(lines) -> None:
    """Print each problem as one ``error: ...`` line on stderr (nothing on stdout) and exit 2."""
    for line in lines:
        print("error: " + " ".join(str(line).split()), file=sys.stderr)
    raise SystemExit(2)


def _load_config_or_exit(path, *, for_service: bool = False, database_only: bool = False):
    """The validated config, or exit 2 with one line per problem: ``error: <file>: <key>: <what>``.

    database_only: for commands that need only the database — the exchange keys are not read and the
    accounts' ccxt classes not looked up (so such a command never imports ccxt)."""
    from domain.config import ConfigError, load_config

    try:
        return load_config(path, read_secrets=not database_only, for_service=for_service,
                           check_venues=not database_only)
    except ConfigError as exc:
        _fail(exc.lines())
    except Exception as exc:  # noqa: BLE001 - a validator bug must still be one line, never a traceback
        _fail([f"{path}: cannot be validated ({type(exc).__name__}); this is a bug in mmflow, please report it"])


def _load_keystore_or_exit(config):
    """The bot's keystore (file or env:VARIABLE), or exit 2 naming the file or variable (never its content)."""
    from integrations.mixin.keystore import KeystoreError, load_bot_keystore

    try:
        return load_bot_keystore(config.mixin.keystore_path)
    except KeystoreError as exc:
        _fail([f"{config.source}: mixin.keystore: {exc}"])


def _database_problem(config, exc) -> list[str]:
    return [f"{config.source}: database.url: {exc}"]


def _check_database_or_exit(config) -> str:
    """What the database is (new, schema version n) without creating or changing it; exit 2 if unusable."""
    from storage.db import StorageError, check_database

    try:
        return check_database(config.database.url, busy_timeout=config.database.busy_timeout)
    except StorageError as exc:
        _fail(_database_problem(config, exc))


def _open_database_or_exit(config):
    from storage.db import StorageError, open_database

    try:
        return open_database(config.database.url, busy_timeout=config.database.busy_timeout,
                             pool_size=config.database.pool_size)
    except StorageError as exc:
        _fail(_database_problem(config, exc))


def _hand_back_early_stops() -> None:
    """Commands other than `serve` keep the default SIGTERM/SIGINT actions (or their own); a stop that came
    while importing takes that default action now."""
    import os

    _signal.signal(_signal.SIGTERM, _signal.SIG_DFL)
    _signal.signal(_signal.SIGINT, _signal.default_int_handler)
    for signum in _STOPS_BEFORE_START[:1]:
        os.kill(os.getpid(), signum)


def _cmd_serve(args) -> int:
    # Everything a bad file can break is checked before anything starts: the config (every problem at
    # once), the keystore, the database (read-only). Each problem: exit 2 with one line naming the culprit.
    config = _load_config_or_exit(args.config, for_service=True)
    keystore = _load_keystore_or_exit(config)
    database = _check_database_or_exit(config)
    if args.check:
        enabled = sum(1 for p in config.pairs if p.enabled)
        print(f"ok: {args.config}: configuration valid ({len(config.pairs)} pairs, {enabled} enabled; "
              f"{len(config.exchanges)} exchange accounts"
              + (f", {len(config.disabled_exchanges)} disabled" if config.disabled_exchanges else "")
              + f"), keystore {keystore.app_id} readable"
              + ("" if keystore.can_spend else " (no spend key: nothing can be sent)")
              + f", database {database}")
        return 0

    from actors.system import build_services, default_debug_log, serve, setup_logging
    from integrations.redaction import secrets_of
    from storage.db import StorageError

    # Masking and the debug log (full tracebacks, never on the console) start with the very first line.
    setup_logging(config.log.level, json=args.json_logs or config.log.json, secrets=secrets_of(config, keystore),
                  debug_log=default_debug_log(config), debug=True if args.debug else None)
    try:
        services = build_services(config, keystore=keystore)
    except StorageError as exc:  # changed since the check a moment ago
        _fail(_database_problem(config, exc))
    return serve(services, stopped_before=lambda: bool(_STOPS_BEFORE_START))


def _cmd_operator(args) -> int:
    from cli import operator

    config = _load_config_or_exit(args.config, database_only=True)
    _open_database_or_exit(config)
    if args.command == "alerts":
        handler = {"list": operator.alerts_list, "ack": operator.alerts_ack}[args.alerts_command]
    elif args.command == "tokens":
        from cli import tokens
        handler = {"create": tokens.tokens_create, "list": tokens.tokens_list,
                   "revoke": tokens.tokens_revoke}[args.tokens_command]
    elif args.command == "campaigns":
        handler = operator.campaigns_list
    elif args.command == "halt":
        handler = operator.halt
    else:
        handler = {"list": operator.orders_list, "show": operator.orders_show, "statement": operator.orders_statement,
                   "commands": operator.orders_commands, "pause": operator.orders_simple,
                   "stop": operator.orders_simple, "resume": operator.orders_simple, "exit": operator.orders_simple,
                   "set-params": operator.orders_set_params, "resolve": operator.orders_resolve,
                   "kpi": operator.orders_kpi, "sla": operator.orders_sla,
                   }[args.orders_command]
    from storage.archive_segments import ArchiveCorrupt

    try:
        return handler(config, args)
    except ArchiveCorrupt as exc:  # an archived order whose record fails its sha256: say so, never guess
        print(f"error: archive: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1


def _cmd_maintenance(args) -> int:
    """archive run|verify|restore and audit: the database and the config only (no secrets, no ccxt)."""
    from cli import maintenance

    config = _load_config_or_exit(args.config, database_only=True)
    if args.command == "archive":
        from ops.archive import settings_problem

        problem = settings_problem(config)
        if problem:
            _fail([problem])
    _open_database_or_exit(config)
    handler = maintenance.audit_command if args.command == "audit" else maintenance.archive_command
    return handler(config, args)


def _cmd_demo(args) -> int:
    from sim.demo import run_demo

    from api.settings import parse_listen

    try:
        api = parse_listen(args.api) if args.api is not None else None
    except ValueError as exc:
        _fail([f"--api: {exc}"])
    if api is not None and api[1] != 0:
        import socket

        try:  # a busy port is said now, not after a minute of demo without its dashboard
            with socket.socket(socket.AF_INET6 if ":" in api[0] else socket.AF_INET) as probe:
                probe.bind(api)
        except OSError as exc:
            _fail([f"--api: cannot listen on {args.api}: {exc.strerror or exc}"])
    if not (0 <= args.hold < float("inf")):
        _fail([f"--hold: must be a number of seconds >= 0, got {args.hold}"])
    if args.instances < 1 or args.instances > 16:
        _fail([f"--instances: must be 1 to 16, got {args.instances}"])
    if args.database is not None and not args.database.startswith(("postgresql://", "postgres://")):
        _fail(["--database: must be a postgresql:// URL (the demo creates a database of its own on that server)"])
    if args.instances > 1 and args.database is None:
        _fail(["--instances: several instances share one PostgreSQL database: give --database postgresql://…"])
    if args.kill_one and args.instances < 2:
        _fail(["--kill-one: needs --instances 2 or more (someone must take over)"])
    if args.database is not None:
        import psycopg

        try:
            psycopg.connect(args.database, autocommit=True, connect_timeout=5).close()
        except psycopg.Error as exc:
            _fail([f"--database: cannot connect: {str(exc).strip().splitlines()[0]}"])
    return run_demo(duration=args.duration, workdir=args.workdir, json_logs=args.json_logs, venue=args.venue,
                    api=api, hold=args.hold, database=args.database, instances=args.instances,
                    kill_one=args.kill_one)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="run.py", description="mmflow: market making as a service on Mixin")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run everything on the embedded simulation (fake Mixin, SQLite)")
    demo.add_argument("--duration", type=float, default=None,
                      help="at most this many seconds of user activity (default 90; the users' script ends sooner, "
                           "once its story is told); then open orders exit and the demo waits for them")
    demo.add_argument("--workdir", default=None, help="where to keep the demo database (default: a temp dir)")
    demo.add_argument("--json-logs", action="store_true")
    demo.add_argument("--venue", default="binance", choices=("binance", "mexc", "gate", "bybit"),
                      help="which fake exchange dialect the demo trades on (default binance)")
    demo.add_argument("--api", default=None, metavar="HOST:PORT",
                      help="serve the HTTP API and dashboard here during the demo (default: a free loopback port)")
    demo.add_argument("--hold", type=float, default=0.0, metavar="SECONDS",
                      help="keep the world, the API and the dashboard up this long after the summary line")
    demo.add_argument("--database", default=None, metavar="postgresql://…",
                      help="run on this PostgreSQL server (a fresh database of the demo's own) instead of SQLite")
    demo.add_argument("--instances", type=int, default=1,
                      help="serve the demo with this many `serve` instances sharing the database (needs --database)")
    demo.add_argument("--kill-one", action="store_true",
                      help="kill -9 one instance (the treasury's holder) in the middle; the others take over")

    serve = sub.add_parser(
        "serve", help="run the service with a config file",
        description="Run the service. Before anything starts, the config file (every problem at once), the "
                    "keystore and the database are checked; each problem is one line on stderr, "
                    "'error: <file>: <key>: <what is wrong>', and the exit status is 2.")
    serve.add_argument("--config", required=True)
    serve.add_argument("--json-logs", action="store_true")
    serve.add_argument("--debug", action="store_true",
                       help="tracebacks (with local variables, still masked) on the console; also MMFLOW_DEBUG=1")
    serve.add_argument("--check", action="store_true",
                       help="only check the config, its secrets (files and variables it names), the keystore and "
                            "the database (read-only: nothing created or upgraded), print one 'ok: ...' line and "
                            "exit 0 — or exit 2 with one 'error: ...' line per problem")

    memo = sub.add_parser("memo", help="encode or decode a market-making memo")
    memo_sub = memo.add_subparsers(dest="memo_command", required=True)
    enc = memo_sub.add_parser("encode")
    enc.add_argument("--pair", required=True)
    enc.add_argument("--order", required=True)
    enc.add_argument("--action", default="create",
                     help="create (1, default): pay for an order; deposit (2): add funds; exit (3): stop and pay out")
    dec = memo_sub.add_parser("decode")
    dec.add_argument("text", help="base58 memo text, or the snapshot's hex memo")

    orders = sub.add_parser("orders", help="inspect and steer orders (through the database)")
    orders_sub = orders.add_subparsers(dest="orders_command", required=True)
    lst = orders_sub.add_parser("list", help="orders, newest first")
    lst.add_argument("--config", required=True)
    lst.add_argument("--state", default=None)
    lst.add_argument("--limit", type=int, default=200)
    show = orders_sub.add_parser("show", help="one order: state, history, movements, ledger, trading, statement")
    show.add_argument("order_id")
    show.add_argument("--config", required=True)
    stmt = orders_sub.add_parser("statement", help="the order's settlement statement, per asset, with its check line")
    stmt.add_argument("order_id")
    stmt.add_argument("--config", required=True)
    stmt.add_argument("--json", action="store_true")
    kpis = orders_sub.add_parser("kpi", help="the order's KPI samples: uptime, spread, depth, volume, PnL")
    kpis.add_argument("order_id")
    kpis.add_argument("--config", required=True)
    kpis.add_argument("--since", default=None, help="samples ending at or after (ISO-8601 UTC, a date or epoch)")
    kpis.add_argument("--until", default=None, help="samples ending at or before")
    kpis.add_argument("--limit", type=int, default=100, help="the newest N samples (default 100; 0: all)")
    kpis.add_argument("--json", action="store_true")
    sla = orders_sub.add_parser("sla", help="daily SLA report per order: uptime %%, spread, depth, volume")
    sla.add_argument("--config", required=True)
    sla.add_argument("--day", default=None, help="YYYY-MM-DD, UTC (default: today, so far)")
    sla.add_argument("--order", default=None, help="only this order")
    sla.add_argument("--format", default="json", help="json (default) or csv (with a header row)")
    cmds = orders_sub.add_parser("commands", help="recent operator commands and their outcomes")
    cmds.add_argument("order_id", nargs="?", default=None)
    cmds.add_argument("--config", required=True)
    cmds.add_argument("--limit", type=int, default=50)

    def command_parser(name: str, text: str):
        p = orders_sub.add_parser(name, help=text)
        p.add_argument("order_id")
        p.add_argument("--config", required=True)
        p.add_argument("--wait", type=float, default=15.0,
                       help="seconds to wait for the service to carry it out (0: just queue it)")
        return p

    for name, text in (("pause", "cancel the order's quotes; its funds stay on the exchange"),
                       ("stop", "the same as pause"),
                       ("resume", "quote again after a pause"),
                       ("exit", "stop the order, bring its funds back from the exchange and pay the owner")):
        command_parser(name, text).add_argument("--reason", default="")
    setp = command_parser("set-params", "override strategy parameters of one order (key=value ...; end_at=ISO-8601)")
    setp.add_argument("params", nargs="+")
    resolve = command_parser("resolve", "move an order out of attention (prints what happens to the money)")
    resolve.add_argument("--to", required=True, help="the target state")
    resolve.add_argument("--reason", required=True)
    resolve.add_argument("--yes", action="store_true", help="carry it out (without it, only explain)")

    halt = sub.add_parser("halt", help="stop quoting on every (or one) exchange account until lifted")
    halt.add_argument("--config", required=True)
    halt.add_argument("--account", default=None, help="one exchange account id (default: all)")
    halt.add_argument("--reason", default="")
    halt_mode = halt.add_mutually_exclusive_group()
    halt_mode.add_argument("--lift", action="store_true", help="lift the halt (and an account's rejection breaker)")
    halt_mode.add_argument("--status", action="store_true", help="list the halts in force")

    campaigns = sub.add_parser("campaigns", help="HuFi campaigns, joins and each order's estimated reward")
    campaigns.add_argument("--config", required=True)

    alerts = sub.add_parser("alerts", help="things an operator must look at")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", required=True)
    al = alerts_sub.add_parser("list")
    al.add_argument("--config", required=True)
    al.add_argument("--open", action="store_true", help="only alerts not yet acknowledged")
    al.add_argument("--limit", type=int, default=200)
    ack = alerts_sub.add_parser("ack")
    ack.add_argument("alert_id", type=int)
    ack.add_argument("--config", required=True)

    tokens = sub.add_parser("tokens", help="API tokens for operators (stored hashed; the token is shown once)")
    tokens_sub = tokens.add_subparsers(dest="tokens_command", required=True)
    tc = tokens_sub.add_parser("create", help="a new API token; prints it once")
    tc.add_argument("--config", required=True)
    tc.add_argument("--role", required=True, choices=("viewer", "operator"),
                    help="viewer: reads everything; operator: also pauses, resumes, exits, resolves, halts")
    tc.add_argument("--name", default="", help="who or what it is for")
    tc.add_argument("--expires-in", type=float, default=None, metavar="DAYS", help="expire after DAYS days")
    tl = tokens_sub.add_parser("list", help="every API token: role, state, expiry, last use (never the token)")
    tl.add_argument("--config", required=True)
    tr = tokens_sub.add_parser("revoke", help="revoke a token: it no longer opens the API")
    tr.add_argument("token_id", type=int)
    tr.add_argument("--config", required=True)

    archive = sub.add_parser("archive", help="cold storage of finished orders: run, verify, restore")
    archive_sub = archive.add_subparsers(dest="archive_command", required=True)
    for name, text in (("run", "move settled/refunded orders older than [archive] retention to the archive"),
                       ("verify", "re-read every segment: sha256, records, no archived order also hot"),
                       ("restore", "put archived orders back into the hot tables")):
        p = archive_sub.add_parser(name, help=text)
        p.add_argument("--config", required=True)
        if name == "restore":
            which = p.add_mutually_exclusive_group()
            which.add_argument("--order", action="append", default=[], metavar="ID", help="an order (repeatable)")
            which.add_argument("--all", action="store_true", help="every archived order")

    audit = sub.add_parser("audit", help="replay every order's tally, refunds, fees and settlement from its raw "
                                         "snapshots and compare with what is stored")
    audit.add_argument("--config", required=True)
    audit.add_argument("--order", default=None, metavar="ID", help="only this order (hot or archived)")

    args = parser.parse_args(argv)
    if args.command != "serve":
        _hand_back_early_stops()
    handler = {"archive": _cmd_maintenance, "audit": _cmd_maintenance, "demo": _cmd_demo, "serve": _cmd_serve,
               "memo": _cmd_memo, "orders": _cmd_operator,
               "alerts": _cmd_operator, "campaigns": _cmd_operator,
               "halt": _cmd_operator, "tokens": _cmd_operator}[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
