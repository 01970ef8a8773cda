"""The operator's commands: orders list/show/statement/commands, pause/resume/stop/exit/set-params/resolve,
alerts list/ack. They talk to the running service only through the database (storage.commands): a
command is queued, the service carries it out and records the outcome, and the CLI waits (bounded)
for it and prints done or refused with the reason.

Exit codes: 0 done; 1 refused by the service; 2 bad input; 75 queued but not carried out in time (the
service may not be running: it will carry it out when it starts).
"""
from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from decimal import Decimal

EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2
EXIT_PENDING = 75


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def err(text: str) -> None:
    print(f"error: {text}", file=sys.stderr)


class Symbols:
    """Asset ids shown as symbols (from the configured pairs); unknown ids stay ids."""

    def __init__(self, config) -> None:
        self.names: dict[str, str] = {}
        for pair in config.pairs:
            self.names.setdefault(pair.base_asset_id, pair.base_symbol)
            self.names.setdefault(pair.quote_asset_id, pair.quote_symbol)

    def __call__(self, asset_id: str | None) -> str:
        return self.names.get(asset_id or "", asset_id or "-")


def _money(value) -> str:
    from domain.money import fmt
    return fmt(value) if isinstance(value, Decimal) else str(value)


# ---------------------------------------------------------------- reads

def orders_list(config, args) -> int:
    from domain.states import OrderState
    from storage import repo
    from storage.reports import strategy_report

    states = [s.value for s in OrderState]
    if args.state is not None and args.state not in states:
        err(f"unknown state {args.state!r}; one of: {', '.join(states)}")
        return EXIT_BAD_INPUT
    rows = repo.list_orders(args.state, limit=args.limit)
    print(f"{'ORDER':<36}  {'STATE':<17} {'PAIR':<10} {'CREATED (UTC)':<20}  {'PNL (quote)':>14}  REASON")
    for row in rows:
        pair = config.pair(row.pair_id)
        pnl = ""
        if pair is not None and repo.ledger_balances(row.order_id):
            report = strategy_report(row.order_id, pair.base_symbol, pair.quote_symbol, None)
            pnl = report.get("realized_pnl", "") or ""
        print(f"{row.order_id:<36}  {row.state:<17} {pair.symbol if pair else '?':<10} {iso(row.created_at):<20}  "
              f"{pnl:>14}  {row.state_reason[:100]}")
    print(f"{len(rows)} orders", file=sys.stderr)
    return 0


def order_document(config, order_id: str) -> dict | None:
    from domain.statement import Statement
    from storage import exit_repo, repo
    from storage.models import Order
    from storage.statements import order_statement

    view = repo.load_order(order_id)
    if view is None:
        return None
    row = Order.get_by_id(order_id)
    sym = Symbols(config)
    pair = config.pair(view.pair_id)
    out = {
        "order_id": view.order_id, "pair": pair.symbol if pair else view.pair_id, "state": view.state.value,
        "reason": view.state_reason, "owner": view.user_id, "created_at": iso(view.created_at),
        "payment_deadline": iso(view.deadline_at) if view.state.value == "payment_pending" else None,
        "exit": ({"asked_at": iso(view.exit_requested_at), "by": view.exit_source, "reason": view.exit_reason}
                 if view.exit_requested else None),
        "end_at": iso(view.end_at),
        "paid": {sym(k): _money(v) for k, v in view.tallies.items()},
        "fees": {"withdrawal_fee_base": f"{_money(view.fees.base_fee_amount)} {sym(view.fees.base_fee_asset_id)}",
                 "withdrawal_fee_quote": f"{_money(view.fees.quote_fee_amount)} {sym(view.fees.quote_fee_asset_id)}",
                 "market_making_fee_percent": _money(view.fees.market_making_fee_percent)},
        "breakdown": json.loads(row.breakdown) if row.breakdown else None,
        "history": [{"at": iso(h.at), "from": h.from_state, "to": h.to_state, "reason": h.reason}
                    for h in repo.order_history(order_id)],
        "movements": [{"kind": m.kind, "request_id": m.request_id, "asset": sym(m.asset_id), "amount": _money(m.amount),
                       "state": m.state, "note": m.last_error, "leg": m.leg, "destination": m.destination,
                       "exchange_withdrawal_id": m.exchange_withdrawal_id, "txid": m.exchange_txid or m.withdrawal_hash,
                       "arrived": _money(m.arrived_amount) if m.arrived_amount is not None else None}
                      for m in repo.order_movements(order_id)],
        "ledger": {k: _money(v) for k, v in sorted(repo.ledger_balances(order_id).items())},
    }
    if pair is not None and out["ledger"]:
        from storage.reports import strategy_report
        out["strategy"] = strategy_report(order_id, pair.base_symbol, pair.quote_symbol, exit_repo.exit_price(order_id))
    statement: Statement | None = order_statement(order_id, config)
    out["statement"] = statement.as_dict() if statement is not None else None
    from storage.rewards import order_rewards
    out["hufi"] = order_rewards(order_id)
    return out


