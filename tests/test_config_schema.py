"""The one place where pydantic's errors become ConfigError lines (domain/config_schema.py): key paths of
nested tables and arrays of tables, labels, unknown keys, our wording, every problem at once — on small
models made for the test, and on the real Config through parse_config."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError

from domain.config import Config, ConfigError, parse_config, section_models
from domain.config_schema import (
    REPORTED,
    Abort,
    Issue,
    Load,
    Section,
    file_keys,
    key_path,
    problem,
    problems_of,
)
from domain.config_values import Flag, Interval, count

PAIR = "0776b00f-95c0-46f9-85e4-7b8e7ca51e94"
BTC = "c6d0c728-2624-429b-8e0d-d9d19b6592fa"
USDT = "4d8c508b-91c5-375b-92b0-ee702ed2dac5"
LOAD = Load(Path("/etc/mmflow"))


def _even(value: Any) -> int:
    if not isinstance(value, int) or value % 2:
        raise problem(f"must be even, got {value!r}")
    return value


class Leg(Section):
    size: Annotated[int, PlainValidator(_even)]
    low: Interval = 1.0
    high: Interval = 10.0

    @classmethod
    def checks(cls, values, data):
        if {"low", "high"} <= values.keys() and values["high"] < values["low"]:
            return [Issue(("high",), f"must be >= {{key}} ({values['low']}), got {values['high']}", refers_to="low")]
        return []


class Foreign(BaseModel):
    """A table model not built on Section (a library's own settings): pydantic's errors, our wording."""
    model_config = ConfigDict(extra="forbid")
    port: int


class Book(Section):
    name: str = Field("book", validation_alias="title")
    legs: tuple[Leg, ...] = ()
    spare: Leg | None = None
    foreign: Foreign | None = None
    on: Flag = True
    secret_file: str = ""
    internal = frozenset({"secret_file"})
    file_only = frozenset({"token_file"})

    @classmethod
    def prepare(cls, data, load):
        if data.pop("token_file", None) == "gone":
            return [Issue(("token_file",), "cannot read it")]
        if data.get("title") == "stop":
            raise Abort([Issue((), "stopped here")])
        return []


def lines(model: type[BaseModel], raw: dict, label=None) -> list[str]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(raw, context=LOAD)
    return problems_of(info.value, label)


def test_nested_tables_and_arrays_of_tables_are_named_like_the_file():
    raw = {"legs": [{"size": 2}, {"size": 3, "low": float("nan")}, "x"], "spare": {"size": 2, "low": 0}}
    assert lines(Book, raw) == [
        "legs[1].size: must be even, got 3",
        "legs[1].low: must be a finite number, got nan",
        "legs[2]: must be a table",
        "spare.low: must be >= 0.01, got 0",
    ]


def test_a_check_between_fields_names_the_other_key_with_its_full_path():
    assert lines(Book, {"legs": [{"size": 2}, {"size": 4, "low": 5.0, "high": 2.0}]}) == [
        "legs[1].high: must be >= legs[1].low (5.0), got 2.0"]


def test_checks_between_fields_run_on_the_fields_that_passed_even_when_others_failed():
    assert lines(Book, {"legs": [{"size": 1, "low": 5.0, "high": 2.0}]}) == [
        "legs[0].size: must be even, got 1", "legs[0].high: must be >= legs[0].low (5.0), got 2.0"]
    # ... but not on a value already refused (no second problem about it)
    assert lines(Book, {"legs": [{"size": 2, "low": -1, "high": 2.0}]}) == ["legs[0].low: must be >= 0.01, got -1"]


def test_unknown_keys_come_first_with_a_suggestion_and_internal_fields_are_unknown_to_a_file():
    assert lines(Book, {"on": "yes", "titel": "x", "secret_file": "/x", "legs": [{"size": 2, "hihg": 3}]}) == [
        "titel: unknown key; did you mean 'title'?",
        "secret_file: unknown key",
        "legs[0].hihg: unknown key; did you mean 'high'?",
        "on: must be true or false (unquoted), got 'yes'",
    ]
    assert file_keys(Book) == {"title", "legs", "spare", "foreign", "on", "token_file"}


def test_prepare_issues_and_abort():
    assert lines(Book, {"token_file": "gone", "on": 1}) == [
        "token_file: cannot read it", "on: must be true or false (unquoted), got 1"]
    assert lines(Book, {"title": "stop", "bogus": 1, "on": 1}) == ["bogus: unknown key", "stopped here"]


def test_a_model_not_built_on_section_still_reads_like_ours():
    assert lines(Book, {"foreign": {"prot": 1}}) == ["foreign.port: is required", "foreign.prot: unknown key"]
    assert lines(Book, {"foreign": {"port": "many"}})[0].startswith("foreign.port: input should be a valid integer")


def test_a_required_key_left_out_and_one_prepare_already_reported():
    class Needs(Section):
        a: Annotated[int, count(1)]
        b: int

        @classmethod
        def prepare(cls, data, load):
            data["b"] = REPORTED
            return [Issue(("b_file",), "b_file or b_env is required")]

        @classmethod
        def missing_text(cls, name):
            return f"is required (give {name} = 1)"

    assert lines(Needs, {}) == ["b_file: b_file or b_env is required", "a: is required (give a = 1)"]


def test_python_construction_names_fields_by_attribute_and_runs_the_same_checks():
    with pytest.raises(ValidationError) as info:
        Book(name=3, legs=[Leg(size=2)], on="no")
    assert problems_of(info.value) == ["name: input should be a valid string",
                                       "on: must be true or false (unquoted), got 'no'"]
    assert Book(name="x").name == "x" and Book.model_validate({"title": "y"}, context=LOAD).name == "y"


def test_key_paths_and_labels():
    label = {("exchanges", 0): "binance"}.get
    assert key_path(("exchanges", 0, "urls", "api"), label) == "exchanges[0] (binance).urls.api"
    assert key_path(("exchanges", 1, "weights", "'GET /x'"), label) == "exchanges[1].weights.'GET /x'"
    assert key_path(()) == ""


# --------------------------------------------------------------- the real Config

def minimal(**extra) -> dict:
    raw = {"mixin": {"keystore": "k.json"}, "payments": {"market_making_fee_percent": "0.1"},
           "exchanges": [{"id": "binance", "ccxt": "binance"}, {"id": "okx-1", "ccxt": "okx"}],
           "pairs": [{"id": PAIR, "symbol": "BTC/USDT", "exchange": "binance", "base_asset_id": BTC,
                      "quote_asset_id": USDT, "strategy": {"bid_spread": "0.001", "ask_spread": "0.001",
                                                           "order_amount": "1"}}]}
    raw.update(extra)
    return raw


def config_problems(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, base_dir=Path("/etc/mmflow"))
    return info.value.problems


def test_config_key_paths_in_arrays_tables_and_labels():
    raw = minimal()
    raw["exchanges"][1]["weights"] = {"depth": 5}
    raw["pairs"][0]["strategy"].update(order_levels=0, bid_sprad="0.1")
    raw["pairs"].append({"id": PAIR.upper(), "symbol": "XIN/USDT", "exchange": "okx-1", "base_asset_id": USDT,
                         "quote_asset_id": BTC, "max_quote_amount": 1.5})
    assert config_problems(raw) == [
        "exchanges[1] (okx-1).weights.'depth': the key must look like \"GET /api/v3/depth\"",
        "pairs[0].strategy.bid_sprad: unknown key; did you mean 'bid_spread'?",
        "pairs[0].strategy.order_levels: 0 must be between 1 and 50",
        'pairs[1].max_quote_amount: must be a quoted decimal string (e.g. "0.1"), not a float',
        f"pairs[1].id: {PAIR} is configured twice",
    ]


def test_config_file_keys_are_not_attribute_names():
    raw = minimal()
    raw["exchanges"][0]["account_id"] = "x"
    raw["mixin"]["keystore_path"] = "/k"
    raw["risk"] = {"max_drawdown": "0.1"}
    assert config_problems(raw) == [
        "mixin.keystore_path: unknown key; did you mean 'keystore'?",
        "exchanges[0] (binance).account_id: unknown key",
        "risk.max_drawdown: unknown key; did you mean 'max_drawdown_pct'?",
    ]
    config = parse_config(minimal(risk={"max_drawdown_pct": "0.1"}), base_dir=Path("/etc/mmflow"))
    assert str(config.risk.max_drawdown) == "0.1" and config.mixin.keystore_path == "/etc/mmflow/k.json"
    assert [a.account_id for a in config.exchanges] == ["binance", "okx-1"]
    assert config.pair_strategy(PAIR) == {"bid_spread": "0.001", "ask_spread": "0.001", "order_amount": "1"}


def test_a_new_section_is_one_field_on_config():
    """How [api] / [kpi] plug in: a Section, one field on Config (here on a subclass, for the test)."""
    class KpiSettings(Section):
        sample_interval: Interval = 60.0
        enabled: Flag = True

    class WithKpi(Config):
        kpi: KpiSettings = Field(default_factory=KpiSettings)

    good = WithKpi.model_validate(minimal(kpi={"sample_interval": 5}), context=LOAD)
    assert good.kpi.sample_interval == 5 and good.exchanges[0].account_id == "binance"
    assert WithKpi.model_validate(minimal(), context=LOAD).kpi == KpiSettings()
    with pytest.raises(ValidationError) as info:
        WithKpi.model_validate(minimal(kpis={}, kpi={"sample_intervall": 0, "enabled": "yes"}), context=LOAD)
    assert problems_of(info.value) == [
        "kpis: unknown section; did you mean [kpi]?",
        "kpi.sample_intervall: unknown key; did you mean 'sample_interval'?",
        "kpi.enabled: must be true or false (unquoted), got 'yes'",
    ]
    assert "kpi" not in section_models() and "mixin" in section_models()
