"""Treasury: executes the outbox (refunds now; withdrawals and payouts later).

Every row was written before the Treasury hears of it, with a request id derived
from its cause, so sending is safe to retry: Mixin treats a repeated request id
with identical content as the same request. On start the Treasury picks up every
row not yet final — a crash mid-send resumes through the same path.
"""
from __future__ import annotations

from loguru import logger

from actors.protocol import MovementSettled, MovementsQueued, RetryMovement
from actors.supervisor import SupervisedActor
from actors.timers import send_after
from integrations.mixin.errors import MixinError
from domain.states import OrderState
from storage import repo

OPEN_STATES = ("queued", "sending", "sent")


class TransfersUnavailable(RuntimeError):
    """Sending is not possible in this build/config; the movement stays queued, visibly."""


class UnavailableSender:
    """Stand-in until Safe transfers land: says plainly that nothing is sent."""

    reason = ("Safe transfers are not implemented yet (next issue): refund queued, NOT sent")

    def send(self, movement) -> str:
        raise TransfersUnavailable(self.reason)


class Treasury(SupervisedActor):
    def __init__(self, services, *, supervisor=None, child_id=None):
        super().__init__(supervisor=supervisor, child_id=child_id)
        self.services = services
        self.sender = services.sender
        self._retry_timers: dict[str, object] = {}

    def setup(self) -> None:
        open_rows = repo.movements_in_states(OPEN_STATES)
        if open_rows:
            logger.info("treasury: {} money movements not final; resuming them", len(open_rows))
        for row in open_rows:
            self._attempt(row.request_id)

    def teardown(self) -> None:
        for timer in self._retry_timers.values():
            timer.cancel()

    def on_receive(self, message):
        if isinstance(message, MovementsQueued):
            for request_id in message.request_ids:
                self._attempt(request_id)
        elif isinstance(message, RetryMovement):
            self._retry_timers.pop(message.request_id, None)
            self._attempt(message.request_id)
        else:
            logger.warning("treasury: unexpected message {!r}", message)

    def _attempt(self, request_id: str) -> None:
        row = repo.get_movement(request_id)
        if row is None:
            logger.error("treasury: movement {} not found in the outbox", request_id)
            return
        if row.state not in OPEN_STATES:
            return
        log = logger.bind(order_id=row.order_id or "", request_id=request_id)
        try:
            final_state = self.sender.send(row)
        except TransfersUnavailable as exc:
            note = str(exc)
            if row.last_error != note:
                now = self.services.clock()
                self.services.writer.run(self._note_unavailable, request_id, row.order_id, note, now)
            log.warning("treasury: {} {} {} to {} ({}) — {}", row.kind, row.amount, row.asset_id,
                        row.recipient_id, row.memo, note)
            return
        except MixinError as exc:
            attempts = row.attempts + 1
            cfg = self.services.config.treasury
            delay = min(cfg.retry_delay * 2 ** min(attempts - 1, 10), cfg.retry_max_delay)
            self.services.writer.run(repo.update_movement, request_id, attempts=attempts,
                                     last_error=f"{type(exc).__name__}: {exc}")
            log.warning("treasury: {} {} failed ({}); retry {} in {:.1f}s", row.kind, request_id, exc, attempts,
                        delay)
            self._retry_timers[request_id] = send_after(self.actor_ref, delay, RetryMovement(request_id))
            return
        if final_state in ("confirmed", "failed") and row.order_id:
            self.services.tell("orders", MovementSettled(row.order_id, request_id, final_state))

    @staticmethod
    def _note_unavailable(request_id: str, order_id: str | None, note: str, now: float) -> None:
        repo.update_movement(request_id, last_error=note)
        if order_id:
            repo.note_order(order_id, f"refund queued, not yet sent: {note}", now, only_in=OrderState.REFUNDING)
