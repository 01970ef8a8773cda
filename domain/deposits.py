"""Matching an exchange deposit to the Mixin withdrawal that caused it — pure.

The exchange account is shared by many orders, so a free balance proves
nothing (Mr.Market's G3 checked balances). We match the deposit record itself:
by transaction hash when the exchange reports one, else by address + tag +
exact amount when that is unambiguous. A deposit already claimed by another
movement is never matched again.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class DepositRecord:
    deposit_id: str
    txid: str | None
    address: str | None
    tag: str | None
    amount: Decimal
    status: str          # "pending" | "ok" | "failed" | "canceled"


@dataclass(frozen=True)
class DepositMatch:
    deposit: DepositRecord | None
    how: str             # "txid", "address+amount", or why nothing matched


def normalize_hash(value: str | None) -> str:
    text = (value or "").strip().lower()
    return text[2:] if text.startswith("0x") else text


def match_deposit(deposits: Iterable[DepositRecord], *, withdrawal_hash: str | None, address: str, tag: str | None,
                  amount: Decimal, claimed: frozenset[str]) -> DepositMatch:
    candidates = [d for d in deposits if d.deposit_id not in claimed and d.status != "failed"
                  and d.status != "canceled"]
    wanted = normalize_hash(withdrawal_hash)
    if wanted:
        by_hash = [d for d in candidates if normalize_hash(d.txid) == wanted]
        if by_hash:
            return DepositMatch(by_hash[0], "txid")
    same_place = [d for d in candidates if (d.address or "") == address and (d.tag or "") == (tag or "")
                  and d.amount == amount and not normalize_hash(d.txid)]
    if len(same_place) == 1:
        return DepositMatch(same_place[0], "address+amount")
    if len(same_place) > 1:
        return DepositMatch(None, f"{len(same_place)} deposits of {amount} to {address} without a hash: ambiguous")
    return DepositMatch(None, "no deposit matches yet")
