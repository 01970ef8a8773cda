"""[[exchanges]] config: secrets by file / environment only, ccxt ids checked, every problem listed,
URL overrides that really point ccxt at another venue (the fake exchange), repr without secrets."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from domain.exchange_config import ExchangeAccountConfig, parse_exchanges
from integrations.exchange.account import ExchangeAccount
from sim.fake_exchange import FakeExchange

KEY, SECRET = "k-" + "a" * 30, "s-" + "b" * 30


def parse(items, base_dir: Path) -> tuple[tuple[ExchangeAccountConfig, ...], list[str]]:
    problems: list[str] = []
    return parse_exchanges(items, problems, base_dir), problems


def test_keys_from_file_and_environment(tmp_path, monkeypatch):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "binance.secret").write_text(SECRET + "\n")
    monkeypatch.setenv("MMFLOW_TEST_BINANCE_KEY", KEY)
    doc = tomllib.loads("""
[[exchanges]]
id = "binance-main"
ccxt = "binance"
api_key_env = "MMFLOW_TEST_BINANCE_KEY"
secret_file = "secrets/binance.secret"
weight_per_minute = 6000
max_concurrency = 80
request_timeout = 5
[exchanges.options]
recvWindow = 5000
[exchanges.config]
verbose = false
[exchanges.networks]
"25dabac5-056a-48ff-b9f9-f67395dc407c" = "TRC20"
[exchanges.bucket_limits]
sapi = 12000
[exchanges.weights]
"GET /api/v3/depth" = 10
""")
    (cfg,), problems = parse(doc["exchanges"], tmp_path)
    assert problems == []
    assert (cfg.account_id, cfg.ccxt_id, cfg.api_key, cfg.secret) == ("binance-main", "binance", KEY, SECRET)
    assert (cfg.weight_per_minute, cfg.max_concurrency, cfg.request_timeout, cfg.weight_window) == (6000, 80, 5.0, 60.0)
    assert dict(cfg.options) == {"recvWindow": 5000} and dict(cfg.config) == {"verbose": False}
    assert dict(cfg.network_overrides) == {"25dabac5-056a-48ff-b9f9-f67395dc407c": "TRC20"}
    assert dict(cfg.bucket_limits) == {"sapi": 12000} and dict(cfg.weights) == {"GET /api/v3/depth": 10}
    with pytest.raises(TypeError):
        cfg.options["recvWindow"] = 1  # read-only
    # an absolute path works too, and public-only accounts (no keys) are allowed
    (cfg2, cfg3), problems = parse([
        {"id": "b2", "ccxt": "binance", "api_key_env": "MMFLOW_TEST_BINANCE_KEY",
         "secret_file": str(tmp_path / "secrets" / "binance.secret")},
        {"id": "public", "ccxt": "okx"},
    ], Path("/nonexistent"))
    assert problems == [] and cfg2.secret == SECRET and (cfg3.api_key, cfg3.secret) == ("", "")


def test_repr_hides_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("K", KEY)
    monkeypatch.setenv("S", SECRET)
    monkeypatch.setenv("P", "pass-phrase-123")
    (cfg,), problems = parse([{"id": "okx-1", "ccxt": "okx", "api_key_env": "K", "secret_env": "S",
                               "password_env": "P"}], tmp_path)
    assert problems == [] and cfg.password == "pass-phrase-123"
    for text in (repr(cfg), str(cfg), f"{cfg}", repr([cfg])):
        assert KEY not in text and SECRET not in text and "pass-phrase-123" not in text
        assert "'***'" in text and "okx-1" in text


def test_inline_secrets_are_refused_with_the_fix_named(tmp_path):
    _, problems = parse([{"id": "x", "ccxt": "binance", "api_key": KEY, "secret": SECRET}], tmp_path)
    assert any("api_key" in p and "api_key_file" in p and "api_key_env" in p for p in problems)
    assert any(".secret:" in p and "secret_file" in p for p in problems)
    assert all(KEY not in p and SECRET not in p for p in problems)  # the error never echoes the secret
    _, problems = parse([{"id": "x", "ccxt": "binance", "config": {"apiKey": KEY, "password": "p"}}], tmp_path)
    assert sum("config.apiKey" in p or "config.password" in p for p in problems) == 2


def test_unknown_ccxt_id_and_every_other_problem_is_listed(tmp_path, monkeypatch):
    monkeypatch.delenv("MMFLOW_TEST_MISSING", raising=False)
    items = [
        {"id": "a", "ccxt": "binanse"},
        {"id": "b", "ccxt": "binance", "api_key_env": "MMFLOW_TEST_MISSING", "secret_file": "nope.secret"},
        {"id": "c", "ccxt": "binance", "api_key_file": "k", "api_key_env": "K", "secret_env": "S"},
        {"id": "d", "ccxt": "binance", "api_key_env": "HOME"},
        {"id": "e", "ccxt": "binance", "weight_per_minute": 0, "max_concurrency": "many", "request_timeout": -1,
         "colour": "red", "networks": {"not-a-uuid": "TRC20"}, "weights": {"depth": 5},
         "config": {"timeout": 1000, "enableRateLimit": True}, "urls": {"api": "ftp://x"}},
        {"id": "a", "ccxt": "binance"},
        {"ccxt": "binance"},
        "not a table",
    ]
    configs, problems = parse(items, tmp_path)
    assert configs == ()
    text = "\n".join(problems)
    assert "'binanse' is not an exchange of the installed ccxt 4.5.90; did you mean binance" in text
    assert "MMFLOW_TEST_MISSING is not set" in text and "cannot read" in text and "nope.secret" in text
    assert "give api_key_file or api_key_env, not both" in text
    assert "an API key needs its secret" in text  # d: key without secret
    for expected in ("weight_per_minute: must be >= 1", "max_concurrency: must be a whole number",
                     "request_timeout: must be > 0", "(e).colour: unknown key", "must be a Mixin chain id",
                     "must look like \"GET /api/v3/depth\"", "config.timeout: is not allowed",
                     "config.enableRateLimit: is not allowed", "must be an http(s) URL",
                     "'a' is already used by exchanges[0]", "exchanges[6].id: is required",
                     "exchanges[7]: must be a table"):
        assert expected in text, expected
    assert len(problems) >= 17
    # every problem starts with the key path it is about
    assert all(p.startswith("exchanges[") and ": " in p for p in problems), problems
    _, problems = parse({"id": "x"}, tmp_path)
    assert problems == ["exchanges: must be an array of tables ([[exchanges]])"]


def test_url_overrides_point_ccxt_at_another_venue(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", "cfg-key")
    monkeypatch.setenv("FAKE_SECRET", "cfg-secret")
    with FakeExchange(seed=3) as fx:
        fx.add_market("BTC/USDT", "BTC", "USDT", mid="60000")
        fx.add_currency("USDT", [{"network": "TRX", "withdrawFee": "1", "withdrawMin": "10"}])
        fx.add_account("cfg-key", "cfg-secret")
        fx.credit("cfg-key", "USDT", "123.45")
        doc = tomllib.loads(f"""
