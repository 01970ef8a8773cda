"""Public operations: /healthz, /readyz, the pairs, order intents."""
from __future__ import annotations

from api.health import readiness
from api.routing import PUBLIC, Router
from api.schemas import Health, PairsOut, Readiness
from ops import reads


def fee_requirements(ctx):
    """``pair -> FeeRequirements`` from the running service's fee oracle (Mixin's fee endpoint, cached), or
    None without the service."""
    oracle = getattr(ctx.services, "fee_oracle", None)
    return oracle.requirements if oracle is not None else None


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
        return {"pairs": reads.pairs(ctx.config, fee_requirements(ctx))}
