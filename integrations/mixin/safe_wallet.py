"""SafeWallet: send Safe transfers (refunds, payouts) and withdrawals exactly once.

The I/O half of Safe transactions, on top of the pure planners/encoders
(``safe_build``, ``safe_tx``, ``safe_sign``) and ``MixinClient``. Two steps, with the
outcome of the first persisted by the caller in between::

    prepared = wallet.prepare_transfer(request_id, asset_id, amount, user_id, memo)
    outbox.save(prepared.to_json())                    # BEFORE anything is sent
    statuses = wallet.submit(prepared)                 # verify -> sign -> broadcast
    ... wallet.status(request_id) until state == "spent"

Exactly once:

- The request id is the caller's, derived from what caused the movement (e.g. the
  refunded snapshot). Mixin stores one transaction per request id: the same raw again
  returns the stored request, a different raw is refused.
- ``prepare_*`` is deterministic for the same UTXO set, fee quote and arguments: UTXOs are
  taken in ``sequence`` order, ghost-key hints derive from (request id, output index), and
  Mixin's ``POST /safe/keys`` answers the same mask/keys for the same (receivers, index,
  hint) -- it derives them from the hint -- so a rebuild is byte-identical. Still, the
  caller persists the ``PreparedTransaction`` and re-submits *those* bytes after a crash:
  the UTXO set may have changed meanwhile.
- ``submit`` verifies first. A request that Mixin reports ``signed`` or ``spent`` is never
  signed again: it is done, and its status is returned. Only ``unspent`` ones are signed
  (with the views of this very verify answer) and broadcast; the broadcast is idempotent.
- A transport error or 5xx from ``submit`` means "outcome unknown": call ``submit`` again
  with the same ``PreparedTransaction`` (or ``status``). Nothing is ever sent twice.

Concurrency: Mixin refuses a transaction whose inputs another broadcast already took
(10105 / kernel "input locked" -> :class:`InputLocked`). The caller serialises the spends of
one asset and passes the ``input_ids`` of its in-flight transactions as ``exclude_inputs``
so two prepared transactions never share a UTXO. The wallet itself keeps no state.

Errors: :class:`InsufficientFunds` (with ``available``/``required``), :class:`TooManyInputs`
(more than 256 UTXOs needed: consolidate), :class:`InputLocked` (retry: re-prepare with
fresh UTXOs), :class:`SafeError` for answers that break the protocol; invalid arguments
raise ``SafeTxError`` (a ValueError); any other ``MixinError`` propagates unchanged (a
``MixinApiError`` for a request id reused with other content, for instance).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Mapping

from loguru import logger

from integrations.crashpoints import crash_point

from . import safe_build
from .client import MixinClient, WithdrawalFee, _segment
from .errors import MixinApiError, MixinBadResponse, MixinNotFound
from .keystore import Keystore
from .safe_build import (
    GhostKey,
    InsufficientBalance,
    TransactionPlan,
    Utxo,
    WithdrawalRecipient,
    build_chain_fee_withdrawal,
    build_transaction,
    members_hash,
    plan_transfer,
    plan_withdrawal_with_asset_fee,
    plan_withdrawal_with_chain_fee,
    select_utxos,
)
from .safe_sign import sign_inputs
from .safe_tx import SLICE_COUNT_LIMIT, SafeTxError, amount_to_kernel, decode, encode

__all__ = [
    "PreparedTransaction",
    "TransactionStatus",
    "SafeError",
    "InsufficientFunds",
    "TooManyInputs",
    "InputLocked",
    "SafeWallet",
    "OUTPUTS_PAGE_LIMIT",
]

OUTPUTS_PAGE_LIMIT = 500
_INPUT_LOCKED_CODES = frozenset({10105, 2000002})
_KINDS = ("transfer", "withdrawal")
_STATES = ("unspent", "signed", "spent")


# --------------------------------------------------------------------------- errors


class SafeError(Exception):
    """A Safe transaction could not be prepared or submitted."""


class InsufficientFunds(SafeError):
    """The bot's unspent outputs of ``asset_id`` (minus the excluded ones) do not cover ``required``."""

    def __init__(self, asset_id: str, available: Decimal, required: Decimal) -> None:
        self.asset_id = asset_id
        self.available = available
        self.required = required
        super().__init__(f"insufficient funds in asset {asset_id}: available {available}, required {required}")


