"""TOML configuration validation (domain/config.py), through load_config on real files."""
from __future__ import annotations

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


def pair_toml(pair_id=PAIR_ID, base=BTC, quote=USDT, symbol="BTC/USDT", extra="") -> str:
    return (f'[[pairs]]\nid = "{pair_id}"\nsymbol = "{symbol}"\nexchange = "binance"\n'
            f'base_asset_id = "{base}"\nquote_asset_id = "{quote}"\n{extra}')


MINIMAL = MIXIN + PAYMENTS + pair_toml()


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
        '[database]\nurl = "postgresql://mm@db/mmflow"\nbusy_timeout = 2\nbatch_max = 100\n'
        '[mixin]\nkeystore = "env:MMFLOW_KEYSTORE"\napi_base = "https://example.test/"\npage_limit = 100\n'
        f'operator_user_ids = ["{OPERATOR.upper()}"]\n'
        '[payments]\nmarket_making_fee_percent = "0.25"\ntimeout = 300\n'
        '[log]\nlevel = "debug"\njson = true\n'
        + pair_toml(pair_id=PAIR_ID.upper(), base=XIN, symbol="XIN/USDT", extra=(
            'enabled = false\nmin_base_amount = "0.5"\nmax_base_amount = "100"\n'
            'min_quote_amount = 10\nquote_symbol = "USDT-ERC20"\n')))
    config = load_config(write(tmp_path, text))
    assert config.database.url == "postgresql://mm@db/mmflow"
    assert (config.database.busy_timeout, config.database.batch_max) == (2, 100)
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
        f"database.url must be sqlite:///PATH or postgresql://..., got {url!r}"]


# ================================ required values and types ================================


def test_missing_market_making_fee_percent_is_named(tmp_path):
    problems = problems_of(tmp_path, MIXIN + "[payments]\ntimeout = 10\n" + pair_toml())
    assert problems == ["payments.market_making_fee_percent is required"]


def test_missing_payments_section_is_named(tmp_path):
    assert problems_of(tmp_path, MIXIN + pair_toml()) == ["payments.market_making_fee_percent is required"]


def test_float_fee_percent_is_refused(tmp_path):
    problems = problems_of(tmp_path, MIXIN + "[payments]\nmarket_making_fee_percent = 0.1\n")
    assert problems == ['payments.market_making_fee_percent must be a quoted decimal string (e.g. "0.1"), '
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
        "mixin.keystore is required (path to the bot's keystore JSON, or env:VARIABLE)"]


@pytest.mark.parametrize("key", ["min_base_amount", "max_base_amount", "min_quote_amount", "max_quote_amount"])
def test_float_amount_in_a_pair_is_refused(tmp_path, key):
    problems = problems_of(tmp_path, MIXIN + PAYMENTS + pair_toml(extra=f"{key} = 0.5\n"))
    assert problems == [f'pairs[0].{key} must be a quoted decimal string (e.g. "0.1"), not a float']


def test_garbage_amount_in_a_pair(tmp_path):
    problems = problems_of(tmp_path, MIXIN + PAYMENTS + pair_toml(extra='min_base_amount = "lots"\n'))
    assert problems == ["pairs[0].min_base_amount: 'lots' is not a decimal number"]


def test_unknown_section(tmp_path):
    assert problems_of(tmp_path, MINIMAL + "[exchange]\nkey = 1\n") == ["unknown section [exchange]"]


def test_unknown_top_level_key(tmp_path):
    assert problems_of(tmp_path, "debug = true\n" + MINIMAL) == ["unknown section [debug]"]


@pytest.mark.parametrize("section,key", [("mixin", "keystore_path"), ("payments", "fee_percent"),
                                         ("database", "path"), ("log", "format")])
def test_unknown_key_in_a_known_section(tmp_path, section, key):
    text = MINIMAL.replace(f"[{section}]\n", f"[{section}]\n{key} = 1\n") if f"[{section}]" in MINIMAL \
        else MINIMAL + f"[{section}]\n{key} = 1\n"
    assert problems_of(tmp_path, text) == [f"[{section}] has an unknown key {key!r}"]


def test_unknown_key_in_a_pair(tmp_path):
    problems = problems_of(tmp_path, MIXIN + PAYMENTS + pair_toml(extra='min_order_amount = "1"\n'))
    assert problems == ["pairs[0] has an unknown key 'min_order_amount'"]


def test_section_that_is_not_a_table(tmp_path):
    assert problems_of(tmp_path, 'log = "debug"\n' + MINIMAL) == ["[log] must be a table"]


# ================================ UUIDs and pairs ================================


@pytest.mark.parametrize("field", ["id", "base_asset_id", "quote_asset_id"])
def test_bad_uuid_in_a_pair(tmp_path, field):
    values = {"pair_id": PAIR_ID, "base": BTC, "quote": USDT}
    values[{"id": "pair_id", "base_asset_id": "base", "quote_asset_id": "quote"}[field]] = "btc"
    problems = problems_of(tmp_path, MIXIN + PAYMENTS + pair_toml(**values))
    assert problems == [f"pairs[0].{field} must be a UUID, got 'btc'"]


