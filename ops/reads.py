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
