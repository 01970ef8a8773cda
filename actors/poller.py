"""SnapshotPoller: pages through the bot's Mixin snapshots from a persisted cursor.

Each page is stored, routed and its payments applied, and the cursor advanced, in ONE transaction
(storage.ingest.ingest_page); then the Treasury hears which refunds were queued, and each order the page paid
what changed (one message per order) — while catching up (full pages) once for up to ANNOUNCE_PAGES pages, so an
order paid on many of them hears one message, not one per page. The offset is inclusive, so every page repeats
the last instant; duplicates are dropped by primary key. A full page polls again
at once; otherwise wait `poll_interval`. If a full page is one single instant
(more than `limit` snapshots share one created_at) the cursor cannot move by
time: the poller sweeps that instant asset by asset, raises an operator alert
for whatever it still cannot see, and steps 1 ns forward instead of spinning.

Mixin unreachable (connection refused, DNS, timeouts, 5xx, throttling, an answer that is not one):
the client has already retried the request; the poller keeps its cursor and polls again with
exponential backoff (``poll_interval`` doubling, capped at ``max(backoff_max, 1 s)``), never dies
of it. ``actors.outage.Outage`` reports it: one WARNING per retry window with the reason, an Alert
``mixin_unreachable`` (``mixin_auth_failed`` when Mixin refuses the bot's token: an ERROR) whose
subject is the API base URL, and one INFO line plus the alert resolved when a page arrives again.
"""
from __future__ import annotations

from operator import attrgetter, itemgetter

from loguru import logger

from actors.outage import Outage
from actors.protocol import (DeliverPayments, MovementsQueued, OrdersPaid, PaymentsApplied, PollNow,
                             ReturnArrived)
from actors.router import note_routes
from actors.supervisor import SupervisedActor, describe
from actors.timers import send_after
from domain.ingest import IngestRules
from domain.memo import ACTION_EXIT, decoded_memo
from domain.payment import FeeRequirements, FeeUnavailable
from domain.routing import BadSnapshot, SnapshotFacts, parse_snapshot
from domain.timefmt import format_ns
from integrations import metrics
from integrations.crashpoints import crash_point
from integrations.mixin.errors import MixinAuthError, MixinError
from storage import repo
from storage.ingest import KnownViews, PageIngested, SettledOrders, ingest_page

CURSOR_NAME = "safe_snapshots"
_FACTS, _CREATED_NS, _SNAPSHOT_ID = itemgetter(0), attrgetter("created_ns"), attrgetter("snapshot_id")
# While catching up (full pages, one after the other) the orders hear what the pages applied once, not once per
# page: the payments of up to this many pages (or orders) are told together, one PaymentsApplied per order.
ANNOUNCE_PAGES = 100
ANNOUNCE_ORDERS = 20_000
UNREACHABLE_ALERT = "mixin_unreachable"
AUTH_ALERT = "mixin_auth_failed"


