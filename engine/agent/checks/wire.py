"""What the engine and its check worker processes say to each other over their pipes.

Both ends are this same program, so frames are `marshal`led tuples of plain values behind a
4-byte length: an order of magnitude cheaper than JSON or pickle for the ~1,000 results a
second the pipes carry, and no class lookups on load. A `CheckResult` travels as a tuple with
its datetimes as integer microseconds (exact, unlike float seconds), together with its Kafka
event already encoded in the worker, so the engine process only ships bytes.

Frames from the engine to a worker:  ``(SETUP, agent, host, body_max_bytes, concurrency)`` once,
then ``(TARGETS, [target tuple, ...])`` whenever its shard changes.
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

from engine.agent.checks.checker import CheckResult
from engine.targets.model import Target

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


def result_to_wire(r: CheckResult) -> tuple[Any, ...]:
    """A `CheckResult` as a tuple of plain values (inverse: `result_from_wire`)."""
    return (
        r.target,
        r.url,
        r.method,
        _micros(r.started_at),
        r.ok,
        r.status_code,
        r.reason,
        r.error,
        r.dns_ms,
        r.connect_ms,
        r.tls_ms,
        r.ttfb_ms,
        r.total_ms,
        r.content_match,
        _micros(r.cert_expires_at),
        r.resolved_ip,
    )


def result_from_wire(t: tuple[Any, ...]) -> CheckResult:
    """The `CheckResult` that `result_to_wire` flattened, equal field for field."""
    started_at = _moment(t[3])
    assert started_at is not None
    return CheckResult(
        target=t[0],
        url=t[1],
        method=t[2],
        started_at=started_at,
        ok=t[4],
        status_code=t[5],
        reason=t[6],
        error=t[7],
        dns_ms=t[8],
        connect_ms=t[9],
        tls_ms=t[10],
        ttfb_ms=t[11],
        total_ms=t[12],
        content_match=t[13],
        cert_expires_at=_moment(t[14]),
        resolved_ip=t[15],
    )


def targets_to_wire(targets: Iterable[Target]) -> list[tuple[Any, ...]]:
    """Targets as tuples of their fields, in declaration order."""
    return [dataclasses.astuple(target) for target in targets]


def targets_from_wire(items: Iterable[tuple[Any, ...] | list[Any]]) -> list[Target]:
    """Inverse of `targets_to_wire` (marshal keeps tuples, so nested fields come back as is)."""
    return [Target(*item) for item in items]
