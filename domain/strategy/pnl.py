"""Profit and inventory of one market-making order, from its fills and its
opening ledger. Pure, Decimal only, values in the quote asset.

Method: average cost. The opening base is valued at ``opening_price``.

* A buy adds ``amount`` base (minus the fee when it is charged in base) at a cost
  of ``amount * price`` quote (plus the fee when charged in quote) — buy fees
  raise the average cost.
* A sell removes ``amount`` base (plus the fee when charged in base) at the
  average cost and brings in ``amount * price`` quote (minus the fee when
  charged in quote); ``realized`` grows by what came in minus the cost removed.
* ``unrealized`` = position * mark - its cost; ``total = realized + unrealized``
  which equals ``equity(mark) - opening equity`` (tested as an identity).
* ``fees_quote`` is every fee valued in quote at its fill price; it is already
  included in ``realized`` / the cost basis (reported, not subtracted twice).

Fees charged in a third asset (e.g. an exchange token) are not modelled here:
the caller converts them to ``fee_asset="quote"``.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from domain.money import fmt
from domain.strategy.ladder import BUY, SIDES, ZERO

FEE_ASSETS = ("base", "quote")


class PnlError(ValueError):
    pass


@dataclass(frozen=True)
class Fill:
    """One execution of one of this order's orders. ``trade_id``, when given,
    deduplicates (a fill seen twice counts once)."""
    side: str
    price: Decimal
    amount: Decimal
    fee: Decimal = ZERO
    fee_asset: str = "quote"
    trade_id: str | None = None

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise ValueError(f"Fill.side must be 'buy' or 'sell', got {self.side!r}")
        if self.fee_asset not in FEE_ASSETS:
            raise ValueError(f"Fill.fee_asset must be 'base' or 'quote', got {self.fee_asset!r}")
        for name in ("price", "amount", "fee"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise TypeError(f"Fill.{name} must be a Decimal >= 0, got {value!r}")
        if self.price <= 0 or self.amount <= 0:
            raise ValueError("Fill.price and Fill.amount must be > 0")

    @property
    def fee_in_quote(self) -> Decimal:
        return self.fee * self.price if self.fee_asset == "base" else self.fee


@dataclass(frozen=True)
class PnlReport:
    base: Decimal                   # holdings now (opening + fills)
    quote: Decimal
    cost_basis: Decimal             # quote cost of the base held
    avg_cost: Decimal | None        # cost_basis / base; None when base is 0
    realized: Decimal               # net of fees
    fees_quote: Decimal             # all fees, valued in quote (already inside realized / cost basis)
    volume_quote: Decimal           # traded notional, sum of price * amount
    buys: int
    sells: int
    mark_price: Decimal | None
    unrealized: Decimal | None      # None without a mark price
    total: Decimal | None           # realized + unrealized
    equity: Decimal | None          # base * mark + quote
    opening_equity: Decimal         # opening_base * opening_price + opening_quote
    base_share: Decimal | None      # base value / equity at the mark (the skew's inventory ratio)

    def unrealized_at(self, mark: Decimal) -> Decimal:
        """The unrealized PnL this replay would report at ``mark`` (a drawdown check's, without replaying)."""
        return unrealized_value(self.base, self.cost_basis, mark)


def unrealized_value(base: Decimal, cost_basis: Decimal, mark: Decimal) -> Decimal:
    """What the base held would gain or lose if sold at ``mark``: position * mark - its cost."""
    return base * mark - cost_basis


def inventory_base_share(base: Decimal, quote: Decimal, price: Decimal) -> Decimal | None:
    """Share of the value held in base at ``price``; None when there is no value."""
    value = base * price + quote
    if value <= 0:
        return None
    return base * price / value


def compute_pnl(fills: Iterable[Fill], *, opening_base: Decimal, opening_quote: Decimal,
                opening_price: Decimal, mark_price: Decimal | None = None) -> PnlReport:
    """Replay ``fills`` in order on the opening ledger (see the module docstring).
    Raises :class:`PnlError` if a sell needs more base than the order holds (the
    per-order ledger says that cannot happen, so it is loud)."""
    base, quote = opening_base, opening_quote
    cost = opening_base * opening_price
    realized = fees = volume = ZERO
    buys = sells = 0
    seen: set[str] = set()
    for fill in fills:
        if fill.trade_id is not None:
            if fill.trade_id in seen:
                continue
            seen.add(fill.trade_id)
        notional = fill.price * fill.amount
        fee_base = fill.fee if fill.fee_asset == "base" else ZERO
        fee_quote = fill.fee if fill.fee_asset == "quote" else ZERO
        fees += fill.fee_in_quote
        volume += notional
        if fill.side == BUY:
            buys += 1
            quote -= notional + fee_quote
            base += fill.amount - fee_base
            cost += notional + fee_quote
        else:
            sells += 1
            base_out = fill.amount + fee_base
            if base_out > base:
                raise PnlError(f"sell of {fmt(base_out)} base exceeds the {fmt(base)} held")
            removed = cost if base_out == base else cost * base_out / base
            quote_in = notional - fee_quote
            realized += quote_in - removed
            cost -= removed
            base -= base_out
            quote += quote_in
    avg = cost / base if base > 0 else None
    opening_equity = opening_base * opening_price + opening_quote
    if mark_price is None:
        unrealized = total = equity = share = None
    else:
        unrealized = unrealized_value(base, cost, mark_price)
        total = realized + unrealized
        equity = base * mark_price + quote
        share = inventory_base_share(base, quote, mark_price)
    return PnlReport(base=base, quote=quote, cost_basis=cost, avg_cost=avg, realized=realized,
                     fees_quote=fees, volume_quote=volume, buys=buys, sells=sells, mark_price=mark_price,
                     unrealized=unrealized, total=total, equity=equity, opening_equity=opening_equity,
                     base_share=share)
