"""Orders: list, detail, statement, payment instructions, and the commands on one order.

A user sees only the orders they own (the first payer): another user's order is 404, exactly like an
order that does not exist. Viewer and operator tokens see every order. Commands go through
``ops.commands`` (queued in the database, carried out by the service's order actor): 200 with the outcome
when done within the wait, 202 with the command id while pending, 409 when the service refused it.
"""
from __future__ import annotations

from decimal import Decimal

from api.errors import Problem
from api.routing import OPERATOR, USER, Router, principal
from api.schemas import (CommandOut, ErrorBody, InstructionsOut, InstructionsQuery, KpiOut, KpiQuery, OrderDetail, OrderPath,
                         OrdersOut, OrdersQuery, ReasonIn, ResolveIn, SetParamsIn, StatementOut)
from domain.intents import IntentRefused, add_funds_legs, exit_leg, parse_principal
from ops import commands as ops
from ops import reads

COMMAND_ERRORS = {202: CommandOut, 409: CommandOut}
ADD_FUNDS_STATES = ("running", "paused")


def visible_order(order_id: str) -> None:
    """404 unless the order exists and the caller may see it (its owner, or a viewer/operator token)."""
    exists, owner = reads.order_owner(order_id)
    who = principal()
    if not exists or (not who.reads_all and (who.user_id is None or owner != who.user_id)):
        raise Problem(404, f"no order {order_id}")


def read_visible(order_id: str, read):
    """``read()`` of an order the caller may see; 404 if not (or if it vanished meanwhile)."""
    from storage.archive_segments import ArchiveCorrupt

    try:
        visible_order(order_id)
        document = read()
    except ArchiveCorrupt as exc:
        raise Problem(500, f"order {order_id} is archived and its record cannot be read: {exc}") from None
    if document is None:
        raise Problem(404, f"no order {order_id}")
    return document


def command_response(outcome: ops.CommandOutcome):
    """The HTTP answer to a command's outcome."""
    if outcome.status == "unknown_order":
        raise Problem(404, outcome.message)
    if outcome.status == "bad_input":
        raise Problem(400, outcome.message)
    body = {"command_id": outcome.command_id, "order_id": outcome.order_id, "command": outcome.command,
            "status": outcome.status, "message": outcome.message}
    return body, {"done": 200, "pending": 202, "refused": 409}[outcome.status]


def register(router: Router) -> None:
    ctx = router.ctx

    def wait_of(value: float | None) -> float:
        return ctx.settings.command_wait if value is None else value

    @router.route("GET", "/api/v1/orders", access=USER, ok=OrdersOut, tag="orders",
                  summary="orders, newest first: a user's own; every order for viewer/operator (filters, paging)")
    def list_orders(query: OrdersQuery):
        problem = reads.state_problem(query.state)
        if problem:
            raise Problem(400, problem)
        who = principal()
        user_id = query.user_id if who.reads_all else who.user_id
        try:
            return reads.order_page(ctx.config, state=query.state, pair_id=query.pair_id, user_id=user_id,
                                    limit=query.limit, cursor=query.cursor)
        except ValueError as exc:
            raise Problem(400, str(exc)) from None

    @router.route("GET", "/api/v1/orders/<order_id>", access=USER, ok=OrderDetail, tag="orders",
                  summary="one order: state and history, tally, ledger, fills, statement, HuFi estimate, KPIs")
    def get_order(path: OrderPath):
        return read_visible(path.order_id, lambda: reads.order_detail(ctx.config, path.order_id))

    @router.route("GET", "/api/v1/orders/<order_id>/statement", access=USER, ok=StatementOut, tag="orders",
                  summary="the order's statement per asset with its check line (final once settled)")
    def get_statement(path: OrderPath):
        document = read_visible(path.order_id, lambda: reads.statement_document(ctx.config, path.order_id))
        hufi = document.pop("hufi", None)
        final = document.pop("final")
        return reads.jsonable({"order_id": path.order_id, "statement": document, "final": final, "hufi": hufi})

    @router.route("GET", "/api/v1/orders/<order_id>/kpi", access=USER, ok=KpiOut, tag="orders",
                  summary="the order's KPI time series (two-sided uptime, spread, depth, volume, PnL, inventory)")
    def get_kpi(path: OrderPath, query: KpiQuery):
        from storage.kpi import kpi_series, kpi_summary

        visible_order(path.order_id)
        try:
            with reads.order_source(ctx.config, path.order_id):   # hot or archived alike
                samples = kpi_series(path.order_id, since=query.since, until=query.until, limit=query.limit)
                summary = kpi_summary(path.order_id, since=query.since, until=query.until)
        except ValueError as exc:
            raise Problem(400, str(exc)) from None
        return reads.jsonable({"order_id": path.order_id, "summary": summary, "samples": samples})

    @router.route("GET", "/api/v1/orders/<order_id>/instructions", access=USER, ok=InstructionsOut, tag="orders",
                  summary="how to exit (memo and pay link) and add funds (memo, and pay links for given amounts)",
                  extra={503: ErrorBody})
    def get_instructions(path: OrderPath, query: InstructionsQuery):
        visible_order(path.order_id)
        return instructions(ctx, path.order_id, query)

    @router.route("POST", "/api/v1/orders/<order_id>/exit", access=USER, ok=CommandOut, tag="commands",
                  summary="stop the order, bring its funds back and pay the owner (owner or operator)",
                  extra=COMMAND_ERRORS)
    def exit_order(path: OrderPath, body: ReasonIn):
        visible_order(path.order_id)
        who = principal()
        if who.role == "viewer":
            raise Problem(403, "operator role or the order's owner required (you are viewer)")
        args = {"reason": body.reason} if body.reason else {}
        if who.role == "user":
            args = {"reason": body.reason or "the owner asked through the API", "source": "owner"}
        return command_response(ops.submit(path.order_id, "exit", args, wait=wait_of(body.wait)))

    def simple(name: str, summary: str):
        def command(path: OrderPath, body: ReasonIn):
            args = {"reason": body.reason} if body.reason else {}
            return command_response(ops.submit(path.order_id, name, args, wait=wait_of(body.wait)))
        command.__name__ = command.__qualname__ = f"{name}_order"  # the endpoint's name
        router.route("POST", f"/api/v1/orders/<order_id>/{name}", access=OPERATOR, ok=CommandOut, tag="commands",
                     summary=summary, extra=COMMAND_ERRORS)(command)

    simple("pause", "cancel the order's quotes; its funds stay on the exchange (operator)")
    simple("resume", "quote again after a pause (operator)")

    @router.route("POST", "/api/v1/orders/<order_id>/set-params", access=OPERATOR, ok=CommandOut, tag="commands",
                  summary="override strategy parameters of one order (operator)", extra=COMMAND_ERRORS)
    def set_params(path: OrderPath, body: SetParamsIn):
        overrides = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in body.params.items()}
        return command_response(ops.set_params(ctx.config, path.order_id, overrides, wait=wait_of(body.wait)))

    @router.route("POST", "/api/v1/orders/<order_id>/resolve", access=OPERATOR, ok=CommandOut, tag="commands",
                  summary="move an order out of attention to a legal target (operator)", extra=COMMAND_ERRORS)
    def resolve(path: OrderPath, body: ResolveIn):
        plan, outcome = ops.resolve(ctx.config, path.order_id, body.to, body.reason, wait=wait_of(body.wait))
        if outcome.status == "bad_input":
            raise Problem(400, outcome.message, options=plan.options)
        response, status = command_response(outcome)
        response["effect"] = plan.effect
        return response, status


