"""Quiet bands (issue 14): the range of reference prices over which a quiet order's plan provably holds.

A running order whose tick did nothing sleeps until its book moves (actors/order/quiet.py). Most moves change
nothing for it: its live quotes stay within ``order_refresh_tolerance_pct`` of what it would propose. This
module says, without I/O, over which reference prices (book mids) that is certain — so the book's watcher
wakes it only when the mid leaves that range, not on every move.

:func:`quiet_band` returns ``QuietBand(low, high)`` such that for EVERY mid ``m`` with ``low <= m <= high``
(the book's both sides present, not crossed) and every other input unchanged, ``plan_cycle`` over
``build_proposals`` at ``m`` cancels nothing and places nothing — or ``None`` when that cannot be shown
simply, and then the order wakes on any move of its book top, as before. It is narrower than the exact range,
never wider: each bound below is a sufficient condition, shrunk by a relative hair for Decimal rounding.

Why each piece holds, level ``i`` of a side (proposals depend on the mid only through ``ref = mid``):

* price: the unrounded bid is ``x = ref * kb_i`` with ``kb_i = min(1 - bid_spread - i*order_level_spread,
  1 - minimum_spread)`` (base ladder, then the minimum-spread clamp); ``quantize`` rounds it down, so the
  sent price ``q`` is in ``(x - tick, x]``. The live bid ``o`` is kept while ``o*(1-tol) <= q <= o*(1+tol)``,
  which holds when ``ref*kb_i <= o*(1+tol)`` and ``ref*kb_i - tick >= o*(1-tol)``. An ask is rounded up,
  ``q`` in ``[x, x + tick)``: ``ref*ka_i >= o*(1-tol)`` and ``ref*ka_i + tick <= o*(1+tol)``. Every ``q_i`` is
  non-decreasing in ``ref`` and the levels keep their order, so the sorted pairing of ``tolerance_check``
  pairs level ``i`` with the same live order across the band.
* count: every level of both sides must be proposed across the band, and the live ladder must have exactly
  that many orders a side (the count half of ``tolerance_check``). With skew, price band and hanging orders
  off (else ``None``), amounts are the parameters' own: ``min_amount`` does not depend on ``ref``; a bid's
  notional ``q*amount > (ref*kb_i - tick)*amount``, an ask's ``>= ref*ka_i*amount``, so ``min_notional`` gives
  a lower bound; the budget: asks cost base (independent of ``ref``), the bids cost
  ``ref * Σ amount_i*kb_i * (1+maker_fee)`` quote, an upper bound. Post-only crossing never drops a level
  around a mid (a bid is below the mid, an ask above it, and the mid lies within an uncrossed book).
* plan rules that read the reference: ``minimum_spread`` cancels a bid when ``(ref-o)/ref < minimum_spread``
  (keep: ``ref >= o/(1-minimum_spread)``), an ask when ``(o-ref)/ref < minimum_spread``
  (keep: ``ref <= o/(1+minimum_spread)``) — with ``minimum_spread`` 0 too (an order on the wrong side of ref).
* the clock (refresh due, new orders allowed, ``max_order_age``) is not the book's business: the order's own
  timer wakes it then (``refresh.quiet_until``). Before the refresh is due the band still asks the tolerance
  (narrower than needed: safe).

What depends on the parameters and the market rules alone (each level's factors, the minimum-notional bound, the
base the asks cost, the quote the bids cost per unit of mid) is worked out once per (parameters, rules) pair of
objects (``_ladder``): the orders of a pair share both objects (actors/order/strategy.py remembers them), so a
restart's thousands of first bands do it once. The band itself (the bounds from the order's own quotes, and the
two checking runs of the pipeline) is remembered by what it reads (``quiet_band``) but the order's funds: the orders of
a pair with the same parameters that placed their ladders on the same book hold the same prices — they leave their
bands on the same move and replace on the same book — and funds that cover the ladder all over its band change
nothing in it (they enter only through the bids' budget bound and the asks' base, and a budget that covers every
level cuts none), so a restart's first ticks, and each later round of them, work one band out per ladder, not per
order; an order whose funds bind inside that band gets a band of its own.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from operator import attrgetter

from domain.strategy.ladder import (BUY, ONE, SELL, BookTop, Budget, MarketRules, every_stage, mid_price,
                                    round_down)
from domain.strategy.pair_memo import PairMemo
from domain.strategy.params import StrategyParams
from domain.strategy.refresh import LiveOrder, plan_cycle

_PRICE = attrgetter("price")
_SIDE_PRICE = attrgetter("side", "price")
_CLIENT_ID = attrgetter("client_order_id")
_CREATED_AT = attrgetter("created_at")
HAIR = Decimal("1e-12")   # relative margin for Decimal rounding of the bounds (the pipeline computes 28 digits)


@dataclass(frozen=True)
class QuietBand:
    """Book mids over which a quiet plan holds, both ends included."""
    low: Decimal
    high: Decimal

    def holds(self, top: BookTop) -> bool:
        """The plan holds at this book top (its mid within the band; no mid — a side missing or crossed — no)."""
        mid = mid_price(top)
        return mid is not None and self.low <= mid <= self.high


@dataclass(frozen=True)
class _Ladder:
    """What the band needs of (parameters, market rules) alone, the same for every order quoting with them."""
    levels: tuple[tuple[Decimal, Decimal], ...]   # (kb_i, ka_i) of each level, the minimum spread applied
    low: Decimal          # the lowest mid at which every level passes the exchange's minimum notional
    base_needed: Decimal  # the base every ask costs
    bid_cost: Decimal     # quote the bids cost per unit of mid: Σ amount_i*kb_i * (1 + maker_fee)


_LADDERS: PairMemo[_Ladder | None] = PairMemo(256)
# the bands worked out lately for ladders whose funds cover them (quiet_band), by what they depend on
_SHARED: PairMemo[QuietBand | None] = PairMemo(4096)
# ... and for orders whose funds bind inside their ladder's band, by their amounts too
_BANDS: PairMemo[QuietBand | None] = PairMemo(4096)


def _ladder(params: StrategyParams, rules: MarketRules) -> _Ladder | None:
    """The (parameters, rules) part of the band (None: no band can be shown with them), worked out once per
    pair of objects: the orders of a pair share both (actors/order/strategy.py keeps one of each)."""
    return _LADDERS.get((id(params), id(rules)), params, rules, _ladder_of, params, rules)


def _ladder_of(params: StrategyParams, rules: MarketRules) -> _Ladder | None:
    tick, ms = rules.tick_size, params.minimum_spread
    low = Decimal(0)
    levels = []
    bid_weight = Decimal(0)
    base_needed = Decimal(0)
    for i in range(params.order_levels):
        amount = round_down(params.level_amount(i), rules.step_size)
        if amount <= 0 or amount < rules.min_amount:
            return None
        extra = i * params.order_level_spread
        kb = ONE - params.bid_spread - extra
        ka = ONE + params.ask_spread + extra
        if ms > 0:
            kb, ka = min(kb, ONE - ms), max(ka, ONE + ms)
        if kb <= 0:
            return None
        levels.append((kb, ka))
        # exchange minimum notional
        if rules.min_notional > 0:
            low = max(low, (rules.min_notional / amount + tick) / kb, rules.min_notional / (amount * ka))
        bid_weight += params.level_amount(i) * kb
        base_needed += params.level_amount(i)
    return _Ladder(levels=tuple(levels), low=low, base_needed=base_needed,
                   bid_cost=bid_weight * (ONE + rules.maker_fee))


def quiet_band(*, params: StrategyParams, book: BookTop, ref: Decimal | None, rules: MarketRules,
               holdings: Budget, live: Sequence[LiveOrder], now: float, last_refresh_at: float | None,
               last_fill_at: float | None, last_fill_price: Decimal | None) -> QuietBand | None:
    """The band of mids over which the plan made at ``book`` (which did nothing) still does nothing, or None
    (see the module docstring). ``holdings``: the order's ledger (its whole funds on the exchange).

    Worked out once per ladder, not per order: the band of funds that cover the ladder over it (``_shared``) is
    every such order's band, whatever its amounts — its funds enter the band only through the bids' budget bound
    and the base the asks cost, and a pipeline whose budget covers every level proposes the same ladder whatever
    the budget (``apply_budget`` cuts nothing; skew is off here). Only an order whose funds bind inside that band
    gets a band of its own (``_band``, remembered by its amounts too)."""
    key = _key(params, book, ref, rules, live, now, last_fill_price)
    if key is None:
        return None
    shared = _SHARED.get(key, params, rules, _shared, params, book, ref, rules, live, now)
    return _for_funds(shared, key, params, book, ref, rules, holdings, live, now, compute=True)


def known_band(*, params: StrategyParams, book: BookTop, ref: Decimal | None, rules: MarketRules,
               holdings: Budget, live: Sequence[LiveOrder], now: float,
               last_fill_price: Decimal | None) -> QuietBand | None:
    """The band ``quiet_band`` remembers for these very inputs (an order of the same parameters and ladder, with
    funds that cover it over the band, worked it out at this reference), else None — nothing is worked out here.

    A band found says the plan does nothing at ``ref`` whatever the order's clock (``last_refresh_at``,
    ``last_fill_at``): its key holds ``ref`` (a band is remembered only with its reference inside it), and what
    it proves holds with the refresh due — the one clock state that checks more than the reference's distance
    and the orders' age, which the key holds too — and with active orders resting no plan places anything unless
    it cancels them. So a tick may skip the pipeline on it (actors/order/strategy.py: a restart's first ticks of
    orders alike)."""
    key = _key(params, book, ref, rules, live, now, last_fill_price)
    if key is None:
        return None
    shared = _SHARED.peek(key, params, rules)
    return None if shared is None else _for_funds(shared, key, params, book, ref, rules, holdings, live, now,
                                                  compute=False)


def _for_funds(shared: QuietBand | None, key: tuple, params: StrategyParams, book: BookTop, ref: Decimal,
               rules: MarketRules, holdings: Budget, live: Sequence[LiveOrder], now: float, *,
               compute: bool) -> QuietBand | None:
    """The order's band from its ladder's ``shared`` band: that band when its funds cover the ladder all over it;
    None when the shared band is None (an order's own band lies inside it: none either, or narrower — None is
    safe) or its base does not cover the asks; else its own (``compute``: worked out if not remembered)."""
    if shared is None:
        return None
    ladder = _ladder(params, rules)
    if ladder is None or ladder.base_needed > holdings.base:
        return None
    # the bids' budget bound (``_band``: high <= quote / bid_cost, then the hair off): not below the shared high
    if holdings.quote / ladder.bid_cost - ref * HAIR >= shared.high:
        return shared
    own = key + (holdings.base, holdings.quote)
    if not compute:
        return _BANDS.peek(own, params, rules)
    return _BANDS.get(own, params, rules, _band, params, book, ref, rules, holdings, live, now)


def _key(params: StrategyParams, book: BookTop, ref: Decimal | None, rules: MarketRules,
         live: Sequence[LiveOrder], now: float, last_fill_price: Decimal | None) -> tuple | None:
    """``quiet_band``'s checks of its inputs (None: no band can be shown) and what it remembers a ladder's band by."""
    tol = params.order_refresh_tolerance_pct
    mid = mid_price(book)
    if (mid is None or ref is None or ref != mid or tol < 0 or params.hanging_orders_enabled
            or params.inventory_skew_enabled or params.price_ceiling > 0 or params.price_floor > 0
            or params.price_source_exchange is not None   # the caller checks it is another venue's; be plain
            or not (params.price_source == "mid"
                    or (params.price_source == "last_own_fill" and last_fill_price is None))):
        return None
    levels = params.order_levels
    if len(live) != 2 * levels:
        return None
    # everything the band and its checking runs read of the order's own state but its funds (its orders' client
    # ids only through their being distinct, their age only through its being past max_order_age at ``now``)
    # (an order past max_order_age at ``now``: the oldest is; attrgetter maps — no Python frame per order)
    return (id(params), id(rules), ref, tuple(map(_SIDE_PRICE, live)),
            len(set(map(_CLIENT_ID, live))) == len(live),
            bool(live) and now - min(map(_CREATED_AT, live)) > params.max_order_age)


def _shared(params: StrategyParams, book: BookTop, ref: Decimal, rules: MarketRules, live: Sequence[LiveOrder],
            now: float) -> QuietBand | None:
    """The band of an order whose funds cover this ladder all over it: ``_band`` with funds no bound binds (the
    asks' base, and more quote than the bids cost at any real mid — its checking runs then fund every level, as
    such an order's do)."""
    ladder = _ladder(params, rules)
    if ladder is None:
        return None
    return _band(params, book, ref, rules, Budget(base=ladder.base_needed, quote=_UNBOUND), live, now)


_UNBOUND = Decimal("1e30")   # quote whose bids' budget bound binds at no real mid (quote / bid_cost: ~1e30 / amount)


def _band(params: StrategyParams, book: BookTop, ref: Decimal, rules: MarketRules, holdings: Budget,
          live: Sequence[LiveOrder], now: float) -> QuietBand | None:
    """quiet_band past its checks of the parameters and the live orders' count."""
    tol, levels = params.order_refresh_tolerance_pct, params.order_levels
    bids = sorted([o for o in live if o.side == BUY], key=_PRICE, reverse=True)   # innermost first
    asks = sorted([o for o in live if o.side == SELL], key=_PRICE)
    if len(bids) != levels or len(asks) != levels:
        return None
    ladder = _ladder(params, rules)
    if ladder is None or ladder.base_needed > holdings.base:
        return None
    tick, ms, down, up = rules.tick_size, params.minimum_spread, ONE - tol, ONE + tol
    low, high = ladder.low, holdings.quote / ladder.bid_cost   # exchange minimum notional; the bids' budget
    for i, (kb, ka) in enumerate(ladder.levels):
        bid, ask = bids[i], asks[i]
        # tolerance of the live bid and ask against the level's proposal
        low = max(low, (bid.price * down + tick) / kb, ask.price * down / ka)
        high = min(high, bid.price * up / kb, (ask.price * up - tick) / ka)
        # minimum_spread rule of plan_cycle (also at 0: an order on the wrong side of the reference)
        low = max(low, bid.price / (ONE - ms))
        high = min(high, ask.price / (ONE + ms))
    margin = ref * HAIR
    band = QuietBand(low=low + margin, high=high - margin)
    if not band.low <= ref <= band.high:
        return None   # the plan holds now for another reason (the refresh is not due): wake on any move
    # Belt and braces: the real pipeline must agree at both ends (a mistake above must not leave orders asleep).
    for end in (band.low, band.high):
        top = BookTop(best_bid=end, best_ask=end)
        proposals, _ = every_stage(params, end, top, rules, holdings, holdings.base, holdings.quote)
        plan = plan_cycle(params=params, proposals=proposals, live=live, now=now, last_refresh_at=-1e18,
                          last_fill_at=None, ref_price=end)
        if plan.cancel or plan.place:
            return None
    return band

