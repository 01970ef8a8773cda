"""Configuration: one TOML file, validated into frozen pydantic models (domain/config_schema.py).

Bad config is refused at start with every problem listed (ConfigError), never
half-applied. Each problem reads ``<key path>: <what is wrong>`` (``mixin.api_base:
must name a host, got 'http://'``); ``run.py`` prints one ``error: <file>: <problem>``
line per problem and exits 2. Secrets are referenced by file path or environment
variable, never echoed in a problem and never stored in this object's repr.

Beyond types: every interval, timeout and delay is finite, > 0 (>= 0 where 0 means
something: check_delay, lookup_grace, book_ttl, ...) and at most ten years; amounts are
quoted decimals within 1e15, 18 significant digits and 18 decimal places; every pair's
``exchange`` names an ``[[exchanges]]`` id (one with ``enabled = false`` is configured
but never started); the secret files and variables named by ``[[exchanges]]`` and an
enabled ``[hufi]`` are read at load (``read_secrets``); ``for_service`` refuses what
only the service cannot use (an in-memory SQLite database). The keystore and the
database themselves are checked by ``run.py serve`` right after (integrations/mixin/
keystore.py ``load_bot_keystore``, storage/db.py ``check_database``).

A new ``[section]``: declare a :class:`~domain.config_schema.Section` (its fields, validators and
``checks``) and add one field to :class:`Config` whose name is the table's name (see the comment there);
unknown keys, missing keys, every problem at once and the ``<key path>:`` prefix come with Section.
"""
from __future__ import annotations

import os
import tomllib
import types
import typing
import uuid
import warnings
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, PlainValidator, ValidationError, ValidationInfo, WrapValidator
from pydantic_core import PydanticCustomError

from domain.breakers import RiskLimits
from domain.config_schema import Issue, Load, Section, loading, problem, problems_of, raise_issues
from domain.config_values import (
    ENV_NAME,
    Amount,
    Delay,
    Flag,
    Interval,
    count,
    http_url,
    mask_url,
    number,
    seconds,
    show,
    uuid_value,
)
from domain.exchange_config import ExchangeAccountConfig, account_labels, validate_accounts
from domain.hufi_config import HufiConfig
from domain.archive_config import ArchiveSettings, parse_archive_settings
from domain.cluster_config import ClusterSettings, parse_cluster_settings
from domain.kpi_config import KpiSettings, parse_kpi_settings
from domain.payment import PairRules


class ConfigError(ValueError):
    """Every problem of one config file; each problem reads ``<key path>: <what is wrong>``.

    ``source`` is the file (when loaded from one); ``lines()`` gives ``<file>: <problem>`` per problem,
    one line each, which is what ``run.py`` prints after ``error: ``."""

    def __init__(self, problems: list[str], source: str = ""):
        super().__init__("invalid configuration:\n  - " + "\n  - ".join(problems))
        self.problems = problems
        self.source = source

    def lines(self) -> list[str]:
        prefix = f"{self.source}: " if self.source else ""
        return [(prefix + p).replace("\r", "\\r").replace("\n", "\\n") for p in self.problems]


# --- [database] -----------------------------------------------------------------------------------------

def _database_url(value: Any, info: ValidationInfo) -> str:
    """sqlite:///PATH (relative to the config file) or postgresql://...; the password is never shown."""
    if not isinstance(value, str) or not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
        shown = show(mask_url(value) if isinstance(value, str) else value)
        raise problem(f"must be sqlite:///PATH or postgresql://..., got {shown}")
    load = loading(info)
    if value.startswith("sqlite:///"):
        path = value[len("sqlite:///"):]
        if not path.strip() or "\x00" in path:
            raise problem(f"{show(value)} names no database file (sqlite:///PATH)")
        if path == ":memory:" and load is not None and load.for_service:
            raise problem("sqlite:///:memory: is not allowed for serve: the database would vanish with the process "
                          "(payments, refunds and orders with it); give a file")
        if path != ":memory:" and not path.startswith("/") and load is not None:
            return "sqlite:///" + str(load.resolve(path))
        return value
    masked = mask_url(value)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise problem(f"{show(masked)} is not a valid URL ({exc})") from None
    if not parts.path.lstrip("/"):
        raise problem(f"{show(masked)} names no database (postgresql://USER@HOST/DATABASE)")
    return value


