"""What the operator CLI prints and the API returns: plain JSON-ready dicts (Decimals as strings, times as
ISO-8601 UTC), read from the database and the config. Nothing here writes.

- ``pairs(config, fees_of)``: configured pairs with bounds, fees and active HuFi campaigns
- ``order_page(...)``: orders with filters and paging; ``order_rows`` the CLI's list
- ``order_document(config, id)``: what ``orders show`` prints; ``order_detail`` adds fills and KPIs (API)
- ``statement(config, id)``, ``alerts(...)``, ``attention(config)``, ``commands_list(...)``,
  ``halts()``, ``accounts(config, services)``, ``campaigns()``
"""
from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from domain.money import fmt


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def money(value) -> str:
    return fmt(value) if isinstance(value, Decimal) else str(value)


def jsonable(value: Any) -> Any:
    """Decimals as strings, tuples as lists, recursively (what json.dumps and the API need)."""
    if isinstance(value, Decimal):
        return fmt(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


class Symbols:
    """Asset ids shown as symbols (from the configured pairs); unknown ids stay ids."""

    def __init__(self, config) -> None:
        self.names: dict[str, str] = {}
        for pair in config.pairs:
            self.names.setdefault(pair.base_asset_id, pair.base_symbol)
            self.names.setdefault(pair.quote_asset_id, pair.quote_symbol)

    def __call__(self, asset_id: str | None) -> str:
        return self.names.get(asset_id or "", asset_id or "-")


# ---------------------------------------------------------------- pairs

def _campaigns_for(exchange_ccxt: str | None, symbol: str) -> list[dict]:
    from integrations.hufi.client import hufi_exchange_name
    from storage.rewards import listed_campaigns

    if not exchange_ccxt:
        return []
    venue = hufi_exchange_name(exchange_ccxt)
    out = []
    for c in listed_campaigns():
        if c is None or c.get("exchange_name") != venue or c.get("symbol", "").upper() != symbol.upper():
            continue
        if str(c.get("status", "")).lower() != "active":
            continue
        out.append(jsonable({k: c.get(k) for k in ("key", "type", "status", "start_date", "end_date",
                                                   "fund_amount", "fund_token_symbol", "details")}))
    return out


def pairs(config, fees_of: Callable[[Any], Any] | None = None) -> list[dict]:
    """Every configured pair: ids, symbols, bounds, fees (market-making percent; Mixin withdrawal fees when
    ``fees_of(pair) -> FeeRequirements`` answers) and the HuFi campaigns listed as active for it."""
    out = []
    percent = config.payments.market_making_fee_percent
    for p in config.pairs:
        account = config.exchange(p.exchange)
        fees: dict[str, Any] = {"market_making_fee_percent": money(percent), "withdrawal": None}
        if fees_of is not None and p.enabled:
            try:
                req = fees_of(p)
            except Exception:  # noqa: BLE001 - Mixin unreachable: the pair is still listed, fees unknown
                req = None
            if req is not None:
                fees["withdrawal"] = {
                    "base": {"asset_id": req.base_fee_asset_id, "amount": money(req.base_fee_amount)},
                    "quote": {"asset_id": req.quote_fee_asset_id, "amount": money(req.quote_fee_amount)}}
        out.append({
            "pair_id": p.pair_id, "symbol": p.symbol, "exchange": p.exchange, "enabled": p.enabled,
            "base_asset_id": p.base_asset_id, "quote_asset_id": p.quote_asset_id,
            "base_symbol": p.base_symbol, "quote_symbol": p.quote_symbol,
            "min_base_amount": money(p.min_base_amount),
            "max_base_amount": money(p.max_base_amount) if p.max_base_amount is not None else None,
            "min_quote_amount": money(p.min_quote_amount),
            "max_quote_amount": money(p.max_quote_amount) if p.max_quote_amount is not None else None,
            "max_duration": p.max_duration, "fees": fees,
            "campaigns": _campaigns_for(getattr(account, "ccxt_id", None), p.symbol),
        })
    return out


# ---------------------------------------------------------------- orders

def state_problem(state: str | None) -> str | None:
    """Why ``state`` is not an order state (None if it is one, or not given)."""
    from domain.states import OrderState

    states = [s.value for s in OrderState]
    if state is not None and state not in states:
        return f"unknown state {state!r}; one of: {', '.join(states)}"
    return None


def _pnl(config, row) -> str:
    from storage import repo
    from storage.reports import strategy_report

    pair = config.pair(row.pair_id)
    if pair is not None and repo.ledger_balances(row.order_id):
        report = strategy_report(row.order_id, pair.base_symbol, pair.quote_symbol, None)
        return report.get("realized_pnl", "") or ""
    return ""


def order_row(config, row, *, pnl: bool = False) -> dict:
    pair = config.pair(row.pair_id)
    out = {"order_id": row.order_id, "pair_id": row.pair_id, "pair": pair.symbol if pair else None,
           "state": row.state, "reason": row.state_reason, "owner": row.user_id, "created_at": iso(row.created_at),
           "updated_at": iso(row.updated_at)}
    if pnl:
        out["realized_pnl"] = _pnl(config, row)
    return out


def listed_row(config, order_id: str) -> dict | None:
    """One order of a list, hot or archived, read by the same code either way (``order_source``: an archived
    order's record is read and checked); ``archived``: None when hot, else where its record is."""
    from storage.archive_models import archived_entries
    from storage.archive_segments import ArchiveCorrupt
    from storage.models import Order

    try:
        with order_source(config, order_id) as archived:
            row = Order.get_or_none(Order.order_id == order_id)
            if row is None:
                return None
            out = order_row(config, row, pnl=True)
    except ArchiveCorrupt as exc:   # listed from its index row: one damaged record never hides the others
        entry = archived_entries([order_id]).get(order_id)
        if entry is None:
            return None
        pair = config.pair(entry.pair_id)
        return {"order_id": order_id, "pair_id": entry.pair_id, "pair": pair.symbol if pair else None,
                "state": entry.state, "reason": f"archive record unreadable: {exc}", "owner": entry.user_id,
                "created_at": None, "updated_at": None, "realized_pnl": "",
                "archived": {"at": iso(entry.archived_at), "segment": entry.segment_id}}
    out["archived"] = {"at": iso(archived.archived_at), "segment": archived.segment_id} if archived else None
    return out


def order_rows(config, state: str | None, limit: int) -> list[dict]:
    """Orders, hot and archived, newest first (what `orders list` prints), with each one's realised PnL in the
    quote asset."""
    return order_page(config, state=state, limit=limit)["orders"]


def _cursor_text(created_at: float, order_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at!r}|{order_id}".encode()).decode().rstrip("=")


def parse_cursor(cursor: str) -> tuple[float, str] | None:
    """The (created_at, order_id) a cursor points after, or None if it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, _, order_id = text.partition("|")
        value = float(created)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if not order_id or value != value or value in (float("inf"), float("-inf")):
        return None
    return value, order_id


def order_page(config, *, state: str | None = None, pair_id: str | None = None, user_id: str | None = None,
               limit: int = 50, cursor: str | None = None) -> dict:
    """One page of orders, hot and archived alike, newest first, filtered; ``next_cursor`` continues after its
    last row (None: the end). A cursor that is not one of ours raises ValueError.

    The page is chosen from the keys only — the hot ``orders`` table and the archive's index and listing tables
    (storage.archive.listed), each asked for its newest ``limit + 1`` after the cursor, merged — and only the
    rows on the page are then read whole (an archived one from its record)."""
    from storage import archive
    from storage.models import Order

    query = Order.select(Order.created_at, Order.order_id)
    if state:
        query = query.where(Order.state == state)
    if pair_id:
        query = query.where(Order.pair_id == pair_id)
    if user_id:
        query = query.where(Order.user_id == user_id)
    after = None
    if cursor:
        after = parse_cursor(cursor)
        if after is None:
            raise ValueError("cursor is not one this API gave")
        created, order_id = after
        query = query.where((Order.created_at < created)
                            | ((Order.created_at == created) & (Order.order_id < order_id)))
    hot = list(query.order_by(Order.created_at.desc(), Order.order_id.desc()).limit(limit + 1).tuples())
    cold = archive.listed(state=state, pair_id=pair_id, user_id=user_id, before=after, limit=limit + 1)
    keys = sorted(set(hot + cold), reverse=True)[:limit + 1]   # a set: one archived between the two reads
    more = len(keys) > limit
    keys = keys[:limit]
    rows = [r for r in (listed_row(config, oid) for _, oid in keys) if r is not None]
    return {"orders": rows, "next_cursor": _cursor_text(*keys[-1]) if more and keys else None}


def _archive_directory(config):
    settings = getattr(config, "archive", None)
    return settings.directory if settings is not None else None


def order_source(config, order_id: str):
    """The hot tables, or the order's archive record when it was archived (storage/archive_view.py): every
    read of one order below goes through it, so archived orders read exactly like hot ones."""
    from storage.archive_view import order_source as source

    return source(order_id, _archive_directory(config))


def order_owner(order_id: str) -> tuple[bool, str | None]:
    """(the order exists, hot or archived; its owner: the first payer)."""
    from storage.archive_models import archived_entries
    from storage.models import Order

    row = Order.select(Order.user_id).where(Order.order_id == order_id).first()
    if row is None:
        entry = archived_entries([order_id]).get(order_id)
        return (entry is not None, entry.user_id if entry is not None else None)
    return (True, row.user_id)


def order_document(config, order_id: str) -> dict | None:
    """One order as `orders show` prints it: state, history, movements, ledger, trading, statement, HuFi;
    ``archived`` says where its record is when it is in cold storage."""
    with order_source(config, order_id) as archived:
        return _mark_archived(_order_document(config, order_id), archived)


def _mark_archived(document: dict | None, archived) -> dict | None:
    if document is not None and archived is not None:
        document["archived"] = {"at": iso(archived.archived_at), "segment": archived.segment_id}
    return document


def _order_document(config, order_id: str) -> dict | None:
    from domain.statement import Statement
    from storage import exit_repo, repo
    from storage.models import Order
    from storage.rewards import order_rewards
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
        "paid": {sym(k): money(v) for k, v in view.tallies.items()},
        "fees": {"withdrawal_fee_base": f"{money(view.fees.base_fee_amount)} {sym(view.fees.base_fee_asset_id)}",
                 "withdrawal_fee_quote": f"{money(view.fees.quote_fee_amount)} {sym(view.fees.quote_fee_asset_id)}",
                 "market_making_fee_percent": money(view.fees.market_making_fee_percent)},
        "breakdown": json.loads(row.breakdown) if row.breakdown else None,
        "history": [{"at": iso(h.at), "from": h.from_state, "to": h.to_state, "reason": h.reason}
                    for h in repo.order_history(order_id)],
        "movements": [{"kind": m.kind, "request_id": m.request_id, "asset": sym(m.asset_id), "amount": money(m.amount),
                       "state": m.state, "note": m.last_error, "leg": m.leg, "destination": m.destination,
                       "exchange_withdrawal_id": m.exchange_withdrawal_id, "txid": m.exchange_txid or m.withdrawal_hash,
                       "arrived": money(m.arrived_amount) if m.arrived_amount is not None else None}
                      for m in repo.order_movements(order_id)],
        "ledger": {k: money(v) for k, v in sorted(repo.ledger_balances(order_id).items())},
    }
    if pair is not None and out["ledger"]:
        from storage.reports import strategy_report
        out["strategy"] = strategy_report(order_id, pair.base_symbol, pair.quote_symbol, exit_repo.exit_price(order_id))
    statement: Statement | None = order_statement(order_id, config)
    out["statement"] = statement.as_dict() if statement is not None else None
    out["hufi"] = order_rewards(order_id)
    return out


def fills(order_id: str, limit: int = 500, config=None) -> list[dict]:
    """The order's exchange fills, newest first."""
    with order_source(config, order_id):
        return _fills(order_id, limit)


def _fills(order_id: str, limit: int) -> list[dict]:
    from storage.exchange_models import Fill

    rows = Fill.select().where(Fill.order_id == order_id).order_by(Fill.at.desc(), Fill.fill_key).limit(limit)
    return [{"trade_id": f.trade_id, "symbol": f.symbol, "side": f.side, "price": money(f.price),
             "amount": money(f.amount), "fee": money(f.fee), "fee_currency": f.fee_currency, "liquidity": f.liquidity,
             "at": iso(f.at)} for f in rows]


def _kpi_summary(order_id: str) -> dict | None:
    from storage.kpi import kpi_summary
    return kpi_summary(order_id)


def order_detail(config, order_id: str) -> dict | None:
    """``order_document`` plus what the API shows besides: pair id, tally by asset id, fills, KPI summary,
    whether the statement is final."""
    from storage import repo
    from storage.models import Order

    with order_source(config, order_id) as archived:
        document = _order_document(config, order_id)
        if document is None:
            return None
        row = Order.get_by_id(order_id)
        document.update({
            "pair_id": row.pair_id, "updated_at": iso(row.updated_at),
            "tally": {k: money(v) for k, v in repo.tallies_of(order_id).items()},
            "fills": _fills(order_id, 500), "kpi": _kpi_summary(order_id),
            "statement_final": row.statement is not None,
        })
    return jsonable(_mark_archived(document, archived))


def statement_of(config, order_id: str):
    from storage.statements import order_statement

    with order_source(config, order_id):
        return order_statement(order_id, config)


def statement_document(config, order_id: str) -> dict | None:
    """The statement (with its check line), the HuFi estimate and whether it is final (frozen at settlement),
    as `orders statement --json` prints it (``final`` aside)."""
    from storage.models import Order
    from storage.rewards import order_rewards
    from storage.statements import order_statement

    with order_source(config, order_id):
        statement = order_statement(order_id, config)
        if statement is None:
            return None
        final = Order.select(Order.statement).where(Order.order_id == order_id).scalar() is not None
        return {**statement.as_dict(), "hufi": order_rewards(order_id), "final": final}


# ---------------------------------------------------------------- commands, alerts, halts

def command_row(c) -> dict:
    try:
        args = json.loads(c.args or "{}")
    except ValueError:
        args = None
    status = "pending" if not c.result else ("done" if c.result.startswith("done") else "refused")
    return {"id": c.id, "order_id": c.order_id, "command": c.command, "args": args, "created_at": iso(c.created_at),
            "processed_at": iso(c.processed_at), "result": c.result, "status": status}


def commands_list(order_id: str | None = None, limit: int = 50) -> list[dict]:
    from storage import commands

    return [command_row(c) for c in commands.recent(order_id, limit=limit)]


def alert_row(a) -> dict:
    state = "acked" if a.acked_at else ("closed" if a.resolved else "open")
    return {"id": a.id, "kind": a.kind, "subject": a.subject, "message": a.message, "created_at": iso(a.created_at),
            "acked_at": iso(a.acked_at), "resolved": bool(a.resolved), "state": state}


def alerts(open_only: bool = False, limit: int = 200) -> list[dict]:
    from storage import commands

    return [alert_row(a) for a in commands.alerts(open_only=open_only, limit=limit)]


def halt_row(h) -> dict:
    return {"scope": h.scope, "kind": h.kind, "reason": h.reason, "since": iso(h.created_at)}


def halts() -> list[dict]:
    from storage import risk

    return [halt_row(h) for h in risk.in_force()]


def attention(config, limit: int = 500) -> list[dict]:
    """Orders in attention, oldest first, each with the reason and what each legal resolve target does."""
    from domain.resolve import resolve_options
    from storage import commands
    from storage.models import Order

    out = []
    rows = Order.select().where(Order.state == "attention").order_by(Order.updated_at).limit(limit)
    for row in rows:
        pair = config.pair(row.pair_id)
        facts = commands.resolve_facts(row.order_id, pair.exchange if pair else "the exchange")
        options = resolve_options(facts) if facts is not None else {}
        out.append({**order_row(config, row), "since": iso(row.updated_at),
                    "resolve_options": {state.value: what for state, what in options.items()}})
    return out


# ---------------------------------------------------------------- accounts and campaigns

def _ledger_by_pair() -> dict[str, dict[str, Decimal]]:
    from storage.models import LedgerEntry, Order

    out: dict[str, dict[str, Decimal]] = {}
    rows = (LedgerEntry.select(Order.pair_id, LedgerEntry.asset, LedgerEntry.delta)
            .join(Order, on=(LedgerEntry.order_id == Order.order_id)).tuples())
    for pair_id, asset, delta in rows:
        per = out.setdefault(pair_id, {})
        per[asset] = per.get(asset, Decimal(0)) + Decimal(delta)
    return out


def accounts(config, services=None) -> list[dict]:
    """Every configured exchange account: enabled, reconciled (published by its gateway; None without the
    service), the orders' balances on it (the sum of their ledgers), halts and breakers in force, open alerts."""
    from storage import commands, risk

    ledgers = _ledger_by_pair()
    published = getattr(services, "exchanges", None) if services is not None else None
    in_force = risk.in_force()
    open_alerts = commands.alerts(open_only=True, limit=1000)
    out = []
    for account in (*config.exchanges, *config.disabled_exchanges):
        balances: dict[str, Decimal] = {}
        for pair in config.pairs:
            if pair.exchange == account.account_id:
                for asset, value in ledgers.get(pair.pair_id, {}).items():
                    balances[asset] = balances.get(asset, Decimal(0)) + value
        scope_halts = [halt_row(h) for h in in_force if h.scope in (risk.ALL, account.account_id)]
        out.append({
            "account_id": account.account_id, "exchange": account.ccxt_id, "enabled": account.enabled,
            "reconciled": (account.account_id in published) if published is not None and account.enabled else None,
            "balances": {k: money(v) for k, v in sorted(balances.items()) if v},
            "halted": bool(scope_halts), "halts": scope_halts,
            "breakers": [h for h in scope_halts if h["kind"] != "operator"],
            "alerts": [alert_row(a) for a in open_alerts
                       if a.subject == account.account_id or a.subject.startswith(account.account_id + ":")],
        })
    return out


def campaigns() -> dict:
    """HuFi campaigns as last listed, the accounts' enrollments, and each joined order's estimate (values as
    stored: pass through ``jsonable`` for JSON)."""
    from storage.campaign_models import CampaignParticipation, HufiEnrollment
    from storage.rewards import listed_campaigns, order_rewards

    listed = [c for c in listed_campaigns() if c is not None]
    enrollments = [{"exchange_account": e.exchange_account, "campaign_key": e.campaign_key, "state": e.state,
                    "joined_at": iso(e.joined_at), "last_error": e.last_error}
                   for e in HufiEnrollment.select().order_by(HufiEnrollment.exchange_account)]
    estimates = []
    for part in CampaignParticipation.select().where(CampaignParticipation.hufi_chain_id.is_null(False)):
        r = order_rewards(part.order_id)
        if r and "estimate" in r:
            estimates.append({"order_id": part.order_id, **r})
    return {"campaigns": listed, "enrollments": enrollments, "estimates": estimates}
