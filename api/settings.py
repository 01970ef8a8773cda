"""The ``[api]`` table of the config: where the HTTP API listens, how it signs tokens, how it limits.

A pydantic v2 model (``ApiSettings``); ``parse_api`` turns its validation errors into the config's
one-line problems (``api.<key>: <what is wrong>``), which ``run.py`` prints as
``error: <file>: api.<key>: <what is wrong>`` and exits 2. Example::

    [api]
    # enabled = true                          # default: true when this table is present, false without it
    listen = "127.0.0.1:8710"                 # loopback by default; "0.0.0.0:8710" only behind a proxy
    public_base_url = "https://mm.example"    # what links and the OAuth return address are built from
    token_secret_file = "secrets/api-jwt.secret"  # HMAC key of the user JWTs (>= 32 characters);
                                              # without it a random key per process (logins end at restart)
    access_token_ttl = 900                    # seconds a user JWT lives
    refresh_token_ttl = 1209600               # seconds a refresh token lives (rotated on every use)
    rate_limit_per_address = "300/minute"     # Flask-Limiter notation, every request of one address
    rate_limit_per_token = "600/minute"       # every request carrying one credential
    rate_limit_intents = "30/minute"          # order intents per address (public and cheap to abuse)
    command_wait = 5.0                        # seconds a command request waits for the service (then 202)
    mixin_oauth_client_id = "<bot app id>"    # default: the bot's app id (its keystore)
    mixin_oauth_client_secret_file = "secrets/mixin-oauth.secret"  # without it: PKCE
    mixin_oauth_authorize_url = "https://mixin.one/oauth/authorize"
    mixin_oauth_return_to = "https://mm.example/"   # where Mixin sends the browser back (default public_base_url)

Secrets are never inline: the token secret and the OAuth client secret are file paths (relative to the
config file), checked readable at load (``read_secrets``) and added to the redaction set
(``integrations.redaction.secrets_of``).
"""
from __future__ import annotations

import difflib
import ipaddress
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from domain.config_values import MAX_SECONDS, http_url_problem, show
from domain.hufi_config import SecretRef, SecretUnavailable

__all__ = ["ApiSettings", "MIN_TOKEN_SECRET_LENGTH", "parse_api", "parse_listen"]

MIN_TOKEN_SECRET_LENGTH = 32
DEFAULT_LISTEN = "127.0.0.1:8710"
DEFAULT_AUTHORIZE_URL = "https://mixin.one/oauth/authorize"
_INLINE_SECRETS = {"token_secret", "secret", "jwt_secret", "mixin_oauth_client_secret", "client_secret"}


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) → (host, port); ValueError saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("must be HOST:PORT (e.g. \"127.0.0.1:8710\")")
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f"must be HOST:PORT (e.g. \"127.0.0.1:8710\"), got {show(text)}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"the port must be a number 0..65535, got {show(port_text)}")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"the host must be an IP address or localhost, got {show(host)}") from None
    return host, int(port_text)


def _rate(value: Any) -> str:
    from limits import parse_many

    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a rate like \"300/minute\"")
    try:
        if not parse_many(value):
            raise ValueError
    except ValueError:
        raise ValueError(f"must be a rate like \"300/minute\" or \"10/second;100/minute\", got {show(value)}") \
            from None
    return value


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"must be a number of seconds, got {show(value)}")
    if value <= 0 or value > MAX_SECONDS:
        raise ValueError(f"must be > 0 and at most ten years, got {value!r}")
    return float(value)


