"""A bounded, crash-safe, on-disk FIFO of Kafka records for when Kafka is away.

Layout: numbered segment files `seg-<n>.spool` of checksummed records
(`magic u16 | length u32 | crc32 u32 | data`) plus a `cursor` file naming the first unsent
record. Appends are fsynced, so an event handed to the spool survives a crash of the agent.
On open, a torn record at the tail (power loss mid-write) is cut off and a corrupt record
(checksum mismatch) ends its segment; both are counted. When the spool is over its cap, whole
oldest segments are dropped (we keep the newest data: an operator coming back from an outage
wants the recent picture) and every dropped record is counted. A record may be sent twice
after a crash between send and cursor update; the sink deduplicates by event id.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_MAGIC = 0x4D54
_HEADER = struct.Struct(">HII")
_LEN16 = struct.Struct(">H")
MAX_RECORD = 16 * 1024 * 1024


class SpoolError(Exception):
    """The spool cannot take records (disk full, unwritable); the message says what to do."""


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    topic: str
    key: bytes | None
    value: bytes


@dataclass(slots=True)
class _Segment:
    seq: int
    path: Path
    records: int  # valid records in the file
    size: int  # bytes of valid records


def _encode(rec: SpoolRecord) -> bytes:
    topic = rec.topic.encode()
    key = rec.key if rec.key is not None else b""
    flag = b"\x01" if rec.key is not None else b"\x00"
    data = b"".join((_LEN16.pack(len(topic)), topic, flag, _LEN16.pack(len(key)), key, rec.value))
    return _HEADER.pack(_MAGIC, len(data), zlib.crc32(data)) + data


def _decode(data: bytes) -> SpoolRecord:
    (tlen,) = _LEN16.unpack_from(data, 0)
    topic = data[2 : 2 + tlen].decode()
    pos = 2 + tlen
    has_key = data[pos] == 1
    (klen,) = _LEN16.unpack_from(data, pos + 1)
    pos += 3
    key = data[pos : pos + klen] if has_key else None
    return SpoolRecord(topic, key, data[pos + klen :])


def _read_record(f: BinaryIO) -> bytes | None:
    """The next record's data, or None at a clean end, torn tail or corruption."""
    header = f.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    magic, length, crc = _HEADER.unpack(header)
    if magic != _MAGIC or length > MAX_RECORD:
        return None
    data = f.read(length)
    if len(data) < length or zlib.crc32(data) != crc:
        return None
    return data


