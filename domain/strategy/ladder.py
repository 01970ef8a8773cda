"""Quoting math of the market-making loop (issue #5, stage 9): pure functions, Decimal only.

The pipeline (:func:`build_proposals`) runs, in this order:

1. :func:`base_ladder` — ``order_levels`` bids and asks around the reference price;
2. :func:`apply_price_band` — ``price_ceiling`` / ``price_floor`` (<= 0 = off);
3. :func:`apply_minimum_spread` — push any order closer than ``minimum_spread``
   out to exactly that distance;
4. :func:`inventory_skew_ratios` + :func:`apply_skew` — hummingbot's size skew;
5. :func:`apply_budget` — the order's own free funds, innermost level first;
6. :func:`quantize` — bids round *down* to the tick, asks *up*, amounts *down* to the step;
7. :func:`drop_below_minimums` — below the exchange's min amount / min notional;
8. :func:`drop_crossing` — post-only bids at or above the best ask, asks at or below the best bid.

Every stage that can remove or change an order also returns human-readable
notes, so the caller can log *why* a level is missing instead of silently
sending (or spamming) orders the exchange would reject.

Invariants of the whole pipeline (property-tested):
``sum(bid price * amount * (1 + maker_fee)) <= budget.quote``,
``sum(ask amount) <= budget.base``; every price is a multiple of the tick,
every amount of the step; nothing below the minimums; nothing crossing when
post-only.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from operator import attrgetter

from domain.money import fmt
from domain.strategy.pair_memo import PairMemo
from domain.strategy.params import StrategyParams

ZERO = Decimal(0)
ONE = Decimal(1)
TWO = Decimal(2)
HALF = Decimal("0.5")

BUY = "buy"
SELL = "sell"
SIDES = (BUY, SELL)


def _need_decimal(owner: str, name: str, value: object, *, optional: bool = False) -> None:
    if type(value) is Decimal and value.is_finite():   # the common case first (the pipeline's hot path)
        return
    if value is None and optional:
        return
    if not isinstance(value, Decimal) or not value.is_finite():
        raise TypeError(f"{owner}.{name} must be a finite Decimal, got {value!r}")


@dataclass(frozen=True)
class MarketRules:
    """The exchange's rules for the pair. ``tick_size`` and ``step_size`` must be > 0;
    ``min_amount`` / ``min_notional`` of 0 mean "no minimum"."""
    tick_size: Decimal
    step_size: Decimal
    min_amount: Decimal
    min_notional: Decimal
    maker_fee: Decimal = Decimal("0.001")

    def __post_init__(self) -> None:
        for name in ("tick_size", "step_size", "min_amount", "min_notional", "maker_fee"):
            _need_decimal("MarketRules", name, getattr(self, name))
        if self.tick_size <= 0 or self.step_size <= 0:
            raise ValueError("MarketRules: tick_size and step_size must be > 0")
        if self.min_amount < 0 or self.min_notional < 0 or self.maker_fee < 0:
            raise ValueError("MarketRules: min_amount, min_notional and maker_fee must be >= 0")


@dataclass(frozen=True)
class BookTop:
    """Top of the order book (None = that side is empty / unknown)."""
    best_bid: Decimal | None
    best_ask: Decimal | None
    last_trade: Decimal | None = None

    def __post_init__(self) -> None:
        for name in ("best_bid", "best_ask", "last_trade"):
            _need_decimal("BookTop", name, getattr(self, name), optional=True)


@dataclass(frozen=True)
class Budget:
    """Funds this order may quote with, per asset (see refresh.quoting_budget)."""
    base: Decimal
    quote: Decimal

    def __post_init__(self) -> None:
        _need_decimal("Budget", "base", self.base)
        _need_decimal("Budget", "quote", self.quote)


@dataclass(frozen=True)
class Proposal:
    """One order the strategy wants resting: ``side`` is "buy" or "sell"; ``level`` 0 is innermost."""
    side: str
    price: Decimal
    amount: Decimal
    level: int

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise ValueError(f"Proposal.side must be 'buy' or 'sell', got {self.side!r}")
        _need_decimal("Proposal", "price", self.price)
        _need_decimal("Proposal", "amount", self.amount)

    @property
    def notional(self) -> Decimal:
        return self.price * self.amount

    def describe(self) -> str:
        return f"{self.side} L{self.level} {fmt(self.amount)} @ {fmt(self.price)}"


Notes = list[str]


# --- 0. reference price ---------------------------------------------------------

def _positive(value: Decimal | None) -> Decimal | None:
    return value if value is not None and value > 0 else None


def _mid(book: BookTop) -> Decimal | None:
    global _LAST_MID
    last = _LAST_MID
    if last[0] is book:   # the book top every order of a book ticks on (BookTop is immutable)
        return last[1]
    bid, ask = _positive(book.best_bid), _positive(book.best_ask)
    if bid is None or ask is None or bid > ask:   # one side missing, or a crossed (inconsistent) book
        mid = None
    else:
        mid = (bid + ask) / TWO
    if type(book) is BookTop:
        _LAST_MID = (book, mid)   # one tuple, rebound whole
    return mid


# the last book top _mid worked out and its mid: the orders of a book share its top object
# (actors/order/quiet.py book_top), so a round of their ticks works its mid out once, the same Decimal for all
_LAST_MID: tuple = (None, None)


def mid_price(book: BookTop) -> Decimal | None:
    """The book's mid as ``reference_price`` computes it (None: a side missing or the book crossed)."""
    return _mid(book)


