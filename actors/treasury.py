"""Treasury: executes the Mixin side of the outbox: refunds, withdrawals and payouts (TREASURY_KINDS).

Other kinds share the outbox table and are never touched here: `return` (exchange → Mixin, run by the
order's actor through the exchange API) and `dust` (a record, state `kept`).

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

Too little to spend is not always a shortfall. A spend locks whole UTXOs and its
change comes back only when the transaction is final on Mixin, so the next
movement may find too little while the money is merely on its way back. When
what is available plus the inputs locked by in-flight spends of that asset
covers the amount, the movement waits for that change (retry_delay, woken early
when one of those spends is confirmed). Only when even that would not cover it
is it a real shortfall: a `treasury_shortfall` alert (one per asset), a note on
the order, slow retries; the alert is resolved when the asset is spendable again.
"""
from __future__ import annotations

import json
from decimal import Decimal

from loguru import logger

from actors.protocol import MovementSettled, MovementsQueued, RetryMovement
from actors.supervisor import SupervisedActor
from actors.timers import send_after, send_every
from domain.states import OrderState
from integrations.crashpoints import crash_point
from integrations.mixin.errors import MixinError
from integrations.mixin.safe_build import kernel_asset_id
from integrations.mixin.safe_tx import SafeTxError, decode
from integrations.mixin.safe_wallet import InputLocked, InsufficientFunds, PreparedTransaction, SafeError
from storage import outbox_reads, repo
from storage.models import Alert

# The kinds of outbox rows the Treasury executes: Safe transactions from the bot's wallet. A withdrawal
# goes to an external address; every other kind here is a transfer to a Mixin user (recipient_id, memo).
TREASURY_KINDS = ("refund", "withdrawal", "payout")
# Every so often the outbox is read for movements nobody told the Treasury about: a MovementsQueued can be lost
# (its sender's message came while this actor restarted, or — in a cluster — went to an instance that had just
# lost the Treasury role). The rows are durable; this is what makes "it catches up" true.
SWEEP_INTERVAL = 5.0


class SweepOutbox:
    """Timer → Treasury: advance every open movement this actor is not already following."""
