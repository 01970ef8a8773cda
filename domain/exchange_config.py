"""The ``[[exchanges]]`` config tables: one exchange account each, parsed and validated.

Pure parsing (plus reading the secret files / environment variables it names); every problem
is appended to ``problems`` so the caller can refuse the whole config at once (ConfigError).

    [[exchanges]]
    id = "binance-main"              # account id, unique; pairs refer to it as `exchange`
    # enabled = false                # validated, but no gateway is started (no connection, no request):
                                     #   orders on its pairs are paid and wait at payment_complete
    ccxt = "binance"                 # ccxt exchange id (ccxt.exchanges)
    api_key_env = "BINANCE_KEY"      # or api_key_file = "secrets/binance.key"
    secret_file = "secrets/binance.secret"   # or secret_env = "..."
    # password_env / password_file: the API passphrase some exchanges need (okx, kucoin)
    weight_per_minute = 1200         # request-weight budget per weight_window seconds (default 60)
    weight_window = 60
    max_concurrency = 50             # requests in flight at once (also the HTTP pool size)
    request_timeout = 10.0           # seconds
    rate_limit_retries = 8           # 429/418 retries of one call before RateLimited is raised
    [exchanges.bucket_limits]        # other budgets of the weight table, e.g. Binance's /sapi
    sapi = 12000
    [exchanges.weights]              # per-endpoint weight overrides
    "GET /api/v3/depth" = 10
    [exchanges.options]              # ccxt `options`
    [exchanges.urls]                 # merged into the ccxt instance's urls (testnet / local venue);
    api = "http://127.0.0.1:8080"    #   a string for `api` moves every API URL to that host, paths kept
    [exchanges.config]               # other ccxt constructor keys (verbose, headers, ...)
    [exchanges.networks]             # Mixin chain id -> ccxt network code
    "25dabac5-056a-48ff-b9f9-f67395dc407c" = "TRC20"

Every problem reads ``<key path>: <what is wrong>`` (``exchanges[0] (binance-main).ccxt: ...``).
Secrets are never written inline: ``api_key`` / ``secret`` / ``password`` (or ccxt's own key names
inside ``[exchanges.config]``) are refused with an error naming the *_file / *_env keys to use.
The repr of ExchangeAccountConfig hides every secret.
"""
from __future__ import annotations

import copy
import difflib
import functools
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from domain.config_values import (
    ENV_NAME,
    MAX_COUNT,
    MAX_SECONDS,
    http_url_problem,
    number_problem,
    show,
)

__all__ = ["ExchangeAccountConfig", "parse_exchanges"]


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class ExchangeAccountConfig:
    account_id: str
    ccxt_id: str
    api_key: str = ""
    secret: str = ""
    options: Mapping[str, Any] = field(default_factory=_empty)
    urls: Mapping[str, Any] = field(default_factory=_empty)
    config: Mapping[str, Any] = field(default_factory=_empty)
    weight_per_minute: int = 1200
    max_concurrency: int = 50
    request_timeout: float = 10.0
    network_overrides: Mapping[str, str] = field(default_factory=_empty)
    password: str = ""
    weight_window: float = 60.0  # seconds the weight_per_minute budget is counted over
    bucket_limits: Mapping[str, int] = field(default_factory=_empty)
    weights: Mapping[str, int] = field(default_factory=_empty)
    rate_limit_retries: int = 8
    enabled: bool = True  # False: configured (pairs may name it) but no gateway is started
    # Use the venue's withdrawal client id where it has one (venues table). false: never rely on it — a
    # withdrawal whose reply was lost is found again in the venue's history by address, tag, amount, time.
    withdraw_client_id: bool = True

    def __repr__(self) -> str:
        def hidden(value: str) -> str:
            return "'***'" if value else "''"
        return (f"ExchangeAccountConfig(account_id={self.account_id!r}, ccxt_id={self.ccxt_id!r}, "
                f"api_key={hidden(self.api_key)}, secret={hidden(self.secret)}, password={hidden(self.password)}, "
                f"weight_per_minute={self.weight_per_minute}, weight_window={self.weight_window}, "
                f"max_concurrency={self.max_concurrency}, request_timeout={self.request_timeout}, "
                f"options={dict(self.options)!r}, urls={dict(self.urls)!r}, config={dict(self.config)!r}, "
                f"network_overrides={dict(self.network_overrides)!r}"
                + ("" if self.enabled else ", enabled=False") + ")")

    __str__ = __repr__


