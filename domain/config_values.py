"""Value checks shared by the config models (domain/config.py, exchange_config.py, hufi_config.py, ...).

Each ``*_problem`` check returns the problem text (what is wrong, without the key: the key path is added
where the problem is reported) or None; the lower-case factories below (``seconds()``, ``count()``, ...)
wrap them as pydantic validators for ``Annotated`` fields. Nothing here does I/O; nothing here echoes more
than a short, truncated ``repr`` of the offending value — and callers never pass a secret to them.
"""
from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import PlainValidator

from domain.config_schema import problem
from domain.money import BadAmount, to_decimal

MAX_SECONDS = 10 * 365 * 86400          # ten years: anything longer is a typo (and overflows some timers)
MAX_COUNT = 1_000_000_000               # whole-number settings (attempts, limits, sizes)
MAX_AMOUNT = Decimal(10) ** 15          # amounts in the config: a quadrillion units is already absurd
MAX_SIGNIFICANT_DIGITS = 18
MAX_DECIMAL_PLACES = 18

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def show(value: Any, limit: int = 60) -> str:
    """A short repr of a (non-secret) config value for a message: one line, at most ``limit`` characters."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 5] + "...'" if text[:1] in "'\"" else text[: limit - 3] + "..."
    return text


def num(x: float) -> str:
    """A bound for a message: 1 not 1.0, 315360000 not 3.1536e+08, 0.01 as is."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def number_problem(value: Any, *, minimum: float | None = None, exclusive: bool = False,
                   maximum: float | None = None, integer: bool = False, unit: str = "") -> str | None:
    """A TOML number: bool refused, int or float (int only with ``integer``), finite, within bounds."""
    kind = "a whole number" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be {kind}, got {show(value)}"
    if integer and not isinstance(value, int):
        return f"must be a whole number, got {show(value)}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value!r}"
    if minimum is not None:
        if exclusive and not value > minimum:
            return f"must be > {num(minimum)}, got {value!r}"
        if not exclusive and value < minimum:
            return f"must be >= {num(minimum)}, got {value!r}"
    if maximum is not None and value > maximum:
        return f"must be at most {num(maximum)}{unit}, got {show(value, 30)}"
    return None


def number_or_raise(value: Any, **bounds: Any) -> float:
    """``number_problem`` for a pydantic ``field_validator``: the number as a float, or ValueError saying why."""
    found = number_problem(value, **bounds)
    if found:
        raise ValueError(found)
    return float(value)


def seconds_problem(value: Any, *, minimum: float = 0.0, exclusive: bool = True) -> str | None:
    """A duration in seconds: finite, > minimum (or >= with exclusive=False), at most ten years."""
    return number_problem(value, minimum=minimum, exclusive=exclusive, maximum=MAX_SECONDS,
                          unit=" seconds (ten years)")


def amount_problem(value: Decimal, shown: Any = None) -> str | None:
    """A finite Decimal from the config: not absurdly large or precise (``1e999999999``, 30 digits).

    No arithmetic under the default context happens here (it would overflow on such values)."""
    if not value.is_finite():
        return f"{show(shown if shown is not None else str(value))} is not finite"
    if value.is_zero():
        return None
    shown = show(shown if shown is not None else str(value))
    if value.copy_abs() > MAX_AMOUNT:
        return f"{shown} is too large (at most 1e15)"
    _, digits, exponent = value.as_tuple()
    digits = list(digits)
    while len(digits) > 1 and digits[-1] == 0:
        digits.pop()
        exponent += 1
    if len(digits) > MAX_SIGNIFICANT_DIGITS:
        return f"{shown} has {len(digits)} significant digits (at most {MAX_SIGNIFICANT_DIGITS})"
    if -exponent > MAX_DECIMAL_PLACES:
        return f"{shown} has more than {MAX_DECIMAL_PLACES} decimal places"
    return None