class Spool:
    """The spool directory. Not thread-safe: owned by the producer task on the event loop."""

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int | None = None) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or max(64 * 1024, min(4 * 1024 * 1024, max_bytes // 8))
        self._segments: list[_Segment] = []
        self._writer: BinaryIO | None = None
        self._reader: BinaryIO | None = None
        self._read_seq = -1
        self._read_offset = 0  # byte offset of the next unread record in the head segment
        self._read_index = 0  # record index of the same
        self.depth = 0
        self.dropped_total = 0
        self.corrupt_total = 0

    # -- lifecycle --------------------------------------------------------------------------

    def open(self) -> None:
        """Scan existing segments (after a crash), cut torn tails, restore the read cursor."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise SpoolError(
                f"spool directory {self.directory}: cannot create it ({exc.strerror});"
                " set [agent] spool_dir to a writable directory"
            ) from None
        for path in sorted(self.directory.glob("seg-*.spool")):
            try:
                seq = int(path.stem.split("-", 1)[1])
            except ValueError:
                continue
            self._segments.append(self._scan(seq, path))
        cursor_seq, cursor_offset = self._load_cursor()
        while self._segments and self._segments[0].seq < cursor_seq:
            self._delete(self._segments.pop(0))
        if self._segments and self._segments[0].seq == cursor_seq:
            self._read_offset = min(cursor_offset, self._segments[0].size)
            self._read_index = self._count_until(self._segments[0], self._read_offset)
        self._read_seq = self._segments[0].seq if self._segments else -1
        self.depth = sum(s.records for s in self._segments) - self._read_index

    def close(self) -> None:
        for f in (self._writer, self._reader):
            if f is not None:
                f.close()
        self._writer = self._reader = None

    @property
    def bytes(self) -> int:
        return sum(s.size for s in self._segments) - self._read_offset

    def _scan(self, seq: int, path: Path) -> _Segment:
        records = size = 0
        with path.open("rb") as f:
            while (data := _read_record(f)) is not None:
                records += 1
                size += _HEADER.size + len(data)
        if size != path.stat().st_size:
            self.corrupt_total += 1
            with path.open("r+b") as f:
                f.truncate(size)
        return _Segment(seq, path, records, size)

    def _count_until(self, seg: _Segment, offset: int) -> int:
        count = pos = 0
        with seg.path.open("rb") as f:
            while pos < offset and (data := _read_record(f)) is not None:
                pos += _HEADER.size + len(data)
                count += 1
        return count

    def _load_cursor(self) -> tuple[int, int]:
        try:
            seq, offset = (self.directory / "cursor").read_text().split()
            return int(seq), int(offset)
        except (OSError, ValueError):
            return -1, 0

    def _save_cursor(self) -> None:
        tmp = self.directory / "cursor.tmp"
        tmp.write_text(f"{self._read_seq} {self._read_offset}\n")
        os.replace(tmp, self.directory / "cursor")

    def _delete(self, seg: _Segment) -> None:
        with contextlib.suppress(FileNotFoundError):
            seg.path.unlink()

    # -- writing ----------------------------------------------------------------------------

    def append(self, records: Sequence[SpoolRecord]) -> None:
        """Durably append records in order; raises SpoolError if the disk refuses them."""
        if not records:
            return
        blob = b"".join(_encode(r) for r in records)
        seg = self._segments[-1] if self._segments else None
        if seg is None or self._writer is None or seg.size >= self.segment_bytes:
            seg = self._new_segment()
        assert self._writer is not None
        try:
            self._writer.write(blob)
            self._writer.flush()
            os.fsync(self._writer.fileno())
        except OSError as exc:
            # Cut off a partial write so the segment stays a clean sequence of records.
            with contextlib.suppress(OSError):
                self._writer.truncate(seg.size)
                self._writer.seek(seg.size)
            raise SpoolError(
                f"spool directory {self.directory}: cannot write ({exc.strerror});"
                " free disk space or fix permissions — events are being dropped and counted"
            ) from None
        seg.records += len(records)
        seg.size += len(blob)
        self.depth += len(records)
        self._enforce_cap()

    def _new_segment(self) -> _Segment:
        seq = self._segments[-1].seq + 1 if self._segments else max(self._read_seq, 0)
        path = self.directory / f"seg-{seq:016d}.spool"
        if self._writer is not None:
            self._writer.close()
        try:
            self._writer = path.open("ab")
        except OSError as exc:
            self._writer = None
            raise SpoolError(
                f"spool directory {self.directory}: cannot create a segment ({exc.strerror});"
                " free disk space or fix permissions — events are being dropped and counted"
            ) from None
        seg = _Segment(seq, path, 0, 0)
        self._segments.append(seg)
        if len(self._segments) == 1:
            self._read_seq, self._read_offset, self._read_index = seq, 0, 0
        return seg

    def _enforce_cap(self) -> None:
        while self.bytes > self.max_bytes and len(self._segments) > 1:
            head = self._segments.pop(0)
            lost = head.records - self._read_index
            self.dropped_total += lost
            self.depth -= lost
            self._close_reader()
            self._delete(head)
            self._read_seq, self._read_offset, self._read_index = self._segments[0].seq, 0, 0
            self._save_cursor()

    # -- reading ----------------------------------------------------------------------------

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def peek(self, max_records: int) -> list[SpoolRecord]:
        """Up to `max_records` oldest unsent records (from the head segment), not yet removed."""
        if not self._segments or self.depth == 0:
            return []
        head = self._segments[0]
        if self._reader is None:
            self._reader = head.path.open("rb")
        self._reader.seek(self._read_offset)
        out: list[SpoolRecord] = []
        pos = self._read_offset
        while len(out) < max_records and pos < head.size:
            data = _read_record(self._reader)
            if data is None:
                break
            pos += _HEADER.size + len(data)
            out.append(_decode(data))
        return out

    def ack(self, count: int) -> None:
        """Mark the first `count` peeked records as sent; drops finished segments."""
        if count <= 0 or not self._segments:
            return
        head = self._segments[0]
        if self._reader is None:
            self._reader = head.path.open("rb")
        self._reader.seek(self._read_offset)
        for _ in range(count):
            data = _read_record(self._reader)
            if data is None:
                break
            self._read_offset += _HEADER.size + len(data)
            self._read_index += 1
            self.depth -= 1
        if self._read_index >= head.records:
            self._close_reader()
            self._segments.pop(0)
            if head.path.exists() and self._writer is not None and not self._segments:
                self._writer.close()
                self._writer = None
            self._delete(head)
            if self._segments:
                self._read_seq = self._segments[0].seq
            else:
                self._read_seq = head.seq + 1
            self._read_offset = self._read_index = 0
        self._save_cursor()