def orders_show(config, args) -> int:
    document = order_document(config, args.order_id)
    if document is None:
        err(f"no order {args.order_id}")
        return EXIT_BAD_INPUT
    print(json.dumps(document, indent=2, default=str))
    return 0


def orders_statement(config, args) -> int:
    from domain.statement import format_statement
    from storage.statements import order_statement

    statement = order_statement(args.order_id, config)
    if statement is None:
        err(f"no order {args.order_id}")
        return EXIT_BAD_INPUT
    from storage.rewards import order_rewards
    rewards = order_rewards(args.order_id)
    if args.json:
        print(json.dumps({**statement.as_dict(), "hufi": rewards}, indent=2, default=str))
    else:
        print(format_statement(statement))
        if rewards and "estimate" in rewards:
            e = rewards["estimate"]
            print(f"  HuFi campaign {rewards['campaign']} ({rewards['type']} {rewards['pair']} on {rewards['exchange']}"
                  f"{', joined' if rewards['joined'] else ', not joined yet'}): weighted volume "
                  f"{rewards['order_weighted_volume_total']} since joining; today {rewards['today']['order_weighted_volume']}"
                  f" of the account's {rewards['today']['account_weighted_volume']}; estimated reward today "
                  f"{e['order_reward']} {e['token']}")
            print(f"    {e['formula']}")
    return 0


def orders_commands(config, args) -> int:
    from storage import commands

    rows = commands.recent(args.order_id, limit=args.limit)
    print(f"{'ID':>6}  {'QUEUED (UTC)':<20}  {'ORDER':<36}  {'COMMAND':<10}  OUTCOME")
    for c in rows:
        outcome = c.result or "pending (not carried out yet)"
        print(f"{c.id:>6}  {iso(c.created_at):<20}  {c.order_id:<36}  {c.command:<10}  {outcome}")
    return 0


# ---------------------------------------------------------------- commands to the service

def wait_for_outcome(command_id: int, timeout: float) -> str | None:
    from storage import commands

    deadline = time.monotonic() + timeout
    while True:
        row = commands.get(command_id)
        if row is not None and row.result:
            return row.result
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)


def send(order_id: str, command: str, args: dict, wait: float) -> int:
    from storage import commands, repo

    view = repo.load_order(order_id)
    if view is None:
        err(f"no order {order_id}")
        return EXIT_BAD_INPUT
    command_id = commands.queue(order_id, command, args)
    if wait <= 0:
        print(f"command {command_id} queued: {command} order {order_id} (state {view.state.value})")
        return 0
    outcome = wait_for_outcome(command_id, wait)
    if outcome is None:
        print(f"command {command_id} queued: {command} order {order_id}; not carried out within {wait:g}s — is the "
              f"service running? It will be carried out when it runs (see `orders commands`).")
        return EXIT_PENDING
    print(f"command {command_id}: {command} order {order_id}: {outcome}")
    return 0 if outcome.startswith("done") else EXIT_REFUSED


