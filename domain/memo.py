"""Mr.Market's memo format, encode and decode, with no I/O.

Wire format (reference: mrmarket-flow.md §1): the Safe transaction extra holds
the ASCII bytes of a base58 (Bitcoin alphabet) string; the snapshot shows those
bytes hex-encoded. The base58 payload is

    version(1) | trading_type(1) | action(1) | pair_id(16) | order_id(16) | checksum(4)

with checksum = sha256(sha256(payload))[:4]. Unlike Mr.Market we check the
length: a memo that is too short or carries trailing bytes is malformed, so it
is refunded instead of half-parsed.
"""
from __future__ import annotations

import binascii
import hashlib
import operator
import re
import uuid
from dataclasses import dataclass
from functools import lru_cache

from domain.records import built

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
_DIGIT_BYTES = bytes.maketrans(ALPHABET.encode("ascii"), bytes(range(58)))  # a base58 character → its digit
_ALPHABET_BYTES = ALPHABET.encode("ascii")  # deleted from a text, they leave what is not base58

VERSION_CURRENT = 1
TRADING_TYPE_SPOT = 0
TRADING_TYPE_MARKET_MAKING = 1
TRADING_TYPE_SIMPLY_GROW = 2
ACTION_CREATE = 1   # pay for a new order (or complete the payment of a pending one)
ACTION_DEPOSIT = 2  # add funds to a running or paused order
ACTION_EXIT = 3     # the owner asks to stop the order and get the funds back
ACTION_NAMES = {ACTION_CREATE: "create", ACTION_DEPOSIT: "deposit", ACTION_EXIT: "exit"}
ACTIONS_BY_NAME = {name: code for code, name in ACTION_NAMES.items()}
MARKET_MAKING_PAYLOAD_LEN = 35
CHECKSUM_LEN = 4
_HEX_RE = re.compile(r"^(?:[0-9a-fA-F]{2})+$")


class MemoError(ValueError):
    """A memo that cannot be decoded. `code` is a short machine reason for refund memos."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class MarketMakingMemo:
    version: int
    trading_type: int
    action: int
    pair_id: str
    order_id: str

    @property
    def action_name(self) -> str:
        return ACTION_NAMES.get(self.action, str(self.action))

    def as_dict(self) -> dict:
        return {
            "version": self.version,
            "trading_type": self.trading_type,
            "action": self.action,
            "action_name": self.action_name,
            "pair_id": self.pair_id,
            "order_id": self.order_id,
        }


def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, rem = divmod(n, 58)
        out.append(ALPHABET[rem])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


@lru_cache(maxsize=128)
def _place_values(length: int) -> tuple[int, ...]:
    """58**(length-1), ..., 58, 1: the weight of each digit of a base58 text of this length."""
    return tuple(58 ** (length - 1 - i) for i in range(length))


def b58decode(text: str) -> bytes:
    if not text:
        raise MemoError("empty", "memo is empty")
    ascii_text = text.encode("ascii") if text.isascii() else None
    if ascii_text is not None and not ascii_text.translate(None, _ALPHABET_BYTES):
        # every character a base58 digit: its number as one C-level sum of digit × place value (the per-character
        # Python loop below was half of decoding a memo)
        n = sum(map(operator.mul, ascii_text.translate(_DIGIT_BYTES), _place_values(len(ascii_text))))
    else:
        n = 0
        for ch in text:
            digit = _INDEX.get(ch)
            if digit is None:
                raise MemoError("not_base58", f"character {ch!r} is not in the base58 alphabet")
            n = n * 58 + digit
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    pad = len(text) - len(text.lstrip("1"))
    return b"\0" * pad + body


def _checksum(payload: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:CHECKSUM_LEN]


def encode_market_making(pair_id: str, order_id: str, *, action: int = ACTION_CREATE,
                         version: int = VERSION_CURRENT) -> str:
    """Base58 memo text for a market-making payment of `order_id` on pair `pair_id`."""
    payload = bytes([version, TRADING_TYPE_MARKET_MAKING, action])
    payload += uuid.UUID(pair_id).bytes + uuid.UUID(order_id).bytes
    return b58encode(payload + _checksum(payload))


def parse_action(value: str | int) -> int:
    """An action given by name (create, deposit, exit) or number (1, 2, 3); ValueError otherwise."""
    if isinstance(value, int) or str(value).strip().isdigit():
        code = int(value)
        if code in ACTION_NAMES:
            return code
    else:
        code = ACTIONS_BY_NAME.get(str(value).strip().lower())
        if code is not None:
            return code
    choices = ", ".join(f"{name} ({code})" for code, name in ACTION_NAMES.items())
    raise ValueError(f"unknown memo action {value!r}; choose one of {choices}")


def memo_action(memo_hex: str) -> int | None:
    """The market-making action of a snapshot's memo, or None when it is not a valid mmflow memo."""
    try:
        return decode_snapshot_memo(memo_hex).action
    except MemoError:
        return None


