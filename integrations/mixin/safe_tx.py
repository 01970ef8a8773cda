"""Mixin kernel transaction, version 5: data types, exact encoding/decoding and hashes.

Pure code, no I/O. The byte layout (all integers big-endian, ``u16`` counts max 0xFFFF)::

    77 77 | 00 05 | asset(32)
    u16 n_inputs   | input*    hash(32) u16 index  u16 len(genesis)=0  00 00 (deposit)  00 00 (mint)
    u16 n_outputs  | output*   00 type  u16 len(amt) amt  u16 n_keys keys(32)*  mask(32)
                               u16 len(script) script  (00 00 | 77 77 u16 len addr  u16 len tag)
    u16 n_refs     | ref(32)*
    u32 len(extra) | extra
    u16 n_sig_maps | (u16 n_sigs | (u16 signer_index sig(64))* sorted by index)*

``transaction_hash`` is blake3 of the unsigned encoding (zero signature maps). That
same 32-byte digest is the message every input signature signs, and what a chain-fee
withdrawal's fee transaction references.

Decoding is canonical-only: anything our encoder would not reproduce byte for byte
(non-minimal amounts, unsorted signer indexes, trailing bytes, ...) is rejected, so
``encode(decode(raw)) == raw`` always holds for accepted input.
"""
from __future__ import annotations

import struct
import types
from dataclasses import dataclass
from decimal import Decimal
from typing import Mapping, Sequence

import blake3

__all__ = [
    "SafeTxError",
    "TX_VERSION",
    "OUTPUT_TYPE_SCRIPT",
    "OUTPUT_TYPE_WITHDRAWAL_SUBMIT",
    "SLICE_COUNT_LIMIT",
    "EXTRA_SIZE_LIMIT",
    "REFERENCES_LIMIT",
    "AMOUNT_DECIMALS",
    "Input",
    "Withdrawal",
    "Output",
    "Transaction",
    "amount_to_kernel",
    "kernel_to_amount",
    "threshold_script",
    "encode",
    "decode",
    "payload_hash",
    "transaction_hash",
]


class SafeTxError(ValueError):
    """A transaction (or a part of one) is malformed or breaks a kernel limit."""


MAGIC = b"\x77\x77"
NULL = b"\x00\x00"
TX_VERSION = 5
OUTPUT_TYPE_SCRIPT = 0x00
OUTPUT_TYPE_WITHDRAWAL_SUBMIT = 0xA1
MAX_ENCODING_INT = 0xFFFF
SLICE_COUNT_LIMIT = 256  # kernel SliceCountLimit: max inputs and max outputs
EXTRA_SIZE_LIMIT = 256  # kernel ExtraSizeGeneralLimit for a normal transaction
REFERENCES_LIMIT = 2  # what the SDKs (Go, fox-one ReferencesCountLimit) accept
AMOUNT_DECIMALS = 8
HASH_SIZE = 32
KEY_SIZE = 32
SIGNATURE_SIZE = 64
ZERO_KEY = bytes(32)


# --------------------------------------------------------------------------- amounts


def amount_to_kernel(amount: Decimal) -> int:
    """A positive Decimal with at most 8 decimals -> the kernel integer (amount * 1e8), exactly.

    Works on the Decimal's digit tuple, so no context precision or rounding is involved.
    """
    if isinstance(amount, bool) or not isinstance(amount, (Decimal, int)):
        raise SafeTxError(f"amount must be a Decimal (never a float), got {type(amount).__name__}")
    amount = Decimal(amount)
    if not amount.is_finite():
        raise SafeTxError(f"amount must be finite, got {amount}")
    sign, digits, exponent = amount.as_tuple()
    value = int("".join(map(str, digits)) or "0")
    shift = exponent + AMOUNT_DECIMALS
    if shift >= 0:
        units = value * 10**shift
    else:
        divisor = 10**-shift
        if value % divisor:
            raise SafeTxError(f"amount {amount} has more than {AMOUNT_DECIMALS} decimals")
        units = value // divisor
    if sign or units == 0:
        raise SafeTxError(f"amount must be > 0, got {amount}")
    return units


