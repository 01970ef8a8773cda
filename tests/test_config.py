"""TOML configuration validation (domain/config.py), through load_config on real files."""
from __future__ import annotations

import re
from decimal import Decimal as D
from pathlib import Path

import pytest

from domain.config import Config, ConfigError, load_config, parse_config
from domain.payment import PairRules

BTC = "c6d0c728-2624-429b-8e0d-d9d19b6592fa"
USDT = "4d8c508b-91c5-375b-92b0-ee702ed2dac5"
XIN = "c94ac88f-4671-3976-b60a-09064f1811e8"
PAIR_ID = "0776b00f-95c0-46f9-85e4-7b8e7ca51e94"
PAIR_ID_2 = "11111111-2222-4333-8444-555555555555"
OPERATOR = "fcb87491-4fa0-4c2f-b387-262b63cbc112"

MIXIN = '[mixin]\nkeystore = "keystore.json"\n'
PAYMENTS = '[payments]\nmarket_making_fee_percent = "0.1"\n'
EXCHANGE = '[[exchanges]]\nid = "binance"\nccxt = "binance"\n'   # public-only: no keys to read


def pair_toml(pair_id=PAIR_ID, base=BTC, quote=USDT, symbol="BTC/USDT", extra="") -> str:
    return (f'[[pairs]]\nid = "{pair_id}"\nsymbol = "{symbol}"\nexchange = "binance"\n'
            f'base_asset_id = "{base}"\nquote_asset_id = "{quote}"\n{extra}')


MINIMAL = MIXIN + PAYMENTS + EXCHANGE + pair_toml()


def write(tmp_path: Path, text: str, name: str = "mmflow.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert str(info.value).startswith("invalid configuration:\n  - ")
    return info.value.problems


# ================================ a valid config ================================


def test_minimal_valid_config(tmp_path):
    path = write(tmp_path, MINIMAL)
    config = load_config(path)
    assert isinstance(config, Config)
    assert config.source == str(path)
    assert config.payments.market_making_fee_percent == D("0.1")
    assert isinstance(config.payments.market_making_fee_percent, D)
    assert config.mixin.keystore_path == str((tmp_path / "keystore.json").resolve())
    assert config.mixin.api_base == "https://api.mixin.one"
    assert config.mixin.page_limit == 500
    assert config.mixin.operator_user_ids == frozenset()
    assert config.database.url == "sqlite:///" + str((tmp_path / "var" / "mmflow.db").resolve())
    assert config.log.level == "INFO"
    assert config.pairs == (PairRules(
        pair_id=PAIR_ID, symbol="BTC/USDT", exchange="binance", base_asset_id=BTC, quote_asset_id=USDT,
        base_symbol="BTC", quote_symbol="USDT", enabled=True, min_base_amount=D(0), max_base_amount=None,
        min_quote_amount=D(0), max_quote_amount=None),)
    assert config.pair(PAIR_ID) is config.pairs[0]
    assert config.pair(PAIR_ID_2) is None


def test_full_config_values(tmp_path):
    text = (
        '[database]\nurl = "postgresql://mm@db/mmflow"\nbusy_timeout = 2\nbatch_max = 100\npool_size = 4\n'
        '[mixin]\nkeystore = "env:MMFLOW_KEYSTORE"\napi_base = "https://example.test/"\npage_limit = 100\n'
        f'operator_user_ids = ["{OPERATOR.upper()}"]\n'
        '[payments]\nmarket_making_fee_percent = "0.25"\ntimeout = 300\n'
        '[log]\nlevel = "debug"\njson = true\n'
        + pair_toml(pair_id=PAIR_ID.upper(), base=XIN, symbol="XIN/USDT", extra=(
            'enabled = false\nmin_base_amount = "0.5"\nmax_base_amount = "100"\n'
            'min_quote_amount = 10\nquote_symbol = "USDT-ERC20"\n')))
    config = load_config(write(tmp_path, text))
    assert config.database.url == "postgresql://mm@db/mmflow"
    assert (config.database.busy_timeout, config.database.batch_max, config.database.pool_size) == (2, 100, 4)
    assert config.mixin.keystore_path == "env:MMFLOW_KEYSTORE"
    assert config.mixin.api_base == "https://example.test"
    assert config.mixin.page_limit == 100
    assert config.mixin.operator_user_ids == frozenset({OPERATOR})   # normalised to lowercase
    assert config.payments.market_making_fee_percent == D("0.25")
    assert config.payments.timeout == 300
    assert (config.log.level, config.log.json) == ("DEBUG", True)
    pair = config.pairs[0]
    assert pair.pair_id == PAIR_ID
    assert (pair.base_symbol, pair.quote_symbol) == ("XIN", "USDT-ERC20")
    assert pair.enabled is False
    assert (pair.min_base_amount, pair.max_base_amount) == (D("0.5"), D("100"))
    assert (pair.min_quote_amount, pair.max_quote_amount) == (D(10), None)
    assert config.pair(PAIR_ID) is pair


def test_fee_percent_zero_as_integer_is_valid(tmp_path):
    config = load_config(write(tmp_path, MIXIN + '[payments]\nmarket_making_fee_percent = 0\n'))
    assert config.payments.market_making_fee_percent == D(0)
    assert config.pairs == ()


# ================================ database paths ================================


def test_relative_sqlite_path_is_resolved_against_the_config_directory(tmp_path, monkeypatch):
    conf_dir = tmp_path / "etc" / "mmflow"
    conf_dir.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)  # resolution must not depend on the working directory
    path = write(conf_dir, '[database]\nurl = "sqlite:///data/mm.db"\n' + MINIMAL)
    config = load_config(path)
    assert config.database.url == "sqlite:///" + str((conf_dir / "data" / "mm.db").resolve())
    assert config.mixin.keystore_path == str((conf_dir / "keystore.json").resolve())


