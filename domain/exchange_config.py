"""The ``[[exchanges]]`` config tables: one exchange account each, parsed and validated.

Declared once as a pydantic model (domain/config_schema.py); loading a file also reads the secret
files / environment variables it names. Every problem is reported, so the caller can refuse the whole
config at once (ConfigError).

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
    cancel_replace = true            # refresh a quote in one cancel-replace request where the venue has one
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
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import Field, PlainValidator, ValidationError, ValidationInfo

from domain.config_schema import Issue, Load, Section, issues_of, loading, problem, problems_of, raise_issues
from domain.config_values import MAX_COUNT, Flag, checked, count, http_url_problem, seconds, show
from domain.secret_refs import SecretRef, take_secret_ref

__all__ = ["ExchangeAccountConfig", "account_labels", "parse_exchanges", "validate_accounts"]

_SECRET_STEMS = ("api_key", "secret", "password")
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
_NO_CCXT = "[[exchanges]] needs the ccxt package, which is not installed"


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


# --- field checks ---------------------------------------------------------------------------------------

def _account_id(value: Any) -> str:
    if not isinstance(value, str) or not _ACCOUNT_ID.match(value):
        raise problem(f"is required: letters, digits, '.', '_', '-' (got {show(value)})")
    return value


def _ccxt_class(value: Any, info: ValidationInfo) -> str:
    if not isinstance(value, str) or not value:
        raise problem("is required (a ccxt exchange id such as 'binance')")
    load = loading(info)
    if load is not None and not load.check_venues:
        return value
    try:
        version, known_ids = _ccxt_ids()
    except ImportError:
        raise problem(_NO_CCXT) from None
    if value not in known_ids:
        close = difflib.get_close_matches(value.lower(), sorted(known_ids), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise problem(f"{show(value)} is not an exchange of the installed {version}{hint}")
    missing = _missing_capabilities(value)
    if missing:
        raise problem(f"{value} in the installed {version} lacks what the flow needs: {', '.join(missing)}")
    return value


def _table(key: str, check: Callable[[dict[str, Any]], list[Issue]] = lambda table: [],
           convert: Callable[[dict[str, Any]], dict[str, Any]] = lambda table: table) -> PlainValidator:
    """The sub-table ``[exchanges.<key>]``: a read-only copy, after ``check`` found nothing wrong inside."""
    def validate(value: Any) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise problem(f"must be a table ([exchanges.{key}])")
        table = copy.deepcopy(dict(value))
        issues = check(table)
        if issues:
            raise_issues(key, issues)
        return MappingProxyType(convert(table))
    return PlainValidator(validate)


def _url_issues(value: Any, where: tuple = ()) -> list[Issue]:
    if isinstance(value, dict):
        return [issue for k, v in value.items() for issue in _url_issues(v, where + (k,))]
    if isinstance(value, list):
        return [issue for i, v in enumerate(value) for issue in _url_issues(v, where + (i,))]
    if isinstance(value, str):
        text = http_url_problem(value)
        return [Issue(where, text)] if text else []
    return [Issue(where, f"must be a URL or a table of URLs, got {show(value)}")]


def _config_issues(table: dict[str, Any]) -> list[Issue]:
    issues = []
    for key in table:
        if key in _CONFIG_SECRETS:
            issues.append(Issue((key,), "secrets are never written in the config; use api_key_file/api_key_env, "
                                "secret_file/secret_env, password_file/password_env"))
        elif key in _CONFIG_OWNED:
            issues.append(Issue((key,), f"is not allowed: {_CONFIG_OWNED[key]}"))
    return issues


def _network_issues(table: dict[str, Any]) -> list[Issue]:
    issues = []
    for chain, code in table.items():
        try:
            uuid.UUID(str(chain))
        except ValueError:
            issues.append(Issue((chain,), "the key must be a Mixin chain id (a UUID)"))
            continue
        if not isinstance(code, str) or not code.strip():
            issues.append(Issue((chain,), 'must be a ccxt network code such as "TRC20"'))
    return issues


def _whole(value: Any, minimum: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and minimum <= value <= MAX_COUNT


def _bucket_issues(table: dict[str, Any]) -> list[Issue]:
    return [Issue((name,), f"must be a whole number >= 1, got {show(limit)}")
            for name, limit in table.items() if not _whole(limit, 1)]


def _weight_issues(table: dict[str, Any]) -> list[Issue]:
    issues = []
    for key, weight in table.items():
        if not _WEIGHT_KEY.match(str(key)):
            issues.append(Issue((repr(key),), 'the key must look like "GET /api/v3/depth"'))
        elif not _whole(weight, 0):
            issues.append(Issue((repr(key),), f"must be a whole number >= 0, got {show(weight)}"))
    return issues


def _no_entries() -> Any:
    """The default of a sub-table: empty (a fresh read-only mapping per account)."""
    return Field(default_factory=lambda: MappingProxyType({}))


def _chain_codes(table: dict[str, Any]) -> dict[str, str]:
    return {str(uuid.UUID(str(chain))): code.strip() for chain, code in table.items()}


Options = Annotated[Mapping[str, Any], _table("options")]
Urls = Annotated[Mapping[str, Any], _table("urls", _url_issues)]
CcxtConfig = Annotated[Mapping[str, Any], _table("config", _config_issues)]
Networks = Annotated[Mapping[str, str], _table("networks", _network_issues, _chain_codes)]
BucketLimits = Annotated[Mapping[str, int], _table("bucket_limits", _bucket_issues)]
Weights = Annotated[Mapping[str, int], _table("weights", _weight_issues)]
PositiveSeconds = Annotated[float, seconds(0, exclusive=True)]


class ExchangeAccountConfig(Section):
    """One ``[[exchanges]]`` account: the gateway's connection, credentials and request budget."""

    file_only = frozenset(f"{stem}_{kind}" for stem in _SECRET_STEMS for kind in ("file", "env"))

    account_id: Annotated[str, PlainValidator(_account_id)] = Field(validation_alias="id")
    ccxt_id: Annotated[str, PlainValidator(_ccxt_class)] = Field(validation_alias="ccxt")
    api_key: str = Field("", repr=False)      # read from api_key_file / api_key_env
    secret: str = Field("", repr=False)       # read from secret_file / secret_env
    options: Options = _no_entries()          # ccxt `options`
    urls: Urls = _no_entries()                # merged into the ccxt instance's urls (testnet / local venue)
    config: CcxtConfig = _no_entries()        # other ccxt constructor keys (verbose, headers, ...)
    weight_per_minute: Annotated[int, count(1)] = 1200
    max_concurrency: Annotated[int, count(1)] = 50   # requests in flight at once (also the HTTP pool size)
    request_timeout: PositiveSeconds = 10.0
    network_overrides: Networks = Field(default_factory=lambda: MappingProxyType({}), validation_alias="networks")
    #                                           Mixin chain id -> ccxt network code
    password: str = Field("", repr=False)     # the API passphrase some exchanges need (okx, kucoin)
    weight_window: PositiveSeconds = 60.0     # seconds the weight_per_minute budget is counted over
    bucket_limits: BucketLimits = _no_entries()   # other budgets of the weight table, e.g. Binance's /sapi
    weights: Weights = _no_entries()          # per-endpoint weight overrides
    rate_limit_retries: Annotated[int, count(0, 1000)] = 8
    enabled: Flag = True  # False: configured (pairs may name it) but no gateway is started
    # Use the venue's withdrawal client id where it has one (venues table). false: never rely on it — a
    # withdrawal whose reply was lost is found again in the venue's history by address, tag, amount, time.
    withdraw_client_id: Flag = True
    # Refresh a quote with the venue's cancel-replace (one request; venues table) where it has one. false:
    # cancel, then place on a later tick — as on every venue without one.
    cancel_replace: Flag = True

    @classmethod
    def prepare(cls, data: dict[str, Any], load: Load) -> list[Issue]:
        """Inline secrets refused; the secret files and variables named are read (with read_secrets)."""
        issues = []
        for key in [k for k in data if k in _INLINE_SECRETS]:
            del data[key]
            base = _INLINE_SECRETS[key]
            issues.append(Issue((key,), f"secrets are never written in the config; use {base}_file (a path to a "
                                f"file holding it) or {base}_env (an environment variable) instead"))
        has_key = bool(data.get("api_key_file") or data.get("api_key_env"))
        has_secret = bool(data.get("secret_file") or data.get("secret_env"))
        for stem in _SECRET_STEMS:
            ref, found = take_secret_ref(
                data, stem, load, env_problem="must be the name of an environment variable (letters, digits, _)")
            issues += found
            if ref is not None and load.read_secrets:  # read-only commands need the database, not the keys
                value, text = _read(ref)
                issues += [Issue((ref.key(stem),), text)] if text else []
                data[stem] = value
        if has_key and not has_secret:
            issues.append(Issue(("secret_file",), "an API key needs its secret (secret_file or secret_env)"))
        elif has_secret and not has_key:
            issues.append(Issue(("api_key_file",), "a secret needs its API key (api_key_file or api_key_env)"))
        return issues

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


