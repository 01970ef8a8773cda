"""An order's settlement statement, per asset, from what is recorded — pure, Decimal only.

For every Mixin asset the order touched:

    paid in − refunded − Mixin withdrawal fees − market-making fee − deposit difference
      ± trading − exchange withdrawal fees − dust − transit difference − paid out  =  still held

`still held` is what the order holds for its owner right now (on the exchange, in flight, or arrived
and not yet paid out). For a final order (settled or refunded) it must be exactly zero: that is the
check line, and a test asserts it for every settled order.

Terms (each from a record, never from a balance):
- paid in: every snapshot routed to the order (payments, added funds, amounts sent with an exit
  request, and payments the order refused — those are refunded);
- refunded: refund movements of the order;
- Mixin withdrawal fees and the market-making fee: what the user was charged when the funds were sent
  to the exchange (at creation and for each top-up; nothing is charged if they never left Mixin);
- deposit difference: sent to the exchange − credited by it (0 unless the exchange took a deposit fee);
- trading: the ledger effect of the order's fills in this asset (buys +base −cost, sells the other
  way, −fees in the fee currency);
- exchange withdrawal fees, dust (below the exchange's minimum or precision, left on the exchange
  account and shown here), transit difference (withdrawn − fee − arrived: a short arrival);
- paid out: payout transfers to the owner.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from domain.money import ZERO, floor8, fmt
from domain.strategy.pnl import Fill as PnlFill
from domain.strategy.pnl import PnlError, compute_pnl


@dataclass(frozen=True)
class PaidIn:
    snapshot_id: str
    asset_id: str
    amount: Decimal
    purpose: str          # payment | top_up | exit | refused
    at: str = ""          # Mixin created_at


@dataclass(frozen=True)
class Outgoing:
    """A refund or payout transfer (Mixin), or a withdrawal to the exchange."""
    request_id: str
    asset_id: str
    amount: Decimal
    state: str
    snapshot_id: str | None = None   # the Mixin snapshot once confirmed
    credited: Decimal | None = None  # withdrawals to the exchange: what the exchange credited


@dataclass(frozen=True)
class Charge:
    """A fee the user was charged, in one asset."""
    asset_id: str
    kind: str             # mixin_withdrawal_fee | market_making_fee
    amount: Decimal


@dataclass(frozen=True)
class TradeFill:
    side: str
    price: Decimal
    amount: Decimal
    fee: Decimal
    fee_code: str | None


@dataclass(frozen=True)
class Return:
    """One currency withdrawn from the exchange back to the bot's Mixin wallet."""
    request_id: str
    asset_id: str
    code: str
    amount: Decimal               # withdrawn (debited on the exchange)
    fee: Decimal
    state: str
    arrived: Decimal | None = None
    arrival_snapshot_id: str | None = None
    exchange_withdrawal_id: str | None = None
    txid: str | None = None


@dataclass(frozen=True)
class Dust:
    asset_id: str
    code: str
    amount: Decimal


@dataclass(frozen=True)
class StatementInput:
    order_id: str
    state: str
    symbol: str
    base_asset_id: str
    quote_asset_id: str
    base_code: str
    quote_code: str
    symbols: Mapping[str, str] = field(default_factory=dict)   # asset id → symbol, for display
    paid_in: tuple[PaidIn, ...] = ()
    refunds: tuple[Outgoing, ...] = ()
    to_exchange: tuple[Outgoing, ...] = ()
    charges: tuple[Charge, ...] = ()
    fills: tuple[TradeFill, ...] = ()
    returns: tuple[Return, ...] = ()
    dust: tuple[Dust, ...] = ()
    payouts: tuple[Outgoing, ...] = ()
    opening_price: Decimal | None = None
    exit_price: Decimal | None = None
    final: bool = False


TERMS = ("paid_in", "refunded", "mixin_withdrawal_fees", "market_making_fee", "deposit_difference", "trading",
         "exchange_withdrawal_fees", "dust", "transit_difference", "paid_out")
SIGNS = {"paid_in": 1, "refunded": -1, "mixin_withdrawal_fees": -1, "market_making_fee": -1,
         "deposit_difference": -1, "trading": 1, "exchange_withdrawal_fees": -1, "dust": -1,
         "transit_difference": -1, "paid_out": -1}