def test_relative_path_through_a_relative_config_path(tmp_path, monkeypatch):
    (tmp_path / "conf").mkdir()
    write(tmp_path / "conf", '[database]\nurl = "sqlite:///../db/x.db"\n' + MINIMAL)
    monkeypatch.chdir(tmp_path)
    config = load_config("conf/mmflow.toml")
    assert config.database.url == "sqlite:///" + str((tmp_path / "db" / "x.db").resolve())


@pytest.mark.parametrize("url", ["sqlite:////var/lib/mmflow/mm.db", "sqlite:///:memory:"])
def test_absolute_and_memory_sqlite_urls_are_kept(tmp_path, url):
    config = load_config(write(tmp_path, f'[database]\nurl = "{url}"\n' + MINIMAL))
    assert config.database.url == url


@pytest.mark.parametrize("url", ["mysql://x", "sqlite:/x.db", "/tmp/x.db"])
def test_bad_database_url(tmp_path, url):
    assert problems_of(tmp_path, f'[database]\nurl = "{url}"\n' + MINIMAL) == [
        f"database.url: must be sqlite:///PATH or postgresql://..., got {url!r}"]


# ================================ required values and types ================================


def test_missing_market_making_fee_percent_is_named(tmp_path):
    problems = problems_of(tmp_path, MIXIN + "[payments]\ntimeout = 10\n" + EXCHANGE + pair_toml())
    assert problems == ["payments.market_making_fee_percent: is required"]


def test_missing_payments_section_is_named(tmp_path):
    assert problems_of(tmp_path, MIXIN + EXCHANGE + pair_toml()) == ["payments.market_making_fee_percent: is required"]


def test_float_fee_percent_is_refused(tmp_path):
    problems = problems_of(tmp_path, MIXIN + "[payments]\nmarket_making_fee_percent = 0.1\n")
    assert problems == ['payments.market_making_fee_percent: must be a quoted decimal string (e.g. "0.1"), '
                        'not a float']


@pytest.mark.parametrize("value,fragment", [('"100"', "must be in [0, 100), got 100"),
                                            ('"-0.1"', "must be in [0, 100), got -0.1"),
                                            ('"NaN"', "is not finite"),
                                            ('"ten"', "is not a decimal number")])
def test_fee_percent_out_of_range_or_garbage(tmp_path, value, fragment):
    problems = problems_of(tmp_path, MIXIN + f"[payments]\nmarket_making_fee_percent = {value}\n")
    assert len(problems) == 1 and fragment in problems[0]
    assert problems[0].startswith("payments.market_making_fee_percent")


def test_missing_keystore(tmp_path):
    assert problems_of(tmp_path, PAYMENTS) == [
        "mixin.keystore: is required (path to the bot's keystore JSON, or env:VARIABLE)"]


@pytest.mark.parametrize("key", ["min_base_amount", "max_base_amount", "min_quote_amount", "max_quote_amount"])
def test_float_amount_in_a_pair_is_refused(tmp_path, key):
    problems = problems_of(tmp_path, MIXIN + PAYMENTS + EXCHANGE + pair_toml(extra=f"{key} = 0.5\n"))
    assert problems == [f'pairs[0].{key}: must be a quoted decimal string (e.g. "0.1"), not a float']


def test_garbage_amount_in_a_pair(tmp_path):
    problems = problems_of(tmp_path, MIXIN + PAYMENTS + EXCHANGE + pair_toml(extra='min_base_amount = "lots"\n'))
    assert problems == ["pairs[0].min_base_amount: 'lots' is not a decimal number"]


def test_unknown_section(tmp_path):
    assert problems_of(tmp_path, MINIMAL + "[exchange]\nkey = 1\n") == [
        "exchange: unknown section; did you mean [exchanges]?"]


def test_unknown_top_level_key(tmp_path):
    assert problems_of(tmp_path, "debug = true\n" + MINIMAL) == ["debug: unknown section"]


@pytest.mark.parametrize("section,key", [("mixin", "keystore_path"), ("payments", "fee_percent"),
                                         ("database", "path"), ("log", "format")])
def test_unknown_key_in_a_known_section(tmp_path, section, key):
    text = MINIMAL.replace(f"[{section}]\n", f"[{section}]\n{key} = 1\n") if f"[{section}]" in MINIMAL \
        else MINIMAL + f"[{section}]\n{key} = 1\n"
    assert problems_of(tmp_path, text)[0].startswith(f"{section}.{key}: unknown key")
    assert len(problems_of(tmp_path, text)) == 1


def test_unknown_key_in_a_pair(tmp_path):
    problems = problems_of(tmp_path, MIXIN + PAYMENTS + EXCHANGE + pair_toml(extra='min_order_amount = "1"\n'))
    assert problems == ["pairs[0].min_order_amount: unknown key; did you mean 'min_quote_amount'?"]


