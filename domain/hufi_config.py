"""The ``[hufi]`` table of the config: HuFi campaign launcher, recording oracle, keys.

Pure parsing: nothing is read from disk or the environment here except to
resolve paths; secrets are *referenced* (file or environment variable, never
inline) and read only when used (``SecretRef.read()``), so a repr or a log line
of this config never shows one. Example::

    [hufi]
    enabled = true
    launcher_url = "https://cl.hu.finance"      # default
    oracle_url = "https://ro.hu.finance"        # default
    chain_id = 137                              # default (Polygon)
    evm_private_key_file = "secrets/hufi-evm.key"   # or evm_private_key_env = "MMFLOW_HUFI_EVM_KEY"
    refresh_interval = 600.0                    # seconds between campaign list refreshes
    retry_delay = 30.0                          # first retry after a failed join; doubles each time
    retry_max_delay = 1800.0                    # cap of that backoff
    request_timeout = 10.0                      # per HTTP request
    max_attempts = 3                            # HTTP attempts per call inside the client

    # One table per exchange account (the account id of [[exchanges]]): a READ-ONLY key
    # that HuFi uses to see the account's trades. Never the trading key.
    [hufi.exchange_api_keys.mexc-main]
    api_key_file = "secrets/mexc-ro.key"        # or api_key_env
    secret_file = "secrets/mexc-ro.secret"      # or secret_env
    passphrase_env = "MEXC_RO_PASSPHRASE"       # kucoin only (or passphrase_file)
    api_key_memo = "mmflow"                     # bitmart only (not a secret)

A missing ``[hufi]`` table means HuFi is disabled (``parse_hufi`` returns None). With
``check_secrets=True`` (what ``load_config`` does for the service) every secret an enabled
``[hufi]`` names must be readable now — a missing key file is refused at start, not at the
first join; the check reads and discards the value, and a problem names only the file or variable.
Every problem reads ``<key path>: <what is wrong>``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domain.config_values import (
    ENV_NAME,
    MAX_COUNT,
    http_url_problem,
    number_problem,
    seconds_problem,
    show,
)

__all__ = ["ApiKeyRef", "ExchangeApiKey", "HufiConfig", "SecretRef", "SecretUnavailable", "parse_hufi"]

DEFAULT_LAUNCHER_URL = "https://cl.hu.finance"
DEFAULT_ORACLE_URL = "https://ro.hu.finance"
DEFAULT_CHAIN_ID = 137

_ENV_NAME = ENV_NAME
_KEYS = {"enabled", "launcher_url", "oracle_url", "chain_id", "evm_private_key_file", "evm_private_key_env",
         "exchange_api_keys", "refresh_interval", "retry_delay", "retry_max_delay", "request_timeout",
         "max_attempts"}
_INLINE_SECRETS = {"evm_private_key", "private_key", "evm_key"}
_API_KEY_KEYS = {"api_key_file", "api_key_env", "secret_file", "secret_env", "passphrase_file", "passphrase_env",
                 "api_key_memo"}
_API_KEY_INLINE = {"api_key": "api_key", "secret": "secret", "secret_key": "secret", "passphrase": "passphrase"}


class SecretUnavailable(RuntimeError):
    """A referenced secret could not be read (missing file, unset variable, empty value)."""


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives: an absolute file path or an environment variable name. Never the value."""

    file: str | None = None
    env: str | None = None

    @property
    def source(self) -> str:
        return f"file:{self.file}" if self.file else f"env:{self.env}"

    def read(self) -> str:
        """The secret, stripped; SecretUnavailable (naming only the source) if it cannot be had."""
        if self.file:
            try:
                value = Path(self.file).read_text(encoding="utf-8")
            except OSError as exc:
                raise SecretUnavailable(f"cannot read {self.source}: {exc.strerror or type(exc).__name__}") from None
            except UnicodeDecodeError:
                raise SecretUnavailable(f"{self.source} is not a text (UTF-8) file") from None
        else:
            value = os.environ.get(self.env or "")
            if value is None:
                raise SecretUnavailable(f"{self.source} is not set")
        value = value.strip()
        if not value:
            raise SecretUnavailable(f"{self.source} is empty")
        return value

    def __repr__(self) -> str:
        return f"SecretRef({self.source})"


