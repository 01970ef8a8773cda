"""The ``[hufi]`` table of the config: HuFi campaign launcher, recording oracle, keys.

Declared once as pydantic models (domain/config_schema.py). Secrets are *referenced*
(file or environment variable, never inline) and read only when used
(``SecretRef.read()``), so a repr or a log line of this config never shows one. Example::

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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import InstanceOf, TypeAdapter, ValidationError, ValidationInfo, WrapValidator

from domain.config_schema import REPORTED, Issue, Load, Section, loading, problem, problems_of
from domain.config_values import Flag, Interval, checked, count, http_url, show
from domain.secret_refs import SecretRef, SecretUnavailable, take_secret_ref

__all__ = ["ApiKeyRef", "ExchangeApiKey", "HufiConfig", "SecretRef", "SecretUnavailable", "parse_hufi"]

DEFAULT_LAUNCHER_URL = "https://cl.hu.finance"
DEFAULT_ORACLE_URL = "https://ro.hu.finance"
DEFAULT_CHAIN_ID = 137

_ENV_PROBLEM = "must be an environment variable name (letters, digits, _)"
_EVM_INLINE = ("evm_private_key", "private_key", "evm_key")
_API_KEY_STEMS = ("api_key", "secret", "passphrase")
_API_KEY_INLINE = {"api_key": "api_key", "secret": "secret", "secret_key": "secret", "passphrase": "passphrase"}


@dataclass(frozen=True)
class ExchangeApiKey:
    """A read-only exchange API key as read from its secrets (what the oracle's enrollment takes)."""

    api_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    extras: dict = field(default_factory=dict, repr=False)


def _memo_problem(value: Any) -> str | None:
    return None if value is None or (isinstance(value, str) and value) else "must be a non-empty string"


class ApiKeyRef(Section):
    """The read-only API key of one exchange account, by reference (``[hufi.exchange_api_keys.<account>]``)."""

    internal = frozenset({"account_id"})     # the table's name in the file
    file_only = frozenset(f"{stem}_{kind}" for stem in _API_KEY_STEMS for kind in ("file", "env"))

    account_id: str = ""                     # set from the table's name by HufiConfig
    api_key: InstanceOf[SecretRef]
    secret: InstanceOf[SecretRef]
    passphrase: InstanceOf[SecretRef] | None = None   # kucoin
    api_key_memo: Annotated[str | None, checked(_memo_problem)] = None   # bitmart (not a secret)

    def __init__(self, account_id: str, api_key: SecretRef, secret: SecretRef, passphrase: SecretRef | None = None,
                 api_key_memo: str | None = None) -> None:
        super().__init__(account_id=account_id, api_key=api_key, secret=secret, passphrase=passphrase,
                         api_key_memo=api_key_memo)

    # Positional arguments for Python callers; validation from a file's table does not come here.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def prepare(cls, data: dict[str, Any], load: Load) -> list[Issue]:
        issues = []
        for key, stem in _API_KEY_INLINE.items():
            if key in data:
                del data[key]
                issues.append(Issue((key,), f"API keys are never written inline; use {stem}_file or {stem}_env"))
        for stem in _API_KEY_STEMS:
            ref, found = take_secret_ref(data, stem, load, env_problem=_ENV_PROBLEM)
            issues += found
            if ref is not None:
                data[stem] = ref
            elif stem != "passphrase":
                if not found:
                    issues.append(Issue((f"{stem}_file",), f"{stem}_file or {stem}_env is required"))
                data[stem] = REPORTED
        return issues

    def read(self) -> ExchangeApiKey:
        extras: dict[str, str] = {}
        if self.passphrase is not None:
            extras["passphrase"] = self.passphrase.read()
        if self.api_key_memo:
            extras["api_key_memo"] = self.api_key_memo
        return ExchangeApiKey(self.api_key.read(), self.secret.read(), extras)


_KEYS_BY_ACCOUNT = TypeAdapter(dict[str, ApiKeyRef])


def _api_keys(value: Any, handler, info: ValidationInfo) -> tuple[ApiKeyRef, ...]:
    """In a file: a table of exchange account ids, each a table of references; in Python: the refs."""
    if loading(info) is None:
        return handler(value)
    if not isinstance(value, dict):
        raise problem("must be a table of exchange account ids")
    refs = _KEYS_BY_ACCOUNT.validate_python(value, context=info.context)
    return tuple(ref.model_copy(update={"account_id": str(account)}) for account, ref in refs.items())


def _chain_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return f"must be a positive whole number (137 = Polygon, 1 = Ethereum), got {show(value)}"
    return None


class HufiConfig(Section):
    """``[hufi]``; a table in the file is enabled unless it says ``enabled = false``."""

    file_only = frozenset({"evm_private_key_file", "evm_private_key_env"})

    enabled: Flag = False
    launcher_url: Annotated[str, http_url(allow_query=False)] = DEFAULT_LAUNCHER_URL
    oracle_url: Annotated[str, http_url(allow_query=False)] = DEFAULT_ORACLE_URL
    chain_id: Annotated[int, checked(_chain_problem)] = DEFAULT_CHAIN_ID
    evm_private_key: InstanceOf[SecretRef] | None = None
    exchange_api_keys: Annotated[tuple[ApiKeyRef, ...], WrapValidator(_api_keys)] = ()
    refresh_interval: Interval = 600.0     # seconds between campaign list refreshes
    retry_delay: Interval = 30.0           # first retry after a failed join; doubles each time
    retry_max_delay: Interval = 1800.0     # cap of that backoff
    request_timeout: Interval = 10.0       # per HTTP request
    max_attempts: Annotated[int, count(1)] = 3

    def api_key_for(self, account_id: str) -> ApiKeyRef | None:
        return next((k for k in self.exchange_api_keys if k.account_id == account_id), None)

    @classmethod
    def prepare(cls, data: dict[str, Any], load: Load) -> list[Issue]:
        issues = []
        for key in _EVM_INLINE:
            if key in data:
                del data[key]
                issues.append(Issue((key,), "the EVM private key is never written inline; "
                                    "use evm_private_key_file or evm_private_key_env"))
        enabled = data.setdefault("enabled", True) is True
        evm_key, found = take_secret_ref(data, "evm_private_key", load, env_problem=_ENV_PROBLEM)
        issues += found
        if evm_key is not None:
            data["evm_private_key"] = evm_key
        elif enabled and not found:
            issues.append(Issue(("evm_private_key_file",), "evm_private_key_file or evm_private_key_env is required"))
        if load.read_secrets and enabled:
            # every secret an enabled [hufi] names must be there now, not at the first join (read and discarded)
            if evm_key is not None:
                issues += _unreadable(evm_key, ("evm_private_key",))
            tables = data.get("exchange_api_keys")
            for account, table in (tables.items() if isinstance(tables, dict) else ()):
                for stem in _API_KEY_STEMS if isinstance(table, dict) else ():
                    ref, _ = take_secret_ref(dict(table), stem, load, env_problem=_ENV_PROBLEM)
                    issues += _unreadable(ref, ("exchange_api_keys", account, stem))
        return issues

    @classmethod
    def checks(cls, values: dict[str, Any], data: dict[str, Any]) -> list[Issue]:
        if {"retry_delay", "retry_max_delay"} <= values.keys() and values["retry_max_delay"] < values["retry_delay"]:
            return [Issue(("retry_max_delay",), f"must be >= {{key}} ({values['retry_delay']!r}), "
                          f"got {values['retry_max_delay']!r}", refers_to="retry_delay")]
        return []


def _unreadable(ref: SecretRef | None, where: tuple) -> list[Issue]:
    """An issue when the secret cannot be had now (it is read and discarded; only its source is named)."""
    if ref is None:
        return []
    try:
        ref.read()
    except SecretUnavailable as exc:
        return [Issue(where[:-1] + (ref.key(where[-1]),), str(exc))]
    return []


def parse_hufi(raw_table: dict | None, problems: list[str], base_dir: Path | None = None, *,
               check_secrets: bool = False) -> HufiConfig | None:
    """Validate a ``[hufi]`` table, appending every problem to ``problems`` (None then, or when the table is
    absent: HuFi disabled). With ``enabled = false`` the rest is still validated. ``check_secrets``: every
    secret an enabled table names must be readable now."""
    if raw_table is None:
        return None
    if not isinstance(raw_table, dict):
        problems.append("hufi: must be a table ([hufi])")
        return None
    load = Load(base_dir or Path.cwd(), read_secrets=check_secrets)
    try:
        return HufiConfig.model_validate(raw_table, context=load)
    except ValidationError as exc:
        problems.extend(problems_of(exc, prefix=("hufi",)))
        return None