class TooManyInputs(SafeError):
    """The balance covers the amount only with more UTXOs than one transaction takes."""

    def __init__(self, asset_id: str, required: Decimal, reachable: Decimal, max_inputs: int, needed: int) -> None:
        self.asset_id = asset_id
        self.required = required
        self.reachable = reachable
        self.max_inputs = max_inputs
        self.needed_inputs = needed
        super().__init__(
            f"asset {asset_id}: {required} needs {needed} UTXOs, a transaction takes {max_inputs} "
            f"(they hold {reachable}); consolidate UTXOs first"
        )


class InputLocked(SafeError):
    """Mixin refused: an input is locked by another transaction (10105 / "input locked").

    Nothing was stored for the request: prepare again (other UTXOs) and submit later."""


# --------------------------------------------------------------------------- value types


def _decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or isinstance(value, float) or not isinstance(value, (str, int, Decimal)):
        raise SafeTxError(f"{what} must be a Decimal (or decimal string), got {type(value).__name__}")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise SafeTxError(f"{what} is not a decimal: {value!r}") from None
    if not amount.is_finite():
        raise SafeTxError(f"{what} must be finite")
    return amount


@dataclass(frozen=True)
class PreparedTransaction:
    """Everything needed to (re)submit identically after a crash; persist ``to_json()``.

    ``raws``: ``((request_id, unsigned_raw_hex), ...)``; one item, or two for a withdrawal whose
    fee is paid in the chain asset (the fee transaction second, referencing the first).
    ``input_ids``: output ids of every UTXO consumed (lock them against other spends).
    """

    request_id: str
    kind: str
    raws: tuple[tuple[str, str], ...]
    input_ids: tuple[str, ...]
    asset_id: str
    amount: Decimal
    fee_asset_id: str | None = None
    fee_amount: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise SafeTxError(f"kind must be one of {_KINDS}, got {self.kind!r}")
        raws = tuple((str(rid), str(raw)) for rid, raw in self.raws)
        if not 1 <= len(raws) <= 2 or raws[0][0] != self.request_id:
            raise SafeTxError("raws: one or two (request_id, raw) items, the first one under request_id")
        if len({rid for rid, _ in raws}) != len(raws):
            raise SafeTxError("raws: duplicate request id")
        for rid, raw in raws:
            try:
                bytes.fromhex(raw)
            except ValueError:
                raise SafeTxError(f"raw of {rid} is not hex") from None
        object.__setattr__(self, "raws", raws)
        object.__setattr__(self, "input_ids", tuple(str(i) for i in self.input_ids))
        object.__setattr__(self, "amount", _decimal(self.amount, "amount"))
        object.__setattr__(self, "fee_amount", _decimal(self.fee_amount, "fee_amount"))

    @property
    def request_ids(self) -> tuple[str, ...]:
        return tuple(rid for rid, _ in self.raws)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": 1,
                "request_id": self.request_id,
                "kind": self.kind,
                "raws": [[rid, raw] for rid, raw in self.raws],
                "input_ids": list(self.input_ids),
                "asset_id": self.asset_id,
                "amount": format(self.amount, "f"),
                "fee_asset_id": self.fee_asset_id,
                "fee_amount": format(self.fee_amount, "f"),
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> "PreparedTransaction":
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise SafeTxError(f"prepared transaction: not JSON ({exc})") from None
        if not isinstance(obj, dict) or obj.get("version") != 1:
            raise SafeTxError("prepared transaction: expected a version 1 object")
        try:
            raws = obj["raws"]
            if not isinstance(raws, list) or not all(isinstance(p, list) and len(p) == 2 for p in raws):
                raise SafeTxError("prepared transaction: raws must be [[request_id, raw], ...]")
            return cls(
                request_id=obj["request_id"],
                kind=obj["kind"],
                raws=tuple((p[0], p[1]) for p in raws),
                input_ids=tuple(obj["input_ids"]),
                asset_id=obj["asset_id"],
                amount=obj["amount"],
                fee_asset_id=obj.get("fee_asset_id"),
                fee_amount=obj.get("fee_amount", "0"),
            )
        except KeyError as exc:
            raise SafeTxError(f"prepared transaction: missing {exc.args[0]}") from None


