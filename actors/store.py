"""StoreActor: owns the one group-commit writer; first child of the root, so its death restarts everything after it."""
from __future__ import annotations

from loguru import logger

from actors.protocol import HealthCheck
from actors.supervisor import SupervisedActor
from actors.timers import send_every
from storage.writer import Writer


class WriterDied(RuntimeError):
    pass


class StoreActor(SupervisedActor):
    def __init__(self, services, *, supervisor=None, child_id=None, health_interval: float = 1.0):
        super().__init__(supervisor=supervisor, child_id=child_id)
        self.services = services
        self.health_interval = health_interval
        self.writer: Writer | None = None
        self._health = None

    def setup(self) -> None:
        cluster = self.services.cluster
        self.writer = Writer(self.services.db, batch_max=self.services.config.database.batch_max,
                             cluster_lock=cluster.writer_lock if cluster is not None else None,
                             cluster_idle_ms=int(max(cluster.ttl, 3.0) * 1000) if cluster is not None else 5000).start()
        self.services.writer = self.writer
        self._health = send_every(self.actor_ref, self.health_interval, HealthCheck())
        logger.info("store: writer started ({})", self.services.config.database.url.split("?")[0])

    def on_receive(self, message):
        if isinstance(message, HealthCheck):
            if self.writer is None or not self.writer.running:
                raise WriterDied("the writer greenlet is not running")
            return None
        logger.warning("store: unexpected message {!r}", message)
        return None

    def teardown(self) -> None:
        if self._health:
            self._health.cancel()
        if self.writer is not None:
            self.writer.stop()
            logger.info("store: writer flushed and stopped ({} batches, {} units)",
                        self.writer.batches, self.writer.units)
