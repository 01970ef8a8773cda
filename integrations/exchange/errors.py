"""What a failed exchange call means for the caller: classification of ccxt's exceptions.

Three outcomes, and the caller's next step follows from the class alone:

- ``DefinitiveError``: the exchange answered and refused; **nothing happened**
  (``executed is False``). Repeating the same request gives the same answer, except where
  ``retryable`` says otherwise (``kind == "clock"``: InvalidNonce / -1021, the request was
  refused for its timestamp and may be signed again; the account already sent it once more, and
  the rejection breaker does not count it: a host clock off or a saturated process, not a refusal).
  ``kind`` names the reason: ``insufficient_funds``, ``invalid_order``, ``duplicate``
  (a client order id already in use), ``not_found``, ``auth``, ``permission``, ``bad_symbol``,
  ``bad_request``, ``invalid_address``, ``rejected``, ``not_supported``, ``clock``.

  ``OrderNotFound`` is a DefinitiveError with ``not_found = True``. It is definitive **for the
  lookup** (the exchange says it does not know the order *now*), but right after a create whose
  outcome was unknown it is NOT proof that the order does not exist: Binance answers -2013 /
  -2011 for an order placed a moment ago (its matching engine and query service are not in
  sync). Resolve an unknown create by looking the client order id up again after a delay, or
  by listing open orders / trades, before deciding it was never placed.

- ``UnknownOutcome``: no usable answer (timeout, connection error, 5xx / ExchangeNotAvailable,
  Binance's -1000 ``OperationFailed``, an answer ccxt could not parse, or an error ccxt could not
  map to a meaning). The request **may or may not have taken effect** (``executed is None``).
  It is never to be read as "failed": an order or withdrawal is resolved later by looking it up
  by its client id (``fetch_order(client_order_id=...)``, ``find_withdrawal(client_id)``).

- ``RateLimited``: 429 / 418 (``DDoSProtection``, ``RateLimitExceeded``): refused *before*
  execution, so repeating is safe for every call, creates and withdrawals included. The
  account already pauses and retries these itself; callers only see it when the account's
  retry budget is exhausted. ``retry_after`` is the pause in seconds the exchange asked for.

Anything that is not a ccxt error (a bug, ``RecursionError`` from a late gevent patch) is not
classified: it propagates unchanged and crashes loudly.
"""
from __future__ import annotations

from integrations.redaction import redact

import ccxt

__all__ = [
    "AuthenticationFailed",
    "DefinitiveError",
    "ExchangeError",
    "RateLimited",
    "UnknownOutcome",
    "classify",
]


class ExchangeError(Exception):
    """Base of every error the exchange gateway raises. ``cause`` is the original ccxt exception."""

    executed: bool | None = None
    retryable: bool = False
    not_found: bool = False

    def __init__(self, message: str, *, kind: str, cause: BaseException | None = None,
                 http_status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.cause = cause
        self.http_status = http_status

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, message={str(self)!r})"


class DefinitiveError(ExchangeError):
    """The exchange refused; nothing happened. See the module docstring for ``not_found``."""

    executed = False

    def __init__(self, message: str, *, kind: str, cause: BaseException | None = None,
                 http_status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message, kind=kind, cause=cause, http_status=http_status)
        self.retryable = retryable
        self.not_found = kind == "not_found"


class AuthenticationFailed(DefinitiveError):
    """Bad key, bad signature, IP not whitelisted, or the key lacks a permission (``kind``
    ``auth`` / ``permission``). Fixing it needs an operator, not a retry."""


class UnknownOutcome(ExchangeError):
    """The request may or may not have taken effect: look it up, never assume it failed."""

    executed = None
    retryable = True


class RateLimited(ExchangeError):
    """429 / 418: refused before execution; safe to repeat after ``retry_after`` seconds."""

    executed = False
    retryable = True

    def __init__(self, message: str, *, kind: str = "rate_limited", cause: BaseException | None = None,
                 http_status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, kind=kind, cause=cause, http_status=http_status)
        self.retry_after = retry_after


# Most specific first: the first isinstance() match wins.
_DEFINITIVE: tuple[tuple[type[BaseException], str], ...] = (
    (ccxt.OrderNotFound, "not_found"),
    (ccxt.DuplicateOrderId, "duplicate"),
    (ccxt.InsufficientFunds, "insufficient_funds"),
    (ccxt.InvalidOrder, "invalid_order"),
    (ccxt.PermissionDenied, "permission"),
    (ccxt.AuthenticationError, "auth"),
    (ccxt.BadSymbol, "bad_symbol"),
    (ccxt.InvalidAddress, "invalid_address"),
    (ccxt.ArgumentsRequired, "bad_request"),
    (ccxt.BadRequest, "bad_request"),
    (ccxt.OperationRejected, "rejected"),
    (ccxt.NotSupported, "not_supported"),
)
_UNKNOWN: tuple[tuple[type[BaseException], str], ...] = (
    (ccxt.RequestTimeout, "timeout"),
    (ccxt.ExchangeNotAvailable, "unavailable"),  # 5xx pages, OnMaintenance
    (ccxt.NetworkError, "network"),  # connection refused / reset
    (ccxt.BadResponse, "bad_response"),
    (ccxt.CancelPending, "cancel_pending"),
    (ccxt.OperationFailed, "server_error"),  # Binance's 500 {"code":-1000}
)


def classify(exc: BaseException) -> ExchangeError:
    """Map a ccxt exception to DefinitiveError / UnknownOutcome / RateLimited (see module docstring).

    An ``ExchangeError`` of ours is returned unchanged; a non-ccxt exception raises TypeError
    (bugs are not exchange outcomes)."""
    if isinstance(exc, ExchangeError):
        return exc
    if not isinstance(exc, ccxt.BaseError):
        raise TypeError(f"not a ccxt error: {type(exc).__name__}: {exc}")
    # Masked here, once: these messages end up in logs, alerts and order notes (ccxt may quote a request).
    message = redact(f"{type(exc).__name__}: {exc}")
    status = getattr(exc, "mmflow_http_status", None)
    if isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection)) or status in (418, 429):
        kind = "banned" if status == 418 else "rate_limited"
        return RateLimited(message, kind=kind, cause=exc, http_status=status,
                           retry_after=getattr(exc, "mmflow_retry_after", None))
    if isinstance(exc, ccxt.InvalidNonce):
        # Binance -1021: refused for its timestamp before anything else; a fresh signature may pass.
        return DefinitiveError(message, kind="clock", cause=exc, http_status=status, retryable=True)
    for cls, kind in _UNKNOWN:
        if isinstance(exc, cls):
            return UnknownOutcome(message, kind=kind, cause=exc, http_status=status)
    for cls, kind in _DEFINITIVE:
        if isinstance(exc, cls):
            if kind == "invalid_order" and "duplicate order" in str(exc).lower():
                kind = "duplicate"  # Binance -2010 "Duplicate order sent." arrives as a plain InvalidOrder
            err_cls = AuthenticationFailed if kind in ("auth", "permission") else DefinitiveError
            return err_cls(message, kind=kind, cause=exc, http_status=status)
    # A bare ccxt.ExchangeError (an HTTP error ccxt could not map, TLS / redirect trouble, an
    # unlisted exchange code) or anything newer: not provably refused, so not definitive.
    return UnknownOutcome(message, kind="unrecognized", cause=exc, http_status=status)
