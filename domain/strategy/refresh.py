"""Refresh cycle of the market-making loop (issue #5, stage 9): what to cancel,
keep and place on this tick. Pure: the caller owns the clock, the timers and the
order tracking; this module only decides.

How a cycle works (hummingbot PMM, market-making-peers.md §1.1, adapted):

* The ladder is refreshed **as a set**, in two phases: first every non-hanging
  ("active") order is cancelled; new orders are placed only on a later call,
  once no active order is left (i.e. every cancel is confirmed — an order whose
  cancel is in flight must still be passed in ``live``). So the funds of the old
  ladder are never counted twice, and a cancel that loses a race with a fill
  cannot leave two ladders resting.
* Only the orders passed in ``live`` — which must be *this* market-making
  order's own orders — can ever appear in ``cancel``. Unlike Mr.Market, nothing
  else on the pair or the shared account is touched.

Active orders (every rule is checked on each call):

1. closer to the reference than ``minimum_spread`` (bid ``(ref-price)/ref``,
   ask ``(price-ref)/ref``) → cancel the whole active ladder;
2. any older than ``max_order_age`` → cancel the whole active ladder, even if its
   prices are fine;
3. once the refresh is due: keep them if, per side, the count equals the
   proposals' and every price (sorted, innermost first) is within
   ``order_refresh_tolerance_pct`` of its proposal (``|new-old|/old <= tol``;
   sizes are not compared; a negative tolerance always replaces); otherwise
   cancel the whole active ladder. After the refresh time has passed the check
   runs on every call, so orders are replaced as soon as they leave tolerance.

Timers: the refresh is due at ``last_refresh_at + order_refresh_time``
(``last_refresh_at`` = when the current ladder was placed). After a fill newer
than the ladder (``last_fill_at >= last_refresh_at``), new orders wait until
``last_fill_at + filled_order_delay`` and the refresh check comes no later than
that moment (hummingbot: ``create_ts = fill + delay``,
``cancel_ts = min(cancel_ts, create_ts)``). Placement also waits for the refresh
time, so orders that vanish early (rejected, cancelled by the exchange) are not
re-sent every tick.

Hanging orders (``hanging_orders_enabled``): the other side of a filled pair (see
:func:`orders_to_hang`) stays resting outside the refresh cycle — not cancelled by
refresh, tolerance, age or minimum spread — until it is more than
``hanging_orders_cancel_pct`` away from the reference price. (Hummingbot also
renews old hanging orders by cancel + re-place at the same price; mmflow does
not re-place them.) With hanging orders disabled, ``hanging`` flags are ignored
and every live order is active.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from domain.money import fmt
from domain.strategy.ladder import BUY, ONE, SELL, SIDES, ZERO, Budget, MarketRules, Proposal
from domain.strategy.params import StrategyParams


@dataclass(frozen=True)
class LiveOrder:
    """One of this market-making order's orders resting on the exchange (or with a
    cancel still in flight). ``level`` is the proposal level it was placed for,
    when known (used to pair a filled order with its other side)."""
    client_order_id: str
    side: str
    price: Decimal
    amount: Decimal
    remaining: Decimal
    created_at: float
    hanging: bool = False
    level: int | None = None

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise ValueError(f"LiveOrder.side must be 'buy' or 'sell', got {self.side!r}")
        price, amount, remaining = self.price, self.amount, self.remaining
        if (type(price) is Decimal and type(amount) is Decimal and type(remaining) is Decimal   # the common case
                and price.is_finite() and amount.is_finite() and remaining.is_finite()):
            return
        for name in ("price", "amount", "remaining"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite():
                raise TypeError(f"LiveOrder.{name} must be a finite Decimal, got {value!r}")


def resting(client_order_id: str, side: str, price: Decimal, amount: Decimal, filled: Decimal, created_at: float,
            hanging: bool, level: int | None) -> LiveOrder:
    """A stored exchange order as the strategy keeps it (what is left of it: its amount less its fills)."""
    return LiveOrder(client_order_id=client_order_id, side=side, price=price, amount=amount,
                     remaining=amount - filled, created_at=created_at, hanging=hanging, level=level)


@dataclass(frozen=True)
class CyclePlan:
    """What to do now. ``cancel`` and ``keep`` partition the given live orders;
    ``place`` is non-empty only when no active order remains."""
    cancel: tuple[str, ...]
    place: tuple[Proposal, ...]
    keep: tuple[str, ...]
    reason: str


def _distance(order: LiveOrder, ref: Decimal) -> Decimal:
    """Signed distance from the reference: positive when the order is on its own side of ref."""
    return (ref - order.price) / ref if order.side == BUY else (order.price - ref) / ref


def tolerance_check(active: Sequence[LiveOrder], proposals: Sequence[Proposal],
                    tolerance: Decimal) -> tuple[bool, str]:
    """Hummingbot's refresh tolerance: ``(True, why)`` to keep ``active`` as they are."""
    if tolerance < 0:
        return False, "tolerance check disabled"
    old_bids: list[Decimal] = []
    old_asks: list[Decimal] = []
    new_bids: list[Decimal] = []
    new_asks: list[Decimal] = []
    for o in active:   # one pass each (a side is BUY or SELL: LiveOrder and Proposal check it)
        (old_bids if o.side == BUY else old_asks).append(o.price)
    for p in proposals:
        (new_bids if p.side == BUY else new_asks).append(p.price)
    for side, old, new in ((BUY, old_bids, new_bids), (SELL, old_asks, new_asks)):   # SIDES' order
        if len(old) > 1:   # innermost first
            old.sort(reverse=(side == BUY))
        if len(new) > 1:
            new.sort(reverse=(side == BUY))
        if len(old) != len(new):
            return False, f"{side} count {len(old)} -> {len(new)}"
        for o, n in zip(old, new):
            if abs(n - o) / o > tolerance:
                return False, f"{side} price {fmt(o)} -> {fmt(n)} beyond tolerance {fmt(tolerance)}"
    return True, _within_tolerance(tolerance)


