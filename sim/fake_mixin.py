"""A fake Mixin API server on loopback for tests and the simulator.

A gevent WSGI server (``gevent.pywsgi``) that speaks the parts of the Mixin API the
project uses, over real HTTP, with the real envelope (``{"data":…}`` on success,
HTTP 202 + ``{"error":{status,code,description,extra}}`` on API errors), real JWT
checks (Ed25519 over the token, ``exp``/``iat``, single-use ``jti``, and ``sig`` =
sha256(METHOD + raw request target + raw body)) and fault injection.

It runs greenlets on the caller's gevent hub: the process must be gevent
monkey-patched (the test suite's conftest does it), otherwise a blocking client in the
same thread never lets the server run.

Routes (``add_route`` is the extension point; handlers get a ``FakeRequest`` and return
the ``data`` value or raise ``ApiError``):

- ``GET  /network/assets/{asset_id}``        public
- ``POST /safe/assets/fetch``                auth; body = JSON array of asset ids
- ``GET  /safe/assets/{asset_id}/fees``      auth; ``?destination=`` accepted and ignored
- ``GET  /safe/snapshots``                   auth; offset/order/limit/app|asset|opponent
- ``GET  /safe/snapshots/{snapshot_id}``     auth; only the caller's own snapshots
- ``POST /safe/deposit/entries``             auth; body ``{"members":[...],"threshold":n,"chain_id":UUID}``
                                             (the caller among the members, a chain some asset is on) ->
                                             ``[{type:"deposit_entry", entry_id, chain_id, members, threshold,
                                             destination, tag, signature, is_primary:true}]``. Deterministic:
                                             the same (sorted members, threshold, chain) always gets the same
                                             entry ("0x"+40 hex on EVM chains, "T..." on TRON, "bc1q..." on
                                             Bitcoin, base58 elsewhere). A chain marked with
                                             ``set_chain_tag_required(chain, True)`` has one shared destination
                                             and a numeric tag per (members, threshold). Every issued entry is
                                             in ``fake.deposit_entries[(destination, tag)]``.
- ``GET  /safe/deposits``                    auth; the caller's PENDING deposits (not snapshots yet):
                                             ``asset``, ``destination``, ``tag`` filters, ``limit`` (<= 500,
                                             default 500); newest first, or with ``offset`` (RFC3339Nano)
                                             those created at/after it, oldest first. Items: deposit_id,
                                             transaction_hash (the on-chain hash), output_index, asset_id,
                                             chain_id, amount, destination, tag, sender, confirmations
                                             (counting up with the time), threshold, state, created_at.

On-chain deposits: ``fake.external_deposit(bot, asset, amount, destination=, tag=, deposit_hash=,
delay=)`` to a destination (and tag) the fake issued to the bot on the asset's chain. With
``delay=0`` it is a snapshot at once; otherwise it is listed by ``/safe/deposits`` until ``delay``
seconds of the fake's clock have passed, then a gevent timer (no API call needed) turns it into the
snapshot: ``opponent_id ""``, ``deposit: {deposit_hash, deposit_index: 0, sender, destination,
tag}``, ``withdrawal: null``, the bot's balance credited and ``incoming_listeners`` called (FakeSafe
creates the bot's UTXO). The same (deposit_hash, destination, tag, asset) again is the same deposit.
``fake.deposit(...)`` is the shortcut without an entry (random hash, synthetic destination).

Snapshot paging follows the reference notes: ``order=ASC`` returns ``created_at >= offset``
ascending, ``DESC`` (the default when ``order`` is omitted) returns ``created_at <= offset``
descending; the offset is inclusive, so clients must dedupe by ``snapshot_id``.

``duplicate_factor = n`` (n >= 1): each snapshot of a served page appears n times in a
row, and the page is truncated to ``limit`` items — so a page holds
``ceil(limit / n)`` distinct snapshots and its last item is still the newest (ASC) /
oldest (DESC) one served, which keeps a created_at cursor moving forward.
"""
from __future__ import annotations

import base64
import bisect
import calendar
import hashlib
import json
import math
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, unquote

import gevent

from domain import networks as _chains

from .loopback import LoopbackServer
from .fake_mixin_jwt import AuthFailure, FakeBot, verify_bot_request

MAX_SNAPSHOT_LIMIT = 500
DEFAULT_SNAPSHOT_LIMIT = 100
MAX_DEPOSITS_LIMIT = 500
MAX_EXTRA_BYTES = 256
_AMOUNT_QUANTUM = Decimal("0.00000001")


# --------------------------------------------------------------------------- helpers


class ApiError(Exception):
    """Raised by a handler: becomes ``{"error": {...}}`` (HTTP 202 unless ``http_status`` says otherwise)."""

    def __init__(self, code: int, description: str, *, extra: Any = None, http_status: int = 202) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.extra = extra
        self.http_status = http_status


def invalid_field(name: str, why: str = "invalid") -> ApiError:
    return ApiError(10002, f"The request data has invalid field: {name}.", extra={"field": name, "reason": why})


class RawJSON(bytes):
    """Already-encoded JSON to embed as ``data`` without re-encoding."""


class Redirect(str):
    """A handler's answer that is a redirect (302 to this URL) instead of a JSON envelope (OAuth authorize)."""


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return format(obj, "f")
    raise TypeError(f"cannot encode {type(obj).__name__}")


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=_json_default).encode("utf-8")


