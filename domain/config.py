"""Configuration: one TOML file, parsed into frozen dataclasses and validated.

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
"""
from __future__ import annotations

import difflib
import os
import tomllib
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from domain.config_values import (
    ENV_NAME,
    MAX_COUNT,
    amount_problem,
    http_url_problem,
    mask_url,
    number_problem,
    seconds_problem,
    show,
)
from domain.money import BadAmount, to_decimal
from domain.breakers import RiskLimits
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


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = "sqlite:///var/mmflow.db"
    busy_timeout: float = 5.0
    batch_max: int = 2000


@dataclass(frozen=True)
class MixinConfig:
    api_base: str = "https://api.mixin.one"
    keystore_path: str = ""
    poll_interval: float = 5.0
    full_page_pause: float = 0.0
    page_limit: int = 500
    request_timeout: float = 10.0
    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    operator_user_ids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PaymentConfig:
    market_making_fee_percent: Decimal = Decimal("0")
    timeout: float = 600.0
    check_delay: float = 5.0
    fee_retry_delay: float = 5.0


@dataclass(frozen=True)
class TreasuryConfig:
    retry_delay: float = 5.0
    retry_max_delay: float = 300.0
    confirm_poll_interval: float = 2.0


@dataclass(frozen=True)
class FundingConfig:
    """Stages 5–6: moving paid funds to the exchange and seeing them credited."""
    poll_interval: float = 5.0          # how often an order in flight looks at Mixin and the exchange
    withdrawal_timeout: float = 1800.0  # Mixin has not sent both withdrawals by then → attention
    deposit_timeout: float = 3600.0     # the exchange has not credited both deposits by then → attention
    retry_delay: float = 5.0            # after a transient error (exchange or Mixin unreachable)
    # The way back (exchange → Mixin):
    return_timeout: float = 7200.0      # an accepted exchange withdrawal has not arrived on Mixin by then → attention
    return_retry_delay: float = 30.0    # first pause after the exchange refused or failed a withdrawal (doubles)
    return_max_attempts: int = 5        # refused/failed this many times → attention with everything known
    lookup_grace: float = 60.0          # a withdrawal whose reply was lost, not in the exchange's history by then,
                                        # was never made: it is sent again (same client id)


@dataclass(frozen=True)
class StrategyLoopConfig:
    """Stage 9: how often each running order looks at the market (its own refresh time governs replacing)."""
    tick_interval: float = 1.0
    stop_timeout: float = 60.0   # stopping orders whose cancels are not confirmed by then → attention


@dataclass(frozen=True)
class StreamConfig:
    """The gateway's order-update stream and shared market data."""
    slow_interval: float = 2.0    # poll open orders and trades this often when nothing is in flight
    fast_interval: float = 0.3    # ... and this often while a place or cancel is in flight
    book_ttl: float = 0.5         # one order-book request per pair per this many seconds, shared by all orders
    trades_lookback: float = 86400.0
    not_found_grace: float = 30.0  # an order unseen this long after its last update is declared absent
    weight_share: float = 0.5      # the stream uses at most this share of the account's request budget


@dataclass(frozen=True)
class SupervisionConfig:
    intensity: int = 5
    period: float = 30.0
    backoff_min: float = 0.5
    backoff_max: float = 30.0
    order_intensity: int = 10
    order_period: float = 60.0


@dataclass(frozen=True)
class LogConfig:
    level: str = "INFO"
    json: bool = False


