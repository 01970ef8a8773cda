"""Matching engine of the fake exchange: pure (no I/O, no clock, no randomness).

- One book per symbol; price-time priority (best price first, FIFO within a price level).
- LIMIT (GTC / IOC / FOK), LIMIT_MAKER (post-only: rejected if it would cross) and MARKET
  (by base quantity or by quote amount) orders; partial fills.
- Funds are locked on placement (quote for buys, base for sells), spent from the lock on each
  fill and released on cancel / expiry; a buy filled below its limit gets the difference back.
- Fees are charged in the asset received (Binance's default without BNB): buyer pays in base,
  seller in quote; maker / taker rates per market. Commission is cut to 8 decimals.
- Orders owned by ``SYNTHETIC`` are the simulated rest of the market: no balances, no fees;
  their net flows are kept in ``synthetic_net`` so that, per asset,
  ``sum(balances) + fees_collected + synthetic_net`` is conserved.

Errors are ``EngineError(code, msg)`` with Binance's codes and messages.
"""
from __future__ import annotations

import bisect
from collections import defaultdict, deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable, Iterator

from .accounts import Balances, InsufficientBalance
from .numbers import ZERO, fee_of, floor_to, is_multiple

SYNTHETIC = "__synthetic__"
BUY, SELL = "BUY", "SELL"
LIMIT, LIMIT_MAKER, MARKET = "LIMIT", "LIMIT_MAKER", "MARKET"
ORDER_TYPES = (LIMIT, LIMIT_MAKER, MARKET)
TIME_IN_FORCE = ("GTC", "IOC", "FOK")
NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED = "NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "EXPIRED"
OPEN_STATUSES = (NEW, PARTIALLY_FILLED)

MSG_INSUFFICIENT = "Account has insufficient balance for requested action."
MSG_WOULD_TAKE = "Order would immediately match and take."
MSG_DUPLICATE = "Duplicate order sent."
MSG_UNKNOWN_ORDER = "Unknown order sent."
MSG_NO_ORDER = "Order does not exist."


