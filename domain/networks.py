"""Mixin asset -> chain -> ccxt network code. Pure: no I/O, no ccxt import.

A Mixin asset is mapped through its ``chain_id`` (never its symbol: USDT-ERC20 and USDT-TRC20
share the symbol), to a *canonical* network name (``ERC20``, ``TRC20``, ...), and that name is
looked up among the keys of the exchange's ``ccxt.currencies[code]['networks']``. Exchanges and
ccxt versions spell the same chain differently (binance 4.5.90: ``MATIC`` for Polygon, ``OP``
for Optimism; okx ``Polygon``; bybit ``ARBI``; kucoin lower case ``eth``), so keys are compared
through :func:`normalize_network`. The value handed to ccxt (``{'network': ...}``) is the KEY
exactly as the exchange's currencies list it.

Anything short of exactly one usable match raises :class:`NoUsableNetwork` with a reason; this
module never guesses (a deposit sent over the wrong chain is lost).

Deliberately NOT aliased:

- bare ``AVAX``: ccxt 4.5.90 uses it for the C-Chain on some exchanges (hashkey, xt, foxbit)
  and for the X-Chain on others (binance's network id ``AVAX``, hitbtc, kucoin ``avax``).
  Use a config override if an exchange lists Avalanche C-Chain only as ``AVAX``.
- ``BNB``: binance's network id ``BNB`` is the BNB Beacon Chain (BEP2), not BSC (BEP20).
- ``SEGWITBTC``/``BTCSEGWIT``: listed next to ``BTC`` on binance; aliasing it would make BTC
  ambiguous. ``BTC`` is the Bitcoin network.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

__all__ = [
    "CHAIN_NAMES",
    "DEFAULT_CHAIN_NETWORKS",
    "NETWORK_ALIASES",
    "NetworkChoice",
    "NoUsableNetwork",
    "normalize_network",
    "resolve_network",
]

# --------------------------------------------------------------------------- chains

# Mixin chain ids (the chain's native asset has the same id).
BITCOIN = "c6d0c728-2624-429b-8e0d-d9d19b6592fa"
ETHEREUM = "43d61dcd-e413-450d-80b8-101d5e903357"
TRON = "25dabac5-056a-48ff-b9f9-f67395dc407c"
BSC = "1949e683-6a08-49e2-b087-d6b72398588f"
SOLANA = "64692c23-8971-4cf4-84a7-4dd1271dd887"
POLYGON = "b7938396-3f94-4e0a-9179-d3440718156f"
BASE = "3fb612c5-6844-3979-ae4a-5a84e79da870"
ARBITRUM = "8c590110-1abc-3697-84f2-05214e6516aa"
OPTIMISM = "60360611-370c-3b69-9826-b13db93f6aba"
AVALANCHE_C = "1f67ac58-87ba-3571-9781-e9413c046f34"
AVALANCHE_X = "cbc77539-0a20-4666-8c8a-4ded62b36f0a"  # Mr.Market's table calls this "C-Chain": it is X
TON = "ef660437-d915-4e27-ad3f-632bfb6ba0ee"
LITECOIN = "76c802a2-7c88-447f-a93e-c29c9e5dd9c8"
DOGECOIN = "6770a1e5-6086-44d5-b60f-545f9d9e8ffd"
XRP = "23dfb5a5-5d7b-48b6-905f-3970e3176e27"
EOS = "6cfe566e-4aad-470b-8c9a-2fd35b49c68d"
BITCOIN_CASH = "fd11b6e3-0b87-41f1-a41f-f0e9b49e5bf0"
LIGHTNING = "59c09123-95cc-3ffd-a659-0f9169074cee"
MVM = "a0ffd769-5850-4b48-9651-d2ae44a3e64d"

# chain_id -> canonical network name (the ccxt unified code where ccxt has one).
DEFAULT_CHAIN_NETWORKS: Mapping[str, str] = {
    BITCOIN: "BTC",
    ETHEREUM: "ERC20",
    TRON: "TRC20",
    BSC: "BEP20",
    SOLANA: "SOL",
    POLYGON: "POLYGON",
    BASE: "BASE",
    ARBITRUM: "ARBITRUM",
    OPTIMISM: "OPTIMISM",
    AVALANCHE_C: "AVAXC",
    AVALANCHE_X: "AVAXX",
    TON: "TON",
    LITECOIN: "LTC",
    DOGECOIN: "DOGE",
    XRP: "XRP",
    EOS: "EOS",
    BITCOIN_CASH: "BCH",
    LIGHTNING: "LIGHTNING",
}

# Human names, for error messages (includes chains no exchange deposits to).
CHAIN_NAMES: Mapping[str, str] = {
    BITCOIN: "Bitcoin",
    ETHEREUM: "Ethereum",
    TRON: "TRON",
    BSC: "BNB Smart Chain",
    SOLANA: "Solana",
    POLYGON: "Polygon",
    BASE: "Base",
    ARBITRUM: "Arbitrum One",
    OPTIMISM: "Optimism",
    AVALANCHE_C: "Avalanche C-Chain",
    AVALANCHE_X: "Avalanche X-Chain",
    TON: "TON",
    LITECOIN: "Litecoin",
    DOGECOIN: "Dogecoin",
    XRP: "XRP Ledger",
    EOS: "EOS",
    BITCOIN_CASH: "Bitcoin Cash",
    LIGHTNING: "Lightning",
    MVM: "Mixin Virtual Machine",
}

# canonical -> spellings seen in ccxt 4.5.90 unified codes and exchange network ids / names.
# Compared after _squash (upper case, no spaces, '-', '_', '.', '(', ')'), so "Arbitrum One",
# "ARBITRUM-ONE" and "ArbitrumOne" are one spelling.
NETWORK_ALIASES: Mapping[str, tuple[str, ...]] = {
    "BTC": ("BTC", "BITCOIN"),
    "ERC20": ("ERC20", "ETH", "ETHEREUM", "ETHEREUM (ERC20)"),
    "TRC20": ("TRC20", "TRX", "TRON", "TRON (TRC20)"),
    "BEP20": ("BEP20", "BSC", "BSC20", "BNB SMART CHAIN", "BNB SMART CHAIN (BEP20)"),
    "SOL": ("SOL", "SOLANA", "SPL"),
    "POLYGON": ("POLYGON", "MATIC", "POL", "POLYGON POS", "POLYGON(MATIC)", "MATIC POLYGON"),
    "BASE": ("BASE", "BASEEVM", "BASE MAINNET"),
    "ARBITRUM": ("ARBITRUM", "ARB", "ARBONE", "ARBI", "ARBITRUM ONE", "ARBEVM", "ARBITRUMONE"),
    "OPTIMISM": ("OPTIMISM", "OP", "OPT", "OPETH", "OPTIMISM(OP)", "OP MAINNET"),
    "AVAXC": ("AVAXC", "AVAX C-CHAIN", "AVAXC-CHAIN", "AVAX_CCHAIN", "AVAX_C", "CAVAX", "C-CHAIN",
              "AVALANCHE C-CHAIN", "AVALANCHEC", "AVACCHAIN"),
    "AVAXX": ("AVAXX", "AVAX X-CHAIN", "XAVAX", "X-CHAIN", "AVALANCHE X-CHAIN"),
    "TON": ("TON", "TONCOIN", "THE OPEN NETWORK"),
    "LTC": ("LTC", "LITECOIN"),
    "DOGE": ("DOGE", "DOGECOIN"),
    "XRP": ("XRP", "RIPPLE"),
    "EOS": ("EOS",),
    "BCH": ("BCH", "BITCOIN CASH", "BITCOINCASH"),
    "LIGHTNING": ("LIGHTNING", "BTCLIGHTNING", "BTC LIGHTNING"),
}

_SEPARATORS = re.compile(r"[\s\-_.()]+")


def _squash(code: str) -> str:
    return _SEPARATORS.sub("", code.strip().upper())


def _build_alias_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for canonical, spellings in NETWORK_ALIASES.items():
        for spelling in (canonical, *spellings):
            key = _squash(spelling)
            other = index.setdefault(key, canonical)
            if other != canonical:  # a spelling must never mean two chains
                raise AssertionError(f"network alias {spelling!r} is listed under {other} and {canonical}")
    return index


_ALIAS_INDEX = _build_alias_index()


def normalize_network(code: str) -> str:
    """The canonical name of a network code (``ETH`` -> ``ERC20``, ``Arbitrum One`` -> ``ARBITRUM``).

    An unknown code comes back upper-cased and stripped, so two spellings of an unknown network
    still compare equal when they differ only in case/whitespace."""
    if not isinstance(code, str) or not code.strip():
        raise ValueError(f"network code must be a non-empty string, got {code!r}")
    return _ALIAS_INDEX.get(_squash(code), code.strip().upper())


# --------------------------------------------------------------------------- resolution


@dataclass(frozen=True)
class NetworkChoice:
    network_code_for_ccxt: str  # the key of currencies[code]['networks'] (or the canonical name if unknown)
    canonical: str
    deposit_enabled: bool | None  # None: the exchange did not say (or networks were not known)
    withdraw_enabled: bool | None
    exchange_network_id: str | None = None  # the entry's raw 'id' (e.g. binance 'ETH' for 'ERC20')


class NoUsableNetwork(ValueError):
    """The asset can not be deposited to the exchange: the order needs attention (never a guess).

    ``reason`` is one of ``unknown_chain``, ``no_networks``, ``not_listed``, ``override_not_listed``,
    ``deposit_disabled``, ``ambiguous``."""

    def __init__(self, reason: str, message: str, *, asset_id: str, chain_id: str | None, symbol: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.asset_id = asset_id
        self.chain_id = chain_id
        self.symbol = symbol


def _flag(entry: Mapping[str, Any] | None, name: str) -> bool | None:
    if not isinstance(entry, Mapping):
        return None
    value = entry.get(name)
    if isinstance(value, bool):
        return value
    if name in ("deposit", "withdraw") and entry.get("active") is False:
        return False  # ccxt: active False and no per-direction flag -> the network is off
    return None


def _matches(currency_networks: Mapping[str, Any], canonical: str) -> list[str]:
    """Keys whose own spelling, or failing that whose raw exchange id, normalizes to ``canonical``."""
    by_key = [key for key in currency_networks if normalize_network(key) == canonical]
    if by_key:
        return by_key
    by_id = []
    for key, entry in currency_networks.items():
        raw_id = entry.get("id") if isinstance(entry, Mapping) else None
        if isinstance(raw_id, str) and raw_id.strip() and normalize_network(raw_id) == canonical:
            by_id.append(key)
    return by_id


def _describe_chain(chain_id: str | None) -> str:
    name = CHAIN_NAMES.get(chain_id or "")
    return f"{name} ({chain_id})" if name else f"chain {chain_id!r}"


def resolve_network(
    *,
    asset_id: str,
    chain_id: str | None,
    symbol: str,
    currency_networks: Mapping[str, Mapping] | None,
    overrides: Mapping[str, str],
) -> NetworkChoice:
    """Which exchange network to deposit Mixin asset ``asset_id`` (on chain ``chain_id``) over.

    ``currency_networks``: ``exchange.currencies[symbol]['networks']`` from ccxt (None: not known,
    e.g. the exchange does not report networks; then the canonical name is returned unchecked).
    ``overrides``: config, chain_id -> network code (an asset_id key is also accepted and wins
    over its chain's). An override replaces the default table but is still checked against the
    exchange's networks when they are known: exactly one key must match it, by exact key
    first, then through normalization.

    Raises :class:`NoUsableNetwork`."""

    def fail(reason: str, message: str) -> NoUsableNetwork:
        return NoUsableNetwork(
            reason, f"{symbol} ({asset_id}): {message}", asset_id=asset_id, chain_id=chain_id, symbol=symbol
        )

    override = overrides.get(asset_id) if asset_id in overrides else overrides.get(chain_id or "")
    if override is not None:
        if not isinstance(override, str) or not override.strip():
            raise fail("override_not_listed", f"the network override for {_describe_chain(chain_id)} is empty")
        wanted = override.strip()
        canonical = normalize_network(wanted)
    else:
        if not chain_id or chain_id not in DEFAULT_CHAIN_NETWORKS:
            known = f" ({CHAIN_NAMES[chain_id]})" if chain_id in CHAIN_NAMES else ""
            raise fail(
                "unknown_chain",
                f"no exchange network is known for chain {chain_id!r}{known}; add a network override for it",
            )
        wanted = canonical = DEFAULT_CHAIN_NETWORKS[chain_id]

    if currency_networks is None:
        return NetworkChoice(wanted, canonical, None, None, None)
    if not currency_networks:
        raise fail("no_networks", f"the exchange lists no networks for {symbol}")

    if override is not None and wanted in currency_networks:
        keys = [wanted]
    else:
        keys = _matches(currency_networks, canonical)
    listed = sorted(currency_networks)
    if not keys:
        if override is not None:
            raise fail(
                "override_not_listed",
                f"the override {wanted!r} for {_describe_chain(chain_id)} is not among the exchange's "
                f"{symbol} networks {listed}",
            )
        raise fail(
            "not_listed",
            f"the exchange lists no {canonical} network for {symbol} ({_describe_chain(chain_id)}); "
            f"it lists {listed}",
        )
    if len(keys) > 1:
        raise fail(
            "ambiguous",
            f"several of the exchange's {symbol} networks match {canonical}: {sorted(keys)}; "
            f"set a network override for {_describe_chain(chain_id)}",
        )
    key = keys[0]
    entry = currency_networks[key]
    deposit = _flag(entry, "deposit")
    withdraw = _flag(entry, "withdraw")
    if deposit is False:
        raise fail("deposit_disabled", f"deposits of {symbol} on the exchange's {key} network are disabled")
    raw_id = entry.get("id") if isinstance(entry, Mapping) else None
    return NetworkChoice(key, canonical, deposit, withdraw, raw_id if isinstance(raw_id, str) else None)
