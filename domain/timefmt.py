"""RFC3339Nano timestamps as Mixin serves them, compared as integers.

Mr.Market compared `created_at` strings, which misorders values whose
fractional part drops trailing zeros (mrmarket-flow.md §11). We parse to
integer nanoseconds since the epoch and compare those.
"""
from __future__ import annotations

import calendar
import functools
import re
import time

_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?(Z|z|[+-][0-9]{2}:[0-9]{2})")


class BadTimestamp(ValueError):
    pass


def parse_ns(text: str) -> int:
    # Mixin's (and format_ns's) own shape, YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ: the second read once per page (cached),
    # the nanoseconds by int() — the regex over the whole text was most of parsing a snapshot's fields.
    if text.__class__ is str and len(text) == 30 and text[29] == "Z" and text[19] == ".":
        nanos = text[20:29]
        if nanos.isascii() and nanos.isdigit():
            seconds = _second_of(text[:19])
            if seconds is not None:
                return seconds * 1_000_000_000 + int(nanos)
    if not isinstance(text, str):
        raise BadTimestamp(f"not an RFC3339 timestamp: {text!r} is a {type(text).__name__}")
    match = _RFC3339.fullmatch(text)
    if not match:
        raise BadTimestamp(f"not an RFC3339 timestamp: {text!r}")
    year, month, day, hour, minute, second, frac, zone = match.groups()
    seconds = _epoch_seconds(year, month, day, hour, minute, second, zone)
    if seconds is None:
        raise BadTimestamp(f"not a valid date/time: {text!r}")
    nanos = int(frac.ljust(9, "0")) if frac else 0
    return seconds * 1_000_000_000 + nanos


@functools.lru_cache(maxsize=4096)
def _second_of(head: str) -> int | None:
    """Seconds since the epoch of YYYY-MM-DDTHH:MM:SS (UTC), None when it is not a valid one."""
    match = _RFC3339.fullmatch(head + "Z")
    return None if match is None else _epoch_seconds(*match.groups()[:6], "Z")


@functools.lru_cache(maxsize=4096)
def _epoch_seconds(year: str, month: str, day: str, hour: str, minute: str, second: str, zone: str) -> int | None:
    """Seconds since the epoch of a valid date and time, None if invalid. Cached: a page of snapshots shares a
    handful of seconds, and this (validation, timegm) was most of parsing a timestamp."""
    y, mo, d, h, mi, sec = int(year), int(month), int(day), int(hour), int(minute), int(second)
    if not (1 <= mo <= 12 and 1 <= d <= calendar.monthrange(y, mo)[1] and h <= 23 and mi <= 59 and sec <= 60):
        return None
    seconds = calendar.timegm((y, mo, d, h, mi, sec))
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds


def format_ns(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{base}.{nanos:09d}Z"
