"""Treasury: executes the outbox (refunds now; withdrawals and payouts as later stages use them).

Each movement walks one path, the same after a crash as on first try:

    queued ──prepare──▶ prepared ──submit──▶ sent ──status spent──▶ confirmed
            (raw built from unspent UTXOs,     (verify; sign only what   (hash and snapshot
             stored with its locked inputs      Mixin has not signed;     recorded; the order
             BEFORE anything is sent)           broadcast)                is told)

Once prepared, only the stored bytes are submitted: Mixin treats a repeated
request id with identical content as the same request, so resubmitting after a
crash or a lost reply cannot pay twice. Spends are serialized (one actor, one
movement at a time) and UTXOs locked by prepared/sent movements are excluded
from new selections, so two movements never race for one input (Mixin 10105).
"""
from __future__ import annotations

import json

from loguru import logger

from actors.protocol import MovementSettled, MovementsQueued, RetryMovement
from actors.supervisor import SupervisedActor
from actors.timers import send_after
from domain.states import OrderState
from integrations.crashpoints import crash_point
from integrations.mixin.errors import MixinError
from integrations.mixin.safe_wallet import InputLocked, InsufficientFunds, PreparedTransaction, SafeError
from storage import repo


class TransfersUnavailable(RuntimeError):
    """Sending is impossible with this configuration (no spend key); movements stay queued, visibly."""


