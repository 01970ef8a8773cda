"""HuFi clients (requests): the public Campaign Launcher and the Recording Oracle.

Reference: shared/reference/mixin-and-hufi.md §6. Both services speak snake_case
JSON with real HTTP statuses; errors are ``{"message", "timestamp", "path"}``.

- ``LauncherClient``: ``GET /campaigns?chain_id=…`` pages of ``{has_more, results}``
  (``skip``/``limit``, newest first). Amounts there are ERC20 **base-unit strings**;
  ``Campaign`` converts them to exact ``Decimal`` token units with the campaign's
  ``fund_token_decimals``. The launcher cannot filter by pair: ``active_campaigns``
  filters the symbol (and the date window) on our side.
- ``OracleClient``: wallet auth (``POST /auth/nonce`` → EIP-191 signature of
  ``{"nonce":"…"}`` → ``POST /auth`` → access + refresh tokens; ``POST /auth/refresh``
  before the access token expires, a new login when the refresh token is gone),
  read-only exchange API-key enrollment, join, join status and the public
  leaderboard (other participants' scores, for reward estimates). A 401 on a
  protected call drops the access token and retries once with a fresh one.

Retry policy (inside one call): 429 always; 5xx and transport failures only for
idempotent requests (GETs, the nonce, enrollment — an upsert — and join status),
or when the connection was never made. Join and login are not retried blindly:
the caller (the campaign actor) retries them later, and a join whose first
attempt did land answers "already joined", which counts as joined.

No error message contains a token, a signature, a key or a request body.
"""
from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import requests
from loguru import logger
from urllib3.exceptions import MaxRetryError, NewConnectionError

__all__ = [
    "HUFI_EXCHANGES", "MARKET_MAKING_TYPES", "Campaign", "CampaignPage", "EnrolledKey", "HufiAlreadyJoined",
    "HufiApiError", "HufiAuthError", "HufiBadRequest", "HufiBadResponse", "HufiError", "HufiJoinRefused",
    "HufiNotFound", "HufiRateLimited", "HufiServerError", "HufiTransportError", "JoinStatus", "LauncherClient",
    "Leaderboard", "LeaderboardEntry",
    "OracleClient", "Tokens", "from_base_units", "hufi_exchange_name",
]

HUFI_EXCHANGES = frozenset({"bigone", "bitmart", "bybit", "gate", "htx", "hyperliquid", "kraken", "kucoin", "mexc",
                            "xt", "pancakeswap"})
_CCXT_ALIASES = {"gateio": "gate", "huobi": "htx", "huobipro": "htx"}
MARKET_MAKING_TYPES = frozenset({"MARKET_MAKING", "COMPETITIVE_MARKET_MAKING", "THRESHOLD_MARKET_MAKING"})
JOIN_STATUSES = frozenset({"already_joined", "can_join", "join_closed", "not_available"})
LAUNCHER_MAX_LIMIT = 1000
LAUNCHER_MAX_SKIP = 1000
DEFAULT_ACCESS_TTL = 600.0    # the oracle's default access-token lifetime, used if the token carries no exp
DEFAULT_REFRESH_TTL = 3600.0  # the oracle's default refresh-token lifetime
_MAX_DECIMALS = 36


def hufi_exchange_name(ccxt_id: str) -> str:
    """HuFi's exchange name for a ccxt exchange id (``gateio`` → ``gate``, ``huobi`` → ``htx``)."""
    name = (ccxt_id or "").strip().lower()
    return _CCXT_ALIASES.get(name, name)


# --------------------------------------------------------------------------- errors


