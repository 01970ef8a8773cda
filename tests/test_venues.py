"""The per-venue table and the capability check every configured exchange passes at load."""
from __future__ import annotations

import pytest

from domain.config import ConfigError, parse_config
from integrations.exchange.venues import REQUIRED_CAPABILITIES, missing_capabilities, venue, venues


def config_with(ccxt_id, **extra):
    return {"mixin": {"keystore": "k.json"}, "payments": {"market_making_fee_percent": "0.1"},
            "exchanges": [{"id": "x", "ccxt": ccxt_id, "enabled": False, **extra}], "pairs": []}


def test_every_hufi_venue_has_a_profile_and_binance_one_too():
    names = {v.hufi_name for v in venues().values() if v.hufi_name}
    assert {"bigone", "bitmart", "bybit", "gate", "htx", "hyperliquid", "kraken", "kucoin", "mexc", "xt"} <= names
    assert venue("binance").withdraw_client_id_param == "withdrawOrderId"
    assert venue("nosuchvenue").withdraw_client_id_param is None   # generic profile: found by history


@pytest.mark.parametrize("ccxt_id", ["kucoin", "htx", "xt", "kraken", "bigone", "mexc", "gate", "bybit", "binance"])
def test_venues_whose_ccxt_class_has_everything_pass(ccxt_id):
    parse_config(config_with(ccxt_id), read_secrets=False)


def test_a_class_lacking_a_capability_is_refused_with_what_is_missing():
    with pytest.raises(ConfigError) as info:
        parse_config(config_with("hyperliquid"), read_secrets=False)
    assert any("hyperliquid" in p and "fetchDepositAddress" in p for p in info.value.problems), info.value.problems


def test_a_venue_the_installed_ccxt_does_not_have_is_refused():
    # ccxt 4.5.90 has no `bitmart` class although HuFi lists the venue
    with pytest.raises(ConfigError) as info:
        parse_config(config_with("bitmart"), read_secrets=False)
    assert any("bitmart" in p and "not an exchange of the installed" in p for p in info.value.problems)


def test_commands_that_only_use_the_database_do_not_look_the_class_up():
    """check_venues=False (the operator CLI): the class is not looked up in ccxt, but ``ccxt`` is still required."""
    config = parse_config(config_with("bitmart"), read_secrets=False, check_venues=False)
    assert config.disabled_exchanges[0].ccxt_id == "bitmart"
    with pytest.raises(ConfigError) as info:
        parse_config(config_with(""), read_secrets=False, check_venues=False)
    assert any("ccxt: is required" in p for p in info.value.problems), info.value.problems


def test_missing_capabilities_counts_emulated_as_present():
    has = {name: True for name in REQUIRED_CAPABILITIES}
    has["fetchDeposits"] = "emulated"
    has["withdraw"] = False
    assert missing_capabilities(has) == ["withdraw"]


def test_the_operator_may_refuse_to_rely_on_a_client_id():
    from integrations.exchange.account import ExchangeAccount
    cfg = parse_config(config_with("binance", withdraw_client_id=False), read_secrets=False).disabled_exchanges[0]
    account = ExchangeAccount(cfg)
    assert account.venue.has_withdraw_client_id is False
    with pytest.raises(ConfigError):
        parse_config(config_with("binance", withdraw_client_id="no"), read_secrets=False)