def test_bad_operator_uuid(tmp_path):
    text = MINIMAL.replace("[mixin]\n", '[mixin]\noperator_user_ids = ["alice"]\n')
    assert problems_of(tmp_path, text) == ["mixin.operator_user_ids[] must be a UUID, got 'alice'"]


def test_duplicate_pair_id_even_with_different_case(tmp_path):
    text = MIXIN + PAYMENTS + pair_toml() + pair_toml(pair_id=PAIR_ID.upper(), base=XIN, symbol="XIN/USDT")
    assert problems_of(tmp_path, text) == [f"pairs[1].id {PAIR_ID} is configured twice"]


def test_base_equal_to_quote(tmp_path):
    problems = problems_of(tmp_path, MIXIN + PAYMENTS + pair_toml(base=USDT, quote=USDT.upper()))
    assert problems == ["pairs[0]: base and quote asset are the same"]


@pytest.mark.parametrize("side", ["base", "quote"])
def test_max_below_min(tmp_path, side):
    extra = f'min_{side}_amount = "2"\nmax_{side}_amount = "1.99999999"\n'
    problems = problems_of(tmp_path, MIXIN + PAYMENTS + pair_toml(extra=extra))
    assert problems == [f"pairs[0].max_{side}_amount is below min_{side}_amount"]


def test_max_equal_to_min_is_allowed(tmp_path):
    extra = 'min_base_amount = "2"\nmax_base_amount = "2"\n'
    pair = load_config(write(tmp_path, MIXIN + PAYMENTS + pair_toml(extra=extra))).pairs[0]
    assert (pair.min_base_amount, pair.max_base_amount) == (D(2), D(2))


def test_negative_minimum(tmp_path):
    problems = problems_of(tmp_path, MIXIN + PAYMENTS + pair_toml(extra='min_quote_amount = "-1"\n'))
    assert problems == ["pairs[0].min_quote_amount must be >= 0"]


def test_symbol_without_slash(tmp_path):
    assert problems_of(tmp_path, MIXIN + PAYMENTS + pair_toml(symbol="BTCUSDT")) == [
        "pairs[0].symbol must look like BASE/QUOTE, got 'BTCUSDT'"]


def test_pair_missing_required_keys(tmp_path):
    text = MIXIN + PAYMENTS + f'[[pairs]]\nid = "{PAIR_ID}"\nsymbol = "BTC/USDT"\n'
    assert problems_of(tmp_path, text) == ["pairs[0] is missing exchange, base_asset_id, quote_asset_id"]


def test_string_enabled_flag_is_refused(tmp_path):
    problems = problems_of(tmp_path, MIXIN + PAYMENTS + pair_toml(extra='enabled = "false"\n'))
    assert any("enabled" in p for p in problems)


def test_string_log_json_flag_is_refused(tmp_path):
    problems = problems_of(tmp_path, MINIMAL + '[log]\njson = "false"\n')
    assert any("log.json" in p for p in problems)


# ================================ numbers ================================


def test_page_limit_above_500(tmp_path):
    text = MINIMAL.replace("[mixin]\n", "[mixin]\npage_limit = 501\n")
    assert problems_of(tmp_path, text) == ["mixin.page_limit must be <= 500 (Mixin's maximum)"]


@pytest.mark.parametrize("value,problem", [
    ("0", "mixin.page_limit must be >= 1, got 0"),
    ("100.0", "mixin.page_limit must be a whole number, got 100.0"),
    ('"100"', "mixin.page_limit must be a number, got '100'"),
    ("true", "mixin.page_limit must be a number, got True"),
])
def test_page_limit_type_and_minimum(tmp_path, value, problem):
    text = MINIMAL.replace("[mixin]\n", f"[mixin]\npage_limit = {value}\n")
    assert problems_of(tmp_path, text) == [problem]


def test_bad_api_base_and_log_level(tmp_path):
    text = MINIMAL.replace("[mixin]\n", '[mixin]\napi_base = "api.mixin.one"\n') + '[log]\nlevel = "loud"\n'
    assert problems_of(tmp_path, text) == ["mixin.api_base must be an http(s) URL, got 'api.mixin.one'",
                                           "log.level 'LOUD' is not a log level"]


# ================================ reporting ================================


def test_several_problems_are_reported_at_once(tmp_path):
    text = ("[mixin]\npage_limit = 600\n"
            "[payments]\ntimeout = 5\n"
            "[surprise]\n"
            + pair_toml(pair_id="nope", base=USDT, extra='max_base_amount = 1.5\n'))
    problems = problems_of(tmp_path, text)
    assert problems == [
        "unknown section [surprise]",
        "mixin.keystore is required (path to the bot's keystore JSON, or env:VARIABLE)",
        "mixin.page_limit must be <= 500 (Mixin's maximum)",
        "payments.market_making_fee_percent is required",
        "pairs[0].id must be a UUID, got 'nope'",
        'pairs[0].max_base_amount must be a quoted decimal string (e.g. "0.1"), not a float',
        "pairs[0]: base and quote asset are the same",
    ]
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    for problem in problems:
        assert f"\n  - {problem}" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.toml")
    assert info.value.problems == [f"cannot read config file {tmp_path / 'absent.toml'}: No such file or directory"]


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
