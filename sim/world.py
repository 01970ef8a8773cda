"""A simulated Mixin world: the fake network, a bot, assets with fees, pairs, and users who pay.

Shared by `run.py demo`, the tests and the benchmarks, so all three exercise the
same memos, fees and amounts.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from domain.config import Config, parse_config
from domain.memo import encode_market_making
from domain.payment import FeeRequirements, PairRules, required_payment
from integrations.mixin.keystore import generate_keystore, parse_keystore
from sim.fake_mixin import FakeMixin
from sim.fake_mixin_safe import FakeSafe, install_safe

BTC = "c6d0c728-2624-429b-8e0d-d9d19b6592fa"
ETH = "43d61dcd-e413-450d-80b8-101d5e903357"
USDT_ERC20 = "4d8c508b-91c5-375b-92b0-ee702ed2dac5"
XIN = "c94ac88f-4671-3976-b60a-09064f1811e8"
ETH_CHAIN = ETH
BTC_CHAIN = BTC

BTC_USDT_PAIR = "0776b00f-95c0-46f9-85e4-7b8e7ca51e94"
ETH_USDT_PAIR = "9e4a3b0e-52a4-4c5e-9f41-1c61f7f1a0e2"
DISABLED_PAIR = "5b0e1c0d-8f3c-4f7e-8a0b-6d3f2b1a9c77"

BTC_FEE = Decimal("0.0001")       # BTC withdrawal fee, paid in BTC
USDT_FEE_ETH = Decimal("0.002")   # USDT (ERC20) withdrawal fee, paid in ETH (the chain asset)
ETH_FEE = Decimal("0.001")


def default_pairs() -> list[dict]:
    return [
        {"id": BTC_USDT_PAIR, "symbol": "BTC/USDT", "exchange": "binance", "base_asset_id": BTC,
         "quote_asset_id": USDT_ERC20, "min_base_amount": "0.001", "max_base_amount": "10",
         "min_quote_amount": "10", "max_quote_amount": "500000"},
        {"id": ETH_USDT_PAIR, "symbol": "ETH/USDT", "exchange": "binance", "base_asset_id": ETH,
         "quote_asset_id": USDT_ERC20, "min_base_amount": "0.01", "min_quote_amount": "10"},
        {"id": DISABLED_PAIR, "symbol": "XIN/USDT", "exchange": "binance", "base_asset_id": XIN,
         "quote_asset_id": USDT_ERC20, "enabled": False},
    ]


PLACEHOLDER_EXCHANGE_URL = "http://127.0.0.1:9"  # the discard port: nobody listens


def placeholder_exchange(secrets_dir: Path, account_id: str = "binance") -> dict:
    """An ``[[exchanges]]`` table for worlds without an exchange: a real account entry (ccxt binance, keys in
    ``exchange.key`` / ``exchange.secret`` written into ``secrets_dir`` with dummy values, API on a loopback
    port nobody listens on) with ``enabled = false``: it satisfies validation (pairs must name a configured
    account) but no gateway is started, so orders paid on its pairs wait at payment_complete."""
    secrets_dir = Path(secrets_dir)
    secrets_dir.mkdir(parents=True, exist_ok=True)
    key, secret = secrets_dir / "exchange.key", secrets_dir / "exchange.secret"
    for path, value in ((key, "placeholder-exchange-key"), (secret, "placeholder-exchange-secret")):
        if not path.exists():
            path.write_text(value + "\n")
            path.chmod(0o600)
    return {"id": account_id, "ccxt": "binance", "enabled": False, "api_key_file": str(key),
            "secret_file": str(secret), "urls": {"api": PLACEHOLDER_EXCHANGE_URL}}


def as_database_url(db_path: Path | str) -> str:
    """A database URL as it is, or ``sqlite:///`` + a file path."""
    text = str(db_path)
    return text if "://" in text else f"sqlite:///{text}"