class DatabaseConfig(Section):
    url: Annotated[str, PlainValidator(_database_url)] = Field("sqlite:///var/mmflow.db", validate_default=True)
    busy_timeout: Delay = 5.0
    batch_max: Annotated[int, count(1)] = 2000
    # PostgreSQL: at most this many server sessions (each lent for one statement or one transaction)
    pool_size: Annotated[int, count(1)] = 10


# --- [mixin] --------------------------------------------------------------------------------------------

def _keystore(value: Any, info: ValidationInfo) -> str:
    """The bot's keystore: a path (relative to the config file) or env:VARIABLE; required in a file."""
    load = loading(info)
    if not isinstance(value, str):
        raise problem(f"must be a file path or env:VARIABLE, got {show(value)}")
    if load is None:
        return value
    if not value.strip():
        raise problem("is required (path to the bot's keystore JSON, or env:VARIABLE)")
    if value.startswith("env:"):
        if not ENV_NAME.match(value[4:]):
            raise problem("env: must be followed by an environment variable name (env:MMFLOW_KEYSTORE)")
        return value
    if "\x00" in value:
        raise problem("must be a file path")
    return str(load.resolve(value))


def _user_ids(value: Any) -> frozenset[str]:
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise problem(f"must be a list of user ids, got {show(value)}")
    issues, ids = [], set()
    for index, item in enumerate(value):
        try:
            ids.add(uuid_value(item))
        except PydanticCustomError as exc:  # every bad id is said, not only the first
            issues.append(Issue((index,), exc.context["problem"]))
    if issues:
        raise_issues("operator_user_ids", issues)
    return frozenset(ids)


def _not_below(values: dict[str, Any], data: dict[str, Any], low: str, high: str) -> list[Issue]:
    """``high`` must not be below ``low`` (checked when the file gives both)."""
    if {low, high} <= data.keys() and {low, high} <= values.keys() and values[high] < values[low]:
        return [Issue((high,), f"must be >= {{key}} ({values[low]!r}), got {values[high]!r}", refers_to=low)]
    return []


class MixinConfig(Section):
    api_base: Annotated[str, http_url()] = "https://api.mixin.one"
    keystore_path: Annotated[str, PlainValidator(_keystore)] = Field("", validation_alias="keystore",
                                                                      validate_default=True)
    poll_interval: Interval = 5.0
    full_page_pause: Delay = 0.0
    page_limit: Annotated[int, count(1, 500)] = 500
    request_timeout: Interval = 10.0
    max_attempts: Annotated[int, count(1)] = 5
    backoff_base: Delay = 0.5
    backoff_max: Delay = 30.0
    operator_user_ids: Annotated[frozenset[str], PlainValidator(_user_ids)] = frozenset()  # treasury top-ups

    @classmethod
    def checks(cls, values: dict[str, Any], data: dict[str, Any]) -> list[Issue]:
        return _not_below(values, data, "backoff_base", "backoff_max")


# --- [payments], [treasury], [supervision], [commands], [log], [funding], [strategy], [stream] ------------

def _fee_percent(value: Decimal) -> Decimal:
    if not Decimal(0) <= value < Decimal(100):
        raise problem(f"must be in [0, 100), got {value}")
    return value


class PaymentConfig(Section):
    market_making_fee_percent: Annotated[Amount, AfterValidator(_fee_percent)] = Decimal(0)  # percent; required
    timeout: Interval = 600.0
    check_delay: Delay = 5.0
    fee_retry_delay: Interval = 5.0

    @classmethod
    def prepare(cls, data: dict[str, Any], load: Load) -> list[Issue]:
        if "market_making_fee_percent" not in data:
            return [Issue(("market_making_fee_percent",), "is required")]
        return []


class TreasuryConfig(Section):
    retry_delay: Interval = 5.0
    retry_max_delay: Interval = 300.0
    confirm_poll_interval: Interval = 2.0

    @classmethod
    def checks(cls, values: dict[str, Any], data: dict[str, Any]) -> list[Issue]:
        return _not_below(values, data, "retry_delay", "retry_max_delay")


class SupervisionConfig(Section):
    intensity: Annotated[int, count(0)] = 5
    period: Interval = 30.0
    backoff_min: Delay = 0.5
    backoff_max: Delay = 30.0
    order_intensity: Annotated[int, count(0)] = 10
    order_period: Interval = 60.0

    @classmethod
    def checks(cls, values: dict[str, Any], data: dict[str, Any]) -> list[Issue]:
        return _not_below(values, data, "backoff_min", "backoff_max")