def reference_price(params: StrategyParams, book: BookTop, last_own_fill: Decimal | None) -> Decimal | None:
    """The price the ladder is built around, or None when the data is missing
    (then do not quote). ``book`` is the book of ``params.price_source_exchange``
    when set, else of the trading exchange.

    * ``mid``: (best bid + best ask) / 2; None if a side is missing or the book is crossed;
    * ``best_bid`` / ``best_ask`` / ``last_trade``: that value;
    * ``last_own_fill``: the price of this order's last fill; falls back to mid
      until there is one (as hummingbot does — otherwise the first quote could
      never be placed, so no fill could ever happen).

    Zero or negative values count as missing.
    """
    source = params.price_source
    if source == "mid":
        return _mid(book)
    if source == "best_bid":
        return _positive(book.best_bid)
    if source == "best_ask":
        return _positive(book.best_ask)
    if source == "last_trade":
        return _positive(book.last_trade)
    if source == "last_own_fill":
        _need_decimal("reference_price", "last_own_fill", last_own_fill, optional=True)
        return _positive(last_own_fill) or _mid(book)
    raise ValueError(f"unknown price_source {source!r}")


# --- 1. base ladder ------------------------------------------------------------

def base_ladder(params: StrategyParams, ref_price: Decimal) -> list[Proposal]:
    """Level i (0-based): bid ``ref*(1 - bid_spread - i*order_level_spread)``,
    ask ``ref*(1 + ask_spread + i*order_level_spread)``, amount
    ``order_amount + i*order_level_amount``. Bids first, then asks, each by level.
    Unrounded: quantizing is a later stage."""
    _need_decimal("base_ladder", "ref_price", ref_price)
    if ref_price <= 0:
        return []
    bids, asks = [], []
    for i in range(params.order_levels):
        extra = i * params.order_level_spread
        amount = params.level_amount(i)
        if amount <= 0:      # impossible for validated params; defensive
            continue
        bid = ref_price * (ONE - params.bid_spread - extra)
        if bid > 0:
            bids.append(Proposal(BUY, bid, amount, i))
        asks.append(Proposal(SELL, ref_price * (ONE + params.ask_spread + extra), amount, i))
    return bids + asks


# --- 2. price band -------------------------------------------------------------

