"""Public operations: /healthz, /readyz, the pairs, order intents."""
from __future__ import annotations

import uuid

import gevent
from loguru import logger

from api.errors import Problem
from api.health import readiness
from api.routing import PUBLIC, Router
from api.schemas import ErrorBody, Health, IntentIn, IntentOut, PairsOut, Readiness
from domain.intents import IntentRefused, order_intent, parse_principal
from ops import reads


PAIRS_FEE_WAIT = 2.0     # seconds /pairs waits for Mixin's withdrawal fees (then lists the pair without them)
INTENT_FEE_WAIT = 10.0   # seconds an order intent waits for them (then 503)


def fee_requirements(ctx, wait: float):
    """``pair -> FeeRequirements`` from the running service's fee oracle (Mixin's fee endpoint, cached), at most
    ``wait`` seconds per pair (TimeoutError after; the lookup goes on in the background and fills the cache),
    or None without the service. A slow Mixin never holds a public request for its whole retry budget."""
    oracle = getattr(ctx.services, "fee_oracle", None)
    if oracle is None:
        return None

    def bounded(pair):
        lookup = gevent.spawn(oracle.requirements, pair)
        lookup.join(timeout=wait)
        if not lookup.ready():
            raise TimeoutError(f"Mixin's withdrawal fees did not arrive within {wait:g}s")
        return lookup.get()
    return bounded


def register(router: Router) -> None:
    ctx = router.ctx

    @router.route("GET", "/healthz", access=PUBLIC, ok=Health, summary="the process answers", tag="health")
    def healthz():
        return {"status": "ok"}

    @router.route("GET", "/readyz", access=PUBLIC, ok=Readiness, summary="database, actor tree and exchange "
                  "accounts ready (503 with the reasons otherwise)", tag="health", extra={503: Readiness})
    def readyz():
        ready, reasons, checks = readiness(ctx)
        return {"ready": ready, "reasons": reasons, "checks": checks}, (200 if ready else 503)

    @router.route("GET", "/api/v1/pairs", access=PUBLIC, ok=PairsOut, summary="trading pairs: bounds, fees, "
                  "active HuFi campaigns", tag="public")
    def list_pairs():
        return {"pairs": reads.pairs(ctx.config, fee_requirements(ctx, PAIRS_FEE_WAIT))}

    @router.route("POST", "/api/v1/order-intents", access=PUBLIC, ok=IntentOut, tag="public",
                  summary="a new order id and what to pay for it: per asset the amount, the memo and a Mixin pay "
                          "link (fee legs included); nothing is stored until the first payment arrives",
                  extra={503: ErrorBody})
    def create_order_intent(body: IntentIn):
        pair = ctx.config.pair(body.pair_id)
        if pair is None:
            raise Problem(404, f"no pair {body.pair_id}")
        fees_of = fee_requirements(ctx, INTENT_FEE_WAIT)
        if fees_of is None or not ctx.bot_user_id:
            raise Problem(503, "order intents need the running service (Mixin's withdrawal fees, the bot's id)")
        try:
            base = parse_principal(body.base_amount, "base_amount")
            quote = parse_principal(body.quote_amount, "quote_amount")
        except IntentRefused as exc:
            raise Problem(400, str(exc)) from None
        try:
            fees = fees_of(pair)
        except Exception as exc:  # noqa: BLE001 - Mixin unreachable or a fee it does not offer
            logger.warning("api: order intent: withdrawal fees of {} unavailable: {}", pair.symbol, exc)
            raise Problem(503, "Mixin's withdrawal fees are unavailable right now; try again shortly") from None
        order_id = str(uuid.uuid4())
        try:
            legs = order_intent(pair, fees, base, quote, order_id=order_id, bot_user_id=ctx.bot_user_id,
                                symbols=reads.Symbols(ctx.config))
        except IntentRefused as exc:
            raise Problem(400, str(exc)) from None
        return {"order_id": order_id, "pair_id": pair.pair_id, "legs": [leg.as_dict() for leg in legs],
                "fees": {"market_making_fee_percent": reads.money(fees.market_making_fee_percent),
                         "withdrawal": {"base": {"asset_id": fees.base_fee_asset_id,
                                                 "amount": reads.money(fees.base_fee_amount)},
                                        "quote": {"asset_id": fees.quote_fee_asset_id,
                                                  "amount": reads.money(fees.quote_fee_amount)}}},
                "payment_timeout": ctx.config.payments.timeout}
