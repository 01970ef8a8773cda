"""Configuration: one TOML file, parsed into frozen dataclasses and validated.

Bad config is refused at start with every problem listed (ConfigError), never
half-applied. Secrets are referenced by file path or environment variable and
never stored in this object's repr.
"""
from __future__ import annotations

import os
import tomllib
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from domain.money import BadAmount, to_decimal
from domain.payment import PairRules


class ConfigError(ValueError):
    def __init__(self, problems: list[str]):
        super().__init__("invalid configuration:\n  - " + "\n  - ".join(problems))
        self.problems = problems


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
    exchanges: tuple = ()  # ExchangeAccountConfig, one per exchange account
    hufi: object = None    # HufiConfig, or None: HuFi campaigns disabled
    strategy: StrategyLoopConfig = field(default_factory=StrategyLoopConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    pair_strategies: tuple = ()  # (pair_id, {param: value}) — each pair's strategy defaults, validated
    pairs: tuple[PairRules, ...] = ()
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


def _section(raw: dict, name: str, problems: list[str]) -> dict:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        problems.append(f"[{name}] must be a table")
        return {}
    return value


def _number(table: dict, key: str, default: float, problems: list[str], where: str, *,
            minimum: float | None = None, integer: bool = False) -> Any:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.append(f"{where}.{key} must be a number, got {value!r}")
        return default
    if integer and not isinstance(value, int):
        problems.append(f"{where}.{key} must be a whole number, got {value!r}")
        return default
    if minimum is not None and value < minimum:
        problems.append(f"{where}.{key} must be >= {minimum}, got {value!r}")
        return default
    return value


def _decimal(table: dict, key: str, problems: list[str], where: str, *, required: bool = False,
             default: Decimal | None = None) -> Decimal | None:
    if key not in table:
        if required:
            problems.append(f"{where}.{key} is required")
        return default
    value = table[key]
    if isinstance(value, float):
        problems.append(f"{where}.{key} must be a quoted decimal string (e.g. \"0.1\"), not a float")
        return default
    try:
        return to_decimal(value, field=f"{where}.{key}")
    except BadAmount as exc:
        problems.append(str(exc))
        return default


def _bool(table: dict, key: str, default: bool, problems: list[str], where: str) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        problems.append(f"{where}.{key} must be true or false (unquoted), got {value!r}")
        return default
    return value


def _uuid(value: Any, where: str, problems: list[str]) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        problems.append(f"{where} must be a UUID, got {value!r}")
        return str(value)


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
    "stream": {"slow_interval", "fast_interval", "book_ttl", "trades_lookback", "not_found_grace", "weight_share"},
}
_PAIR_KEYS = {"id", "symbol", "exchange", "base_asset_id", "quote_asset_id", "base_symbol", "quote_symbol",
              "enabled", "min_base_amount", "max_base_amount", "min_quote_amount", "max_quote_amount", "strategy",
              "max_duration"}