def format_amount(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def parse_amount(value: Decimal | str | int, *, allow_zero: bool = False) -> Decimal:
    if isinstance(value, float):
        raise TypeError("amounts must be Decimal or str, not float")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError("amount is not a decimal") from None
    if not amount.is_finite() or amount < 0 or (amount == 0 and not allow_zero):
        raise ValueError("amount must be positive")
    if amount != amount.quantize(_AMOUNT_QUANTUM):
        raise ValueError("amount has more than 8 decimal places")
    return amount


def format_created_at(ns: int) -> str:
    """RFC3339 with exactly 9 fractional digits and ``Z``."""
    seconds, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"


_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)


def parse_rfc3339_ns(text: str) -> int:
    """RFC3339 / RFC3339Nano (any fractional length; digits beyond 9 truncated) → unix ns."""
    m = _RFC3339.match(text)
    if not m:
        raise ValueError("not RFC3339")
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise ValueError("not RFC3339")
    secs = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if m.group(9):
        sign = 1 if m.group(9) == "+" else -1
        secs -= sign * (int(m.group(10)) * 3600 + int(m.group(11)) * 60)
    frac = (m.group(7) or "")[:9].ljust(9, "0")
    return secs * 1_000_000_000 + int(frac)


def kernel_asset_id(asset_id: str) -> str:
    return hashlib.sha3_256(asset_id.encode("utf-8")).hexdigest()


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
EVM_CHAINS = frozenset({
    _chains.ETHEREUM, _chains.BSC, _chains.POLYGON, _chains.BASE, _chains.ARBITRUM, _chains.OPTIMISM,
    _chains.AVALANCHE_C, _chains.MVM,
})


def _encode(material: bytes, alphabet: str, length: int) -> str:
    n = int.from_bytes(material + hashlib.sha256(material).digest(), "big")
    out = []
    for _ in range(length):
        n, r = divmod(n, len(alphabet))
        out.append(alphabet[r])
    return "".join(out)


def deposit_destination(chain_id: str, material: bytes) -> str:
    """A deterministic, plausible-looking address on ``chain_id`` (passes the usual address checks)."""
    digest = hashlib.sha256(material).digest()
    if chain_id in EVM_CHAINS:
        return "0x" + digest.hex()[:40]
    if chain_id == _chains.TRON:
        return "T" + _encode(digest, _B58, 33)
    if chain_id == _chains.BITCOIN:
        return "bc1q" + _encode(digest, _BECH32, 38)
    if chain_id == _chains.XRP:
        return "r" + _encode(digest, _B58, 33)
    return _encode(digest, _B58[9:], 1) + _encode(digest[1:], _B58, 43)


# --------------------------------------------------------------------------- state


@dataclass
class ExternalDeposit:
    """One on-chain deposit to a bot's deposit entry: pending until ``due``, then a snapshot."""

    deposit_id: str
    bot_id: str
    asset_id: str
    chain_id: str
    amount: Decimal
    destination: str
    tag: str
    deposit_hash: str
    sender: str
    threshold: int  # confirmations needed
    created_ns: int
    delay: float
    due: float  # fake clock seconds
    state: str = "pending"  # pending -> confirmed
    snapshot: dict | None = None
    timer: Any = None

    def confirmations(self, now: float) -> int:
        if self.state != "pending":
            return self.threshold
        if self.delay <= 0:
            return self.threshold
        elapsed = max(0.0, now - self.created_ns / 1_000_000_000)
        return max(0, min(self.threshold - 1, int(self.threshold * elapsed / self.delay)))

    def to_json(self, now: float, asset_key: str) -> dict:
        created = format_created_at(self.created_ns)
        return {
            "type": "deposit",
            "deposit_id": self.deposit_id,
            "destination": self.destination,
            "tag": self.tag,
            "chain_id": self.chain_id,
            "asset_id": self.asset_id,
            "asset_key": asset_key,
            "amount": format_amount(self.amount),
            "transaction_hash": self.deposit_hash,
            "output_index": 0,
            "sender": self.sender,
            "confirmations": self.confirmations(now),
            "threshold": self.threshold,
            "state": self.state,
            "created_at": created,
            "updated_at": created,
        }


@dataclass
class Snapshot:
    """One stored snapshot. ``data`` is what the API serves; ``encoded`` its cached JSON."""

    key: tuple[int, int]  # (created_at_ns, insertion seq)
    data: dict
    encoded: bytes

    @property
    def snapshot_id(self) -> str:
        return self.data["snapshot_id"]


class SnapshotIndex:
    """Snapshots sorted by (created_at_ns, seq); offsets found by bisect."""

    __slots__ = ("keys", "items")

    def __init__(self) -> None:
        self.keys: list[tuple[int, int]] = []
        self.items: list[Snapshot] = []

    def add(self, snap: Snapshot) -> None:
        if not self.keys or snap.key > self.keys[-1]:
            self.keys.append(snap.key)
            self.items.append(snap)
        else:
            i = bisect.bisect_left(self.keys, snap.key)
            self.keys.insert(i, snap.key)
            self.items.insert(i, snap)

    def page(self, offset_ns: int | None, order: str, count: int) -> list[Snapshot]:
        if order == "ASC":
            start = 0 if offset_ns is None else bisect.bisect_left(self.keys, (offset_ns, -1))
            return self.items[start : start + count]
        end = len(self.keys) if offset_ns is None else bisect.bisect_right(self.keys, (offset_ns, math.inf))
        return self.items[max(0, end - count) : end][::-1]

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class Fault:
    path_prefix: str
    status: int
    remaining: int
    retry_after: float | None = None
    delay: float = 0.0
    error_code: int | None = None
    body: bytes | None = None