_KEYS = {
    "id", "ccxt", "enabled", "api_key_file", "api_key_env", "secret_file", "secret_env", "password_file", "password_env",
    "weight_per_minute", "weight_window", "max_concurrency", "request_timeout", "rate_limit_retries",
    "options", "urls", "config", "networks", "bucket_limits", "weights", "withdraw_client_id",
}
_INLINE_SECRETS = {  # inline key -> the *_file / *_env pair to use instead
    "api_key": "api_key", "apikey": "api_key", "apiKey": "api_key", "key": "api_key",
    "secret": "secret", "private_key": "secret", "privateKey": "secret", "token": "secret",
    "password": "password", "passphrase": "password",
}
# ccxt constructor keys that are credentials, or that the gateway owns
_CONFIG_SECRETS = {"apiKey", "secret", "password", "uid", "login", "privateKey", "walletAddress", "token", "twofa",
                   "accountId"}
_CONFIG_OWNED = {
    "session": "the gateway builds its own requests.Session",
    "enableRateLimit": "the gateway's own limiter replaces ccxt's throttle",
    "rateLimit": "set weight_per_minute instead",
    "timeout": "set request_timeout (seconds) instead",
    "options": "use the [exchanges.options] table",
    "urls": "use the [exchanges.urls] table",
    "markets": "markets are loaded from the exchange once at start",
}
_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_WEIGHT_KEY = re.compile(r"^(GET|POST|PUT|DELETE|PATCH) /\S*$")


def _ccxt_ids() -> tuple[str, set[str]]:
    """(version text, exchange ids) of the installed ccxt: the ids it lists that are exchange classes."""
    import ccxt  # lazy: only configs with exchanges need it; the entry point has patched gevent already

    ids = {name for name in getattr(ccxt, "exchanges", ()) if isinstance(getattr(ccxt, name, None), type)}
    return "ccxt " + str(getattr(ccxt, "__version__", "?")), ids


@functools.lru_cache(maxsize=None)
def _missing_capabilities(ccxt_id: str) -> tuple[str, ...]:
    """The unified methods the flow needs that this ccxt class does not have (integrations/exchange/venues)."""
    import ccxt

    from integrations.exchange.venues import missing_capabilities

    try:
        has = getattr(ccxt, ccxt_id)().has
    except Exception:  # noqa: BLE001 - a class that cannot even be built is reported as lacking everything
        return ("(the class cannot be instantiated)",)
    return tuple(missing_capabilities(has))


def _secret(item: Mapping[str, Any], name: str, where: str, base_dir: Path, problems: list[str],
            read: bool = True) -> str:
    file_key, env_key = f"{name}_file", f"{name}_env"
    file_value, env_value = item.get(file_key), item.get(env_key)
    if file_value is not None and env_value is not None:
        problems.append(f"{where}.{file_key}: give {file_key} or {env_key}, not both")
        return ""
    if file_value is not None and (not isinstance(file_value, str) or not file_value.strip()
                                   or "\x00" in file_value):
        problems.append(f"{where}.{file_key}: must be a file path")
        return ""
    if env_value is not None and (not isinstance(env_value, str) or not ENV_NAME.match(env_value)):
        # never echoed: a value that is no variable name may be the secret itself, pasted in the wrong place
        problems.append(f"{where}.{env_key}: must be the name of an environment variable (letters, digits, _)")
        return ""
    if not read:  # read-only commands need the database, not the exchange's keys
        return ""
    if file_value is not None:
        path = Path(file_value)
        if not path.is_absolute():
            path = (base_dir / path).resolve()
        try:
            data = path.read_bytes()
        except OSError as exc:
            problems.append(f"{where}.{file_key}: cannot read {path}: {exc.strerror or type(exc).__name__}")
            return ""
        try:
            text = data.decode("utf-8").strip()
        except UnicodeDecodeError:
            problems.append(f"{where}.{file_key}: {path} is not a text (UTF-8) file")
            return ""
        if not text:
            problems.append(f"{where}.{file_key}: {path} is empty")
        return text
    if env_value is not None:
        text = os.environ.get(env_value, "").strip()
        if not text:
            problems.append(f"{where}.{env_key}: environment variable {env_value} is not set or empty")
        return text
    return ""