def apply_price_band(params: StrategyParams, ref_price: Decimal,
                     proposals: Sequence[Proposal]) -> tuple[list[Proposal], Notes]:
    """Hummingbot's price band on the reference price: ``ref >= price_ceiling`` → no
    buys; ``ref <= price_floor`` → no sells. A ceiling or floor <= 0 is off.
    (Per-order prices need no check: every bid is below ref and every ask above.)"""
    notes: Notes = []
    out = list(proposals)
    if params.price_ceiling > 0 and ref_price >= params.price_ceiling:
        if any(p.side == BUY for p in out):
            notes.append(f"price_ceiling: reference {fmt(ref_price)} >= ceiling {fmt(params.price_ceiling)}, no buys")
        out = [p for p in out if p.side != BUY]
    if params.price_floor > 0 and ref_price <= params.price_floor:
        if any(p.side == SELL for p in out):
            notes.append(f"price_floor: reference {fmt(ref_price)} <= floor {fmt(params.price_floor)}, no sells")
        out = [p for p in out if p.side != SELL]
    return out, notes


# --- 3. minimum spread ------------------------------------------------------------

def apply_minimum_spread(ref_price: Decimal, minimum_spread: Decimal,
                         proposals: Sequence[Proposal]) -> tuple[list[Proposal], Notes]:
    """No order closer to the reference than ``minimum_spread``: a bid above
    ``ref*(1-minimum_spread)`` is moved down to it, an ask below ``ref*(1+minimum_spread)``
    up to it (a pair-level floor that a per-order ``bid_spread`` cannot undercut).
    Later quantization only moves prices further out, so the floor survives it."""
    if minimum_spread <= 0:
        return list(proposals), []
    max_bid = ref_price * (ONE - minimum_spread)
    min_ask = ref_price * (ONE + minimum_spread)
    out, moved = [], []
    for p in proposals:
        if p.side == BUY and p.price > max_bid:
            out.append(Proposal(p.side, max_bid, p.amount, p.level))
            moved.append(f"buy L{p.level}")
        elif p.side == SELL and p.price < min_ask:
            out.append(Proposal(p.side, min_ask, p.amount, p.level))
            moved.append(f"sell L{p.level}")
        else:
            out.append(p)
    notes = [f"minimum_spread {fmt(minimum_spread)}: moved {', '.join(moved)} out to the minimum"] if moved else []
    return out, notes


# --- 4. inventory skew ------------------------------------------------------------

def _interp(x: Decimal, x0: Decimal, x1: Decimal, y0: Decimal, y1: Decimal) -> Decimal:
    """Linear interpolation clamped to [x0, x1] (numpy.interp on two points)."""
    if x <= x0:
        return y0
    if x >= x1:
        return y1
    return y0 + (x - x0) * (y1 - y0) / (x1 - x0)


def inventory_skew_ratios(params: StrategyParams, inventory_base: Decimal, inventory_quote: Decimal,
                          price: Decimal) -> tuple[Decimal, Decimal]:
    """Hummingbot's ``c_calculate_bid_ask_ratios_from_base_asset_ratio`` (market-making-peers.md §1.3).

    ``inventory_base`` / ``inventory_quote`` are this order's whole holdings on the
    exchange (free + locked in its orders); ``price`` is the reference price.
    Returns ``(bid_ratio, ask_ratio)``, each in [0, 2], summing to 2 (or (0, 0)
    when there is nothing to quote with). Skew disabled → (1, 1).
    """
    if not params.inventory_skew_enabled:
        return ONE, ONE
    levels = params.order_levels
    total_order_size = TWO * (levels * params.order_amount
                              + Decimal(levels * (levels - 1)) / TWO * params.order_level_amount)
    range_base = total_order_size * params.inventory_range_multiplier
    value = inventory_base * price + inventory_quote
    if value <= 0 or range_base <= 0 or price <= 0:
        return ZERO, ZERO
    base_value = inventory_base * price
    range_value = min(range_base * price, HALF * value)
    target_value = params.inventory_target_base_pct * value
    left = max(target_value - range_value, ZERO)
    right = target_value + range_value
    if base_value < target_value:
        bid = _interp(base_value, left, target_value, TWO, ONE)
    else:
        bid = _interp(base_value, target_value, right, ONE, ZERO)
    bid = min(max(bid, ZERO), TWO)
    return bid, TWO - bid


