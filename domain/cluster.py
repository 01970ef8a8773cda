"""Who does what in a cluster of ``serve`` instances: pure rules, no I/O (the leases are in storage/cluster.py).

- Singleton roles (ROLES) go to whichever live instance takes the free lease first.
- Each exchange account goes to one live instance by consistent hashing of its id over the live instance ids
  (uhashring, ketama-compatible): when an instance joins or leaves, only the accounts hashed to it move.
- An order belongs with its pair's exchange account — for its whole life, payment stages included — so one
  instance drives it from the first payment to the payout; an order whose pair names no account in service
  (disabled, removed) belongs with the ingest role (it can only be refunded or wait).
"""
from __future__ import annotations

from collections.abc import Iterable

from uhashring import HashRing

INGEST, TREASURY, CAMPAIGNS, KPI = "role:ingest", "role:treasury", "role:campaigns", "role:kpi"
ROLES = (INGEST, TREASURY, CAMPAIGNS, KPI)
ROLE_ACTORS = {INGEST: ("router", "poller"), TREASURY: ("treasury",), CAMPAIGNS: ("campaigns",), KPI: ("kpi",)}
ACCOUNT_PREFIX = "account:"


def account_lease(account_id: str) -> str:
    return ACCOUNT_PREFIX + account_id


def account_of_lease(name: str) -> str | None:
    return name[len(ACCOUNT_PREFIX):] if name.startswith(ACCOUNT_PREFIX) else None


def lease_of_actor(actor_name: str) -> str | None:
    """The role lease an actor of the tree needs (None: it runs on every instance)."""
    return next((role for role, actors in ROLE_ACTORS.items() if actor_name in actors), None)


def assign_accounts(account_ids: Iterable[str], live_instances: Iterable[str]) -> dict[str, str]:
    """account id → the live instance that should own it (consistent hashing; empty without live instances)."""
    nodes = sorted(set(live_instances))
    if not nodes:
        return {}
    ring = HashRing(nodes=nodes, hash_fn="ketama")
    return {account: ring.get_node(account) for account in account_ids}


def lease_of_pair(pair_exchange: str | None, accounts_in_service: Iterable[str]) -> str:
    """The lease whose holder drives the orders of a pair on this exchange account."""
    if pair_exchange and pair_exchange in set(accounts_in_service):
        return account_lease(pair_exchange)
    return INGEST