def _int(item: Mapping[str, Any], key: str, default: int, where: str, problems: list[str], minimum: int,
         maximum: int = MAX_COUNT) -> int:
    value = item.get(key, default)
    problem = number_problem(value, minimum=minimum, maximum=maximum, integer=True)
    if problem:
        problems.append(f"{where}.{key}: {problem}")
        return default
    return value


def _float(item: Mapping[str, Any], key: str, default: float, where: str, problems: list[str]) -> float:
    """Seconds: finite, > 0, at most ten years."""
    value = item.get(key, default)
    problem = number_problem(value, minimum=0, exclusive=True, maximum=MAX_SECONDS, unit=" seconds (ten years)")
    if problem:
        problems.append(f"{where}.{key}: {problem}")
        return default
    return float(value)


def _table(item: Mapping[str, Any], key: str, where: str, problems: list[str]) -> dict[str, Any]:
    value = item.get(key, {})
    if not isinstance(value, dict):
        problems.append(f"{where}.{key}: must be a table ([exchanges.{key}])")
        return {}
    return copy.deepcopy(value)


def _check_urls(value: Any, where: str, problems: list[str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _check_urls(v, f"{where}.{k}", problems)
    elif isinstance(value, str):
        problem = http_url_problem(value)
        if problem:
            problems.append(f"{where}: {problem}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_urls(v, f"{where}[{i}]", problems)
    else:
        problems.append(f"{where}: must be a URL or a table of URLs, got {show(value)}")


def _freeze(value: dict[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(value)


def _one(item: Any, index: int, base_dir: Path, problems: list[str], known_ids: set[str],
         version: str, read_secrets: bool = True) -> ExchangeAccountConfig | None:
    where = f"exchanges[{index}]"
    if not isinstance(item, dict):
        problems.append(f"{where}: must be a table")
        return None
    count = len(problems)
    account_id = item.get("id")
    if not isinstance(account_id, str) or not _ACCOUNT_ID.match(account_id):
        problems.append(f"{where}.id: is required: letters, digits, '.', '_', '-' (got {show(account_id)})")
        account_id = str(account_id)
    else:
        where = f"exchanges[{index}] ({account_id})"
    for key in item:
        if key in _INLINE_SECRETS:
            base = _INLINE_SECRETS[key]
            problems.append(f"{where}.{key}: secrets are never written in the config; use {base}_file "
                            f"(a path to a file holding it) or {base}_env (an environment variable) instead")
        elif key not in _KEYS:
            close = difflib.get_close_matches(str(key), sorted(_KEYS), n=1, cutoff=0.7)
            problems.append(f"{where}.{key}: unknown key" + (f"; did you mean {close[0]!r}?" if close else ""))
    enabled = item.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(f"{where}.enabled: must be true or false (unquoted), got {show(enabled)}")
    ccxt_id = item.get("ccxt")
    if not isinstance(ccxt_id, str) or not ccxt_id:
        problems.append(f"{where}.ccxt: is required (a ccxt exchange id such as 'binance')")
        ccxt_id = ""
    elif ccxt_id not in known_ids:
        close = difflib.get_close_matches(ccxt_id.lower(), sorted(known_ids), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        problems.append(f"{where}.ccxt: {show(ccxt_id)} is not an exchange of the installed {version}{hint}")
    else:
        missing = _missing_capabilities(ccxt_id)
        if missing:
            problems.append(f"{where}.ccxt: {ccxt_id} in the installed {version} lacks what the flow needs: "
                            f"{', '.join(missing)}")
    withdraw_client_id = item.get("withdraw_client_id", True)
    if not isinstance(withdraw_client_id, bool):
        problems.append(f"{where}.withdraw_client_id: must be true or false (unquoted), got {show(withdraw_client_id)}")

    api_key = _secret(item, "api_key", where, base_dir, problems, read_secrets)
    secret = _secret(item, "secret", where, base_dir, problems, read_secrets)
    password = _secret(item, "password", where, base_dir, problems, read_secrets)
    has_key = bool(item.get("api_key_file") or item.get("api_key_env"))
    has_secret = bool(item.get("secret_file") or item.get("secret_env"))
    if has_key and not has_secret:
        problems.append(f"{where}.secret_file: an API key needs its secret (secret_file or secret_env)")
    elif has_secret and not has_key:
        problems.append(f"{where}.api_key_file: a secret needs its API key (api_key_file or api_key_env)")

    options = _table(item, "options", where, problems)
    urls = _table(item, "urls", where, problems)
    _check_urls(urls, f"{where}.urls", problems)
    config = _table(item, "config", where, problems)
    for key in config:
        if key in _CONFIG_SECRETS:
            problems.append(f"{where}.config.{key}: secrets are never written in the config; use "
                            "api_key_file/api_key_env, secret_file/secret_env, password_file/password_env")
        elif key in _CONFIG_OWNED:
            problems.append(f"{where}.config.{key}: is not allowed: {_CONFIG_OWNED[key]}")

    networks = _table(item, "networks", where, problems)
    overrides: dict[str, str] = {}
    for chain, code in networks.items():
        try:
            chain_id = str(uuid.UUID(str(chain)))
        except ValueError:
            problems.append(f"{where}.networks.{chain}: the key must be a Mixin chain id (a UUID)")
            continue
        if not isinstance(code, str) or not code.strip():
            problems.append(f"{where}.networks.{chain}: must be a ccxt network code such as \"TRC20\"")
            continue
        overrides[chain_id] = code.strip()

    bucket_limits: dict[str, int] = {}
    for name, limit in _table(item, "bucket_limits", where, problems).items():
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_COUNT:
            problems.append(f"{where}.bucket_limits.{name}: must be a whole number >= 1, got {show(limit)}")
        else:
            bucket_limits[str(name)] = limit
    weights: dict[str, int] = {}
    for key, weight in _table(item, "weights", where, problems).items():
        if not _WEIGHT_KEY.match(str(key)):
            problems.append(f"{where}.weights.{key!r}: the key must look like \"GET /api/v3/depth\"")
        elif isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= MAX_COUNT:
            problems.append(f"{where}.weights.{key!r}: must be a whole number >= 0, got {show(weight)}")
        else:
            weights[str(key)] = weight

    cfg_kwargs = {
        "weight_per_minute": _int(item, "weight_per_minute", 1200, where, problems, 1),
        "max_concurrency": _int(item, "max_concurrency", 50, where, problems, 1),
        "rate_limit_retries": _int(item, "rate_limit_retries", 8, where, problems, 0, 1000),
        "request_timeout": _float(item, "request_timeout", 10.0, where, problems),
        "weight_window": _float(item, "weight_window", 60.0, where, problems),
    }
    if len(problems) != count:
        return None
    return ExchangeAccountConfig(
        account_id=account_id, ccxt_id=ccxt_id, api_key=api_key, secret=secret, password=password,
        options=_freeze(options), urls=_freeze(urls), config=_freeze(config),
        network_overrides=_freeze(overrides), bucket_limits=_freeze(bucket_limits), weights=_freeze(weights),
        enabled=enabled is not False, withdraw_client_id=withdraw_client_id is not False, **cfg_kwargs,
    )


def parse_exchanges(raw_list: Any, problems: list[str], base_dir: Path,
                    read_secrets: bool = True) -> tuple[ExchangeAccountConfig, ...]:
    """Parse the ``[[exchanges]]`` array; append every problem to ``problems`` (nothing raised)."""
    if not isinstance(raw_list, list):
        problems.append("exchanges: must be an array of tables ([[exchanges]])")
        return ()
    if not raw_list:
        return ()
    try:
        version, known_ids = _ccxt_ids()
    except ImportError:
        problems.append("exchanges: [[exchanges]] needs the ccxt package, which is not installed")
        return ()
    out: list[ExchangeAccountConfig] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(raw_list):
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            first = seen.setdefault(item["id"], index)
            if first != index:
                problems.append(f"exchanges[{index}].id: {show(item['id'])} is already used by exchanges[{first}]")
                continue
        cfg = _one(item, index, Path(base_dir), problems, known_ids, version, read_secrets)
        if cfg is not None:
            out.append(cfg)
    return tuple(out)