def _read(ref: SecretRef) -> tuple[str, str | None]:
    """(the secret, None) or ("", what is wrong): the problem names the file or variable, never the value."""
    if ref.file is not None:
        path = ref.file
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            return "", f"cannot read {path}: {exc.strerror or type(exc).__name__}"
        try:
            text = data.decode("utf-8").strip()
        except UnicodeDecodeError:
            return "", f"{path} is not a text (UTF-8) file"
        return text, (f"{path} is empty" if not text else None)
    text = os.environ.get(ref.env or "", "").strip()
    return text, (f"environment variable {ref.env} is not set or empty" if not text else None)


def validate_accounts(raw_list: list, load: Load) -> tuple[ExchangeAccountConfig, ...]:
    """The ``[[exchanges]]`` array of a file, one account per table; ValidationError with every problem
    (located by index). An id used before is said once and its table not checked further."""
    if raw_list and load.check_venues and not _ccxt_available():
        raise_issues("exchanges", [Issue((), _NO_CCXT)])
    accounts, issues = [], []
    first: dict[str, int] = {}
    for index, item in enumerate(raw_list):
        account = item.get("id") if isinstance(item, dict) else None
        if isinstance(account, str) and first.setdefault(account, index) != index:
            issues.append(Issue((index, "id"), f"{show(account)} is already used by exchanges[{first[account]}]"))
            continue
        try:
            accounts.append(ExchangeAccountConfig.model_validate(item, context=load))
        except ValidationError as exc:
            issues += issues_of(exc, (index,))
    if issues:
        raise_issues("exchanges", issues)
    return tuple(accounts)


