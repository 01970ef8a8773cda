"""Several ``serve`` instances on one PostgreSQL ([cluster]): membership, roles, accounts, fencing, the bus.

    root (rest_for_one): store → exchanges (empty) → orders → cluster (this) → [kpi-free api]
      cluster ─ dynamic children, one per role this instance holds:
                ingest (router → poller), treasury, campaigns, kpi

Every ``heartbeat`` the ClusterActor, on its own database connection (storage/cluster.py):

1. renews its membership row and every lease it holds — a lease no longer ours (taken over while this process
   was paused, or the database unreachable longer than the TTL) is dropped at once: its actors stop;
2. takes every free or expired role lease (first come) and starts that role's actors;
3. hashes the exchange accounts over the live members (domain/cluster.py): an account that hashes here is
   taken when its lease is free (at once after a clean hand-over, after the TTL after a death) and started
   through today's recovery path — the gateway reconciles the account with the orders DB before it publishes
   it, then the orders of its pairs start and resume from the database (quoting again); an account that
   hashes elsewhere is stopped here (its orders, then its gateway) and its lease released.

Actors acting under a lease get services whose writer is fenced with (lease, epoch): see storage/cluster.py.

The bus: a role actor held by another instance is told through PostgreSQL NOTIFY (channel ``mmflow_bus``),
and so is an order's actor owned by another instance; each instance LISTENs and delivers what it owns. A
message lost on the way costs time only, never money: each actor resumes from the database when it starts,
and the treasury sweeps its queued movements when it (re)connects to the bus.
"""
from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
import uuid
from typing import Any

import gevent
import pykka
from loguru import logger

from actors.messages import StartChild, StopChild
from actors.protocol import (DeliverPayments, MovementSettled, MovementsQueued, PaymentsApplied, PollCommands,
                             RetryMovement, ReturnArrived)
from actors.supervisor import ChildSpec, Restart, Strategy, Supervisor
from actors.timers import send_every
from domain import cluster as rules
from domain.tally import ApplyOutcome
from storage.cluster import BUS_CHANNEL, Fence, FencedWriter, LeaseStore

CHANNEL = BUS_CHANNEL
WRITER_LOCK = 0x6D6D77726974  # "mmwrit": the advisory lock every instance's group commit takes (storage/writer.py)
IDS_PER_NOTIFY = 60   # a NOTIFY payload is at most 8000 bytes
OUTCOMES_PER_NOTIFY = 30    # payments applied to one order, per NOTIFY (each ~200 bytes at most)
OUTCOME_REASON_CHARS = 80


@dataclasses.dataclass(frozen=True)
class ClusterTick:
    """Timer → ClusterActor: heartbeat, renew, rebalance."""


@dataclasses.dataclass(frozen=True)
class AccountAcquired:
    """ClusterActor → OrderSupervisor: this instance now owns these orders' account; start them (recovery)."""
    lease: str


@dataclasses.dataclass(frozen=True)
class AccountReleased:
    """ClusterActor → OrderSupervisor (ask): stop the actors of the orders under this lease, now."""
    lease: str


@dataclasses.dataclass(frozen=True)
class RemoteOrderEvent:
    """Bus → OrderSupervisor: something for an order, from another instance (decoded, see ``decode_order``)."""
    message: Any


def session_name(instance_id: str, pid: int) -> str:
    """The application_name of every database session of this process (at most 63 bytes)."""
    return f"mmflow:{instance_id}:{pid}"[:63]