@functools.lru_cache(maxsize=256)
def _within_tolerance(tolerance: Decimal) -> str:
    """The reason of a kept ladder (the same few tolerances every tick of every order: formatted once each)."""
    return f"every price within tolerance {fmt(tolerance)}"


def _clock(params: StrategyParams, last_refresh_at: float | None,
           last_fill_at: float | None) -> tuple[float, float, float | None]:
    """The plan's clock: (when the refresh comes due, when new orders are allowed, the fill gate or None). A fill
    since the last refresh brings both to ``filled_order_delay`` after it (the refresh no later than that)."""
    refresh_due_at = -math.inf if last_refresh_at is None else last_refresh_at + params.order_refresh_time
    if last_fill_at is not None and (last_refresh_at is None or last_fill_at >= last_refresh_at):
        fill_gate = last_fill_at + params.filled_order_delay
        return min(refresh_due_at, fill_gate), fill_gate, fill_gate
    return refresh_due_at, refresh_due_at, None


def _kept_as_is(params: StrategyParams, proposals: Sequence[Proposal], live: Sequence[LiveOrder], now: float,
                last_refresh_at: float | None, last_fill_at: float | None,
                ref_price: Decimal | None) -> CyclePlan | None:
    """The common tick of a running order — no hanging order, nothing too close or aged, so the ladder is kept
    (refresh not due, or due and within tolerance) — decided with no intermediate lists; None for any other
    case, which :func:`plan_cycle` then decides in full. Returns exactly the plan the full path would (the
    rules and their order are the same; tests/test_refresh_fast.py compares the two on generated inputs)."""
    if not live or ref_price is None:
        return None
    hanging_on = params.hanging_orders_enabled
    minimum_spread = params.minimum_spread
    max_order_age = params.max_order_age
    ids: list[str] = []
    for order in live:
        if hanging_on and order.hanging:
            return None
        # _distance(order, ref_price), inlined (every tick of every running order)
        distance = ((ref_price - order.price) if order.side == BUY else (order.price - ref_price)) / ref_price
        if distance < minimum_spread or now - order.created_at > max_order_age:
            return None
        ids.append(order.client_order_id)
    keep = tuple(ids)
    if len(set(keep)) != len(keep):   # a repeated client id: the full path keeps the first of each
        return None
    refresh_due_at = _clock(params, last_refresh_at, last_fill_at)[0]
    if now >= refresh_due_at:
        keep_ok, detail = tolerance_check(live, proposals, params.order_refresh_tolerance_pct)
        if not keep_ok:
            return None
        reason = "keep: " + detail
    else:
        reason = f"keep: refresh in {refresh_due_at - now:.1f} s"
    return CyclePlan(cancel=(), place=(), keep=keep, reason=reason)