def parse_config(raw: dict, *, base_dir: Path | None = None, source: str = "", read_secrets: bool = True) -> Config:
    """Validate a parsed TOML document; raise ConfigError listing every problem.

    read_secrets=False: exchange keys are not read (commands that only read the database need none)."""
    problems: list[str] = []
    base_dir = base_dir or Path.cwd()
    for name, keys in _KNOWN.items():
        table = raw.get(name, {})
        if isinstance(table, dict):
            for key in table:
                if key not in keys:
                    problems.append(f"[{name}] has an unknown key {key!r}")
    for key in raw:
        if key not in _KNOWN and key not in ("pairs", "exchanges", "hufi"):
            problems.append(f"unknown section [{key}]")

    db = _section(raw, "database", problems)
    url = db.get("url", DatabaseConfig.url)
    if not isinstance(url, str) or not (url.startswith("sqlite:///") or url.startswith("postgresql://")
                                        or url.startswith("postgres://")):
        problems.append(f"database.url must be sqlite:///PATH or postgresql://..., got {url!r}")
    elif url.startswith("sqlite:///") and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
        url = "sqlite:///" + str((base_dir / url[len("sqlite:///"):]).resolve())
    database = DatabaseConfig(
        url=url,
        busy_timeout=_number(db, "busy_timeout", 5.0, problems, "database", minimum=0),
        batch_max=_number(db, "batch_max", 2000, problems, "database", minimum=1, integer=True),
    )

    mx = _section(raw, "mixin", problems)
    keystore = mx.get("keystore", "")
    if keystore and not isinstance(keystore, str):
        problems.append("mixin.keystore must be a file path")
        keystore = ""
    if keystore.startswith("env:"):
        keystore_path = keystore
    elif keystore:
        keystore_path = str((base_dir / keystore).resolve())
    else:
        keystore_path = ""
        problems.append("mixin.keystore is required (path to the bot's keystore JSON, or env:VARIABLE)")
    operators = mx.get("operator_user_ids", [])
    if not isinstance(operators, list):
        problems.append("mixin.operator_user_ids must be a list of user ids")
        operators = []
    api_base = mx.get("api_base", MixinConfig.api_base)
    if not isinstance(api_base, str) or not api_base.startswith(("http://", "https://")):
        problems.append(f"mixin.api_base must be an http(s) URL, got {api_base!r}")
    mixin = MixinConfig(
        api_base=str(api_base).rstrip("/"),
        keystore_path=keystore_path,
        poll_interval=_number(mx, "poll_interval", 5.0, problems, "mixin", minimum=0.01),
        full_page_pause=_number(mx, "full_page_pause", 0.0, problems, "mixin", minimum=0),
        page_limit=_number(mx, "page_limit", 500, problems, "mixin", minimum=1, integer=True),
        request_timeout=_number(mx, "request_timeout", 10.0, problems, "mixin", minimum=0.01),
        max_attempts=_number(mx, "max_attempts", 5, problems, "mixin", minimum=1, integer=True),
        backoff_base=_number(mx, "backoff_base", 0.5, problems, "mixin", minimum=0),
        backoff_max=_number(mx, "backoff_max", 30.0, problems, "mixin", minimum=0),
        operator_user_ids=frozenset(_uuid(u, "mixin.operator_user_ids[]", problems) for u in operators),
    )
    if mixin.page_limit > 500:
        problems.append("mixin.page_limit must be <= 500 (Mixin's maximum)")

    pay = _section(raw, "payments", problems)
    fee_percent = _decimal(pay, "market_making_fee_percent", problems, "payments", required=True,
                           default=Decimal(0))
    if fee_percent is not None and not (Decimal(0) <= fee_percent < Decimal(100)):
        problems.append(f"payments.market_making_fee_percent must be in [0, 100), got {fee_percent}")
    payments = PaymentConfig(
        market_making_fee_percent=fee_percent if fee_percent is not None else Decimal(0),
        timeout=_number(pay, "timeout", 600.0, problems, "payments", minimum=0.01),
        check_delay=_number(pay, "check_delay", 5.0, problems, "payments", minimum=0),
        fee_retry_delay=_number(pay, "fee_retry_delay", 5.0, problems, "payments", minimum=0.01),
    )

    tr = _section(raw, "treasury", problems)
    treasury = TreasuryConfig(
        retry_delay=_number(tr, "retry_delay", 5.0, problems, "treasury", minimum=0.01),
        retry_max_delay=_number(tr, "retry_max_delay", 300.0, problems, "treasury", minimum=0.01),
        confirm_poll_interval=_number(tr, "confirm_poll_interval", 2.0, problems, "treasury", minimum=0.01),
    )

    sv = _section(raw, "supervision", problems)
    supervision = SupervisionConfig(
        intensity=_number(sv, "intensity", 5, problems, "supervision", minimum=0, integer=True),
        period=_number(sv, "period", 30.0, problems, "supervision", minimum=0.01),
        backoff_min=_number(sv, "backoff_min", 0.5, problems, "supervision", minimum=0),
        backoff_max=_number(sv, "backoff_max", 30.0, problems, "supervision", minimum=0),
        order_intensity=_number(sv, "order_intensity", 10, problems, "supervision", minimum=0, integer=True),
        order_period=_number(sv, "order_period", 60.0, problems, "supervision", minimum=0.01),
    )

    lg = _section(raw, "log", problems)
    level = str(lg.get("level", "INFO")).upper()
    if level not in {"TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"}:
        problems.append(f"log.level {level!r} is not a log level")
        level = "INFO"
    log = LogConfig(level=level, json=_bool(lg, "json", False, problems, "log"))

    fd = _section(raw, "funding", problems)
    funding = FundingConfig(
        poll_interval=_number(fd, "poll_interval", 5.0, problems, "funding", minimum=0.01),
        withdrawal_timeout=_number(fd, "withdrawal_timeout", 1800.0, problems, "funding", minimum=0.01),
        deposit_timeout=_number(fd, "deposit_timeout", 3600.0, problems, "funding", minimum=0.01),
        retry_delay=_number(fd, "retry_delay", 5.0, problems, "funding", minimum=0.01),
        return_timeout=_number(fd, "return_timeout", 7200.0, problems, "funding", minimum=0.01),
        return_retry_delay=_number(fd, "return_retry_delay", 30.0, problems, "funding", minimum=0.01),
        return_max_attempts=_number(fd, "return_max_attempts", 5, problems, "funding", minimum=1, integer=True),
        lookup_grace=_number(fd, "lookup_grace", 60.0, problems, "funding", minimum=0),
    )

    raw_exchanges = raw.get("exchanges", [])
    if not isinstance(raw_exchanges, list):
        problems.append("[[exchanges]] must be an array of tables")
        raw_exchanges = []
    if raw_exchanges:
        from domain.exchange_config import parse_exchanges
        exchanges = parse_exchanges(raw_exchanges, problems, base_dir, read_secrets)
    else:
        exchanges = ()

    from domain.hufi_config import parse_hufi
    hufi = parse_hufi(raw.get("hufi"), problems, base_dir)

    st = _section(raw, "strategy", problems)
    strategy = StrategyLoopConfig(
        tick_interval=_number(st, "tick_interval", 1.0, problems, "strategy", minimum=0.01),
        stop_timeout=_number(st, "stop_timeout", 60.0, problems, "strategy", minimum=0.01),
    )
    sm = _section(raw, "stream", problems)
    stream = StreamConfig(
        slow_interval=_number(sm, "slow_interval", 2.0, problems, "stream", minimum=0.01),
        fast_interval=_number(sm, "fast_interval", 0.3, problems, "stream", minimum=0.01),
        book_ttl=_number(sm, "book_ttl", 0.5, problems, "stream", minimum=0),
        trades_lookback=_number(sm, "trades_lookback", 86400.0, problems, "stream", minimum=1),
        not_found_grace=_number(sm, "not_found_grace", 30.0, problems, "stream", minimum=0),
        weight_share=_number(sm, "weight_share", 0.5, problems, "stream", minimum=0.01),
    )
    pair_strategies = []

    pairs = []
    raw_pairs = raw.get("pairs", [])
    if not isinstance(raw_pairs, list):
        problems.append("[[pairs]] must be an array of tables")
        raw_pairs = []
    seen: set[str] = set()
    for index, item in enumerate(raw_pairs):
        where = f"pairs[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{where} must be a table")
            continue
        for key in item:
            if key not in _PAIR_KEYS:
                problems.append(f"{where} has an unknown key {key!r}")
        missing = [k for k in ("id", "symbol", "exchange", "base_asset_id", "quote_asset_id") if k not in item]
        if missing:
            problems.append(f"{where} is missing {', '.join(missing)}")
            continue
        pair_id = _uuid(item["id"], f"{where}.id", problems)
        if pair_id in seen:
            problems.append(f"{where}.id {pair_id} is configured twice")
        seen.add(pair_id)
        symbol = str(item["symbol"])
        base_symbol, _, quote_symbol = symbol.partition("/")
        rules = PairRules(
            pair_id=pair_id,
            symbol=symbol,
            exchange=str(item["exchange"]),
            base_asset_id=_uuid(item["base_asset_id"], f"{where}.base_asset_id", problems),
            quote_asset_id=_uuid(item["quote_asset_id"], f"{where}.quote_asset_id", problems),
            base_symbol=str(item.get("base_symbol", base_symbol)),
            quote_symbol=str(item.get("quote_symbol", quote_symbol)),
            enabled=_bool(item, "enabled", True, problems, where),
            min_base_amount=_decimal(item, "min_base_amount", problems, where, default=Decimal(0)),
            max_base_amount=_decimal(item, "max_base_amount", problems, where),
            min_quote_amount=_decimal(item, "min_quote_amount", problems, where, default=Decimal(0)),
            max_quote_amount=_decimal(item, "max_quote_amount", problems, where),
            max_duration=(_number(item, "max_duration", 0, problems, where, minimum=1)
                          if "max_duration" in item else None),
        )
        if not quote_symbol:
            problems.append(f"{where}.symbol must look like BASE/QUOTE, got {symbol!r}")
        if rules.base_asset_id == rules.quote_asset_id:
            problems.append(f"{where}: base and quote asset are the same")
        for low, high, name in ((rules.min_base_amount, rules.max_base_amount, "base"),
                                (rules.min_quote_amount, rules.max_quote_amount, "quote")):
            if low is not None and low < 0:
                problems.append(f"{where}.min_{name}_amount must be >= 0")
            if high is not None and low is not None and high < low:
                problems.append(f"{where}.max_{name}_amount is below min_{name}_amount")
        pairs.append(rules)
        strategy_table = item.get("strategy")
        if strategy_table is not None:
            if not isinstance(strategy_table, dict):
                problems.append(f"{where}.strategy must be a table")
            else:
                from domain.strategy.params import StrategyParamsError, parse_params
                try:
                    parse_params(strategy_table, {})
                except StrategyParamsError as exc:
                    problems.extend(f"{where}.strategy.{p}" for p in exc.problems)
                pair_strategies.append((pair_id, dict(strategy_table)))

    account_ids = {e.account_id for e in exchanges}
    for pair_id, table in pair_strategies:
        source = table.get("price_source_exchange")
        if source and source not in account_ids:
            problems.append(f"pair {pair_id}: strategy.price_source_exchange {source!r} is not a configured "
                            f"[[exchanges]] id ({', '.join(sorted(account_ids)) or 'none configured'})")
    if problems:
        raise ConfigError(problems)
    return Config(database=database, mixin=mixin, payments=payments, treasury=treasury,
                  supervision=supervision, log=log, funding=funding, exchanges=tuple(exchanges), hufi=hufi,
                  strategy=strategy, stream=stream, pair_strategies=tuple(pair_strategies),
                  pairs=tuple(pairs), source=source)


def load_config(path: str | os.PathLike, *, read_secrets: bool = True) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read config file {path}: {exc.strerror}"]) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path} is not valid TOML: {exc}"]) from None
    return parse_config(raw, base_dir=path.resolve().parent, source=str(path), read_secrets=read_secrets)