def default_instance_id() -> str:
    return f"{socket.gethostname()[:30]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Cluster:
    """This instance's view of the cluster, shared by its actors (``services.cluster``)."""

    def __init__(self, config, instance_id: str | None = None) -> None:
        settings = config.cluster
        self.config = config
        self.instance_id = (instance_id or os.environ.get("MMFLOW_CLUSTER_INSTANCE", "").strip() or settings.instance_id
                            or default_instance_id())
        self.ttl = settings.lease_ttl
        self.heartbeat = settings.heartbeat_interval
        self.accounts = tuple(a.account_id for a in config.exchanges)
        self.session_name = session_name(self.instance_id, os.getpid())
        self.held: dict[str, int] = {}          # lease name → epoch, while this instance holds it
        self.writer_lock = WRITER_LOCK
        self.store = LeaseStore(config.database.url, self.instance_id, self.ttl)
        self.notifier = LeaseStore(config.database.url, self.instance_id, self.ttl)  # publishing never waits
        self.refs: dict[str, pykka.ActorRef] = {}  # the shared services' refs (set by start_tree)
        self._fenced: dict[tuple[str, int], Any] = {}

    # -- who owns what ------------------------------------------------------------------------------------

    def holds(self, lease: str) -> bool:
        return lease in self.held

    def lease_of_pair(self, pair_id: str | None) -> str:
        pair = self.config.pair(pair_id) if pair_id else None
        return rules.lease_of_pair(pair.exchange if pair is not None else None, self.accounts)

    def owns_pair(self, pair_id: str | None) -> bool:
        return self.lease_of_pair(pair_id) in self.held

    def is_remote_role(self, actor_name: str) -> bool:
        lease = rules.lease_of_actor(actor_name)
        return lease is not None and lease not in self.held

    def fenced_services(self, services, lease: str):
        epoch = self.held.get(lease, -1)   # not held: every write is refused (epochs start at 1)
        key = (lease, epoch)
        copy = self._fenced.get(key)
        if copy is None:
            copy = dataclasses.replace(services, writer=None)
            copy.writer = FencedWriter(services, Fence(lease, self.instance_id, epoch))
            self._fenced = {k: v for k, v in self._fenced.items() if k[0] != lease}
            self._fenced[key] = copy
        return copy

    # -- the bus ------------------------------------------------------------------------------------------

    def publish(self, payload: dict) -> bool:
        try:
            self.notifier.notify(CHANNEL, json.dumps(payload, separators=(",", ":")))
        except Exception as exc:  # noqa: BLE001 - the state is durable: the owner catches up when it starts
            logger.warning("cluster: could not publish {} ({}); its owner catches up from the database",
                           payload.get("type"), exc)
            return False
        return True

    def publish_to_role(self, actor_name: str, message: Any) -> bool:
        if isinstance(message, MovementsQueued):
            ids = list(message.request_ids)
            return all(self.publish({"type": "movements", "ids": ids[i:i + IDS_PER_NOTIFY]})
                       for i in range(0, len(ids), IDS_PER_NOTIFY))
        from actors.campaigns import JoinForOrder
        if isinstance(message, JoinForOrder):
            return self.publish({"type": "join", "order_id": message.order_id, "account": message.exchange_account,
                                 "ccxt_id": message.ccxt_id, "symbol": message.symbol})
        logger.warning("cluster: {} for {} held elsewhere is not sent over the bus; it catches up from the database",
                       type(message).__name__, actor_name)
        return False

    def publish_to_order(self, message: Any) -> bool:
        if isinstance(message, PaymentsApplied) and len(message.outcomes) > OUTCOMES_PER_NOTIFY:
            parts = [dataclasses.replace(message, outcomes=message.outcomes[i:i + OUTCOMES_PER_NOTIFY])
                     for i in range(0, len(message.outcomes), OUTCOMES_PER_NOTIFY)]
            return all([self.publish_to_order(part) for part in parts])
        payload = encode_order(message)
        if payload is None:
            return False
        return self.publish(payload)


