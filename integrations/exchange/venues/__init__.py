"""What differs per venue, in one small table: everything else talks to ccxt's unified API.

One module per venue (binance.py, mexc.py, gate.py, bybit.py; others.py for the HuFi venues without a
fake of ours) defines a `Venue`: ccxt options that keep `load_markets` on spot, the withdrawal client id
(the request parameter that carries ours, and the field of the venue's withdrawal record that echoes
it — or none: then a withdrawal is found again in the venue's history by address, tag, amount and
time), the response headers that report used request weight, and what mmflow knows about testing it.
Nothing outside this package asks "which venue is this?".
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

# The unified ccxt methods the whole flow needs (funding, quoting, the update stream, the way back).
REQUIRED_CAPABILITIES: tuple[str, ...] = (
    "fetchCurrencies", "fetchDepositAddress", "fetchDeposits", "fetchWithdrawals", "withdraw",
    "fetchOrderBook", "fetchBalance", "createOrder", "cancelOrder", "fetchOrder", "fetchOpenOrders",
    "fetchMyTrades",
)


@dataclass(frozen=True)
class Venue:
    ccxt_id: str
    hufi_name: str | None = None                 # the venue's name in HuFi's exchange enum, if HuFi lists it
    options: Mapping[str, Any] = field(default_factory=dict)   # ccxt options merged under the config's
    withdraw_client_id_param: str | None = None  # request parameter carrying our withdrawal client id
    withdraw_client_id_field: str | None = None  # field of the venue's withdrawal record echoing it
    client_id_max_length: int = 36
    # the ccxt param naming our client order id in fetch_order / cancel_order (ccxt maps "clientOrderId"
    # itself for binance; ccxt.bybit passes params through, so there it must be Bybit's own "orderLinkId")
    order_client_id_param: str = "clientOrderId"
    # how an order is looked up by client id: ccxt "fetch_order", or "fetch_open_orders" where ccxt's
    # fetch_order always sends the exchange id (bybit: orderId=None) but the open-orders endpoint finds an
    # order of any recent status by client id (bybit GET /v5/order/realtime?orderLinkId=)
    order_by_client_id_via: str = "fetch_order"
    withdraw_params: Mapping[str, Any] = field(default_factory=dict)  # extra params of every withdraw
    trades_newest_first: bool = False            # a full trades page holds the NEWEST trades after `since`
    used_weight_headers: tuple[str, ...] = ()
    trades_page: int = 1000                      # the most trades one myTrades request returns
    client_id_prefix: str = ""                   # the venue reports our client order id with this prefix (gate: "t-")
    cancel_client_id_as_order_id: bool = False   # ccxt's cancel_order ignores params clientOrderId: cancel prefix+cid as the id
    withdraw_min_info_field: str | None = None   # the minimum withdrawal in fetch_deposit_withdraw_fees()[code]["info"]
    # one request that cancels an order and places its replacement (ccxt edit_order; Binance spot
    # POST /api/v3/order/cancelReplace, STOP_ON_FAILURE); elsewhere a refresh is cancel, then place
    cancel_replace: bool = False
    # open orders read from the venue's own JSON (integrations/exchange/lean_orders.py) instead of ccxt's
    # fetch_open_orders: the same request, the records parsed without ccxt's per-order cost
    lean_open_orders: bool = False
    exact_errors: Mapping[str, str] = field(default_factory=dict)  # venue error code → ccxt exception name,
                                                                   # where ccxt's own table lacks it
    tested: str = "not tested against a fake"   # what the README says about it
    source: str = ""                             # where the facts above come from

    @property
    def has_withdraw_client_id(self) -> bool:
        return bool(self.withdraw_client_id_param)


GENERIC = Venue("generic")
_VENUES: dict[str, Venue] = {}


def register(venue: Venue) -> Venue:
    _VENUES[venue.ccxt_id] = venue
    return venue


def venue(ccxt_id: str) -> Venue:
    """The venue's profile; a ccxt id without one gets the generic profile (no client id, no options)."""
    _load()
    return _VENUES.get(ccxt_id, Venue(ccxt_id))


def venues() -> Mapping[str, Venue]:
    _load()
    return MappingProxyType(_VENUES)


def missing_capabilities(has: Mapping[str, Any], needed: Iterable[str] = REQUIRED_CAPABILITIES) -> list[str]:
    """The unified methods a ccxt class lacks (its `has` says False/None; 'emulated' counts as present)."""
    return [name for name in needed if not has.get(name)]


def _load() -> None:
    if _VENUES:
        return
    from integrations.exchange.venues import binance, bybit, gate, mexc, others  # noqa: F401  (they register)


__all__ = ["GENERIC", "REQUIRED_CAPABILITIES", "Venue", "missing_capabilities", "register", "venue", "venues"]
