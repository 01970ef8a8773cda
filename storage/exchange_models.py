"""The orders DB: exchange orders of every mmflow order, their exchange-id mapping, and their fills.

State values and their table: domain/exchange_orders.py. Written only by the units of
storage/exchange_repo.py.
"""
from __future__ import annotations

import peewee as pw

from storage.models import BaseModel, DecimalText


class ExchangeOrder(BaseModel):
    """One order on an exchange, written (INITIALIZED) before it is sent.

    client_order_id is derived from (order_id, seq), so it is known before any I/O and a
    retry sends the same id. exchange_order_id is the mapping to the exchange's own id,
    unique per (account, symbol): Binance counts order ids per symbol. `filled` is the sum
    of this order's fills, never a figure copied from a status report."""
    client_order_id = pw.CharField(primary_key=True)
    order_id = pw.CharField(index=True)           # the mmflow order whose funds this order trades
    exchange_account = pw.CharField()
    symbol = pw.CharField()                       # ccxt unified symbol, BASE/QUOTE
    side = pw.CharField()                         # buy | sell
    price = DecimalText()
    amount = DecimalText()
    filled = DecimalText(default=0)
    # The largest filled quantity the exchange itself reported (status, cancel reply). A final order whose
    # fills sum to less is still owed trades: the stream fetches them, and stopping waits for them.
    reported_filled = DecimalText(null=True)
    state = pw.CharField(index=True)
    exchange_order_id = pw.CharField(null=True)
    level = pw.IntegerField(default=0)            # quote level of the strategy (0 = innermost)
    hanging = pw.BooleanField(null=True)          # left resting after its other side filled; NULL = no
    created_at = pw.FloatField()
    submitted_at = pw.FloatField(null=True)
    updated_at = pw.FloatField()
    last_error = pw.TextField(null=True)

    class Meta:
        table_name = "exchange_order"
        indexes = (
            (("exchange_account", "symbol", "exchange_order_id"), True),   # the mapping: one row per exchange id
            (("order_id", "state"), False),
        )


class Fill(BaseModel):
    """One trade of one of our orders; the key makes a replayed trade a no-op.

    fill_key = "<account>:<symbol>:<trade_id>:<side>" (domain.exchange_orders.fill_key):
    trade ids are per symbol on Binance, and a trade between two of our own orders has
    one id and two sides."""
    fill_key = pw.CharField(primary_key=True)
    trade_id = pw.CharField()
    exchange_account = pw.CharField()
    client_order_id = pw.CharField(index=True)
    order_id = pw.CharField(index=True)
    symbol = pw.CharField()
    side = pw.CharField()
    price = DecimalText()
    amount = DecimalText()
    fee = DecimalText()
    fee_currency = pw.CharField(null=True)
    liquidity = pw.CharField(null=True)           # maker | taker (NULL: the exchange did not say)
    at = pw.FloatField()                          # exchange time of the trade, seconds
    recorded_at = pw.FloatField()

    class Meta:
        table_name = "exchange_fill"


class OrderSequence(BaseModel):
    """Next client-order sequence number of one mmflow order (never reused, even after a crash)."""
    order_id = pw.CharField(primary_key=True)
    next_seq = pw.IntegerField()

    class Meta:
        table_name = "exchange_order_sequence"


EXCHANGE_MODELS = [ExchangeOrder, Fill, OrderSequence]