def encode_order(message: Any) -> dict | None:
    """An order-addressed message as a bus payload (None: not sent across instances)."""
    from actors.campaigns import CampaignJoined
    if isinstance(message, DeliverPayments):
        return {"type": "payments", "order_id": message.order_id, "pair_id": message.pair_id}
    if isinstance(message, MovementSettled):
        return {"type": "settled", "order_id": message.order_id, "request_id": message.request_id,
                "state": message.state}
    if isinstance(message, ReturnArrived):
        return {"type": "return", "order_id": message.order_id, "request_id": message.request_id}
    if isinstance(message, PaymentsApplied):
        # the view is read again by the receiver (committed before this is sent); reasons only go to its log
        return {"type": "applied", "order_id": message.order_id, "pair_id": message.pair_id,
                "outcomes": [[o.snapshot_id, o.result, o.reason[:OUTCOME_REASON_CHARS], o.refund_request_id]
                             for o in message.outcomes]}
    if isinstance(message, CampaignJoined):
        return {"type": "joined", "order_id": message.order_id, "campaign_id": message.campaign_id,
                "hufi_campaign": message.hufi_campaign, "note": message.note}
    return None


def decode_order(payload: dict) -> Any:
    """The message a bus payload stands for (the payments themselves are read from the database)."""
    from actors.campaigns import CampaignJoined
    kind = payload.get("type")
    if kind == "payments":
        return DeliverPayments(payload["order_id"], payload.get("pair_id") or "", ())
    if kind == "settled":
        return MovementSettled(payload["order_id"], payload["request_id"], payload["state"])
    if kind == "return":
        return ReturnArrived(payload["order_id"], payload["request_id"])
    if kind == "applied":
        outcomes = tuple(ApplyOutcome(sid, result, reason, refund_id)
                         for sid, result, reason, refund_id in payload.get("outcomes") or ())
        return PaymentsApplied(payload["order_id"], payload.get("pair_id") or "", outcomes, None)
    if kind == "joined":
        return CampaignJoined(payload["order_id"], payload["campaign_id"], payload.get("hufi_campaign"),
                              payload.get("note") or "")
    return None


