"""A bounded, crash-safe, on-disk FIFO of Kafka records for when Kafka is away.

Layout: numbered segment files `seg-<n>.spool` of checksummed records
(`magic u16 | length u32 | crc32 u32 | data`) plus a `cursor` file naming the first unsent
record. Appends are fsynced, so an event handed to the spool survives a crash of the agent.
On open, a torn record at the tail (power loss mid-write) is cut off and a corrupt record
(checksum mismatch) ends its segment; both are counted. When the spool is over its cap, whole
oldest segments are dropped (we keep the newest data: an operator coming back from an outage
wants the recent picture) and every dropped record is counted; only the segment whose records
are out for sending at that moment is spared. A disk error (full, read-only) fails the append
and leaves the files as they were. A record may be sent twice after a crash between send and
cursor update; the sink deduplicates by event id.
"""

from __future__ import annotations

import contextlib
import errno
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
    sealed: bool = False  # never appended to again (from an earlier run, or a failed cut)


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


def _disk_error(directory: Path, what: str, exc: OSError) -> str:
    return (
        f"spool directory {directory}: {what} ({exc.strerror or type(exc).__name__});"
        " free disk space or fix permissions — events are being dropped and counted"
    )


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
        self._reader: BinaryIO | None = None
        self._read_seq = -1
        self._read_offset = 0  # byte offset of the next unread record in the head segment
        self._read_index = 0  # record index of the same
        self.depth = 0
        self.dropped_total = 0
        self.corrupt_total = 0
        # Cursor saves that failed (disk full, read-only): the cursor in memory stays right;
        # after a crash the stale file makes some records go out twice, which the sink dedupes.
        self.cursor_errors = 0
        self._peeked = False  # records of the head segment are out for sending

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
            seg = self._scan(seq, path)
            seg.sealed = True  # appends go to a new segment, never behind an old tail
            self._segments.append(seg)
        cursor_seq, cursor_offset = self._load_cursor()
        while self._segments and self._segments[0].seq < cursor_seq:
            self._delete(self._segments.pop(0))
        if self._segments and self._segments[0].seq == cursor_seq:
            self._read_offset = min(cursor_offset, self._segments[0].size)
            self._read_index = self._count_until(self._segments[0], self._read_offset)
        self._read_seq = self._segments[0].seq if self._segments else -1
        self.depth = sum(s.records for s in self._segments) - self._read_index

    def close(self) -> None:
        self._close_reader()

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
            # Cut the torn tail so the file is clean again; if the disk refuses, the reader
            # still stops at `size` and appends always start a new segment.
            with contextlib.suppress(OSError), path.open("r+b") as f:
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
        try:
            tmp.write_text(f"{self._read_seq} {self._read_offset}\n")
            os.replace(tmp, self.directory / "cursor")
        except OSError:
            self.cursor_errors += 1
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _delete(self, seg: _Segment) -> None:
        # A segment that cannot be removed now (read-only disk) is behind the cursor, so the
        # next open() removes it; nothing is re-sent unless the cursor could not be saved.
        with contextlib.suppress(OSError):
            seg.path.unlink()

    # -- writing ----------------------------------------------------------------------------

    def append(self, records: Sequence[SpoolRecord]) -> None:
        """Durably append records in order; raises SpoolError if the disk refuses them.

        The segment file is opened for each append (O_APPEND, unbuffered) and closed again,
        so no write is ever left half in a buffer to land later in the middle of a record,
        and the spool holds no file open for writing between appends. A failed append leaves
        the spool as it was: the partial write is cut off (if even that fails, the segment is
        sealed and the next append starts a new one).
        """
        if not records:
            return
        blob = b"".join(_encode(r) for r in records)
        seg, fd = self._segment_for_append()
        try:
            view = memoryview(blob)
            while view:
                written = os.write(fd, view)
                if not written:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                view = view[written:]
            os.fsync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, seg.size)
            except OSError:
                seg.sealed = True
            raise SpoolError(_disk_error(self.directory, "cannot write", exc)) from None
        finally:
            os.close(fd)
        seg.records += len(records)
        seg.size += len(blob)
        self.depth += len(records)
        self._enforce_cap()

    def _segment_for_append(self) -> tuple[_Segment, int]:
        """The segment to append to, and a file descriptor open on it for this append."""
        last = self._segments[-1] if self._segments else None
        if last is not None and last.size == 0 and last.records == 0:
            # Empty (left so by a failed write, or by an earlier run): reuse, cleared.
            return last, self._open_segment(last.path, truncate=True)
        if last is not None and not last.sealed and last.size < self.segment_bytes:
            return last, self._open_segment(last.path, truncate=False)
        seq = last.seq + 1 if last is not None else max(self._read_seq, 0)
        path = self.directory / f"seg-{seq:016d}.spool"
        fd = self._open_segment(path, truncate=True)
        seg = _Segment(seq, path, 0, 0)
        self._segments.append(seg)
        if len(self._segments) == 1:
            self._read_seq, self._read_offset, self._read_index = seq, 0, 0
        return seg, fd

    def _open_segment(self, path: Path, *, truncate: bool) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if truncate else 0)
        try:
            return os.open(path, flags, 0o600)
        except OSError as exc:
            raise SpoolError(_disk_error(self.directory, "cannot open a segment", exc)) from None

    def _enforce_cap(self) -> None:
        """Drop whole oldest segments while over the cap, never the one being written.

        The head segment is spared while records peeked from it are being sent (until `ack`):
        dropping it then would count delivered records as dropped and make `ack` skip records
        that were never sent. The next-oldest segment goes instead.
        """
        while self.bytes > self.max_bytes:
            victim = 1 if self._peeked else 0
            if len(self._segments) <= victim + 1:
                return
            seg = self._segments.pop(victim)
            lost = seg.records - (self._read_index if victim == 0 else 0)
            self.dropped_total += lost
            self.depth -= lost
            self._delete(seg)
            if victim == 0:
                self._close_reader()
                self._read_seq, self._read_offset, self._read_index = self._segments[0].seq, 0, 0
                self._save_cursor()

    # -- reading ----------------------------------------------------------------------------

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def peek(self, max_records: int) -> list[SpoolRecord]:
        """Up to `max_records` oldest unsent records (from the head segment), not yet removed.

        Until the following `ack` (which may acknowledge 0), the head segment is not dropped
        by the cap.
        """
        self._peeked = False
        if not self._segments or self.depth == 0:
            return []
        while self._read_index >= self._segments[0].records and len(self._segments) > 1:
            self._retire_head()  # nothing left to read there (e.g. emptied by a failed write)
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
        self._peeked = bool(out)
        return out

    def _retire_head(self) -> None:
        head = self._segments.pop(0)
        self._close_reader()
        self._delete(head)
        self._read_seq, self._read_offset, self._read_index = self._segments[0].seq, 0, 0
        self._save_cursor()

    def ack(self, count: int) -> None:
        """Mark the first `count` peeked records as sent; drops finished segments."""
        self._peeked = False
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
            self._delete(head)
            if self._segments:
                self._read_seq = self._segments[0].seq
            else:
                self._read_seq = head.seq + 1
            self._read_offset = self._read_index = 0
        self._save_cursor()


def size_text(n: int) -> str:
    """A byte count as the spool's cap is given ([agent] spool_max_mb): MB, or KB below one."""
    return f"{n / 1048576:g} MB" if n >= 1048576 else f"{n / 1024:g} KB"