def test_section_that_is_not_a_table(tmp_path):
    assert problems_of(tmp_path, 'log = "debug"\n' + MINIMAL) == ["log: must be a table ([log])"]


# ================================ UUIDs and pairs ================================


@pytest.mark.parametrize("field", ["id", "base_asset_id", "quote_asset_id"])
def test_bad_uuid_in_a_pair(tmp_path, field):
    values = {"pair_id": PAIR_ID, "base": BTC, "quote": USDT}
    values[{"id": "pair_id", "base_asset_id": "base", "quote_asset_id": "quote"}[field]] = "btc"
    problems = problems_of(tmp_path, MIXIN + PAYMENTS + EXCHANGE + pair_toml(**values))
    assert problems == [f"pairs[0].{field}: must be a UUID, got 'btc'"]


def test_bad_operator_uuid(tmp_path):
    text = MINIMAL.replace("[mixin]\n", '[mixin]\noperator_user_ids = ["alice"]\n')
    assert problems_of(tmp_path, text) == ["mixin.operator_user_ids[0]: must be a UUID, got 'alice'"]


def test_duplicate_pair_id_even_with_different_case(tmp_path):
    text = MIXIN + PAYMENTS + EXCHANGE + pair_toml() + pair_toml(pair_id=PAIR_ID.upper(), base=XIN, symbol="XIN/USDT")
    assert problems_of(tmp_path, text) == [f"pairs[1].id: {PAIR_ID} is configured twice"]


def test_base_equal_to_quote(tmp_path):
    problems = problems_of(tmp_path, MIXIN + PAYMENTS + EXCHANGE + pair_toml(base=USDT, quote=USDT.upper()))
    assert problems == ["pairs[0]: base and quote asset are the same"]


@pytest.mark.parametrize("side", ["base", "quote"])
def test_max_below_min(tmp_path, side):
    extra = f'min_{side}_amount = "2"\nmax_{side}_amount = "1.99999999"\n'
    problems = problems_of(tmp_path, MIXIN + PAYMENTS + EXCHANGE + pair_toml(extra=extra))
    assert problems == [f"pairs[0].max_{side}_amount: is below min_{side}_amount (1.99999999 < 2)"]


def test_max_equal_to_min_is_allowed(tmp_path):
    extra = 'min_base_amount = "2"\nmax_base_amount = "2"\n'
    pair = load_config(write(tmp_path, MIXIN + PAYMENTS + EXCHANGE + pair_toml(extra=extra))).pairs[0]
    assert (pair.min_base_amount, pair.max_base_amount) == (D(2), D(2))


def test_negative_minimum(tmp_path):
    problems = problems_of(tmp_path, MIXIN + PAYMENTS + EXCHANGE + pair_toml(extra='min_quote_amount = "-1"\n'))
    assert problems == ["pairs[0].min_quote_amount: must be >= 0"]


def test_symbol_without_slash(tmp_path):
    assert problems_of(tmp_path, MIXIN + PAYMENTS + EXCHANGE + pair_toml(symbol="BTCUSDT")) == [
        "pairs[0].symbol: must look like BASE/QUOTE, got 'BTCUSDT'"]


def test_pair_missing_required_keys(tmp_path):
    text = MIXIN + PAYMENTS + f'[[pairs]]\nid = "{PAIR_ID}"\nsymbol = "BTC/USDT"\n'
    assert problems_of(tmp_path, text) == ["pairs[0]: is missing exchange, base_asset_id, quote_asset_id"]


def test_string_enabled_flag_is_refused(tmp_path):
    problems = problems_of(tmp_path, MIXIN + PAYMENTS + EXCHANGE + pair_toml(extra='enabled = "false"\n'))
    assert problems == ["pairs[0].enabled: must be true or false (unquoted), got 'false'"]


def test_string_log_json_flag_is_refused(tmp_path):
    problems = problems_of(tmp_path, MINIMAL + '[log]\njson = "false"\n')
    assert problems == ["log.json: must be true or false (unquoted), got 'false'"]


# ================================ numbers ================================


def test_page_limit_above_500(tmp_path):
    text = MINIMAL.replace("[mixin]\n", "[mixin]\npage_limit = 501\n")
    assert problems_of(tmp_path, text) == ["mixin.page_limit: must be at most 500, got 501"]


@pytest.mark.parametrize("value,problem", [
    ("0", "mixin.page_limit: must be >= 1, got 0"),
    ("100.0", "mixin.page_limit: must be a whole number, got 100.0"),
    ('"100"', "mixin.page_limit: must be a whole number, got '100'"),
    ("true", "mixin.page_limit: must be a whole number, got True"),
])
def test_page_limit_type_and_minimum(tmp_path, value, problem):
    text = MINIMAL.replace("[mixin]\n", f"[mixin]\npage_limit = {value}\n")
    assert problems_of(tmp_path, text) == [problem]


def test_bad_api_base_and_log_level(tmp_path):
    text = MINIMAL.replace("[mixin]\n", '[mixin]\napi_base = "api.mixin.one"\n') + '[log]\nlevel = "loud"\n'
    assert problems_of(tmp_path, text) == [
        "mixin.api_base: must be an http(s) URL, got 'api.mixin.one'",
        "log.level: 'LOUD' is not a log level (TRACE, DEBUG, INFO, SUCCESS, WARNING, ERROR, CRITICAL)"]


