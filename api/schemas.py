"""The API's request and response schemas, declared once (pydantic v2): flask-openapi3 validates requests
with them and publishes them in /openapi.json. Money is a decimal string; times are ISO-8601 UTC strings."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
DECIMAL_PATTERN = r"^[0-9]{1,16}(\.[0-9]{1,18})?$"

Money = str
Json = dict[str, Any]


class Loose(BaseModel):
    """A response object: the named fields are promised, more may follow."""
    model_config = ConfigDict(extra="allow")


class Strict(BaseModel):
    """A request object: unknown fields are refused (a typo is an error, not silently ignored)."""
    model_config = ConfigDict(extra="forbid")


class OptionalBody(Strict):
    """A request body whose fields all have defaults: an empty request (no JSON at all) means ``{}``."""

    @model_validator(mode="before")
    @classmethod
    def _empty(cls, value):
        return {} if value is None else value


# ---------------------------------------------------------------- errors and health

class ErrorBody(Loose):
    error: str = Field(description="what went wrong, one line")


class Health(Loose):
    status: Literal["ok"]


class Readiness(Loose):
    ready: bool
    reasons: list[str]
    checks: dict[str, Any]


# ---------------------------------------------------------------- path and query

class OrderPath(BaseModel):
    order_id: str = Field(pattern=UUID_PATTERN, description="the order id (UUID)")


class AlertPath(BaseModel):
    alert_id: int = Field(ge=1, le=2**62)


class OrdersQuery(Strict):
    state: str | None = Field(default=None, max_length=40)
    pair_id: str | None = Field(default=None, pattern=UUID_PATTERN)
    user_id: str | None = Field(default=None, pattern=UUID_PATTERN)
    limit: int = Field(default=50, ge=1, le=500)
    cursor: str | None = Field(default=None, max_length=200, description="next_cursor of the previous page")


class AlertsQuery(Strict):
    open: bool = False
    limit: int = Field(default=200, ge=1, le=1000)


class CommandsQuery(Strict):
    order_id: str | None = Field(default=None, pattern=UUID_PATTERN)
    limit: int = Field(default=50, ge=1, le=500)


class InstructionsQuery(Strict):
    base_amount: str | None = Field(default=None, pattern=DECIMAL_PATTERN, description="add-funds principal (base)")
    quote_amount: str | None = Field(default=None, pattern=DECIMAL_PATTERN, description="add-funds principal (quote)")


class KpiQuery(Strict):
    since: str | None = Field(default=None, max_length=40, description="epoch seconds or ISO-8601 (sample end, inclusive)")
    until: str | None = Field(default=None, max_length=40, description="epoch seconds or ISO-8601 (sample end, inclusive)")
    limit: int = Field(default=1000, ge=1, le=10000, description="the newest N samples, oldest first")


class SlaQuery(Strict):
    day: str | None = Field(default=None, pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", description="UTC day (default: yesterday)")
    order_id: str | None = Field(default=None, pattern=UUID_PATTERN)


# ---------------------------------------------------------------- pairs and intents

class PairOut(Loose):
    pair_id: str
    symbol: str
    exchange: str
    enabled: bool
    base_asset_id: str
    quote_asset_id: str
    base_symbol: str
    quote_symbol: str
    min_base_amount: Money
    max_base_amount: Money | None
    min_quote_amount: Money
    max_quote_amount: Money | None
    max_duration: float | None
    fees: Json
    campaigns: list[Json]


class PairsOut(Loose):
    pairs: list[PairOut]


class IntentIn(Strict):
    pair_id: str = Field(pattern=UUID_PATTERN)
    base_amount: str = Field(pattern=DECIMAL_PATTERN, description="base principal to market-make with")
    quote_amount: str = Field(pattern=DECIMAL_PATTERN, description="quote principal to market-make with")


class PayLeg(Loose):
    asset_id: str
    symbol: str
    amount: Money
    memo: str
    trace_id: str
    pay_url: str
    purpose: str


class IntentOut(Loose):
    order_id: str
    pair_id: str
    legs: list[PayLeg]
    fees: Json
    payment_timeout: float = Field(description="seconds from the first payment within which every leg must arrive")


class InstructionsOut(Loose):
    order_id: str
    exit: PayLeg
    add_funds: Json


# ---------------------------------------------------------------- auth

class AuthorizeOut(Loose):
    authorize_url: str
    state: str


class CallbackIn(Strict):
    code: str = Field(min_length=1, max_length=512)
    state: str | None = Field(default=None, max_length=200)


class RefreshIn(Strict):
    refresh_token: str = Field(min_length=1, max_length=512)


class LogoutIn(OptionalBody):
    refresh_token: str | None = Field(default=None, max_length=512)


class SessionOut(Loose):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    user_id: str


class LogoutOut(Loose):
    revoked: int


class MeOut(Loose):
    role: Literal["user", "viewer", "operator"]
    user_id: str | None
    subject: str


# ---------------------------------------------------------------- orders

class OrderRow(Loose):
    order_id: str
    pair_id: str
    pair: str | None
    state: str
    reason: str
    owner: str | None
    created_at: str | None
    updated_at: str | None
    realized_pnl: str = Field(default="", description="realised PnL in the quote asset (empty: none yet)")
    archived: Json | None = Field(default=None, description="null: hot; else the order is in cold storage: "
                                  "{at, segment} (read from its record like a hot one)")


class OrdersOut(Loose):
    orders: list[OrderRow]
    next_cursor: str | None


class OrderDetail(Loose):
    order_id: str
    state: str
    history: list[Json]
    paid: Json
    ledger: Json
    fills: list[Json]
    statement: Json | None
    hufi: Json | None
    kpi: Json | None


class KpiOut(Loose):
    order_id: str
    summary: Json = Field(description="uptime %, average spread and depth, volumes, fills, PnL, inventory")
    samples: list[Json] = Field(description="KPI samples, oldest first (storage/kpi.py kpi_series)")


class SlaOut(Loose):
    day: str
    rows: list[Json] = Field(description="one row per order: uptime %, average spread, average depth, volume")


class StatementOut(Loose):
    order_id: str
    statement: Json
    final: bool
    hufi: Json | None


class ReasonIn(OptionalBody):
    reason: str = Field(default="", max_length=500)
    wait: float | None = Field(default=None, ge=0, le=60, description="seconds to wait for the outcome")


class SetParamsIn(Strict):
    params: dict[str, str | int | float | bool] = Field(min_length=1, max_length=40,
                                                        description="strategy parameters; end_at ISO-8601")
    wait: float | None = Field(default=None, ge=0, le=60)


class ResolveIn(Strict):
    to: str = Field(min_length=1, max_length=40, description="the target state")
    reason: str = Field(min_length=1, max_length=500)
    wait: float | None = Field(default=None, ge=0, le=60)


class CommandOut(Loose):
    command_id: int | None
    order_id: str
    command: str
    status: Literal["done", "refused", "pending"]
    message: str


# ---------------------------------------------------------------- operator

class AttentionOut(Loose):
    orders: list[Json]


class AlertsOut(Loose):
    alerts: list[Json]


class AlertOut(Loose):
    id: int
    kind: str
    subject: str
    message: str
    state: str


class CommandsOut(Loose):
    commands: list[Json]


class HaltIn(OptionalBody):
    action: Literal["halt", "lift"] = "halt"
    account: str | None = Field(default=None, max_length=100, description="one exchange account (default: all)")
    reason: str = Field(default="", max_length=500)


class HaltsOut(Loose):
    halts: list[Json]


class HaltOut(Loose):
    scope: str
    action: str
    changed: int
    message: str
    halts: list[Json]


class AccountsOut(Loose):
    accounts: list[Json]


class CampaignsOut(Loose):
    campaigns: list[Json]
    enrollments: list[Json]
    estimates: list[Json]
