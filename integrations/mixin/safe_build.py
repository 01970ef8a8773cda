"""Pure builders for Safe transactions: UTXO selection, recipients, ghost-key requests, outputs.

No I/O. The network half (listing UTXOs, ``POST /safe/keys``, verify, broadcast) is the
caller's; this module turns its answers into deterministic unsigned transactions.

Flow for one transfer (a refund is a transfer)::

    plan = plan_transfer(asset_id=..., utxos=listed_unspent, recipients=[Recipient.user(uid, amt)],
                         change_member=bot_id, request_id=trace_id, extra=memo)
    reqs = plan.ghost_key_requests()                # body of POST /safe/keys: [r.as_json() for r in reqs]
    keys = [GhostKey.from_json(k) for k in resp]    # same order as reqs
    tx   = build_transaction(plan, keys)            # unsigned; encode(tx).hex() goes to the verify call

Determinism: the plan and the transaction depend only on the arguments, and the ghost-key
hints only on (request_id, output index), so a crash-retry with the same UTXOs, recipients,
ghost keys, request id and extra rebuilds byte-identical raw.

Withdrawals:
  * fee in the same asset: ONE tx, outputs ``[0] 0xa1 withdrawal(address, tag)``,
    ``[1] fee -> MixinCashier``, ``[2] change``; ghost keys for indexes 1 and 2 only.
  * fee in the chain asset: TWO txs. A (asset): ``[0] withdrawal, [1] change``;
    B (fee asset): ``[0] fee -> MixinCashier, [1] change`` with ``references = [hash(unsigned A)]``
    and request id ``unique_object_id(request_id, "FEE")``.
  The address AND the tag travel in the 0xa1 output; ``extra`` is only the memo.
"""
from __future__ import annotations

import dataclasses
import hashlib
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Mapping, Sequence, Union

import blake3

from domain.ids import unique_object_id

from .safe_tx import (
    EXTRA_SIZE_LIMIT,
    OUTPUT_TYPE_SCRIPT,
    OUTPUT_TYPE_WITHDRAWAL_SUBMIT,
    REFERENCES_LIMIT,
    SLICE_COUNT_LIMIT,
    Input,
    Output,
    SafeTxError,
    Transaction,
    Withdrawal,
    amount_to_kernel,
    kernel_to_amount,
    payload_hash,
    threshold_script,
)

__all__ = [
    "MIXIN_CASHIER_ID",
    "amount_to_kernel",
    "kernel_to_amount",
    "kernel_asset_id",
    "members_hash",
    "ghost_key_hint",
    "fee_request_id",
    "Utxo",
    "Selection",
    "InsufficientBalance",
    "TooManyInputs",
    "select_utxos",
    "Recipient",
    "WithdrawalRecipient",
    "GhostKeyRequest",
    "GhostKey",
    "TransactionPlan",
    "ChainFeeWithdrawalPlan",
    "plan_transfer",
    "plan_withdrawal_with_asset_fee",
    "plan_withdrawal_with_chain_fee",
    "build_transaction",
    "build_chain_fee_withdrawal",
]

#: Mixin's fee collector ("MixinFeeUserId" in the Go SDK): withdrawal fees go to it.
MIXIN_CASHIER_ID = "674d6776-d600-4346-af46-58e77d8df185"


# --------------------------------------------------------------------------- ids & hashes


def _canonical_uuid(value: object, what: str) -> str:
    """Only canonical lowercase UUID strings: hashes are over the exact string, so an
    uppercase or brace-wrapped id would silently hash to a different value."""
    if not isinstance(value, str):
        raise SafeTxError(f"{what} must be a UUID string, got {type(value).__name__}")
    try:
        canonical = str(uuid.UUID(value))
    except ValueError as exc:
        raise SafeTxError(f"{what} is not a UUID: {value!r}") from exc
    if canonical != value:
        raise SafeTxError(f"{what} must be a canonical lowercase UUID ({canonical!r}), got {value!r}")
    return value


def kernel_asset_id(asset_id: str) -> bytes:
    """The 32-byte kernel asset id: sha3_256 of the asset UUID string (Go's ``crypto.Sha256Hash``)."""
    return hashlib.sha3_256(_canonical_uuid(asset_id, "asset id").encode()).digest()