class HufiError(Exception):
    """Base of every HuFi client error. ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str = "", *, status: int | None = None, path: str | None = None,
                 details: Any = None) -> None:
        self.status = status
        self.message = message
        self.path = path
        self.details = details
        head = f"http={status}" if status is not None else ""
        text = f"{head} {path}: {message}" if head and path else (f"{head}: {message}" if head else message)
        super().__init__(text.strip())


class HufiApiError(HufiError):
    """HuFi answered and refused (4xx). Repeating the same request gives the same answer."""


class HufiBadRequest(HufiApiError):
    """400: validation failed."""


class HufiAuthError(HufiApiError):
    """401/403: bad signature, unknown or expired token."""


class HufiNotFound(HufiApiError):
    """404: unknown campaign or route."""


class HufiJoinRefused(HufiApiError):
    """422 from the oracle: the campaign or the API key does not allow this (see ``message``)."""

    @property
    def closed(self) -> bool:
        """True when joining can never succeed (finished, cancelled, unknown, full)."""
        text = self.message.lower()
        if "api key" in text or "permission" in text or "credentials" in text:
            return False  # the key can be fixed; the campaign itself is still open
        return any(word in text for word in ("campaign not found", "finished", "cancel", "maximum number",
                                             "target"))


class HufiAlreadyJoined(HufiJoinRefused):
    """422 "User has already joined the campaign": for a joiner, that is success."""


class HufiRateLimited(HufiError):
    """429: nothing happened; safe to repeat later. ``retry_after`` in seconds when given."""

    def __init__(self, message: str = "", *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class HufiServerError(HufiError):
    """5xx: the request's effect is unknown."""


class HufiTransportError(HufiError):
    """No complete answer (timeout, reset). ``request_sent`` is False if the connection never opened."""

    def __init__(self, message: str = "", *, request_sent: bool | None = None, **kwargs: Any) -> None:
        self.request_sent = request_sent
        super().__init__(message, **kwargs)


class HufiBadResponse(HufiError):
    """An answer we could not understand (not JSON, wrong shape, bad amount)."""


# --------------------------------------------------------------------------- values


def from_base_units(raw: Any, decimals: int, what: str = "amount") -> Decimal:
    """ERC20 base units (an integer string, or int) → exact token units: ``"1500000", 6 → Decimal("1.500000")``."""
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= _MAX_DECIMALS:
        raise HufiBadResponse(f"{what}: token decimals must be an integer in 0..{_MAX_DECIMALS}, got {decimals!r}")
    if isinstance(raw, bool):
        raise HufiBadResponse(f"{what}: expected base units, got a boolean")
    if isinstance(raw, int):
        text = str(raw)
    elif isinstance(raw, str):
        text = raw.strip()
    else:
        raise HufiBadResponse(f"{what}: expected a base-unit integer string, got {type(raw).__name__}")
    if not text.isdigit() or not text.isascii():
        raise HufiBadResponse(f"{what}: {raw!r} is not a non-negative integer of base units")
    return Decimal(f"{text}E-{decimals}")  # the string constructor is exact: no context rounding


