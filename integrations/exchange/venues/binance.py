"""Binance spot. Not a HuFi venue; the venue mmflow was first built and tested on."""
from integrations.exchange.venues import Venue, register

BINANCE = register(Venue(
    ccxt_id="binance",
    options={"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False, "fetchCurrencies": True,
             "defaultType": "spot"},
    withdraw_client_id_param="withdrawOrderId",
    withdraw_client_id_field="withdrawOrderId",
    used_weight_headers=("X-MBX-USED-WEIGHT-1M", "X-SAPI-USED-IP-WEIGHT-1M"),
    cancel_replace=True,
    lean_open_orders=True,
    tested="end to end against sim/fake_exchange (Binance spot dialect) with the unmodified ccxt.binance",
    source="Binance spot API docs (POST /sapi/v1/capital/withdraw/apply withdrawOrderId; withdraw history "
           "echoes it; POST /api/v3/order/cancelReplace); ccxt 4.5.90 binance.py (edit_order -> editSpotOrder)",
))