@dataclass(frozen=True)
class AssetLine:
    asset_id: str
    symbol: str
    terms: Mapping[str, Decimal]
    held: Decimal                 # the signed sum: what the order still holds for its owner
    details: Mapping[str, list]   # the records behind each term

    def as_dict(self, final: bool) -> dict:
        out = {"asset_id": self.asset_id, "symbol": self.symbol}
        out.update({k: fmt(v) for k, v in self.terms.items()})
        out["held" if not final else "check"] = fmt(self.held)
        out["details"] = self.details
        return out


@dataclass(frozen=True)
class Statement:
    order_id: str
    state: str
    symbol: str
    final: bool
    assets: tuple[AssetLine, ...]
    trading: Mapping[str, object]

    @property
    def balanced(self) -> bool:
        """Every asset's check line is exactly zero (meaningful once the order is final)."""
        return all(line.held == 0 for line in self.assets)

    def as_dict(self) -> dict:
        return {"order_id": self.order_id, "state": self.state, "symbol": self.symbol, "final": self.final,
                "balanced": self.balanced if self.final else None,
                "equation": "paid_in - refunded - mixin_withdrawal_fees - market_making_fee - deposit_difference "
                            "+ trading - exchange_withdrawal_fees - dust - transit_difference - paid_out = "
                            + ("0" if self.final else "held"),
                "assets": [a.as_dict(self.final) for a in self.assets],
                "trading": dict(self.trading)}


def _add(totals: dict[str, dict[str, Decimal]], asset_id: str, term: str, amount: Decimal) -> None:
    totals.setdefault(asset_id, {t: ZERO for t in TERMS})[term] += amount


def build_statement(data: StatementInput) -> Statement:
    totals: dict[str, dict[str, Decimal]] = {}
    details: dict[str, dict[str, list]] = {}

    def note(asset_id: str, term: str, item: dict) -> None:
        details.setdefault(asset_id, {}).setdefault(term, []).append(item)

    code_to_asset = {data.base_code: data.base_asset_id, data.quote_code: data.quote_asset_id}
    for p in data.paid_in:
        _add(totals, p.asset_id, "paid_in", p.amount)
        note(p.asset_id, "paid_in", {"snapshot_id": p.snapshot_id, "amount": fmt(p.amount), "as": p.purpose,
                                     "at": p.at})
    for r in data.refunds:
        _add(totals, r.asset_id, "refunded", r.amount)
        note(r.asset_id, "refunded", {"request_id": r.request_id, "amount": fmt(r.amount), "state": r.state,
                                      "snapshot_id": r.snapshot_id})
    for c in data.charges:
        _add(totals, c.asset_id, "mixin_withdrawal_fees" if c.kind == "mixin_withdrawal_fee" else
             "market_making_fee", c.amount)
    for w in data.to_exchange:
        if w.credited is not None:
            _add(totals, w.asset_id, "deposit_difference", w.amount - w.credited)
        note(w.asset_id, "sent_to_exchange", {"request_id": w.request_id, "amount": fmt(w.amount),
                                              "credited": fmt(w.credited) if w.credited is not None else None,
                                              "state": w.state})
    unmapped: dict[str, Decimal] = {}
    for f in data.fills:
        sign = 1 if f.side == "buy" else -1
        deltas = [(data.base_code, sign * f.amount), (data.quote_code, -sign * f.price * f.amount)]
        if f.fee and f.fee_code:
            deltas.append((f.fee_code, -f.fee))
        for code, delta in deltas:
            asset_id = code_to_asset.get(code)
            if asset_id is None:
                unmapped[code] = unmapped.get(code, ZERO) + delta
            else:
                _add(totals, asset_id, "trading", delta)
    for r in data.returns:
        if r.state in ("queued", "sending"):
            continue  # nothing has left the exchange yet
        _add(totals, r.asset_id, "exchange_withdrawal_fees", r.fee)
        if r.arrived is not None:
            _add(totals, r.asset_id, "transit_difference", r.amount - r.fee - r.arrived)
        note(r.asset_id, "returned", {"request_id": r.request_id, "code": r.code, "withdrawn": fmt(r.amount),
                                      "fee": fmt(r.fee), "arrived": fmt(r.arrived) if r.arrived is not None else None,
                                      "state": r.state, "exchange_withdrawal_id": r.exchange_withdrawal_id,
                                      "txid": r.txid, "arrival_snapshot_id": r.arrival_snapshot_id})
    for d in data.dust:
        _add(totals, d.asset_id, "dust", d.amount)
        note(d.asset_id, "dust", {"code": d.code, "amount": fmt(d.amount),
                                  "where": "left on the exchange account (below the withdrawal minimum/precision)"})
    for p in data.payouts:
        _add(totals, p.asset_id, "paid_out", p.amount)
        note(p.asset_id, "paid_out", {"request_id": p.request_id, "amount": fmt(p.amount), "state": p.state,
                                      "snapshot_id": p.snapshot_id})
    lines = []
    for asset_id in sorted(totals, key=lambda a: (data.symbols.get(a, a), a)):
        terms = totals[asset_id]
        held = sum((SIGNS[t] * v for t, v in terms.items()), ZERO)
        lines.append(AssetLine(asset_id, data.symbols.get(asset_id, asset_id), dict(terms), held,
                               details.get(asset_id, {})))
    return Statement(data.order_id, data.state, data.symbol, data.final, tuple(lines),
                     _trading_summary(data, unmapped))


