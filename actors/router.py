"""Router: decides where each stored, unrouted snapshot goes, writes that down, then tells the owner.

The poller routes and applies its pages itself (storage.ingest, one unit per page); what reaches the
Router is what was stored without a route — a database from before that, or a test handing it
snapshots. Outcomes are written before anything is told, so after a crash the same decisions are not
taken twice: routed snapshots are picked up by their order actors, queued refunds by the Treasury, and
unrouted ones by the Router's start.
"""
from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Sequence
from itertools import chain, repeat
from operator import attrgetter, itemgetter

from loguru import logger

from actors.protocol import DeliverPayments, MovementsQueued, ReturnArrived, RouteUnrouted, SnapshotsArrived
from actors.supervisor import SupervisedActor
from domain.routing import Route, RouteKind, SnapshotFacts, route_snapshot
from integrations import metrics
from storage import repo


class Router(SupervisedActor):
    def __init__(self, services, *, supervisor=None, child_id=None):
        super().__init__(supervisor=supervisor, child_id=child_id)
        self.services = services
        self.routed = 0

    def setup(self) -> None:
        self.actor_ref.tell(RouteUnrouted())

    def on_receive(self, message):
        if isinstance(message, SnapshotsArrived):
            self._route(message.snapshots)
        elif isinstance(message, RouteUnrouted):
            self._route_unrouted()
        else:
            logger.warning("router: unexpected message {!r}", message)

    def _route_unrouted(self) -> None:
        while True:
            pending = repo.unrouted_snapshots(limit=2000)
            if not pending:
                return
            logger.info("router: routing {} stored snapshots left unrouted", len(pending))
            self._route(tuple(pending))

    def _route(self, snapshots: tuple[SnapshotFacts, ...]) -> None:
        config = self.services.config
        decisions = [(f, route_snapshot(f, pair_lookup=config.pair, operator_ids=config.mixin.operator_user_ids))
                     for f in snapshots]
        recorded = self.services.writer.run(repo.record_routes, decisions)
        note_routes(recorded.routes)
        per_order: OrderedDict[str, tuple[str, list[SnapshotFacts]]] = OrderedDict()
        for facts, route in recorded.routes:
            if route.kind is RouteKind.ORDER:
                per_order.setdefault(route.order_id, (route.pair_id, []))[1].append(facts)
        self.routed += len(recorded.routes)
        for order_id, (pair_id, items) in per_order.items():
            self.services.tell("orders", DeliverPayments(order_id, pair_id, tuple(items)))
        for order_id, request_id in recorded.arrivals:
            self.services.tell("orders", ReturnArrived(order_id, request_id))
        if recorded.refunds:
            self.services.tell("treasury", MovementsQueued(tuple(recorded.refunds)))


def logs_at(level_no: int) -> bool:
    """Whether some sink takes lines of this level (logger.level(name).no): the hot paths (a line per payment)
    skip building lines nobody takes. loguru keeps the lowest level any sink accepts — a private field; without
    it every line is built, as before."""
    return getattr(getattr(logger, "_core", None), "min_level", 0) <= level_no


_ROUTE, _KIND = itemgetter(1), attrgetter("kind")
_ORDER_ONLY = frozenset((RouteKind.ORDER,))

DEBUG = logger.level("DEBUG").no
INFO = logger.level("INFO").no


def note_routes(routes: Sequence[tuple[SnapshotFacts, Route]]) -> None:
    """Metrics and one log line per snapshot routed (a payment to an order only at DEBUG)."""
    kinds = Counter(map(_KIND, map(_ROUTE, routes)))  # C-level: no Python step per snapshot (a page is 500)
    metrics.routing_outcomes(chain.from_iterable(repeat(kind.value, n) for kind, n in kinds.items()))
    debug = logs_at(DEBUG)
    if not debug and kinds.keys() <= _ORDER_ONLY:
        return  # the usual page: payments to orders, logged only at DEBUG
    for facts, route in routes:
        if route.kind is RouteKind.ORDER:
            if not debug:
                continue
            logger.debug("router: snapshot {} ({} {}) → order {}", facts.snapshot_id, facts.amount, facts.asset_id,
                         route.order_id)
            continue
        log = logger.bind(snapshot_id=facts.snapshot_id)
        if route.kind is RouteKind.REFUND:
            log.info("router: snapshot {} ({} {}) refunded: {}", facts.snapshot_id, facts.amount,
                     facts.asset_id, route.reason)
        elif route.kind is RouteKind.ATTENTION:
            log.error("router: snapshot {} ({} {}) needs an operator: {}", facts.snapshot_id, facts.amount,
                      facts.asset_id, route.reason)
        elif route.kind is RouteKind.RETURN:
            log.info("router: snapshot {} ({} {}) is {}", facts.snapshot_id, facts.amount, facts.asset_id,
                     route.reason)
        elif route.kind is RouteKind.AWAITING:
            log.info("router: snapshot {} ({} {}) waits: {}", facts.snapshot_id, facts.amount, facts.asset_id,
                     route.reason)
        elif route.kind is RouteKind.TOPUP:
            log.info("router: snapshot {} is a treasury top-up of {} {}", facts.snapshot_id, facts.amount,
                     facts.asset_id)
        else:
            log.debug("router: snapshot {} ignored: {}", facts.snapshot_id, route.reason)