def _order_facts(ctx, order_id: str):
    from domain.payment import FeeRequirements
    from storage.models import Order

    row = Order.get_by_id(order_id)
    pair = ctx.config.pair(row.pair_id)
    if pair is None:
        raise Problem(409, f"the order's pair {row.pair_id} is not configured")
    fees = FeeRequirements(row.base_fee_asset_id, row.base_fee_amount, row.quote_fee_asset_id, row.quote_fee_amount,
                           row.market_making_fee_percent)
    return row, pair, fees


def _deposits_so_far(order_id: str) -> int:
    from storage.models import Snapshot

    return Snapshot.select().where((Snapshot.order_id == order_id) & (Snapshot.purpose == "top_up")).count()


def instructions(ctx, order_id: str, query: InstructionsQuery) -> dict:
    """Exit and add-funds instructions; add-funds pay links only for the amounts asked (with the order's own
    fees, fixed when it was created)."""
    if not ctx.bot_user_id:
        raise Problem(503, "pay links are not available: the bot's id is unknown (keystore unreadable)")
    row, pair, fees = _order_facts(ctx, order_id)
    symbols = reads.Symbols(ctx.config)
    add_funds = {"memo": None, "legs": [], "accepted_in_states": list(ADD_FUNDS_STATES),
                 "accepted_now": row.state in ADD_FUNDS_STATES,
                 "note": "each leg carries its own Mixin withdrawal fee and the market-making fee; funds that never "
                         "cover them are refunded at the payment timeout"}
    from domain.memo import ACTION_DEPOSIT, encode_market_making
    add_funds["memo"] = encode_market_making(pair.pair_id, order_id, action=ACTION_DEPOSIT)
    if query.base_amount is not None or query.quote_amount is not None:
        try:
            base = parse_principal(query.base_amount or "0", "base_amount")
            quote = parse_principal(query.quote_amount or "0", "quote_amount")
            legs = add_funds_legs(pair, fees, base, quote, order_id=order_id, bot_user_id=ctx.bot_user_id,
                                  symbols=symbols, nonce=str(_deposits_so_far(order_id)))
        except IntentRefused as exc:
            raise Problem(400, str(exc)) from None
        add_funds["legs"] = [leg.as_dict() for leg in legs]
        add_funds["principal"] = {"base": str(base), "quote": str(quote)}
    exit_instruction = exit_leg(pair, order_id=order_id, bot_user_id=ctx.bot_user_id, symbols=symbols).as_dict()
    return {"order_id": order_id, "state": row.state, "exit": exit_instruction, "add_funds": add_funds,
            "fees": {"market_making_fee_percent": reads.money(Decimal(row.market_making_fee_percent))}}
