"""The operator's commands: orders list/show/statement/commands, pause/resume/stop/exit/set-params/resolve,
alerts list/ack, halt, campaigns. They talk to the running service only through the database, via the
command and read layer the HTTP API shares (ops/commands.py, ops/reads.py): a command is queued, the
service carries it out and records the outcome, and the CLI waits (bounded) for it and prints done or
refused with the reason. This module only prints.

Exit codes: 0 done; 1 refused by the service; 2 bad input; 75 queued but not carried out in time (the
service may not be running: it will carry it out when it starts).
"""
from __future__ import annotations

import json
import sys
import time

from ops import commands as ops
from ops import reads

EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2
EXIT_PENDING = 75


def err(text: str) -> None:
    print(f"error: {text}", file=sys.stderr)


# ---------------------------------------------------------------- reads

def orders_list(config, args) -> int:
    problem = reads.state_problem(args.state)
    if problem:
        err(problem)
        return EXIT_BAD_INPUT
    rows = reads.order_rows(config, args.state, args.limit)
    print(f"{'ORDER':<36}  {'STATE':<17} {'PAIR':<10} {'CREATED (UTC)':<20}  {'PNL (quote)':>14}  {'STORED':<8}  "
          "REASON")
    for row in rows:   # hot and archived orders alike; STORED says which
        print(f"{row['order_id']:<36}  {row['state']:<17} {row['pair'] or '?':<10} {row['created_at']:<20}  "
              f"{row['realized_pnl']:>14}  {'archived' if row['archived'] else 'hot':<8}  {row['reason'][:100]}")
    print(f"{len(rows)} orders", file=sys.stderr)
    return 0


def orders_show(config, args) -> int:
    document = reads.order_document(config, args.order_id)
    if document is None:
        err(f"no order {args.order_id}")
        return EXIT_BAD_INPUT
    print(json.dumps(document, indent=2, default=str))
    return 0


def orders_statement(config, args) -> int:
    from domain.statement import format_statement

    from storage.rewards import order_rewards

    with reads.order_source(config, args.order_id):   # hot or archived alike
        statement = reads.statement_of(config, args.order_id)
        rewards = order_rewards(args.order_id) if statement is not None else None
    if statement is None:
        err(f"no order {args.order_id}")
        return EXIT_BAD_INPUT
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
    rows = reads.commands_list(args.order_id, limit=args.limit)
    print(f"{'ID':>6}  {'QUEUED (UTC)':<20}  {'ORDER':<36}  {'COMMAND':<10}  OUTCOME")
    for c in rows:
        outcome = c["result"] or "pending (not carried out yet)"
        print(f"{c['id']:>6}  {c['created_at']:<20}  {c['order_id']:<36}  {c['command']:<10}  {outcome}")
    return 0


# ---------------------------------------------------------------- commands to the service

def report(outcome: ops.CommandOutcome) -> int:
    """Print a command's outcome; its exit code."""
    if outcome.status in ("unknown_order", "bad_input"):
        err(outcome.message)
        return EXIT_BAD_INPUT
    command_id, command, order_id = outcome.command_id, outcome.command, outcome.order_id
    if outcome.status == "pending" and not outcome.waited:
        print(f"command {command_id} queued: {command} order {order_id} (state {outcome.state})")
        return 0
    if outcome.status == "pending":
        print(f"command {command_id} queued: {command} order {order_id}; not carried out within {outcome.waited:g}s"
              f" — is the service running? It will be carried out when it runs (see `orders commands`).")
        return EXIT_PENDING
    print(f"command {command_id}: {command} order {order_id}: {outcome.message}")
    return 0 if outcome.status == "done" else EXIT_REFUSED


def send(order_id: str, command: str, args: dict, wait: float) -> int:
    return report(ops.submit(order_id, command, args, wait=wait))


def orders_simple(config, args) -> int:
    """pause / stop (alias of pause) / resume / exit."""
    payload = {"reason": args.reason} if args.reason else {}
    return send(args.order_id, args.orders_command, payload, args.wait)


def orders_set_params(config, args) -> int:
    if reads.order_owner(args.order_id)[0] is False:
        err(f"no order {args.order_id}")
        return EXIT_BAD_INPUT
    overrides = ops.parse_params(args.params)
    if isinstance(overrides, str):
        err(overrides)
        return EXIT_BAD_INPUT
    return report(ops.set_params(config, args.order_id, overrides, wait=args.wait))