class Treasury(SupervisedActor):
    def __init__(self, services, *, supervisor=None, child_id=None):
        super().__init__(supervisor=supervisor, child_id=child_id)
        self.services = services
        self.wallet = services.wallet
        self.cfg = services.config.treasury
        self._timers: dict[str, object] = {}
        self._attempts: dict[str, int] = {}

    def setup(self) -> None:
        open_rows = repo.movements_in_states(repo.OPEN_MOVEMENT_STATES)
        if open_rows:
            logger.info("treasury: {} money movements not final; resuming them", len(open_rows))
        for row in open_rows:
            self.actor_ref.tell(RetryMovement(row.request_id))

    def teardown(self) -> None:
        for timer in self._timers.values():
            timer.cancel()

    def on_receive(self, message):
        if isinstance(message, MovementsQueued):
            for request_id in message.request_ids:
                self._advance(request_id)
        elif isinstance(message, RetryMovement):
            self._timers.pop(message.request_id, None)
            self._advance(message.request_id)
        else:
            logger.warning("treasury: unexpected message {!r}", message)

    # ------------------------------------------------------------ the path

    def _advance(self, request_id: str) -> None:
        row = repo.get_movement(request_id)
        if row is None:
            logger.error("treasury: movement {} not found in the outbox", request_id)
            return
        log = logger.bind(order_id=row.order_id or "")
        if row.state not in repo.OPEN_MOVEMENT_STATES:
            return
        if self.wallet is None:
            self._unavailable(row, "the keystore has no spend key: refund queued, NOT sent")
            return
        try:
            if row.state == "queued":
                crash_point("before_prepare")  # the outbox row is written; nothing sent yet
                if not self._prepare(row, log):
                    return
                crash_point("after_prepare")
                row = repo.get_movement(request_id)
            if row.state == "prepared":
                prepared = PreparedTransaction.from_json(row.prepared)
                statuses = self.wallet.submit(prepared)
                crash_point("after_broadcast")
                main = next((s for s in statuses if s.request_id == request_id), statuses[0])
                self.services.writer.run(repo.record_sent, request_id, main.transaction_hash)
                log.info("treasury: {} {} {} {} to {} broadcast ({})", row.kind, request_id, row.amount,
                         row.asset_id, row.recipient_id or row.destination, main.state)
                row = repo.get_movement(request_id)
            if row.state == "sent":
                self._follow(row, log)
        except InputLocked as exc:
            self._retry(row, f"inputs locked on Mixin ({exc}); retrying", log, soon=True)
        except (MixinError, SafeError) as exc:
            # Unknown outcome (timeout, 5xx) or a transient Mixin error: the stored bytes are resubmitted
            # as they are, which Mixin treats as the same request.
            self._retry(row, f"{type(exc).__name__}: {exc}", log)

    def _prepare(self, row, log) -> bool:
        extra = row.memo.encode("utf-8")
        try:
            if row.kind == "withdrawal":
                prepared = self.wallet.prepare_withdrawal(row.request_id, row.asset_id, row.amount, row.destination,
                                                          row.tag or "", extra=extra,
                                                          exclude_inputs=repo.locked_inputs())
            else:
                prepared = self.wallet.prepare_transfer(row.request_id, row.asset_id, row.amount, row.recipient_id,
                                                        extra, exclude_inputs=repo.locked_inputs())
        except InsufficientFunds as exc:
            reason = (f"insufficient balance in the bot's wallet: {exc.available} {row.asset_id} available, "
                      f"{exc.required} required — top up the treasury; retrying")
            self._retry(row, reason, log, slow=True, note_order=True)
            return False
        stored = self.services.writer.run(repo.record_prepared, row.request_id, prepared.to_json(),
                                          list(prepared.input_ids), prepared.fee_asset_id,
                                          prepared.fee_amount if prepared.fee_asset_id else None)
        if not stored:
            log.warning("treasury: {} was prepared elsewhere meanwhile; using the stored bytes", row.request_id)
        return True

    def _follow(self, row, log) -> None:
        status = self.wallet.status(row.request_id)
        if status is None:
            # Mixin does not know the request: the broadcast never arrived. Submit the stored bytes again.
            log.warning("treasury: Mixin has no record of {}; resubmitting the stored transaction", row.request_id)
            self.services.writer.run(repo.update_movement, row.request_id, state="prepared")
            self.actor_ref.tell(RetryMovement(row.request_id))
            return
        if status.state != "spent":
            self._schedule(row.request_id, self.cfg.confirm_poll_interval)
            return
        crash_point("before_confirm_recorded")
        self.services.writer.run(repo.record_confirmed, row.request_id, status.transaction_hash,
                                 status.snapshot_id, getattr(status, "withdrawal_hash", None))
        self._attempts.pop(row.request_id, None)
        log.success("treasury: {} {} confirmed: {} {} to {} (tx {})", row.kind, row.request_id, row.amount,
                    row.asset_id, row.recipient_id or row.destination, status.transaction_hash)
        if row.order_id:
            self.services.tell("orders", MovementSettled(row.order_id, row.request_id, "confirmed"))

    # ------------------------------------------------------------ waiting

    def _schedule(self, request_id: str, delay: float) -> None:
        old = self._timers.pop(request_id, None)
        if old:
            old.cancel()
        self._timers[request_id] = send_after(self.actor_ref, delay, RetryMovement(request_id))

    def _retry(self, row, reason: str, log, *, soon: bool = False, slow: bool = False,
               note_order: bool = False) -> None:
        attempts = self._attempts.get(row.request_id, 0) + 1
        self._attempts[row.request_id] = attempts
        delay = self.cfg.retry_delay if soon else min(self.cfg.retry_delay * 2 ** min(attempts - 1, 10),
                                                      self.cfg.retry_max_delay)
        if slow:
            delay = self.cfg.retry_max_delay
        now = self.services.clock()
        self.services.writer.run(self._note, row.request_id, row.order_id if note_order else None, reason,
                                 row.attempts + 1, now)
        log.warning("treasury: {} {} not done: {} (retry in {:.1f}s)", row.kind, row.request_id, reason, delay)
        self._schedule(row.request_id, delay)

    def _unavailable(self, row, reason: str) -> None:
        if row.last_error != reason:
            self.services.writer.run(self._note, row.request_id, row.order_id, reason, row.attempts,
                                     self.services.clock())
        logger.bind(order_id=row.order_id or "").warning(
            "treasury: {} {} {} to {} ({}) — {}", row.kind, row.amount, row.asset_id, row.recipient_id, row.memo,
            reason)

    @staticmethod
    def _note(request_id: str, order_id: str | None, reason: str, attempts: int, now: float) -> None:
        repo.update_movement(request_id, last_error=reason, attempts=attempts)
        if order_id:
            repo.note_order(order_id, f"refund queued, not yet sent: {reason}", now, only_in=OrderState.REFUNDING)


def describe_prepared(text: str | None) -> dict:
    return json.loads(text) if text else {}