def _trading_summary(data: StatementInput, unmapped: Mapping[str, Decimal]) -> dict:
    fills = data.fills
    out: dict[str, object] = {"fills": len(fills), "volume_quote": fmt(sum((f.price * f.amount for f in fills),
                                                                          ZERO))}
    fees: dict[str, Decimal] = {}
    for f in fills:
        if f.fee and f.fee_code:
            fees[f.fee_code] = fees.get(f.fee_code, ZERO) + f.fee
    out["trading_fees"] = {k: fmt(v) for k, v in sorted(fees.items())}
    if unmapped:
        out["other_currencies"] = {k: fmt(v) for k, v in sorted(unmapped.items())}
    opening_base = sum((w.credited or ZERO for w in data.to_exchange if w.asset_id == data.base_asset_id), ZERO)
    opening_quote = sum((w.credited or ZERO for w in data.to_exchange if w.asset_id == data.quote_asset_id), ZERO)
    price = data.opening_price or (fills[0].price if fills else None) or data.exit_price
    if price is None:
        return out
    pnl_fills = [PnlFill(side=f.side, price=f.price, amount=f.amount, fee=f.fee,
                         fee_asset="base" if f.fee_code == data.base_code else "quote") for f in fills]
    try:
        pnl = compute_pnl(pnl_fills, opening_base=opening_base, opening_quote=opening_quote, opening_price=price,
                          mark_price=data.exit_price)
    except PnlError as exc:
        out["pnl_error"] = str(exc)
        return out
    out.update({"opening_price": fmt(price), "mark_price": fmt(data.exit_price) if data.exit_price else None,
                "realized_pnl_quote": fmt(floor8(pnl.realized)),
                "unrealized_pnl_quote": fmt(floor8(pnl.unrealized)) if pnl.unrealized is not None else None,
                "buys": pnl.buys, "sells": pnl.sells})
    return out


LABELS = {"paid_in": "paid in", "refunded": "refunded", "mixin_withdrawal_fees": "Mixin withdrawal fees",
          "market_making_fee": "market-making fee", "deposit_difference": "deposit difference",
          "trading": "trading (fills and fees)", "exchange_withdrawal_fees": "exchange withdrawal fees",
          "dust": "dust left on the exchange", "transit_difference": "short arrival",
          "paid_out": "paid out"}


def format_statement(statement: Statement) -> str:
    """Human-readable statement: one block per asset, the check line last."""
    lines = [f"Statement of order {statement.order_id} ({statement.symbol}) — {statement.state}"]
    for a in statement.assets:
        lines.append(f"  {a.symbol} ({a.asset_id})")
        for term in TERMS:
            value = a.terms[term]
            if value == 0 and term not in ("paid_in", "paid_out"):
                continue
            sign = "+" if SIGNS[term] > 0 else "−"
            if term == "trading":
                sign = "±"
            lines.append(f"    {sign} {LABELS[term]:<28} {fmt(value)}")
        label = "check (must be 0)" if statement.final else "still held for the owner"
        lines.append(f"    = {label:<28} {fmt(a.held)}")
    t = statement.trading
    if t.get("fills"):
        lines.append(f"  trading: {t['fills']} fills, volume {t.get('volume_quote')} (quote), fees "
                     f"{t.get('trading_fees')}, realised PnL {t.get('realized_pnl_quote')}, unrealised at exit "
                     f"{t.get('unrealized_pnl_quote')}")
    return "\n".join(lines)


def combine(parts: Iterable[Mapping[str, Decimal]]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for part in parts:
        for k, v in part.items():
            out[k] = out.get(k, ZERO) + v
    return out