# ================================ reporting ================================


def test_several_problems_are_reported_at_once(tmp_path):
    text = ("[mixin]\npage_limit = 600\n"
            "[payments]\ntimeout = 5\n"
            "[surprise]\n"
            + pair_toml(pair_id="nope", base=USDT, extra='max_base_amount = 1.5\n'))
    problems = problems_of(tmp_path, text)
    assert problems == [
        "surprise: unknown section",
        "mixin.keystore: is required (path to the bot's keystore JSON, or env:VARIABLE)",
        "mixin.page_limit: must be at most 500, got 600",
        "payments.market_making_fee_percent: is required",
        "pairs[0].id: must be a UUID, got 'nope'",
        'pairs[0].max_base_amount: must be a quoted decimal string (e.g. "0.1"), not a float',
        "pairs[0]: base and quote asset are the same",
        "exchanges: no [[exchanges]] account is configured, but 1 enabled pair trades on one; add an "
        "[[exchanges]] table for each account the pairs name (`exchange = \"...\"`)",
    ]
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    for problem in problems:
        assert f"\n  - {problem}" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.toml")
    assert info.value.problems == ["cannot read the config file: No such file or directory"]
    assert info.value.source == str(tmp_path / "absent.toml")
    assert info.value.lines() == [f"{tmp_path / 'absent.toml'}: cannot read the config file: No such file or directory"]


def test_invalid_toml(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "[mixin\nkeystore = 1\n"))
    assert len(info.value.problems) == 1
    assert "is not valid TOML" in info.value.problems[0]


def test_parse_config_uses_base_dir(tmp_path):
    config = parse_config({"mixin": {"keystore": "k.json"}, "payments": {"market_making_fee_percent": "1"}},
                          base_dir=tmp_path)
    assert config.mixin.keystore_path == str((tmp_path / "k.json").resolve())
    assert config.database.url == "sqlite:///" + str((tmp_path / "var" / "mmflow.db").resolve())


# ================================ every problem names its key ================================

KEY_FIRST = r"^(\S+ \(\S+\)\S*|\S+): \S"   # "<key path>: <what>" (an exchange's key path names its id)


def with_key(section: str, line: str, text: str = MINIMAL) -> str:
    """``text`` with ``line`` in its [section] (added to the existing table, or a new one)."""
    if f"[{section}]\n" in text:
        return text.replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1)
    return text + f"[{section}]\n{line}\n"


def exchange_toml(account="binance", extra="") -> str:
    return f'[[exchanges]]\nid = "{account}"\nccxt = "binance"\n{extra}'


@pytest.mark.parametrize("section,key", [
    ("mixin", "poll_interval"), ("mixin", "request_timeout"), ("payments", "timeout"),
    ("payments", "fee_retry_delay"), ("treasury", "retry_delay"), ("treasury", "confirm_poll_interval"),
    ("supervision", "period"), ("supervision", "order_period"), ("commands", "poll_interval"),
    ("funding", "poll_interval"),
    ("funding", "withdrawal_timeout"), ("funding", "deposit_timeout"), ("funding", "return_timeout"),
    ("funding", "return_retry_delay"), ("strategy", "tick_interval"), ("strategy", "stop_timeout"),
    ("stream", "slow_interval"), ("stream", "fast_interval"), ("stream", "trades_lookback"),
])
@pytest.mark.parametrize("value,fragment", [
    ("nan", "must be a finite number, got nan"), ("inf", "must be a finite number, got inf"),
    ("-inf", "must be a finite number, got -inf"), ("-1", "must be >= "), ("0", "must be >= "),
    ("true", "must be a number, got True"), ('"5"', "must be a number, got '5'"),
    ("1e300", "must be at most 315360000 seconds (ten years)"),
])
def test_every_interval_and_timeout_is_finite_and_positive(tmp_path, section, key, value, fragment):
    (problem,) = problems_of(tmp_path, with_key(section, f"{key} = {value}"))
    assert problem.startswith(f"{section}.{key}: ") and fragment in problem


@pytest.mark.parametrize("section,key", [("payments", "check_delay"), ("funding", "lookup_grace"),
                                         ("stream", "book_ttl"), ("stream", "not_found_grace"),
                                         ("mixin", "full_page_pause"), ("database", "busy_timeout")])
def test_zero_is_allowed_where_it_means_something_but_not_nan_or_negative(tmp_path, section, key):
    load_config(write(tmp_path, with_key(section, f"{key} = 0")))
    for value in ("nan", "-0.5", "inf"):
        (problem,) = problems_of(tmp_path, with_key(section, f"{key} = {value}"))
        assert problem.startswith(f"{section}.{key}: must be ")