def decode_snapshot_memo(memo_hex: str) -> MarketMakingMemo:
    """A snapshot's memo (hex) decoded, or MemoError. Cached: every payment of an order carries the same memo,
    and base58 decoding is the costliest step of routing a snapshot."""
    decoded = _decode_snapshot_memo_cached(memo_hex)
    if isinstance(decoded, MemoError):
        raise MemoError(decoded.code, str(decoded))
    return decoded


def decoded_memo(memo_hex: str) -> MarketMakingMemo | None:
    """decode_snapshot_memo, None instead of MemoError (cached alike; no exception built per bad memo)."""
    decoded = _decode_snapshot_memo_cached(memo_hex)
    return None if isinstance(decoded, MemoError) else decoded


@lru_cache(maxsize=65536)
def _decode_snapshot_memo_cached(memo_hex: str) -> MarketMakingMemo | MemoError:
    try:
        return decode_market_making(snapshot_memo_to_text(memo_hex))
    except MemoError as exc:
        return exc  # remembered like a result (a fresh one is raised each time: tracebacks are not shared)


def memo_text_to_hex(text: str) -> str:
    """What the snapshot's `memo` field shows for a memo typed as text."""
    return text.encode("utf-8").hex()


def snapshot_memo_to_text(memo_hex: str) -> str:
    """Snapshot memo (hex of the extra bytes) → the text the payer wrote."""
    if not memo_hex:
        raise MemoError("empty", "memo is empty")
    try:
        raw = bytes.fromhex(memo_hex)
    except ValueError as exc:
        raise MemoError("not_hex", f"snapshot memo is not hex: {exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MemoError("not_utf8", "snapshot memo bytes are not UTF-8 text") from None


def decode_market_making(text: str) -> MarketMakingMemo:
    """Decode base58 memo text; raises MemoError with a reason code on anything off.

    Codes: empty, not_base58, bad_length, bad_checksum, bad_version,
    bad_trading_type, bad_action.
    """
    text = text.strip()
    raw = b58decode(text)
    if len(raw) < CHECKSUM_LEN + 3:
        raise MemoError("bad_length", f"memo decodes to {len(raw)} bytes, too short")
    payload, checksum = raw[:-CHECKSUM_LEN], raw[-CHECKSUM_LEN:]
    if _checksum(payload) != checksum:
        raise MemoError("bad_checksum", "memo checksum does not match")
    version, trading_type, action = payload[0], payload[1], payload[2]
    if version != VERSION_CURRENT:
        raise MemoError("bad_version", f"memo version {version} is not supported (only {VERSION_CURRENT})")
    if trading_type != TRADING_TYPE_MARKET_MAKING:
        raise MemoError("bad_trading_type",
                        f"trading type {trading_type} is not market making ({TRADING_TYPE_MARKET_MAKING})")
    if len(payload) != MARKET_MAKING_PAYLOAD_LEN:
        raise MemoError("bad_length",
                        f"market-making payload is {len(payload)} bytes, expected {MARKET_MAKING_PAYLOAD_LEN}")
    if action not in ACTION_NAMES:
        raise MemoError("bad_action", f"market-making action {action} is unknown")
    # built without the frozen __init__, the ids formatted from hex (str(uuid.UUID(bytes=...)) twice cost as much
    # as the base58 decoding): a memo seen for the first time is decoded on every order's first payment
    return built(MarketMakingMemo, version=version, trading_type=trading_type, action=action,
                 pair_id=_uuid_text(payload[3:19]), order_id=_uuid_text(payload[19:35]))


def _uuid_text(raw: bytes) -> str:
    """str(uuid.UUID(bytes=raw)) for 16 bytes: 8-4-4-4-12 lowercase hex."""
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def decode_any(text_or_hex: str) -> MarketMakingMemo:
    """Accept either the base58 text or the snapshot's hex form (CLI convenience).

    Hex is tried first only when the input is even-length hex whose bytes are
    base58 text; a base58 memo made of hex-looking characters still decodes.
    """
    candidate = text_or_hex.strip()
    if _HEX_RE.match(candidate):
        try:
            inner = binascii.unhexlify(candidate).decode("ascii")
        except (UnicodeDecodeError, binascii.Error):
            inner = None
        if inner and all(ch in _INDEX for ch in inner):
            try:
                return decode_market_making(inner)
            except MemoError as hex_error:
                # Report the hex reading's error unless the text also reads as base58 by itself.
                try:
                    return decode_market_making(candidate)
                except MemoError:
                    raise hex_error from None
    return decode_market_making(candidate)
