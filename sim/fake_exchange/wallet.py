"""Wallet side of the fake exchange: coins and networks, deposit addresses, deposits, withdrawals.

Pure bookkeeping: every method takes ``now`` (seconds, from the exchange's clock); nothing
sleeps or runs on its own. ``advance(now)`` moves due deposits to success (crediting the
balance exactly once) and due withdrawals to their ``final_status`` (completed, or failure with
the funds returned), and returns the withdrawals it completed so the caller can tell listeners
(e.g. a fake Mixin that should see the deposit). ``next_due()`` says when that next matters.

Deposit addresses are deterministic per (seed, account, network): one address per network
for all coins on it, as Binance does for EVM chains. Networks that need a memo (``memoRegex``
set) use one shared address per network and a per-account numeric tag.
"""
from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal

from .accounts import Balances, InsufficientBalance
from .numbers import D, ZERO, is_multiple

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_ALNUM = "0123456789abcdefghijklmnopqrstuvwxyz"
_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

EVM_REGEX = r"^(0x)[0-9A-Fa-f]{40}$"
# network id -> (display name, address kind, explorer URL used as contractAddressUrl)
KNOWN_NETWORKS: dict[str, tuple[str, str, str]] = {
    "ETH": ("Ethereum (ERC20)", "evm", "https://etherscan.io/address/"),
    "BSC": ("BNB Smart Chain (BEP20)", "evm", "https://bscscan.com/address/"),
    "ARBITRUM": ("Arbitrum One", "evm", "https://arbiscan.io/address/"),
    "OPTIMISM": ("Optimism", "evm", "https://optimistic.etherscan.io/address/"),
    "MATIC": ("Polygon POS", "evm", "https://polygonscan.com/address/"),
    "BASE": ("Base", "evm", "https://basescan.org/address/"),
    "AVAXC": ("AVAX C-Chain", "evm", "https://snowtrace.io/address/"),
    "TRX": ("Tron (TRC20)", "tron", "https://tronscan.org/#/address/"),
    "BTC": ("Bitcoin", "btc", "https://www.blockchain.com/explorer/addresses/btc/"),
    "SOL": ("Solana", "sol", "https://solscan.io/account/"),
    "XRP": ("Ripple", "xrp", "https://xrpscan.com/account/"),
    "TON": ("The Open Network", "ton", "https://tonviewer.com/"),
    "XLM": ("Stellar Network", "xlm", "https://stellar.expert/explorer/public/account/"),
    "EOS": ("EOS", "eos", "https://bloks.io/account/"),
}
_KIND_REGEX = {
    "evm": (EVM_REGEX, ""),
    "tron": (r"^T[1-9A-HJ-NP-Za-km-z]{33}$", ""),
    "btc": (r"^(bc1|[13])[a-zA-HJ-NP-Z0-9]{25,62}$", ""),
    "sol": (r"^[1-9A-HJ-NP-Za-km-z]{32,44}$", ""),
    "xrp": (r"^r[1-9A-HJ-NP-Za-km-z]{24,34}$", r"^((?!0)[0-9]{1,10})$"),
    "ton": (r"^(EQ|UQ)[0-9A-Za-z\-_]{46}$", r"^[0-9A-Za-z\-_]{1,120}$"),
    "xlm": (r"^G[A-D]{1}[A-Z2-7]{54}$", r"^[0-9A-Za-z]{1,28}$"),
    "eos": (r"^[1-5a-z\.]{1,12}$", r"^[0-9A-Za-z\-_,]{1,120}$"),
    "generic": (r"^[0-9A-Za-z]{20,64}$", ""),
}
_NETWORK_FIELDS = {
    "network", "name", "withdrawFee", "withdrawMin", "withdrawMax", "withdrawIntegerMultiple", "depositEnable",
    "withdrawEnable", "addressRegex", "memoRegex", "isDefault", "depositDust", "minConfirm", "unLockConfirm",
    "contractAddressUrl", "contractAddress", "sameAddress", "estimatedArrivalTime", "busy",
}

