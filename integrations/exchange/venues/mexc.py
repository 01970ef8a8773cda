"""MEXC spot (a HuFi venue). Facts: filled in with the MEXC dialect of the fake."""
from integrations.exchange.venues import Venue, register

MEXC = register(Venue(ccxt_id="mexc", hufi_name="mexc"))
