"""Gate spot (a HuFi venue). Facts: filled in with the Gate dialect of the fake."""
from integrations.exchange.venues import Venue, register

GATE = register(Venue(ccxt_id="gate", hufi_name="gate"))
