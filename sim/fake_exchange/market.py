"""Market data of the fake exchange: the mid price, synthetic liquidity, the price process, tickers.

Synthetic liquidity is a ladder of ``SYNTHETIC`` limit orders around the mid (``levels`` per
side, the first ``spread_bps / 2`` away from the mid, then every ``step_bps``). Moving the mid
re-places the ladder; a new synthetic order that crosses an account's resting order trades
with it (the account is the maker), which is how a moving market fills quotes.

``step()`` is one tick of the price process: a random-walk move of every mid (relative
standard deviation ``vol``), the ladder refresh, and with probability ``taker_prob`` a
synthetic taker that hits the top of the whole book. Randomness comes from the ``random.Random``
handed in (seeded by the exchange) and time from the caller, so a step is reproducible.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

from .engine import BUY, LIMIT, SELL, SYNTHETIC, EngineError, Fill, MatchingEngine
from .numbers import ZERO, ceil_to, floor_to

DAY_MS = 86_400_000


@dataclass
class Ladder:
    symbol: str
    mid: Decimal
    open_price: Decimal
    open_time: int
    levels: int = 10
    spread_bps: Decimal = Decimal("2")
    step_bps: Decimal = Decimal("1")
    qty: Decimal = ZERO  # per level; 0 = no synthetic liquidity


class MarketData:
    def __init__(self, engine: MatchingEngine, rng: random.Random) -> None:
        self.engine = engine
        self.rng = rng
        self.ladders: dict[str, Ladder] = {}

    def add(self, ladder: Ladder, now_ms: int) -> None:
        self.ladders[ladder.symbol] = ladder
        self.refresh(ladder.symbol, now_ms)

    def set_mid(self, symbol: str, mid: Decimal, now_ms: int) -> None:
        ladder = self.ladders[symbol]
        spec = self.engine.market(symbol)
        ladder.mid = max(spec.tick_size, (mid / spec.tick_size).to_integral_value() * spec.tick_size)
        self.refresh(symbol, now_ms)

    def refresh(self, symbol: str, now_ms: int) -> None:
        """Cancel the synthetic ladder and place it again around the current mid."""
        ladder = self.ladders[symbol]
        spec = self.engine.market(symbol)
        self.engine.cancel_all(SYNTHETIC, symbol, now_ms=now_ms)
        if ladder.qty <= 0 or ladder.levels <= 0:
            return
        half = ladder.mid * ladder.spread_bps / Decimal(20000)
        step = ladder.mid * ladder.step_bps / Decimal(10000)
        for i in range(ladder.levels):
            bid = floor_to(ladder.mid - half - step * i, spec.tick_size)
            ask = ceil_to(ladder.mid + half + step * i, spec.tick_size)
            if ask <= bid:
                ask = bid + spec.tick_size
            qty = self._level_qty(ladder, spec.step_size)
            # asks first, then bids: each crosses only accounts' orders, never the other ladder side
            for side, price in ((SELL, ask), (BUY, bid)):
                if spec.min_price <= price <= spec.max_price:
                    try:
                        self.engine.place_order(
                            SYNTHETIC, symbol, side, LIMIT, price=price, quantity=qty, time_in_force="GTC", now_ms=now_ms
                        )
                    except EngineError:
                        continue  # a level the market's filters refuse (e.g. below min notional) is left out

    def _level_qty(self, ladder: Ladder, step: Decimal) -> Decimal:
        factor = Decimal(str(round(self.rng.uniform(0.5, 1.5), 3)))
        return max(step, floor_to(ladder.qty * factor, step))

    def step(self, now_ms: int, *, vol: float, taker_prob: float, taker_size: float = 0.5) -> list[Fill]:
        """One tick of the price process for every market; returns the synthetic takers' fills."""
        fills: list[Fill] = []
        for symbol, ladder in self.ladders.items():
            spec = self.engine.market(symbol)
            move = Decimal(str(round(self.rng.gauss(0.0, vol), 10)))
            self.set_mid(symbol, ladder.mid * (1 + move), now_ms)
            if self.rng.random() < taker_prob:
                side = BUY if self.rng.random() < 0.5 else SELL
                base_qty = ladder.qty if ladder.qty > 0 else spec.min_qty * 10
                qty = floor_to(base_qty * Decimal(str(round(self.rng.uniform(0.1, 2 * taker_size), 4))), spec.step_size)
                if qty > 0:
                    fills += self.engine.take(symbol, side, qty, now_ms=now_ms, include_synthetic=True)
        return fills

    # ------------------------------------------------------------------ ticker

    def ticker(self, symbol: str, now_ms: int) -> dict:
        """24 h statistics from the trade tape (Decimal values, Binance field names)."""
        ladder = self.ladders[symbol]
        book = self.engine.books[symbol]
        tape = [f for f in self.engine.tape[symbol] if f.time > now_ms - DAY_MS]
        bid_depth = book.bids.depth(1)
        ask_depth = book.asks.depth(1)
        last = tape[-1] if tape else None
        last_price = last.price if last else ladder.mid
        open_price = ladder.open_price if ladder.open_time > now_ms - DAY_MS or not tape else tape[0].price
        prices = [f.price for f in tape] or [last_price]
        volume = sum((f.qty for f in tape), ZERO)
        quote_volume = sum((f.quote_qty for f in tape), ZERO)
        change = last_price - open_price
        return {
            "symbol": symbol,
            "priceChange": change,
            "priceChangePercent": (change * 100 / open_price).quantize(Decimal("0.001")) if open_price else ZERO,
            "weightedAvgPrice": (quote_volume / volume).quantize(Decimal("0.00000001")) if volume else last_price,
            "prevClosePrice": open_price,
            "lastPrice": last_price,
            "lastQty": last.qty if last else ZERO,
            "bidPrice": bid_depth[0][0] if bid_depth else ZERO,
            "bidQty": bid_depth[0][1] if bid_depth else ZERO,
            "askPrice": ask_depth[0][0] if ask_depth else ZERO,
            "askQty": ask_depth[0][1] if ask_depth else ZERO,
            "openPrice": open_price,
            "highPrice": max(prices + [open_price]),
            "lowPrice": min(prices + [open_price]),
            "volume": volume,
            "quoteVolume": quote_volume,
            "openTime": max(now_ms - DAY_MS, ladder.open_time),
            "closeTime": now_ms,
            "firstId": tape[0].trade_id if tape else -1,
            "lastId": tape[-1].trade_id if tape else -1,
            "count": len(tape),
        }