def orders_simple(config, args) -> int:
    """pause / stop (alias of pause) / resume / exit."""
    payload = {"reason": args.reason} if args.reason else {}
    return send(args.order_id, args.orders_command, payload, args.wait)


def parse_params(items: list[str]) -> dict | str:
    overrides: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            return f"{item!r} is not key=value"
        if not value:
            return f"{key}= has no value"
        if key in overrides:
            return f"{key} is given twice"
        overrides[key] = value
    return overrides


def orders_set_params(config, args) -> int:
    from actors.order.strategy import effective_params, parse_end_at
    from domain.strategy.params import StrategyParamsError
    from storage import repo

    view = repo.load_order(args.order_id)
    if view is None:
        err(f"no order {args.order_id}")
        return EXIT_BAD_INPUT
    overrides = parse_params(args.params)
    if isinstance(overrides, str):
        err(overrides)
        return EXIT_BAD_INPUT
    checked = dict(overrides)
    if "end_at" in checked:
        try:
            parse_end_at(checked.pop("end_at"))
        except ValueError as exc:
            err(str(exc))
            return EXIT_BAD_INPUT
    if checked:
        pair = config.pair(view.pair_id)
        if pair is None:
            err(f"the order's pair {view.pair_id} is not configured")
            return EXIT_BAD_INPUT
        try:
            effective_params(config, pair, {**repo.strategy_overrides(args.order_id), **checked})
        except StrategyParamsError as exc:
            err("; ".join(exc.problems))
            return EXIT_BAD_INPUT
    return send(args.order_id, "set-params", overrides, args.wait)


