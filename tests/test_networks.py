"""domain.networks: Mixin asset -> chain -> ccxt network code, checked against the exchange.

The pure tests use hand-written ``networks`` structures; the binance ones use what ccxt 4.5.90
itself builds (``load_markets`` against the fake exchange), so a change in ccxt's unification
(e.g. binance's Polygon key ``MATIC``, Optimism ``OP``) shows up here.
"""
from __future__ import annotations

import uuid

import ccxt
import pytest

from domain.networks import (
    CHAIN_NAMES,
    DEFAULT_CHAIN_NETWORKS,
    NETWORK_ALIASES,
    NetworkChoice,
    NoUsableNetwork,
    normalize_network,
    resolve_network,
)
from sim.fake_exchange import FakeExchange

# reference: mixin-and-hufi.md §4 (chain ids) and mrmarket-flow.md §4 (EOS, BCH)
REFERENCE_CHAINS = {
    "c6d0c728-2624-429b-8e0d-d9d19b6592fa": "BTC",
    "43d61dcd-e413-450d-80b8-101d5e903357": "ERC20",
    "25dabac5-056a-48ff-b9f9-f67395dc407c": "TRC20",
    "64692c23-8971-4cf4-84a7-4dd1271dd887": "SOL",
    "1949e683-6a08-49e2-b087-d6b72398588f": "BEP20",
    "b7938396-3f94-4e0a-9179-d3440718156f": "POLYGON",
    "3fb612c5-6844-3979-ae4a-5a84e79da870": "BASE",
    "8c590110-1abc-3697-84f2-05214e6516aa": "ARBITRUM",
    "60360611-370c-3b69-9826-b13db93f6aba": "OPTIMISM",
    "1f67ac58-87ba-3571-9781-e9413c046f34": "AVAXC",
    "ef660437-d915-4e27-ad3f-632bfb6ba0ee": "TON",
    "76c802a2-7c88-447f-a93e-c29c9e5dd9c8": "LTC",
    "6770a1e5-6086-44d5-b60f-545f9d9e8ffd": "DOGE",
    "23dfb5a5-5d7b-48b6-905f-3970e3176e27": "XRP",
    "59c09123-95cc-3ffd-a659-0f9169074cee": "LIGHTNING",
    "6cfe566e-4aad-470b-8c9a-2fd35b49c68d": "EOS",
    "fd11b6e3-0b87-41f1-a41f-f0e9b49e5bf0": "BCH",
    # Mr.Market files this one under "Avalanche C"; Mixin's SDKs name it Avalanche X-Chain
    "cbc77539-0a20-4666-8c8a-4ded62b36f0a": "AVAXX",
}
MVM_CHAIN = "a0ffd769-5850-4b48-9651-d2ae44a3e64d"

ETH_CHAIN = "43d61dcd-e413-450d-80b8-101d5e903357"
TRON_CHAIN = "25dabac5-056a-48ff-b9f9-f67395dc407c"
BSC_CHAIN = "1949e683-6a08-49e2-b087-d6b72398588f"
POLYGON_CHAIN = "b7938396-3f94-4e0a-9179-d3440718156f"
OPTIMISM_CHAIN = "60360611-370c-3b69-9826-b13db93f6aba"
ARBITRUM_CHAIN = "8c590110-1abc-3697-84f2-05214e6516aa"
AVAXC_CHAIN = "1f67ac58-87ba-3571-9781-e9413c046f34"
SOLANA_CHAIN = "64692c23-8971-4cf4-84a7-4dd1271dd887"
BTC_CHAIN = "c6d0c728-2624-429b-8e0d-d9d19b6592fa"

USDT_ERC20 = "4d8c508b-91c5-375b-92b0-ee702ed2dac5"
USDT_TRC20 = "b91e18ff-a9ae-3dc7-8679-e935d9a4b34b"
USDT_BSC = "94213408-4ee7-3150-a9c4-9c5cce421c78"
USDT_POLYGON = "218bc6f4-7927-3f8e-8568-3a3725b74361"
USDT_SOLANA = "cb54aed4-1893-3977-b739-ec7b2e04f0c5"
USDT_OPTIMISM = "65f137d4-50ba-3090-920b-b360f7da8eee"
USDT_ARBITRUM = "66e12fe3-50fe-3308-9426-7b2f47f6a66f"
USDT_AVAXC = "38ff9f68-d62a-3070-9766-69b6a84218b3"
BTC = BTC_CHAIN