def _parse_date(raw: Any, what: str) -> datetime:
    if not isinstance(raw, str):
        raise HufiBadResponse(f"{what}: expected an ISO-8601 string")
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise HufiBadResponse(f"{what}: {raw!r} is not ISO-8601") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _str(data: dict, key: str, *, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise HufiBadResponse(f"campaign.{key}: expected a non-empty string")
    return value


@dataclass(frozen=True)
class Campaign:
    """One campaign from the launcher; amounts in token units (Decimal)."""

    chain_id: int
    address: str
    type: str
    exchange_name: str
    symbol: str
    status: str
    start_date: datetime
    end_date: datetime
    fund_amount: Decimal
    fund_token: str
    fund_token_symbol: str
    fund_token_decimals: int
    balance: Decimal | None = None
    amount_paid: Decimal | None = None
    details: dict = field(default_factory=dict, compare=False)
    launcher: str | None = None
    recording_oracle: str | None = None

    @property
    def key(self) -> str:
        """``{chain_id}-{address}``, the launcher's own id of a campaign (and our campaign_id)."""
        return f"{self.chain_id}-{self.address}"

    @property
    def is_market_making(self) -> bool:
        return self.type in MARKET_MAKING_TYPES

    def is_running(self, now: float) -> bool:
        """Active on chain and inside its date window at unix time ``now``."""
        return self.status == "active" and self.start_date.timestamp() <= now < self.end_date.timestamp()

    @classmethod
    def from_api(cls, data: Any) -> "Campaign":
        if not isinstance(data, dict):
            raise HufiBadResponse("campaign: expected an object")
        chain_id = data.get("chain_id")
        if isinstance(chain_id, bool) or not isinstance(chain_id, int):
            raise HufiBadResponse("campaign.chain_id: expected an integer")
        decimals = data.get("fund_token_decimals")
        if isinstance(decimals, bool) or not isinstance(decimals, int):
            raise HufiBadResponse("campaign.fund_token_decimals: expected an integer")
        address = _str(data, "address")
        where = f"campaign {chain_id}-{address}"
        details = data.get("details") or {}
        return cls(
            chain_id=chain_id,
            address=address,
            type=_str(data, "type"),
            exchange_name=_str(data, "exchange_name").lower(),
            symbol=_str(data, "symbol").upper(),
            status=_str(data, "status"),
            start_date=_parse_date(data.get("start_date"), f"{where}.start_date"),
            end_date=_parse_date(data.get("end_date"), f"{where}.end_date"),
            fund_amount=from_base_units(data.get("fund_amount"), decimals, f"{where}.fund_amount"),
            fund_token=_str(data, "fund_token"),
            fund_token_symbol=_str(data, "fund_token_symbol"),
            fund_token_decimals=decimals,
            balance=(None if data.get("balance") is None
                     else from_base_units(data["balance"], decimals, f"{where}.balance")),
            amount_paid=(None if data.get("amount_paid") is None
                         else from_base_units(data["amount_paid"], decimals, f"{where}.amount_paid")),
            details=details if isinstance(details, dict) else {},
            launcher=data.get("launcher") if isinstance(data.get("launcher"), str) else None,
            recording_oracle=data.get("recording_oracle") if isinstance(data.get("recording_oracle"), str) else None,
        )


@dataclass(frozen=True)
class CampaignPage:
    has_more: bool
    results: tuple[Campaign, ...]


@dataclass(frozen=True)
class Tokens:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    access_expires_at: float
    refresh_expires_at: float


@dataclass(frozen=True)
class JoinStatus:
    status: str  # already_joined | can_join | join_closed | not_available
    joined_at: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class LeaderboardEntry:
    address: str
    score: Decimal
    result: Decimal                   # volume (market making) or balance (holding / threshold)
    estimated_reward: Decimal | None  # HuFi's own estimate, in token units


@dataclass(frozen=True)
class Leaderboard:
    """``GET /campaigns/{chain_id}-{address}/leaderboard`` (public): HuFi's interim progress of a campaign,
    refreshed by HuFi every 10 minutes."""
    entries: tuple[LeaderboardEntry, ...]
    updated_at: str | None

    def others(self, own_address: str) -> tuple[LeaderboardEntry, ...]:
        own = own_address.lower()
        return tuple(e for e in self.entries if e.address.lower() != own)

    def entry_of(self, address: str) -> LeaderboardEntry | None:
        return next((e for e in self.entries if e.address.lower() == address.lower()), None)


def _leaderboard_number(item: dict, name: str, path: str, *, optional: bool = False) -> Decimal | None:
    value = item.get(name)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise HufiBadResponse(f"leaderboard: {name} must be a number", path=path)
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        raise HufiBadResponse(f"leaderboard: {name} must be a number", path=path) from None
    if not number.is_finite() or number < 0:
        raise HufiBadResponse(f"leaderboard: {name} must be a finite number >= 0", path=path)
    return number


@dataclass(frozen=True)
class EnrolledKey:
    exchange_name: str
    api_key: str = field(repr=False)
    is_valid: bool | None = None
    missing_permissions: tuple[str, ...] = ()


# --------------------------------------------------------------------------- HTTP core


_NOT_JSON = object()


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


class _Http:
    """One base URL (with an optional path prefix), JSON in and out, typed errors, bounded retries."""

    def __init__(self, base_url: str, *, name: str, session: requests.Session | None, timeout: float,
                 max_attempts: int, backoff_base: float, backoff_max: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"{name} URL must look like https://host[:port][/prefix]")
        if max_attempts < 1 or timeout <= 0 or backoff_base < 0 or backoff_max < 0:
            raise ValueError("max_attempts must be >= 1, timeout > 0, backoffs >= 0")
        self.base_url = base_url.rstrip("/")
        self.name = name
        self._owns_session = session is None
        self.session = session if session is not None else requests.Session()
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max

    def close(self) -> None:
        if self._owns_session:
            self.session.close()

    def call(self, method: str, path: str, *, params: dict | None = None, body: Any = None,
             token: str | None = None, idempotent: bool | None = None) -> Any:
        method = method.upper()
        if idempotent is None:
            idempotent = method == "GET"
        query = ""
        if params:
            query = "?" + urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
        url = self.base_url + path + (query if query != "?" else "")
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode("utf-8")
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = "Bearer " + token
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._attempt(method, url, path, data, headers)
            except HufiError as exc:
                delay = self._delay(exc, attempt, idempotent)
                if delay is None:
                    raise
                logger.warning("hufi {} {} {} attempt {}/{} failed: {}; retrying in {:.2f}s", self.name, method,
                               path, attempt, self.max_attempts, exc, delay)
                time.sleep(delay)

    def _delay(self, exc: HufiError, attempt: int, idempotent: bool) -> float | None:
        if attempt >= self.max_attempts:
            return None
        backoff = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)) * random.uniform(0.9, 1.0)
        if isinstance(exc, HufiRateLimited):
            return min(exc.retry_after, self.backoff_max) if exc.retry_after is not None else backoff
        if isinstance(exc, HufiServerError):
            return backoff if idempotent else None
        if isinstance(exc, HufiTransportError):
            return backoff if (idempotent or exc.request_sent is False) else None
        return None

    def _attempt(self, method: str, url: str, path: str, data: bytes | None, headers: dict) -> Any:
        try:
            response = self.session.request(method, url, data=data, headers=headers, timeout=self.timeout,
                                            allow_redirects=False)
        except requests.exceptions.ConnectTimeout:
            raise HufiTransportError("connect timeout", request_sent=False, path=path) from None
        except requests.exceptions.ConnectionError as exc:
            reason = exc.args[0] if exc.args else None
            never_sent = isinstance(reason, MaxRetryError) and isinstance(reason.reason, NewConnectionError)
            raise HufiTransportError("connection failed" if never_sent else "connection error (outcome unknown)",
                                     request_sent=False if never_sent else None, path=path) from None
        except requests.exceptions.Timeout:
            raise HufiTransportError("read timeout (outcome unknown)", path=path) from None
        except requests.exceptions.RequestException as exc:
            raise HufiTransportError(f"transport error: {type(exc).__name__}", path=path) from None
        return _parse(response, path)


