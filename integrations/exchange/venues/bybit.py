"""Bybit spot, unified trading account (a HuFi venue).

Facts and their sources (ccxt = ccxt 4.5.90 ``bybit.py``; docs = Bybit's v5 API docs,
bybit-exchange.github.io/docs/v5, read from the bybit-exchange/docs repository):

- options: ``fetchMarkets.types=['spot']`` keeps ``load_markets`` on GET /v5/market/instruments-info
  ?category=spot (ccxt ``fetch_markets`` otherwise also loads linear, inverse and option markets);
  ``defaultType='spot'`` (ccxt's default is ``swap``); ``enableUnifiedMargin=False``,
  ``enableUnifiedAccount=True``, ``unifiedMarginStatus=6`` are what ccxt ``is_unified_enabled`` would
  otherwise ask GET /v5/user/query-api and /v5/account/info for on the first fetch_balance /
  create_order / fetch_order / withdraw: the account is assumed to be a unified trading account (UTA 2.0,
  Bybit's account type for new users), so fetch_balance reads wallet-balance?accountType=UNIFIED and
  withdraw sends accountType=UTA; ``fetchOrder.acknowledged=True``: ccxt ``fetch_order`` on a unified
  account raises ArgumentsRequired without it (GET /v5/order/realtime only knows open orders and the 500
  most recent closed ones — docs order/open-order).
- withdrawal client id: POST /v5/asset/withdraw/create takes ``requestId`` ("Customised ID, globally
  unique, it is used for idempotent verification", 1..32 letters/digits — docs asset/withdraw/withdraw),
  but GET /v5/asset/withdraw/query-record neither returns it nor filters by it (its fields: coin, chain,
  amount, withdrawFee, status, toAddress, tag, createTime, updateTime, withdrawId, withdrawType, txID,
  tax… — docs asset/withdraw/withdraw-record). A client id that cannot be looked up again is not the
  client id ``find_withdrawal`` needs, so both are None: a withdrawal whose reply was lost is found by
  address + tag + amount + time (``withdrawals_like``). (ccxt passes ``requestId`` through unchanged;
  mmflow does not send it.)
- client order id: ``orderLinkId``, "A max of 36 characters. Combinations of numbers, letters (upper and
  lower cases), dashes, and underscores", always unique (docs order/create-order); ccxt maps its
  ``clientOrderId`` param to it in create_order only.
- trades page: 100 — GET /v5/execution/list takes ``limit`` in [1, 100] (docs order/execution; the fake
  refuses more with 10001). Its rows come newest first within [startTime, startTime + 7 days].
- exact errors ccxt's table lacks or keeps too coarse (docs error, "Spot Trade" / "UTA"): 170141 "Duplicate
  clientOrderId" and 110072 "OrderLinkedID is duplicate" are a client order id already used
  (DuplicateOrderId; ccxt: InvalidOrder), 170381 / 170382 "Order quantity too large" (InvalidOrder; not in
  ccxt 4.5.90's table), 131097 "Withdrawal of this currency has been closed" — a refused withdrawal, nothing
  debited (OperationRejected; ccxt: a bare ExchangeError, which mmflow must treat as an unknown outcome).
- used-weight headers: none. Bybit's limits are per UID and endpoint (docs rate-limit); each answer
  carries X-Bapi-Limit / X-Bapi-Limit-Status (the REMAINING requests) / X-Bapi-Limit-Reset-Timestamp, not
  a used weight; over the limit: retCode 10006 (ccxt RateLimitExceeded).
"""
from integrations.exchange.venues import Venue, register

BYBIT = register(Venue(
    ccxt_id="bybit",
    hufi_name="bybit",
    options={"fetchMarkets": {"types": ["spot"]}, "defaultType": "spot",
             "enableUnifiedMargin": False, "enableUnifiedAccount": True, "unifiedMarginStatus": 6,
             "fetchOrder": {"acknowledged": True}},
    withdraw_client_id_param=None,
    withdraw_client_id_field=None,
    client_id_max_length=36,
    order_client_id_param="orderLinkId",
    order_by_client_id_via="fetch_open_orders",
    withdraw_params={"feeType": 1},
    trades_newest_first=True,
    used_weight_headers=(),
    trades_page=100,
    exact_errors={"170141": "DuplicateOrderId", "110072": "DuplicateOrderId", "170381": "InvalidOrder",
                  "170382": "InvalidOrder", "131097": "OperationRejected"},
    tested="against sim/fake_exchange/bybit.py (Bybit v5 spot, unified account) with the unmodified ccxt.bybit "
           "4.5.90: markets, currencies, order book, balance, post-only orders and fills, cancel, trades, deposit "
           "address, deposits, withdrawals; the full flow needs the shared changes listed in "
           "tests/test_fake_bybit.py (client order id param orderLinkId and lookup by client id through "
           "fetch_open_orders, withdrawal address from addressTo, withdraw feeType=1)",
    source="ccxt 4.5.90 bybit.py (describe options/networks/exceptions, sign, is_unified_enabled, fetch_markets, "
           "fetch_currencies, fetch_balance, create_order_request, fetch_order, cancel_order, fetch_my_trades, "
           "fetch_deposit_address, fetch_withdrawals, withdraw, parse_transaction); Bybit v5 docs "
           "(bybit-exchange/docs: v5/guide, v5/error, v5/enum, v5/rate-limit/rate-limit, v5/order/create-order, "
           "v5/order/cancel-order, v5/order/open-order, v5/order/execution, v5/account/wallet-balance, "
           "v5/asset/coin-info, v5/asset/deposit/master-deposit-addr, v5/asset/deposit/deposit-record, "
           "v5/asset/withdraw/withdraw, v5/asset/withdraw/withdraw-record)",
))