USDT_ASSETS = {  # asset id -> its chain, as the Mixin API reports asset.chain_id
    USDT_ERC20: ETH_CHAIN,
    USDT_TRC20: TRON_CHAIN,
    USDT_BSC: BSC_CHAIN,
    USDT_POLYGON: POLYGON_CHAIN,
    USDT_SOLANA: SOLANA_CHAIN,
    USDT_OPTIMISM: OPTIMISM_CHAIN,
    USDT_ARBITRUM: ARBITRUM_CHAIN,
    USDT_AVAXC: AVAXC_CHAIN,
}


def net(network_id: str, code: str | None = None, *, deposit=True, withdraw=True, active=None) -> dict:
    """One entry shaped like ccxt's currencies[c]['networks'][code]."""
    return {"id": network_id, "network": code or network_id, "active": active, "deposit": deposit,
            "withdraw": withdraw, "fee": None, "precision": None, "limits": {}, "info": {}}


def resolve(asset_id, chain_id, networks, overrides=None, symbol="USDT") -> NetworkChoice:
    return resolve_network(asset_id=asset_id, chain_id=chain_id, symbol=symbol, currency_networks=networks,
                           overrides=overrides or {})


# --------------------------------------------------------------------------- table & aliases


@pytest.mark.parametrize("chain_id, canonical", sorted(REFERENCE_CHAINS.items()))
def test_every_reference_chain_maps(chain_id, canonical):
    assert DEFAULT_CHAIN_NETWORKS[chain_id] == canonical
    assert chain_id in CHAIN_NAMES
    choice = resolve(chain_id, chain_id, None, symbol="X")
    assert (choice.network_code_for_ccxt, choice.canonical) == (canonical, canonical)
    assert (choice.deposit_enabled, choice.withdraw_enabled) == (None, None)
    # and against an exchange that spells it its own way: found through the aliases
    for spelling in NETWORK_ALIASES[canonical]:
        assert resolve(chain_id, chain_id, {spelling: net(spelling)}).network_code_for_ccxt == spelling


def test_table_has_no_extra_chains():
    assert set(DEFAULT_CHAIN_NETWORKS) == set(REFERENCE_CHAINS)


@pytest.mark.parametrize("canonical", sorted(NETWORK_ALIASES))
def test_aliases_normalize_both_ways(canonical):
    assert normalize_network(canonical) == canonical
    for spelling in NETWORK_ALIASES[canonical]:
        assert normalize_network(spelling) == canonical, spelling
        assert normalize_network(spelling.lower()) == canonical, spelling  # kucoin: 'eth', 'trx'
        assert normalize_network(f" {spelling} ") == canonical, spelling


def test_specific_spellings():
    cases = {
        "ETH": "ERC20", "eth": "ERC20", "TRX": "TRC20", "TRON": "TRC20", "BSC": "BEP20", "BSC20": "BEP20",
        "MATIC": "POLYGON", "POL": "POLYGON", "Polygon": "POLYGON", "OP": "OPTIMISM", "Optimism": "OPTIMISM",
        "ARB": "ARBITRUM", "ARBONE": "ARBITRUM", "ARBI": "ARBITRUM", "Arbitrum One": "ARBITRUM",
        "ArbitrumOne": "ARBITRUM", "ARBEVM": "ARBITRUM", "AVAX C-Chain": "AVAXC", "AVAXC-CHAIN": "AVAXC",
        "AVAX_CCHAIN": "AVAXC", "AVAX_C": "AVAXC", "CAVAX": "AVAXC", "C-Chain": "AVAXC", "Solana": "SOL",
        "SOLANA": "SOL", "TONCOIN": "TON", "Bitcoin": "BTC", "Ripple": "XRP", "BASEEVM": "BASE",
        "OPETH": "OPTIMISM", "BTCLIGHTNING": "LIGHTNING",
    }
    for spelling, canonical in cases.items():
        assert normalize_network(spelling) == canonical, spelling
    # different chains stay different (never a guess)
    for spelling in ("AVAX", "BNB", "BEP2", "ARBNOVA", "ARBITRUM_NOVA", "SEGWITBTC", "ERC-721", "OPBNB"):
        assert normalize_network(spelling) not in NETWORK_ALIASES, spelling
    assert normalize_network("weird-net") == "WEIRD-NET"
    with pytest.raises(ValueError):
        normalize_network("  ")