def plan_cycle(*, params: StrategyParams, proposals: Sequence[Proposal], live: Sequence[LiveOrder],
               now: float, last_refresh_at: float | None, last_fill_at: float | None,
               ref_price: Decimal | None, replace: bool = False) -> CyclePlan:
    """Decide this tick (see the module docstring). ``proposals`` come from
    ``ladder.build_proposals`` with the budget of :func:`quoting_budget`;
    ``ref_price`` None (no market data) places nothing and cancels only by age.

    ``replace`` (the venue cancels and places in one request): a ladder cancelled when new orders may be
    placed is replaced in the same call — ``place`` holds the new ladder next to ``cancel``, to be paired
    by :func:`pair_replacements`. Each pair is atomic on the venue (the old order's funds are free before
    the new one is checked), so the two-phase rule's reason — never count funds twice — still holds."""
    kept = _kept_as_is(params, proposals, live, now, last_refresh_at, last_fill_at, ref_price)
    if kept is not None:
        return kept
    return _plan_in_full(params=params, proposals=proposals, live=live, now=now, last_refresh_at=last_refresh_at,
                         last_fill_at=last_fill_at, ref_price=ref_price, replace=replace)


def _plan_in_full(*, params: StrategyParams, proposals: Sequence[Proposal], live: Sequence[LiveOrder],
                  now: float, last_refresh_at: float | None, last_fill_at: float | None,
                  ref_price: Decimal | None, replace: bool) -> CyclePlan:
    """:func:`plan_cycle` for every case, the kept ladder included (what :func:`_kept_as_is` shortcuts)."""
    hanging_on = params.hanging_orders_enabled
    unique: dict[str, LiveOrder] = {}
    for order in live:
        unique.setdefault(order.client_order_id, order)
    orders = list(unique.values())
    if hanging_on:
        hanging = [o for o in orders if o.hanging]
        active = [o for o in orders if not o.hanging]
    else:   # every live order is active
        hanging, active = [], orders
    cancel: list[str] = []
    reasons: list[str] = []

    # hanging orders: only the distance from the reference price can end them
    if ref_price is not None:
        far = [o for o in hanging if abs(o.price - ref_price) / ref_price > params.hanging_orders_cancel_pct]
        for o in far:
            cancel.append(o.client_order_id)
        if far:
            reasons.append(f"cancel {len(far)} hanging order(s) more than "
                           f"{fmt(params.hanging_orders_cancel_pct)} from reference {fmt(ref_price)}")

    # timers
    refresh_due_at, create_at, fill_gate = _clock(params, last_refresh_at, last_fill_at)

    place: tuple[Proposal, ...] = ()
    if active:
        why_cancel: list[str] = []
        if ref_price is not None:
            close = [o for o in active if _distance(o, ref_price) < params.minimum_spread]
            if close:
                why_cancel.append(f"{len(close)} order(s) within minimum_spread {fmt(params.minimum_spread)} "
                                  f"of reference {fmt(ref_price)}")
        aged = [o for o in active if now - o.created_at > params.max_order_age]
        if aged:
            why_cancel.append(f"{len(aged)} order(s) older than max_order_age {params.max_order_age:g} s")
        if not why_cancel and now >= refresh_due_at:
            if ref_price is None:
                reasons.append("refresh due but no reference price: keeping the ladder")
            else:
                keep_ok, detail = tolerance_check(active, proposals, params.order_refresh_tolerance_pct)
                if keep_ok:
                    reasons.append(f"keep: {detail}")
                else:
                    why_cancel.append(f"refresh: {detail}")
        elif not why_cancel:
            reasons.append(f"keep: refresh in {refresh_due_at - now:.1f} s")
        if why_cancel:
            cancel.extend(o.client_order_id for o in active)
            reasons.append("cancel the ladder: " + "; ".join(why_cancel))
            if replace and ref_price is not None and now >= create_at and proposals:
                place = tuple(proposals)
                reasons.append(f"replace with {len(place)} order(s)")
    else:
        if ref_price is None:
            reasons.append("no reference price: not quoting")
        elif now < create_at:
            if fill_gate is not None and create_at == fill_gate:
                reasons.append(f"hold: filled_order_delay, {create_at - now:.1f} s left")
            else:
                reasons.append(f"hold: next ladder in {create_at - now:.1f} s (order_refresh_time)")
        elif not proposals:
            reasons.append("nothing to place (no proposals)")
        else:
            place = tuple(proposals)
            reasons.append(f"place {len(place)} order(s)")

    cancelled = set(cancel)
    keep = tuple(o.client_order_id for o in orders if o.client_order_id not in cancelled)
    return CyclePlan(cancel=tuple(cancel), place=place, keep=keep, reason="; ".join(reasons))


