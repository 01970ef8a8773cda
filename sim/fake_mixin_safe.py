"""Safe (UTXO) endpoints for the fake Mixin server: outputs, ghost keys, transaction requests.

Installed onto a running or not-yet-started ``FakeMixin`` with :func:`install_safe`, which
returns the :class:`FakeSafe` handle (also kept as ``fake.safe``)::

    fake = FakeMixin().start()
    safe = install_safe(fake)
    fake.pay(bot_id, user, BTC, "1")      # -> the bot now owns an unspent 1 BTC output

Routes (all authenticated as a registered bot):

- ``GET  /safe/outputs``                  members (sha3 hash), threshold, asset, state, offset (sequence,
                                          inclusive), limit (<= 500, default 500), order (ASC default / DESC).
                                          Only outputs the calling bot is a receiver of.
- ``POST /safe/keys``                     ghost keys, DETERMINISTIC: the same (sorted receivers, index, hint)
                                          always gets the same mask/keys from one fake (Mixin's own endpoint is
                                          deterministic in the hint as well, which is what makes a rebuilt raw
                                          byte-identical). Mask and keys are valid Ed25519 points.
- ``POST /safe/transaction/requests``     verify: decodes each raw and checks asset, inputs (the caller's own
                                          outputs, of that asset, not taken by another request's broadcast:
                                          else 10105 "input locked"), Σin == Σout, extra <= 256, every script
                                          output's mask/keys were handed out by /safe/keys for that output
                                          index, references known, and a withdrawal (0xa1) output's fee (same-asset
                                          cashier output, or a fee tx of the batch / stored that references it;
                                          else 20124). The same request id with the same raw returns the stored
                                          request (whatever its state); with a different raw: 10002 error.
                                          Views (one random scalar per input) are fixed per request.
- ``POST /safe/transactions``             broadcast: the unsigned part must equal the verified raw and every
                                          input signature must verify against ``view_i*B + spend_pub`` of the bot
                                          (all-or-nothing per call). Inputs become ``signed``, the request
                                          ``signed``; after ``finality_delay`` seconds (0: at once, inside the
                                          call) the transaction is final: inputs ``spent``, new outputs created
                                          (change back to the bot is a new unspent UTXO), snapshots written
                                          (the bot's: negative amount, memo = extra hex, request_id; each user
                                          recipient's: positive, and its balance credited once), the request
                                          ``spent`` with snapshot_id/hash/at. Repeating a broadcast of a
                                          signed/spent request returns it unchanged (nothing applied twice).
- ``GET  /safe/transactions/{id}``        by request id (or transaction hash); 404 when unknown.

Withdrawal (0xa1) outputs: at finality the bot's snapshot carries ``withdrawal: {withdrawal_hash: None,
receiver: address}`` and an entry is appended to ``safe.withdrawals``; ``withdrawal_delay`` seconds
later (0: at once) a random withdrawal hash is filled in (the record, the request's ``receivers[i]``,
the snapshot) and ``safe.on_withdrawal(record_copy)`` is called, once per withdrawal output.
Fees paid to MixinCashier are credited to the cashier (``fake.balance(MIXIN_CASHIER_ID, asset)``).

Faults: the server's ``fake.inject(...)`` works on these paths as on every other (note that the
prefix ``/safe/transactions`` also matches ``GET /safe/transactions/{id}``); ``inject(status=200,
delay=...)`` on ``/safe/transactions`` applies the broadcast and then holds the reply back.
``safe.lock_inputs_next(n)``: the next n verify calls answer 10105 "input locked".

Incoming ``fake.pay``/``fake.deposit`` to a bot, and each confirmed ``fake.external_deposit``, create
one unspent output each (the snapshot's transaction hash, index 0). Bot balances present when ``install_safe`` runs become one output each.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

import gevent
import nacl.bindings as nb
from loguru import logger

from integrations.mixin.safe_build import MIXIN_CASHIER_ID, members_hash
from integrations.mixin.safe_sign import spend_public_key, random_view_scalar, verify_transaction_signatures
from integrations.mixin.safe_tx import (
    EXTRA_SIZE_LIMIT,
    OUTPUT_TYPE_SCRIPT,
    OUTPUT_TYPE_WITHDRAWAL_SUBMIT,
    SafeTxError,
    Transaction,
    amount_to_kernel,
    decode,
    encode,
    kernel_to_amount,
    transaction_hash,
)
from domain.ids import unique_object_id

from .fake_mixin import ApiError, FakeMixin, FakeRequest, dumps, format_amount, format_created_at, invalid_field

MAX_OUTPUTS_LIMIT = 500
INPUT_LOCKED_CODE = 10105
INSUFFICIENT_FEE_CODE = 20124
USER_NOT_REGISTERED_CODE = 10404

__all__ = ["FakeSafe", "FakeOutput", "FakeTxRequest", "install_safe", "MIXIN_CASHIER_ID"]


# --------------------------------------------------------------------------- state


@dataclass
class FakeOutput:
    """One UTXO. ``state``: unspent -> signed (a broadcast took it) -> spent (final)."""

    output_id: str
    transaction_hash: str
    output_index: int
    asset_id: str
    amount: Decimal
    receivers: tuple[str, ...]
    threshold: int
    sequence: int
    created_at: str
    senders: tuple[str, ...] = ()
    mask: str = ""
    keys: tuple[str, ...] = ()
    extra: str = ""
    state: str = "unspent"
    updated_at: str = ""
    signed_by: str = ""  # hash of the transaction spending it
    signed_at: str | None = None
    spent_at: str | None = None
    request_id: str = ""  # request that spends it

    @property
    def receivers_hash(self) -> str:
        return members_hash(list(self.receivers))

    def to_json(self, kernel_asset_id: str) -> dict:
        return {
            "type": "safe_output",
            "output_id": self.output_id,
            "transaction_hash": self.transaction_hash,
            "output_index": self.output_index,
            "asset_id": self.asset_id,
            "kernel_asset_id": kernel_asset_id,
            "amount": format_amount(self.amount),
            "mask": self.mask,
            "keys": list(self.keys),
            "extra": self.extra,
            "senders_hash": members_hash(list(self.senders)) if self.senders else "",
            "senders_threshold": 1 if self.senders else 0,
            "senders": list(self.senders),
            "receivers_hash": self.receivers_hash,
            "receivers_threshold": self.threshold,
            "receivers": list(self.receivers),
            "state": self.state,
            "sequence": self.sequence,
            "created_at": self.created_at,
            "updated_at": self.updated_at or self.created_at,
            "signers": [],
            "signed_by": self.signed_by,
            "signed_at": self.signed_at,
            "spent_at": self.spent_at,
            "request_id": self.request_id,
            "inscription_hash": "",
        }


@dataclass
class GhostRecord:
    receivers: tuple[str, ...]
    index: int
    hint: str
    mask: str
    keys: tuple[str, ...]


@dataclass
class FakeTxRequest:
    """A transaction request (what verify stores and broadcast/finality advance)."""

    request_id: str
    bot_id: str
    raw: str  # unsigned hex, exactly as verified
    tx: Transaction
    transaction_hash: str
    asset_id: str
    amount: Decimal  # sum of the outputs that do not go back to the sender
    views: list[str]
    receivers: list[dict]  # one per output: members, members_hash, threshold, destination, tag, withdrawal_hash
    created_at: str
    state: str = "unspent"
    updated_at: str = ""
    signed_raw: str | None = None
    signed_at: str | None = None
    snapshot_id: str | None = None
    snapshot_hash: str | None = None
    snapshot_at: str | None = None
    inputs: list[FakeOutput] = field(default_factory=list)

    def to_json(self, kernel_asset_id: str) -> dict:
        return {
            "type": "transaction_request",
            "request_id": self.request_id,
            "transaction_hash": self.transaction_hash,
            "asset_id": self.asset_id,
            "kernel_asset_id": kernel_asset_id,
            "amount": format_amount(self.amount),
            "extra": self.tx.extra.hex(),
            "state": self.state,
            "raw_transaction": self.signed_raw or self.raw,
            "senders": [self.bot_id],
            "senders_hash": members_hash([self.bot_id]),
            "senders_threshold": 1,
            "signers": [self.bot_id] if self.signed_raw else [],
            "receivers": [dict(r, members=list(r["members"])) for r in self.receivers],
            "references": [r.hex() for r in self.tx.references],
            "views": list(self.views),
            "created_at": self.created_at,
            "updated_at": self.updated_at or self.created_at,
            "snapshot_id": self.snapshot_id,
            "snapshot_hash": self.snapshot_hash,
            "snapshot_at": self.snapshot_at,
            "revoked_by": None,
        }


# --------------------------------------------------------------------------- the extension


class FakeSafe:
    """UTXO state and Safe routes of one ``FakeMixin``. Create it with :func:`install_safe`."""

    def __init__(self, fake: FakeMixin) -> None:
        self.fake = fake
        self.outputs: dict[str, FakeOutput] = {}
        self._by_ref: dict[tuple[str, int], FakeOutput] = {}
        self._output_tx_hashes: set[str] = set()
        self._by_owner: dict[tuple[str, str], list[FakeOutput]] = {}  # (receivers_hash, asset) -> by sequence
        self._sequence = 0
        self.requests: dict[str, FakeTxRequest] = {}
        self._by_tx_hash: dict[str, FakeTxRequest] = {}
        self.ghost_keys: dict[str, GhostRecord] = {}  # mask hex -> record
        self._ghost_secret = os.urandom(32)
        self._kernel_to_asset: dict[str, str] = {}

        # knobs
        self.finality_delay = 0.0  # seconds from broadcast (signed) to final (spent)
        self.withdrawal_delay = 0.0  # seconds from final to the withdrawal hash
        self.on_withdrawal: Callable[[dict], None] | None = None
        self._lock_next = 0

        # observability
        self.withdrawals: list[dict] = []
        self.broadcasts: list[str] = []  # request ids newly signed by a broadcast (a repeat adds nothing)
        self.broadcast_calls = 0
        self.verify_calls = 0
        self.hook_errors: list[BaseException] = []

        fake.users.add(MIXIN_CASHIER_ID)
        fake.add_route("GET", "/safe/outputs", self._list_outputs)
        fake.add_route("POST", "/safe/keys", self._ghost_keys)
        fake.add_route("POST", "/safe/transaction/requests", self._verify)
        fake.add_route("POST", "/safe/transactions", self._broadcast)
        fake.add_route("GET", "/safe/transactions/{id}", self._get_transaction)
        fake.incoming_listeners.append(self._on_incoming)

    # ------------------------------------------------------------------ knobs & helpers for tests

    def lock_inputs_next(self, n: int = 1) -> None:
        """The next ``n`` verify calls answer 10105 "input locked" (before looking at the body)."""
        if n < 1:
            raise ValueError("n must be >= 1")
        self._lock_next += n

    def add_output(
        self,
        owner_id: str,
        asset_id: str,
        amount: Decimal | str,
        *,
        transaction_hash: str | None = None,
        output_index: int = 0,
        senders: tuple[str, ...] = (),
        extra: bytes = b"",
    ) -> FakeOutput:
        """Create one unspent 1-of-1 output for ``owner_id`` (no snapshot, no balance change)."""
        return self._new_output(
            transaction_hash or os.urandom(32).hex(),
            output_index,
            asset_id,
            Decimal(str(amount)),
            (owner_id,),
            1,
            senders=senders,
            extra=extra.hex(),
        )

    def unspent(self, owner_id: str, asset_id: str) -> list[FakeOutput]:
        return [o for o in self._by_owner.get((members_hash([owner_id]), asset_id), ()) if o.state == "unspent"]

    def unspent_total(self, owner_id: str, asset_id: str) -> Decimal:
        return sum((o.amount for o in self.unspent(owner_id, asset_id)), Decimal(0))

    def request(self, request_id: str) -> FakeTxRequest | None:
        return self.requests.get(request_id)

    # ------------------------------------------------------------------ outputs

    def _kernel_asset_id(self, asset_id: str) -> str:
        kid = self.fake._kernel_asset_id(asset_id)
        self._kernel_to_asset[kid] = asset_id
        return kid

    def _now(self) -> str:
        return format_created_at(self.fake._now_ns())

    def _new_output(
        self,
        tx_hash: str,
        index: int,
        asset_id: str,
        amount: Decimal,
        receivers: tuple[str, ...],
        threshold: int,
        *,
        senders: tuple[str, ...] = (),
        mask: str = "",
        keys: tuple[str, ...] = (),
        extra: str = "",
    ) -> FakeOutput:
        self._sequence += 1
        out = FakeOutput(
            output_id=unique_object_id(f"{tx_hash}:{index}"),
            transaction_hash=tx_hash,
            output_index=index,
            asset_id=asset_id,
            amount=amount,
            receivers=tuple(sorted(receivers)),
            threshold=threshold,
            sequence=self._sequence,
            created_at=self._now(),
            senders=senders,
            mask=mask,
            keys=keys,
            extra=extra,
        )
        self._kernel_asset_id(asset_id)
        self.outputs[out.output_id] = out
        self._by_ref[(tx_hash, index)] = out
        self._output_tx_hashes.add(tx_hash)
        self._by_owner.setdefault((out.receivers_hash, asset_id), []).append(out)
        return out

    def _on_incoming(self, bot_id: str, snap: dict) -> None:
        senders = (snap["opponent_id"],) if snap.get("opponent_id") else ()
        self._new_output(
            snap["transaction_hash"],
            0,
            snap["asset_id"],
            Decimal(snap["amount"]),
            (bot_id,),
            1,
            senders=senders,
            extra=snap.get("memo", ""),
        )

    def _backfill(self) -> None:
        for (owner, asset_id), amount in list(self.fake.balances.items()):
            if owner in self.fake.bots and amount > 0:
                self.add_output(owner, asset_id, amount)

    def _list_outputs(self, req: FakeRequest) -> Any:
        assert req.bot is not None
        members = (req.arg("members") or "").lower()
        if len(members) != 64 or any(c not in "0123456789abcdef" for c in members):
            raise invalid_field("members")
        threshold = _int_arg(req, "threshold", None)
        limit = _int_arg(req, "limit", MAX_OUTPUTS_LIMIT)
        if not 1 <= limit <= MAX_OUTPUTS_LIMIT:
            raise invalid_field("limit", f"must be 1..{MAX_OUTPUTS_LIMIT}")
        offset = _int_arg(req, "offset", None)
        order = (req.arg("order") or "ASC").upper()
        if order not in ("ASC", "DESC"):
            raise invalid_field("order")
        state = req.arg("state") or None
        if state not in (None, "unspent", "signed", "spent"):
            raise invalid_field("state")
        asset = req.arg("asset") or None
        if asset is not None:
            lists = [self._by_owner.get((members, asset), [])]
        else:
            lists = [v for (h, _), v in self._by_owner.items() if h == members]
        items = [o for lst in lists for o in lst]
        if len(lists) > 1:
            items.sort(key=lambda o: o.sequence)
        bot_id = req.bot.app_id
        selected = []
        seq_iter = items if order == "ASC" else reversed(items)
        for o in seq_iter:
            if bot_id not in o.receivers:
                continue
            if threshold is not None and o.threshold != threshold:
                continue
            if state is not None and o.state != state:
                continue
            if offset is not None and (o.sequence < offset if order == "ASC" else o.sequence > offset):
                continue
            selected.append(o.to_json(self._kernel_asset_id(o.asset_id)))
            if len(selected) >= limit:
                break
        return selected

    # ------------------------------------------------------------------ ghost keys

    def _derive_point(self, *parts: object) -> str:
        seed = json.dumps(parts, separators=(",", ":")).encode()
        scalar = nb.crypto_core_ed25519_scalar_reduce(hashlib.sha512(self._ghost_secret + seed).digest())
        return nb.crypto_scalarmult_ed25519_base_noclamp(scalar).hex()

    def ghost_key(self, receivers: list[str], index: int, hint: str) -> GhostRecord:
        """Deterministic ghost key of (sorted receivers, index, hint) for this fake."""
        members = tuple(sorted(receivers))
        mask = self._derive_point("mask", members, index, hint)
        record = self.ghost_keys.get(mask)
        if record is None:
            keys = tuple(self._derive_point("key", members, index, hint, j) for j in range(len(members)))
            record = self.ghost_keys[mask] = GhostRecord(members, index, hint, mask, keys)
        return record

    def _ghost_keys(self, req: FakeRequest) -> Any:
        body = req.json()
        if not isinstance(body, list) or not body:
            raise invalid_field("body", "expected a non-empty JSON array")
        answer = []
        for n, item in enumerate(body):
            if not isinstance(item, dict):
                raise invalid_field(f"[{n}]")
            receivers = item.get("receivers")
            index = item.get("index")
            hint = item.get("hint")
            if (
                not isinstance(receivers, list)
                or not receivers
                or not all(isinstance(r, str) and _is_canonical_uuid(r) for r in receivers)
                or len(set(receivers)) != len(receivers)
            ):
                raise invalid_field("receivers")
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= 0xFFFF:
                raise invalid_field("index")
            if not isinstance(hint, str) or not _is_canonical_uuid(hint):
                raise invalid_field("hint")
            for r in receivers:
                if r not in self.fake.users:
                    raise ApiError(USER_NOT_REGISTERED_CODE, "The user is not registered with Safe.", extra={"user_id": r})
            record = self.ghost_key(receivers, index, hint)
            answer.append({"type": "ghost_key", "mask": record.mask, "keys": list(record.keys)})
        return answer

    # ------------------------------------------------------------------ verify

    def _parse_batch(self, req: FakeRequest) -> list[tuple[str, str]]:
        body = req.json()
        if not isinstance(body, list) or not body:
            raise invalid_field("body", "expected a non-empty JSON array")
        seen: set[str] = set()
        items = []
        for n, item in enumerate(body):
            if not isinstance(item, dict):
                raise invalid_field(f"[{n}]")
            rid, raw = item.get("request_id"), item.get("raw")
            if not isinstance(rid, str) or not _is_canonical_uuid(rid):
                raise invalid_field("request_id")
            if rid in seen:
                raise invalid_field("request_id", "duplicate request id in one call")
            seen.add(rid)
            if not isinstance(raw, str) or not raw:
                raise invalid_field("raw")
            items.append((rid, raw.lower()))
        return items

    def _verify(self, req: FakeRequest) -> Any:
        assert req.bot is not None
        self.verify_calls += 1
        if self._lock_next > 0:
            self._lock_next -= 1
            raise ApiError(INPUT_LOCKED_CODE, "Input locked by another transaction.")
        bot_id = req.bot.app_id
        batch = self._parse_batch(req)
        existing: dict[str, FakeTxRequest] = {}
        new: dict[str, FakeTxRequest] = {}
        for rid, raw in batch:
            stored = self.requests.get(rid)
            if stored is not None:
                if stored.bot_id != bot_id or stored.raw != raw:
                    raise invalid_field("request_id", "the request id is already used by a different transaction")
                existing[rid] = stored
            else:
                new[rid] = self._check_new_request(rid, raw, bot_id)
        # cross-request checks over the batch + stored: references and withdrawal fees
        pending = {r.transaction_hash: r for r in new.values()}
        if len(pending) != len(new):
            raise invalid_field("raw", "the same transaction twice under different request ids")
        for r in new.values():
            for ref in r.tx.references:
                h = ref.hex()
                if h not in pending and h not in self._by_tx_hash and h not in self._output_tx_hashes:
                    raise invalid_field("references", f"unknown referenced transaction {h}")
            self._check_withdrawal_fee(r, list(new.values()))
        # all checks passed: store
        for r in new.values():
            self.requests[r.request_id] = r
            self._by_tx_hash[r.transaction_hash] = r
        return [(existing.get(rid) or new[rid]).to_json(self._kernel_asset_id(self.requests[rid].asset_id)) for rid, _ in batch]

    def _check_new_request(self, rid: str, raw: str, bot_id: str) -> FakeTxRequest:
        try:
            tx = decode(raw)
        except SafeTxError as exc:
            raise invalid_field("raw", str(exc)) from None
        if tx.signatures is not None:
            raise invalid_field("raw", "verify takes the unsigned transaction")
        if encode(tx, with_signatures=False).hex() != raw:
            raise invalid_field("raw", "not canonical")
        if len(tx.extra) > EXTRA_SIZE_LIMIT:
            raise invalid_field("extra", f"more than {EXTRA_SIZE_LIMIT} bytes")
        asset_id = self._kernel_to_asset.get(tx.asset.hex())
        if asset_id is None:
            for known in self.fake.assets:
                self._kernel_asset_id(known)
            asset_id = self._kernel_to_asset.get(tx.asset.hex())
        if asset_id is None:
            raise invalid_field("asset", "unknown kernel asset id")
        inputs: list[FakeOutput] = []
        total_in = 0
        for i, inp in enumerate(tx.inputs):
            out = self._by_ref.get((inp.hash.hex(), inp.index))
            if out is None:
                raise invalid_field("inputs", f"input {i} does not exist")
            if out.receivers != (bot_id,) or out.threshold != 1:
                raise invalid_field("inputs", f"input {i} is not the caller's 1-of-1 output")
            if out.asset_id != asset_id:
                raise invalid_field("inputs", f"input {i} is of another asset")
            if out.state != "unspent":
                raise ApiError(INPUT_LOCKED_CODE, f"Input locked by another transaction: input {i} is {out.state}.")
            inputs.append(out)
            total_in += amount_to_kernel(out.amount)
        total_out = 0
        receivers: list[dict] = []
        outgoing = 0
        for i, o in enumerate(tx.outputs):
            units = amount_to_kernel(o.amount)
            total_out += units
            if o.type == OUTPUT_TYPE_WITHDRAWAL_SUBMIT:
                assert o.withdrawal is not None
                receivers.append(
                    {
                        "members": [],
                        "members_hash": "",
                        "threshold": 0,
                        "destination": o.withdrawal.address,
                        "tag": o.withdrawal.tag,
                        "withdrawal_hash": None,
                    }
                )
                outgoing += units
            elif o.type == OUTPUT_TYPE_SCRIPT:
                record = self.ghost_keys.get(o.mask.hex())
                if record is None or tuple(k.hex() for k in o.keys) != record.keys:
                    raise invalid_field("outputs", f"output {i}: mask/keys were not issued by /safe/keys")
                if record.index != i:
                    raise invalid_field("outputs", f"output {i}: ghost key was issued for output index {record.index}")
                if len(o.script) != 3 or o.script[:2] != b"\xff\xfe" or not 1 <= o.script[2] <= len(record.receivers):
                    raise invalid_field("outputs", f"output {i}: bad threshold script")
                receivers.append(
                    {
                        "members": list(record.receivers),
                        "members_hash": members_hash(list(record.receivers)),
                        "threshold": o.script[2],
                        "destination": "",
                        "tag": "",
                        "withdrawal_hash": None,
                    }
                )
                if record.receivers != (bot_id,):
                    outgoing += units
            else:
                raise invalid_field("outputs", f"output {i}: unsupported type {o.type:#04x}")
        if total_in != total_out:
            raise invalid_field(
                "amount", f"inputs {kernel_to_amount(total_in)} != outputs {kernel_to_amount(total_out)}"
            )
        now = self._now()
        return FakeTxRequest(
            request_id=rid,
            bot_id=bot_id,
            raw=raw,
            tx=tx,
            transaction_hash=transaction_hash(tx),
            asset_id=asset_id,
            amount=kernel_to_amount(outgoing),
            views=[random_view_scalar().hex() for _ in tx.inputs],
            receivers=receivers,
            created_at=now,
            inputs=inputs,
        )

    def _cashier_units(self, r: FakeTxRequest) -> int:
        return sum(
            amount_to_kernel(o.amount)
            for o, rec in zip(r.tx.outputs, r.receivers)
            if o.type == OUTPUT_TYPE_SCRIPT and rec["members"] == [MIXIN_CASHIER_ID]
        )

    def _fee_partner(self, r: FakeTxRequest, candidates: list[FakeTxRequest]) -> FakeTxRequest | None:
        ref = bytes.fromhex(r.transaction_hash)
        for c in candidates:
            if c is not r and ref in c.tx.references:
                return c
        return None

    def _check_withdrawal_fee(self, r: FakeTxRequest, batch: list[FakeTxRequest]) -> None:
        if not any(o.type == OUTPUT_TYPE_WITHDRAWAL_SUBMIT for o in r.tx.outputs):
            return
        fees = self.fake.withdrawal_fees.get(r.asset_id)
        if not fees:
            raise invalid_field("asset", "the asset can not be withdrawn (no fee quote)")
        quoted: dict[str, int] = {}
        for f in fees:
            amount = Decimal(f["amount"])
            quoted[f["asset_id"]] = amount_to_kernel(amount) if amount > 0 else 0
        if any(units == 0 for units in quoted.values()):
            return  # a free withdrawal: no fee output needed
        if r.asset_id in quoted and self._cashier_units(r) >= quoted[r.asset_id]:
            return
        partner = self._fee_partner(r, batch + list(self.requests.values()))
        if partner is not None and partner.asset_id in quoted and self._cashier_units(partner) >= quoted[partner.asset_id]:
            return
        raise ApiError(INSUFFICIENT_FEE_CODE, "Insufficient withdrawal fee.")

    # ------------------------------------------------------------------ broadcast

    def _broadcast(self, req: FakeRequest) -> Any:
        assert req.bot is not None
        self.broadcast_calls += 1
        bot_id = req.bot.app_id
        batch = self._parse_batch(req)
        spend_pub = self._spend_pub(bot_id)
        to_apply: list[tuple[FakeTxRequest, str]] = []
        for rid, raw in batch:
            stored = self.requests.get(rid)
            if stored is None or stored.bot_id != bot_id:
                raise ApiError(404, "The transaction request is not found (verify it first).")
            try:
                tx = decode(raw)
            except SafeTxError as exc:
                raise invalid_field("raw", str(exc)) from None
            if encode(tx, with_signatures=False).hex() != stored.raw:
                raise invalid_field("raw", "the signed transaction differs from the verified one")
            if stored.state != "unspent":
                continue  # already broadcast: answer with the stored request, apply nothing
            if not verify_transaction_signatures(tx, stored.views, spend_pub):
                raise ApiError(2000003, "Invalid signature.", extra={"request_id": rid})
            for i, out in enumerate(stored.inputs):
                if out.state != "unspent":
                    raise ApiError(INPUT_LOCKED_CODE, f"Input locked by another transaction: input {i} is {out.state}.")
            to_apply.append((stored, raw))
        applying = {r.transaction_hash for r, _ in to_apply}
        for r, _ in to_apply:
            for ref in r.tx.references:
                dep = self._by_tx_hash.get(ref.hex())
                if dep is not None and dep.state == "unspent" and dep.transaction_hash not in applying:
                    raise invalid_field("references", "the referenced transaction must be broadcast with it or before")
            if any(o.type == OUTPUT_TYPE_WITHDRAWAL_SUBMIT for o in r.tx.outputs) and self._cashier_units(r) == 0:
                partner = self._fee_partner(r, list(self.requests.values()))
                if partner is not None and partner.state == "unspent" and partner.transaction_hash not in applying:
                    raise ApiError(INSUFFICIENT_FEE_CODE, "The withdrawal fee transaction must be broadcast with it.")
        now = self._now()
        for r, raw in to_apply:
            for out in r.inputs:
                out.state = "signed"
                out.signed_by = r.transaction_hash
                out.signed_at = now
                out.updated_at = now
                out.request_id = r.request_id
            r.state = "signed"
            r.signed_raw = raw
            r.signed_at = now
            r.updated_at = now
            self.broadcasts.append(r.request_id)
        for r, _ in to_apply:
            if self.finality_delay > 0:
                gevent.spawn_later(self.finality_delay, self._finalize, r.request_id)
            else:
                self._finalize(r.request_id)
        return [self.requests[rid].to_json(self._kernel_asset_id(self.requests[rid].asset_id)) for rid, _ in batch]

    def _spend_pub(self, bot_id: str) -> bytes:
        bot = self.fake.bots.get(bot_id)
        if bot is None or bot.spend_private_key is None:
            raise ApiError(10404, "The bot has no spend key registered with Safe.")
        return spend_public_key(bot.spend_private_key)

    # ------------------------------------------------------------------ finality

    def finalize_pending(self) -> None:
        """Make every signed request final now (for tests that set a long finality_delay)."""
        for r in list(self.requests.values()):
            if r.state == "signed":
                self._finalize(r.request_id)

    def _finalize(self, request_id: str) -> None:
        r = self.requests[request_id]
        if r.state != "signed":
            return
        fake = self.fake
        now = self._now()
        for out in r.inputs:
            out.state = "spent"
            out.spent_at = now
            out.updated_at = now
        extra_hex = r.tx.extra.hex()
        user_credits: list[tuple[str, Decimal]] = []
        withdrawal_outputs: list[int] = []
        for i, (o, rec) in enumerate(zip(r.tx.outputs, r.receivers)):
            if o.type == OUTPUT_TYPE_WITHDRAWAL_SUBMIT:
                withdrawal_outputs.append(i)
                continue
            members = tuple(rec["members"])
            self._new_output(
                r.transaction_hash,
                i,
                r.asset_id,
                o.amount,
                members,
                rec["threshold"],
                senders=(r.bot_id,),
                mask=o.mask.hex(),
                keys=tuple(k.hex() for k in o.keys),
                extra=extra_hex,
            )
            if members != (r.bot_id,) and len(members) == 1:
                user_credits.append((members[0], o.amount))
        withdrawal = None
        if withdrawal_outputs:
            w = r.tx.outputs[withdrawal_outputs[0]].withdrawal
            assert w is not None
            withdrawal = {"withdrawal_hash": None, "receiver": w.address}
        opponent = user_credits[0][0] if user_credits and withdrawal is None else ""
        bot_snap = fake.record_snapshot(
            r.bot_id,
            r.asset_id,
            -r.amount,
            opponent_id=opponent,
            memo=r.tx.extra,
            request_id=r.request_id,
            transaction_hash=r.transaction_hash,
            withdrawal=withdrawal,
        )
        fake._credit(r.bot_id, r.asset_id, -r.amount)
        for user_id, amount in user_credits:
            fake.users.add(user_id)
            fake.record_snapshot(
                user_id,
                r.asset_id,
                amount,
                opponent_id=r.bot_id,
                memo=r.tx.extra,
                request_id=r.request_id,
                transaction_hash=r.transaction_hash,
            )
            fake._credit(user_id, r.asset_id, amount)
        r.state = "spent"
        r.snapshot_id = bot_snap["snapshot_id"]
        r.snapshot_hash = hashlib.sha256(f"snapshot:{bot_snap['snapshot_id']}".encode()).hexdigest()
        r.snapshot_at = now
        r.updated_at = now
        for i in withdrawal_outputs:
            o = r.tx.outputs[i]
            assert o.withdrawal is not None
            record = {
                "request_id": r.request_id,
                "transaction_hash": r.transaction_hash,
                "output_index": i,
                "asset_id": r.asset_id,
                "amount": o.amount,
                "address": o.withdrawal.address,
                "tag": o.withdrawal.tag,
                "withdrawal_hash": None,
                "snapshot_id": bot_snap["snapshot_id"],
                "created_at": now,
            }
            self.withdrawals.append(record)
            if self.withdrawal_delay > 0:
                gevent.spawn_later(self.withdrawal_delay, self._fill_withdrawal_hash, r.request_id, i, record)
            else:
                self._fill_withdrawal_hash(r.request_id, i, record)

    def _fill_withdrawal_hash(self, request_id: str, index: int, record: dict) -> None:
        if record["withdrawal_hash"] is not None:
            return
        r = self.requests[request_id]
        h = os.urandom(32).hex()
        record["withdrawal_hash"] = h
        r.receivers[index]["withdrawal_hash"] = h
        snap = self.fake.snapshots.get(record["snapshot_id"])
        if snap is not None and snap.data.get("withdrawal") is not None and snap.data["withdrawal"]["withdrawal_hash"] is None:
            snap.data["withdrawal"]["withdrawal_hash"] = h
            snap.encoded = dumps(snap.data)
        hook = self.on_withdrawal
        if hook is not None:
            try:
                hook(dict(record))
            except Exception as exc:  # a broken hook must not break the fake's bookkeeping
                logger.exception("fake safe: on_withdrawal hook failed")
                self.hook_errors.append(exc)

    # ------------------------------------------------------------------ status

    def _get_transaction(self, req: FakeRequest) -> Any:
        assert req.bot is not None
        key = req.params["id"]
        r = self.requests.get(key) or self._by_tx_hash.get(key.lower())
        if r is None or r.bot_id != req.bot.app_id:
            raise ApiError(404, "The transaction request is not found.")
        return r.to_json(self._kernel_asset_id(r.asset_id))


# --------------------------------------------------------------------------- install & helpers


def install_safe(fake: FakeMixin) -> FakeSafe:
    """Add the Safe routes and UTXO state to ``fake`` (idempotent); returns the handle."""
    if isinstance(fake.safe, FakeSafe):
        return fake.safe
    safe = FakeSafe(fake)
    for asset_id in fake.assets:
        safe._kernel_asset_id(asset_id)
    safe._backfill()
    fake.safe = safe
    return safe


def _int_arg(req: FakeRequest, name: str, default: int | None) -> int | None:
    text = req.arg(name)
    if text in (None, ""):
        return default
    try:
        return int(text)
    except ValueError:
        raise invalid_field(name) from None


def _is_canonical_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