def _parse(response: requests.Response, path: str) -> Any:
    status = response.status_code
    if status == 204 or (200 <= status < 300 and not response.content):
        return None
    try:
        payload: Any = json.loads(response.content, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        payload = _NOT_JSON
    if 200 <= status < 300:
        if payload is _NOT_JSON:
            raise HufiBadResponse(f"non-JSON response ({len(response.content)} bytes)", status=status, path=path)
        return payload
    message = ""
    details = None
    if isinstance(payload, dict):
        raw = payload.get("message")
        message = "; ".join(map(str, raw)) if isinstance(raw, list) else str(raw or "")
        details = payload.get("details") or payload.get("validation_errors")
    if not message:
        message = "non-JSON error response" if payload is _NOT_JSON else "error without message"
    message = message[:300]
    kwargs = {"status": status, "path": path, "details": details}
    if status == 429:
        raise HufiRateLimited(message, retry_after=_retry_after(response.headers.get("Retry-After")), **kwargs)
    if status >= 500:
        raise HufiServerError(message, **kwargs)
    if status in (401, 403):
        raise HufiAuthError(message, **kwargs)
    if status == 404:
        raise HufiNotFound(message, **kwargs)
    if status == 422:
        if "already joined" in message.lower():
            raise HufiAlreadyJoined(message, **kwargs)
        raise HufiJoinRefused(message, **kwargs)
    if status == 400:
        raise HufiBadRequest(message, **kwargs)
    raise HufiApiError(message, **kwargs)


def _segment(value: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("path segment must be a non-empty string")
    return quote(value, safe="")


# --------------------------------------------------------------------------- launcher


class LauncherClient:
    """The public Campaign Launcher API (no auth)."""

    def __init__(self, base_url: str, *, session: requests.Session | None = None, timeout: float = 10.0,
                 max_attempts: int = 3, backoff_base: float = 0.5, backoff_max: float = 10.0) -> None:
        self._http = _Http(base_url, name="launcher", session=session, timeout=timeout, max_attempts=max_attempts,
                           backoff_base=backoff_base, backoff_max=backoff_max)

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"LauncherClient({self.base_url!r})"

    def list_campaigns(self, chain_id: int, *, statuses: Sequence[str] | None = ("active",),
                       types: Sequence[str] | None = None, exchanges: Sequence[str] | None = None,
                       launcher: str | None = None, limit: int = 100, skip: int = 0) -> CampaignPage:
        """One page of ``GET /campaigns`` (newest first)."""
        if isinstance(chain_id, bool) or not isinstance(chain_id, int) or chain_id <= 0:
            raise ValueError("chain_id must be a positive int")
        if not 1 <= limit <= LAUNCHER_MAX_LIMIT or not 0 <= skip <= LAUNCHER_MAX_SKIP:
            raise ValueError(f"limit must be 1..{LAUNCHER_MAX_LIMIT} and skip 0..{LAUNCHER_MAX_SKIP}")
        params: dict[str, Any] = {"chain_id": chain_id, "limit": limit, "skip": skip}
        if statuses:
            params["status"] = list(statuses)
        if types:
            params["type"] = list(types)
        if exchanges:
            params["exchange"] = [hufi_exchange_name(e) for e in exchanges]
        if launcher:
            params["launcher"] = launcher
        data = self._http.call("GET", "/campaigns", params=params)
        if not isinstance(data, dict) or not isinstance(data.get("results"), list) \
                or not isinstance(data.get("has_more"), bool):
            raise HufiBadResponse("campaigns: expected {has_more: bool, results: [...]}", path="/campaigns")
        return CampaignPage(data["has_more"], tuple(Campaign.from_api(item) for item in data["results"]))

    def iter_campaigns(self, chain_id: int, *, page_size: int = 100, **filters: Any) -> Iterator[Campaign]:
        """Every campaign matching the filters, following ``has_more`` (the API stops at skip 1000)."""
        skip = 0
        seen: set[str] = set()
        while True:
            page = self.list_campaigns(chain_id, limit=page_size, skip=skip, **filters)
            for campaign in page.results:
                if campaign.key not in seen:  # a campaign created between two pages shifts the list by one
                    seen.add(campaign.key)
                    yield campaign
            if not page.has_more or not page.results:
                return
            skip += len(page.results)
            if skip > LAUNCHER_MAX_SKIP:
                logger.warning("hufi launcher: more than {} campaigns on chain {}; the rest is not listed",
                               LAUNCHER_MAX_SKIP, chain_id)
                return

    def active_campaigns(self, chain_id: int, *, exchange: str | None = None, symbol: str | None = None,
                         types: Sequence[str] | None = tuple(sorted(MARKET_MAKING_TYPES)),
                         now: float | None = None, page_size: int = 100) -> list[Campaign]:
        """Active campaigns inside their date window, filtered by exchange and pair (``BASE/QUOTE``)."""
        now = time.time() if now is None else now
        want_symbol = symbol.upper() if symbol else None
        want_exchange = hufi_exchange_name(exchange) if exchange else None
        out = []
        for campaign in self.iter_campaigns(chain_id, page_size=page_size, statuses=("active",), types=types,
                                            exchanges=[want_exchange] if want_exchange else None):
            if campaign.chain_id != chain_id or not campaign.is_running(now):
                continue
            if want_exchange and campaign.exchange_name != want_exchange:
                continue
            if want_symbol and campaign.symbol != want_symbol:
                continue
            out.append(campaign)
        return out

    def get_campaign(self, chain_id: int, address: str) -> Campaign:
        """``GET /campaigns/{chain_id}-{address}`` (HufiNotFound if unknown)."""
        return Campaign.from_api(self._http.call("GET", f"/campaigns/{int(chain_id)}-{_segment(address)}"))


# --------------------------------------------------------------------------- recording oracle


def _jwt_exp(token: str) -> float | None:
    """The ``exp`` claim of a JWT, unverified (only to know when to refresh); None if not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


class OracleClient:
    """The Recording Oracle API for one EVM wallet (the operator's ``EvmSigner``).

    Not safe for concurrent use: the token state is shared. The campaign actor
    drives it from one worker greenlet.
    """

    def __init__(self, base_url: str, signer: Any, *, session: requests.Session | None = None,
                 timeout: float = 10.0, max_attempts: int = 3, backoff_base: float = 0.5, backoff_max: float = 10.0,
                 clock: Callable[[], float] = time.time, refresh_margin: float = 30.0) -> None:
        self._http = _Http(base_url, name="oracle", session=session, timeout=timeout, max_attempts=max_attempts,
                           backoff_base=backoff_base, backoff_max=backoff_max)
        self.signer = signer
        self.clock = clock
        self.refresh_margin = refresh_margin
        self.tokens: Tokens | None = None
        self.logins = 0
        self.refreshes = 0

    @property
    def base_url(self) -> str:
        return self._http.base_url

    @property
    def address(self) -> str:
        return self.signer.address

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"OracleClient({self.base_url!r}, address={self.address})"

    # -- auth -------------------------------------------------------------

    def get_nonce(self) -> str:
        """``POST /auth/nonce``: "signup" for a new address, else the current random nonce."""
        data = self._http.call("POST", "/auth/nonce", body={"address": self.address}, idempotent=True)
        nonce = data.get("nonce") if isinstance(data, dict) else None
        if not isinstance(nonce, str) or not nonce:
            raise HufiBadResponse("auth/nonce: expected {nonce: string}", path="/auth/nonce")
        return nonce

    def login(self) -> Tokens:
        """Nonce, signature of ``{"nonce":"…"}``, ``POST /auth``; stores and returns the tokens."""
        nonce = self.get_nonce()
        signature = self.signer.sign_nonce(nonce)
        data = self._http.call("POST", "/auth", body={"address": self.address, "signature": signature},
                               idempotent=False)
        self.tokens = self._tokens(data, "/auth")
        self.logins += 1
        logger.info("hufi oracle: logged in as {}", self.address)
        return self.tokens

    def refresh(self) -> Tokens:
        """``POST /auth/refresh`` with the stored refresh token (HufiAuthError if it is no good)."""
        if self.tokens is None:
            raise HufiAuthError("no refresh token: log in first")
        data = self._http.call("POST", "/auth/refresh", body={"refresh_token": self.tokens.refresh_token},
                               idempotent=False)
        self.tokens = self._tokens(data, "/auth/refresh")
        self.refreshes += 1
        return self.tokens

    def logout(self) -> None:
        if self.tokens is not None:
            try:
                self._http.call("POST", "/auth/logout", body={"refresh_token": self.tokens.refresh_token},
                                idempotent=True)
            finally:
                self.tokens = None

    def access_token(self) -> str:
        """A usable access token: the stored one, else refreshed, else a fresh login."""
        now = self.clock()
        tokens = self.tokens
        if tokens is not None and now < tokens.access_expires_at - self.refresh_margin:
            return tokens.access_token
        if tokens is not None and now < tokens.refresh_expires_at - self.refresh_margin:
            try:
                return self.refresh().access_token
            except HufiAuthError:
                logger.info("hufi oracle: refresh token refused; logging in again")
        return self.login().access_token

    def _tokens(self, data: Any, path: str) -> Tokens:
        if not isinstance(data, dict) or not isinstance(data.get("access_token"), str) \
                or not isinstance(data.get("refresh_token"), str):
            raise HufiBadResponse("expected {access_token, refresh_token}", path=path)
        now = self.clock()
        access = data["access_token"]
        return Tokens(access, data["refresh_token"], _jwt_exp(access) or now + DEFAULT_ACCESS_TTL,
                      now + DEFAULT_REFRESH_TTL)

    def _authed(self, method: str, path: str, *, body: Any = None, params: dict | None = None,
                idempotent: bool | None = None) -> Any:
        token = self.access_token()
        try:
            return self._http.call(method, path, body=body, params=params, token=token, idempotent=idempotent)
        except HufiAuthError:
            # The server no longer takes this token (expired early, revoked, clock skew): renew once.
            if self.tokens is not None and self.tokens.access_token == token:
                self.tokens = Tokens("", self.tokens.refresh_token, 0.0, self.tokens.refresh_expires_at)
            token = self.access_token()
            return self._http.call(method, path, body=body, params=params, token=token, idempotent=idempotent)

    # -- exchange API keys ------------------------------------------------

    def enroll_api_key(self, exchange_name: str, api_key: str, secret_key: str,
                       extras: dict | None = None) -> str:
        """``POST /exchange-api-keys`` (an upsert per exchange): returns the key's id."""
        body: dict[str, Any] = {"exchange_name": hufi_exchange_name(exchange_name), "api_key": api_key,
                                "secret_key": secret_key}
        if extras:
            body["extras"] = dict(extras)
        data = self._authed("POST", "/exchange-api-keys", body=body, idempotent=True)
        key_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(key_id, (str, int)) or isinstance(key_id, bool):
            raise HufiBadResponse("exchange-api-keys: expected {id}", path="/exchange-api-keys")
        return str(key_id)

    def list_api_keys(self) -> list[EnrolledKey]:
        data = self._authed("GET", "/exchange-api-keys")
        if not isinstance(data, list):
            raise HufiBadResponse("exchange-api-keys: expected a list", path="/exchange-api-keys")
        out = []
        for item in data:
            if not isinstance(item, dict) or not isinstance(item.get("exchange_name"), str):
                raise HufiBadResponse("exchange-api-keys: bad item", path="/exchange-api-keys")
            missing = item.get("missing_permissions") or []
            out.append(EnrolledKey(item["exchange_name"], str(item.get("api_key", "")),
                                   item.get("is_valid") if isinstance(item.get("is_valid"), bool) else None,
                                   tuple(map(str, missing)) if isinstance(missing, list) else ()))
        return out

    # -- campaigns --------------------------------------------------------

    def join_campaign(self, chain_id: int, address: str) -> str:
        """``POST /campaigns/join``: the oracle's internal campaign id. HufiAlreadyJoined if joined before."""
        data = self._authed("POST", "/campaigns/join", body={"chain_id": int(chain_id), "address": address},
                            idempotent=False)
        campaign_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(campaign_id, str) or not campaign_id:
            raise HufiBadResponse("campaigns/join: expected {id}", path="/campaigns/join")
        return campaign_id

    def leaderboard(self, chain_id: int, address: str) -> Leaderboard:
        """``GET /campaigns/{chain_id}-{address}/leaderboard`` (public, no token): every participant's score
        and volume so far — what makes a reward estimate more than an upper bound."""
        path = f"/campaigns/{int(chain_id)}-{_segment(address)}/leaderboard"
        data = self._http.call("GET", path)
        rows = data.get("data") if isinstance(data, dict) else None
        if not isinstance(rows, list):
            raise HufiBadResponse("leaderboard: expected {data: [...]}", path=path)
        entries = []
        for item in rows:
            if not isinstance(item, dict) or not isinstance(item.get("address"), str) or not item["address"]:
                raise HufiBadResponse("leaderboard: bad entry", path=path)
            entries.append(LeaderboardEntry(item["address"], _leaderboard_number(item, "score", path),
                                            _leaderboard_number(item, "result", path),
                                            _leaderboard_number(item, "estimated_reward", path, optional=True)))
        updated = data.get("updated_at")
        return Leaderboard(tuple(entries), updated if isinstance(updated, str) else None)

    def join_status(self, chain_id: int, address: str) -> JoinStatus:
        """``POST /campaigns/check-join-status``."""
        data = self._authed("POST", "/campaigns/check-join-status",
                            body={"chain_id": int(chain_id), "address": address}, idempotent=True)
        status = data.get("status") if isinstance(data, dict) else None
        if status not in JOIN_STATUSES:
            raise HufiBadResponse(f"check-join-status: unknown status {status!r}", path="/campaigns/check-join-status")
        joined_at = data.get("joined_at")
        reason = data.get("reason")
        return JoinStatus(status, joined_at if isinstance(joined_at, str) else None,
                          reason if isinstance(reason, str) else None)
