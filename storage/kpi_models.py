"""Per-order KPI tables (new in issue 12; created by ensure_schema like every table, no schema version bump).

``kpi_sample`` holds one compact row per order and interval (domain/kpi.py says what each column means);
``kpi_quote_span`` is what the exchange-order rows do not keep: when each order was first acknowledged
and when it first left the book (``updated_at`` moves on later, ``submitted_at`` is before the answer).
"""
from __future__ import annotations

import peewee as pw

from storage.models import BaseModel, DecimalText


class KpiSample(BaseModel):
    """Flows over (ts − interval_seconds, ts]; levels (PnL, inventory, mid) at ts. ts is epoch seconds (UTC)."""
    id = pw.AutoField()                            # the stream tails new samples by id
    order_id = pw.CharField()
    ts = pw.FloatField(index=True)
    interval_seconds = pw.FloatField()
    running_seconds = pw.FloatField()
    two_sided_seconds = pw.FloatField()
    spread_bps = DecimalText(null=True)            # time-weighted over the two-sided time; NULL: never two-sided
    depth_bid = DecimalText(null=True)             # quote value within ±2 % of mid, time-weighted; NULL: no mid
    depth_ask = DecimalText(null=True)
    maker_volume = DecimalText()
    taker_volume = DecimalText()
    fills = pw.IntegerField()
    realised_pnl = DecimalText(null=True)
    unrealised_pnl = DecimalText(null=True)
    base = DecimalText()
    quote = DecimalText()
    mid = DecimalText(null=True)

    class Meta:
        table_name = "kpi_sample"
        indexes = ((("order_id", "ts"), True),)   # one sample per order and end time: a replay is a no-op


class KpiQuoteSpan(BaseModel):
    """When one exchange order rested on the book: written by exchange_repo's state changes (same commit)."""
    client_order_id = pw.CharField(primary_key=True)
    order_id = pw.CharField(index=True)
    acked_at = pw.FloatField()                     # first acknowledged (accepted / partially filled)
    closed_at = pw.FloatField(null=True)           # first final state (filled, canceled, expired, rejected)

    class Meta:
        table_name = "kpi_quote_span"


KPI_MODELS = [KpiSample, KpiQuoteSpan]
