"""Mixin API client (urllib3 connection pools directly, or requests when a proxy or client certificate is set).

Every request is signed over exactly the bytes that go on the wire: we build the
query string ourselves (keys sorted, values percent-encoded), serialise the JSON
body once (compact separators) and check that requests did not rewrite either.

Retry policy (``request``):

- throttling — HTTP 429 or ``error.code`` 429 — and the transient API codes
  10104/10105 are definite refusals (nothing happened), so they are retried for
  every method;
- 5xx and transport failures (timeouts, resets) leave the outcome unknown, so they
  are retried only when the request is idempotent (GET by default; POSTs keyed by a
  request_id pass ``idempotent=True``). A connection that was never established
  (refused, connect timeout) is retried regardless: the request never left;
- nothing else is retried (validation errors, auth errors, not found...).

Waits grow as ``backoff_base * 2**n`` capped at ``backoff_max`` with a little
jitter; a ``Retry-After`` header (seconds or HTTP date) is honoured, capped at
``backoff_max``. After ``max_attempts`` the last typed error is raised.

Transport: a client that owns its session sends through ``integrations.exchange.transport.LeanSession``
(urllib3 connection pools, none of requests' per-request preparing, hooks and streaming: most of the client's
CPU on a 500-snapshot page; TLS verified by the default trust store or the environment's CA bundle file) unless
the environment names a proxy, a client certificate or a CA directory, or the request target would not go out
byte for byte as signed; those, and a session given by the caller, go through ``requests``.
Answers are decoded by orjson (about half the std decoder's CPU on a snapshot page); one that holds a JSON
float (amounts are strings; a float, if Mixin ever sent one) is decoded again by the std decoder, floats as
exact Decimals, as before.
"""
from __future__ import annotations

import json
import os
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from itertools import chain
from typing import Any, Mapping
from urllib.parse import quote, urlsplit

import orjson
import requests
from loguru import logger
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import MaxRetryError, NewConnectionError

from integrations.exchange.transport import LeanSession, sent_as_is

from .auth import sign_authentication_token
from .errors import (
    MixinApiError,
    MixinAuthError,
    MixinBadResponse,
    MixinError,
    MixinNotFound,
    MixinRateLimited,
    MixinServerError,
    MixinTransportError,
)
from .keystore import Keystore

TRANSIENT_CODES = frozenset({10104, 10105})
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_UNRESERVED = "-_.~"
SNAPSHOT_PAGE_MAX = 500
_MAX_AMOUNT_DIGITS = 20  # integer digits of a sane amount (1e21 and up is garbage)


@dataclass(frozen=True)
class WithdrawalFee:
    asset_id: str
    amount: Decimal
    priority: int | None = None


@dataclass(frozen=True)
class DepositEntry:
    """One deposit address of ``members``/``threshold`` on a chain (``POST /safe/deposit/entries``).

    ``tag`` is "" when the chain needs none; a deposit must carry it when it is set."""

    entry_id: str
    chain_id: str
    destination: str
    tag: str
    is_primary: bool
    members: tuple[str, ...]
    threshold: int


@dataclass(frozen=True)
class PendingDeposit:
    """An on-chain deposit seen but not yet confirmed (``GET /safe/deposits``); not a snapshot yet."""

    deposit_id: str
    transaction_hash: str
    amount: Decimal
    confirmations: int
    threshold: int
    created_at: str
    asset_id: str
    destination: str
    tag: str


# --------------------------------------------------------------------------- encoding


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        raise TypeError("float query values are not allowed; use Decimal or str")
    return str(value)


def encode_query(params: Mapping[str, Any] | None) -> str:
    """``?k=v&...`` with keys sorted and everything but unreserved characters escaped.

    ``None`` values are dropped; a list/tuple value repeats its key. Returns "" when empty.
    """
    if not params:
        return ""
    pairs: list[str] = []
    for key in sorted(params):
        value = params[key]
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            pairs.append(quote(str(key), safe=_UNRESERVED) + "=" + quote(_query_value(item), safe=_UNRESERVED))
    return "?" + "&".join(pairs) if pairs else ""


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        if not obj.is_finite():
            raise TypeError("non-finite Decimal in request body")
        return format(obj, "f")
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if isinstance(obj, (bytes, bytearray)):
        raise TypeError("bytes in request body: hex-encode them explicitly")
    raise TypeError(f"cannot serialise {type(obj).__name__} in a request body")