class SnapshotPoller(SupervisedActor):
    def __init__(self, services, *, supervisor=None, child_id=None):
        super().__init__(supervisor=supervisor, child_id=child_id)
        self.services = services
        self.cfg = services.config.mixin
        self.offset: str | None = None
        self.offset_ns: int | None = None
        self._timer = None
        self._failures = 0
        self.pages = 0
        self._last_ids: frozenset[str] = frozenset()  # the previous page's snapshots (the offset repeats them)
        self._settled = SettledOrders()  # orders its commits left with no payment waiting for their actor
        # the orders' views its commits left (one instance of a cluster: other instances write the same orders)
        self._known = KnownViews() if services.cluster is None else None
        # committed, not told yet (catching up): order id → [pair id, outcomes in commit order, the newest view]
        self._untold: dict[str, list] = {}
        self._untold_pages = 0
        self.outage = Outage(services, subject=self.cfg.api_base, kinds=(UNREACHABLE_ALERT, AUTH_ALERT),
                             what=f"Mixin API {self.cfg.api_base}", warn_interval=self._backoff_cap(),
                             consequence="no new payments are seen until it answers (the cursor is kept; "
                                         "nothing is missed)")

    def _backoff_cap(self) -> float:
        return max(self.cfg.backoff_max, 1.0)

    def setup(self) -> None:
        cursor = repo.read_cursor(CURSOR_NAME)
        if cursor is not None:
            self.offset, self.offset_ns = cursor.offset, cursor.offset_ns
        logger.info("poller: starting from cursor {}", self.offset or "(beginning)")
        self.actor_ref.tell(PollNow())

    def teardown(self) -> None:
        if self._timer:
            self._timer.cancel()
        self._tell_applied()  # committed: the orders hear it whatever ends this poller

    def on_receive(self, message):
        if isinstance(message, PollNow):
            self._poll()
        else:
            logger.warning("poller: unexpected message {!r}", message)

    def _schedule(self, delay: float) -> None:
        if self._timer:
            self._timer.cancel()
        if delay <= 0:
            self.actor_ref.tell(PollNow())
        else:
            self._timer = send_after(self.actor_ref, delay, PollNow())

    def _fetch(self, **filters) -> list | None:
        try:
            # the client's per-attempt retry warnings stay off the console: the outage is reported below,
            # one line per retry window (actors.system's console filter)
            with logger.contextualize(outage_reported=True):
                page = self.services.mixin.safe_snapshots(offset=self.offset, limit=self.cfg.page_limit,
                                                          order="ASC", **filters)
        except MixinError as exc:
            self._failures += 1
            delay = min(self.cfg.poll_interval * (2 ** min(self._failures, 6)), self._backoff_cap())
            if isinstance(exc, MixinAuthError):
                self.outage.failed(describe(exc), retry_in=delay, kind=AUTH_ALERT, level="ERROR",
                                   problem="refuses the bot's token (check the keystore and the session)")
            else:
                self.outage.failed(describe(exc), retry_in=delay, kind=UNREACHABLE_ALERT)
            self._schedule(delay)
            return None
        if not isinstance(page, list):
            logger.error("poller: Mixin answered snapshots with a {} instead of a list; retrying",
                         type(page).__name__)
            self._schedule(self.cfg.poll_interval)
            return None
        self._failures = 0
        self.outage.recovered()
        return page

    def _parse(self, page: list) -> list[tuple[SnapshotFacts, dict]]:
        try:  # the usual page, every snapshot well formed: one comprehension
            return [(parse_snapshot(raw), raw) for raw in page]
        except BadSnapshot:
            pass  # parsed again one by one: the malformed ones alerted and skipped
        items = []
        for raw in page:
            try:
                items.append((parse_snapshot(raw), raw))
            except BadSnapshot as exc:
                subject = raw.get("snapshot_id", "?") if isinstance(raw, dict) else "?"
                logger.error("poller: malformed snapshot skipped, operator alerted: {}", exc)
                self.services.writer.run(repo.raise_alert, "malformed_snapshot", str(subject), str(exc))
        return items

    def _poll(self) -> None:
        page = self._fetch()
        if page is None:
            self._tell_applied()  # not caught up, but nothing more comes for now
            return
        items = self._parse(page)
        full = len(page) >= self.cfg.page_limit
        new_offset, new_ns = self.offset, self.offset_ns
        if items:
            newest = max(map(_FACTS, items), key=_CREATED_NS)  # C-level: no Python call per snapshot
            if self.offset_ns is None or newest.created_ns > self.offset_ns:
                new_offset, new_ns = newest.created_at, newest.created_ns
        stuck = full and items and new_ns == self.offset_ns and all(
            f.created_ns == self.offset_ns for f, _ in items)
        if stuck:
            items = items + self._sweep_instant(self.offset_ns)
            new_ns = self.offset_ns + 1
            new_offset = format_ns(new_ns)
        try:
            ingested = self.services.writer.run(ingest_page, items, CURSOR_NAME, new_offset, new_ns,
                                                self._rules(items), self._settled, self._known)
        except BaseException:
            self._settled.forget()  # the unit may have remembered what its rolled-back batch undid
            if self._known is not None:
                self._known.forget()
            raise
        fresh = ingested.fresh
        self.offset, self.offset_ns = new_offset, new_ns
        self.pages += 1
        metrics.snapshots_polled(len(items), len(fresh))
        if any(f.is_deposit for f in fresh):
            crash_point("after_deposit_stored")  # a deposit is stored and routed, its actor not told yet
        if fresh:
            logger.info("poller: {} new snapshots (page of {}), cursor {}", len(fresh), len(page), new_offset)
            self._announce(ingested)
        if not full or self._untold_pages >= ANNOUNCE_PAGES or len(self._untold) >= ANNOUNCE_ORDERS:
            self._tell_applied()
        self._schedule(self.cfg.full_page_pause if full else self.cfg.poll_interval)

    def _rules(self, items: list[tuple[SnapshotFacts, dict]]) -> IngestRules:
        """What the ingest unit needs besides the database: the config, and the withdrawal fees of every pair
        the page may create an order on (read here: a unit does no I/O). A pair whose fees Mixin does not give
        now is left out — its new orders' payments go to their actors, which retry or refund as before."""
        config = self.services.config
        fees: dict[str, FeeRequirements | None] = {}
        facts_of = list(map(_FACTS, items))
        last, self._last_ids = self._last_ids, frozenset(map(_SNAPSHOT_ID, facts_of))
        # the pairs the page's new incoming payments (not outside deposits: matched_by_storage) name, each memo
        # decoded once (cached across pages too: decoded_memo)
        memos = dict.fromkeys([f.memo_hex for f in facts_of
                               if f.amount > 0 and not f.is_deposit and f.snapshot_id not in last])  # page order
        for memo in map(decoded_memo, memos):
            if memo is None or memo.action == ACTION_EXIT or memo.pair_id in fees:
                continue
            pair = config.pair(memo.pair_id)
            fees[memo.pair_id] = None
            if pair is not None and pair.enabled:
                try:
                    fees[memo.pair_id] = self.services.fee_oracle.requirements(pair)
                except (MixinError, FeeUnavailable) as exc:
                    logger.warning("poller: withdrawal fees of {} unreadable ({}); its new orders' payments go to "
                                   "their actors", pair.symbol, exc)
        return IngestRules(pair_lookup=config.pair, operator_ids=config.mixin.operator_user_ids, fees_by_pair=fees,
                           timeout=config.payments.timeout, now=self.services.clock())

    def _announce(self, ingested: PageIngested) -> None:
        """After the commit: the payments applied (told once caught up, _tell_applied), the payments left to actors,
        returns, refunds (told now; what the orders were applied before goes first)."""
        note_routes(ingested.routes)
        untold = self._untold
        for a in ingested.applications:
            if a.view is None:
                continue
            earlier = untold.get(a.order_id)
            if earlier is None:
                untold[a.order_id] = [a.pair_id, a.outcomes, a.view]  # the committed plan's own list: extended
            else:
                earlier[1].extend(a.outcomes)
                earlier[2] = a.view  # the newest
        self._untold_pages += 1
        if ingested.deliveries or ingested.arrivals:
            self._tell_applied()
        for order_id, pair_id, snapshots in ingested.deliveries:
            self.services.tell("orders", DeliverPayments(order_id, pair_id, tuple(snapshots)))
        for order_id, request_id in ingested.arrivals:
            self.services.tell("orders", ReturnArrived(order_id, request_id))
        if ingested.refunds:
            self.services.tell("treasury", MovementsQueued(tuple(ingested.refunds)))

    def _tell_applied(self) -> None:
        """One message per order for every page committed since the last time: its outcomes in commit order, and
        the order as the last of those commits left it."""
        if self._untold:
            self.services.tell("orders", OrdersPaid(tuple(
                PaymentsApplied(order_id, pair_id, tuple(outcomes), view)
                for order_id, (pair_id, outcomes, view) in self._untold.items())))
            self._untold = {}
        self._untold_pages = 0

    def _sweep_instant(self, instant_ns: int) -> list[tuple[SnapshotFacts, dict]]:
        """More snapshots share one created_at than a page holds: read that instant per configured asset."""
        assets = sorted({a for p in self.services.config.pairs for a in (p.base_asset_id, p.quote_asset_id)})
        found: list[tuple[SnapshotFacts, dict]] = []
        for asset_id in assets:
            page = self._fetch(asset=asset_id)
            if page is None:
                break
            same = [(f, r) for f, r in self._parse(page) if f.created_ns == instant_ns]
            found.extend(same)
            if len(page) >= self.cfg.page_limit and len(same) == len(page):
                message = (f"more than {self.cfg.page_limit} snapshots of asset {asset_id} share created_at "
                           f"{format_ns(instant_ns)}; some cannot be paged — reconcile this instant by hand")
                logger.critical("poller: {}", message)
                self.services.writer.run(repo.raise_alert, "snapshot_page_stuck", format_ns(instant_ns), message)
        message = (f"a full page of snapshots shares created_at {format_ns(instant_ns)}; swept configured "
                   f"assets ({len(found)} found) and stepped the cursor 1 ns forward")
        logger.error("poller: {}", message)
        self.services.writer.run(repo.raise_alert, "snapshot_instant_swept", format_ns(instant_ns), message)
        return found
