"""The page-at-once ingest unit and the set-based writes behind payments.

`ingest_page` is one unit of work (storage.writer): the page's new snapshots are stored already routed
and applied, the cursor moves, the orders they pay are created or updated, their tallies and the refunds
they imply are written — a handful of statements for the whole page (one executemany per table), never
a statement per snapshot or per order. What to write comes from domain.ingest / domain.tally; this module
only reads what those need (the named orders, in two statements) and writes their answer.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from operator import attrgetter, itemgetter

from domain.ids import refund_request_id
from domain.ingest import IngestRules, matched_by_storage, orders_named, plan_payments, route_page
from domain.order_view import OrderView
from domain.routing import Route, RouteKind, SnapshotFacts, refund_memo
from domain.states import FINAL_STATES
from domain.tally import PURPOSE_OF, OrderApplication
from storage import repo, writer
from storage.archive_models import archived_entries
from storage.repo import (_ORDER_COLUMNS, CHUNK, _view_from_tuple, advance_cursor, pack_raw, record_routes,
                          stored_ids)
from storage.sql import chunks, marks, run, run_many

_KIND_VALUE = {kind: kind.value for kind in RouteKind}
_PAYMENT = PURPOSE_OF["accepted"]
_ORDER, _REFUND, _ATTENTION = RouteKind.ORDER, RouteKind.REFUND, RouteKind.ATTENTION  # per snapshot: no enum look-up
_ORDER_VALUE = _ORDER.value
_FIRST, _SNAPSHOT_ID, _IS_DEPOSIT, _ORDER_ID = (itemgetter(0), attrgetter("snapshot_id"), attrgetter("is_deposit"),
                                              attrgetter("order_id"))  # first items, fields: at C level, per snapshot
_CONSUMED = frozenset((RouteKind.REFUND, RouteKind.IGNORE, RouteKind.TOPUP, RouteKind.RETURN))  # applied when routed


# ---------------------------------------------------------------- reads

def load_views(order_ids: Sequence[str]) -> dict[str, OrderView]:
    """The orders among `order_ids` that exist, with their tallies: one statement per 400 orders (an order's
    columns come once per asset it was paid in, or once with no tally)."""
    rows: dict[str, tuple] = {}
    tallies: dict[str, dict[str, Decimal]] = {}
    for chunk in chunks(list(order_ids), CHUNK):
        for row in run(_VIEWS_SQL + f"({marks(len(chunk))})", chunk).fetchall():
            order_id, asset_id = row[0], row[-2]
            if order_id not in rows:
                rows[order_id] = row
                tallies[order_id] = {}
            if asset_id is not None:
                tallies[order_id][asset_id] = Decimal(row[-1])
    return {order_id: _view_from_tuple(row[:-2], tallies[order_id]) for order_id, row in rows.items()}


_VIEWS_SQL = (f"SELECT {', '.join('o.' + c for c in _ORDER_COLUMNS)}, t.asset_id, t.amount FROM orders o "
              f"LEFT JOIN payment_tally t ON t.order_id = o.order_id WHERE o.order_id IN ")


def stored_among(items: Iterable[tuple[SnapshotFacts, dict]]) -> set[str]:
    """Which of these snapshots are stored already (repo.stored_ids), looked up only when they are not newer than
    every stored snapshot: a snapshot's created_at is part of it, so one newer than the newest stored is not stored.
    A page read from the cursor repeats only its last instant: one index read for the newest, a few lookups."""
    newest = run("SELECT MAX(created_ns) FROM snapshot").fetchone()[0]
    if newest is None:
        return set()
    maybe = [facts.snapshot_id for facts, _ in items if facts.created_ns <= newest]
    return stored_ids(maybe) if maybe else set()


def orders_waiting(order_ids: Sequence[str]) -> set[str]:
    """Orders among `order_ids` with payments routed to them that their actor has not applied yet."""
    found: set[str] = set()
    for chunk in chunks(list(order_ids), CHUNK):
        # `applied = FALSE` as a literal: the partial index of waiting snapshots (storage.models) answers it
        found.update(r[0] for r in run(
            f"SELECT DISTINCT order_id FROM snapshot WHERE outcome = ? AND applied = FALSE "
            f"AND order_id IN ({marks(len(chunk))})", (RouteKind.ORDER.value, *chunk)).fetchall())
    return found


class SettledOrders:
    """Orders the poller's own commits left with no payment waiting for their actor: their next payments need no
    orders_waiting read (in the bench's shape, one order per snapshot, that read was ~4 % of the CPU).

    Only what an ingest unit saw is remembered: an order whose payments it applied itself had none waiting, and a
    later page's payment can only start waiting by this poller's own deliveries (forgotten per order) or by
    record_routes (the Router, outside deposits: forgets them all, storage.repo.routes_left_waiting). Held by the
    poller (a new poller starts empty) and forgotten whenever a unit of its fails — a rolled-back batch may have
    undone what was remembered."""

    LIMIT = 200_000  # remembered orders; past it start again (each costs ~100 bytes)

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._generation = repo.routes_left_waiting

    def waiting(self, order_ids: Sequence[str]) -> set[str]:
        """orders_waiting(order_ids), read only for the orders not known to be settled. In the unit."""
        if self._generation != repo.routes_left_waiting or len(self._ids) > self.LIMIT:
            self.forget()
        unknown = [o for o in order_ids if o not in self._ids]
        return orders_waiting(unknown) if unknown else set()

    def note(self, settled: Iterable[str], unsettled: Iterable[str]) -> None:
        self._ids.update(settled)
        self._ids.difference_update(unsettled)

    def forget(self) -> None:
        self._ids = set()
        self._generation = repo.routes_left_waiting


class KnownViews:
    """The orders as the poller's own commits left them, kept across pages so a page reads only the orders it has
    not seen (in the bench's shape that read was the largest statement after the snapshot insert).

    Trusted only while nothing else could have written an order: every unit of the writer counts
    (storage.writer.units_begun) and one other unit run since this poller's last one forgets them all — an actor
    completing, refunding or applying its own payments, an operator command, anything. Final orders are not kept
    (cold storage moves them outside the writer). Held by the poller (a new one starts empty), forgotten whenever
    a unit of its fails (the batch rolled back what was remembered), and not used by an instance of a cluster
    (other instances write the same orders)."""

    LIMIT = 200_000  # remembered orders; past it start again

    def __init__(self) -> None:
        self._views: dict[str, OrderView] = {}
        self._at = -1  # storage.writer.units_begun in the last unit that used them

    def views(self, order_ids: Sequence[str]) -> dict[str, OrderView]:
        """load_views(order_ids), read only for the orders not known; the kept ones are shared: never to be changed
        in place (plan_payments with views_owned False copies what it changes). In the unit."""
        if writer.units_begun != self._at + 1 or len(self._views) > self.LIMIT:
            self._views = {}
        self._at = writer.units_begun
        known = self._views
        found: dict[str, OrderView] = {}
        unknown = []
        for order_id in order_ids:
            view = known.get(order_id)
            if view is None:
                unknown.append(order_id)
            else:
                found[order_id] = view  # told to its actor: the plan copies it before any change (views_owned)
        if unknown:
            found.update(load_views(unknown))
        return found

    def note(self, applications: Iterable[OrderApplication], delivered: Iterable[str]) -> None:
        """After the unit planned: each order as it leaves it; orders left to their actors are forgotten."""
        known = self._views
        for a in applications:
            if a.view is not None and a.view.state not in FINAL_STATES:
                known[a.order_id] = a.view
            else:
                known.pop(a.order_id, None)
        for order_id in delivered:
            known.pop(order_id, None)

    def forget(self) -> None:
        self._views = {}
        self._at = -1


# ---------------------------------------------------------------- writes

def write_applications(apps: Sequence[OrderApplication], now: float, *, snapshots_written: bool) -> None:
    """Orders created or changed, their transitions, tallies and refunds: one statement per table.

    `snapshots_written`: the caller stores the snapshots with their final columns (the ingest unit);
    otherwise (already stored) they are marked applied here."""
    created, updated, transitions, tallies, refunds = [], [], [], [], []
    for a in apps:  # one pass over the page's orders (one per statement was ~a third of the Python here)
        v = a.view
        if a.created:
            created.append((v.order_id, v.pair_id, v.state.value, v.state_reason, v.user_id, v.fees.base_fee_asset_id,
                            format(v.fees.base_fee_amount, "f"), v.fees.quote_fee_asset_id,
                            format(v.fees.quote_fee_amount, "f"), format(v.fees.market_making_fee_percent, "f"),
                            v.first_payment_at, v.deadline_at, v.exit_requested_at, v.exit_source, v.exit_reason, now,
                            now))
        elif a.row_changed:  # (row_changed implies changed: apply_to_order, apply_plain_payments)
            updated.append((v.state.value, v.state_reason, v.user_id, v.first_payment_at, v.deadline_at,
                            v.exit_requested_at, v.exit_source, v.exit_reason, now, v.order_id))
        if a.transitions:
            transitions.extend((a.order_id, t.from_state, t.to_state, t.reason, now) for t in a.transitions)
        for asset_id, n in a.counts.items():
            tallies.append((a.order_id, asset_id, format(v.tallies[asset_id], "f"), n))
        if a.refunds:
            refunds.extend((r.facts, r.code, r.order_id) for r in a.refunds)
    run_many("INSERT INTO orders (order_id, pair_id, state, state_reason, user_id, base_fee_asset_id, "
             "base_fee_amount, quote_fee_asset_id, quote_fee_amount, market_making_fee_percent, first_payment_at, "
             "deadline_at, exit_requested_at, exit_source, exit_reason, created_at, updated_at) "
             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", created)
    run_many("UPDATE orders SET state = ?, state_reason = ?, user_id = ?, first_payment_at = ?, deadline_at = ?, "
             "exit_requested_at = ?, exit_source = ?, exit_reason = ?, updated_at = ? WHERE order_id = ?", updated)
    # Only tallied (the usual later payment): the order's row is as it was — its tally row says what changed, and
    # updated_at is the time of the row's own last change. No statement: an order row per payment was ~a sixth of
    # a page's writes (its table pages written again at every commit).
    run_many("INSERT INTO order_state_change (order_id, from_state, to_state, reason, at) VALUES (?, ?, ?, ?, ?)",
             transitions)
    run_many("INSERT INTO payment_tally (order_id, asset_id, amount, payments) VALUES (?, ?, ?, ?) "
             "ON CONFLICT (order_id, asset_id) DO UPDATE SET amount = excluded.amount, "
             "payments = payment_tally.payments + excluded.payments", tallies)
    queue_refunds(refunds, now)
    if snapshots_written:
        return
    run_many("UPDATE snapshot SET applied = ?, applied_at = ?, purpose = ? WHERE snapshot_id = ?",
             [(True, now, o.purpose, o.snapshot_id) for a in apps for o in a.outcomes if o.purpose])
    run_many("UPDATE snapshot SET outcome = ?, reason = ?, applied = ?, applied_at = ? WHERE snapshot_id = ?",
             [(RouteKind.REFUND.value, r.reason, True, now, r.facts.snapshot_id) for a in apps for r in a.refunds])


def queue_refunds(refunds: Sequence[tuple[SnapshotFacts, str, str | None]], now: float) -> None:
    """Refund movements (snapshot, reason code, order id or None), once each: the request id is the snapshot's."""
    run_many("INSERT INTO money_movement (request_id, kind, cause, order_id, snapshot_id, asset_id, amount, "
             "recipient_id, memo, state, attempts, attempt, rejections, created_at, updated_at) "
             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
             [(refund_request_id(f.snapshot_id), "refund", f"refund:{f.snapshot_id}", order_id, f.snapshot_id,
               f.asset_id, format(f.amount, "f"), f.opponent_id, refund_memo(f.snapshot_id, code), "queued", 0, 0, 0,
               now, now) for f, code, order_id in refunds])


# ---------------------------------------------------------------- the unit

@dataclass
class PageIngested:
    fresh: list[SnapshotFacts]                        # stored for the first time
    routes: list[tuple[SnapshotFacts, Route]]         # every fresh snapshot's route, as written
    applications: list[OrderApplication] = field(default_factory=list)
    deliveries: list[tuple[str, str, list[SnapshotFacts]]] = field(default_factory=list)  # for the actors
    arrivals: list[tuple[str, str]] = field(default_factory=list)  # (order_id, return request id)
    refunds: list[str] = field(default_factory=list)  # refund request ids queued


def ingest_page(items: Sequence[tuple[SnapshotFacts, dict]], cursor_name: str, offset: str | None,
                offset_ns: int | None, rules: IngestRules, settled: SettledOrders | None = None,
                known: KnownViews | None = None) -> PageIngested:
    """Store the page's new snapshots routed and applied, and move the cursor: one transaction.

    A replayed page stores nothing (primary key); a snapshot's routing and its payment are written in the
    same transaction as the snapshot, so nothing is ever routed or applied twice. `settled`: the caller's memory
    of orders with no payment waiting (read from the database when None); `known`: its memory of the orders' views
    (read when None)."""
    now = rules.now
    # the caller's own pairs (a new tuple per snapshot cost a GC-tracked object each), by id at C level; a snapshot
    # listed twice keeps its first listing
    unique = dict(zip(map(_SNAPSHOT_ID, map(_FIRST, items)), items))
    if len(unique) < len(items):
        unique = {}
        for item in items:
            unique.setdefault(item[0].snapshot_id, item)
    existing = stored_among(unique.values())
    fresh = [pair for sid, pair in unique.items() if sid not in existing] if existing else list(unique.values())
    deposits = ([pair for pair in fresh if matched_by_storage(pair[0])]
                if any(map(_IS_DEPOSIT, map(_FIRST, fresh))) else [])  # outside deposits are few: looked for at C level
    direct = [pair for pair in fresh if not matched_by_storage(pair[0])] if deposits else fresh
    routed = route_page(list(map(_FIRST, direct)), rules)
    named = orders_named(routed)
    views = known.views(named) if known is not None else load_views(named)
    # an archived order's late payments go to its actor, which refuses them like a final order's
    waiting = ((settled.waiting(named) if settled is not None else orders_waiting(named))
               | set(archived_entries([o for o in named if o not in views])))
    plan = plan_payments(routed, views, waiting, rules, views_owned=known is None)

    usual = plan.usual  # every payment of these orders accepted: no outcome to look up
    effects = {o.snapshot_id: o for a in plan.applications if a.order_id not in usual for o in a.outcomes}
    rows = []
    append = rows.append
    for (facts, raw), (_, route) in zip(direct, routed):  # route_page keeps the order it is given
        kind = route.kind
        if kind is _ORDER and route.order_id in usual:  # the usual payment: accepted into its order's tally
            outcome, reason, applied, purpose = _ORDER_VALUE, route.reason, True, _PAYMENT
        else:
            outcome, reason, applied, purpose = _KIND_VALUE[kind], route.reason, kind in _CONSUMED, None
            if kind is _ORDER and (effect := effects.get(facts.snapshot_id)) is not None \
                    and effect.result != "duplicate":
                applied, purpose = True, PURPOSE_OF.get(effect.result)  # ApplyOutcome.purpose, inlined
                if effect.result == "refunded":
                    outcome, reason = RouteKind.REFUND.value, effect.reason
        append((facts.snapshot_id, facts.created_at, facts.created_ns, facts.asset_id, format(facts.amount, "f"),
                facts.opponent_id, facts.memo_hex, pack_raw(raw), outcome, reason, route.order_id, route.pair_id,
                applied, purpose, now, now, now if applied else None))
    for facts, raw in deposits:  # stored unrouted: record_routes below routes it
        append((facts.snapshot_id, facts.created_at, facts.created_ns, facts.asset_id, format(facts.amount, "f"),
                facts.opponent_id, facts.memo_hex, pack_raw(raw), None, None, None, None, False, None, now,
                None, None))
    run_many("INSERT INTO snapshot (snapshot_id, created_at, created_ns, asset_id, amount, opponent_id, memo, raw, "
             "outcome, reason, order_id, pair_id, applied, purpose, inserted_at, routed_at, applied_at) "
             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    routing_refunds = [(f, r.code, None) for f, r in routed if r.kind is _REFUND]
    queue_refunds(routing_refunds, now)
    run_many("INSERT INTO alert (kind, subject, message, created_at, resolved) VALUES (?, ?, ?, ?, ?) "
             "ON CONFLICT DO NOTHING", [("unrefundable_snapshot", f.snapshot_id, r.reason, now, False)
                                        for f, r in routed if r.kind is _ATTENTION])
    write_applications(plan.applications, now, snapshots_written=True)
    result = PageIngested(list(map(_FIRST, fresh)), list(routed), plan.applications, plan.deliveries)
    if deposits:  # outside deposits: matched to a return first, routed as before (record_routes)
        recorded = record_routes(route_page([f for f, _ in deposits], rules))
        result.routes.extend(recorded.routes)
        result.arrivals.extend(recorded.arrivals)
        result.refunds.extend(recorded.refunds)
        result.deliveries.extend((r.order_id, r.pair_id, [f]) for f, r in recorded.routes
                                 if r.kind is RouteKind.ORDER)
    result.refunds.extend(refund_request_id(f.snapshot_id) for f, _, _ in routing_refunds)
    result.refunds.extend(i for a in plan.applications if a.refunds for i in a.refund_ids)  # a refund's outcome
    advance_cursor(cursor_name, offset, offset_ns, time.time())
    if settled is not None:
        settled.note(map(_ORDER_ID, plan.applications), map(_FIRST, result.deliveries))
    if known is not None:
        known.note(plan.applications, map(_FIRST, result.deliveries))
    return result
