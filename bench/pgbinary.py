"""PostgreSQL binary COPY data built ahead of time, for the raw-COPY ceiling.

Independent of engine/sink/store.py on purpose: the ceiling must not share the code it judges.
Building the bytes is not timed; only PostgreSQL taking them is.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
_NULL = b"\xff\xff\xff\xff"
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")


def _micros(ts: datetime) -> int:
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _text(v: Any) -> bytes:
    data: bytes = str(v).encode()
    return _I32.pack(len(data)) + data


def _uuid(v: Any) -> bytes:
    return _I32.pack(16) + (v if isinstance(v, uuid.UUID) else uuid.UUID(str(v))).bytes


_ENCODERS: dict[str, Callable[[Any], bytes]] = {
    "timestamptz": lambda v: b"\x00\x00\x00\x08" + struct.pack("!q", _micros(v)),
    "int8": lambda v: b"\x00\x00\x00\x08" + struct.pack("!q", v),
    "int4": lambda v: b"\x00\x00\x00\x04" + struct.pack("!i", v),
    "float8": lambda v: b"\x00\x00\x00\x08" + struct.pack("!d", v),
    "float4": lambda v: b"\x00\x00\x00\x04" + struct.pack("!f", v),
    "bool": lambda v: b"\x00\x00\x00\x01" + (b"\x01" if v else b"\x00"),
    "text": _text,
    "uuid": _uuid,
}


def copy_data(rows: Iterable[Sequence[Any]], types: Sequence[str]) -> bytes:
    """The complete binary COPY stream (signature, rows, trailer) of `rows`."""
    encoders = [_ENCODERS[t] for t in types]
    count = _I16.pack(len(types))
    parts = [SIGNATURE]
    for row in rows:
        parts.append(count)
        for enc, value in zip(encoders, row, strict=True):
            parts.append(_NULL if value is None else enc(value))
    parts.append(TRAILER)
    return b"".join(parts)
