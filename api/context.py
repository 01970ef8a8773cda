"""What the API's handlers need: the config, the running services (if any), a clock, the settings and
the token secret. One ``ApiContext`` per app (``create_app(ctx)``)."""
from __future__ import annotations

import secrets as _secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from api.settings import ApiSettings

PENDING_LOGIN_TTL = 600.0  # seconds a started Mixin login (its state and PKCE verifier) may take
MAX_PENDING_LOGINS = 10_000


class PendingLogins:
    """Mixin logins started here and not finished: state → PKCE verifier (bounded, expiring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[float, str | None]] = {}

    def add(self, state: str, verifier: str | None, now: float) -> None:
        with self._lock:
            if len(self._items) >= MAX_PENDING_LOGINS:
                for key in [k for k, (at, _) in self._items.items() if now - at > PENDING_LOGIN_TTL]:
                    del self._items[key]
                if len(self._items) >= MAX_PENDING_LOGINS:  # still full: the oldest go
                    del self._items[next(iter(self._items))]
            self._items[state] = (now, verifier)

    def take(self, state: str, now: float) -> tuple[bool, str | None]:
        """(known and fresh, its verifier); a state is used once."""
        with self._lock:
            item = self._items.pop(state, None)
        if item is None or now - item[0] > PENDING_LOGIN_TTL:
            return False, None
        return True, item[1]


@dataclass
class ApiContext:
    """``services`` is None when the app runs without the actor tree (then commands are only queued,
    /readyz says the tree is down and order intents cannot price fees)."""
    config: Any
    services: Any | None
    clock: Callable[[], float]
    settings: ApiSettings
    secret: bytes = field(repr=False)
    bot_user_id: str | None = None
    oauth_client_secret: str | None = field(default=None, repr=False)
    logins: PendingLogins = field(default_factory=PendingLogins)

    @property
    def oauth_client_id(self) -> str | None:
        return self.settings.mixin_oauth_client_id or self.bot_user_id

    def now(self) -> float:
        return self.clock()


def _bot_user_id(config, services) -> str | None:
    keystore = getattr(getattr(services, "mixin", None), "keystore", None)
    if keystore is not None:
        return keystore.app_id
    try:
        from integrations.mixin.keystore import load_bot_keystore

        return load_bot_keystore(config.mixin.keystore_path).app_id
    except Exception as exc:  # noqa: BLE001 - pay links and OAuth then say they are unavailable
        logger.warning("api: the bot's keystore cannot be read ({}); pay links and Mixin login are unavailable",
                       type(exc).__name__)
        return None


def build_context(config, services=None, *, clock: Callable[[], float] | None = None,
                  settings: ApiSettings | None = None) -> ApiContext:
    """The context of an app for this config: secrets read from their files now (never logged)."""
    settings = settings or config.api
    if settings.token_secret is not None:
        secret = settings.token_secret.read().encode("utf-8")
    else:
        secret = _secrets.token_bytes(32)
        logger.info("api: no token_secret_file: user logins are signed with a key of this process only "
                    "(they end when it stops; API tokens are not affected)")
    client_secret = settings.oauth_client_secret.read() if settings.oauth_client_secret is not None else None
    if clock is None:
        clock = getattr(services, "clock", None) or time.time
    return ApiContext(config=config, services=services, clock=clock, settings=settings, secret=secret,
                      bot_user_id=_bot_user_id(config, services), oauth_client_secret=client_secret)
