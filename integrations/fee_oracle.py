"""Withdrawal fee requirements for a pair, read from Mixin's fee endpoint, cached briefly.

Many orders on one pair start at once (a burst of payments); they share one
lookup per asset instead of hammering /safe/assets/{id}/fees. Concurrent misses
for the same asset wait on the one request in flight.
"""
from __future__ import annotations

import time
from decimal import Decimal

from gevent.event import AsyncResult
from loguru import logger

from domain.payment import FeeOption, FeeRequirements, PairRules, choose_withdrawal_fee


class FeeOracle:
    def __init__(self, mixin_client, market_making_fee_percent: Decimal, *, ttl: float = 60.0,
                 clock=time.monotonic):
        self._client = mixin_client
        self._percent = market_making_fee_percent
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, FeeOption]] = {}
        self._inflight: dict[str, AsyncResult] = {}

    def fee_for(self, asset_id: str) -> FeeOption:
        """The fee a user pays to move `asset_id` out of Mixin (raises MixinError / FeeUnavailable)."""
        cached = self._cache.get(asset_id)
        if cached and self._clock() - cached[0] < self._ttl:
            return cached[1]
        waiting = self._inflight.get(asset_id)
        if waiting is not None:
            return waiting.get()
        result = AsyncResult()
        self._inflight[asset_id] = result
        try:
            options = [FeeOption(f.asset_id, f.amount, f.priority) for f in self._client.withdrawal_fees(asset_id)]
            chosen = choose_withdrawal_fee(asset_id, options)
        except Exception as exc:
            result.set_exception(exc)
            raise
        finally:
            self._inflight.pop(asset_id, None)
        self._cache[asset_id] = (self._clock(), chosen)
        logger.debug("withdrawal fee for {}: {} of {}", asset_id, chosen.amount, chosen.asset_id)
        result.set(chosen)
        return chosen

    def requirements(self, pair: PairRules) -> FeeRequirements:
        base = self.fee_for(pair.base_asset_id)
        quote = self.fee_for(pair.quote_asset_id)
        return FeeRequirements(base.asset_id, base.amount, quote.asset_id, quote.amount, self._percent)