@pytest.mark.parametrize("section,key,value,fragment", [
    ("mixin", "max_attempts", "0", "must be >= 1, got 0"),
    ("mixin", "max_attempts", "true", "must be a whole number, got True"),
    ("mixin", "max_attempts", "99999999999999", "must be at most 1000000000, got 99999999999999"),
    ("funding", "return_max_attempts", "2.5", "must be a whole number, got 2.5"),
    ("database", "batch_max", "nan", "must be a whole number, got nan"),
    ("database", "pool_size", "0", "must be >= 1, got 0"),
    ("stream", "weight_share", "2", "must be at most 1, got 2"),
    ("stream", "weight_share", "nan", "must be a finite number, got nan"),
])
def test_counts_and_shares(tmp_path, section, key, value, fragment):
    assert problems_of(tmp_path, with_key(section, f"{key} = {value}")) == [f"{section}.{key}: {fragment}"]


@pytest.mark.parametrize("section,low,high", [("treasury", "retry_delay", "retry_max_delay"),
                                              ("supervision", "backoff_min", "backoff_max"),
                                              ("mixin", "backoff_base", "backoff_max")])
def test_a_maximum_below_its_minimum(tmp_path, section, low, high):
    text = with_key(section, f"{low} = 2.0\n{high} = 1.0")
    assert problems_of(tmp_path, text) == [f"{section}.{high}: must be >= {section}.{low} (2.0), got 1.0"]


# ================================ amounts ================================

@pytest.mark.parametrize("value,fragment", [
    ('"1e999999999"', "'1e999999999' is too large (at most 1e15)"),
    ('"-1e999999999"', "'-1e999999999' is too large (at most 1e15)"),
    ('"1000000000000001"', "is too large (at most 1e15)"),
    ("1000000000000000000000", "is too large (at most 1e15)"),
    ('"1.234567890123456789"', "has 19 significant digits (at most 18)"),
    ('"0.0000000000000000001"', "has more than 18 decimal places"),
    ('"1e-999999999"', "has more than 18 decimal places"),
    ('"1' + "0" * 5000 + '"', "is too large"),
])
def test_absurd_amounts_are_refused_with_the_key_named(tmp_path, value, fragment):
    (problem,) = problems_of(tmp_path, MIXIN + PAYMENTS + EXCHANGE + pair_toml(extra=f"max_base_amount = {value}\n"))
    assert problem.startswith("pairs[0].max_base_amount: ") and fragment in problem
    assert len(problem) < 200  # a huge value is not echoed whole


@pytest.mark.parametrize("value", ['"1000000000000000"', '"0.000000000000000001"', '"123456789.123456789"',
                                   '"1E+3"', '"10.000"'])
def test_large_and_precise_amounts_within_the_bounds_are_fine(tmp_path, value):
    pair = load_config(write(tmp_path, MIXIN + PAYMENTS + EXCHANGE + pair_toml(
        extra=f"max_base_amount = {value}\n"))).pairs[0]
    assert pair.max_base_amount == D(value.strip('"'))


def test_absurd_fee_percent(tmp_path):
    text = MIXIN + '[payments]\nmarket_making_fee_percent = "1e999999999"\n'
    assert problems_of(tmp_path, text) == ["payments.market_making_fee_percent: '1e999999999' is too large (at most 1e15)"]


@pytest.mark.parametrize("key", ["max_base_amount", "max_quote_amount"])
def test_a_maximum_of_zero_is_refused(tmp_path, key):
    assert problems_of(tmp_path, MIXIN + PAYMENTS + EXCHANGE + pair_toml(extra=f'{key} = "0"\n')) == [
        f"pairs[0].{key}: must be > 0 (or left out for no maximum)"]


def test_absurd_values_in_the_pair_strategy_are_refused_not_crashing(tmp_path):
    extra = ('[pairs.strategy]\nbid_spread = "0.001"\nask_spread = "0.001"\norder_amount = "1e999999999"\n'
             'order_level_amount = "1e999999"\norder_levels = 2\n')
    problems = problems_of(tmp_path, MIXIN + PAYMENTS + EXCHANGE + pair_toml(extra=extra))
    assert problems == ["pairs[0].strategy.order_amount: '1e999999999' is too large (at most 1e15)",
                        "pairs[0].strategy.order_level_amount: '1e999999' is too large (at most 1e15)"]


def test_max_duration(tmp_path):
    for value, problem in (("0", "must be >= 1, got 0"), ("nan", "must be a finite number, got nan"),
                           ("true", "must be a number, got True")):
        assert problems_of(tmp_path, MIXIN + PAYMENTS + EXCHANGE + pair_toml(extra=f"max_duration = {value}\n")) == [
            f"pairs[0].max_duration: {problem}"]
    pair = load_config(write(tmp_path, MIXIN + PAYMENTS + EXCHANGE + pair_toml(extra="max_duration = 86400\n"))).pairs[0]
    assert pair.max_duration == 86400


# ================================ pairs and their exchange accounts ================================

def test_a_pair_must_name_a_configured_account(tmp_path):
    text = (MIXIN + PAYMENTS + exchange_toml("binance-main") + exchange_toml("okx-1")
            + pair_toml())  # exchange = "binance"
    assert problems_of(tmp_path, text) == [
        "pairs[0].exchange: 'binance' is not a configured [[exchanges]] id (configured: binance-main, okx-1); "
        "an order paid on it could never reach an exchange"]