def apply_skew(proposals: Sequence[Proposal], bid_ratio: Decimal,
               ask_ratio: Decimal) -> tuple[list[Proposal], Notes]:
    """Scale buy amounts by ``bid_ratio`` and sell amounts by ``ask_ratio``; a side
    scaled to zero disappears (with a note)."""
    if bid_ratio == ONE and ask_ratio == ONE:
        return list(proposals), []
    out: list[Proposal] = []
    notes: Notes = [f"inventory skew: buy amounts x{fmt(bid_ratio)}, sell amounts x{fmt(ask_ratio)}"]
    dropped = set()
    for p in proposals:
        amount = p.amount * (bid_ratio if p.side == BUY else ask_ratio)
        if amount <= 0:
            dropped.add(p.side)
            continue
        out.append(Proposal(p.side, p.price, amount, p.level))
    for side in SIDES:
        if side in dropped:
            notes.append(f"inventory skew: no {side}s (inventory at the edge of the range)")
    return out, notes


# --- 5. budget ---------------------------------------------------------------

def round_down(value: Decimal, step: Decimal) -> Decimal:
    """Largest multiple of ``step`` that is <= value."""
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def round_up(value: Decimal, step: Decimal) -> Decimal:
    """Smallest multiple of ``step`` that is >= value."""
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


_LEVEL = attrgetter("level")


def _by_side_level(proposals: Iterable[Proposal], side: str) -> list[Proposal]:
    return sorted([p for p in proposals if p.side == side], key=_LEVEL)


def apply_budget(proposals: Sequence[Proposal], budget: Budget,
                 rules: MarketRules) -> tuple[list[Proposal], Notes]:
    """Fit each side into this order's own funds, **innermost level first**
    (level 0 is funded before level 1: the inner levels trade most and count
    most for liquidity-scoring campaigns; the outer ones are cut first).

    A buy costs ``amount * price * (1 + maker_fee)`` quote (the fee is reserved
    even where the exchange takes it from the received base: conservative). A
    sell costs ``amount`` base. The first level that does not fit is shrunk to
    the remaining funds (rounded *down* to the step); every level after it is
    dropped. A budget <= 0 leaves no orders on that side."""
    fee_factor = ONE + rules.maker_fee
    out: list[Proposal] = []
    notes: Notes = []
    for side in SIDES:
        side_props = _by_side_level(proposals, side)
        if not side_props:
            continue
        asset = "quote" if side == BUY else "base"
        remaining = max(budget.quote if side == BUY else budget.base, ZERO)
        if remaining <= 0:
            notes.append(f"budget: {asset} budget is 0, no {side}s")
            continue
        for index, p in enumerate(side_props):
            unit_cost = p.price * fee_factor if side == BUY else ONE
            cost = p.amount * unit_cost
            if cost <= remaining:
                out.append(p)
                remaining -= cost
                continue
            amount = round_down(remaining / unit_cost, rules.step_size)
            while amount > 0 and amount * unit_cost > remaining:   # guard against division rounding
                amount -= rules.step_size
            cut = [q.level for q in side_props[index + 1:]]
            if amount > 0:
                out.append(Proposal(p.side, p.price, amount, p.level))
                notes.append(f"budget: {asset} left {fmt(remaining)} shrinks {side} L{p.level} "
                             f"from {fmt(p.amount)} to {fmt(amount)}")
            else:
                cut.insert(0, p.level)
            if cut:
                notes.append(f"budget: not enough {asset} for {side} level(s) {', '.join(map(str, cut))}")
            break
    return out, notes


# --- 6. precision ------------------------------------------------------------

