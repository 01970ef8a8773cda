"""What an operator (CLI) or the demo shows about a running order: holdings, trades, PnL."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from domain.money import floor8, fmt
from domain.strategy.pnl import Fill, PnlError, PnlReport, compute_pnl
from storage import exchange_repo, repo
from storage.sql import marks, run

ZERO = Decimal(0)


def opening_ledger(order_id: str) -> dict[str, Decimal]:
    """What the exchange credited to the order when it was funded (its deposit entries)."""
    totals: dict[str, Decimal] = {}
    # plain SQL (every running order's drawdown check reads it); the deposit entries only — a running order's
    # ledger grows with every fill, so they are picked by the database (substr: exact on SQLite and PostgreSQL)
    rows = run("SELECT asset, delta FROM ledger_entry WHERE order_id = ? AND substr(ref, 1, 8) = 'deposit:'",
               (order_id,)).fetchall()
    for asset, delta in rows:
        totals[asset] = totals.get(asset, ZERO) + Decimal(delta)
    return totals


def ledgers_of(order_ids: Sequence[str]) -> dict[str, tuple[dict[str, Decimal], dict[str, Decimal]]]:
    """Each order's (balances, deposits) — what ``repo.ledger_balances`` and ``opening_ledger`` give for one — for
    a chunk of orders (storage.repo.CHUNK at most) in one statement; an order without ledger entries is absent."""
    found: dict[str, tuple[dict[str, Decimal], dict[str, Decimal]]] = {}
    for order_id, asset, delta, deposit in run(
            f"SELECT order_id, asset, delta, substr(ref, 1, 8) = 'deposit:' FROM ledger_entry "
            f"WHERE order_id IN ({marks(len(order_ids))})", list(order_ids)).fetchall():
        balances, deposits = found.setdefault(order_id, ({}, {}))
        amount = Decimal(delta)
        balances[asset] = balances.get(asset, ZERO) + amount
        if deposit:
            deposits[asset] = deposits.get(asset, ZERO) + amount
    return found


def pnl_fills(trades, base: str) -> list[Fill]:
    """Fill rows as the PnL replay takes them; a fee not charged in base is taken as quote."""
    return [Fill(side=t.side, price=t.price, amount=t.amount, fee=t.fee,
                 fee_asset="base" if t.fee_currency == base else "quote", trade_id=t.fill_key) for t in trades]


@dataclass(frozen=True)
class DrawdownBasis:
    """What a running order's drawdown depends on besides the mark price: its fills replayed on its opening
    ledger (``compute_pnl`` without a mark) and what it was funded with. ``pnl_at(mark)`` and ``funded_at(mark)``
    give what ``strategy_report`` reports at that mark (the same figures, floored the same way). What does not
    depend on the mark (the realized PnL floored, the funded value once an opening price is known) is worked out
    once, here: every drawdown check and every quiet band's check (actors/order/strategy.py) asks again."""
    replay: PnlReport | None          # None: no opening price known yet (no fills either): valued at the mark
    opening: dict[str, Decimal]
    opening_price: Decimal | None
    base: str
    quote: str
    _realized: Decimal = field(init=False, repr=False, compare=False)
    _funded: Decimal | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        replay, opening = self.replay, self.opening
        object.__setattr__(self, "_realized", floor8(replay.realized) if replay is not None else ZERO)
        object.__setattr__(self, "_funded", None if self.opening_price is None else
                           opening.get(self.base, ZERO) * Decimal(fmt(self.opening_price))
                           + opening.get(self.quote, ZERO))

    def pnl_at(self, mark: Decimal) -> Decimal:
        replay = self.replay
        if replay is None:   # nothing traded, the opening valued at the mark: no gain, no loss
            return ZERO
        return self._realized + floor8(replay.unrealized_at(mark))

    def funded_at(self, mark: Decimal) -> Decimal:
        funded = self._funded
        if funded is not None:
            return funded
        return self.opening.get(self.base, ZERO) * mark + self.opening.get(self.quote, ZERO)


# the bases of orders with no fills, by what they were funded with: a restart's orders funded alike share one
_UNTRADED: dict[tuple, DrawdownBasis] = {}
UNTRADED_MAX = 4096


def drawdown_basis(order_id: str, base: str, quote: str, *, opening: dict[str, Decimal] | None = None,
                   opening_price: Decimal | None = None, trades: list | None = None) -> DrawdownBasis:
    """Read (or take, from a recovery's bulk read: ``opening``, ``opening_price`` and ``trades`` all given) what
    the drawdown check needs. Raises PnlError as ``compute_pnl`` does. An order without fills gets the basis
    (immutable) of the orders funded as it was: a restart's thousands of them replayed nothing each."""
    if opening is None or trades is None:
        opening = opening_ledger(order_id)
        trades = exchange_repo.fills_of(order_id)
        opening_price = repo.opening_price(order_id)
    if trades:
        return _basis(trades, opening, opening_price, base, quote)
    key = (base, quote, opening_price, *sorted(opening.items()))
    known = _UNTRADED.get(key)
    if known is None:
        if len(_UNTRADED) >= UNTRADED_MAX:
            _UNTRADED.clear()
        known = _UNTRADED[key] = _basis(trades, dict(opening), opening_price, base, quote)
    return known


def _basis(trades: list, opening: dict[str, Decimal], opening_price: Decimal | None, base: str,
           quote: str) -> DrawdownBasis:
    opening_price = opening_price or (trades[0].price if trades else None)
    replay = None
    if opening_price is not None:
        replay = compute_pnl(pnl_fills(trades, base), opening_base=opening.get(base, ZERO),
                             opening_quote=opening.get(quote, ZERO), opening_price=opening_price)
    return DrawdownBasis(replay, opening, opening_price, base, quote)


def strategy_report(order_id: str, base: str, quote: str, mark_price: Decimal | None) -> dict:
    opening = opening_ledger(order_id)
    trades = exchange_repo.fills_of(order_id)
    fills = pnl_fills(trades, base)
    opening_price = repo.opening_price(order_id) or (trades[0].price if trades else None) or mark_price
    report = {
        "holdings": {k: fmt(v) for k, v in sorted(repo.ledger_balances(order_id).items())},
        "opening": {k: fmt(v) for k, v in sorted(opening.items())},
        "open_orders": [{"client_order_id": o.client_order_id, "side": o.side, "price": fmt(o.price),
                         "amount": fmt(o.amount), "filled": fmt(o.filled), "state": o.state.value}
                        for o in exchange_repo.open_orders_of(order_id)],
        "trades": len(trades),
    }
    if opening_price is None:
        return report
    try:
        pnl = compute_pnl(fills, opening_base=opening.get(base, ZERO), opening_quote=opening.get(quote, ZERO),
                          opening_price=opening_price, mark_price=mark_price)
    except PnlError as exc:
        report["pnl_error"] = str(exc)
        return report
    report.update({
        "opening_price": fmt(opening_price),
        "realized_pnl": fmt(floor8(pnl.realized)),
        "unrealized_pnl": fmt(floor8(pnl.unrealized)) if pnl.unrealized is not None else None,
        "fees_quote": fmt(floor8(pnl.fees_quote)), "volume_quote": fmt(floor8(pnl.volume_quote)),
        "buys": pnl.buys, "sells": pnl.sells,
        "base_share": fmt(pnl.base_share.quantize(Decimal("0.0001"))) if pnl.base_share is not None else None,
    })
    return report
