"""Segment files of the archive: msgpack records of finished orders, written once, never changed.

A segment is ``MAGIC`` followed by one msgpack map per order (``encode_record``); the index in the database
(storage/archive_models.py) holds the file's sha256 and each record's offset, length and sha256. Writing is
crash-safe: the bytes go to ``<name>.tmp``, are fsynced, renamed to the final name, and the directory is
fsynced — only then does the caller record the segment in the index. A file the index does not name (a run
killed between the two steps) is never read, and ``archive verify`` lists it as safe to delete.

Why msgpack and not Parquet/Arrow: msgpack is already a core dependency (raw Mixin snapshots are stored
with it), a record per order can be read alone by offset, and no column store (pyarrow: a large native
wheel) is needed for "read one order" and "read a whole segment back".
"""
from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import msgpack

MAGIC = b"mmflow-archive/1\n"
SUFFIX = ".mmarc"
FORMAT = 1


class ArchiveCorrupt(RuntimeError):
    """A segment or record whose bytes are not what the index recorded (or that cannot be read at all)."""


@dataclass(frozen=True)
class WrittenSegment:
    segment_id: str
    path: str                       # relative to the archive directory
    sha256: str
    size: int
    records: tuple[tuple[int, int, str], ...]   # (offset, length, sha256) of each record, in order


def encode_record(record: dict) -> bytes:
    return msgpack.packb(record, use_bin_type=True)


def decode_record(data: bytes) -> dict:
    try:
        record = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise ArchiveCorrupt(f"record is not msgpack ({type(exc).__name__})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT or "tables" not in record:
        raise ArchiveCorrupt("record is not an mmflow archive record")
    return record


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_segment(directory: Path, day: str, records: list[bytes]) -> WrittenSegment:
    """Write one segment of encoded records for closing day ``day`` (YYYY-MM-DD), durably."""
    segment_id = uuid.uuid4().hex
    relative = f"{day[:7]}/{day}-{segment_id[:16]}{SUFFIX}"
    final = directory / relative
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(final.name + ".tmp")
    placed, offset, whole = [], len(MAGIC), hashlib.sha256(MAGIC)
    with open(tmp, "wb") as out:
        out.write(MAGIC)
        for data in records:
            out.write(data)
            whole.update(data)
            placed.append((offset, len(data), digest(data)))
            offset += len(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, final)
    _fsync_directory(final.parent)
    _fsync_directory(directory)
    return WrittenSegment(segment_id, relative, whole.hexdigest(), offset, tuple(placed))


def read_record(path: Path, offset: int, length: int, sha256: str) -> dict:
    """One record, checked against its sha256."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(length)
    except OSError as exc:
        raise ArchiveCorrupt(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    if len(data) != length or digest(data) != sha256:
        raise ArchiveCorrupt(f"{path}: the record at offset {offset} does not match its sha256")
    return decode_record(data)


def read_segment(path: Path, sha256: str) -> bytes:
    """The whole file, checked against its sha256."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArchiveCorrupt(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    if digest(data) != sha256:
        raise ArchiveCorrupt(f"{path}: sha256 {digest(data)[:16]}… differs from the index's {sha256[:16]}…")
    if not data.startswith(MAGIC):
        raise ArchiveCorrupt(f"{path}: not an mmflow archive segment")
    return data


def record_at(data: bytes, offset: int, length: int, sha256: str, where: Path) -> dict:
    """A record inside a segment already read (and checked) whole."""
    piece = data[offset:offset + length]
    if len(piece) != length or digest(piece) != sha256:
        raise ArchiveCorrupt(f"{where}: the record at offset {offset} does not match its sha256")
    return decode_record(piece)


def segment_files(directory: Path) -> list[str]:
    """Every segment file under the directory (relative paths), and leftover .tmp files."""
    if not directory.is_dir():
        return []
    return sorted(str(p.relative_to(directory)) for p in directory.glob("*/*")
                  if p.name.endswith((SUFFIX, SUFFIX + ".tmp")))
