"""Operator operations: the attention queue, alerts, commands, halts, exchange accounts, HuFi campaigns.

Reads need a viewer (or operator) token; acknowledging an alert and halting need an operator token.
"""
from __future__ import annotations

from api.errors import Problem
from api.routing import OPERATOR, VIEWER, Router
from api.schemas import (AccountsOut, AlertOut, AlertPath, AlertsOut, AlertsQuery, AttentionOut, CampaignsOut,
                         CommandsOut, CommandsQuery, HaltIn, HaltOut, HaltsOut)
from ops import commands as ops
from ops import reads


def register(router: Router) -> None:
    ctx = router.ctx

    @router.route("GET", "/api/v1/attention", access=VIEWER, ok=AttentionOut, tag="operator",
                  summary="orders in attention: the reason and what each legal resolve target does")
    def attention_queue():
        return {"orders": reads.jsonable(reads.attention(ctx.config))}

    @router.route("GET", "/api/v1/alerts", access=VIEWER, ok=AlertsOut, tag="operator",
                  summary="alerts, newest first (open: only those not acknowledged or resolved)")
    def list_alerts(query: AlertsQuery):
        return {"alerts": reads.alerts(open_only=query.open, limit=query.limit)}

    @router.route("POST", "/api/v1/alerts/<int:alert_id>/ack", access=OPERATOR, ok=AlertOut, tag="operator",
                  summary="acknowledge an alert (operator)")
    def ack_alert(path: AlertPath):
        row = ops.ack_alert(path.alert_id, ctx.clock())
        if row is None:
            raise Problem(404, f"no alert {path.alert_id}")
        return reads.alert_row(row)

    @router.route("GET", "/api/v1/commands", access=VIEWER, ok=CommandsOut, tag="operator",
                  summary="recent commands and their outcomes, newest first")
    def list_commands(query: CommandsQuery):
        return {"commands": reads.commands_list(query.order_id, limit=query.limit)}

    @router.route("GET", "/api/v1/halt", access=VIEWER, ok=HaltsOut, tag="operator", summary="halts in force")
    def list_halts():
        return {"halts": reads.halts()}

    @router.route("POST", "/api/v1/halt", access=OPERATOR, ok=HaltOut, tag="operator",
                  summary="halt quoting on every account (or one) until lifted, or lift (operator)")
    def set_halt(body: HaltIn):
        act = ops.lift_halt if body.action == "lift" else ops.halt
        outcome = act(ctx.config, body.account, body.reason, ctx.clock())
        if outcome.status == "bad_input":
            raise Problem(400, outcome.message)
        return {"scope": outcome.scope, "action": body.action, "changed": outcome.changed,
                "message": outcome.message, "halts": reads.halts()}

    @router.route("GET", "/api/v1/accounts", access=VIEWER, ok=AccountsOut, tag="operator",
                  summary="exchange accounts: reconciled, the orders' balances on each, halts, breakers, alerts")
    def list_accounts():
        return {"accounts": reads.accounts(ctx.config, ctx.services)}

    @router.route("GET", "/api/v1/campaigns", access=VIEWER, ok=CampaignsOut, tag="operator",
                  summary="HuFi campaigns as last listed, enrollments, each joined order's estimated reward")
    def list_campaigns():
        return reads.jsonable(reads.campaigns())
