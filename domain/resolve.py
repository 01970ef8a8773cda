"""Where an operator may move an order out of `attention`, and what each move does to the money.

Pure: the facts come from the order's records (storage.commands.resolve_facts); the CLI prints the
money effect before anything is queued (`--yes` to confirm); the order's actor checks again before it
moves (the facts may have changed in between).
"""
from __future__ import annotations

from dataclasses import dataclass

from domain.states import OrderState

S = OrderState


@dataclass(frozen=True)
class ResolveFacts:
    state: OrderState
    exchange: str
    funded: bool                # withdrawals to the exchange were written (funds left Mixin)
    ledger_open: bool           # the exchange credited them: the order has a ledger there
    returns: bool               # withdrawals back from the exchange were written
    returns_arrived: bool       # ... and every one of them arrived on Mixin
    holdings: str = ""          # the ledger, for messages ("0.1 BTC, 5000 USDT")


class ResolveRefused(ValueError):
    pass


def resolve_options(f: ResolveFacts) -> dict[OrderState, str]:
    """Every legal target with what it does to the money."""
    out: dict[OrderState, str] = {}
    if not f.funded:
        out[S.PAYMENT_PENDING] = ("back to waiting for payment: the payments stay in its tally and a new payment "
                                  "deadline starts now")
        out[S.REFUNDING] = "every payment it accepted is refunded to its payer (one Mixin transfer per payment)"
        out[S.REFUNDED] = ("closed as refunded BY HAND: mmflow sends nothing more (use only if you returned the "
                           "payments yourself)")
    if f.funded and not f.ledger_open:
        out[S.WITHDRAWING] = (f"mmflow follows the withdrawals to {f.exchange} again and opens the ledger once they "
                              f"are credited; nothing new is sent")
    if f.ledger_open and not f.returns:
        out[S.RUNNING] = f"quotes again on {f.exchange} with its own funds ({f.holdings or 'its ledger'})"
        out[S.PAUSED] = f"keeps its funds on {f.exchange} ({f.holdings or 'its ledger'}) without quoting"
        out[S.STOPPING] = (f"exits: its quotes are cancelled, its funds ({f.holdings or 'its ledger'}) come back "
                           f"from {f.exchange} to Mixin and are paid to the owner")
    if f.returns and not f.returns_arrived:
        out[S.RETURNING_FUNDS] = (f"mmflow follows the withdrawals from {f.exchange} again (each attempt is looked "
                                  f"up before anything is sent again) and pays the owner what arrives")
    if f.returns and f.returns_arrived:
        out[S.SETTLING] = "pays the owner what arrived on Mixin (one transfer per asset)"
    out[S.SETTLED] = ("closed as settled BY HAND: mmflow sends nothing more; the statement is frozen as it stands "
                      "(use only if you settled the money yourself)")
    return out


def check_resolve(f: ResolveFacts, target: OrderState | str) -> str:
    """The money effect of moving to `target`; ResolveRefused if it is not a legal target now."""
    if f.state is not S.ATTENTION:
        raise ResolveRefused(f"order is {f.state}, not in attention: nothing to resolve")
    try:
        target = OrderState(target)
    except ValueError:
        raise ResolveRefused(f"{target!r} is not an order state") from None
    options = resolve_options(f)
    if target not in options:
        legal = ", ".join(s.value for s in options)
        raise ResolveRefused(f"{target} is not a legal target for this order now; legal: {legal}")
    return options[target]
