"""mmflow command line: `python run.py demo | serve | memo | orders`."""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402


def _cmd_memo(args) -> int:
    from domain.memo import MemoError, decode_any, encode_market_making, memo_text_to_hex

    if args.memo_command == "encode":
        try:
            text = encode_market_making(args.pair, args.order, action=args.action)
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


def _load_config_or_exit(path):
    from domain.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _cmd_serve(args) -> int:
    from actors.system import build_services, serve, setup_logging

    config = _load_config_or_exit(args.config)
    setup_logging(config.log.level, json=args.json_logs or config.log.json)
    services = build_services(config)
    return serve(services)


def _cmd_orders(args) -> int:
    from storage import repo
    from storage.db import open_database

    config = _load_config_or_exit(args.config)
    open_database(config.database.url)
    if args.orders_command == "list":
        rows = repo.list_orders(args.state, limit=args.limit)
        for row in rows:
            print(f"{row.order_id}  {row.state:<17} {row.user_id or '-':<36}  {row.state_reason}")
        print(f"{len(rows)} orders", file=sys.stderr)
        return 0
    view = repo.load_order(args.order_id)
    if view is None:
        print(f"error: no order {args.order_id}", file=sys.stderr)
        return 2
    from storage.models import Order
    row = Order.get_by_id(args.order_id)
    out = {
        "order_id": view.order_id, "pair_id": view.pair_id, "state": view.state.value,
        "reason": view.state_reason, "user_id": view.user_id,
        "tallies": {k: str(v) for k, v in view.tallies.items()},
        "fees": {"base_fee_asset_id": view.fees.base_fee_asset_id, "base_fee": str(view.fees.base_fee_amount),
                 "quote_fee_asset_id": view.fees.quote_fee_asset_id, "quote_fee": str(view.fees.quote_fee_amount),
                 "market_making_fee_percent": str(view.fees.market_making_fee_percent)},
        "breakdown": json.loads(row.breakdown) if row.breakdown else None,
        "history": [{"from": h.from_state, "to": h.to_state, "reason": h.reason, "at": h.at}
                    for h in repo.order_history(view.order_id)],
        "movements": [{"request_id": m.request_id, "kind": m.kind, "asset_id": m.asset_id, "amount": str(m.amount),
                       "state": m.state, "memo": m.memo, "note": m.last_error, "leg": m.leg,
                       "destination": m.destination, "deposit_id": m.deposit_id}
                      for m in repo.order_movements(view.order_id)],
    }
    pair = config.pair(view.pair_id)
    if pair is not None and repo.ledger_balances(view.order_id):
        from storage.reports import strategy_report
        out["strategy"] = strategy_report(view.order_id, pair.base_symbol, pair.quote_symbol, None)
    print(json.dumps(out, indent=2))
    return 0


def _cmd_order_command(args) -> int:
    """stop / set-params: written to the database; the running service executes it within a second."""
    from storage import repo
    from storage.db import open_database

    config = _load_config_or_exit(args.config)
    open_database(config.database.url)
    view = repo.load_order(args.order_id)
    if view is None:
        print(f"error: no order {args.order_id}", file=sys.stderr)
        return 2
    if args.orders_command == "stop":
        command_id = repo.queue_command(args.order_id, "stop", {"reason": args.reason})
    else:
        overrides = {}
        for item in args.params:
            key, sep, value = item.partition("=")
            if not sep:
                print(f"error: {item!r} is not key=value", file=sys.stderr)
                return 2
            overrides[key.strip()] = value.strip()
        from domain.strategy.params import StrategyParamsError
        from actors.strategy import effective_params
        try:
            effective_params(config, config.pair(view.pair_id), {**repo.strategy_overrides(args.order_id),
                                                                 **overrides})
        except StrategyParamsError as exc:
            print("error: " + "; ".join(exc.problems), file=sys.stderr)
            return 2
        command_id = repo.queue_command(args.order_id, "set-params", overrides)
    print(f"command {command_id} queued for order {args.order_id} (state {view.state.value})")
    return 0


def _cmd_demo(args) -> int:
    from sim.demo import run_demo

    return run_demo(duration=args.duration, workdir=args.workdir, json_logs=args.json_logs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="run.py", description="mmflow: market making as a service on Mixin")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run everything on the embedded simulation (fake Mixin, SQLite)")
    demo.add_argument("--duration", type=float, default=60.0, help="seconds to run (default 60)")
    demo.add_argument("--workdir", default=None, help="where to keep the demo database (default: a temp dir)")
    demo.add_argument("--json-logs", action="store_true")

    serve = sub.add_parser("serve", help="run the service with a config file")
    serve.add_argument("--config", required=True)
    serve.add_argument("--json-logs", action="store_true")

    memo = sub.add_parser("memo", help="encode or decode a market-making memo")
    memo_sub = memo.add_subparsers(dest="memo_command", required=True)
    enc = memo_sub.add_parser("encode")
    enc.add_argument("--pair", required=True)
    enc.add_argument("--order", required=True)
    enc.add_argument("--action", type=int, default=1, choices=(1, 2), help="1 create (default), 2 deposit")
    dec = memo_sub.add_parser("decode")
    dec.add_argument("text", help="base58 memo text, or the snapshot's hex memo")

    orders = sub.add_parser("orders", help="inspect orders")
    orders_sub = orders.add_subparsers(dest="orders_command", required=True)
    lst = orders_sub.add_parser("list")
    lst.add_argument("--config", required=True)
    lst.add_argument("--state", default=None)
    lst.add_argument("--limit", type=int, default=200)
    show = orders_sub.add_parser("show")
    show.add_argument("order_id")
    show.add_argument("--config", required=True)

    stop = orders_sub.add_parser("stop", help="cancel all of the order's exchange orders and stop it")
    stop.add_argument("order_id")
    stop.add_argument("--config", required=True)
    stop.add_argument("--reason", default="operator stop")
    setp = orders_sub.add_parser("set-params", help="override strategy parameters of one order (key=value ...)")
    setp.add_argument("order_id")
    setp.add_argument("params", nargs="+")
    setp.add_argument("--config", required=True)

    args = parser.parse_args(argv)
    if args.command == "orders" and args.orders_command in ("stop", "set-params"):
        return _cmd_order_command(args)
    handler = {"demo": _cmd_demo, "serve": _cmd_serve, "memo": _cmd_memo, "orders": _cmd_orders}[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