def quiet_until(*, params: StrategyParams, live: Sequence[LiveOrder], now: float, last_refresh_at: float | None,
                last_fill_at: float | None) -> float:
    """Until when :func:`plan_cycle` decides as it did at ``now`` if nothing but the clock moves: the next of its
    clock's moments still ahead (the refresh coming due, new orders allowed, an active order ageing past
    ``max_order_age``); ``math.inf`` when none is. A moment already passed changes nothing more: its rule reads
    the same inputs on every later call. A caller whose last plan did nothing may skip planning until then while
    the proposals' inputs (book, reference, holdings, live orders, parameters) stay the same."""
    refresh_due_at, create_at, _fill_gate = _clock(params, last_refresh_at, last_fill_at)
    hanging_on = params.hanging_orders_enabled
    max_order_age = params.max_order_age
    until = math.inf   # the least moment after now (a plain loop: every quiet tick of every order)
    if now < refresh_due_at < until:
        until = refresh_due_at
    if now < create_at < until:
        until = create_at
    for o in live:
        if not (hanging_on and o.hanging):
            moment = o.created_at + max_order_age
            if now < moment < until:
                until = moment
    return until


def pair_replacements(cancel: Sequence[LiveOrder], place: Sequence[Proposal]
                      ) -> tuple[tuple[tuple[str, Proposal], ...], tuple[str, ...], tuple[Proposal, ...]]:
    """Pair the orders a replacing plan cancels with its new proposals for cancel-replace requests: per side,
    innermost first (bids by price high to low, proposals by level). Returns (pairs of old client id and
    proposal, cancels left unpaired, proposals left unpaired) — a side whose count changed leaves some."""
    pairs: list[tuple[str, Proposal]] = []
    lone_cancels: list[str] = []
    lone_places: list[Proposal] = []
    for side in SIDES:
        old = sorted((o for o in cancel if o.side == side), key=lambda o: o.price, reverse=(side == BUY))
        new = sorted((p for p in place if p.side == side), key=lambda p: p.level)
        pairs.extend((o.client_order_id, p) for o, p in zip(old, new))
        lone_cancels.extend(o.client_order_id for o in old[len(new):])
        lone_places.extend(new[len(old):])
    return tuple(pairs), tuple(lone_cancels), tuple(lone_places)


def orders_to_hang(params: StrategyParams, live: Sequence[LiveOrder], filled: LiveOrder) -> tuple[str, ...]:
    """Call on a fill (partial or complete) of ``filled``: the client ids of the
    orders that become hanging — the other side of the filled order's pair, i.e.
    the active opposite-side order of the same level. Without levels, pairs are
    matched by rank (innermost bid with innermost ask, and so on); every active
    order belongs to the same ladder because ladders are replaced as a set.
    Empty when hanging orders are off or the filled order was itself hanging."""
    if not params.hanging_orders_enabled or filled.hanging:
        return ()
    opposite = SELL if filled.side == BUY else BUY
    candidates = [o for o in live if o.side == opposite and not o.hanging
                  and o.client_order_id != filled.client_order_id]
    if filled.level is not None and all(o.level is not None for o in candidates):
        return tuple(o.client_order_id for o in candidates if o.level == filled.level)
    same_side = {o.client_order_id: o for o in live if o.side == filled.side and not o.hanging}
    same_side[filled.client_order_id] = filled
    ranked = sorted(same_side.values(), key=lambda o: o.price, reverse=(filled.side == BUY))
    rank = [o.client_order_id for o in ranked].index(filled.client_order_id)
    others = sorted(candidates, key=lambda o: o.price, reverse=(opposite == BUY))
    return (others[rank].client_order_id,) if rank < len(others) else ()


def quoting_budget(ledger: Budget, live: Sequence[LiveOrder], params: StrategyParams,
                   rules: MarketRules) -> Budget:
    """The budget to build proposals with: this order's whole holdings on the
    exchange (``ledger`` = free + locked in its own orders, never the shared
    account's balance) minus what its **hanging** orders lock (a hanging buy locks
    ``remaining * price * (1 + maker_fee)`` quote, a sell ``remaining`` base).

    Funds locked by active orders are counted as available on purpose: the
    tolerance check compares the live ladder with the ladder those funds would
    buy, and :func:`plan_cycle` places a new ladder only once every active order
    is gone, so at placement time this equals the truly free funds."""
    base, quote = ledger.base, ledger.quote
    if not params.hanging_orders_enabled and base >= ZERO and quote >= ZERO and type(ledger) is Budget:
        return ledger   # what the lines below would make of it (immutable): every tick of every order made one
    if params.hanging_orders_enabled:
        for o in live:
            if not o.hanging:
                continue
            if o.side == BUY:
                quote -= o.remaining * o.price * (ONE + rules.maker_fee)
            else:
                base -= o.remaining
    return Budget(base=max(base, ZERO), quote=max(quote, ZERO))