def quantize(proposals: Sequence[Proposal], rules: MarketRules) -> tuple[list[Proposal], Notes]:
    """Round to the exchange's precision, always away from the money's harm:
    bid prices *down* to the tick (never pay more than proposed, never nearer the
    ask), ask prices *up* (never sell cheaper), amounts *down* to the step (never
    spend more than budgeted). An order rounded to a zero price or amount is
    dropped with a note."""
    out: list[Proposal] = []
    notes: Notes = []
    for p in proposals:
        price = (round_down if p.side == BUY else round_up)(p.price, rules.tick_size)
        amount = round_down(p.amount, rules.step_size)
        if price <= 0 or amount <= 0:
            notes.append(f"precision: {p.describe()} rounds to {fmt(amount)} @ {fmt(price)}, dropped")
            continue
        out.append(Proposal(p.side, price, amount, p.level))
    return out, notes


# --- 7. exchange minimums ---------------------------------------------------------

def drop_below_minimums(proposals: Sequence[Proposal], rules: MarketRules) -> tuple[list[Proposal], Notes]:
    """Drop orders the exchange would reject: ``amount < min_amount`` or
    ``price * amount < min_notional`` (never send them just to be refused)."""
    out: list[Proposal] = []
    notes: Notes = []
    for p in proposals:
        if p.amount < rules.min_amount:
            notes.append(f"min amount: {p.describe()} is below {fmt(rules.min_amount)}, dropped")
        elif p.notional < rules.min_notional:
            notes.append(f"min notional: {p.describe()} = {fmt(p.notional)} is below "
                         f"{fmt(rules.min_notional)}, dropped")
        else:
            out.append(p)
    return out, notes


# --- 8. crossing filter ---------------------------------------------------------

def drop_crossing(proposals: Sequence[Proposal], book: BookTop, post_only: bool) -> tuple[list[Proposal], Notes]:
    """With post-only orders, drop bids at or above the best ask and asks at or
    below the best bid of the *trading* exchange's book (the exchange would reject
    them, or they would take liquidity). Without post-only, nothing is dropped."""
    if not post_only:
        return list(proposals), []
    best_bid, best_ask = _positive(book.best_bid), _positive(book.best_ask)
    out: list[Proposal] = []
    notes: Notes = []
    for p in proposals:
        if p.side == BUY and best_ask is not None and p.price >= best_ask:
            notes.append(f"crossing: {p.describe()} >= best ask {fmt(best_ask)}, dropped (post-only)")
        elif p.side == SELL and best_bid is not None and p.price <= best_bid:
            notes.append(f"crossing: {p.describe()} <= best bid {fmt(best_bid)}, dropped (post-only)")
        else:
            out.append(p)
    return out, notes


# --- the whole pipeline -----------------------------------------------------------

@dataclass(frozen=True)
class _Unbudgeted:
    """The pipeline's outcome at one (parameters, reference, book, rules) for every budget it fits in whole: what
    the orders quoting a pair with the same parameters share on a book (a restart's thousands of first ticks each ran
    the whole pipeline to the same proposals)."""
    bid_costs: tuple[Decimal, ...]   # each bid's quote cost, innermost first, as apply_budget computes it
    ask_costs: tuple[Decimal, ...]   # each ask's base cost, innermost first
    proposals: tuple[Proposal, ...]
    notes: tuple[str, ...]

    def fits(self, budget: Budget) -> bool:
        """apply_budget keeps every proposal as it is under ``budget`` (no level shrunk or cut, no note): the
        same comparisons and subtractions it makes."""
        for costs, funds in ((self.bid_costs, budget.quote), (self.ask_costs, budget.base)):
            if not costs:
                continue
            remaining = max(funds, ZERO)
            if remaining <= 0:
                return False
            for cost in costs:
                if cost > remaining:
                    return False
                remaining -= cost
        return True


_SHARED: PairMemo[_Unbudgeted] = PairMemo(1024)