def members_hash(members: Sequence[str]) -> str:
    """``members`` query value of /safe/outputs: sha3_256(concat(sorted uuids)), hex."""
    if isinstance(members, str):
        members = [members]
    ids = [_canonical_uuid(m, "member") for m in members]
    if not ids:
        raise SafeTxError("members must not be empty")
    return hashlib.sha3_256("".join(sorted(ids)).encode()).hexdigest()


def _bigint_bytes(n: int) -> bytes:
    """Go ``big.NewInt(n).Bytes()``: minimal big-endian, empty for 0."""
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def ghost_key_hint(trace_id: str, index: int) -> str:
    """Deterministic ``hint`` of the ghost-key request for output ``index`` (Go SDK scheme):
    ``UniqueObjectId(hex(blake3(trace)), hex(blake3(blake3(trace) || bigint(index).bytes)))``."""
    if not isinstance(trace_id, str) or not trace_id:
        raise SafeTxError("trace id must be a non-empty string")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise SafeTxError(f"output index must be an int >= 0, got {index!r}")
    trace_hash = blake3.blake3(trace_id.encode("utf-8")).digest()
    seed_hash = blake3.blake3(trace_hash + _bigint_bytes(index)).digest()
    return unique_object_id(trace_hash.hex(), seed_hash.hex())


def fee_request_id(request_id: str) -> str:
    """Request id of the fee transaction of a chain-fee withdrawal: UniqueObjectId(trace, "FEE")."""
    return unique_object_id(request_id, "FEE")


def _extra_bytes(extra: bytes | str) -> bytes:
    if isinstance(extra, str):
        extra = extra.encode("utf-8")
    if isinstance(extra, (bytearray, memoryview)):
        extra = bytes(extra)
    if not isinstance(extra, bytes):
        raise SafeTxError(f"extra must be bytes (or str), got {type(extra).__name__}")
    if len(extra) > EXTRA_SIZE_LIMIT:
        raise SafeTxError(f"extra is {len(extra)} bytes, more than the {EXTRA_SIZE_LIMIT}-byte limit")
    return extra


# --------------------------------------------------------------------------- UTXOs