def orders_resolve(config, args) -> int:
    plan = ops.plan_resolve(config, args.order_id, args.to)
    if plan.problem:
        err(plan.problem)
        for state, what in plan.options.items():
            print(f"  --to {state:<16} {what}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not args.reason or not args.reason.strip():
        err("--reason is required: say why (it is recorded in the order's history)")
        return EXIT_BAD_INPUT
    print(f"order {args.order_id} is in attention: {plan.state_reason}")
    print(f"--to {args.to}: {plan.effect}")
    if not args.yes:
        print("nothing done: add --yes to carry it out")
        return 0
    return send(args.order_id, "resolve", {"to": args.to, "reason": args.reason.strip()}, args.wait)


# ---------------------------------------------------------------- alerts

def alerts_list(config, args) -> int:
    rows = reads.alerts(open_only=args.open, limit=args.limit)
    print(f"{'ID':>5}  {'RAISED (UTC)':<20}  {'STATE':<6}  {'KIND':<26}  SUBJECT / MESSAGE")
    for a in rows:
        state = "OPEN" if a["state"] == "open" else a["state"]
        print(f"{a['id']:>5}  {a['created_at']:<20}  {state:<6}  {a['kind']:<26}  {a['subject']}: {a['message']}")
    print(f"{len(rows)} alerts", file=sys.stderr)
    return 0


def alerts_ack(config, args) -> int:
    row = ops.ack_alert(args.alert_id, time.time())
    if row is None:
        err(f"no alert {args.alert_id}")
        return EXIT_BAD_INPUT
    print(f"alert {row.id} acknowledged ({row.kind} {row.subject})")
    return 0


# ---------------------------------------------------------------- campaigns

def campaigns_list(config, args) -> int:
    """HuFi campaigns as last listed (market-making ones are joined; others only listed), the accounts'
    joins, and each running order's estimated reward of the day with its formula."""
    listing = reads.campaigns()
    rows = listing["campaigns"]
    print(f"{'CAMPAIGN':<48} {'TYPE':<28} {'VENUE':<8} {'PAIR':<12} {'ENDS (UTC)':<20} {'FUND':>14}  TARGET/DAY")
    for c in rows:
        target = (c.get("details") or {}).get("daily_volume_target") or "-"
        print(f"{c['key']:<48} {c['type']:<28} {c['exchange_name']:<8} {c['symbol']:<12} "
              f"{c['end_date'][:19]:<20} {c['fund_amount'] + ' ' + c.get('fund_token_symbol', ''):>14}  {target}")
    print(f"{len(rows)} campaigns listed", file=sys.stderr)
    enrollments = listing["enrollments"]
    if enrollments:
        print()
        print(f"{'ACCOUNT':<16} {'CAMPAIGN':<48} {'STATE':<9} {'JOINED (UTC)':<20}  NOTE")
        for e in enrollments:
            print(f"{e['exchange_account']:<16} {e['campaign_key']:<48} {e['state']:<9} {e['joined_at'] or '-':<20}  "
                  f"{e['last_error'] or ''}")
    estimates = [(r["order_id"], r) for r in listing["estimates"]]
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

    problem = ops.account_problem(config, args.account)
    if problem:
        err(problem)
        return EXIT_BAD_INPUT
    if args.status:
        rows = reads.halts()
        for h in rows:
            print(f"{h['scope']:<16} {h['kind']:<11} since {h['since']}  {h['reason']}")
        print(f"{len(rows)} halts in force" if rows else "no halt in force: every account may quote")
        return 0
    act = ops.lift_halt if args.lift else ops.halt
    outcome = act(config, args.account, args.reason, time.time())
    scope = outcome.scope
    if args.lift:
        what = "all accounts" if scope == risk.ALL else f"account {scope}"
        print(f"{what}: {outcome.changed} halt(s) lifted" if outcome.changed else f"{what}: no halt was in force")
        return 0
    what = "every account" if scope == risk.ALL else f"account {scope}"
    print(f"{'halted' if outcome.changed else 'already halted'}: {what} — every order on it cancels its quotes "
          f"within a tick and places none until `halt --lift{'' if scope == risk.ALL else ' --account ' + scope}`")
    return 0


# ---------------------------------------------------------------- KPIs and the SLA report

def orders_kpi(config, args) -> int:
    """An order's KPI samples (newest ``--limit``, within --since/--until) and their summary: a table, or
    JSON ``{"order_id", "summary", "samples"}``."""
    from domain.kpi import parse_time
    from storage import kpi

    if reads.order_owner(args.order_id)[0] is False:
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
    with reads.order_source(config, args.order_id):   # hot or archived alike
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
