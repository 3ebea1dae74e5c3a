"""What the engine and its check worker processes say to each other over their pipes.

Both ends are this same program, so frames are `marshal`led tuples of plain values behind a
4-byte length: an order of magnitude cheaper than JSON or pickle for the ~1,000 results a
second the pipes carry, and no class lookups on load. A `CheckResult` travels as a tuple with
its datetimes as integer microseconds (exact, unlike float seconds), together with its Kafka
event already encoded in the worker, so the engine process only ships bytes.

Frames from the engine to a worker: ``(SETUP, agent, host, body_max_bytes, concurrency, location,
clock_phase)`` once, then ``(TARGETS, [target tuple, ...], catch_up_after)`` whenever its shard
changes.
Frames from a worker to the engine: ``(RESULT, result tuple, lateness_s, event bytes)`` per
check and ``(MISSED, missed_slots)`` about once a second.
"""

from __future__ import annotations

import dataclasses
import marshal
import struct
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.records.check_result import FIELD_SPECS, RESULT_FIELDS, CheckResult, Kind
from engine.targets import Target

SETUP = 0
TARGETS = 1
RESULT = 2
MISSED = 3

_LENGTH = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024
"""A longer length prefix means the stream is corrupt (a worker bug), not a big message."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class FrameError(Exception):
    """The byte stream does not hold valid frames; the peer is broken and must be replaced."""


def frame(message: tuple[Any, ...]) -> bytes:
    """One message as length-prefixed bytes."""
    body = marshal.dumps(message)
    return _LENGTH.pack(len(body)) + body


class FrameReader:
    """Splits a byte stream into messages, whatever the chunking of the reads."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[Any, ...]]:
        """Add `data`; return every message now complete, in order."""
        buffer = self._buffer
        buffer += data
        messages: list[tuple[Any, ...]] = []
        at, end = 0, len(buffer)
        while end - at >= 4:
            (length,) = _LENGTH.unpack_from(buffer, at)
            if length > MAX_FRAME:
                raise FrameError(f"frame of {length} bytes announced")
            if end - at - 4 < length:
                break
            try:
                message = marshal.loads(bytes(buffer[at + 4 : at + 4 + length]))
            except (EOFError, ValueError, TypeError) as exc:
                raise FrameError(f"undecodable frame: {exc}") from None
            if not isinstance(message, tuple) or not message:
                raise FrameError("frame is not a tagged tuple")
            messages.append(message)
            at += 4 + length
        del buffer[:at]
        return messages

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back (non-zero at EOF means a torn frame)."""
        return len(self._buffer)


def _micros(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    delta = moment - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _moment(micros: int | None) -> datetime | None:
    return None if micros is None else _EPOCH + timedelta(microseconds=micros)


_TIME_AT = frozenset(
    i for i, spec in enumerate(FIELD_SPECS) if spec.kind in (Kind.TIME, Kind.OPT_TIME)
)


def result_to_wire(r: CheckResult) -> tuple[Any, ...]:
    """A `CheckResult` as a tuple of plain values (inverse: `result_from_wire`)."""
    return tuple(
        _micros(getattr(r, name)) if i in _TIME_AT else getattr(r, name)
        for i, name in enumerate(RESULT_FIELDS)
    )


def result_from_wire(t: tuple[Any, ...]) -> CheckResult:
    """The `CheckResult` that `result_to_wire` flattened, equal field for field."""
    values: list[Any] = [_moment(v) if i in _TIME_AT else v for i, v in enumerate(t)]
    return CheckResult(*values)


def targets_to_wire(targets: Iterable[Target]) -> list[tuple[Any, ...]]:
    """Targets as tuples of their fields, in declaration order."""
    return [dataclasses.astuple(target) for target in targets]


def targets_from_wire(items: Iterable[tuple[Any, ...] | list[Any]]) -> list[Target]:
    """Inverse of `targets_to_wire` (marshal keeps tuples, so nested fields come back as is)."""
    return [Target(*item) for item in items]