SHORTFALL_ALERT = "treasury_shortfall"
_NOTED_ORDER_STATES = frozenset(s.value for s in (OrderState.REFUNDING, OrderState.SETTLING,
                                                   OrderState.PAYMENT_COMPLETE, OrderState.WITHDRAWING))


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
        # request id -> in-flight spends whose change it waits for (a confirmation wakes it early)
        self._waiting: dict[str, frozenset[str]] = {}
        # asset id -> request ids really short of it (the alert resolves when none is left)
        self._short: dict[str, set[str]] = {}

    def setup(self) -> None:
        open_rows = outbox_reads.open_movements(TREASURY_KINDS)
        if open_rows:
            logger.info("treasury: {} money movements not final; resuming them", len(open_rows))
        for row in open_rows:
            self.actor_ref.tell(RetryMovement(row.request_id))
        self._sweep_timer = send_every(self.actor_ref, SWEEP_INTERVAL, SweepOutbox())

    def teardown(self) -> None:
        self._sweep_timer.cancel()
        for timer in self._timers.values():
            timer.cancel()

    def _sweep(self) -> None:
        if self.wallet is None:
            return  # nothing can be sent; each movement said so when it came
        followed = set(self._timers) | set(self._waiting) | {r for ids in self._short.values() for r in ids}
        missed = [row.request_id for row in outbox_reads.open_movements(TREASURY_KINDS)
                  if row.request_id not in followed]
        if missed:
            logger.info("treasury: {} open money movements found in the outbox without a message; advancing them",
                        len(missed))
        for request_id in missed:
            self._advance(request_id)

    def on_receive(self, message):
        if isinstance(message, MovementsQueued):
            for request_id in message.request_ids:
                self._advance(request_id)
        elif isinstance(message, RetryMovement):
            self._timers.pop(message.request_id, None)
            self._advance(message.request_id)
        elif isinstance(message, SweepOutbox):
            self._sweep()
        else:
            logger.warning("treasury: unexpected message {!r}", message)

    # ------------------------------------------------------------ the path

    def _advance(self, request_id: str) -> None:
        row = repo.get_movement(request_id)
        if row is None:
            logger.error("treasury: movement {} not found in the outbox", request_id)
            return
        log = logger.bind(order_id=row.order_id or "")
        if row.kind not in TREASURY_KINDS:
            log.debug("treasury: {} is a {} movement ({}), not the Treasury's to execute; ignored", request_id,
                      row.kind, row.state)
            return
        self._waiting.pop(request_id, None)
        if row.state not in repo.OPEN_MOVEMENT_STATES:
            self._forget_short(request_id)
            return
        if self.wallet is None:
            self._unavailable(row, "the keystore has no spend key: it can not be signed")
            return
        try:
            if row.state == "queued":
                crash_point("before_prepare")  # the outbox row is written; nothing sent yet
                crash_point(f"{row.kind}_before_prepare")
                if not self._prepare(row, log):
                    return
                crash_point("after_prepare")
                row = repo.get_movement(request_id)
            if row.state == "prepared":
                prepared = PreparedTransaction.from_json(row.prepared)
                statuses = self.wallet.submit(prepared)
                crash_point("after_broadcast")
                crash_point(f"{row.kind}_after_broadcast")
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
            else:  # refund, payout: a Safe transfer to the Mixin user recipient_id, the memo as extra
                prepared = self.wallet.prepare_transfer(row.request_id, row.asset_id, row.amount, row.recipient_id,
                                                        extra, exclude_inputs=repo.locked_inputs())
        except InsufficientFunds as exc:
            self._insufficient(row, exc, log)
            return False
        self._forget_short(row.request_id)
        assets = {row.asset_id, prepared.asset_id} | ({prepared.fee_asset_id} if prepared.fee_asset_id else set())
        resolved = sorted(a for a in assets if not self._short.get(a))
        stored = self.services.writer.run(self._record_prepared, row.request_id, prepared.to_json(),
                                          list(prepared.input_ids), prepared.fee_asset_id,
                                          prepared.fee_amount if prepared.fee_asset_id else None, resolved)
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
        crash_point(f"{row.kind}_before_confirm_recorded")
        self.services.writer.run(repo.record_confirmed, row.request_id, status.transaction_hash,
                                 status.snapshot_id, getattr(status, "withdrawal_hash", None))
        self._attempts.pop(row.request_id, None)
        log.success("treasury: {} {} confirmed: {} {} to {} (tx {})", row.kind, row.request_id, row.amount,
                    row.asset_id, row.recipient_id or row.destination, status.transaction_hash)
        if row.order_id:
            self.services.tell("orders", MovementSettled(row.order_id, row.request_id, "confirmed"))
        self._wake_waiters(row.request_id)

    # ------------------------------------------------------------ too little to spend

    def _insufficient(self, row, exc: InsufficientFunds, log) -> None:
        """Apparent (change of in-flight spends on its way back) or real shortfall of exc.asset_id."""
        asset_id = exc.asset_id
        in_flight = {rid: locked_amount(prepared, asset_id)
                     for rid, prepared in outbox_reads.in_flight_spending(asset_id, TREASURY_KINDS,
                                                                          exclude=row.request_id)}
        locked = sum(in_flight.values(), Decimal(0))
        if in_flight and exc.available + locked >= exc.required:
            self._wait_for_change(row, asset_id, exc, in_flight, locked, log)
            return
        self._short.setdefault(asset_id, set()).add(row.request_id)
        reason = (f"insufficient balance in the bot's wallet: {exc.available} {asset_id} available, "
                  f"{exc.required} required — top up the treasury; retrying")
        alert = (f"{exc.available} {asset_id} available, {exc.required} required by {row.kind} {row.request_id}"
                 + (f" of order {row.order_id}" if row.order_id else "")
                 + (f" ({locked} locked in spends in flight)" if in_flight else "")
                 + ": top up the treasury")
        self._retry(row, reason, log, slow=True, note_order=True, alert=(asset_id, alert))

    def _wait_for_change(self, row, asset_id: str, exc: InsufficientFunds, in_flight: dict[str, Decimal],
                         locked: Decimal, log) -> None:
        """Not a shortfall: the inputs in flight come back as change. No note, no alert, no back-off."""
        self._forget_short(row.request_id)
        blockers = sorted(in_flight)
        note = f"waiting for change of {', '.join(blockers)}"
        changed = row.last_error != note
        (log.info if changed else log.debug)(
            "treasury: {} {} {} {}: {} ({} available, {} locked in those spends, {} required)", row.kind,
            row.request_id, row.amount, asset_id, note, exc.available, locked, exc.required)
        if changed:
            self.services.writer.run(self._waiting_note, row.request_id, note)
        self._waiting[row.request_id] = frozenset(blockers)
        self._schedule(row.request_id, self.cfg.retry_delay)

    def _wake_waiters(self, confirmed_id: str) -> None:
        """A spend is final: its change is back. Whoever waited for it tries again now."""
        for waiter, blockers in list(self._waiting.items()):
            if confirmed_id in blockers:
                del self._waiting[waiter]
                self._schedule(waiter, 0.0)

    def _forget_short(self, request_id: str) -> None:
        for ids in self._short.values():
            ids.discard(request_id)

    # ------------------------------------------------------------ waiting

    def _schedule(self, request_id: str, delay: float) -> None:
        old = self._timers.pop(request_id, None)
        if old:
            old.cancel()
        self._timers[request_id] = send_after(self.actor_ref, delay, RetryMovement(request_id))

    def _retry(self, row, reason: str, log, *, soon: bool = False, slow: bool = False,
               note_order: bool = False, alert: tuple[str, str] | None = None) -> None:
        attempts = self._attempts.get(row.request_id, 0) + 1
        self._attempts[row.request_id] = attempts
        delay = self.cfg.retry_delay if soon else min(self.cfg.retry_delay * 2 ** min(attempts - 1, 10),
                                                      self.cfg.retry_max_delay)
        if slow:
            delay = self.cfg.retry_max_delay
        now = self.services.clock()
        self.services.writer.run(self._note, row.request_id, row.kind, row.order_id if note_order else None, reason,
                                 row.attempts + 1, now, alert)
        log.warning("treasury: {} {} not done: {} (retry in {:.1f}s)", row.kind, row.request_id, reason, delay)
        self._schedule(row.request_id, delay)

    def _unavailable(self, row, reason: str) -> None:
        if row.last_error != reason:
            self.services.writer.run(self._note, row.request_id, row.kind, row.order_id, reason, row.attempts,
                                     self.services.clock(), None)
        logger.bind(order_id=row.order_id or "").warning(
            "treasury: {} {} {} to {} ({}) — {}: queued, NOT sent", row.kind, row.amount, row.asset_id,
            row.recipient_id or row.destination, row.memo, reason)

    # ------------------------------------------------------------ units (run by the writer)

    @staticmethod
    def _note(request_id: str, kind: str, order_id: str | None, reason: str, attempts: int, now: float,
              alert: tuple[str, str] | None) -> None:
        """The movement's last error; the order's reason unless the order is final (its reason is history);
        with `alert`, the (one per asset) shortfall alert, opened again if it had been resolved."""
        repo.update_movement(request_id, last_error=reason, attempts=attempts)
        if order_id:
            state = outbox_reads.order_state(order_id)
            # Only where the transfer is the order's business now: a running or attention order's reason says
            # more than a refund of someone else's payment would.
            if state in _NOTED_ORDER_STATES:
                repo.note_order(order_id, f"{kind} queued, not yet sent: {reason}", now)
        if alert is not None:
            asset_id, message = alert
            Alert.insert(kind=SHORTFALL_ALERT, subject=asset_id, message=message,
                         created_at=now).on_conflict_ignore().execute()
            Alert.update(resolved=False, message=message, created_at=now).where(
                (Alert.kind == SHORTFALL_ALERT) & (Alert.subject == asset_id)
                & (Alert.resolved == True)).execute()  # noqa: E712

    @staticmethod
    def _waiting_note(request_id: str, note: str) -> None:
        repo.update_movement(request_id, last_error=note)

    @staticmethod
    def _record_prepared(request_id: str, prepared_json: str, input_ids: list[str], fee_asset_id: str | None,
                         fee_amount: Decimal | None, resolve_assets: list[str]) -> bool:
        """queued → prepared; the shortfall alerts of `resolve_assets` (spendable again) are resolved with it."""
        stored = repo.record_prepared(request_id, prepared_json, input_ids, fee_asset_id, fee_amount)
        if resolve_assets:
            Alert.update(resolved=True).where(
                (Alert.kind == SHORTFALL_ALERT) & Alert.subject.in_(resolve_assets)
                & (Alert.resolved == False)).execute()  # noqa: E712
        return stored


def locked_amount(prepared_json: str, asset_id: str) -> Decimal:
    """What a prepared movement's inputs in `asset_id` hold, from its stored raw transactions.

    The kernel requires Σ inputs == Σ outputs in each transaction, so the inputs a raw spends hold the sum
    of its outputs (payment, fee, change). A withdrawal whose fee is paid in the chain asset has a second
    raw in that asset; each raw counts for the asset it is in."""
    try:
        kernel = kernel_asset_id(asset_id)
        total = Decimal(0)
        for _, raw in PreparedTransaction.from_json(prepared_json).raws:
            tx = decode(raw)
            if tx.asset == kernel:
                total += tx.total_output_amount()
        return total
    except (SafeTxError, ValueError) as exc:  # unreadable: count nothing (a real shortfall alerts, visibly)
        logger.warning("treasury: can not read a stored prepared transaction ({}); counting nothing locked", exc)
        return Decimal(0)


def describe_prepared(text: str | None) -> dict:
    return json.loads(text) if text else {}