def test_pairs_without_any_exchange_account_are_one_problem(tmp_path):
    text = MIXIN + PAYMENTS + pair_toml() + pair_toml(pair_id=PAIR_ID_2, base=XIN, symbol="XIN/USDT")
    assert problems_of(tmp_path, text) == [
        "exchanges: no [[exchanges]] account is configured, but 2 enabled pairs trade on one; add an [[exchanges]] "
        "table for each account the pairs name (`exchange = \"...\"`)"]


def test_only_disabled_pairs_need_no_exchange_account(tmp_path):
    config = load_config(write(tmp_path, MIXIN + PAYMENTS + pair_toml(extra="enabled = false\n")))
    assert config.exchanges == () and config.pairs[0].enabled is False


def test_a_pair_naming_a_broken_account_is_not_a_second_problem(tmp_path):
    # the account's own problem is reported; the pair that names it is not reported again
    text = MIXIN + PAYMENTS + '[[exchanges]]\nid = "binance"\nccxt = "binanse"\n' + pair_toml()
    (problem,) = problems_of(tmp_path, text)
    assert problem.startswith("exchanges[0] (binance).ccxt: 'binanse' is not an exchange of the installed ccxt")


def test_a_disabled_account_is_configured_but_not_in_service(tmp_path):
    (tmp_path / "k").write_text("key\n")
    (tmp_path / "s").write_text("SECRET-xyz\n")
    text = MIXIN + PAYMENTS + exchange_toml(extra='enabled = false\napi_key_file = "k"\nsecret_file = "s"\n') \
        + exchange_toml("okx-1") + pair_toml()
    config = load_config(write(tmp_path, text))
    assert [e.account_id for e in config.exchanges] == ["okx-1"]          # a gateway each
    assert [e.account_id for e in config.disabled_exchanges] == ["binance"]
    assert config.disabled_exchanges[0].enabled is False and config.disabled_exchanges[0].secret == "SECRET-xyz"
    assert config.exchange("binance") is None  # orders on its pairs wait at payment_complete
    assert "SECRET" not in repr(config.disabled_exchanges[0]) and "enabled=False" in repr(config.disabled_exchanges[0])
    # ... and it is validated like any other account: its secrets must be there
    (tmp_path / "s").unlink()
    (problem,) = problems_of(tmp_path, text)
    assert problem.startswith("exchanges[0] (binance).secret_file: cannot read ")


def test_price_source_exchange_names_the_pair(tmp_path):
    extra = ('[pairs.strategy]\nbid_spread = "0.001"\nask_spread = "0.001"\norder_amount = "1"\n'
             'price_source_exchange = "nowhere"\n')
    assert problems_of(tmp_path, MIXIN + PAYMENTS + EXCHANGE + pair_toml(extra=extra)) == [
        "pairs[0].strategy.price_source_exchange: 'nowhere' is not a configured [[exchanges]] id (configured: binance)"]


def test_unknown_ccxt_class(tmp_path):
    (problem,) = problems_of(tmp_path, MIXIN + PAYMENTS + '[[exchanges]]\nid = "binance"\nccxt = "Binance2"\n'
                             + pair_toml())
    assert problem.startswith("exchanges[0] (binance).ccxt: 'Binance2' is not an exchange of the installed ccxt")
    assert "did you mean binance" in problem


# ================================ URLs, keystore reference, database URL ================================

@pytest.mark.parametrize("url,fragment", [
    ("http://", "must name a host, got 'http://'"), ("https://:443/x", "must name a host"),
    ("http://127.0.0.1:99999", "is not a valid URL (Port out of range 0-65535)"),
    ("http://api.mixin .one", "without spaces"), ("ftp://api.mixin.one", "must be an http(s) URL"),
])
def test_mixin_api_base_must_be_a_usable_url(tmp_path, url, fragment):
    (problem,) = problems_of(tmp_path, MINIMAL.replace("[mixin]\n", f'[mixin]\napi_base = "{url}"\n'))
    assert problem.startswith("mixin.api_base: ") and fragment in problem


def test_exchange_and_hufi_urls_must_be_usable(tmp_path):
    text = (MIXIN + PAYMENTS + exchange_toml(extra='[exchanges.urls]\napi = "http://"\n') + pair_toml()
            + '[hufi]\nenabled = false\nlauncher_url = "https://"\n')
    assert problems_of(tmp_path, text) == ["exchanges[0] (binance).urls.api: must name a host, got 'http://'",
                                           "hufi.launcher_url: must name a host, got 'https://'"]


@pytest.mark.parametrize("value,problem", [
    ("[]", "mixin.keystore: must be a file path or env:VARIABLE, got []"),
    ('""', "mixin.keystore: is required (path to the bot's keystore JSON, or env:VARIABLE)"),
    ('"env:"', "mixin.keystore: env: must be followed by an environment variable name (env:MMFLOW_KEYSTORE)"),
    ('"env:NOT A NAME"', "mixin.keystore: env: must be followed by an environment variable name "
                         "(env:MMFLOW_KEYSTORE)"),
])
def test_bad_keystore_reference(tmp_path, value, problem):
    assert problems_of(tmp_path, PAYMENTS + f"[mixin]\nkeystore = {value}\n") == [problem]


