"""Gate spot (gate.io API v4; a HuFi venue).

Facts (ccxt = ccxt 4.5.90 ``ccxt/gate.py``; SDK = Gate's generated SDK docs ``gate/gateapi-python``, i.e. the
API v4 OpenAPI spec, read 2026-03 snapshot):

- options: ``fetchMarkets.types = ['spot']`` keeps ``load_markets`` off futures/delivery/options (ccxt's
  default is spot, swap, future, option); spot markets still ask ``/margin/currency_pairs``, currencies
  come from ``/spot/currencies``, and with credentials ccxt asks ``/account/detail`` once to learn
  whether the key is a unified account (``unifiedAccount`` left to ccxt).
- withdrawal client id: ``POST /withdrawals`` takes ``withdraw_order_id`` ("User-defined order number for
  withdrawal", SDK LedgerRecord); ``GET /wallet/withdrawals`` echoes it in ``withdraw_order_id`` ("Client
  order id, up to 32 length and can only include 0-9, A-Z, a-z, underscore(_), hyphen(-) or dot(.)", SDK
  WithdrawalRecord) and filters by it (SDK WalletApi list_withdrawals ``withdraw_order_id``); ccxt passes
  extra withdraw params through to the JSON body and shows the field in its sample responses.
- client order id: ``text``, ``t-`` + at most 28 characters of ``0-9A-Za-z_-.`` (SDK Order.text); ccxt
  prefixes ``t-`` itself and raises BadRequest above 28 characters (``create_order_request``); orders are
  found by text only while pending ("Only order ID can be used after the order is finished", SDK SpotApi
  get_order / cancel_order).
- trades page: ``GET /spot/my_trades`` ``limit`` "Default: 100, minimum: 1, maximum: 1000" (SDK SpotApi
  list_my_trades); ccxt sends ``limit`` and ``from`` (seconds) as given.
- exact errors: ccxt's gate table maps the order labels (ORDER_NOT_FOUND, BALANCE_NOT_ENOUGH,
  POC_FILL_IMMEDIATELY, INVALID_CURRENCY_PAIR, TOO_MANY_REQUESTS, INVALID_SIGNATURE...), but it maps
  ``API_WITHDRAW_DISABLED`` (withdrawals of this currency/chain suspended) to ExchangeNotAvailable, which
  reads as "outcome unknown"; the refusal is definitive (nothing was created), so ``exact_errors`` makes it
  OperationRejected: counted as a rejection and retried later, not looked up in the history first.
- used weight: Gate reports no used weight; its headers are ``X-Gate-RateLimit-Requests-Remain``,
  ``X-Gate-RateLimit-Limit`` and ``X-Gate-RateLimit-Reset-Timestamp`` (requests LEFT per endpoint and
  window, seen in a real response quoted in ccxt issue #24257), so none is listed here.
"""
from integrations.exchange.venues import Venue, register

GATE = register(Venue(
    ccxt_id="gate",
    hufi_name="gate",
    options={"fetchMarkets": {"types": ["spot"]}, "defaultType": "spot"},
    withdraw_client_id_param="withdraw_order_id",
    withdraw_client_id_field="withdraw_order_id",
    client_id_max_length=28,
    used_weight_headers=(),
    trades_page=1000,
    client_id_prefix="t-",
    cancel_client_id_as_order_id=True,
    withdraw_min_info_field="withdraw_amount_mini",
    exact_errors={"API_WITHDRAW_DISABLED": "OperationRejected"},
    tested="end to end against sim/fake_exchange/gate.py (Gate API v4 spot dialect) with the unmodified "
           "ccxt.gate 4.5.90: markets, currencies, book, balance, post-only orders (time_in_force poc), "
           "fills, client ids (text t-...), deposits, withdrawals with withdraw_order_id",
    source="ccxt 4.5.90 gate.py (describe: urls, options.networks, exceptions; fetch_spot_markets, parse_currency, "
           "create_order_request, fetch_order_request, cancel_order, withdraw, parse_transaction, sign, "
           "handle_errors); Gate API v4 spec via gate/gateapi-python docs: LedgerRecord.withdraw_order_id, "
           "WithdrawalRecord.withdraw_order_id, WalletApi list_withdrawals(withdraw_order_id), Order.text, "
           "SpotApi get_order/cancel_order (text only for pending orders), list_my_trades (limit max 1000), "
           "WithdrawStatus, CurrencyChain.decimal; "
           "ccxt issue #24257 (X-Gate-RateLimit-* headers)",
))