class ClusterActor(Supervisor):
    """Membership, leases and the role actors of this instance (see the module docstring)."""

    def __init__(self, services, role_specs: dict[str, ChildSpec], gateway_spec, *, supervisor=None,
                 child_id=None):
        sv = services.config.supervision
        super().__init__("cluster", (), strategy=Strategy.ONE_FOR_ONE, intensity=sv.intensity, period=sv.period,
                         backoff_min=sv.backoff_min, backoff_max=sv.backoff_max, supervisor=supervisor,
                         child_id=child_id)
        self.services = services
        self.cluster: Cluster = services.cluster
        self.role_specs = role_specs          # lease → ChildSpec of the role's actor(s)
        self.gateway_spec = gateway_spec      # (account config, services) → ChildSpec
        self._last_renewed = time.monotonic()
        self._timer = None
        self._listener = None
        self._host, self._pid = socket.gethostname(), os.getpid()

    def setup(self) -> None:
        super().setup()
        self.cluster.held.clear()
        self.cluster.store.heartbeat(self._host, self._pid)
        self._last_renewed = time.monotonic()
        logger.info("cluster: instance {} joined (lease TTL {:g}s, heartbeat {:g}s)", self.cluster.instance_id,
                    self.cluster.ttl, self.cluster.heartbeat)
        self._listener = gevent.spawn(self._listen)
        self._timer = send_every(self.actor_ref, self.cluster.heartbeat, ClusterTick())
        self.actor_ref.tell(ClusterTick())

    def teardown(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._listener is not None:
            self._listener.kill(block=False)
        held = dict(self.cluster.held)
        for lease in [name for name in held if rules.account_of_lease(name)]:
            self._stop_account(lease, why="shutting down")
        super().teardown()   # the role actors stop
        for lease, epoch in held.items():
            self.cluster.held.pop(lease, None)
            for name in rules.ROLE_ACTORS.get(lease, ()):
                self.services.refs.pop(name, None)
            try:
                self.cluster.store.release(lease, epoch)
            except Exception as exc:  # noqa: BLE001 - it then expires after the TTL
                logger.warning("cluster: could not release {} ({}); it expires after the TTL", lease, exc)
        try:
            self.cluster.store.leave()
        except Exception:  # noqa: BLE001, S110 - the row expires
            pass
        self.cluster.store.close_quietly()
        self.cluster.notifier.close_quietly()
        logger.info("cluster: instance {} left", self.cluster.instance_id)

    def handle_message(self, message: Any) -> Any:
        if isinstance(message, ClusterTick):
            self._tick()
            return None
        return super().handle_message(message)

    # -- the tick -----------------------------------------------------------------------------------------

    def _tick(self) -> None:
        cluster = self.cluster
        try:
            cluster.store.heartbeat(self._host, self._pid)
            renewed = cluster.store.renew(cluster.held)
            live = cluster.store.live_members()
        except Exception as exc:  # noqa: BLE001 - the database is the coordinator: without it, stop acting
            silent = time.monotonic() - self._last_renewed
            logger.warning("cluster: cannot renew leases ({}); {:.1f}s since the last renewal", exc, silent)
            if silent > cluster.ttl and cluster.held:
                logger.error("cluster: leases not renewed for {:.1f}s (TTL {:g}s): stopping everything this "
                             "instance held", silent, cluster.ttl)
                for lease in list(cluster.held):
                    self._lost(lease)
            return
        self._last_renewed = time.monotonic()
        for lease in list(cluster.held):
            if renewed.get(lease) != cluster.held[lease]:
                logger.error("cluster: instance {} lost {} (taken over while it could not renew); stopping what "
                             "it ran under it", cluster.instance_id, lease)
                self._lost(lease)
        try:
            self._rebalance(live)
        except Exception as exc:  # noqa: BLE001 - a busy or lost connection: the next heartbeat tries again
            logger.warning("cluster: rebalancing stopped this round: {}", exc)

    def _rebalance(self, live: list[str]) -> None:
        cluster = self.cluster
        for lease in self.role_specs:
            if lease not in cluster.held:
                self._try_role(lease)
        wanted = rules.assign_accounts(cluster.accounts, live)
        for account in cluster.accounts:
            lease = rules.account_lease(account)
            mine = wanted.get(account) == cluster.instance_id
            if mine and lease not in cluster.held:
                self._try_account(account, lease)
            elif not mine and lease in cluster.held:
                epoch = cluster.held[lease]
                self._stop_account(lease, why=f"it hashes to {wanted.get(account)} now")
                cluster.store.release(lease, epoch)

    def _try_role(self, lease: str) -> None:
        epoch = self.cluster.store.acquire(lease)
        if epoch is None:
            return
        self.cluster.held[lease] = epoch
        logger.warning("cluster: instance {} took {} (epoch {})", self.cluster.instance_id, lease, epoch)
        try:
            self.start_child(self.role_specs[lease])
        except Exception as exc:  # noqa: BLE001 - give it back; another instance (or the next tick) tries
            logger.error("cluster: {} could not start here: {}", lease, exc)
            self.cluster.held.pop(lease, None)
            self.cluster.store.release(lease, epoch)

    def _try_account(self, account: str, lease: str) -> None:
        epoch = self.cluster.store.acquire(lease)
        if epoch is None:
            return   # its previous owner still holds it: released at its next tick, or expired after the TTL
        self.cluster.held[lease] = epoch
        logger.warning("cluster: instance {} took exchange account {} (epoch {}): reconciling, then its orders "
                       "resume", self.cluster.instance_id, account, epoch)
        cfg = self.services.config.exchange(account)
        exchanges = self.services.refs.get("exchanges")
        orders = self.services.refs.get("orders")
        try:
            exchanges.ask(StopChild(account), timeout=60)   # a gateway left from an earlier epoch (none normally)
            exchanges.ask(StartChild(self.gateway_spec(cfg, self.services.fenced(lease))), timeout=120)
            orders.tell(AccountAcquired(lease))
        except Exception as exc:  # noqa: BLE001 - give it back; the next tick tries again
            logger.error("cluster: exchange account {} could not start here: {}", account, exc)
            self._stop_account(lease, why="its start failed")
            self.cluster.store.release(lease, epoch)

    def _lost(self, lease: str) -> None:
        if rules.account_of_lease(lease):
            self._stop_account(lease, why="its lease was lost")
            return
        self.cluster.held.pop(lease, None)
        for name in rules.ROLE_ACTORS.get(lease, ()):
            self.services.refs.pop(name, None)
        self.stop_child(self.role_specs[lease].id)

    def _stop_account(self, lease: str, *, why: str) -> None:
        """Orders first (they use the account), then the gateway; nothing of it runs here afterwards."""
        account = rules.account_of_lease(lease)
        self.cluster.held.pop(lease, None)
        logger.warning("cluster: instance {} stops exchange account {}: {}", self.cluster.instance_id, account, why)
        for name, message in (("orders", AccountReleased(lease)), ("exchanges", StopChild(account))):
            ref = self.services.refs.get(name)
            if ref is None:
                continue
            try:
                ref.ask(message, timeout=60)
            except Exception as exc:  # noqa: BLE001 - fenced anyway: its writes are refused from now on
                logger.error("cluster: stopping {} of account {} failed: {}", name, account, exc)

    # -- the bus listener (own greenlet, own connection) --------------------------------------------------

    def _listen(self) -> None:
        import psycopg

        delay = 0.2
        while True:
            try:
                with psycopg.connect(self.services.config.database.url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    delay = 0.2
                    self._sweep_treasury()   # what was published while this instance was not listening
                    while True:
                        for note in conn.notifies(timeout=1.0):
                            self._deliver(note.payload)
            except gevent.GreenletExit:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect; durable state covers the gap
                logger.warning("cluster: bus connection lost ({}); reconnecting in {:.1f}s", exc, delay)
                gevent.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _sweep_treasury(self) -> None:
        if not self.cluster.holds(rules.TREASURY):
            return
        from actors.treasury import TREASURY_KINDS
        from storage import outbox_reads
        ref = self.services.refs.get("treasury")
        for row in outbox_reads.open_movements(TREASURY_KINDS):
            if row.state == "queued" and ref is not None:
                ref.tell(RetryMovement(row.request_id))

    def _deliver(self, raw: str) -> None:
        try:
            payload = json.loads(raw)
        except ValueError:
            return
        kind = payload.get("type")
        refs = self.services.refs
        try:
            if kind == "movements":
                if self.cluster.holds(rules.TREASURY) and refs.get("treasury") is not None:
                    refs["treasury"].tell(MovementsQueued(tuple(payload["ids"])))
            elif kind == "command":   # an operator command was queued: its owner carries it out now
                if refs.get("orders") is not None:
                    refs["orders"].tell(PollCommands())
            elif kind == "join":
                if self.cluster.holds(rules.CAMPAIGNS) and refs.get("campaigns") is not None:
                    gevent.spawn(self._join, payload)
            else:
                message = decode_order(payload)
                if message is not None and refs.get("orders") is not None:
                    refs["orders"].tell(RemoteOrderEvent(message))
        except pykka.ActorDeadError:
            pass   # restarting: it resumes from the database

    def _join(self, payload: dict) -> None:
        from actors.campaigns import JoinForOrder
        try:
            reply = self.services.refs["campaigns"].ask(JoinForOrder(payload["order_id"], payload["account"],
                                                                     payload["ccxt_id"], payload["symbol"]),
                                                        timeout=30)
        except Exception as exc:  # noqa: BLE001 - the order asks again
            logger.warning("cluster: campaign join for order {} failed here: {}", payload.get("order_id"), exc)
            return
        self.cluster.publish_to_order(reply)


def role_spec(lease: str, start) -> ChildSpec:
    return ChildSpec(id=lease, start=start, restart=Restart.PERMANENT)