class ApiSettings(BaseModel):
    """The validated ``[api]`` table (see the module docstring). Secret files are absolute paths here."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    enabled: bool = False
    listen: str = DEFAULT_LISTEN
    public_base_url: str | None = None
    token_secret_file: str | None = None
    access_token_ttl: float = 900.0
    refresh_token_ttl: float = 1209600.0
    rate_limit_per_address: str = "300/minute"
    rate_limit_per_token: str = "600/minute"
    rate_limit_intents: str = "30/minute"
    command_wait: float = Field(default=5.0)
    mixin_oauth_client_id: str | None = None
    mixin_oauth_client_secret_file: str | None = None
    mixin_oauth_authorize_url: str = DEFAULT_AUTHORIZE_URL
    mixin_oauth_return_to: str | None = None

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @field_validator("public_base_url", "mixin_oauth_authorize_url", "mixin_oauth_return_to")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        problem = http_url_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("access_token_ttl", "refresh_token_ttl", "command_wait", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> float:
        return _seconds(value)

    @field_validator("command_wait")
    @classmethod
    def _wait(cls, value: float) -> float:
        if value > 60:
            raise ValueError(f"must be at most 60 seconds (an HTTP request waits this long), got {value!r}")
        return value

    @field_validator("rate_limit_per_address", "rate_limit_per_token", "rate_limit_intents")
    @classmethod
    def _rates(cls, value: str) -> str:
        return _rate(value)

    @field_validator("mixin_oauth_client_id")
    @classmethod
    def _client_id(cls, value: str | None) -> str | None:
        import uuid

        if value is None:
            return None
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ValueError(f"must be the bot's app id (a UUID), got {show(value)}") from None

    @property
    def address(self) -> tuple[str, int]:
        return parse_listen(self.listen)

    @property
    def token_secret(self) -> SecretRef | None:
        return SecretRef(file=self.token_secret_file) if self.token_secret_file else None

    @property
    def oauth_client_secret(self) -> SecretRef | None:
        return SecretRef(file=self.mixin_oauth_client_secret_file) if self.mixin_oauth_client_secret_file else None


def _problem(error: dict, table: dict) -> str:
    loc = ".".join(str(p) for p in error.get("loc", ())) or "api"
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        key = str(error["loc"][0])
        if key in _INLINE_SECRETS:
            return f"api.{key}: secrets are never inline; give {key}_file (a file holding it)" \
                if not key.endswith("_file") else f"api.{key}: unknown key"
        close = difflib.get_close_matches(key, sorted(ApiSettings.model_fields), n=1, cutoff=0.7)
        return f"api.{key}: unknown key" + (f"; did you mean {close[0]!r}?" if close else "")
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if kind in ("bool_type", "string_type", "float_type", "int_type"):
        what = {"bool_type": "true or false (unquoted)", "string_type": "a string", "float_type": "a number",
                "int_type": "a whole number"}[kind]
        message = f"must be {what}, got {show(table.get(error['loc'][0]) if error.get('loc') else None)}"
    return f"api.{loc}: {message}"


def _file_setting(table: dict, key: str, base_dir: Path, problems: list[str]) -> None:
    value = table.get(key)
    if value is None:
        return
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        problems.append(f"api.{key}: must be a file path")
        table.pop(key)
        return
    table[key] = str((base_dir / value).resolve())


def _check_secret(ref: SecretRef | None, key: str, problems: list[str], *, minimum: int = 1) -> None:
    if ref is None:
        return
    try:
        value = ref.read()
    except SecretUnavailable as exc:
        problems.append(f"api.{key}: {exc}")
        return
    if len(value) < minimum:
        problems.append(f"api.{key}: {ref.source} holds {len(value)} characters; at least {minimum} are needed "
                        f"(e.g. `openssl rand -hex 32 > FILE`)")


def parse_api(raw: Any, problems: list[str], base_dir: Path, *, read_secrets: bool = True) -> ApiSettings:
    """The ``[api]`` table as ApiSettings (disabled when absent); problems appended as ``api.<key>: ...``.

    A present table is enabled unless it says ``enabled = false``. With ``read_secrets`` the secret files
    it names must be readable now (and the token secret long enough); the values are read and discarded."""
    if raw is None:
        return ApiSettings()
    if not isinstance(raw, dict):
        problems.append("api: must be a table ([api])")
        return ApiSettings()
    table = dict(raw)
    table.setdefault("enabled", True)
    for key in ("token_secret_file", "mixin_oauth_client_secret_file"):
        _file_setting(table, key, base_dir, problems)
    for key in ("access_token_ttl", "refresh_token_ttl", "command_wait"):
        if isinstance(table.get(key), int) and not isinstance(table.get(key), bool):
            table[key] = float(table[key])  # strict mode: TOML's 900 is a valid number of seconds
    try:
        settings = ApiSettings.model_validate(table)
    except ValidationError as exc:
        problems.extend(_problem(e, table) for e in exc.errors(include_url=False))
        return ApiSettings()
    if read_secrets and settings.enabled:
        _check_secret(settings.token_secret, "token_secret_file", problems, minimum=MIN_TOKEN_SECRET_LENGTH)
        _check_secret(settings.oauth_client_secret, "mixin_oauth_client_secret_file", problems)
    return settings