[[exchanges]]
id = "local"
ccxt = "binance"
api_key_env = "FAKE_KEY"
secret_env = "FAKE_SECRET"
[exchanges.urls]
api = "{fx.url}"
""")
        (cfg,), problems = parse(doc["exchanges"], tmp_path)
        assert problems == []
        account = ExchangeAccount(cfg)
        assert all(u.startswith(fx.url + "/") for u in account.exchange.urls["api"].values() if isinstance(u, str))
        assert account.exchange.urls["api"]["sapi"] == fx.url + "/sapi/v1"  # paths kept
        assert str(account.fetch_balance()["USDT"].free) == "123.45"
        assert ("GET", "/api/v3/exchangeInfo", 200) in fx.requests_log
        account.close()

        # the table form merges single entries into ccxt's own table
        (cfg,), problems = parse([{"id": "t", "ccxt": "binance", "urls": {"api": {"public": fx.url + "/api/v3"}}}],
                                 tmp_path)
        assert problems == []
        account = ExchangeAccount(cfg)
        assert account.exchange.urls["api"]["public"] == fx.url + "/api/v3"
        assert account.exchange.urls["api"]["sapi"].startswith("https://api.binance.com")
        assert account.exchange.options["fetchMargins"] is False  # the binance defaults still apply
        account.close()
