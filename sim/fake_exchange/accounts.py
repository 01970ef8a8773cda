"""Accounts (API key + secret) and the balance ledger (free / locked per owner and asset).

Pure bookkeeping: no I/O, no clock. The matching engine and the wallet move funds only
through ``Balances`` so the ledger is the single source of truth.
"""
from __future__ import annotations

import hashlib
import hmac
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from .numbers import ZERO


class InsufficientBalance(Exception):
    """A debit or lock larger than the free balance."""


@dataclass
class Account:
    api_key: str
    secret: str
    uid: int
    can_trade: bool = True
    can_withdraw: bool = True
    can_deposit: bool = True

    def signature(self, payload: str) -> str:
        return hmac_sha256_hex(self.secret, payload)


def hmac_sha256_hex(secret: str, payload: str) -> str:
    return hmac.new(secret.encode("utf-8"), payload.encode("utf-8"), hashlib.sha256).hexdigest()


class Balances:
    """``(owner, asset) -> [free, locked]``; every method keeps both non-negative."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])

    # -- reads
    def get(self, owner: str, asset: str) -> tuple[Decimal, Decimal]:
        row = self._rows.get((owner, asset))
        return (row[0], row[1]) if row else (ZERO, ZERO)

    def free(self, owner: str, asset: str) -> Decimal:
        return self.get(owner, asset)[0]

    def assets(self, owner: str) -> dict[str, tuple[Decimal, Decimal]]:
        return {a: (r[0], r[1]) for (o, a), r in sorted(self._rows.items()) if o == owner}

    def totals(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for (_owner, asset), row in self._rows.items():
            out[asset] += row[0] + row[1]
        return dict(out)

    # -- writes
    def set_free(self, owner: str, asset: str, amount: Decimal) -> None:
        if amount < 0:
            raise ValueError("balance cannot be negative")
        self._rows[(owner, asset)][0] = amount

    def credit(self, owner: str, asset: str, amount: Decimal) -> None:
        if amount < 0:
            raise ValueError("credit must be >= 0")
        self._rows[(owner, asset)][0] += amount

    def debit(self, owner: str, asset: str, amount: Decimal) -> None:
        row = self._rows[(owner, asset)]
        if amount < 0 or row[0] < amount:
            raise InsufficientBalance(f"{owner} {asset}: free {row[0]} < {amount}")
        row[0] -= amount

    def lock(self, owner: str, asset: str, amount: Decimal) -> None:
        row = self._rows[(owner, asset)]
        if amount < 0 or row[0] < amount:
            raise InsufficientBalance(f"{owner} {asset}: free {row[0]} < {amount}")
        row[0] -= amount
        row[1] += amount

    def unlock(self, owner: str, asset: str, amount: Decimal) -> None:
        row = self._rows[(owner, asset)]
        if amount < 0 or row[1] < amount:
            raise AssertionError(f"{owner} {asset}: unlock {amount} > locked {row[1]}")
        row[1] -= amount
        row[0] += amount

    def spend_locked(self, owner: str, asset: str, amount: Decimal) -> None:
        row = self._rows[(owner, asset)]
        if amount < 0 or row[1] < amount:
            raise AssertionError(f"{owner} {asset}: spend {amount} > locked {row[1]}")
        row[1] -= amount
