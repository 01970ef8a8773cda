"""Exchange gateway: one greenlet-safe ccxt client per configured exchange account.

- ``account.ExchangeAccount``: the client (limiter, Decimal results, classified errors);
- ``limiter.WeightedLimiter``: weighted token buckets, concurrency cap, account-wide 429/418 pause;
- ``weights``: request weights per endpoint (Binance spot's by default);
- ``errors``: DefinitiveError / UnknownOutcome / RateLimited and ``classify``.

The actor that owns an account and publishes it as ``services.exchanges[account_id]`` is
``actors.gateway.ExchangeGateway``.
"""
from integrations.exchange.errors import (
    AuthenticationFailed,
    DefinitiveError,
    ExchangeError,
    RateLimited,
    UnknownOutcome,
    classify,
)

__all__ = [
    "AuthenticationFailed",
    "DefinitiveError",
    "ExchangeError",
    "RateLimited",
    "UnknownOutcome",
    "classify",
]
