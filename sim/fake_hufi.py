"""A fake HuFi on loopback: the Campaign Launcher and the Recording Oracle in one gevent WSGI server.

Reference: shared/reference/mixin-and-hufi.md §6 and §7. The two real services
live on two hosts and both have ``GET /campaigns`` (public listing vs. the
user's joined campaigns), so here they live under two path prefixes of one
server: ``launcher_url`` = ``…/launcher`` and ``oracle_url`` = ``…/oracle``.

Launcher (public, snake_case):

- ``GET /campaigns?chain_id=&status=&type=&exchange=&launcher=&limit=&skip=`` → ``{has_more, results}``,
  newest first; amounts are ERC20 base-unit strings; ``chain_id`` required; limit ≤ 1000, skip ≤ 1000
- ``GET /campaigns/{chain_id}-{address}``, ``GET /exchanges``, ``GET /health/ping``

Recording oracle:

- ``POST /auth/nonce {address}`` → ``{nonce}``: "signup" for an unknown address, else the user's nonce
- ``POST /auth {address, signature}``: the EIP-191 signature of ``{"nonce":"…"}`` is recovered with
  eth-account and must name ``address``; a new user is created on first login, and the nonce
  rotates after every successful login (a replayed signature is refused) → access (HS256 JWT with
  ``exp``) + refresh token (one per user: a refresh rotates it)
- ``POST /auth/refresh {refresh_token}``, ``POST /auth/logout {refresh_token}`` → 204
- Bearer-protected: ``POST|GET /exchange-api-keys`` (upsert per exchange; bitmart/kucoin need extras;
  a key listed in ``key_missing_permissions`` is refused with 422), ``POST /campaigns/join``,
  ``POST /campaigns/check-join-status``, ``GET /campaigns`` (joined, token units as numbers)

Join rules (422 with the real messages): unknown campaign, cancelled / to_cancel, completed or
past end_date, already joined, no API key for the campaign's exchange, key missing permissions,
max_participants reached. Errors are ``{"message","timestamp","path"}`` with real statuses.

Faults: ``inject(path_prefix, status=…, count=…, delay=…)`` on the full path (``/oracle/…``,
``/launcher/…``); status 200 with a delay holds a correct reply back (a client timeout loses it).
``requests_log`` records ``(method, path, status)`` of every request.

It runs greenlets on the caller's hub: the process must be gevent monkey-patched.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, localcontext
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, unquote

import gevent
from sim.loopback import LoopbackServer

from integrations.hufi.signer import nonce_message, recover_signer, signing_available

SUPPORTED_EXCHANGES = ("bigone", "bitmart", "bybit", "gate", "htx", "hyperliquid", "kraken", "kucoin", "mexc", "xt",
                       "pancakeswap")
CAMPAIGN_TYPES = ("MARKET_MAKING", "COMPETITIVE_MARKET_MAKING", "THRESHOLD_MARKET_MAKING", "HOLDING", "THRESHOLD")
STATUSES = ("active", "to_cancel", "cancelled", "completed")
REQUIRED_PERMISSIONS = ("VIEW_SPOT_TRADING_HISTORY", "VIEW_DEPOSIT_ADDRESS", "VIEW_ACCOUNT_BALANCE")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_SIGNATURE = re.compile(r"^0x[0-9a-fA-F]{130}$")
_HTTP_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
                 404: "Not Found", 422: "Unprocessable Entity", 429: "Too Many Requests",
                 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
                 504: "Gateway Timeout"}


class HttpError(Exception):
    def __init__(self, status: int, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _token_units_json(base_units: str, decimals: int) -> int | str:
    value = Decimal(f"{base_units}E-{decimals}")
    return int(value) if value == value.to_integral_value() else format(value.normalize(), "f")


def random_address() -> str:
    """A random EVM address, checksummed when eth-utils is there (it comes with eth-account)."""
    raw = "0x" + os.urandom(20).hex()
    try:
        from eth_utils import to_checksum_address
    except ImportError:
        return raw
    return to_checksum_address(raw)


def to_base_units(amount: Decimal | str | int, decimals: int) -> str:
    """Token units → the ERC20 base-unit string the launcher serves (exact, any size)."""
    with localcontext() as ctx:
        ctx.prec = 200
        value = Decimal(str(amount)).scaleb(decimals)
        if value != value.to_integral_value() or value < 0:
            raise ValueError(f"{amount} has more than {decimals} decimals")
        return str(int(value))


@dataclass
class FakeCampaign:
    data: dict  # what the launcher serves (snake_case, base-unit strings)
    seq: int
    internal_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    participants: dict[str, str] = field(default_factory=dict)  # address lower → joined_at ISO
    # address → (score, result, estimated_reward): what the leaderboard serves; a joined participant without
    # an entry is listed with zeros (set_leaderboard adds other participants and their progress)
    standings: dict[str, tuple[Decimal, Decimal, Decimal | None]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.data['chain_id']}-{self.data['address'].lower()}"


@dataclass
class FakeApiKey:
    id: str
    exchange_name: str
    api_key: str
    secret_key: str
    extras: dict
    updated_at: float


@dataclass
class FakeUser:
    id: str
    address: str  # checksummed as first seen
    nonce: str
    api_keys: dict[str, FakeApiKey] = field(default_factory=dict)
    refresh_token: str | None = None
    refresh_expires_at: float = 0.0


@dataclass
class Fault:
    path_prefix: str
    status: int
    remaining: int
    delay: float = 0.0
    body: bytes | None = None
    retry_after: float | None = None


@dataclass
class Request:
    method: str
    path: str  # without the service prefix
    full_path: str
    query: dict[str, list[str]]
    body: bytes
    headers: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)
    user: FakeUser | None = None

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def args(self, name: str) -> list[str]:
        return list(self.query.get(name, []))

    def json(self) -> dict:
        try:
            data = json.loads(self.body or b"null")
        except ValueError:
            raise HttpError(400, "Invalid JSON body") from None
        if not isinstance(data, dict):
            raise HttpError(400, "Body must be a JSON object")
        return data


class FakeHufi(LoopbackServer):
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, clock: Callable[[], float] = time.time,
                 access_ttl: float = 600.0, refresh_ttl: float = 3600.0) -> None:
        super().__init__(host=host, port=port)
        self.clock = clock
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self._jwt_secret = secrets.token_bytes(32)
        self._seq = 0
        # state
        self.campaigns: dict[str, FakeCampaign] = {}
        self.users: dict[str, FakeUser] = {}
        self.key_missing_permissions: dict[str, list[str]] = {}  # api_key → permissions it lacks
        # observability
        self.requests_log: list[tuple[str, str, int]] = []
        self.auth_failures: list[str] = []
        self.joins: list[tuple[str, str]] = []        # (address, campaign key) of successful joins
        self.enrollments: list[tuple[str, str, str]] = []  # (address, exchange, api_key) of successful enrollments
        self.faults: list[Fault] = []
        self.leaderboard_updated_at: float | None = None
        self._routes: list[tuple[str, str, re.Pattern, Callable[[Request], Any], bool]] = []
        self._add("launcher", "GET", "/campaigns", self._list_campaigns)
        self._add("launcher", "GET", "/campaigns/{chain_id}-{address}", self._get_campaign)
        self._add("launcher", "GET", "/exchanges", self._exchanges)
        self._add("launcher", "GET", "/health/ping", lambda req: {"status": "ok"})
        self._add("oracle", "POST", "/auth/nonce", self._nonce)
        self._add("oracle", "POST", "/auth", self._auth)
        self._add("oracle", "POST", "/auth/refresh", self._refresh)
        self._add("oracle", "POST", "/auth/logout", self._logout)
        self._add("oracle", "POST", "/exchange-api-keys", self._enroll, auth=True)
        self._add("oracle", "GET", "/exchange-api-keys", self._list_keys, auth=True)
        self._add("oracle", "POST", "/campaigns/join", self._join, auth=True)
        self._add("oracle", "POST", "/campaigns/check-join-status", self._join_status, auth=True)
        self._add("oracle", "GET", "/campaigns", self._joined_campaigns, auth=True)
        self._add("oracle", "GET", "/campaigns/{chain_id}-{address}/leaderboard", self._leaderboard)
        self._add("oracle", "GET", "/health/ping", lambda req: {"status": "ok"})

    # ------------------------------------------------------------------ lifecycle

    @property
    def launcher_url(self) -> str:
        return self.url + "/launcher"

    @property
    def oracle_url(self) -> str:
        return self.url + "/oracle"

    # ------------------------------------------------------------------ test controls

    def add_campaign(self, *, exchange: str = "mexc", symbol: str = "HMT/USDT", chain_id: int = 137,
                     type: str = "MARKET_MAKING", status: str = "active",  # noqa: A002 - the API's field name
                     fund_amount: Decimal | str = "1000", fund_token_symbol: str = "USDT",
                     fund_token_decimals: int = 6, start: float | None = None, end: float | None = None,
                     address: str | None = None, details: dict | None = None) -> dict:
        """Add a campaign (fund_amount in token units; served in base units). Returns the served dict."""
        if exchange not in SUPPORTED_EXCHANGES or type not in CAMPAIGN_TYPES or status not in STATUSES:
            raise ValueError("unknown exchange, type or status")
        now = self.clock()
        start = now - 3600 if start is None else start
        end = now + 30 * 86400 if end is None else end
        self._seq += 1
        data = {
            "chain_id": chain_id,
            "address": address or random_address(),
            "type": type,
            "exchange_name": exchange,
            "symbol": symbol,
            "details": details if details is not None else {"daily_volume_target": 10000},
            "start_date": _iso(start),
            "end_date": _iso(end),
            "fund_amount": to_base_units(fund_amount, fund_token_decimals),
            "fund_token": "0xc2132D05D31c914a87C6611C10748AEb04B58e8F",
            "fund_token_symbol": fund_token_symbol,
            "fund_token_decimals": fund_token_decimals,
            "status": status,
            "launcher": "0x" + "11" * 20,
            "exchange_oracle": "0x" + "22" * 20,
            "recording_oracle": "0x" + "33" * 20,
            "reputation_oracle": "0x" + "44" * 20,
            "balance": to_base_units(fund_amount, fund_token_decimals),
            "amount_paid": "0",
            "intermediate_results_url": None,
            "final_results_url": None,
            "created_at": int(now * 1000) + self._seq,
            "cancellation_requested_at": None,
            "finalized_at": None,
        }
        campaign = FakeCampaign(data, self._seq)
        self.campaigns[campaign.key] = campaign
        return data

    def config_table(self, evm_private_key_file: str, api_keys: dict[str, tuple[str, str]] | None = None,
                     **overrides: Any) -> dict:
        """A ``[hufi]`` TOML table (as a dict) pointing at this fake, for the demo and tests.

        ``api_keys``: exchange account id → (api_key_file, secret_file) of its read-only key.
        """
        table: dict[str, Any] = {
            "enabled": True, "launcher_url": self.launcher_url, "oracle_url": self.oracle_url, "chain_id": 137,
            "evm_private_key_file": evm_private_key_file, "refresh_interval": 30.0, "retry_delay": 1.0,
            "retry_max_delay": 30.0, "request_timeout": 5.0, "max_attempts": 2,
            "exchange_api_keys": {account: {"api_key_file": key, "secret_file": secret}
                                  for account, (key, secret) in (api_keys or {}).items()},
        }
        table.update(overrides)
        return table

    def campaign(self, chain_id: int, address: str) -> FakeCampaign | None:
        return self.campaigns.get(f"{chain_id}-{address.lower()}")

    def set_campaign_status(self, chain_id: int, address: str, status: str) -> None:
        if status not in STATUSES:
            raise ValueError(status)
        self.campaigns[f"{chain_id}-{address.lower()}"].data["status"] = status

    def user(self, address: str) -> FakeUser | None:
        return self.users.get(address.lower())

    def set_leaderboard(self, chain_id: int, address: str, address_of_participant: str, score: Decimal | str,
                        result: Decimal | str, estimated_reward: Decimal | str | None = None) -> None:
        """Set one participant's progress on a campaign's leaderboard (others than mmflow, typically)."""
        campaign = self.campaigns[f"{chain_id}-{address.lower()}"]
        campaign.standings[address_of_participant] = (
            Decimal(str(score)), Decimal(str(result)), None if estimated_reward is None else Decimal(str(estimated_reward)))
        self.leaderboard_updated_at = self.clock()

    def inject(self, path_prefix: str = "/", *, status: int = 503, count: int = 1, delay: float = 0.0,
               body: bytes | str | None = None, retry_after: float | None = None) -> Fault:
        """Make the next ``count`` requests whose path starts with ``path_prefix`` fail.

        5xx/4xx: a plain-text error (a proxy's answer) or ``body``; 429 with ``Retry-After``;
        ``status=200``: handled normally, the reply held back ``delay`` seconds (and replaced by
        ``body`` when given).
        """
        if count < 1 or not 200 <= status <= 599:
            raise ValueError("count must be >= 1 and status an HTTP status")
        fault = Fault(path_prefix, status, count, float(delay),
                      body.encode("utf-8") if isinstance(body, str) else body, retry_after)
        self.faults.append(fault)
        return fault

    def reset_faults(self) -> None:
        self.faults.clear()

    def count(self, method: str, path: str) -> int:
        """How many requests hit ``method path`` (full path, query ignored)."""
        return sum(1 for m, p, _ in self.requests_log if m == method and p == path)

    # ------------------------------------------------------------------ plumbing

    def _add(self, service: str, method: str, template: str, handler: Callable[[Request], Any], *,
             auth: bool = False) -> None:
        regex = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+?)", re.escape(template)) + "$"
        self._routes.append((service, method, re.compile(regex), handler, auth))

    def _wsgi(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"].upper()
        full_path = environ.get("PATH_INFO", "/")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)

        fault = self._take_fault(full_path)
        hold_back = 0.0
        extra_headers: list[tuple[str, str]] = []
        if fault is not None and fault.status != 200:
            if fault.delay > 0:
                gevent.sleep(fault.delay)
            status = fault.status
            payload = fault.body if fault.body is not None else f"{status} {_HTTP_REASONS.get(status, '')}".encode()
            content_type = "application/json" if fault.body is not None else "text/plain"
            if fault.retry_after is not None:
                extra_headers.append(("Retry-After", str(fault.retry_after)))
        else:
            hold_back = fault.delay if fault is not None else 0.0
            status, payload = self._dispatch(method, full_path, query, body, headers)
            if fault is not None and fault.body is not None:
                payload = fault.body  # handled, but this body is served instead (a malformed answer)
            content_type = "application/json"
        self.requests_log.append((method, full_path, status))
        if hold_back > 0:
            gevent.sleep(hold_back)
        response_headers = extra_headers + [("Content-Length", str(len(payload)))]
        if payload:
            response_headers.append(("Content-Type", content_type))
        start_response(f"{status} {_HTTP_REASONS.get(status, 'Status')}", response_headers)
        return [payload]

    def _dispatch(self, method: str, full_path: str, query: dict, body: bytes,
                  headers: dict) -> tuple[int, bytes]:
        service, _, rest = full_path.lstrip("/").partition("/")
        path = "/" + rest
        try:
            for route_service, route_method, pattern, handler, auth in self._routes:
                if route_service != service or route_method != method:
                    continue
                match = pattern.match(path)
                if not match:
                    continue
                req = Request(method, path, full_path, query, body, headers,
                              {k: unquote(v) for k, v in match.groupdict().items()})
                if auth:
                    req.user = self._authenticate(req)
                data = handler(req)
                if data is None:
                    return 204, b""
                return 200, json.dumps(data, separators=(",", ":")).encode("utf-8")
            raise HttpError(404, f"Cannot {method} {path}")
        except HttpError as exc:
            error: dict[str, Any] = {"message": exc.message, "timestamp": _iso(self.clock()), "path": full_path}
            if exc.details is not None:
                error["details"] = exc.details
            return exc.status, json.dumps(error, separators=(",", ":")).encode("utf-8")

    # ------------------------------------------------------------------ tokens

    def _access_token(self, user: FakeUser) -> str:
        now = self.clock()
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        payload = _b64(json.dumps({"user_id": user.id, "wallet_address": user.address, "iat": int(now),
                                   "exp": now + self.access_ttl}, separators=(",", ":")).encode())
        signature = hmac.new(self._jwt_secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(signature)}"

    def _issue(self, user: FakeUser) -> dict:
        user.refresh_token = str(uuid.uuid4())  # one refresh token per user: the old one dies
        user.refresh_expires_at = self.clock() + self.refresh_ttl
        return {"access_token": self._access_token(user), "refresh_token": user.refresh_token}

    def _authenticate(self, req: Request) -> FakeUser:
        header = req.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return self._unauthorized("missing bearer token")
        parts = header[7:].split(".")
        if len(parts) != 3:
            return self._unauthorized("malformed token")
        expected = hmac.new(self._jwt_secret, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            valid = hmac.compare_digest(expected, _unb64(parts[2]))
            claims = json.loads(_unb64(parts[1]))
        except ValueError:
            return self._unauthorized("malformed token")
        if not valid:
            return self._unauthorized("bad token signature")
        if self.clock() >= claims.get("exp", 0):
            return self._unauthorized("access token expired")
        user = self.users.get(str(claims.get("wallet_address", "")).lower())
        if user is None or user.id != claims.get("user_id"):
            return self._unauthorized("unknown user")
        return user

    def _unauthorized(self, reason: str) -> FakeUser:
        self.auth_failures.append(reason)
        raise HttpError(401, "Unauthorized")

    # ------------------------------------------------------------------ launcher

    def _list_campaigns(self, req: Request) -> dict:
        chain = req.arg("chain_id")
        problems = []
        if chain is None or not chain.isdigit():
            problems.append("chain_id must be an integer")
        limit_text, skip_text = req.arg("limit") or "10", req.arg("skip") or "0"
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 1000:
            problems.append("limit must not be greater than 1000")
        if not skip_text.isdigit() or int(skip_text) > 1000:
            problems.append("skip must not be greater than 1000")
        statuses, types, exchanges = req.args("status"), req.args("type"), req.args("exchange")
        if any(s not in STATUSES for s in statuses):
            problems.append("status must be one of " + ", ".join(STATUSES))
        if any(t not in CAMPAIGN_TYPES for t in types):
            problems.append("type must be one of " + ", ".join(CAMPAIGN_TYPES))
        if any(e not in SUPPORTED_EXCHANGES for e in exchanges):
            problems.append("exchange must be a supported exchange")
        if problems:
            raise HttpError(400, "Validation failed", details=problems)
        launcher = (req.arg("launcher") or "").lower()
        chosen = [c for c in self.campaigns.values()
                  if c.data["chain_id"] == int(chain)
                  and (not statuses or c.data["status"] in statuses)
                  and (not types or c.data["type"] in types)
                  and (not exchanges or c.data["exchange_name"] in exchanges)
                  and (not launcher or c.data["launcher"].lower() == launcher)]
        chosen.sort(key=lambda c: (c.data["created_at"], c.seq), reverse=True)
        limit, skip = int(limit_text), int(skip_text)
        return {"has_more": len(chosen) > skip + limit, "results": [c.data for c in chosen[skip:skip + limit]]}

    def _get_campaign(self, req: Request) -> dict:
        chain = req.params["chain_id"]
        campaign = self.campaigns.get(f"{chain}-{req.params['address'].lower()}")
        if not chain.isdigit() or campaign is None:
            raise HttpError(404, "Campaign not found")
        return dict(campaign.data, exchange_oracle_fee_percent=1, recording_oracle_fee_percent=1,
                    reputation_oracle_fee_percent=1, reserved_funds="0")

    def _exchanges(self, req: Request) -> list:
        return [{"enabled": True, "name": name, "display_name": name.upper(), "url": f"https://{name}.example",
                 "logo": "", "type": "dex" if name == "pancakeswap" else "cex"} for name in SUPPORTED_EXCHANGES]

    # ------------------------------------------------------------------ oracle: auth

    @staticmethod
    def _address(data: dict) -> str:
        address = data.get("address")
        if not isinstance(address, str) or not _ADDRESS.match(address):
            raise HttpError(400, "Invalid EVM address")
        return address

    def _nonce(self, req: Request) -> dict:
        address = self._address(req.json())
        user = self.users.get(address.lower())
        return {"nonce": user.nonce if user else "signup"}

    def _auth(self, req: Request) -> dict:
        data = req.json()
        address = self._address(data)
        signature = data.get("signature")
        if not isinstance(signature, str) or not _SIGNATURE.match(signature):
            raise HttpError(400, "Invalid signature format")
        if not signing_available():
            raise HttpError(500, "fake HuFi cannot verify signatures without eth-account")
        user = self.users.get(address.lower())
        nonce = user.nonce if user else "signup"
        try:
            signer = recover_signer(nonce_message(nonce), signature)
        except ValueError:
            signer = ""
        if signer.lower() != address.lower():
            self.auth_failures.append("invalid web3 signature")
            raise HttpError(401, "Invalid web3 signature")
        if user is None:
            user = FakeUser(str(uuid.uuid4()), address, secrets.token_hex(16))
            self.users[address.lower()] = user
        else:
            user.nonce = secrets.token_hex(16)  # rotate: this signature can never be used again
        return self._issue(user)

    def _refresh(self, req: Request) -> dict:
        token = req.json().get("refresh_token")
        user = next((u for u in self.users.values() if token and u.refresh_token == token), None)
        if user is None:
            self.auth_failures.append("invalid refresh token")
            raise HttpError(401, "Invalid refresh token")
        if self.clock() > user.refresh_expires_at:
            self.auth_failures.append("refresh token expired")
            raise HttpError(401, "Refresh token expired")
        return self._issue(user)

    def _logout(self, req: Request) -> None:
        token = req.json().get("refresh_token")
        for user in self.users.values():
            if token and user.refresh_token == token:
                user.refresh_token = None
        return None

    # ------------------------------------------------------------------ oracle: API keys

    def _enroll(self, req: Request) -> dict:
        data = req.json()
        user = req.user
        assert user is not None
        exchange, api_key, secret = data.get("exchange_name"), data.get("api_key"), data.get("secret_key")
        if exchange not in SUPPORTED_EXCHANGES:
            raise HttpError(400, "Exchange name is not valid")
        if not isinstance(api_key, str) or not api_key or not isinstance(secret, str) or not secret:
            raise HttpError(400, "api_key and secret_key are required")
        extras = data.get("extras") or {}
        if not isinstance(extras, dict):
            raise HttpError(400, "extras must be an object")
        needed = {"bitmart": "api_key_memo", "kucoin": "passphrase"}.get(exchange)
        if needed and not extras.get(needed):
            raise HttpError(422, f"Incomplete credentials supplied for {exchange}")
        missing = self.key_missing_permissions.get(api_key)
        if missing:
            raise HttpError(422, "Provided API key is missing required permissions",
                            details={"missing_permissions": list(missing)})
        existing = user.api_keys.get(exchange)
        key = FakeApiKey(existing.id if existing else str(uuid.uuid4()), exchange, api_key, secret, dict(extras),
                         self.clock())
        user.api_keys[exchange] = key
        self.enrollments.append((user.address, exchange, api_key))
        return {"id": key.id}

    def _list_keys(self, req: Request) -> list:
        user = req.user
        assert user is not None
        out = []
        for key in user.api_keys.values():
            missing = list(self.key_missing_permissions.get(key.api_key, []))
            item = {"exchange_name": key.exchange_name, "api_key": key.api_key, "is_valid": not missing,
                    "missing_permissions": missing}
            if key.extras:
                item["extras"] = {k: v for k, v in key.extras.items() if k != "passphrase"}
            out.append(item)
        return out

    # ------------------------------------------------------------------ oracle: campaigns

    def _campaign_of(self, data: dict) -> tuple[int, str, FakeCampaign | None]:
        chain = data.get("chain_id")
        if isinstance(chain, bool) or not isinstance(chain, int):
            raise HttpError(400, "chain_id must be an integer")
        address = self._address(data)
        return chain, address, self.campaigns.get(f"{chain}-{address.lower()}")

    def _closed_reason(self, campaign: FakeCampaign) -> str | None:
        status = campaign.data["status"]
        if status in ("cancelled", "to_cancel"):
            return "Campaign cancelled"
        if status == "completed":
            return "Campaign already finished"
        end = datetime.fromisoformat(campaign.data["end_date"].replace("Z", "+00:00")).timestamp()
        if self.clock() >= end:
            return "Campaign already finished"
        cap = campaign.data.get("details", {}).get("max_participants")
        if isinstance(cap, int) and len(campaign.participants) >= cap:
            return "Campaign has reached the maximum number of participants"
        return None

    def _join(self, req: Request) -> dict:
        user = req.user
        assert user is not None
        _, _, campaign = self._campaign_of(req.json())
        if campaign is None:
            raise HttpError(422, "Campaign not found")
        if user.address.lower() in campaign.participants:
            raise HttpError(422, "User has already joined the campaign")
        reason = self._closed_reason(campaign)
        if reason:
            raise HttpError(422, reason)
        key = user.api_keys.get(campaign.data["exchange_name"])
        if key is None:
            raise HttpError(422, "Exchange API key not found")
        missing = self.key_missing_permissions.get(key.api_key)
        if missing:
            raise HttpError(422, f"Key authorization error. Missing: {', '.join(missing)}")
        campaign.participants[user.address.lower()] = _iso(self.clock())
        self.joins.append((user.address, campaign.key))
        return {"id": campaign.internal_id}

    def _join_status(self, req: Request) -> dict:
        user = req.user
        assert user is not None
        _, _, campaign = self._campaign_of(req.json())
        if campaign is None:
            return {"status": "not_available", "reason": "Campaign not found"}
        joined_at = campaign.participants.get(user.address.lower())
        if joined_at:
            return {"status": "already_joined", "joined_at": joined_at}
        reason = self._closed_reason(campaign)
        if reason:
            return {"status": "join_closed", "reason": reason}
        return {"status": "can_join"}

    def _leaderboard(self, req: Request) -> dict:
        """Public: every participant's interim score and volume, highest score first (numbers, as HuFi)."""
        campaign = self.campaigns.get(f"{req.params['chain_id']}-{req.params['address'].lower()}")
        if campaign is None:
            raise HttpError(404, "Campaign not found")
        rows = dict.fromkeys(campaign.participants, (Decimal(0), Decimal(0), None))
        rows.update({a.lower(): v for a, v in campaign.standings.items()})
        def number(v: Decimal) -> int | str:  # a JSON number when integral, else a decimal string (no floats)
            return int(v) if v == v.to_integral_value() else str(v)
        data = [{"address": a, "score": number(sc), "result": number(res),
                 "estimated_reward": None if est is None else number(est)}
                for a, (sc, res, est) in sorted(rows.items(), key=lambda kv: kv[1][0], reverse=True)]
        return {"data": data, "total": len(data),
                "updated_at": _iso(self.leaderboard_updated_at or self.clock())}

    def _joined_campaigns(self, req: Request) -> dict:
        user = req.user
        assert user is not None
        limit = int(req.arg("limit") or 10)
        skip = int(req.arg("skip") or 0)
        joined = [c for c in self.campaigns.values() if user.address.lower() in c.participants]
        joined.sort(key=lambda c: c.seq, reverse=True)
        results = []
        for c in joined[skip:skip + limit]:
            d = c.data
            decimals = d["fund_token_decimals"]
            results.append({"chain_id": d["chain_id"], "address": d["address"], "type": d["type"],
                            "exchange_name": d["exchange_name"], "symbol": d["symbol"],
                            "start_date": d["start_date"], "end_date": d["end_date"],
                            # The real oracle sends a JSON number in token units here; integral amounts
                            # stay numbers, others go out as decimal strings (no floats in this project).
                            "fund_amount": _token_units_json(d["fund_amount"], decimals),
                            "fund_token": d["fund_token"], "details": d["details"], "status": d["status"],
                            "processing_status": d["status"]})
        return {"has_more": len(joined) > skip + limit, "results": results}