def kernel_to_amount(units: int) -> Decimal:
    """The kernel integer -> Decimal, exact, without trailing zeros (``199999995`` -> ``1.99999995``)."""
    if units < 0:
        raise SafeTxError(f"kernel amount must be >= 0, got {units}")
    digits = [int(c) for c in str(units)]
    exponent = -AMOUNT_DECIMALS
    while exponent < 0 and len(digits) > 1 and digits[-1] == 0:
        digits.pop()
        exponent += 1
    if units == 0:
        return Decimal(0)
    return Decimal((0, tuple(digits), exponent))


def _amount_bytes(amount: Decimal) -> bytes:
    units = amount_to_kernel(amount)
    return units.to_bytes((units.bit_length() + 7) // 8, "big")


def threshold_script(threshold: int) -> bytes:
    """The kernel threshold script ``ff fe <threshold>`` (OperatorCmp, OperatorSum, n)."""
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 1 <= threshold <= 255:
        raise SafeTxError(f"threshold must be an int in 1..255, got {threshold!r}")
    return bytes((0xFF, 0xFE, threshold))


# --------------------------------------------------------------------------- data types


def _as_bytes(value: object, name: str, size: int | None = None) -> bytes:
    if isinstance(value, (bytearray, memoryview)):
        value = bytes(value)
    if not isinstance(value, bytes):
        raise SafeTxError(f"{name} must be bytes, got {type(value).__name__}")
    if size is not None and len(value) != size:
        raise SafeTxError(f"{name} must be {size} bytes, got {len(value)}")
    return value


def _u16_len(data: bytes, name: str) -> None:
    if len(data) > MAX_ENCODING_INT:
        raise SafeTxError(f"{name} is {len(data)} bytes, more than {MAX_ENCODING_INT}")


@dataclass(frozen=True)
class Input:
    """A spent UTXO: the hash of the transaction that created it and its output index."""

    hash: bytes
    index: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "hash", _as_bytes(self.hash, "input hash", HASH_SIZE))
        if isinstance(self.index, bool) or not isinstance(self.index, int):
            raise SafeTxError(f"input index must be an int, got {self.index!r}")
        if not 0 <= self.index <= MAX_ENCODING_INT:
            raise SafeTxError(f"input index {self.index} out of range 0..{MAX_ENCODING_INT}")


@dataclass(frozen=True)
class Withdrawal:
    """Withdrawal data of a 0xa1 output: the external address and its tag/memo ('' if none)."""

    address: str
    tag: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.address, str) or not self.address:
            raise SafeTxError("withdrawal address must be a non-empty string")
        if not isinstance(self.tag, str):
            raise SafeTxError("withdrawal tag must be a string ('' for none)")
        _u16_len(self.address.encode("utf-8"), "withdrawal address")
        _u16_len(self.tag.encode("utf-8"), "withdrawal tag")


@dataclass(frozen=True)
class Output:
    """A transaction output. ``keys`` and ``mask`` are the ghost keys; empty/zero for a withdrawal."""

    type: int
    amount: Decimal
    keys: tuple[bytes, ...] = ()
    mask: bytes = ZERO_KEY
    script: bytes = b""
    withdrawal: Withdrawal | None = None

    def __post_init__(self) -> None:
        if isinstance(self.type, bool) or not isinstance(self.type, int) or not 0 <= self.type <= 0xFF:
            raise SafeTxError(f"output type must be a byte, got {self.type!r}")
        amount_to_kernel(self.amount)  # validates: Decimal, > 0, <= 8 decimals
        object.__setattr__(self, "amount", Decimal(self.amount))
        keys = tuple(_as_bytes(k, "output key", KEY_SIZE) for k in self.keys)
        if len(keys) > MAX_ENCODING_INT:
            raise SafeTxError(f"too many output keys: {len(keys)}")
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "mask", _as_bytes(self.mask, "output mask", KEY_SIZE))
        script = _as_bytes(self.script, "output script")
        _u16_len(script, "output script")
        object.__setattr__(self, "script", script)
        if self.withdrawal is not None and not isinstance(self.withdrawal, Withdrawal):
            raise SafeTxError("output withdrawal must be a Withdrawal or None")
        if self.type == OUTPUT_TYPE_WITHDRAWAL_SUBMIT:
            if self.withdrawal is None:
                raise SafeTxError("a withdrawal (0xa1) output needs withdrawal data (address, tag)")
            if keys or self.mask != ZERO_KEY or script:
                raise SafeTxError("a withdrawal (0xa1) output has no keys, a zero mask and no script")
        elif self.withdrawal is not None:
            raise SafeTxError(f"only a 0xa1 output carries withdrawal data, not type {self.type:#04x}")


