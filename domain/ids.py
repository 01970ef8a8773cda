"""Deterministic identifiers.

Every money movement gets an id derived from what caused it, so a retry after a
crash produces the same id and Mixin (or the exchange) recognises it as the same
request instead of paying twice.
"""
from __future__ import annotations

import hashlib
import uuid


def unique_object_id(*parts: str) -> str:
    """Mixin's UniqueObjectId: MD5 over the concatenated parts, shaped as a UUID v3.

    Byte-compatible with the Go SDK so ids we derive agree with Mixin tooling.
    """
    digest = bytearray(hashlib.md5("".join(parts).encode("utf-8")).digest())
    digest[6] = (digest[6] & 0x0F) | 0x30
    digest[8] = (digest[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(digest)))


def refund_request_id(snapshot_id: str) -> str:
    """Request id of the refund of one incoming snapshot (at most one per snapshot, ever)."""
    return unique_object_id("mmflow:refund:", snapshot_id)