@dataclass(frozen=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    mixin: MixinConfig = field(default_factory=MixinConfig)
    payments: PaymentConfig = field(default_factory=PaymentConfig)
    treasury: TreasuryConfig = field(default_factory=TreasuryConfig)
    supervision: SupervisionConfig = field(default_factory=SupervisionConfig)
    log: LogConfig = field(default_factory=LogConfig)
    funding: FundingConfig = field(default_factory=FundingConfig)
    exchanges: tuple = ()  # ExchangeAccountConfig, one per exchange account in service (a gateway each)
    disabled_exchanges: tuple = ()  # ExchangeAccountConfig with enabled = false: validated, never started
    hufi: object = None    # HufiConfig, or None: HuFi campaigns disabled
    strategy: StrategyLoopConfig = field(default_factory=StrategyLoopConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    pair_strategies: tuple = ()  # (pair_id, {param: value}) — each pair's strategy defaults, validated
    pairs: tuple[PairRules, ...] = ()
    risk: RiskLimits = field(default_factory=RiskLimits)
    api: object = field(default_factory=lambda: _disabled_api())  # api.settings.ApiSettings
    source: str = ""

    def exchange(self, account_id: str):
        return next((e for e in self.exchanges if e.account_id == account_id), None)

    def pair_strategy(self, pair_id: str) -> dict:
        return dict(dict(self.pair_strategies).get(pair_id, {}))

    def pair(self, pair_id: str) -> PairRules | None:
        return self._pairs_by_id().get(pair_id)

    def _pairs_by_id(self) -> dict[str, PairRules]:
        cache = self.__dict__.get("_pair_index")
        if cache is None:
            cache = {p.pair_id: p for p in self.pairs}
            object.__setattr__(self, "_pair_index", cache)
        return cache


def _disabled_api():
    from api.settings import ApiSettings
    return ApiSettings()


def _section(raw: dict, name: str, problems: list[str]) -> dict:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        problems.append(f"{name}: must be a table ([{name}])")
        return {}
    return value


def _number(table: dict, key: str, default: float, problems: list[str], where: str, *,
            minimum: float | None = None, integer: bool = False, maximum: float | None = None) -> Any:
    """A count or a plain number (finite; booleans refused)."""
    value = table.get(key, default)
    problem = number_problem(value, minimum=minimum, integer=integer,
                             maximum=MAX_COUNT if integer and maximum is None else maximum)
    if problem:
        problems.append(f"{where}.{key}: {problem}")
        return default
    return value


def _seconds(table: dict, key: str, default: float, problems: list[str], where: str, *,
             minimum: float = 0.01, zero_ok: bool = False) -> float:
    """An interval, timeout or delay: finite, >= minimum (> 0 always, or >= 0 with zero_ok), at most ten years."""
    value = table.get(key, default)
    if zero_ok:
        problem = seconds_problem(value, minimum=0, exclusive=False)
    else:
        problem = seconds_problem(value, minimum=minimum, exclusive=False)
    if problem:
        problems.append(f"{where}.{key}: {problem}")
        return default
    return value


def _fraction(table: dict, key: str, default: Decimal, problems: list[str], where: str) -> Decimal:
    """A fraction given as a quoted decimal: 0 < x <= 1 (0.05 = 5 %)."""
    value = _decimal(table, key, problems, where, default=default)
    if value is None or not (0 < value <= 1):
        problems.append(f"{where}.{key}: must be a fraction > 0 and <= 1 (\"0.05\" = 5 %), got {value}")
        return default
    return value


def _decimal(table: dict, key: str, problems: list[str], where: str, *, required: bool = False,
             default: Decimal | None = None) -> Decimal | None:
    if key not in table:
        if required:
            problems.append(f"{where}.{key}: is required")
        return default
    value = table[key]
    if isinstance(value, float):
        problems.append(f"{where}.{key}: must be a quoted decimal string (e.g. \"0.1\"), not a float")
        return default
    try:
        number = to_decimal(value, field=f"{where}.{key}")
    except BadAmount as exc:
        problems.append(str(exc))
        return default
    problem = amount_problem(number, value)
    if problem:
        problems.append(f"{where}.{key}: {problem}")
        return default
    return number


def _bool(table: dict, key: str, default: bool, problems: list[str], where: str) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        problems.append(f"{where}.{key}: must be true or false (unquoted), got {show(value)}")
        return default
    return value


def _uuid(value: Any, where: str, problems: list[str]) -> str:
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    problems.append(f"{where}: must be a UUID, got {show(value)}")
    return str(value)


def _unknown(key: str, where: str, known: set[str]) -> str:
    close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.7)
    return f"{where}.{key}: unknown key" + (f"; did you mean {close[0]!r}?" if close else "")


_KNOWN = {
    "database": {"url", "busy_timeout", "batch_max"},
    "mixin": {"api_base", "keystore", "poll_interval", "full_page_pause", "page_limit", "request_timeout",
              "max_attempts", "backoff_base", "backoff_max", "operator_user_ids"},
    "payments": {"market_making_fee_percent", "timeout", "check_delay", "fee_retry_delay"},
    "treasury": {"retry_delay", "retry_max_delay", "confirm_poll_interval"},
    "supervision": {"intensity", "period", "backoff_min", "backoff_max", "order_intensity", "order_period"},
    "log": {"level", "json"},
    "funding": {"poll_interval", "withdrawal_timeout", "deposit_timeout", "retry_delay", "return_timeout",
                "return_retry_delay", "return_max_attempts", "lookup_grace"},
    "strategy": {"tick_interval", "stop_timeout"},
    "risk": {"max_drawdown_pct", "max_rejections", "rejection_window", "stale_price_after", "max_price_jump_pct",
             "price_settle"},
    "stream": {"slow_interval", "fast_interval", "book_ttl", "trades_lookback", "not_found_grace", "weight_share"},
}
_ARRAYS = ("pairs", "exchanges", "hufi", "api")  # sections parsed by their own modules
_PAIR_KEYS = {"id", "symbol", "exchange", "base_asset_id", "quote_asset_id", "base_symbol", "quote_symbol",
              "enabled", "min_base_amount", "max_base_amount", "min_quote_amount", "max_quote_amount", "strategy",
              "max_duration"}
_LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")


def _not_above(low_key: str, low: float, high_key: str, high: float, where: str, problems: list[str]) -> None:
    if high < low:
        problems.append(f"{where}.{high_key}: must be >= {where}.{low_key} ({low!r}), got {high!r}")


def _database(raw: dict, problems: list[str], base_dir: Path, for_service: bool) -> DatabaseConfig:
    from urllib.parse import urlsplit

    db = _section(raw, "database", problems)
    url = db.get("url", DatabaseConfig.url)
    if not isinstance(url, str) or not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        shown = show(mask_url(url) if isinstance(url, str) else url)
        problems.append(f"database.url: must be sqlite:///PATH or postgresql://..., got {shown}")
    elif url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if not path.strip() or "\x00" in path:
            problems.append(f"database.url: {show(url)} names no database file (sqlite:///PATH)")
        elif path == ":memory:":
            if for_service:
                problems.append("database.url: sqlite:///:memory: is not allowed for serve: the database would "
                                "vanish with the process (payments, refunds and orders with it); give a file")
        elif not path.startswith("/"):
            url = "sqlite:///" + str((base_dir / path).resolve())
    else:
        masked = mask_url(url)
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            problems.append(f"database.url: {show(masked)} is not a valid URL ({exc})")
        else:
            if not parts.path.lstrip("/"):
                problems.append(f"database.url: {show(masked)} names no database (postgresql://USER@HOST/DATABASE)")
    return DatabaseConfig(
        url=url,
        busy_timeout=_seconds(db, "busy_timeout", 5.0, problems, "database", zero_ok=True),
        batch_max=_number(db, "batch_max", 2000, problems, "database", minimum=1, integer=True),
    )


def _mixin(raw: dict, problems: list[str], base_dir: Path) -> MixinConfig:
    mx = _section(raw, "mixin", problems)
    keystore = mx.get("keystore", "")
    keystore_path = ""
    if not isinstance(keystore, str):
        problems.append(f"mixin.keystore: must be a file path or env:VARIABLE, got {show(keystore)}")
    elif not keystore.strip():
        problems.append("mixin.keystore: is required (path to the bot's keystore JSON, or env:VARIABLE)")
    elif keystore.startswith("env:"):
        if not ENV_NAME.match(keystore[4:]):
            problems.append("mixin.keystore: env: must be followed by an environment variable name "
                            "(env:MMFLOW_KEYSTORE)")
        keystore_path = keystore
    elif "\x00" in keystore:
        problems.append("mixin.keystore: must be a file path")
    else:
        keystore_path = str((base_dir / keystore).resolve())
    operators = mx.get("operator_user_ids", [])
    if not isinstance(operators, list):
        problems.append(f"mixin.operator_user_ids: must be a list of user ids, got {show(operators)}")
        operators = []
    api_base = mx.get("api_base", MixinConfig.api_base)
    problem = http_url_problem(api_base)
    if problem:
        problems.append(f"mixin.api_base: {problem}")
        api_base = MixinConfig.api_base
    mixin = MixinConfig(
        api_base=api_base.rstrip("/"),
        keystore_path=keystore_path,
        poll_interval=_seconds(mx, "poll_interval", 5.0, problems, "mixin"),
        full_page_pause=_seconds(mx, "full_page_pause", 0.0, problems, "mixin", zero_ok=True),
        page_limit=_number(mx, "page_limit", 500, problems, "mixin", minimum=1, maximum=500, integer=True),
        request_timeout=_seconds(mx, "request_timeout", 10.0, problems, "mixin"),
        max_attempts=_number(mx, "max_attempts", 5, problems, "mixin", minimum=1, integer=True),
        backoff_base=_seconds(mx, "backoff_base", 0.5, problems, "mixin", zero_ok=True),
        backoff_max=_seconds(mx, "backoff_max", 30.0, problems, "mixin", zero_ok=True),
        operator_user_ids=frozenset(_uuid(u, f"mixin.operator_user_ids[{i}]", problems)
                                    for i, u in enumerate(operators)),
    )
    if "backoff_base" in mx and "backoff_max" in mx:
        _not_above("backoff_base", mixin.backoff_base, "backoff_max", mixin.backoff_max, "mixin", problems)
    return mixin


def _pair_strategy_problems(where: str, table: dict) -> list[str]:
    """The pair's [pairs.strategy] defaults, through domain.strategy.params, after an amount sanity check of
    every numeric text or integer (1e999999999 would overflow the checks' arithmetic)."""
    from domain.strategy.params import StrategyParamsError, parse_params

    problems: list[str] = []
    sane = {}
    for key, value in table.items():
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            try:
                number = Decimal(str(value).strip())
            except ArithmeticError:
                number = None
            if number is not None and number.is_finite():
                problem = amount_problem(number, value)
                if problem:
                    problems.append(f"{where}.strategy.{key}: {problem}")
                    continue
        sane[key] = value
    dropped = set(table) - set(sane)
    try:
        parse_params(sane, {})
    except StrategyParamsError as exc:
        problems.extend(f"{where}.strategy.{p}" for p in exc.problems
                        if not any(p == f"{key}: required" for key in dropped))
    except (ArithmeticError, ValueError, TypeError) as exc:  # a check's arithmetic on a value it did not expect
        problems.append(f"{where}.strategy: values out of range ({type(exc).__name__})")
    return problems


def parse_config(raw: dict, *, base_dir: Path | None = None, source: str = "", read_secrets: bool = True,
                 for_service: bool = False) -> Config:
    """Validate a parsed TOML document; raise ConfigError listing every problem.

    read_secrets=False: exchange keys are not read and HuFi key files not looked at (commands that only
    read the database need none). for_service=True: what only the service refuses (an in-memory SQLite)."""
    problems: list[str] = []
    base_dir = base_dir or Path.cwd()
    for key in raw:
        if key not in _KNOWN and key not in _ARRAYS:
            close = difflib.get_close_matches(str(key), sorted(set(_KNOWN) | set(_ARRAYS)), n=1, cutoff=0.7)
            problems.append(f"{key}: unknown section" + (f"; did you mean [{close[0]}]?" if close else ""))
    for name, keys in _KNOWN.items():
        table = raw.get(name, {})
        if isinstance(table, dict):
            for key in table:
                if key not in keys:
                    problems.append(_unknown(key, name, keys))

    database = _database(raw, problems, base_dir, for_service)
    mixin = _mixin(raw, problems, base_dir)

    pay = _section(raw, "payments", problems)
    fee_percent = _decimal(pay, "market_making_fee_percent", problems, "payments", required=True,
                           default=Decimal(0))
    if fee_percent is not None and not (Decimal(0) <= fee_percent < Decimal(100)):
        problems.append(f"payments.market_making_fee_percent: must be in [0, 100), got {fee_percent}")
    payments = PaymentConfig(
        market_making_fee_percent=fee_percent if fee_percent is not None else Decimal(0),
        timeout=_seconds(pay, "timeout", 600.0, problems, "payments"),
        check_delay=_seconds(pay, "check_delay", 5.0, problems, "payments", zero_ok=True),
        fee_retry_delay=_seconds(pay, "fee_retry_delay", 5.0, problems, "payments"),
    )

    tr = _section(raw, "treasury", problems)
    treasury = TreasuryConfig(
        retry_delay=_seconds(tr, "retry_delay", 5.0, problems, "treasury"),
        retry_max_delay=_seconds(tr, "retry_max_delay", 300.0, problems, "treasury"),
        confirm_poll_interval=_seconds(tr, "confirm_poll_interval", 2.0, problems, "treasury"),
    )
    if "retry_delay" in tr and "retry_max_delay" in tr:
        _not_above("retry_delay", treasury.retry_delay, "retry_max_delay", treasury.retry_max_delay, "treasury",
                   problems)

    sv = _section(raw, "supervision", problems)
    supervision = SupervisionConfig(
        intensity=_number(sv, "intensity", 5, problems, "supervision", minimum=0, integer=True),
        period=_seconds(sv, "period", 30.0, problems, "supervision"),
        backoff_min=_seconds(sv, "backoff_min", 0.5, problems, "supervision", zero_ok=True),
        backoff_max=_seconds(sv, "backoff_max", 30.0, problems, "supervision", zero_ok=True),
        order_intensity=_number(sv, "order_intensity", 10, problems, "supervision", minimum=0, integer=True),
        order_period=_seconds(sv, "order_period", 60.0, problems, "supervision"),
    )
    if "backoff_min" in sv and "backoff_max" in sv:
        _not_above("backoff_min", supervision.backoff_min, "backoff_max", supervision.backoff_max, "supervision",
                   problems)

    lg = _section(raw, "log", problems)
    level = lg.get("level", "INFO")
    if not isinstance(level, str) or level.upper() not in _LOG_LEVELS:
        problems.append(f"log.level: {show(level.upper() if isinstance(level, str) else level)} is not a log level "
                        f"({', '.join(_LOG_LEVELS)})")
        level = "INFO"
    log = LogConfig(level=level.upper(), json=_bool(lg, "json", False, problems, "log"))

    fd = _section(raw, "funding", problems)
    funding = FundingConfig(
        poll_interval=_seconds(fd, "poll_interval", 5.0, problems, "funding"),
        withdrawal_timeout=_seconds(fd, "withdrawal_timeout", 1800.0, problems, "funding"),
        deposit_timeout=_seconds(fd, "deposit_timeout", 3600.0, problems, "funding"),
        retry_delay=_seconds(fd, "retry_delay", 5.0, problems, "funding"),
        return_timeout=_seconds(fd, "return_timeout", 7200.0, problems, "funding"),
        return_retry_delay=_seconds(fd, "return_retry_delay", 30.0, problems, "funding"),
        return_max_attempts=_number(fd, "return_max_attempts", 5, problems, "funding", minimum=1, integer=True),
        lookup_grace=_seconds(fd, "lookup_grace", 60.0, problems, "funding", zero_ok=True),
    )

    raw_exchanges = raw.get("exchanges", [])
    declared: list[str] = []  # every [[exchanges]] id written, valid or not (pairs are checked against these)
    if not isinstance(raw_exchanges, list):
        problems.append("exchanges: must be an array of tables ([[exchanges]])")
        raw_exchanges = None
        accounts: tuple = ()
    else:
        declared = [item["id"] for item in raw_exchanges if isinstance(item, dict) and isinstance(item.get("id"), str)]
        if raw_exchanges:
            from domain.exchange_config import parse_exchanges
            accounts = parse_exchanges(raw_exchanges, problems, base_dir, read_secrets)
        else:
            accounts = ()
    exchanges = tuple(a for a in accounts if a.enabled)
    disabled_exchanges = tuple(a for a in accounts if not a.enabled)

    from domain.hufi_config import parse_hufi
    hufi = parse_hufi(raw.get("hufi"), problems, base_dir, check_secrets=read_secrets)
    from api.settings import parse_api
    api = parse_api(raw.get("api"), problems, base_dir, read_secrets=read_secrets)

    st = _section(raw, "strategy", problems)
    strategy = StrategyLoopConfig(
        tick_interval=_seconds(st, "tick_interval", 1.0, problems, "strategy"),
        stop_timeout=_seconds(st, "stop_timeout", 60.0, problems, "strategy"),
    )
    rk = _section(raw, "risk", problems)
    risk = RiskLimits(
        max_drawdown=_fraction(rk, "max_drawdown_pct", Decimal("0.2"), problems, "risk"),
        max_rejections=_number(rk, "max_rejections", 20, problems, "risk", minimum=1, integer=True),
        rejection_window=_seconds(rk, "rejection_window", 60.0, problems, "risk"),
        stale_price_after=_seconds(rk, "stale_price_after", 30.0, problems, "risk"),
        max_price_jump=_fraction(rk, "max_price_jump_pct", Decimal("0.05"), problems, "risk"),
        price_settle=_seconds(rk, "price_settle", 10.0, problems, "risk", zero_ok=True),
    )
    sm = _section(raw, "stream", problems)
    stream = StreamConfig(
        slow_interval=_seconds(sm, "slow_interval", 2.0, problems, "stream"),
        fast_interval=_seconds(sm, "fast_interval", 0.3, problems, "stream"),
        book_ttl=_seconds(sm, "book_ttl", 0.5, problems, "stream", zero_ok=True),
        trades_lookback=_seconds(sm, "trades_lookback", 86400.0, problems, "stream", minimum=1),
        not_found_grace=_seconds(sm, "not_found_grace", 30.0, problems, "stream", zero_ok=True),
        weight_share=_number(sm, "weight_share", 0.5, problems, "stream", minimum=0.01, maximum=1),
    )
    pair_strategies = []

    pairs = []
    raw_pairs = raw.get("pairs", [])
    if not isinstance(raw_pairs, list):
        problems.append("pairs: must be an array of tables ([[pairs]])")
        raw_pairs = []
    seen: set[str] = set()
    pair_where: dict[str, str] = {}
    enabled_pairs = 0
    no_accounts = raw_exchanges is not None and not raw_exchanges
    for index, item in enumerate(raw_pairs):
        where = f"pairs[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: must be a table")
            continue
        for key in item:
            if key not in _PAIR_KEYS:
                problems.append(_unknown(key, where, _PAIR_KEYS))
        missing = [k for k in ("id", "symbol", "exchange", "base_asset_id", "quote_asset_id") if k not in item]
        if missing:
            problems.append(f"{where}: is missing {', '.join(missing)}")
            continue
        pair_id = _uuid(item["id"], f"{where}.id", problems)
        if pair_id in seen:
            problems.append(f"{where}.id: {pair_id} is configured twice")
        seen.add(pair_id)
        pair_where.setdefault(pair_id, where)
        symbol = item["symbol"]
        if not isinstance(symbol, str):
            problems.append(f"{where}.symbol: must look like BASE/QUOTE, got {show(symbol)}")
            symbol = str(symbol)
        base_symbol, _, quote_symbol = symbol.partition("/")
        exchange = item["exchange"]
        enabled = _bool(item, "enabled", True, problems, where)
        if not isinstance(exchange, str):
            problems.append(f"{where}.exchange: must be an [[exchanges]] id, got {show(exchange)}")
            exchange = str(exchange)
        elif no_accounts:
            pass  # said once below, for every pair at once
        elif raw_exchanges is not None and exchange not in declared:
            problems.append(f"{where}.exchange: {show(exchange)} is not a configured [[exchanges]] id "
                            f"(configured: {', '.join(sorted(set(declared))) or 'none'}); an order paid on it "
                            "could never reach an exchange")
        if enabled:
            enabled_pairs += 1
        rules = PairRules(
            pair_id=pair_id,
            symbol=symbol,
            exchange=exchange,
            base_asset_id=_uuid(item["base_asset_id"], f"{where}.base_asset_id", problems),
            quote_asset_id=_uuid(item["quote_asset_id"], f"{where}.quote_asset_id", problems),
            base_symbol=str(item.get("base_symbol", base_symbol)),
            quote_symbol=str(item.get("quote_symbol", quote_symbol)),
            enabled=enabled,
            min_base_amount=_decimal(item, "min_base_amount", problems, where, default=Decimal(0)),
            max_base_amount=_decimal(item, "max_base_amount", problems, where),
            min_quote_amount=_decimal(item, "min_quote_amount", problems, where, default=Decimal(0)),
            max_quote_amount=_decimal(item, "max_quote_amount", problems, where),
            max_duration=(_seconds(item, "max_duration", None, problems, where, minimum=1)
                          if "max_duration" in item else None),
        )
        if not base_symbol or not quote_symbol:
            problems.append(f"{where}.symbol: must look like BASE/QUOTE, got {show(symbol)}")
        if rules.base_asset_id == rules.quote_asset_id:
            problems.append(f"{where}: base and quote asset are the same")
        for low, high, name in ((rules.min_base_amount, rules.max_base_amount, "base"),
                                (rules.min_quote_amount, rules.max_quote_amount, "quote")):
            if low is not None and low < 0:
                problems.append(f"{where}.min_{name}_amount: must be >= 0")
            elif high is not None and high <= 0:
                problems.append(f"{where}.max_{name}_amount: must be > 0 (or left out for no maximum)")
            elif high is not None and low is not None and high < low:
                problems.append(f"{where}.max_{name}_amount: is below min_{name}_amount ({high} < {low})")
        pairs.append(rules)
        strategy_table = item.get("strategy")
        if strategy_table is not None:
            if not isinstance(strategy_table, dict):
                problems.append(f"{where}.strategy: must be a table")
            else:
                problems.extend(_pair_strategy_problems(where, strategy_table))
                pair_strategies.append((pair_id, dict(strategy_table)))
    if no_accounts and enabled_pairs:
        problems.append(f"exchanges: no [[exchanges]] account is configured, but {enabled_pairs} enabled "
                        f"pair{'s trade' if enabled_pairs > 1 else ' trades'} on one; add an [[exchanges]] "
                        "table for each account the pairs name (`exchange = \"...\"`)")

    for pair_id, table in pair_strategies:
        source_id = table.get("price_source_exchange")
        if source_id and source_id not in declared:
            problems.append(f"{pair_where[pair_id]}.strategy.price_source_exchange: {show(source_id)} is not a "
                            f"configured [[exchanges]] id (configured: {', '.join(sorted(set(declared))) or 'none'})")
    if problems:
        raise ConfigError(problems, source)
    return Config(database=database, mixin=mixin, payments=payments, treasury=treasury,
                  supervision=supervision, log=log, funding=funding, exchanges=exchanges,
                  disabled_exchanges=disabled_exchanges, hufi=hufi, strategy=strategy, stream=stream,
                  pair_strategies=tuple(pair_strategies), pairs=tuple(pairs), risk=risk, api=api, source=source)


def load_config(path: str | os.PathLike, *, read_secrets: bool = True, for_service: bool = False) -> Config:
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
                        for_service=for_service)
