"""What the actors share: config, database, writer, clients, and the refs of the long-lived actors.

One object built by the process owner (run.py / tests) and handed to every
actor's constructor, instead of globals or registry lookups.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pykka
from loguru import logger

from domain.config import Config


@dataclass
class Services:
    config: Config
    db: Any
    mixin: Any
    fee_oracle: Any
    wallet: Any  # SafeWallet, or None when the keystore cannot spend
    assets: Any = None  # AssetCatalog: Mixin asset metadata, cached
    writer: Any = None
    exchanges: dict[str, Any] = field(default_factory=dict)  # account id -> ExchangeAccount, published by gateways
    refs: dict[str, pykka.ActorRef] = field(default_factory=dict)
    risk_state: dict[str, Any] = field(default_factory=dict)  # breaker counters shared by the orders (per account)
    book_caches: dict[str, Any] = field(default_factory=dict)  # account id -> BookCache, published by gateways
    clock: Callable[[], float] = time.time
    cluster: Any = None  # actors.cluster.Cluster with a [cluster] table; None: one instance, nothing shared

    def tell(self, name: str, message: object) -> bool:
        """Tell a long-lived actor; False if it is not running (it recovers from the DB when it starts).

        In a cluster, a role actor held by another instance is told through the cluster's bus."""
        if self.cluster is not None and self.cluster.is_remote_role(name):
            return self.cluster.publish_to_role(name, message)
        return self._tell_local(name, message)

    def fenced(self, lease: str) -> Services:
        """These services for an actor acting under ``lease``: its writes are fenced (storage/cluster.py).
        One instance (no cluster): the services themselves."""
        return self if self.cluster is None else self.cluster.fenced_services(self, lease)

    def _tell_local(self, name: str, message: object) -> bool:
        ref = self.refs.get(name)
        if ref is None:
            logger.warning("{} is not running; {} not delivered (state is durable, it will catch up)",
                           name, type(message).__name__)
            return False
        try:
            ref.tell(message)
            return True
        except pykka.ActorDeadError:
            logger.warning("{} is restarting; {} not delivered (state is durable, it will catch up)",
                           name, type(message).__name__)
            return False