def test_ccxt_own_aliases_agree():
    """ccxt 4.5.90 ``networkAliases`` (ETH->ERC20, TRX->TRC20, BSC->BEP20, ARB->ARBITRUM, ...)."""
    aliases = ccxt.binance().networkAliases
    assert aliases["ETH"] == "ERC20" and aliases["TRX"] == "TRC20" and aliases["BSC"] == "BEP20"
    for alias, unified in aliases.items():
        if unified in NETWORK_ALIASES:
            assert normalize_network(alias) == unified == normalize_network(unified)
        else:  # CRC20, ARBITRUM_NOVA: not ours, and not mistaken for one of ours
            assert normalize_network(alias) not in NETWORK_ALIASES


def test_no_exchange_maps_one_of_our_codes_to_another_chains_id():
    """Across every exchange in ccxt 4.5.90, options['networks'] (unified code -> exchange id):
    if both sides normalize to one of our canonical names, it is the same one."""
    checked = 0
    for name in ccxt.exchanges:
        try:
            nets = getattr(ccxt, name)().options.get("networks") or {}
        except Exception:  # pragma: no cover - an exchange class that can not be built offline
            continue
        for code, raw in nets.items():
            if not isinstance(raw, str):
                continue
            a, b = normalize_network(code), normalize_network(raw)
            if a in NETWORK_ALIASES and b in NETWORK_ALIASES:
                checked += 1
                assert a == b, (name, code, raw)
    assert checked > 100


# --------------------------------------------------------------------------- resolution (pure)

BINANCE_LIKE = {"ERC20": net("ETH", "ERC20"), "TRC20": net("TRX", "TRC20"), "BEP20": net("BSC", "BEP20")}


def test_usdt_erc20_and_trc20_pick_different_networks():
    erc = resolve(USDT_ERC20, ETH_CHAIN, BINANCE_LIKE)
    trc = resolve(USDT_TRC20, TRON_CHAIN, BINANCE_LIKE)
    assert erc == NetworkChoice("ERC20", "ERC20", True, True, "ETH")
    assert trc == NetworkChoice("TRC20", "TRC20", True, True, "TRX")


def test_returns_the_exchanges_own_key():
    """An exchange/ccxt version that keys networks by its ids: the key comes back, not our name."""
    old_style = {"ETH": net("ETH"), "TRX": net("TRX"), "MATIC": net("MATIC")}
    assert resolve(USDT_ERC20, ETH_CHAIN, old_style).network_code_for_ccxt == "ETH"
    assert resolve(USDT_TRC20, TRON_CHAIN, old_style).network_code_for_ccxt == "TRX"
    assert resolve(USDT_POLYGON, POLYGON_CHAIN, old_style).network_code_for_ccxt == "MATIC"
    # matched through the raw exchange id when the key itself is unfamiliar
    odd = {"USDT-ERC": net("ETH", "USDT-ERC"), "USDT-TRX": net("TRX", "USDT-TRX")}
    assert resolve(USDT_ERC20, ETH_CHAIN, odd).network_code_for_ccxt == "USDT-ERC"


def test_unknown_chain_is_an_error():
    for chain in (str(uuid.uuid4()), MVM_CHAIN, None, ""):
        with pytest.raises(NoUsableNetwork) as info:
            resolve(str(uuid.uuid4()), chain, BINANCE_LIKE, symbol="FOO")
        assert info.value.reason == "unknown_chain" and "FOO" in str(info.value)
    with pytest.raises(NoUsableNetwork, match="Mixin Virtual Machine"):
        resolve(str(uuid.uuid4()), MVM_CHAIN, None)
    assert isinstance(NoUsableNetwork("x", "y", asset_id="a", chain_id=None, symbol="s"), ValueError)


def test_exchange_lacks_the_network():
    with pytest.raises(NoUsableNetwork) as info:
        resolve(USDT_SOLANA, SOLANA_CHAIN, BINANCE_LIKE)
    err = info.value
    assert err.reason == "not_listed" and err.asset_id == USDT_SOLANA and err.chain_id == SOLANA_CHAIN
    assert "SOL" in str(err) and "ERC20" in str(err)  # says what is listed
    with pytest.raises(NoUsableNetwork) as info:
        resolve(USDT_ERC20, ETH_CHAIN, {})
    assert info.value.reason == "no_networks"
    # Arbitrum Nova is not Arbitrum One
    with pytest.raises(NoUsableNetwork, match="not_listed|lists no ARBITRUM"):
        resolve(USDT_ARBITRUM, ARBITRUM_CHAIN, {"ARBNOVA": net("ARBNOVA"), "ARBITRUM_NOVA": net("ARBNOVA")})