class EngineError(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg


@dataclass
class MarketSpec:
    symbol: str  # exchange id, e.g. BTCUSDT
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    min_notional: Decimal
    maker_fee: Decimal
    taker_fee: Decimal
    max_qty: Decimal = Decimal("9000")
    min_price: Decimal | None = None  # defaults to tick_size
    max_price: Decimal = Decimal("1000000")
    max_notional: Decimal = Decimal("9000000")
    notional_filter: str = "NOTIONAL"  # or "MIN_NOTIONAL" (the older filter name)
    status: str = "TRADING"

    def __post_init__(self) -> None:
        if self.min_price is None:
            self.min_price = self.tick_size
        if self.notional_filter not in ("NOTIONAL", "MIN_NOTIONAL"):
            raise ValueError("notional_filter must be NOTIONAL or MIN_NOTIONAL")

    def check_price(self, price: Decimal) -> None:
        if price < self.min_price or price > self.max_price or not is_multiple(price, self.tick_size, self.min_price):
            raise EngineError(-1013, "Filter failure: PRICE_FILTER")

    def check_qty(self, qty: Decimal) -> None:
        if qty < self.min_qty or qty > self.max_qty or not is_multiple(qty, self.step_size, self.min_qty):
            raise EngineError(-1013, "Filter failure: LOT_SIZE")

    def check_notional(self, notional: Decimal) -> None:
        if notional < self.min_notional or (self.notional_filter == "NOTIONAL" and notional > self.max_notional):
            raise EngineError(-1013, f"Filter failure: {self.notional_filter}")


@dataclass(frozen=True)
class Fill:
    """One side of one trade (a trade has a maker fill and a taker fill with the same id)."""

    trade_id: int
    symbol: str
    order_id: int
    owner: str
    side: str
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_maker: bool
    counter_order_id: int

    @property
    def is_buyer(self) -> bool:
        return self.side == BUY


@dataclass(eq=False)
class Order:
    order_id: int
    symbol: str
    owner: str
    side: str
    type: str
    time_in_force: str | None
    price: Decimal  # ZERO for MARKET
    orig_qty: Decimal  # for quote-amount MARKET buys: the executed quantity once done
    client_order_id: str
    time: int
    orig_quote_qty: Decimal = ZERO
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO
    status: str = NEW
    update_time: int = 0
    lock_asset: str = ""
    locked: Decimal = ZERO
    fills: list[Fill] = field(default_factory=list)

    @property
    def quote_mode(self) -> bool:
        return self.orig_quote_qty > 0

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed_qty

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class BookSide:
    """Price levels of one side; FIFO list per level (time priority)."""

    def __init__(self, side: str) -> None:
        self.side = side
        self._prices: list[Decimal] = []  # ascending
        self._levels: dict[Decimal, list[Order]] = {}

    def add(self, order: Order) -> None:
        level = self._levels.get(order.price)
        if level is None:
            bisect.insort(self._prices, order.price)
            level = self._levels[order.price] = []
        level.append(order)

    def remove(self, order: Order) -> None:
        level = self._levels[order.price]
        level.remove(order)
        if not level:
            del self._levels[order.price]
            del self._prices[bisect.bisect_left(self._prices, order.price)]

    def best(self) -> Decimal | None:
        if not self._prices:
            return None
        return self._prices[-1] if self.side == BUY else self._prices[0]

    def prices_best_first(self) -> list[Decimal]:
        return self._prices[::-1] if self.side == BUY else list(self._prices)

    def level(self, price: Decimal) -> list[Order]:
        return self._levels.get(price, [])

    def orders(self) -> Iterator[Order]:
        for price in self.prices_best_first():
            yield from self._levels[price]

    def depth(self, limit: int) -> list[tuple[Decimal, Decimal]]:
        out = []
        for price in self.prices_best_first()[:limit]:
            out.append((price, sum((o.remaining for o in self._levels[price]), ZERO)))
        return out


@dataclass
class Book:
    bids: BookSide = field(default_factory=lambda: BookSide(BUY))
    asks: BookSide = field(default_factory=lambda: BookSide(SELL))
    update_id: int = 1

    def side(self, side: str) -> BookSide:
        return self.bids if side == BUY else self.asks

    def opposite(self, side: str) -> BookSide:
        return self.asks if side == BUY else self.bids


def _crosses(side: str, limit: Decimal, level_price: Decimal) -> bool:
    return level_price <= limit if side == BUY else level_price >= limit


class MatchingEngine:
    TAPE_LEN = 5000

    def __init__(self, balances: Balances | None = None) -> None:
        self.balances = balances if balances is not None else Balances()
        self.markets: dict[str, MarketSpec] = {}
        self.books: dict[str, Book] = {}
        self.orders: dict[int, Order] = {}  # account orders only (synthetic ones are not kept)
        self.fees_collected: dict[str, Decimal] = defaultdict(lambda: ZERO)
        self.synthetic_net: dict[str, Decimal] = defaultdict(lambda: ZERO)
        self.tape: dict[str, deque[Fill]] = {}  # taker-side fill of every trade, newest last
        self._next_order_id = 1
        self._next_trade_id: dict[str, int] = {}
        self._by_client: dict[tuple[str, str, str], Order] = {}
        self._owner_orders: dict[tuple[str, str], list[Order]] = defaultdict(list)
        # the ones still open, in the order registered (closed ones dropped when next looked at): an account's
        # open orders are read without walking its whole history (a market maker's grows by every replace)
        self._owner_open: dict[tuple[str, str], dict[int, Order]] = defaultdict(dict)
        self._owner_fills: dict[tuple[str, str], list[Fill]] = defaultdict(list)
        self._synthetic_open: dict[str, list[Order]] = defaultdict(list)

    # ------------------------------------------------------------------ markets

    def add_market(self, spec: MarketSpec) -> None:
        if spec.symbol in self.markets:
            raise ValueError(f"market {spec.symbol} exists")
        self.markets[spec.symbol] = spec
        self.books[spec.symbol] = Book()
        self.tape[spec.symbol] = deque(maxlen=self.TAPE_LEN)
        self._next_trade_id[spec.symbol] = 1

    def market(self, symbol: str) -> MarketSpec:
        spec = self.markets.get(symbol)
        if spec is None:
            raise EngineError(-1121, "Invalid symbol.")
        return spec

    def best_bid(self, symbol: str) -> Decimal | None:
        return self.books[symbol].bids.best()

    def best_ask(self, symbol: str) -> Decimal | None:
        return self.books[symbol].asks.best()

    def depth(self, symbol: str, limit: int = 100) -> tuple[int, list, list]:
        self.market(symbol)
        book = self.books[symbol]
        return book.update_id, book.bids.depth(limit), book.asks.depth(limit)

    # ------------------------------------------------------------------ placing

    def place_order(
        self,
        owner: str,
        symbol: str,
        side: str,
        order_type: str,
        *,
        now_ms: int,
        quantity: Decimal | None = None,
        price: Decimal | None = None,
        quote_qty: Decimal | None = None,
        time_in_force: str | None = None,
        client_order_id: str | None = None,
        maker_filter: Callable[[Order], bool] | None = None,
    ) -> Order:
        spec = self.market(symbol)
        if side not in (BUY, SELL):
            raise EngineError(-1117, "Invalid side.")
        if order_type not in ORDER_TYPES:
            raise EngineError(-1116, "Invalid orderType.")
        book = self.books[symbol]
        synthetic = owner == SYNTHETIC

        if order_type == MARKET:
            if (quantity is None) == (quote_qty is None):
                raise EngineError(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
            if quote_qty is not None and (side != BUY or quote_qty <= 0):
                raise EngineError(-1013, "Invalid quoteOrderQty.")
            time_in_force = None
            price = ZERO
        else:
            if price is None:
                raise EngineError(-1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed.")
            if quantity is None:
                raise EngineError(-1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.")
            if order_type == LIMIT:
                time_in_force = time_in_force or "GTC"
                if time_in_force not in TIME_IN_FORCE:
                    raise EngineError(-1115, "Invalid timeInForce.")
            else:
                time_in_force = "GTC"
            spec.check_price(price)
        if quantity is not None:
            spec.check_qty(quantity)
        if order_type != MARKET:
            spec.check_notional(price * quantity)
        else:
            ref = book.opposite(side).best()
            if quote_qty is not None:
                spec.check_notional(quote_qty)
            elif ref is not None:
                spec.check_notional(ref * quantity)

        if client_order_id is not None:
            prev = self._by_client.get((owner, symbol, client_order_id))
            if prev is not None and prev.is_open:
                raise EngineError(-2010, MSG_DUPLICATE)
        if order_type == LIMIT_MAKER:
            best = book.opposite(side).best()
            if best is not None and _crosses(side, price, best):
                raise EngineError(-2010, MSG_WOULD_TAKE)

        order = Order(
            order_id=self._next_order_id,
            symbol=symbol,
            owner=owner,
            side=side,
            type=order_type,
            time_in_force=time_in_force,
            price=price,
            orig_qty=quantity if quantity is not None else ZERO,
            orig_quote_qty=quote_qty if quote_qty is not None else ZERO,
            client_order_id=client_order_id or f"fake{self._next_order_id:016d}",
            time=now_ms,
            update_time=now_ms,
        )

        # lock the funds the order can spend
        if not synthetic:
            if side == BUY:
                order.lock_asset = spec.quote
                if order_type == MARKET:
                    if quote_qty is not None:
                        amount = quote_qty
                    else:
                        _fillable, amount = self._simulate(symbol, BUY, quantity, None, maker_filter)
                else:
                    amount = price * quantity
            else:
                order.lock_asset = spec.base
                amount = quantity
            try:
                self.balances.lock(owner, order.lock_asset, amount)
            except InsufficientBalance:
                raise EngineError(-2010, MSG_INSUFFICIENT) from None
            order.locked = amount

        self._next_order_id += 1
        self._register(order)

        if order_type == LIMIT and time_in_force == "FOK":
            fillable, _cost = self._simulate(symbol, side, quantity, price, maker_filter)
            if fillable < quantity:
                self._close(order, EXPIRED, now_ms)
                return order

        self._match(order, now_ms, maker_filter)

        if order_type != MARKET and time_in_force == "GTC" and order.remaining > 0:
            book.side(side).add(order)
            book.update_id += 1
        elif order.is_open or order.status == NEW:
            if order.quote_mode:
                order.orig_qty = order.executed_qty
            if order.quote_mode and order.executed_qty > 0 and self._quote_exhausted(order):
                self._close(order, FILLED, now_ms)
            elif order.remaining == 0 and order.executed_qty > 0 and not order.quote_mode:
                self._close(order, FILLED, now_ms)
            else:
                self._close(order, EXPIRED, now_ms)
        return order

    def take(
        self,
        symbol: str,
        side: str,
        quantity: Decimal,
        *,
        now_ms: int,
        price: Decimal | None = None,
        include_synthetic: bool = False,
    ) -> list[Fill]:
        """A synthetic taker: trade ``quantity`` (floored to the step) against resting orders.

        By default only accounts' orders are hit (the synthetic liquidity is skipped), best price
        first, FIFO within a level; ``price`` bounds the prices it accepts. Returns the taker fills.
        """
        spec = self.market(symbol)
        quantity = floor_to(quantity, spec.step_size)
        if quantity <= 0:
            return []
        maker_filter = None if include_synthetic else (lambda o: o.owner != SYNTHETIC)
        order = Order(
            order_id=self._next_order_id,
            symbol=symbol,
            owner=SYNTHETIC,
            side=side,
            type=MARKET if price is None else LIMIT,
            time_in_force=None if price is None else "IOC",
            price=ZERO if price is None else price,
            orig_qty=quantity,
            client_order_id=f"taker{self._next_order_id}",
            time=now_ms,
        )
        self._next_order_id += 1
        self._match(order, now_ms, maker_filter)
        return list(order.fills)

    # ------------------------------------------------------------------ cancel / query

    def cancel_order(
        self, owner: str, symbol: str, *, now_ms: int, order_id: int | None = None, client_order_id: str | None = None
    ) -> Order:
        self.market(symbol)
        order = self._find(owner, symbol, order_id, client_order_id)
        if order is None or not order.is_open:
            raise EngineError(-2011, MSG_UNKNOWN_ORDER)
        self._cancel(order, now_ms)
        return order

    def cancel_all(self, owner: str, symbol: str, *, now_ms: int) -> list[Order]:
        self.market(symbol)
        out = []
        for order in list(self.open_orders(owner, symbol)):
            self._cancel(order, now_ms)
            out.append(order)
        return out

    def get_order(self, owner: str, symbol: str, *, order_id: int | None = None, client_order_id: str | None = None) -> Order:
        self.market(symbol)
        order = self._find(owner, symbol, order_id, client_order_id)
        if order is None:
            raise EngineError(-2013, MSG_NO_ORDER)
        return order

    def open_orders(self, owner: str, symbol: str | None = None) -> list[Order]:
        if owner == SYNTHETIC:
            symbols = [symbol] if symbol else list(self.markets)
            return [o for s in symbols for o in self._synthetic_open.get(s, ()) if o.is_open]
        if symbol is not None:
            self.market(symbol)
            return self._still_open(owner, symbol)
        out = [o for (own, s) in list(self._owner_open) if own == owner for o in self._still_open(own, s)]
        return sorted(out, key=lambda o: o.order_id)

    def _still_open(self, owner: str, symbol: str) -> list[Order]:
        kept = self._owner_open.get((owner, symbol))
        if not kept:
            return []
        out = []
        for order_id, o in list(kept.items()):
            if o.is_open:
                out.append(o)
            else:
                del kept[order_id]   # closed for good
        return out

    def all_orders(self, owner: str, symbol: str) -> list[Order]:
        self.market(symbol)
        return list(self._owner_orders.get((owner, symbol), ()))

    def fills(self, owner: str, symbol: str) -> list[Fill]:
        self.market(symbol)
        return list(self._owner_fills.get((owner, symbol), ()))

    # ------------------------------------------------------------------ invariants (for tests)

    def check_invariants(self) -> None:
        """Book orders are open and on the right level; balance locks equal the open orders' locks."""
        locks: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
        for symbol, book in self.books.items():
            for side in (book.bids, book.asks):
                for o in side.orders():
                    assert o.is_open and o.remaining > 0 and o.symbol == symbol and o.side == side.side, o
        for o in self.orders.values():
            if o.is_open:
                locks[(o.owner, o.lock_asset)] += o.locked
            else:
                assert o.locked == 0, o
        owners = {k[0] for k in locks} | {o.owner for o in self.orders.values()}
        for owner in owners:
            for asset, (_free, locked) in self.balances.assets(owner).items():
                assert locked == locks.get((owner, asset), ZERO), (owner, asset, locked, locks.get((owner, asset)))

    # ------------------------------------------------------------------ internals

    def _register(self, order: Order) -> None:
        if order.owner == SYNTHETIC:
            lst = self._synthetic_open[order.symbol]
            lst[:] = [o for o in lst if o.is_open]
            lst.append(order)
            return
        self.orders[order.order_id] = order
        self._owner_orders[(order.owner, order.symbol)].append(order)
        self._owner_open[(order.owner, order.symbol)][order.order_id] = order
        self._by_client[(order.owner, order.symbol, order.client_order_id)] = order

    def _find(self, owner: str, symbol: str, order_id: int | None, client_order_id: str | None) -> Order | None:
        if order_id is not None:
            order = self.orders.get(order_id)
            if order is None or order.owner != owner or order.symbol != symbol:
                return None
            if client_order_id is not None and order.client_order_id != client_order_id:
                return None
            return order
        if client_order_id is not None:
            return self._by_client.get((owner, symbol, client_order_id))
        return None

    def _cancel(self, order: Order, now_ms: int) -> None:
        book = self.books[order.symbol]
        book.side(order.side).remove(order)
        book.update_id += 1
        self._close(order, CANCELED, now_ms)

    def _close(self, order: Order, status: str, now_ms: int) -> None:
        if order.locked > 0:
            self.balances.unlock(order.owner, order.lock_asset, order.locked)
            order.locked = ZERO
        order.status = status
        order.update_time = now_ms

    def _quote_exhausted(self, order: Order) -> bool:
        spent_all = order.cum_quote >= order.orig_quote_qty
        best = self.books[order.symbol].asks.best()
        spec = self.markets[order.symbol]
        cannot_buy_step = best is None or (order.orig_quote_qty - order.cum_quote) < best * spec.step_size
        return spent_all or (cannot_buy_step and best is not None)

    def _taker_qty(self, taker: Order, price: Decimal) -> Decimal:
        if taker.quote_mode:
            spec = self.markets[taker.symbol]
            return floor_to((taker.orig_quote_qty - taker.cum_quote) / price, spec.step_size)
        return taker.remaining

    def _simulate(
        self, symbol: str, side: str, quantity: Decimal, limit: Decimal | None, maker_filter: Callable[[Order], bool] | None
    ) -> tuple[Decimal, Decimal]:
        """(quantity that would fill, quote it would cost) against the current book."""
        left, cost = quantity, ZERO
        opp = self.books[symbol].opposite(side)
        for price in opp.prices_best_first():
            if limit is not None and not _crosses(side, limit, price):
                break
            for maker in opp.level(price):
                if maker_filter is not None and not maker_filter(maker):
                    continue
                qty = min(left, maker.remaining)
                left -= qty
                cost += qty * price
                if left == 0:
                    return quantity, cost
        return quantity - left, cost

    def _match(self, taker: Order, now_ms: int, maker_filter: Callable[[Order], bool] | None) -> None:
        book = self.books[taker.symbol]
        opp = book.opposite(taker.side)
        limit = None if taker.type == MARKET else taker.price
        for price in opp.prices_best_first():
            if limit is not None and not _crosses(taker.side, limit, price):
                return
            for maker in list(opp.level(price)):
                if maker_filter is not None and not maker_filter(maker):
                    continue
                qty = min(self._taker_qty(taker, price), maker.remaining)
                if qty <= 0:
                    return
                self._execute(maker, taker, price, qty, now_ms)
                if maker.remaining == 0:
                    opp.remove(maker)
                book.update_id += 1
                if not taker.quote_mode and taker.remaining == 0:
                    return

    def _execute(self, maker: Order, taker: Order, price: Decimal, qty: Decimal, now_ms: int) -> None:
        spec = self.markets[taker.symbol]
        quote_amount = price * qty
        trade_id = self._next_trade_id[taker.symbol]
        self._next_trade_id[taker.symbol] = trade_id + 1
        for order, counter, is_maker in ((maker, taker, True), (taker, maker, False)):
            if order.side == BUY:
                receive_asset, received, pay_asset, paid = spec.base, qty, spec.quote, quote_amount
            else:
                receive_asset, received, pay_asset, paid = spec.quote, quote_amount, spec.base, qty
            if order.owner == SYNTHETIC:
                commission = ZERO
                self.synthetic_net[receive_asset] += received
                self.synthetic_net[pay_asset] -= paid
            else:
                commission = fee_of(received, spec.maker_fee if is_maker else spec.taker_fee)
                self.balances.spend_locked(order.owner, pay_asset, paid)
                order.locked -= paid
                self.balances.credit(order.owner, receive_asset, received - commission)
                self.fees_collected[receive_asset] += commission
            order.executed_qty += qty
            order.cum_quote += quote_amount
            order.update_time = now_ms
            if not order.quote_mode:
                order.status = FILLED if order.remaining == 0 else PARTIALLY_FILLED
            else:
                order.status = PARTIALLY_FILLED
            if order.status == FILLED and order.locked > 0 and order.type != MARKET:
                # a limit buy filled below its price: the rest of the lock goes back
                self.balances.unlock(order.owner, order.lock_asset, order.locked)
                order.locked = ZERO
            elif order.owner != SYNTHETIC and order.side == BUY and order.type != MARKET:
                excess = order.locked - order.remaining * order.price
                if excess > 0:
                    self.balances.unlock(order.owner, order.lock_asset, excess)
                    order.locked -= excess
            fill = Fill(
                trade_id=trade_id,
                symbol=order.symbol,
                order_id=order.order_id,
                owner=order.owner,
                side=order.side,
                price=price,
                qty=qty,
                quote_qty=quote_amount,
                commission=commission,
                commission_asset=receive_asset,
                time=now_ms,
                is_maker=is_maker,
                counter_order_id=counter.order_id,
            )
            if not is_maker:
                order.fills.append(fill)  # the taker's fills go back in the order response
                self.tape[order.symbol].append(fill)
            if order.owner != SYNTHETIC:
                if is_maker:
                    order.fills.append(fill)
                self._owner_fills[(order.owner, order.symbol)].append(fill)