@dataclass
class World:
    fake: FakeMixin
    keystore_dict: dict
    bot_id: str
    users: list[str] = field(default_factory=list)
    safe: FakeSafe | None = None  # the fake's Safe extension (UTXOs, /safe/keys, transactions)

    @property
    def keystore(self):
        return parse_keystore(self.keystore_dict)

    def write_keystore(self, path: Path) -> Path:
        path.write_text(json.dumps(self.keystore_dict))
        path.chmod(0o600)
        return path

    def config_dict(self, db_path: Path | str, keystore_path: Path, **overrides) -> dict:
        """A valid config for this world (a dict, as TOML would parse it). ``db_path``: the SQLite file, or a
        database URL (``sqlite:///…``, ``postgresql://…``) used as it is. Unless ``exchanges`` is given,
        the pairs' account "binance" is :func:`placeholder_exchange`: configured but switched off, so
        paid orders wait at payment_complete (what tests without an exchange expect); its key files are
        written next to ``keystore_path``."""
        raw = {
            "database": {"url": as_database_url(db_path)},
            "mixin": {"api_base": self.fake.url, "keystore": str(keystore_path), "poll_interval": 0.05,
                      "backoff_base": 0.01, "backoff_max": 0.2, "request_timeout": 5.0},
            "payments": {"market_making_fee_percent": "0.1", "timeout": 600, "check_delay": 0.05,
                         "fee_retry_delay": 0.1},
            "treasury": {"retry_delay": 0.05, "retry_max_delay": 1.0, "confirm_poll_interval": 0.05},
            "supervision": {"backoff_min": 0.02, "backoff_max": 0.5},
            "commands": {"poll_interval": 0.05},
            "pairs": default_pairs(),
        }
        if "exchanges" not in overrides:
            raw["exchanges"] = [placeholder_exchange(Path(keystore_path).parent)]
        for section, values in overrides.items():
            if isinstance(values, dict):
                raw.setdefault(section, {}).update(values)
            else:
                raw[section] = values
        return raw

    def config(self, db_path: Path | str, keystore_path: Path, **overrides) -> Config:
        return parse_config(self.config_dict(db_path, keystore_path, **overrides))

    def new_user(self) -> str:
        user = self.fake.new_user()
        self.users.append(user)
        return user

    def fees_for(self, pair: PairRules, percent: Decimal = Decimal("0.1")) -> FeeRequirements:
        def fee(asset_id):
            first = self.fake.withdrawal_fees[asset_id]
            same = [f for f in first if f["asset_id"] == asset_id]
            chosen = same[0] if same else first[0]
            return chosen["asset_id"], Decimal(chosen["amount"])
        base_asset, base_amount = fee(pair.base_asset_id)
        quote_asset, quote_amount = fee(pair.quote_asset_id)
        return FeeRequirements(base_asset, base_amount, quote_asset, quote_amount, percent)

    def invoice(self, pair: PairRules, base: Decimal, quote: Decimal,
                percent: Decimal = Decimal("0.1")) -> dict[str, Decimal]:
        """Per-asset amounts to send so the order is paid with these principals."""
        return required_payment(pair, self.fees_for(pair, percent), base, quote)

    def pay(self, user: str, asset_id: str, amount: Decimal | str, memo: str | bytes, **kw) -> dict:
        return self.fake.pay(self.bot_id, user, asset_id, amount, memo, **kw)

    def pay_invoice(self, user: str, pair: PairRules, order_id: str, invoice: dict[str, Decimal],
                    *, skip: tuple[str, ...] = ()) -> list[dict]:
        memo = encode_market_making(pair.pair_id, order_id)
        return [self.pay(user, asset_id, amount, memo) for asset_id, amount in invoice.items()
                if asset_id not in skip]


def _toml_key(key) -> str:
    text = str(key)
    return text if text.replace("_", "").replace("-", "").isalnum() else _toml_value(text)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def dump_toml(raw: dict) -> str:
    lines = []
    for section, values in raw.items():
        if isinstance(values, list):
            for item in values:
                lines.append(f"[[{section}]]")
                lines += [f"{k} = {_toml_value(v)}" for k, v in item.items()]
                lines.append("")
        else:
            lines.append(f"[{section}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
            lines.append("")
    return "\n".join(lines)


def build_world(fake: FakeMixin | None = None) -> World:
    fake = fake or FakeMixin().start()
    safe = install_safe(fake)
    keystore = generate_keystore()
    bot_id = fake.register_bot(keystore)
    fake.add_asset(BTC, "BTC", BTC_CHAIN, price_usd="60000")
    fake.add_asset(ETH, "ETH", ETH_CHAIN, price_usd="3000")
    fake.add_asset(USDT_ERC20, "USDT", ETH_CHAIN, precision=6, price_usd="1")
    fake.add_asset(XIN, "XIN", ETH_CHAIN, price_usd="100")
    fake.set_withdrawal_fees(BTC, [(BTC, BTC_FEE)])
    fake.set_withdrawal_fees(ETH, [(ETH, ETH_FEE)])
    fake.set_withdrawal_fees(USDT_ERC20, [(ETH, USDT_FEE_ETH)])
    fake.set_withdrawal_fees(XIN, [(ETH, USDT_FEE_ETH)])
    return World(fake=fake, keystore_dict=keystore, bot_id=bot_id, safe=safe)


def new_order_id() -> str:
    return str(uuid.uuid4())
