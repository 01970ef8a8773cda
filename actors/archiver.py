"""Archiver: every ``[archive] interval`` seconds, moves finished orders older than the retention to the
archive (storage/archive.py) — the service doing what `python run.py archive run` does.

A child of the root supervisor, started only when ``[archive]`` is configured with an interval. A round
moves at most ``batch_size`` orders and, if there were that many, asks for the next round at once: the hub
gets a turn between batches, so archiving a backlog never stalls the order actors for long. The delete
transaction of each segment goes through the one writer like every other write. A failed round is one
WARNING line; the next round picks up where the database says (an interrupted round leaves at most an
unindexed segment file: see storage/archive.py).
"""
from __future__ import annotations

from loguru import logger

from actors.supervisor import SupervisedActor, describe
from actors.timers import send_after
from storage import archive


class ArchiveOrders:
    """Timer message: one archiving round."""


class Archiver(SupervisedActor):
    def __init__(self, services, *, supervisor=None, child_id=None):
        super().__init__(supervisor=supervisor, child_id=child_id)
        self.services = services
        self.settings = services.config.archive
        self.archived = 0
        self._timer = None

    def setup(self) -> None:
        self._schedule(self.settings.interval)
        logger.info("archive: finished orders older than {:g}s move to {} every {:g}s", self.settings.retention,
                    self.settings.directory, self.settings.interval)

    def teardown(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def on_receive(self, message):
        if not isinstance(message, ArchiveOrders):
            logger.warning("archive: unexpected message {!r}", message)
            return
        more = False
        try:
            more = self.archive_round()
        except Exception as exc:  # noqa: BLE001 - the next round starts from what the database says
            logger.warning("archive: round failed: {}", describe(exc))
            logger.bind(debug_only=True).opt(exception=exc).debug("archive round failure (traceback)")
        finally:
            self._schedule(0 if more else self.settings.interval)

    def archive_round(self) -> bool:
        """One batch; whether a full batch moved (then more may be due)."""
        s = self.settings
        outcome = archive.archive_due(s.directory, s.retention, s.batch_size, now=self.services.clock(),
                                      write=self.services.writer.run, max_orders=s.batch_size)
        self.archived += outcome.archived
        if outcome.archived:
            logger.info("archive: {} orders moved to {} segments", outcome.archived, outcome.segments)
        return outcome.archived >= s.batch_size

    def _schedule(self, delay: float) -> None:
        self._timer = send_after(self.actor_ref, delay, ArchiveOrders())
