"""A Kafka batch decoded for the sink: events by kind, dead letters, offsets to commit."""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiokafka import TopicPartition

from engine.envelope import CheckEvent, HeartbeatEvent, Invalid, MetricsEvent, decode_event
from engine.sink.store import DeadLetter, Encoded


@dataclass(slots=True)
class Batch:
    """One decoded Kafka batch on its way to PostgreSQL."""

    metrics: list[MetricsEvent]
    checks: list[CheckEvent]
    dead: list[DeadLetter]
    offsets: dict[TopicPartition, int]
    """Offsets to commit once the rows are in (last offset + 1, per partition)."""
    first: dict[TopicPartition, int]
    """First offset per partition: lag counts from here until the batch is written."""
    encoded: Encoded
    """Its rows in COPY form, made while the previous batch was being written."""


# While a batch is decoded in a worker thread, the event loop drives the write in flight, and
# each of its round trips (BEGIN, the start and end of each COPY, the COPY's socket flushes,
# COMMIT) must take the GIL back from the decoder first. Python makes a busy thread let go
# only after the switch interval, 5 ms by default: PostgreSQL idled that long per round trip,
# which doubled the write time of a batch of check events. The loop needs the GIL briefly, so
# handing it over sooner costs the decoder little.
DECODE_SWITCH_INTERVAL_S = 0.0005


@contextlib.contextmanager
def loop_keeps_pace() -> Iterator[None]:
    """A short GIL switch interval while a batch decodes beside the event loop."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, DECODE_SWITCH_INTERVAL_S))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def decode_messages(
    batch: dict[TopicPartition, list[object]],
    max_age: timedelta,
    heartbeats: list[HeartbeatEvent] | None = None,
) -> tuple[list[MetricsEvent], list[CheckEvent], list[DeadLetter], dict[TopicPartition, int]]:
    """Every message decoded and validated: events by kind, the invalid ones as dead letters
    (so a partition never stalls on a poison message), and the offsets to commit after.
    Heartbeats go to `heartbeats` (dropped as dead letters "unexpected_heartbeat" without)."""
    now = datetime.now(UTC)
    metrics: list[MetricsEvent] = []
    checks: list[CheckEvent] = []
    dead: list[DeadLetter] = []
    offsets: dict[TopicPartition, int] = {}
    # Decoding makes hundreds of thousands of objects that live until the batch is
    # written, and none of them can form a reference cycle: the cycle collector would
    # keep walking them for nothing (a quarter of the decoding time), so it waits.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for tp, messages in batch.items():
            for msg in messages:
                value = msg.value  # type: ignore[attr-defined]
                try:
                    event = decode_event(value, now=now, max_age=max_age)
                except Invalid as bad:
                    offset = msg.offset  # type: ignore[attr-defined]
                    dead.append(DeadLetter(tp.topic, tp.partition, offset, bad.reason, value))
                    continue
                if isinstance(event, MetricsEvent):
                    metrics.append(event)
                elif isinstance(event, CheckEvent):
                    checks.append(event)
                elif heartbeats is not None:
                    heartbeats.append(event)
                else:
                    offset = msg.offset  # type: ignore[attr-defined]
                    reason = "unexpected_heartbeat"
                    dead.append(DeadLetter(tp.topic, tp.partition, offset, reason, value))
            offsets[tp] = messages[-1].offset + 1  # type: ignore[attr-defined]
    finally:
        if collecting:
            gc.enable()
    return metrics, checks, dead, offsets
