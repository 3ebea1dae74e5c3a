"""One Kafka batch for the sink, drawn from every partition with a backlog in proportion to it.

aiokafka's `getmany()` drains its fetched partitions one after the other until `max_records`
is reached. Draining a backlog (after an outage, or a pre-filled topic), the sink's batches
therefore held one topic's events only: first batches of check events, then batches of
samples. The two cost the pipeline in opposite ways. A check event costs Python more to
decode (about 17 µs) than PostgreSQL to write (about 14 µs); a 63-sample metrics event costs
Python about 85 µs and PostgreSQL about 200 µs. As the next batch is decoded while the current
one is written, PostgreSQL idled through the check batches and Python through the sample
batches. Batches mixed as the events were produced keep both busy at once: measured on a
pre-filled topic, PostgreSQL was idle for about a third of the check-event phase before.

Live traffic is unaffected: when everything buffered fits in one batch, `getmany()` is asked
once, as before, and waits up to the flush interval for the first record.

`Batches` also keeps the first offsets of every batch not yet in PostgreSQL, from which the
lag counts.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from engine.stats import Stats

Records = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
Offsets = dict[TopicPartition, int]


class Batches:
    """Where the sink's batches come from, and which of their offsets are not written yet."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.pending: Offsets = {}
        """Per partition, the first offset not yet in PostgreSQL (lag counts from it)."""
        self._unwritten: list[Offsets] = []  # each batch's first offsets, oldest first

    async def next(
        self, consumer: AIOKafkaConsumer, timeout_ms: int, limit: int
    ) -> tuple[Records, Offsets]:
        """A fetched batch, with its first offsets (counted as unwritten from here on)."""
        batch = await fetch_batch(consumer, timeout_ms, limit)
        return batch, self._fetched(batch)

    def written(self, first: Offsets) -> None:
        """The batch that began at `first` is in PostgreSQL (or given up at a stop)."""
        self._unwritten = [f for f in self._unwritten if f is not first]
        self.pending = oldest_first(self._unwritten)

    def _fetched(self, batch: Records) -> Offsets:
        self.stats.consumed.total += sum(map(len, batch.values()))
        first = {tp: msgs[0].offset for tp, msgs in batch.items() if msgs}
        if first:
            self._unwritten.append(first)
            self.pending = oldest_first(self._unwritten)
        return first


def oldest_first(batches: list[Offsets]) -> Offsets:
    """Per partition, the first offset of the oldest batch not yet in PostgreSQL."""
    pending: Offsets = {}
    for first in batches:
        for tp, offset in first.items():
            pending.setdefault(tp, offset)
    return pending


async def fetch_batch(consumer: AIOKafkaConsumer, timeout_ms: int, limit: int) -> Records:
    """Up to `limit` records. With a backlog larger than `limit` on two or more partitions,
    each partition gives its share (see `shares`); else one plain `getmany()`."""
    backlog = await _backlog(consumer)
    portions = shares(backlog, limit)
    if portions:
        batch: Records = {}
        with contextlib.suppress(KafkaError):  # reassigned meanwhile: the plain way below
            for tp, n in portions.items():
                batch.update(await consumer.getmany(tp, timeout_ms=0, max_records=n))
        if batch:
            return batch
    plain: Records = await consumer.getmany(timeout_ms=timeout_ms, max_records=limit)
    return plain


def shares(backlog: dict[TopicPartition, int], limit: int) -> dict[TopicPartition, int]:
    """Each partition's part of a batch of `limit`, proportional to its backlog and summing
    to exactly `limit` (largest remainders); empty when the backlog fits in one batch or sits
    on one partition, where proportions change nothing."""
    waiting = {tp: n for tp, n in backlog.items() if n > 0}
    total = sum(waiting.values())
    if len(waiting) < 2 or total <= limit:
        return {}
    parts = {tp: limit * n // total for tp, n in waiting.items()}
    left = limit - sum(parts.values())
    by_remainder = sorted(waiting, key=lambda tp: limit * waiting[tp] % total, reverse=True)
    for tp in by_remainder[:left]:
        parts[tp] += 1
    return {tp: n for tp, n in parts.items() if n > 0}


async def _backlog(consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
    """Records left per assigned partition, from the high-water marks of the last fetch
    responses (free: no request). Partitions not fetched yet are left out."""
    backlog: dict[TopicPartition, int] = {}
    with contextlib.suppress(KafkaError, AssertionError, TimeoutError):
        async with asyncio.timeout(1.0):  # position() waits out a pending offset reset
            for tp in consumer.assignment():
                high = consumer.highwater(tp)
                if high is not None:
                    backlog[tp] = high - await consumer.position(tp)
    return backlog
