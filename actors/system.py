"""Assembling and running the actor tree; logging setup.

    RootSupervisor (rest_for_one; escalation = the process exits non-zero)
      store → treasury → orders (OrderSupervisor) → router → poller

Children start left to right, the poller last, so nothing is polled before
there is someone to route it to; a death restarts the children after it.
"""
from __future__ import annotations

import sys
import threading
from dataclasses import dataclass

import gevent
from loguru import logger
from pykka.messages import ProxyGetAttr

from actors.campaigns import CampaignActor
from actors.orders import OrderSupervisor
from actors.poller import SnapshotPoller
from actors.router import Router
from actors.services import Services
from actors.store import StoreActor
from actors.supervisor import ChildSpec, Restart, Strategy, Supervisor, install_pykka_log_bridge
from actors.treasury import Treasury
from domain.config import Config
from integrations.assets import AssetCatalog
from integrations.fee_oracle import FeeOracle
from integrations.mixin.client import MixinClient
from integrations.mixin.keystore import Keystore, load_keystore, parse_keystore
from integrations.mixin.safe_wallet import SafeWallet
from storage.db import open_database

LOG_FORMAT = ("<green>{time:HH:mm:ss.SSS}</green> <level>{level: <8}</level> "
              "<cyan>{extra[order_id]}</cyan>{message}")


def setup_logging(level: str = "INFO", json: bool = False, sink=None) -> None:
    logger.remove()
    logger.configure(extra={"order_id": ""})
    if json:
        logger.add(sink or sys.stderr, level=level, serialize=True)
    else:
        logger.add(sink or sys.stderr, level=level, format=LOG_FORMAT.replace("<cyan>{extra[order_id]}</cyan>", ""))
    install_pykka_log_bridge()


def load_bot_keystore(config: Config) -> Keystore:
    path = config.mixin.keystore_path
    if path.startswith("env:"):
        import json as _json
        import os
        variable = path[4:]
        text = os.environ.get(variable)
        if not text:
            raise SystemExit(f"keystore: environment variable {variable} is not set")
        return parse_keystore(_json.loads(text))
    return load_keystore(path)


def build_services(config: Config, *, keystore: Keystore | None = None, clock=None) -> Services:
    db = open_database(config.database.url, busy_timeout=config.database.busy_timeout)
    keystore = keystore or load_bot_keystore(config)
    mixin = MixinClient(config.mixin.api_base, keystore, timeout=config.mixin.request_timeout,
                        max_attempts=config.mixin.max_attempts, backoff_base=config.mixin.backoff_base,
                        backoff_max=config.mixin.backoff_max)
    if keystore.can_spend:
        wallet = SafeWallet(mixin, keystore)
    else:
        wallet = None
        logger.error("keystore has no spend_private_key: refunds and withdrawals will be queued but NOT sent")
    services = Services(config=config, db=db, mixin=mixin,
                        fee_oracle=FeeOracle(mixin, config.payments.market_making_fee_percent), wallet=wallet,
                        assets=AssetCatalog(mixin))
    if clock is not None:
        services.clock = clock
    return services


def wait_started(ref, timeout: float = 60.0):
    """Block until the actor's setup() has run, like OTP's synchronous start_link.

    pykka answers an ask only after on_start; a ProxyGetAttr is answered by pykka
    itself, whatever the actor's own message handling. A failed setup raises here."""
    ref.ask(ProxyGetAttr(("child_id",)), timeout=timeout)
    return ref


def _child(name: str, factory, services: Services) -> ChildSpec:
    def start(supervisor, child_id):
        ref = factory.start(services, supervisor=supervisor, child_id=child_id)
        services.refs[name] = ref
        return wait_started(ref)
    return ChildSpec(id=name, start=start, restart=Restart.PERMANENT)


def exchanges_spec(services: Services) -> ChildSpec:
    """One ExchangeGateway per configured account, under their own one_for_one supervisor."""
    from actors.gateway import ExchangeGateway

    sv = services.config.supervision

    def gateway_spec(cfg) -> ChildSpec:
        def start(supervisor, child_id):
            return wait_started(ExchangeGateway.start(services, cfg, supervisor=supervisor, child_id=child_id))
        return ChildSpec(id=cfg.account_id, start=start, restart=Restart.PERMANENT)

    def start(supervisor, child_id):
        ref = Supervisor.start("exchanges", [gateway_spec(c) for c in services.config.exchanges],
                               strategy=Strategy.ONE_FOR_ONE, intensity=sv.intensity, period=sv.period,
                               backoff_min=sv.backoff_min, backoff_max=sv.backoff_max, supervisor=supervisor,
                               child_id=child_id)
        services.refs["exchanges"] = ref
        return wait_started(ref)
    return ChildSpec(id="exchanges", start=start, restart=Restart.PERMANENT)


@dataclass
class Escalation:
    """Set by the root supervisor when it gives up; the process then exits non-zero."""
    event: threading.Event
    reason: str = ""


def start_tree(services: Services, escalation: Escalation):
    sv = services.config.supervision

    def on_escalate(reason: str) -> None:
        escalation.reason = reason
        escalation.event.set()

    children = [
        _child("store", StoreActor, services),
        _child("treasury", Treasury, services),
        exchanges_spec(services),
        _child("campaigns", CampaignActor, services),
        _child("orders", OrderSupervisor, services),
        _child("router", Router, services),
        _child("poller", SnapshotPoller, services),
    ]
    root = Supervisor.start("root", children, strategy=Strategy.REST_FOR_ONE, intensity=sv.intensity,
                            period=sv.period, backoff_min=sv.backoff_min, backoff_max=sv.backoff_max,
                            on_escalate=on_escalate)
    return wait_started(root)


def stop_tree(root, timeout: float = 30.0) -> None:
    try:
        root.stop(block=True, timeout=timeout)
    except Exception as exc:  # a stuck child must not keep the process from exiting
        logger.error("shutdown: root supervisor did not stop cleanly: {}", exc)


def serve(services: Services, stop: threading.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or `stop`); returns the process exit code."""
    import signal

    stop = stop or threading.Event()
    escalation = Escalation(event=stop)
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    root = start_tree(services, escalation)
    logger.info("mmflow running: polling {} every {}s; {} pairs configured", services.config.mixin.api_base,
                services.config.mixin.poll_interval, len(services.config.pairs))
    while not stop.wait(timeout=1.0):
        pass
    if escalation.reason:
        logger.critical("mmflow exiting: the root supervisor escalated: {}", escalation.reason)
        stop_tree(root)
        return 70
    logger.info("mmflow stopping (signal)")
    stop_tree(root)
    return 0
