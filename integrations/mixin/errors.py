"""Typed errors of the Mixin API client.

The hierarchy tells callers what they may do next:

- ``MixinApiError`` (and its subclasses ``MixinAuthError``, ``MixinNotFound``):
  Mixin answered and refused. Repeating the same request gives the same answer.
- ``MixinRateLimited``: Mixin refused *before* doing anything; safe to repeat later.
- ``MixinServerError``: a 5xx. The request may or may not have taken effect.
- ``MixinTransportError``: no (complete) answer at all. The request may or may
  not have taken effect, unless ``request_sent`` is ``False``.
- ``MixinBadResponse``: an answer we could not understand (not JSON, neither
  ``data`` nor ``error``, or a payload of the wrong shape).

No error message ever contains a token, a key or a request body.
"""
from __future__ import annotations

from typing import Any


class MixinError(Exception):
    """Base class of every error raised by the Mixin client."""

    def __init__(
        self,
        description: str = "",
        *,
        status: int | None = None,
        code: int | None = None,
        extra: Any = None,
    ) -> None:
        self.status = status
        self.code = code
        self.description = description
        self.extra = extra
        super().__init__(self._render())

    def _render(self) -> str:
        parts = []
        if self.status is not None:
            parts.append(f"http={self.status}")
        if self.code is not None:
            parts.append(f"code={self.code}")
        head = " ".join(parts)
        if head and self.description:
            return f"{head}: {self.description}"
        return head or self.description

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"description={self.description!r})"
        )


class MixinApiError(MixinError):
    """Mixin answered with an error envelope. Not retryable (except the transient codes)."""


class MixinAuthError(MixinApiError):
    """401/403: the token was rejected or the bot may not do this."""


class MixinNotFound(MixinApiError):
    """404: no such asset/snapshot/route."""


class MixinRateLimited(MixinError):
    """429 (HTTP status or ``error.code``). ``retry_after`` is seconds if the server said so."""

    def __init__(self, description: str = "", *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(description, **kwargs)


class MixinServerError(MixinError):
    """5xx: the server failed; the request's effect is unknown."""


class MixinTransportError(MixinError):
    """Connect/read timeout or connection reset: no complete answer, outcome unknown.

    ``request_sent`` is ``False`` when the connection was never established (the
    request certainly did not reach Mixin), ``None`` when unknown.
    """

    def __init__(self, description: str = "", *, request_sent: bool | None = None, **kwargs: Any) -> None:
        self.request_sent = request_sent
        super().__init__(description, **kwargs)


class MixinBadResponse(MixinError):
    """The answer was not JSON, had neither ``data`` nor ``error``, or had the wrong shape."""


__all__ = [
    "MixinError",
    "MixinApiError",
    "MixinAuthError",
    "MixinNotFound",
    "MixinRateLimited",
    "MixinServerError",
    "MixinTransportError",
    "MixinBadResponse",
]