@pytest.mark.parametrize("url,fragment", [
    ("sqlite:///", "names no database file"),
    ("postgresql://mm@db", "names no database (postgresql://USER@HOST/DATABASE)"),
    ("postgresql://mm@db:70000/x", "is not a valid URL (Port out of range 0-65535)"),
    ("mysql://root:hunter2@db/x", "must be sqlite:///PATH or postgresql://..., got 'mysql://root:***@db/x'"),
])
def test_bad_database_url_is_named_with_its_password_masked(tmp_path, url, fragment):
    (problem,) = problems_of(tmp_path, f'[database]\nurl = "{url}"\n' + MINIMAL)
    assert problem.startswith("database.url: ") and fragment in problem and "hunter2" not in problem


def test_in_memory_sqlite_is_refused_for_the_service_only(tmp_path):
    path = write(tmp_path, '[database]\nurl = "sqlite:///:memory:"\n' + MINIMAL)
    assert load_config(path).database.url == "sqlite:///:memory:"  # library use, tests
    with pytest.raises(ConfigError) as info:
        load_config(path, for_service=True)
    assert info.value.problems == [
        "database.url: sqlite:///:memory: is not allowed for serve: the database would vanish with the process "
        "(payments, refunds and orders with it); give a file"]


# ================================ HuFi key files at load ================================

def hufi_toml(evm="hufi-evm.key", ro_key="ro.key", ro_secret="ro.secret", extra="") -> str:
    return (f'[hufi]\nevm_private_key_file = "{evm}"\n{extra}'
            f'[hufi.exchange_api_keys.binance]\napi_key_file = "{ro_key}"\nsecret_file = "{ro_secret}"\n')


def test_hufi_key_files_must_exist_at_load(tmp_path, monkeypatch):
    for name in ("hufi-evm.key", "ro.key"):
        (tmp_path / name).write_text("SECRET-value-" + name + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, MINIMAL + hufi_toml()))
    assert info.value.problems == [
        f"hufi.exchange_api_keys.binance.secret_file: cannot read file:{tmp_path / 'ro.secret'}: "
        "No such file or directory"]
    (tmp_path / "ro.secret").write_text("\n")
    (problem,) = problems_of(tmp_path, MINIMAL + hufi_toml())
    assert problem == f"hufi.exchange_api_keys.binance.secret_file: file:{tmp_path / 'ro.secret'} is empty"
    (tmp_path / "ro.secret").write_text("SECRET-ro\n")
    config = load_config(write(tmp_path, MINIMAL + hufi_toml()))
    assert config.hufi.enabled and "SECRET" not in repr(config.hufi)
    # environment variables are checked the same way, by name
    monkeypatch.delenv("MMF_TEST_EVM", raising=False)
    text = MINIMAL + hufi_toml().replace('evm_private_key_file = "hufi-evm.key"', 'evm_private_key_env = "MMF_TEST_EVM"')
    assert problems_of(tmp_path, text) == ["hufi.evm_private_key_env: env:MMF_TEST_EVM is not set"]


def test_hufi_key_files_are_not_looked_at_without_secrets_or_when_disabled(tmp_path):
    text = MINIMAL + hufi_toml(evm="gone.key", ro_key="gone", ro_secret="gone")
    assert load_config(write(tmp_path, text), read_secrets=False).hufi.enabled
    disabled = MINIMAL + hufi_toml(evm="gone.key", ro_key="gone", ro_secret="gone", extra="enabled = false\n")
    assert not load_config(write(tmp_path, disabled)).hufi.enabled


# ================================ the file itself ================================

def test_a_binary_file_a_directory_and_nul_bytes(tmp_path):
    binary = tmp_path / "binary.toml"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(ConfigError) as info:
        load_config(binary)
    assert info.value.lines() == [f"{binary}: is not a text (UTF-8) file: undecodable byte at offset 128; "
                                  "is it the right file?"]
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert info.value.problems == ["cannot read the config file: Is a directory"]
    nul = tmp_path / "nul.toml"
    nul.write_bytes(b"\x00")
    with pytest.raises(ConfigError) as info:
        load_config(nul)
    assert info.value.problems[0].startswith("is not valid TOML: ")


def test_toml_error_names_the_line(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, MINIMAL + "\n[oops\n"))
    (line,) = info.value.lines()
    assert line.startswith(str(tmp_path / "mmflow.toml") + ": is not valid TOML: ")
    assert f"at line {MINIMAL.count(chr(10)) + 2}," in line


def test_lines_are_one_line_each_even_with_newlines_in_values(tmp_path):
    text = MINIMAL.replace("[mixin]\n", '[mixin]\napi_base = "http://a\\nb"\n')
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert all("\n" not in line for line in info.value.lines())


def test_every_problem_starts_with_its_key(tmp_path, monkeypatch):
    monkeypatch.delenv("MMF_NOPE", raising=False)
    text = ('bogus = 1\n[database]\nurl = "sqlite:///"\nbusy_timeout = nan\n'
            '[mixin]\nkeystore = "env:"\napi_base = "http://"\npage_limit = 0\noperator_user_ids = ["x"]\nzap = 1\n'
            '[payments]\nmarket_making_fee_percent = 0.1\ntimeout = -1\n[log]\nlevel = 3\njson = "no"\n'
            '[[exchanges]]\nid = "binance"\nccxt = "binanse"\napi_key_env = "MMF_NOPE"\nsecret = "x"\n'
            '[hufi]\nevm_private_key = "0xabc"\nchain_id = true\n'
            + pair_toml(pair_id="nope", extra='max_base_amount = "1e999999999"\nmax_duration = nan\n'))
    problems = problems_of(tmp_path, text)
    assert len(problems) >= 18
    for problem in problems:
        assert re.match(KEY_FIRST, problem), problem
    assert "0xabc" not in "\n".join(problems)