class CommandsConfig(Section):
    """Operator commands (the CLI's and the API's rows in the database): how often the service looks for new ones.
    A command queued inside the service's own process (the HTTP API) wakes it at once, and in a cluster (PostgreSQL)
    so does one from another instance; this interval bounds the wait for the rest (the CLI's, for one)."""
    poll_interval: Interval = 1.0


_LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")


def _log_level(value: Any) -> str:
    if not isinstance(value, str) or value.upper() not in _LOG_LEVELS:
        shown = show(value.upper() if isinstance(value, str) else value)
        raise problem(f"{shown} is not a log level ({', '.join(_LOG_LEVELS)})")
    return value.upper()


with warnings.catch_warnings():
    # `json` is the key operators write; it shadows pydantic v1's deprecated BaseModel.json(), unused here
    warnings.filterwarnings("ignore", message='Field name "json"', category=UserWarning)

    class LogConfig(Section):
        level: Annotated[str, PlainValidator(_log_level)] = "INFO"
        json: Flag = False


class FundingConfig(Section):
    """Stages 5–6: moving paid funds to the exchange and seeing them credited, and the way back."""
    poll_interval: Interval = 5.0          # how often an order in flight looks at Mixin and the exchange
    withdrawal_timeout: Interval = 1800.0  # Mixin has not sent both withdrawals by then → attention
    deposit_timeout: Interval = 3600.0     # the exchange has not credited both deposits by then → attention
    retry_delay: Interval = 5.0            # after a transient error (exchange or Mixin unreachable)
    return_timeout: Interval = 7200.0      # an accepted exchange withdrawal has not arrived on Mixin by then
    return_retry_delay: Interval = 30.0    # first pause after the exchange refused or failed a withdrawal (doubles)
    return_max_attempts: Annotated[int, count(1)] = 5   # refused/failed this often → attention
    lookup_grace: Delay = 60.0             # a withdrawal whose reply was lost, not in the exchange's history by
                                           # then, was never made: it is sent again (same client id)


class StrategyLoopConfig(Section):
    """Stage 9: how often each running order looks at the market (its own refresh time governs replacing)."""
    tick_interval: Interval = 1.0
    stop_timeout: Interval = 60.0   # stopping orders whose cancels are not confirmed by then → attention


class StreamConfig(Section):
    """The gateway's order-update stream and shared market data."""
    slow_interval: Interval = 2.0    # poll open orders and trades this often when nothing is in flight
    fast_interval: Interval = 0.3    # ... and this often while a place or cancel is in flight
    book_ttl: Delay = 0.5            # one order-book request per pair per this many seconds, shared by all orders
    trades_lookback: Annotated[float, seconds(1)] = 86400.0
    not_found_grace: Delay = 30.0    # an order unseen this long after its last update is declared absent
    weight_share: Annotated[float, number(0.01, 1)] = 0.5   # the stream's share of the account's request budget


# --- the whole file -------------------------------------------------------------------------------------

def _array_of_tables(name: str) -> WrapValidator:
    """``[[name]]`` in a file: an array of tables (each validated by the handler, or by ``validate_accounts``)."""
    def validate(value: Any, handler, info: ValidationInfo) -> Any:
        load = loading(info)
        if load is None:
            return handler(value)
        if not isinstance(value, list):
            raise problem(f"must be an array of tables ([[{name}]])")
        return validate_accounts(value, load) if name == "exchanges" else handler(value)
    return WrapValidator(validate)