def _freeze_signature_map(sm: Mapping[int, bytes]) -> Mapping[int, bytes]:
    if not isinstance(sm, Mapping):
        raise SafeTxError(f"a signature map must be a mapping signer index -> signature, got {type(sm).__name__}")
    frozen: dict[int, bytes] = {}
    for index in sorted(sm):
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_ENCODING_INT:
            raise SafeTxError(f"signer index must be an int in 0..{MAX_ENCODING_INT}, got {index!r}")
        frozen[index] = _as_bytes(sm[index], "signature", SIGNATURE_SIZE)
    if len(frozen) > MAX_ENCODING_INT:
        raise SafeTxError("too many signatures in one map")
    return types.MappingProxyType(frozen)


@dataclass(frozen=True)
class Transaction:
    """A v5 kernel transaction.

    Sequences are stored as tuples and signature maps as read-only mappings (any
    sequence / dict is accepted on construction). ``signatures`` is None for an
    unsigned transaction; when set it has one map (signer index -> 64-byte signature)
    per input. An empty list is normalised to None: both encode to ``00 00``.
    """

    asset: bytes
    inputs: tuple[Input, ...]
    outputs: tuple[Output, ...]
    references: tuple[bytes, ...] = ()
    extra: bytes = b""
    signatures: tuple[Mapping[int, bytes], ...] | None = None
    version: int = TX_VERSION

    def __post_init__(self) -> None:
        if self.version != TX_VERSION:
            raise SafeTxError(f"only transaction version {TX_VERSION} is supported, got {self.version!r}")
        object.__setattr__(self, "asset", _as_bytes(self.asset, "asset (kernel asset id)", HASH_SIZE))

        inputs = tuple(self.inputs)
        if not inputs:
            raise SafeTxError("a transaction needs at least one input")
        if len(inputs) > SLICE_COUNT_LIMIT:
            raise SafeTxError(f"too many inputs: {len(inputs)} > {SLICE_COUNT_LIMIT}")
        if not all(isinstance(i, Input) for i in inputs):
            raise SafeTxError("inputs must be Input instances")
        if len({(i.hash, i.index) for i in inputs}) != len(inputs):
            raise SafeTxError("duplicate input (same hash and index spent twice)")
        object.__setattr__(self, "inputs", inputs)

        outputs = tuple(self.outputs)
        if not outputs:
            raise SafeTxError("a transaction needs at least one output")
        if len(outputs) > SLICE_COUNT_LIMIT:
            raise SafeTxError(f"too many outputs: {len(outputs)} > {SLICE_COUNT_LIMIT}")
        if not all(isinstance(o, Output) for o in outputs):
            raise SafeTxError("outputs must be Output instances")
        object.__setattr__(self, "outputs", outputs)

        refs = tuple(_as_bytes(r, "reference", HASH_SIZE) for r in self.references)
        if len(refs) > REFERENCES_LIMIT:
            raise SafeTxError(f"too many references: {len(refs)} > {REFERENCES_LIMIT}")
        if len(set(refs)) != len(refs):
            raise SafeTxError("duplicate reference")
        object.__setattr__(self, "references", refs)

        extra = _as_bytes(self.extra, "extra")
        if len(extra) > EXTRA_SIZE_LIMIT:
            raise SafeTxError(f"extra is {len(extra)} bytes, more than the {EXTRA_SIZE_LIMIT}-byte limit")
        object.__setattr__(self, "extra", extra)

        sigs = self.signatures
        if sigs is not None:
            if isinstance(sigs, Mapping) or not isinstance(sigs, Sequence):
                raise SafeTxError("signatures must be a list of signature maps (one per input) or None")
            frozen = tuple(_freeze_signature_map(sm) for sm in sigs)
            if not frozen:
                frozen = None
            elif len(frozen) != len(inputs):
                raise SafeTxError(f"{len(frozen)} signature maps for {len(inputs)} inputs; need one per input")
            object.__setattr__(self, "signatures", frozen)

    @property
    def is_signed(self) -> bool:
        return self.signatures is not None

    def unsigned(self) -> "Transaction":
        """The same transaction without signatures."""
        return self.with_signatures(None)

    def with_signatures(self, signatures: Sequence[Mapping[int, bytes]] | None) -> "Transaction":
        return Transaction(
            asset=self.asset,
            inputs=self.inputs,
            outputs=self.outputs,
            references=self.references,
            extra=self.extra,
            signatures=signatures,
            version=self.version,
        )

    def total_output_amount(self) -> Decimal:
        total = sum(amount_to_kernel(o.amount) for o in self.outputs)
        return kernel_to_amount(total)


