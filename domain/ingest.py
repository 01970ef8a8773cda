"""A page of snapshots at once: route every one and apply every payment, as pure functions.

The poller stores a page, routes it and applies its payments in ONE durable unit; this module is that
unit's logic without the I/O. Two steps, because the second needs the orders the first names:

- route_page: where each snapshot goes (domain.routing.route_snapshot). A deposit from outside Mixin is
  not routed here: it may be an order's funds coming back, which only the stored returns can tell.
- plan_payments: given the orders' current views, every payment routed to an order applied once, in
  created_at order (domain.tally.apply_to_order; an order's usual payments by its shortcut, apply_plain_payments)
  — or left to the order's actor when it needs something only the actor does: withdrawal fees Mixin would not
  give for a new order, a pair no longer configured, or earlier payments of the same order still waiting for the
  actor (first payer owns the order).
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from domain.memo import ACTION_EXIT, decoded_memo
from domain.order_view import OrderView
from domain.payment import FeeRequirements, PairRules
from domain.routing import Route, RouteKind, SnapshotFacts, order_route, route_snapshot
from domain.tally import OrderApplication, apply_plain_payments, apply_to_order, decide_for


_ORDER = RouteKind.ORDER  # a module name, not the enum's attribute look-up, per snapshot of every page


@dataclass(frozen=True)
class IngestRules:
    pair_lookup: Callable[[str], PairRules | None]
    operator_ids: frozenset[str]
    # Withdrawal fees of the pairs a page may create orders on; a pair missing (or None): Mixin did not answer.
    fees_by_pair: Mapping[str, FeeRequirements | None]
    timeout: float   # payments.timeout: an order's payment window from its first snapshot
    now: float


@dataclass
class PaymentPlan:
    applications: list[OrderApplication] = field(default_factory=list)
    # (order_id, pair_id, snapshots): routed to the order, applied later by its actor
    deliveries: list[tuple[str, str, list[SnapshotFacts]]] = field(default_factory=list)
    # orders whose every payment here was accepted into the tally (domain.tally.apply_plain_payments)
    usual: set[str] = field(default_factory=set)


def matched_by_storage(facts: SnapshotFacts) -> bool:
    """A deposit from outside Mixin: first matched against the stored returns (storage.exit_repo)."""
    return facts.is_deposit and facts.amount > 0


def route_page(snapshots: Sequence[SnapshotFacts], rules: IngestRules) -> list[tuple[SnapshotFacts, Route]]:
    """route_snapshot of each snapshot, in the order given. The usual one (a payment from a user who is not an
    operator, a valid memo naming an enabled pair) is routed to its order here, with the same shared Route
    route_snapshot gives: its steps inlined, each pair looked up once a page (a call chain per snapshot was most of
    routing a page); anything else asks route_snapshot."""
    pair_lookup, operator_ids = rules.pair_lookup, rules.operator_ids
    pairs: dict[str, PairRules | None] = {}
    routed = []
    append = routed.append
    for facts in snapshots:
        if facts.amount > 0 and not (facts.opponent_id and facts.opponent_id in operator_ids):
            memo = decoded_memo(facts.memo_hex)
            if memo is not None:
                pair_id = memo.pair_id
                pair = pairs[pair_id] if pair_id in pairs else pairs.setdefault(pair_id, pair_lookup(pair_id))
                if pair is not None and pair.enabled:
                    append((facts, order_route(memo.order_id, pair_id, memo.action)))
                    continue
        append((facts, route_snapshot(facts, pair_lookup=pair_lookup, operator_ids=operator_ids)))
    return routed


def orders_named(routed: Sequence[tuple[SnapshotFacts, Route]]) -> list[str]:
    """The order ids the page pays, first mention first."""
    return list(dict.fromkeys([r.order_id for _, r in routed if r.kind is _ORDER]))


def plan_payments(routed: Sequence[tuple[SnapshotFacts, Route]], views: Mapping[str, OrderView],
                  waiting: Collection[str], rules: IngestRules, *, views_owned: bool = False) -> PaymentPlan:
    """Apply every payment routed to an order. `views`: the orders that exist; `waiting`: orders whose payments
    their actor applies — it has routed payments not applied yet (these queue behind them), or the order is in
    cold storage. `views_owned`: the caller read `views` for this plan alone — each becomes its order's view
    afterwards, changed in place (else they are copied first)."""
    per_order: dict[str, tuple[str, list[SnapshotFacts]]] = {}
    actions: dict[str, int | None] = {}
    for facts, route in routed:
        if route.kind is _ORDER:
            actions[facts.snapshot_id] = route.action
            entry = per_order.get(route.order_id)
            if entry is None:
                per_order[route.order_id] = (route.pair_id, [facts])
            else:
                entry[1].append(facts)
    plan = PaymentPlan()
    deciders: dict[str, Callable] = {}  # one decide per pair, not one per order
    pairs: dict[str, PairRules | None] = {}  # one pair look-up per pair, not one per order
    pair_lookup, fees_by_pair, now, timeout = rules.pair_lookup, rules.fees_by_pair, rules.now, rules.timeout
    deliver, applied, usual = plan.deliveries.append, plan.applications.append, plan.usual.add
    for order_id, (memo_pair_id, items) in per_order.items():
        view = views.get(order_id)
        pair_id = view.pair_id if view is not None else memo_pair_id
        pair = pairs[pair_id] if pair_id in pairs else pairs.setdefault(pair_id, pair_lookup(pair_id))
        fees = no_fees = None
        if view is None and (actions[items[0].snapshot_id] != ACTION_EXIT if len(items) == 1
                             else any(actions[f.snapshot_id] != ACTION_EXIT for f in items)):  # creates it
            fees = fees_by_pair.get(pair_id)
            no_fees = fees is None
        if pair is None or no_fees or order_id in waiting:
            deliver((order_id, pair_id, items))
            continue
        ordered = items if len(items) == 1 else sorted(items, key=lambda f: (f.created_ns, f.snapshot_id))
        app = apply_plain_payments(order_id, pair_id, view, fees, ordered, pair, actions, now=now, timeout=timeout)
        if app is not None:
            usual(order_id)
        else:
            decide = deciders.get(pair_id)
            if decide is None:
                decide = deciders[pair_id] = (lambda v, f, pair=pair: decide_for(v, f, pair, actions[f.snapshot_id]))
            app = apply_to_order(order_id, pair_id, view, fees, ordered, decide, now=now, timeout=timeout,
                                 owned=views_owned)
        applied(app)
    return plan