def http_url_problem(value: Any, *, allow_query: bool = True) -> str | None:
    """An absolute http(s) URL with a host (``http://`` alone, a bad port, spaces are refused)."""
    if not isinstance(value, str):
        return f"must be an http(s) URL, got {show(value)}"
    if not value.startswith(("http://", "https://")):
        return f"must be an http(s) URL, got {show(mask_url(value))}"
    if any(c.isspace() or ord(c) < 32 for c in value):
        return f"must be an http(s) URL without spaces or control characters, got {show(mask_url(value))}"
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"is not a valid URL ({exc}): {show(mask_url(value))}"
    if not host:
        return f"must name a host, got {show(mask_url(value))}"
    if not allow_query and (parts.query or parts.fragment or "?" in value):
        return f"must be an http(s) URL without a query, got {show(mask_url(value))}"
    return None


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (for messages)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        password = None
        parts = None
    if parts is not None and password is not None:
        user, _, host = parts.netloc.rpartition("@")
        name = user.split(":", 1)[0]
        return urlunsplit(parts._replace(netloc=f"{name}:***@{host}"))
    if "@" in url and ":" in url.split("@", 1)[0].split("//", 1)[-1]:
        scheme, _, rest = url.partition("//")
        userinfo, _, host = rest.partition("@")
        return f"{scheme}//{userinfo.split(':', 1)[0]}:***@{host}"
    return url


# --- the same checks as pydantic validators ------------------------------------------------------------

def checked(check: Callable[[Any], str | None], convert: Callable[[Any], Any] = lambda value: value) -> PlainValidator:
    """A validator that refuses what ``check`` finds wrong (with its text) and returns ``convert(value)``."""
    def validate(value: Any) -> Any:
        text = check(value)
        if text:
            raise problem(text)
        return convert(value)
    return PlainValidator(validate)


def seconds(minimum: float = 0.01, *, exclusive: bool = False) -> PlainValidator:
    """An interval, timeout or delay: finite, >= minimum (> with exclusive), at most ten years."""
    return checked(lambda value: seconds_problem(value, minimum=minimum, exclusive=exclusive))


def count(minimum: int, maximum: int = MAX_COUNT) -> PlainValidator:
    """A whole number (booleans refused) within bounds."""
    return checked(lambda value: number_problem(value, minimum=minimum, maximum=maximum, integer=True))


def number(minimum: float, maximum: float) -> PlainValidator:
    """A finite number (booleans refused) within bounds."""
    return checked(lambda value: number_problem(value, minimum=minimum, maximum=maximum))


def http_url(*, allow_query: bool = True) -> PlainValidator:
    """An absolute http(s) URL with a host; a trailing ``/`` is dropped."""
    return checked(lambda value: http_url_problem(value, allow_query=allow_query), lambda value: value.rstrip("/"))


def optional(validator: PlainValidator) -> PlainValidator:
    """The same validator, and None (Python callers: "not set") accepted as is."""
    return PlainValidator(lambda value: None if value is None else validator.func(value))


def flag_problem(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false (unquoted), got {show(value)}"


def decimal_value(value: Any) -> Decimal:
    """An amount of the config: a quoted decimal (or an integer), finite, not absurdly large or precise."""
    if isinstance(value, float):
        raise problem('must be a quoted decimal string (e.g. "0.1"), not a float')
    try:
        number = to_decimal(value, field="")
    except BadAmount as exc:
        raise problem(str(exc).removeprefix(": ")) from None
    text = amount_problem(number, value)
    if text:
        raise problem(text)
    return number


def uuid_value(value: Any) -> str:
    """A UUID, in its canonical lower-case form."""
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise problem(f"must be a UUID, got {show(value)}")


Flag = Annotated[bool, checked(flag_problem)]
Amount = Annotated[Decimal, PlainValidator(decimal_value)]
Uuid = Annotated[str, PlainValidator(uuid_value)]
Interval = Annotated[float, seconds()]          # > 0 (at least 0.01 s)
Delay = Annotated[float, seconds(0)]            # >= 0: zero means "none"