def orders_resolve(config, args) -> int:
    from domain.resolve import ResolveRefused, check_resolve, resolve_options
    from storage import commands, repo

    view = repo.load_order(args.order_id)
    if view is None:
        err(f"no order {args.order_id}")
        return EXIT_BAD_INPUT
    pair = config.pair(view.pair_id)
    facts = commands.resolve_facts(args.order_id, pair.exchange if pair else "the exchange")
    try:
        effect = check_resolve(facts, args.to)
    except ResolveRefused as exc:
        err(str(exc))
        if view.state.value == "attention":
            for state, what in resolve_options(facts).items():
                print(f"  --to {state.value:<16} {what}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not args.reason or not args.reason.strip():
        err("--reason is required: say why (it is recorded in the order's history)")
        return EXIT_BAD_INPUT
    print(f"order {args.order_id} is in attention: {view.state_reason}")
    print(f"--to {args.to}: {effect}")
    if not args.yes:
        print("nothing done: add --yes to carry it out")
        return 0
    return send(args.order_id, "resolve", {"to": args.to, "reason": args.reason.strip()}, args.wait)


# ---------------------------------------------------------------- alerts

def alerts_list(config, args) -> int:
    from storage import commands

    rows = commands.alerts(open_only=args.open, limit=args.limit)
    print(f"{'ID':>5}  {'RAISED (UTC)':<20}  {'STATE':<6}  {'KIND':<26}  SUBJECT / MESSAGE")
    for a in rows:
        state = "acked" if a.acked_at else ("closed" if a.resolved else "OPEN")
        print(f"{a.id:>5}  {iso(a.created_at):<20}  {state:<6}  {a.kind:<26}  {a.subject}: {a.message}")
    print(f"{len(rows)} alerts", file=sys.stderr)
    return 0


def alerts_ack(config, args) -> int:
    from storage import commands

    row = commands.ack_alert(args.alert_id, time.time())
    if row is None:
        err(f"no alert {args.alert_id}")
        return EXIT_BAD_INPUT
    print(f"alert {row.id} acknowledged ({row.kind} {row.subject})")
    return 0


# ---------------------------------------------------------------- campaigns

def campaigns_list(config, args) -> int:
    """HuFi campaigns as last listed (market-making ones are joined; others only listed), the accounts'
    joins, and each running order's estimated reward of the day with its formula."""
    from storage.campaign_models import CampaignParticipation, HufiEnrollment
    from storage.rewards import listed_campaigns, order_rewards

    rows = listed_campaigns()
    print(f"{'CAMPAIGN':<48} {'TYPE':<28} {'VENUE':<8} {'PAIR':<12} {'ENDS (UTC)':<20} {'FUND':>14}  TARGET/DAY")
    for c in rows:
        target = (c.get("details") or {}).get("daily_volume_target") or "-"
        print(f"{c['key']:<48} {c['type']:<28} {c['exchange_name']:<8} {c['symbol']:<12} "
              f"{c['end_date'][:19]:<20} {c['fund_amount'] + ' ' + c.get('fund_token_symbol', ''):>14}  {target}")
    print(f"{len(rows)} campaigns listed", file=sys.stderr)
    enrollments = list(HufiEnrollment.select().order_by(HufiEnrollment.exchange_account))
    if enrollments:
        print()
        print(f"{'ACCOUNT':<16} {'CAMPAIGN':<48} {'STATE':<9} {'JOINED (UTC)':<20}  NOTE")
        for e in enrollments:
            print(f"{e.exchange_account:<16} {e.campaign_key:<48} {e.state:<9} {iso(e.joined_at) or '-':<20}  "
                  f"{e.last_error or ''}")
    estimates = []
    for part in CampaignParticipation.select().where(CampaignParticipation.hufi_chain_id.is_null(False)):
        r = order_rewards(part.order_id)
        if r and "estimate" in r:
            estimates.append((part.order_id, r))
    if estimates:
        print()
        print(f"{'ORDER':<36}  {'WEIGHTED VOL TODAY':>18}  {'SHARE OF ACCOUNT':>16}  {'EST. REWARD TODAY':>18}")
        for order_id, r in estimates:
            e = r["estimate"]
            share = e["order_share_of_account"]
            print(f"{order_id:<36}  {r['today']['order_weighted_volume']:>18}  "
                  f"{(share[:8] if share else '-'):>16}  {e['order_reward'] + ' ' + e['token']:>18}")
        print(f"formula: {estimates[0][1]['estimate']['formula']}")
        boards = {r["campaign"]: r["leaderboard"] for _, r in estimates if r.get("leaderboard")}
        for key, board in boards.items():
            ours = board["ours"] or {}
            print(f"leaderboard {key} (HuFi, updated {board['updated_at'] or '?'}): {board['participants']} "
                  f"participants; the others' score {board['others_score']}, volume {board['others_volume']}; "
                  f"HuFi's line for our wallet: score {ours.get('score', '-')}, "
                  f"estimated reward {ours.get('estimated_reward') or '-'}")
        if len(boards) < len({r["campaign"] for _, r in estimates}):
            print("(campaigns without a leaderboard read today: other participants unknown, estimates are upper "
                  "bounds)")
    return 0


# ---------------------------------------------------------------- halt

def halt(config, args) -> int:
    """Stop quoting everywhere (or on one account) until lifted; it survives restarts. `--lift` lifts it (and
    an account's rejection breaker); `--status` lists what is in force."""
    from storage import risk

    scope = args.account or risk.ALL
    if args.account and config.exchange(args.account) is None:
        known = ", ".join(e.account_id for e in config.exchanges) or "none"
        err(f"no exchange account {args.account!r} in the config (configured: {known})")
        return EXIT_BAD_INPUT
    now = time.time()
    if args.status:
        rows = risk.in_force()
        for h in rows:
            print(f"{h.scope:<16} {h.kind:<11} since {iso(h.created_at)}  {h.reason}")
        print(f"{len(rows)} halts in force" if rows else "no halt in force: every account may quote")
        return 0
    if args.lift:
        n = risk.lift(scope, args.reason or "lifted by an operator", now)
        what = "all accounts" if scope == risk.ALL else f"account {scope}"
        print(f"{what}: {n} halt(s) lifted" if n else f"{what}: no halt was in force")
        return 0
    reason = args.reason or "halted by an operator"
    new = risk.halt(scope, "operator", reason, now)
    what = "every account" if scope == risk.ALL else f"account {scope}"
    print(f"{'halted' if new else 'already halted'}: {what} — every order on it cancels its quotes within a "
          f"tick and places none until `halt --lift{'' if scope == risk.ALL else ' --account ' + scope}`")
    return 0


# ---------------------------------------------------------------- KPIs and the SLA report

def orders_kpi(config, args) -> int:
    """An order's KPI samples (newest ``--limit``, within --since/--until) and their summary: a table, or
    JSON ``{"order_id", "summary", "samples"}``."""
    from domain.kpi import parse_time
    from storage import kpi, repo

    if repo.load_order(args.order_id) is None:
        err(f"no order {args.order_id}")
        return EXIT_BAD_INPUT
    try:
        since, until = parse_time(args.since), parse_time(args.until)
    except ValueError as exc:
        err(f"--since/--until: {exc}")
        return EXIT_BAD_INPUT
    if args.limit < 0:
        err(f"--limit must be >= 0 (0: every sample), got {args.limit}")
        return EXIT_BAD_INPUT
    samples = kpi.kpi_series(args.order_id, since, until, limit=args.limit or None)
    summary = kpi.kpi_summary(args.order_id, since, until)
    if args.json:
        print(json.dumps({"order_id": args.order_id, "summary": summary, "samples": samples}, indent=2))
        return 0
    columns = (("END (UTC)", "ts", 24), ("RUN s", "running_seconds", 7), ("UPTIME %", "uptime_pct", 8),
               ("SPREAD bps", "spread_bps", 10), ("DEPTH BID", "depth_bid", 14), ("DEPTH ASK", "depth_ask", 14),
               ("MAKER VOL", "maker_volume", 14), ("TAKER VOL", "taker_volume", 14), ("FILLS", "fills", 5),
               ("REALISED", "realised_pnl", 14), ("UNREALISED", "unrealised_pnl", 14), ("BASE", "base", 14),
               ("QUOTE", "quote", 14), ("MID", "mid", 14))

    def cell(value, width: int) -> str:
        return f"{'-' if value is None else value:>{width}}"

    print("  ".join(f"{title:>{width}}" for title, _, width in columns))
    for sample in samples:
        print("  ".join(cell(sample[key], width) for _, key, width in columns))
    s = summary
    print(f"{s['samples']} samples, {s['first_start'] or '-'} .. {s['last_ts'] or '-'}: uptime "
          f"{s['uptime_pct'] or '-'} % of {s['running_seconds']:g} s running; average spread "
          f"{s['avg_spread_bps'] or '-'} bps; average depth bid {s['avg_depth_bid'] or '-'} / ask "
          f"{s['avg_depth_ask'] or '-'}; volume {s['volume']} (maker {s['maker_volume']}, taker "
          f"{s['taker_volume']}); {s['fills']} fills; PnL realised {s['realised_pnl'] or '-'}, unrealised "
          f"{s['unrealised_pnl'] or '-'}")
    return 0


def orders_sla(config, args) -> int:
    """The daily SLA report: one row per order sampled on the UTC day, as JSON (a list) or CSV (header row)."""
    import csv
    from datetime import datetime, timezone

    from domain.kpi import SLA_COLUMNS, parse_day
    from storage import kpi, repo

    if args.format not in ("json", "csv"):
        err(f"--format must be json or csv, got {args.format!r}")
        return EXIT_BAD_INPUT
    try:
        day = parse_day(args.day) if args.day else datetime.now(timezone.utc).date()
    except ValueError as exc:
        err(f"--day: {exc}")
        return EXIT_BAD_INPUT
    if args.order is not None and repo.load_order(args.order) is None:
        err(f"no order {args.order}")
        return EXIT_BAD_INPUT
    rows = kpi.sla_report(day, args.order)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        writer = csv.DictWriter(sys.stdout, fieldnames=SLA_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    print(f"{len(rows)} orders sampled on {day.isoformat()} (UTC)", file=sys.stderr)
    return 0