@dataclass(frozen=True)
class Utxo:
    """The fields of a /safe/outputs item that building and selection need."""

    output_id: str
    transaction_hash: str
    output_index: int
    asset_id: str
    amount: Decimal
    sequence: int
    state: str = "unspent"

    def __post_init__(self) -> None:
        amount_to_kernel(self.amount)
        object.__setattr__(self, "amount", Decimal(self.amount))
        try:
            h = bytes.fromhex(self.transaction_hash)
        except (TypeError, ValueError) as exc:
            raise SafeTxError(f"utxo {self.output_id}: transaction_hash is not hex") from exc
        if len(h) != 32:
            raise SafeTxError(f"utxo {self.output_id}: transaction_hash must be 32 bytes")
        object.__setattr__(self, "transaction_hash", h.hex())
        for name in ("output_index", "sequence"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise SafeTxError(f"utxo {self.output_id}: {name} must be an int >= 0, got {v!r}")
        if self.output_index > 0xFFFF:
            raise SafeTxError(f"utxo {self.output_id}: output_index {self.output_index} out of range")

    @classmethod
    def from_json(cls, item: Mapping[str, object]) -> "Utxo":
        amount = item["amount"]
        if isinstance(amount, float):
            raise SafeTxError("utxo amount must be a decimal string, not a float")
        return cls(
            output_id=str(item["output_id"]),
            transaction_hash=str(item["transaction_hash"]),
            output_index=int(item["output_index"]),  # type: ignore[arg-type]
            asset_id=str(item["asset_id"]),
            amount=Decimal(str(amount)),
            sequence=int(item["sequence"]),  # type: ignore[arg-type]
            state=str(item.get("state", "unspent")),
        )

    def to_input(self) -> Input:
        return Input(bytes.fromhex(self.transaction_hash), self.output_index)


@dataclass(frozen=True)
class Selection:
    inputs: tuple[Utxo, ...]
    total: Decimal
    change: Decimal


class InsufficientBalance(SafeTxError):
    """The unspent UTXOs do not cover the amount."""

    def __init__(self, available: Decimal, required: Decimal, utxo_count: int) -> None:
        self.available = available
        self.required = required
        self.utxo_count = utxo_count
        super().__init__(f"insufficient balance: available {available} in {utxo_count} unspent UTXOs, required {required}")


class TooManyInputs(SafeTxError):
    """The balance suffices but only with more than ``max_inputs`` UTXOs: consolidate first."""

    def __init__(self, required: Decimal, reachable: Decimal, max_inputs: int, needed_inputs: int) -> None:
        self.required = required
        self.reachable = reachable
        self.max_inputs = max_inputs
        self.needed_inputs = needed_inputs
        super().__init__(
            f"too many inputs: {required} needs {needed_inputs} UTXOs but a transaction takes at most "
            f"{max_inputs} (the first {max_inputs} hold {reachable}); consolidate UTXOs first"
        )


def select_utxos(utxos: Sequence[Utxo], amount: Decimal, *, max_inputs: int = SLICE_COUNT_LIMIT) -> Selection:
    """Take unspent UTXOs in ascending ``sequence`` order until their sum >= ``amount``.

    Non-``unspent`` items are skipped; all UTXOs must be of one asset and distinct.
    Raises InsufficientBalance, or TooManyInputs when more than ``max_inputs`` would be needed.
    """
    required_units = amount_to_kernel(amount)
    if isinstance(max_inputs, bool) or not isinstance(max_inputs, int) or not 1 <= max_inputs <= SLICE_COUNT_LIMIT:
        raise SafeTxError(f"max_inputs must be in 1..{SLICE_COUNT_LIMIT}, got {max_inputs!r}")
    items = list(utxos)
    if not all(isinstance(u, Utxo) for u in items):
        raise SafeTxError("utxos must be Utxo instances")
    if len({u.output_id for u in items}) != len(items) or len(
        {(u.transaction_hash, u.output_index) for u in items}
    ) != len(items):
        raise SafeTxError("duplicate UTXO in the list")
    if len({u.asset_id for u in items}) > 1:
        raise SafeTxError(f"UTXOs of several assets: {sorted({u.asset_id for u in items})}")
    unspent = sorted((u for u in items if u.state == "unspent"), key=lambda u: u.sequence)

    available_units = sum(amount_to_kernel(u.amount) for u in unspent)
    if available_units < required_units:
        raise InsufficientBalance(kernel_to_amount(available_units), kernel_to_amount(required_units), len(unspent))

    total_units = 0
    for count, u in enumerate(unspent, start=1):
        total_units += amount_to_kernel(u.amount)
        if count == max_inputs:
            reachable_units = total_units
        if total_units >= required_units:
            if count > max_inputs:
                raise TooManyInputs(
                    kernel_to_amount(required_units), kernel_to_amount(reachable_units), max_inputs, count
                )
            return Selection(
                inputs=tuple(unspent[:count]),
                total=kernel_to_amount(total_units),
                change=kernel_to_amount(total_units - required_units),
            )
    raise AssertionError("unreachable: available >= required")  # pragma: no cover


# --------------------------------------------------------------------------- recipients & ghost keys


@dataclass(frozen=True)
class Recipient:
    """A script output to Mixin users (``members``, ``threshold``-of-n)."""

    members: tuple[str, ...]
    amount: Decimal
    threshold: int = 1

    def __post_init__(self) -> None:
        members = (self.members,) if isinstance(self.members, str) else tuple(self.members)
        for m in members:
            _canonical_uuid(m, "recipient member")
        if not members:
            raise SafeTxError("a recipient needs at least one member")
        if len(set(members)) != len(members):
            raise SafeTxError("duplicate recipient member")
        object.__setattr__(self, "members", members)
        amount_to_kernel(self.amount)
        object.__setattr__(self, "amount", Decimal(self.amount))
        threshold_script(self.threshold)
        if self.threshold > len(members):
            raise SafeTxError(f"threshold {self.threshold} exceeds {len(members)} members")

    @classmethod
    def user(cls, user_id: str, amount: Decimal) -> "Recipient":
        return cls((user_id,), amount, 1)


@dataclass(frozen=True)
class WithdrawalRecipient:
    """A 0xa1 withdrawal output to an external address (tag '' if the chain has none)."""

    address: str
    amount: Decimal
    tag: str = ""

    def __post_init__(self) -> None:
        Withdrawal(self.address, self.tag)  # validates
        amount_to_kernel(self.amount)
        object.__setattr__(self, "amount", Decimal(self.amount))


AnyRecipient = Union[Recipient, WithdrawalRecipient]


@dataclass(frozen=True)
class GhostKeyRequest:
    """One entry of the ``POST /safe/keys`` body."""

    receivers: tuple[str, ...]
    index: int
    hint: str

    def as_json(self) -> dict:
        return {"receivers": list(self.receivers), "index": self.index, "hint": self.hint}


def _key32(value: object, what: str) -> bytes:
    if isinstance(value, str):
        try:
            value = bytes.fromhex(value)
        except ValueError as exc:
            raise SafeTxError(f"{what} is not hex") from exc
    if isinstance(value, (bytearray, memoryview)):
        value = bytes(value)
    if not isinstance(value, bytes) or len(value) != 32:
        raise SafeTxError(f"{what} must be 32 bytes")
    return value


@dataclass(frozen=True)
class GhostKey:
    """One item of the ``POST /safe/keys`` answer: ``mask`` and one key per receiver."""

    mask: bytes
    keys: tuple[bytes, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "mask", _key32(self.mask, "ghost key mask"))
        keys = tuple(_key32(k, "ghost key") for k in self.keys)
        if not keys:
            raise SafeTxError("ghost key item has no keys")
        object.__setattr__(self, "keys", keys)

    @classmethod
    def from_json(cls, item: Mapping[str, object]) -> "GhostKey":
        return cls(mask=item["mask"], keys=tuple(item["keys"]))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class TransactionPlan:
    """Everything of one transaction except the ghost keys (which need a network call).

    ``recipients[i]`` becomes output ``i``. Balanced by construction: sum(inputs) == sum(recipients).
    """

    request_id: str
    asset_id: str
    inputs: tuple[Utxo, ...]
    recipients: tuple[AnyRecipient, ...]
    extra: bytes = b""
    references: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        _canonical_uuid(self.request_id, "request id")
        _canonical_uuid(self.asset_id, "asset id")
        inputs = tuple(self.inputs)
        recipients = tuple(self.recipients)
        if not inputs or len(inputs) > SLICE_COUNT_LIMIT:
            raise SafeTxError(f"a transaction takes 1..{SLICE_COUNT_LIMIT} inputs, got {len(inputs)}")
        if not recipients or len(recipients) > SLICE_COUNT_LIMIT:
            raise SafeTxError(f"a transaction takes 1..{SLICE_COUNT_LIMIT} outputs, got {len(recipients)}")
        for u in inputs:
            if not isinstance(u, Utxo):
                raise SafeTxError("plan inputs must be Utxo instances")
            if u.asset_id != self.asset_id:
                raise SafeTxError(f"utxo {u.output_id} is of asset {u.asset_id}, not {self.asset_id}")
        if not all(isinstance(r, (Recipient, WithdrawalRecipient)) for r in recipients):
            raise SafeTxError("plan recipients must be Recipient or WithdrawalRecipient")
        total_in = sum(amount_to_kernel(u.amount) for u in inputs)
        total_out = sum(amount_to_kernel(r.amount) for r in recipients)
        if total_in != total_out:
            raise SafeTxError(
                f"unbalanced plan: inputs {kernel_to_amount(total_in)} != outputs {kernel_to_amount(total_out)}"
            )
        refs = tuple(_key32(r, "reference") for r in self.references)
        if len(refs) > REFERENCES_LIMIT:
            raise SafeTxError(f"too many references: {len(refs)} > {REFERENCES_LIMIT}")
        object.__setattr__(self, "inputs", inputs)
        object.__setattr__(self, "recipients", recipients)
        object.__setattr__(self, "extra", _extra_bytes(self.extra))
        object.__setattr__(self, "references", refs)

    @property
    def total(self) -> Decimal:
        return kernel_to_amount(sum(amount_to_kernel(u.amount) for u in self.inputs))

    def ghost_key_requests(self) -> tuple[GhostKeyRequest, ...]:
        """``POST /safe/keys`` entries: one per UUID recipient (none for a withdrawal output),
        ``index`` = output index, receivers sorted, deterministic hint."""
        return tuple(
            GhostKeyRequest(tuple(sorted(r.members)), i, ghost_key_hint(self.request_id, i))
            for i, r in enumerate(self.recipients)
            if isinstance(r, Recipient)
        )

    def with_references(self, references: Sequence[bytes]) -> "TransactionPlan":
        return dataclasses.replace(self, references=tuple(references))


@dataclass(frozen=True)
class ChainFeeWithdrawalPlan:
    """Two linked plans; ``fee.references`` is filled by :func:`build_chain_fee_withdrawal`."""

    withdrawal: TransactionPlan
    fee: TransactionPlan


def _with_change(
    recipients: list[AnyRecipient], selection: Selection, change_member: str
) -> tuple[AnyRecipient, ...]:
    if selection.change > 0:
        recipients.append(Recipient.user(change_member, selection.change))
    return tuple(recipients)


def _sum_amounts(amounts: Sequence[Decimal]) -> Decimal:
    return kernel_to_amount(sum(amount_to_kernel(a) for a in amounts))


def plan_transfer(
    *,
    asset_id: str,
    utxos: Sequence[Utxo],
    recipients: Sequence[Recipient],
    change_member: str,
    request_id: str,
    extra: bytes | str = b"",
    references: Sequence[bytes] = (),
    max_inputs: int = SLICE_COUNT_LIMIT,
) -> TransactionPlan:
    """Transfer to Mixin users; change (if any) goes back to ``change_member`` (1-of-1) as the last output."""
    recipients = list(recipients)
    if not recipients:
        raise SafeTxError("a transfer needs at least one recipient")
    if not all(isinstance(r, Recipient) for r in recipients):
        raise SafeTxError("transfer recipients must be Recipient (use the withdrawal planners for addresses)")
    _canonical_uuid(change_member, "change member")
    selection = select_utxos(utxos, _sum_amounts([r.amount for r in recipients]), max_inputs=max_inputs)
    return TransactionPlan(
        request_id=request_id,
        asset_id=asset_id,
        inputs=selection.inputs,
        recipients=_with_change(recipients, selection, change_member),
        extra=_extra_bytes(extra),
        references=tuple(references),
    )


def plan_withdrawal_with_asset_fee(
    *,
    asset_id: str,
    utxos: Sequence[Utxo],
    address: str,
    tag: str,
    amount: Decimal,
    fee_amount: Decimal,
    change_member: str,
    request_id: str,
    extra: bytes | str = b"",
    max_inputs: int = SLICE_COUNT_LIMIT,
) -> TransactionPlan:
    """Withdrawal whose fee is paid in the withdrawn asset: one transaction,
    ``[0] withdrawal(address, tag)``, ``[1] fee -> MixinCashier``, ``[2] change`` (if any)."""
    _canonical_uuid(change_member, "change member")
    recipients: list[AnyRecipient] = [
        WithdrawalRecipient(address, amount, tag),
        Recipient.user(MIXIN_CASHIER_ID, fee_amount),
    ]
    selection = select_utxos(utxos, _sum_amounts([amount, fee_amount]), max_inputs=max_inputs)
    return TransactionPlan(
        request_id=request_id,
        asset_id=asset_id,
        inputs=selection.inputs,
        recipients=_with_change(recipients, selection, change_member),
        extra=_extra_bytes(extra),
    )


def plan_withdrawal_with_chain_fee(
    *,
    asset_id: str,
    utxos: Sequence[Utxo],
    fee_asset_id: str,
    fee_utxos: Sequence[Utxo],
    address: str,
    tag: str,
    amount: Decimal,
    fee_amount: Decimal,
    change_member: str,
    request_id: str,
    extra: bytes | str = b"",
    max_inputs: int = SLICE_COUNT_LIMIT,
) -> ChainFeeWithdrawalPlan:
    """Withdrawal whose fee is paid in the chain asset: two transactions.

    A (``request_id``, asset): ``[0] withdrawal(address, tag)``, ``[1] change``.
    B (``fee_request_id(request_id)``, fee asset): ``[0] fee -> MixinCashier``, ``[1] change``,
    referencing hash(unsigned A). Both carry ``extra`` (the memo), as the Go SDK does.
    """
    _canonical_uuid(change_member, "change member")
    if fee_asset_id == asset_id:
        raise SafeTxError("fee asset equals the withdrawn asset: use plan_withdrawal_with_asset_fee (one transaction)")
    extra = _extra_bytes(extra)
    selection = select_utxos(utxos, amount, max_inputs=max_inputs)
    withdrawal = TransactionPlan(
        request_id=request_id,
        asset_id=asset_id,
        inputs=selection.inputs,
        recipients=_with_change([WithdrawalRecipient(address, amount, tag)], selection, change_member),
        extra=extra,
    )
    fee_selection = select_utxos(fee_utxos, fee_amount, max_inputs=max_inputs)
    fee = TransactionPlan(
        request_id=fee_request_id(request_id),
        asset_id=fee_asset_id,
        inputs=fee_selection.inputs,
        recipients=_with_change([Recipient.user(MIXIN_CASHIER_ID, fee_amount)], fee_selection, change_member),
        extra=extra,
    )
    return ChainFeeWithdrawalPlan(withdrawal=withdrawal, fee=fee)


# --------------------------------------------------------------------------- building


def _ghost_keys_by_index(
    plan: TransactionPlan, ghost_keys: Sequence[GhostKey] | Mapping[int, GhostKey]
) -> dict[int, GhostKey]:
    requests = plan.ghost_key_requests()
    wanted = [r.index for r in requests]
    if isinstance(ghost_keys, Mapping):
        by_index = dict(ghost_keys)
        if sorted(by_index) != wanted:
            raise SafeTxError(f"ghost keys given for output indexes {sorted(by_index)}, need exactly {wanted}")
    else:
        items = list(ghost_keys)
        if len(items) != len(requests):
            raise SafeTxError(f"got {len(items)} ghost keys for {len(requests)} requests (outputs {wanted})")
        by_index = dict(zip(wanted, items))
    for index, gk in by_index.items():
        if not isinstance(gk, GhostKey):
            raise SafeTxError(f"ghost key for output {index} must be a GhostKey")
        members = plan.recipients[index].members  # type: ignore[union-attr]
        if len(gk.keys) != len(members):
            raise SafeTxError(f"output {index}: {len(gk.keys)} ghost keys for {len(members)} members")
    return by_index


def build_transaction(
    plan: TransactionPlan, ghost_keys: Sequence[GhostKey] | Mapping[int, GhostKey]
) -> Transaction:
    """The unsigned transaction of ``plan``.

    ``ghost_keys``: the /safe/keys answer in the order of ``plan.ghost_key_requests()``,
    or a mapping output index -> GhostKey.
    """
    if not isinstance(plan, TransactionPlan):
        raise SafeTxError(f"expected a TransactionPlan, got {type(plan).__name__}")
    keys = _ghost_keys_by_index(plan, ghost_keys)
    outputs = []
    for i, r in enumerate(plan.recipients):
        if isinstance(r, WithdrawalRecipient):
            outputs.append(
                Output(
                    type=OUTPUT_TYPE_WITHDRAWAL_SUBMIT,
                    amount=r.amount,
                    withdrawal=Withdrawal(r.address, r.tag),
                )
            )
        else:
            gk = keys[i]
            outputs.append(
                Output(
                    type=OUTPUT_TYPE_SCRIPT,
                    amount=r.amount,
                    keys=gk.keys,
                    mask=gk.mask,
                    script=threshold_script(r.threshold),
                )
            )
    return Transaction(
        asset=kernel_asset_id(plan.asset_id),
        inputs=[u.to_input() for u in plan.inputs],
        outputs=outputs,
        references=plan.references,
        extra=plan.extra,
    )


def build_chain_fee_withdrawal(
    plan: ChainFeeWithdrawalPlan,
    withdrawal_ghost_keys: Sequence[GhostKey] | Mapping[int, GhostKey],
    fee_ghost_keys: Sequence[GhostKey] | Mapping[int, GhostKey],
) -> tuple[Transaction, Transaction]:
    """(A, B): B references blake3(unsigned A). Submit both in one verify call and one broadcast,
    with request ids ``plan.withdrawal.request_id`` and ``plan.fee.request_id``."""
    if not isinstance(plan, ChainFeeWithdrawalPlan):
        raise SafeTxError(f"expected a ChainFeeWithdrawalPlan, got {type(plan).__name__}")
    tx_a = build_transaction(plan.withdrawal, withdrawal_ghost_keys)
    tx_b = build_transaction(plan.fee.with_references([payload_hash(tx_a)]), fee_ghost_keys)
    return tx_a, tx_b