def test_deposit_disabled_is_an_error():
    networks = dict(BINANCE_LIKE, BEP20=net("BSC", "BEP20", deposit=False))
    with pytest.raises(NoUsableNetwork) as info:
        resolve(USDT_BSC, BSC_CHAIN, networks)
    assert info.value.reason == "deposit_disabled" and "BEP20" in str(info.value)
    # ccxt's "active: False" with no per-direction flag also means off
    with pytest.raises(NoUsableNetwork, match="disabled"):
        resolve(USDT_BSC, BSC_CHAIN, {"BEP20": net("BSC", deposit=None, active=False)})
    # withdrawals disabled do not matter for a deposit, but are reported
    choice = resolve(USDT_BSC, BSC_CHAIN, {"BEP20": net("BSC", withdraw=False)})
    assert (choice.deposit_enabled, choice.withdraw_enabled) == (True, False)
    unknown = resolve(USDT_BSC, BSC_CHAIN, {"BEP20": net("BSC", deposit=None, withdraw=None)})
    assert (unknown.deposit_enabled, unknown.withdraw_enabled) == (None, None)


def test_ambiguous_is_an_error():
    both = {"MATIC": net("MATIC"), "POLYGON": net("POLYGON"), "ERC20": net("ETH")}
    with pytest.raises(NoUsableNetwork) as info:
        resolve(USDT_POLYGON, POLYGON_CHAIN, both)
    assert info.value.reason == "ambiguous" and "MATIC" in str(info.value) and "POLYGON" in str(info.value)


def test_override_wins_and_is_validated():
    both = {"MATIC": net("MATIC"), "POL": net("POL"), "ERC20": net("ETH"), "AVAX": net("AVAX")}
    # the default is ambiguous here; the operator's choice wins
    assert resolve(USDT_POLYGON, POLYGON_CHAIN, both, {POLYGON_CHAIN: "POL"}).network_code_for_ccxt == "POL"
    # bare AVAX is never assumed to be the C-Chain; an override can say so
    with pytest.raises(NoUsableNetwork):
        resolve(USDT_AVAXC, AVAXC_CHAIN, both)
    choice = resolve(USDT_AVAXC, AVAXC_CHAIN, both, {AVAXC_CHAIN: "AVAX"})
    assert (choice.network_code_for_ccxt, choice.canonical) == ("AVAX", "AVAX")
    # an override in another spelling is matched through normalization to the exchange's key
    assert resolve(USDT_ERC20, ETH_CHAIN, BINANCE_LIKE, {ETH_CHAIN: "eth"}).network_code_for_ccxt == "ERC20"
    # the override beats the default even when the default would work
    choice = resolve(USDT_ERC20, ETH_CHAIN, BINANCE_LIKE, {ETH_CHAIN: "BSC"})
    assert (choice.network_code_for_ccxt, choice.canonical) == ("BEP20", "BEP20")
    # an asset-level override beats its chain's
    assert resolve(USDT_ERC20, ETH_CHAIN, BINANCE_LIKE,
                   {ETH_CHAIN: "BSC", USDT_ERC20: "TRX"}).network_code_for_ccxt == "TRC20"
    # validated: not listed -> error; deposits disabled -> error
    with pytest.raises(NoUsableNetwork) as info:
        resolve(USDT_ERC20, ETH_CHAIN, BINANCE_LIKE, {ETH_CHAIN: "ARBNOVA"})
    assert info.value.reason == "override_not_listed" and "ARBNOVA" in str(info.value)
    with pytest.raises(NoUsableNetwork, match="disabled"):
        resolve(USDT_ERC20, ETH_CHAIN, dict(BINANCE_LIKE, TRC20=net("TRX", deposit=False)), {ETH_CHAIN: "TRC20"})
    with pytest.raises(NoUsableNetwork):
        resolve(USDT_ERC20, ETH_CHAIN, BINANCE_LIKE, {ETH_CHAIN: " "})
    # a chain unknown to the table works through an override
    mvm_override = resolve(str(uuid.uuid4()), MVM_CHAIN, {"MVM": net("MVM")}, {MVM_CHAIN: "MVM"})
    assert mvm_override.network_code_for_ccxt == "MVM"
    # networks not known: the override is returned as written
    assert resolve(USDT_ERC20, ETH_CHAIN, None, {ETH_CHAIN: "ETH"}).network_code_for_ccxt == "ETH"