@dataclass(frozen=True)
class ExchangeApiKey:
    """A read-only exchange API key as read from its secrets (what the oracle's enrollment takes)."""

    api_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    extras: dict = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class ApiKeyRef:
    """The read-only API key of one exchange account, by reference."""

    account_id: str
    api_key: SecretRef
    secret: SecretRef
    passphrase: SecretRef | None = None
    api_key_memo: str | None = None

    def read(self) -> ExchangeApiKey:
        extras: dict[str, str] = {}
        if self.passphrase is not None:
            extras["passphrase"] = self.passphrase.read()
        if self.api_key_memo:
            extras["api_key_memo"] = self.api_key_memo
        return ExchangeApiKey(self.api_key.read(), self.secret.read(), extras)


@dataclass(frozen=True)
class HufiConfig:
    enabled: bool = False
    launcher_url: str = DEFAULT_LAUNCHER_URL
    oracle_url: str = DEFAULT_ORACLE_URL
    chain_id: int = DEFAULT_CHAIN_ID
    evm_private_key: SecretRef | None = None
    exchange_api_keys: tuple[ApiKeyRef, ...] = ()
    refresh_interval: float = 600.0
    retry_delay: float = 30.0
    retry_max_delay: float = 1800.0
    request_timeout: float = 10.0
    max_attempts: int = 3

    def api_key_for(self, account_id: str) -> ApiKeyRef | None:
        return next((k for k in self.exchange_api_keys if k.account_id == account_id), None)


def _secret(table: dict, stem: str, where: str, problems: list[str], base_dir: Path, *,
            required: bool) -> SecretRef | None:
    file_value, env_value = table.get(f"{stem}_file"), table.get(f"{stem}_env")
    if file_value is not None and env_value is not None:
        problems.append(f"{where}.{stem}_file: give {stem}_file or {stem}_env, not both")
        return None
    if file_value is not None:
        if not isinstance(file_value, str) or not file_value.strip() or "\x00" in file_value:
            problems.append(f"{where}.{stem}_file: must be a file path")
            return None
        return SecretRef(file=str((base_dir / file_value).resolve()))
    if env_value is not None:
        if not isinstance(env_value, str) or not _ENV_NAME.match(env_value):
            # not echoed: a value that is no variable name may be the secret itself
            problems.append(f"{where}.{stem}_env: must be an environment variable name (letters, digits, _)")
            return None
        return SecretRef(env=env_value)
    if required:
        problems.append(f"{where}.{stem}_file: {stem}_file or {stem}_env is required")
    return None


def _check_readable(ref: SecretRef | None, key: str, problems: list[str]) -> None:
    """The secret can be had now (read and discarded); the problem names the file or variable only."""
    if ref is None:
        return
    try:
        ref.read()
    except SecretUnavailable as exc:
        problems.append(f"{key}: {exc}")


def _number(table: dict, key: str, default: float, problems: list[str], *, minimum: float,
            integer: bool = False) -> Any:
    """Seconds (finite, >= minimum, at most ten years) or, with integer, a count."""
    value = table.get(key, default)
    if integer:
        problem = number_problem(value, minimum=minimum, maximum=MAX_COUNT, integer=True)
    else:
        problem = seconds_problem(value, minimum=minimum, exclusive=False)
    if problem:
        problems.append(f"hufi.{key}: {problem}")
        return default
    return value


def _url(table: dict, key: str, default: str, problems: list[str]) -> str:
    value = table.get(key, default)
    problem = http_url_problem(value, allow_query=False)
    if problem:
        problems.append(f"hufi.{key}: {problem}")
        return default
    return value.rstrip("/")