DEPOSIT_PENDING, DEPOSIT_SUCCESS = 0, 1
WITHDRAW_PROCESSING, WITHDRAW_COMPLETED, WITHDRAW_CANCELLED, WITHDRAW_REJECTED, WITHDRAW_FAILURE = 4, 6, 1, 3, 5


class WalletError(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg


@dataclass
class NetworkConfig:
    coin: str
    network: str
    name: str
    kind: str
    withdraw_fee: Decimal = ZERO
    withdraw_min: Decimal = ZERO
    withdraw_max: Decimal = Decimal("9999999")
    withdraw_multiple: Decimal = Decimal("0.00000001")
    deposit_enable: bool = True
    withdraw_enable: bool = True
    address_regex: str = ""
    memo_regex: str = ""
    is_default: bool = False
    deposit_dust: Decimal = Decimal("0.00000001")
    min_confirm: int = 1
    contract_address_url: str = ""
    contract_address: str = ""
    estimated_arrival_time: int = 1

    @property
    def needs_memo(self) -> bool:
        return bool(self.memo_regex)

    def to_binance(self) -> dict:
        return {
            "network": self.network,
            "coin": self.coin,
            "withdrawIntegerMultiple": _s(self.withdraw_multiple),
            "isDefault": self.is_default,
            "depositEnable": self.deposit_enable,
            "withdrawEnable": self.withdraw_enable,
            "depositDesc": "" if self.deposit_enable else "Wallet Maintenance, Deposit Suspended",
            "withdrawDesc": "" if self.withdraw_enable else "Wallet Maintenance, Withdrawal Suspended",
            "specialTips": "Both a MEMO and an Address are required." if self.needs_memo else "",
            "specialWithdrawTips": "",
            "name": self.name,
            "resetAddressStatus": False,
            "addressRegex": self.address_regex,
            "addressRule": "",
            "memoRegex": self.memo_regex,
            "withdrawFee": _s(self.withdraw_fee),
            "withdrawMin": _s(self.withdraw_min),
            "withdrawMax": _s(self.withdraw_max),
            "withdrawInternalMin": _s(self.withdraw_multiple),
            "depositDust": _s(self.deposit_dust),
            "minConfirm": self.min_confirm,
            "unLockConfirm": 0,
            "sameAddress": self.needs_memo,
            "estimatedArrivalTime": self.estimated_arrival_time,
            "busy": False,
            "contractAddressUrl": self.contract_address_url,
            "contractAddress": self.contract_address,
        }


@dataclass
class CurrencyConfig:
    coin: str
    name: str
    networks: dict[str, NetworkConfig] = field(default_factory=dict)
    is_legal_money: bool = False
    trading: bool = True

    def default_network(self) -> NetworkConfig | None:
        for net in self.networks.values():
            if net.is_default:
                return net
        return next(iter(self.networks.values()), None)


@dataclass
class Deposit:
    id: str
    account: str
    coin: str
    network: str
    amount: Decimal
    address: str
    tag: str
    txid: str
    insert_ms: int
    credit_at: float  # clock seconds
    status: int = DEPOSIT_PENDING
    complete_ms: int | None = None


@dataclass
class Withdrawal:
    id: str
    account: str
    coin: str
    network: str
    address: str
    tag: str
    amount: Decimal  # debited from the balance
    fee: Decimal
    apply_ms: int
    complete_at: float | None  # clock seconds; None = completed only by hand
    withdraw_order_id: str = ""
    status: int = WITHDRAW_PROCESSING
    txid: str = ""
    complete_ms: int | None = None
    final_status: int = WITHDRAW_COMPLETED  # what advance() ends it with at complete_at

    @property
    def net_amount(self) -> Decimal:
        return self.amount - self.fee


def _s(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("|".join(str(p) for p in parts).encode("utf-8")).digest()


def _encode(seed_bytes: bytes, alphabet: str, length: int) -> str:
    n = int.from_bytes(seed_bytes + hashlib.sha256(seed_bytes).digest(), "big")
    out = []
    for _ in range(length):
        n, r = divmod(n, len(alphabet))
        out.append(alphabet[r])
    return "".join(out)


def make_address(kind: str, material: bytes) -> str:
    if kind == "evm":
        return "0x" + material.hex()[:40]
    if kind == "tron":
        return "T" + _encode(material, _B58, 33)
    if kind == "btc":
        return "bc1q" + _encode(material, _BECH32, 38)
    if kind == "sol":
        return _encode(material, _B58[9:], 1) + _encode(material[1:], _B58, 43)
    if kind == "xrp":
        return "r" + _encode(material, _B58, 33)
    if kind == "ton":
        return "EQ" + _encode(material, _B64URL, 46)
    if kind == "xlm":
        return "GA" + _encode(material, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 54)
    if kind == "eos":
        return "fakex" + _encode(material, "abcdefghijklmnopqrstuvwxyz12345", 7)
    return _encode(material, _ALNUM, 40)


class Wallet:
    def __init__(self, balances: Balances, *, seed: int = 1) -> None:
        self.balances = balances
        self.seed = seed
        self.currencies: dict[str, CurrencyConfig] = {}
        self.deposits: list[Deposit] = []
        self.withdrawals: list[Withdrawal] = []
        self._deposit_keys: dict[tuple[str, str, str, str], Deposit] = {}
        self._addresses: dict[tuple[str, str, str], str] = {}  # (network, address lowercased, tag) -> account
        self._tags: dict[tuple[str, str], str] = {}  # (network, tag) -> account (memo networks)
        self._n = 0

    # ------------------------------------------------------------------ configuration

    def add_currency(self, code: str, networks: list[dict], *, name: str | None = None) -> CurrencyConfig:
        cur = self.currencies.get(code) or CurrencyConfig(coin=code, name=name or code)
        if name:
            cur.name = name
        for raw in networks:
            unknown = set(raw) - _NETWORK_FIELDS
            if unknown:
                raise ValueError(f"unknown network fields: {sorted(unknown)}")
            net_id = raw["network"]
            known = KNOWN_NETWORKS.get(net_id)
            kind = known[1] if known else ("generic_memo" if raw.get("memoRegex") else "generic")
            addr_re, memo_re = _KIND_REGEX.get(kind, _KIND_REGEX["generic"])
            net = NetworkConfig(
                coin=code,
                network=net_id,
                name=raw.get("name") or (known[0] if known else net_id),
                kind=kind,
                withdraw_fee=D(raw.get("withdrawFee", "0")),
                withdraw_min=D(raw.get("withdrawMin", "0")),
                withdraw_max=D(raw.get("withdrawMax", "9999999")),
                withdraw_multiple=D(raw.get("withdrawIntegerMultiple", "0.00000001")),
                deposit_enable=bool(raw.get("depositEnable", True)),
                withdraw_enable=bool(raw.get("withdrawEnable", True)),
                address_regex=raw.get("addressRegex", addr_re),
                memo_regex=raw.get("memoRegex", memo_re),
                is_default=bool(raw.get("isDefault", False)),
                deposit_dust=D(raw.get("depositDust", "0.00000001")),
                min_confirm=int(raw.get("minConfirm", 1)),
                contract_address_url=raw.get("contractAddressUrl")
                or (known[2] if known else f"https://explorer-{net_id.lower()}.example/address/"),
                contract_address=raw.get("contractAddress", ""),
                estimated_arrival_time=int(raw.get("estimatedArrivalTime", 1)),
            )
            cur.networks[net_id] = net
        if cur.networks and not any(n.is_default for n in cur.networks.values()):
            next(iter(cur.networks.values())).is_default = True
        self.currencies[code] = cur
        return cur

    def ensure_currency(self, code: str) -> None:
        if code not in self.currencies:
            self.currencies[code] = CurrencyConfig(coin=code, name=code)

    def network(self, coin: str, network: str | None) -> NetworkConfig:
        cur = self.currencies.get(coin)
        if cur is None:
            raise WalletError(-4018, "We don't have this asset.")
        net = cur.default_network() if not network else cur.networks.get(network)
        if net is None:
            raise WalletError(-4018, f"We don't have this asset on network {network}.")
        return net

    # ------------------------------------------------------------------ deposit addresses

    def deposit_address(self, account: str, coin: str, network: str | None = None) -> tuple[str, str, str]:
        """(address, tag or "", explorer url) for ``account``; raises WalletError."""
        net = self.network(coin, network)
        if not net.deposit_enable:
            raise WalletError(-4019, "Current asset is not open for deposit.")
        kind = net.kind if net.kind != "generic_memo" else "generic"
        if net.needs_memo:
            address = make_address(kind, _digest("shared", self.seed, net.network))
            tag = self._tag_for(account, net.network)
        else:
            address = make_address(kind, _digest("addr", self.seed, account, net.network))
            tag = ""
        self._addresses[(net.network, address.lower(), tag)] = account
        url = net.contract_address_url + address
        return address, tag, url

    def _tag_for(self, account: str, network: str) -> str:
        salt = 0
        while True:
            n = int.from_bytes(_digest("tag", self.seed, account, network, salt)[:8], "big")
            tag = str(100_000_000 + n % 900_000_000)
            owner = self._tags.setdefault((network, tag), account)
            if owner == account:
                return tag
            salt += 1

    def find_account(self, network: str, address: str, tag: str, accounts: list[str]) -> str | None:
        key = (network, address.lower(), tag or "")
        if key not in self._addresses:
            # addresses are deterministic: an address nobody asked for yet still belongs to someone
            for account in accounts:
                for cur in self.currencies.values():
                    net = cur.networks.get(network)
                    if net is not None and net.deposit_enable:
                        self.deposit_address(account, cur.coin, network)
                        break
        return self._addresses.get(key)

    # ------------------------------------------------------------------ deposits

    def credit_deposit(
        self, *, account: str, coin: str, network: str, address: str, tag: str, amount: Decimal, txid: str,
        now: float, delay: float,
    ) -> Deposit:
        key = (network, txid, address.lower(), tag or "")
        existing = self._deposit_keys.get(key)
        if existing is not None:
            return existing
        net = self.network(coin, network)
        if not net.deposit_enable:
            raise ValueError(f"deposits of {coin} on {network} are disabled")
        if amount <= 0:
            raise ValueError("deposit amount must be positive")
        self._n += 1
        dep = Deposit(
            id=str(700_000_000_000_000_000 + self.seed * 1_000_000 + self._n),
            account=account,
            coin=coin,
            network=network,
            amount=amount,
            address=address,
            tag=tag or "",
            txid=txid,
            insert_ms=int(now * 1000),
            credit_at=now + max(0.0, delay),
        )
        self.deposits.append(dep)
        self._deposit_keys[key] = dep
        self.advance(now)
        return dep

    # ------------------------------------------------------------------ withdrawals

    def withdraw(
        self, *, account: str, coin: str, network: str | None, address: str, tag: str, amount: Decimal, now: float,
        delay: float | None, withdraw_order_id: str = "", final_status: int = WITHDRAW_COMPLETED,
    ) -> Withdrawal:
        net = self.network(coin, network)
        if not net.withdraw_enable:
            raise WalletError(-4019, "Current asset is not open for withdrawal.")
        if net.address_regex and not re.match(net.address_regex, address):
            raise WalletError(-4007, "Address validation is not passed.")
        if tag and net.memo_regex and not re.match(net.memo_regex, tag):
            raise WalletError(-4008, "Address tag validation is not passed.")
        if amount < net.withdraw_min:
            raise WalletError(-4022, f"Not less than the minimum pick-up quantity {_s(net.withdraw_min)}.")
        if amount > net.withdraw_max:
            raise WalletError(-4023, "Within 24 hours, the withdrawal exceeds the maximum amount.")
        if not is_multiple(amount, net.withdraw_multiple):
            raise WalletError(-4021, f"Asset withdrawal must be an integer multiple of {_s(net.withdraw_multiple)}.")
        if amount <= net.withdraw_fee:
            raise WalletError(-4028, "The amount of withdrawal must be greater than the Commission.")
        try:
            self.balances.debit(account, coin, amount)
        except InsufficientBalance:
            raise WalletError(-4026, "You have insufficient balance.") from None
        self._n += 1
        wd = Withdrawal(
            id=_digest("wd", self.seed, self._n).hex()[:32],
            account=account,
            coin=coin,
            network=net.network,
            address=address,
            tag=tag or "",
            amount=amount,
            fee=net.withdraw_fee,
            apply_ms=int(now * 1000),
            complete_at=None if delay is None else now + max(0.0, delay),
            withdraw_order_id=withdraw_order_id,
            final_status=final_status,
        )
        self.withdrawals.append(wd)
        return wd

    def finish_withdrawal(self, wd: Withdrawal, status: int, now: float) -> None:
        if wd.status != WITHDRAW_PROCESSING:
            raise ValueError(f"withdrawal {wd.id} is already final ({wd.status})")
        wd.status = status
        wd.complete_ms = int(now * 1000)
        if status == WITHDRAW_COMPLETED:
            h = _digest("tx", self.seed, wd.id).hex()
            wd.txid = "0x" + h if self.network(wd.coin, wd.network).kind == "evm" else h
        else:  # cancelled / rejected / failed: the funds come back
            self.balances.credit(wd.account, wd.coin, wd.amount)

    # ------------------------------------------------------------------ time

    def advance(self, now: float) -> list[Withdrawal]:
        for dep in self.deposits:
            if dep.status == DEPOSIT_PENDING and now >= dep.credit_at:
                dep.status = DEPOSIT_SUCCESS
                dep.complete_ms = int(now * 1000)
                self.balances.credit(dep.account, dep.coin, dep.amount)
        done = []
        for wd in self.withdrawals:
            if wd.status == WITHDRAW_PROCESSING and wd.complete_at is not None and now >= wd.complete_at:
                self.finish_withdrawal(wd, wd.final_status, now)
                if wd.status == WITHDRAW_COMPLETED:
                    done.append(wd)
        return done

    def next_due(self) -> float | None:
        """The earliest time ``advance`` has something to do (a pending deposit or a timed
        withdrawal), or None when nothing is waiting on the clock."""
        due = [d.credit_at for d in self.deposits if d.status == DEPOSIT_PENDING]
        due += [w.complete_at for w in self.withdrawals
                if w.status == WITHDRAW_PROCESSING and w.complete_at is not None]
        return min(due) if due else None

    # ------------------------------------------------------------------ Binance JSON

    @staticmethod
    def deposit_json(dep: Deposit, net: NetworkConfig) -> dict:
        return {
            "id": dep.id,
            "amount": _s(dep.amount),
            "coin": dep.coin,
            "network": dep.network,
            "status": dep.status,
            "address": dep.address,
            "addressTag": dep.tag,
            "txId": dep.txid,
            "insertTime": dep.insert_ms,
            "completeTime": dep.complete_ms if dep.complete_ms is not None else -1,
            "transferType": 0,
            "confirmTimes": f"{net.min_confirm}/{net.min_confirm}" if dep.status else f"0/{net.min_confirm}",
            "unlockConfirm": 0,
            "walletType": 0,
            "travelRuleStatus": 0,
        }

    @staticmethod
    def withdrawal_json(wd: Withdrawal) -> dict:
        out = {
            "id": wd.id,
            "amount": _s(wd.net_amount),
            "transactionFee": _s(wd.fee),
            "coin": wd.coin,
            "status": wd.status,
            "address": wd.address,
            "txId": wd.txid,
            "applyTime": _fmt_time(wd.apply_ms),
            "network": wd.network,
            "transferType": 0,
            "info": "",
            "confirmNo": 1 if wd.status == WITHDRAW_COMPLETED else 0,
            "walletType": 0,
            "txKey": "",
        }
        if wd.tag:
            out["addressTag"] = wd.tag
        if wd.withdraw_order_id:
            out["withdrawOrderId"] = wd.withdraw_order_id
        if wd.complete_ms is not None:
            out["completeTime"] = _fmt_time(wd.complete_ms)
        return out


def _fmt_time(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))