@dataclass(frozen=True)
class TransactionStatus:
    """What Mixin says about one request id."""

    request_id: str
    state: str  # "unspent" | "signed" | "spent"
    transaction_hash: str | None = None
    snapshot_id: str | None = None
    snapshot_hash: str | None = None
    withdrawal_hash: str | None = None

    @property
    def is_final(self) -> bool:
        return self.state == "spent"

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> "TransactionStatus":
        if not isinstance(item, Mapping):
            raise MixinBadResponse("transaction request: expected an object")
        rid, state = item.get("request_id"), item.get("state")
        if not isinstance(rid, str) or state not in _STATES:
            raise MixinBadResponse("transaction request: missing request_id or unknown state")
        withdrawal_hash = None
        receivers = item.get("receivers") or []
        if isinstance(receivers, list):
            for r in receivers:
                if isinstance(r, Mapping) and r.get("withdrawal_hash"):
                    withdrawal_hash = str(r["withdrawal_hash"])
                    break
        return cls(
            request_id=rid,
            state=state,
            transaction_hash=item.get("transaction_hash") or None,
            snapshot_id=item.get("snapshot_id") or None,
            snapshot_hash=item.get("snapshot_hash") or None,
            withdrawal_hash=withdrawal_hash,
        )


# --------------------------------------------------------------------------- wallet


def _is_input_locked(exc: MixinApiError) -> bool:
    return exc.code in _INPUT_LOCKED_CODES or "input locked" in (exc.description or "").lower()