# --------------------------------------------------------------------------- encoding


def _u16(n: int) -> bytes:
    if not 0 <= n <= MAX_ENCODING_INT:
        raise SafeTxError(f"value {n} does not fit an u16")
    return struct.pack(">H", n)


def _u16_bytes(data: bytes) -> bytes:
    return _u16(len(data)) + data


def encode(tx: Transaction, *, with_signatures: bool = True) -> bytes:
    """The raw kernel encoding. ``with_signatures=False`` gives the unsigned payload (ends ``00 00``)."""
    if not isinstance(tx, Transaction):
        raise SafeTxError(f"expected a Transaction, got {type(tx).__name__}")
    out = bytearray()
    out += MAGIC
    out += bytes((0x00, tx.version))
    out += tx.asset
    out += _u16(len(tx.inputs))
    for i in tx.inputs:
        out += i.hash
        out += _u16(i.index)
        out += _u16(0)  # genesis: none
        out += NULL  # deposit: none
        out += NULL  # mint: none
    out += _u16(len(tx.outputs))
    for o in tx.outputs:
        out += bytes((0x00, o.type))
        out += _u16_bytes(_amount_bytes(o.amount))
        out += _u16(len(o.keys))
        for k in o.keys:
            out += k
        out += o.mask
        out += _u16_bytes(o.script)
        if o.withdrawal is None:
            out += NULL
        else:
            out += MAGIC
            out += _u16_bytes(o.withdrawal.address.encode("utf-8"))
            out += _u16_bytes(o.withdrawal.tag.encode("utf-8"))
    out += _u16(len(tx.references))
    for r in tx.references:
        out += r
    out += struct.pack(">I", len(tx.extra))
    out += tx.extra
    sigs = tx.signatures if with_signatures else None
    if not sigs:
        out += _u16(0)
    else:
        out += _u16(len(sigs))
        for sm in sigs:
            out += _u16(len(sm))
            for index in sorted(sm):
                out += _u16(index)
                out += sm[index]
    return bytes(out)


def payload_hash(tx: Transaction) -> bytes:
    """blake3 of the unsigned encoding: 32 bytes, the message every input signature signs."""
    return blake3.blake3(encode(tx, with_signatures=False)).digest()


def transaction_hash(tx: Transaction) -> str:
    """The kernel transaction hash (hex), blake3 of the unsigned encoding."""
    return payload_hash(tx).hex()


# --------------------------------------------------------------------------- decoding


