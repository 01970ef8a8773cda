"""The way back, as pure decisions: how much of an order's exchange balance can be withdrawn to Mixin,
which arriving deposit belongs to which return, and what is paid out to the owner.

No I/O: the exit stage (actors/order/exit.py) gathers the facts, these functions decide, the storage
units record the decision before anything is sent.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from domain.money import MIXIN_STEP, ZERO, floor8, fmt


@dataclass(frozen=True)
class WithdrawalTerms:
    """What the exchange asks of a withdrawal of one currency over one network."""
    fee: Decimal                 # taken out of the withdrawn amount (what arrives = amount − fee)
    minimum: Decimal = ZERO      # the smallest amount the exchange accepts
    step: Decimal | None = None  # amounts must be a multiple of this (precision); None = any
    enabled: bool = True


@dataclass(frozen=True)
class ReturnPlan:
    """One currency of one order on its way back."""
    code: str
    balance: Decimal        # the order's ledger balance
    withdraw: Decimal       # what is asked of the exchange (0: nothing is withdrawn)
    expected: Decimal       # what should arrive on Mixin (withdraw − fee)
    fee: Decimal            # the exchange's withdrawal fee (0 when nothing is withdrawn)
    dust: Decimal           # what stays on the exchange account, recorded for the owner's statement
    note: str = ""


class NothingToReturn(ValueError):
    pass


def plan_return(code: str, balance: Decimal, terms: WithdrawalTerms) -> ReturnPlan:
    """Split a balance into what is withdrawn and what stays as dust.

    The amount is truncated to the exchange's step (never rounded up: the order does not own more);
    below the exchange's minimum, or not more than its fee, nothing is withdrawn and the whole balance
    is dust. A negative balance is an accounting error the caller must escalate."""
    if balance < 0:
        raise ValueError(f"{code}: the order's ledger is negative ({balance}); an operator must look")
    if balance == 0:
        return ReturnPlan(code, balance, ZERO, ZERO, ZERO, ZERO, "nothing to return")
    amount = balance
    if terms.step is not None and terms.step > 0:
        amount = (balance / terms.step).to_integral_value(rounding=ROUND_DOWN) * terms.step
    amount = floor8(amount)  # what arrives on Mixin must fit its 8 decimals
    if not terms.enabled:
        return ReturnPlan(code, balance, ZERO, ZERO, ZERO, balance,
                          "withdrawals of this currency are disabled on the exchange: kept as dust")
    if amount < terms.minimum or amount <= terms.fee:
        why = (f"below the exchange's withdrawal minimum {fmt(terms.minimum)}" if amount < terms.minimum
               else f"not more than the withdrawal fee {fmt(terms.fee)}")
        return ReturnPlan(code, balance, ZERO, ZERO, ZERO, balance, f"{fmt(balance)} {code} is {why}: kept as dust")
    dust = balance - amount
    precision = (f"the exchange's precision {fmt(terms.step)}" if terms.step is not None and terms.step >= MIXIN_STEP
                 else "Mixin's 8 decimals")
    note = f"{fmt(dust)} {code} below {precision} stays as dust" if dust else ""
    return ReturnPlan(code, balance, amount, amount - terms.fee, terms.fee, dust, note)


@dataclass(frozen=True)
class ReturnCandidate:
    """A return movement waiting for its deposit on Mixin."""
    request_id: str
    asset_id: str
    txid: str            # the exchange's on-chain hash, "" until the exchange reports it
    destination: str
    tag: str
    expected: Decimal    # what should arrive


@dataclass(frozen=True)
class ArrivalMatch:
    request_id: str | None
    how: str             # "hash", "address_amount", "ambiguous", "none"


def match_arrival(*, asset_id: str, amount: Decimal, deposit_hash: str, destination: str, tag: str,
                  candidates: Iterable[ReturnCandidate]) -> ArrivalMatch:
    """Which return movement a Mixin deposit belongs to.

    By hash first (the exchange's txid is the deposit's hash; a short or long arrival still matches);
    else by destination + tag + exact expected amount, only when exactly one movement fits. Never a
    guess: two that fit is "ambiguous" and waits for the hash."""
    same_asset = [c for c in candidates if c.asset_id == asset_id]
    if deposit_hash:
        by_hash = [c for c in same_asset if c.txid and _same_hash(c.txid, deposit_hash)]
        if len(by_hash) == 1:
            return ArrivalMatch(by_hash[0].request_id, "hash")
        if len(by_hash) > 1:
            return ArrivalMatch(None, "ambiguous")
    fits = [c for c in same_asset if not c.txid and c.destination == destination and (c.tag or "") == (tag or "")
            and c.expected == amount]
    if len(fits) == 1:
        return ArrivalMatch(fits[0].request_id, "address_amount")
    return ArrivalMatch(None, "ambiguous" if fits else "none")


def _same_hash(a: str, b: str) -> bool:
    """Exchanges and Mixin disagree about a 0x prefix and case; the hash is the same."""
    def norm(h: str) -> str:
        h = h.strip().lower()
        return h[2:] if h.startswith("0x") else h
    return norm(a) == norm(b)


def plan_payouts(*, arrived: Mapping[str, Decimal], held: Mapping[str, Decimal],
                 surplus: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """What goes to the owner, per Mixin asset: what came back from the exchange, the amounts sent with
    exit requests, and fee overpayments in a third asset. Zero amounts are left out."""
    total: dict[str, Decimal] = {}
    for part in (arrived, held, surplus):
        for asset_id, amount in part.items():
            if amount < 0:
                raise ValueError(f"negative payout part {amount} for {asset_id}")
            total[asset_id] = total.get(asset_id, ZERO) + amount
    return {a: v for a, v in sorted(total.items()) if v > 0}