def _shared(params: StrategyParams, ref_price: Decimal, book: BookTop, rules: MarketRules) -> _Unbudgeted:
    """The unbudgeted pipeline at these inputs, worked out once per (parameters, rules) objects (the orders of a
    pair share both: actors/order/strategy.py keeps one of each), reference and book. Inventory skew off only
    (with it the amounts depend on each order's inventory)."""
    key = (id(params), id(rules), ref_price.as_tuple(), book)   # equal mids of another exponent: other digits
    return _SHARED.get(key, params, rules, _unbudgeted, params, ref_price, book, rules)


def _unbudgeted(params: StrategyParams, ref_price: Decimal, book: BookTop, rules: MarketRules) -> _Unbudgeted:
    proposals = base_ladder(params, ref_price)
    proposals, band_notes = apply_price_band(params, ref_price, proposals)
    proposals, spread_notes = apply_minimum_spread(ref_price, params.minimum_spread, proposals)
    bids, asks = _by_side_level(proposals, BUY), _by_side_level(proposals, SELL)   # as apply_budget orders them
    fee_factor = ONE + rules.maker_fee
    proposals, quantize_notes = quantize(bids + asks, rules)
    proposals, minimum_notes = drop_below_minimums(proposals, rules)
    proposals, crossing_notes = drop_crossing(proposals, book, params.post_only)
    return _Unbudgeted(bid_costs=tuple(p.amount * (p.price * fee_factor) for p in bids),
                       ask_costs=tuple(p.amount * ONE for p in asks),
                       proposals=tuple(_by_side_level(proposals, BUY) + _by_side_level(proposals, SELL)),
                       notes=(*band_notes, *spread_notes, *quantize_notes, *minimum_notes, *crossing_notes))


def build_proposals(params: StrategyParams, ref_price: Decimal | None, book: BookTop, rules: MarketRules,
                    budget: Budget, inventory_base: Decimal,
                    inventory_quote: Decimal) -> tuple[list[Proposal], list[str]]:
    """Run every stage (see the module docstring). ``book`` is the trading
    exchange's book (for the crossing filter), ``budget`` the funds this order
    may quote with, ``inventory_*`` its whole holdings (for the skew).
    Returns the proposals (bids by level, then asks by level) and the notes."""
    if ref_price is None or ref_price <= 0:
        return [], ["no reference price: not quoting"]
    if not params.inventory_skew_enabled:
        shared = _shared(params, ref_price, book, rules)
        if shared.fits(budget):
            return list(shared.proposals), list(shared.notes)
    return every_stage(params, ref_price, book, rules, budget, inventory_base, inventory_quote)


def every_stage(params: StrategyParams, ref_price: Decimal | None, book: BookTop, rules: MarketRules,
                budget: Budget, inventory_base: Decimal, inventory_quote: Decimal) -> tuple[list[Proposal], list[str]]:
    """``build_proposals`` with every stage run for this call, nothing shared: for inputs no other order has
    (a quiet band's checking runs at its own ends)."""
    if ref_price is None or ref_price <= 0:
        return [], ["no reference price: not quoting"]
    proposals = base_ladder(params, ref_price)
    notes: list[str] = []
    proposals, n = apply_price_band(params, ref_price, proposals)
    notes += n
    proposals, n = apply_minimum_spread(ref_price, params.minimum_spread, proposals)
    notes += n
    bid_ratio, ask_ratio = inventory_skew_ratios(params, inventory_base, inventory_quote, ref_price)
    proposals, n = apply_skew(proposals, bid_ratio, ask_ratio)
    notes += n
    proposals, n = apply_budget(proposals, budget, rules)
    notes += n
    proposals, n = quantize(proposals, rules)
    notes += n
    proposals, n = drop_below_minimums(proposals, rules)
    notes += n
    proposals, n = drop_crossing(proposals, book, params.post_only)
    notes += n
    ordered = _by_side_level(proposals, BUY) + _by_side_level(proposals, SELL)
    return ordered, notes
