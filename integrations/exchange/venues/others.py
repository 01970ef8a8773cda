"""The other HuFi venues: checked at config load (the installed ccxt has the class and every capability the
flow needs), not tested against a fake of ours."""
from integrations.exchange.venues import Venue, register

for _ccxt_id, _hufi in (("kucoin", "kucoin"), ("htx", "htx"), ("bitmart", "bitmart"), ("xt", "xt"),
                        ("kraken", "kraken"), ("bigone", "bigone"), ("hyperliquid", "hyperliquid")):
    register(Venue(ccxt_id=_ccxt_id, hufi_name=_hufi))