class Config(Section):
    """The whole file. Each field is a table of the file, named as the field (or its validation_alias).

    A new section: one line here, ``name: NameSettings = Field(default_factory=NameSettings)`` with
    NameSettings a Section (``| None = None`` for a table whose absence means "off", like hufi).
    """

    internal = frozenset({"source"})

    # [api], [kpi], [archive] and [cluster] are validated by their own modules (api/settings.py,
    # domain/kpi_config.py, domain/archive_config.py, domain/cluster_config.py), with their own one-line
    # messages; parse_config sets them.
    api: Any = Field(default_factory=lambda: _disabled_api())  # api.settings.ApiSettings
    kpi: KpiSettings = Field(default_factory=KpiSettings)
    archive: ArchiveSettings | None = None  # absent: no archiving
    cluster: ClusterSettings | None = None   # [cluster] (domain/cluster_config.py); None: one instance

    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    mixin: MixinConfig = Field(default_factory=MixinConfig)
    payments: PaymentConfig = Field(default_factory=PaymentConfig)
    treasury: TreasuryConfig = Field(default_factory=TreasuryConfig)
    supervision: SupervisionConfig = Field(default_factory=SupervisionConfig)
    commands: CommandsConfig = Field(default_factory=CommandsConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    funding: FundingConfig = Field(default_factory=FundingConfig)
    # every [[exchanges]] account (see exchanges / disabled_exchanges)
    accounts: Annotated[tuple[ExchangeAccountConfig, ...], _array_of_tables("exchanges")] = Field(
        (), validation_alias="exchanges")
    hufi: HufiConfig | None = None   # None: HuFi campaigns disabled
    strategy: StrategyLoopConfig = Field(default_factory=StrategyLoopConfig)
    risk: RiskLimits = Field(default_factory=RiskLimits)
    stream: StreamConfig = Field(default_factory=StreamConfig)
    pairs: Annotated[tuple[PairRules, ...], _array_of_tables("pairs")] = ()
    source: str = ""   # the file it was read from

    @property
    def exchanges(self) -> tuple[ExchangeAccountConfig, ...]:
        """The accounts in service (a gateway each)."""
        return tuple(a for a in self.accounts if a.enabled)

    @property
    def disabled_exchanges(self) -> tuple[ExchangeAccountConfig, ...]:
        """Accounts with ``enabled = false``: validated, never started (orders on their pairs wait)."""
        return tuple(a for a in self.accounts if not a.enabled)

    @property
    def pair_strategies(self) -> tuple[tuple[str, dict], ...]:
        """(pair_id, {param: value}): each pair's strategy defaults, as given in the file."""
        return tuple((p.pair_id, p.strategy.given()) for p in self.pairs if p.strategy is not None)

    def exchange(self, account_id: str) -> ExchangeAccountConfig | None:
        return next((e for e in self.exchanges if e.account_id == account_id), None)

    def pair_strategy(self, pair_id: str) -> dict:
        pair = self.pair(pair_id)
        return pair.strategy.given() if pair is not None and pair.strategy is not None else {}

    def pair(self, pair_id: str) -> PairRules | None:
        return self._pairs_by_id.get(pair_id)

    @cached_property
    def _pairs_by_id(self) -> dict[str, PairRules]:
        return {p.pair_id: p for p in self.pairs}

    @classmethod
    def unknown_text(cls, key: str, close: str | None) -> str:
        return "unknown section" + (f"; did you mean [{close}]?" if close else "")

    @classmethod
    def prepare(cls, data: dict[str, Any], load: Load) -> list[Issue]:
        """A table given as something else is said once (and checked as empty); an absent table is checked
        as empty, so what it requires is said (``mixin.keystore: is required``)."""
        issues = []
        for key, (_, optional) in _tables(cls).items():
            if key in data and not isinstance(data[key], dict):
                issues.append(Issue((key,), f"must be a table ([{key}])"))
                del data[key]
            if not optional:
                data.setdefault(key, {})
        return issues

    @classmethod
    def checks(cls, values: dict[str, Any], data: dict[str, Any]) -> list[Issue]:
        """Between tables, on the file as written: every pair's ``exchange`` (and price source) is a
        configured account, a pair id is used once."""
        raw_accounts, raw_pairs = data.get("accounts", []), data.get("pairs", [])
        accounts_given = isinstance(raw_accounts, list)
        declared = {a["id"] for a in raw_accounts if isinstance(a, dict) and isinstance(a.get("id"), str)} \
            if accounts_given else set()
        configured = ", ".join(sorted(declared)) or "none"
        no_accounts = accounts_given and not raw_accounts
        issues, seen, enabled = [], set(), 0
        for index, item in enumerate(raw_pairs if isinstance(raw_pairs, list) else ()):
            if not isinstance(item, dict) or any(key not in item for key in ("id", "symbol", "exchange",
                                                                             "base_asset_id", "quote_asset_id")):
                continue
            pair_id = _canonical_uuid(item["id"])
            if pair_id is not None and pair_id in seen:
                issues.append(Issue(("pairs", index, "id"), f"{pair_id} is configured twice"))
            seen.add(pair_id)
            enabled += item.get("enabled", True) is not False
            exchange = item["exchange"]
            if isinstance(exchange, str) and accounts_given and not no_accounts and exchange not in declared:
                issues.append(Issue(("pairs", index, "exchange"), f"{show(exchange)} is not a configured "
                                    f"[[exchanges]] id (configured: {configured}); an order paid on it could never "
                                    "reach an exchange"))
            strategy = item.get("strategy")
            source = strategy.get("price_source_exchange") if isinstance(strategy, dict) else None
            if source and source not in declared:
                issues.append(Issue(("pairs", index, "strategy", "price_source_exchange"), f"{show(source)} is not a "
                                    f"configured [[exchanges]] id (configured: {configured})"))
        if no_accounts and enabled:
            issues.append(Issue(("exchanges",), f"no [[exchanges]] account is configured, but {enabled} enabled "
                                f"pair{'s trade' if enabled > 1 else ' trades'} on one; add an [[exchanges]] "
                                "table for each account the pairs name (`exchange = \"...\"`)"))
        return issues


def _canonical_uuid(value: Any) -> str | None:
    try:
        return str(uuid.UUID(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def _tables(model: type[Section]) -> dict[str, tuple[type[Section], bool]]:
    """The tables of a file: name → (model, whether it may be absent: a ``Section | None`` field, like hufi)."""
    tables = {}
    for name, field in model.model_fields.items():
        union = typing.get_origin(field.annotation) in (typing.Union, types.UnionType)
        kinds = typing.get_args(field.annotation) if union else (field.annotation,)
        section = next((k for k in kinds if isinstance(k, type) and issubclass(k, Section)), None)
        if section is not None:
            key = field.validation_alias if isinstance(field.validation_alias, str) else name
            tables[key] = (section, type(None) in kinds)
    return tables


def section_models(model: type[Section] | None = None) -> dict[str, type[Section]]:
    """The tables a file always has (absent = empty: ``[database]``, ``[mixin]``, ...): name → model."""
    return {key: section for key, (section, optional) in _tables(model or Config).items() if not optional}


OWN_PARSERS = ("api", "kpi", "archive", "cluster")  # tables parsed by their own modules, not by Config.model_validate


def _disabled_api():
    from api.settings import ApiSettings
    return ApiSettings()


def parse_config(raw: dict, *, base_dir: Path | None = None, source: str = "", read_secrets: bool = True,
                 for_service: bool = False, check_venues: bool = True) -> Config:
    """Validate a parsed TOML document; raise ConfigError listing every problem.

    read_secrets=False: exchange keys are not read and HuFi key files not looked at (commands that only
    read the database need none). for_service=True: what only the service refuses (an in-memory SQLite).
    check_venues=False: an account's ``ccxt`` is only required to be a name, not looked up in the installed
    ccxt (commands that only use the database: they start without importing ccxt)."""
    load = Load(base_dir or Path.cwd(), read_secrets=read_secrets, for_service=for_service,
                check_venues=check_venues)
    problems: list[str] = []
    config = None
    try:
        config = Config.model_validate({k: v for k, v in raw.items() if k not in OWN_PARSERS}, context=load)
    except ValidationError as exc:
        problems = problems_of(exc, account_labels(raw.get("exchanges")))
    from api.settings import parse_api
    api = parse_api(raw.get("api"), problems, load.base_dir, read_secrets=read_secrets)
    kpi = parse_kpi_settings(raw.get("kpi"), problems)
    url = config.database.url if config is not None else None
    archive = parse_archive_settings(raw.get("archive"), problems, load.base_dir, url)
    cluster = parse_cluster_settings(raw.get("cluster"), problems, url or "")
    if problems or config is None:
        raise ConfigError(problems, source)
    return config.model_copy(update={"source": source, "api": api, "kpi": kpi, "archive": archive,
                                     "cluster": cluster})


def load_config(path: str | os.PathLike, *, read_secrets: bool = True, for_service: bool = False,
                check_venues: bool = True) -> Config:
    """Read, parse and validate one TOML file; ConfigError (with ``source`` = the path) on any problem."""
    path = Path(path)
    source = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"cannot read the config file: {exc.strerror or type(exc).__name__}"], source) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = f"is not a text (UTF-8) file: undecodable byte at offset {exc.start}; is it the right file?"
        raise ConfigError([problem], source) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"is not valid TOML: {exc}"], source) from None
    except RecursionError:
        raise ConfigError(["is not valid TOML: nested too deeply"], source) from None
    return parse_config(raw, base_dir=path.resolve().parent, source=source, read_secrets=read_secrets,
                        for_service=for_service, check_venues=check_venues)