class SafeWallet:
    """Spends the bot's own (1-of-1) Safe outputs. Stateless: safe to rebuild after a crash."""

    def __init__(self, client: MixinClient, keystore: Keystore, *, max_inputs: int = SLICE_COUNT_LIMIT) -> None:
        if not 1 <= max_inputs <= SLICE_COUNT_LIMIT:
            raise ValueError(f"max_inputs must be in 1..{SLICE_COUNT_LIMIT}")
        self.client = client
        self.keystore = keystore
        self.bot_id = keystore.app_id
        self.max_inputs = max_inputs
        self._members_hash = members_hash([self.bot_id])

    # ------------------------------------------------------------------ outputs

    def _pages(self, asset_id: str) -> Iterable[list[Utxo]]:
        """Pages of the bot's unspent outputs of ``asset_id`` in ascending sequence.

        ``offset`` is a sequence; it is treated as inclusive by the next page asking for
        ``last + 1``, and items are deduplicated by output_id either way."""
        offset = 0
        seen: set[str] = set()
        while True:
            data = self.client.request(
                "GET",
                "/safe/outputs",
                params={
                    "members": self._members_hash,
                    "threshold": 1,
                    "state": "unspent",
                    "asset": asset_id,
                    "offset": offset,
                    "order": "ASC",
                    "limit": OUTPUTS_PAGE_LIMIT,
                },
            )
            if not isinstance(data, list):
                raise MixinBadResponse("outputs: expected a list")
            page: list[Utxo] = []
            last = offset - 1
            for item in data:
                if not isinstance(item, Mapping):
                    raise MixinBadResponse("output: expected an object")
                try:
                    utxo = Utxo.from_json(item)
                except (KeyError, TypeError, ValueError) as exc:
                    raise MixinBadResponse(f"output: malformed ({exc})") from None
                last = max(last, utxo.sequence)
                receivers = item.get("receivers")
                if (
                    utxo.output_id in seen
                    or utxo.state != "unspent"
                    or utxo.asset_id != asset_id
                    or (isinstance(receivers, list) and receivers != [self.bot_id])
                ):
                    continue
                seen.add(utxo.output_id)
                page.append(utxo)
            yield page
            if len(data) < OUTPUTS_PAGE_LIMIT or last < offset:
                return
            offset = last + 1

    def unspent_outputs(self, asset_id: str) -> list[Utxo]:
        """All the bot's unspent outputs of ``asset_id``, ascending by sequence."""
        return [u for page in self._pages(asset_id) for u in page]

    def _spendable(self, asset_id: str, required: Decimal, exclude: frozenset[str]) -> list[Utxo]:
        """Unspent outputs in sequence order, minus ``exclude``, paged only as far as needed to
        cover ``required`` (the selection takes a prefix, so the result is the same as with
        the full list) -- or all of them when they do not suffice (for the error)."""
        need = amount_to_kernel(required)
        have = 0
        utxos: list[Utxo] = []
        for page in self._pages(asset_id):
            for u in page:
                if u.output_id in exclude:
                    continue
                utxos.append(u)
                have += amount_to_kernel(u.amount)
            if have >= need:
                break
        return utxos

    # ------------------------------------------------------------------ planning

    def _select_guard(self, guarded_asset_id: str, fn, *args, **kwargs):
        asset_id = guarded_asset_id
        try:
            return fn(*args, **kwargs)
        except InsufficientBalance as exc:
            raise InsufficientFunds(asset_id, exc.available, exc.required) from None
        except safe_build.TooManyInputs as exc:
            raise TooManyInputs(asset_id, exc.required, exc.reachable, exc.max_inputs, exc.needed_inputs) from None

    def _ghost_keys(self, plan: TransactionPlan) -> list[GhostKey]:
        requests = plan.ghost_key_requests()
        if not requests:
            return []
        data = self.client.request("POST", "/safe/keys", body=[r.as_json() for r in requests], idempotent=True)
        if not isinstance(data, list) or len(data) != len(requests):
            raise MixinBadResponse(f"ghost keys: expected a list of {len(requests)} items")
        try:
            return [GhostKey.from_json(item) for item in data]
        except (KeyError, TypeError, SafeTxError) as exc:
            raise MixinBadResponse(f"ghost key: malformed ({exc})") from None

    def _raw(self, plan: TransactionPlan) -> str:
        return encode(build_transaction(plan, self._ghost_keys(plan)), with_signatures=False).hex()

    @staticmethod
    def _check_amount(amount: Decimal) -> Decimal:
        if not isinstance(amount, Decimal):
            raise SafeTxError(f"amount must be a Decimal, got {type(amount).__name__}")
        amount_to_kernel(amount)  # > 0, at most 8 decimals
        return amount

    def prepare_transfer(
        self,
        request_id: str,
        asset_id: str,
        amount: Decimal,
        recipient_id: str,
        extra: bytes,
        *,
        exclude_inputs: frozenset[str] = frozenset(),
    ) -> PreparedTransaction:
        """A transfer of ``amount`` to the Mixin user ``recipient_id``, change back to the bot.

        ``extra`` (<= 256 bytes) becomes the memo. Raises InsufficientFunds / TooManyInputs."""
        amount = self._check_amount(amount)
        utxos = self._spendable(asset_id, amount, frozenset(exclude_inputs))
        plan = self._select_guard(
            asset_id,
            plan_transfer,
            asset_id=asset_id,
            utxos=utxos,
            recipients=[safe_build.Recipient.user(recipient_id, amount)],
            change_member=self.bot_id,
            request_id=request_id,
            extra=extra,
            max_inputs=self.max_inputs,
        )
        raw = self._raw(plan)
        return PreparedTransaction(
            request_id=request_id,
            kind="transfer",
            raws=((request_id, raw),),
            input_ids=tuple(u.output_id for u in plan.inputs),
            asset_id=asset_id,
            amount=amount,
        )

    def _choose_fee(self, asset_id: str, address: str) -> WithdrawalFee:
        fees = self.client.withdrawal_fees(asset_id, address)
        if not fees:
            raise SafeError(f"no withdrawal fee quoted for asset {asset_id}: it can not be withdrawn")
        same = [f for f in fees if f.asset_id == asset_id]
        if same:
            return same[0]
        chain_id = self.client.read_asset(asset_id).get("chain_id")
        chain = [f for f in fees if f.asset_id == chain_id]
        return chain[0] if chain else fees[0]

    def prepare_withdrawal(
        self,
        request_id: str,
        asset_id: str,
        amount: Decimal,
        address: str,
        tag: str = "",
        *,
        extra: bytes = b"",
        exclude_inputs: frozenset[str] = frozenset(),
    ) -> PreparedTransaction:
        """A withdrawal of ``amount`` (the receiver gets exactly this) to ``address``/``tag``.

        The fee is read from ``/safe/assets/{id}/fees?destination=address``: a fee in the same
        asset is preferred (one transaction: withdrawal, fee to MixinCashier, change); otherwise
        the chain-asset fee (two linked transactions, the fee one second under
        ``fee_request_id(request_id)``). The tag goes into the withdrawal output, not the extra."""
        amount = self._check_amount(amount)
        exclude = frozenset(exclude_inputs)
        WithdrawalRecipient(address, amount, tag)  # validates address/tag early
        fee = self._choose_fee(asset_id, address)
        fee_amount = fee.amount

        if fee.asset_id == asset_id or fee_amount == 0:
            total = amount + fee_amount if fee.asset_id == asset_id else amount
            utxos = self._spendable(asset_id, total, exclude)
            if fee_amount > 0:
                plan = self._select_guard(
                    asset_id,
                    plan_withdrawal_with_asset_fee,
                    asset_id=asset_id,
                    utxos=utxos,
                    address=address,
                    tag=tag,
                    amount=amount,
                    fee_amount=fee_amount,
                    change_member=self.bot_id,
                    request_id=request_id,
                    extra=extra,
                    max_inputs=self.max_inputs,
                )
            else:  # a free withdrawal: [0] withdrawal, [1] change
                selection = self._select_guard(asset_id, select_utxos, utxos, amount, max_inputs=self.max_inputs)
                recipients: list[Any] = [WithdrawalRecipient(address, amount, tag)]
                if selection.change > 0:
                    recipients.append(safe_build.Recipient.user(self.bot_id, selection.change))
                plan = TransactionPlan(
                    request_id=request_id,
                    asset_id=asset_id,
                    inputs=selection.inputs,
                    recipients=tuple(recipients),
                    extra=extra,
                )
            return PreparedTransaction(
                request_id=request_id,
                kind="withdrawal",
                raws=((request_id, self._raw(plan)),),
                input_ids=tuple(u.output_id for u in plan.inputs),
                asset_id=asset_id,
                amount=amount,
                fee_asset_id=fee.asset_id if fee_amount > 0 else None,
                fee_amount=fee_amount,
            )

        utxos = self._spendable(asset_id, amount, exclude)
        fee_utxos = self._spendable(fee.asset_id, fee_amount, exclude)
        # Check each asset on its own so the error names the asset that is short.
        self._select_guard(asset_id, select_utxos, utxos, amount, max_inputs=self.max_inputs)
        self._select_guard(fee.asset_id, select_utxos, fee_utxos, fee_amount, max_inputs=self.max_inputs)
        plan2 = plan_withdrawal_with_chain_fee(
            asset_id=asset_id,
            utxos=utxos,
            fee_asset_id=fee.asset_id,
            fee_utxos=fee_utxos,
            address=address,
            tag=tag,
            amount=amount,
            fee_amount=fee_amount,
            change_member=self.bot_id,
            request_id=request_id,
            extra=extra,
            max_inputs=self.max_inputs,
        )
        tx_a, tx_b = build_chain_fee_withdrawal(
            plan2, self._ghost_keys(plan2.withdrawal), self._ghost_keys(plan2.fee)
        )
        return PreparedTransaction(
            request_id=request_id,
            kind="withdrawal",
            raws=(
                (plan2.withdrawal.request_id, encode(tx_a, with_signatures=False).hex()),
                (plan2.fee.request_id, encode(tx_b, with_signatures=False).hex()),
            ),
            input_ids=tuple(u.output_id for u in plan2.withdrawal.inputs + plan2.fee.inputs),
            asset_id=asset_id,
            amount=amount,
            fee_asset_id=fee.asset_id,
            fee_amount=fee_amount,
        )

    # ------------------------------------------------------------------ submitting

    def _post(self, path: str, body: list[dict]) -> list[Mapping[str, Any]]:
        try:
            data = self.client.request("POST", path, body=body, idempotent=True)
        except MixinApiError as exc:
            if _is_input_locked(exc):
                raise InputLocked(f"{path}: {exc}") from exc
            raise
        if not isinstance(data, list):
            raise MixinBadResponse(f"{path}: expected a list")
        return data

    @staticmethod
    def _by_request_id(data: list[Mapping[str, Any]], wanted: tuple[str, ...], what: str) -> dict[str, Mapping]:
        items: dict[str, Mapping] = {}
        for item in data:
            if isinstance(item, Mapping) and isinstance(item.get("request_id"), str):
                items[item["request_id"]] = item
        missing = [rid for rid in wanted if rid not in items]
        if missing:
            raise MixinBadResponse(f"{what}: no answer for request(s) {missing}")
        return items

    def submit(self, prepared: PreparedTransaction) -> list[TransactionStatus]:
        """Verify all raws in one call; sign and broadcast (one call) those still ``unspent``.

        Requests Mixin already has as ``signed``/``spent`` are not signed again. Returns one
        status per raw, in ``prepared.raws`` order. Safe to call again with the same
        ``prepared`` after any failure."""
        if not isinstance(prepared, PreparedTransaction):
            raise TypeError("submit takes a PreparedTransaction")
        rids = prepared.request_ids
        verified = self._by_request_id(
            self._post("/safe/transaction/requests", [{"request_id": rid, "raw": raw} for rid, raw in prepared.raws]),
            rids,
            "verify",
        )
        statuses = {rid: TransactionStatus.from_json(verified[rid]) for rid in rids}
        crash_point("after_verify")
        to_broadcast: list[dict] = []
        for rid, raw in prepared.raws:
            item = verified[rid]
            state = statuses[rid].state
            if state != "unspent":
                logger.info("safe {}: already {} at Mixin, not signing again", rid, state)
                continue
            if str(item.get("raw_transaction", "")).lower() != raw.lower():
                raise SafeError(f"request {rid}: Mixin holds a different transaction under this request id")
            if self.keystore.spend_private_key is None:
                raise SafeError("the keystore has no spend key: can not sign Safe transactions")
            tx = decode(raw)
            views = item.get("views")
            if not isinstance(views, list) or len(views) != len(tx.inputs):
                raise SafeError(f"request {rid}: verify returned {len(views or [])} views for {len(tx.inputs)} inputs")
            signed = sign_inputs(tx, views, self.keystore.spend_private_key)
            to_broadcast.append({"request_id": rid, "raw": encode(signed).hex()})
        if to_broadcast:
            wanted = tuple(b["request_id"] for b in to_broadcast)
            sent = self._by_request_id(self._post("/safe/transactions", to_broadcast), wanted, "broadcast")
            for b in to_broadcast:
                status = TransactionStatus.from_json(sent[b["request_id"]])
                if status.state == "unspent":
                    raise SafeError(f"request {b['request_id']}: still unspent after the broadcast")
                statuses[b["request_id"]] = status
        return [statuses[rid] for rid in rids]

    def status(self, request_id: str) -> TransactionStatus | None:
        """``GET /safe/transactions/{request_id}``; None when Mixin does not know the request."""
        try:
            data = self.client.request("GET", f"/safe/transactions/{_segment(request_id, 'request_id')}")
        except MixinNotFound:
            return None
        return TransactionStatus.from_json(data)