@dataclass
class FakeRequest:
    method: str
    raw_uri: str  # request target exactly as received (latin-1 str of the raw bytes)
    path: str  # raw path (still percent-encoded), without the query
    query: dict[str, list[str]]
    body: bytes
    headers: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)  # decoded route parameters
    bot: FakeBot | None = None

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self) -> Any:
        try:
            return json.loads(self.body, parse_float=Decimal)
        except ValueError:
            raise ApiError(400, "The request body can't be parsed as valid data.") from None


@dataclass
class Route:
    method: str
    pattern: re.Pattern
    handler: Callable[[FakeRequest], Any]
    auth: bool


# --------------------------------------------------------------------------- server


class FakeMixin(LoopbackServer):
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, clock: Callable[[], float] = time.time) -> None:
        super().__init__(host=host, port=port)
        self.clock = clock

        # state (plain objects; the Safe outputs/keys/transaction requests live in sim.fake_mixin_safe)
        self.bots: dict[str, FakeBot] = {}
        self.users: set[str] = set()
        self.assets: dict[str, dict] = {}
        self.withdrawal_fees: dict[str, list[dict]] = {}
        self.balances: dict[tuple[str, str], Decimal] = {}
        self.snapshots: dict[str, Snapshot] = {}
        self._indexes: dict[tuple[str, str, str], SnapshotIndex] = {}
        self._seq = 0
        self._last_ns = 0
        self._kernel_ids: dict[str, str] = {}
        self.seen_jti: set[str] = set()
        # Called as fn(bot_id, snapshot) after each incoming pay()/deposit() to a bot; the Safe
        # extension (sim.fake_mixin_safe.install_safe) uses it to create the bot's unspent UTXO.
        self.incoming_listeners: list[Callable[[str, dict], None]] = []
        self.safe: Any = None  # the FakeSafe handle once install_safe(self) ran
        self.oauth: Any = None  # the FakeOAuth handle once sim.fake_mixin_oauth.install_oauth(self) ran
        # deposit entries issued: (destination, tag) -> {entry_id, chain_id, members, threshold}
        self.deposit_entries: dict[tuple[str, str], dict] = {}
        self._entry_keys: dict[tuple[tuple[str, ...], int, str], tuple[str, str]] = {}
        self._tag_chains: set[str] = set()
        # on-chain deposits: (deposit_hash, destination, tag, asset_id) -> record
        self.external_deposits: dict[tuple[str, str, str, str], ExternalDeposit] = {}
        self.deposit_errors: list[str] = []  # failures while confirming a deposit in the background

        # observability / faults
        self.requests_log: list[tuple[str, str, int]] = []
        self.auth_failures = 0
        self.auth_failure_reasons: list[str] = []
        self.faults: list[Fault] = []
        self.duplicate_factor = 1

        self.routes: list[Route] = []
        self.add_route("GET", "/network/assets/{asset_id}", self._get_network_asset, auth=False)
        self.add_route("POST", "/safe/assets/fetch", self._fetch_safe_assets)
        self.add_route("GET", "/safe/assets/{asset_id}/fees", self._get_withdrawal_fees)
        self.add_route("GET", "/safe/snapshots", self._list_snapshots)
        self.add_route("GET", "/safe/snapshots/{snapshot_id}", self._get_snapshot)
        self.add_route("POST", "/safe/deposit/entries", self._deposit_entries)
        self.add_route("GET", "/safe/deposits", self._list_pending_deposits)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "FakeMixin":
        super().start()
        for record in self.external_deposits.values():  # a restart resumes pending deposits' timers
            if record.state == "pending" and record.delay > 0 and record.timer is None:
                record.timer = gevent.spawn(self._confirm_when_due, record)
        return self

    def stop(self) -> None:
        """Stop serving; pending deposits stop confirming until ``start()`` (their timers are killed)."""
        for record in self.external_deposits.values():
            if record.timer is not None:
                record.timer.kill(block=False)
                record.timer = None
        super().stop()

    # ------------------------------------------------------------------ routing

    def add_route(self, method: str, template: str, handler: Callable[[FakeRequest], Any], *, auth: bool = True) -> None:
        """Register ``handler`` for ``METHOD template``; ``{name}`` matches one path segment."""
        regex = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
        self.routes.append(Route(method.upper(), re.compile(regex), handler, auth))

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            if route.method != method:
                continue
            m = route.pattern.match(path)
            if m:
                return route, {k: unquote(v) for k, v in m.groupdict().items()}
        return None

    # ------------------------------------------------------------------ faults

    def inject(
        self,
        path_prefix: str = "/",
        *,
        status: int = 429,
        count: int = 1,
        retry_after: float | None = None,
        delay: float = 0.0,
        error_code: int | None = None,
        body: bytes | str | None = None,
    ) -> Fault:
        """Make the next ``count`` requests whose raw path starts with ``path_prefix`` fail.

        - ``status=429``: plain "Too Many Requests" (``Retry-After: retry_after`` if given);
        - ``status`` 5xx / 401 / 403 / 404: plain text body (a proxy/CDN answer);
        - ``error_code`` with any status: a JSON error envelope with that code at that HTTP status
          (``status=202, error_code=10105`` is Mixin's own way of saying "locked, try again");
        - ``status=200``: the request is processed normally, then the reply is held back
          ``delay`` seconds (slow but correct reply; set a client timeout below it to lose it);
        - ``body``: serve exactly these bytes instead (with the given status);
        - ``delay`` on a failure: wait that long before answering.
        """
        if count < 1:
            raise ValueError("count must be >= 1")
        if status == 202 and error_code is None and body is None:
            raise ValueError("status 202 needs an error_code (the envelope error)")
        if not 200 <= status <= 599:
            raise ValueError("status must be an HTTP status")
        if isinstance(body, str):
            body = body.encode("utf-8")
        fault = Fault(path_prefix, status, count, retry_after, float(delay), error_code, body)
        self.faults.append(fault)
        return fault

    def reset_faults(self) -> None:
        self.faults.clear()
        self.duplicate_factor = 1

    # ------------------------------------------------------------------ WSGI

    def _wsgi(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"].upper()
        raw_uri: str = environ.get("RAW_URI") or environ.get("PATH_INFO", "/")
        path, _, raw_query = raw_uri.partition("?")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        request_id = headers.get("X-Request-Id", "")

        fault = self._take_fault(path)
        hold_back = 0.0
        if fault is not None and fault.status != 200:
            if fault.delay > 0:
                gevent.sleep(fault.delay)
            status, extra_headers, payload = self._fault_response(fault)
        else:
            if fault is not None:
                hold_back = fault.delay
            req = FakeRequest(method, raw_uri, path, parse_qs(raw_query, keep_blank_values=True), body, headers)
            status, extra_headers, payload = self._dispatch(req)
            if fault is not None and fault.body is not None:
                status, payload = fault.status, fault.body
                extra_headers = [("Content-Type", "application/json")]

        self.requests_log.append((method, raw_uri, status))
        if hold_back > 0:
            gevent.sleep(hold_back)
        response_headers = list(extra_headers) + [("Content-Length", str(len(payload)))]
        if request_id:
            response_headers.append(("X-Request-Id", request_id))
        start_response(_status_line(status), response_headers)
        return [payload]

    def _fault_response(self, fault: Fault) -> tuple[int, list[tuple[str, str]], bytes]:
        headers: list[tuple[str, str]] = []
        if fault.retry_after is not None:
            headers.append(("Retry-After", _format_seconds(fault.retry_after)))
        if fault.body is not None:
            return fault.status, headers + [("Content-Type", "application/json")], fault.body
        if fault.error_code is not None:
            error = {
                "status": fault.status,
                "code": fault.error_code,
                "description": f"Injected error {fault.error_code}.",
            }
            return fault.status, headers + [("Content-Type", "application/json")], dumps({"error": error})
        text = _status_line(fault.status).encode("ascii")
        return fault.status, headers + [("Content-Type", "text/plain")], text

    def _dispatch(self, req: FakeRequest) -> tuple[int, list[tuple[str, str]], bytes]:
        json_headers = [("Content-Type", "application/json")]
        try:
            matched = self._match(req.method, req.path)
            if matched is None:
                raise ApiError(404, "The endpoint is not found.")
            route, req.params = matched
            if route.auth:
                try:
                    req.bot = verify_bot_request(
                        req.headers.get("Authorization"),
                        method=req.method,
                        raw_uri=req.raw_uri.encode("latin-1"),
                        body=req.body,
                        bots=self.bots,
                        seen_jti=self.seen_jti,
                        now=self.clock(),
                    )
                except AuthFailure as exc:
                    self.auth_failures += 1
                    self.auth_failure_reasons.append(exc.reason)
                    raise ApiError(401, "Unauthorized, maybe invalid token.") from None
            data = route.handler(req)
        except ApiError as exc:
            error = {"status": exc.http_status, "code": exc.code, "description": exc.description}
            if exc.extra is not None:
                error["extra"] = exc.extra
            return exc.http_status, json_headers, dumps({"error": error})
        if isinstance(data, Redirect):
            return 302, [("Location", str(data))], b""
        if isinstance(data, RawJSON):
            return 200, json_headers, b'{"data":' + bytes(data) + b"}"
        return 200, json_headers, dumps({"data": data})

    # ------------------------------------------------------------------ bots, users, assets

    def register_bot(self, keystore: Any) -> str:
        """Accept a keystore dict (current or legacy format) or a ``Keystore``; return its app_id."""
        if isinstance(keystore, dict):
            app_id = keystore.get("app_id") or keystore.get("client_id")
            session_id = keystore["session_id"]
            if "session_private_key" in keystore:
                seed = bytes.fromhex(keystore["session_private_key"])[:32]
            else:
                text = keystore["private_key"].rstrip("=")
                seed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))[:32]
            spend_hex = keystore.get("spend_private_key")
            spend = bytes.fromhex(spend_hex)[:32] if spend_hex else None
        else:
            app_id, session_id = keystore.app_id, keystore.session_id
            seed, spend = keystore.session_seed, keystore.spend_private_key
        if not isinstance(app_id, str) or not _is_uuid(app_id):
            raise ValueError("keystore app_id must be a UUID")
        app_id = app_id.lower()
        self.bots[app_id] = FakeBot.from_seed(app_id, session_id.lower(), seed, spend)
        self.users.add(app_id)
        return app_id

    def new_user(self) -> str:
        user_id = str(uuid.uuid4())
        self.users.add(user_id)
        return user_id

    def add_asset(
        self,
        asset_id: str,
        symbol: str,
        chain_id: str,
        *,
        precision: int = 8,
        name: str | None = None,
        price_usd: Decimal | str = "0",
    ) -> dict:
        if not _is_uuid(asset_id) or not _is_uuid(chain_id):
            raise ValueError("asset_id and chain_id must be UUIDs")
        price = format(Decimal(str(price_usd)), "f")
        asset = {
            "type": "asset",
            "asset_id": asset_id,
            "chain_id": chain_id,
            "fee_asset_id": chain_id,
            "symbol": symbol,
            "name": name or symbol,
            "display_symbol": symbol,
            "display_name": name or symbol,
            "icon_url": f"https://images.example.invalid/{symbol.lower()}.png",
            "asset_key": "" if asset_id == chain_id else "0x" + hashlib.sha256(asset_id.encode()).hexdigest()[:40],
            "precision": precision,
            "kernel_asset_id": self._kernel_asset_id(asset_id),
            "mixin_id": self._kernel_asset_id(asset_id),
            "price_btc": "0",
            "price_usd": price,
            "change_btc": "0",
            "change_usd": "0",
            "price_updated_at": format_created_at(self._now_ns()),
            "dust": "0.0001",
            "confirmations": 12,
            "reserve": "0",
            "capitalization": 0,
            "liquidity": "0",
            "withdrawal_memo_possibility": "negative",
            "primitive_asset_id": asset_id,
            "level": 11,
            "collection_hash": "",
        }
        self.assets[asset_id] = asset
        return dict(asset)

    def set_withdrawal_fees(self, asset_id: str, fees: list[tuple]) -> None:
        """``fees``: ``(fee_asset_id, amount)`` or ``(fee_asset_id, amount, priority)`` tuples."""
        if asset_id not in self.assets:
            raise KeyError(f"unknown asset {asset_id}")
        served = []
        for fee in fees:
            fee_asset_id, amount = fee[0], parse_amount(fee[1], allow_zero=True)
            item: dict[str, Any] = {"type": "withdrawal_fee", "asset_id": fee_asset_id, "amount": format_amount(amount)}
            if len(fee) > 2 and fee[2] is not None:
                item["priority"] = fee[2]
            served.append(item)
        self.withdrawal_fees[asset_id] = served

    def balance(self, user_id: str, asset_id: str) -> Decimal:
        """Net balance (users may go negative: they start with unlimited funds)."""
        return self.balances.get((user_id, asset_id), Decimal(0))

    def _credit(self, user_id: str, asset_id: str, delta: Decimal) -> None:
        key = (user_id, asset_id)
        self.balances[key] = self.balances.get(key, Decimal(0)) + delta

    # ------------------------------------------------------------------ snapshots

    def _kernel_asset_id(self, asset_id: str) -> str:
        kid = self._kernel_ids.get(asset_id)
        if kid is None:
            kid = self._kernel_ids[asset_id] = kernel_asset_id(asset_id)
        return kid

    def _now_ns(self) -> int:
        return int(self.clock() * 1_000_000_000)

    def _next_created_at_ns(self, forced: int | None) -> int:
        if forced is not None:
            ns = int(forced)
        else:
            ns = max(self._now_ns(), self._last_ns + 1)
        self._last_ns = max(self._last_ns, ns)
        return ns

    def record_snapshot(
        self,
        user_id: str,
        asset_id: str,
        amount: Decimal,
        *,
        opponent_id: str = "",
        memo: bytes | str = b"",
        request_id: str | None = None,
        transaction_hash: str | None = None,
        deposit: dict | None = None,
        withdrawal: dict | None = None,
        created_at_ns: int | None = None,
    ) -> dict:
        """Store one snapshot (``amount`` signed: negative = outgoing) and return a copy of it."""
        if isinstance(memo, str):
            memo = memo.encode("utf-8")
        if len(memo) > MAX_EXTRA_BYTES:
            raise ValueError(f"memo longer than {MAX_EXTRA_BYTES} bytes")
        ns = self._next_created_at_ns(created_at_ns)
        self._seq += 1
        data = {
            "type": "snapshot",
            "snapshot_id": str(uuid.uuid4()),
            "user_id": user_id,
            "opponent_id": opponent_id,
            "transaction_hash": transaction_hash or os.urandom(32).hex(),
            "asset_id": asset_id,
            "kernel_asset_id": self._kernel_asset_id(asset_id),
            "amount": format_amount(amount),
            "memo": memo.hex(),
            "request_id": request_id or str(uuid.uuid4()),
            "created_at": format_created_at(ns),
            "level": 0,
            "deposit": deposit,
            "withdrawal": withdrawal,
        }
        snap = Snapshot((ns, self._seq), data, dumps(data))
        self.snapshots[data["snapshot_id"]] = snap
        for index_key in ((user_id, "all", ""), (user_id, "asset", asset_id), (user_id, "opponent", opponent_id)):
            index = self._indexes.get(index_key)
            if index is None:
                index = self._indexes[index_key] = SnapshotIndex()
            index.add(snap)
        return dict(data)

    def pay(
        self,
        bot_id: str,
        from_user: str,
        asset_id: str,
        amount: Decimal | str,
        memo: bytes | str = b"",
        *,
        created_at_ns: int | None = None,
    ) -> dict:
        """A Mixin user pays the bot: creates the bot's incoming snapshot, moves the balance."""
        if bot_id not in self.bots:
            raise KeyError(f"unknown bot {bot_id}")
        if not _is_uuid(from_user) or not _is_uuid(asset_id):
            raise ValueError("from_user and asset_id must be UUIDs")
        value = parse_amount(amount)
        snap = self.record_snapshot(bot_id, asset_id, value, opponent_id=from_user, memo=memo, created_at_ns=created_at_ns)
        self.users.add(from_user)
        self._credit(from_user, asset_id, -value)
        self._credit(bot_id, asset_id, value)
        for listener in self.incoming_listeners:
            listener(bot_id, snap)
        return snap

    def deposit(
        self,
        bot_id: str,
        asset_id: str,
        amount: Decimal | str,
        *,
        memo: bytes | str = b"",
        created_at_ns: int | None = None,
    ) -> dict:
        """An external on-chain deposit to the bot (opponent_id "", ``deposit`` object set), confirmed
        at once, from a random hash to a synthetic destination (no deposit entry needed)."""
        if bot_id not in self.bots:
            raise KeyError(f"unknown bot {bot_id}")
        if not _is_uuid(asset_id):
            raise ValueError("asset_id must be a UUID")
        value = parse_amount(amount)
        deposit = {
            "deposit_hash": os.urandom(32).hex(),
            "deposit_index": 0,
            "sender": "0x" + os.urandom(20).hex(),
            "destination": "0x" + hashlib.sha256(f"{bot_id}:{asset_id}".encode()).hexdigest()[:40],
            "tag": "",
        }
        return self._credit_deposit(bot_id, asset_id, value, deposit, memo=memo, created_at_ns=created_at_ns)

    def _credit_deposit(
        self, bot_id: str, asset_id: str, value: Decimal, deposit: dict, *, memo: bytes | str = b"",
        created_at_ns: int | None = None,
    ) -> dict:
        snap = self.record_snapshot(bot_id, asset_id, value, memo=memo, deposit=deposit, created_at_ns=created_at_ns)
        self._credit(bot_id, asset_id, value)
        for listener in self.incoming_listeners:
            listener(bot_id, snap)
        return snap

    # ------------------------------------------------------------------ deposit entries & on-chain deposits

    def set_chain_tag_required(self, chain_id: str, required: bool = True) -> None:
        """Entries on ``chain_id`` share one destination and differ by a numeric tag (XRP, EOS, TON...).

        A chain property: set it before entries on the chain are issued (issued ones are kept)."""
        if not _is_uuid(chain_id):
            raise ValueError("chain_id must be a UUID")
        if required:
            self._tag_chains.add(chain_id)
        else:
            self._tag_chains.discard(chain_id)

    def chain_tag_required(self, chain_id: str) -> bool:
        return chain_id in self._tag_chains

    def issue_deposit_entry(self, members: Iterable[str], threshold: int, chain_id: str) -> dict:
        """The deposit entry of (members, threshold) on ``chain_id`` as the API serves it (created once)."""
        owners = tuple(sorted(m.lower() for m in members))
        key = (owners, int(threshold), chain_id)
        where = self._entry_keys.get(key)
        if where is None:
            material = f"{','.join(owners)}|{threshold}|{chain_id}".encode()
            if chain_id in self._tag_chains:
                destination = deposit_destination(chain_id, f"shared|{chain_id}".encode())
                salt = 0
                while True:
                    n = int.from_bytes(hashlib.sha256(material + f"|tag|{salt}".encode()).digest()[:8], "big")
                    tag = str(100_000_000 + n % 900_000_000)
                    if (destination, tag) not in self.deposit_entries:
                        break
                    salt += 1
            else:
                destination, tag = deposit_destination(chain_id, material), ""
            entry_id = str(uuid.UUID(bytes=hashlib.sha256(b"entry|" + material).digest()[:16], version=4))
            self.deposit_entries[(destination, tag)] = {
                "entry_id": entry_id, "chain_id": chain_id, "members": list(owners), "threshold": int(threshold),
            }
            where = self._entry_keys[key] = (destination, tag)
        entry = self.deposit_entries[where]
        destination, tag = where
        return {
            "type": "deposit_entry",
            "entry_id": entry["entry_id"],
            "chain_id": chain_id,
            "members": list(entry["members"]),
            "threshold": entry["threshold"],
            "destination": destination,
            "tag": tag,
            "signature": hashlib.sha256(f"sig|{entry['entry_id']}|{destination}|{tag}".encode()).hexdigest() * 2,
            "is_primary": True,
        }

    def find_deposit_entry(self, destination: str, tag: str = "") -> tuple[str, str, dict] | None:
        """``(destination, tag, entry)`` as issued, for an address as a sender wrote it (EVM hex in any
        case), or None when the fake never issued it."""
        tag = tag or ""
        for candidate in (destination, destination.lower()):
            entry = self.deposit_entries.get((candidate, tag))
            if entry is not None and (candidate == destination or destination.startswith(("0x", "0X"))):
                return candidate, tag, entry
        return None

    def external_deposit(
        self,
        bot_id: str,
        asset_id: str,
        amount: Decimal | str,
        *,
        destination: str,
        tag: str = "",
        deposit_hash: str,
        confirmations_needed: int | None = None,
        delay: float = 0.0,
        sender: str | None = None,
    ) -> dict:
        """An on-chain deposit of ``amount`` to the bot's deposit entry (``destination``, ``tag``).

        ``delay`` 0: the snapshot at once (returned). Otherwise a pending deposit (returned as
        ``/safe/deposits`` serves it) that becomes the snapshot ``delay`` seconds of the fake's clock
        later, by itself. ``confirmations_needed``: the pending deposit's threshold (default: the
        asset's ``confirmations``). The same (deposit_hash, destination, tag, asset) again creates
        nothing and returns the deposit's current form (snapshot once confirmed).
        Raises KeyError (unknown bot/asset) or ValueError (not the bot's entry, wrong chain, amount)."""
        if bot_id not in self.bots:
            raise KeyError(f"unknown bot {bot_id}")
        asset = self.assets.get(asset_id)
        if asset is None:
            raise KeyError(f"unknown asset {asset_id}")
        if not isinstance(deposit_hash, str) or not deposit_hash:
            raise ValueError("deposit_hash must be a non-empty string")
        if isinstance(delay, bool) or delay < 0:
            raise ValueError("delay must be >= 0")
        found = self.find_deposit_entry(destination, tag)
        if found is None:
            raise ValueError(f"{destination!r} (tag {tag!r}) is not a deposit entry issued by this fake")
        destination, tag, entry = found
        key = (deposit_hash, destination, tag, asset_id)
        existing = self.external_deposits.get(key)
        if existing is not None:
            return self._deposit_view(existing)
        if bot_id not in entry["members"]:
            raise ValueError(f"the deposit entry {destination!r} (tag {tag!r}) is not the bot's")
        if entry["chain_id"] != asset["chain_id"]:
            raise ValueError(f"{asset['symbol']} is on chain {asset['chain_id']}, the entry {destination!r} on "
                             f"chain {entry['chain_id']}")
        value = parse_amount(amount)
        needed = int(asset.get("confirmations") or 1) if confirmations_needed is None else int(confirmations_needed)
        if needed < 1:
            raise ValueError("confirmations_needed must be >= 1")
        now = self.clock()
        record = ExternalDeposit(
            deposit_id=str(uuid.UUID(bytes=hashlib.sha256("|".join(("deposit",) + key).encode()).digest()[:16],
                                     version=4)),
            bot_id=bot_id,
            asset_id=asset_id,
            chain_id=entry["chain_id"],
            amount=value,
            destination=destination,
            tag=tag,
            deposit_hash=deposit_hash,
            sender=sender or deposit_destination(entry["chain_id"], b"sender|" + os.urandom(16)),
            threshold=needed,
            created_ns=self._now_ns(),
            delay=float(delay),
            due=now + float(delay),
        )
        self.external_deposits[key] = record
        if delay <= 0:
            self._confirm_deposit(record)
        else:
            record.timer = gevent.spawn(self._confirm_when_due, record)
        return self._deposit_view(record)

    def confirm_pending_deposits(self) -> int:
        """Confirm every pending external deposit now (tests with long delays); returns how many."""
        pending = [r for r in self.external_deposits.values() if r.state == "pending"]
        for record in pending:
            self._confirm_deposit(record)
        return len(pending)

    def pending_deposits(self, bot_id: str) -> list[ExternalDeposit]:
        return [r for r in self.external_deposits.values() if r.bot_id == bot_id and r.state == "pending"]

    def _deposit_view(self, record: ExternalDeposit) -> dict:
        if record.snapshot is not None:
            return dict(record.snapshot)
        return record.to_json(self.clock(), self.assets.get(record.asset_id, {}).get("asset_key", ""))

    def _confirm_when_due(self, record: ExternalDeposit) -> None:
        gevent.sleep(record.delay)
        while record.state == "pending" and self.clock() < record.due:
            gevent.sleep(min(0.05, max(0.001, record.due - self.clock())))
        try:
            self._confirm_deposit(record)
        except Exception as exc:  # keep it visible; a background greenlet has nobody to raise to
            self.deposit_errors.append(f"deposit {record.deposit_id}: {exc!r}")
        finally:
            record.timer = None

    def _confirm_deposit(self, record: ExternalDeposit) -> None:
        if record.state != "pending":
            return
        record.state = "confirmed"
        deposit = {
            "deposit_hash": record.deposit_hash,
            "deposit_index": 0,
            "sender": record.sender,
            "destination": record.destination,
            "tag": record.tag,
        }
        tx_hash = hashlib.sha256(f"mixin-deposit|{record.deposit_id}".encode()).hexdigest()
        snap = self.record_snapshot(record.bot_id, record.asset_id, record.amount, deposit=deposit,
                                    transaction_hash=tx_hash)
        self._credit(record.bot_id, record.asset_id, record.amount)
        record.snapshot = snap
        for listener in self.incoming_listeners:
            listener(record.bot_id, dict(snap))

    # ------------------------------------------------------------------ handlers

    def _get_network_asset(self, req: FakeRequest) -> Any:
        asset = self.assets.get(req.params["asset_id"])
        if asset is None:
            raise ApiError(404, "The asset is not found.")
        return asset

    def _fetch_safe_assets(self, req: FakeRequest) -> Any:
        ids = req.json()
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise invalid_field("body", "expected a JSON array of asset ids")
        return [dict(self.assets[i], type="safe_asset") for i in ids if i in self.assets]

    def _get_withdrawal_fees(self, req: FakeRequest) -> Any:
        asset_id = req.params["asset_id"]
        if asset_id not in self.assets:
            raise ApiError(404, "The asset is not found.")
        return self.withdrawal_fees.get(asset_id, [])

    def _list_snapshots(self, req: FakeRequest) -> Any:
        assert req.bot is not None
        order = (req.arg("order") or "DESC").upper()
        if order not in ("ASC", "DESC"):
            raise invalid_field("order")
        limit_text = req.arg("limit")
        if limit_text in (None, ""):
            limit = DEFAULT_SNAPSHOT_LIMIT
        else:
            try:
                limit = int(limit_text)
            except ValueError:
                raise invalid_field("limit") from None
            if limit < 1 or limit > MAX_SNAPSHOT_LIMIT:
                raise invalid_field("limit", f"must be 1..{MAX_SNAPSHOT_LIMIT}")
        offset_text = req.arg("offset")
        offset_ns = None
        if offset_text:
            try:
                offset_ns = parse_rfc3339_ns(offset_text)
            except ValueError:
                raise invalid_field("offset") from None
        filters = {name: req.arg(name) for name in ("app", "asset", "opponent") if req.arg(name)}
        if len(filters) > 1:
            raise invalid_field("app|asset|opponent", "mutually exclusive")
        for name, value in filters.items():
            if not _is_uuid(value):
                raise invalid_field(name)
        bot_id = req.bot.app_id
        if "app" in filters and filters["app"].lower() != bot_id:
            raise ApiError(403, "Forbidden.")
        if "asset" in filters:
            index_key = (bot_id, "asset", filters["asset"])
        elif "opponent" in filters:
            index_key = (bot_id, "opponent", filters["opponent"])
        else:
            index_key = (bot_id, "all", "")
        index = self._indexes.get(index_key)
        if index is None:
            return RawJSON(b"[]")
        factor = max(1, int(self.duplicate_factor))
        snaps = index.page(offset_ns, order, math.ceil(limit / factor))
        encoded = [s.encoded for s in snaps for _ in range(factor)][:limit]
        return RawJSON(b"[" + b",".join(encoded) + b"]")

    def _deposit_entries(self, req: FakeRequest) -> Any:
        assert req.bot is not None
        body = req.json()
        if not isinstance(body, dict):
            raise invalid_field("body", "expected an object")
        members = body.get("members")
        if not isinstance(members, list) or not members or not all(isinstance(m, str) and _is_uuid(m) for m in members):
            raise invalid_field("members", "expected a non-empty list of user ids")
        members = [m.lower() for m in members]
        if len(set(members)) != len(members):
            raise invalid_field("members", "duplicate member")
        if req.bot.app_id not in members:
            raise invalid_field("members", "the caller must be a member")
        threshold = body.get("threshold")
        if isinstance(threshold, bool) or not isinstance(threshold, int) or not 1 <= threshold <= len(members):
            raise invalid_field("threshold")
        chain_id = body.get("chain_id")
        if not isinstance(chain_id, str) or not _is_uuid(chain_id):
            raise invalid_field("chain_id")
        if not any(a["chain_id"] == chain_id for a in self.assets.values()):
            raise ApiError(404, "The chain is not found.")
        return [self.issue_deposit_entry(members, threshold, chain_id)]

    def _list_pending_deposits(self, req: FakeRequest) -> Any:
        assert req.bot is not None
        limit_text = req.arg("limit")
        if limit_text in (None, ""):
            limit = MAX_DEPOSITS_LIMIT
        else:
            try:
                limit = int(limit_text)
            except ValueError:
                raise invalid_field("limit") from None
            if limit < 1 or limit > MAX_DEPOSITS_LIMIT:
                raise invalid_field("limit", f"must be 1..{MAX_DEPOSITS_LIMIT}")
        asset = req.arg("asset") or None
        if asset is not None and not _is_uuid(asset):
            raise invalid_field("asset")
        destination = req.arg("destination") or None
        tag = req.arg("tag")
        offset_text = req.arg("offset")
        offset_ns = None
        if offset_text:
            try:
                offset_ns = parse_rfc3339_ns(offset_text)
            except ValueError:
                raise invalid_field("offset") from None
        rows = [
            r for r in self.pending_deposits(req.bot.app_id)
            if (asset is None or r.asset_id == asset)
            and (destination is None or r.destination.lower() == destination.lower())
            and (tag is None or r.tag == tag)
            and (offset_ns is None or r.created_ns >= offset_ns)
        ]
        rows.sort(key=lambda r: r.created_ns, reverse=offset_ns is None)
        return [self._deposit_view(r) for r in rows[:limit]]

    def _get_snapshot(self, req: FakeRequest) -> Any:
        assert req.bot is not None
        snap = self.snapshots.get(req.params["snapshot_id"])
        if snap is None or snap.data["user_id"] != req.bot.app_id:
            raise ApiError(404, "The snapshot is not found.")
        return RawJSON(snap.encoded)


_REASONS = {
    200: "OK",
    202: "Accepted",
    302: "Found",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _status_line(status: int) -> str:
    return f"{status} {_REASONS.get(status, 'Status')}"


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


__all__ = ["FakeMixin", "ApiError", "ExternalDeposit", "FakeRequest", "RawJSON", "Snapshot", "SnapshotIndex",
           "deposit_destination", "format_created_at", "parse_rfc3339_ns", "kernel_asset_id"]