class _Reader:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.raw):
            raise SafeTxError(
                f"truncated raw transaction: need {n} bytes for {what} at offset {self.pos}, "
                f"only {len(self.raw) - self.pos} left"
            )
        chunk = self.raw[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u16(self, what: str) -> int:
        return struct.unpack(">H", self.take(2, what))[0]

    def u32(self, what: str) -> int:
        return struct.unpack(">I", self.take(4, what))[0]

    def var_bytes(self, what: str) -> bytes:
        return self.take(self.u16(f"length of {what}"), what)


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SafeTxError(f"{what} is not valid UTF-8") from exc


def decode(raw: bytes | bytearray | memoryview | str) -> Transaction:
    """Parse a raw v5 transaction (bytes, or a hex string). Exact inverse of :func:`encode`."""
    if isinstance(raw, str):
        try:
            raw = bytes.fromhex(raw)
        except ValueError as exc:
            raise SafeTxError("raw transaction string is not valid hex") from exc
    raw = _as_bytes(raw, "raw transaction")
    r = _Reader(raw)
    if r.take(2, "magic") != MAGIC:
        raise SafeTxError("bad magic: a raw transaction starts with 77 77")
    version = r.take(2, "version")
    if version != bytes((0x00, TX_VERSION)):
        raise SafeTxError(f"unsupported transaction version {version.hex()} (only 0005)")
    asset = r.take(HASH_SIZE, "asset")

    inputs = []
    for n in range(r.u16("number of inputs")):
        h = r.take(HASH_SIZE, f"input {n} hash")
        index = r.u16(f"input {n} index")
        if r.var_bytes(f"input {n} genesis"):
            raise SafeTxError(f"input {n} has genesis data: not a Safe user transaction, unsupported")
        if r.take(2, f"input {n} deposit") != NULL:
            raise SafeTxError(f"input {n} is a deposit input: unsupported")
        if r.take(2, f"input {n} mint") != NULL:
            raise SafeTxError(f"input {n} is a mint input: unsupported")
        inputs.append(Input(h, index))

    outputs = []
    for n in range(r.u16("number of outputs")):
        t = r.take(2, f"output {n} type")
        if t[0] != 0:
            raise SafeTxError(f"output {n} has an invalid type prefix {t.hex()}")
        amt = r.var_bytes(f"output {n} amount")
        if not amt or amt[0] == 0:
            raise SafeTxError(f"output {n} amount is zero or not minimally encoded ({amt.hex() or 'empty'})")
        amount = kernel_to_amount(int.from_bytes(amt, "big"))
        keys = tuple(r.take(KEY_SIZE, f"output {n} key") for _ in range(r.u16(f"output {n} key count")))
        mask = r.take(KEY_SIZE, f"output {n} mask")
        script = r.var_bytes(f"output {n} script")
        marker = r.take(2, f"output {n} withdrawal marker")
        if marker == NULL:
            withdrawal = None
        elif marker == MAGIC:
            address = _text(r.var_bytes(f"output {n} withdrawal address"), f"output {n} withdrawal address")
            tag = _text(r.var_bytes(f"output {n} withdrawal tag"), f"output {n} withdrawal tag")
            withdrawal = Withdrawal(address, tag)
        else:
            raise SafeTxError(f"output {n} has a malformed withdrawal marker {marker.hex()}")
        outputs.append(Output(t[1], amount, keys, mask, script, withdrawal))

    references = [r.take(HASH_SIZE, f"reference {n}") for n in range(r.u16("number of references"))]
    extra_len = r.u32("extra length")
    if extra_len > EXTRA_SIZE_LIMIT:
        raise SafeTxError(f"extra is {extra_len} bytes, more than the {EXTRA_SIZE_LIMIT}-byte limit")
    extra = r.take(extra_len, "extra")

    n_maps = r.u16("number of signature maps")
    if n_maps == MAX_ENCODING_INT:
        raise SafeTxError("aggregated signatures (ffff prefix) are not supported")
    signatures = []
    for n in range(n_maps):
        sm: dict[int, bytes] = {}
        previous = -1
        for _ in range(r.u16(f"signature map {n} size")):
            index = r.u16(f"signature map {n} signer index")
            if index <= previous:
                raise SafeTxError(f"signature map {n}: signer indexes must be strictly ascending")
            previous = index
            sm[index] = r.take(SIGNATURE_SIZE, f"signature map {n} signature")
        signatures.append(sm)

    if r.pos != len(raw):
        raise SafeTxError(f"{len(raw) - r.pos} unexpected trailing bytes after the transaction")

    return Transaction(
        asset=asset,
        inputs=inputs,
        outputs=outputs,
        references=references,
        extra=extra,
        signatures=signatures or None,
    )