def _ccxt_available() -> bool:
    try:
        _ccxt_ids()
    except ImportError:
        return False
    return True


def account_labels(raw_list: Any) -> Callable[[tuple], str | None]:
    """Key paths name an account by its id: ``exchanges[0] (binance).ccxt`` (the first table with that id)."""
    ids: dict[int, str] = {}
    for index, item in enumerate(raw_list if isinstance(raw_list, list) else ()):
        account = item.get("id") if isinstance(item, dict) else None
        if isinstance(account, str) and _ACCOUNT_ID.match(account) and account not in ids.values():
            ids[index] = account
    return lambda loc: ids.get(loc[1]) if len(loc) == 2 and loc[0] == "exchanges" else None


def parse_exchanges(raw_list: Any, problems: list[str], base_dir: Path,
                    read_secrets: bool = True) -> tuple[ExchangeAccountConfig, ...]:
    """Parse the ``[[exchanges]]`` array; append every problem to ``problems`` (then nothing is returned)."""
    if not isinstance(raw_list, list):
        problems.append("exchanges: must be an array of tables ([[exchanges]])")
        return ()
    try:
        return validate_accounts(raw_list, Load(Path(base_dir), read_secrets=read_secrets))
    except ValidationError as exc:
        problems.extend(problems_of(exc, account_labels(raw_list), prefix=("exchanges",)))
        return ()