# --------------------------------------------------------------------------- against ccxt 4.5.90 binance


@pytest.fixture(scope="module")
def binance():
    with FakeExchange(seed=11) as fx:
        fx.add_market("BTC/USDT", "BTC", "USDT", mid="60000")
        fx.add_currency("USDT", [
            {"network": "ETH", "isDefault": True}, {"network": "TRX"}, {"network": "BSC", "depositEnable": False},
            {"network": "MATIC"}, {"network": "OPTIMISM"}, {"network": "ARBITRUM"}, {"network": "AVAXC"},
        ], name="TetherUS")
        fx.add_currency("BTC", [{"network": "BTC", "isDefault": True}, {"network": "BSC"},
                                {"network": "SEGWITBTC", "name": "BTC(SegWit)"}])
        fx.add_account("k", "s")
        ex = ccxt.binance(fx.ccxt_config("k", "s"))
        ex.load_markets()
        yield ex


def test_binance_shape_as_ccxt_reports_it(binance):
    usdt = binance.currencies["USDT"]["networks"]
    # what ccxt 4.5.90 makes of binance's networkList (unified keys; raw id in 'id')
    assert {k: v["id"] for k, v in usdt.items()} == {
        "ERC20": "ETH", "TRC20": "TRX", "BEP20": "BSC", "MATIC": "MATIC", "OP": "OPTIMISM",
        "ARBITRUM": "ARBITRUM", "AVAXC": "AVAXC",
    }
    assert usdt["BEP20"]["deposit"] is False and usdt["ERC20"]["deposit"] is True

    def pick(asset_id):
        return resolve(asset_id, USDT_ASSETS[asset_id], usdt)

    assert pick(USDT_ERC20).network_code_for_ccxt == "ERC20"
    assert pick(USDT_TRC20).network_code_for_ccxt == "TRC20"
    assert pick(USDT_POLYGON) == NetworkChoice("MATIC", "POLYGON", True, True, "MATIC")
    assert pick(USDT_OPTIMISM).network_code_for_ccxt == "OP"
    assert pick(USDT_ARBITRUM).network_code_for_ccxt == "ARBITRUM"
    assert pick(USDT_AVAXC).network_code_for_ccxt == "AVAXC"
    with pytest.raises(NoUsableNetwork) as info:
        pick(USDT_BSC)
    assert info.value.reason == "deposit_disabled"
    with pytest.raises(NoUsableNetwork) as info:
        pick(USDT_SOLANA)
    assert info.value.reason == "not_listed"
    # BTC: BTC network, not SEGWITBTC nor BEP20 (BTCB)
    btc = resolve(BTC, BTC_CHAIN, binance.currencies["BTC"]["networks"], symbol="BTC")
    assert btc.network_code_for_ccxt == "BTC"


def test_the_resolved_key_is_what_ccxt_accepts(binance):
    """The returned key works in {'network': ...}; our canonical name would not (binance has no POLYGON)."""
    usdt = binance.currencies["USDT"]["networks"]
    polygon = resolve(USDT_POLYGON, POLYGON_CHAIN, usdt)
    address = binance.fetch_deposit_address("USDT", {"network": polygon.network_code_for_ccxt})
    assert address["network"] == "MATIC" and address["address"].startswith("0x")
    with pytest.raises(ccxt.BadSymbol):
        binance.fetch_deposit_address("USDT", {"network": polygon.canonical})
    erc = binance.fetch_deposit_address("USDT", {"network": resolve(USDT_ERC20, ETH_CHAIN, usdt).network_code_for_ccxt})
    trc = binance.fetch_deposit_address("USDT", {"network": resolve(USDT_TRC20, TRON_CHAIN, usdt).network_code_for_ccxt})
    assert (erc["network"], trc["network"]) == ("ERC20", "TRC20") and erc["address"] != trc["address"]