def test_a_secret_pasted_where_a_variable_name_goes_is_not_echoed(tmp_path):
    secret = "sk-live-abcdef0123456789"
    text = MIXIN + PAYMENTS + exchange_toml(extra=f'api_key_env = "{secret}"\nsecret_env = "{secret}"\n') + pair_toml()
    problems = problems_of(tmp_path, text)
    assert problems == [f"exchanges[0] (binance).{k}_env: must be the name of an environment variable (letters, "
                        "digits, _)" for k in ("api_key", "secret")]
    hufi = MINIMAL + f'[hufi]\nevm_private_key_env = "{secret}"\n'
    assert problems_of(tmp_path, hufi) == ["hufi.evm_private_key_env: must be an environment variable name "
                                           "(letters, digits, _)"]


# ================================ nothing but ConfigError, whatever the values ================================

_ODD_VALUES = ([], {}, "", "x", "http://", True, 0, -1, 10 ** 30, float("nan"), float("-inf"), 1e308,
               "1e999999999", "-0", [1, "a"], {"a": {"b": []}}, "\x00", "env:", "sqlite:///")


def test_odd_values_anywhere_are_problems_never_crashes(tmp_path):
    """Every known key (and the tables themselves) given every odd value: parse_config raises ConfigError
    (or accepts) — never another exception."""
    from domain.config import section_models
    from domain.config_schema import file_keys
    from domain.exchange_config import ExchangeAccountConfig
    from domain.hufi_config import HufiConfig

    _KNOWN = {name: file_keys(model) for name, model in section_models().items()}
    _PAIR_KEYS, EXCHANGE_KEYS, HUFI_KEYS = (file_keys(m) for m in (PairRules, ExchangeAccountConfig, HufiConfig))

    def base() -> dict:
        return {"mixin": {"keystore": "k.json"}, "payments": {"market_making_fee_percent": "0.1"},
                "exchanges": [{"id": "binance", "ccxt": "binance"}],
                "hufi": {"enabled": False},
                "pairs": [{"id": PAIR_ID, "symbol": "BTC/USDT", "exchange": "binance", "base_asset_id": BTC,
                           "quote_asset_id": USDT,
                           "strategy": {"bid_spread": "0.001", "ask_spread": "0.001", "order_amount": "1"}}]}

    targets = [(lambda raw, k=k, s=s: raw.setdefault(s, {}), k) for s, keys in _KNOWN.items() for k in keys]
    targets += [(lambda raw: raw["pairs"][0], k) for k in _PAIR_KEYS]
    targets += [(lambda raw: raw["exchanges"][0], k) for k in EXCHANGE_KEYS]
    targets += [(lambda raw: raw["hufi"], k) for k in HUFI_KEYS]
    targets += [(lambda raw: raw["pairs"][0]["strategy"], k) for k in ("order_amount", "order_levels",
                                                                        "order_refresh_time", "price_source")]
    targets += [(lambda raw: raw, k) for k in (*_KNOWN, "pairs", "exchanges", "hufi")]
    checked = 0
    for table_of, key in targets:
        for value in _ODD_VALUES:
            raw = base()
            table_of(raw)[key] = value
            try:
                parse_config(raw, base_dir=tmp_path, for_service=True)
            except ConfigError as exc:
                assert all(isinstance(p, str) and "\n" not in p for p in exc.problems), exc.problems
            checked += 1
    assert checked > 2000


# ================================ the simulated world's config ================================

def test_world_config_names_a_switched_off_placeholder_account(tmp_path):
    """sim.world's config is valid as it stands: its pairs' account "binance" is configured (keys in files
    next to the keystore) but switched off — no gateway, so paid orders wait at payment_complete."""
    from types import SimpleNamespace

    from integrations.mixin.keystore import generate_keystore
    from sim.world import PLACEHOLDER_EXCHANGE_URL, World, dump_toml

    world = World(fake=SimpleNamespace(url="http://127.0.0.1:1"), keystore_dict=generate_keystore(), bot_id="bot")
    raw = world.config_dict(tmp_path / "mm.db", tmp_path / "keystore.json")
    (account,) = raw["exchanges"]
    assert account["enabled"] is False and account["urls"] == {"api": PLACEHOLDER_EXCHANGE_URL}
    assert (tmp_path / "exchange.key").read_text().strip() and (tmp_path / "exchange.secret").read_text().strip()
    config = parse_config(raw)
    assert config.exchanges == () and [e.account_id for e in config.disabled_exchanges] == ["binance"]
    assert {p.exchange for p in config.pairs} == {"binance"} and config.exchange("binance") is None
    path = write(tmp_path, dump_toml(raw))
    assert load_config(path, for_service=True).disabled_exchanges[0].api_key == "placeholder-exchange-key"
    # a caller's own accounts replace it
    mine = [{"id": "binance", "ccxt": "binance"}]
    assert world.config_dict(tmp_path / "mm.db", tmp_path / "keystore.json", exchanges=mine)["exchanges"] == mine
