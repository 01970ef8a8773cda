"""MEXC spot (a HuFi venue).

Facts, each from a source (MEXC spot v3 docs, www.mexc.com/api-docs/spot-v3, mirrored in
github.com/mexcdevelop/apidocs; ccxt 4.5.90 ``ccxt/mexc.py``):

- withdrawal client id: ``POST /api/v3/capital/withdraw`` ("Withdraw(new)", the endpoint ccxt 4.5.90's
  ``withdraw`` calls) takes an optional ``withdrawOrderId``; ccxt passes extra params through. The
  withdraw history (``GET /api/v3/capital/withdraw/history``) returns ``withdrawOrderId`` in each record
  ("custom id; not returned if there is none", docs zh). The history has no filter by it (documented
  parameters: coin, status, limit, startTime, endTime): ``find_withdrawal`` filters the records itself.
- no client id length or alphabet is documented for ``newClientOrderId`` / ``withdrawOrderId``: 36 kept
  (mmflow's order ids are at most 28 characters of [a-z0-9-], its withdrawal ids 29).
- no used-weight response header is documented (limits: 429 + Retry-After, per endpoint).
- ccxt 4.5.90's ``mexc.fetch_markets`` always loads spot AND swap markets (public
  ``GET /api/v1/contract/detail``): ``options.fetchMarkets`` is not read by it, so no option keeps
  ``load_markets`` on spot; ``fetchMarkets.types`` below only matters to a ccxt that honours it.
- ccxt's mexc error table maps ``-2011`` (cancel of an unknown order) to BadRequest and has no entry for
  ``-2013`` ("Order does not exist.", ccxt issue #21614): ``exact_errors`` maps both to OrderNotFound, so
  an unknown order is ``not_found`` on lookup and cancel (the update stream resolves it, and a cancel
  racing a fill is not counted as a rejection).
- deposit history records carry no ``id`` (docs; ccxt tells deposits from withdrawals by it).
"""
from integrations.exchange.venues import Venue, register

MEXC = register(Venue(
    ccxt_id="mexc",
    hufi_name="mexc",
    options={"defaultType": "spot",
             "fetchMarkets": {"types": {"spot": True, "swap": {"linear": False, "inverse": False}}}},
    withdraw_client_id_param="withdrawOrderId",
    withdraw_client_id_field="withdrawOrderId",
    client_id_max_length=36,
    used_weight_headers=(),
    trades_page=100,   # myTrades limit: at most 100 (docs)
    exact_errors={"-2013": "OrderNotFound", "-2011": "OrderNotFound"},  # unknown order on lookup / cancel
    tested="against sim/fake_exchange/mexc.py (MEXC spot v3 dialect) with the unmodified ccxt.mexc 4.5.90: "
           "markets, currencies, book, balance, post-only orders and fills, cancel, deposits, withdrawals, "
           "errors, 429",
    source="MEXC spot v3 API docs (Wallet Endpoints: Withdraw(new) withdrawOrderId; Withdraw History echoes "
           "withdrawOrderId; General Info: signature, 429/418, error codes; mexcdevelop/apidocs); ccxt 4.5.90 "
           "mexc.py (sign, withdraw -> POST capital/withdraw with netWork/memo, parse_transaction, "
           "fetch_markets, exceptions); ccxt issue #21614 (-2013 Order does not exist)",
))