def encode_body(body: Any) -> bytes:
    """Exact body bytes: b"" for None, bytes as given, otherwise compact JSON (Decimal → string)."""
    if body is None:
        return b""
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if isinstance(body, float):
        raise TypeError("float request body")
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=_json_default, allow_nan=False).encode(
        "utf-8"
    )


def _segment(value: str, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return quote(value, safe="")


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN / inf
        return None
    return max(0.0, seconds)


def parse_api_amount(raw: Any, what: str = "amount") -> Decimal:
    """A non-negative Mixin amount (decimal string, ≤ 8 decimal places, sane magnitude) → Decimal.

    Raises MixinBadResponse otherwise. JSON numbers are accepted only as int/Decimal
    (the client parses JSON floats as Decimal, so nothing is lost).
    """
    if isinstance(raw, bool) or not isinstance(raw, (str, int, Decimal)):
        raise MixinBadResponse(f"{what}: expected a decimal string")
    try:
        amount = Decimal(raw.strip() if isinstance(raw, str) else raw)
    except InvalidOperation:
        raise MixinBadResponse(f"{what}: not a decimal") from None
    if not amount.is_finite() or amount < 0:
        raise MixinBadResponse(f"{what}: must be finite and >= 0")
    if amount != 0 and (amount.adjusted() > _MAX_AMOUNT_DIGITS or amount.normalize().as_tuple().exponent < -8):
        raise MixinBadResponse(f"{what}: out of range or more than 8 decimal places")
    return amount


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        return None


# --------------------------------------------------------------------------- client


class MixinClient:
    """Synchronous Mixin API client. Thread/greenlet safe as far as ``requests.Session`` is."""

    def __init__(
        self,
        api_base: str,
        keystore: Keystore | None,
        *,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        parts = urlsplit(api_base)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError("api_base must look like https://host[:port][/prefix]")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if timeout <= 0 or backoff_base < 0 or backoff_max < 0:
            raise ValueError("timeout must be > 0 and backoffs >= 0")
        self.api_base = api_base.rstrip("/")
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._prefix = parts.path.rstrip("/")
        self.keystore = keystore
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        self._env_settings: dict | None = None  # read once (scanning the environment was ~0.3 ms a call)
        self._lean: LeanSession | None = None  # set on the first request when the lean transport applies
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        if self._owns_session:
            self._session.close()
        if self._lean is not None:
            self._lean.close()

    def __enter__(self) -> "MixinClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MixinClient({self.api_base!r}, app_id={self.keystore.app_id if self.keystore else None!r})"

    # ------------------------------------------------------------------ core

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        body: Any = None,
        auth: bool = True,
        idempotent: bool | None = None,
    ) -> Any:
        """Send one API call (with retries) and return the envelope's ``data``."""
        method = method.upper()
        if not path.startswith("/") or "?" in path or "#" in path:
            raise ValueError("path must start with '/' and carry no query (use params=)")
        if auth and self.keystore is None:
            raise ValueError("auth=True needs a keystore")
        uri = self._prefix + path + encode_query(params)
        body_bytes = encode_body(body)
        if idempotent is None:
            idempotent = method in _IDEMPOTENT_METHODS

        attempt = 0
        while True:
            attempt += 1
            try:
                return self._attempt(method, uri, body_bytes, auth)
            except MixinError as exc:
                delay = self._retry_delay(exc, attempt, idempotent)
                if delay is None:
                    if attempt > 1:
                        logger.warning(
                            "mixin {} {} giving up after {} attempt(s): {}", method, path, attempt, _describe(exc)
                        )
                    raise
                logger.warning(
                    "mixin {} {} attempt {}/{} failed: {}; retrying in {:.3f}s",
                    method,
                    path,
                    attempt,
                    self.max_attempts,
                    _describe(exc),
                    delay,
                )
                time.sleep(delay)

    def _retry_delay(self, exc: MixinError, attempt: int, idempotent: bool) -> float | None:
        """Seconds to wait before the next attempt, or None to stop."""
        if attempt >= self.max_attempts:
            return None
        if isinstance(exc, MixinRateLimited):
            if exc.retry_after is not None:
                wait = min(exc.retry_after, self.backoff_max)
                return wait + random.uniform(0.0, 0.05) * wait
            return self._backoff(attempt)
        if isinstance(exc, MixinApiError):
            return self._backoff(attempt) if exc.code in TRANSIENT_CODES else None
        if isinstance(exc, MixinServerError):
            return self._backoff(attempt) if idempotent else None
        if isinstance(exc, MixinTransportError):
            return self._backoff(attempt) if (idempotent or exc.request_sent is False) else None
        return None

    def _backoff(self, attempt: int) -> float:
        base = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        # jitter: up to 10% below the nominal wait, never above the cap
        return base * random.uniform(0.9, 1.0)

    def _lean_transport(self, settings: dict) -> LeanSession | None:
        """The lean transport for our own session when the environment asks nothing it does not do: no proxy, no
        client certificate, TLS verified by the default trust store or one CA bundle file."""
        verify = settings.get("verify")
        if not self._owns_session or settings.get("proxies") or settings.get("cert"):
            return None
        if verify is True or not self._origin.startswith("https:"):
            return LeanSession()
        if isinstance(verify, str) and os.path.isfile(verify):
            return LeanSession(ca_certs=verify)
        return None

    def _attempt(self, method: str, uri: str, body: bytes, auth: bool) -> Any:
        request_id = str(uuid.uuid4())
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-Request-Id": request_id,
        }
        if auth:
            assert self.keystore is not None
            token = sign_authentication_token(self.keystore, method, uri, body, request_id=request_id)
            headers["Authorization"] = "Bearer " + token
        settings = self._env_settings
        if settings is None:  # proxies and CA bundle from the environment: by host, and every call has ours
            settings = self._env_settings = self._session.merge_environment_settings(self._origin + uri, {}, None,
                                                                                    None, None)
            self._lean = self._lean_transport(settings)
        try:
            if self._lean is not None and sent_as_is(uri):  # what we signed goes out as it is
                sent = CaseInsensitiveDict(self._session.headers)  # the session's defaults, as requests merges
                sent.update(headers)
                sent["Accept-Encoding"] = "gzip, deflate"  # what the lean transport decodes (requests may add br)
                response = self._lean.request(method, self._origin + uri, data=body or None, headers=sent,
                                              timeout=self.timeout)
            else:
                prepared = self._session.prepare_request(
                    requests.Request(method, self._origin + uri, data=body or None, headers=headers)
                )
                # What we signed must be what goes out; requests must not have re-encoded anything.
                if prepared.path_url != uri or (prepared.body or b"") != body:
                    raise ValueError("request URL or body was rewritten by requests; refusing to send a "
                                     "mis-signed request")
                response = self._session.send(prepared, timeout=self.timeout, allow_redirects=False, **settings)
        except requests.exceptions.ConnectTimeout as exc:
            raise MixinTransportError(f"connect timeout: {type(exc).__name__}", request_sent=False) from None
        except requests.exceptions.ConnectionError as exc:
            reason = exc.args[0] if exc.args else None
            # requests wraps a connection never made in MaxRetryError; the lean transport chains it as the cause
            never_sent = isinstance(exc.__cause__, NewConnectionError) or (
                isinstance(reason, MaxRetryError) and isinstance(reason.reason, NewConnectionError))
            raise MixinTransportError(
                "connection failed" if never_sent else "connection error (outcome unknown)",
                request_sent=False if never_sent else None,
            ) from None
        except requests.exceptions.Timeout:
            raise MixinTransportError("read timeout (outcome unknown)") from None
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
            raise MixinTransportError(f"broken response body: {type(exc).__name__}") from None
        return _parse_response(response, request_id)

    # ------------------------------------------------------------------ endpoints

    def read_asset(self, asset_id: str) -> dict:
        """``GET /network/assets/{id}`` (public). Returns the raw asset dict."""
        data = self.request("GET", f"/network/assets/{_segment(asset_id, 'asset_id')}", auth=False)
        if not isinstance(data, dict):
            raise MixinBadResponse("asset: expected an object")
        return data

    def withdrawal_fees(self, asset_id: str, destination: str = "") -> list[WithdrawalFee]:
        """``GET /safe/assets/{id}/fees[?destination=]``."""
        params = {"destination": destination} if destination else None
        data = self.request("GET", f"/safe/assets/{_segment(asset_id, 'asset_id')}/fees", params=params)
        if not isinstance(data, list):
            raise MixinBadResponse("withdrawal fees: expected a list")
        fees: list[WithdrawalFee] = []
        for item in data:
            if not isinstance(item, dict):
                raise MixinBadResponse("withdrawal fee: expected an object")
            fee_asset = item.get("asset_id")
            if not isinstance(fee_asset, str) or not fee_asset:
                raise MixinBadResponse("withdrawal fee: missing asset_id")
            amount = parse_api_amount(item.get("amount"), "withdrawal fee amount")
            # priority is optional and undocumented: keep it when it is an integer, else None.
            fees.append(WithdrawalFee(fee_asset, amount, _as_int(item.get("priority"))))
        return fees

    def safe_snapshots(
        self,
        *,
        offset: str | None = None,
        limit: int = 500,
        order: str = "ASC",
        app: str | None = None,
        asset: str | None = None,
        opponent: str | None = None,
    ) -> list[dict]:
        """``GET /safe/snapshots``: one page of raw snapshot dicts, exactly as served.

        ``offset`` is a created_at timestamp (RFC3339Nano). Mixin's offset is inclusive and
        pages can repeat items: callers must dedupe by ``snapshot_id``.
        """
        order = order.upper()
        if order not in ("ASC", "DESC"):
            raise ValueError("order must be ASC or DESC")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= SNAPSHOT_PAGE_MAX:
            raise ValueError(f"limit must be an int in 1..{SNAPSHOT_PAGE_MAX}")
        if sum(x is not None for x in (app, asset, opponent)) > 1:
            raise ValueError("app, asset and opponent are mutually exclusive")
        params = {"offset": offset, "limit": limit, "order": order, "app": app, "asset": asset, "opponent": opponent}
        data = self.request("GET", "/safe/snapshots", params=params)
        if not isinstance(data, list):
            raise MixinBadResponse("snapshots: expected a list")
        for item in data:
            if not (
                isinstance(item, dict)
                and isinstance(item.get("snapshot_id"), str)
                and isinstance(item.get("created_at"), str)
            ):
                raise MixinBadResponse("snapshot: expected an object with snapshot_id and created_at")
        return data

    def deposit_entries(
        self, chain_id: str, *, members: list[str] | None = None, threshold: int = 1
    ) -> list[DepositEntry]:
        """``POST /safe/deposit/entries``: the deposit addresses of ``members`` (default: this bot)
        on ``chain_id``. Mixin answers the same entry for the same (members, threshold, chain), so
        the call is idempotent (retried on 5xx/transport errors like a GET)."""
        _segment(chain_id, "chain_id")
        if self.keystore is None and not members:
            raise ValueError("deposit_entries needs members or a keystore")
        member_list = list(members) if members else [self.keystore.app_id]  # type: ignore[union-attr]
        if not all(isinstance(m, str) and m for m in member_list):
            raise ValueError("members must be non-empty strings")
        if isinstance(threshold, bool) or not isinstance(threshold, int) or not 1 <= threshold <= len(member_list):
            raise ValueError("threshold must be an int in 1..len(members)")
        body = {"members": member_list, "threshold": threshold, "chain_id": chain_id}
        data = self.request("POST", "/safe/deposit/entries", body=body, idempotent=True)
        if not isinstance(data, list):
            raise MixinBadResponse("deposit entries: expected a list")
        return [_parse_deposit_entry(item, chain_id) for item in data]

    def primary_deposit_entry(self, chain_id: str) -> DepositEntry:
        """This bot's deposit entry on ``chain_id``: the primary one, else the first. Safe to repeat."""
        entries = self.deposit_entries(chain_id)
        if not entries:
            raise MixinBadResponse(f"deposit entries: none returned for chain {chain_id}")
        return next((e for e in entries if e.is_primary), entries[0])

    def pending_deposits(
        self,
        *,
        asset_id: str | None = None,
        destination: str | None = None,
        tag: str | None = None,
        offset: str | None = None,
        limit: int | None = None,
    ) -> list[PendingDeposit]:
        """``GET /safe/deposits``: this bot's deposits still waiting for confirmations.

        ``offset`` is a created_at timestamp (RFC3339Nano). A confirmed deposit is gone from this
        list and is a snapshot (``deposit`` object set) instead."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 500):
            raise ValueError("limit must be an int in 1..500")
        params = {"asset": asset_id, "destination": destination, "tag": tag or None, "offset": offset, "limit": limit}
        data = self.request("GET", "/safe/deposits", params=params)
        if not isinstance(data, list):
            raise MixinBadResponse("pending deposits: expected a list")
        return [_parse_pending_deposit(item) for item in data]

    def read_snapshot(self, snapshot_id: str) -> dict:
        """``GET /safe/snapshots/{id}``."""
        data = self.request("GET", f"/safe/snapshots/{_segment(snapshot_id, 'snapshot_id')}")
        if not isinstance(data, dict) or not isinstance(data.get("snapshot_id"), str):
            raise MixinBadResponse("snapshot: expected an object with snapshot_id")
        return data


# --------------------------------------------------------------------------- typed replies


def _req_str(item: Mapping[str, Any], name: str, what: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise MixinBadResponse(f"{what}: missing or empty {name}")
    return value


def _opt_str(item: Mapping[str, Any], name: str, what: str) -> str:
    value = item.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MixinBadResponse(f"{what}: {name} must be a string")
    return value


def _req_int(item: Mapping[str, Any], name: str, what: str, minimum: int = 0) -> int:
    value = item.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)) or value != int(value) or value < minimum:
        raise MixinBadResponse(f"{what}: {name} must be an integer >= {minimum}")
    return int(value)


def _parse_deposit_entry(item: Any, chain_id: str) -> DepositEntry:
    what = "deposit entry"
    if not isinstance(item, dict):
        raise MixinBadResponse(f"{what}: expected an object")
    if item.get("type", "deposit_entry") != "deposit_entry":
        raise MixinBadResponse(f"{what}: unexpected type")
    entry_chain = _req_str(item, "chain_id", what)
    if entry_chain != chain_id:
        raise MixinBadResponse(f"{what}: for chain {entry_chain}, asked for {chain_id}")
    members = item.get("members")
    if not isinstance(members, list) or not members or not all(isinstance(m, str) and m for m in members):
        raise MixinBadResponse(f"{what}: members must be a non-empty list of ids")
    threshold = _req_int(item, "threshold", what, minimum=1)
    if threshold > len(members):
        raise MixinBadResponse(f"{what}: threshold above the number of members")
    is_primary = item.get("is_primary", False)
    if not isinstance(is_primary, bool):
        raise MixinBadResponse(f"{what}: is_primary must be a boolean")
    return DepositEntry(
        entry_id=_req_str(item, "entry_id", what),
        chain_id=entry_chain,
        destination=_req_str(item, "destination", what),
        tag=_opt_str(item, "tag", what),
        is_primary=is_primary,
        members=tuple(members),
        threshold=threshold,
    )


def _parse_pending_deposit(item: Any) -> PendingDeposit:
    what = "pending deposit"
    if not isinstance(item, dict):
        raise MixinBadResponse(f"{what}: expected an object")
    amount = parse_api_amount(item.get("amount"), f"{what} amount")
    if amount <= 0:
        raise MixinBadResponse(f"{what}: amount must be positive")
    return PendingDeposit(
        deposit_id=_req_str(item, "deposit_id", what),
        transaction_hash=_req_str(item, "transaction_hash", what),
        amount=amount,
        confirmations=_req_int(item, "confirmations", what),
        threshold=_req_int(item, "threshold", what),
        created_at=_req_str(item, "created_at", what),
        asset_id=_req_str(item, "asset_id", what),
        destination=_req_str(item, "destination", what),
        tag=_opt_str(item, "tag", what),
    )


# --------------------------------------------------------------------------- responses


def _describe(exc: MixinError) -> str:
    return f"{type(exc).__name__}({exc})"


_NOT_JSON = object()


def _holds_float(payload: Any) -> bool:
    """Whether a decoded JSON value holds a float anywhere: walked level by level with C-level iteration (a
    snapshot page's 7,500 values in ~0.15 ms; a per-value Python loop cost as much as orjson saved)."""
    values = [payload]
    kinds = {payload.__class__}
    while float in kinds or dict in kinds or list in kinds:
        if float in kinds:
            return True
        if len(kinds) > 1:
            values = [v for v in values if v.__class__ is dict or v.__class__ is list]
        if list not in kinds:
            values = list(chain.from_iterable(map(dict.values, values)))
        else:
            values = list(chain.from_iterable(v.values() if v.__class__ is dict else v for v in values))
        kinds = set(map(type, values))
    return False


def decode_json(content: bytes) -> Any:
    """The JSON of an answer, JSON floats as exact Decimals (ValueError / UnicodeDecodeError when not JSON).

    orjson first (about half the std decoder's CPU on a snapshot page). Every amount Mixin sends is a string; should
    the answer hold a JSON float anyway, or should orjson refuse the text (NaN, integers beyond 64 bits, non-UTF-8
    encodings), the std decoder reads it again with parse_float=Decimal: the result is always the std decoder's."""
    try:
        payload = orjson.loads(content)
    except orjson.JSONDecodeError:
        return json.loads(content, parse_float=Decimal)
    return json.loads(content, parse_float=Decimal) if _holds_float(payload) else payload


def _parse_response(response: requests.Response, request_id: str) -> Any:
    status = response.status_code
    retry_after = _parse_retry_after(response.headers.get("Retry-After"))
    try:
        payload: Any = decode_json(response.content) if response.content else _NOT_JSON
    except (ValueError, UnicodeDecodeError):
        payload = _NOT_JSON

    if isinstance(payload, dict) and payload.get("error") is not None:
        raise _error_from_envelope(payload["error"], status, retry_after)

    if 200 <= status < 300 and isinstance(payload, dict) and "data" in payload:
        echoed = response.headers.get("X-Request-Id")
        if echoed and echoed != request_id:
            raise MixinBadResponse("X-Request-Id in the response does not match the request", status=status)
        return payload["data"]

    kind = "non-JSON" if payload is _NOT_JSON else "JSON without data/error"
    description = f"{kind} response ({len(response.content)} bytes)"
    if status == 429:
        raise MixinRateLimited(description, status=status, retry_after=retry_after)
    if status in (401, 403):
        raise MixinAuthError(description, status=status)
    if status == 404:
        raise MixinNotFound(description, status=status)
    if status >= 500:
        raise MixinServerError(description, status=status)
    raise MixinBadResponse(description, status=status)


def _error_from_envelope(err: Any, status: int, retry_after: float | None) -> MixinError:
    if isinstance(err, dict):
        code = _as_int(err.get("code"))
        description = str(err.get("description") or "")
        extra = err.get("extra")
        inner_status = _as_int(err.get("status"))
    else:
        code, description, extra, inner_status = None, str(err)[:200], None, None
    kwargs: dict[str, Any] = {"status": status, "code": code, "extra": extra}
    if code == 429 or status == 429:
        return MixinRateLimited(description, retry_after=retry_after, **kwargs)
    if code in (401, 403) or status in (401, 403):
        return MixinAuthError(description, **kwargs)
    if code == 404 or status == 404:
        return MixinNotFound(description, **kwargs)
    if status >= 500 or code == 500 or (inner_status is not None and inner_status >= 500):
        return MixinServerError(description, **kwargs)
    return MixinApiError(description, **kwargs)


__all__ = [
    "MixinClient",
    "WithdrawalFee",
    "DepositEntry",
    "PendingDeposit",
    "encode_query",
    "encode_body",
    "parse_api_amount",
    "decode_json",
    "TRANSIENT_CODES",
]
