"""Bybit spot (a HuFi venue). Facts: filled in with the Bybit dialect of the fake."""
from integrations.exchange.venues import Venue, register

BYBIT = register(Venue(ccxt_id="bybit", hufi_name="bybit"))