def parse_hufi(raw_table: dict | None, problems: list[str], base_dir: Path | None = None, *,
               check_secrets: bool = False) -> HufiConfig | None:
    """Validate the ``[hufi]`` table, appending every problem to ``problems``.

    None when the table is absent (HuFi disabled). With ``enabled = false`` the
    rest is still validated and a disabled HufiConfig is returned. Secret values
    are never read here, only their references checked for shape.
    """
    if raw_table is None:
        return None
    if not isinstance(raw_table, dict):
        problems.append("hufi: must be a table ([hufi])")
        return None
    base_dir = base_dir or Path.cwd()
    for key in raw_table:
        if key in _INLINE_SECRETS:
            problems.append(f"hufi.{key}: the EVM private key is never written inline; "
                            "use evm_private_key_file or evm_private_key_env")
        elif key not in _KEYS:
            problems.append(f"hufi.{key}: unknown key")

    enabled = raw_table.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(f"hufi.enabled: must be true or false (unquoted), got {show(enabled)}")
        enabled = False
    chain_id = raw_table.get("chain_id", DEFAULT_CHAIN_ID)
    if isinstance(chain_id, bool) or not isinstance(chain_id, int) or chain_id <= 0:
        problems.append(f"hufi.chain_id: must be a positive whole number (137 = Polygon, 1 = Ethereum), "
                        f"got {show(chain_id)}")
        chain_id = DEFAULT_CHAIN_ID
    evm_key = _secret(raw_table, "evm_private_key", "hufi", problems, base_dir, required=enabled)

    api_keys: list[ApiKeyRef] = []
    raw_keys = raw_table.get("exchange_api_keys", {})
    if not isinstance(raw_keys, dict):
        problems.append("hufi.exchange_api_keys: must be a table of exchange account ids")
        raw_keys = {}
    for account_id, item in raw_keys.items():
        where = f"hufi.exchange_api_keys.{account_id}"
        if not isinstance(item, dict):
            problems.append(f"{where}: must be a table")
            continue
        for key in item:
            if key in _API_KEY_INLINE:
                stem = _API_KEY_INLINE[key]
                problems.append(f"{where}.{key}: API keys are never written inline; use {stem}_file or {stem}_env")
            elif key not in _API_KEY_KEYS:
                problems.append(f"{where}.{key}: unknown key")
        api_key = _secret(item, "api_key", where, problems, base_dir, required=True)
        secret = _secret(item, "secret", where, problems, base_dir, required=True)
        passphrase = _secret(item, "passphrase", where, problems, base_dir, required=False)
        memo = item.get("api_key_memo")
        if memo is not None and (not isinstance(memo, str) or not memo):
            problems.append(f"{where}.api_key_memo: must be a non-empty string")
            memo = None
        if api_key is not None and secret is not None:
            api_keys.append(ApiKeyRef(str(account_id), api_key, secret, passphrase, memo))
        if check_secrets and enabled:
            for stem, ref in (("api_key", api_key), ("secret", secret), ("passphrase", passphrase)):
                kind = "file" if ref is not None and ref.file else "env"
                _check_readable(ref, f"{where}.{stem}_{kind}", problems)

    retry_delay = _number(raw_table, "retry_delay", 30.0, problems, minimum=0.01)
    retry_max_delay = _number(raw_table, "retry_max_delay", 1800.0, problems, minimum=0.01)
    if retry_max_delay < retry_delay:
        problems.append(f"hufi.retry_max_delay: must be >= hufi.retry_delay ({retry_delay!r}), got {retry_max_delay!r}")
    if check_secrets and enabled and evm_key is not None:
        _check_readable(evm_key, "hufi.evm_private_key_" + ("file" if evm_key.file else "env"), problems)
    return HufiConfig(
        enabled=enabled,
        launcher_url=_url(raw_table, "launcher_url", DEFAULT_LAUNCHER_URL, problems),
        oracle_url=_url(raw_table, "oracle_url", DEFAULT_ORACLE_URL, problems),
        chain_id=chain_id,
        evm_private_key=evm_key,
        exchange_api_keys=tuple(api_keys),
        refresh_interval=_number(raw_table, "refresh_interval", 600.0, problems, minimum=0.01),
        retry_delay=retry_delay,
        retry_max_delay=retry_max_delay,
        request_timeout=_number(raw_table, "request_timeout", 10.0, problems, minimum=0.01),
        max_attempts=_number(raw_table, "max_attempts", 3, problems, minimum=1, integer=True),
    )
