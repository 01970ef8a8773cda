"""Fake exchange: a loopback HTTP server speaking enough of Binance spot's REST API that the
unmodified ``ccxt.binance`` (sync) works against it, with a matching engine and a price process.

Usage::

    fx = FakeExchange(seed=1).start()
    fx.add_market("BTC/USDT", "BTC", "USDT", tick_size="0.01", step_size="0.00001", mid="60000")
    fx.add_currency("USDT", [{"network": "TRX", "withdrawFee": "1", "withdrawMin": "10"},
                             {"network": "ETH", "withdrawFee": "3", "withdrawMin": "20", "isDefault": True}])
    fx.add_account("key", "secret"); fx.credit("key", "USDT", "10000")
    ex = ccxt.binance(fx.ccxt_config("key", "secret"))

``FakeExchange`` (server.py) in short:

- lifecycle: ``start()``/``stop()``, context manager, ``url``; ``clock`` drives every timestamp,
  delay, window and rate-limit minute (``check_recv_window = False`` if it is not wall time);
- setup: ``add_account``, ``add_market`` (filters, fees, mid, synthetic ladder),
  ``add_currency`` (Binance ``networkList`` fields), ``credit`` (sets the free balance);
- reads: ``balance``, ``deposit_address``, ``requests_log`` [(method, path, status)],
  ``unknown_paths``, ``weight_stats``, ``auth_failures``, ``internal_errors``;
- wallet: ``credit_deposit`` (pending, then success after ``delay``/``deposit_delay``, once per
  txid), ``withdraw_delay``, ``add_withdrawal_listener``, ``finish_withdrawal``;
- market: ``set_mid``, ``mid``, ``place_taker``, ``step_price_process``,
  ``start_price_process``/``stop_price_process``;
- faults: ``inject`` (status/delay/after_apply), ``order_not_found_window``, ``rate_limit``
  (Binance weights, 429 then 418), ``reset_faults``;
- ``ccxt_config(api_key, secret)``: the ``ccxt.binance({...})`` constructor dict.

Amounts inside the fake are ``Decimal``; JSON carries them as strings, as Binance does.

Endpoints (method path -> ccxt 4.5.90 calls that use it):

- GET  /api/v3/exchangeInfo              load_markets (PRICE_FILTER, LOT_SIZE, NOTIONAL | MIN_NOTIONAL)
- GET  /sapi/v1/capital/config/getall    load_markets (fetchCurrencies: networks, fees, limits),
                                         fetch_deposit_withdraw_fees
- GET  /api/v3/depth                     fetch_order_book
- GET  /api/v3/ticker/24hr               fetch_ticker, fetch_tickers
- GET  /api/v3/ticker/bookTicker         fetch_bids_asks
- GET  /api/v3/ticker/price              fetch_last_prices
- GET  /api/v3/time, /api/v3/ping        fetch_time
- GET  /sapi/v1/system/status            fetch_status
- GET  /api/v3/account                   fetch_balance
- POST /api/v3/order                     create_order (LIMIT GTC/IOC/FOK, LIMIT_MAKER = postOnly, MARKET
                                         by quantity or quoteOrderQty; newClientOrderId)
- GET  /api/v3/order                     fetch_order (orderId or origClientOrderId)
- DELETE /api/v3/order                   cancel_order (orderId or origClientOrderId)
- GET  /api/v3/openOrders                fetch_open_orders
- DELETE /api/v3/openOrders              cancel_all_orders
- GET  /api/v3/allOrders                 fetch_orders, fetch_closed_orders, fetch_canceled_orders
- GET  /api/v3/myTrades                  fetch_my_trades, fetch_order_trades
- GET  /sapi/v1/asset/tradeFee           fetch_trading_fees
- GET  /sapi/v1/capital/deposit/address  fetch_deposit_address (address, tag, explorer url -> network)
- GET  /sapi/v1/capital/deposit/hisrec   fetch_deposits
- POST /sapi/v1/capital/withdraw/apply   withdraw
- GET  /sapi/v1/capital/withdraw/history fetch_withdrawals

Any other path answers 404 and is recorded in ``unknown_paths``.

Modules: ``engine`` (pure matching engine), ``accounts`` (accounts, balance ledger),
``market`` (mid, synthetic ladder, price process, tickers), ``wallet`` (coins, networks,
deposits, withdrawals), ``faults`` (fault injection, request weights, 429/418), ``server``
(HTTP, signatures, routes, the ``FakeExchange`` facade).
"""
from .accounts import Account, Balances, InsufficientBalance
from .engine import SYNTHETIC, EngineError, Fill, MarketSpec, MatchingEngine, Order
from .server import ApiError, FakeExchange
from .wallet import Deposit, Wallet, WalletError, Withdrawal

__all__ = [
    "Account",
    "ApiError",
    "Balances",
    "Deposit",
    "EngineError",
    "FakeExchange",
    "Fill",
    "InsufficientBalance",
    "MarketSpec",
    "MatchingEngine",
    "Order",
    "SYNTHETIC",
    "Wallet",
    "WalletError",
    "Withdrawal",
]
